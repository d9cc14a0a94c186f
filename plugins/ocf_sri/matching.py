"""Matching imagined slots to posterior slots: greedy in rollout order (SRI's Algorithm 1,
O(K²) per scene, batched) or optimal (Hungarian: ``scipy.optimize.linear_sum_assignment``
per scene).  No gradients."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor


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
    """cost ``[b k k]`` → ``perm [b k]`` minimising each scene's summed cost: ``perm[:, i]``
    is the posterior slot placed at position i (scipy's linear_sum_assignment per scene)."""
    cols = [linear_sum_assignment(c)[1] for c in cost.detach().double().cpu().numpy()]
    return torch.as_tensor(np.array(cols, dtype=np.int64).reshape(cost.shape[:2]), device=cost.device)


MATCHERS = {"greedy": greedy_match, "hungarian": hungarian_match}
