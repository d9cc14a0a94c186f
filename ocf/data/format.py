"""HDF5 dataset files: ocf's own layout, and the object-centric-library (OCL) layout read
unchanged.

**ocf layout** (root attribute ``ocf_format`` = :data:`FORMAT_VERSION`):

=====================  =====================================================================
``frames``             ``[N T H W C]`` uint8 (images are videos with ``T = 1``)
``masks`` (optional)   ``[N T H W]`` integer: 0 background, 1.. object ids (stable over
                       time), -1 ignore (e.g. overlapping shapes)
any other dataset      an *extra* with a leading ``N`` axis (``counts [N T]``,
                       ``boxes [N T O 4]``, ``visibility [N O]``, attributes ...). Its
                       ``axes`` attribute (e.g. ``"n t o 4"``) says whether it has a time
                       axis, so that frame windows slice it too.
``splits/<name>``      1-D int64 sample indices of a named split (``splits/train`` ...)
root attributes        ``ocf_format`` (int) and ``metadata``: a JSON string (generator,
                       options, seed, description, ...). Never pickle.
=====================  =====================================================================

**OCL layout** (detected by an ``image`` dataset): ``image [N H W C]`` uint8,
``mask [N H W 1]`` (or ``[N H W]``) integer label map with background 0, or
``mask [N O H W 1]`` one-hot per object with background first (converted to a label map;
pixels claimed by several objects become -1); every other root dataset with a leading ``N``
is an extra (``visibility [N O]``, ``num_actual_objects [N 1]``, which is also exposed as
``counts [N 1]``). Such files carry no splits: ``train``/``val``/``test`` each mean the whole
file unless a range such as ``"0:8000"`` or ``"80%:90%"`` is asked for.

Every problem with a file raises :class:`~ocf.errors.DataError` naming the path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ocf.data.guards import check_stored
from ocf.data.info import (  # noqa: F401 - re-exported: the layout's public names
    FORMAT_VERSION,
    LAYOUT_OCF,
    LAYOUT_OCL,
    STANDARD_SPLITS,
    DatasetInfo,
    ExtraInfo,
    open_h5,
    read_array,
    split_ranges,
)
from ocf.errors import DataError

# --------------------------------------------------------------------------- validation


def read_info(path: str | os.PathLike) -> DatasetInfo:
    """Open and validate a dataset file of either layout; the handle is closed again."""
    path = Path(path)
    with open_h5(path) as f:
        try:
            keys = list(f.keys())
            if "frames" in keys or "ocf_format" in f.attrs:
                return _info_ocf(path, f, keys)
            if "image" in keys:
                return _info_ocl(path, f, keys)
        except (OSError, KeyError, RuntimeError) as exc:  # corrupt object headers and the like
            raise DataError(f"{path}: cannot read the file's structure (truncated or corrupt?): {exc}") from None
        raise DataError(
            f"{path}: not a dataset file: expected a 'frames' dataset (ocf layout) or an 'image' "
            f"dataset (object-centric-library layout); found {', '.join(keys) or 'nothing'}"
        )


def _dataset(path: Path, f: h5py.File, key: str, what: str) -> h5py.Dataset:
    if key not in f:
        raise DataError(f"{path}: missing dataset {key!r} ({what})")
    obj = f[key]
    if not isinstance(obj, h5py.Dataset):
        raise DataError(f"{path}: {key!r} is a group, expected a dataset ({what})")
    return obj


def _check_integer(path: Path, ds: h5py.Dataset, what: str) -> None:
    if not (np.issubdtype(ds.dtype, np.integer) or np.issubdtype(ds.dtype, np.bool_)):
        raise DataError(f"{path}: {ds.name.lstrip('/')!r} has dtype {ds.dtype}, expected integers ({what})")


def _shape_text(shape: tuple[int, ...]) -> str:
    return "[" + " ".join(str(s) for s in shape) + "]"


def _check_geometry(path: Path, ds: h5py.Dataset, axes: str) -> None:
    """No empty axis (no samples, clips of T = 0, zero-sized frames) and every item stored."""
    name = ds.name.lstrip("/")
    if ds.shape[0] == 0:
        raise DataError(f"{path}: {name!r} holds no samples")
    if 0 in ds.shape:
        raise DataError(f"{path}: {name!r} has shape {_shape_text(ds.shape)} {axes}: an axis of length 0")
    check_stored(path, ds)


def _info_ocf(path: Path, f: h5py.File, keys: list[str]) -> DatasetInfo:
    frames = _dataset(path, f, "frames", "[N T H W C] uint8 frames")
    if frames.ndim != 5:
        raise DataError(f"{path}: 'frames' has shape {_shape_text(frames.shape)}, expected rank 5 [N T H W C]")
    if frames.dtype != np.uint8:
        raise DataError(f"{path}: 'frames' has dtype {frames.dtype}, expected uint8 (0-255)")
    n, t, h, w, c = (int(s) for s in frames.shape)
    _check_geometry(path, frames, "[N T H W C]")

    masks_key = None
    if "masks" in keys:
        masks = _dataset(path, f, "masks", "[N T H W] integer object ids")
        _check_integer(path, masks, "object ids")
        if masks.ndim != 4:
            raise DataError(f"{path}: 'masks' has shape {_shape_text(masks.shape)}, expected rank 4 [N T H W]")
        if tuple(masks.shape) != (n, t, h, w):
            raise DataError(
                f"{path}: 'masks' has shape {_shape_text(masks.shape)} but 'frames' {_shape_text(frames.shape)}: "
                f"expected masks [{n} {t} {h} {w}] (mismatched N, T, H or W)"
            )
        check_stored(path, masks)
        masks_key = "masks"

    try:
        metadata = json.loads(f.attrs["metadata"]) if "metadata" in f.attrs else {}
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: the 'metadata' attribute is not valid JSON: {exc}") from None
    if not isinstance(metadata, dict):
        raise DataError(f"{path}: the 'metadata' attribute must be a JSON object")

    extras, skipped = _extras(path, f, keys, n, t, exclude={"frames", "masks"})
    splits = _splits(path, f, n)
    return DatasetInfo(
        path,
        LAYOUT_OCF,
        n,
        t,
        h,
        w,
        c,
        "frames",
        masks_key,
        "labels" if masks_key else None,
        extras,
        splits,
        metadata,
        skipped,
    )


def _info_ocl(path: Path, f: h5py.File, keys: list[str]) -> DatasetInfo:
    image = _dataset(path, f, "image", "[N H W C] uint8 images")
    if image.ndim != 4:
        raise DataError(f"{path}: 'image' has shape {_shape_text(image.shape)}, expected rank 4 [N H W C]")
    if image.dtype != np.uint8:
        raise DataError(f"{path}: 'image' has dtype {image.dtype}, expected uint8 (0-255)")
    n, h, w, c = (int(s) for s in image.shape)
    _check_geometry(path, image, "[N H W C]")

    masks_key, kind = None, None
    if "mask" in keys:
        mask = _dataset(path, f, "mask", "label map [N H W 1] or one-hot [N O H W 1]")
        shape = tuple(mask.shape)
        if mask.ndim == 4 and shape[3] == 1 or mask.ndim == 3:
            kind, expected = "labels", (n, h, w)
            _check_integer(path, mask, "label map")
        elif mask.ndim == 5 and shape[4] == 1:
            kind, expected = "onehot", (n, shape[1], h, w)
        else:
            raise DataError(
                f"{path}: 'mask' has shape {_shape_text(shape)}, expected a label map [N H W 1] or "
                f"one-hot masks [N O H W 1]"
            )
        if shape[: len(expected)] != expected:
            raise DataError(
                f"{path}: 'mask' has shape {_shape_text(shape)} but 'image' {_shape_text(image.shape)} "
                f"(mismatched N, H or W)"
            )
        check_stored(path, mask)
        masks_key = "mask"

    extras, skipped = _extras(path, f, keys, n, 1, exclude={"image", "mask"})
    attrs = {}
    for k, v in f.attrs.items():
        if isinstance(v, (bytes, str, int, float, np.integer, np.floating)):
            attrs[k] = v.decode() if isinstance(v, bytes) else v.item() if isinstance(v, np.generic) else v
    info = DatasetInfo(path, LAYOUT_OCL, n, 1, h, w, c, "image", masks_key, kind, extras, {}, attrs, skipped)
    add_ocl_counts(info)
    return info


def _extras(path: Path, f: h5py.File, keys: list[str], n: int, t: int, exclude: set[str]):
    extras: dict[str, ExtraInfo] = {}
    skipped: list[str] = []
    for key in keys:
        if key in exclude or key == "splits":
            continue
        obj = f[key]
        if not isinstance(obj, h5py.Dataset):
            skipped.append(f"{key} (group)")
            continue
        if obj.dtype.kind not in "biuf":
            skipped.append(f"{key} (dtype {obj.dtype})")
            continue
        if obj.ndim == 0:
            skipped.append(f"{key} (scalar)")
            continue
        if obj.shape[0] != n:
            raise DataError(
                f"{path}: dataset {key!r} has {obj.shape[0]} samples but the frames have {n} (mismatched N)"
            )
        check_stored(path, obj)
        axes = obj.attrs.get("axes")
        if isinstance(axes, bytes):
            axes = axes.decode()
        if axes is not None:
            time_axis = str(axes).split()[:2] == ["n", "t"]
        else:  # no declaration: a second axis of length T (T > 1) is taken as time
            time_axis = t > 1 and obj.ndim >= 2 and obj.shape[1] == t
        extras[key] = ExtraInfo(
            tuple(int(s) for s in obj.shape), str(obj.dtype), time_axis, None if axes is None else str(axes)
        )
    return extras, skipped


def _splits(path: Path, f: h5py.File, n: int) -> dict[str, np.ndarray]:
    if "splits" not in f:
        return {}
    group = f["splits"]
    if not isinstance(group, h5py.Group):
        raise DataError(f"{path}: 'splits' must be a group of index arrays")
    splits = {}
    for name, ds in group.items():
        if not isinstance(ds, h5py.Dataset) or ds.ndim != 1 or not np.issubdtype(ds.dtype, np.integer):
            raise DataError(f"{path}: split 'splits/{name}' must be a 1-D integer index array")
        check_stored(path, ds)
        idx = read_array(path, ds).astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise DataError(f"{path}: split 'splits/{name}' has indices outside [0, {n})")
        splits[name] = idx
    order = [s for s in STANDARD_SPLITS if s in splits] + sorted(s for s in splits if s not in STANDARD_SPLITS)
    return {s: splits[s] for s in order}


# --------------------------------------------------------------------------- reading samples


def masks_to_labels(raw: np.ndarray, kind: str) -> np.ndarray:
    """Stored masks of one layout → label maps ``[... H W]`` int16/int32.

    ``kind="labels"``: ``[... H W 1]`` or ``[... H W]`` (OCL, trailing 1 dropped) or our
    ``[... T H W]`` pass through. ``kind="onehot"``: ``[... O H W 1]`` with background at
    ``O = 0`` → id of the object whose mask is on; several on → -1; none → 0.
    """
    if kind == "onehot":
        on = raw[..., 0] > (0.5 if np.issubdtype(raw.dtype, np.floating) else 0)  # [... O H W]
        labels = on.argmax(axis=-3).astype(np.int32)
        labels[on.sum(axis=-3) > 1] = -1
        return labels
    return raw


def read_frames(
    path: Path, f: h5py.File, info: DatasetInfo, index: Any, t0: int = 0, t1: int | None = None
) -> np.ndarray:
    """Frames of ``index`` (an int, slice or increasing index list) → ``[... T H W C]`` uint8.

    ``f`` is the open file or a mapping of dataset names to h5py datasets (a cache)."""
    ds = f[info.frames_key]
    if info.layout == LAYOUT_OCL:
        return read_array(path, ds, index)[..., None, :, :, :]
    return read_array(path, ds, (index, slice(t0, t1)))


def read_masks(
    path: Path, f: h5py.File, info: DatasetInfo, index: Any, t0: int = 0, t1: int | None = None
) -> np.ndarray | None:
    """Masks of ``index`` → label maps ``[... T H W]`` (None when the file has none)."""
    if info.masks_key is None:
        return None
    ds = f[info.masks_key]
    if info.layout == LAYOUT_OCL:
        labels = masks_to_labels(read_array(path, ds, index), info.mask_kind)
        if ds.ndim == 4 and info.mask_kind == "labels":  # drop the trailing channel of [N H W 1]
            labels = labels[..., 0]
        return labels[..., None, :, :]
    return read_array(path, ds, (index, slice(t0, t1)))


def read_extra(
    path: Path, f: h5py.File, info: DatasetInfo, key: str, index: Any, t0: int = 0, t1: int | None = None
) -> np.ndarray:
    """Extra ``key`` of ``index``; a time axis is cut to ``t0:t1``. OCL ``counts`` is read
    from ``num_actual_objects``."""
    ds = f["num_actual_objects" if key == "counts" and key not in f else key]
    extra = info.extras[key]
    if extra.time_axis:
        return read_array(path, ds, (index, slice(t0, t1)))
    return read_array(path, ds, index)


def add_ocl_counts(info: DatasetInfo) -> None:
    """Expose OCL's ``num_actual_objects`` as ``counts [N 1]`` (as read by :func:`read_extra`)."""
    if info.layout == LAYOUT_OCL and "num_actual_objects" in info.extras and "counts" not in info.extras:
        src = info.extras["num_actual_objects"]
        info.extras["counts"] = ExtraInfo(src.shape, src.dtype, False, "n 1")


# --------------------------------------------------------------------------- writing


# writing moved to ocf.data.writing; these names stay importable from here
from ocf.data.writing import atomic_h5, write_dataset, write_metadata, write_splits  # noqa: E402, F401
