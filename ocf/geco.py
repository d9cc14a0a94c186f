"""GECO: a reconstruction constraint with a Lagrange multiplier (Rezende & Viola, 2018),
in the form GENESIS and GENESIS-v2 use.

The loss is ``err + β · (every other term)``.  After each step β is multiplied by
``exp(step_size · (goal − EMA(err)))`` — it shrinks while the reconstruction error is above
its goal (reconstruct first) and grows once the goal is met (then compress) — with the
step multiplied by ``speedup`` while the goal is met, as in GENESIS's code, and clamped to
``[beta_min, beta_max]``.  Any spec turns it on with ``train.geco`` naming the term (or a list
of terms, whose sum is the error).

Several constraints, each with its own β, are a mapping of names to such specs
(``train.geco: {seg: {...}, sri: {...}}``); each constraint's ``penalises`` lists the terms its
β multiplies, and at most one may leave it null to take every term no constraint names.  Terms
that no constraint names are added with weight 1 when every constraint lists its own.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ocf.errors import SpecError
from ocf.spec_geco import GecoSpec


def _names(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _sum(terms: dict[str, Tensor], names: list[str], like: Tensor) -> Tensor:
    return torch.stack([terms[n].reshape(()) for n in names]).sum() if names else like.new_zeros(())


class Geco:
    """One GECO constraint; ``name`` is its key under ``train.geco`` when there are several ("" for the single form)."""

    def __init__(self, spec: GecoSpec, name: str = "") -> None:
        self.spec, self.name = spec, name
        self.beta = float(spec.beta_init)
        self.err_ema: float | None = None

    @property
    def where(self) -> str:
        return f"train.geco.{self.name}" if self.name else "train.geco"

    def check(self, terms: dict[str, Tensor]) -> None:
        for field in ("term", "penalises"):
            names = _names(getattr(self.spec, field) or [])
            missing = [n for n in names if n not in terms]
            if missing:
                raise SpecError(
                    [
                        f"{self.where}.{field}: no loss term {', '.join(map(repr, missing))}; "
                        f"the objectives give {', '.join(terms)}"
                    ]
                )

    def loss(self, terms: dict[str, Tensor], update: bool = True) -> Tensor:
        return combine([self], terms, update)

    def errors(self, terms: dict[str, Tensor]) -> list[float]:
        """The constrained error of each constraint (here one): the sum of its ``term``."""
        return [float(sum(float(terms[n].detach()) for n in _names(self.spec.term)))]

    def update_errors(self, errors: list[float]) -> None:
        """Update β from ``errors`` (one per constraint, as :meth:`errors` gives them)."""
        self.update(errors[0])

    def update(self, err: float) -> None:
        s = self.spec
        self.err_ema = err if self.err_ema is None else s.alpha * self.err_ema + (1 - s.alpha) * err
        constraint = s.goal - self.err_ema
        step = s.step_size * (s.speedup if s.speedup is not None and constraint > 0 else 1.0)
        self.beta = min(max(self.beta * math.exp(step * constraint), s.beta_min), s.beta_max)

    def log_values(self) -> dict[str, float]:
        return {f"geco/beta/{self.name}" if self.name else "geco/beta": self.beta}

    def summary(self) -> float:
        return self.beta

    def state_dict(self) -> dict:
        return {"beta": self.beta, "err_ema": self.err_ema}

    def load_state_dict(self, state: dict) -> None:
        self.beta = float(state["beta"])
        self.err_ema = None if state["err_ema"] is None else float(state["err_ema"])


def combine(gecos: list[Geco], terms: dict[str, Tensor], update: bool = True) -> Tensor:
    """Σ over constraints of err + β·(its penalised terms), plus the terms no constraint names when each lists its
    own; then every β is updated from its error."""
    for g in gecos:
        g.check(terms)
    named = {n for g in gecos for n in _names(g.spec.term) + list(g.spec.penalises or [])}
    rest = [k for k in terms if k not in named]
    total, errors = None, []
    for g in gecos:
        names = _names(g.spec.term)
        err = torch.stack([terms[n].reshape(()) for n in names]).sum()
        penalised = rest if g.spec.penalises is None else list(g.spec.penalises)
        part = err + g.beta * _sum(terms, penalised, err)
        total = part if total is None else total + part
        errors.append(err)
    if all(g.spec.penalises is not None for g in gecos) and rest:
        total = total + _sum(terms, rest, total)
    if update:
        for g, err in zip(gecos, errors):
            g.update(float(err.detach()))
    return total


class GecoSet:
    """Several named GECO constraints (``train.geco: {name: GecoSpec, ...}``), each with its own β."""

    def __init__(self, specs: dict[str, GecoSpec]) -> None:
        self.constraints = [Geco(spec, name) for name, spec in specs.items()]

    @property
    def beta(self) -> float:
        """The first constraint's β (see ``log_values`` for all)."""
        return self.constraints[0].beta

    def loss(self, terms: dict[str, Tensor], update: bool = True) -> Tensor:
        return combine(self.constraints, terms, update)

    def errors(self, terms: dict[str, Tensor]) -> list[float]:
        return [e for g in self.constraints for e in g.errors(terms)]

    def update_errors(self, errors: list[float]) -> None:
        for g, err in zip(self.constraints, errors, strict=True):
            g.update(err)

    def log_values(self) -> dict[str, float]:
        return {k: v for g in self.constraints for k, v in g.log_values().items()}

    def summary(self) -> dict[str, float]:
        return {g.name: g.beta for g in self.constraints}

    def state_dict(self) -> dict:
        first = self.constraints[0].state_dict()
        return {**first, "constraints": {g.name: g.state_dict() for g in self.constraints}}

    def load_state_dict(self, state: dict) -> None:
        saved = state.get("constraints") or {self.constraints[0].name: state}
        for g in self.constraints:
            if g.name in saved:
                g.load_state_dict(saved[g.name])


def make_geco(spec: GecoSpec | dict[str, GecoSpec]) -> Geco | GecoSet:
    """The GECO of ``train.geco``: one constraint, or a set of named ones."""
    return Geco(spec) if isinstance(spec, GecoSpec) else GecoSet(spec)
