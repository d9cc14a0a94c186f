"""SetCon's real-video path, end to end: render a folder of frames from procedural moving
sprites (one long "video": several clips one after another), import it with
``ocf data import-frames --clip-length 3 --frame-step 4 --stride 1`` into (t−8, t−4, t)
triples, train the public code's single-frame NT-Xent variant on it, and record the top-1
retrieval accuracy and steps/s in benchmarks/results/setcon-video_frames.json.

    python -m benchmarks.setcon_video --clips 16 --frames 128 --steps 300
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.fidelity import machine

ROOT = Path(__file__).resolve().parents[1]

SPEC = "configs/setcon/public_frames_32.yaml"


def render(folder: Path, clips: int, frames: int, seed: int) -> int:
    """Write ``clips × frames`` PNG frames of moving sprites, numbered in playing order."""
    from PIL import Image

    from ocf import plugins

    gen_cls = plugins.default().registry.get("dataset", "moving_sprites")
    gen = gen_cls()
    options = gen_cls.parse_options({"resolution": 32, "frames": frames, "min_objects": 3, "max_objects": 3})
    video = gen.generate(clips, seed, options)["frames"].reshape(-1, 32, 32, 3)  # [N*T H W C]
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(video):
        Image.fromarray(frame).save(folder / f"frame_{i:05d}.png")
    return len(video)


def random_batch_retrieval(
    run: Path, checkpoint: str | None, split: str = "test", batches: int = 8, batch_size: int = 32
) -> float:
    """``setcon.retrieval`` over ``batches`` random batches of a split (seeded)."""
    import torch

    from ocf import plugins
    from ocf.evaluate import load_run
    from ocf.train import open_split, take_batch
    from ocf_setcon.metrics import SetRetrieval

    resolved, model, _ = load_run(run, checkpoint)
    ds = open_split(resolved.spec, split, plugins.default().registry)
    g = torch.Generator().manual_seed(0)
    metric = SetRetrieval()
    with torch.no_grad():
        for _ in range(batches):
            idx = torch.randperm(len(ds), generator=g)[:batch_size].tolist()
            metric.update_state(
                model(take_batch(ds, idx, resolved.spec.data.frames, seed=0, step=0, random_window=False), losses=False)
            )
    return float(metric.compute())


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--clips", type=int, default=16)
    p.add_argument("--frames", type=int, default=128)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", default="runs/bench/setcon-video")
    p.add_argument(
        "--skip-train", action="store_true", help="only re-evaluate the run in --work and rewrite the record"
    )
    args = p.parse_args(argv)
    work = Path(args.work)
    folder, data = work / "frames", work / "video_frames.h5"
    cmd = [
        "ocf",
        "data",
        "import-frames",
        str(folder),
        "--out",
        str(data),
        "--clip-length",
        "3",
        "--frame-step",
        "4",
        "--stride",
        "1",
        "--quiet",
    ]
    over = [f"data.path={data}", f"train.steps={args.steps}", "train.threads=1", f"train.seed={args.seed}"]
    run = work / "run"
    from ocf import evaluate, plugins, train
    from ocf.spec import load

    if not args.skip_train:
        t0 = time.time()
        render(folder, args.clips, args.frames, args.seed)
        data.unlink(missing_ok=True)
        subprocess.run(cmd, check=True)
        if run.exists():
            import shutil

            shutil.rmtree(run)
        t1 = time.time()
        train.run(load(SPEC, plugins.default().registry, over), out=str(run), progress=False)
        (work / "times.json").write_text(json.dumps({"prepare_seconds": t1 - t0, "train_seconds": time.time() - t1}))
    times = json.loads((work / "times.json").read_text()) if (work / "times.json").exists() else {}
    lines = [json.loads(row) for row in (run / "metrics.jsonl").read_text().splitlines()]
    rates = [row["steps_per_s"] for row in lines if "steps_per_s" in row]
    losses = [row["loss"] for row in lines if "loss" in row]
    metrics, untrained = evaluate.main(str(run)), evaluate.main(str(run), checkpoint="init")
    # Consecutive test samples are frames one step apart of the same video, so the evaluator's
    # sequential batches hold near-duplicate negatives; training draws random batches.  Also
    # score retrieval over random batches of the test split, drawn like training batches.
    metrics["retrieval_random_batches"] = random_batch_retrieval(run, None)
    untrained["retrieval_random_batches"] = random_batch_retrieval(run, "init")
    # and on the training frames (the test split is the video's last 10%: scenes never seen)
    metrics["retrieval_random_batches_train"] = random_batch_retrieval(run, None, "train")
    untrained["retrieval_random_batches_train"] = random_batch_retrieval(run, "init", "train")
    entry = {
        "metrics": metrics,
        "untrained": untrained,
        "first_logged_loss": losses[0],
        "last_logged_loss": losses[-1],
        "steps_per_s": statistics.median(rates),
        **times,
    }
    record = {
        "name": "setcon-video_frames",
        "spec": SPEC,
        "overrides": over,
        "steps": args.steps,
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv if a != "--skip-train"),
        "import_command": " ".join(cmd),
        "source_frames": args.clips * args.frames,
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "seeds": {str(args.seed): entry},
        "mean": entry["metrics"],
        "steps_per_s": entry["steps_per_s"],
    }
    out = ROOT / "benchmarks" / "results" / "setcon-video_frames.json"
    out.write_text(json.dumps(record, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
