"""The tensor-level metric classes of ocf 0.1 (``ARI``, ``MBO``, ``MIoU``, ``MSE``,
``CountAccuracyMetric``), kept for one release.  Importing them from :mod:`ocf.metrics`
warns (DeprecationWarning) and names the replacement: the registered class, whose
``update`` takes per-item values from the functions (``FgAri().update(fg_ari(pred,
true))``) or, for MSE and count accuracy, the same tensors as before.
"""

from __future__ import annotations

from torch import Tensor

from ocf.metrics.evaluators import CountAccuracy, ItemMean, Mbo, Miou, Mse, seg_and_truth
from ocf.metrics.segmentation import ari, best_overlap, fg_ari, miou
from ocf.records import State

#: old name → (replacement class, what to write instead)
REPLACEMENTS = {
    "ARI": "ocf.metrics.FgAri (foreground_only=True) or ocf.metrics.Ari, with update(fg_ari(pred, true)) "
    "or update(ari(pred, true))",
    "MBO": "ocf.metrics.Mbo, with update(best_overlap(pred_masks, true))",
    "MIoU": "ocf.metrics.Miou, with update(miou(pred_masks, true))",
    "MSE": "ocf.metrics.Mse",
    "CountAccuracyMetric": "ocf.metrics.CountAccuracy",
}


class _TensorItemMean(ItemMean):
    """An :class:`ItemMean` whose ``update`` takes the function's tensors, as in 0.1."""

    def values(self, *args, **kwargs) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def update(self, *args, **kwargs) -> None:
        ItemMean.update(self, self.values(*args, **kwargs))

    def score(self, state: State) -> Tensor:
        return self.values(*seg_and_truth(self, state))

    def update_state(self, state: State) -> None:
        self.update(*seg_and_truth(self, state))


class ARI(_TensorItemMean):
    """Deprecated: mean ARI over items (FG-ARI when ``foreground_only``);
    ``update(pred, true, ignore=None)`` as in :func:`ocf.metrics.ari`."""

    def __init__(self, foreground_only: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.foreground_only = foreground_only

    def values(self, pred: Tensor, true: Tensor, ignore: Tensor | None = None) -> Tensor:
        return (fg_ari if self.foreground_only else ari)(pred, true, ignore=ignore)


class MBO(_TensorItemMean):
    """Deprecated: mean best overlap; ``update(pred_masks, true)``."""

    name = Mbo.name
    Spec = Mbo.Spec

    def values(self, pred_masks: Tensor, true: Tensor) -> Tensor:
        return best_overlap(pred_masks, true, background=self.options.background)


class MIoU(_TensorItemMean):
    """Deprecated: Hungarian-matched mean IoU; ``update(pred_masks, true)``."""

    name = Miou.name
    Spec = Miou.Spec

    def values(self, pred_masks: Tensor, true: Tensor) -> Tensor:
        return miou(pred_masks, true, background=self.options.background)


CLASSES = {"ARI": ARI, "MBO": MBO, "MIoU": MIoU, "MSE": Mse, "CountAccuracyMetric": CountAccuracy}
