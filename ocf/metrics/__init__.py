"""Evaluation metrics.

- :mod:`ocf.metrics.segmentation`: batched functions ``ari``, ``fg_ari``, ``best_overlap``
  (mBO), ``miou`` and ``iou_matrix`` on label / mask tensors, one value per item ``[b]``.
- :mod:`ocf.metrics.reconstruction` (``mse``) and :mod:`ocf.metrics.counting`
  (``presence_counts``, ``count_accuracy``): the same for reconstructions and counts.
- :mod:`ocf.metrics.base`: :class:`EvalMetric`, the base of every metric the evaluator
  runs on a :class:`~ocf.records.State` (options in a pydantic ``Spec``; ``convention()``
  says what it scores), and :class:`ItemMean`.
- :mod:`ocf.metrics.evaluators`: the registered metrics ``fg_ari``, ``fg_ari_multi``,
  ``ari``, ``mbo``, ``miou`` (segmentation scores, :class:`SegmentationMetric`, whose
  options name the convention: which masks, whole clip or frame by frame, which items),
  ``mse`` and ``count_accuracy`` (:data:`METRICS`).
- :mod:`ocf.metrics.generation`: metrics of generated scenes, ``fid`` and ``kid``
  (:data:`GENERATION_METRICS`), and their base :class:`GenerativeMetric`.

Ground-truth labels are long ids, 0 = background, negative (-1) = ignore; a per-item value
is NaN when undefined, and the metric classes skip NaN items.
"""

from __future__ import annotations

import importlib
import warnings

from ocf.metrics import evaluators as _evaluators  # noqa: E402 - for __all__
from ocf.metrics import generation as _generation
from ocf.metrics.counting import count_accuracy, presence_counts
from ocf.metrics.evaluators import (
    METRICS,
    Ari,
    CountAccuracy,
    EvalMetric,
    FgAri,
    FgAriMulti,
    ItemMean,
    Mbo,
    MetricSpec,
    MetricUnavailable,
    Miou,
    Mse,
    SegmentationMetric,
    SegmentationSpec,
    predicted_masks,
    ratio,
)
from ocf.metrics.generation import (
    GENERATION_METRICS,
    Fid,
    GenerativeMetric,
    Kid,
    RandomFeatures,
    TorchScriptFeatures,
    make_extractor,
)
from ocf.metrics.reconstruction import mse
from ocf.metrics.segmentation import (
    ari,
    best_overlap,
    fg_ari,
    iou_matrix,
    miou,
    object_counts,
    segmentation_labels,
)

__all__ = [
    "ari",
    "fg_ari",
    "iou_matrix",
    "best_overlap",
    "miou",
    "mse",
    "count_accuracy",
    "presence_counts",
    "object_counts",
    "segmentation_labels",
    *_evaluators.__all__,
    *_generation.__all__,
]


def __getattr__(name: str):
    """The class names of ocf 0.1 that differ from today's only in case (``ARI``,
    ``MBO``, ``MIoU``, ``MSE``, ``CountAccuracyMetric``): importable for one release."""
    deprecated = importlib.import_module("ocf.metrics.deprecated")
    if name not in deprecated.CLASSES:
        raise AttributeError(f"module 'ocf.metrics' has no attribute {name!r}")
    warnings.warn(
        f"ocf.metrics.{name} is deprecated and will be removed; use {deprecated.REPLACEMENTS[name]}",
        DeprecationWarning,
        stacklevel=2,
    )
    return deprecated.CLASSES[name]
