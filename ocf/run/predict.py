"""Applying a trained model to new data (``ocf predict``): images from a folder or the clips
of an HDF5 file in, per-item segmentations and one HDF5 of slots, masks and reconstructions out.

Images (``.png``, ``.jpg``, ``.jpeg`` in the folder, not its subfolders, in natural name order)
are fitted to the run's ``data.resolution`` by the rule ``ocf data convert --resolution``
uses: cut the largest centred box of the target's aspect ratio, then resize it bilinearly.
RGBA and LA images lose their alpha channel and palette images are expanded; an image whose
channel count still differs from the run's ``data.channels`` is refused.  A run that models
clips (``data.frames > 1``) takes an HDF5 file; each item is the first ``data.frames``
frames of a clip.

Output folder::

    OUT/masks/<name>.png      label map per item (per frame <name>_t<t>.png for clips):
                              pixel value = index of the slot with the largest mask
    OUT/overlays/<name>.png   the labels' palette colours (ocf.viz) blended over the input
    OUT/predictions.h5        see PREDICTION_AXES; root attribute ``metadata`` (JSON)

``<name>`` is the image's file stem, or ``item_<i>`` (``i`` the sample index in the file).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
import torch.nn.functional as F

from ocf.assembly import Model
from ocf.data import H5Dataset
from ocf.data.batches import ordered_batch
from ocf.data.convert.base import Geometry
from ocf.errors import UserError
from ocf.metrics.segmentation import segmentation_labels
from ocf.records import Batch, State
from ocf.run.data import check_shape
from ocf.run.evaluate import evaluating
from ocf.spec import ResolvedSpec
from ocf.viz import overlay

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_CONVERT = {"RGBA": "RGB", "LA": "L", "1": "L", "CMYK": "RGB", "YCbCr": "RGB"}  # image modes read as RGB or L

#: The datasets of ``predictions.h5`` and their axes (N items, T frames, K slots).
PREDICTION_AXES = {
    "frames": "n t h w c",  # uint8, the input as the model saw it (resized)
    "labels": "n t h w",  # int16, argmax over slots of the masks (the PNG label maps)
    "masks": "n t k h w",  # float32, soft masks (sum to 1 over k)
    "slots": "n k d",  # float32, object latents (n t k d for models with per-frame slots)
    "recon": "n t h w c",  # float32, the reconstruction (absent when the model renders none)
}


@dataclass
class Source:
    """The items to predict: their names and a reader of items ``[start, stop)``."""

    names: list[str]
    read: Callable[[int, int], Batch]
    description: str


def _natural_key(path: Path) -> list[Any]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


_CHANNELS = {"L": 1, "1": 1, "LA": 1, "RGB": 3, "RGBA": 3, "P": 3, "CMYK": 3, "YCbCr": 3}  # after _CONVERT


def check_image(path: Path, channels: int) -> None:
    """From the header alone: ``path`` is an image of a supported mode with ``channels``
    channels once alpha is dropped (UserError naming the file otherwise)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            mode = im.mode
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise UserError(f"{path}: cannot read image ({exc})") from None
    _check_channels(path, mode, _CHANNELS.get(mode), channels)


def _check_channels(path: Path, mode: str, have: int | None, channels: int) -> None:
    if have is None:
        raise UserError(f"{path}: unsupported image mode {mode!r}; give 8-bit greyscale or RGB(A) images")
    if have != channels:
        raise UserError(
            f"{path}: a {'greyscale' if have == 1 else 'colour'} image ({have} channel"
            f"{'s' if have > 1 else ''}), but the run takes {channels}-channel frames (data.channels)"
        )


