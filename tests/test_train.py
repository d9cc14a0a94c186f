"""Training end to end on tiny models: resume equality, NaN stop, pictures, GECO,
curriculum, init-from/freeze, sweeps and two-process DDP."""

import json
import os
import signal
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
import yaml

from ocf import plugins
from ocf.cli import main
from ocf.components import Objective
from ocf.data.batches import window
from ocf.errors import TrainingError, UserError
from ocf.hookspecs import hookimpl
from ocf.run import data as run_data
from ocf.run import setup, train
from ocf.spec import resolve

ROOT = Path(__file__).resolve().parents[1]


def tiny_spec(data_path: Path, **train_kw) -> dict:
    return {
        "name": "tiny",
        "data": {
            "dataset": "shapes",
            "path": str(data_path),
            "resolution": [16, 16],
            "channels": 3,
            "generate": {"n": 96, "seed": 0, "options": {"resolution": 16}},
        },
        "model": {
            "encoder": {"type": "cnn", "channels": [8, 8]},
            "grouper": {"type": "slot_attention.grouper", "num_slots": 3, "slot_dim": 16, "mlp_hidden": 16},
            "decoder": {"type": "spatial_broadcast", "channels": [8, 8]},
            "objectives": [{"type": "mse"}],
        },
        "train": {
            "steps": 4,
            "batch_size": 8,
            "log_every": 1,
            "image_every": 2,
            "checkpoint_every": 2,
            "optimizer": {"lr": 1e-3},
            **train_kw,
        },
        "eval": {"metrics": ["fg_ari", "mse"], "batch_size": 8},
    }


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    return tmp_path_factory.mktemp("data") / "shapes16.h5"


def write_spec(path: Path, d: dict) -> Path:
    path.write_text(yaml.safe_dump(d))
    return path


def params(run_dir: Path, name: str = "last.pt") -> dict:
    return torch.load(run_dir / "checkpoints" / name, weights_only=True)["model"]


def test_run_dir_holds_everything_and_eval_works(tmp_path, data_path):
    reg = plugins.default().registry
    run = train.run(resolve(tiny_spec(data_path), reg), out=str(tmp_path / "run"), progress=False)
    for f in (
        "spec.yaml",
        "versions.json",
        "metrics.jsonl",
        "summary.json",
        "checkpoints/last.pt",
        "checkpoints/init.pt",
        "pictures/step_0000002.png",
    ):
        assert (run / f).exists(), f
    saved = yaml.safe_load((run / "spec.yaml").read_text())
    assert saved["model"]["grouper"]["iterations"] == 3  # fully resolved: defaults filled in
    assert "torch" in json.loads((run / "versions.json").read_text())
    lines = [json.loads(row) for row in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in lines] == [1, 2, 3, 4] and "loss/mse" in lines[0]
    assert main(["eval", str(run), "--json"]) == 0
    result = json.loads((run / "eval_test.json").read_text())
    assert 0 <= result["metrics"]["mse"] < 1 and -1 <= result["metrics"]["fg_ari"] <= 1
    # a second train into the same dir refuses instead of overwriting
    with pytest.raises(UserError, match="already holds a run"):
        train.run(resolve(tiny_spec(data_path), reg), out=str(run), progress=False)


