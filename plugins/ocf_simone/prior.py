"""SIMONe's prior (``simone.prior``): the KL of the object and frame posteriors to
N(0, I), each normalised its own way, and sampling from those priors."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor

from ocf.components import BuildContext, ComponentSpec, Prior, SampleRequest
from ocf.records import Latents, PriorTerms, State


class SimonePrior(Prior):
    """N(0, I) priors on SIMONe's object and frame posteriors, kept separate (K ≠ T): terms ``object_kl`` (÷K) and
    ``frame_kl`` (÷T)."""

    name = "simone.prior"
    needs = ("latents.posterior", "latents.frame_posterior")
    provides = ("prior.terms",)

    class Spec(ComponentSpec):
        normalise: bool = Field(
            True,
            description="divide the object KL (summed over k, d) by K and the frame KL (summed over t, d) by T, as the "
            "paper; false: plain sums",
        )

    def __init__(self, spec: Spec, ctx: BuildContext) -> None:
        super().__init__(spec, ctx)
        self.num_slots = ctx.dim("latents.num_slots")
        self.object_dim = ctx.dim("latents.objects")
        self.frame_dim = ctx.dim("latents.frames")
        self.frames = ctx.frames

    def _kl(self, posterior) -> Tensor:
        kl = posterior.kl()  # [b n d], n = k or t
        kl = kl.sum(dim=(1, 2))
        if self.spec.normalise:
            kl = kl / posterior.mean.shape[1]
        return kl.mean()  # over b

    def forward(self, state: State) -> PriorTerms:
        lat = state.latents
        return PriorTerms(terms={"object_kl": self._kl(lat.posterior), "frame_kl": self._kl(lat.frame_posterior)})

    def draw(self, request: SampleRequest) -> Latents:
        """``objects [n k d]`` and ``frames [n t d]`` from their own N(0, I) priors.  SIMONe
        is not a proper generative model of scenes: these decode to incoherent videos."""
        n, temperature, generator, _, frames = request.unpack()
        like = dict(**self.factory_kwargs, generator=generator)
        objects = temperature * torch.randn(n, self.num_slots, self.object_dim, **like)
        frames = temperature * torch.randn(n, frames or self.frames, self.frame_dim, **like)
        return Latents(objects=objects, frames=frames)
