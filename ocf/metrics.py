"""Evaluation metrics: batched functions on tensors, torchmetrics accumulators, and
adapters that read a :class:`~ocf.records.State`.

Three layers:

1. Functions (``ari``, ``fg_ari``, ``best_overlap``, ``miou``, ``mse``,
   ``count_accuracy``) take tensors and return one value per batch item ``[b]``.  ARI is
   computed for the whole batch at once from contingency tables built with one
   ``bincount``; there is no per-item Python loop.
2. :class:`torchmetrics.Metric` classes (``ARI``, ``MBO``, ``MIoU``, ``MSE``,
   ``CountAccuracyMetric``) take tensors in ``update`` and accumulate sums in DDP-safe
   states (``dist_reduce_fx="sum"``).
3. :class:`EvalMetric` adapters (``FgAri``, ``Ari``, ``Mbo``, ``Miou``, ``Mse``,
   ``CountAccuracy``, by name in :data:`METRICS`) subclass those and read what they
   need from a ``State``.  Each declares ``requires`` so an evaluator can refuse a
   metric a model cannot support.

Conventions.  Ground-truth labels are long ids, 0 = background, negative (-1) = ignore
(e.g. overlap pixels); ignored pixels are excluded from every segmentation metric.  A
per-item value is NaN when it is undefined (no pixel left to score, no ground-truth
object); the Metric classes skip NaN items and count them in ``skipped``.  For video,
``t h w`` are flattened into one axis so a score covers the whole clip (object ids must be
stable over time, which is what SIMONe's video FG-ARI assumes).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import torch
import torch.nn.functional as F
import torchmetrics
from torch import Tensor

from ocf.errors import UserError
from ocf.matching import linear_assignment
from ocf.records import State

__all__ = [
    "ari",
    "fg_ari",
    "iou_matrix",
    "best_overlap",
    "miou",
    "mse",
    "count_accuracy",
    "presence_counts",
    "segmentation_labels",
    "ARI",
    "MBO",
    "MIoU",
    "MSE",
    "CountAccuracyMetric",
    "EvalMetric",
    "MetricUnavailable",
    "FgAri",
    "FgAriMulti",
    "Ari",
    "Mbo",
    "Miou",
    "Mse",
    "CountAccuracy",
    "METRICS",
]

# Largest dense contingency table (b * rows * cols cells) built with one bincount; bigger
# tables (many distinct labels) are counted sparsely with torch.unique instead.
_DENSE_LIMIT = 1 << 22
# Label ranges up to this width are used directly (shifted); wider ones are compacted.
_DIRECT_RANGE = 4096


# --------------------------------------------------------------------------- helpers


def _argmax(x: Tensor, dim: int) -> Tensor:
    """Index of the first maximum along ``dim`` (``Tensor.max(dim).indices``, several
    times faster on CPU than ``argmax`` over a non-innermost axis)."""
    return x.max(dim=dim).indices


def _flatten_labels(pred: Tensor, true: Tensor) -> tuple[Tensor, Tensor]:
    """Bring ``pred`` to long labels ``[b n]`` and ``true`` to ``[b n]``.

    ``pred`` is either labels with ``true``'s shape ``[b ...]`` or soft / one-hot
    assignments ``[b ... k]`` (argmax over the trailing k; ties go to the lower index).
    """
    b = true.shape[0]
    if pred.dim() == true.dim() + 1 and pred.shape[:-1] == true.shape:
        pred = _argmax(pred, -1)
    elif pred.shape != true.shape:
        raise ValueError(
            f"pred must be labels shaped like true {tuple(true.shape)} or soft masks "
            f"{tuple(true.shape)} + (k,), got {tuple(pred.shape)}"
        )
    return pred.reshape(b, -1).long(), true.reshape(b, -1).long()


def _small_ids(labels: Tensor) -> tuple[Tensor, Tensor, int]:
    """Map labels ``[b n]`` to ids ``0 .. m-1`` shared by the whole batch, lazily.

    Returns ``(raw, values, shift)``: ``raw + shift`` are the ids and ``values [m]`` the
    label of each id.  A narrow label range is only shifted (the caller folds ``shift``
    into an offset it adds anyway; ids of unused labels stay empty); a wide one is
    compacted with torch.unique.
    """
    if labels.numel() == 0:
        return labels, labels.new_zeros(1), 0
    lo, hi = (int(v) for v in torch.aminmax(labels))
    if hi - lo < _DIRECT_RANGE:
        return labels, torch.arange(lo, hi + 1, device=labels.device), -lo
    values = torch.unique(labels)
    return torch.searchsorted(values, labels), values, 0


def _excluded_as(true: Tensor, min_label: int, ignore: Tensor | None) -> Tensor:
    """``true [b n]`` with the ``ignore`` pixels set to ``min_label - 1``.  Labels below
    ``min_label`` need no rewriting: their columns of the contingency table are dropped
    (and the sparse path counts only labels >= min_label), so without ``ignore`` this
    returns ``true`` itself — one pass over the pixels saved."""
    if ignore is None:
        return true
    return true.masked_fill(ignore.reshape(true.shape).bool(), min_label - 1)


def _contingency(
    pred: Tensor, true: Tensor, min_label: int, *, always: bool = False
) -> tuple[Tensor | None, Tensor, Tensor]:
    """Contingency tables of predicted against ground-truth labels over the kept pixels.

    pred: long ``[b n]``; true: long ``[b n]`` where the kept pixels are ``>= min_label``
    and every other label is excluded (see :func:`_excluded_as`).
    Returns ``table [b p m]`` float64 (None when it would exceed ``_DENSE_LIMIT``
    cells, unless ``always``), the predicted label of each row ``[p]`` and the true
    label of each column ``[m]``.  One bincount over ``b * p * m`` cells builds all
    tables at once.
    """
    b = pred.shape[0]
    p_raw, p_values, p_shift = _small_ids(pred)
    t_raw, t_values, t_shift = _small_ids(true)
    p, m = len(p_values), len(t_values)
    if b * p * m > _DENSE_LIMIT and not always:
        return None, p_values, t_values
    cell = torch.add(t_raw, p_raw, alpha=m)  # p * m + t, before shifts
    offset = torch.arange(0, b * p * m, p * m, device=cell.device) + p_shift * m + t_shift  # item offset
    cell += offset.unsqueeze(1)
    table = torch.bincount(cell.flatten(), minlength=b * p * m).view(b, p, m)
    keep = t_values >= min_label  # drop the columns of excluded pixels
    return table[:, :, keep].double(), p_values, t_values[keep]


def _sum_squared_counts(keys: Tensor, valid: Tensor) -> Tensor:
    """``[b]``: for each item, the sum over distinct keys of (number of valid pixels with
    that key) squared.  keys: long ``[b n]``; counted sparsely with torch.unique."""
    b, n = keys.shape
    keys = keys[valid]
    item = torch.arange(b, device=keys.device).unsqueeze(1).expand(b, n)[valid]
    uniq, inverse = torch.unique(keys, return_inverse=True)
    joint = item * len(uniq) + inverse
    cells, counts = torch.unique(joint, return_counts=True)
    out = torch.zeros(b, dtype=torch.float64, device=keys.device)
    return out.index_add_(0, cells // max(len(uniq), 1), counts.double() ** 2)


def _pair_sums(pred: Tensor, true: Tensor, min_label: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-item float64 ``[b]`` sums that determine the ARI: number of kept pixels N, the
    sum of squared contingency cells S, of squared true-cluster sizes A and of squared
    predicted-cluster sizes B.  pred, true: long ``[b n]`` as in :func:`_contingency`."""
    table, _, _ = _contingency(pred, true, min_label)
    if table is not None:  # [b p m]
        n = table.sum(dim=(1, 2))
        s = table.square().sum(dim=(1, 2))
        a = table.sum(dim=1).square().sum(dim=1)  # true-cluster sizes [b m]
        bb = table.sum(dim=2).square().sum(dim=1)  # predicted-cluster sizes [b p]
        return n, s, a, bb
    # Too many labels for dense tables: count the distinct (pred, true) pairs sparsely.
    valid = true >= min_label
    span = int(true.max()) - min_label + 2
    s = _sum_squared_counts((pred - int(pred.min())) * span + (true - min_label + 1), valid)
    return valid.sum(dim=1).double(), s, _sum_squared_counts(true, valid), _sum_squared_counts(pred, valid)


