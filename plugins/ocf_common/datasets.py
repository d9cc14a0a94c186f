"""Procedural datasets with exact ground truth (REFERENCE Appendix A).

Every generator is deterministic under its seed: sample ``i`` is drawn from its own random
stream seeded ``(seed, i)`` (so a file of 100 samples is the first 100 of a file of 1,000),
then painted in vectorised chunks. Shapes: ``frames [N T H W C]`` uint8, ``masks [N T H W]``
int16 (0 background, 1.. object ids stable over time, -1 where shapes overlap in
``nshapes``), extras ``[N ...]`` described in each class docstring.

``GENERATORS`` maps names to classes; :func:`check_rule` scores images of the
``correlated`` generator's scene rules.
"""

from __future__ import annotations

import functools
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, model_validator

from ocf.data.generator import (
    Generator,
    boxes_from_masks,
    chunks,
    id_presence,
    sample_rngs,
    stack_params,
)

SPRITE_SHAPES = ("square", "ellipse", "heart")
NSHAPES = ("square", "triangle_up", "triangle_down", "circle", "diamond",
           "triangle_left", "triangle_right", "cross", "hexagon", "ring")
TETROMINO_COLORS = np.array(
    [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 0, 255], [0, 255, 255]], dtype=np.uint8
)


# =========================================================================== drawing helpers


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
    out = np.zeros((len(shape), h, w), dtype=bool)
    for sid in np.unique(shape):
        sel = shape == sid
        u, v = _local(np.asarray(cx)[sel], np.asarray(cy)[sel], np.asarray(size)[sel], np.asarray(angle)[sel], h, w)
        out[sel] = _inside(names[int(sid)], u, v)
    return out


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """``[... 3]`` HSV in [0, 1] → RGB in [0, 1]."""
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    i = np.floor(h * 6.0).astype(int) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = np.stack([
        np.stack([v, t, p], -1), np.stack([q, v, p], -1), np.stack([p, v, t], -1),
        np.stack([p, q, v], -1), np.stack([t, p, v], -1), np.stack([v, p, q], -1),
    ])
    return np.take_along_axis(table, i[None, ..., None].repeat(3, -1), 0)[0]


def bright_colors(rng: np.random.Generator, k: int, saturation: tuple[float, float] = (0.6, 1.0)) -> np.ndarray:
    """``[k 3]`` bright RGB colours in [0, 1] (never close to black): uniform hue, HSV
    saturation uniform in ``saturation``, value in [0.75, 1].  Below saturation 1 no
    channel is near 0: the darkest channel is ``value * (1 - saturation)``."""
    hsv = np.stack([rng.uniform(0, 1, k), rng.uniform(*saturation, k), rng.uniform(0.75, 1, k)], -1)
    return hsv_to_rgb(hsv)


def to_uint8(x: np.ndarray) -> np.ndarray:
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


Unit = Annotated[float, Field(ge=0.0, le=1.0)]


def _check_range(lo_name: str, lo, hi_name: str, hi) -> None:
    if lo > hi:
        raise ValueError(f"{lo_name} ({lo}) must be <= {hi_name} ({hi})")


