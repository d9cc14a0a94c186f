"""GENESIS-v2 fidelity benchmark: benchmarks/fidelity.py per seed (seeds may run as
parallel processes), then one merged result with each seed's GECO trajectory (β, the
reconstruction error per pixel-channel and the KL at every logged step) and the step at
which the GECO goal was first met.

    # one process per seed (one thread each), then merge:
    python -m benchmarks.genesis_bench run configs/genesis/shapes_32.yaml --steps 3000 --seed 0 \
        --name genesis-shapes_32 [key=value ...]
    python -m benchmarks.genesis_bench run configs/genesis/shapes_32.yaml --steps 3000 --seed 1 \
        --name genesis-shapes_32 [key=value ...]
    python -m benchmarks.genesis_bench merge --name genesis-shapes_32 --seeds 0 1

Writes benchmarks/results/NAME.json (the per-seed files NAME-seedS.json are removed on merge).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks.fidelity import command_line

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def geco_trajectory(run_dir: Path, pixels: int) -> dict:
    """β, err per pixel-channel and KL at every logged step, and when the goal was met."""
    import yaml

    spec = yaml.safe_load((run_dir / "spec.yaml").read_text())
    geco = spec["train"]["geco"]
    lines = [json.loads(row) for row in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rows = [row for row in lines if "geco/beta" in row]
    term = geco["term"] if isinstance(geco["term"], str) else geco["term"][0]
    traj = [
        {
            "step": row["step"],
            "beta": row["geco/beta"],
            "err_per_pixel_channel": row[f"loss/{term}"] / pixels,
            "kl": row.get("loss/kl"),
        }
        for row in rows
    ]
    met = next((r["step"] for r in traj if r["err_per_pixel_channel"] * pixels <= geco["goal"]), None)
    return {
        "goal": geco["goal"],
        "goal_per_pixel_channel": geco["goal"] / pixels,
        "step_size": geco["step_size"],
        "speedup": geco["speedup"],
        "first_step_err_below_goal": met,
        "beta_min_seen": min(r["beta"] for r in traj),
        "beta_final": traj[-1]["beta"],
        "trajectory": traj,
    }


def run(args) -> int:
    from benchmarks import fidelity

    name = f"{args.name}-seed{args.seed}"
    argv = [
        args.spec,
        *args.overrides,
        "--steps",
        str(args.steps),
        "--seeds",
        str(args.seed),
        "--name",
        name,
        "--runs",
        args.runs,
    ]
    fidelity.main(argv)
    result = json.loads((RESULTS / f"{name}.json").read_text())
    import yaml

    spec = yaml.safe_load((Path(args.runs) / f"{name}-seed{args.seed}" / "spec.yaml").read_text())
    h, w = spec["data"]["resolution"]
    pixels = spec["data"]["channels"] * h * w
    result["seeds"][str(args.seed)]["geco"] = geco_trajectory(Path(args.runs) / f"{name}-seed{args.seed}", pixels)
    result["command"] = command_line()
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
    return 0


def merge(args) -> int:
    parts = [json.loads((RESULTS / f"{args.name}-seed{s}.json").read_text()) for s in args.seeds]
    from benchmarks.fidelity import merge_records

    record = merge_records(args.name, parts)
    record["command"] += f" && python -m benchmarks.genesis_bench merge --name {args.name} --seeds " + " ".join(
        map(str, args.seeds)
    )
    out = RESULTS / f"{args.name}.json"
    out.write_text(json.dumps(record, indent=2))
    for s in args.seeds:
        (RESULTS / f"{args.name}-seed{s}.json").unlink()
    print(f"wrote {out}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    from benchmarks.fidelity import add_run_parser

    add_run_parser(sub)
    m = sub.add_parser("merge")
    m.add_argument("--name", required=True)
    m.add_argument("--seeds", type=int, nargs="+", required=True)
    args = p.parse_args(argv)
    return run(args) if args.cmd == "run" else merge(args)


if __name__ == "__main__":
    sys.exit(main())
