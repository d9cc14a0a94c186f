"""GECO: a reconstruction constraint with a Lagrange multiplier (Rezende & Viola, 2018),
in the form GENESIS and GENESIS-v2 use.

The loss is ``err + β · (every other term)``.  After each step β is multiplied by
``exp(step_size · (goal − EMA(err)))`` — it shrinks while the reconstruction error is above
its goal (reconstruct first) and grows once the goal is met (then compress) — with the
step multiplied by ``speedup`` while the goal is met, as in GENESIS's code, and clamped to
``[beta_min, beta_max]``.  Any spec turns it on with ``train.geco`` naming the term (or a list
of terms, whose sum is the error).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ocf.errors import SpecError
from ocf.spec import GecoSpec


class Geco:
    def __init__(self, spec: GecoSpec) -> None:
        self.spec = spec
        self.beta = float(spec.beta_init)
        self.err_ema: float | None = None

    def loss(self, terms: dict[str, Tensor], update: bool = True) -> Tensor:
        names = [self.spec.term] if isinstance(self.spec.term, str) else list(self.spec.term)
        missing = [n for n in names if n not in terms]
        if missing:
            raise SpecError(
                [
                    f"train.geco.term: no loss term {', '.join(map(repr, missing))}; "
                    f"the objectives give {', '.join(terms)}"
                ]
            )
        err = torch.stack([terms[n].reshape(()) for n in names]).sum()
        others = [v for k, v in terms.items() if k not in names]
        rest = torch.stack([v.reshape(()) for v in others]).sum() if others else err.new_zeros(())
        total = err + self.beta * rest
        if update:
            self.update(float(err.detach()))
        return total

    def update(self, err: float) -> None:
        s = self.spec
        self.err_ema = err if self.err_ema is None else s.alpha * self.err_ema + (1 - s.alpha) * err
        constraint = s.goal - self.err_ema
        step = s.step_size * (s.speedup if s.speedup is not None and constraint > 0 else 1.0)
        self.beta = min(max(self.beta * math.exp(step * constraint), s.beta_min), s.beta_max)

    def state_dict(self) -> dict:
        return {"beta": self.beta, "err_ema": self.err_ema}

    def load_state_dict(self, state: dict) -> None:
        self.beta = float(state["beta"])
        self.err_ema = None if state["err_ema"] is None else float(state["err_ema"])
