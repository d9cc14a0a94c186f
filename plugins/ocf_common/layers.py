"""Small building blocks shared by the common components (and free for other plugins)."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn


def position_grid(h: int, w: int, device=None, dtype=None) -> Tensor:
    """``[4 h w]``: the [y, x, 1 − y, 1 − x] coordinate planes in [0, 1]."""
    ys = torch.linspace(0.0, 1.0, h, device=device, dtype=dtype)
    xs = torch.linspace(0.0, 1.0, w, device=device, dtype=dtype)
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"))  # [2 h w]
    return torch.cat([grid, 1.0 - grid])


class SoftPositionEmbed(nn.Module):
    """Adds a learned linear map of the 4-channel coordinate grid to a feature map
    ``[B c h w]`` (Slot Attention's soft position embedding).  ``size`` gives the grid
    when ``x`` is smaller and broadcasts (e.g. ``[B c 1 1]`` slots → ``[B c h w]``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.proj = nn.Linear(4, channels)

    def forward(self, x: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        grid = position_grid(*(size or x.shape[-2:]), device=x.device, dtype=x.dtype)
        emb = self.proj(rearrange(grid, "g h w -> h w g"))
        return x + rearrange(emb, "h w c -> c h w")


def mlp(dims: list[int], activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Linear layers through ``dims`` with ``activation`` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


def conv_out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1
