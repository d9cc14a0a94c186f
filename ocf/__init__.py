"""ocf: an object-centric learning framework.

Models are assembled from five kinds of component (Encoder, Grouper, Prior, Decoder,
Objective) declared in a YAML spec and supplied by plugins.

The plugin API is importable from here (``from ocf import hookimpl, Grouper, Latents``);
each name is loaded on first use, so ``import ocf`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public name → the module that defines it.
_API = {
    "hookimpl": "ocf.hookspecs",
    **dict.fromkeys(
        [
            "Component",
            "Encoder",
            "Grouper",
            "Prior",
            "Decoder",
            "Objective",
            "ComponentSpec",
            "ObjectiveSpec",
            "BuildContext",
            "Shared",
            "STAGES",
        ],
        "ocf.components",
    ),
    **dict.fromkeys(["State", "Batch", "Features", "Latents", "PriorTerms", "Rendering"], "ocf.records"),
    **dict.fromkeys(["UserError", "SpecError"], "ocf.errors"),
    "check_component": "ocf.testing",
    **dict.fromkeys(["EvalMetric", "ItemMean", "MetricSpec"], "ocf.metrics"),
    "DiagonalGaussian": "ocf.prob",
    "Generator": "ocf.data",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'ocf' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
