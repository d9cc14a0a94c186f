"""Relation accuracy: the fraction of a model's generated scenes that obey the scene-level
rule of the ``correlated`` dataset, scored from pixels by :func:`check_rule`."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from ocf.errors import UserError
from ocf.metrics import GenerativeMetric, MetricSpec
from ocf.records import State
from ocf_common.datasets import check_rule


class RelationAccuracy(GenerativeMetric):
    """Fraction of generated scenes whose rule score (check_rule, from pixels) reaches
    ``threshold``; the rule is the spec's correlated-dataset rule."""

    name = "relation_accuracy"
    sums = {"obeyed": torch.float32, "total": torch.float32}

    class Spec(MetricSpec):
        rule: Literal["same_color", "stacked"] | None = Field(
            None, description="the scene rule to check (default: the correlated dataset's rule in the spec)"
        )
        threshold: float = Field(0.9, ge=0, le=1, description="rule score a scene needs to count as obeying")
        tol: float = Field(0.1, ge=0, description="colour tolerance of check_rule")

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.rule, self.threshold, self.tol = self.options.rule, self.options.threshold, self.options.tol

    @classmethod
    def from_spec(cls, resolved, **options) -> RelationAccuracy:
        if options.get("rule") is None:
            data = resolved.spec.data
            rule = (data.generate.options or {}).get("rule") if data.generate is not None else None
            if data.dataset != "correlated" and rule is None:
                raise UserError(
                    "metric relation_accuracy scores the rule of the `correlated` dataset; "
                    "give eval.metric_options.relation_accuracy.rule for other data"
                )
            options["rule"] = rule or "same_color"
        return cls(**options)

    def update(self, frames: Tensor) -> None:
        images = frames.detach().float().clamp(0, 1).permute(0, 1, 3, 4, 2).cpu().numpy()  # [n t h w c]
        scores = check_rule(self.rule, images, tol=self.tol)
        self.obeyed += float((scores >= self.threshold).sum())
        self.total += float(len(scores))

    def update_state(self, state: State) -> None:  # real scenes are not scored
        return None

    def update_generated(self, state: State) -> None:
        self.update(state.rendering.recon)

    def compute(self) -> Tensor:
        return self.obeyed / self.total.clamp(min=1)
