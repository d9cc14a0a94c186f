"""``ocf sample`` and ``ocf viz`` outputs that cannot be written (a file where the folder
should be, a read-only folder, a full disk): exit 2 naming the path and the reason, no
traceback and no temporary file; and ``ocf plugins show`` of a name registered as several
kinds shows each."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
import torch
from PIL import Image
from test_generate import spec
from test_run_folders import temporaries, unwritable  # noqa: F401 (a fixture)

from ocf import plugins
from ocf.cli import main
from ocf.run import train
from ocf.spec import resolve


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A 2-step run of a model with a prior (it can sample)."""
    base = tmp_path_factory.mktemp("outputs")
    resolved = resolve(spec(base / "shapes16.h5", prior={"type": "normal"}), plugins.default().registry)
    return train.run(resolved, out=str(base / "run"), progress=False)


def ocf(argv: list, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


COMMANDS = {"sample": ["--n", "2"], "viz": ["--n", "2"]}
WHAT = {"sample": "sample output folder", "viz": "viz output folder"}


@pytest.mark.parametrize("command", COMMANDS)
def test_out_naming_a_file_is_refused(command, run, tmp_path, capsys):
    out = tmp_path / "notes.txt"
    out.write_text("keep me")
    code, err = ocf([command, run, "--out", out, *COMMANDS[command]], capsys)
    assert code == 2
    assert f"{out}: is a file, not a folder; the {WHAT[command]} must be a folder" in err
    assert out.read_text() == "keep me"
    code, err = ocf([command, run, "--out", out / "inside", *COMMANDS[command]], capsys)  # a file in the path
    assert code == 2 and f"{out / 'inside'}: cannot write the {WHAT[command]} there (Not a directory)" in err


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unwritable_folder_is_refused_before_the_model_runs(command, run, tmp_path, unwritable, capsys):  # noqa: F811
    from ocf.cli import commands

    folder = unwritable(tmp_path / "ro")
    monkey = pytest.MonkeyPatch()
    fail = lambda *a, **k: pytest.fail("ran the model before checking the output")  # noqa: E731
    monkey.setattr(commands, "eval_forward", fail)
    monkey.setattr(commands, "generate", fail)
    try:
        code, err = ocf([command, run, "--out", folder, *COMMANDS[command]], capsys)
    finally:
        monkey.undo()
    assert code == 2 and f"{folder}: cannot write the {WHAT[command]} there (Permission denied)" in err


def full_disk_on(monkeypatch, name: str) -> None:
    """Saving a picture whose file name contains ``name`` writes a little, then the disk is full."""
    real = Image.Image.save

    def save(self, fp, *args, **kwargs):
        if name in os.fspath(fp):
            Path(fp).write_bytes(b"\x89PNG partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(fp))
        return real(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save)


def test_viz_full_disk_names_the_picture(run, tmp_path, monkeypatch, capsys):
    full_disk_on(monkeypatch, "decomposition.png")
    out = tmp_path / "viz"
    code, err = ocf(["viz", run, "--out", out, "--n", "2"], capsys)
    assert code == 2 and f"{out / 'decomposition.png'}: cannot write (No space left on device)" in err


def test_sample_full_disk_leaves_no_temporaries(run, tmp_path, monkeypatch, capsys):
    full_disk_on(monkeypatch, "samples.png")
    out = tmp_path / "s1"
    code, err = ocf(["sample", run, "--out", out, "--n", "2"], capsys)
    assert code == 2 and f"{out / 'samples.png'}: cannot write (No space left on device)" in err

    monkeypatch.undo()
    real = torch.save

    def save(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"PK partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", save)
    out = tmp_path / "s2"
    code, err = ocf(["sample", run, "--out", out, "--n", "2"], capsys)
    assert code == 2 and f"{out / 'samples.pt'}: cannot write (No space left on device)" in err
    assert temporaries(out) == [] and not (out / "samples.pt").exists()
    monkeypatch.setattr(torch, "save", real)
    assert ocf(["sample", run, "--out", out, "--n", "2"], capsys)[0] == 0
    assert (out / "samples.pt").exists() and temporaries(out) == []


def test_plugins_show_a_name_of_several_kinds_shows_each(capsys):
    assert main(["plugins", "show", "mse"]) == 0
    out = capsys.readouterr().out
    headings = [line for line in out.splitlines() if line.endswith("(plugin common)")]
    assert headings == ["objective mse (plugin common)", "metric mse (plugin common)"]
    assert "multiplies every term this objective returns" in out  # the objective's weight
    assert main(["plugins", "show", "mse", "--json"]) == 0
    docs = json.loads(capsys.readouterr().out)
    assert [d["kind"] for d in docs] == ["objective", "metric"]
    assert main(["plugins", "show", "cnn", "--json"]) == 0  # one kind: one object, as before
    assert json.loads(capsys.readouterr().out)["kind"] == "encoder"