def test_resume_equals_uninterrupted(tmp_path, data_path):
    reg = plugins.default().registry
    spec = resolve(tiny_spec(data_path, steps=6), reg)
    straight = train.run(spec, out=str(tmp_path / "a"), progress=False)
    half = train.run(spec, out=str(tmp_path / "b"), steps=3, progress=False)
    assert torch.load(half / "checkpoints" / "last.pt", weights_only=True)["step"] == 3
    resumed = train.run(spec, out=str(tmp_path / "b"), resume=True, progress=False)
    a, b = params(straight), params(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    init = params(straight, "init.pt")
    assert not torch.equal(a["grouper.mu"], init["grouper.mu"])  # it did train


def test_eval_during_training_is_logged_and_leaves_training_unchanged(tmp_path, data_path):
    reg = plugins.default().registry
    plain = train.run(resolve(tiny_spec(data_path), reg), out=str(tmp_path / "plain"), progress=False)
    evald = train.run(
        resolve(tiny_spec(data_path, eval_every=2, eval_samples=8), reg), out=str(tmp_path / "eval"), progress=False
    )
    lines = [json.loads(row) for row in (evald / "metrics.jsonl").read_text().splitlines()]
    evals = [row for row in lines if "eval/fg_ari" in row]
    assert [row["step"] for row in evals] == [2, 4] and all(0 <= row["eval/mse"] < 1 for row in evals)
    a, b = params(plain), params(evald)
    assert all(torch.equal(a[k], b[k]) for k in a)  # evaluation moved no RNG and no weight


class NanAfter(Objective):
    """MSE that turns into NaN from the third call on."""

    needs = ("rendering.recon",)
    calls = 0

    def forward(self, state):
        NanAfter.calls += 1
        mse = ((state.rendering.recon - state.target) ** 2).mean()
        return {"mse": mse * float("nan") if NanAfter.calls > 2 else mse}


def test_nan_loss_stops_with_step_terms_and_checkpoint(tmp_path, data_path):
    mod = types.ModuleType("nanplugin")
    mod.ocf_register_components = hookimpl(lambda registry: registry.add("objective", "nan.mse", NanAfter))
    p = plugins.default()
    p.add_module(mod, "nan")
    try:
        d = tiny_spec(data_path, steps=5, checkpoint_every=1)
        d["model"]["objectives"] = [{"type": "nan.mse"}]
        NanAfter.calls = 0
        with pytest.raises(TrainingError) as exc:
            train.run(resolve(d, p.registry), out=str(tmp_path / "nan"), progress=False)
        msg = str(exc.value)
        assert "at step 2" in msg and "mse=nan" in msg and "last.pt" in msg
        ck = torch.load(tmp_path / "nan" / "checkpoints" / "last.pt", weights_only=True)
        assert ck["step"] == 2 and all(torch.isfinite(v).all() for v in ck["model"].values())
    finally:
        p.unregister("nan")


def test_geco_beta_moves_and_is_logged(tmp_path, data_path):
    reg = plugins.default().registry
    d = tiny_spec(data_path, steps=3, geco={"term": "mse", "goal": 10.0, "step_size": 0.1, "speedup": None})
    d["model"]["objectives"] = [{"type": "mse"}, {"type": "mse", "weight": 0.5}]
    run = train.run(resolve(d, reg), out=str(tmp_path / "geco"), progress=False)
    lines = [json.loads(row) for row in (run / "metrics.jsonl").read_text().splitlines()]
    betas = [row["geco/beta"] for row in lines]
    assert betas[0] > 1.0 and betas == sorted(betas)  # err far below goal: beta grows


def test_geco_direction():
    from ocf.geco import Geco
    from ocf.spec import GecoSpec

    g = Geco(GecoSpec(term="nll", goal=1.0, step_size=0.1, alpha=0.0, speedup=None))
    g.update(2.0)  # error above goal: beta falls (reconstruct first)
    assert g.beta == pytest.approx(torch.exp(torch.tensor(-0.1)).item())
    g2 = Geco(GecoSpec(term="nll", goal=1.0, step_size=0.1, alpha=0.0, speedup=10.0))
    g2.update(0.5)  # goal met: beta grows, with the speed-up
    assert g2.beta == pytest.approx(torch.exp(torch.tensor(0.5)).item())


def test_init_from_and_freeze(tmp_path, data_path):
    reg = plugins.default().registry
    first = train.run(resolve(tiny_spec(data_path, steps=2), reg), out=str(tmp_path / "first"), progress=False)
    d = tiny_spec(data_path, steps=2, init_from=str(first), freeze=["encoder", "grouper"])
    second = train.run(resolve(d, reg), out=str(tmp_path / "second"), progress=False)
    a, b = params(first), params(second)
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith(("encoder.", "grouper.")))
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("decoder."))
    with pytest.raises(UserError, match="no stage 'encodr'"):
        train.run(resolve(tiny_spec(data_path, freeze=["encodr"]), reg), out=str(tmp_path / "x"), progress=False)


def test_window_and_curriculum():
    from ocf.records import Batch
    from ocf.spec import Spec

    frames = torch.arange(2 * 5).float().reshape(2, 5, 1, 1, 1).expand(2, 5, 1, 2, 2)
    batch = Batch(
        frames,
        torch.zeros(2, 5, 2, 2, dtype=torch.long),
        {"counts": torch.arange(10).reshape(2, 5), "n": torch.ones(2)},
    )
    cut = window(batch, torch.tensor([0, 2]), 3, {"counts"})
    assert cut.frames[:, :, 0, 0, 0].tolist() == [[0, 1, 2], [7, 8, 9]]
    assert cut.extras["counts"].tolist() == [[0, 1, 2], [7, 8, 9]] and cut.extras["n"].shape == (2,)
    spec = Spec.model_validate(
        {
            "data": {"dataset": "x", "path": "x", "frames": 10},
            "model": {"encoder": {"type": "cnn"}},
            "train": {"curriculum": {"start": 3, "every": 100, "max": 10}},
        }
    )
    assert [run_data.curriculum_frames(spec, s) for s in (0, 99, 100, 650, 10_000)] == [3, 3, 4, 9, 10]


