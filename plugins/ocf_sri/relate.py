"""SRI's relate stage: a permutation-invariant encoder of the (detached) slots into the scene
posterior q(s | z).

- :class:`RelationalSceneEncoder` (``relate: relational``, the default): the original code's
  operation at the slot dim D. Each of L residual blocks attends over all slot pairs with one
  head: scores q_i·k_j / sqrt(D) (bias-free q, k), softmax over j, values from the pair,
  v_ij = MLP([z_i, z_i − z_j]) (Linear 2D → D, GELU, Linear D → D); the block returns
  z + MLP(LayerNorm(z + Σ_j a_ij v_ij)). Then a sum over slots, Linear D → S with GELU and
  two linear heads S → S for the mean and the scale.
- :class:`SceneEncoder` (``relate: set_attention``): multi-head set self-attention of a width
  of its own (embedding, residual attention + mixing layers, DeepSets φ/ρ around the sum),
  ocf's network before it followed the original.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ocf.records import DiagonalGaussian


def scale(raw: Tensor, min_std: float) -> Tensor:
    """Standard deviations ``softplus(raw) + min_std``."""
    return F.softplus(raw) + min_std


class RelationBlock(nn.Module):
    """One residual block of single-head relational attention over the slots ``[b k D]``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.value = nn.Sequential(nn.Linear(2 * dim, dim), nn.GELU(), nn.Linear(dim, dim))
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, z: Tensor) -> Tensor:
        d = z.shape[-1]
        attn = torch.einsum("bid,bjd->bij", self.q(z) * d**-0.5, self.k(z)).softmax(dim=-1)  # [b k k]
        first, _, second = self.value
        # Linear([z_i, z_i - z_j]) = (W_a + W_b) z_i - W_b z_j + c: two [b k D] products, not one per pair
        w_a, w_b = first.weight[:, :d], first.weight[:, d:]
        hidden = F.gelu((F.linear(z, w_a + w_b, first.bias)).unsqueeze(2) - F.linear(z, w_b).unsqueeze(1))  # [b i j D]
        # Σ_j a_ij (W h_ij + c) = W (Σ_j a_ij h_ij) + c because every row of a sums to 1
        out = second(torch.einsum("bij,bijd->bid", attn, hidden))
        return z + self.mlp(self.norm(z + out))


class RelationalSceneEncoder(nn.Module):
    """L relation blocks at the slot dim, sum over slots, Linear + GELU to the scene dim, mean and scale heads."""

    def __init__(self, slot_dim: int, layers: int, scene_dim: int, min_std: float) -> None:
        super().__init__()
        self.min_std = min_std
        self.blocks = nn.ModuleList(RelationBlock(slot_dim) for _ in range(layers))
        self.project = nn.Sequential(nn.Linear(slot_dim, scene_dim), nn.GELU())
        self.mean = nn.Linear(scene_dim, scene_dim)
        self.raw_std = nn.Linear(scene_dim, scene_dim)

    def forward(self, z: Tensor) -> DiagonalGaussian:
        for block in self.blocks:
            z = block(z)
        h = self.project(z.sum(dim=1))  # sum over slots: order-invariant
        return DiagonalGaussian(self.mean(h), scale(self.raw_std(h), self.min_std))


class SceneEncoder(nn.Module):
    """Set self-attention variant: embedding to ``width``, residual multi-head set self-attention layers, DeepSets
    sum pooling, two linear heads → q(s | z)."""

    def __init__(self, slot_dim: int, width: int, layers: int, heads: int, scene_dim: int, min_std: float) -> None:
        super().__init__()
        self.min_std = min_std
        self.embed = nn.Linear(slot_dim, width)
        self.attention = nn.ModuleList([nn.MultiheadAttention(width, heads, batch_first=True) for _ in range(layers)])
        self.mix = nn.ModuleList([nn.Linear(2 * width, width) for _ in range(layers)])
        self.phi = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, width))
        self.rho = nn.Sequential(nn.GELU(), nn.Linear(width, width), nn.GELU())
        self.mean = nn.Linear(width, scene_dim)
        self.raw_std = nn.Linear(width, scene_dim)

    def forward(self, z: Tensor) -> DiagonalGaussian:
        x = self.embed(z)  # [b k w]
        for attention, mix in zip(self.attention, self.mix):
            a, _ = attention(x, x, x, need_weights=False)
            x = x + F.gelu(mix(torch.cat([x, a], dim=-1)))
        h = self.rho(self.phi(x).sum(dim=1))  # sum over slots: order-invariant
        return DiagonalGaussian(self.mean(h), scale(self.raw_std(h), self.min_std))
