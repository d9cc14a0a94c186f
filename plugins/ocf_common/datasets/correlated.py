"""``correlated``: scenes obeying a scene-level rule (SRI), and :func:`check_rule`, which
scores images of those rules from pixels alone."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from ocf.data.generator import Generator, chunks, id_presence, sample_rngs, stack_params
from ocf_common.datasets.draw import SPRITE_SHAPES, _check_range, _grid, bright_colors, paint, sprite_masks, to_uint8


class Correlated(Generator):
    """Scenes obeying a scene-level rule an independent slot prior cannot capture (SRI).

    ``rule="same_color"``: ``min_objects..max_objects`` sprites (as in ``shapes``) that all
    share one colour. ``rule="stacked"``: a single tower of axis-aligned blocks in
    independent colours, the first on the floor (bottom row), each resting on the one below
    with its centre over it. Black background. Score images with :func:`check_rule`.

    Extras: ``counts [N 1]``, ``visibility [N O]``, ``color [N O 3]``, ``box [N O 4]``
    (stacked: x, y, w, h px; same_color: centre x, y and half-size twice).
    """

    name = "correlated"
    description = "scenes obeying a rule (same_color: one colour for all sprites; stacked: a tower of blocks)"
    video = False
    axes = {"counts": "n t", "visibility": "n o", "color": "n o 3", "box": "n o 4"}

    class Options(Generator.Options):
        rule: Literal["same_color", "stacked"] = Field(
            "same_color", description="the scene-level rule every image obeys"
        )
        min_objects: int = Field(2, ge=1, le=8, description="fewest objects per image")
        max_objects: int = Field(4, ge=1, le=8, description="most objects per image")

        @model_validator(mode="after")
        def _ranges(self):
            _check_range("min_objects", self.min_objects, "max_objects", self.max_objects)
            return self

    def _params(self, rng, o):
        res, big = o.resolution, o.max_objects
        k = int(rng.integers(o.min_objects, o.max_objects + 1))
        present = np.arange(big) < k
        if o.rule == "same_color":
            size = rng.uniform(0.12, 0.22, big) * res
            margin = 0.8 * size
            return {
                "present": present,
                "shape": rng.integers(0, 3, big),
                "size": size,
                "angle": rng.uniform(0, 2 * np.pi, big),
                "box": np.stack([rng.uniform(margin, res - margin), rng.uniform(margin, res - margin), size, size], -1),
                "color": np.repeat(bright_colors(rng, 1), big, 0),
            }
        # stacked: integer boxes (x, y, w, h), bottom up
        max_h = max(2, int(res * 0.9 / big))
        box = np.zeros((big, 4))
        floor, prev_cx, prev_w = res, None, None
        for j in range(big):
            w = int(rng.integers(max(3, res // 6), max(4, res // 3) + 1))
            h = int(rng.integers(max(2, max_h // 2), max_h + 1))
            if prev_cx is None:
                cx = rng.uniform(w / 2, res - w / 2)
            else:
                cx = np.clip(prev_cx + rng.uniform(-0.4, 0.4) * prev_w, w / 2, res - w / 2)
            x = int(np.clip(round(cx - w / 2), 0, res - w))
            box[j] = (x, floor - h, w, h)
            floor, prev_cx, prev_w = floor - h, x + w / 2, w
        return {
            "present": present,
            "shape": np.zeros(big, int),
            "size": box[:, 2] / 2,
            "angle": np.zeros(big),
            "box": box,
            "color": bright_colors(rng, big),
        }

    def generate(self, n, seed, options, progress=None):
        o, res, big = options, options.resolution, options.max_objects
        frames_out, masks_out, params = [], [], []
        ys, xs = _grid(res, res)
        for start, stop in chunks(n, 512):
            p = stack_params([self._params(rng, o) for rng in sample_rngs(seed, start, stop)])
            m = len(p["present"])
            b = p["box"]
            if o.rule == "same_color":
                masks = sprite_masks(
                    SPRITE_SHAPES,
                    p["shape"].ravel(),
                    b[..., 0].ravel(),
                    b[..., 1].ravel(),
                    p["size"].ravel(),
                    p["angle"].ravel(),
                    res,
                    res,
                ).reshape(m, big, res, res)
            else:
                corners = (b[..., 0], b[..., 1], b[..., 0] + b[..., 2], b[..., 1] + b[..., 3])
                x0, y0, x1, y1 = (a[..., None, None] for a in corners)
                masks = (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
            masks &= p["present"][:, :, None, None]
            image, labels = paint(np.zeros((m, 3)), masks, p["color"])
            frames_out.append(to_uint8(image)[:, None])
            masks_out.append(labels[:, None])
            params.append(p)
            if progress:
                progress(stop - start)
        p = {k: np.concatenate([q[k] for q in params]) for k in params[0]}
        masks = np.concatenate(masks_out)
        visibility = id_presence(masks[:, 0], big)
        absent = ~p["present"]
        return {
            "frames": np.concatenate(frames_out),
            "masks": masks,
            "counts": visibility.sum(-1, keepdims=True).astype(np.int16),
            "visibility": visibility,
            "color": np.where(absent[..., None], 0.0, p["color"]).astype(np.float32),
            "box": np.where(absent[..., None], 0.0, p["box"]).astype(np.float32),
        }


def _as_images(frames: np.ndarray) -> np.ndarray:
    """``[N T H W C]`` / ``[N H W C]`` uint8 or float in [0, 1] → ``[N T H W C]`` float."""
    x = np.asarray(frames)
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    if x.ndim == 4:
        x = x[:, None]
    if x.ndim != 5:
        raise ValueError(f"frames must be [N T H W C] or [N H W C], got shape {x.shape}")
    return x


def _foreground(x: np.ndarray, tol: float) -> np.ndarray:
    """``[M H W C]`` → bool ``[M H W]``: pixels farther than ``tol`` from their image's median border colour."""
    border = np.concatenate([x[:, 0], x[:, -1], x[:, :, 0], x[:, :, -1]], axis=1)  # [M 2(H+W) C]
    bg = np.median(border, axis=1)  # [M C]
    return np.abs(x - bg[:, None, None]).max(-1) > tol


