"""Small building blocks shared by the common components (and free for other plugins)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import einsum, rearrange
from torch import Tensor, nn


def position_grid(h: int, w: int, device=None, dtype=None) -> Tensor:
    """``[4 h w]``: the [y, x, 1 − y, 1 − x] coordinate planes in [0, 1]."""
    ys = torch.linspace(0.0, 1.0, h, device=device, dtype=dtype)
    xs = torch.linspace(0.0, 1.0, w, device=device, dtype=dtype)
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"))  # [2 h w]
    return torch.cat([grid, 1.0 - grid])


class SoftPositionEmbed(nn.Module):
    """Adds a learned linear map of the 4-channel coordinate grid to a feature map
    ``[b c h w]`` (Slot Attention's soft position embedding).  ``size`` gives the grid
    when ``x`` is smaller and broadcasts (e.g. ``[b c 1 1]`` slots → ``[b c h w]``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.proj = nn.Linear(4, channels)

    def forward(self, x: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        grid = position_grid(*(size or x.shape[-2:]), device=x.device, dtype=x.dtype)
        emb = self.proj(rearrange(grid, "g h w -> h w g"))
        return x + rearrange(emb, "h w c -> c h w")


class Broadcast(nn.Module):
    """Spatial broadcast: ``z [b d]`` → ``[b d h w]``, each vector copied over the grid
    plus a soft position embedding."""

    def __init__(self, dim: int, size: tuple[int, int]) -> None:
        super().__init__()
        self.size = size
        self.pos = SoftPositionEmbed(dim)

    def forward(self, z: Tensor) -> Tensor:
        return self.pos(rearrange(z, "b d -> b d 1 1"), size=self.size)


class BroadcastConv(nn.Module):
    """``conv(broadcast(z) + position embedding)`` for a stride-1 "same" ``conv``, without
    building the broadcast map: a conv is linear and ``z`` is constant over the grid, so
    the result is ``Σ_j z_j · conv(1 ⊗ e_j) + conv(embedding)`` — a matmul instead of a
    conv over d input channels, exact at the zero-padded borders too.

    ``z [b d]`` → ``[b c h w]`` (b: any folded batch, e.g. (b t k))."""

    def __init__(self, conv: nn.Conv2d, size: tuple[int, int]) -> None:
        super().__init__()
        if conv.stride != (1, 1) or conv.padding != (conv.kernel_size[0] // 2, conv.kernel_size[1] // 2):
            raise ValueError("BroadcastConv needs a stride-1 conv with 'same' padding")
        self.size = size
        self.pos = SoftPositionEmbed(conv.in_channels)
        self.conv = conv

    def forward(self, z: Tensor) -> Tensor:
        c, d = self.conv.weight.shape[:2]
        ones = z.new_ones(1, 1, *self.size)
        per_channel = rearrange(self.conv.weight, "c d u v -> (c d) 1 u v")
        basis = F.conv2d(ones, per_channel, padding=self.conv.padding)  # [1 (c d) h w]
        basis = rearrange(basis, "1 (c d) h w -> d c h w", c=c)
        const = self.conv(self.pos(z.new_zeros(1, d, 1, 1), size=self.size))  # [1 c h w], with bias
        return einsum(z, basis, "b d, d c h w -> b c h w") + const


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
