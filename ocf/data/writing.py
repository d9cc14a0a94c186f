"""Writing ocf's HDF5 layout (see :mod:`ocf.data.format` for the layout and reading): a file is
built beside its target and renamed over it, so a failed write leaves no partial file."""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ocf.data.info import FORMAT_VERSION
from ocf.errors import DataError


def _shape_text(shape: tuple[int, ...]) -> str:
    return "[" + " ".join(str(s) for s in shape) + "]"


@contextlib.contextmanager
def atomic_h5(path: str | os.PathLike, in_memory: bool = False) -> Iterator[h5py.File]:
    """A new HDF5 file at a temporary name beside ``path``, moved over ``path`` with
    :func:`os.replace` only when the block finishes without an exception.  With
    ``in_memory`` the file is built in memory and written in one plain write, so a full disk
    raises a clean :class:`OSError` (HDF5 failing to write its own buffers can crash)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        if in_memory:
            buffer = io.BytesIO()
            with h5py.File(buffer, "w") as f:
                yield f
            with open(tmp, "wb") as out:
                out.write(buffer.getbuffer())
        else:
            with h5py.File(tmp, "w") as f:
                yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_metadata(f: h5py.File, metadata: dict[str, Any]) -> None:
    """Root attributes of the ocf layout (``ocf_format`` and the JSON ``metadata``)."""
    f.attrs["ocf_format"] = FORMAT_VERSION
    f.attrs["metadata"] = json.dumps(metadata, sort_keys=True)


def write_splits(f: h5py.File, splits: dict[str, np.ndarray]) -> None:
    group = f.create_group("splits")
    for name, idx in splits.items():
        group.create_dataset(name, data=np.asarray(idx, dtype=np.int64))


def write_dataset(
    path: str | os.PathLike,
    frames: np.ndarray,
    masks: np.ndarray | None = None,
    extras: dict[str, np.ndarray] | None = None,
    metadata: dict[str, Any] | None = None,
    splits: dict[str, np.ndarray] | None = None,
    axes: dict[str, str] | None = None,
    compression: str | None = "lzf",
) -> Path:
    """Write an ocf-layout file atomically.

    frames ``[N T H W C]`` uint8; masks ``[N T H W]`` integer or None; extras
    ``{name: [N ...]}``; splits ``{name: [M] indices}``; axes ``{extra: "n t o 4"}`` (an
    extra without an entry gets ``"n t ..."`` when its second axis has length ``T > 1``).
    Datasets are chunked per sample so lazy reads touch one sample at a time.
    """
    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 5 or frames.dtype != np.uint8 or 0 in frames.shape:
        raise DataError(
            f"{path}: frames must be uint8 [N T H W C] without an empty axis, got {frames.dtype} "
            f"{_shape_text(frames.shape)}"
        )
    n, t, h, w, c = frames.shape
    if masks is not None:
        masks = np.asarray(masks)
        if masks.shape != (n, t, h, w) or not np.issubdtype(masks.dtype, np.integer):
            raise DataError(
                f"{path}: masks must be integer [{n} {t} {h} {w}], got {masks.dtype} {_shape_text(masks.shape)}"
            )
    extras = dict(extras or {})
    axes = dict(axes or {})
    for key, value in extras.items():
        value = np.asarray(value)
        if key in ("frames", "masks", "splits") or value.ndim == 0 or value.shape[0] != n:
            raise DataError(
                f"{path}: extra {key!r} must have a leading axis of {n} samples, got {_shape_text(value.shape)}"
            )
    with atomic_h5(path, in_memory=True) as f:  # the arrays are in memory already
        write_metadata(f, metadata or {})
        f.create_dataset("frames", data=frames, chunks=(1, t, h, w, c), compression=compression)
        f["frames"].attrs["axes"] = "n t h w c"
        if masks is not None:
            f.create_dataset("masks", data=masks, chunks=(1, t, h, w), compression=compression)
            f["masks"].attrs["axes"] = "n t h w"
        for key, value in extras.items():
            value = np.asarray(value)
            ds = f.create_dataset(key, data=value)
            if key in axes:
                ds.attrs["axes"] = axes[key]
            elif t > 1 and value.ndim >= 2 and value.shape[1] == t:
                ds.attrs["axes"] = " ".join(["n", "t"] + ["_"] * (value.ndim - 2))
        if splits:
            write_splits(f, splits)
    return path
