"""A dataset card for any ocf HDF5 file, and the inconsistencies that make it unfit to train
or score on (``ocf data check FILE``).

The card: sizes, splits, the objects-per-item histogram, the background convention and the
value ranges of frames, masks and extras. The inconsistencies:

- frames and masks (or an extra with a time axis) of different lengths ``N`` or ``T``;
- a mask id without pixels: an object the file's own ``visibility`` extra marks visible
  (axes ``n o`` or ``n t o``, nonzero) whose id (``o + entity_label_offset``, by default
  ``o + 1``) has no pixel in that item (skipped when the metadata says ``visibility_means``
  something other than pixels, e.g. ``"exists"`` for DeepMind's "not null" vector);
- overlapping splits: two splits of one partition (``train``/``val``/``test``, or
  ``<prefix>train``/``<prefix>val``/``<prefix>test``) sharing an item, or an item listed
  twice in one split;
- mask ids below -1, and anything :func:`ocf.data.format.read_info` refuses.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ocf.data import format as fmt
from ocf.data.guards import first_bad_id, id_problem, ids_per_item
from ocf.errors import DataError

PARTITION = re.compile(r"^(?P<prefix>.*?)(?P<part>train|val|test)$")
CHUNK = 256


def check(path: str | Path, max_samples: int | None = None) -> dict[str, Any]:
    """The card of ``path`` as a dict, with ``problems``: a list of inconsistencies."""
    path = Path(path)
    problems = _lengths(path)
    if problems:
        return {"path": str(path), "problems": problems}
    try:
        info = fmt.read_info(path)
    except DataError as exc:
        return {"path": str(path), "problems": [str(exc)]}
    n = info.n if max_samples is None else min(info.n, max_samples)
    card: dict[str, Any] = {
        "path": str(path),
        "layout": info.layout,
        "n": info.n,
        "shape": [info.n, info.t, info.h, info.w, info.c],
        "video": info.video,
        "splits": {k: int(len(v)) for k, v in info.splits.items()},
        "background": _background(info),
        "scanned": n,
    }
    problems += _split_problems(info.splits)
    with fmt.open_h5(path) as f:
        card["ranges"] = _ranges(path, f, info, n)
        if info.has_masks:
            hist, mask_problems = _masks(path, f, info, n)
            card["objects_histogram"] = hist
            problems += mask_problems
    card["problems"] = problems
    return card


def _lengths(path: Path) -> list[str]:
    """Frames against masks and time-axis extras, read straight from HDF5 (before validation)."""
    try:
        with h5py.File(path, "r") as f:
            if "frames" not in f or not isinstance(f["frames"], h5py.Dataset) or f["frames"].ndim != 5:
                return []
            n, t = f["frames"].shape[:2]
            out = []
            if "masks" in f and isinstance(f["masks"], h5py.Dataset) and f["masks"].ndim >= 2:
                mn, mt = f["masks"].shape[:2]
                if (mn, mt) != (n, t):
                    out.append(f"{path}: frames and masks differ in length: frames N={n} T={t}, masks N={mn} T={mt}")
            for key, ds in f.items():
                axes = ds.attrs.get("axes") if isinstance(ds, h5py.Dataset) else None
                axes = axes.decode() if isinstance(axes, bytes) else axes
                if key in ("frames", "masks") or not axes or str(axes).split()[:2] != ["n", "t"]:
                    continue
                if ds.ndim < 2 or ds.shape[:2] != (n, t):
                    out.append(
                        f"{path}: extra {key!r} (axes {axes}) has shape {list(ds.shape)}, but the frames "
                        f"have N={n} T={t}"
                    )
            return out
    except OSError:
        return []  # read_info explains unreadable files


def _background(info: fmt.DatasetInfo) -> dict[str, Any]:
    meta = info.metadata
    return {
        "label": 0,
        "entities": meta.get("background_entities", ["background"]),
        "labels": meta.get("labels", "0 = background, 1.. objects, -1 = ignore"),
    }


def _split_problems(splits: dict[str, np.ndarray]) -> list[str]:
    out = []
    for name, idx in splits.items():
        if len(np.unique(idx)) != len(idx):
            out.append(f"split {name!r} lists {len(idx) - len(np.unique(idx))} item(s) more than once")
    families: dict[str, list[str]] = {}
    for name in splits:
        m = PARTITION.match(name)
        if m:
            families.setdefault(m.group("prefix"), []).append(name)
    for names in families.values():
        for a, b in itertools.combinations(names, 2):
            shared = np.intersect1d(splits[a], splits[b])
            if len(shared):
                out.append(f"splits {a!r} and {b!r} overlap in {len(shared)} item(s) (e.g. {shared[:5].tolist()})")
    return out


def _range_of(arr: np.ndarray) -> dict[str, float]:
    if arr.size == 0:
        return {}
    return {"min": float(np.nanmin(arr)), "max": float(np.nanmax(arr))}


def _ranges(path: Path, f: h5py.File, info: fmt.DatasetInfo, n: int) -> dict[str, Any]:
    lo, hi, total, count = 255.0, 0.0, 0.0, 0
    for start in range(0, n, CHUNK):
        frames = fmt.read_frames(path, f, info, slice(start, min(n, start + CHUNK)))
        lo, hi = min(lo, float(frames.min())), max(hi, float(frames.max()))
        total, count = total + float(frames.sum(dtype=np.float64)), count + frames.size
    out: dict[str, Any] = {"frames": {"min": lo, "max": hi, "mean": round(total / max(count, 1), 3)}}
    for key in info.extras:
        spans = [_range_of(fmt.read_extra(path, f, info, key, slice(s, min(n, s + CHUNK)))) for s in range(0, n, CHUNK)]
        spans = [r for r in spans if r]
        span = {"min": min(r["min"] for r in spans), "max": max(r["max"] for r in spans)} if spans else {}
        out[key] = {"shape": list(info.extras[key].shape), "dtype": info.extras[key].dtype, **span}
    return out


def _visible(info: fmt.DatasetInfo, f: h5py.File, start: int, stop: int) -> tuple[np.ndarray, int] | None:
    """``visibility`` as ``[b T O]`` bool and the id offset, when the file's visibility means pixels."""
    meta = info.metadata
    if "visibility" not in info.extras or meta.get("visibility_means", "pixels") != "pixels":
        return None
    extra = info.extras["visibility"]
    if info.layout != fmt.LAYOUT_OCF or extra.axes not in ("n o", "n t o"):
        return None
    vis = fmt.read_extra(info.path, f, info, "visibility", slice(start, stop)) > 0
    if extra.axes == "n o":  # visible somewhere in the clip
        vis = vis[:, None, :]
    return vis, int(meta.get("entity_label_offset", 1))


