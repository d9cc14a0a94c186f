"""Deprecated: the generation metrics live in :mod:`ocf.metrics.generation` and are
importable from :mod:`ocf.metrics` (``from ocf.metrics import Fid, Kid,
GenerativeMetric``).  This module re-exports them for one release."""

import warnings

from ocf.metrics.generation import (  # noqa: F401
    GENERATION_METRICS,
    Fid,
    GenerativeMetric,
    Kid,
    RandomFeatures,
    TorchScriptFeatures,
    make_extractor,
)

warnings.warn(
    "ocf.generation_metrics is deprecated and will be removed; import from ocf.metrics instead "
    "(e.g. from ocf.metrics import Fid, Kid, GenerativeMetric)",
    DeprecationWarning,
    stacklevel=2,
)
