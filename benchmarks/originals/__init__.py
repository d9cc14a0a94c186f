"""Adapters that build each original code's model for ``benchmarks/vs_original.py``.

One module per original. Each states at its top the run-time patches it applies (and
nothing else is changed in the original's code, which stays in its own checkout outside
this repository) and defines::

    PATCHES: tuple[str, ...]   # the documented run-time patches, one line each
    def build(root: Path, batch: Batch) -> tuple[Callable[[], object], torch.nn.Module]

``root`` is the original's checkout (``DIR/NAME``); ``batch`` is a batch drawn from ocf's
generated data for the case's spec (``frames [b t c h w]`` in [0, 1]), the same tensors the
ocf side trains on. ``build`` returns one training step of the original (forward, loss,
backward, optimiser step, as its training script does them, on the CPU) and the model whose
parameters it trains (for the parameter count).
"""

from __future__ import annotations

import importlib
import sys
import types
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def on_path(root: Path):
    """Import the original's modules from ``root`` (its own top-level names, e.g. ``model``)."""
    sys.path.insert(0, str(root))
    try:
        yield
    finally:
        sys.path.remove(str(root))


def stub(name: str, **attrs) -> types.ModuleType:
    """An empty module registered as ``name``: stands in for an import the benchmarked code
    path never uses (each adapter names the ones it stubs in PATCHES)."""
    mod = sys.modules.get(name)
    if mod is None:
        mod = types.ModuleType(name)
        sys.modules[name] = mod
    for key, value in attrs.items():
        setattr(mod, key, value)
    return mod


def load(root: Path, module: str):
    """Import ``module`` from the checkout at ``root``."""
    with on_path(root):
        return importlib.import_module(module)
