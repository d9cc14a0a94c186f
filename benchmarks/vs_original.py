"""Seconds per training step of ocf and of the original code, side by side, at the original's settings.

    python benchmarks/vs_original.py --originals DIR [--rounds 3] [--only NAME ...] [--threads 2]
        [--steps 10] [--warmup 3] [--out benchmarks/results/vs_original.json] [--write-docs]

``DIR`` holds one checkout per original (``DIR/NAME``, at the commit in ``ORIGINALS``; see
docs/benchmarks.md for how to prepare it). Per case, ocf's model is built from its spec and
overrides and the original's by its adapter (``benchmarks/originals/NAME.py``, which lists
its run-time patches); both train on the same ocf-generated batch. Every measurement is a
fresh process (``--child``): build, ``--warmup`` steps, then the median of ``--steps`` timed
steps (forward, backward, optimiser step); the two sides alternate for ``--rounds`` rounds,
the side that goes first swapping every round. The JSON holds per case the median s/step
of each side, the ratio original / ocf (median, min and max over rounds), the parameter
counts and the peak RSS of each side's process. ``--write-docs`` regenerates
docs/benchmarks.md (``benchmarks/report.py``) from it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "vs_original.json"
MARK = "VS-ORIGINAL-RESULT "
COMMIT_FILE = ".ocf-commit"

# folder name in DIR -> (GitHub repository, commit measured against)
ORIGINALS: dict[str, tuple[str, str]] = {
    "rotating": ("loeweX/RotatingFeatures", "7a2f38f94c506fcda9e8a56cd1473a96b48a86fc"),
    "simone": ("generallyintelligent/simone", "9dbbf6cb7b7b902644e9a183cf9b47c6ff00db3c"),
    "sri": ("pemami4911/segregate-relate-imagine", "d644e2ba9bc85b341122f0a9db808d97455b7089"),
    "setcon": (
        "dirkneuhaeuser/contrastive-learning-of-object-representations",
        "5e4219ab26c73de566aef41a0523037fa6a64507",
    ),
    "air": ("pyro-ppl/pyro", "64e71eee1c14dc926d5cbc5e762b6337bb4750a6"),
    "slot_attention": ("evelinehong/slot-attention-pytorch", "1518c23c312f93b961f8c071136f0093b741863a"),
}


@dataclass
class Case:
    original: str  # folder in DIR
    adapter: str  # module with PATCHES and build(root, batch)
    spec: str  # ocf's spec, relative to the repository
    overrides: list[str]
    setting: str
    differs: str
    repo: str = ""
    commit: str = ""
    options: dict = field(default_factory=dict)  # passed to the adapter's build as keywords
    small_data: bool = True  # train on a small generated copy of the spec's dataset in runs/vs_original/

    def __post_init__(self) -> None:
        if not self.repo and self.original in ORIGINALS:
            self.repo, self.commit = ORIGINALS[self.original]


def _cases() -> dict[str, Case]:
    from benchmarks.originals.cases import CASES

    return CASES


# ---------------------------------------------------------------- the checkouts


def prepare_hint(name: str, case: Case, originals: Path) -> str:
    url = f"https://github.com/{case.repo}"
    return (
        f"git clone {url} {originals / name} && git -C {originals / name} checkout {case.commit}"
        f" (or unpack that commit's files there and write the commit into {originals / name / COMMIT_FILE})"
    )


def checkout_commit(path: Path) -> str | None:
    """The commit a checkout is at: ``git rev-parse HEAD`` in a git work tree, else the
    commit written in its ``.ocf-commit`` file; None when neither says."""
    if (path / ".git").exists():
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True)
        if out.returncode == 0:
            return out.stdout.strip()
    marker = path / COMMIT_FILE
    return marker.read_text().strip() if marker.exists() else None


def check_original(case: Case, originals: Path) -> str | None:
    """Why the original of ``case`` cannot be run from ``originals`` (None when it can)."""
    path = originals / case.original
    if not path.is_dir():
        return f"{path} is missing; prepare it with: {prepare_hint(case.original, case, originals)}"
    have = checkout_commit(path)
    if have is None:
        return f"{path} does not say its commit (no git work tree, no {COMMIT_FILE}); expected {case.commit}"
    if case.commit and have != case.commit:
        return f"{path} is at {have}, expected {case.commit}: git -C {path} checkout {case.commit}"
    return None


# ---------------------------------------------------------------- one measurement (child process)


def ocf_resolved(case: Case, threads: int):
    from ocf.cli.commands import load_spec

    data = f"data.path=runs/vs_original/{Path(case.spec).parent.name}-{Path(case.spec).stem}.h5"
    small = [data, "data.generate.n=128"] if case.small_data else []
    return load_spec(str(ROOT / case.spec), [*small, f"train.threads={threads}", *case.overrides])


def build_side(side: str, case: Case, originals: Path, threads: int):
    """(step function, model) for one side, and the batch both sides train on."""
    import importlib

    import torch

    from ocf.assembly import build
    from ocf.run.bench import RandomBatches, _Stepper
    from ocf.run.data import open_split, registry_of
    from ocf.run.setup import Optimisation, pick_device, speed_options

    resolved = ocf_resolved(case, threads)
    spec, t = resolved.spec, resolved.spec.train
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    batch = RandomBatches(
        open_split(spec, spec.data.train_split, registry_of(resolved)), t.batch_size, spec.data.frames, t.seed
    )(0)
    if side == "original":
        adapter = importlib.import_module(case.adapter)
        step, model = adapter.build(originals / case.original, batch, **case.options)
        return step, model
    device = pick_device(t)
    model = build(resolved, dry_run=False).to(device).train()
    stepper = _Stepper(model, speed_options(model, t, device), Optimisation.create(model, t), t, device)
    batch = batch.to(device)
    return (lambda: stepper.step(batch)), model


def measure(side: str, case: Case, originals: Path, threads: int, steps: int, warmup: int) -> dict:
    import resource

    import torch

    step, model = build_side(side, case, originals, threads)
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return {
        "sec_per_step": statistics.median(times),
        "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
    }


def child(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("side", choices=["ocf", "original"])
    ap.add_argument("case")  # JSON of a Case
    ap.add_argument("--originals", type=Path, required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--warmup", type=int, required=True)
    a = ap.parse_args(argv)
    result = measure(a.side, Case(**json.loads(a.case)), a.originals, a.threads, a.steps, a.warmup)
    print(MARK + json.dumps(result), flush=True)


# ---------------------------------------------------------------- the comparison (parent)


def run_child(side: str, case: Case, originals: Path, threads: int, steps: int, warmup: int) -> dict:
    """One measurement in a fresh process; raises RuntimeError with the child's last words."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        side,
        json.dumps(asdict(case)),
        "--originals",
        str(originals),
        "--threads",
        str(threads),
        "--steps",
        str(steps),
        "--warmup",
        str(warmup),
    ]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT), env.get("PYTHONPATH", "")] if p)
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith(MARK)]
    if out.returncode != 0 or not lines:
        tail = (out.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"{side} side failed (exit {out.returncode}): {tail}")
    return json.loads(lines[-1][len(MARK) :])


