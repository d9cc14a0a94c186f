"""What a dataset file holds (:class:`DatasetInfo`), the layout constants, and safe opening
and reading of HDF5 files.  :mod:`ocf.data.format` validates and writes the layouts and
re-exports everything here."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ocf.data.guards import declared_max_id
from ocf.errors import DataError

FORMAT_VERSION = 1
LAYOUT_OCF = "ocf"
LAYOUT_OCL = "ocl"
STANDARD_SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ExtraInfo:
    """One extra dataset: its stored shape ``[N ...]``, dtype and whether axis 1 is time."""

    shape: tuple[int, ...]
    dtype: str
    time_axis: bool
    axes: str | None = None


@dataclass
class DatasetInfo:
    """What a validated file holds; cheap to pickle (no open handles).

    ``n, t, h, w, c`` are the frame geometry (``t = 1`` for image files).
    ``mask_kind`` is ``"labels"`` (label map), ``"onehot"`` (OCL ``[N O H W 1]``) or
    ``None`` (no masks).
    """

    path: Path
    layout: str
    n: int
    t: int
    h: int
    w: int
    c: int
    frames_key: str
    masks_key: str | None
    mask_kind: str | None
    extras: dict[str, ExtraInfo] = field(default_factory=dict)
    splits: dict[str, np.ndarray] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        declared_max_id(self.path, self.metadata)  # a malformed declaration raises DataError

    @property
    def has_masks(self) -> bool:
        return self.masks_key is not None

    @property
    def video(self) -> bool:
        return self.t > 1

    @property
    def max_id(self) -> int:
        """The largest object id the masks may hold: the metadata's ``max_id`` when the file
        declares one, else int32 max (:data:`ocf.data.guards.MAX_ID`)."""
        return declared_max_id(self.path, self.metadata)

    def split_indices(self, split: str) -> np.ndarray:
        """Sample indices ``[M]`` of ``split``.

        ``split`` is a stored split name; ``"all"``; one of train/val/test for a file without
        splits (the whole file); or a range ``"a:b"`` of sample indices or percentages
        (``"0:800"``, ``"80%:90%"``, ``":10%"``)."""
        if split in self.splits:
            return self.splits[split]
        if split == "all":
            return np.arange(self.n, dtype=np.int64)
        if not self.splits and split in STANDARD_SPLITS:
            return np.arange(self.n, dtype=np.int64)
        m = re.fullmatch(r"\s*(\d*(?:\.\d+)?%?)\s*:\s*(\d*(?:\.\d+)?%?)\s*", split)
        if m:
            start = self._bound(m.group(1), 0, split)
            stop = self._bound(m.group(2), self.n, split)
            if not 0 <= start < stop <= self.n:
                raise DataError(f"{self.path}: split range {split!r} selects no samples of {self.n}")
            return np.arange(start, stop, dtype=np.int64)
        known = list(self.splits) or [f"{s} (whole file)" for s in STANDARD_SPLITS]
        raise DataError(
            f"{self.path}: unknown split {split!r}; the file has splits {', '.join(known)}; "
            f"'all' and ranges such as '0:100' or '80%:100%' work too"
        )

    def _bound(self, text: str, default: int, split: str) -> int:
        if text == "":
            return default
        if text.endswith("%"):
            return int(round(float(text[:-1]) / 100.0 * self.n))
        if "." in text:
            raise DataError(f"{self.path}: split range {split!r}: sample indices must be integers")
        return int(text)


# --------------------------------------------------------------------------- opening


@contextlib.contextmanager
def open_h5(path: str | os.PathLike) -> Iterator[h5py.File]:
    """Open ``path`` read-only; a missing, non-HDF5 or truncated file raises DataError."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not an HDF5 file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: cannot be opened as HDF5 (not an HDF5 file, truncated or corrupt): {exc}") from None
    try:
        yield f
    finally:
        f.close()


def read_array(path: Path, ds: h5py.Dataset, selection: Any = ()) -> np.ndarray:
    """``ds[selection]``; a read failure (truncated or corrupt data) raises DataError."""
    try:
        return ds[selection]
    except OSError as exc:
        raise DataError(f"{path}: cannot read dataset {ds.name!r} (truncated or corrupt file?): {exc}") from None


def split_ranges(n: int, fractions: dict[str, float]) -> dict[str, np.ndarray]:
    """Contiguous index ranges ``{name: [M]}`` in the given order, sizes by fraction.

    The fractions must be positive and sum to at most 1 (+1e-6); rounding leftovers go to the
    first split. Samples are i.i.d., so contiguous ranges lose nothing and read fastest."""
    if not fractions:
        return {}
    bad = [k for k, v in fractions.items() if not v > 0]
    if bad:
        raise DataError(f"split fractions must be positive: {', '.join(bad)}")
    total = sum(fractions.values())
    if total > 1 + 1e-6:
        raise DataError(f"split fractions sum to {total:g}, more than 1")
    sizes = {k: int(np.floor(v * n + 1e-9)) for k, v in fractions.items()}
    if abs(total - 1) < 1e-6:
        first = next(iter(sizes))
        sizes[first] += n - sum(sizes.values())
    out, start = {}, 0
    for name, size in sizes.items():
        out[name] = np.arange(start, start + size, dtype=np.int64)
        start += size
    return out
