"""Small PIL helpers: frames to RGB, ground-truth mask overlays and contact sheets."""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image

IGNORE_COLOR = np.array([255, 255, 255], dtype=np.uint8)


def palette(k: int) -> np.ndarray:
    """``[k 3]`` uint8 distinct colours (golden-ratio hues, alternating brightness)."""
    out = []
    for i in range(k):
        h = (i * 0.618033988749895) % 1.0
        v = 1.0 if i % 2 == 0 else 0.75
        out.append(colorsys.hsv_to_rgb(h, 0.85, v))
    return (np.array(out, dtype=np.float64).reshape(k, 3) * 255).round().astype(np.uint8)


def to_rgb(frames: np.ndarray) -> np.ndarray:
    """``[... H W C]`` uint8 → ``[... H W 3]``: grey (C = 1, or C = 2 grey + depth) is
    repeated, the first three channels are kept for C >= 3 (a depth channel is dropped)."""
    c = frames.shape[-1]
    if c in (1, 2):
        return np.repeat(frames[..., :1], 3, axis=-1)
    return frames[..., :3]


def overlay(rgb: np.ndarray, mask: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """Colour each object id of ``mask [H W]`` over ``rgb [H W 3]`` uint8; background
    (0) is dimmed, ignore (-1) is white."""
    ids = int(max(mask.max(), 0))
    colors = palette(max(ids, 1))
    out = rgb.astype(np.float32) * 0.5
    for i in range(1, ids + 1):
        sel = mask == i
        out[sel] = (1 - alpha) * rgb[sel] + alpha * colors[i - 1]
    out[mask < 0] = IGNORE_COLOR
    return out.clip(0, 255).astype(np.uint8)


def mask_image(mask: np.ndarray) -> np.ndarray:
    """``[H W]`` ids → ``[H W 3]`` uint8 in palette colours (background black, ignore white)."""
    ids = int(max(mask.max(), 0))
    colors = np.concatenate([np.zeros((1, 3), np.uint8), palette(max(ids, 1))])
    out = colors[np.clip(mask, 0, None)]
    out[mask < 0] = IGNORE_COLOR
    return out


def grid(tiles: list[list[np.ndarray]], scale: int = 1, pad: int = 2) -> Image.Image:
    """Rows of equally sized ``[H W 3]`` uint8 tiles → one image, ``scale``× nearest,
    ``pad`` pixels of grey between tiles."""
    h, w = tiles[0][0].shape[:2]
    h, w = h * scale, w * scale
    rows, cols = len(tiles), max(len(r) for r in tiles)
    sheet = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 64, np.uint8)
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            big = np.repeat(np.repeat(tile, scale, 0), scale, 1)
            y, x = pad + r * (h + pad), pad + c * (w + pad)
            sheet[y:y + h, x:x + w] = big
    return Image.fromarray(sheet)


def sample_sheet(frames: np.ndarray, masks: np.ndarray | None, max_frames: int = 4, min_size: int = 96) -> Image.Image:
    """A contact sheet: one row per sample; for each of up to ``max_frames`` frames (spread
    over ``T``) the frame and, with masks, the ground-truth overlay and the mask itself.

    frames ``[N T H W C]`` uint8, masks ``[N T H W]`` or None.
    """
    n, t, h = frames.shape[:3]
    shown = np.unique(np.linspace(0, t - 1, min(max_frames, t)).round().astype(int))
    scale = max(1, int(np.ceil(min_size / h)))
    rgb = to_rgb(frames)
    rows = []
    for i in range(n):
        row = []
        for j in shown:
            row.append(rgb[i, j])
            if masks is not None:
                row.append(overlay(rgb[i, j], masks[i, j]))
                row.append(mask_image(masks[i, j]))
        rows.append(row)
    return grid(rows, scale=scale)