def summarise(rounds: list[dict]) -> dict:
    """Medians over rounds of each side, and the ratio original / ocf per round."""
    ratios = [r["original"]["sec_per_step"] / r["ocf"]["sec_per_step"] for r in rounds]
    side = {
        s: {
            "sec_per_step": statistics.median(r[s]["sec_per_step"] for r in rounds),
            "params": rounds[0][s]["params"],
            "peak_mb": max(r[s]["peak_mb"] for r in rounds),
        }
        for s in ("ocf", "original")
    }
    return {
        **side,
        "ratio": {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)},
        "rounds": rounds,
    }


def compare(
    name: str, case: Case, originals: Path, *, rounds: int, threads: int, steps: int, warmup: int, runner=run_child
) -> dict:
    """The record of one case: measured, or ``status: not run`` with the reason."""
    record = {
        "setting": case.setting,
        "differs": case.differs,
        "repo": case.repo,
        "commit": case.commit,
        "spec": case.spec,
        "overrides": case.overrides,
    }
    reason = check_original(case, originals)
    if reason is None:
        try:
            per_round = []
            for r in range(rounds):
                order = ("ocf", "original") if r % 2 == 0 else ("original", "ocf")
                per_round.append({s: runner(s, case, originals, threads, steps, warmup) for s in order})
            return {**record, "status": "measured", **summarise(per_round)}
        except RuntimeError as exc:
            reason = str(exc)
    return {**record, "status": "not run", "reason": reason}


def machine(threads: int) -> dict:
    import torch

    from ocf.run.bench import _cpu_name

    return {
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "threads": threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def ocf_commit() -> str:
    out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def main(argv: list[str] | None = None, cases: dict[str, Case] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child(argv[1:])
        return {}
    cases = _cases() if cases is None else cases
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--originals", type=Path, required=True, help="folder with one checkout per original")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", nargs="+", choices=sorted(cases), metavar="NAME", help=", ".join(sorted(cases)))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--write-docs", action="store_true", help="regenerate docs/benchmarks.md from the results")
    a = ap.parse_args(argv)
    if not a.originals.is_dir():
        sys.exit(
            f"error: --originals {a.originals} is not a folder. Prepare one checkout per original in it "
            "(docs/benchmarks.md, 'Against the original code'), e.g.\n  "
            + "\n  ".join(prepare_hint(n, c, a.originals) for n, c in sorted(cases.items()))
        )
    previous = json.loads(a.out.read_text())["cases"] if a.out.exists() and a.only else {}
    result = {
        "name": "vs_original",
        "date": time.strftime("%Y-%m-%d"),
        "ocf_commit": ocf_commit(),
        "machine": machine(a.threads),
        "rounds": a.rounds,
        "steps": a.steps,
        "warmup": a.warmup,
        "command": "python benchmarks/vs_original.py " + " ".join(argv),
        "cases": previous,
    }
    for name in a.only or sorted(cases):
        t0 = time.time()
        rec = compare(
            name, cases[name], a.originals, rounds=a.rounds, threads=a.threads, steps=a.steps, warmup=a.warmup
        )
        result["cases"][name] = rec
        print(describe(name, rec) + f" ({time.time() - t0:.0f} s)", flush=True)
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=2) + "\n")  # after every case: an interruption keeps the rest
    if a.write_docs:
        from benchmarks import report

        report.main()
    return result


def describe(name: str, rec: dict) -> str:
    if rec["status"] != "measured":
        return f"{name}: not run: {rec['reason']}"
    r = rec["ratio"]
    return (
        f"{name}: ocf {rec['ocf']['sec_per_step']:.3f} s/step, original {rec['original']['sec_per_step']:.3f}"
        f" -> {r['median']:.2f}x ({r['min']:.2f}-{r['max']:.2f}); params {rec['ocf']['params']:,} vs "
        f"{rec['original']['params']:,}"
    )


if __name__ == "__main__":
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    main()
