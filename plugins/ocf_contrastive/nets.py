"""Tensor building blocks of the contrastive family: the random second view of a clip and the
exponential-moving-average copy of online modules (momentum encoder / target network)."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def augment(
    frames: Tensor,
    crop_scale: float = 0.6,
    flip: bool = True,
    brightness: float = 0.2,
    generator: torch.Generator | None = None,
) -> Tensor:
    """A random view of each clip ``[b t c h w]`` (one draw per clip, every frame alike):
    a crop covering ``crop_scale``–1 of the area resized back, a horizontal flip with
    probability ½, brightness × U(1 − brightness, 1 + brightness); values stay in [0, 1]."""
    b, t, c, h, w = frames.shape
    dev, dt = frames.device, frames.dtype

    def u(lo: float, hi: float, *shape: int) -> Tensor:
        return lo + (hi - lo) * torch.rand(*shape, generator=generator, device=dev, dtype=dt)

    side = u(crop_scale, 1.0, b).sqrt()  # fraction of each side kept
    tx, ty = u(-1, 1, b) * (1 - side), u(-1, 1, b) * (1 - side)
    if flip:
        sign = torch.where(u(0, 1, b) < 0.5, -1.0, 1.0).to(dt)
    else:
        sign = torch.ones(b, device=dev, dtype=dt)
    theta = torch.zeros(b, 2, 3, device=dev, dtype=dt)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = side * sign, tx, side, ty
    theta = theta.repeat_interleave(t, 0)  # [(b t) 2 3]
    flat = frames.reshape(b * t, c, h, w)
    grid = F.affine_grid(theta, list(flat.shape), align_corners=False)
    out = F.grid_sample(flat, grid, mode="bilinear", padding_mode="border", align_corners=False)
    gain = u(1 - brightness, 1 + brightness, b).repeat_interleave(t).view(-1, 1, 1, 1)
    return (out * gain).clamp(0, 1).reshape(b, t, c, h, w)


class EMACopy(nn.Module):
    """An exponential-moving-average copy of named modules (a momentum encoder / target
    network).  ``sources`` are the online modules, held as plain references; the copies are
    registered here with ``requires_grad = False``."""

    def __init__(self, sources: dict[str, nn.Module]) -> None:
        super().__init__()
        self.sources = dict(sources)  # a plain dict: not registered, they belong to the model
        self.copies = nn.ModuleDict({k: copy.deepcopy(m) for k, m in sources.items()})
        for p in self.copies.parameters():
            p.requires_grad_(False)
        self.register_buffer("synced", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def update(self, momentum: float) -> None:
        """``θ_copy ← m θ_copy + (1 − m) θ_source`` (a plain copy the first time)."""
        m = momentum if bool(self.synced) else 0.0
        for name, src in self.sources.items():
            for p_copy, p_src in zip(self.copies[name].parameters(), src.parameters()):
                p_copy.mul_(m).add_(p_src.detach(), alpha=1 - m)
            for b_copy, b_src in zip(self.copies[name].buffers(), src.buffers()):
                b_copy.copy_(b_src)
        self.synced.fill_(True)

    def __getitem__(self, name: str) -> nn.Module:
        return self.copies[name]
