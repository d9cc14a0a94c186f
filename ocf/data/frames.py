"""A folder of video frames → an ocf dataset file of clips (``ocf data import-frames``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from ocf.errors import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"}


def _natural_key(path: Path) -> list[Any]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def import_frames(
    folder: str | Path,
    out: str | Path,
    clip_length: int = 8,
    stride: int | None = None,
    resolution: tuple[int, int] | list[int] | None = None,
    splits: dict[str, float] | None = None,
    progress: bool = False,
    frame_step: int = 1,
) -> Path:
    """A folder of frames (one video, sorted by name) → an ocf file of clips
    ``frames [N T H W 3]`` without masks; clips start every ``stride`` frames and take
    every ``frame_step``-th source frame."""
    from ocf.data import format as fmt

    folder = Path(folder)
    stride = clip_length if stride is None else stride
    files = _frame_files(folder, clip_length, stride, frame_step)
    span = (clip_length - 1) * frame_step + 1  # source frames one clip covers
    h, w = _frame_size(files[0], resolution)
    starts = list(range(0, len(files) - span + 1, stride))
    n = len(starts)
    index = fmt.split_ranges(n, splits if splits is not None else {"train": 0.8, "val": 0.1, "test": 0.1})
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, desc="import-frames", unit="clip", leave=False)
    with fmt.atomic_h5(out) as f:
        fmt.write_metadata(f, _metadata(folder, clip_length, stride, frame_step, (h, w), len(files)))
        ds = f.create_dataset(
            "frames",
            shape=(n, clip_length, h, w, 3),
            dtype=np.uint8,
            chunks=(1, clip_length, h, w, 3),
            compression="lzf",
        )
        ds.attrs["axes"] = "n t h w c"
        for i, s in enumerate(starts):
            ds[i] = np.stack([_load_image(files[j], (h, w)) for j in range(s, s + span, frame_step)])
            if bar is not None:
                bar.update(1)
        fmt.write_splits(f, {k: v for k, v in index.items() if len(v)})
        f.create_dataset("source_index", data=np.asarray(starts, np.int64)).attrs["axes"] = "n"
    if bar is not None:
        bar.close()
    return Path(out)


def _frame_size(first: Path, resolution: tuple[int, int] | list[int] | None) -> tuple[int, int]:
    """``[h w]`` of the clips: ``resolution``, else the first frame's size."""
    if resolution is None:
        return _load_image(first, None).shape[:2]
    h, w = int(resolution[0]), int(resolution[1])
    if h < 1 or w < 1:
        raise UserError(f"--resolution must be positive, got {h} {w}")
    return h, w


def _metadata(folder: Path, clip_length: int, stride: int, frame_step: int, size: tuple[int, int], files: int) -> dict:
    return {
        "generator": "import-frames",
        "description": f"clips of {clip_length} frames from the image folder {folder.name}",
        "options": {
            "source": str(folder),
            "clip_length": clip_length,
            "stride": stride,
            "frame_step": frame_step,
            "resolution": list(size),
        },
        "video": clip_length > 1,
        "channels": ["r", "g", "b"],
        "source_files": files,
    }


def _frame_files(folder: Path, clip_length: int, stride: int, frame_step: int) -> list[Path]:
    """The image files of ``folder`` in name order, checked to hold at least one clip."""
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder of image frames")
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)
    if not files:
        raise UserError(f"{folder}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if clip_length < 1:
        raise UserError(f"--clip-length must be >= 1, got {clip_length}")
    if stride < 1:
        raise UserError(f"--stride must be >= 1, got {stride}")
    if frame_step < 1:
        raise UserError(f"--frame-step must be >= 1, got {frame_step}")
    span = (clip_length - 1) * frame_step + 1
    if len(files) < span:
        raise UserError(
            f"{folder}: {len(files)} frames, fewer than one clip of {clip_length}"
            + (f" frames {frame_step} apart ({span} source frames)" if frame_step > 1 else "")
        )
    return files


def _load_image(path: Path, size: tuple[int, int] | None) -> np.ndarray:
    """``[h w 3]`` uint8 RGB, resized (bilinear) to ``size`` = (h, w) when given."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if size is not None and im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise UserError(f"{path}: cannot read image: {exc}") from None
