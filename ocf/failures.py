"""Messages for a component that fails: which stage, which registered name, which plugin,
the shapes of what it was given, and the line of its own file the error went through.

:func:`describe_failure` turns an exception raised by a component's ``forward`` (during the
dry run, training or evaluation) into one paragraph; :class:`~ocf.assembly.Model` attaches
it to the exception (``exc.ocf_stage``) and the CLI prints it instead of a traceback
(``--debug`` shows the traceback as well).
"""

from __future__ import annotations

import inspect
import os
import traceback
from typing import Any

from torch import Tensor

#: the attribute holding the stage message on an exception a component raised
STAGE_ATTR = "ocf_stage"


def shape_of(value: Any) -> str:
    """``[2, 1, 1024, 32]`` for a tensor; the first tensor's shape for a record that holds
    tensors (a posterior: its mean); else the type's name."""
    if isinstance(value, Tensor):
        return str(list(value.shape))
    if isinstance(value, (tuple, list)) and all(isinstance(v, int) for v in value):
        return str(tuple(value))
    mean = getattr(value, "mean", None)
    if isinstance(mean, Tensor):
        return f"{type(value).__name__} {list(mean.shape)}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {shape_of(v)}" for k, v in value.items()) + "}"
    return type(value).__name__


def input_shapes(component: Any, state: Any) -> str:
    """``features.tokens [2, 1, 1024, 32], batch.frames [2, 1, 3, 64, 64]``: what the
    component's ``needs`` held when it ran."""
    parts = []
    for path in getattr(component, "needs", ()):
        value = state.get(path)
        parts.append(f"{path} {'missing' if value is None else shape_of(value)}")
    return ", ".join(parts) or "no declared inputs"


def own_frame(exc: BaseException, cls: type) -> str:
    """The last traceback frame of ``exc`` inside the file that defines ``cls``:
    ``plugin_x/grouper.py:42 in forward: attn = torch.einsum(...)``; empty if none."""
    try:
        source = os.path.realpath(inspect.getsourcefile(cls) or "")
    except TypeError:  # a built-in or dynamically made class
        return ""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if os.path.realpath(f.filename) == source]
    if not frames:
        return ""
    f = frames[-1]
    return f"{_short(f.filename)}:{f.lineno} in {f.name}: {(f.line or '').strip()}"


def _short(path: str) -> str:
    """The path relative to the working folder when it is inside it."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def plugin_of(registry: Any, kind: str, name: str) -> str:
    """The plugin that registered ``kind``/``name`` in ``registry`` (empty if unknown)."""
    try:
        return registry.entry(kind, name).plugin
    except Exception:  # no registry, or a component built outside it
        return ""


def describe_failure(where: str, component: Any, state: Any, exc: BaseException, registry: Any = None) -> str:
    """``model.grouper (slot_attention.grouper, plugin slot_attention) failed on
    features.tokens [2, 1, 1024, 32]: RuntimeError: einsum(): ...`` and, on a second line,
    the component's own line the error passed through."""
    name = getattr(component, "name", "") or type(component).__name__
    plugin = plugin_of(registry, getattr(component, "kind", ""), name)
    who = f"{name}, plugin {plugin}" if plugin else name
    text = f"{where} ({who}) failed on {input_shapes(component, state)}: {type(exc).__name__}: {exc}"
    frame = own_frame(exc, type(component))
    return text + (f"\n  at {frame}" if frame else "")


def build_failure(where: str, kind: str, name: str, cls: type, exc: BaseException, registry: Any = None) -> str:
    """The message for a component whose ``__init__`` raised (not a spec problem)."""
    plugin = plugin_of(registry, kind, name)
    who = f"{kind} {name}" + (f" (plugin {plugin})" if plugin else "")
    text = f"{where}: {who} failed while being built (__init__): {type(exc).__name__}: {exc}"
    frame = own_frame(exc, cls)
    return text + (f"\n  at {frame}" if frame else "")


def stage_message(exc: BaseException) -> str | None:
    """The stage message attached to ``exc`` (or to an exception it was raised from)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        msg = getattr(exc, STAGE_ATTR, None)
        if msg:
            return msg
        exc = exc.__cause__ or exc.__context__
    return None
