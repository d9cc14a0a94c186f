"""Deprecated: the training loop and its toolbox moved to :mod:`ocf.run` (issue 18).

Import from ``ocf.run.train`` (``run``, ``multirun``, ``Logger``), ``ocf.run.setup``
(optimizer, schedule, device, ``freeze``, ``train_step``), ``ocf.run.checkpoints``
(checkpoints, run dirs), ``ocf.run.data`` (``ensure_dataset``, ``open_split``,
``first_batch``) and ``ocf.data.batches`` (``StepBatches``, ``take_batch``, ``window``).
"""

from __future__ import annotations

import warnings

from ocf.data.batches import StepBatches, take_batch
from ocf.data.batches import window as _window
from ocf.run.checkpoints import find_checkpoint, init_from, load_checkpoint, prepare_run_dir, save_checkpoint
from ocf.run.checkpoints import versions as _versions
from ocf.run.data import check_shape, curriculum_frames, ensure_dataset, first_batch
from ocf.run.data import open_split as _open_split
from ocf.run.setup import autocast, freeze, lr_factor, make_optimizer, pick_device, speed_options
from ocf.run.train import Logger, run, save_picture

warnings.warn(
    "ocf.train is deprecated; import from ocf.run.train, ocf.run.setup, ocf.run.checkpoints, ocf.run.data "
    "and ocf.data.batches",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "Logger",
    "StepBatches",
    "autocast",
    "check_shape",
    "curriculum_frames",
    "ensure_dataset",
    "find_checkpoint",
    "freeze",
    "init_from",
    "load_checkpoint",
    "lr_factor",
    "make_optimizer",
    "multirun",
    "open_split",
    "pick_device",
    "picture_source",
    "prepare_run_dir",
    "run",
    "save_checkpoint",
    "save_picture",
    "speed_options",
    "take_batch",
    "versions",
    "window",
]


def open_split(spec, split: str, registry, frames: int | None = None):
    """Deprecated form of :func:`ocf.run.data.open_split` (``frames`` was never used)."""
    return _open_split(spec, split, registry)


def window(batch, starts, frames: int, time_extras=None):
    """Deprecated form of :func:`ocf.data.batches.window`.  Without ``time_extras`` the
    extras whose second axis is as long as the clip are cut, as before; pass the dataset's
    ``time_extras`` instead (a per-object extra may have as many objects as frames)."""
    if time_extras is None:
        warnings.warn(
            "window() without time_extras guesses time axes by length; pass ds.time_extras",
            DeprecationWarning,
            stacklevel=2,
        )
        t = batch.frames.shape[1]
        time_extras = {k for k, v in batch.extras.items() if v.dim() >= 2 and v.shape[1] == t}
    return _window(batch, starts, frames, time_extras)


def versions() -> dict[str, str]:
    """Deprecated form of :func:`ocf.run.checkpoints.versions` for the process-wide plugins."""
    from ocf import plugins

    return _versions(plugin_info=plugins.default().info.values())


def picture_source(spec, registry, n: int = 8):
    """Deprecated: :func:`ocf.run.data.first_batch` of the validation split."""
    from ocf.spec import resolve

    return first_batch(resolve(spec.model_dump(mode="json"), registry), spec.data.val_split, n)


def multirun(spec_path: str, overrides: list[str], out: str | None = None) -> int:
    """Deprecated: ``ocf train SPEC --multirun`` (:func:`ocf.run.train.multirun` in Python)."""
    from ocf import plugins
    from ocf.run.train import multirun as _multirun
    from ocf.spec import load

    loaded = plugins.default()
    for run_dir in _multirun(load(spec_path, loaded.registry), overrides, out, plugin_info=loaded.info.values()):
        print(run_dir)
    return 0
