"""How a trained slot model covers the background: per test image, the share of background
pixels (mask id 0) that the single slot holding most of them takes, and how often that slot
also holds most of an object's pixels.

    python -m benchmarks.background_slot RUN_DIR [RUN_DIR ...]

A model with a background slot gives shares near 1; one that splits the background over
slots that also hold objects (the demo's stall, docs/plugins/slot_attention.md) gives less.
"""

from __future__ import annotations

import argparse
import json

import torch


def background_share(run_dir: str, split: str = "test", batch_size: int = 100) -> dict:
    from ocf import plugins
    from ocf.data.batches import ordered_batch
    from ocf.run.checkpoints import load_run
    from ocf.run.data import open_split
    from ocf.run.evaluate import eval_forward

    resolved, model, _ = load_run(run_dir, plugins.default().registry)
    ds = open_split(resolved.spec, resolved.spec.data.test_split if split == "test" else split, resolved.registry)
    shares, mixed = [], []
    with torch.no_grad():
        for start in range(0, len(ds), batch_size):
            batch = ordered_batch(ds, start, start + batch_size, resolved.spec.data.frames)
            state = eval_forward(model, batch, seed=0)
            pred = state.rendering.masks.argmax(2)[:, 0].flatten(1)  # [b hw]
            true = batch.masks[:, 0].flatten(1)
            for p, t in zip(pred, true):
                bg = p[t == 0]
                if bg.numel() == 0:
                    continue
                counts = torch.bincount(bg, minlength=int(p.max()) + 1)
                top = int(counts.argmax())
                shares.append(float(counts[top]) / bg.numel())
                objects = [o for o in t.unique().tolist() if o > 0]
                mixed.append(any(int(torch.mode(p[t == o]).values) == top for o in objects))
    return {
        "run": run_dir,
        "images": len(shares),
        "background_share_mean": sum(shares) / len(shares),
        "images_with_a_background_slot": sum(s > 0.9 for s in shares) / len(shares),
        "background_slot_also_holds_an_object": sum(mixed) / len(mixed),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+")
    args = p.parse_args()
    for run in args.runs:
        print(json.dumps(background_share(run)))


if __name__ == "__main__":
    main()
