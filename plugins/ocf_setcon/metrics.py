"""``setcon.retrieval``: how often a predicted set finds its own actual set in the batch."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from ocf.metrics import EvalMetric
from ocf.records import State
from ocf_setcon.losses import set_pairs, top1_hits


class SetRetrieval(EvalMetric):
    """Top-1 retrieval accuracy: the fraction of predicted sets g(P) whose most cosine-similar
    actual set g(S) among every (video, time) of the evaluation batch is their own
    (``eval.batch_size`` sets how many candidates there are)."""

    name = "setcon.retrieval"
    requires = ("latents.extras.set_predicted", "latents.extras.set_actual")
    full_state_update: ClassVar[bool] = False
    is_differentiable: ClassVar[bool] = False
    higher_is_better: ClassVar[bool] = True

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("hits", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, hits: Tensor) -> None:
        """hits: bool ``[m]``, one per anchor."""
        self.hits += hits.sum()
        self.total += hits.numel()

    def compute(self) -> Tensor:
        if int(self.total) == 0:
            return torch.tensor(float("nan"), dtype=torch.float64)
        return self.hits.double() / self.total

    def update_state(self, state: State) -> None:
        type(self).check(state)
        ex = state.latents.extras
        anchors, candidates, positive = set_pairs(ex["set_predicted"].detach(), ex["set_actual"].detach())
        self.update(top1_hits(anchors, candidates, positive))
