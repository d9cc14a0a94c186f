"""Metric speed, measured in one process (best of --repeats); writes
benchmarks/results/metric_speed.json.

* ARI: ``ocf.metrics.ari`` (batched) against a per-image scikit-learn loop (issue 10's
  target: ≥ 50× on 256 masks of 64×64).
* mIoU: ``ocf.metrics.miou`` (batched IoU matrices, then
  ``scipy.optimize.linear_sum_assignment`` per item) on --n items with --slots predicted
  masks and --objects ground-truth objects: the whole metric, and the matching alone (from
  the IoU matrices on).  Its values are checked against an independent per-item numpy loop.

    python -m benchmarks.metric_speed [--n 256] [--size 64] [--repeats 3]

scikit-learn is only the reference here; it is not a dependency of ocf.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.fidelity import command_line

ROOT = Path(__file__).resolve().parents[1]


def best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def reference_miou(pred_masks: torch.Tensor, true: torch.Tensor) -> np.ndarray:
    """Per-item numpy mIoU (argmax labels, IoU table, scipy matching), independent of
    ocf.metrics."""
    from scipy.optimize import linear_sum_assignment

    labels = pred_masks.argmax(dim=1).numpy()
    out = np.full(len(labels), np.nan)
    for i, (p, t) in enumerate(zip(labels, true.numpy())):
        objects = np.unique(t[t > 0])
        if len(objects):
            inter = np.array([[np.sum((p == j) & (t == o)) for o in objects] for j in range(pred_masks.shape[1])])
            union = np.bincount(p, minlength=pred_masks.shape[1])[:, None] + (t == objects[:, None]).sum(1) - inter
            iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
            rows, cols = linear_sum_assignment(iou, maximize=True)
            out[i] = iou[rows, cols].sum() / len(objects)
    return out


def miou_inputs(n: int, size: int, slots: int, objects: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft masks ``[n slots size²]`` and labels ``[n size²]`` (0 = background, objects
    1..objects, some absent per item): the predictions copy the truth on ~60% of the
    pixels, so the IoU matrices look like a half-trained model's."""
    g = torch.Generator().manual_seed(1)
    true = torch.randint(0, objects + 1, (n, size * size), generator=g)
    absent = torch.rand(n, objects + 1, generator=g) < 0.2
    absent[:, 0] = False
    true = torch.where(absent.gather(1, true), 0, true)
    noise = torch.randint(0, slots, true.shape, generator=g)
    labels = torch.where(torch.rand(true.shape, generator=g) < 0.6, true.clamp(max=slots - 1), noise)
    logits = torch.randn(n, slots, size * size, generator=g)
    logits.scatter_add_(1, labels.unsqueeze(1), torch.full((n, 1, size * size), 4.0))
    return logits.softmax(dim=1), true


def main(argv=None) -> int:
    from sklearn.metrics import adjusted_rand_score

    from ocf.metrics import ari

    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--slots", type=int, default=7)
    p.add_argument("--objects", type=int, default=6)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    g = torch.Generator().manual_seed(0)
    true = torch.randint(0, 6, (args.n, args.size * args.size), generator=g)
    pred = torch.randint(0, args.slots, (args.n, args.size * args.size), generator=g)
    ours = ari(pred, true)
    ref = torch.tensor([adjusted_rand_score(t.numpy(), q.numpy()) for t, q in zip(true, pred)], dtype=ours.dtype)
    assert torch.allclose(ours, ref, atol=1e-6), (ours - ref).abs().max()
    t_ours = best_of(lambda: ari(pred, true), args.repeats)
    t_ref = best_of(lambda: [adjusted_rand_score(t.numpy(), q.numpy()) for t, q in zip(true, pred)], args.repeats)

    from ocf.metrics import iou_matrix, miou
    from ocf.metrics.segmentation import _matched_iou

    masks, labels = miou_inputs(args.n, args.size, args.slots, args.objects)
    ours, ref = miou(masks, labels).numpy(), reference_miou(masks, labels)
    assert np.allclose(ours, ref, atol=1e-12, rtol=0, equal_nan=True), np.nanmax(np.abs(ours - ref))
    iou, present = iou_matrix(masks, labels)
    t_miou = best_of(lambda: miou(masks, labels), args.repeats)
    t_match = best_of(lambda: _matched_iou(iou, present), args.repeats)
    record = {
        "name": "metric_speed",
        "n": args.n,
        "size": args.size,
        "threads": torch.get_num_threads(),
        "batched_ari_s": t_ours,
        "sklearn_loop_s": t_ref,
        "speedup": t_ref / t_ours,
        "miou": {"slots": args.slots, "objects": args.objects, "miou_s": t_miou, "matching_s": t_match},
        "command": command_line(),
    }
    (ROOT / "benchmarks" / "results" / "metric_speed.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
