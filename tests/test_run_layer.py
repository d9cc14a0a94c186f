"""The run layer's structure and its one data path: frame windows follow the file's
declared time axes, the fixed batches, the registry a resolved spec carries, the training
step bench measures, the deprecated import paths, and the import floors."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from ocf import plugins
from ocf.components import Objective
from ocf.data import H5Dataset, make_dataset, read_info
from ocf.data.batches import take_batch, window
from ocf.errors import TrainingError
from ocf.hookspecs import hookimpl
from ocf.records import Batch
from ocf.run.data import first_batch
from ocf.spec import resolve

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = plugins.default().registry


@pytest.fixture(scope="module")
def square_sprites(tmp_path_factory):
    """moving_sprites clips of 3 frames with up to 3 sprites: per-object extras [N 3 ...]
    have a second axis as long as the clip."""
    path = tmp_path_factory.mktemp("sprites") / "sprites.h5"
    make_dataset(
        REGISTRY,
        "moving_sprites",
        path,
        n=12,
        seed=0,
        options={"frames": 3, "min_objects": 3, "max_objects": 3, "resolution": 16},
    )
    return path


def test_windows_cut_declared_time_axes_not_per_object_extras(square_sprites):
    info = read_info(square_sprites)
    assert info.t == 3 and info.extras["visibility"].shape[1:] == (3,)  # as many objects as frames
    ds = H5Dataset(square_sprites, "all")
    assert {"counts", "boxes"} <= ds.time_extras and not {"visibility", "color", "velocity"} & ds.time_extras
    whole = ds.get_batch(list(range(6)))
    for random_window in (True, False):
        cut = take_batch(ds, list(range(6)), 2, seed=3, step=1, random_window=random_window)
        assert cut.frames.shape[1] == 2 and cut.extras["counts"].shape == (6, 2)
        assert cut.extras["boxes"].shape == (6, 2, 3, 4)
        for name in ("visibility", "color", "velocity"):  # per object: whole, not cut along objects
            assert torch.equal(cut.extras[name], whole.extras[name]), name
    # the dataset's own windows (DataLoader path) follow the same rule
    lazy = H5Dataset(square_sprites, "all", frames=2, random_window=True, seed=1, in_memory=False)
    item = lazy[0]
    assert item["frames"].shape[0] == 2 and item["counts"].shape == (2,)
    assert torch.equal(item["visibility"], whole.extras["visibility"][0])


def test_window_starts_per_sample():
    frames = torch.arange(2 * 5).float().reshape(2, 5, 1, 1, 1).expand(2, 5, 1, 2, 2)
    extras = {"counts": torch.arange(10).reshape(2, 5), "ids": torch.arange(10).reshape(2, 5)}
    batch = Batch(frames, torch.arange(10).reshape(2, 5, 1, 1).expand(2, 5, 2, 2), extras)
    cut = window(batch, torch.tensor([0, 2]), 3, {"counts"})
    assert cut.frames[:, :, 0, 0, 0].tolist() == [[0, 1, 2], [7, 8, 9]]
    assert cut.masks[:, :, 0, 0].tolist() == [[0, 1, 2], [7, 8, 9]]
    assert cut.extras["counts"].tolist() == [[0, 1, 2], [7, 8, 9]]
    assert cut.extras["ids"].shape == (2, 5)  # not declared as time: kept whole


def _spec(path: Path, **data) -> dict:
    return {
        "data": {"dataset": "moving_sprites", "path": str(path), "resolution": [16, 16], "frames": 2, **data},
        "model": {
            "encoder": {"type": "cnn", "channels": [8]},
            "grouper": {"type": "slot_attention.grouper", "num_slots": 3, "slot_dim": 8, "mlp_hidden": 8},
            "decoder": {"type": "spatial_broadcast", "channels": [8]},
            "objectives": [{"type": "mse"}],
        },
        "train": {"steps": 2, "batch_size": 4, "image_every": 0},
        "eval": {"batch_size": 4, "metrics": ["mse"]},
    }


def test_first_batch_takes_the_first_samples_and_frames(square_sprites):
    resolved = resolve(_spec(square_sprites), REGISTRY)
    assert resolved.registry is REGISTRY  # the registry travels with the spec
    ds = H5Dataset(square_sprites, "val")
    batch = first_batch(resolved, "val", 100)
    assert batch.frames.shape[:2] == (len(ds), 2)  # capped at the split, data.frames frames
    assert torch.equal(batch.frames, ds.get_batch(list(range(len(ds)))).frames[:, :2])
    assert first_batch(resolved, "val", 1).frames.shape[0] == 1


class AlwaysNan(Objective):
    """A loss that is NaN from the first step."""

    needs = ("rendering.recon",)

    def forward(self, state):
        return {"mse": ((state.rendering.recon - state.target) ** 2).mean() * float("nan")}


def test_bench_measures_the_training_step_with_its_checks(square_sprites):
    from ocf.run import bench

    mod = types.ModuleType("nanbench")
    mod.ocf_register_components = hookimpl(lambda registry: registry.add("objective", "nanbench.mse", AlwaysNan))
    p = plugins.default()
    p.add_module(mod, "nanbench")
    try:
        d = _spec(square_sprites)
        d["model"]["objectives"] = [{"type": "nanbench.mse"}]
        with pytest.raises(TrainingError, match="at step 0 .*mse=nan"):
            bench.run(resolve(d, p.registry), steps=1, warmup=0, progress=False)
    finally:
        p.unregister("nanbench")


@pytest.mark.parametrize(
    "old, new, name",
    [
        ("ocf.train", "ocf.run.train", "run"),
        ("ocf.evaluate", "ocf.run.evaluate", "evaluate_model"),
        ("ocf.generate", "ocf.run.generate", "generate"),
        ("ocf.bench", "ocf.run.bench", "run"),
        ("ocf.data.cli", "ocf.cli.data", "add_parser"),
    ],
)
def test_old_paths_warn_and_reexport(old, new, name):
    with pytest.warns(DeprecationWarning, match=new.replace(".", r"\.")):
        module = importlib.reload(importlib.import_module(old))
    assert getattr(module, name) is getattr(importlib.import_module(new), name)


def test_old_window_still_guesses_with_a_warning():
    with pytest.warns(DeprecationWarning):
        train = importlib.reload(importlib.import_module("ocf.train"))
    batch = Batch(torch.zeros(1, 4, 1, 2, 2), None, {"counts": torch.arange(4)[None], "n": torch.ones(1)})
    with pytest.warns(DeprecationWarning, match="time_extras"):
        cut = train.window(batch, torch.tensor([1]), 2)
    assert cut.extras["counts"].tolist() == [[1, 2]] and cut.extras["n"].shape == (1,)


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_jobs_never_import_the_cli_nor_the_process_plugins():
    for path in sorted((ROOT / "ocf" / "run").glob("*.py")):
        imports = _imports(path)
        assert not any(n == "ocf.cli" or n.startswith("ocf.cli.") for n in imports), path.name
        assert "plugins.default" not in path.read_text(), path.name
    for path in (ROOT / "ocf" / "data").glob("*.py"):
        if path.name != "cli.py":  # the deprecated re-export of the command
            assert not any(n.startswith(("ocf.cli", "ocf.run")) for n in _imports(path)), path.name


def test_python_m_ocf_and_the_console_entry_point_reach_main():
    from ocf import cli

    assert cli.main is importlib.import_module("ocf.cli.main").main  # the entry point ocf.cli:main
    out = subprocess.run([sys.executable, "-m", "ocf", "--version"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("ocf ")
