"""A fidelity run: train a spec for a fixed step budget under several seeds, evaluate each,
and record the numbers (with the command that produced them) in benchmarks/results/.

    python -m benchmarks.fidelity configs/slot_attention/shapes_32.yaml --steps 1500 --seeds 0 1 \
        --name slot_attention-shapes_32 [key=value ...]

Then `python -m benchmarks.report` rewrites docs/benchmarks.md from every result file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOWER_IS_BETTER = {"mse", "nll", "kid", "fid"}


def machine() -> dict:
    import torch

    cpu = ""
    try:
        cpu = next(row.split(":", 1)[1].strip() for row in open("/proc/cpuinfo") if row.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }


def seed_entry(run_dir: Path) -> dict:
    """One seed's result: test metrics of the last and the initial checkpoint, median
    steps/s of the logged windows, and (with ``train.eval_every``) the validation
    trajectory and its best values."""
    from ocf import evaluate

    lines = [json.loads(row) for row in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rates = [row["steps_per_s"] for row in lines if "steps_per_s" in row]
    entry = {
        "metrics": evaluate.main(str(run_dir), as_json=False),
        "untrained": evaluate.main(str(run_dir), checkpoint="init"),
        "steps_per_s": statistics.median(rates),
    }
    evals = [row for row in lines if any(k.startswith("eval/") for k in row)]
    if evals:
        entry["val_trajectory"] = [
            {"step": row["step"], **{k[5:]: v for k, v in row.items() if k.startswith("eval/")}} for row in evals
        ]
        keys = [k for k in entry["val_trajectory"][0] if k != "step"]
        entry["val_best"] = {
            k: (min if k in LOWER_IS_BETTER else max)(e[k] for e in entry["val_trajectory"]) for k in keys
        }
    return entry


def summarise(record: dict) -> dict:
    """Fill ``mean`` (metrics over seeds) and ``steps_per_s`` (median over seeds)."""
    ms = [s["metrics"] for s in record["seeds"].values()]
    record["mean"] = {k: statistics.mean(m[k] for m in ms) for k in ms[0]}
    record["steps_per_s"] = statistics.median(s["steps_per_s"] for s in record["seeds"].values())
    return record


def add_run_parser(sub, **defaults):
    """The ``run`` sub-command the per-seed benchmark scripts share: SPEC [overrides] --steps --seed
    --name [--runs]."""
    r = sub.add_parser("run")
    r.add_argument("spec")
    r.add_argument("overrides", nargs="*")
    r.add_argument("--steps", type=int, required=True)
    r.add_argument("--seed", type=int, required=True)
    r.add_argument("--name", required=True)
    r.add_argument("--runs", default="runs/bench")
    r.set_defaults(**defaults)
    return r


def command_line(argv: list[str] | None = None) -> str:
    """This process's command as ``python -m benchmarks.NAME ARGS`` (for result records)."""
    argv = sys.argv if argv is None else argv
    return " ".join(["python", "-m", f"benchmarks.{Path(argv[0]).stem}", *(shlex.quote(a) for a in argv[1:])])


def merge_records(name: str, records: list[dict]) -> dict:
    """Seeds run as separate processes (each a fidelity record) → one record, as if
    ``--seeds`` had run them in turn; commands are joined with ``&&``."""
    merged = dict(records[0], name=name, seeds={}, command=" && ".join(r["command"] for r in records))
    for r in records:
        merged["seeds"].update(r["seeds"])
    return summarise(merged)


def main(argv=None) -> int:
    from ocf import plugins, train
    from ocf.spec import load

    p = argparse.ArgumentParser()
    p.add_argument("spec")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--name", required=True)
    p.add_argument("--runs", default="runs/bench")
    p.add_argument(
        "--reuse",
        action="store_true",
        help="evaluate finished runs (summary.json at --steps) instead of training them again",
    )
    args = p.parse_args(argv)
    registry = plugins.default().registry
    record = {
        "name": args.name,
        "spec": args.spec,
        "steps": args.steps,
        "overrides": args.overrides,
        "command": command_line(),
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "seeds": {},
    }
    for seed in args.seeds:
        resolved = load(args.spec, registry, list(args.overrides) + [f"train.seed={seed}", f"train.steps={args.steps}"])
        out = Path(args.runs) / f"{args.name}-seed{seed}"
        summary = out / "summary.json"
        wall = None
        if args.reuse and summary.exists() and json.loads(summary.read_text())["step"] == args.steps:
            print(f"reusing the finished run {out}")
        else:
            if out.exists():
                import shutil

                shutil.rmtree(out)
            t0 = time.time()
            train.run(resolved, out=str(out))
            wall = time.time() - t0
        entry = seed_entry(out)
        entry["train_seconds"] = wall
        record["seeds"][str(seed)] = entry
    summarise(record)
    path = ROOT / "benchmarks" / "results" / f"{args.name}.json"
    path.write_text(json.dumps(record, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
