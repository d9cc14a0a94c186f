"""Metrics the evaluator runs on a model's :class:`~ocf.records.State`: one class per
metric, registered by ``name``.

Every metric is a :class:`torchmetrics.Metric` whose states are scalar sums declared in
``sums`` (reduced by sum, so DDP-safe).  Its options are a pydantic ``Spec`` (extra keys
forbidden), validated when the metric is built, ``cls(**options)``.  Metrics that average a
per-item score subclass :class:`ItemMean` and implement ``score(state) -> [b]``.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import torch
import torchmetrics
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import Tensor

from ocf.errors import SpecError, UserError
from ocf.metrics.counting import count_hits, presence_counts
from ocf.metrics.segmentation import ari, best_overlap, fg_ari, miou, object_counts, segmentation_labels
from ocf.records import State

__all__ = [
    "MetricSpec",
    "EvalMetric",
    "MetricUnavailable",
    "ItemMean",
    "ratio",
    "FgAri",
    "FgAriMulti",
    "Ari",
    "Mbo",
    "Miou",
    "Mse",
    "CountAccuracy",
    "METRICS",
]

# Keyword arguments of torchmetrics.Metric itself (distributed syncing, caching); they are
# passed through to it rather than validated as metric options.
_TORCHMETRICS_KWARGS = frozenset({
    "compute_on_cpu", "dist_sync_on_step", "process_group", "dist_sync_fn", "distributed_available_fn",
    "sync_on_compute", "compute_with_cache",
})


class MetricSpec(BaseModel):
    """Base for metric option models: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricUnavailable(UserError):
    """A metric needs something the model (or the dataset) does not provide."""


def ratio(numerator: Tensor, denominator: Tensor) -> Tensor:
    """``numerator / denominator`` in float64, or NaN when the denominator is 0 (nothing
    was scored)."""
    if int(denominator) == 0:
        return torch.tensor(float("nan"), dtype=torch.float64)
    return numerator.double() / denominator


class EvalMetric(torchmetrics.Metric):
    """A metric the evaluator runs on model outputs.

    Subclasses set ``name`` (the spec's ``eval.metrics`` entry), ``requires`` (what they
    read: ``"segmentation"`` for :meth:`State.segmentation`, or dotted State paths such as
    ``"batch.masks"``, ``"rendering.recon"``, ``"batch.extras.counts"``), ``sums`` (their
    scalar states: name → dtype, each starting at 0 and summed across processes), a nested
    ``Spec`` for their options (read back as ``self.options``), and implement
    :meth:`update_state`, ``update`` and ``compute`` (the value over everything seen).
    """

    #: the registry kind (``registry.register`` reads it)
    kind: ClassVar[str] = "metric"
    name: ClassVar[str] = ""
    requires: ClassVar[tuple[str, ...]] = ()
    sums: ClassVar[dict[str, torch.dtype]] = {}
    full_state_update: ClassVar[bool] = False
    is_differentiable: ClassVar[bool] = False

    class Spec(MetricSpec):
        pass

    def __init__(self, **options: Any) -> None:
        passthrough = {key: options.pop(key) for key in _TORCHMETRICS_KWARGS & set(options)}
        parsed = self.parse_options(options)
        super().__init__(**passthrough)
        self.options = parsed
        for state, dtype in self.sums.items():
            self.add_state(state, torch.zeros((), dtype=dtype), dist_reduce_fx="sum")

    @classmethod
    def parse_options(cls, options: dict[str, Any]) -> MetricSpec:
        """``options`` validated by ``Spec``; :class:`~ocf.errors.SpecError` naming the
        metric and each bad option otherwise."""
        try:
            return cls.Spec.model_validate(options)
        except ValidationError as exc:
            label = cls.name or cls.__name__
            raise SpecError([f"metric {label}, option {p}" for p in _problems(exc, cls.Spec)]) from None

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