def check_rule(rule: str, frames: np.ndarray, tol: float = 0.1) -> np.ndarray:
    """How well each image obeys a scene rule, from pixels alone: ``frames [N T H W C]``
    (or ``[N H W C]``; uint8 or float in [0, 1]) → ``scores [N]`` in [0, 1] (mean over T).

    Foreground is every pixel differing by more than ``tol`` from the median border colour.

    - ``same_color``: fraction of foreground pixels within ``tol`` (max over channels) of the
      dominant foreground colour (the mean of the most common colour bin, 8 bins per
      channel; ties go to the lowest bin).
    - ``stacked``: fraction of foreground pixels in the largest 4-connected foreground
      component that touches the bottom row (one tower standing on the floor → 1).

    An image without foreground scores 0.  Every image is scored at once (no per-image
    Python loop): bin counts by one bincount, components by one 3-D labelling that does
    not connect across images.
    """
    if rule not in ("same_color", "stacked"):
        raise ValueError(f"unknown rule {rule!r}; rules are same_color, stacked")
    x = _as_images(frames)
    n, t, h, w, c = x.shape
    x = x.reshape(n * t, h, w, c)
    m = n * t
    fg = _foreground(x, tol)  # [M H W]
    total = fg.reshape(m, -1).sum(1)
    if rule == "same_color":
        bins = np.clip((x * 8).astype(np.int64), 0, 7)
        key = bins[..., 0] * 64 + bins[..., 1] * 8 + (bins[..., 2] if c > 2 else 0)  # [M H W]
        item = np.broadcast_to(np.arange(m)[:, None, None], key.shape)
        counts = np.bincount((item * 512 + key)[fg], minlength=m * 512).reshape(m, 512)
        dominant_bin = counts.argmax(1)  # first maximum: the lowest bin among ties
        in_bin = fg & (key == dominant_bin[:, None, None])
        in_count = np.maximum(in_bin.reshape(m, -1).sum(1), 1)[:, None]
        dominant = (x * in_bin[..., None]).reshape(m, -1, c).sum(1) / in_count
        close = (np.abs(x - dominant[:, None, None]).max(-1) <= tol) & fg
        obeyed = close.reshape(m, -1).sum(1)
    else:
        from scipy import ndimage

        structure = np.zeros((3, 3, 3), bool)
        structure[1] = ndimage.generate_binary_structure(2, 1)  # 4-connected within an image only
        labelled, _ = ndimage.label(fg, structure=structure)
        sizes = np.bincount(labelled.ravel())
        sizes[0] = 0
        obeyed = sizes[labelled[:, -1, :]].max(1)  # largest component touching the bottom row
    scores = np.where(total > 0, obeyed / np.maximum(total, 1), 0.0)
    return scores.reshape(n, t).mean(1)
