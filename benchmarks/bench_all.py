"""`ocf bench` on every shipped spec, paper configurations included: the speed table.

    python -m benchmarks.bench_all [--only simone/paper_64 ...] [--steps 10] [--paper-steps 2]
    python -m benchmarks.bench_all --only slot_attention/shapes_32 --option train.channels_last=true

For each ``configs/<dir>/<name>.yaml`` this runs ``ocf bench`` in its own process, one at
a time, on a small freshly generated copy of the spec's dataset (``data.generate.n``,
under ``runs/bench_all/``: step time does not depend on how many clips the file holds,
and the paper datasets take long to generate), and writes
``benchmarks/results/bench-<dir>-<name>.json``.  ``benchmarks/report.py`` puts every
record in the speed table of docs/benchmarks.md.  Paper configurations (the file names
with ``paper`` or ``clevr``) are measured over fewer steps: one of their steps takes
seconds to minutes on two CPU cores, and are evaluated one sample at a time (evaluation
speed is reported per sample).  A spec that fails is reported and the others go on.
``--option KEY=VALUE`` measures the specs with a speed option instead
(``bench-<dir>-<name>-<option>.json``), to set beside the default row.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SMALL = 256  # clips or images generated per spec
THREADS = 2  # every row on both cores, whatever train.threads the spec sets for its benchmark runs


def shipped() -> list[Path]:
    return sorted((ROOT / "configs").rglob("*.yaml"))


def is_paper(path: Path) -> bool:
    return "paper" in path.stem or "clevr" in path.stem


def stand_in(path: Path, out: Path) -> Path:
    """A spec that reads the user's own file (``generate: null``, e.g. precomputed
    features, imported video frames) is benched on a stand-in of the declared shape:
    procedural ``shapes`` images (``moving_sprites`` clips for video specs) at the spec's
    resolution and random non-negative maps for every declared extra."""
    if out.exists():
        return out
    import numpy as np
    import yaml

    from ocf import plugins
    from ocf.data.generator import make_dataset
    from ocf_rotating.features import add_features

    data = yaml.safe_load(path.read_text())["data"]
    frames = data.get("frames", 1)
    kind, options = ("moving_sprites", {"frames": max(frames, 8)}) if frames > 1 else ("shapes", {})
    current = make_dataset(
        plugins.default().registry,
        kind,
        out.with_suffix(".images.h5"),
        n=SMALL,
        seed=0,
        options={"resolution": data["resolution"][0], **options},
    )
    rng = np.random.default_rng(0)
    for key, shape in (data.get("extras") or {}).items():
        current = add_features(
            current, rng.random((SMALL, *shape), dtype=np.float32), out.with_suffix(f".{key}.h5"), key=key
        )
    Path(current).rename(out)
    return out


def bench(path: Path, steps: int, warmup: int, out: Path, options: list[str] = ()) -> dict:
    import yaml

    key = f"{path.parent.name}-{path.stem}"
    data = ROOT / "runs" / "bench_all" / f"{key}.h5"
    data.parent.mkdir(parents=True, exist_ok=True)
    if yaml.safe_load(path.read_text())["data"].get("generate", {}) is None:
        stand_in(path, data)
    cmd = [
        sys.executable,
        "-m",
        "ocf",
        "bench",
        str(path.relative_to(ROOT)),
        f"data.path={data.relative_to(ROOT)}",
        f"data.generate.n={SMALL}",
        f"train.threads={THREADS}",
        *options,
        "--steps",
        str(steps),
        "--warmup",
        str(warmup),
        "--json",
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}")
    return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=None, help="dir/name of the specs to run (default: all)")
    ap.add_argument("--steps", type=int, default=10, help="measured steps of a CPU spec")
    ap.add_argument("--paper-steps", type=int, default=2, help="measured steps of a paper spec")
    ap.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE", help="a speed option to measure (repeatable)"
    )
    args = ap.parse_args(argv)
    suffix = "".join("-" + o.split("=")[0].split(".")[-1] for o in args.option)
    failed = []
    for path in shipped():
        key = f"{path.parent.name}/{path.stem}"
        if args.only and key not in args.only:
            continue
        paper = is_paper(path)
        out = RESULTS / f"bench-{path.parent.name}-{path.stem}{suffix}.json"
        t0 = time.time()
        try:
            extra = ["eval.batch_size=1"] if paper else []  # a paper spec's full evaluation batch takes minutes here
            r = bench(path, args.paper_steps if paper else args.steps, 1 if paper else 3, out, [*extra, *args.option])
        except (RuntimeError, json.JSONDecodeError) as exc:
            failed.append(key)
            print(f"{key}: FAILED: {exc}", flush=True)
            continue
        print(
            f"{key}: {r['train']['sec_per_step']:.3f} s/step, "
            f"{100 * r['flops']['utilisation']:.0f}% of the matmul peak, "
            f"{r['memory']['peak_mb']:.0f} MB ({time.time() - t0:.0f} s)",
            flush=True,
        )
    if failed:
        print(f"{len(failed)} spec(s) failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
