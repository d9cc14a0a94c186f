"""The registry: which plugin supplies which component, dataset and metric.

Plugins add entries through the hooks in :mod:`ocf.hookspecs` by calling
``registry.add(kind, name, obj)``.  The registry records the plugin that added each name,
refuses a duplicate naming both plugins, and suggests close matches for an unknown name.
It is an ordinary object, so a test can build an isolated one.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Iterator

from ocf.errors import RegistryError

COMPONENT_KINDS = ("encoder", "grouper", "prior", "decoder", "objective")
KINDS = COMPONENT_KINDS + ("dataset", "metric", "result")  # result: ocf.results.Result (ocf repro)


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    obj: Any
    plugin: str


class Registry:
    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        self._current_plugin: str = "<direct>"

    def add(self, kind: str, name: str, obj: Any, *, plugin: str | None = None) -> None:
        """Register ``obj`` under ``kind``/``name``; a duplicate name is an error."""
        if kind not in self._entries:
            raise RegistryError(f"unknown kind {kind!r}; kinds are {', '.join(KINDS)}")
        if not name or not isinstance(name, str):
            raise RegistryError(f"a {kind} needs a non-empty string name, got {name!r}")
        plugin = plugin or self._current_plugin
        existing = self._entries[kind].get(name)
        if existing is not None:
            raise RegistryError(
                f"{kind} {name!r} is registered twice: by plugin {existing.plugin!r} and by plugin {plugin!r}"
            )
        self._entries[kind][name] = Entry(kind, name, obj, plugin)

    def remove_plugin(self, plugin: str) -> None:
        """Forget every entry a plugin added (used when a plugin fails half-way)."""
        for entries in self._entries.values():
            for name in [n for n, e in entries.items() if e.plugin == plugin]:
                del entries[name]

    def entry(self, kind: str, name: str) -> Entry:
        entries = self._entries.get(kind)
        if entries is None:
            raise RegistryError(f"unknown kind {kind!r}; kinds are {', '.join(KINDS)}")
        if name in entries:
            return entries[name]
        close = difflib.get_close_matches(name, list(entries), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        if not close and entries:
            hint = f"; known {kind}s: {', '.join(sorted(entries))}"
        raise RegistryError(f"unknown {kind} {name!r}{hint}")

    def get(self, kind: str, name: str) -> Any:
        return self.entry(kind, name).obj

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

    def bound(self, plugin: str) -> "BoundRegistry":
        return BoundRegistry(self, plugin)


class BoundRegistry:
    """What a hook receives: ``add`` records the calling plugin's name."""

    def __init__(self, registry: Registry, plugin: str) -> None:
        self._registry = registry
        self.plugin = plugin

    def add(self, kind: str, name: str, obj: Any) -> None:
        self._registry.add(kind, name, obj, plugin=self.plugin)
