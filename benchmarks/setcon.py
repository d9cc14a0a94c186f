"""SetCon's two-stage benchmark: pretext training (set-level InfoNCE, and the slot-wise
control), then a decoder probe on the frozen encoder and grouper, per seed.

    python -m benchmarks.setcon --seeds 0 1 --pretext-steps 500 --probe-steps 500 \
        --name setcon-moving_sprites_32 [--threads 1]

Records, per seed and objective: the pretext run's ``setcon.retrieval`` (top-1 retrieval of
predicted sets among the evaluation batch) and attention FG-ARI, the probe's MSE and FG-ARI
of the decoder masks, the same probe scores with predicted slots for frames 2 … T−1
(``future_*``, future prediction), and steps/s, in benchmarks/results/NAME.json (SetCon) and
setcon-slot_contrast-*.json (the control), in benchmarks/fidelity.py's schema.  Seeds can
run in parallel processes with ``--part`` (one per seed), then ``--collect`` merges them:

    python -m benchmarks.setcon --seeds 0 --part &  python -m benchmarks.setcon --seeds 1 --part
    python -m benchmarks.setcon --collect
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from benchmarks.fidelity import command_line, machine

ROOT = Path(__file__).resolve().parents[1]

PRETEXT = {
    "set_infonce": "configs/setcon/moving_sprites_32.yaml",
    "slot_contrast": "configs/setcon/slot_contrast_32.yaml",
}
PROBE = "configs/setcon/probe_32.yaml"


def _rate(run: Path) -> float:
    lines = [json.loads(row) for row in (run / "metrics.jsonl").read_text().splitlines()]
    return statistics.median(row["steps_per_s"] for row in lines if "steps_per_s" in row)


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
        pre, wall = _train(
            spec, common + [f"train.steps={args.pretext_steps}"], runs / f"{args.name}-{objective}-seed{seed}"
        )
        pre_metrics = evaluate.main(str(pre))
        probe_over = common + [f"train.steps={args.probe_steps}", f"train.init_from={pre}"]
        if objective == "slot_contrast":  # the control has no set embedding; shapes must match the pretext run
            probe_over.append("model.grouper.set_dim=null")
        probe, pwall = _train(PROBE, probe_over, runs / f"{args.name}-{objective}-probe-seed{seed}")
        probe_metrics = evaluate.main(str(probe))
        entry[objective] = {
            "pretext": pre_metrics,
            "pretext_steps_per_s": _rate(pre),
            "pretext_seconds": wall,
            "probe": probe_metrics,
            "probe_steps_per_s": _rate(probe),
            "probe_seconds": pwall,
        }
    return entry


def flat(entry: dict) -> dict:
    """One seed of one objective as flat metrics: pretext retrieval and attention FG-ARI,
    probe FG-ARI / ARI / mBO / MSE."""
    out = {}
    if "setcon.retrieval" in entry["pretext"]:
        out["retrieval"] = entry["pretext"]["setcon.retrieval"]
    out["pretext_fg_ari"] = entry["pretext"]["fg_ari"]
    out.update({f"probe_{k}": v for k, v in entry["probe"].items()})
    return out


def future_prediction(probe_run: Path) -> dict:
    """The probe's scores when the grouper hands the decoder the transition's predictions for
    frames 2 … T−1 (frames 0 and 1 stay inferred): future prediction, scored like the probe."""
    from ocf.evaluate import evaluate_model, load_run

    resolved, model, _ = load_run(probe_run)
    model.grouper.spec = model.grouper.spec.model_copy(update={"objects": "predicted"})
    return evaluate_model(model, resolved, progress=False)


def collect(args) -> int:
    """Merge the part files into one result file per objective, in benchmarks/fidelity.py's
    schema (so benchmarks/report.py lists them), plus the probe FG-ARI gap."""
    from ocf import evaluate

    seeds, commands = {}, []
    for f in sorted(Path(args.runs).glob(f"{args.name}-part-*.json")):
        part = json.loads(f.read_text())
        seeds.update(part["seeds"])
        commands.append(part["command"])
    names = {"set_infonce": args.name, "slot_contrast": args.name.replace("setcon-", "setcon-slot_contrast-")}
    records = {}
    for obj, spec in PRETEXT.items():
        per_seed = {}
        for s, e in sorted(seeds.items()):
            run = Path(args.runs) / f"{args.name}-{obj}-seed{s}"
            untrained = evaluate.main(str(run), checkpoint="init")  # the pretext model at initialisation
            future = future_prediction(Path(args.runs) / f"{args.name}-{obj}-probe-seed{s}")
            metrics = {**flat(e[obj]), **{f"future_{k}": v for k, v in future.items()}}
            per_seed[s] = {
                "metrics": metrics,
                "untrained": untrained,
                "steps_per_s": e[obj]["pretext_steps_per_s"],
                "probe_steps_per_s": e[obj]["probe_steps_per_s"],
                "train_seconds": e[obj]["pretext_seconds"] + e[obj]["probe_seconds"],
            }
        ms = [v["metrics"] for v in per_seed.values()]
        records[obj] = {
            "name": names[obj],
            "spec": spec,
            "probe_spec": PROBE,
            "overrides": [
                f"pretext {args.pretext_steps} steps, probe {args.probe_steps} steps "
                "(probe_32.yaml, frozen encoder + grouper)"
            ],
            "steps": args.pretext_steps,
            "probe_steps": args.probe_steps,
            "seeds": per_seed,
            "mean": {k: statistics.mean(m[k] for m in ms) for k in ms[0]},
            "steps_per_s": statistics.median(v["steps_per_s"] for v in per_seed.values()),
            "machine": machine(),
            "date": time.strftime("%Y-%m-%d"),
            "command": " ; ".join(commands),
        }
    gap = records["set_infonce"]["mean"]["probe_fg_ari"] - records["slot_contrast"]["mean"]["probe_fg_ari"]
    records["set_infonce"]["probe_fg_ari_gap_vs_slot_contrast"] = gap
    for record in records.values():
        path = ROOT / "benchmarks" / "results" / f"{record['name']}.json"
        path.write_text(json.dumps(record, indent=2))
        print(f"wrote {path}")
    print(f"probe FG-ARI gap (SetCon - slot-wise control): {gap:+.3f}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--pretext-steps", type=int, default=500)
    p.add_argument("--probe-steps", type=int, default=500)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--name", default="setcon-moving_sprites_32")
    p.add_argument("--runs", default="runs/bench")
    p.add_argument(
        "--part", action="store_true", help="write runs/bench/NAME-part-SEEDS.json instead of the result file"
    )
    p.add_argument("--collect", action="store_true", help="merge the part files into benchmarks/results/NAME.json")
    args = p.parse_args(argv)
    parts = Path(args.runs)
    if args.collect:
        return collect(args)
    record = {"command": command_line(), "seeds": {str(s): one_seed(s, args) for s in args.seeds}}
    out = parts / f"{args.name}-part-{'-'.join(map(str, args.seeds))}.json"
    out.write_text(json.dumps(record, indent=2))
    print(f"wrote {out}")
    if not args.part:
        return collect(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
