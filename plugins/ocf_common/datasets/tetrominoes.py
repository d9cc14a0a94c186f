"""``tetrominoes``: three tetrominoes that neither overlap nor touch, on black."""

from __future__ import annotations

import functools

import numpy as np
from pydantic import Field, model_validator

from ocf.data.generator import Generator, chunks, id_presence, sample_rngs
from ocf_common.datasets.draw import _check_range

TETROMINO_COLORS = np.array(
    [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 0, 255], [0, 255, 255]], dtype=np.uint8
)


@functools.lru_cache(maxsize=1)
def tetromino_placements() -> tuple[np.ndarray, ...]:
    """The 19 fixed tetrominoes (I, O, T, S, Z, J, L in every distinct rotation), each a
    ``[4 2]`` array of (row, col) cells with minimum 0."""
    bases = {
        "I": [(0, 0), (0, 1), (0, 2), (0, 3)],
        "O": [(0, 0), (0, 1), (1, 0), (1, 1)],
        "T": [(0, 0), (0, 1), (0, 2), (1, 1)],
        "S": [(0, 1), (0, 2), (1, 0), (1, 1)],
        "Z": [(0, 0), (0, 1), (1, 1), (1, 2)],
        "J": [(0, 0), (1, 0), (1, 1), (1, 2)],
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
        solid[r * block : (r + 1) * block, c * block : (c + 1) * block] = True
    halo = np.zeros((solid.shape[0] + 2, solid.shape[1] + 2), dtype=bool)
    for dy in range(3):
        for dx in range(3):
            halo[dy : dy + solid.shape[0], dx : dx + solid.shape[1]] |= solid
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
                    region = occupied[y0 : y + ph + 1, x0 : x + pw + 1]
                    hy, hx = y0 - (y - 1), x0 - (x - 1)
                    window = halo[hy : hy + region.shape[0], hx : hx + region.shape[1]]
                    if not (region & window).any():
                        occupied[y : y + ph, x : x + pw] |= solid
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
                        img[y : y + b, x : x + b] = TETROMINO_COLORS[colors[k]]
                        lab[y : y + b, x : x + b] = k + 1
                frames[i, 0] = img[off : off + res, off : off + res]
                masks[i, 0] = lab[off : off + res, off : off + res]
                shape[i], color[i], position[i] = shapes, colors, pos - off
            if progress:
                progress(stop - start)
        visibility = id_presence(masks[:, 0], 3)
        return {
            "frames": frames,
            "masks": masks,
            "counts": visibility.sum(-1, keepdims=True).astype(np.int16),
            "visibility": visibility,
            "shape": shape,
            "color": color,
            "position": position,
        }
