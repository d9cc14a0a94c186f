"""What every converter shares: the :class:`Converter` interface, one converted
:class:`Record`, the crop/resize rule (:class:`Geometry`) and the entity-mask → label-map rule.

The resize rule (the same for every source, frames and masks alike):

1. crop the box given by ``crop`` (``(y0, y1, x0, x1)`` pixels, or a fraction ``f``: the
   centred square of side ``int(f * min(H, W))``, as ClevrTex's reader crops);
2. with a ``resolution (H', W')``, cut the largest centred box of aspect ``H'/W'`` from that
   (so nothing is stretched: a 480x640 COCO image becomes its centred 480x480 square for a
   square target, i.e. "resize the short side, then centre-crop");
3. resize to ``(H', W')``: frames with bilinear filtering (Pillow, antialiased), label maps
   and other per-pixel ids with nearest-neighbour sampling, so no id is ever mixed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ocf.errors import UserError


@dataclass
class Record:
    """One converted sample: ``frames [T H W C]`` uint8, ``masks [T H W]`` integer label map
    (0 background, 1.. objects, -1 ignore) or None, per-sample ``extras`` (no leading N) and
    ``info`` used to compute the standard splits (e.g. ``objects``: foreground count)."""

    frames: np.ndarray
    masks: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Geometry:
    """The crop/resize rule of the module docstring."""

    crop: tuple[int, int, int, int] | float | None = None
    resolution: tuple[int, int] | None = None

    @property
    def identity(self) -> bool:
        return self.crop is None and self.resolution is None

    def box(self, h: int, w: int) -> tuple[int, int, int, int]:
        """The source box ``(y0, y1, x0, x1)`` that is resized to the output."""
        if self.crop is None:
            y0, y1, x0, x1 = 0, h, 0, w
        elif isinstance(self.crop, float):
            side = int(self.crop * min(h, w))
            y0, x0 = (h - side) // 2, (w - side) // 2
            y1, x1 = y0 + side, x0 + side
        else:
            y0, y1, x0, x1 = self.crop
            if not (0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w):
                raise UserError(f"--crop {y0}:{y1},{x0}:{x1} lies outside the {h}x{w} source image")
        if self.resolution is not None:
            ch, cw = y1 - y0, x1 - x0
            th, tw = self.resolution
            if ch * tw > cw * th:  # too tall: keep the width
                nh = max(1, round(cw * th / tw))
                y0 += (ch - nh) // 2
                y1 = y0 + nh
            elif ch * tw < cw * th:
                nw = max(1, round(ch * tw / th))
                x0 += (cw - nw) // 2
                x1 = x0 + nw
        return y0, y1, x0, x1

    def out_size(self, h: int, w: int) -> tuple[int, int]:
        if self.resolution is not None:
            return tuple(self.resolution)  # type: ignore[return-value]
        y0, y1, x0, x1 = self.box(h, w)
        return y1 - y0, x1 - x0

    def image(self, img: np.ndarray) -> np.ndarray:
        """``[H W C]`` uint8 → cropped and resized (bilinear)."""
        return self._apply(img, smooth=True)

    def labels(self, lab: np.ndarray) -> np.ndarray:
        """``[H W]`` integer ids (or ``[H W C]`` integer values) → cropped and resized (nearest)."""
        return self._apply(lab, smooth=False)

    def _apply(self, arr: np.ndarray, smooth: bool) -> np.ndarray:
        if self.identity:
            return arr
        from PIL import Image

        h, w = arr.shape[:2]
        y0, y1, x0, x1 = self.box(h, w)
        arr = arr[y0:y1, x0:x1]
        if self.resolution is None or arr.shape[:2] == tuple(self.resolution):
            return np.ascontiguousarray(arr)
        th, tw = self.resolution
        if smooth:
            channels = [Image.fromarray(np.ascontiguousarray(arr[..., c])) for c in range(arr.shape[-1])]
            out = [np.asarray(ch.resize((tw, th), Image.BILINEAR)) for ch in channels]
            return np.stack(out, axis=-1).astype(arr.dtype)
        rows = np.minimum(((np.arange(th) + 0.5) * arr.shape[0] / th).astype(np.int64), arr.shape[0] - 1)
        cols = np.minimum(((np.arange(tw) + 0.5) * arr.shape[1] / tw).astype(np.int64), arr.shape[1] - 1)
        return np.ascontiguousarray(arr[rows][:, cols])

    def points(self, xy: np.ndarray, h: int, w: int) -> np.ndarray:
        """Pixel coordinates ``[... 2]`` (x, y) in the source → in the output."""
        y0, y1, x0, x1 = self.box(h, w)
        oh, ow = self.out_size(h, w)
        out = np.asarray(xy, dtype=np.float32).copy()
        out[..., 0] = (out[..., 0] - x0) * ow / (x1 - x0)
        out[..., 1] = (out[..., 1] - y0) * oh / (y1 - y0)
        return out


def parse_crop(text: str | None) -> tuple[int, int, int, int] | float | None:
    """``"29:221,64:256"`` → a pixel box; ``"center:0.8"`` → a centred fraction; None → None."""
    if text is None or text.strip().lower() in ("", "none"):
        return None
    text = text.strip().lower()
    try:
        if text.startswith("center:"):
            fraction = float(text.split(":", 1)[1])
            if not 0 < fraction <= 1:
                raise ValueError
            return fraction
        rows, cols = text.split(",")
        y0, y1 = (int(v) for v in rows.split(":"))
        x0, x1 = (int(v) for v in cols.split(":"))
        return y0, y1, x0, x1
    except ValueError:
        raise UserError(f"--crop: expected Y0:Y1,X0:X1 (pixels) or center:F (0 < F <= 1), got {text!r}") from None


def labels_from_entities(on: np.ndarray, n_background: int) -> np.ndarray:
    """Entity masks ``[... O H W]`` (bool) → label map ``[... H W]`` int16.

    Entities ``0 .. n_background-1`` are background (label 0); entity ``e >= n_background``
    gets label ``e - n_background + 1``; a pixel claimed by several foreground entities is
    -1 (ignore); a pixel no foreground entity claims is 0."""
    fg = on[..., n_background:, :, :]
    count = fg.sum(axis=-3)
    labels = (fg.argmax(axis=-3) + 1).astype(np.int16)
    labels[count == 0] = 0
    labels[count > 1] = -1
    return labels


def decode_image(data: bytes, where: str, mode: str | None = None) -> np.ndarray:
    """PNG/JPEG bytes → array (``mode`` e.g. ``"RGB"``; None keeps the stored mode)."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            if mode is not None and im.mode != mode:
                im = im.convert(mode)
            return np.asarray(im)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UserError(f"{where}: cannot decode the image: {exc}") from None


