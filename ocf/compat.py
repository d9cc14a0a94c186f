"""Deprecation helpers for names that moved."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any


def moved(old: str, *new: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` for a module whose contents moved to the modules ``new``:
    each name is looked up there (imported on first use, so no import edge remains) and
    the lookup warns with the module to import it from instead.

        __getattr__ = moved(__name__, "ocf_simone.prior", "ocf_simone.objective")
    """

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        for target in new:
            module = importlib.import_module(target)
            if hasattr(module, name):
                warnings.warn(
                    f"{old}.{name} moved to {target}.{name}; import it from {target} "
                    "(the old path is removed in the next release)",
                    DeprecationWarning,
                    stacklevel=2,
                )
                return getattr(module, name)
        raise AttributeError(f"module {old!r} has no attribute {name!r}")

    return __getattr__
