"""GENESIS-v2's instance-colouring stick-breaking process (IC-SBP) and its slot posterior.

Pixel embeddings ("colours", 8-d) come from a semi-convolutional head: a gated 1×1 conv
(gate initialised to 0) plus fixed coordinate channels, so untrained embeddings are pixel
positions.  K − 1 stick-breaking steps each pick a random seed pixel in the remaining scope
(uniform noise drawn once per image from torch's RNG, times the scope, argmax), take
α = exp(−‖e − e_seed‖² / σ) (σ learned, initialised to 1 / (K ln 2)) clamped to
[0.01, 0.99] with straight-through gradients, and split the scope: mask = scope · α,
scope ← scope · (1 − α).  The last mask is the remaining scope, so masks sum to one.
Per-slot features are mask-weighted means of a feature head → LayerNorm-MLP → a diagonal
Gaussian per slot (std = softplus(· + 0.5)).  Slots come out in the (random) seed order and
each posterior depends only on its own mask: randomly ordered and independent, as SRI
needs.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from einops import einsum, rearrange
from pydantic import Field, model_validator
from torch import Tensor, nn

from ocf.components import BuildContext, ComponentSpec, Grouper
from ocf.fields import Size
from ocf.records import DiagonalGaussian, Latents, State
from ocf_genesis.encoder import PointwiseConv, conv_gn_relu


def coordinate_grid(h: int, w: int) -> Tensor:
    """``[2 h w]``: (y, x) coordinates, each in [−1, 1]."""
    ys, xs = torch.linspace(-1.0, 1.0, h), torch.linspace(-1.0, 1.0, w)
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"))


def clamp_straight_through(x: Tensor, low: float, high: float) -> Tensor:
    """Clamp in the forward pass, identity gradient (GENESIS's ``clamp_preserve_gradients``)."""
    return x + (x.clamp(low, high) - x).detach()


class SemiConv(nn.Module):
    """Semi-convolutional embedding: ``gate · conv1x1(x) + [0 … 0, y, x]`` with a scalar gate
    initialised to 0, so embeddings start as pixel coordinates."""

    def __init__(self, c_in: int, c_out: int, size: tuple[int, int]) -> None:
        super().__init__()
        if c_out < 2:
            raise ValueError(f"semi-convolutional embeddings need at least 2 channels, got {c_out}")
        self.conv = PointwiseConv(c_in, c_out)
        self.gate = nn.Parameter(torch.zeros(()))
        uv = torch.cat([torch.zeros(c_out - 2, *size), coordinate_grid(*size)])
        self.register_buffer("uv", uv, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.gate * self.conv(x) + self.uv


class ICSBPGrouper(Grouper):
    """GENESIS-v2 IC-SBP: pixel embeddings with coordinate channels, K−1 random-seed stick-breaking steps with a
    Gaussian kernel, mask-pooled Gaussian slot posterior."""

    name = "genesis.icsbp"
    needs = ("features.tokens", "features.grid")
    provides = ("latents.objects", "latents.posterior", "latents.masks", "latents.attention")

    class Spec(ComponentSpec):
        num_slots: Size = Field(
            7,
            ge=2,
            description="K, the number of slots (K − 1 stick-breaking steps; the last slot is the remaining scope)",
        )
        latent_dim: Size = Field(64, description="d, the slot latent size (GENESIS-v2 feat_dim)")
        embed_dim: Size = Field(8, ge=2, description="pixel embedding ('colour') size, coordinate channels included")
        kernel: Literal["gaussian", "laplacian", "epanechnikov"] = Field(
            "gaussian",
            description="α from the embedding distance d to the seed: exp(−d²/σ), exp(−d/σ) or relu(1 − d²/σ)",
        )
        sigma_init: float | None = Field(
            None,
            gt=0,
            description="initial kernel σ (learned); null: 1/(K ln 2) gaussian, 1/(√K ln 2) laplacian, 2/K "
            "epanechnikov",
        )
        semiconv: bool = Field(
            True,
            description="add fixed (y, x) coordinate channels to a gated (init 0) 1x1 conv; false: a plain 1x1 conv",
        )
        clamp: tuple[float, float] = Field(
            (0.01, 0.99),
            description="α is clamped to this range (straight-through gradients) so log α and log(1 − α) stay finite",
        )
        eval_sample: bool = Field(
            False, description="in evaluation latents.objects are posterior samples too (default: the posterior means)"
        )

        @model_validator(mode="after")
        def _check(self):
            lo, hi = self.clamp
            if not 0.0 < lo < hi < 1.0:
                raise ValueError(f"clamp must satisfy 0 < low < high < 1, got {list(self.clamp)}")
            return self

    def __init__(self, spec: Spec, ctx: BuildContext) -> None:
        super().__init__(spec, ctx)
        c = ctx.dim("features.tokens")
        grid = ctx.dim("features.grid")
        if grid is None:
            raise ValueError(f"{self.label} needs features on a spatial grid (features.grid), got none")
        self.grid = tuple(grid)
        k, d = spec.num_slots, spec.latent_dim
        groups = math.gcd(8, c)
        self.seg_head = conv_gn_relu(c, c, groups)
        self.embed = SemiConv(c, spec.embed_dim, self.grid) if spec.semiconv else PointwiseConv(c, spec.embed_dim)
        self.feat_head = nn.Sequential(conv_gn_relu(c, c, groups), PointwiseConv(c, 2 * d))
        self.z_head = nn.Sequential(nn.LayerNorm(2 * d), nn.Linear(2 * d, 2 * d), nn.ReLU(), nn.Linear(2 * d, 2 * d))
        sigma = (
            spec.sigma_init
            or {
                "gaussian": 1.0 / (k * math.log(2)),
                "laplacian": 1.0 / (math.sqrt(k) * math.log(2)),
                "epanechnikov": 2.0 / k,
            }[spec.kernel]
        )
        self.log_sigma = nn.Parameter(torch.tensor(math.log(sigma)))
        ctx.dims["latents.objects"] = d
        ctx.dims["latents.num_slots"] = k

    def alpha(self, embeddings: Tensor, seed: Tensor) -> Tensor:
        """Kernel between every pixel embedding ``[b e n]`` and the seed ``[b e]`` → ``[b n]``."""
        sq = (embeddings - seed.unsqueeze(-1)).square().sum(1)  # [b n]
        sigma = self.log_sigma.exp()
        if self.spec.kernel == "gaussian":
            return torch.exp(-sq / sigma)
        if self.spec.kernel == "laplacian":
            return torch.exp(-clamp_straight_through(sq, 1e-10, 1e10).sqrt() / sigma)
        return (1.0 - sq / sigma).relu()

    def stick_breaking(self, embeddings: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
        """IC-SBP on embeddings ``[b e n]`` with seed noise ``[b n]`` in (0, 1): log masks
        ``[b k n]`` and the seed pixel indices ``[b k-1]``."""
        lo, hi = self.spec.clamp
        log_scope = embeddings.new_zeros(embeddings.shape[0], embeddings.shape[2])  # [b n], scope 1
        log_masks, seeds = [], []
        for _ in range(self.spec.num_slots - 1):
            index = (noise * log_scope.exp()).argmax(dim=1)  # a random pixel, weighted by the scope
            seed = embeddings.gather(2, index.view(-1, 1, 1).expand(-1, embeddings.shape[1], 1)).squeeze(2)  # [b e]
            alpha = clamp_straight_through(self.alpha(embeddings, seed), lo, hi)
            log_masks.append(log_scope + alpha.log())
            log_scope = log_scope + (1.0 - alpha).log()
            seeds.append(index)
        log_masks.append(log_scope)  # the last slot takes what is left
        return torch.stack(log_masks, dim=1), torch.stack(seeds, dim=1)

    def forward(self, state: State) -> Latents:
        tokens = state.features.tokens  # [b t n c]
        b, t = tokens.shape[:2]
        h, w = state.features.grid
        x = rearrange(tokens, "b t (h w) c -> (b t) c h w", h=h, w=w)
        embeddings = rearrange(self.embed(self.seg_head(x)), "bt e h w -> bt e (h w)")
        noise = torch.rand(
            embeddings.shape[0], h * w, device=x.device, dtype=x.dtype
        )  # torch RNG: seeded evaluation is reproducible
        log_masks, seeds = self.stick_breaking(embeddings, noise)  # [(b t) k n]
        masks = log_masks.exp()
        feats = rearrange(self.feat_head(x), "bt c h w -> bt c (h w)")
        pooled = einsum(masks, feats, "bt k n, bt c n -> bt k c") / (masks.sum(-1, keepdim=True) + 1e-5)
        mean, raw = self.z_head(pooled).chunk(2, dim=-1)  # [(b t) k d]
        posterior = DiagonalGaussian(mean, F.softplus(raw + 0.5) + 1e-8)
        sample = self.training or self.spec.eval_sample
        objects = posterior.rsample() if sample else posterior.mean

        def unfold(x: Tensor, pattern: str) -> Tensor:
            x = rearrange(x, f"(b t) {pattern}", b=b, t=t)
            return x[:, 0] if t == 1 and pattern.startswith("k d") else x

        posterior = DiagonalGaussian(unfold(posterior.mean, "k d -> b t k d"), unfold(posterior.std, "k d -> b t k d"))
        return Latents(
            objects=unfold(objects, "k d -> b t k d"),
            posterior=posterior,
            attention=rearrange(masks, "(b t) k n -> b t k n", b=b),
            masks=rearrange(masks, "(b t) k (h w) -> b t k h w", b=b, h=h),
            extras={
                "log_masks": rearrange(log_masks, "(b t) k (h w) -> b t k h w", b=b, h=h),
                "embeddings": rearrange(embeddings, "(b t) e (h w) -> b t e h w", b=b, h=h),
                "seeds": rearrange(seeds, "(b t) k -> b t k", b=b),
            },
        )