class Converter:
    """A source dataset format. Subclasses set the class attributes and implement
    :meth:`records`; ``inputs`` are the paths the user gave."""

    #: the registry kind (``registry.register`` reads it)
    kind: ClassVar[str] = "converter"
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    variants: ClassVar[dict[str, str]] = {}
    default_variant: ClassVar[str | None] = None
    axes: ClassVar[dict[str, str]] = {}
    video: ClassVar[bool] = False

    def __init__(self, inputs: list[Path], variant: str | None = None, geometry: Geometry | None = None) -> None:
        self.inputs = [Path(p) for p in inputs]
        if not self.inputs:
            raise UserError(f"{self.name}: give at least one input path")
        self.variant = variant or self.default_variant
        if self.variants and self.variant not in self.variants:
            raise UserError(f"{self.name}: unknown variant {self.variant!r}; one of {', '.join(self.variants)}")
        if not self.variants and variant is not None:
            raise UserError(f"{self.name} has no variants (got --variant {variant})")
        self.geometry = geometry or Geometry()

    def total(self) -> int | None:
        """How many records the inputs hold, when known cheaply (for the progress bar)."""
        return None

    def records(self) -> Iterator[Record]:
        raise NotImplementedError

    def extra_axes(self) -> dict[str, str]:
        """The ``axes`` attribute of each extra (``"n o"``, ``"n t o 4"``)."""
        return dict(self.axes)

    def metadata(self) -> dict[str, Any]:
        """Extra metadata: background convention, entity names, source facts."""
        return {}

    def standard_splits(self, n: int, info: list[dict[str, Any]]) -> dict[str, np.ndarray]:
        """Named splits written by default, from the per-record ``info``."""
        return contiguous_splits(n)


def contiguous_splits(n: int, fractions: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    from ocf.data.format import split_ranges

    out = split_ranges(n, fractions or {"train": 0.8, "val": 0.1, "test": 0.1})
    return {k: v for k, v in out.items() if len(v)}


def first_n_splits(candidates: np.ndarray, sizes: dict[str, int]) -> dict[str, np.ndarray]:
    """Consecutive blocks of ``candidates`` (sample indices in order): the first ``sizes[a]``
    for split ``a``, the next ``sizes[b]`` for ``b`` ... (truncated when the file is shorter;
    empty blocks are left out)."""
    out, start = {}, 0
    for name, size in sizes.items():
        block = np.asarray(candidates[start : start + size], dtype=np.int64)
        start += size
        if len(block):
            out[name] = block
    return out
