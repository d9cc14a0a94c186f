"""``shapes``: Multi-dSprites-like still scenes of occluding sprites."""

from __future__ import annotations

import numpy as np

from ocf.data.generator import Generator, chunks, id_presence, sample_rngs, stack_params
from ocf_common.datasets.draw import SPRITE_SHAPES, SpriteOptions, bright_colors, paint, sprite_masks, to_uint8


class Shapes(Generator):
    """Multi-dSprites-like scenes: ``min_objects..max_objects`` sprites (square, ellipse,
    heart) at random scale, orientation, position and colour, painted in order so later
    sprites occlude earlier ones; masks from the painting order.

    Extras (O = max_objects): ``counts [N 1]`` visible objects, ``present [N O]`` placed,
    ``visibility [N O]`` has visible pixels, ``shape [N O]`` index into
    ``square, ellipse, heart`` (-1 absent), ``color [N O 3]`` float RGB, ``position [N O 2]``
    centre (x, y) px, ``size [N O]`` half-size px, ``angle [N O]`` rad,
    ``background_color [N 3]``.
    """

    name = "shapes"
    description = "Multi-dSprites-like: 1-4 sprites (square, ellipse, heart), occluding, on black or a random colour"
    video = False
    axes = {
        "counts": "n t",
        "present": "n o",
        "visibility": "n o",
        "shape": "n o",
        "color": "n o 3",
        "position": "n o 2",
        "size": "n o",
        "angle": "n o",
        "background_color": "n 3",
    }

    class Options(SpriteOptions):
        """The sprite options, as they are."""

    def _params(self, rng: np.random.Generator, o: Options) -> dict:
        res, big = o.resolution, o.max_objects
        k = rng.integers(o.min_objects, o.max_objects + 1)
        shape_ids = o.shape_ids()
        size = rng.uniform(o.min_size, o.max_size, big) * res
        margin = 0.8 * size
        return {
            "present": np.arange(big) < k,
            "shape": shape_ids[rng.integers(0, len(shape_ids), big)],
            "size": size,
            "angle": rng.uniform(0, 2 * np.pi, big),
            "position": np.stack([rng.uniform(margin, res - margin), rng.uniform(margin, res - margin)], -1),
            "color": bright_colors(rng, big),
            "background_color": rng.uniform(0, 1, 3) if o.background == "random" else np.zeros(3),
        }

    def _draw(self, p: dict, res: int) -> tuple[np.ndarray, np.ndarray]:
        """One chunk's parameters → frames ``[M 1 H W 3]`` uint8 and masks ``[M 1 H W]``."""
        m, big = p["present"].shape
        pos = p["position"]
        masks = sprite_masks(
            SPRITE_SHAPES,
            p["shape"].ravel(),
            pos[..., 0].ravel(),
            pos[..., 1].ravel(),
            p["size"].ravel(),
            p["angle"].ravel(),
            res,
            res,
        )
        masks = masks.reshape(m, big, res, res) & p["present"][:, :, None, None]
        image, labels = paint(p["background_color"], masks, p["color"])
        return to_uint8(image)[:, None], labels[:, None]

    def generate(self, n, seed, options, progress=None):
        o = options
        frames, masks, params = [], [], []
        for start, stop in chunks(n, 512):
            p = stack_params([self._params(rng, o) for rng in sample_rngs(seed, start, stop)])
            f, m = self._draw(p, o.resolution)
            frames.append(f)
            masks.append(m)
            params.append(p)
            if progress:
                progress(stop - start)
        p = {k: np.concatenate([q[k] for q in params]) for k in params[0]}
        masks = np.concatenate(masks)
        visibility = id_presence(masks[:, 0], o.max_objects)
        absent = ~p["present"]
        return {
            "frames": np.concatenate(frames),
            "masks": masks,
            "counts": visibility.sum(-1, keepdims=True).astype(np.int16),
            "present": p["present"],
            "visibility": visibility,
            "shape": np.where(absent, -1, p["shape"]).astype(np.int8),
            "color": np.where(absent[..., None], 0.0, p["color"]).astype(np.float32),
            "position": np.where(absent[..., None], 0.0, p["position"]).astype(np.float32),
            "size": np.where(absent, 0.0, p["size"]).astype(np.float32),
            "angle": np.where(absent, 0.0, p["angle"]).astype(np.float32),
            "background_color": p["background_color"].astype(np.float32),
        }
