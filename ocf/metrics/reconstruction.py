"""Reconstruction error per batch item."""

from __future__ import annotations

from torch import Tensor

__all__ = ["mse"]


def mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error per item ``[b]`` float64, over all non-batch axes.
    pred, target: ``[b ...]`` of equal shape."""
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    return (pred.double() - target.double()).square().reshape(pred.shape[0], -1).mean(dim=1)
