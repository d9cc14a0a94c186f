"""Spatial-transformer glimpses (Jaderberg et al., 2015) for attention models such as AIR
and SQAIR: extract a patch from an image, or place a patch onto a canvas, from a box
given as scale and shift.  Batched over any leading axes and differentiable in the
images, the patches and the box.

A box ``where [... 4]`` is ``(sx, sy, tx, ty)`` in the normalised coordinates of
:func:`torch.nn.functional.affine_grid` (``-1`` left/top edge, ``+1`` right/bottom edge,
``align_corners=False``): the glimpse covers ``x ∈ [tx − sx, tx + sx]`` and
``y ∈ [ty − sy, ty + sy]``.  ``sx = sy = 1, tx = ty = 0`` is the whole image; AIR's
``scale = sigmoid(·)``, ``shift = tanh(·)`` keep a box inside that range.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["where_to_theta", "extract", "place", "MIN_SCALE"]

#: Scales are clamped to at least this when inverted (placing a patch divides by them).
MIN_SCALE = 1e-3


def where_to_theta(where: Tensor) -> Tensor:
    """``[N 4]`` boxes → ``[N 2 3]`` affine matrices mapping glimpse to image coordinates."""
    sx, sy, tx, ty = where.unbind(-1)
    zero = torch.zeros_like(sx)
    return torch.stack([torch.stack([sx, zero, tx], -1), torch.stack([zero, sy, ty], -1)], -2)


def _inverse_theta(where: Tensor) -> Tensor:
    """The matrices mapping image to glimpse coordinates (the box's inverse)."""
    sx, sy, tx, ty = where.unbind(-1)
    sx, sy = sx.clamp(min=MIN_SCALE), sy.clamp(min=MIN_SCALE)
    return where_to_theta(torch.stack([1 / sx, 1 / sy, -tx / sx, -ty / sy], -1))


def _check(name: str, x: Tensor, where: Tensor) -> tuple[tuple[int, ...], int]:
    if where.shape[-1] != 4:
        raise ValueError(f"{name}: where must end in 4 values (sx, sy, tx, ty), got shape {tuple(where.shape)}")
    lead = tuple(where.shape[:-1])
    if x.dim() != len(lead) + 3 or tuple(x.shape[: len(lead)]) != lead:
        raise ValueError(
            f"{name}: images must be [... c h w] with the leading axes {list(lead)} of where, got {tuple(x.shape)}"
        )
    n = 1
    for s in lead:
        n *= s
    return lead, n


def _warp(source: Tensor, theta: Tensor, lead: tuple[int, ...], n: int, out_hw: tuple[int, int]) -> Tensor:
    """Bilinearly resample ``source [... c h w]`` through the affine maps ``theta [n 2 3]``
    onto ``[... c out_h out_w]`` (zeros outside the source)."""
    c, h, w = source.shape[-3:]
    grid = F.affine_grid(theta, [n, c, *out_hw], align_corners=False)
    out = F.grid_sample(source.reshape(n, c, h, w), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.reshape(*lead, c, *out_hw)


def extract(images: Tensor, where: Tensor, size: tuple[int, int] | int) -> Tensor:
    """Glimpses ``[... c gh gw]`` of ``images [... c h w]`` at boxes ``where [... 4]``,
    bilinearly sampled (zeros outside the image)."""
    lead, n = _check("extract", images, where)
    theta = where_to_theta(where.reshape(n, 4).to(images.dtype))
    return _warp(images, theta, lead, n, (size, size) if isinstance(size, int) else tuple(size))


def place(patches: Tensor, where: Tensor, size: tuple[int, int] | int) -> Tensor:
    """Canvases ``[... c h w]`` holding ``patches [... c gh gw]`` at boxes ``where [... 4]``
    (the inverse transformer of :func:`extract`; zero outside the box)."""
    lead, n = _check("place", patches, where)
    theta = _inverse_theta(where.reshape(n, 4).to(patches.dtype))
    return _warp(patches, theta, lead, n, (size, size) if isinstance(size, int) else tuple(size))
