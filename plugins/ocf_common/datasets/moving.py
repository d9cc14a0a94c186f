"""Video generators: ``moving_sprites`` (sprites at constant velocity, bouncing, optional
camera pan) and ``moving_digits`` (moving multi-MNIST from scikit-learn's 8×8 digits)."""

from __future__ import annotations

import functools

import numpy as np
from pydantic import Field, model_validator

from ocf.data.generator import Generator, boxes_from_masks, chunks, id_presence, sample_rngs, stack_params
from ocf.errors import UserError
from ocf_common.datasets.draw import (
    SPRITE_SHAPES,
    SpriteOptions,
    Unit,
    _check_range,
    bright_colors,
    paint,
    sprite_masks,
    to_uint8,
)


def bounce(p0: np.ndarray, v: np.ndarray, t: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Position at times ``t`` of a point starting at ``p0`` with velocity ``v`` that
    reflects off ``lo`` and ``hi`` (all broadcastable)."""
    span = np.maximum(hi - lo, 1e-6)
    q = np.mod(p0 - lo + v * t, 2 * span)
    return lo + np.where(q <= span, q, 2 * span - q)


class MovingSprites(Generator):
    """Video of ``min_objects..max_objects`` sprites moving at constant velocity and
    bouncing off the borders, with identities (ids by painting order) stable over time.
    With ``camera_shift > 0`` the whole scene also pans at a constant random velocity of up
    to ``camera_shift`` px/frame per axis: objects are drawn at ``world - camera`` and may
    leave the view.

    Extras (O = max_objects): ``counts [N T]`` visible objects, ``boxes [N T O 4]`` tight
    (x, y, w, h) px, ``visibility [N O]`` visible in some frame, ``present [N O]``,
    ``shape [N O]``, ``color [N O 3]``, ``position [N T O 2]`` drawn centres px,
    ``velocity [N O 2]`` px/frame, ``camera [N T 2]`` camera offset (x, y) px.
    """

    name = "moving_sprites"
    description = "video: 1-3 sprites moving with constant velocity, bouncing, optional camera pan"
    video = True
    axes = {
        "counts": "n t",
        "boxes": "n t o 4",
        "visibility": "n o",
        "present": "n o",
        "shape": "n o",
        "color": "n o 3",
        "position": "n t o 2",
        "velocity": "n o 2",
        "camera": "n t 2",
    }

    class Options(SpriteOptions):
        frames: int = Field(8, ge=1, le=128, description="frames per clip (T)")
        max_objects: int = Field(3, ge=1, le=10, description="most sprites in a scene (an image, or a clip for video)")
        min_size: float = Field(
            0.12, gt=0.0, le=0.3, description="smallest sprite half-size, as a fraction of the resolution"
        )
        max_size: float = Field(
            0.2, gt=0.0, le=0.3, description="largest sprite half-size, as a fraction of the resolution"
        )
        min_speed: float = Field(0.5, ge=0.0, description="slowest sprite speed in px/frame")
        max_speed: float = Field(2.0, ge=0.0, description="fastest sprite speed in px/frame")
        camera_shift: float = Field(
            0.0, ge=0.0, le=16.0, description="largest camera pan per axis in px/frame (0: static camera)"
        )
        saturation: tuple[Unit, Unit] = Field(
            (0.6, 1.0),
            description="range of the sprites' HSV saturation; below 1 no sprite channel is near "
            "black (darkest channel >= 0.75 (1 - max))",
        )

        @model_validator(mode="after")
        def _motion_ranges(self):
            _check_range("min_speed", self.min_speed, "max_speed", self.max_speed)
            _check_range("saturation[0]", self.saturation[0], "saturation[1]", self.saturation[1])
            return self

    def _params(self, rng, o):
        res, big = o.resolution, o.max_objects
        k = rng.integers(o.min_objects, o.max_objects + 1)
        shape_ids = o.shape_ids()
        size = rng.uniform(o.min_size, o.max_size, big) * res
        margin = 1.1 * size
        speed = rng.uniform(o.min_speed, o.max_speed, big)
        heading = rng.uniform(0, 2 * np.pi, big)
        return {
            "present": np.arange(big) < k,
            "shape": shape_ids[rng.integers(0, len(shape_ids), big)],
            "size": size,
            "angle": rng.uniform(0, 2 * np.pi, big),
            "start": np.stack([rng.uniform(margin, res - margin), rng.uniform(margin, res - margin)], -1),
            "velocity": np.stack([speed * np.cos(heading), speed * np.sin(heading)], -1),
            "color": bright_colors(rng, big, o.saturation),
            "background_color": rng.uniform(0, 1, 3) if o.background == "random" else np.zeros(3),
            "camera_velocity": rng.uniform(-o.camera_shift, o.camera_shift, 2),
        }

    def generate(self, n, seed, options, progress=None):
        o, res, big, t_len = options, options.resolution, options.max_objects, options.frames
        t = np.arange(t_len, dtype=np.float64)
        frames_out, masks_out, params, pos_out, cam_out = [], [], [], [], []
        for start, stop in chunks(n, 128):
            p = stack_params([self._params(rng, o) for rng in sample_rngs(seed, start, stop)])
            m = len(p["present"])
            margin = (1.1 * p["size"])[:, None, :, None]  # [M 1 O 1]
            world = bounce(p["start"][:, None], p["velocity"][:, None], t[None, :, None, None], margin, res - margin)
            camera = p["camera_velocity"][:, None, :] * t[None, :, None]  # [M T 2]
            pos = world - camera[:, :, None, :]  # [M T O 2]

            def rep(a, m=m):  # [M O] → [M T O] flattened
                return np.broadcast_to(a[:, None], (m, t_len, big)).ravel()

            masks = sprite_masks(
                SPRITE_SHAPES,
                rep(p["shape"]),
                pos[..., 0].ravel(),
                pos[..., 1].ravel(),
                rep(p["size"]),
                rep(p["angle"]),
                res,
                res,
            ).reshape(m, t_len, big, res, res)
            masks &= p["present"][:, None, :, None, None]
            bg = np.repeat(p["background_color"], t_len, 0)
            colors = np.repeat(p["color"], t_len, 0)
            image, labels = paint(bg, masks.reshape(m * t_len, big, res, res), colors)
            frames_out.append(to_uint8(image).reshape(m, t_len, res, res, 3))
            masks_out.append(labels.reshape(m, t_len, res, res))
            pos_out.append(pos)
            cam_out.append(camera)
            params.append(p)
            if progress:
                progress(stop - start)
        p = {k: np.concatenate([q[k] for q in params]) for k in params[0]}
        masks = np.concatenate(masks_out)
        visible = id_presence(masks, big)  # [N T O]
        absent = ~p["present"]
        position = np.concatenate(pos_out)
        return {
            "frames": np.concatenate(frames_out),
            "masks": masks,
            "counts": visible.sum(-1).astype(np.int16),
            "boxes": boxes_from_masks(masks, big),
            "visibility": visible.any(1),
            "present": p["present"],
            "shape": np.where(absent, -1, p["shape"]).astype(np.int8),
            "color": np.where(absent[..., None], 0.0, p["color"]).astype(np.float32),
            "position": np.where(absent[:, None, :, None], 0.0, position).astype(np.float32),
            "velocity": np.where(absent[..., None], 0.0, p["velocity"]).astype(np.float32),
            "camera": np.concatenate(cam_out).astype(np.float32),
        }


@functools.lru_cache(maxsize=4)
def digit_glyphs(size: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8×8 digits upsampled (bilinear) to ``[1797 size size]`` uint8,
    with their labels ``[1797]``."""
    import torch

    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise UserError(
            "moving_digits draws scikit-learn's bundled 8x8 digits, and scikit-learn is not "
            "installed: pip install 'ocf[digits]'"
        ) from None
    digits = load_digits()
    images = torch.from_numpy(digits.images.astype(np.float32) / 16.0)[:, None]
    up = torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    return to_uint8(up[:, 0].clamp(0, 1).numpy()), digits.target.astype(np.int8)


class MovingDigits(Generator):
    """Moving multi-MNIST (SQAIR): ``min_digits..max_digits`` digits (uniform count) from
    scikit-learn's bundled 8×8 digits upsampled to ``digit_size``, on a ``resolution``
    canvas (50), placed without overlap in the first frame, moving with noisy bounded
    acceleration and bouncing off the borders, composited with max (greyscale, C=1).

    Masks: id ``o + 1`` where digit ``o``'s pixel is the maximum and above
    ``mask_threshold`` (0; ties go to the lower id). Extras (O = max_digits): ``counts [N T]``
    digits in the frame (all of them: digits stay on the canvas), ``boxes [N T O 4]`` glyph
    boxes (x, y, w, h) px, zero when absent, ``visibility [N O]`` present, ``labels [N O]``
    digit class (-1 absent).

    Needs scikit-learn (``pip install 'ocf[digits]'``); without it :meth:`generate` raises
    :class:`~ocf.errors.UserError` naming the extra.
    """

    name = "moving_digits"
    description = "moving multi-MNIST from sklearn's 8x8 digits: 0-2 digits, 50x50, 10 frames, bounce, max-composited"
    video = True
    axes = {"counts": "n t", "boxes": "n t o 4", "visibility": "n o", "labels": "n o"}

    class Options(Generator.Options):
        resolution: int = Field(50, ge=8, le=512, description="canvas height and width in pixels")
        frames: int = Field(10, ge=1, le=128, description="frames per clip (T)")
        digit_size: int = Field(20, ge=4, le=128, description="side of an upsampled digit glyph in pixels")
        min_digits: int = Field(0, ge=0, le=6, description="fewest digits per clip")
        max_digits: int = Field(2, ge=1, le=6, description="most digits per clip")
        max_speed: float = Field(3.0, gt=0.0, description="speed bound per axis in px/frame")
        accel_std: float = Field(0.5, ge=0.0, description="standard deviation of the per-frame acceleration noise")
        max_accel: float = Field(1.0, ge=0.0, description="bound of the acceleration per axis in px/frame^2")
        mask_threshold: int = Field(
            0, ge=0, le=254, description="a pixel belongs to a digit's mask when its intensity (0-255) is above this"
        )

        @model_validator(mode="after")
        def _fits(self):
            _check_range("min_digits", self.min_digits, "max_digits", self.max_digits)
            if self.digit_size > self.resolution or 2 * self.max_digits * self.digit_size**2 > self.resolution**2:
                raise ValueError(
                    f"max_digits ({self.max_digits}) digits of digit_size {self.digit_size} "
                    f"do not fit without overlap on a {self.resolution}px canvas"
                )
            return self

    def _params(self, rng, o, glyph_count):
        big, ds, hi = o.max_digits, o.digit_size, o.resolution - o.digit_size
        k = int(rng.integers(o.min_digits, o.max_digits + 1))
        pos = np.zeros((big, 2))
        for _ in range(10000):  # rejection: no overlap in the first frame
            pos = rng.integers(0, hi + 1, (big, 2)).astype(np.float64)
            d = np.abs(pos[:k, None] - pos[None, :k]).max(-1) + np.eye(k) * ds
            if k < 2 or (d >= ds).all():
                break
        else:  # pragma: no cover - the option validator rules this out in practice
            raise RuntimeError("could not place digits without overlap")
        heading = rng.uniform(0, 2 * np.pi, big)
        speed = rng.uniform(0.5, 1.0, big) * o.max_speed
        accel = np.clip(rng.normal(0, o.accel_std, (o.frames, big, 2)), -o.max_accel, o.max_accel)
        return {
            "present": np.arange(big) < k,
            "glyph": rng.integers(0, glyph_count, big),
            "start": pos,
            "velocity": np.stack([speed * np.cos(heading), speed * np.sin(heading)], -1),
            "accel": accel,
        }

    def generate(self, n, seed, options, progress=None):
        o = options
        res, ds, big, t_len = o.resolution, o.digit_size, o.max_digits, o.frames
        glyphs, glyph_labels = digit_glyphs(ds)
        hi = float(res - ds)
        frames = np.zeros((n, t_len, res, res, 1), np.uint8)
        masks = np.zeros((n, t_len, res, res), np.int16)
        boxes = np.zeros((n, t_len, big, 4), np.float32)
        present = np.zeros((n, big), bool)
        labels = np.full((n, big), -1, np.int8)
        for start, stop in chunks(n, 256):
            p = stack_params([self._params(rng, o, len(glyphs)) for rng in sample_rngs(seed, start, stop)])
            m = stop - start
            # dynamics, vectorised over the chunk: corners [M T O 2]
            corner = np.zeros((m, t_len, big, 2))
            x, v = p["start"].copy(), p["velocity"].copy()
            for t in range(t_len):
                if t > 0:
                    v = np.clip(v + p["accel"][:, t], -o.max_speed, o.max_speed)
                    x = x + v
                    low, high = x < 0, x > hi
                    x = np.where(low, -x, np.where(high, 2 * hi - x, x))
                    v = np.where(low | high, -v, v)
                    x = np.clip(x, 0, hi)
                corner[:, t] = x
            corner = np.round(corner).astype(int)
            layers = np.zeros((m, t_len, big, res, res), np.uint8)
            for j in range(m):
                i = start + j
                k = int(p["present"][j].sum())
                for oi in range(k):
                    g = glyphs[p["glyph"][j, oi]]
                    for t in range(t_len):
                        cx, cy = corner[j, t, oi]
                        layers[j, t, oi, cy : cy + ds, cx : cx + ds] = g
                        boxes[i, t, oi] = (cx, cy, ds, ds)
                labels[i, :k] = glyph_labels[p["glyph"][j, :k]]
            top = layers.max(2)  # [M T H W]
            ids = np.zeros(top.shape, np.int16)
            for oi in reversed(range(big)):  # ties go to the lower id
                ids[(layers[:, :, oi] == top) & (top > o.mask_threshold)] = oi + 1
            frames[start:stop, ..., 0] = top
            masks[start:stop] = ids
            present[start:stop] = p["present"]
            if progress:
                progress(stop - start)
        counts = np.repeat(present.sum(-1, keepdims=True), t_len, 1).astype(np.int16)
        return {
            "frames": frames,
            "masks": masks,
            "counts": counts,
            "boxes": boxes,
            "visibility": present,
            "labels": labels,
        }

    def channels(self, options):
        return ["gray"]