def test_lr_schedule():
    from ocf.spec import TrainSpec

    t = TrainSpec(schedule={"warmup_steps": 10, "decay": "step", "decay_rate": 0.5, "decay_steps": 100})
    assert setup.lr_factor(t, 0) == pytest.approx(0.1)
    assert setup.lr_factor(t, 50) == 1.0 and setup.lr_factor(t, 150) == 0.5


def test_sweep_makes_one_run_dir_per_point(tmp_path, data_path):
    spec = write_spec(tmp_path / "tiny.yaml", tiny_spec(data_path, steps=1, image_every=0))
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        code = main(["train", str(spec), "--multirun", "model.grouper.num_slots=2,4", "--out", str(tmp_path / "sweep")])
    finally:
        os.chdir(cwd)
    assert code == 0
    slots = sorted(
        yaml.safe_load((p / "spec.yaml").read_text())["model"]["grouper"]["num_slots"]
        for p in (tmp_path / "sweep").iterdir()
        if (p / "spec.yaml").exists()
    )
    assert slots == [2, 4]


def test_two_process_ddp(tmp_path, data_path):
    spec = write_spec(tmp_path / "tiny.yaml", tiny_spec(data_path, steps=2, image_every=0))
    run_data.ensure_dataset(resolve(tiny_spec(data_path), plugins.default().registry).spec, plugins.default().registry)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "2",
            "--master-port",
            "29517",
            "-m",
            "ocf",
            "train",
            str(spec),
            "--out",
            str(tmp_path / "ddp"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    ck = torch.load(tmp_path / "ddp" / "checkpoints" / "last.pt", weights_only=True)
    assert ck["step"] == 2
    lines = (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2  # rank 0 logs alone


class CtrlCAt(Objective):
    """Adds nothing to the loss; sends this process a SIGINT during the forward pass of step
    ``CtrlCAt.at`` (counted from 0), i.e. after the step has drawn its random numbers."""

    name = "ctrlc.at"
    needs = ("rendering.recon",)
    at: int | None = None
    calls = 0

    def forward(self, state):
        if CtrlCAt.at is not None and CtrlCAt.calls == CtrlCAt.at:
            os.kill(os.getpid(), signal.SIGINT)
        CtrlCAt.calls += 1
        return {}


def test_ctrl_c_then_resume_equals_uninterrupted(tmp_path, data_path):
    """Ctrl-C in the middle of a step lets that step finish and checkpoints the state after it,
    so --resume continues exactly; the old handler saved a half-done step."""
    mod = types.ModuleType("ctrlc_plugin")
    mod.ocf_register_components = hookimpl(lambda registry: registry.register(CtrlCAt))
    reg_plugins = plugins.load(extra=[("ctrlc", mod)])
    spec_dict = tiny_spec(data_path, steps=6, checkpoint_every=100)
    spec_dict["model"]["objectives"].append({"type": "ctrlc.at"})
    spec = resolve(spec_dict, reg_plugins.registry)
    CtrlCAt.at, CtrlCAt.calls = None, 0
    straight = train.run(spec, out=str(tmp_path / "a"), progress=False)
    CtrlCAt.at, CtrlCAt.calls = 2, 0
    with pytest.raises(KeyboardInterrupt):
        train.run(spec, out=str(tmp_path / "b"), progress=False)
    assert torch.load(tmp_path / "b" / "checkpoints" / "last.pt", weights_only=True)["step"] == 3
    CtrlCAt.at = None
    resumed = train.run(spec, out=str(tmp_path / "b"), resume=True, progress=False)
    a, b = params(straight), params(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_train_says_where_the_run_is_and_a_finished_resume_keeps_its_summary(tmp_path, data_path, capsys):
    spec = write_spec(tmp_path / "s.yaml", tiny_spec(data_path))
    run = tmp_path / "run"
    assert main(["train", str(spec), "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"trained to step 4 in {run}" in out and f"ocf eval {run}" in out and "mse " in out
    before = json.loads((run / "summary.json").read_text())
    assert before["losses"]
    assert main(["train", str(spec), "--out", str(run), "--resume"]) == 0
    assert json.loads((run / "summary.json").read_text()) == before
