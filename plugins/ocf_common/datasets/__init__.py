"""Procedural datasets with exact ground truth.

Every generator is deterministic under its seed: sample ``i`` is drawn from its own random
stream seeded ``(seed, i)`` (so a file of 100 samples is the first 100 of a file of 1,000),
then painted in vectorised chunks. Shapes: ``frames [N T H W C]`` uint8, ``masks [N T H W]``
int16 (0 background, 1.. object ids stable over time, -1 where shapes overlap in
``nshapes``), extras ``[N ...]`` described in each class docstring.

One module per generator (:mod:`.shapes`, :mod:`.tetrominoes`, :mod:`.nshapes`,
:mod:`.moving` for ``moving_sprites`` and ``moving_digits``, :mod:`.correlated`) and the
drawing they share in :mod:`.draw`. ``GENERATORS`` maps names to classes;
:func:`check_rule` scores images of the ``correlated`` generator's scene rules.
"""

from __future__ import annotations

from ocf.data.generator import Generator
from ocf_common.datasets.correlated import Correlated, check_rule
from ocf_common.datasets.draw import (
    SPRITE_SHAPES,
    SpriteOptions,
    Unit,
    bright_colors,
    hsv_to_rgb,
    paint,
    sprite_masks,
    to_uint8,
)
from ocf_common.datasets.moving import MovingDigits, MovingSprites, bounce, digit_glyphs
from ocf_common.datasets.nshapes import NSHAPES, NShapes
from ocf_common.datasets.shapes import Shapes
from ocf_common.datasets.tetrominoes import TETROMINO_COLORS, Tetrominoes, tetromino_placements

GENERATORS: dict[str, type[Generator]] = {
    cls.name: cls for cls in (Shapes, Tetrominoes, NShapes, MovingSprites, MovingDigits, Correlated)
}

__all__ = [
    "GENERATORS",
    "NSHAPES",
    "SPRITE_SHAPES",
    "TETROMINO_COLORS",
    "Correlated",
    "MovingDigits",
    "MovingSprites",
    "NShapes",
    "Shapes",
    "SpriteOptions",
    "Tetrominoes",
    "Unit",
    "bounce",
    "bright_colors",
    "check_rule",
    "digit_glyphs",
    "hsv_to_rgb",
    "paint",
    "sprite_masks",
    "tetromino_placements",
    "to_uint8",
]
