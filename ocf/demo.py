"""``make demo``: the main job end to end on a laptop CPU.

Generates a small ``shapes`` dataset, trains the CPU Slot Attention spec for a few
minutes, evaluates the trained model and its initialisation on the test split, writes
pictures, and ends with one line comparing the two.

    python -m ocf.demo [--spec SPEC] [--out RUN_DIR] [key=value ...]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

SPEC = Path(__file__).resolve().parents[1] / "configs" / "slot_attention" / "demo.yaml"


def main(argv: list[str] | None = None) -> int:
    from ocf.cli.commands import evaluate_run, load_spec, visualise
    from ocf.cli.main import run_guarded
    from ocf.run import train

    parser = argparse.ArgumentParser(prog="python -m ocf.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(SPEC))
    parser.add_argument("--out", default="runs/demo")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)

    def job() -> int:
        t0 = time.time()
        resolved = load_spec(args.spec, args.overrides)
        out = Path(args.out)
        if out.exists():  # the demo's own run dir: start afresh each time
            shutil.rmtree(out)
        print(f"[1/4] training {resolved.spec.name} for {resolved.spec.train.steps} steps -> {out}", flush=True)
        train.run(resolved, out=str(out))
        print("[2/4] evaluating the trained model and its initialisation", flush=True)
        trained = evaluate_run(str(out))
        untrained = evaluate_run(str(out), checkpoint="init")
        print("[3/4] pictures", flush=True)
        visualise(str(out))
        minutes = (time.time() - t0) / 60
        print("[4/4] result", flush=True)
        fg, fg0 = trained["fg_ari"], untrained["fg_ari"]
        print(
            f"FG-ARI {fg:.3f} (untrained {fg0:.3f}) · ARI {trained['ari']:.3f} (untrained {untrained['ari']:.3f}) · "
            f"mBO {trained['mbo']:.3f} · MSE {trained['mse']:.4f} (untrained {untrained['mse']:.4f}) · "
            f"{minutes:.1f} min · pictures in {out / 'viz'}"
        )
        return 0

    return run_guarded(job)  # the CLI's error handling (exit 2 with a message for user errors)


if __name__ == "__main__":
    sys.exit(main())
