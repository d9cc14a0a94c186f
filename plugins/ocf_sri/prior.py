"""SRI's prior (Segregate, Relate, Imagine; Emami et al.): a scene variable inferred from
the slots, an autoregressive slot prior conditioned on it, and a learned slot order
imposed on any grouper's randomly ordered slot posterior."""

from __future__ import annotations

import warnings
from typing import Literal

import torch
from pydantic import Field, PositiveFloat
from torch import Tensor, nn

from ocf.components import BuildContext, ComponentSpec, Prior, SampleRequest
from ocf.errors import SpecError, UserError
from ocf.fields import Repeats, Size
from ocf.records import DiagonalGaussian, Latents, PriorTerms, State
from ocf_sri.matching import MATCHERS
from ocf_sri.relate import RelationalSceneEncoder, SceneEncoder, scale

__all__ = ["RelationalSceneEncoder", "SRIPrior", "SceneEncoder", "SlotLSTM"]


def _xavier(module: nn.Module) -> None:
    """Xavier-uniform weights and zero biases on every linear layer (the paper's init)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class SlotLSTM(nn.Module):
    """An LSTM over slots whose first input is a GELU projection of the scene variable to the slot
    dim: step 1 reads proj(s), step i > 1 reads z_{i-1}; two linear heads give the mean and scale
    of slot i. The scene variable enters only through that first step."""

    def __init__(self, slot_dim: int, scene_dim: int, hidden: int, min_std: float, with_mean: bool = True) -> None:
        super().__init__()
        self.slot_dim, self.min_std = slot_dim, min_std
        self.scene = nn.Sequential(nn.Linear(scene_dim, slot_dim), nn.GELU())
        self.cell = nn.LSTMCell(slot_dim, hidden)
        self.mean = nn.Linear(hidden, slot_dim) if with_mean else None
        self.raw_std = nn.Linear(hidden, slot_dim)

    def _steps(self, s: Tensor, inputs: Tensor | None, k: int, noise: Tensor | None):
        """Teacher-forced when ``inputs [b k d]`` is given (step i reads inputs[:, i-1]);
        otherwise a rollout feeding back mean + std · noise[:, i]."""
        step_input, hc = self.scene(s), None
        means, stds, samples = [], [], []
        for i in range(k):
            hc = self.cell(step_input, hc)
            std = scale(self.raw_std(hc[0]), self.min_std)
            mean = self.mean(hc[0]) if self.mean is not None else None
            means.append(mean)
            stds.append(std)
            if inputs is not None:
                step_input = inputs[:, i]
            else:
                step_input = mean + std * noise[:, i]
                samples.append(step_input)
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
        relate: Literal["relational", "set_attention"] = Field(
            "relational",
            description="the scene encoder: relational (single-head attention over slot pairs with values from "
            "[z_i, z_i − z_j], at the slot dim) or set_attention (multi-head set self-attention at its own width "
            "with DeepSets φ/ρ)",
        )
        layers: Repeats = Field(3, description="residual attention blocks L of the scene encoder (paper 3)")
        width: Size | None = Field(
            None, description="relate: set_attention only: width of its attention layers (default 128)"
        )
        heads: Size | None = Field(
            None, description="relate: set_attention only: attention heads, dividing width (default 4)"
        )
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
        self.scene_dim = spec.scene_dim or 2 * self.slot_dim
        self.relate = self._relate(spec)
        self.slot_prior = SlotLSTM(self.slot_dim, self.scene_dim, spec.lstm_hidden, spec.min_std)
        self.posterior_scales = SlotLSTM(self.slot_dim, self.scene_dim, spec.lstm_hidden, spec.min_std, with_mean=False)
        _xavier(self)

    def _relate(self, spec: Spec) -> nn.Module:
        if spec.relate == "relational":
            if spec.width is not None or spec.heads is not None:
                warnings.warn(
                    f"{self.label}: width and heads configure relate: set_attention, the scene encoder sri.prior used "
                    "by default before; the default relate: relational works at the slot dim and ignores them. "
                    "Remove width and heads, or write relate: set_attention to keep the set-attention network",
                    DeprecationWarning,
                    stacklevel=2,
                )
            return RelationalSceneEncoder(self.slot_dim, spec.layers, self.scene_dim, spec.min_std)
        width, heads = spec.width or 128, spec.heads or 4
        if width % heads:
            raise SpecError([f"{self.label}: heads ({heads}) must divide width ({width})"])
        return SceneEncoder(self.slot_dim, width, spec.layers, heads, self.scene_dim, spec.min_std)

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
        # Imagine: roll the prior out from s, match its means to the posterior means (no gradient).
        noise = torch.randn(s.shape[0], k, self.slot_dim, device=s.device, dtype=s.dtype)
        imagined, rollout = self.slot_prior.rollout(s, k, noise)
        cost = torch.cdist(rollout.mean.detach(), mu).pow(2)  # [b k k]: rollout step's mean × posterior slot
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
