"""SQAIR's evaluation metrics: the importance-weighted log-likelihood bound and how often
discovery fires.  Count accuracy is the core ``count_accuracy`` on ``latents.presence``."""

from __future__ import annotations

from typing import ClassVar

import torch

from ocf.metrics import EvalMetric
from ocf.records import State
from ocf_sqair.estimators import iwae_bound
from ocf_sqair.objective import log_weights


class IwaeBound(EvalMetric):
    """Mean over clips of the IWAE bound on log p(x) with the grouper's eval particles
    (nats per clip; higher is better)."""

    name = "sqair.iwae_bound"
    requires = ("latents.extras.log_q", "prior.extras.log_p", "rendering.extras.log_lik")
    sums = {"total": torch.float64, "count": torch.long}
    higher_is_better: ClassVar[bool] = True

    def update_state(self, state: State) -> None:
        type(self).check(state)
        log_w, _ = log_weights(state)
        self.update(iwae_bound(log_w.detach()))

    def update(self, bound: torch.Tensor) -> None:
        """Accumulate per-clip bounds ``[b]``."""
        self.total += bound.double().sum()
        self.count += bound.numel()

    def compute(self):
        return self.total / self.count.clamp(min=1)


class DiscoveryRate(EvalMetric):
    """Fraction of frames after the first in which discovery adds at least one object
    (particle 0; every frame for single images)."""

    name = "sqair.discovery_rate"
    requires = ("latents.extras.discovered",)
    sums = {"fired": torch.long, "frames": torch.long}

    def update_state(self, state: State) -> None:
        type(self).check(state)
        b = state.batch.frames.shape[0]
        disc = state.latents.extras["discovered"][:b]  # [b t k]
        if disc.shape[1] > 1:
            disc = disc[:, 1:]
        self.update(disc.sum(-1) > 0)

    def update(self, fired: torch.Tensor) -> None:
        """Accumulate per-frame flags ``[b t]``: discovery added an object."""
        self.fired += fired.sum()
        self.frames += fired.numel()

    def compute(self):
        return self.fired.double() / self.frames.clamp(min=1)
