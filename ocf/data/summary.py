"""The summary of a dataset file that ``ocf data inspect`` prints (:func:`describe`)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ocf.data import format as fmt
from ocf.data.guards import id_problem, ids_per_item


def describe(path: str | os.PathLike, max_samples: int = 1000) -> dict[str, Any]:
    """A JSON-able summary of a file: layout, geometry, splits, datasets, object counts
    (from the masks of at most ``max_samples`` samples) and metadata."""
    info = fmt.read_info(path)
    summary: dict[str, Any] = {
        "path": str(info.path),
        "layout": info.layout,
        "n": info.n,
        "frames": {"shape": [info.n, info.t, info.h, info.w, info.c], "axes": "N T H W C", "dtype": "uint8"},
        "video": info.video,
        "masks": None,
        "splits": (
            {k: int(len(v)) for k, v in info.splits.items()} or {"(none: train/val/test read the whole file)": info.n}
        ),
        "extras": {
            k: {"shape": list(e.shape), "dtype": e.dtype, "time_axis": e.time_axis} for k, e in info.extras.items()
        },
        "metadata": info.metadata,
    }
    if info.skipped:
        summary["skipped"] = info.skipped
    if info.has_masks:
        m = max(1, min(info.n, max_samples))
        with fmt.open_h5(info.path) as f:
            masks = fmt.read_masks(info.path, f, info, slice(0, m))
        lo, hi = int(masks.min()), int(masks.max())
        per_sample = ids_per_item(masks)
        summary["masks"] = {
            "kind": info.mask_kind,
            "max_id": hi,
            "has_ignore": bool((masks == -1).any()),
            "objects_per_sample": {
                "min": int(per_sample.min()),
                "max": int(per_sample.max()),
                "mean": round(float(per_sample.mean()), 3),
                "histogram": {int(k): int(v) for k, v in zip(*np.unique(per_sample, return_counts=True))},
                "from_samples": m,
            },
        }
        bad = lo if lo < -1 else hi if hi > info.max_id else None
        if bad is not None:
            summary["masks"]["problem"] = id_problem(bad, info.max_id)
    return summary
