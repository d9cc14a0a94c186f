"""Drawing primitives: the palette, colour conversion, label colouring, overlays, grids and
dataset contact sheets (see :mod:`ocf.viz` for the conventions)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: Distinct colours (RGB) for labels and series; label i uses ``PALETTE[i % len]``.
PALETTE: np.ndarray = np.array(
    [
        (230, 25, 75), (60, 180, 75), (0, 130, 200), (255, 225, 25), (245, 130, 48),
        (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
        (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
        (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128),
    ],
    dtype=np.uint8,
)  # fmt: skip
#: Colour of ignore (negative) labels in :func:`colorize`; :func:`overlay` darkens them instead.
IGNORE_COLOUR = np.array((40, 40, 40), dtype=np.uint8)
_TEXT = (0, 0, 0)


def _numpy(x: Any) -> np.ndarray:
    """A torch tensor (any device, with grad) or array-like as a numpy array."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16" or str(x.dtype) == "torch.float16":
            x = x.float()
        x = x.numpy()
    return np.asarray(x)


def _three_channels(x: np.ndarray) -> np.ndarray:
    """Channels-last ``[.. c]`` → ``[.. 3]`` by the module's channel convention: c = 1 and
    c = 2 (grey + depth) repeat the first channel, c >= 3 keeps the first three."""
    if x.shape[-1] < 3:
        return np.repeat(x[..., :1], 3, axis=-1)
    return x[..., :3]


