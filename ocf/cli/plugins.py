"""``ocf plugins``: list the plugins, or show one plugin or component with its
parameters and their constraints (:func:`component_doc`)."""

from __future__ import annotations

import difflib
import json

from ocf import plugins as ocf_plugins
from ocf.cli.table import format_table
from ocf.errors import UserError
from ocf.registry import COMPONENT_KINDS


def cmd_plugins(args) -> int:
    """``ocf plugins [list]``: every plugin and what it provides; ``ocf plugins show NAME``:
    one plugin or one component with its parameters."""
    plugins = ocf_plugins.default()
    if args.action == "show":
        if not args.name:
            raise UserError("usage: ocf plugins show NAME (a plugin or a component name)")
        return _show(plugins, args.name, args.json, debug=getattr(args, "debug", False))
    infos = [plugins.info[n] for n in sorted(plugins.info)]
    if args.json:
        print(json.dumps([i.as_dict() for i in infos], indent=2))
        return 0
    table = [["plugin", "distribution", "version", "source", "status", "provides"]]
    for i in infos:
        provides = _by_kind(i.entries) if i.status == "ok" else i.error
        table.append([i.name, i.distribution, i.version, i.source, i.status, provides])
    print(format_table(table))
    return 0


def _by_kind(entries) -> str:
    """``encoder: cnn; objective: kl, mse; metric: fg_ari, mse``: names grouped under their
    kind, so one name registered as two kinds (the objective and the metric ``mse``) can be
    told apart."""
    kinds: dict[str, list[str]] = {}
    for kind, name in entries:
        kinds.setdefault(kind, []).append(name)
    return "; ".join(f"{kind}: {', '.join(names)}" for kind, names in kinds.items())


def _show(plugins, name: str, as_json: bool, debug: bool = False) -> int:
    if name in plugins.info:
        info = plugins.info[name]
        if as_json:
            print(json.dumps(info.as_dict(), indent=2))
            return 0
        where = f"{info.source}; {info.distribution} {info.version}; module {info.module}"
        print(f"plugin {info.name} ({where}): {info.status}")
        if info.error:
            print(f"error: {info.error}")
            if info.traceback:
                print(info.traceback.rstrip() if debug else "(--debug shows its traceback)")
        rows = [["kind", "name", "description"]]
        for kind, n in info.entries:
            obj = plugins.registry.get(kind, n)
            rows.append([kind, n, _describe(obj)])
        print(format_table(rows))
        return 0
    kinds = COMPONENT_KINDS + ("dataset", "metric")
    entries = [plugins.registry.entry(kind, name) for kind in kinds if (kind, name) in plugins.registry]
    if entries:  # one name may be registered as several kinds (the objective and the metric mse)
        if as_json:
            docs = [json.loads(component_doc(e, True)) for e in entries]
            print(json.dumps(docs[0] if len(docs) == 1 else docs, indent=2))
        else:
            print("\n\n".join(component_doc(e) for e in entries))
        return 0
    note = plugins.registry.unavailable_note(None, name)
    if note:
        raise UserError(f"no component named {name!r} is available: {note}")
    every = list(plugins.info) + [e.name for e in plugins.registry.entries()]
    close = difflib.get_close_matches(name, every, n=3)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    raise UserError(f"no plugin or component named {name!r}{hint}")


def _describe(obj) -> str:
    doc = (getattr(obj, "__doc__", "") or "").strip()
    return " ".join(doc.split("\n\n")[0].split())  # the first paragraph, on one line


def component_doc(entry, as_json: bool = False) -> str:
    obj = entry.obj
    spec_cls = getattr(obj, "Spec", None) or getattr(obj, "Options", None)
    params = []
    if spec_cls is not None:
        for fname, field in spec_cls.model_fields.items():
            constraints = ", ".join(_constraint(m) for m in field.metadata)
            default = "required" if field.is_required() else repr(field.get_default(call_default_factory=True))
            params.append(
                {
                    "name": fname,
                    "type": _type_name(field.annotation),
                    "default": default,
                    "constraints": constraints,
                    "description": field.description or "",
                }
            )
    data = {
        "kind": entry.kind,
        "name": entry.name,
        "plugin": entry.plugin,
        "description": _describe(obj),
        "needs": list(getattr(obj, "needs", ())),
        "provides": list(getattr(obj, "provides", ())),
        "parameters": params,
    }
    if as_json:
        return json.dumps(data, indent=2)
    lines = [f"{entry.kind} {entry.name} (plugin {entry.plugin})", f"  {data['description']}"]
    if data["needs"] or data["provides"]:
        lines.append(f"  needs:    {', '.join(data['needs']) or '-'}")
        lines.append(f"  provides: {', '.join(data['provides']) or '-'}")
    if params:
        rows = [["parameter", "type", "default", "constraints", "description"]]
        rows += [[p["name"], p["type"], p["default"], p["constraints"], p["description"]] for p in params]
        lines.append(format_table(rows))
    return "\n".join(lines)


_SYMBOLS = {
    "gt": ">",
    "ge": ">=",
    "lt": "<",
    "le": "<=",
    "min_length": "len >=",
    "max_length": "len <=",
    "multiple_of": "multiple of",
}


def _constraint(meta) -> str:
    """``Gt(gt=0)`` → ``> 0``; anything unknown as its repr."""
    for attr, symbol in _SYMBOLS.items():
        value = getattr(meta, attr, None)
        if value is not None:
            return f"{symbol} {value}"
    return str(meta)


def _type_name(annotation) -> str:
    name = getattr(annotation, "__name__", None)
    return name if name and not str(annotation).startswith("typing") else str(annotation).replace("typing.", "")
