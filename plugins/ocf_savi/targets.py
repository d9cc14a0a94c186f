"""What a SAVi decoder reconstructs: the frames, or per-pixel extras of the batch — optical
flow (SAVi), depth (SAVi++) or any other — turned into ``[b t c h w]`` float targets.

Per-pixel extras are stored channels-last as the MOVi converter writes them (``depth
[t h w]``, ``forward_flow [t h w 2]``), optionally quantised to uint16 with a ``<name>_range``
extra ``[2]`` (value / 65535 · (max − min) + min).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from einops import rearrange
from torch import Tensor

FlowFormat = Literal["rgb", "raw"]
DepthTransform = Literal["log_plus", "log", "invert_plus", "none"]
#: target name → the extra read by default
DEFAULT_KEYS = {"flow": "forward_flow", "depth": "depth"}


def hsv_to_rgb(h: Tensor, s: Tensor, v: Tensor) -> Tensor:
    """Hue, saturation, value in [0, 1] (same shapes) → RGB stacked on a new last axis."""
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    p, q, u = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    sector = (i.long() % 6).unsqueeze(-1)  # which sixth of the colour wheel
    table = torch.stack(
        [
            torch.stack([v, u, p], -1),
            torch.stack([q, v, p], -1),
            torch.stack([p, v, u], -1),
            torch.stack([p, q, v], -1),
            torch.stack([u, p, v], -1),
            torch.stack([v, p, q], -1),
        ],
        dim=-2,
    )  # [... 6 3]
    return table.gather(-2, sector.unsqueeze(-1).expand(*sector.shape[:-1], 1, 3)).squeeze(-2)


def flow_to_rgb(flow: Tensor, resolution: tuple[int, int], scaling: float = 50.0) -> Tensor:
    """Flow ``[... 2]`` → RGB ``[... 3]`` on SAVi's colour wheel: hue from the angle of
    (channel 1, channel 0), saturation = |flow| · scaling / hypot(h, w) clipped to 1, value 1.
    ``resolution`` (h, w): the frame size the flow's pixels refer to."""
    a, b = flow[..., 0], flow[..., 1]
    hue = (torch.atan2(b, a) / math.pi + 1.0) / 2.0
    sat = (torch.hypot(a, b) * (scaling / math.hypot(*resolution))).clamp(0.0, 1.0)
    return hsv_to_rgb(hue, sat, torch.ones_like(hue))


def transform_depth(depth: Tensor, how: DepthTransform) -> Tensor:
    """SAVi++'s depth transforms: log(1 + d) (default), log d, 1 / (1 + d), or none."""
    if how == "log_plus":
        return torch.log1p(depth)
    if how == "log":
        return torch.log(depth)
    if how == "invert_plus":
        return 1.0 / (1.0 + depth)
    return depth


def dequantise(extra: Tensor, value_range: Tensor | None) -> Tensor:
    """Float values of an extra ``[b ...]``; uint16-quantised with a ``[b 2]`` range when given."""
    x = extra.float()
    if value_range is None:
        return x
    lo, hi = value_range.float().unbind(-1)  # [b] each
    shape = (-1,) + (1,) * (x.dim() - 1)
    return x / 65535.0 * (hi - lo).view(shape) + lo.view(shape)


def channels_first(extra: Tensor, name: str, frames: int) -> Tensor:
    """``[b t h w]`` or ``[b t h w c]`` → ``[b t c h w]``, cut to the first ``frames`` frames
    (the dry run's stand-in extras hold whole clips; the loader windows real ones)."""
    if extra.dim() == 4:
        extra = extra.unsqueeze(-1)
    if extra.dim() != 5:
        raise ValueError(f"the target extra {name!r} should be [b t h w] or [b t h w c], got {list(extra.shape)}")
    if extra.shape[1] < frames:
        raise ValueError(f"the target extra {name!r} has {extra.shape[1]} frames, the clip {frames}")
    return rearrange(extra[:, :frames], "b t h w c -> b t c h w")
