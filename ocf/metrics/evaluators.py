"""Metrics the evaluator runs on a model's :class:`~ocf.records.State`: one class per
metric, registered by ``name``.

Every metric is a :class:`torchmetrics.Metric` whose states are scalar sums declared in
``sums`` (reduced by sum, so DDP-safe).  Its options are a pydantic ``Spec`` (extra keys
forbidden), validated when the metric is built, ``cls(**options)``.  Metrics that average a
per-item score subclass :class:`ItemMean` and implement ``score(state) -> [b]``; segmentation
scores subclass :class:`SegmentationMetric`, whose options name their convention (which masks,
clip or frame, which items) and whose ``convention()`` states it in words.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor

from ocf.fields import MAX_SIZE
from ocf.metrics.base import EvalMetric, ItemMean, MetricSpec, MetricUnavailable, ratio
from ocf.metrics.counting import count_hits, presence_counts
from ocf.metrics.segmentation import ari, best_overlap, fg_ari, miou, object_counts, segmentation_labels
from ocf.records import State

__all__ = [
    "MetricSpec",
    "EvalMetric",
    "MetricUnavailable",
    "ItemMean",
    "ratio",
    "SegmentationSpec",
    "SegmentationMetric",
    "predicted_masks",
    "FgAri",
    "FgAriMulti",
    "Ari",
    "Mbo",
    "Miou",
    "Mse",
    "CountAccuracy",
    "METRICS",
]


def predicted_masks(metric: EvalMetric | type[EvalMetric], state: State, masks: str = "auto") -> tuple[Tensor, str]:
    """The soft masks ``[b t k h w]`` a segmentation metric scores and where they come from
    (``"decoder"`` or ``"grouper"``): ``masks="auto"`` takes :meth:`State.segmentation`
    (the decoder's when it renders every pixel, else the grouper's); ``"decoder"`` and
    ``"grouper"`` insist on one.  :class:`MetricUnavailable` names what is missing."""
    r, latents = state.rendering, state.latents
    has_decoder = r is not None and r.mask_logits is not None and r.target is None
    has_grouper = latents is not None and latents.masks is not None
    if masks == "auto":
        seg = state.segmentation()  # the decoder's whole-input masks first, as below
        if seg is None:
            metric.check(state)  # raises, naming what is missing
        return seg, "grouper" if has_grouper and not has_decoder else "decoder"
    if masks == "decoder" and not has_decoder:
        raise MetricUnavailable(
            f"metric {metric.name} scores the decoder's masks (masks: decoder), but this "
            "decoder renders no masks for the whole input"
        )
    if masks == "grouper" and not has_grouper:
        raise MetricUnavailable(
            f"metric {metric.name} scores the grouper's masks (masks: grouper), but this "
            "grouper provides no latents.masks"
        )
    return (r.masks, "decoder") if masks == "decoder" else (latents.masks, "grouper")


def frame_labels(
    metric: EvalMetric | type[EvalMetric], state: State, masks: str = "auto"
) -> tuple[Tensor, Tensor, str]:
    """The argmax segmentation (resized to the ground truth) and the ground-truth labels,
    both ``[b t (h w)]``, and the source of the masks (see :func:`predicted_masks`);
    :class:`MetricUnavailable` if either is missing or they differ in batch or time."""
    true = state.batch.masks
    if true is None:
        metric.check(state)
    seg, source = predicted_masks(metric, state, masks)
    b, t, h, w = true.shape
    if seg.shape[0] != b or seg.shape[1] != t:
        raise MetricUnavailable(
            f"metric {metric.name}: predicted masks {tuple(seg.shape)} [b t k h w] do not cover the "
            f"ground truth {tuple(true.shape)} [b t h w] (a decoder rendering a subset of frames?)"
        )
    labels = segmentation_labels(seg.detach(), (h, w))
    return labels.reshape(b, t, -1), true.reshape(b, t, -1), source


def seg_and_truth(metric: EvalMetric | type[EvalMetric], state: State, masks: str = "auto") -> tuple[Tensor, Tensor]:
    """The argmax segmentation and the ground-truth labels, both ``[b (t h w)]``: a clip
    is one item (see :func:`frame_labels`)."""
    labels, true, _ = frame_labels(metric, state, masks)
    return labels.flatten(1), true.flatten(1)


class SegmentationSpec(MetricSpec):
    """The convention a segmentation score follows; :meth:`SegmentationMetric.convention`
    states it in words on every ``ocf eval`` output and result card."""

    masks: Literal["auto", "decoder", "grouper"] = Field(
        "auto",
        description="the masks scored: the decoder's (rendering.masks), the grouper's (latents.masks), or "
        "auto: the decoder's when it renders every pixel, else the grouper's",
    )
    video: Literal["clip", "frame"] = Field(
        "clip",
        description="clip: one score per clip over all its frames (object ids must persist over time); "
        "frame: one score per frame, averaged over the frames of each clip",
    )
    min_objects: int = Field(
        0,
        ge=0,
        le=MAX_SIZE,
        description="the fewest ground-truth objects an item (a frame with video: frame) needs to be scored; "
        "the others are skipped",
    )


class SegmentationMetric(ItemMean):
    """Mean per-item score of the argmax segmentation against the ground truth, under the
    convention of its ``Spec`` (:class:`SegmentationSpec`).  Subclasses set ``title`` and
    ``background`` (how the background is treated, in words) and implement :meth:`values`."""

    requires = ("segmentation", "batch.masks")
    Spec = SegmentationSpec
    title: ClassVar[str] = ""
    background: ClassVar[str] = ""
    source: str = ""  # the masks the last batch was scored on: "decoder" or "grouper"

    @abstractmethod
    def values(self, labels: Tensor, true: Tensor) -> Tensor:
        """Scores ``[n]`` of predicted labels against ground-truth labels, both ``[n p]``."""

    def score(self, state: State) -> Tensor:
        o = self.options
        labels, true, self.source = frame_labels(self, state, o.masks)
        b, t = true.shape[:2]
        if o.video == "frame":
            labels, true = labels.flatten(0, 1), true.flatten(0, 1)
        else:
            labels, true = labels.flatten(1), true.flatten(1)
        values = self.values(labels, true)
        if o.min_objects > 0:
            values = values.masked_fill(object_counts(true) < o.min_objects, float("nan"))
        return values.reshape(b, t).nanmean(dim=1) if o.video == "frame" else values

    def convention(self) -> str:
        o = self.options
        where = {
            "auto": "the decoder's masks where it renders every pixel, else the grouper's",
            "decoder": "the decoder's masks",
            "grouper": "the grouper's masks",
        }[o.masks]
        if o.masks == "auto" and self.source:
            where += f" (here: the {self.source}'s)"
        video = (
            "video scored over the whole clip, object ids persisting across frames"
            if o.video == "clip"
            else "video scored frame by frame, averaged over each clip's frames"
        )
        unit = "items" if o.video == "clip" else "frames"
        if o.min_objects == 0:
            items = f"every {unit[:-1]} counts, single-object ones included"
        elif o.min_objects == 1:
            items = f"{unit} with at least one object count, single-object ones included"
        else:
            items = f"only {unit} with at least {o.min_objects} objects count"
        return f"{self.title}, {self.treats_background()}; {where}; {video}; {items}"

    def treats_background(self) -> str:
        """How the background is treated, in words."""
        return self.background


class FgAri(SegmentationMetric):
    """Foreground ARI of the argmax segmentation (background and ignored pixels excluded;
    this is Rotating Features' ARI-BG, overlap being −1)."""

    name = "fg_ari"
    title = "FG-ARI"
    background = "background (id 0) and ignored (-1) pixels excluded, items without foreground skipped"

    def values(self, labels: Tensor, true: Tensor) -> Tensor:
        return fg_ari(labels, true)


class FgAriMulti(FgAri):
    """``fg_ari`` with ``min_objects: 2`` by default: items with fewer ground-truth objects
    are skipped.  A model that puts every pixel in one slot scores 1 on a single-object item
    under FG-ARI (both partitions are one cluster) and 0 here."""

    name = "fg_ari_multi"

    class Spec(SegmentationSpec):
        min_objects: int = Field(
            2, ge=1, le=MAX_SIZE, description=SegmentationSpec.model_fields["min_objects"].description
        )


class Ari(SegmentationMetric):
    """ARI of the argmax segmentation, background included (ignored pixels excluded)."""

    name = "ari"
    title = "ARI"
    background = "background (id 0) included as one more cluster, ignored (-1) pixels excluded"

    def values(self, labels: Tensor, true: Tensor) -> Tensor:
        return ari(labels, true)


class OverlapSpec(SegmentationSpec):
    background: bool = Field(False, description="score the background (id 0) as one more object")


class _Overlap(SegmentationMetric):
    Spec = OverlapSpec

    def treats_background(self) -> str:
        return (
            "background (id 0) scored as one more object" if self.options.background else "background (id 0) excluded"
        ) + ", ignored (-1) pixels excluded"


class Mbo(_Overlap):
    """Mean best overlap of the argmax segmentation with the ground-truth objects."""

    name = "mbo"
    title = "mBO"

    def values(self, labels: Tensor, true: Tensor) -> Tensor:
        return best_overlap(labels, true, background=self.options.background)


class Miou(_Overlap):
    """Hungarian-matched mean IoU of the argmax segmentation with the ground-truth objects."""

    name = "miou"
    title = "mIoU"

    def values(self, labels: Tensor, true: Tensor) -> Tensor:
        return miou(labels, true, background=self.options.background)


class Mse(EvalMetric):
    """Reconstruction MSE of ``rendering.recon`` against ``state.target``, over every
    element seen.  ``update(pred [b ...], target [b ...])``."""

    name = "mse"
    requires = ("rendering.recon",)
    sums = {"sse": torch.float64, "numel": torch.long}
    higher_is_better: ClassVar[bool] = False

    def update_state(self, state: State) -> None:
        type(self).check(state)
        recon, target = state.rendering.recon.detach(), state.target
        if recon.shape != target.shape:
            raise MetricUnavailable(
                f"metric mse: recon {tuple(recon.shape)} and its target {tuple(target.shape)} differ"
            )
        self.update(recon, target)

    def update(self, pred: Tensor, target: Tensor) -> None:
        if pred.shape != target.shape:
            raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
        self.sse += (pred.detach().double() - target.double()).square().sum()
        self.numel += pred.numel()

    def compute(self) -> Tensor:
        return ratio(self.sse, self.numel)


class CountAccuracy(EvalMetric):
    """Fraction of frames where the number of slots with presence > 0.5 equals
    ``batch.extras["counts"]``.  ``update(pred_counts [b t], true_counts [b t])``."""

    name = "count_accuracy"
    requires = ("latents.presence", "batch.extras.counts")
    sums = {"correct": torch.long, "frames": torch.long}
    higher_is_better: ClassVar[bool] = True

    def update_state(self, state: State) -> None:
        type(self).check(state)
        presence = state.latents.presence.detach()
        true = state.batch.extras["counts"]
        if presence.dim() == 2:  # [b k] for images
            presence = presence.unsqueeze(1)
        self.update(presence_counts(presence), true.reshape(presence.shape[:2]))

    def update(self, pred_counts: Tensor, true_counts: Tensor) -> None:
        hits = count_hits(pred_counts, true_counts)  # [b t]
        self.correct += hits.sum()
        self.frames += hits.numel()

    def compute(self) -> Tensor:
        return ratio(self.correct, self.frames)


METRICS: dict[str, type[EvalMetric]] = {
    cls.name: cls for cls in (FgAri, FgAriMulti, Ari, Mbo, Miou, Mse, CountAccuracy)
}
