"""Notes that name a failed or disabled plugin wherever one of its components is asked for,
and what a run folder records about the plugins that built it.

A run records, in ``RUN/versions.json``, every plugin's distribution, version and status
(``"plugin:NAME": "dist 1.2 (ok)"``) and which plugin supplied each component, dataset and
metric its spec names (``"component:NAME": "PLUGIN"``, :func:`used_components`).  When a
name is unknown later (``ocf eval`` on an old run), :func:`error_notes` says which plugin
built it, at which version, and what became of that plugin.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_UNKNOWN = re.compile(r"unknown \w+ '([^']+)'")


def used_components(registry: Any, data: Any) -> dict[str, str]:
    """``{"component:NAME": PLUGIN}`` for every registered name (any kind) the spec ``data``
    mentions, nested components and metric names included."""
    names: dict[str, str] = {e.name: e.plugin for e in registry.entries()} if hasattr(registry, "entries") else {}
    found: dict[str, str] = {}
    for value in _strings(data):
        if value in names:
            found[f"component:{value}"] = names[value]
    return dict(sorted(found.items()))


def _strings(data: Any) -> Iterable[str]:
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for v in data.values():
            yield from _strings(v)
    elif isinstance(data, (list, tuple)):
        for v in data:
            yield from _strings(v)


def run_record(run_dir: str | Path | None) -> dict[str, str]:
    """The run's ``versions.json`` (empty when absent or unreadable)."""
    if run_dir is None:
        return {}
    try:
        record = json.loads((Path(run_dir) / "versions.json").read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def error_notes(message: str, plugins: Any = None, run_dir: str | Path | None = None) -> list[str]:
    """Notes for an error about unknown names: what the run (``run_dir``) records about the
    plugins that supplied them, and which plugins failed to load (those the message does
    not already name)."""
    unknown = _UNKNOWN.findall(message)
    if not unknown:
        return []
    info = getattr(plugins, "info", {}) or {}
    notes = _run_notes(unknown, run_record(run_dir), info)
    for p in info.values():
        said = f"plugin {p.name!r}" in message or any(f"plugin {p.name!r}" in n for n in notes)
        if p.status == "failed" and not said and " (" not in p.name:
            notes.append(f"note: plugin {p.name!r} failed to load ({p.error}); its components are unavailable")
    return notes


def _run_notes(unknown: list[str], record: dict[str, str], info: dict[str, Any]) -> list[str]:
    notes = []
    for name in dict.fromkeys(unknown):
        plugin = record.get(f"component:{name}") or (name.split(".", 1)[0] if "." in name else None)
        built = record.get(f"plugin:{plugin}") if plugin else None
        if not built:
            continue
        version = re.sub(r"\s*\((ok|failed|disabled)\)$", "", str(built)).strip() or "unknown version"
        now = info.get(plugin)
        if now is None:
            state = "which is not installed now"
        elif now.status == "failed":
            state = f"which failed to load: {now.error}"
        elif now.status == "disabled":
            state = "which is disabled now (OCF_LOAD_PLUGINS / OCF_DISABLE_PLUGINS)"
        else:
            state = f"now {now.distribution} {now.version}, which no longer registers {name!r}"
        notes.append(f"note: this run was built with plugin {plugin!r} ({version}) for {name!r}, {state}")
    return notes


def debug_tracebacks(text: str, plugins: Any) -> list[str]:
    """The original tracebacks of the failed plugins ``text`` names (every failed plugin's
    when it names none but mentions an unknown name), for ``--debug``."""
    failed = [p for p in (getattr(plugins, "info", {}) or {}).values() if p.status == "failed" and p.traceback]
    named = [p for p in failed if f"plugin {p.name!r}" in text]
    chosen = named or (failed if _UNKNOWN.search(text) else [])
    return [f"plugin {p.name!r} failed to load; its traceback:\n{p.traceback.rstrip()}" for p in chosen]
