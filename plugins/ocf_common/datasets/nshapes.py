"""``nshapes``: 4Shapes and its 2-, 3- and 10-shape variants (Rotating Features)."""

from __future__ import annotations

import numpy as np
from pydantic import Field, model_validator

from ocf.data.generator import Generator, chunks, id_presence, sample_rngs, stack_params
from ocf_common.datasets.draw import _check_range, bright_colors, sprite_masks, to_uint8

NSHAPES = (
    "square",
    "triangle_up",
    "triangle_down",
    "circle",
    "diamond",
    "triangle_left",
    "triangle_right",
    "cross",
    "hexagon",
    "ring",
)


class NShapes(Generator):
    """4Shapes for Rotating Features: the first ``num_shapes`` of (square, triangle_up,
    triangle_down, circle, diamond, triangle_left, triangle_right, cross, hexagon, ring),
    all present in every image, side ``size`` px, white on black (grey) or in random colours;
    overlapping shapes are allowed.

    Labels: 0 background, ``s + 1`` for shape ``s`` of the list (so ids mean shapes), -1
    where two or more shapes overlap. Frame channels (see :meth:`channels`): grey ``[g]``;
    ``depth`` adds a nearness channel → ``[g, d]``; ``color`` → ``[r, g, b]`` or
    ``[r, g, b, d]``. Nearness is ``255·z`` of the visible shape (``z`` in [0.2, 1], larger
    is nearer, background 0); nearer shapes are painted over farther ones. Without depth
    the painting order is random.

    Extras: ``counts [N 1]`` (= num_shapes), ``visibility [N S]``, ``position [N S 2]``
    centres px, ``color [N S 3]`` float RGB, ``depth [N S]`` z (1 without depth).
    """

    name = "nshapes"
    description = "4Shapes (Rotating Features): square, up/down triangle, circle (+ more for 10Shapes); -1 on overlaps"
    video = False
    axes = {"counts": "n t", "visibility": "n o", "position": "n o 2", "color": "n o 3", "depth": "n o"}

    class Options(Generator.Options):
        num_shapes: int = Field(
            4, ge=1, le=len(NSHAPES), description="number of shapes per image, the first ones of the shape list"
        )
        size: int = Field(11, ge=3, le=256, description="side of each shape in pixels")
        color: bool = Field(False, description="random RGB colours (C=3) instead of white on black (C=1)")
        depth: bool = Field(False, description="add a nearness channel (C=2 grey, C=4 with colour)")

        @model_validator(mode="after")
        def _fits(self):
            _check_range("size", self.size, "resolution", self.resolution)
            return self

    def channels(self, options):
        base = ["r", "g", "b"] if options.color else ["gray"]
        return base + (["depth"] if options.depth else [])

    def _params(self, rng, o):
        s, half = o.num_shapes, o.size / 2.0
        return {
            "position": rng.uniform(half, o.resolution - half, (s, 2)),
            "color": bright_colors(rng, s) if o.color else np.ones((s, 3)),
            "depth": rng.uniform(0.2, 1.0, s) if o.depth else np.ones(s),
            "order": rng.permutation(s),
        }

    def generate(self, n, seed, options, progress=None):
        o, res, s = options, options.resolution, options.num_shapes
        frames_out, masks_out, params = [], [], []
        for start, stop in chunks(n, 512):
            p = stack_params([self._params(rng, o) for rng in sample_rngs(seed, start, stop)])
            m = len(p["order"])
            shape = np.tile(np.arange(s), m)
            half = np.full(m * s, o.size / 2.0)
            masks = sprite_masks(
                NSHAPES,
                shape,
                p["position"][..., 0].ravel(),
                p["position"][..., 1].ravel(),
                half,
                np.zeros(m * s),
                res,
                res,
            ).reshape(m, s, res, res)
            order = np.argsort(p["depth"], axis=1, kind="stable") if o.depth else p["order"]
            image = np.zeros((m, res, res, 4), np.float32)
            rows = np.arange(m)
            for k in range(s):  # paint in order: later (nearer) shapes on top
                idx = order[:, k]
                mk = masks[rows, idx]
                value = np.concatenate([p["color"][rows, idx], p["depth"][rows, idx, None]], -1)
                image = np.where(mk[..., None], value[:, None, None, :].astype(np.float32), image)
            cover = masks.sum(1)
            labels = np.where(cover == 1, masks.argmax(1) + 1, 0)
            labels = np.where(cover > 1, -1, labels).astype(np.int16)
            if o.color:
                chans = image[..., :4] if o.depth else image[..., :3]
            else:
                chans = image[..., [0, 3]] if o.depth else image[..., :1]
            frames_out.append(to_uint8(chans)[:, None])
            masks_out.append(labels[:, None])
            params.append(p)
            if progress:
                progress(stop - start)
        p = {k: np.concatenate([q[k] for q in params]) for k in params[0]}
        masks = np.concatenate(masks_out)
        visibility = id_presence(masks[:, 0], s)
        return {
            "frames": np.concatenate(frames_out),
            "masks": masks,
            "counts": np.full((n, 1), s, np.int16),
            "visibility": visibility,
            "position": p["position"].astype(np.float32),
            "color": p["color"].astype(np.float32),
            "depth": p["depth"].astype(np.float32),
        }
