"""Batched metrics against per-image loops, measured in one process (alternating, best
of --repeats); writes benchmarks/results/metric_speed.json.

* ARI: ``ocf.metrics.ari`` against a per-image scikit-learn loop (issue 10's target:
  ≥ 50× on 256 masks of 64×64).
* mIoU: ``ocf.metrics.miou`` (batched IoU matrices and batched Hungarian matching,
  ``ocf.matching.linear_assignment``) against the per-item scipy loop miou used before
  (kept below as ``old_miou``), on --n items with --slots predicted masks and --objects
  ground-truth objects: the whole metric, and the matching alone (from the IoU matrices
  on).

    python benchmarks/metric_speed.py [--n 256] [--size 64] [--repeats 3]

scikit-learn is only the reference here; it is not a dependency of ocf.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def best_of_pair(fa, fb, repeats: int) -> tuple[float, float]:
    """Best-of-``repeats`` times of two functions, run alternately."""
    ta = tb = float("inf")
    for _ in range(repeats):
        ta = min(ta, best_of(fa, 1))
        tb = min(tb, best_of(fb, 1))
    return ta, tb


def old_matching(iou: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """The per-item scipy loop ocf.metrics.miou ran before issue 10 (the reference)."""
    from scipy.optimize import linear_sum_assignment

    iou_np, present_np = iou.cpu().numpy(), present.cpu().numpy()
    out = np.full(iou_np.shape[0], np.nan)
    for i, (m, keep) in enumerate(zip(iou_np, present_np)):
        if keep.any():
            m = m[:, keep]  # [k o_i]
            rows, cols = linear_sum_assignment(m, maximize=True)
            out[i] = m[rows, cols].sum() / keep.sum()
    return torch.from_numpy(out).to(iou.device)


def old_miou(pred_masks: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    from ocf.metrics import iou_matrix

    return old_matching(*iou_matrix(pred_masks, true))


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

    from ocf.metrics import _matched_iou, iou_matrix, miou

    masks, labels = miou_inputs(args.n, args.size, args.slots, args.objects)
    new, old = miou(masks, labels), old_miou(masks, labels)
    assert torch.allclose(new, old, atol=1e-12, rtol=0, equal_nan=True), (new - old).abs().nan_to_num().max()
    iou, present = iou_matrix(masks, labels)
    t_miou, t_miou_ref = best_of_pair(lambda: miou(masks, labels), lambda: old_miou(masks, labels), args.repeats)
    t_match, t_match_ref = best_of_pair(lambda: _matched_iou(iou, present), lambda: old_matching(iou, present), args.repeats)
    record = {"name": "metric_speed", "n": args.n, "size": args.size, "threads": torch.get_num_threads(),
              "batched_ari_s": t_ours, "sklearn_loop_s": t_ref, "speedup": t_ref / t_ours,
              "miou": {"slots": args.slots, "objects": args.objects,
                       "batched_miou_s": t_miou, "scipy_loop_miou_s": t_miou_ref, "miou_speedup": t_miou_ref / t_miou,
                       "batched_matching_s": t_match, "scipy_loop_matching_s": t_match_ref,
                       "matching_speedup": t_match_ref / t_match},
              "command": "python " + " ".join(shlex.quote(a) for a in sys.argv)}
    (ROOT / "benchmarks" / "results" / "metric_speed.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
