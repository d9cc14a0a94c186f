"""Figures built from the primitives: model decompositions, video strips, GIFs, line charts
and boxes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ocf.viz.draw import (
    _TEXT,
    PALETTE,
    _as_rgb,
    _font,
    _numpy,
    _resize_float,
    _text_size,
    image_grid,
    overlay,
    to_uint8,
)


def _decomposition_rows(frames, recon, masks, rgb, gt_masks, max_items) -> tuple[list[list[np.ndarray]], list[str]]:
    """Rows (one per item) and column titles of a decomposition figure (numpy inputs)."""
    b, _, h, w = frames.shape
    k = 0 if masks is None else masks.shape[1]
    titles = ["input"] + (["recon"] if recon is not None else []) + (["gt"] if gt_masks is not None else [])
    titles += (["pred"] if masks is not None else []) + [f"slot {i}" for i in range(k)]
    rows = []
    for i in range(min(b, max_items)):
        row = [to_uint8(frames[i])]
        if recon is not None:
            row.append(to_uint8(recon[i]))
        if gt_masks is not None:
            row.append(overlay(frames[i], gt_masks[i], 0.6, background=0))
        if masks is None:
            rows.append(row)
            continue
        m = np.stack([_resize_float(masks[i, j].astype(np.float32), (h, w)) for j in range(k)])  # [k h w]
        row.append(overlay(frames[i], m.argmax(axis=0), 0.6))
        for j in range(k):
            if rgb is not None:
                slot = to_uint8(rgb[i, j]).astype(np.float32)
                if slot.shape[:2] != (h, w):
                    slot = np.stack([_resize_float(slot[..., c], (h, w)) for c in range(3)], axis=-1)
                mask = m[j].clip(0, 1)[..., None]
                # rgb * mask on white, so an empty slot reads as blank
                row.append((slot * mask + 255.0 * (1.0 - mask)).round().clip(0, 255).astype(np.uint8))
            else:
                row.append(to_uint8(m[j][None]))  # the soft mask in grey
        rows.append(row)
    return rows, titles


def decomposition_figure(
    frames: Any,
    recon: Any | None,
    masks: Any | None,
    rgb: Any | None = None,
    gt_masks: Any | None = None,
    max_items: int = 8,
    *,
    scale: int | None = None,
) -> Image.Image:
    """One row per item: input, recon, ground-truth overlay, predicted segmentation
    overlay (argmax over k), then each slot (``rgb * mask`` on white, or the mask in grey).

    frames, recon: ``[b c h w]``; masks: ``[b k h' w']`` soft masks (resized to h w);
    rgb: ``[b k c h w]`` or None; gt_masks: ``[b h w]`` or None (0 = background left
    uncoloured, −1 darkened).  ``recon`` / ``gt_masks`` None drop their column, ``masks``
    None the segmentation and slot columns.  scale: integer upscaling
    (default: cells of at least 64 px).
    """
    frames = _numpy(frames)
    rows, titles = _decomposition_rows(
        frames,
        None if recon is None else _numpy(recon),
        None if masks is None else _numpy(masks),
        None if rgb is None else _numpy(rgb),
        None if gt_masks is None else _numpy(gt_masks),
        max_items,
    )
    if scale is None:
        scale = max(1, 64 // max(frames.shape[-2:]))
    return image_grid(rows, titles, pad=2, scale=scale)


def video_figure(
    frames: Any,
    recon: Any | None,
    masks: Any | None,
    rgb: Any | None = None,
    gt_masks: Any | None = None,
    max_items: int = 4,
    *,
    scale: int | None = None,
) -> list[Image.Image]:
    """Decomposition figures over time, one per frame, for :func:`save_gif`.

    frames, recon: ``[b t c h w]``; masks: ``[b t k h w]``; rgb: ``[b t k c h w]`` or
    None; gt_masks: ``[b t h w]`` or None.
    """
    frames = _numpy(frames)
    pick = lambda x, t: None if x is None else _numpy(x)[:, t]  # noqa: E731
    return [
        decomposition_figure(
            frames[:, t], pick(recon, t), pick(masks, t), pick(rgb, t), pick(gt_masks, t), max_items, scale=scale
        )
        for t in range(frames.shape[1])
    ]


def save_gif(frames: Sequence[Image.Image] | np.ndarray, path: str | Path, fps: float = 4.0) -> Path:
    """Write an animated, looping GIF.  frames: PIL images, or ``uint8 [t h w c]`` /
    float ``[t h w c]`` in [0, 1] (c = 1 or 3).  Returns the path."""
    if isinstance(frames, np.ndarray) or hasattr(frames, "detach"):
        arr = _numpy(frames)
        if arr.dtype != np.uint8:
            arr = (np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8)
        images = [Image.fromarray(_as_rgb(a)) for a in arr]
    else:
        images = [im.convert("RGB") for im in frames]
    if not images:
        raise ValueError("save_gif needs at least one frame")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    duration = max(int(round(1000.0 / fps)), 20)
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0)
    return path


def line_plot(
    series: dict[str, Sequence[float]],
    path: str | Path | None = None,
    width: int = 480,
    height: int = 320,
    *,
    title: str | None = None,
) -> Image.Image:
    """A simple line chart of named series over their index (steps) → ``PIL.Image``,
    also saved to ``path`` if given (format from the suffix).  Non-finite values are
    skipped; the y range covers all series; a legend names each series in its colour."""
    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    values = [float(v) for s in series.values() for v in s if np.isfinite(v)]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    n = max((len(s) for s in series.values()), default=0)
    label_w = max(_text_size(draw, f"{v:.3g}")[0] for v in (lo, hi)) + 6
    line_h = _text_size(draw, "Ag")[1] + 4
    top = 4 + (line_h if title else 0)
    left, right, bottom = label_w + 4, width - 8, height - line_h - 4
    if title:
        draw.text((left, 2), title, fill=_TEXT, font=_font())
    draw.rectangle((left, top, right, bottom), outline=(120, 120, 120))
    draw.text((2, top), f"{hi:.3g}", fill=_TEXT, font=_font())
    draw.text((2, bottom - line_h), f"{lo:.3g}", fill=_TEXT, font=_font())
    draw.text((left, bottom + 2), "0", fill=_TEXT, font=_font())
    end = str(max(n - 1, 0))
    draw.text((right - _text_size(draw, end)[0], bottom + 2), end, fill=_TEXT, font=_font())

    def xy(i: int, v: float) -> tuple[float, float]:
        x = left + (right - left) * (i / max(n - 1, 1))
        y = bottom - (bottom - top) * ((v - lo) / (hi - lo))
        return x, y

    legend_y = top + 4
    for j, (name, s) in enumerate(series.items()):
        colour = tuple(int(c) for c in PALETTE[j % len(PALETTE)])
        _draw_series(draw, [xy(i, float(v)) if np.isfinite(v) else None for i, v in enumerate(s)], colour)
        tw = _text_size(draw, name)[0]
        mid = legend_y + line_h // 2
        draw.line((right - tw - 22, mid, right - tw - 8, mid), fill=colour, width=3)
        draw.text((right - tw - 4, legend_y), name, fill=_TEXT, font=_font())
        legend_y += line_h
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        img.save(path)
    return img


def _draw_series(draw: ImageDraw.ImageDraw, points: list[tuple[float, float] | None], colour: tuple) -> None:
    """Lines through each run of points (``None`` ends a run); a final run of one point is a dot."""
    run: list[tuple[float, float]] = []
    for point in points + [None]:
        if point is not None:
            run.append(point)
            continue
        if len(run) > 1:
            draw.line(run, fill=colour, width=2)
        last, run = run, []
    if len(last) == 1:
        draw.ellipse((last[0][0] - 2, last[0][1] - 2, last[0][0] + 2, last[0][1] + 2), fill=colour)


def draw_boxes(
    image: Any, where: Any, presence: Any | None = None, *, threshold: float = 0.5, width: int = 1
) -> np.ndarray:
    """Outline object boxes on an image, box k in ``PALETTE[k]`` (so a slot that keeps its
    index over time keeps its colour).

    image: float ``[c h w]`` in [0, 1] or uint8 ``[h w 3]``; where: ``[k 4]`` as
    :class:`~ocf.records.Latents` documents, ``(sx, sy, tx, ty)`` in [-1, 1] coordinates;
    presence: ``[k]``, boxes at or below ``threshold`` are not drawn.  Returns uint8 ``[h w 3]``.
    """
    arr = _numpy(image)
    arr = _as_rgb(arr if arr.dtype == np.uint8 else to_uint8(arr))
    h, w = arr.shape[:2]
    where = _numpy(where).reshape(-1, 4)
    keep = np.ones(len(where), bool) if presence is None else _numpy(presence).reshape(-1) > threshold
    im = Image.fromarray(arr)
    draw = ImageDraw.Draw(im)
    for k in np.flatnonzero(keep):
        sx, sy, tx, ty = (float(v) for v in where[k])
        x0, x1 = (tx - abs(sx) + 1) * w / 2, (tx + abs(sx) + 1) * w / 2
        y0, y1 = (ty - abs(sy) + 1) * h / 2, (ty + abs(sy) + 1) * h / 2
        colour = tuple(int(c) for c in PALETTE[k % len(PALETTE)])
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=colour, width=width)
    return np.asarray(im)


# -- pictures of a model's state (``ocf viz``, training pictures, ``ocf sample``) ----------