def _ari(pred: Tensor, true: Tensor, min_label: int, ignore: Tensor | None) -> Tensor:
    """ARI ``[b]`` over the pixels with ``true >= min_label`` and not ``ignore``."""
    pred, true = _flatten_labels(pred, true)
    n, s, a, bb = _pair_sums(pred, _excluded_as(true, min_label, ignore), min_label)
    # Pair-confusion counts over ordered pairs (each twice the unordered count; the
    # factor cancels), as in sklearn: tp same in both, fp same in pred only, fn same in
    # true only.
    tp = s - n
    fp = bb - s
    fn = a - s
    tn = n * n - fp - fn - s
    num = 2.0 * (tp * tn - fn * fp)
    den = (tp + fn) * (fn + tn) + (tp + fp) * (fp + tn)
    perfect = (fp == 0) & (fn == 0)
    score = torch.where(perfect, torch.ones_like(num), num / torch.where(perfect, 1.0, den))
    return torch.where(n > 0, score, torch.full_like(score, float("nan")))


# --------------------------------------------------------------------- functional API


def ari(pred: Tensor, true: Tensor, *, ignore: Tensor | None = None) -> Tensor:
    """Adjusted Rand index per item, computed for the whole batch at once.

    pred: long labels ``[b n]`` or soft / one-hot assignments ``[b n k]`` (argmax over
        k).  Any ``[b ...]`` layout works as long as ``true`` has the same leading
        shape: callers flatten ``t h w`` into n so video ARI covers the whole clip.
    true: long ground-truth labels ``[b n]``; negative labels (−1 = ignore) are always
        excluded, background 0 is kept.
    ignore: bool ``[b n]``, True for further pixels to exclude, or None.
    Returns float64 ``[b]``.  Agrees with ``sklearn.metrics.adjusted_rand_score`` on the
    kept pixels, including its conventions (identical partitions, e.g. one cluster in
    both, give 1.0), except that an item with **no kept pixel is NaN** (sklearn says 1.0
    for empty input); the Metric classes skip NaN items.
    """
    return _ari(pred, true, 0, ignore)


