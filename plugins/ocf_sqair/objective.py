"""SQAIR's training objective: the importance-weighted bound over the grouper's particles,
with VIMCO for the discrete presence choices."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from ocf.components import Objective, ObjectiveSpec
from ocf.fields import MAX_STEPS
from ocf.records import State
from ocf_sqair.estimators import surrogate


def log_weights(state: State, freeze_discrete: bool = False) -> tuple[Tensor, Tensor]:
    """Per-particle ``log w [p b]`` = Σ_t [log p(x_t|z_t) + log p(z_t|z_<t) − log q(z_t|·)]
    and the discrete part of log q ``[p b]``.  ``freeze_discrete``: no gradient reaches
    the presence probabilities of q through ``log w``."""
    ex = state.latents.extras
    p = ex["num_particles"]
    log_q = ex["log_q"]
    if freeze_discrete:
        log_q = log_q - ex["log_q_discrete"] + ex["log_q_discrete"].detach()
    log_w = (state.rendering.extras["log_lik"] + state.prior.extras["log_p"] - log_q).sum(1)  # [(p b)]
    return log_w.view(p, -1), ex["log_q_discrete"].sum(1).view(p, -1)


class IwaeObjective(Objective):
    """Negative importance-weighted ELBO over the grouper's k particles (term ``nll_iwae``) plus VIMCO's score-
    function term for presence (``vimco``, value 0)."""

    name = "sqair.iwae"
    needs = ("latents.extras", "prior.extras", "rendering.extras")
    example_state = "ocf_sqair.fixtures:objective_state"  # conformance fixture

    class Spec(ObjectiveSpec):
        signal: Literal["reference", "vimco", "reinforce", "none"] = Field(
            "reference",
            description="learning signal for the presence choices: reference (SQAIR code: log w_j − L̂_−j), vimco "
            "(paper: L̂ − L̂_−j), reinforce (no baseline), none",
        )
        presence_warmup: int = Field(
            0,
            ge=0,
            le=MAX_STEPS,
            description="training steps at the start during which q's presence probabilities get no gradient at all "
            "(they keep their initial values while the decoder and the locations learn); 0: none, as the "
            "papers",
        )

    def __init__(self, spec: Spec, ctx) -> None:
        super().__init__(spec, ctx)
        self.register_buffer(
            "steps", torch.zeros((), dtype=torch.long)
        )  # training forward passes, saved in checkpoints

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints written before the counter existed load with it at 0
        state_dict.setdefault(prefix + "steps", torch.zeros((), dtype=torch.long))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, state: State) -> dict[str, Tensor]:
        frozen = bool(self.steps < self.spec.presence_warmup)
        if self.training:
            self.steps += 1
        log_w, log_q_d = log_weights(state, freeze_discrete=frozen)
        bound, score = surrogate(log_w, log_q_d, "none" if frozen else self.spec.signal)
        return {"nll_iwae": -bound.mean(), "vimco": -(score - score.detach()).mean()}
