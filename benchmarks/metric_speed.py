"""Batched ARI against a per-image scikit-learn loop (issue 10's target: ≥ 50× on 256
masks of 64×64), measured in one process; writes benchmarks/results/metric_speed.json.

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

import torch

ROOT = Path(__file__).resolve().parents[1]


def best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None) -> int:
    from sklearn.metrics import adjusted_rand_score

    from ocf.metrics import ari

    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--slots", type=int, default=7)
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
    record = {"name": "metric_speed", "n": args.n, "size": args.size, "threads": torch.get_num_threads(),
              "batched_ari_s": t_ours, "sklearn_loop_s": t_ref, "speedup": t_ref / t_ours,
              "command": "python " + " ".join(shlex.quote(a) for a in sys.argv)}
    (ROOT / "benchmarks" / "results" / "metric_speed.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