def fg_ari(pred: Tensor, true: Tensor, *, ignore: Tensor | None = None) -> Tensor:
    """Foreground ARI ``[b]``: :func:`ari` over the pixels with ``true > 0``.

    Background (0) and ignored (−1) pixels are excluded, so this is also the ARI-BG of
    Rotating Features, whose overlap pixels are labelled −1.  An item without foreground
    is NaN.  Shapes as in :func:`ari`.
    """
    return _ari(pred, true, 1, ignore)


def iou_matrix(pred_masks: Tensor, true: Tensor, *, background: bool = False) -> tuple[Tensor, Tensor]:
    """IoU of every predicted mask with every ground-truth object, batched.

    pred_masks: ``[b k n]`` bool masks (may overlap), ``[b k n]`` float soft masks
        (hardened by argmax over k), or long labels ``[b n]`` (same shape as ``true``).
    true: long ``[b n]``; objects are ids > 0 (≥ 0 with ``background=True``); pixels
        with negative ids are excluded from every intersection and union.
    Returns ``iou [b k o]`` float64 (o = object ids found anywhere in the batch; k =
    number of predicted masks, or max label + 1 for labels) and ``present [b o]`` bool,
    True where the object occurs in that item.
    """
    b = true.shape[0]
    true = true.reshape(b, -1).long().clamp(min=-1)  # -1: excluded
    if pred_masks.dtype == torch.bool:
        valid = true >= 0
        masks = pred_masks.reshape(b, pred_masks.shape[1], -1) & valid.unsqueeze(1)  # [b k n]
        t_raw, values, shift = _small_ids(true)
        onehot = torch.zeros(b, len(values), true.shape[1], device=true.device)
        onehot.scatter_(1, (t_raw + shift).unsqueeze(1), valid.unsqueeze(1).float())  # [b m n]
        inter = torch.bmm(masks.float(), onehot.transpose(1, 2)).double()  # [b k m], exact to 2^24
        pred_area = masks.sum(dim=2).double()  # [b k]
        gt_area = onehot.sum(dim=2).double()  # [b m]
    else:
        if pred_masks.is_floating_point():
            labels = _argmax(pred_masks.reshape(b, pred_masks.shape[1], -1), 1)  # [b n]
            k = pred_masks.shape[1]
        else:
            labels = pred_masks.reshape(b, -1).long()
            k = max(int(labels.max()) + 1, 1) if labels.numel() else 1
        if labels.shape != true.shape:
            raise ValueError(f"pred labels {tuple(labels.shape)} do not match true {tuple(true.shape)}")
        # Pixels without a predicted label (negative) go to an extra row k: they count
        # in the ground-truth areas but in no predicted mask.
        labels = torch.where(labels >= 0, labels, k)
        table, rows, values = _contingency(labels, true, 0, always=True)
        full = table.new_zeros(b, k + 1, len(values))  # rows 0..k whichever labels occur
        full[:, rows] = table
        inter = full[:, :k]  # [b k m]
        pred_area = inter.sum(dim=2)  # [b k]
        gt_area = full.sum(dim=1)  # [b m]
    union = pred_area.unsqueeze(2) + gt_area.unsqueeze(1) - inter
    iou = torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))
    objects = values >= 0 if background else values > 0  # [m]
    return iou[:, :, objects], gt_area[:, objects] > 0


