"""The registry: which plugin supplies which component, dataset and metric.

Plugins add entries through the hooks in :mod:`ocf.hookspecs` by calling
``registry.register(Cls, ...)``: each class declares its ``name`` and the kind follows from
its base class (a component base in :mod:`ocf.components`, :class:`ocf.data.Generator` or
:class:`ocf.metrics.EvalMetric`).  The registry records the plugin that added each name,
refuses a duplicate naming both plugins, and suggests close matches for an unknown name.
It is an ordinary object, so a test can build an isolated one.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ocf.components import BASES, check_class
from ocf.components import KINDS as COMPONENT_KINDS  # the stage table's kinds, in stage order
from ocf.errors import RegistryError, SpecError

KINDS = COMPONENT_KINDS + ("dataset", "metric", "converter", "result")  # result: ocf.results.Result


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    obj: Any
    plugin: str


def kind_of(obj: Any) -> str:
    """The registry kind of a class: a component kind from its base class, else the ``kind``
    its base declares (``ocf.data.Generator``: dataset, ``ocf.metrics.EvalMetric``: metric,
    ``ocf.data.convert.Converter``: converter); or of an :class:`ocf.results.Result`
    instance: result."""
    if isinstance(obj, type):
        for kind, base in BASES.items():
            if issubclass(obj, base):
                return kind
    kind = getattr(obj, "kind", None)
    if kind in KINDS and kind not in COMPONENT_KINDS and (isinstance(obj, type) or kind == "result"):
        return kind
    raise RegistryError(
        f"cannot tell what {obj!r} is: register subclasses of ocf.Encoder, ocf.Grouper, ocf.Prior, ocf.Decoder, "
        "ocf.Objective, ocf.Generator (datasets), ocf.EvalMetric (metrics) or ocf.data.convert.Converter, or "
        "ocf.results.Result instances"
    )


class Registry:
    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        #: plugin → why it supplies nothing ("failed to load (ImportError: ...)", "is disabled ...");
        #: an unknown name with that plugin's prefix, or one it had registered, names it
        self.unavailable: dict[str, str] = {}
        #: (kind, name) → the plugin whose failure withdrew it
        self.withdrawn: dict[tuple[str, str], str] = {}

    def register(self, *objs: Any, name: str | None = None, plugin: str = "<direct>") -> None:
        """Register classes under the ``name`` each declares, the kind inferred from its
        base class.  ``name=`` registers one class under another name (an alias)."""
        if name is not None and len(objs) != 1:
            raise RegistryError(f"name={name!r} names one class; got {len(objs)}")
        for obj in objs:
            kind = kind_of(obj)
            n = name or vars(obj).get("name", "")  # declared on the class itself, not inherited
            if not n or not isinstance(n, str):
                inherited = getattr(obj, "name", "")
                hint = f" (it inherits {inherited!r}, which names its base class)" if inherited else ""
                raise RegistryError(
                    f"{kind} {obj.__module__}.{obj.__qualname__} declares no name{hint}: set "
                    "name = '<plugin>.<thing>' on the class (or pass name=...)"
                )
            if kind in COMPONENT_KINDS:
                check_class(kind, n, obj)
            self.add(kind, n, obj, plugin=plugin)

    def add(self, kind: str, name: str, obj: Any, *, plugin: str = "<direct>") -> None:
        """Register ``obj`` under ``kind``/``name``; a duplicate name is an error.  The
        low-level form (no checks of ``obj``); plugins call :meth:`register`."""
        if kind not in self._entries:
            raise RegistryError(f"unknown kind {kind!r}; kinds are {', '.join(KINDS)}")
        if not name or not isinstance(name, str):
            raise RegistryError(f"a {kind} needs a non-empty string name, got {name!r}")
        existing = self._entries[kind].get(name)
        if existing is not None:
            raise RegistryError(
                f"{kind} {name!r} is registered twice: by plugin {existing.plugin!r} and by plugin {plugin!r}"
            )
        self._entries[kind][name] = Entry(kind, name, obj, plugin)

    def remove_plugin(self, plugin: str, reason: str | None = None) -> None:
        """Forget every entry a plugin added (used when a plugin fails half-way); with a
        ``reason``, an unknown-name error for any of them names the plugin and the reason."""
        for kind, entries in self._entries.items():
            for name in [n for n, e in entries.items() if e.plugin == plugin]:
                del entries[name]
                if reason is not None:
                    self.withdrawn[(kind, name)] = plugin
        if reason is not None:
            self.unavailable[plugin] = reason

    def unavailable_note(self, kind: str | None, name: str) -> str:
        """``plugin 'x' failed to load (...)`` when ``name`` (of ``kind``; None: any) belongs to a
        plugin that failed or is disabled (it had registered the name, or the name carries
        the plugin's prefix); else the empty string."""
        kinds = [kind] if kind else list(self._entries)
        plugin = next((self.withdrawn[(k, name)] for k in kinds if (k, name) in self.withdrawn), None)
        if plugin is None and "." in name and name.split(".", 1)[0] in self.unavailable:
            plugin = name.split(".", 1)[0]
        if plugin is None:
            return ""
        return f"plugin {plugin!r}, which supplies it, {self.unavailable[plugin]}"

    def entry(self, kind: str, name: str) -> Entry:
        entries = self._entries.get(kind)
        if entries is None:
            raise RegistryError(f"unknown kind {kind!r}; kinds are {', '.join(KINDS)}")
        if name in entries:
            return entries[name]
        note = self.unavailable_note(kind, name)
        if note:
            raise RegistryError(f"unknown {kind} {name!r}: {note}")
        close = difflib.get_close_matches(name, list(entries), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        if not close and entries:
            hint = f"; known {kind}s: {', '.join(sorted(entries))}"
        raise RegistryError(f"unknown {kind} {name!r}{hint}")

    def get(self, kind: str, name: str) -> Any:
        return self.entry(kind, name).obj

    def resolve(self, kind: str, entry: Any, where: str) -> tuple[str, type, Any]:
        """A spec entry ``{type: <name>, <parameter>: <value>, ...}`` → ``(name, cls,
        validated Spec)``; raises SpecError with every problem, each prefixed by ``where``
        (``model.grouper``)."""
        if not isinstance(entry, dict) or "type" not in entry:
            raise SpecError([f"{where}: expected a mapping with a 'type' key naming a registered {kind}"])
        name = str(entry["type"])
        try:
            cls = self.get(kind, name)
        except RegistryError as exc:
            raise SpecError([f"{where}.type: {exc}"]) from None
        try:
            params = cls.Spec.model_validate({k: v for k, v in entry.items() if k != "type"})
        except ValidationError as exc:
            raise SpecError(validation_problems(exc, prefix=where)) from None
        return name, cls, params

    def names(self, kind: str) -> list[str]:
        return sorted(self._entries[kind])

    def __contains__(self, key: tuple[str, str]) -> bool:
        kind, name = key
        return name in self._entries.get(kind, {})

    def entries(self, kind: str | None = None, plugin: str | None = None) -> Iterator[Entry]:
        kinds = [kind] if kind else list(self._entries)
        for k in kinds:
            for name in sorted(self._entries[k]):
                e = self._entries[k][name]
                if plugin is None or e.plugin == plugin:
                    yield e

    def bound(self, plugin: str) -> BoundRegistry:
        return BoundRegistry(self, plugin)


class BoundRegistry:
    """What a hook receives: ``register`` records the calling plugin's name."""

    def __init__(self, registry: Registry, plugin: str) -> None:
        self._registry = registry
        self.plugin = plugin

    def register(self, *objs: Any, name: str | None = None) -> None:
        """``registry.register(EncoderCls, GrouperCls, ...)``: each class under the
        ``name`` it declares, the kind from its base class; ``name=`` for an alias."""
        self._registry.register(*objs, name=name, plugin=self.plugin)

    def add(self, kind: str, name: str, obj: Any) -> None:
        """Deprecated: declare ``name`` on the class and call :meth:`register`."""
        warnings.warn(
            f"registry.add({kind!r}, {name!r}, ...) is deprecated and will be removed in the next release: "
            f"declare name = {name!r} on the class and call registry.register(Cls) (plugin {self.plugin!r})",
            DeprecationWarning,
            stacklevel=2,
        )
        self._registry.add(kind, name, obj, plugin=self.plugin)


def validation_problems(exc: ValidationError, prefix: str = "") -> list[str]:
    """One ``path: message`` line per pydantic error, paths prefixed (``model.grouper``)."""
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        path = ".".join(p for p in (prefix, loc) if p)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            out.append(f"{path}: unknown key")
            continue
        if err["type"] == "missing":
            out.append(f"{path}: required")
            continue
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        out.append(f"{path}: {msg}, got {err.get('input')!r}")
    return out