def to_uint8(images: Any) -> np.ndarray:
    """Float images ``[.. c h w]`` in [0, 1] → ``uint8 [.. h w 3]`` (clipped).

    uint8 input is taken as already in [0, 255].  Channels follow the module's convention
    (grey for c = 1 and c = 2, the first three channels for c > 3).
    """
    x = _numpy(images)
    if x.ndim < 3:
        raise ValueError(f"expected images [.. c h w], got shape {x.shape}")
    x = _three_channels(np.moveaxis(x, -3, -1))
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    return (np.clip(np.nan_to_num(x.astype(np.float32)), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def colorize(labels: Any, background: int | None = None) -> np.ndarray:
    """Label map ``[h w]`` (ints) → ``uint8 [h w 3]`` palette colours.  Negative labels
    (ignore) are dark grey; ``background``, if given, is black."""
    lab = _numpy(labels).astype(np.int64)
    out = PALETTE[np.mod(lab, len(PALETTE))]
    out[lab < 0] = IGNORE_COLOUR
    if background is not None:
        out[lab == background] = 0
    return out


def _resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an int label map ``[h w]`` to ``size = (h, w)``."""
    if labels.shape == size:
        return labels
    rows = (np.arange(size[0]) * labels.shape[0] // size[0]).clip(0, labels.shape[0] - 1)
    cols = (np.arange(size[1]) * labels.shape[1] // size[1]).clip(0, labels.shape[1] - 1)
    return labels[rows][:, cols]


def overlay(image: Any, labels: Any, alpha: float = 0.5, background: int | None = None) -> np.ndarray:
    """Blend palette colours of ``labels [h' w']`` over ``image [c h w]`` → ``uint8 [h w 3]``.

    Labels are resized (nearest) to the image.  Pixels labelled ``background`` (if given)
    or negative are left as the image (ignored ones slightly darkened).
    """
    img = to_uint8(image).astype(np.float32)
    lab = _resize_labels(_numpy(labels).astype(np.int64), img.shape[:2])
    col = colorize(lab).astype(np.float32)
    a = np.full(lab.shape + (1,), float(alpha), dtype=np.float32)
    if background is not None:
        a[lab == background] = 0.0
    out = img * (1.0 - a) + col * a
    out[lab < 0] *= 0.6
    return out.round().clip(0, 255).astype(np.uint8)


def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default()


def _text_size(draw: ImageDraw.ImageDraw, text: str) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=_font())
    return right - left, bottom - top


def _as_rgb(cell: np.ndarray) -> np.ndarray:
    """Channels-last ``[h w c]`` or grey ``[h w]`` (uint8, or float in [0, 1]) → ``uint8 [h w 3]``."""
    cell = np.asarray(cell)
    cell = _three_channels(cell[..., None] if cell.ndim == 2 else cell)
    if cell.dtype != np.uint8:
        cell = (np.clip(cell, 0, 1) * 255 + 0.5).astype(np.uint8)
    return cell


def image_grid(
    rows: Sequence[Sequence[np.ndarray | None]],
    labels: Sequence[str] | None = None,
    pad: int = 2,
    *,
    row_labels: Sequence[str] | None = None,
    scale: int = 1,
    fill: tuple[int, int, int] = (255, 255, 255),
) -> Image.Image:
    """Lay out images in a grid → ``PIL.Image`` (RGB).

    rows: rows of ``uint8 [h w 3]`` (or ``[h w]`` grey) images; cells may differ in size
        (each sits top-left in a cell of the largest size) and ``None`` leaves a blank.
    labels: column titles drawn above the grid; row_labels: titles left of each row.
    pad: pixels between cells and around the grid; scale: integer nearest upscaling.
    """
    cells = [[None if c is None else _as_rgb(c) for c in row] for row in rows]
    shapes = [c.shape[:2] for row in cells for c in row if c is not None]
    ch = max((s[0] for s in shapes), default=1) * scale
    cw = max((s[1] for s in shapes), default=1) * scale
    ncols = max((len(r) for r in cells), default=0)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    title_h = max((_text_size(probe, t)[1] for t in labels), default=0) + pad + 2 if labels else 0
    label_w = max((_text_size(probe, t)[0] for t in row_labels), default=0) + pad + 2 if row_labels else 0
    width = label_w + pad + ncols * (cw + pad)
    height = title_h + pad + len(cells) * (ch + pad)
    canvas = Image.new("RGB", (max(width, 1), max(height, 1)), fill)
    draw = ImageDraw.Draw(canvas)
    for j, text in enumerate(labels or []):
        if j < ncols:
            tw = _text_size(draw, text)[0]
            x = label_w + pad + j * (cw + pad) + max((cw - tw) // 2, 0)
            draw.text((x, pad // 2), text, fill=_TEXT, font=_font())
    for i, row in enumerate(cells):
        y = title_h + pad + i * (ch + pad)
        if row_labels and i < len(row_labels):
            th = _text_size(draw, row_labels[i])[1]
            draw.text((pad, y + max((ch - th) // 2, 0)), row_labels[i], fill=_TEXT, font=_font())
        for j, cell in enumerate(row):
            if cell is None:
                continue
            im = Image.fromarray(cell)
            if scale != 1:
                im = im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)
            canvas.paste(im, (label_w + pad + j * (cw + pad), y))
    return canvas


def sample_sheet(frames: Any, masks: Any | None, max_frames: int = 4, min_size: int = 96) -> Image.Image:
    """The contact sheet of ``ocf data inspect``: a row per sample with, for up to ``max_frames``
    frames (spread over T), the frame and, given masks, the ground truth as ``ocf viz`` draws it
    (``overlay(frame, mask, 0.6, background=0)``) and the labels (``colorize(mask, background=0)``).
    frames ``[N T H W C]`` uint8 as stored in files, masks ``[N T H W]`` or None; cells are
    upscaled (nearest) to at least ``min_size`` pixels.
    """
    frames, masks = _numpy(frames), None if masks is None else _numpy(masks)
    n, t, h = frames.shape[:3]
    shown = np.unique(np.linspace(0, t - 1, min(max_frames, t)).round().astype(int))
    images = np.moveaxis(frames, -1, -3)  # [N T C H W]; to_uint8 keeps uint8 values as they are
    titles, rows = [], [[] for _ in range(n)]
    for j in shown:
        titles += [f"frame t={j}" if t > 1 else "frame"] + (["truth", "labels"] if masks is not None else [])
        for i, row in enumerate(rows):
            row.append(to_uint8(images[i, j]))
            if masks is not None:
                row += [overlay(images[i, j], masks[i, j], 0.6, background=0), colorize(masks[i, j], background=0)]
    return image_grid(rows, titles, pad=2, scale=max(1, int(np.ceil(min_size / h))))


def _resize_float(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float map ``[h w]`` to ``size = (h, w)``."""
    if x.shape == size:
        return x
    im = Image.fromarray(np.ascontiguousarray(x, dtype=np.float32))  # mode F
    return np.asarray(im.resize((size[1], size[0]), Image.Resampling.BILINEAR))
