"""Metrics: batched ARI / FG-ARI against sklearn, mBO / mIoU against a per-image numpy
reference (matching by brute force), accumulation of the metric classes, the State
adapters, option validation, the deprecated names, and speed."""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from ocf import metrics as M
from ocf.metrics import segmentation
from ocf.metrics.segmentation import _argmax
from ocf.records import Batch, Latents, Rendering, State


def _sk_ari(pred: torch.Tensor, true: torch.Tensor, keep: torch.Tensor) -> list[float]:
    """Per-item sklearn ARI over kept pixels (NaN where none is kept)."""
    out = []
    rows = [x.reshape(len(x), -1).numpy() for x in (pred, true, keep)]
    for p, t, k in zip(*rows):
        out.append(adjusted_rand_score(t[k], p[k]) if k.any() else math.nan)
    return out


def _close(a: torch.Tensor, b: list[float], tol: float = 1e-6) -> None:
    np.testing.assert_allclose(a.numpy(), np.array(b), atol=tol, rtol=0, equal_nan=True)


@pytest.mark.parametrize(
    "b, k, n, used",
    [(1, 3, 50, 3), (4, 10, 100, 3), (8, 5, 1000, 5), (3, 12, 64, 2), (16, 7, 256, 7)],
)
def test_ari_matches_sklearn_on_random_labels(b, k, n, used):
    g = torch.Generator().manual_seed(b * 1000 + n)
    true = torch.randint(-1, 5, (b, n), generator=g)
    pred = torch.randint(0, used, (b, n), generator=g)  # k may exceed the labels used
    # make some predictions informative so ARI is not always ~0
    pred[: b // 2] = torch.where(torch.rand(b // 2, n, generator=g) < 0.7, true[: b // 2].clamp(min=0), pred[: b // 2])
    _close(M.ari(pred, true), _sk_ari(pred, true, true >= 0))
    _close(M.fg_ari(pred, true), _sk_ari(pred, true, true > 0))
    soft = torch.nn.functional.one_hot(pred, k).float()  # [b n k], k > used labels
    _close(M.fg_ari(soft, true), _sk_ari(pred, true, true > 0))


def test_ari_with_ignore_mask_and_video_shapes():
    g = torch.Generator().manual_seed(1)
    true = torch.randint(0, 4, (3, 2, 8, 8), generator=g)  # [b t h w]
    pred = torch.randint(0, 6, (3, 2, 8, 8), generator=g)
    ignore = torch.rand(3, 2, 8, 8, generator=g) < 0.3
    _close(M.ari(pred, true, ignore=ignore), _sk_ari(pred, true, ~ignore))
    _close(M.fg_ari(pred, true, ignore=ignore), _sk_ari(pred, true, ~ignore & (true > 0)))


def test_ari_sparse_and_wide_label_paths(monkeypatch):
    g = torch.Generator().manual_seed(2)
    true = torch.randint(0, 6, (5, 300), generator=g) * 10_000 - 1  # wide range, -1 kept as ignore
    pred = torch.randint(0, 9, (5, 300), generator=g) * 7919
    expect = _sk_ari(pred, true, true >= 0)
    _close(M.ari(pred, true), expect)
    monkeypatch.setattr(segmentation, "_DENSE_LIMIT", 0)
    _close(M.ari(pred, true), expect)
    _close(M.fg_ari(pred, true), _sk_ari(pred, true, true > 0))


def test_ari_edge_cases():
    n = 20
    one = torch.zeros(1, n, dtype=torch.long)
    many = torch.arange(n).remainder(4).unsqueeze(0)
    # a single cluster in both: sklearn says 1.0
    assert M.ari(one, one + 3).item() == 1.0 == adjusted_rand_score(one[0], one[0] + 3)
    # pred one cluster, true many: 0
    assert M.ari(one, many).item() == pytest.approx(0.0, abs=1e-12)
    assert adjusted_rand_score(many[0], one[0]) == 0.0
    # identical partitions with permuted labels: 1
    perm = torch.tensor([2, 0, 3, 1])[many]
    assert M.ari(perm, many).item() == 1.0
    # every pixel its own cluster in both: 1 (sklearn convention)
    assert M.ari(torch.arange(n).unsqueeze(0), torch.arange(n).unsqueeze(0) + 1).item() == 1.0
    # a single kept pixel: 1
    single = torch.full((1, n), -1)
    single[0, 3] = 2
    assert M.ari(many, single).item() == 1.0
    # nothing kept: NaN (sklearn would say 1.0 for empty input; we skip such items)
    assert math.isnan(M.ari(many, torch.full((1, n), -1)).item())
    assert math.isnan(M.ari(many, many, ignore=torch.ones(1, n, dtype=torch.bool)).item())
    # empty foreground: NaN for fg_ari, defined for ari
    assert math.isnan(M.fg_ari(many, one).item())
    assert M.ari(many, one).item() == pytest.approx(0.0, abs=1e-12)
    # batched: the edge cases side by side give the same answers
    pred = torch.cat([one, one, perm, many])
    true = torch.cat([one + 3, many, many, torch.full((1, n), -1)])
    got = M.ari(pred, true)
    assert got[:3].tolist() == pytest.approx([1.0, 0.0, 1.0], abs=1e-12) and math.isnan(got[3].item())


def test_soft_predictions_argmax_equal_hard():
    g = torch.Generator().manual_seed(3)
    true = torch.randint(-1, 5, (6, 16, 16), generator=g)
    soft = torch.rand(6, 16, 16, 7, generator=g)
    soft[0] = soft[0].round()  # ties: the lower index wins, as in argmax
    hard = soft.argmax(dim=-1)
    torch.testing.assert_close(M.fg_ari(soft, true), M.fg_ari(hard, true))
    torch.testing.assert_close(M.ari(soft, true), M.ari(hard, true))
    masks = soft.permute(0, 3, 1, 2)  # [b k h w]
    torch.testing.assert_close(M.best_overlap(masks, true), M.best_overlap(hard, true))
    assert torch.equal(_argmax(soft, -1), hard)


# ------------------------------------------------------------------------ mBO and mIoU


def _np_iou(pred: np.ndarray, true: np.ndarray, k: int) -> tuple[np.ndarray, list[int]]:
    """IoU matrix [k o] of one image over non-ignored pixels, objects = ids > 0."""
    keep = true >= 0
    objects = sorted(int(o) for o in np.unique(true[true > 0]))
    iou = np.zeros((k, len(objects)))
    for j in range(k):
        pj = (pred == j) & keep
        for c, o in enumerate(objects):
            to = true == o
            union = (pj | to).sum()
            iou[j, c] = (pj & to).sum() / union if union else 0.0
    return iou, objects


def _np_mbo_miou(pred: torch.Tensor, true: torch.Tensor, k: int) -> tuple[list[float], list[float]]:
    mbo, mi = [], []
    for p, t in zip(pred.reshape(len(pred), -1).numpy(), true.reshape(len(true), -1).numpy()):
        iou, objects = _np_iou(p, t, k)
        if not objects:
            mbo.append(math.nan)
            mi.append(math.nan)
            continue
        mbo.append(iou.max(axis=0).mean())
        mi.append(_best_matching_total(iou) / len(objects))
    return mbo, mi


def _best_matching_total(iou: np.ndarray) -> float:
    """The largest summed IoU of a one-to-one matching of masks to objects, by trying
    every matching (iou [k o])."""
    k, o = iou.shape
    if k >= o:
        return max(sum(iou[m, j] for j, m in enumerate(ms)) for ms in itertools.permutations(range(k), o))
    return max(sum(iou[i, j] for i, j in enumerate(js)) for js in itertools.permutations(range(o), k))


@pytest.mark.parametrize("b, k, objects", [(4, 5, 4), (3, 2, 5), (6, 8, 3)])
def test_mbo_and_miou_match_numpy_reference(b, k, objects):
    g = torch.Generator().manual_seed(10 * b + k)
    true = torch.randint(-1, objects + 1, (b, 12, 12), generator=g)
    true[0] = torch.where(true[0] > 0, 0, true[0])  # an item without objects -> NaN
    true[1][true[1] == 2] = 0  # objects absent from some items
    noise = torch.randint(0, k, (b, 12, 12), generator=g)
    pred = torch.where(torch.rand(b, 12, 12, generator=g) < 0.6, true.clamp(0, k - 1), noise)
    mbo, mi = _np_mbo_miou(pred, true, k)
    soft = torch.nn.functional.one_hot(pred, k).permute(0, 3, 1, 2).float()  # [b k h w]
    _close(M.best_overlap(soft.flatten(2), true.flatten(1)), mbo)
    _close(M.miou(soft.flatten(2), true.flatten(1)), mi)
    _close(M.best_overlap(soft.bool().flatten(2), true.flatten(1)), mbo)  # bool masks: matmul path
    _close(M.miou(soft.bool().flatten(2), true.flatten(1)), mi)
    _close(M.best_overlap(pred, true), mbo)  # labels
    assert math.isnan(M.best_overlap(pred, true)[0].item())


def test_mbo_perfect_and_overlapping_bool_masks():
    true = torch.tensor([[0, 1, 1, 2, 2, -1]])
    masks = torch.tensor([[[0, 1, 1, 0, 0, 1], [0, 0, 0, 1, 1, 0], [1, 1, 1, 1, 1, 1]]]).bool()  # [1 3 6]
    assert M.best_overlap(masks, true).item() == 1.0  # the -1 pixel is ignored
    assert M.miou(masks, true).item() == 1.0
    assert M.best_overlap(masks, true, background=True).item() == pytest.approx((1 + 1 + 1 / 5) / 3)
    labels = torch.tensor([[-1, 0, 0, 1, 1, 1]])  # -1: a pixel no mask claims
    assert M.best_overlap(labels, true).tolist() == pytest.approx([1.0])
    assert M.best_overlap(labels, true, background=True).tolist() == pytest.approx([(0 + 1 + 1) / 3])


# ------------------------------------------------------------------ mse, counts, Metrics


def test_mse_and_count_accuracy():
    a, b = torch.zeros(2, 3, 4), torch.ones(2, 3, 4)
    b[1] = 2
    torch.testing.assert_close(M.mse(a, b), torch.tensor([1.0, 4.0], dtype=torch.float64))
    presence = torch.tensor([[[0.9, 0.2, 0.7], [0.1, 0.1, 0.6]], [[0.9, 0.9, 0.9], [0.0, 0.0, 0.0]]])  # [b t k]
    counts = M.presence_counts(presence)
    assert counts.tolist() == [[2, 1], [3, 0]]
    acc = M.count_accuracy(counts, torch.tensor([[2, 2], [3, 0]]))
    assert acc.tolist() == [0.5, 1.0]


def _split_equal(metric_factory, score, *args):
    """Two updates on halves of the inputs give the same result as one on the whole
    batch; ``score`` turns inputs into the metric's ``update`` arguments."""
    whole, halves = metric_factory(), metric_factory()
    whole.update(*score(*args))
    cut = args[0].shape[0] // 2
    halves.update(*score(*(x[:cut] for x in args)))
    halves.update(*score(*(x[cut:] for x in args)))
    torch.testing.assert_close(whole.compute(), halves.compute())
    return whole


def _per_item(fn):
    return lambda *args: (fn(*args),)


def test_metric_classes_accumulate():
    g = torch.Generator().manual_seed(5)
    true = torch.randint(-1, 4, (6, 10, 10), generator=g)
    true[2] = 0  # no foreground: skipped by FG-ARI, MBO, MIoU
    pred = torch.randint(0, 5, (6, 10, 10), generator=g)
    m = _split_equal(M.FgAri, _per_item(M.fg_ari), pred, true)
    assert int(m.skipped) == 1 and int(m.count) == 5
    assert m.compute().item() == pytest.approx(np.nanmean(_sk_ari(pred, true, true > 0)), abs=1e-9)
    m = _split_equal(M.Ari, _per_item(M.ari), pred, true)
    assert m.compute().item() == pytest.approx(np.mean(_sk_ari(pred, true, true >= 0)), abs=1e-9)
    soft = torch.nn.functional.one_hot(pred, 5).permute(0, 3, 1, 2).float()
    mbo, mi = _np_mbo_miou(pred, true, 5)
    m = _split_equal(M.Mbo, _per_item(M.best_overlap), soft, true)
    assert m.compute().item() == pytest.approx(np.nanmean(mbo), abs=1e-9)
    m = _split_equal(M.Miou, _per_item(M.miou), soft, true)
    assert m.compute().item() == pytest.approx(np.nanmean(mi), abs=1e-9)
    x, y = torch.rand(6, 2, 3, 4, 4, generator=g), torch.rand(6, 2, 3, 4, 4, generator=g)
    m = _split_equal(M.Mse, lambda *a: a, x, y)
    assert m.compute().item() == pytest.approx(((x.double() - y.double()) ** 2).mean().item(), abs=1e-12)
    counts = torch.randint(0, 3, (2, 6, 4), generator=g)
    m = _split_equal(M.CountAccuracy, lambda *a: a, counts[0], counts[1])
    assert m.compute().item() == pytest.approx((counts[0] == counts[1]).double().mean().item())
    with pytest.warns(UserWarning):
        assert math.isnan(M.FgAri().compute().item())  # nothing seen


def test_metric_states_reduce_by_sum():
    """merge_state applies each state's dist_reduce_fx, as a DDP sync would."""
    g = torch.Generator().manual_seed(6)
    true = torch.randint(-1, 4, (4, 64), generator=g)
    pred = torch.randint(0, 5, (4, 64), generator=g)
    whole, first, second = M.Ari(), M.Ari(), M.Ari()
    whole.update(M.ari(pred, true))
    first.update(M.ari(pred[:1], true[:1]))
    second.update(M.ari(pred[1:], true[1:]))
    first.merge_state(second)
    torch.testing.assert_close(first.compute(), whole.compute())


# ------------------------------------------------------------------------------ adapters


def _state(b=3, t=2, k=4, h=8, w=8, mask_hw=None, seed=0) -> State:
    g = torch.Generator().manual_seed(seed)
    mh, mw = mask_hw or (h, w)
    frames = torch.rand(b, t, 3, h, w, generator=g)
    masks = torch.randint(-1, 4, (b, t, h, w), generator=g)
    batch = Batch(frames=frames, masks=masks, extras={"counts": torch.randint(0, 3, (b, t), generator=g)})
    rendering = Rendering(
        recon=torch.rand(b, t, 3, h, w, generator=g), mask_logits=torch.randn(b, t, k, mh, mw, generator=g)
    )
    latents = Latents(presence=torch.rand(b, t, k, generator=g))
    return State(batch=batch, latents=latents, rendering=rendering)


def test_eval_adapters_read_the_state():
    state = _state()
    b = state.batch.masks.shape[0]
    labels = state.segmentation().argmax(dim=2).reshape(b, -1)  # [b (t h w)]
    true = state.batch.masks.reshape(b, -1)
    multi = [len(set(r[r > 0].tolist())) >= 2 for r in true.numpy()]
    expect = {
        "fg_ari": np.nanmean(M.fg_ari(labels, true).numpy()),
        "fg_ari_multi": np.nanmean(np.where(multi, M.fg_ari(labels, true).numpy(), np.nan)),
        "ari": np.nanmean(M.ari(labels, true).numpy()),
        "mbo": np.nanmean(M.best_overlap(labels, true).numpy()),
        "miou": np.nanmean(M.miou(labels, true).numpy()),
        "mse": M.mse(state.rendering.recon, state.batch.frames).mean().item(),
        "count_accuracy": M.count_accuracy(M.presence_counts(state.latents.presence), state.batch.extras["counts"])
        .mean()
        .item(),
    }
    assert set(M.METRICS) == set(expect)
    for name, cls in M.METRICS.items():
        metric = cls()
        assert isinstance(metric, M.EvalMetric) and cls.name == name and cls.requires
        assert cls.missing(state) == []
        metric.update_state(state)
        assert metric.compute().item() == pytest.approx(expect[name], abs=1e-9), name
    assert M.FgAri.higher_is_better and not M.Mse.higher_is_better


def test_fg_ari_multi_skips_items_with_fewer_objects():
    """All pixels in one slot: FG-ARI 1 on the one-object item, 0 on the two-object one;
    fg_ari_multi scores only the latter."""
    true = torch.tensor([[0, 1, 1, 1, 0, 1, 1, 1], [0, 1, 1, 1, 0, 2, 2, 2]]).view(2, 1, 2, 4)
    logits = torch.zeros(2, 1, 3, 2, 4)
    logits[:, :, 0] = 5.0  # slot 0 everywhere
    state = State(batch=Batch(frames=torch.rand(2, 1, 3, 2, 4), masks=true), rendering=Rendering(mask_logits=logits))
    plain, multi = M.FgAri(), M.FgAriMulti()
    plain.update_state(state)
    multi.update_state(state)
    assert plain.compute().item() == pytest.approx(0.5) and multi.compute().item() == pytest.approx(0.0)
    assert int(multi.skipped) == 1 and int(multi.count) == 1
    assert M.object_counts(true.reshape(2, -1)).tolist() == [1, 2]
    assert M.object_counts(torch.tensor([[-1, 0, 3, 3]])).tolist() == [1]
    assert M.FgAriMulti(min_objects=1).options.min_objects == 1


def test_adapters_resize_predicted_masks():
    state = _state(h=8, w=8, mask_hw=(4, 4), seed=1)
    m = M.FgAri()
    m.update_state(state)
    seg = torch.nn.functional.interpolate(state.segmentation().flatten(0, 1), size=(8, 8), mode="bilinear")
    labels = seg.argmax(dim=1).reshape(3, -1)
    assert m.compute().item() == pytest.approx(np.nanmean(M.fg_ari(labels, state.batch.masks.reshape(3, -1)).numpy()))


def test_adapters_name_what_is_missing():
    state = State(batch=Batch(frames=torch.rand(2, 1, 3, 4, 4)))
    assert M.FgAri.missing(state) == ["segmentation", "batch.masks"]
    with pytest.raises(M.MetricUnavailable, match="fg_ari needs segmentation, batch.masks"):
        M.FgAri().update_state(state)
    with pytest.raises(M.MetricUnavailable, match="latents.presence, batch.extras.counts"):
        M.CountAccuracy().update_state(state)
    with pytest.raises(M.MetricUnavailable, match="rendering.recon"):
        M.Mse.check(state)
    with pytest.raises(TypeError):
        M.EvalMetric()  # abstract
    subset = _state()
    subset.rendering.mask_logits = subset.rendering.mask_logits[:, :1]  # one of two frames
    with pytest.raises(M.MetricUnavailable, match="do not cover the ground truth"):
        M.Ari().update_state(subset)


# --------------------------------------------------------------------------------- speed


def test_batched_ari_is_much_faster_than_sklearn_loop():
    g = torch.Generator().manual_seed(7)
    true = torch.randint(-1, 6, (256, 64, 64), generator=g)
    pred = torch.randint(0, 8, (256, 64, 64), generator=g)
    M.fg_ari(pred[:2], true[:2])  # warm up
    batched = min(_timed(lambda: M.fg_ari(pred, true)) for _ in range(3))
    t_np, p_np = true.reshape(256, -1).numpy(), pred.reshape(256, -1).numpy()
    start = time.perf_counter()
    reference = [adjusted_rand_score(t[t > 0], p[t > 0]) for t, p in zip(t_np, p_np)]
    loop = time.perf_counter() - start
    ratio = loop / batched
    print(f"\nbatched FG-ARI {batched * 1e3:.1f} ms, sklearn loop {loop * 1e3:.1f} ms, ratio {ratio:.1f}x")
    _close(M.fg_ari(pred, true), reference)
    assert ratio >= 10


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
