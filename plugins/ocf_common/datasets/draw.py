"""What the sprite generators share: unit shapes drawn on a pixel grid, painting in order,
bright colours, option range checks and the :class:`SpriteOptions` of sprite scenes."""

from __future__ import annotations

import functools
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, model_validator

from ocf.data.generator import Generator

SPRITE_SHAPES = ("square", "ellipse", "heart")

Unit = Annotated[float, Field(ge=0.0, le=1.0)]


@functools.lru_cache(maxsize=8)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(ys [H W], xs [H W])`` as float32."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    return ys, xs


def _local(cx, cy, size, angle, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates in each sprite's frame: ``[M]`` centres, half-sizes (px) and angles →
    ``u, v [M H W]`` with the sprite spanning about ``[-1, 1]`` (v points down)."""
    ys, xs = _grid(h, w)
    dx = xs[None] - np.asarray(cx, np.float32)[:, None, None]
    dy = ys[None] - np.asarray(cy, np.float32)[:, None, None]
    c = np.cos(angle).astype(np.float32)[:, None, None]
    s = np.sin(angle).astype(np.float32)[:, None, None]
    inv = (1.0 / np.asarray(size, np.float32))[:, None, None]
    return (c * dx + s * dy) * inv, (-s * dx + c * dy) * inv


def _inside(name: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean ``[M H W]``: is the local point (u, v) inside the named unit shape."""
    au, av = np.abs(u), np.abs(v)
    if name == "square":
        return np.maximum(au, av) <= 1.0
    if name == "ellipse":
        return u * u + (v / 0.55) ** 2 <= 1.0
    if name == "heart":  # (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0 with y up, lobes on top
        x, y = u * 1.15, -v * 1.15 + 0.12
        r = x * x + y * y - 1.0
        return r * r * r - x * x * y * y * y <= 0.0
    if name == "circle":
        return u * u + v * v <= 1.0
    if name == "triangle_up":
        return (av <= 1.0) & (au <= (v + 1.0) / 2.0)
    if name == "triangle_down":
        return (av <= 1.0) & (au <= (1.0 - v) / 2.0)
    if name == "triangle_left":
        return (au <= 1.0) & (av <= (u + 1.0) / 2.0)
    if name == "triangle_right":
        return (au <= 1.0) & (av <= (1.0 - u) / 2.0)
    if name == "diamond":
        return au + av <= 1.0
    if name == "cross":
        return ((au <= 1 / 3) & (av <= 1.0)) | ((av <= 1 / 3) & (au <= 1.0))
    if name == "hexagon":
        return (av <= 0.866) & (0.866 * au + 0.5 * av <= 0.866)
    if name == "ring":
        r2 = u * u + v * v
        return (r2 <= 1.0) & (r2 >= 0.3)
    raise ValueError(f"unknown shape {name!r}")


def sprite_masks(names: tuple[str, ...], shape, cx, cy, size, angle, h: int, w: int) -> np.ndarray:
    """Masks ``[M H W]`` bool of ``M`` sprites: shape index into ``names``, centre (px),
    half-size (px) and angle (rad), each ``[M]``."""
    shape = np.asarray(shape)
    cx, cy, size, angle = (np.asarray(a) for a in (cx, cy, size, angle))
    out = np.zeros((len(shape), h, w), dtype=bool)
    for sid in np.unique(shape):
        sel = shape == sid
        u, v = _local(cx[sel], cy[sel], size[sel], angle[sel], h, w)
        out[sel] = _inside(names[int(sid)], u, v)
    return out


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """``[... 3]`` HSV in [0, 1] → RGB in [0, 1]."""
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    i = np.floor(h * 6.0).astype(int) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = np.stack(
        [
            np.stack([v, t, p], -1),
            np.stack([q, v, p], -1),
            np.stack([p, v, t], -1),
            np.stack([p, q, v], -1),
            np.stack([t, p, v], -1),
            np.stack([v, p, q], -1),
        ]
    )
    return np.take_along_axis(table, i[None, ..., None].repeat(3, -1), 0)[0]


def bright_colors(rng: np.random.Generator, k: int, saturation: tuple[float, float] = (0.6, 1.0)) -> np.ndarray:
    """``[k 3]`` bright RGB colours in [0, 1] (never close to black): uniform hue, HSV
    saturation uniform in ``saturation``, value in [0.75, 1].  Below saturation 1 no
    channel is near 0: the darkest channel is ``value * (1 - saturation)``."""
    hsv = np.stack([rng.uniform(0, 1, k), rng.uniform(*saturation, k), rng.uniform(0.75, 1, k)], -1)
    return hsv_to_rgb(hsv)


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Float in [0, 1] → uint8 in [0, 255] (rounded, clipped)."""
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def paint(background: np.ndarray, masks: np.ndarray, colors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Paint objects in order (later ones occlude earlier ones).

    background ``[M 3]``, masks ``[M O H W]`` bool, colors ``[M O 3]`` → image
    ``[M H W 3]`` float and labels ``[M H W]`` int16 (object ``o`` gets id ``o + 1``)."""
    m, o, h, w = masks.shape
    image = np.broadcast_to(background[:, None, None, :], (m, h, w, 3)).astype(np.float32)
    labels = np.zeros((m, h, w), dtype=np.int16)
    for k in range(o):
        mk = masks[:, k]
        image = np.where(mk[..., None], colors[:, k, None, None, :].astype(np.float32), image)
        labels[mk] = k + 1
    return image, labels


def _check_range(lo_name: str, lo, hi_name: str, hi) -> None:
    """Raise ``ValueError`` naming both options unless ``lo <= hi``."""
    if lo > hi:
        raise ValueError(f"{lo_name} ({lo}) must be <= {hi_name} ({hi})")


class SpriteOptions(Generator.Options):
    """Options of sprite scenes (``shapes``, ``moving_sprites``): how many sprites, how
    large, which shapes, on which background."""

    min_objects: int = Field(1, ge=1, le=10, description="fewest sprites in a scene (an image, or a clip for video)")
    max_objects: int = Field(4, ge=1, le=10, description="most sprites in a scene (an image, or a clip for video)")
    background: Literal["black", "random"] = Field(
        "black", description="background colour: black or a random RGB colour per scene"
    )
    min_size: float = Field(
        0.12, gt=0.0, le=0.4, description="smallest sprite half-size, as a fraction of the resolution"
    )
    max_size: float = Field(
        0.22, gt=0.0, le=0.4, description="largest sprite half-size, as a fraction of the resolution"
    )
    shapes: list[Literal["square", "ellipse", "heart"]] = Field(
        default_factory=lambda: list(SPRITE_SHAPES), min_length=1, description="sprite shapes to draw from"
    )

    @model_validator(mode="after")
    def _sprite_ranges(self):
        _check_range("min_objects", self.min_objects, "max_objects", self.max_objects)
        _check_range("min_size", self.min_size, "max_size", self.max_size)
        return self

    def shape_ids(self) -> np.ndarray:
        """Indices into :data:`SPRITE_SHAPES` of the chosen ``shapes``."""
        return np.array([SPRITE_SHAPES.index(s) for s in self.shapes])
