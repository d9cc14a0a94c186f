"""SetCon's real-video path, end to end: render a folder of frames from procedural moving
sprites (one long "video": several clips one after another), import it with
``ocf data import-frames --clip-length 3 --frame-step 4 --stride 1`` into (t−8, t−4, t)
triples, train the public code's single-frame NT-Xent variant on it, and record the top-1
retrieval accuracy and steps/s in benchmarks/results/setcon-video_frames.json.

    python benchmarks/setcon_video.py --clips 16 --frames 128 --steps 300
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from fidelity import machine  # noqa: E402

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


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--clips", type=int, default=16)
    p.add_argument("--frames", type=int, default=128)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", default="runs/bench/setcon-video")
    args = p.parse_args(argv)
    work = Path(args.work)
    folder, data = work / "frames", work / "video_frames.h5"
    t0 = time.time()
    n = render(folder, args.clips, args.frames, args.seed)
    data.unlink(missing_ok=True)
    cmd = ["ocf", "data", "import-frames", str(folder), "--out", str(data), "--clip-length", "3",
           "--frame-step", "4", "--stride", "1", "--quiet"]
    subprocess.run(cmd, check=True)
    prep = time.time() - t0
    from ocf import evaluate, plugins, train
    from ocf.spec import load

    run = work / "run"
    if run.exists():
        import shutil

        shutil.rmtree(run)
    over = [f"data.path={data}", f"train.steps={args.steps}", "train.threads=1", f"train.seed={args.seed}"]
    t1 = time.time()
    train.run(load(SPEC, plugins.default().registry, over), out=str(run), progress=False)
    wall = time.time() - t1
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    rates = [l["steps_per_s"] for l in lines if "steps_per_s" in l]
    losses = [l["loss"] for l in lines if "loss" in l]
    record = {
        "name": "setcon-video_frames", "spec": SPEC, "overrides": over,
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv), "import_command": " ".join(cmd),
        "source_frames": n, "prepare_seconds": prep, "machine": machine(), "date": time.strftime("%Y-%m-%d"),
        "metrics": evaluate.main(str(run)), "untrained": evaluate.main(str(run), checkpoint="init"),
        "first_loss": losses[0], "last_loss": losses[-1], "steps": args.steps,
        "steps_per_s": statistics.median(rates), "train_seconds": wall,
    }
    out = ROOT / "benchmarks" / "results" / "setcon-video_frames.json"
    out.write_text(json.dumps(record, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
