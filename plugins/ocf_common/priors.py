"""Generic priors."""

from __future__ import annotations

import torch
from torch import Tensor

from ocf.components import BuildContext, ComponentSpec, Prior, SampleRequest
from ocf.records import Latents, PriorTerms, State


def _kl_per_sample(posterior) -> Tensor:
    """KL(posterior || N(0, I)) summed over every axis but b, averaged over b."""
    return posterior.kl().flatten(1).sum(1).mean()


class NormalPrior(Prior):
    """Standard normal prior N(0, I) on the slot posterior (and the frame posterior, if any): analytic KL and
    sampling."""

    name = "normal"
    needs = ("latents.posterior",)
    provides = ("prior.terms",)

    class Spec(ComponentSpec):
        pass

    def __init__(self, spec: Spec, ctx: BuildContext) -> None:
        super().__init__(spec, ctx)
        self.num_slots = ctx.dim("latents.num_slots")
        self.slot_dim = ctx.dim("latents.objects")
        self.frame_dim = ctx.dims.get("latents.frames")
        self.frames = ctx.frames

    def forward(self, state: State) -> PriorTerms:
        """``kl``: KL of ``latents.posterior``; ``frame_kl``: of ``latents.frame_posterior``
        when present.  Each is summed over slots (and t) and latent dims, averaged over b."""
        latents = state.latents
        terms = {"kl": _kl_per_sample(latents.posterior)}
        if latents.frame_posterior is not None:
            terms["frame_kl"] = _kl_per_sample(latents.frame_posterior)
        return PriorTerms(terms=terms)

    def draw(self, request: SampleRequest) -> Latents:
        """``objects [n k d]`` (and ``frames [n t d]`` when the grouper has frame latents)."""
        n, temperature, generator, _, frames = request.unpack()
        like = dict(**self.factory_kwargs, generator=generator)
        objects = temperature * torch.randn(n, self.num_slots, self.slot_dim, **like)
        frame_latents = None
        if self.frame_dim is not None:
            frame_latents = temperature * torch.randn(n, frames or self.frames, self.frame_dim, **like)
        return Latents(objects=objects, frames=frame_latents)
