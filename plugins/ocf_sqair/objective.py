"""SQAIR's training objective: the importance-weighted bound over the grouper's particles,
with VIMCO for the discrete presence choices."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from torch import Tensor

from ocf.components import Objective, ObjectiveSpec
from ocf.records import State
from ocf_sqair.estimators import surrogate


def log_weights(state: State) -> tuple[Tensor, Tensor]:
    """Per-particle ``log w [p b]`` = Σ_t [log p(x_t|z_t) + log p(z_t|z_<t) − log q(z_t|·)]
    and the discrete part of log q ``[p b]``."""
    ex = state.latents.extras
    p = ex["num_particles"]
    log_w = (state.rendering.extras["log_lik"] + state.prior.extras["log_p"] - ex["log_q"]).sum(1)  # [(p b)]
    return log_w.view(p, -1), ex["log_q_discrete"].sum(1).view(p, -1)


class IwaeObjective(Objective):
    """Negative importance-weighted ELBO over the grouper's k particles (term ``nll_iwae``) plus VIMCO's score-function term for presence (``vimco``, value 0)."""

    needs = ("latents.extras", "prior.extras", "rendering.extras")

    class Spec(ObjectiveSpec):
        signal: Literal["reference", "vimco", "reinforce", "none"] = Field(
            "reference", description="learning signal for the presence choices: reference (SQAIR code: log w_j − L̂_−j), vimco (paper: L̂ − L̂_−j), reinforce (no baseline), none")

    @classmethod
    def example_state(cls, ctx, batch_size: int) -> State:
        from ocf_sqair.example import tiny_state

        return tiny_state(ctx, batch_size, upto="decoder")

    def forward(self, state: State) -> dict[str, Tensor]:
        log_w, log_q_d = log_weights(state)
        bound, score = surrogate(log_w, log_q_d, self.spec.signal)
        return {"nll_iwae": -bound.mean(), "vimco": -(score - score.detach()).mean()}
