"""Relation accuracy: the fraction of a model's generated scenes that obey the scene-level
rule of the ``correlated`` dataset, scored from pixels by :func:`check_rule`."""

from __future__ import annotations

import torch
from torch import Tensor

from ocf.errors import UserError
from ocf.generation_metrics import GenerativeMetric
from ocf.records import State
from ocf_common.datasets import check_rule


class RelationAccuracy(GenerativeMetric):
    """Fraction of generated scenes whose rule score (check_rule, from pixels) reaches ``threshold``; the rule is the spec's correlated-dataset rule."""

    name = "relation_accuracy"

    def __init__(self, rule: str | None = None, threshold: float = 0.9, tol: float = 0.1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rule, self.threshold, self.tol = rule, threshold, tol
        self.add_state("obeyed", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0.0), dist_reduce_fx="sum")

    @classmethod
    def from_spec(cls, resolved, **options) -> "RelationAccuracy":
        if options.get("rule") is None:
            data = resolved.spec.data
            rule = (data.generate.options or {}).get("rule") if data.generate is not None else None
            if data.dataset != "correlated" and rule is None:
                raise UserError("metric relation_accuracy scores the rule of the `correlated` dataset; give eval.metric_options.relation_accuracy.rule for other data")
            options["rule"] = rule or "same_color"
        return cls(**options)

    def update(self, frames: Tensor) -> None:
        scores = check_rule(self.rule, frames.detach().float().clamp(0, 1).permute(0, 1, 3, 4, 2).cpu().numpy(), tol=self.tol)
        self.obeyed += float((scores >= self.threshold).sum())
        self.total += float(len(scores))

    def update_state(self, state: State) -> None:  # real scenes are not scored
        return None

    def update_generated(self, state: State) -> None:
        self.update(state.rendering.recon)

    def compute(self) -> Tensor:
        return self.obeyed / self.total.clamp(min=1)
