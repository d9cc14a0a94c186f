"""The ``ocf`` command line.

Exit codes: 0 success, 2 a user error (bad spec, missing file: a message, no traceback),
1 a failure (a bug, or training that cannot go on).  ``--debug`` always shows tracebacks.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from typing import Callable

from ocf.errors import SpecError, TrainingError, UserError

def _plugins():
    from ocf import plugins

    return plugins.default()


def _registry():
    return _plugins().registry


def load_spec(path: str, overrides: list[str]):
    """Load a spec with the default plugins; mention failed plugins when a name is unknown."""
    from ocf import spec as spec_mod

    plugins = _plugins()
    try:
        return spec_mod.load(path, plugins.registry, overrides)
    except SpecError as exc:
        failed = plugins.failed()
        if failed and any("unknown" in p for p in exc.problems):
            notes = [f"note: plugin {p.name!r} failed to load ({p.error}); its components are unavailable" for p in failed]
            raise SpecError(exc.problems + notes) from None
        raise


# -- build -------------------------------------------------------------------------------
def cmd_build(args) -> int:
    from ocf import assembly

    resolved = load_spec(args.spec, args.overrides)
    model = assembly.build(resolved, dry_run=False)
    state = assembly.dry_forward(model)
    rows = assembly.report(model, state, _registry())
    table = [["stage", "component", "plugin", "params", "outputs"]]
    for r in rows:
        outs = ", ".join(f"{k} {list(v)}" for k, v in r.outputs.items()) or "-"
        table.append([r.stage, r.name, r.plugin, f"{r.parameters:,}", outs])
    print(f"spec {resolved.spec.name}: data [b t c h w] = [2, {resolved.spec.data.frames}, {resolved.spec.data.channels}, "
          f"{resolved.spec.data.resolution[0]}, {resolved.spec.data.resolution[1]}]")
    print(format_table(table))
    total = sum(p.numel() for p in model.parameters())
    print(f"total parameters: {total:,}")
    return 0


def format_table(rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, r in enumerate(rows):
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# -- plugins -----------------------------------------------------------------------------
def cmd_plugins(args) -> int:
    plugins = _plugins()
    if args.action == "show":
        if not args.name:
            raise UserError("usage: ocf plugins show NAME (a plugin or a component name)")
        return _show(plugins, args.name, args.json)
    infos = [plugins.info[n] for n in sorted(plugins.info)]
    if args.json:
        print(json.dumps([i.as_dict() for i in infos], indent=2))
        return 0
    table = [["plugin", "distribution", "version", "source", "status", "provides"]]
    for i in infos:
        provides = ", ".join(n for _, n in i.entries) if i.status == "ok" else i.error
        table.append([i.name, i.distribution, i.version, i.source, i.status, provides])
    print(format_table(table))
    return 0


def _show(plugins, name: str, as_json: bool) -> int:
    from ocf.registry import COMPONENT_KINDS

    if name in plugins.info:
        info = plugins.info[name]
        if as_json:
            print(json.dumps(info.as_dict(), indent=2))
            return 0
        print(f"plugin {info.name} ({info.source}; {info.distribution} {info.version}; module {info.module}): {info.status}")
        if info.error:
            print(f"error: {info.error}")
        rows = [["kind", "name", "description"]]
        for kind, n in info.entries:
            obj = plugins.registry.get(kind, n)
            rows.append([kind, n, _describe(obj)])
        print(format_table(rows))
        return 0
    for kind in COMPONENT_KINDS + ("dataset", "metric"):
        if (kind, name) in plugins.registry:
            entry = plugins.registry.entry(kind, name)
            print(component_doc(entry, as_json))
            return 0
    import difflib

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
            params.append({
                "name": fname,
                "type": _type_name(field.annotation),
                "default": default,
                "constraints": constraints,
                "description": field.description or "",
            })
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


_SYMBOLS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<=", "min_length": "len >=", "max_length": "len <=", "multiple_of": "multiple of"}


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


# -- training, evaluation, pictures --------------------------------------------------------
def cmd_train(args) -> int:
    from ocf import train

    if args.multirun:
        return train.multirun(args.spec, args.overrides, out=args.out)
    resolved = load_spec(args.spec, args.overrides)
    train.run(resolved, out=args.out, resume=args.resume, steps=args.steps)
    return 0


def cmd_eval(args) -> int:
    from ocf import evaluate

    evaluate.main(args.run_dir, split=args.split, as_json=args.json, checkpoint=args.checkpoint, max_samples=args.max_samples)
    return 0


def cmd_viz(args) -> int:
    from ocf import evaluate

    evaluate.visualise(args.run_dir, out=args.out, split=args.split, n=args.n)
    return 0


def cmd_sample(args) -> int:
    from ocf import generate

    generate.main(args.run_dir, n=args.n, temperature=args.temperature, condition=args.condition, frames=args.frames,
                  seed=args.seed, out=args.out, checkpoint=args.checkpoint, split=args.split)
    return 0


def cmd_bench(args) -> int:
    from ocf import bench

    if args.steps < 1 or args.warmup < 0 or args.profile < 0:
        raise UserError("--steps must be at least 1, --warmup and --profile at least 0")
    bench.main(args.spec, args.overrides, steps=args.steps, warmup=args.warmup, as_json=args.json, out=args.out,
               profile=args.profile)
    return 0


# -- parser ------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks for every error")
    parser = argparse.ArgumentParser(prog="ocf", description="object-centric learning framework", parents=[common])
    from ocf import __version__

    parser.add_argument("--version", action="version", version=f"ocf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("build", parents=[common], help="validate and assemble a spec; print its components and shapes")
    p.add_argument("spec")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. model.grouper.num_slots=7")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("plugins", parents=[common], help="list plugins, or show one plugin or component")
    p.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    p.add_argument("name", nargs="?")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("train", parents=[common], help="train a model from a spec")
    p.add_argument("spec")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--out", help="run directory (default runs/<spec name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--multirun", action="store_true", help="sweep comma-separated overrides through Hydra")
    p.add_argument("--steps", type=int, help="stop after this many steps (overrides train.steps)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", parents=[common], help="evaluate a trained run")
    p.add_argument("run_dir")
    p.add_argument("--split", default=None)
    p.add_argument("--json", action="store_true")
    p.add_argument("--checkpoint", default=None, help="checkpoint file (default: the run's last)")
    p.add_argument("--max-samples", type=int, default=None)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("viz", parents=[common], help="pictures of what a run learned")
    p.add_argument("run_dir")
    p.add_argument("--out", default=None)
    p.add_argument("--split", default=None)
    p.add_argument("--n", type=int, default=8)
    p.set_defaults(func=cmd_viz)

    p = sub.add_parser("bench", parents=[common], help="training and evaluation speed, FLOPs and memory of a spec",
                       description="Train a spec for a few steps and report steps/s and samples/s (median after warm-up), "
                                   "FLOPs per step and their share of this machine's measured matmul peak, data-loading "
                                   "throughput, evaluation speed and peak memory.")
    p.add_argument("spec")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides")
    p.add_argument("--steps", type=int, default=20, help="measured steps (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="unmeasured steps first (default 3)")
    p.add_argument("--json", action="store_true", help="print the record as JSON")
    p.add_argument("--out", default=None, help="also write the JSON record to this file")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="also profile three training steps and list the N most expensive operators by self CPU time")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("sample", parents=[common], help="generate scenes from a trained model's prior",
                       description="Sample latents from the run's prior and render them; pictures go to RUN_DIR/samples. "
                                   "With --condition N the model infers the first N frames of real test videos and a "
                                   "sequential prior (e.g. SQAIR's) rolls forward.")
    p.add_argument("run_dir")
    p.add_argument("--n", type=int, default=16, help="how many scenes (default 16)")
    p.add_argument("--temperature", type=float, default=1.0, help="scale of the prior's noise (default 1)")
    p.add_argument("--condition", type=int, default=None, metavar="N", help="condition on the first N frames of real videos")
    p.add_argument("--frames", type=int, default=None, help="frames to generate (default: the spec's data.frames)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output folder (default RUN_DIR/samples)")
    p.add_argument("--checkpoint", default=None, help="checkpoint name or path (default last)")
    p.add_argument("--split", default=None, help="split the conditioning videos come from (default eval.split)")
    p.set_defaults(func=cmd_sample)

    try:
        from ocf.data.cli import add_parser as add_data_parser
    except ImportError:  # pragma: no cover - the data layer is part of the core
        add_data_parser = None
    if add_data_parser is not None:
        add_data_parser(sub, _registry)

    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "overrides"):  # overrides may come after options: ocf train S --out R a.b=1
        args.overrides = list(args.overrides) + [e for e in extra if "=" in e and not e.startswith("-")]
        extra = [e for e in extra if not ("=" in e and not e.startswith("-"))]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return run_guarded(lambda: args.func(args), debug=getattr(args, "debug", False))


def run_guarded(job: Callable[[], int | None], debug: bool = False) -> int:
    """Run ``job`` with ocf's error policy: user errors exit 2 without a traceback,
    training failures exit 1 with their message, bugs raise (traceback, exit 1)."""
    try:
        return int(job() or 0)
    except UserError as exc:
        if debug:
            traceback.print_exc()
        print(f"ocf: error: {exc}", file=sys.stderr)
        return 2
    except TrainingError as exc:
        if debug:
            traceback.print_exc()
        print(f"ocf: training stopped: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ocf: interrupted", file=sys.stderr)
        return 130