def load_image(path: Path, resolution: tuple[int, int], channels: int) -> np.ndarray:
    """``[h w c]`` uint8 at ``resolution`` by the module's rule; UserError when the file is
    not an image or its channels differ from ``channels``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            if im.mode in _CONVERT:
                im = im.convert(_CONVERT[im.mode])
            mode = im.mode
            arr = np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise UserError(f"{path}: cannot read image ({exc})") from None
    have = {"L": 1, "RGB": 3}.get(mode) if arr.dtype == np.uint8 else None
    _check_channels(path, mode, have, channels)
    arr = arr.reshape(arr.shape[0], arr.shape[1], have)
    return Geometry(resolution=tuple(resolution)).image(arr)


def image_source(folder: Path, resolved: ResolvedSpec) -> Source:
    """The images of ``folder`` for an image run (checked before anything is read)."""
    d = resolved.spec.data
    if d.frames > 1:
        raise UserError(
            f"{folder}: the run models clips of {d.frames} frames; give an HDF5 file of clips "
            "(ocf data import-frames turns a folder of frames into one)"
        )
    if d.extras:
        raise UserError(
            f"{folder}: the run's model reads the extras {', '.join(d.extras)}; give an HDF5 file holding them"
        )
    files = sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key
    )
    if not files:
        raise UserError(f"{folder}: no images (looked for {', '.join('*' + s for s in IMAGE_SUFFIXES)})")
    for p in files:  # every header before any output is written
        check_image(p, d.channels)

    def read(start: int, stop: int) -> Batch:
        arr = np.stack([load_image(p, d.resolution, d.channels) for p in files[start:stop]])  # [b h w c]
        frames = torch.from_numpy(arr).permute(0, 3, 1, 2).unsqueeze(1).float() / 255.0  # [b 1 c h w]
        return Batch(frames=frames)

    return Source([p.stem for p in files], read, f"{len(files)} images in {folder}")


def h5_source(path: Path, resolved: ResolvedSpec, split: str | None, run: str) -> Source:
    """The clips of one split (default: the whole file) of an HDF5 file, checked against the run."""
    spec = resolved.spec
    split = split or "all"
    ds = H5Dataset(path, split=split, frames=None, in_memory=False)
    try:
        check_shape(spec, ds, path)
    except UserError as exc:
        raise UserError(f"{path} does not fit the run {run}: {exc}") from None
    names = [f"item_{int(i):06d}" for i in ds.indices]
    return Source(
        names, lambda s, e: ordered_batch(ds, s, e, spec.data.frames), f"{len(names)} items of {path} (split {split})"
    )


def open_source(path: str | Path, resolved: ResolvedSpec, split: str | None, run: str) -> Source:
    path = Path(path)
    if path.is_dir():
        if split is not None:
            raise UserError("--split applies to an HDF5 input, not to a folder of images")
        return image_source(path, resolved)
    if path.is_file():
        return h5_source(path, resolved, split, run)
    raise UserError(f"{path}: no such folder or file")


def outputs(state: State, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """The arrays of one batch for ``predictions.h5`` (axes: :data:`PREDICTION_AXES`)."""
    seg = state.segmentation()
    if seg is None:
        raise UserError(
            "the run's model predicts no masks (neither its decoder nor its grouper), so there is nothing to segment"
        )
    b, t, k = seg.shape[:3]
    masks = seg.float()
    if tuple(masks.shape[-2:]) != tuple(size):
        masks = F.interpolate(
            masks.reshape(b * t, k, *masks.shape[-2:]), size=size, mode="bilinear", align_corners=False
        ).reshape(b, t, k, *size)
    out = {
        "frames": (state.batch.frames.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 1, 3, 4, 2),
        "labels": segmentation_labels(seg, size).to(torch.int16),
        "masks": masks,
    }
    if state.latents is not None and state.latents.objects is not None:
        out["slots"] = state.latents.objects.float()
    recon = state.rendering.recon if state.rendering is not None else None
    if recon is not None and state.rendering.target is None:
        out["recon"] = recon.float().permute(0, 1, 3, 4, 2)
    return {name: v.detach().cpu().numpy() for name, v in out.items()}


def _save_png(arr: np.ndarray, path: Path) -> None:
    from PIL import Image

    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(arr).save(tmp, format="PNG")
    os.replace(tmp, path)


def write_pictures(arrays: dict[str, np.ndarray], names: list[str], out: Path) -> None:
    """``masks/<name>.png`` (uint8 label map, uint16 past 255 slots) and ``overlays/<name>.png``."""
    for i, name in enumerate(names):
        frames = arrays["frames"][i]  # [t h w c] uint8
        for t in range(frames.shape[0]):
            stem = name if frames.shape[0] == 1 else f"{name}_t{t:03d}"
            labels = arrays["labels"][i, t].astype(np.int64)
            dtype = np.uint8 if labels.max(initial=0) < 256 else np.uint16
            _save_png(labels.astype(dtype), out / "masks" / f"{stem}.png")
            image = np.moveaxis(frames[t], -1, 0)  # [c h w]
            _save_png(overlay(image, labels), out / "overlays" / f"{stem}.png")


def _create(f: h5py.File, arrays: dict[str, np.ndarray], n: int) -> None:
    for name, a in arrays.items():
        axes = PREDICTION_AXES[name] if not (name == "slots" and a.ndim == 4) else "n t k d"
        ds = f.create_dataset(
            name, shape=(n,) + a.shape[1:], dtype=a.dtype, chunks=(1,) + a.shape[1:], compression="lzf"
        )
        ds.attrs["axes"] = axes


def predict(
    model: Model,
    resolved: ResolvedSpec,
    source: Source,
    out: str | Path,
    *,
    meta: dict[str, Any] | None = None,
    progress: bool = True,
) -> Path:
    """Run the model over ``source`` in batches of ``eval.batch_size`` (under
    :func:`evaluating`, seeded by ``eval.seed``), write the pictures and ``predictions.h5``
    (atomically: a temporary file beside it, renamed when every item is done)."""
    from tqdm.auto import tqdm

    spec = resolved.spec
    out = Path(out)
    for sub in ("masks", "overlays"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    target = out / "predictions.h5"
    tmp = out / f".predictions.h5.tmp{os.getpid()}"
    n, bs = len(source.names), spec.eval.batch_size
    device = next(model.parameters(), torch.zeros(())).device
    bar = tqdm(total=n, desc="predict", unit="item", file=sys.stderr, dynamic_ncols=True, disable=not progress)
    try:
        with h5py.File(tmp, "w") as f, evaluating(model, spec.eval.seed):
            for start in range(0, n, bs):
                stop = min(n, start + bs)
                state = model(source.read(start, stop).to(device), losses=False)
                arrays = outputs(state, tuple(spec.data.resolution))
                if start == 0:
                    _create(f, arrays, n)
                for name, a in arrays.items():
                    f[name][start:stop] = a
                write_pictures(arrays, source.names[start:stop], out)
                bar.update(stop - start)
            f.create_dataset("names", data=np.array(source.names, dtype=object), dtype=h5py.string_dtype())
            f.attrs["metadata"] = json.dumps(
                {
                    **(meta or {}),
                    "input": source.description,
                    "items": n,
                    "axes": {k: f[k].attrs["axes"] for k in PREDICTION_AXES if k in f},
                    "resize_rule": "centre-crop to the run's aspect ratio, then bilinear",
                }
            )
        os.replace(tmp, target)
    finally:
        bar.close()
        tmp.unlink(missing_ok=True)
    return target
