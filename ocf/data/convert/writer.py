"""Streaming, atomic writing of converted records into ocf's HDF5 layout.

Records are buffered in chunks of ``chunk`` samples and appended to resizable datasets of
a file opened with :func:`ocf.data.format.atomic_h5` (a temporary file beside the target,
moved over it only when everything succeeded), so memory is bounded by one chunk and an
error or interruption never leaves a half file. Frames and masks use the layout's
conventions (one sample per chunk, LZF); per-entity extras may grow along their entity axis
as records with more entities arrive (padding is 0). Re-running a conversion starts again
from the beginning; temporary files left by a killed run are removed first.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ocf.data import format as fmt
from ocf.data.convert.base import Converter, Record
from ocf.errors import UserError

MASK_DTYPE = np.int16
CHUNK_BYTES = 256 << 20  # flush earlier when a chunk of large records (videos with depth, flow) exceeds this


class StreamWriter:
    """Append :class:`Record` s to an open HDF5 file in chunks."""

    def __init__(self, f: h5py.File, axes: dict[str, str], chunk: int = 64) -> None:
        self.f, self.axes, self.chunk = f, axes, max(1, chunk)
        self.n = 0
        self.buffer: list[Record] = []
        self.buffered = 0
        self.shape: tuple[int, ...] | None = None
        self.has_masks = False
        self.extra_dtypes: dict[str, np.dtype] = {}

    def append(self, record: Record, where: str) -> None:
        frames = np.asarray(record.frames)
        if frames.ndim != 4 or frames.dtype != np.uint8:
            raise UserError(f"{where}: frames must be uint8 [T H W C], got {frames.dtype} {list(frames.shape)}")
        if self.shape is None:
            self._create(record)
        if frames.shape != self.shape:
            raise UserError(
                f"{where}: frames of shape {list(frames.shape)} differ from the first record's "
                f"{list(self.shape)}; give --resolution H W to resize every record alike"
            )
        if (record.masks is not None) != self.has_masks:
            raise UserError(
                f"{where}: a record {'with' if record.masks is not None else 'without'} masks among "
                f"records {'without' if record.masks is not None else 'with'} (missing mask?)"
            )
        if record.masks is not None and record.masks.shape != frames.shape[:3]:
            raise UserError(f"{where}: masks {list(record.masks.shape)} do not match frames {list(frames.shape)}")
        missing = set(self.extra_dtypes) ^ set(record.extras)
        if missing:
            raise UserError(f"{where}: record has a different set of fields ({', '.join(sorted(missing))})")
        self.buffer.append(record)
        self.buffered += frames.nbytes + sum(np.asarray(v).nbytes for v in record.extras.values())
        if len(self.buffer) >= self.chunk or self.buffered >= CHUNK_BYTES:
            self.flush()

    def _create(self, record: Record) -> None:
        self.shape = tuple(record.frames.shape)
        t, h, w, c = self.shape
        ds = self.f.create_dataset(
            "frames",
            shape=(0, t, h, w, c),
            maxshape=(None, t, h, w, c),
            dtype=np.uint8,
            chunks=(1, t, h, w, c),
            compression="lzf",
        )
        ds.attrs["axes"] = "n t h w c"
        self.has_masks = record.masks is not None
        if self.has_masks:
            ds = self.f.create_dataset(
                "masks",
                shape=(0, t, h, w),
                maxshape=(None, t, h, w),
                dtype=MASK_DTYPE,
                chunks=(1, t, h, w),
                compression="lzf",
            )
            ds.attrs["axes"] = "n t h w"
        for key, value in record.extras.items():
            value = np.asarray(value)
            dtype = np.float32 if value.dtype.kind == "f" else value.dtype
            self.extra_dtypes[key] = np.dtype(dtype)
            ds = self.f.create_dataset(
                key, shape=(0,) + value.shape, maxshape=(None,) * (value.ndim + 1), dtype=dtype, chunks=True
            )
            if key in self.axes:
                ds.attrs["axes"] = self.axes[key]

    def flush(self) -> None:
        if not self.buffer:
            return
        k, start = len(self.buffer), self.n
        frames = self.f["frames"]
        frames.resize(start + k, axis=0)
        frames[start : start + k] = np.stack([r.frames for r in self.buffer])
        if self.has_masks:
            masks = self.f["masks"]
            masks.resize(start + k, axis=0)
            masks[start : start + k] = np.stack([r.masks for r in self.buffer]).astype(MASK_DTYPE)
        for key, dtype in self.extra_dtypes.items():
            self._append_extra(key, dtype, [np.asarray(r.extras[key]) for r in self.buffer])
        self.n += k
        self.buffer, self.buffered = [], 0

    def _append_extra(self, key: str, dtype: np.dtype, values: list[np.ndarray]) -> None:
        ds = self.f[key]
        if any(v.ndim != ds.ndim - 1 for v in values):
            raise UserError(f"extra {key!r}: records disagree on its number of axes")
        shape = [max([ds.shape[i + 1]] + [v.shape[i] for v in values]) for i in range(ds.ndim - 1)]
        for axis, size in enumerate(shape, start=1):
            if size > ds.shape[axis]:
                ds.resize(size, axis=axis)
        block = np.zeros((len(values), *shape), dtype=dtype)
        for i, v in enumerate(values):
            block[(i,) + tuple(slice(0, s) for s in v.shape)] = v
        start = ds.shape[0]
        ds.resize(start + len(values), axis=0)
        ds[start:] = block


def parse_range(text: str, n: int, name: str) -> np.ndarray:
    """``"0:800"``, ``"80%:90%"``, ``":320"`` → sample indices of ``n``."""
    m = re.fullmatch(r"\s*(\d*(?:\.\d+)?%?)\s*:\s*(\d*(?:\.\d+)?%?)\s*", text)
    if not m:
        raise UserError(f"--split {name}={text}: expected a range START:STOP of indices or percentages")

    def bound(part: str, default: int) -> int:
        if part == "":
            return default
        if part.endswith("%"):
            return int(round(float(part[:-1]) / 100.0 * n))
        if "." in part:
            raise UserError(f"--split {name}={text}: sample indices must be integers")
        return int(part)

    start, stop = bound(m.group(1), 0), min(bound(m.group(2), n), n)
    if not 0 <= start < stop:
        raise UserError(f"--split {name}={text} selects no samples of the {n} converted")
    return np.arange(start, stop, dtype=np.int64)


def _remove_stale_temps(out: Path) -> None:
    """Temporary files a killed conversion left beside ``out`` (their process is gone)."""
    for tmp in out.parent.glob(f".{out.name}.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                with contextlib.suppress(OSError):
                    tmp.unlink()
            except PermissionError:
                pass


def write_records(
    converter: Converter,
    out: str | Path,
    *,
    limit: int | None = None,
    splits: dict[str, str] | None = None,
    progress: bool = False,
    chunk: int = 64,
    on_record: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Stream ``converter``'s records into ``out`` (atomic). Returns a summary dict."""
    out = Path(out)
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be >= 1, got {limit}")
    _remove_stale_temps(out)
    total = converter.total()
    if limit is not None:
        total = limit if total is None else min(total, limit)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc=f"convert {converter.name}", unit="item", leave=False)
    info: list[dict[str, Any]] = []
    try:
        with fmt.atomic_h5(out) as f:
            writer = StreamWriter(f, converter.extra_axes(), chunk=chunk)
            for record in _limited(converter.records(), limit):
                writer.append(record, f"{converter.name} record {len(info)}")
                info.append(record.info)
                if bar is not None:
                    bar.update(1)
                if on_record is not None:
                    on_record(len(info))
            writer.flush()
            if writer.n == 0:
                raise UserError(
                    f"{converter.name}: the inputs hold no records ({', '.join(str(p) for p in converter.inputs)})"
                )
            named = _splits(converter, writer.n, info, splits)
            fmt.write_splits(f, named)
            fmt.write_metadata(f, _metadata(converter, writer, named))
    finally:
        if bar is not None:
            bar.close()
    return {"path": out, "n": writer.n, "shape": writer.shape, "splits": {k: len(v) for k, v in named.items()}}


