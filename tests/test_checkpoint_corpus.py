"""A fixed corpus of malformed checkpoints, given to every command that reads one: resume,
eval, viz, sample and init-from.  Each must exit 2 with one ``ocf: error:`` line naming the
file and what is wrong (for a model mismatch, the first parameters with both shapes), never
a traceback, and never run code from the file (checkpoints are read with weights_only=True).
"""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from ocf.cli import main

TINY = {
    "name": "tiny",
    "data": {
        "dataset": "shapes",
        "path": None,
        "resolution": [16, 16],
        "channels": 3,
        "generate": {"n": 48, "seed": 0, "options": {"resolution": 16}},
    },
    "model": {
        "encoder": {"type": "cnn", "channels": [8, 8]},
        "grouper": {"type": "slot_attention.grouper", "num_slots": 3, "slot_dim": 16, "mlp_hidden": 16},
        "decoder": {"type": "spatial_broadcast", "channels": [8, 8]},
        "objectives": [{"type": "mse"}],
    },
    "train": {"steps": 2, "batch_size": 8, "log_every": 1, "image_every": 0, "checkpoint_every": 1},
    "eval": {"metrics": ["mse"], "batch_size": 8, "max_samples": 8},
}


def tiny(data: Path, **grouper) -> dict:
    spec = yaml.safe_load(yaml.safe_dump(TINY))
    spec["data"]["path"] = str(data)
    spec["model"]["grouper"].update(grouper)
    return spec


class Hostile:
    """Unpickling it would run a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A trained tiny run, its spec file, and the last checkpoint of a run of another model
    (other number of slots and slot size)."""
    base = tmp_path_factory.mktemp("ckpt_corpus")
    data = base / "shapes16.h5"
    spec = base / "tiny.yaml"
    spec.write_text(yaml.safe_dump(tiny(data)))
    assert main(["train", str(spec), "--out", str(base / "run")]) == 0
    other_spec = base / "other.yaml"
    other_spec.write_text(yaml.safe_dump(tiny(data, num_slots=4, slot_dim=24)))
    assert main(["train", str(other_spec), "--out", str(base / "other"), "--steps", "1"]) == 0
    return {"base": base, "spec": spec, "run": base / "run", "other": base / "other" / "checkpoints" / "last.pt"}


def good(runs) -> dict:
    return torch.load(runs["run"] / "checkpoints" / "last.pt", weights_only=True)


def first_param(ck: dict) -> str:
    return next(k for k, v in ck["model"].items() if v.is_floating_point() and v.dim() >= 2)


def _save(path: Path, payload) -> Path:
    torch.save(payload, path)
    return path


def _edit(runs, path: Path, change) -> Path:
    ck = good(runs)
    change(ck)
    return _save(path, ck)


def _wrong_shape(ck):
    k = first_param(ck)
    ck["model"][k] = torch.zeros(*[s + 1 for s in ck["model"][k].shape])


def _int_weights(ck):
    k = first_param(ck)
    ck["model"][k] = ck["model"][k].long()


def _nan_weights(ck):
    k = first_param(ck)
    ck["model"][k] = ck["model"][k].clone().fill_(float("nan"))


def _optimizer_shape(ck):
    state = next(iter(ck["optimizer"]["state"].values()))
    state["exp_avg"] = torch.zeros(7, 7)


def _optimizer_groups(ck):
    ck["optimizer"]["param_groups"][0]["params"] = ck["optimizer"]["param_groups"][0]["params"][:1]


