"""AIR / SQAIR fidelity runs: benchmarks/fidelity.py once per seed, with overrides that may
name the seed (``{seed}``, e.g. ``train.init_from=runs/bench/air-seed{seed}``), merged
into one result file benchmarks/results/NAME.json.

    python benchmarks/sqair_fidelity.py configs/sqair/sqair_digits_32.yaml --steps 1000 --seeds 0 1 \
        --name sqair-moving_digits_32 'train.init_from=runs/bench/air-moving_digits_32-seed{seed}'
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import fidelity  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("spec")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--name", required=True)
    p.add_argument("--runs", default="runs/bench")
    args = p.parse_args(argv)
    results = ROOT / "benchmarks" / "results"
    record = None
    for seed in args.seeds:
        part = f"{args.name}-seed{seed}"
        overrides = [o.replace("{seed}", str(seed)) for o in args.overrides]
        fidelity.main([args.spec, *overrides, "--steps", str(args.steps), "--seeds", str(seed), "--name", part, "--runs", args.runs])
        one = json.loads((results / f"{part}.json").read_text())
        (results / f"{part}.json").unlink()
        # runs/bench/<part>-seed<seed> is where fidelity trained it
        if record is None:
            record = {**one, "name": args.name, "overrides": args.overrides, "seeds": {}}
        record["seeds"][str(seed)] = one["seeds"][str(seed)] | {"run_dir": f"{args.runs}/{part}-seed{seed}"}
    record["command"] = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    ms = [s["metrics"] for s in record["seeds"].values()]
    record["mean"] = {k: statistics.mean(m[k] for m in ms) for k in ms[0]}
    record["steps_per_s"] = statistics.median(s["steps_per_s"] for s in record["seeds"].values())
    path = results / f"{args.name}.json"
    path.write_text(json.dumps(record, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
