"""SAVi's conditional slot initialisation: each object's first-frame box or centre, encoded by
an MLP into that object's slot (Kipf et al., 2022).

ocf stores boxes as ``(x, y, w, h)`` in output pixels, zero where an object is absent, and
centres as ``(x, y)`` pixels; SAVi feeds its MLP boxes ``[y0, x0, y1, x1]`` and centres
``[y, x]`` normalised to [0, 1]. A zero box, SAVi's padding box, stays zero.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

Condition = Literal["none", "boxes", "centres"]
Units = Literal["pixels", "normalized"]


def first_frame(extra: Tensor, name: str, width: int) -> Tensor:
    """``[b o c]`` of an extra ``[b o c]`` (one frame) or ``[b t o c]`` (frame 0 of its window)."""
    if extra.dim() == 4:
        extra = extra[:, 0]
    if extra.dim() != 3 or extra.shape[-1] not in (2, 4):
        raise ValueError(
            f"the conditioning extra {name!r} should be [b o 4] boxes or [b o 2] centres (or with a time axis "
            f"[b t o ...]), got {list(extra.shape)}"
        )
    if width == 4 and extra.shape[-1] != 4:
        raise ValueError(f"condition 'boxes' needs (x, y, w, h) boxes, but the extra {name!r} holds centres")
    return extra


def normalized_coords(extra: Tensor, condition: Condition, units: Units, resolution: tuple[int, int]) -> Tensor:
    """``[b o 4]`` boxes (x, y, w, h) or ``[b o 2]`` centres (x, y) → SAVi's inputs
    ``[b o 4]`` ``[y0, x0, y1, x1]`` (condition 'boxes') or ``[b o 2]`` ``[y, x]``
    (condition 'centres'; a box's centre when the extra holds boxes), in [0, 1]."""
    h, w = resolution
    scale = extra.new_tensor([w, h]) if units == "pixels" else extra.new_ones(2)
    if extra.shape[-1] == 4:
        x0y0 = extra[..., :2] / scale
        x1y1 = (extra[..., :2] + extra[..., 2:]) / scale
        if condition == "centres":
            return ((x0y0 + x1y1) / 2).flip(-1)  # [y x]
        return torch.cat([x0y0.flip(-1), x1y1.flip(-1)], dim=-1)  # [y0 x0 y1 x1]
    return (extra / scale).flip(-1)  # [y x]


class CoordinateInit(nn.Module):
    """Slots ``[b k d]`` from first-frame coordinates ``[b o c]``: a zero background entry
    first (when ``background``), the objects, zero padding up to k; then an MLP
    ``Linear(c → hidden) → ReLU → Linear(hidden → d)`` per slot (SAVi's initializer)."""

    def __init__(self, coord_dim: int, hidden: int, slot_dim: int, num_slots: int, background: bool) -> None:
        super().__init__()
        self.k, self.background = num_slots, background
        self.mlp = nn.Sequential(nn.Linear(coord_dim, hidden), nn.ReLU(), nn.Linear(hidden, slot_dim))

    def pad(self, coords: Tensor) -> Tensor:
        """``[b o c]`` → ``[b k c]``: background first, zero padding last."""
        b, o, c = coords.shape
        lead = int(self.background)
        if o + lead > self.k:
            what = f"{o} objects + a background slot" if lead else f"{o} objects"
            raise ValueError(f"the conditioning extra holds {what}, more than num_slots = {self.k}")
        out = coords.new_zeros(b, self.k, c)
        out[:, lead : lead + o] = coords
        return out

    def forward(self, coords: Tensor) -> Tensor:
        return self.mlp(self.pad(coords))  # [b k d]
