"""Run folders: --resume against the run's own spec (refused changes named with both values,
allowed ones recorded), non-finite weights never saved as a good checkpoint, and outputs
that cannot be written (a file in the way, a read-only folder, a full disk) refused with the
path and the reason, exit 2, no traceback and no temporary file left, for train, resume, eval
and ``ocf data make``."""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
import yaml
from test_checkpoint_corpus import tiny

from ocf import plugins
from ocf.cli import main
from ocf.components import Objective
from ocf.data import make_dataset
from ocf.errors import TrainingError
from ocf.hookspecs import hookimpl
from ocf.run import train
from ocf.spec import resolve

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("run_folders") / "shapes16.h5"
    make_dataset(plugins.default().registry, "shapes", path, n=48, seed=0, options={"resolution": 16}, progress=False)
    return path


def set_key(tree: dict, dotted: str, value) -> None:
    *head, last = dotted.split(".")
    for k in head:
        tree = tree.setdefault(k, {})
    tree[last] = value


def write_spec(path: Path, data: Path, **changes) -> Path:
    spec = tiny(data)
    for dotted, value in changes.items():
        set_key(spec, dotted.replace("__", "."), value)
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory) -> dict:
    """A finished 2-step run and its spec file."""
    base = tmp_path_factory.mktemp("trained")
    spec = write_spec(base / "tiny.yaml", data)
    assert main(["train", str(spec), "--out", str(base / "run")]) == 0
    return {"spec": spec, "run": base / "run"}


def copy_run(trained, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained["run"], tmp_path / "run"))


def temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp" in p.name or p.name.startswith(".ocf-write-test")]


