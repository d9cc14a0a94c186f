"""``ocf repro``: list the registered results, reproduce one (every seed, then a result
card), or regenerate the results section of docs/benchmarks.md from the cards.

    ocf repro --list [--json]
    ocf repro NAME [--seeds N] [--steps S] [--jobs J] [--threads T] [--out DIR] [--runs DIR]
    ocf repro --report [--out DIR] [--doc FILE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from ocf import plugins as ocf_plugins
from ocf.cli.table import format_table
from ocf.errors import UserError
from ocf.results import lookup, registered
from ocf.run import cards
from ocf.run import repro as job


def add_parser(sub, common) -> None:
    p = sub.add_parser(
        "repro",
        parents=[common],
        help="reproduce a registered result on several seeds and write its card",
        description="Train a registered result's spec on each of its seeds (several at once with --jobs), score "
        "the trained and the untrained model of each, and write a result card (JSON and markdown): "
        "mean ± standard error, per-seed values against the floor, the control, speed, machine, "
        "versions, git commit and metric conventions. Finished seeds are kept and not rerun; a "
        "half-finished one resumes from its last checkpoint.",
    )
    p.add_argument("name", nargs="?", help="the result to reproduce (see --list)")
    p.add_argument("--list", action="store_true", help="list the registered results")
    p.add_argument("--json", action="store_true", help="with --list: print the entries as JSON")
    p.add_argument("--seeds", type=int, default=None, metavar="N", help="run the first N seeds (default the entry's)")
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        metavar="S",
        help="train every run S steps instead of its budget (cards and runs get a -Ssteps suffix)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="J",
        help="seeds trained at once, each in its own process (default 1; 0: one after another in this process)",
    )
    p.add_argument(
        "--threads", type=int, default=None, metavar="T", help="torch threads per seed (default: CPU cores / jobs)"
    )
    p.add_argument("--out", default=str(cards.CARDS), metavar="DIR", help=f"where cards go (default {cards.CARDS})")
    p.add_argument("--runs", default="runs/repro", metavar="DIR", help="where run dirs go (default runs/repro)")
    p.add_argument("--report", action="store_true", help="write the results section of --doc from the cards in --out")
    p.add_argument("--doc", default="docs/benchmarks.md", help="the page --report updates (default docs/benchmarks.md)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--task", default=None, help=argparse.SUPPRESS)  # a worker: one seed of one run chain
    p.set_defaults(func=cmd_repro)


def cmd_repro(args) -> int:
    plugins = ocf_plugins.default()
    if args.task:
        job.run_task(job.read_task(args.task), plugins.registry, plugin_info=list(plugins.info.values()))
        return 0
    if args.list:
        return list_results(plugins.registry, as_json=args.json, card_dir=Path(args.out))
    if args.report:
        section = cards.results_section(args.out, link_from=Path(args.doc).parent)
        cards.update_doc(Path(args.doc), section)
        print(f"wrote the results section of {args.doc} from {args.out}")
        return 0
    if not args.name:
        raise UserError("usage: ocf repro NAME (or --list, or --report)")
    card, paths = reproduce(
        args.name,
        seeds=args.seeds,
        steps=args.steps,
        jobs=args.jobs,
        threads=args.threads,
        out=args.out,
        runs=args.runs,
        progress=not args.no_progress,
    )
    print(cards.verdict_line(card).replace("**", ""))
    for p in paths:
        print(p)
    return 0


def reproduce(
    name: str,
    *,
    seeds: int | None = None,
    steps: int | None = None,
    jobs: int = 1,
    threads: int | None = None,
    out: str = str(cards.CARDS),
    runs: str = "runs/repro",
    progress: bool = True,
) -> tuple[dict, tuple[Path, Path]]:
    """Run every seed of the registered result ``name`` and write its card; the card and its files."""
    plugins = ocf_plugins.default()
    registry = plugins.registry
    result = lookup(registry, name)
    plugin = registry.entry("result", name).plugin
    records = job.reproduce(
        result, registry, seeds=seeds, steps=steps, jobs=jobs, threads=threads, runs=runs, progress=progress
    )
    words = ["ocf", "repro", name, "--seeds", str(len(records["result"]))]
    words += ["--steps", str(steps)] if steps else []
    words += ["--jobs", str(jobs)] if jobs != 1 else []
    stem = name if steps is None else f"{name}-{steps}steps"
    card = cards.build(
        result,
        plugin,
        records,
        command=" ".join(words),
        jobs=jobs,
        stem=stem,
        registry=registry,
        plugin_info=list(plugins.info.values()),
    )
    return card, cards.write(card, out)


def list_results(registry, *, as_json: bool = False, card_dir: Path | None = None) -> int:
    """``ocf repro --list``: name, plugin, spec, steps, seeds, target and the last card's verdict."""
    entries = registered(registry)
    if as_json:
        print(json.dumps([{"plugin": plugin, **r.model_dump(mode="json")} for r, plugin in entries.values()], indent=2))
        return 0
    rows = [["result", "plugin", "trains", "steps", "seeds", "target", "card"]]
    for name, (r, plugin) in entries.items():
        chain = r.chain()
        trains = " then ".join(run.spec + _count(run.overrides) for run in chain)
        steps = "+".join(str(_steps(run)) for run in chain)
        rows.append([name, plugin, trains, steps, str(len(r.seeds)), r.target_text(), _card_state(card_dir, name)])
    print(format_table(rows))
    return 0


def _count(overrides: list[str]) -> str:
    return "" if not overrides else f" ({len(overrides)} override{'s' if len(overrides) > 1 else ''})"


def _steps(run) -> int | str:
    """The run's step budget: its own, else its spec's ``train.steps`` as written in the file."""
    if run.steps:
        return run.steps
    try:
        return yaml.safe_load(run.spec_path().read_text())["train"]["steps"]
    except (UserError, KeyError, TypeError, yaml.YAMLError):
        return "?"


def _card_state(card_dir: Path | None, name: str) -> str:
    path = card_dir / f"{name}.json" if card_dir else None
    if path is None or not path.exists():
        return "-"
    passed = json.loads(path.read_text())["verdict"]["passed"]
    return {True: "passed", False: "not reached", None: "no target"}[passed]
