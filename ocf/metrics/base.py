"""The base of every evaluation metric: :class:`EvalMetric` (a :class:`torchmetrics.Metric`
with pydantic options and a stated convention), :class:`ItemMean` (mean of a per-item score)
and :class:`MetricUnavailable`.  The registered metrics are in :mod:`ocf.metrics.evaluators`.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import torch
import torchmetrics
from pydantic import BaseModel, ConfigDict, ValidationError
from torch import Tensor

from ocf.errors import SpecError, UserError
from ocf.fields import SPEC_CONFIG
from ocf.records import State

__all__ = ["MetricSpec", "EvalMetric", "MetricUnavailable", "ItemMean", "ratio"]

# Keyword arguments of torchmetrics.Metric itself (distributed syncing, caching); they are
# passed through to it rather than validated as metric options.
_TORCHMETRICS_KWARGS = frozenset(
    {
        "compute_on_cpu",
        "dist_sync_on_step",
        "process_group",
        "dist_sync_fn",
        "distributed_available_fn",
        "sync_on_compute",
        "compute_with_cache",
    }
)


class MetricSpec(BaseModel):
    """Base for metric option models: unknown keys are errors and floats are finite."""

    model_config = ConfigDict(**SPEC_CONFIG, frozen=True)


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
    def from_spec(cls, resolved, **options) -> EvalMetric:
        """Build the metric for a run: ``options`` are ``eval.metric_options.<name>``;
        override to read defaults from the spec (e.g. a dataset option)."""
        return cls(**options)

    def convention(self) -> str:
        """What this metric scores and how, in words, with its options (shown by ``ocf eval``
        and on result cards); by default the first sentence of the class docstring."""
        doc = " ".join((type(self).__doc__ or type(self).__name__).replace("``", "").split())
        return doc.split(". ")[0].rstrip(".")

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
