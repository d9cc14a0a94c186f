"""SRI's prior (Segregate, Relate, Imagine; Emami et al.): a scene variable inferred from
the slots, an autoregressive slot prior conditioned on it, and a learned slot order
imposed on any grouper's randomly ordered slot posterior."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveFloat
from torch import Tensor, nn

from ocf.components import BuildContext, ComponentSpec, Prior, SampleRequest
from ocf.errors import SpecError, UserError
from ocf.fields import Repeats, Size
from ocf.records import DiagonalGaussian, Latents, PriorTerms, State
from ocf_sri.matching import MATCHERS


def _xavier(module: nn.Module) -> None:
    """Xavier-uniform weights and zero biases on every linear layer (the paper's init)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _scale(raw: Tensor, min_std: float) -> Tensor:
    return F.softplus(raw) + min_std


class SceneEncoder(nn.Module):
    """Relate: residual set self-attention over the slots (no positional encoding, one set
    of weights for every slot), DeepSets sum pooling, two linear heads → q(s | z)."""

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
        return DiagonalGaussian(self.mean(h), _scale(self.raw_std(h), self.min_std))


class SlotLSTM(nn.Module):
    """An LSTM over slots started by a GELU projection of the scene variable: step i reads
    [proj(s), z_{i-1}] (z_0 = 0) and two linear heads give the mean and scale of slot i."""

    def __init__(self, slot_dim: int, scene_dim: int, hidden: int, min_std: float, with_mean: bool = True) -> None:
        super().__init__()
        self.slot_dim, self.min_std = slot_dim, min_std
        self.scene = nn.Sequential(nn.Linear(scene_dim, hidden), nn.GELU())
        self.cell = nn.LSTMCell(hidden + slot_dim, hidden)
        self.mean = nn.Linear(hidden, slot_dim) if with_mean else None
        self.raw_std = nn.Linear(hidden, slot_dim)

    def _steps(self, s: Tensor, inputs: Tensor | None, k: int, noise: Tensor | None):
        """Teacher-forced when ``inputs [b k d]`` is given (step i reads inputs[:, i-1]);
        otherwise a rollout feeding back mean + std · noise[:, i]."""
        b = s.shape[0]
        ctx = self.scene(s)
        h = c = ctx.new_zeros(b, self.cell.hidden_size)
        prev = ctx.new_zeros(b, self.slot_dim)
        means, stds, samples = [], [], []
        for i in range(k):
            h, c = self.cell(torch.cat([ctx, prev], dim=-1), (h, c))
            std = _scale(self.raw_std(h), self.min_std)
            mean = self.mean(h) if self.mean is not None else None
            means.append(mean)
            stds.append(std)
            if inputs is not None:
                prev = inputs[:, i]
            else:
                prev = mean + std * noise[:, i]
                samples.append(prev)
        mean = torch.stack(means, 1) if self.mean is not None else None
        return mean, torch.stack(stds, 1), (torch.stack(samples, 1) if samples else None)

    def teacher_forced(self, s: Tensor, z: Tensor) -> tuple[Tensor | None, Tensor]:
        """Per-slot (mean, std) of p(z_i | z_<i, s) for given slots ``z [b k d]``."""
        mean, std, _ = self._steps(s, z, z.shape[1], None)
        return mean, std

    def rollout(self, s: Tensor, k: int, noise: Tensor) -> tuple[Tensor, DiagonalGaussian]:
        """Imagine k slots in order: samples ``[b k d]`` and each step's distribution
        (conditioned on the rollout's own earlier samples)."""
        mean, std, samples = self._steps(s, None, k, noise)
        return samples, DiagonalGaussian(mean, std)


class SRIPrior(Prior):
    """SRI: scene variable from the slots, scene-conditioned autoregressive slot prior, learned slot order imposed on
    the posterior."""

    name = "sri.prior"
    needs = ("latents.posterior",)
    provides = ("prior.terms", "prior.extras")

    class Spec(ComponentSpec):
        scene_dim: Size | None = Field(
            None, description="dimension of the scene variable s (default: twice the slot dim, as the paper)"
        )
        width: Size = Field(128, description="width of the scene encoder's set self-attention layers")
        layers: Repeats = Field(3, description="residual set self-attention layers L (paper 3)")
        heads: Size = Field(4, description="attention heads; must divide width")
        lstm_hidden: Size = Field(256, description="hidden units of the prior and posterior LSTMs (paper 256)")
        matching: Literal["greedy", "hungarian"] = Field(
            "greedy",
            description="greedy O(K²) in rollout order (paper) or optimal (Hungarian per scene, "
            "scipy's linear_sum_assignment)",
        )
        min_std: PositiveFloat = Field(
            1e-3, description="added to every predicted standard deviation (softplus + min_std)"
        )
        segregation_kl: bool = Field(
            True,
            description="also return the segregation VAE's own KL of the randomly ordered posterior to N(0, I) (term "
            "segregation_kl), as when GENESIS-v2 trains jointly with SRI",
        )

    def __init__(self, spec: Spec, ctx: BuildContext) -> None:
        super().__init__(spec, ctx)
        self.num_slots, self.slot_dim = ctx.dim("latents.num_slots"), ctx.dim("latents.objects")
        self.frame_dim, self.frames = ctx.dims.get("latents.frames"), ctx.frames
        if spec.width % spec.heads:
            raise SpecError([f"{self.label}: heads ({spec.heads}) must divide width ({spec.width})"])
        self.scene_dim = spec.scene_dim or 2 * self.slot_dim
        self.relate = SceneEncoder(self.slot_dim, spec.width, spec.layers, spec.heads, self.scene_dim, spec.min_std)
        self.slot_prior = SlotLSTM(self.slot_dim, self.scene_dim, spec.lstm_hidden, spec.min_std)
        self.posterior_scales = SlotLSTM(self.slot_dim, self.scene_dim, spec.lstm_hidden, spec.min_std, with_mean=False)
        _xavier(self)

    def forward(self, state: State) -> PriorTerms:
        lat = state.latents
        post = lat.posterior
        if post.mean.dim() != 3:
            raise UserError(
                f"prior sri.prior needs a slot posterior [b k d]; got {list(post.mean.shape)} (a grouper with "
                "time-varying slots is not supported)"
            )
        k = post.mean.shape[1]
        # Segregate → Relate: the scene posterior from detached slot samples.
        mu = post.mean.detach()
        q_scene = self.relate(post.rsample().detach())
        s = q_scene.rsample() if self.training else q_scene.mean
        # Imagine: roll the prior out from s, match it to the posterior slots (no gradient).
        noise = torch.randn(s.shape[0], k, self.slot_dim, device=s.device, dtype=s.dtype)
        imagined, rollout = self.slot_prior.rollout(s, k, noise)
        cost = torch.cdist(imagined.detach(), mu).pow(2)  # [b k k]: rollout step × posterior slot
        order = MATCHERS[self.spec.matching](cost)
        # The ordered posterior: permuted means, variances predicted from [s, preceding means].
        ordered_mean = torch.gather(mu, 1, order.unsqueeze(-1).expand_as(mu))
        _, ordered_std = self.posterior_scales.teacher_forced(s, ordered_mean)
        q_ordered = DiagonalGaussian(ordered_mean, ordered_std)
        z = q_ordered.rsample()
        prior_mean, prior_std = self.slot_prior.teacher_forced(s, z)
        p_slots = DiagonalGaussian(prior_mean, prior_std)
        terms = {
            "scene_kl": q_scene.kl().sum(-1).mean(),
            "slot_kl": q_ordered.kl(p_slots).sum(dim=(1, 2)).mean(),
            "cross_order_kl": q_ordered.kl(rollout).sum(dim=(1, 2)).mean(),
        }
        if self.spec.segregation_kl:
            terms["segregation_kl"] = post.kl().flatten(1).sum(1).mean()
        if lat.frame_posterior is not None:  # frame latents (SIMONe) keep an independent N(0, I)
            terms["frame_kl"] = lat.frame_posterior.kl().flatten(1).sum(1).mean()
        extras = {"ordered": z, "order": order, "imagined": imagined, "scene": s}
        return PriorTerms(terms=terms, extras=extras)

    @torch.no_grad()
    def draw(self, request: SampleRequest) -> Latents:
        """s ~ N(0, T²I), then the slot LSTM imagines K slots in its learned order."""
        n, temperature, generator, _, frames = request.unpack()
        like = dict(**self.factory_kwargs, generator=generator)
        s = temperature * torch.randn(n, self.scene_dim, **like)
        noise = temperature * torch.randn(n, self.num_slots, self.slot_dim, **like)
        slots, _ = self.slot_prior.rollout(s, self.num_slots, noise)
        frame_latents = None
        if self.frame_dim is not None:
            frame_latents = temperature * torch.randn(n, frames or self.frames, self.frame_dim, **like)
        return Latents(objects=slots, frames=frame_latents, extras={"scene": s})
