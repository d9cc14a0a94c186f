"""Plugin discovery and loading with pluggy.

Every plugin — built-in or third-party — is a module named by an entry point in the group
``ocf``; the entry point's name is the plugin's name.  Loading one plugin never stops the
others: an import error or a failing hook is recorded against that plugin (``ocf plugins``
shows it) and whatever it had registered is withdrawn.

Environment switches (modelled on pytest's):

- ``OCF_LOAD_PLUGINS=a,b``: load only these plugins (empty string: none).
- ``OCF_DISABLE_PLUGINS=a,b``: skip these plugins.
- ``OCF_PLUGIN_TIMEOUT=SECONDS``: fail a plugin whose import or hooks take longer (off by
  default; see :class:`~ocf.plugin_guard.Guard` for what it can and cannot stop).

A plugin that raises any exception, ``KeyboardInterrupt`` or ``SystemExit`` included (a
``sys.exit`` call), while it is imported or while its hooks run is marked failed with what
it raised; a real Ctrl-C still interrupts ocf, naming the plugin that was loading.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy

from ocf import hookspecs
from ocf.components import check_class
from ocf.errors import RegistryError, UserError
from ocf.plugin_guard import Guard, PluginInterrupt, check_hook_names, describe, timeout_from
from ocf.registry import COMPONENT_KINDS, Registry

ENTRY_POINT_GROUP = "ocf"
#: the distribution whose entry points are the built-in plugins
BUILT_IN_DISTRIBUTION = "ocf"
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
    def load_entry_points(self, env: dict[str, str] | None = None, entry_points: Iterable[Any] | None = None) -> None:
        """Load the plugins the entry points name: ocf's built-ins first, then third-party ones,
        each group in name order, so a third-party plugin can never knock out a built-in (a
        clash withdraws the plugin that loads later).  A third-party entry point that takes a
        built-in plugin's name is refused.  ``entry_points`` replaces discovery (tests)."""
        env = os.environ if env is None else env
        self.timeout = timeout_from(env)
        eps = md.entry_points(group=ENTRY_POINT_GROUP) if entry_points is None else entry_points
        found = self._discover(eps)
        only = _name_list(env.get("OCF_LOAD_PLUGINS"))
        disabled = set(_name_list(env.get("OCF_DISABLE_PLUGINS")) or [])
        for switch, names in (("OCF_LOAD_PLUGINS", only or []), ("OCF_DISABLE_PLUGINS", disabled)):
            unknown = sorted(set(names) - set(found))
            if unknown:
                raise UserError(
                    f"{switch} names unknown plugin(s) {', '.join(map(repr, unknown))}; "
                    f"installed plugins: {', '.join(sorted(found))}"
                )
        for name, (ep, info) in sorted(found.items(), key=lambda item: (item[1][1].source != "built-in", item[0])):
            self.info[name] = info
            if (only is not None and name not in only) or name in disabled:
                info.status = "disabled"
                switch = "OCF_DISABLE_PLUGINS" if name in disabled else "OCF_LOAD_PLUGINS"
                self.registry.unavailable[name] = f"is disabled ({switch})"
                continue
            try:
                with Guard(name, "import", self.timeout):
                    module = ep.load()
            except PluginInterrupt:
                raise
            except BaseException as exc:  # a broken plugin must not take the others (or ocf) down
                self._fail(info, exc, "while importing")
                continue
            self.add_module(module, name, info=info)

    def _discover(self, eps: Iterable[Any]) -> dict[str, tuple[Any, PluginInfo]]:
        """The entry points by plugin name; third-party ones that reuse a built-in's name are
        recorded as refused (``ocf plugins`` shows them) and left out."""
        infos = []
        for ep in eps:
            dist = ep.dist.name if ep.dist is not None else ""
            version = ep.dist.version if ep.dist is not None else ""
            source = "built-in" if dist == BUILT_IN_DISTRIBUTION else "third-party"
            infos.append((ep, PluginInfo(ep.name, dist, version, source, ep.value)))
        found: dict[str, tuple[Any, PluginInfo]] = {}
        for ep, info in sorted(infos, key=lambda item: item[1].source != "built-in"):
            if info.name not in found:
                found[info.name] = (ep, info)
            elif (found[info.name][1].distribution, found[info.name][1].module) != (info.distribution, info.module):
                taken = found[info.name][1]
                info.status = "failed"
                info.error = (
                    f"refused: plugin name {info.name!r} of distribution {info.distribution or '?'!r} is already "
                    f"taken by {taken.source} plugin {taken.name!r} ({taken.distribution or '?'}); rename the "
                    "entry point"
                )
                self.info[f"{info.name} ({info.distribution or info.module})"] = info
            # else: the same distribution visible twice on sys.path
        return found

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
            self._fail(info, exc, "while registering its hooks")
            return info
        try:
            check_hook_names(self.pm, module, name)
        except RegistryError as exc:
            self.pm.unregister(name=name)
            self._fail(info, exc, "while registering its hooks")
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
        where = "while checking its entries"
        try:
            for hook_name in HOOKS:
                caller = getattr(self.pm.hook, hook_name)
                for impl in caller.get_hookimpls():
                    if impl.plugin_name == name:
                        where = f"in hook {hook_name}"
                        with Guard(name, hook_name, getattr(self, "timeout", None)):
                            impl.function(**{a: bound for a in impl.argnames if a == "registry"})
            where = "while checking its entries"
            for entry in self.registry.entries(plugin=name):
                if entry.kind in COMPONENT_KINDS:  # register() checked these already; add() did not
                    check_class(entry.kind, entry.name, entry.obj)
                    if info.source == "third-party" and not entry.name.startswith(f"{name}."):
                        raise RegistryError(
                            f"{entry.kind} {entry.name!r}: a third-party plugin's components are named "
                            f"'<plugin>.<component>'; write {name}.{entry.name.rsplit('.', 1)[-1]!s}"
                        )
        except PluginInterrupt:
            raise
        except BaseException as exc:  # SystemExit and KeyboardInterrupt from a hook included
            self.pm.unregister(name=name)
            self._fail(info, exc, where)
            return
        info.status = "ok"
        info.entries = [(e.kind, e.name) for e in self.registry.entries(plugin=name)]

    def _fail(self, info: PluginInfo, exc: BaseException, where: str) -> None:
        """Mark ``info`` failed with what it raised and where, withdraw what it registered, and
        make an unknown-name error for any of its components name it."""
        info.status = "failed"
        info.error = describe(exc, where)
        info.traceback = "".join(traceback.format_exception(exc))
        self.registry.remove_plugin(info.name, reason=f"failed to load ({info.error})")

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


def loaded() -> Plugins | None:
    """The process-wide plugins if they have been loaded (error messages read them without
    loading them)."""
    return _DEFAULT
