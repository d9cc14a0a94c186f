"""SetCon's two-stage benchmark: pretext training (set-level InfoNCE, and the slot-wise
control), then a decoder probe on the frozen encoder and grouper, per seed.

    python benchmarks/setcon.py --seeds 0 1 --pretext-steps 500 --probe-steps 500 \
        --name setcon-moving_sprites_32 [--threads 1]

Records, per seed and objective: the pretext run's ``setcon.retrieval`` (top-1 retrieval of
predicted sets among the evaluation batch) and attention FG-ARI, the probe's MSE and FG-ARI
of the decoder masks, and steps/s, in benchmarks/results/NAME.json.  ``--collect`` merges
the per-seed files written by parallel invocations (``--part``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from fidelity import machine  # noqa: E402

PRETEXT = {"set_infonce": "configs/setcon/moving_sprites_32.yaml", "slot_contrast": "configs/setcon/slot_contrast_32.yaml"}
PROBE = "configs/setcon/probe_32.yaml"


def _rate(run: Path) -> float:
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    return statistics.median(l["steps_per_s"] for l in lines if "steps_per_s" in l)


def _train(spec: str, overrides: list[str], out: Path) -> tuple[Path, float]:
    from ocf import plugins, train
    from ocf.spec import load

    if out.exists():
        import shutil

        shutil.rmtree(out)
    resolved = load(spec, plugins.default().registry, overrides)
    t0 = time.time()
    train.run(resolved, out=str(out), progress=False)
    return out, time.time() - t0


def one_seed(seed: int, args) -> dict:
    from ocf import evaluate

    runs = Path(args.runs)
    entry = {}
    for objective, spec in PRETEXT.items():
        common = [f"train.seed={seed}", f"train.threads={args.threads}"]
        pre, wall = _train(spec, common + [f"train.steps={args.pretext_steps}"], runs / f"{args.name}-{objective}-seed{seed}")
        pre_metrics = evaluate.main(str(pre))
        probe_over = common + [f"train.steps={args.probe_steps}", f"train.init_from={pre}"]
        if objective == "slot_contrast":  # the control has no set embedding; shapes must match the pretext run
            probe_over.append("model.grouper.set_dim=null")
        probe, pwall = _train(PROBE, probe_over, runs / f"{args.name}-{objective}-probe-seed{seed}")
        probe_metrics = evaluate.main(str(probe))
        entry[objective] = {"pretext": pre_metrics, "pretext_steps_per_s": _rate(pre), "pretext_seconds": wall,
                            "probe": probe_metrics, "probe_steps_per_s": _rate(probe), "probe_seconds": pwall}
    return entry


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--pretext-steps", type=int, default=500)
    p.add_argument("--probe-steps", type=int, default=500)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--name", default="setcon-moving_sprites_32")
    p.add_argument("--runs", default="runs/bench")
    p.add_argument("--part", action="store_true", help="write runs/bench/NAME-part-SEEDS.json instead of the result file")
    p.add_argument("--collect", action="store_true", help="merge the part files into benchmarks/results/NAME.json")
    args = p.parse_args(argv)
    parts = Path(args.runs)
    if args.collect:
        seeds, commands = {}, []
        for f in sorted(parts.glob(f"{args.name}-part-*.json")):
            part = json.loads(f.read_text())
            seeds.update(part["seeds"])
            commands.append(part["command"])
        record = {"name": args.name, "pretext_specs": PRETEXT, "probe_spec": PROBE, "commands": commands,
                  "machine": machine(), "date": time.strftime("%Y-%m-%d"), "seeds": seeds}
    else:
        record = {"command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
                  "seeds": {str(s): one_seed(s, args) for s in args.seeds}}
        if args.part:
            out = parts / f"{args.name}-part-{'-'.join(map(str, args.seeds))}.json"
            out.write_text(json.dumps(record, indent=2))
            print(f"wrote {out}")
            return 0
        record.update({"name": args.name, "machine": machine(), "date": time.strftime("%Y-%m-%d")})
    s = record["seeds"].values()
    record["mean"] = {obj: {stage: {k: statistics.mean(e[obj][stage][k] for e in s) for k in next(iter(s))[obj][stage]}
                            for stage in ("pretext", "probe")} for obj in PRETEXT}
    record["fg_ari_gap"] = record["mean"]["set_infonce"]["probe"]["fg_ari"] - record["mean"]["slot_contrast"]["probe"]["fg_ari"]
    path = ROOT / "benchmarks" / "results" / f"{args.name}.json"
    path.write_text(json.dumps(record, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
