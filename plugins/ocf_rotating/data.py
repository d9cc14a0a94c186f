"""Precomputed feature maps as Rotating Features' input (the paper's real-image setting
uses frozen DINO ViT features, 768 × 14 × 14).

Extract the features elsewhere, then store them beside the images as an *extra* of an
ocf-layout HDF5 file::

    from ocf_rotating.data import add_features
    add_features("data/images.h5", feats, "data/images_dino.h5")   # feats [N C h w] float

and train with ``data.extras: {features: [C, h, w]}`` and ``model.encoder.input: features``
(see configs/rotating/features_example.yaml).  Frames and masks stay in the file for
pictures and metrics; the model reconstructs the features.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from ocf.data.format import read_info, write_dataset
from ocf.errors import DataError


def add_features(source: str | Path, features: np.ndarray, out: str | Path, *, key: str = "features") -> Path:
    """Copy the ocf-layout file ``source`` (frames, masks, extras, splits, metadata) to
    ``out`` with ``features [N C h w]`` (float, one map per sample, in the file's sample
    order) added as the extra ``key``.  Returns ``out``."""
    source, out = Path(source), Path(out)
    info = read_info(source)
    if info.layout != "ocf":
        raise DataError(f"{source}: add_features needs an ocf-layout file (got the {info.layout} layout)")
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 4 or features.shape[0] != info.n:
        raise DataError(f"{source}: features must be [N C h w] with N = {info.n}, got {list(features.shape)}")
    with h5py.File(source, "r") as f:
        frames = f["frames"][()]
        masks = f["masks"][()] if "masks" in f else None
        extras = {k: f[k][()] for k in info.extras if k != key}
        axes = {k: f[k].attrs["axes"] for k in extras if "axes" in f[k].attrs}
        splits = {k: f["splits"][k][()] for k in f["splits"]} if "splits" in f else None
        metadata = json.loads(f.attrs.get("metadata", "{}"))
    extras[key] = features
    axes[key] = "n c h w"
    metadata = {**metadata, "features": {"key": key, "shape": list(features.shape[1:])}}
    return write_dataset(out, frames, masks, extras=extras, metadata=metadata, splits=splits, axes=axes)
