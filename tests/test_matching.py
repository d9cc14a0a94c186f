"""Batched linear assignment (ocf.matching) against scipy's linear_sum_assignment, both
solvers (subset DP and augmenting paths), hand-computed cases, empty and +inf inputs, and
the batched mIoU against the old per-item scipy loop."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from ocf import matching
from ocf import metrics as M
from ocf.matching import assignment_cost, linear_assignment

SOLVERS = {"auto": None, "dp": matching._solve_dp, "jv": matching._solve_jv}


def _solve(cost: torch.Tensor, solver: str, maximize: bool = False) -> torch.Tensor:
    """linear_assignment, with the n ≤ m solver forced when ``solver`` is not auto."""
    if solver == "auto":
        return linear_assignment(cost, maximize=maximize)
    original = matching._solve
    matching._solve = SOLVERS[solver]
    try:
        return linear_assignment(cost, maximize=maximize)
    finally:
        matching._solve = original


def _check_against_scipy(cost: torch.Tensor, cols: torch.Tensor, maximize: bool, tol: float) -> None:
    b, n, m = cost.shape
    assert cols.shape == (b, n) and cols.dtype == torch.long
    c64 = cost.double()
    ours = assignment_cost(c64, cols)
    for item in range(b):
        row = cols[item]
        taken = row[row >= 0]
        assert len(taken) == min(n, m), row  # min(n, m) pairs
        assert len(taken.unique()) == len(taken), row  # each column at most once
        assert ((row >= -1) & (row < m)).all(), row
        r, c = linear_sum_assignment(c64[item].numpy(), maximize=maximize)
        best = c64[item].numpy()[r, c].sum()
        assert ours[item].item() == pytest.approx(best, abs=tol, rel=0), (item, row.tolist(), c.tolist())


@pytest.mark.parametrize("solver", ["auto", "dp", "jv"])
@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_random_costs_match_scipy_totals(solver, maximize, dtype):
    g = torch.Generator().manual_seed(int(maximize) + 2 * (dtype == torch.float32) + 4 * len(solver))
    sizes = [(1, 1), (1, 5), (5, 1), (3, 3), (4, 7), (7, 4), (6, 6), (6, 7), (8, 8), (2, 16)]
    if solver != "dp":  # the DP is for small problems; its tables grow as 2^m
        sizes += [(10, 10), (16, 16), (13, 9), (9, 13), (16, 5)]
    for n, m in sizes:
        cost = (torch.randn(37, n, m, generator=g) * 10).to(dtype)
        _check_against_scipy(cost, _solve(cost, solver, maximize), maximize, tol=1e-9)


@pytest.mark.parametrize("solver", ["auto", "dp", "jv"])
@pytest.mark.parametrize("maximize", [False, True])
def test_integer_costs_with_many_ties_match_scipy_exactly(solver, maximize):
    g = torch.Generator().manual_seed(3 + int(maximize))
    for n, m in [(2, 2), (3, 5), (5, 3), (6, 6), (4, 8), (8, 8), (7, 6)]:
        for hi in (1, 3):  # {0, 1} and {0..3}: lots of tied optima
            cost = torch.randint(0, hi + 1, (64, n, m), generator=g).double()
            _check_against_scipy(cost, _solve(cost, solver, maximize), maximize, tol=0)
    cost = torch.full((5, 4, 6), 2.0)  # everything ties
    cols = _solve(cost, solver, maximize)
    assert (assignment_cost(cost, cols) == 8).all()
    assert all(len(set(row)) == 4 for row in cols.tolist())


@pytest.mark.parametrize("solver", ["auto", "dp", "jv"])
def test_unique_optimum_is_found_exactly(solver):
    """A hidden permutation at cost 0 among costs ≥ 1: the assignment itself must match."""
    g = torch.Generator().manual_seed(5)
    for n in (1, 4, 7, 12 if solver != "dp" else 8):
        perm = torch.stack([torch.randperm(n, generator=g) for _ in range(20)])
        cost = 1 + torch.rand(20, n, n, generator=g)
        cost.scatter_(2, perm.unsqueeze(2), 0.0)
        assert torch.equal(_solve(cost, solver), perm)
        assert torch.equal(_solve(-cost, solver, maximize=True), perm)


def test_hand_computed_cases():
    # greedy (row 0 takes its cheapest, 1) would pay 1 + 10; the optimum pays 2 + 3
    cost = torch.tensor([[[1.0, 2.0], [3.0, 10.0]], [[4.0, 1.0], [2.0, 8.0]]])
    assert linear_assignment(cost).tolist() == [[1, 0], [1, 0]]
    assert linear_assignment(cost, maximize=True).tolist() == [[0, 1], [0, 1]]
    # the classic 3 × 3 example: optimum 1 + 2 + 2 = 5 with rows -> columns 1, 0, 2
    c3 = torch.tensor([[[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]]])
    assert linear_assignment(c3).tolist() == [[1, 0, 2]]
    assert assignment_cost(c3, linear_assignment(c3)).item() == 5.0
    # rectangular: 2 rows, 3 columns; and 3 rows, 2 columns (one row left out: -1)
    wide = torch.tensor([[[5.0, 1.0, 4.0], [2.0, 1.5, 9.0]]])
    assert linear_assignment(wide).tolist() == [[1, 0]]
    tall = wide.transpose(1, 2)  # [1 3 2]
    assert linear_assignment(tall).tolist() == [[1, 0, -1]]
    assert linear_assignment(tall, maximize=True).tolist() == [[0, -1, 1]]  # 5 + 9


def test_exhaustive_check_on_small_problems():
    """Brute force over all injective maps, independent of scipy."""
    g = torch.Generator().manual_seed(7)
    for n, m in [(3, 3), (3, 4), (4, 3), (2, 5), (4, 4)]:
        cost = torch.randn(50, n, m, generator=g, dtype=torch.float64)
        transpose = n > m
        c = cost.transpose(1, 2) if transpose else cost
        rows, cols = c.shape[1:]
        best = torch.full((50,), math.inf, dtype=torch.float64)
        for choice in itertools.permutations(range(cols), rows):
            total = sum(c[:, r, j] for r, j in enumerate(choice))
            best = torch.minimum(best, total)
        got = assignment_cost(cost, linear_assignment(cost))
        torch.testing.assert_close(got, best, rtol=0, atol=1e-12)


def test_empty_inputs_and_devices_and_dtypes():
    for shape in [(0, 3, 3), (4, 0, 3), (4, 3, 0), (0, 0, 0)]:
        cols = linear_assignment(torch.rand(shape))
        assert cols.shape == shape[:2] and cols.dtype == torch.long
        assert (cols == -1).all()
    cost = torch.rand(3, 4, 4, dtype=torch.float16)
    _check_against_scipy(cost, linear_assignment(cost), False, tol=1e-12)
    ints = torch.randint(0, 9, (3, 4, 5))
    _check_against_scipy(ints, linear_assignment(ints), False, tol=0)
    cost = torch.rand(2, 3, 3, requires_grad=True)
    assert linear_assignment(cost).requires_grad is False
    with pytest.raises(ValueError, match="b n m"):
        linear_assignment(torch.rand(3, 3))


@pytest.mark.parametrize("solver", ["auto", "dp", "jv"])
def test_infinite_costs_forbid_pairs_and_nan_raises(solver):
    g = torch.Generator().manual_seed(11)
    cost = torch.rand(40, 6, 6, generator=g, dtype=torch.float64)
    perm = torch.stack([torch.randperm(6, generator=g) for _ in range(40)])
    forbid = torch.rand(40, 6, 6, generator=g) < 0.5
    forbid.scatter_(2, perm.unsqueeze(2), False)  # keep one feasible assignment
    cost[forbid] = math.inf
    cols = _solve(cost, solver)
    assert torch.isfinite(assignment_cost(cost, cols)).all()
    _check_against_scipy(cost, cols, False, tol=1e-12)
    _check_against_scipy(-cost, _solve(-cost, solver, maximize=True), True, tol=1e-12)
    blocked = cost.clone()
    blocked[3, :, 2] = math.inf  # item 3: column 2 unusable, no complete assignment
    with pytest.raises(ValueError, match="infeasible"):
        _solve(blocked, solver)
    bad = cost.clone()
    bad[0, 0, 0] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        _solve(bad, solver)
    with pytest.raises(ValueError, match="-inf"):
        _solve(-cost, solver)  # -inf while minimising: unbounded
    with pytest.raises(ValueError, match=r"\+inf while maximising"):
        _solve(cost, solver, maximize=True)


def test_solver_choice_by_size():
    calls = []
    originals = matching._solve_dp, matching._solve_jv
    matching._solve_dp = lambda c: calls.append("dp") or originals[0](c)
    matching._solve_jv = lambda c: calls.append("jv") or originals[1](c)
    try:
        linear_assignment(torch.rand(256, 7, 6))  # transposed to 6 × 7: the DP
        linear_assignment(torch.rand(4, 12, 12))
        linear_assignment(torch.rand(8192, 6, 7))  # a big batch: augmenting paths
    finally:
        matching._solve_dp, matching._solve_jv = originals
    assert calls == ["dp", "jv", "jv"]


# ------------------------------------------------------------------ mIoU against scipy


def _old_miou(iou: torch.Tensor, present: torch.Tensor) -> np.ndarray:
    """The per-item scipy loop miou used before: only present objects' columns matched."""
    out = np.full(iou.shape[0], np.nan)
    for i, (m, keep) in enumerate(zip(iou.numpy(), present.numpy())):
        if keep.any():
            m = m[:, keep]
            rows, cols = linear_sum_assignment(m, maximize=True)
            out[i] = m[rows, cols].sum() / keep.sum()
    return out