def best_overlap(pred_masks: Tensor, true: Tensor, *, background: bool = False) -> Tensor:
    """Mean best overlap (mBO) per item ``[b]`` float64: for each ground-truth object
    present in the item, the best IoU with any predicted mask, averaged over objects.

    Shapes and conventions as in :func:`iou_matrix`.  NaN for an item without objects.
    For video, flatten ``t h w`` into n: an object is scored over the whole clip.
    """
    iou, present = iou_matrix(pred_masks, true, background=background)
    if iou.shape[2] == 0:
        return torch.full((true.shape[0],), float("nan"), dtype=torch.float64, device=true.device)
    best = iou.max(dim=1).values  # [b o]
    return (best * present).sum(dim=1) / present.sum(dim=1)


def miou(pred_masks: Tensor, true: Tensor, *, background: bool = False) -> Tensor:
    """Mean IoU per item ``[b]`` float64 after Hungarian matching of predicted masks to
    ground-truth objects (one mask per object; objects left unmatched when k < o score
    0).  Batched: the IoU matrices and the matching (:func:`ocf.matching.linear_assignment`)
    run for the whole batch at once.  NaN for an item without objects.
    Shapes and conventions as in :func:`iou_matrix`.
    """
    iou, present = iou_matrix(pred_masks, true, background=background)
    return _matched_iou(iou, present)


def _matched_iou(iou: Tensor, present: Tensor) -> Tensor:
    """iou ``[b k o]`` float64 ≥ 0, present ``[b o]`` bool → mean matched IoU ``[b]``.

    Objects absent from an item get IoU 0 with every mask instead of being dropped: as
    all IoUs are ≥ 0, the best total over the present objects is unchanged (any matching
    of the present ones extends with zero-IoU pairs, and the absent ones' pairs add 0).
    """
    b, k, o = iou.shape
    count = present.sum(dim=1)  # [b]
    if o == 0 or k == 0:
        zero = torch.zeros(b, dtype=torch.float64, device=iou.device)
        return torch.where(count > 0, zero, float("nan"))
    iou = iou.masked_fill(~present.unsqueeze(1), 0.0)
    mask_of = linear_assignment(iou.transpose(1, 2), maximize=True)  # [b o]: -1 if unmatched
    matched = iou.gather(1, mask_of.clamp(min=0).unsqueeze(1)).squeeze(1)  # [b o]
    matched = torch.where(mask_of >= 0, matched, torch.zeros_like(matched))
    # sum in mask order, as summing the matched pairs row by row does
    by_mask = iou.new_zeros(b, k + 1).scatter_(1, torch.where(mask_of >= 0, mask_of, k), matched)
    total = by_mask[:, :k].sum(dim=1)
    return torch.where(count > 0, total / count.clamp(min=1), float("nan"))


def mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error per item ``[b]`` float64, over all non-batch axes.
    pred, target: ``[b ...]`` of equal shape."""
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    return (pred.double() - target.double()).square().reshape(pred.shape[0], -1).mean(dim=1)


def presence_counts(presence: Tensor, threshold: float = 0.5) -> Tensor:
    """Number of present objects ``[b t]`` from presences ``[b t k]`` (``> threshold``)."""
    return (presence > threshold).sum(dim=-1)


def _count_hits(pred_counts: Tensor, true_counts: Tensor) -> Tensor:
    """Bool ``[b t]``: predicted count == true count, per frame."""
    b = true_counts.shape[0]
    pred_counts, true_counts = pred_counts.reshape(b, -1), true_counts.reshape(b, -1)
    if pred_counts.shape != true_counts.shape:
        raise ValueError(f"pred counts {tuple(pred_counts.shape)} and true counts {tuple(true_counts.shape)} differ")
    return pred_counts.round().long() == true_counts.round().long()


def count_accuracy(pred_counts: Tensor, true_counts: Tensor) -> Tensor:
    """Fraction of frames per item ``[b]`` float64 where the predicted object count equals
    the true one.  pred_counts, true_counts: ``[b t]`` (or ``[b]`` for images)."""
    return _count_hits(pred_counts, true_counts).double().mean(dim=1)


# ------------------------------------------------------------------ torchmetrics classes


class _ItemMean(torchmetrics.Metric):
    """Mean of a per-item score over all items seen; NaN items are skipped and counted."""

    full_state_update: ClassVar[bool] = False
    is_differentiable: ClassVar[bool] = False
    higher_is_better: ClassVar[bool] = True

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("skipped", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def _accumulate(self, values: Tensor) -> None:
        ok = ~torch.isnan(values)
        self.total += values[ok].sum().to(self.total.dtype)
        self.count += ok.sum()
        self.skipped += (~ok).sum()

    def compute(self) -> Tensor:
        """Mean over scored items (NaN if none was scored)."""
        if int(self.count) == 0:
            return torch.tensor(float("nan"), dtype=torch.float64)
        return self.total / self.count


class ARI(_ItemMean):
    """Mean ARI over items.  ``foreground_only=True`` gives FG-ARI (= ARI-BG of Rotating
    Features); ``False`` the full ARI (only negative labels excluded).
    ``update(pred [b n] | [b n k], true [b n], ignore=None)`` as in :func:`ari`."""

    def __init__(self, foreground_only: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.foreground_only = foreground_only

    def update(self, pred: Tensor, true: Tensor, ignore: Tensor | None = None) -> None:
        fn = fg_ari if self.foreground_only else ari
        self._accumulate(fn(pred, true, ignore=ignore))


class MBO(_ItemMean):
    """Mean best overlap over items.  ``update(pred_masks, true)`` as in
    :func:`best_overlap`."""

    def __init__(self, background: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.background = background

    def update(self, pred_masks: Tensor, true: Tensor) -> None:
        self._accumulate(best_overlap(pred_masks, true, background=self.background))


class MIoU(_ItemMean):
    """Mean Hungarian-matched IoU over items.  ``update(pred_masks, true)`` as in
    :func:`miou`."""

    def __init__(self, background: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.background = background

    def update(self, pred_masks: Tensor, true: Tensor) -> None:
        self._accumulate(miou(pred_masks, true, background=self.background))


class MSE(torchmetrics.Metric):
    """Mean squared error over every element seen.  ``update(pred [b ...], target [b ...])``."""

    full_state_update: ClassVar[bool] = False
    is_differentiable: ClassVar[bool] = False
    higher_is_better: ClassVar[bool] = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("sse", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("numel", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor) -> None:
        if pred.shape != target.shape:
            raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
        self.sse += (pred.detach().double() - target.double()).square().sum()
        self.numel += pred.numel()

    def compute(self) -> Tensor:
        if int(self.numel) == 0:
            return torch.tensor(float("nan"), dtype=torch.float64)
        return self.sse / self.numel


class CountAccuracyMetric(torchmetrics.Metric):
    """Fraction of frames whose predicted object count equals the truth.
    ``update(pred_counts [b t], true_counts [b t])``."""

    full_state_update: ClassVar[bool] = False
    is_differentiable: ClassVar[bool] = False
    higher_is_better: ClassVar[bool] = True

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("correct", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("frames", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred_counts: Tensor, true_counts: Tensor) -> None:
        hits = _count_hits(pred_counts, true_counts)  # [b t]
        self.correct += hits.sum()
        self.frames += hits.numel()

    def compute(self) -> Tensor:
        if int(self.frames) == 0:
            return torch.tensor(float("nan"), dtype=torch.float64)
        return self.correct.double() / self.frames


# ------------------------------------------------------------------------ eval adapters


class MetricUnavailable(UserError):
    """A metric needs something the model (or the dataset) does not provide."""


def segmentation_labels(segmentation: Tensor, size: tuple[int, int]) -> Tensor:
    """Hard labels ``[b t h w]`` from predicted masks ``[b t k h' w']``: resized to
    ``size`` (bilinear for float masks, nearest otherwise), then argmax over k."""
    b, t, k = segmentation.shape[:3]
    if tuple(segmentation.shape[-2:]) != tuple(size):
        flat = segmentation.reshape(b * t, k, *segmentation.shape[-2:])
        if flat.is_floating_point():
            flat = F.interpolate(flat, size=size, mode="bilinear", align_corners=False)
        else:
            flat = F.interpolate(flat.float(), size=size, mode="nearest")
        segmentation = flat.reshape(b, t, k, *size)
    return _argmax(segmentation, 2)


class EvalMetric(torchmetrics.Metric):
    """A metric the evaluator runs on model outputs.

    Subclasses set ``name`` (the spec's ``eval.metrics`` entry) and ``requires`` (what
    they read: ``"segmentation"`` for :meth:`State.segmentation`, or dotted State paths
    such as ``"batch.masks"``, ``"rendering.recon"``, ``"batch.extras.counts"``) and
    implement :meth:`update_state`.  ``compute()`` gives the value over everything seen.
    """

    name: ClassVar[str] = ""
    requires: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def update_state(self, state: State) -> None:
        """Accumulate the metric from one forward pass's :class:`State`."""

    @classmethod
    def missing(cls, state: State) -> list[str]:
        """The entries of ``requires`` that ``state`` lacks."""
        out = []
        for need in cls.requires:
            value = state.segmentation() if need == "segmentation" else state.get(need)
            if value is None:
                out.append(need)
        return out

    @classmethod
    def from_spec(cls, resolved, **options) -> "EvalMetric":
        """Build the metric for a run: ``options`` are ``eval.metric_options.<name>``;
        override to read defaults from the spec (e.g. a dataset option)."""
        return cls(**options)

    @classmethod
    def check(cls, state: State) -> None:
        """Raise :class:`MetricUnavailable` naming what is missing, if anything."""
        missing = cls.missing(state)
        if missing:
            raise MetricUnavailable(
                f"metric {cls.name} needs {', '.join(missing)}, which this model or dataset does not provide"
            )