def ocf(argv: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


# --------------------------------------------------------------------------- resume with another spec


@pytest.mark.parametrize(
    "key,value",
    [
        ("model.grouper.num_slots", 4),
        ("model.grouper.slot_dim", 24),
        ("model.encoder.channels", [8, 16]),
        ("train.optimizer.lr", 0.002),
        ("train.seed", 1),
        ("train.batch_size", 4),
        ("data.path", "other.h5"),
        ("data.resolution", [32, 32]),
    ],
)
def test_resume_refuses_a_change_of_what_the_run_learns(key, value, trained, data, tmp_path, capsys):
    run = copy_run(trained, tmp_path)
    before = {f: (run / f).read_bytes() for f in ("spec.yaml", "checkpoints/last.pt", "metrics.jsonl")}
    old = yaml.safe_load((run / "spec.yaml").read_text())
    for k in key.split("."):
        old = old[k]
    spec = write_spec(tmp_path / "changed.yaml", data, **{key.replace(".", "__"): value})
    code, err = ocf(["train", spec, "--out", run, "--resume"], capsys)
    assert code == 2, err
    assert f"{key}: {json.dumps(old)} in the run, {json.dumps(value)} given" in err, err
    assert str(run / "spec.yaml") in err
    assert {f: (run / f).read_bytes() for f in before} == before  # nothing was touched
    assert not (run / "resumes.jsonl").exists()


def test_resume_names_every_refused_key_at_once(trained, data, tmp_path, capsys):
    run = copy_run(trained, tmp_path)
    spec = write_spec(tmp_path / "changed.yaml", data, model__grouper__num_slots=5, train__seed=3, train__steps=9)
    code, err = ocf(["train", spec, "--out", run, "--resume"], capsys)
    assert code == 2
    assert "in 2 key(s)" in err and "model.grouper.num_slots: 3 in the run, 5 given" in err
    assert "train.seed: 0 in the run, 3 given" in err and "train.steps:" not in err  # steps may change


def test_resume_with_more_steps_continues_exactly_and_is_recorded(data, tmp_path, capsys):
    long_spec = write_spec(tmp_path / "long.yaml", data, train__steps=4, train__log_every=2)
    assert main(["train", str(long_spec), "--out", str(tmp_path / "straight")]) == 0
    short_spec = write_spec(tmp_path / "short.yaml", data, train__steps=2)
    assert main(["train", str(short_spec), "--out", str(tmp_path / "resumed")]) == 0
    code, err = ocf(["train", long_spec, "--out", tmp_path / "resumed", "--resume"], capsys)
    assert code == 0, err
    a = torch.load(tmp_path / "straight" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "checkpoints" / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == 4
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    run = tmp_path / "resumed"
    lines = [json.loads(line) for line in (run / "resumes.jsonl").read_text().splitlines()]
    assert len(lines) == 1 and lines[0]["step"] == 2 and lines[0]["stop"] == 4
    assert lines[0]["changes"] == {
        "train.steps": {"run": 2, "given": 4},
        "train.log_every": {"run": 1, "given": 2},
    }
    saved = yaml.safe_load((run / "spec.yaml").read_text())
    assert saved["train"]["steps"] == 4 and saved["train"]["log_every"] == 2
    # a second resume with the same spec changes nothing and says so
    assert main(["train", str(long_spec), "--out", str(run), "--resume"]) == 0
    lines = [json.loads(line) for line in (run / "resumes.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and lines[1]["step"] == 4 and lines[1]["changes"] == {}


def test_resume_behind_the_checkpoint_is_refused(trained, tmp_path, capsys):
    run = copy_run(trained, tmp_path)
    code, err = ocf(["train", trained["spec"], "--out", run, "--resume", "--steps", "1"], capsys)
    assert code == 2 and f"{run / 'checkpoints' / 'last.pt'} is at step 2, past the 1 steps" in err


# --------------------------------------------------------------------------- non-finite weights


class NanGradFrom(Objective):
    """A finite loss term (0) whose gradient is NaN from call ``at`` on (the square root's
    infinite slope at 0 times the zero slope of ``recon * 0``): the optimizer step then
    writes NaN into the weights, as ``lr: inf`` does."""

    name = "nangrad.from"
    needs = ("rendering.recon",)
    at = 2
    calls = 0

    def forward(self, state):
        NanGradFrom.calls += 1
        recon = state.rendering.recon
        if NanGradFrom.calls > NanGradFrom.at:
            return {"zero": torch.sqrt((recon * 0).sum())}
        return {"zero": (recon * 0).sum()}


def test_non_finite_weights_are_never_saved_as_the_last_good_checkpoint(data, tmp_path):
    mod = types.ModuleType("nangrad_plugin")
    mod.ocf_register_components = hookimpl(lambda registry: registry.register(NanGradFrom))
    loaded = plugins.load(extra=[("nangrad", mod)])
    d = tiny(data)
    d["train"].update(steps=6, checkpoint_every=1)
    d["model"]["objectives"].append({"type": "nangrad.from"})
    NanGradFrom.calls = 0
    run = tmp_path / "nan"
    with pytest.raises(TrainingError) as exc:
        train.run(resolve(d, loaded.registry), out=str(run), progress=False)
    msg = str(exc.value)
    last = run / "checkpoints" / "last.pt"
    assert "NaN or infinite values after step 3" in msg and "they were not saved" in msg, msg
    assert f"the last good checkpoint is {last}" in msg
    ck = torch.load(last, weights_only=True)
    assert ck["step"] == 2 and all(bool(v.isfinite().all()) for v in ck["model"].values())
    # and resuming from that checkpoint works (it is good)
    NanGradFrom.calls, NanGradFrom.at = 0, 100
    try:
        train.run(resolve(d, loaded.registry), out=str(run), resume=True, progress=False)
    finally:
        NanGradFrom.at = 2
    assert torch.load(last, weights_only=True)["step"] == 6


# --------------------------------------------------------------------------- outputs that cannot be written


@pytest.fixture
def unwritable(monkeypatch):
    """Make a folder unwritable: chmod 555, and, where the tests run as root (who ignores
    permissions), make os.open / os.mkdir refuse writes in it as the kernel would."""
    folders: list[Path] = []
    real_open, real_mkdir = os.open, os.mkdir

    def inside(path) -> bool:
        p = Path(os.fsdecode(path)).resolve()
        return any(p == f or f in p.parents for f in folders)

    def refuse(path):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(path))

    def guarded_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and inside(path):
            refuse(path)
        return real_open(path, flags, *args, **kwargs)

    def guarded_mkdir(path, *args, **kwargs):
        if inside(path):
            refuse(path)
        return real_mkdir(path, *args, **kwargs)

    if os.geteuid() == 0:
        monkeypatch.setattr(os, "open", guarded_open)
        monkeypatch.setattr(os, "mkdir", guarded_mkdir)

    def make(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o555)
        folders.append(folder.resolve())
        return folder

    yield make
    for f in folders:
        f.chmod(0o755)


def full_disk_on(monkeypatch, name: str) -> None:
    """torch.save into a file whose name contains ``name`` writes a little, then the disk is full."""
    real = torch.save

    def save(obj, f, *args, **kwargs):
        target = getattr(f, "name", f)
        if name in os.fspath(target):
            f.write(b"PK\x03\x04 partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)


def limited_file_size(limit: int):
    """For a child process: files may not grow past ``limit`` bytes (writes fail with EFBIG,
    as on a full disk)."""

    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    return apply


def ocf_process(args: list, limit: int, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "ocf", *map(str, args)],
        preexec_fn=limited_file_size(limit),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=env,
    )


def test_train_out_naming_a_file_is_refused(trained, tmp_path, capsys):
    out = tmp_path / "notes.txt"
    out.write_text("keep me")
    code, err = ocf(["train", trained["spec"], "--out", out], capsys)
    assert code == 2 and f"{out}: is a file, not a run folder" in err
    assert out.read_text() == "keep me"
    code, err = ocf(["train", trained["spec"], "--out", out / "run"], capsys)  # a file in the path
    assert code == 2 and str(out) in err and "Not a directory" in err


def test_train_into_an_unwritable_folder_fails_before_training(trained, tmp_path, unwritable, capsys):
    parent = unwritable(tmp_path / "ro")
    code, err = ocf(["train", trained["spec"], "--out", parent / "run"], capsys)
    assert code == 2 and f"{parent / 'run'}: cannot write the run folder there (Permission denied)" in err
    assert not (parent / "run").exists()


def test_train_full_disk_at_a_checkpoint_leaves_no_temporaries(trained, tmp_path, monkeypatch, capsys):
    full_disk_on(monkeypatch, "last.pt")
    run = tmp_path / "run"
    code, err = ocf(["train", trained["spec"], "--out", run], capsys)
    assert code == 2 and f"{run / 'checkpoints' / 'last.pt'}: cannot write the checkpoint (No space left" in err
    assert temporaries(run) == [] and not (run / "checkpoints" / "last.pt").exists()
    assert torch.load(run / "checkpoints" / "init.pt", weights_only=True)["step"] == 0


def test_train_on_a_real_file_size_limit_exits_2(trained, tmp_path):
    """A real write failure (the kernel refuses to grow the file: EFBIG), not a monkeypatch."""
    size = (trained["run"] / "checkpoints" / "init.pt").stat().st_size
    run = tmp_path / "run"
    proc = ocf_process(["train", trained["spec"], "--out", run], size // 2, tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert f"{run / 'checkpoints' / 'init.pt'}: cannot write the checkpoint (File too large)" in proc.stderr
    assert "Traceback" not in proc.stderr and temporaries(run) == []


def test_resume_into_an_unwritable_run_fails_before_training(trained, tmp_path, unwritable, capsys):
    run = copy_run(trained, tmp_path)
    last = (run / "checkpoints" / "last.pt").read_bytes()
    unwritable(run)
    code, err = ocf(["train", trained["spec"], "--out", run, "--resume", "train.steps=3"], capsys)
    assert code == 2 and f"{run}: cannot write the run folder there (Permission denied)" in err
    assert (run / "checkpoints" / "last.pt").read_bytes() == last


def test_resume_full_disk_leaves_the_last_checkpoint_and_no_temporaries(trained, tmp_path, monkeypatch, capsys):
    run = copy_run(trained, tmp_path)
    last = (run / "checkpoints" / "last.pt").read_bytes()
    full_disk_on(monkeypatch, "last.pt")
    code, err = ocf(["train", trained["spec"], "--out", run, "--resume", "train.steps=3"], capsys)
    assert code == 2 and "last.pt: cannot write the checkpoint (No space left on device)" in err
    assert (run / "checkpoints" / "last.pt").read_bytes() == last and temporaries(run) == []


def test_resume_with_a_folder_where_the_metrics_go_exits_2(trained, tmp_path, capsys):
    run = copy_run(trained, tmp_path)
    (run / "metrics.jsonl").unlink()
    (run / "metrics.jsonl").mkdir()
    code, err = ocf(["train", trained["spec"], "--out", run, "--resume", "train.steps=3"], capsys)
    assert code == 2 and f"{run / 'metrics.jsonl'}: cannot write (Is a directory)" in err


def test_eval_on_an_unwritable_run_fails_before_scoring(trained, tmp_path, unwritable, monkeypatch, capsys):
    from ocf.cli import commands

    run = copy_run(trained, tmp_path)
    unwritable(run)
    monkeypatch.setattr(commands, "evaluate_model", lambda *a, **k: pytest.fail("scored before checking the output"))
    code, err = ocf(["eval", run, "--json"], capsys)
    assert code == 2 and f"{run / 'eval_test.json'}: cannot write the output file in {run} (Permission denied)" in err


def test_eval_full_disk_leaves_no_record_and_no_temporaries(trained, tmp_path, monkeypatch, capsys):
    run = copy_run(trained, tmp_path)
    real = Path.write_text

    def write_text(self, text, *args, **kwargs):
        if self.name.startswith(".eval_test.json.tmp"):
            real(self, text[:10], *args, **kwargs)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    code, err = ocf(["eval", run, "--json"], capsys)
    assert code == 2 and f"{run / 'eval_test.json'}: cannot write (No space left on device)" in err
    assert not (run / "eval_test.json").exists() and temporaries(run) == []


def test_eval_with_a_folder_where_the_record_goes_exits_2(trained, tmp_path, capsys):
    run = copy_run(trained, tmp_path)
    (run / "eval_test.json").mkdir()
    code, err = ocf(["eval", run], capsys)
    assert code == 2 and f"{run / 'eval_test.json'}: is a folder" in err


def test_data_make_out_is_a_folder_or_under_a_file(tmp_path, capsys):
    code, err = ocf(["data", "make", "shapes", "--out", tmp_path, "--n", "8", "--quiet"], capsys)
    assert code == 2 and f"{tmp_path}: is a folder; the dataset file must be a file path" in err
    blocker = tmp_path / "plain.txt"
    blocker.write_text("x")
    code, err = ocf(["data", "make", "shapes", "--out", blocker / "d.h5", "--n", "8", "--quiet"], capsys)
    assert code == 2 and f"{blocker} is a file, not a folder" in err


def test_data_make_into_an_unwritable_folder_fails_before_generating(tmp_path, unwritable, monkeypatch, capsys):
    from ocf.cli import data as data_cli

    folder = unwritable(tmp_path / "ro")
    monkeypatch.setattr(data_cli, "make_dataset", lambda *a, **k: pytest.fail("generated before checking the output"))
    code, err = ocf(["data", "make", "shapes", "--out", folder / "d.h5", "--n", "8", "--quiet"], capsys)
    assert code == 2 and f"{folder / 'd.h5'}: cannot write the dataset file in {folder} (Permission denied)" in err


def test_data_make_full_disk_leaves_no_temporaries(tmp_path, monkeypatch, capsys):
    from ocf.data import writing as fmt

    def full_open(path, mode="r", *args, **kwargs):
        f = open(path, mode, *args, **kwargs)
        if "w" in mode:
            f.write(b"\x89HDF partial")
            f.close()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return f

    monkeypatch.setattr(fmt, "open", full_open, raising=False)
    out = tmp_path / "d.h5"
    code, err = ocf(["data", "make", "shapes", "--out", out, "--n", "8", "--quiet"], capsys)
    assert code == 2 and f"{out}: cannot write the dataset file (No space left on device)" in err
    assert not out.exists() and temporaries(tmp_path) == []


def test_data_make_on_a_real_file_size_limit_exits_2_without_crashing(tmp_path):
    """HDF5 failing to flush its own buffers crashed the process (SIGSEGV); the file is now
    built in memory and written in one plain write."""
    out = tmp_path / "d.h5"
    proc = ocf_process(["data", "make", "shapes", "--out", out, "--n", "300", "--quiet"], 64_000, tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert f"{out}: cannot write the dataset file (File too large)" in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists() and temporaries(tmp_path) == []


def test_resume_may_change_speed_options_but_not_the_batch_split():
    """Activation checkpointing recomputes the same numbers, so a resume may switch it; the
    number of micro-batches changes the steps' arithmetic under batch-dependent layers."""
    from ocf.run.resume import adjustable

    assert adjustable("train.checkpoint_stages") and adjustable("train.compile")
    assert not adjustable("train.accumulate") and not adjustable("train.batch_size")
