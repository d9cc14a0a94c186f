"""SIMONe's loss: the pixel mixture likelihood (``simone.likelihood``) and the KL of the
object and frame posteriors to N(0, I), each normalised its own way (``simone.prior``)."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, PositiveFloat
from torch import Tensor

from ocf.errors import UserError
from ocf.components import BuildContext, ComponentSpec, Objective, ObjectiveSpec, Prior
from ocf.prob import kl_normal_normal, mixture_log_likelihood
from ocf.records import Latents, PriorTerms, State


class SimoneLikelihood(Objective):
    """SIMONe pixel term: −log Σ_k softmax(mask)_k N(x; rgb_k, σ_x²) per channel, summed over pixels and channels, divided by t·h·w (term ``nll``)."""

    name = "simone.likelihood"
    needs = ("rendering.rgb", "rendering.mask_logits")

    class Spec(ObjectiveSpec):
        weight: float = Field(0.2, ge=0.0, description="α, multiplies the term (paper 0.2)")
        sigma: PositiveFloat = Field(0.08, description="σ_x, the fixed standard deviation of every mixture component")
        mixture: Literal["channel", "pixel"] = Field(
            "channel",
            description="'channel': each colour channel is its own mixture over slots (the paper's formula and the public "
            "reproduction); 'pixel': one mixture per pixel over the slots' whole RGB (log Σ_k m_k Π_c N), as MONet / GENESIS "
            "— a slot must then explain all channels of a pixel, so slots cannot split a sprite by colour channel",
        )

    def forward(self, state: State) -> dict[str, Tensor]:
        r = state.rendering
        target = state.target  # the decoded subset in training: [b t' c h' w']
        per_channel = self.spec.mixture == "channel"
        ll = mixture_log_likelihood(target, r.rgb, r.mask_logits, self.spec.sigma, per_channel=per_channel)  # [b t c|1 h w]
        t, _, h, w = ll.shape[1:]
        return {"nll": -(ll.flatten(1).sum(1) / (t * h * w)).mean()}


class SimonePrior(Prior):
    """N(0, I) priors on SIMONe's object and frame posteriors, kept separate (K ≠ T): terms ``object_kl`` (÷K) and ``frame_kl`` (÷T)."""

    name = "simone.prior"
    needs = ("latents.posterior", "latents.frame_posterior")
    provides = ("prior.terms",)

    class Spec(ComponentSpec):
        normalise: bool = Field(True, description="divide the object KL (summed over k, d) by K and the frame KL (summed over t, d) by T, as the paper; false: plain sums")

    def __init__(self, spec: Spec, ctx: BuildContext) -> None:
        super().__init__(spec, ctx)
        self.num_slots = ctx.dim("latents.num_slots")
        self.object_dim = ctx.dim("latents.objects")
        self.frame_dim = ctx.dim("latents.frames")
        self.frames = ctx.frames
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)  # follows .to(device)

    def _kl(self, posterior) -> Tensor:
        kl = kl_normal_normal(posterior)  # [b n d], n = k or t
        kl = kl.sum(dim=(1, 2))
        if self.spec.normalise:
            kl = kl / posterior.mean.shape[1]
        return kl.mean()  # over b

    def forward(self, state: State) -> PriorTerms:
        lat = state.latents
        return PriorTerms(terms={"object_kl": self._kl(lat.posterior), "frame_kl": self._kl(lat.frame_posterior)})

    def sample(self, n: int, *, temperature: float = 1.0, generator: torch.Generator | None = None,
               condition: State | None = None, frames: int | None = None) -> Latents:
        """``objects [n k d]`` and ``frames [n t d]`` from their own N(0, I) priors.  SIMONe
        is not a proper generative model of scenes: these decode to incoherent videos."""
        if condition is not None:
            raise UserError(f"{self.label} draws independent scenes; it cannot continue observed frames (drop --condition)")
        like = dict(device=self._anchor.device, dtype=self._anchor.dtype, generator=generator)
        objects = temperature * torch.randn(n, self.num_slots, self.object_dim, **like)
        frames = temperature * torch.randn(n, frames or self.frames, self.frame_dim, **like)
        return Latents(objects=objects, frames=frames)
