"""AIR / SQAIR fidelity runs, one process per seed so the seeds train in parallel.

``run``: benchmarks/fidelity.py for one seed, with overrides that may name the seed
(``{seed}``, e.g. ``train.init_from=runs/bench/air-moving_digits_32-part{seed}-seed{seed}``),
recorded as benchmarks/results/NAME-part<seed>.json.  ``merge``: the per-seed files →
benchmarks/results/NAME.json (means over seeds, each seed's command and run dir).

    python -m benchmarks.sqair_fidelity run configs/sqair/air_digits_32.yaml --steps 1200 --seed 0 \
        --name air-moving_digits_32
    python -m benchmarks.sqair_fidelity run configs/sqair/air_digits_32.yaml --steps 1200 --seed 1 \
        --name air-moving_digits_32
    python -m benchmarks.sqair_fidelity merge air-moving_digits_32 --seeds 0 1

``resume``: continue each seed's finished run in place to more steps and record it under a
new name (then ``merge`` that name).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks.fidelity import command_line

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def run(args) -> int:
    from benchmarks import fidelity

    overrides = [o.replace("{seed}", str(args.seed)) for o in args.overrides]
    return fidelity.main(
        [
            args.spec,
            *overrides,
            "--steps",
            str(args.steps),
            "--seeds",
            str(args.seed),
            "--name",
            f"{args.name}-part{args.seed}",
            "--runs",
            args.runs,
        ]
    )


def resume(args) -> int:
    """Continue a finished run (``runs/bench/NAME-part<seed>-seed<seed>``) to ``--steps``
    in place, evaluate it as fidelity.py does, and record it as NEW_NAME-part<seed>."""
    import time

    import yaml

    from benchmarks import fidelity
    from ocf import plugins, train
    from ocf.spec import resolve

    run_dir = Path(args.runs) / f"{args.name}-part{args.seed}-seed{args.seed}"
    resolved = resolve(yaml.safe_load((run_dir / "spec.yaml").read_text()), plugins.default().registry)
    t0 = time.time()
    train.run(resolved, out=str(run_dir), resume=True, steps=args.steps)
    wall = time.time() - t0
    entry = fidelity.seed_entry(run_dir)
    entry["train_seconds_continued"] = wall
    record = {
        "name": f"{args.new_name}-part{args.seed}",
        "spec": str(run_dir / "spec.yaml"),
        "steps": args.steps,
        "overrides": [],
        "continued_from": f"{args.name} (benchmarks/results/{args.name}.json)",
        "command": command_line(),
        "machine": fidelity.machine(),
        "date": time.strftime("%Y-%m-%d"),
        "seeds": {str(args.seed): entry},
    }
    (RESULTS / f"{args.new_name}-part{args.seed}.json").write_text(json.dumps(record, indent=2))
    return 0


def merge(args) -> int:
    from benchmarks import fidelity

    record = None
    parts = []
    for seed in args.seeds:
        path = RESULTS / f"{args.name}-part{seed}.json"
        one = json.loads(path.read_text())
        parts.append(path)
        run_dir = (
            one["spec"].rsplit("/spec.yaml", 1)[0]
            if one["spec"].endswith("spec.yaml")
            else f"runs/bench/{args.name}-part{seed}-seed{seed}"
        )
        entry = one["seeds"][str(seed)] | {"command": one["command"], "run_dir": run_dir}
        if record is None:
            record = {**one, "name": args.name, "seeds": {}}
            record["overrides"] = [
                o.replace(f"seed{seed}", "seed{seed}").replace(f"part{seed}", "part{seed}") for o in one["overrides"]
            ]
        record["seeds"][str(seed)] = entry
    record["command"] = " && ".join(record["seeds"][str(s)]["command"] for s in args.seeds)
    fidelity.summarise(record)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(record, indent=2))
    for path in parts:
        path.unlink()
    print(f"wrote {RESULTS / f'{args.name}.json'}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    from benchmarks.fidelity import add_run_parser

    add_run_parser(sub, func=run)
    c = sub.add_parser("resume")
    c.add_argument("name", help="the benchmark whose run dirs to continue")
    c.add_argument("--new-name", required=True)
    c.add_argument("--steps", type=int, required=True)
    c.add_argument("--seed", type=int, required=True)
    c.add_argument("--runs", default="runs/bench")
    c.set_defaults(func=resume)
    m = sub.add_parser("merge")
    m.add_argument("name")
    m.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    m.set_defaults(func=merge)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