# =========================================================================== shapes


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
    axes = {"counts": "n t", "present": "n o", "visibility": "n o", "shape": "n o", "color": "n o 3",
            "position": "n o 2", "size": "n o", "angle": "n o", "background_color": "n 3"}

    class Options(Generator.Options):
        min_objects: int = Field(1, ge=1, le=10, description="fewest sprites per image")
        max_objects: int = Field(4, ge=1, le=10, description="most sprites per image")
        background: Literal["black", "random"] = Field("black", description="background colour: black or a random RGB colour per image")
        min_size: float = Field(0.12, gt=0.0, le=0.4, description="smallest sprite half-size, as a fraction of the resolution")
        max_size: float = Field(0.22, gt=0.0, le=0.4, description="largest sprite half-size, as a fraction of the resolution")
        shapes: list[Literal["square", "ellipse", "heart"]] = Field(
            default_factory=lambda: list(SPRITE_SHAPES), min_length=1, description="sprite shapes to draw from")

        @model_validator(mode="after")
        def _ranges(self):
            _check_range("min_objects", self.min_objects, "max_objects", self.max_objects)
            _check_range("min_size", self.min_size, "max_size", self.max_size)
            return self

    def _params(self, rng: np.random.Generator, o: Options) -> dict:
        res, big = o.resolution, o.max_objects
        k = rng.integers(o.min_objects, o.max_objects + 1)
        shape_ids = np.array([SPRITE_SHAPES.index(s) for s in o.shapes])
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

    def generate(self, n, seed, options, progress=None):
        o, res = options, options.resolution
        out = {k: [] for k in ("frames", "masks")}
        params = []
        for start, stop in chunks(n, 512):
            p = stack_params([self._params(rng, o) for rng in sample_rngs(seed, start, stop)])
            m, big = p["present"].shape
            masks = sprite_masks(SPRITE_SHAPES, p["shape"].ravel(), p["position"][..., 0].ravel(),
                                 p["position"][..., 1].ravel(), p["size"].ravel(), p["angle"].ravel(), res, res)
            masks = masks.reshape(m, big, res, res) & p["present"][:, :, None, None]
            image, labels = paint(p["background_color"], masks, p["color"])
            out["frames"].append(to_uint8(image)[:, None])
            out["masks"].append(labels[:, None])
            params.append(p)
            if progress:
                progress(stop - start)
        p = {k: np.concatenate([q[k] for q in params]) for k in params[0]}
        frames, masks = np.concatenate(out["frames"]), np.concatenate(out["masks"])
        visibility = id_presence(masks[:, 0], o.max_objects)
        absent = ~p["present"]
        return {
            "frames": frames,
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


# =========================================================================== tetrominoes


@functools.lru_cache(maxsize=1)
def tetromino_placements() -> tuple[np.ndarray, ...]:
    """The 19 fixed tetrominoes (I, O, T, S, Z, J, L in every distinct rotation), each a
    ``[4 2]`` array of (row, col) cells with minimum 0."""
    bases = {
        "I": [(0, 0), (0, 1), (0, 2), (0, 3)], "O": [(0, 0), (0, 1), (1, 0), (1, 1)],
        "T": [(0, 0), (0, 1), (0, 2), (1, 1)], "S": [(0, 1), (0, 2), (1, 0), (1, 1)],
        "Z": [(0, 0), (0, 1), (1, 1), (1, 2)], "J": [(0, 0), (1, 0), (1, 1), (1, 2)],
        "L": [(0, 2), (1, 0), (1, 1), (1, 2)],
    }
    out, seen = [], set()
    for cells in bases.values():
        c = np.array(cells)
        for _ in range(4):
            c = np.stack([c[:, 1], -c[:, 0]], -1)  # rotate 90 degrees
            c = c - c.min(0)
            key = tuple(sorted(map(tuple, c.tolist())))
            if key not in seen:
                seen.add(key)
                out.append(np.array(key))
    assert len(out) == 19
    return tuple(out)


@functools.lru_cache(maxsize=64)
def _piece_masks(index: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel mask ``[h w]`` of tetromino ``index`` with cells of ``block`` px, and the same
    grown by one pixel in every direction ``[h+2 w+2]``."""
    cells = tetromino_placements()[index]
    rows, cols = cells.max(0) + 1
    solid = np.zeros((rows * block, cols * block), dtype=bool)
    for r, c in cells:
        solid[r * block:(r + 1) * block, c * block:(c + 1) * block] = True
    halo = np.zeros((solid.shape[0] + 2, solid.shape[1] + 2), dtype=bool)
    for dy in range(3):
        for dx in range(3):
            halo[dy:dy + solid.shape[0], dx:dx + solid.shape[1]] |= solid
    return solid, halo


class Tetrominoes(Generator):
    """Tetrominoes-like: exactly three of the 19 tetromino placements in 6 colours on black,
    drawn on a ``canvas`` (35) square image, not overlapping or touching, then centre-cropped
    to ``resolution`` (32).

    Extras: ``counts [N 1]``, ``visibility [N 3]``, ``shape [N 3]`` (0..18),
    ``color [N 3]`` (index into red, green, blue, yellow, magenta, cyan),
    ``position [N 3 2]`` top-left (x, y) px in the cropped image (may be negative).
    """

    name = "tetrominoes"
    description = "Tetrominoes-like: three of the 19 tetromino placements in 6 colours on black, 35x35 cropped to 32"
    video = False
    axes = {"counts": "n t", "visibility": "n o", "shape": "n o", "color": "n o", "position": "n o 2"}

    class Options(Generator.Options):
        canvas: int = Field(35, ge=16, le=512, description="size of the image the pieces are drawn on before cropping")
        block: int = Field(5, ge=1, le=32, description="side of one tetromino cell in pixels")

        @model_validator(mode="after")
        def _fits(self):
            _check_range("resolution", self.resolution, "canvas", self.canvas)
            if 4 * self.block + 2 > self.canvas:
                raise ValueError(f"block ({self.block}) is too large for canvas ({self.canvas})")
            return self

    def _sample(self, rng: np.random.Generator, o: Options):
        """Three pieces placed one by one, each retried until it neither overlaps nor
        touches the ones before: shapes [3], colours [3], top-left (x, y) [3 2]."""
        cv = o.canvas
        for _ in range(100):
            occupied = np.zeros((cv, cv), dtype=bool)
            shapes = rng.integers(0, 19, 3)
            colors = rng.integers(0, 6, 3)
            pos = []
            for s in shapes:
                solid, halo = _piece_masks(int(s), o.block)
                ph, pw = solid.shape
                for _ in range(200):
                    y, x = int(rng.integers(0, cv - ph + 1)), int(rng.integers(0, cv - pw + 1))
                    # the halo (piece grown by one pixel) must not meet earlier pieces
                    y0, x0 = max(y - 1, 0), max(x - 1, 0)
                    region = occupied[y0:y + ph + 1, x0:x + pw + 1]
                    window = halo[y0 - (y - 1):y0 - (y - 1) + region.shape[0], x0 - (x - 1):x0 - (x - 1) + region.shape[1]]
                    if not (region & window).any():
                        occupied[y:y + ph, x:x + pw] |= solid
                        pos.append((x, y))
                        break
                else:
                    break
            if len(pos) == 3:
                return shapes, colors, np.array(pos)
        raise RuntimeError("could not place three tetrominoes without overlap")  # pragma: no cover

    def generate(self, n, seed, options, progress=None):
        o = options
        cv, b, res = o.canvas, o.block, o.resolution
        off = (cv - res) // 2
        pieces = tetromino_placements()
        frames = np.zeros((n, 1, res, res, 3), dtype=np.uint8)
        masks = np.zeros((n, 1, res, res), dtype=np.int16)
        shape = np.zeros((n, 3), np.int8)
        color = np.zeros((n, 3), np.int8)
        position = np.zeros((n, 3, 2), np.float32)
        for start, stop in chunks(n, 256):
            for i, rng in zip(range(start, stop), sample_rngs(seed, start, stop)):
                shapes, colors, pos = self._sample(rng, o)
                img = np.zeros((cv, cv, 3), np.uint8)
                lab = np.zeros((cv, cv), np.int16)
                for k in range(3):
                    for r, c in pieces[shapes[k]]:
                        y, x = pos[k, 1] + r * b, pos[k, 0] + c * b
                        img[y:y + b, x:x + b] = TETROMINO_COLORS[colors[k]]
                        lab[y:y + b, x:x + b] = k + 1
                frames[i, 0] = img[off:off + res, off:off + res]
                masks[i, 0] = lab[off:off + res, off:off + res]
                shape[i], color[i], position[i] = shapes, colors, pos - off
            if progress:
                progress(stop - start)
        visibility = id_presence(masks[:, 0], 3)
        return {"frames": frames, "masks": masks, "counts": visibility.sum(-1, keepdims=True).astype(np.int16),
                "visibility": visibility, "shape": shape, "color": color, "position": position}


# =========================================================================== nshapes (4Shapes)


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
        num_shapes: int = Field(4, ge=1, le=len(NSHAPES), description="number of shapes per image (2, 3, 4 or 10 in the paper), the first ones of the shape list")
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
            masks = sprite_masks(NSHAPES, shape, p["position"][..., 0].ravel(), p["position"][..., 1].ravel(),
                                 half, np.zeros(m * s), res, res).reshape(m, s, res, res)
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
        return {"frames": np.concatenate(frames_out), "masks": masks,
                "counts": np.full((n, 1), s, np.int16), "visibility": visibility,
                "position": p["position"].astype(np.float32), "color": p["color"].astype(np.float32),
                "depth": p["depth"].astype(np.float32)}


# =========================================================================== moving sprites


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
    axes = {"counts": "n t", "boxes": "n t o 4", "visibility": "n o", "present": "n o", "shape": "n o",
            "color": "n o 3", "position": "n t o 2", "velocity": "n o 2", "camera": "n t 2"}

    class Options(Generator.Options):
        frames: int = Field(8, ge=1, le=128, description="frames per clip (T)")
        min_objects: int = Field(1, ge=1, le=10, description="fewest sprites per clip")
        max_objects: int = Field(3, ge=1, le=10, description="most sprites per clip")
        min_size: float = Field(0.12, gt=0.0, le=0.3, description="smallest sprite half-size, fraction of the resolution")
        max_size: float = Field(0.2, gt=0.0, le=0.3, description="largest sprite half-size, fraction of the resolution")
        min_speed: float = Field(0.5, ge=0.0, description="slowest sprite speed in px/frame")
        max_speed: float = Field(2.0, ge=0.0, description="fastest sprite speed in px/frame")
        camera_shift: float = Field(0.0, ge=0.0, le=16.0, description="largest camera pan per axis in px/frame (0: static camera)")
        background: Literal["black", "random"] = Field("black", description="background colour: black or a random RGB colour per clip")
        saturation: tuple[Unit, Unit] = Field((0.6, 1.0), description="range of the sprites' HSV saturation; "
                                                "below 1 no sprite channel is near black (darkest channel >= 0.75 (1 - max))")
        shapes: list[Literal["square", "ellipse", "heart"]] = Field(
            default_factory=lambda: list(SPRITE_SHAPES), min_length=1, description="sprite shapes to draw from")

        @model_validator(mode="after")
        def _ranges(self):
            _check_range("min_objects", self.min_objects, "max_objects", self.max_objects)
            _check_range("min_size", self.min_size, "max_size", self.max_size)
            _check_range("min_speed", self.min_speed, "max_speed", self.max_speed)
            _check_range("saturation[0]", self.saturation[0], "saturation[1]", self.saturation[1])
            return self

    def _params(self, rng, o):
        res, big = o.resolution, o.max_objects
        k = rng.integers(o.min_objects, o.max_objects + 1)
        shape_ids = np.array([SPRITE_SHAPES.index(s) for s in o.shapes])
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

            def rep(a):  # [M O] → [M T O] flattened
                return np.broadcast_to(a[:, None], (m, t_len, big)).ravel()

            masks = sprite_masks(SPRITE_SHAPES, rep(p["shape"]), pos[..., 0].ravel(), pos[..., 1].ravel(),
                                 rep(p["size"]), rep(p["angle"]), res, res).reshape(m, t_len, big, res, res)
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


# =========================================================================== moving digits


@functools.lru_cache(maxsize=4)
def digit_glyphs(size: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8×8 digits upsampled (bilinear) to ``[1797 size size]`` uint8,
    with their labels ``[1797]``."""
    import torch
    from sklearn.datasets import load_digits

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
    ``mask_threshold`` (0; ties go to the lower id). Extras (O = max_digits): ``counts [N T]`` digits in the frame (all of them:
    digits stay on the canvas), ``boxes [N T O 4]`` glyph boxes (x, y, w, h) px, zero when
    absent, ``visibility [N O]`` present, ``labels [N O]`` digit class (-1 absent).
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
        mask_threshold: int = Field(0, ge=0, le=254, description="a pixel belongs to a digit's mask when its intensity (0-255) is above this")

        @model_validator(mode="after")
        def _fits(self):
            _check_range("min_digits", self.min_digits, "max_digits", self.max_digits)
            if self.digit_size > self.resolution or 2 * self.max_digits * self.digit_size ** 2 > self.resolution ** 2:
                raise ValueError(f"max_digits ({self.max_digits}) digits of digit_size {self.digit_size} "
                                 f"do not fit without overlap on a {self.resolution}px canvas")
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
                        layers[j, t, oi, cy:cy + ds, cx:cx + ds] = g
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
        return {"frames": frames, "masks": masks, "counts": counts, "boxes": boxes,
                "visibility": present, "labels": labels}

    def channels(self, options):
        return ["gray"]


# =========================================================================== correlated scenes


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
        rule: Literal["same_color", "stacked"] = Field("same_color", description="the scene-level rule every image obeys")
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
            return {"present": present, "shape": rng.integers(0, 3, big), "size": size,
                    "angle": rng.uniform(0, 2 * np.pi, big),
                    "box": np.stack([rng.uniform(margin, res - margin), rng.uniform(margin, res - margin), size, size], -1),
                    "color": np.repeat(bright_colors(rng, 1), big, 0)}
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
        return {"present": present, "shape": np.zeros(big, int), "size": box[:, 2] / 2, "angle": np.zeros(big),
                "box": box, "color": bright_colors(rng, big)}

    def generate(self, n, seed, options, progress=None):
        o, res, big = options, options.resolution, options.max_objects
        frames_out, masks_out, params = [], [], []
        ys, xs = _grid(res, res)
        for start, stop in chunks(n, 512):
            p = stack_params([self._params(rng, o) for rng in sample_rngs(seed, start, stop)])
            m = len(p["present"])
            b = p["box"]
            if o.rule == "same_color":
                masks = sprite_masks(SPRITE_SHAPES, p["shape"].ravel(), b[..., 0].ravel(), b[..., 1].ravel(),
                                     p["size"].ravel(), p["angle"].ravel(), res, res).reshape(m, big, res, res)
            else:
                x0, y0, x1, y1 = (a[..., None, None] for a in (b[..., 0], b[..., 1], b[..., 0] + b[..., 2], b[..., 1] + b[..., 3]))
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
        return {"frames": np.concatenate(frames_out), "masks": masks,
                "counts": visibility.sum(-1, keepdims=True).astype(np.int16), "visibility": visibility,
                "color": np.where(absent[..., None], 0.0, p["color"]).astype(np.float32),
                "box": np.where(absent[..., None], 0.0, p["box"]).astype(np.float32)}


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
        dominant = (x * in_bin[..., None]).reshape(m, -1, c).sum(1) / np.maximum(in_bin.reshape(m, -1).sum(1), 1)[:, None]
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


GENERATORS: dict[str, type[Generator]] = {
    cls.name: cls for cls in (Shapes, Tetrominoes, NShapes, MovingSprites, MovingDigits, Correlated)
}