def _problems(exc: ValidationError, spec: type[BaseModel]) -> list[str]:
    """One ``option: message`` line per validation error."""
    out = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(options)"
        if err["type"] == "extra_forbidden":
            known = ", ".join(spec.model_fields)
            out.append(f"{where}: unknown option; " + (f"options are {known}" if known else "this metric takes none"))
        else:
            out.append(f"{where}: {err['msg']}, got {err.get('input')!r}")
    return out


class ItemMean(EvalMetric):
    """Mean of a per-item score over all items seen; NaN items (score undefined) are
    skipped and counted in ``skipped``.  Subclasses implement :meth:`score`; ``update``
    takes per-item values ``[b]`` directly (e.g. from :func:`ocf.metrics.fg_ari`)."""

    sums = {"total": torch.float64, "count": torch.long, "skipped": torch.long}
    higher_is_better: ClassVar[bool] = True

    @abstractmethod
    def score(self, state: State) -> Tensor:
        """The score of each item of ``state``'s batch ``[b]`` (NaN: undefined)."""

    def update_state(self, state: State) -> None:
        self.update(self.score(state))

    def update(self, values: Tensor) -> None:
        """Accumulate per-item scores ``[b]``."""
        ok = ~torch.isnan(values)
        self.total += values[ok].sum().to(self.total.dtype)
        self.count += ok.sum()
        self.skipped += (~ok).sum()

    def compute(self) -> Tensor:
        """Mean over scored items (NaN if none was scored)."""
        return ratio(self.total, self.count)


def seg_and_truth(metric: EvalMetric | type[EvalMetric], state: State) -> tuple[Tensor, Tensor]:
    """The argmax segmentation (resized to the ground truth) and the ground-truth labels,
    both ``[b (t h w)]``; :class:`MetricUnavailable` if either is missing or they differ
    in batch or time."""
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


class FgAri(ItemMean):
    """Foreground ARI of the argmax segmentation over the whole clip (background and
    ignored pixels excluded; this is Rotating Features' ARI-BG, overlap being −1)."""

    name = "fg_ari"
    requires = ("segmentation", "batch.masks")

    def score(self, state: State) -> Tensor:
        return fg_ari(*seg_and_truth(self, state))


class FgAriMulti(FgAri):
    """FG-ARI over the items with at least ``min_objects`` (default 2) ground-truth objects;
    the others are skipped.  A model that puts every pixel in one slot scores 1 on a
    single-object item under FG-ARI (both partitions are one cluster) and 0 here."""

    name = "fg_ari_multi"

    class Spec(MetricSpec):
        min_objects: int = Field(2, ge=1, description="the fewest ground-truth objects an item needs to be scored")

    def score(self, state: State) -> Tensor:
        labels, true = seg_and_truth(self, state)
        values = fg_ari(labels, true)
        return values.masked_fill(object_counts(true) < self.options.min_objects, float("nan"))


class Ari(ItemMean):
    """ARI of the argmax segmentation over the whole clip, background included (ignored
    pixels excluded)."""

    name = "ari"
    requires = ("segmentation", "batch.masks")

    def score(self, state: State) -> Tensor:
        return ari(*seg_and_truth(self, state))


class OverlapSpec(MetricSpec):
    background: bool = Field(False, description="score the background (id 0) as one more object")


class Mbo(ItemMean):
    """Mean best overlap of the argmax segmentation with the ground-truth objects."""

    name = "mbo"
    requires = ("segmentation", "batch.masks")
    Spec = OverlapSpec

    def score(self, state: State) -> Tensor:
        return best_overlap(*seg_and_truth(self, state), background=self.options.background)


class Miou(ItemMean):
    """Hungarian-matched mean IoU of the argmax segmentation with the ground-truth objects."""

    name = "miou"
    requires = ("segmentation", "batch.masks")
    Spec = OverlapSpec

    def score(self, state: State) -> Tensor:
        return miou(*seg_and_truth(self, state), background=self.options.background)


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
