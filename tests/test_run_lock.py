"""What ``ocf train`` checks about its run folder and data before the first step: one process
at a time writes into a run folder (an OS lock that dies with its process), a run that stopped
before its first checkpoint is not silently reused, and the splits the run reads later are in
the data file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from test_checkpoint_corpus import tiny

from ocf import plugins
from ocf.cli import main
from ocf.data import make_dataset
from ocf.errors import UserError
from ocf.run.files import LOCK_NAME, folder_lock


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("run_lock") / "shapes16.h5"
    make_dataset(plugins.default().registry, "shapes", path, n=48, seed=0, options={"resolution": 16}, progress=False)
    return path


def spec_file(folder: Path, data: Path, **train) -> Path:
    spec = tiny(data)
    spec["train"].update(train)
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def ocf(argv: list, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def ocf_process(args: list, cwd: Path, **kwargs):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "ocf", *map(str, args)]
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def wait_for_steps(run: Path, proc: subprocess.Popen, timeout: float = 180) -> None:
    metrics = run / "metrics.jsonl"
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if metrics.is_file() and metrics.stat().st_size > 0:
            return
        if proc.poll() is not None:
            pytest.fail(f"the first training ended early: {proc.stderr.read()[-3000:]}")
        time.sleep(0.2)
    pytest.fail("the first training logged no step in time")


# --------------------------------------------------------------------------- the lock


def test_a_second_lock_on_a_folder_names_the_holder(tmp_path):
    with folder_lock(tmp_path):
        assert (tmp_path / LOCK_NAME).read_text().strip() == str(os.getpid())
        with pytest.raises(UserError) as exc, folder_lock(tmp_path):
            pass
        assert f"{tmp_path}: another ocf process (PID {os.getpid()}) is writing into this run folder" in str(exc.value)
    with folder_lock(tmp_path):  # released when the block ended
        pass


def test_two_trainings_into_one_folder_and_kill_9_leaves_no_stale_lock(data, tmp_path):
    """Real processes: while one trains, a second train and a resume into its folder exit 2
    naming the folder and the first one's PID; after ``kill -9`` of the first, the folder can be
    taken again (its run stopped before a checkpoint, so --resume restarts it from step 0)."""
    long = spec_file(tmp_path, data, steps=100_000, checkpoint_every=100_000)
    run = tmp_path / "run"
    first = ocf_process(["train", long, "--out", run], tmp_path)
    try:
        wait_for_steps(run, first)
        for extra in ([], ["--resume"]):
            second = subprocess.run(
                [sys.executable, "-m", "ocf", "train", str(long), "--out", str(run), *extra],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=300,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )
            assert second.returncode == 2, second.stderr[-3000:]
            assert f"{run}: another ocf process (PID {first.pid}) is writing into this run folder" in second.stderr
            assert "Traceback" not in second.stderr
        assert first.poll() is None  # the first one is still training, undisturbed
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    again = subprocess.run(
        [sys.executable, "-m", "ocf", "train", str(long), "--out", str(run), "--resume", "--steps", "2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "restarting it from step 0" in again.stderr
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2]  # the killed run's lines are gone
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"] == 2


# --------------------------------------------------------------------------- a run that never checkpointed


def unfinished_run(folder: Path, spec: Path) -> Path:
    """A folder as a run killed before its first checkpoint leaves it: spec.yaml and metrics.jsonl."""
    folder.mkdir()
    (folder / "spec.yaml").write_text(spec.read_text())
    (folder / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 99.0}) + "\n")
    return folder


def test_a_run_that_never_checkpointed_needs_resume_which_restarts_it(data, tmp_path, capsys):
    spec = spec_file(tmp_path, data)
    run = unfinished_run(tmp_path / "run", spec)
    code, err = ocf(["train", spec, "--out", run], capsys)
    assert code == 2
    assert f"{run} holds a run that stopped before its first checkpoint (spec.yaml, metrics.jsonl)" in err
    assert "pass --resume to restart it from step 0, or choose another --out" in err
    assert (run / "metrics.jsonl").read_text().count("\n") == 1  # untouched
    code, err = ocf(["train", spec, "--out", run, "--resume"], capsys)
    assert code == 0, err
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2] and lines[0]["loss"] != 99.0
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"] == 2


def test_an_empty_or_set_up_only_folder_is_used_as_before(data, tmp_path, capsys):
    spec = spec_file(tmp_path, data)
    (tmp_path / "empty").mkdir()
    assert ocf(["train", spec, "--out", tmp_path / "empty"], capsys)[0] == 0
    setup_only = tmp_path / "setup_only"  # a start that failed before training: spec.yaml only
    setup_only.mkdir()
    (setup_only / "spec.yaml").write_text(spec.read_text())
    assert ocf(["train", spec, "--out", setup_only], capsys)[0] == 0


# --------------------------------------------------------------------------- splits checked before training


@pytest.mark.parametrize(
    "key,changes",
    [
        ("data.val_split", {"data": {"val_split": "holdout"}, "train": {"image_every": 1}}),
        ("data.val_split", {"data": {"val_split": "holdout"}, "train": {"eval_every": 1}}),
        ("eval.split", {"eval": {"split": "holdout"}}),
    ],
)
def test_a_split_missing_from_the_file_is_refused_before_the_first_step(key, changes, data, tmp_path, capsys):
    spec = tiny(data)
    for section, values in changes.items():
        spec[section].update(values)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    run = tmp_path / "run"
    code, err = ocf(["train", path, "--out", run], capsys)
    assert code == 2
    assert f"{key}: {data}: unknown split 'holdout'; the file has splits train, val, test" in err, err
    assert not (run / "checkpoints" / "init.pt").exists() and not (run / "metrics.jsonl").exists()


def test_a_validation_split_the_run_never_reads_is_not_required(data, tmp_path, capsys):
    spec = tiny(data)
    spec["data"]["val_split"] = "holdout"  # image_every and eval_every are 0
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert ocf(["train", path, "--out", tmp_path / "run"], capsys)[0] == 0
