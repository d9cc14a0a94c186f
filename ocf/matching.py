"""Batched optimal linear assignment (the Hungarian problem) in torch.

:func:`linear_assignment` solves one assignment problem per batch item, all items in
lockstep: the Python loops run over rows, subset sizes and augmentation steps, never over
items.  Two exact solvers, chosen by problem size (after transposing so that n ≤ m):

* small problems (Σ_{r ≤ n} C(m, r)·r ≤ 1024 values per item, e.g. up to 8 × 8, and a
  batch that keeps the table below 2^20 values): dynamic programming over column subsets
  — the least cost of giving the first r rows a given set of r columns — in about 10·n
  tensor operations;
* otherwise shortest augmenting paths with dual potentials (the Jonker–Volgenant form of
  the Hungarian method): rows are added one at a time; for each new row a Dijkstra-like
  search over reduced costs ``c[i, j] - u[i] - v[j]`` (kept ≥ 0 on the matched rows)
  grows an alternating tree until it reaches a free column, the potentials are shifted by
  the search's step sizes, and the matching is flipped along the path.  O(n² m) work per
  item, at most n(n + 1) lockstep steps in all.

The arithmetic is float64 (float32 on mps), so float32 / float16 costs are solved on the
same values scipy (which also works in float64) solves; integer-valued costs are solved
exactly.  On CPU, scipy's C++ solver takes ~2 µs for a 6 × 7 problem, which a
lockstep torch solver does not beat per item; what this buys is no per-item Python loop
and no device-to-host copy (see benchmarks/metric_speed.py for measured times).
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

__all__ = ["linear_assignment", "assignment_cost"]


@torch.no_grad()
def linear_assignment(cost: Tensor, *, maximize: bool = False) -> Tensor:
    """Optimal assignment of rows to columns for every item of a batch.

    cost: ``[b n m]`` real costs (any float or integer dtype, any device).
    maximize: maximise the summed cost instead of minimising it.
    Returns ``cols [b n]`` long on ``cost``'s device: the column assigned to each row, or
    −1 for the rows left unassigned when n > m (then exactly m rows are assigned).  Each
    column is used at most once, and min(n, m) pairs are made per item, with the optimal
    total — what ``scipy.optimize.linear_sum_assignment`` gives per item (when several
    assignments tie for the optimum, any one of them may be returned).

    Supported entries: finite values and +inf (−inf when maximising) for forbidden pairs,
    as long as every item has a complete assignment avoiding them.  Raises ValueError for
    NaN, for −inf (+inf when maximising), and for an item whose forbidden pairs leave no
    complete assignment ("infeasible").  Empty inputs (b, n or m = 0) are fine.
    """
    if cost.dim() != 3:
        raise ValueError(f"cost must be [b n m], got shape {tuple(cost.shape)}")
    b, n, m = cost.shape
    device = cost.device
    if b == 0 or n == 0 or m == 0:
        return torch.full((b, n), -1, dtype=torch.long, device=device)
    work = torch.float32 if device.type == "mps" else torch.float64  # mps has no float64
    c = cost.detach().to(work)
    if maximize:
        c = -c
    if torch.isnan(c).any():
        raise ValueError("linear_assignment: cost contains NaN")
    if torch.isneginf(c).any():
        kind = "+inf while maximising" if maximize else "-inf"
        raise ValueError(f"linear_assignment: cost contains {kind} (an unbounded optimum)")
    if n > m:  # solve the transposed problem (columns as rows), then invert it
        rows_of_cols = _solve(c.transpose(1, 2))  # [b m]: row assigned to each column
        out = torch.full((b, n + 1), -1, dtype=torch.long, device=device)
        out.scatter_(1, rows_of_cols, torch.arange(m, device=device).expand(b, m))
        return out[:, :n]
    return _solve(c)


_INFEASIBLE = "linear_assignment: cost matrix is infeasible (its +inf entries leave no complete assignment)"


def _solve(c: Tensor) -> Tensor:
    """c ``[b n m]`` with n ≤ m → ``cols [b n]``: the subset DP for small problems, the
    augmenting-path solver otherwise."""
    b, n, m = c.shape
    work = sum(math.comb(m, r) * r for r in range(1, n + 1))
    if work <= _DP_WORK and b * work <= _DP_ELEMENTS:
        return _solve_dp(c)
    return _solve_jv(c)


_DP_WORK = 1024  # per-item cost (m * 2^(m-1) for n = m) up to which the subset DP is used
_DP_ELEMENTS = 1 << 20  # ... and b times that stays below this (for big batches the
# augmenting paths, whose cost is mostly per-step overhead, win)


@functools.lru_cache(maxsize=32)
def _dp_tables(n: int, m: int, device: torch.device) -> tuple[list[tuple[int, Tensor, Tensor]], Tensor]:
    """Column subsets of size ≤ n for the DP, numbered compactly by size (0 = ∅).

    Returns per size r = 1..n ``(start, pred [C r], col [C r])``: the subsets of size r
    are numbers start .. start + C - 1; ``col[s, k]`` is the k-th column in subset s and
    ``pred[s, k]`` the number of s without that column.  Also ``ids``: the bitmask of
    each number.
    """
    t = torch.arange(1 << m)
    bit = 1 << torch.arange(m)
    has = (t.unsqueeze(1) & bit) != 0  # [2^m m]
    size = has.sum(dim=1)
    ids = t[size <= n]
    ids = ids[torch.argsort(size[ids], stable=True)]
    number = torch.full((1 << m,), -1, dtype=torch.long)
    number[ids] = torch.arange(len(ids))
    layers, start = [], 1
    for r in range(1, n + 1):
        masks = ids[start : start + int((size[ids] == r).sum())]  # [C]
        col = has[masks].nonzero()[:, 1].reshape(len(masks), r)  # set bits, ascending
        pred = number[masks.unsqueeze(1) ^ (1 << col)]
        layers.append((start, pred.to(device), col.to(device)))
        start += len(masks)
    return layers, ids.to(device)


def _solve_dp(c: Tensor) -> Tensor:
    """Exact DP over column subsets, for small problems: c ``[b n m]`` float, n ≤ m,
    entries finite or +inf → ``cols [b n]``.

    ``best[s]`` = least cost of giving the first |s| rows the columns of subset s; row r
    extends every subset of size r by one of its columns.  Σ_r C(m, r)·r values per
    item, in about 10·n tensor operations (the batch is the innermost axis).
    """
    b, n, m = c.shape
    layers, _ = _dp_tables(n, m, c.device)
    ct = c.permute(1, 2, 0)  # [n m b]
    best = c.new_empty(layers[-1][0] + layers[-1][1].shape[0], b)
    best[0] = 0
    picks = []
    for r, (start, pred, col) in enumerate(layers):
        size = pred.shape[0]
        vals = best.index_select(0, pred.reshape(-1)) + ct[r].index_select(0, col.reshape(-1))  # [C·(r+1) b]
        low, pick = vals.view(size, r + 1, b).min(dim=1)
        best[start : start + size] = low
        picks.append(pick)
    start, pred, _ = layers[-1]
    low, s = best[start:].min(dim=0)  # [b]: the best full subset, position in its layer
    if torch.isinf(low).any():
        raise ValueError(_INFEASIBLE)
    items = torch.arange(b, device=c.device)
    cols = c.new_empty(n, b, dtype=torch.long)
    for r in range(n - 1, -1, -1):  # walk back: the column row r took, then the subset before
        start, pred, col = layers[r]
        flat = s * (r + 1) + picks[r][s, items]
        cols[r] = col.view(-1)[flat]
        if r:
            s = pred.view(-1)[flat] - layers[r - 1][0]
    return cols.t()


def _solve_jv(c: Tensor) -> Tensor:
    """Shortest augmenting paths with potentials: c ``[b n m]`` float, n ≤ m, entries
    finite or +inf → ``cols [b n]``.

    Rows and columns are numbered from 1 here; row 0 and column 0 are dummies.
    ``p[:, j]`` is the row matched to column j (0: free) and ``uc[:, j]`` that row's
    potential; column 0 holds the row being inserted.  The padded cost has an all-+inf
    dummy row 0, so an item whose search has finished (its current column is free,
    ``p = 0``) reads +inf reduced costs and changes nothing while other items search on.
    An infeasible item meets a step of +inf, which leaves non-finite potentials.
    """
    b, n, m = c.shape
    device, dtype = c.device, c.dtype
    inf = float("inf")
    a = torch.zeros(b, n + 1, m + 1, dtype=dtype, device=device)
    a[:, 0] = inf
    a[:, 1:, 1:] = c
    a = a.reshape(b * (n + 1), m + 1)  # row (item, i) at item * (n + 1) + i
    base = torch.arange(b, device=device) * (n + 1)  # [b]
    uc = torch.zeros(b, m + 1, dtype=dtype, device=device)
    v = torch.zeros(b, m + 1, dtype=dtype, device=device)  # column potentials
    p = torch.zeros(b, m + 1, dtype=torch.long, device=device)
    zero = torch.zeros((), dtype=dtype, device=device)
    for i in range(1, n + 1):
        p[:, 0] = i
        uc[:, 0] = 0
        j0 = torch.zeros(b, 1, dtype=torch.long, device=device)  # current column of the search
        minv = torch.full((b, m + 1), inf, dtype=dtype, device=device)  # shortest distance so far
        used = torch.zeros(b, m + 1, dtype=torch.bool, device=device)  # columns in the tree
        way = torch.zeros(b, m + 1, dtype=torch.long, device=device)  # previous column on the path
        active = torch.ones(b, 1, dtype=torch.bool, device=device)
        for _ in range(i + 1):  # i - 1 columns are matched, so ≤ i steps reach a free one
            used.scatter_(1, j0, True)
            i0 = base + p.gather(1, j0).squeeze(1)  # flat row index [b]
            cur = a.index_select(0, i0) - uc.gather(1, j0) - v  # reduced costs from row i0
            cur.masked_fill_(used, inf)
            better = cur < minv
            minv = torch.where(better, cur, minv)
            way = torch.where(better, j0, way)
            delta, j1 = minv.masked_fill(used, inf).min(dim=1, keepdim=True)
            delta = torch.where(active, delta, zero)
            step = used * delta  # tree rows' potentials up, tree columns' down
            uc += step
            v -= step
            minv -= delta
            j0 = torch.where(active, j1, j0)
            active = p.gather(1, j0) != 0
            if not active.any():
                break
        for _ in range(i + 1):  # flip the matching along the path, back to column 0
            j1 = way.gather(1, j0)
            p.scatter_(1, j0, p.gather(1, j1))
            uc.scatter_(1, j0, uc.gather(1, j1))
            j0 = j1
            if not j0.any():
                break
    if not torch.isfinite(v).all():
        raise ValueError(_INFEASIBLE)
    cols = torch.full((b, n + 1), -1, dtype=torch.long, device=device)
    cols.scatter_(1, p[:, 1:], torch.arange(m, device=device).expand(b, m))  # free columns land in row 0
    return cols[:, 1:]


def assignment_cost(cost: Tensor, cols: Tensor) -> Tensor:
    """Summed cost ``[b]`` of an assignment: cost ``[b n m]``, cols ``[b n]`` from
    :func:`linear_assignment` (rows with −1 contribute nothing)."""
    picked = cost.gather(2, cols.clamp(min=0).unsqueeze(2)).squeeze(2)  # [b n]
    return torch.where(cols >= 0, picked, torch.zeros_like(picked)).sum(dim=1)