@pytest.mark.parametrize("k, objects", [(7, 6), (3, 6), (6, 3), (5, 5), (12, 10)])
def test_miou_with_absent_objects_equals_the_old_per_item_scipy_loop(k, objects):
    g = torch.Generator().manual_seed(k * 100 + objects)
    b = 64
    true = torch.randint(-1, objects + 1, (b, 16, 16), generator=g)
    drop = torch.rand(b, objects + 1, generator=g) < 0.4  # absent objects, varying per item
    drop[:, 0] = False
    true = torch.where(drop.gather(1, true.clamp(min=0).flatten(1)).view_as(true), 0, true)
    true[0] = true[0].clamp(max=0)  # an item without objects -> NaN
    noise = torch.randint(0, k, (b, 16, 16), generator=g)
    pred = torch.where(torch.rand(b, 16, 16, generator=g) < 0.5, true.clamp(0, k - 1), noise)
    soft = torch.nn.functional.one_hot(pred, k).permute(0, 3, 1, 2).float().flatten(2)
    iou, present = M.iou_matrix(soft, true.flatten(1))
    assert (~present).any(dim=1).sum() > b // 2  # most items miss some object
    ref = _old_miou(iou, present)
    got = M.miou(soft, true.flatten(1))
    assert math.isnan(got[0].item()) and math.isnan(ref[0])
    np.testing.assert_allclose(got.numpy(), ref, rtol=0, atol=1e-12, equal_nan=True)
    # absent objects' IoUs are zero by construction, and any nonzero value there would
    # be masked: the result must not depend on it
    poisoned = torch.where(present.unsqueeze(1), iou, torch.ones_like(iou))
    np.testing.assert_allclose(M._matched_iou(poisoned, present).numpy(), ref, rtol=0, atol=1e-12, equal_nan=True)


def test_miou_edge_cases():
    true = torch.zeros(3, 10, dtype=torch.long)  # no objects anywhere
    assert torch.isnan(M.miou(torch.rand(3, 4, 10), true)).all()
    iou = torch.rand(2, 0, 3, dtype=torch.float64)  # no masks: every object scores 0
    present = torch.tensor([[True, False, True], [False, False, False]])
    out = M._matched_iou(iou, present)
    assert out[0].item() == 0.0 and math.isnan(out[1].item())