def _seg_and_truth(metric: type[EvalMetric], state: State) -> tuple[Tensor, Tensor]:
    """Predicted labels and ground truth, both ``[b (t h w)]``."""
    seg, true = state.segmentation(), state.batch.masks
    if seg is None or true is None:
        metric.check(state)  # raises, naming what is missing
    b, t, h, w = true.shape
    if seg.shape[0] != b or seg.shape[1] != t:
        raise MetricUnavailable(
            f"metric {metric.name}: predicted masks {tuple(seg.shape)} [b t k h w] do not cover the "
            f"ground truth {tuple(true.shape)} [b t h w] (a decoder rendering a subset of frames?)"
        )
    labels = segmentation_labels(seg.detach(), (h, w))
    return labels.reshape(b, -1), true.reshape(b, -1)


class FgAri(EvalMetric, ARI):
    """Foreground ARI of the argmax segmentation over the whole clip (background and
    ignored pixels excluded; this is Rotating Features' ARI-BG, overlap being −1)."""

    name = "fg_ari"
    requires = ("segmentation", "batch.masks")

    def __init__(self, **kwargs) -> None:
        super().__init__(foreground_only=True, **kwargs)

    def update_state(self, state: State) -> None:
        self.update(*_seg_and_truth(type(self), state))


class FgAriMulti(FgAri):
    """FG-ARI over the items with at least ``min_objects`` (default 2) ground-truth objects;
    the others are skipped.  A model that puts every pixel in one slot scores 1 on a
    single-object item under FG-ARI (both partitions are one cluster) and 0 here."""

    name = "fg_ari_multi"

    def __init__(self, min_objects: int = 2, **kwargs) -> None:
        super().__init__(**kwargs)
        if min_objects < 1:
            raise ValueError(f"min_objects must be at least 1, got {min_objects}")
        self.min_objects = min_objects

    def update(self, pred: Tensor, true: Tensor, ignore: Tensor | None = None) -> None:
        values = fg_ari(pred, true, ignore=ignore)
        self._accumulate(values.masked_fill(object_counts(true) < self.min_objects, float("nan")))


