"""Deprecated: the generation metrics live in :mod:`ocf.metrics.generation` and are
importable from :mod:`ocf.metrics` (``from ocf.metrics import Fid, Kid,
GenerativeMetric``).  This module forwards to it for one release."""

import warnings

from ocf.metrics import generation as _generation

warnings.warn(
    "ocf.generation_metrics is deprecated and will be removed; import from ocf.metrics instead "
    "(e.g. from ocf.metrics import Fid, Kid, GenerativeMetric)",
    DeprecationWarning,
    stacklevel=2,
)


def __getattr__(name: str):
    return getattr(_generation, name)
