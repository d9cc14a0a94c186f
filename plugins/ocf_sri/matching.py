"""Matching imagined slots to posterior slots: greedy in rollout order (SRI's Algorithm 1,
O(K²) per scene, batched) or optimal (Hungarian, :func:`ocf.matching.linear_assignment`,
batched).  No gradients."""

from __future__ import annotations

import torch
from torch import Tensor

from ocf.matching import linear_assignment


@torch.no_grad()
def greedy_match(cost: Tensor) -> Tensor:
    """cost ``[b k k]`` (rollout step i × posterior slot j) → ``perm [b k]``: for i = 0, 1, …
    in rollout order, the cheapest posterior slot not yet taken.  ``perm[:, i]`` is the
    posterior slot placed at position i of the order; each row is a permutation."""
    b, k, _ = cost.shape
    taken = torch.zeros(b, k, dtype=torch.bool, device=cost.device)
    perm = torch.empty(b, k, dtype=torch.long, device=cost.device)
    rows = torch.arange(b, device=cost.device)
    for i in range(k):
        j = cost[:, i].masked_fill(taken, float("inf")).argmin(dim=-1)
        perm[:, i] = j
        taken[rows, j] = True
    return perm


@torch.no_grad()
def hungarian_match(cost: Tensor) -> Tensor:
    """cost ``[b k k]`` → ``perm [b k]`` minimising the summed cost, all scenes at once
    (what scipy's linear_sum_assignment gives per scene)."""
    return linear_assignment(cost)


MATCHERS = {"greedy": greedy_match, "hungarian": hungarian_match}