def _limited(records: Iterator[Record], limit: int | None) -> Iterator[Record]:
    for i, record in enumerate(records):
        if limit is not None and i >= limit:
            return
        yield record


def _splits(
    converter: Converter, n: int, info: list[dict[str, Any]], user: dict[str, str] | None
) -> dict[str, np.ndarray]:
    named = converter.standard_splits(n, info)
    for name, text in (user or {}).items():
        named[name] = parse_range(text, n, name)
    return named


def _metadata(converter: Converter, writer: StreamWriter, splits: dict[str, np.ndarray]) -> dict[str, Any]:
    import ocf

    t, h, w, c = writer.shape or (0, 0, 0, 0)
    geometry = converter.geometry
    meta = {
        "generator": f"convert:{converter.name}",
        "description": converter.description,
        "options": {
            "variant": converter.variant,
            "crop": geometry.crop,
            "resolution": list(geometry.resolution) if geometry.resolution else None,
        },
        "sources": [str(p) for p in converter.inputs],
        "n": writer.n,
        "video": t > 1,
        "channels": ["r", "g", "b"][:c] if c == 3 else (["grey"] if c == 1 else [f"c{i}" for i in range(c)]),
        "resize_rule": "crop, centre-crop to the target aspect, resize: frames bilinear, masks nearest",
        "ocf_version": getattr(ocf, "__version__", ""),
    }
    meta.update(converter.metadata())
    return meta
