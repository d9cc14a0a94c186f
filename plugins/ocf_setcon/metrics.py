"""``setcon.retrieval``: how often a predicted set finds its own actual set in the batch."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from ocf.metrics import EvalMetric, ratio
from ocf.records import State
from ocf_setcon.losses import set_pairs, top1_hits


class SetRetrieval(EvalMetric):
    """Top-1 retrieval accuracy: the fraction of predicted sets g(P) whose most cosine-similar
    actual set g(S) among every (video, time) of the evaluation batch is their own
    (``eval.batch_size`` sets how many candidates there are)."""

    name = "setcon.retrieval"
    requires = ("latents.extras.set_predicted", "latents.extras.set_actual")
    sums = {"hits": torch.long, "total": torch.long}
    higher_is_better: ClassVar[bool] = True

    def update(self, hits: Tensor) -> None:
        """hits: bool ``[m]``, one per anchor."""
        self.hits += hits.sum()
        self.total += hits.numel()

    def compute(self) -> Tensor:
        return ratio(self.hits, self.total)

    def update_state(self, state: State) -> None:
        type(self).check(state)
        ex = state.latents.extras
        anchors, candidates, positive = set_pairs(ex["set_predicted"].detach(), ex["set_actual"].detach())
        self.update(top1_hits(anchors, candidates, positive))
