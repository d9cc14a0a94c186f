"""Object counting: how many slots are present, and how often that count is right."""

from __future__ import annotations

from torch import Tensor

__all__ = ["presence_counts", "count_hits", "count_accuracy"]


def presence_counts(presence: Tensor, threshold: float = 0.5) -> Tensor:
    """Number of present objects ``[b t]`` from presences ``[b t k]`` (``> threshold``)."""
    return (presence > threshold).sum(dim=-1)


def count_hits(pred_counts: Tensor, true_counts: Tensor) -> Tensor:
    """Bool ``[b t]``: predicted count == true count (both rounded), per frame.
    pred_counts, true_counts: ``[b t]`` or ``[b]``, the same number of values per item."""
    b = true_counts.shape[0]
    pred_counts, true_counts = pred_counts.reshape(b, -1), true_counts.reshape(b, -1)
    if pred_counts.shape != true_counts.shape:
        raise ValueError(f"pred counts {tuple(pred_counts.shape)} and true counts {tuple(true_counts.shape)} differ")
    return pred_counts.round().long() == true_counts.round().long()


def count_accuracy(pred_counts: Tensor, true_counts: Tensor) -> Tensor:
    """Fraction of frames per item ``[b]`` float64 where the predicted object count equals
    the true one.  pred_counts, true_counts: ``[b t]`` (or ``[b]`` for images)."""
    return count_hits(pred_counts, true_counts).double().mean(dim=1)
