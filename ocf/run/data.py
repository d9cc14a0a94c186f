"""A spec's data: its file (generated when missing), checked against the spec, and the
fixed batches evaluation and pictures read.  Batches per step and frame windows come from
:mod:`ocf.data.batches`."""

from __future__ import annotations

import sys
from pathlib import Path

from ocf import distributed as dist
from ocf.data import H5Dataset, make_dataset
from ocf.data.batches import ordered_batch
from ocf.errors import UserError
from ocf.records import Batch
from ocf.registry import Registry
from ocf.spec import ResolvedSpec, Spec

_SHOWN: set[Path] = set()  # data files whose absolute path was printed in this process


def ensure_dataset(spec: Spec, registry: Registry) -> Path:
    """The spec's data file, generated from its registered generator when missing."""
    d = spec.data
    path = Path(d.path)
    if path.exists():
        if dist.rank() == 0 and path.resolve() not in _SHOWN:
            _SHOWN.add(path.resolve())
            relative = "" if path.is_absolute() else f" (data.path {d.path}, relative to the working folder)"
            print(f"ocf: reading {path.resolve()}{relative}", file=sys.stderr)
        return path
    if d.generate is None or d.dataset == "hdf5":
        raise UserError(f"data.path: {path} ({path.resolve()}) does not exist (and data.generate is off)")
    if dist.rank() == 0:
        print(
            f"ocf: {path} ({path.resolve()}) is missing; generating {d.generate.n} samples of {d.dataset!r} "
            f"(seed {d.generate.seed})",
            file=sys.stderr,
        )
        make_dataset(registry, d.dataset, path, n=d.generate.n, seed=d.generate.seed, options=d.generate.options)
    dist.barrier()
    return path


def open_split(spec: Spec, split: str, registry: Registry) -> H5Dataset:
    """One split of the spec's file, whole clips (windows are cut per batch), checked
    against ``data`` (:func:`check_shape`)."""
    path = ensure_dataset(spec, registry)
    ds = H5Dataset(path, split=split, frames=None, in_memory=spec.data.in_memory)
    check_shape(spec, ds, path)
    return ds


def check_shape(spec: Spec, ds: H5Dataset, path: Path) -> None:
    """The file must hold what the spec says: resolution, channels, enough frames."""
    t, h, w, c = ds.sample_shape  # per sample [T H W C]
    d = spec.data
    problems = []
    if (h, w) != tuple(d.resolution):
        problems.append(f"data.resolution is {list(d.resolution)} but {path} holds {h}x{w} frames")
    if c != d.channels:
        problems.append(f"data.channels is {d.channels} but {path} holds {c}-channel frames")
    if t < d.frames:
        problems.append(f"data.frames is {d.frames} but {path} holds clips of {t} frames")
    for name, shape in d.extras.items():
        extra = ds.info.extras.get(name)
        if extra is None:
            have = ", ".join(sorted(ds.info.extras)) or "none"
            problems.append(f"data.extras names {name!r}, but {path} has no such extra (it has {have})")
        elif tuple(extra.shape[1:]) != tuple(shape):
            problems.append(f"data.extras.{name} is {list(shape)} per sample but {path} holds {list(extra.shape[1:])}")
    if problems:
        raise UserError("; ".join(problems))


def curriculum_frames(spec: Spec, step: int) -> int:
    c = spec.train.curriculum
    if c is None:
        return spec.data.frames
    return min(c.max, c.start + (step // c.every) * c.increment, spec.data.frames)


def first_batch(resolved: ResolvedSpec, split: str, n: int) -> Batch:
    """The first ``n`` samples of ``split`` (fewer if the split is smaller), their first
    ``data.frames`` frames: the fixed batch of pictures and benchmarks."""
    ds = open_split(resolved.spec, split, registry_of(resolved))
    return ordered_batch(ds, 0, n, resolved.spec.data.frames)


def registry_of(resolved: ResolvedSpec) -> Registry:
    """The registry ``resolved`` was resolved against."""
    if resolved.registry is None:
        raise ValueError("this ResolvedSpec has no registry; make it with ocf.spec.resolve or ocf.spec.load")
    return resolved.registry
