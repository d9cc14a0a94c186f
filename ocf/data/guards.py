"""Cheap guards against dataset files that would crash a reader or fool a metric.

- :func:`check_stored`: a dataset that declares more items than the file stores (chunks or
  storage never written, e.g. a few-KB file declaring 10^9 items) is refused before anything
  is allocated for it.
- :func:`declared_max_id`, :func:`check_ids`: mask ids must lie in ``[-1, max_id]`` — -1
  ignore, 0 background, objects ``1..max_id`` — where ``max_id`` is the file's metadata
  ``max_id`` when it declares one, else :data:`MAX_ID`.  Anything else (ids below -1,
  huge unsigned ids) would be read as "ignore" or wrap around, and change the scores.
- :func:`ids_per_item`: distinct object ids per item computed on relabelled ids, so the
  memory used does not grow with the ids' values.
- :func:`check_memory`: a split that does not fit in the available memory is refused,
  with the estimate, before it is read.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ocf.errors import DataError

#: the largest object id any file may hold (int32 max); a file can declare a smaller one
MAX_ID = 2**31 - 1


def declared_max_id(path: Path, metadata: dict[str, Any]) -> int:
    """The metadata's ``max_id`` (an int in ``[0, MAX_ID]``), else :data:`MAX_ID`."""
    value = metadata.get("max_id")
    if value is None:
        return MAX_ID
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise DataError(f"{path}: metadata 'max_id' must be an integer in [0, {MAX_ID}], got {value!r}")
    return value


def check_stored(path: Path, ds: h5py.Dataset) -> None:
    """Refuse ``ds`` when parts of it were never written: a chunked dataset with fewer
    chunks stored than its shape needs, or a contiguous one without storage."""
    if ds.size == 0:
        return
    name = ds.name.lstrip("/")
    if ds.chunks is None:
        if ds.id.get_storage_size() == 0:
            raise DataError(
                f"{path}: {name!r} declares shape {list(ds.shape)} but stores no data (a sparse or unfinished file)"
            )
        return
    needed = math.prod(-(-s // c) for s, c in zip(ds.shape, ds.chunks))
    stored = ds.id.get_num_chunks()
    if stored < needed:
        items = ds.shape[0] if ds.ndim else 1
        raise DataError(
            f"{path}: {name!r} declares {items:,} items (shape {list(ds.shape)}) but stores {stored:,} of its "
            f"{needed:,} chunks: a sparse or unfinished file; the missing items were never written"
        )


def first_bad_id(masks: np.ndarray, max_id: int) -> tuple[int, int] | None:
    """``(item, value)`` of the first item of ``masks [M ...]`` holding an id outside
    ``[-1, max_id]``, or None.  Costs one min and one max unless an id is out of range."""
    if masks.size == 0 or (masks.min() >= -1 and masks.max() <= max_id):
        return None
    flat = masks.reshape(masks.shape[0], -1)
    lo, hi = flat.min(axis=1), flat.max(axis=1)
    i = int(np.argmax((lo < -1) | (hi > max_id)))
    return i, int(lo[i] if lo[i] < -1 else hi[i])


def check_ids(path: Path, masks: np.ndarray, max_id: int, split: str, items: Any) -> None:
    """Refuse ``masks [M ...]`` holding an id outside ``[-1, max_id]``, naming the file, the
    split, the first offending item (``items[i]`` is item ``i``'s index in the file) and the
    value."""
    bad = first_bad_id(masks, max_id)
    if bad is not None:
        raise DataError(f"{path}: split {split!r}, item {int(items[bad[0]])}: {id_problem(bad[1], max_id)}")


def id_problem(value: int, max_id: int) -> str:
    """Why mask id ``value`` is refused, in words."""
    if value < -1:
        return f"mask id {value} is below -1 (-1 is the only ignore label; 0 is background, objects are 1..{max_id})"
    bound = "the file's metadata max_id" if max_id < MAX_ID else "int32 max; a file may declare less as metadata max_id"
    return f"mask id {value} is above {max_id}, the largest object id allowed ({bound})"


def ids_per_item(masks: np.ndarray) -> np.ndarray:
    """Distinct object ids (> 0) per item of ``masks [M ...]`` → ``[M]`` int64.  Ids are
    relabelled (``np.unique``) first, so an id of 2**31 costs no more than an id of 3."""
    m = masks.shape[0]
    if masks.size == 0:
        return np.zeros(m, dtype=np.int64)
    values, inverse = np.unique(masks.reshape(m, -1), return_inverse=True)
    inverse = inverse.reshape(m, -1)
    keys = np.unique(np.arange(m)[:, None] * len(values) + inverse)  # distinct (item, id) pairs
    keys = keys[values[keys % len(values)] > 0]
    return np.bincount(keys // len(values), minlength=m).astype(np.int64)


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(path: Path, split: str, count: int, item_bytes: int) -> None:
    """Refuse to hold ``count`` items of ``item_bytes`` each in memory when they exceed the
    available memory, with the estimate."""
    need = count * item_bytes
    free = available_memory()
    if free is not None and need > free:
        raise DataError(
            f"{path}: split {split!r} holds {count:,} items, {need / 2**30:,.1f} GiB in memory, more than the "
            f"{free / 2**30:,.1f} GiB available; set data.in_memory: false to read items from the file as needed"
        )
