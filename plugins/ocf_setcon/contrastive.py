"""Deprecated: the contrastive family moved to the ``contrastive`` plugin.  Importing a name
from here still works for one release and warns with the module to import it from instead."""

from __future__ import annotations

import importlib
import warnings
from typing import Any

#: old public name → the module of the contrastive plugin that holds it now
MOVED = {
    "augment": "ocf_contrastive.nets",
    "EMACopy": "ocf_contrastive.nets",
    "negative_cosine": "ocf_contrastive.losses",
    "entropy": "ocf_contrastive.losses",
    "run_stages": "ocf_contrastive.objective",
    "ContrastiveSpec": "ocf_contrastive.objective",
    "ContrastiveObjective": "ocf_contrastive.objective",
    "NTXent": "ocf_contrastive.objective",
    "MoCo": "ocf_contrastive.objective",
    "BYOL": "ocf_contrastive.objective",
    "SimSiam": "ocf_contrastive.objective",
    "DINO": "ocf_contrastive.objective",
}
__all__ = [*MOVED, "FAMILY"]  # noqa: F822 - FAMILY is served by __getattr__


def __getattr__(name: str) -> Any:
    if name == "FAMILY":
        warnings.warn(
            "ocf_setcon.contrastive.FAMILY is deprecated; the classes are in ocf_contrastive.objective "
            "and registered as contrastive.ntxent, contrastive.moco, contrastive.byol, contrastive.simsiam "
            "and contrastive.dino",
            DeprecationWarning,
            stacklevel=2,
        )
        objective = importlib.import_module("ocf_contrastive.objective")
        return {
            "nt_xent": objective.NTXent,
            "moco": objective.MoCo,
            "byol": objective.BYOL,
            "simsiam": objective.SimSiam,
            "dino": objective.DINO,
        }
    if name not in MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"ocf_setcon.contrastive.{name} is deprecated; import it from {MOVED[name]}",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(MOVED[name]), name)
