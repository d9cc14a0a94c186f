"""Generic objectives.  Each returns ``{term: scalar}``; the model multiplies by ``weight``.

Likelihood objectives reduce the per-pixel log-likelihood ``[b t c h w]`` by ``reduction``:

- ``sum``: summed over (t c h w), averaged over b — a proper per-sample NLL (default);
- ``mean_pixel``: summed over c, averaged over (b t h w) — SIMONe's per-pixel scale;
- ``mean``: averaged over everything — per pixel-channel, the unit of GECO goals.
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from ocf.components import Objective, ObjectiveSpec
from ocf.prob import gaussian_log_likelihood, mixture_log_likelihood
from ocf.records import State

Reduction = Literal["sum", "mean_pixel", "mean"]
REDUCTION_HELP = "sum: over (t c h w), mean over b; mean_pixel: sum over c, mean over (b t h w); mean: mean over all"


def reduce_nll(log_lik: Tensor, reduction: Reduction) -> Tensor:
    """Negative of ``log_lik [b t c h w]`` reduced to a scalar (see the module docstring)."""
    if reduction == "sum":
        return -log_lik.flatten(1).sum(1).mean()
    if reduction == "mean_pixel":
        return -log_lik.sum(dim=-3).mean()
    return -log_lik.mean()


class MSEObjective(Objective):
    """Mean squared error between the reconstruction and the target pixels (term ``mse``)."""

    name = "mse"
    needs = ("rendering.recon",)

    class Spec(ObjectiveSpec):
        pass

    def forward(self, state: State) -> dict[str, Tensor]:
        return {"mse": F.mse_loss(state.rendering.recon, state.target)}


class GaussianNLLObjective(Objective):
    """Negative log-likelihood of the target under N(recon, sigma²) with fixed sigma (term ``nll``)."""

    name = "gaussian_nll"
    needs = ("rendering.recon",)

    class Spec(ObjectiveSpec):
        sigma: float = Field(0.1, gt=0, description="fixed pixel standard deviation")
        reduction: Reduction = Field("sum", description=REDUCTION_HELP)

    def forward(self, state: State) -> dict[str, Tensor]:
        ll = gaussian_log_likelihood(state.target, state.rendering.recon, self.spec.sigma)
        return {"nll": reduce_nll(ll, self.spec.reduction)}


class MixtureNLLObjective(Objective):
    """Negative log-likelihood of the target under the spatial Gaussian mixture of per-slot rgb and masks (term
    ``nll``)."""

    name = "mixture_nll"
    needs = ("rendering.rgb", "rendering.mask_logits")

    class Spec(ObjectiveSpec):
        sigma: float = Field(0.1, gt=0, description="fixed standard deviation of every mixture component")
        reduction: Reduction = Field("sum", description=REDUCTION_HELP)

    def forward(self, state: State) -> dict[str, Tensor]:
        r = state.rendering
        ll = mixture_log_likelihood(state.target, r.rgb, r.mask_logits, self.spec.sigma)
        return {"nll": reduce_nll(ll, self.spec.reduction)}


class KLObjective(Objective):
    """Sum of the prior's KL / negative log-prob terms (all, or those listed in ``terms``), as one term."""

    name = "kl"
    needs = ("prior.terms",)

    class Spec(ObjectiveSpec):
        terms: list[str] | None = Field(
            None, min_length=1, description="prior terms to sum (null: all), e.g. [frame_kl] to weight it separately"
        )
        name: str = Field("kl", min_length=1, description="name of the returned loss term")

    def forward(self, state: State) -> dict[str, Tensor]:
        terms = state.prior.terms
        names = self.spec.terms if self.spec.terms is not None else list(terms)
        missing = [n for n in names if n not in terms]
        if missing:
            raise ValueError(
                f"objective kl: the prior has no term {', '.join(missing)} (it has {', '.join(terms) or 'none'})"
            )
        return {self.spec.name: sum(terms[n] for n in names)}
