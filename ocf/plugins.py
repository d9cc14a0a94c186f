"""Plugin discovery and loading with pluggy.

Every plugin — built-in or third-party — is a module named by an entry point in the group
``ocf``; the entry point's name is the plugin's name.  Loading one plugin never stops the
others: an import error or a failing hook is recorded against that plugin (``ocf plugins``
shows it) and whatever it had registered is withdrawn.

Environment switches (modelled on pytest's):

- ``OCF_LOAD_PLUGINS=a,b``: load only these plugins (empty string: none).
- ``OCF_DISABLE_PLUGINS=a,b``: skip these plugins.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import ModuleType

import pluggy

from ocf import hookspecs
from ocf.components import check_class
from ocf.registry import COMPONENT_KINDS, Registry

ENTRY_POINT_GROUP = "ocf"
HOOKS = (
    "ocf_register_components",
    "ocf_register_datasets",
    "ocf_register_metrics",
    "ocf_register_converters",
    "ocf_register_results",
)


@dataclass
class PluginInfo:
    name: str
    distribution: str = ""
    version: str = ""
    source: str = ""  # "built-in", "third-party" or "local"
    module: str = ""
    status: str = "ok"  # "ok", "failed" or "disabled"
    error: str = ""
    traceback: str = ""
    entries: list[tuple[str, str]] = field(default_factory=list)  # (kind, name)

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "source": self.source,
            "module": self.module,
            "status": self.status,
            "error": self.error,
            "components": [{"kind": k, "name": n} for k, n in self.entries],
        }


class Plugins:
    """A plugin manager and the registry it fills; build as many as you like (tests)."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("ocf")
        self.pm.add_hookspecs(hookspecs)
        self.registry = Registry()
        self.info: dict[str, PluginInfo] = {}

    # -- discovery -------------------------------------------------------------------
    def load_entry_points(self, env: dict[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        only = _name_list(env.get("OCF_LOAD_PLUGINS"))
        disabled = set(_name_list(env.get("OCF_DISABLE_PLUGINS")) or [])
        seen: set[str] = set()
        for ep in sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if ep.name in seen:  # the same distribution visible twice on sys.path
                continue
            seen.add(ep.name)
            dist = ep.dist.name if ep.dist is not None else ""
            version = ep.dist.version if ep.dist is not None else ""
            info = PluginInfo(
                name=ep.name,
                distribution=dist,
                version=version,
                source="built-in" if dist == "ocf" else "third-party",
                module=ep.value,
            )
            self.info[ep.name] = info
            if (only is not None and ep.name not in only) or ep.name in disabled:
                info.status = "disabled"
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not take the others down
                self._fail(info, exc)
                continue
            self.add_module(module, ep.name, info=info)

    def add_module(self, module: ModuleType | object, name: str, *, info: PluginInfo | None = None) -> PluginInfo:
        """Register a plugin object (module or class instance with hook implementations)
        and run its hooks.  Used for entry points and, in tests, for local plugins."""
        info = info or self.info.setdefault(
            name, PluginInfo(name=name, source="local", module=getattr(module, "__name__", ""))
        )
        self.info[name] = info
        try:
            self.pm.register(module, name=name)
        except Exception as exc:
            self._fail(info, exc)
            return info
        self._run_hooks(name, info)
        return info

    def unregister(self, name: str) -> None:
        self.registry.remove_plugin(name)
        if self.pm.has_plugin(name):
            self.pm.unregister(name=name)
        self.info.pop(name, None)

    # -- hooks -----------------------------------------------------------------------
    def _run_hooks(self, name: str, info: PluginInfo) -> None:
        bound = self.registry.bound(name)
        try:
            for hook_name in HOOKS:
                caller = getattr(self.pm.hook, hook_name)
                for impl in caller.get_hookimpls():
                    if impl.plugin_name == name:
                        impl.function(**{a: bound for a in impl.argnames if a == "registry"})
            for entry in self.registry.entries(plugin=name):
                if entry.kind in COMPONENT_KINDS:  # register() checked these already; add() did not
                    check_class(entry.kind, entry.name, entry.obj)
        except Exception as exc:
            self.registry.remove_plugin(name)
            self.pm.unregister(name=name)
            self._fail(info, exc)
            return
        info.status = "ok"
        info.entries = [(e.kind, e.name) for e in self.registry.entries(plugin=name)]

    @staticmethod
    def _fail(info: PluginInfo, exc: BaseException) -> None:
        info.status = "failed"
        info.error = f"{type(exc).__name__}: {exc}"
        info.traceback = traceback.format_exc()

    def failed(self) -> list[PluginInfo]:
        return [i for i in self.info.values() if i.status == "failed"]


def _name_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


_DEFAULT: Plugins | None = None


def load(env: dict[str, str] | None = None, extra: Iterable[tuple[str, object]] = ()) -> Plugins:
    """A fresh :class:`Plugins` with every entry-point plugin (and ``extra`` local ones)."""
    plugins = Plugins()
    plugins.load_entry_points(env)
    for name, module in extra:
        plugins.add_module(module, name)
    return plugins


def default() -> Plugins:
    """The process-wide plugins, loaded once on first use."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = load()
    return _DEFAULT
