"""Checks of a spec against the registry it is resolved with (:func:`ocf.spec.resolve` calls
:func:`registry_problems`): generator options and evaluation metrics, each problem naming its
key path."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from ocf.errors import RegistryError
from ocf.registry import Registry, validation_problems


def registry_problems(d: Any, ev: Any, registry: Registry) -> list[str]:
    """What the schema alone cannot check, given the spec's validated ``data`` and ``eval``
    sections (:class:`ocf.spec.DataSpec`, :class:`ocf.spec.EvalSpec`; None when a section did
    not validate, which is then not checked): ``data.generate.options`` against the
    generator's options, and ``eval.metrics`` / ``eval.metric_options`` against the
    registered metrics (a registry without metrics, as a test builds, skips the latter)."""
    problems: list[str] = []
    g = d.generate if d is not None else None
    if g is not None and g.options and d.dataset == "hdf5":
        problems += [f"data.generate.options.{k}: unknown key; dataset hdf5 takes no options" for k in g.options]
    elif g is not None and ("dataset", d.dataset) in registry:
        options = registry.get("dataset", d.dataset).Options
        problems += _checked(options, g.options, "data.generate.options", f"dataset {d.dataset}")
    if ev is None or not registry.names("metric"):
        return problems
    from ocf.metrics.base import _TORCHMETRICS_KWARGS  # torchmetrics' own keywords, passed through

    for i, name in enumerate(ev.metrics):
        try:
            registry.entry("metric", name)
        except RegistryError as exc:
            problems.append(f"eval.metrics.{i}: {exc}")
    for name, opts in ev.metric_options.items():
        where = f"eval.metric_options.{name}"
        if name not in ev.metrics:
            problems.append(f"{where}: {name!r} is not in eval.metrics ({', '.join(ev.metrics) or 'empty'})")
        elif ("metric", name) in registry:
            own = {k: v for k, v in opts.items() if k not in _TORCHMETRICS_KWARGS}
            problems += _checked(registry.get("metric", name).Spec, own, where, f"metric {name}")
    return problems


def _checked(model: type[BaseModel], values: dict[str, Any], where: str, owner: str) -> list[str]:
    """Problems validating ``values`` with ``model``, each naming its path under ``where``; an
    unknown key lists the keys ``owner`` takes."""
    try:
        model.model_validate(values)
    except ValidationError as exc:
        known = ", ".join(model.model_fields) or "none"
        return [
            f"{p}; {owner} takes {known}" if p.endswith(": unknown key") else p
            for p in validation_problems(exc, prefix=where)
        ]
    return []