def _masks(path: Path, f: h5py.File, info: fmt.DatasetInfo, n: int) -> tuple[dict[str, int], list[str]]:
    """Objects per item and the mask problems, chunk by chunk; ids are relabelled per chunk
    (``np.unique``), so memory does not grow with the ids' values."""
    hist: Counter[int] = Counter()
    problems: list[str] = []
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        masks = fmt.read_masks(path, f, info, slice(start, stop))  # [b T H W]
        problems += _out_of_range(masks, start, info.max_id)
        hist.update(ids_per_item(masks).tolist())
        visible = _visible(info, f, start, stop)
        if visible is not None and len(problems) < 20:
            vis, offset = visible
            problems += _ids_without_pixels(start, masks, vis, offset)
    return {str(k): v for k, v in sorted(hist.items())}, problems


def _out_of_range(masks: np.ndarray, start: int, max_id: int) -> list[str]:
    """The first item of the chunk with an id outside ``[-1, max_id]``, with the value."""
    bad = first_bad_id(masks, max_id)
    return [] if bad is None else [f"item {start + bad[0]}: {id_problem(bad[1], max_id)}"]


def _ids_without_pixels(start: int, masks: np.ndarray, vis: np.ndarray, offset: int) -> list[str]:
    """Objects marked visible (``vis [b t O]``, ``t`` = T, or 1 for "somewhere in the clip")
    whose id ``o + offset`` has no pixel in ``masks [b T H W]``; computed on relabelled ids."""
    b, t, o = vis.shape
    flat = masks.reshape(b * t, -1)  # one row per (item, frame), or per item when t = 1
    values, inverse = np.unique(flat, return_inverse=True)
    seen = np.unique(np.arange(b * t)[:, None] * len(values) + inverse.reshape(flat.shape))
    rows, objects = np.nonzero(vis.reshape(b * t, o))
    labels = objects + offset
    pos = np.minimum(np.searchsorted(values, labels), len(values) - 1)
    present = (values[pos] == labels) & np.isin(rows * len(values) + pos, seen)
    missing = ~present & (labels > 0)
    out = []
    for row, k, label in zip(rows[missing], objects[missing], labels[missing]):
        i, s = divmod(int(row), t)
        frame = f" frame {s}" if t > 1 else ""
        out.append(f"item {start + i}{frame}: mask id {int(label)} (visibility[{int(k)}] set) has no pixels")
        if len(out) >= 10:
            break
    return out


def format_card(card: dict[str, Any]) -> str:
    """The text ``ocf data check`` prints."""
    lines = [f"{card['path']}"]
    if "shape" in card:
        lines.append(
            f"  layout      {card['layout']}, frames [N T H W C] = [{' '.join(map(str, card['shape']))}]"
            f"{'  (video)' if card['video'] else ''}"
        )
        lines.append("  splits      " + (", ".join(f"{k}: {v}" for k, v in card["splits"].items()) or "none"))
        bg = card["background"]
        lines.append(f"  background  label 0 ({', '.join(map(str, bg['entities']))}); {bg['labels']}")
        if "objects_histogram" in card:
            hist = " ".join(f"{k}:{v}" for k, v in card["objects_histogram"].items())
            lines.append(f"  objects     per item (ids with pixels) {hist}  [{card['scanned']} of {card['n']} items]")
        for key, r in card.get("ranges", {}).items():
            span = f"{r['min']:g} .. {r['max']:g}" if "min" in r else "empty"
            extra = f" mean {r['mean']:g}" if "mean" in r else ""
            shape = f" [{' '.join(map(str, r['shape']))}] {r['dtype']}" if "shape" in r else ""
            lines.append(f"  range       {key}{shape}: {span}{extra}")
    if card["problems"]:
        lines.append(f"  {len(card['problems'])} inconsistenc{'y' if len(card['problems']) == 1 else 'ies'}:")
        lines += [f"    - {p}" for p in card["problems"]]
    else:
        lines.append("  no inconsistencies")
    return "\n".join(lines)