def object_counts(true: Tensor) -> Tensor:
    """Distinct foreground ids (> 0) per item ``[b]`` of labels ``[b n]``."""
    fg = true.clamp(min=0).long()
    seen = torch.zeros(true.shape[0], int(fg.max()) + 1 if fg.numel() else 1, dtype=torch.bool, device=true.device)
    seen.scatter_(1, fg, True)
    return seen[:, 1:].sum(dim=1)


class Ari(EvalMetric, ARI):
    """ARI of the argmax segmentation over the whole clip, background included (ignored
    pixels excluded)."""

    name = "ari"
    requires = ("segmentation", "batch.masks")

    def __init__(self, **kwargs) -> None:
        super().__init__(foreground_only=False, **kwargs)

    def update_state(self, state: State) -> None:
        self.update(*_seg_and_truth(type(self), state))


class Mbo(EvalMetric, MBO):
    """Mean best overlap of the argmax segmentation with the ground-truth objects."""

    name = "mbo"
    requires = ("segmentation", "batch.masks")

    def update_state(self, state: State) -> None:
        self.update(*_seg_and_truth(type(self), state))


class Miou(EvalMetric, MIoU):
    """Hungarian-matched mean IoU of the argmax segmentation with the ground-truth objects."""

    name = "miou"
    requires = ("segmentation", "batch.masks")

    def update_state(self, state: State) -> None:
        self.update(*_seg_and_truth(type(self), state))


class Mse(EvalMetric, MSE):
    """Reconstruction MSE of ``rendering.recon`` against ``state.target``."""

    name = "mse"
    requires = ("rendering.recon",)

    def update_state(self, state: State) -> None:
        type(self).check(state)
        recon, target = state.rendering.recon.detach(), state.target
        if recon.shape != target.shape:
            raise MetricUnavailable(
                f"metric mse: recon {tuple(recon.shape)} and its target {tuple(target.shape)} differ"
            )
        self.update(recon, target)


class CountAccuracy(EvalMetric, CountAccuracyMetric):
    """Fraction of frames where the number of slots with presence > 0.5 equals
    ``batch.extras["counts"]``."""

    name = "count_accuracy"
    requires = ("latents.presence", "batch.extras.counts")

    def update_state(self, state: State) -> None:
        type(self).check(state)
        presence = state.latents.presence.detach()
        true = state.batch.extras["counts"]
        if presence.dim() == 2:  # [b k] for images
            presence = presence.unsqueeze(1)
        self.update(presence_counts(presence), true.reshape(presence.shape[:2]))


METRICS: dict[str, type[EvalMetric]] = {
    cls.name: cls for cls in (FgAri, FgAriMulti, Ari, Mbo, Miou, Mse, CountAccuracy)
}