def build_corpus(runs, where: Path) -> dict[str, tuple[Path, str, frozenset]]:
    """name → (file, what the message must say, the commands that read the broken part)."""
    model_readers = frozenset({"resume", "eval", "viz", "sample", "init_from"})
    resume_only = frozenset({"resume"})
    k = first_param(good(runs))
    raw = (runs["run"] / "checkpoints" / "last.pt").read_bytes()
    files = {
        "not_a_dict": (_save(where / "list.pt", [1, 2, 3]), "holds a list", model_readers),
        "missing_model": (
            _edit(runs, where / "nomodel.pt", lambda ck: ck.pop("model")),
            "no 'model'",
            model_readers,
        ),
        "model_not_dict": (
            _edit(runs, where / "modeltensor.pt", lambda ck: ck.update(model=torch.zeros(3))),
            "'model' is a Tensor",
            model_readers,
        ),
        "model_entry_not_tensor": (
            _edit(runs, where / "entrystr.pt", lambda ck: ck["model"].update({k: "weights"})),
            f"'{k}' (str)",
            model_readers,
        ),
        "wrong_shape": (
            _edit(runs, where / "shape.pt", _wrong_shape),
            f"{k}: checkpoint [",
            model_readers - {"init_from"},
        ),
        "wrong_names": (
            _edit(
                runs, where / "names.pt", lambda ck: ck.update(model={f"net.{n}": v for n, v in ck["model"].items()})
            ),
            "net.",
            model_readers,
        ),
        "int_weights": (
            _edit(runs, where / "int.pt", _int_weights),
            "another kind of number",
            model_readers - {"init_from"},
        ),
        "nan_weights": (_edit(runs, where / "nan.pt", _nan_weights), "NaN or infinite", model_readers),
        "other_model": (runs["other"], "with another shape (grouper.", model_readers - {"init_from"}),
        "truncated": (where / "truncated.pt", "not a readable PyTorch checkpoint", model_readers),
        "empty": (where / "empty.pt", "not a readable PyTorch checkpoint", model_readers),
        "text": (where / "text.pt", "not a readable PyTorch checkpoint", model_readers),
        "plain_pickle": (where / "plain.pkl", "not a readable PyTorch checkpoint", model_readers),
        "hostile_torch": (
            _save(where / "hostile.pt", {"model": Hostile(where / "PWNED")}),
            "weights_only=True",
            model_readers,
        ),
        "hostile_pickle": (where / "hostile.pkl", "weights_only=True", model_readers),
        "folder": (where / "folder.pt", "is a folder", model_readers),
        "float_step": (_edit(runs, where / "step_float.pt", lambda ck: ck.update(step=1.5)), "'step'", resume_only),
        "str_step": (_edit(runs, where / "step_str.pt", lambda ck: ck.update(step="2")), "'step'", resume_only),
        "bool_step": (_edit(runs, where / "step_bool.pt", lambda ck: ck.update(step=True)), "'step'", resume_only),
        "negative_step": (_edit(runs, where / "step_neg.pt", lambda ck: ck.update(step=-1)), "'step'", resume_only),
        "bad_rng_size": (
            _edit(runs, where / "rng_size.pt", lambda ck: ck.update(rng=torch.zeros(7, dtype=torch.uint8))),
            "'rng' is not a torch RNG state",
            resume_only,
        ),
        "bad_rng_type": (
            _edit(runs, where / "rng_type.pt", lambda ck: ck.update(rng=[1, 2])),
            "'rng' is not a torch RNG state",
            resume_only,
        ),
        "no_optimizer": (
            _edit(runs, where / "noopt.pt", lambda ck: ck.pop("optimizer")),
            "no 'optimizer'",
            resume_only,
        ),
        "optimizer_not_state": (
            _edit(runs, where / "optstr.pt", lambda ck: ck.update(optimizer="adam")),
            "'optimizer' is not an optimizer state",
            resume_only,
        ),
        "optimizer_wrong_shape": (
            _edit(runs, where / "optshape.pt", _optimizer_shape),
            "'exp_avg' of parameter 0 is [7, 7]",
            resume_only,
        ),
        "optimizer_other_params": (
            _edit(runs, where / "optgroups.pt", _optimizer_groups),
            "does not fit this model's optimizer",
            resume_only,
        ),
        "scheduler_empty": (
            _edit(runs, where / "sched.pt", lambda ck: ck.update(scheduler={})),
            "'scheduler' is not a schedule state",
            resume_only,
        ),
    }
    (where / "truncated.pt").write_bytes(raw[: len(raw) // 2])
    (where / "empty.pt").write_bytes(b"")
    (where / "text.pt").write_text("model: not a checkpoint\n")
    (where / "plain.pkl").write_bytes(pickle.dumps({"model": {}}))
    (where / "hostile.pkl").write_bytes(pickle.dumps({"model": Hostile(where / "PWNED")}, protocol=2))
    (where / "folder.pt").mkdir()
    return files


COMMANDS = ("resume", "eval", "viz", "sample", "init_from")
#: init_from also takes a run folder, so a folder without checkpoints/last.pt is told so
SAYS_INSTEAD = {("folder", "init_from"): "no checkpoint found (expected"}


@pytest.fixture(scope="module")
def corpus(runs):
    where = runs["base"] / "corpus"
    where.mkdir()
    return build_corpus(runs, where)


def run_command(command: str, runs, bad: Path, tmp_path: Path) -> tuple[list[str], str]:
    """The argv that gives ``bad`` to ``command``, and the path the message must name."""
    if command in ("resume", "viz"):  # these read the run's own last.pt
        copy = tmp_path / "run"
        shutil.copytree(runs["run"], copy)
        last = copy / "checkpoints" / "last.pt"
        last.unlink()
        if bad.is_dir():
            last.mkdir()
        else:
            shutil.copyfile(bad, last)
        if command == "resume":
            return ["train", str(runs["spec"]), "--out", str(copy), "--resume", "train.steps=3"], str(last)
        return ["viz", str(copy), "--out", str(tmp_path / "viz"), "--n", "2"], str(last)
    if command == "eval":
        return ["eval", str(runs["run"]), "--checkpoint", str(bad), "--json"], str(bad)
    if command == "sample":
        return ["sample", str(runs["run"]), "--checkpoint", str(bad), "--out", str(tmp_path / "s")], str(bad)
    return ["train", str(runs["spec"]), "--out", str(tmp_path / "new"), f"train.init_from={bad}"], str(bad)


CASES = [
    "not_a_dict",
    "missing_model",
    "model_not_dict",
    "model_entry_not_tensor",
    "wrong_shape",
    "wrong_names",
    "int_weights",
    "nan_weights",
    "other_model",
    "truncated",
    "empty",
    "text",
    "plain_pickle",
    "hostile_torch",
    "hostile_pickle",
    "folder",
    "float_step",
    "str_step",
    "bool_step",
    "negative_step",
    "bad_rng_size",
    "bad_rng_type",
    "no_optimizer",
    "optimizer_not_state",
    "optimizer_wrong_shape",
    "optimizer_other_params",
    "scheduler_empty",
]


def test_the_corpus_lists_every_case(corpus):
    assert sorted(corpus) == sorted(CASES)


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", CASES)
def test_malformed_checkpoint_exits_2_naming_file_and_problem(case, command, corpus, runs, tmp_path, capsys):
    bad, says, readers = corpus[case]
    says = SAYS_INSTEAD.get((case, command), says)
    if command not in readers:
        return  # this command does not read the broken part (e.g. eval never reads the RNG state)
    argv, named = run_command(command, runs, bad, tmp_path)
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    message = [line for line in err.splitlines() if line.startswith("ocf: error:")]
    assert message and named in err and says in err, err
    assert not (bad.parent / "PWNED").exists()  # no code from a checkpoint ever ran


def test_a_model_mismatch_lists_the_first_parameters_with_both_shapes(corpus, runs, capsys):
    assert main(["eval", str(runs["run"]), "--checkpoint", str(runs["other"])]) == 2
    err = capsys.readouterr().err
    assert f"{runs['other']}: does not fit this model" in err
    own = good(runs)["model"]
    other = torch.load(runs["other"], weights_only=True)["model"]
    differing = [k for k in own if k in other and own[k].shape != other[k].shape]
    assert len(differing) > 5  # more than are listed
    for k in differing[:5]:
        assert f"{k}: checkpoint {list(other[k].shape)}, model {list(own[k].shape)}" in err
    assert f"and {len(differing) - 5} more" in err


def test_init_from_copies_what_matches_and_names_the_rest(corpus, runs, tmp_path, capsys):
    """A partial match is init_from's purpose (e.g. a decoder probe), so it trains; the
    tensors that were not copied are listed with both shapes."""
    code = main(["train", str(runs["spec"]), "--out", str(tmp_path / "p"), f"train.init_from={runs['other']}"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"train.init_from {runs['other']}: copied" in err and "with another shape (grouper." in err
    start = torch.load(tmp_path / "p" / "checkpoints" / "init.pt", weights_only=True)["model"]
    other = torch.load(runs["other"], weights_only=True)["model"]
    same = [k for k in start if k in other and start[k].shape == other[k].shape]
    assert same and all(torch.equal(start[k], other[k]) for k in same)
    assert any(k.startswith("encoder.") for k in same)


def test_resume_only_parts_do_not_stop_eval(corpus, runs, tmp_path, capsys):
    """eval reads only the model: a checkpoint whose RNG state is broken still scores."""
    bad = corpus["bad_rng_size"][0]
    assert main(["eval", str(runs["run"]), "--checkpoint", str(bad), "--json"]) == 0
    capsys.readouterr()


def test_a_non_torchscript_feature_extractor_is_a_user_error(tmp_path):
    from ocf.errors import UserError
    from ocf.metrics.generation import TorchScriptFeatures

    for name, content in (("text.pt", b"not torchscript"), ("empty.pt", b"")):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(UserError, match=f"{path}: not a valid TorchScript file"):
            TorchScriptFeatures(str(path))
    plain = tmp_path / "plain.pt"
    torch.save({"model": {"w": torch.ones(2)}}, plain)  # a checkpoint, not a TorchScript module
    with pytest.raises(UserError, match=f"{plain}: not a valid TorchScript file"):
        TorchScriptFeatures(str(plain))
