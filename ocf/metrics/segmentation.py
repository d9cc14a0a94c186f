"""Segmentation scores per batch item ``[b]``: ARI and FG-ARI, mean best overlap (mBO) and
Hungarian-matched mean IoU (mIoU).

ARI is computed for the whole batch at once from contingency tables built with one
``bincount``; there is no per-item Python loop.  Tables that would be too large (many
distinct label ids, as in OCL-layout files) are counted sparsely with ``torch.unique``.

Conventions.  Ground-truth labels are long ids, 0 = background, negative (-1) = ignore
(e.g. overlap pixels); ignored pixels are excluded from every score.  A per-item value is
NaN when it is undefined (no pixel left to score, no ground-truth object).  For video,
``t h w`` are flattened into one axis so a score covers the whole clip (object ids must be
stable over time, which is what SIMONe's video FG-ARI assumes).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor

__all__ = ["ari", "fg_ari", "iou_matrix", "best_overlap", "miou", "object_counts", "segmentation_labels"]

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
    0).  The IoU matrices are built for the whole batch at once; the matching is
    ``scipy.optimize.linear_sum_assignment`` per item.  NaN for an item without objects.
    Shapes and conventions as in :func:`iou_matrix`.
    """
    iou, present = iou_matrix(pred_masks, true, background=background)
    return _matched_iou(iou, present)


def _matched_iou(iou: Tensor, present: Tensor) -> Tensor:
    """iou ``[b k o]`` float64 ≥ 0, present ``[b o]`` bool → mean matched IoU ``[b]``:
    per item, the masks are matched to the objects present there to maximise the summed
    IoU, and the sum (taken in mask order) is divided by the number of objects."""
    b, k, _ = iou.shape
    count = present.sum(dim=1)  # [b]
    by_mask = np.zeros((b, k))  # the IoU of each mask's matched object, 0 if unmatched
    for i, (item, keep) in enumerate(zip(iou.cpu().numpy(), present.cpu().numpy())):
        item = item[:, keep]  # [k o_i]
        masks, objects = linear_sum_assignment(item, maximize=True)
        by_mask[i, masks] = item[masks, objects]
    total = torch.from_numpy(by_mask).to(iou.device).sum(dim=1)
    return torch.where(count > 0, total / count.clamp(min=1), float("nan"))


def object_counts(true: Tensor) -> Tensor:
    """Distinct foreground ids (> 0) per item ``[b]`` of labels ``[b n]``.  Ids are
    relabelled first (:func:`_small_ids`), so memory does not grow with their values."""
    b = true.shape[0]
    raw, values, shift = _small_ids(true.reshape(b, -1).long().clamp(min=0))
    seen = torch.zeros(b, len(values), dtype=torch.bool, device=true.device)
    if raw.numel():
        seen.scatter_(1, raw + shift, True)
    return seen[:, values > 0].sum(dim=1)


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
