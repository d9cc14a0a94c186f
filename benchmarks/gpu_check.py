"""One check that the GPU path works, before GPU hours are spent on it.

    python -m benchmarks.gpu_check            # on a CUDA machine: under 10 minutes
    python -m benchmarks.gpu_check --smoke    # anywhere: tiny sizes on the CPU, about a minute

It records, in ``benchmarks/results/gpu_check.json`` and ``.md`` (``--out PREFIX`` elsewhere):

1. **specs**: a few training steps of every paper-size spec in ``configs/`` (the patterns in
   :data:`PAPER_PATTERNS`), each at its own batch size on a random batch of its shape, with
   steps/s and peak memory (the CUDA allocator's peak per spec; on a CPU the process's peak
   RSS so far).  A spec that fails is recorded with its error and the check goes on.
2. **learning**: Slot Attention at 64×64 on procedural shapes, trained until FG-ARI on
   held-out scenes passes 0.8 or the time limit ends, which is then reported as a failure.
   Its batches come through the training loop's pinned prefetch.
3. **dinosaur**: DINOSAUR trained a few steps on features cached by ``ocf features
   extract`` from randomly initialised weights, a plumbing check; skipped with the reason
   when the ``dinosaur`` plugin or the ``ocf features`` command is not installed.

``--smoke`` runs each part on the CPU with batch 1, at most 2 frames at 32×32 where the model
builds at that size, 2 steps per spec, and 3 steps of the
learning check at 32×32 (its threshold is not expected to be reached then);
tests/test_gpu_check.py runs it.  Exit status 1 when a part failed, else 0.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

from ocf import plugins
from ocf.assembly import build, dummy_batch
from ocf.data.batches import StepBatches, take_batch
from ocf.data.prefetch import DeviceBatches
from ocf.run.bench import peak_memory_mb
from ocf.run.data import ensure_dataset, open_split
from ocf.run.evaluate import evaluate_model
from ocf.run.setup import Optimisation, check_precision, checkpoint_stages, pick_device, speed_options, train_step
from ocf.spec import ResolvedSpec, load

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
#: the paper-size specs: file name patterns under configs/*/
PAPER_PATTERNS = (
    "*paper*.yaml",
    "clevr_*.yaml",
    "movi_c_*.yaml",
    "coco*.yaml",
    "multi_dsprites_*.yaml",
    "tetrominoes_*.yaml",
    "objects_room_*.yaml",
)
LEARNING_SPEC = ROOT / "configs" / "slot_attention" / "shapes_32.yaml"
FG_ARI_GOAL = 0.8


def paper_specs(root: Path = ROOT) -> list[Path]:
    """Every spec under ``configs/`` matching :data:`PAPER_PATTERNS`, sorted."""
    found = {p for pattern in PAPER_PATTERNS for p in (root / "configs").glob(f"*/{pattern}")}
    return sorted(found)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _prepare(resolved: ResolvedSpec):
    """Device, model, optimisation and what to call, as training sets them up."""
    t = resolved.spec.train
    device = pick_device(t)
    check_precision(t, device)
    torch.manual_seed(t.seed)
    model = build(resolved, dry_run=False).to(device).train()
    checkpoint_stages(model, t.checkpoint_stages)
    opt = Optimisation.create(model, t)
    return device, model, opt, speed_options(model, t, device)


def smoke_overrides(path: Path, registry) -> list[str]:
    """Tiny sizes for ``--smoke``: batch 1 on the CPU, at most 2 frames, 32×32 where the
    model builds at that size (else the spec's resolution)."""
    d = load(path, registry).spec.data
    small = ["train.batch_size=1", "train.device=cpu", "train.curriculum=null", f"data.frames={min(d.frames, 2)}"]
    try:
        build(load(path, registry, [*small, "data.resolution=[32,32]"]), dry_run=True)
        return [*small, "data.resolution=[32,32]"]
    except Exception:  # noqa: BLE001 - an architecture tied to its resolution keeps it
        return small


def spec_steps(path: Path, registry, *, smoke: bool, steps: int) -> dict:
    """Train ``path``'s model ``steps`` timed steps (after one untimed) on a random batch."""
    record = {"spec": path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)}
    try:
        resolved = load(path, registry, smoke_overrides(path, registry) if smoke else [])
        t, d = resolved.spec.train, resolved.spec.data
        record.update(batch_size=t.batch_size, resolution=list(d.resolution), frames=d.frames, precision=t.precision)
        device, model, opt, net = _prepare(resolved)
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        batch = dummy_batch(resolved, t.batch_size, seed=t.seed).to(device)
        t0 = time.perf_counter()
        train_step(net, batch, opt, t, device, step=0)
        _sync(device)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(steps):
            result = train_step(net, batch, opt, t, device, step=i + 1)
        _sync(device)
        sec = (time.perf_counter() - t0) / steps
        record.update(
            ok=True,
            device=str(device),
            first_step_s=first,
            steps_per_s=1 / sec,
            peak_mb=peak_memory_mb(device),
            loss=float(result.loss.detach()),
        )
        del model, opt, net, batch
    except Exception as exc:  # noqa: BLE001 - recorded, and the check goes on
        record.update(ok=False, error=f"{type(exc).__name__}: {exc}", trace=traceback.format_exc(limit=3))
    return record


def learning_overrides(data_dir: Path, smoke: bool) -> list[str]:
    size = 32 if smoke else 64
    overrides = [
        f"data.resolution=[{size},{size}]",
        f"data.path={data_dir / f'shapes_{size}.h5'}",
        f"data.generate={{n: {200 if smoke else 3000}, seed: 0, options: {{resolution: {size}}}}}",
        f"train.batch_size={4 if smoke else 64}",
    ]
    return overrides + (["train.device=cpu", "model.grouper.iterations=1"] if smoke else [])


def learning(registry, data_dir: Path, *, smoke: bool, time_limit: float, eval_every: int) -> dict:
    """Slot Attention at 64×64 (32×32 with ``smoke``) until FG-ARI passes :data:`FG_ARI_GOAL`."""
    resolved = load(LEARNING_SPEC, registry, learning_overrides(data_dir, smoke))
    spec, t = resolved.spec, resolved.spec.train
    ensure_dataset(spec, registry)
    device, model, opt, net = _prepare(resolved)
    ds = open_split(spec, spec.data.train_split, registry)
    sampler = StepBatches(len(ds), t.batch_size, t.seed, source=ds.source)

    def make(step: int):
        return take_batch(ds, sampler.indices(step), spec.data.frames, seed=t.seed, step=step, random_window=True)

    batches = DeviceBatches(make, device)
    history, start, step = [], time.perf_counter(), 0
    max_steps = 3 if smoke else t.steps * 1000
    try:
        while step < max_steps and time.perf_counter() - start < time_limit:
            train_step(net, batches.get(step), opt, t, device, step=step)
            step += 1
            if step % eval_every == 0 or step == max_steps:
                scores = evaluate_model(model, resolved, split=spec.data.val_split, max_samples=256, progress=False)
                model.train()
                history.append({"step": step, "seconds": time.perf_counter() - start, "fg_ari": scores["fg_ari"]})
                if scores["fg_ari"] >= FG_ARI_GOAL:
                    break
    finally:
        batches.close()
    best = max((h["fg_ari"] for h in history), default=None)
    reached = best is not None and best >= FG_ARI_GOAL
    return {
        "spec": LEARNING_SPEC.relative_to(ROOT).as_posix(),
        "resolution": list(spec.data.resolution),
        "device": str(device),
        "goal": FG_ARI_GOAL,
        "reached": reached,
        "ok": reached or smoke,
        "steps": step,
        "seconds": time.perf_counter() - start,
        "best_fg_ari": best,
        "history": history,
        **({} if reached or smoke else {"error": f"FG-ARI {best} after {step} steps: below {FG_ARI_GOAL}"}),
    }


def dinosaur_missing(registry) -> str | None:
    """Why the DINOSAUR plumbing check cannot run here, or ``None`` when it can."""
    if not any(e.name.startswith("dinosaur") for e in registry.entries()):
        return "the dinosaur plugin is not installed (no component named dinosaur.*)"
    if not sorted((ROOT / "configs" / "dinosaur").glob("*.yaml")):
        return "no DINOSAUR spec in configs/dinosaur/"
    probe = subprocess.run([sys.executable, "-m", "ocf", "features", "--help"], capture_output=True, text=True)
    if probe.returncode != 0:
        return "the `ocf features` command is not installed"
    return None


def dinosaur(registry, work: Path, *, smoke: bool) -> dict:
    """Cache features of the smallest DINOSAUR spec's data with ``ocf features extract`` (the
    backbone randomly initialised: no weights file), then train it 3 steps on the cache."""
    from ocf.run.features import cache_overrides

    reason = dinosaur_missing(registry)
    if reason:
        print(f"gpu_check: DINOSAUR plumbing check skipped: {reason}", file=sys.stderr)
        return {"ok": True, "skipped": reason}
    spec = min((ROOT / "configs" / "dinosaur").glob("*.yaml"), key=lambda p: p.stat().st_size)
    cache = work / "dinosaur_features.h5"
    extra = ["train.device=cpu"] if smoke else []
    train = ["train", str(spec), "train.steps=3", "train.image_every=0", "--out", str(work / "dinosaur_run"), *extra]
    commands = [["features", "extract", str(spec), "--out", str(cache), *extra], train]
    record = {"spec": spec.relative_to(ROOT).as_posix(), "commands": [" ".join(["ocf", *c]) for c in commands]}
    for command in commands:
        if command is train:  # the cache's shapes go into the overrides once it exists
            command[2:2] = cache_overrides(cache)
            record["commands"][1] = " ".join(["ocf", *command])
        out = subprocess.run([sys.executable, "-m", "ocf", *command], capture_output=True, text=True, cwd=work)
        if out.returncode != 0:
            return {**record, "ok": False, "error": f"ocf {command[0]} exited {out.returncode}: {out.stderr[-2000:]}"}
    return {**record, "ok": True}


def run_check(*, smoke: bool, steps: int, time_limit: float, eval_every: int, specs: list[Path]) -> dict:
    registry = plugins.default().registry
    started = time.perf_counter()
    record = {"smoke": smoke, "torch": torch.__version__, "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        record["gpu"] = torch.cuda.get_device_name()
    record["specs"] = []
    for path in specs:
        print(f"gpu_check: {path.name}", file=sys.stderr)
        record["specs"].append(spec_steps(path, registry, smoke=smoke, steps=steps))
    with tempfile.TemporaryDirectory(prefix="ocf_gpu_check_") as work:
        try:
            record["learning"] = learning(
                registry, Path(work), smoke=smoke, time_limit=time_limit, eval_every=eval_every
            )
        except Exception as exc:  # noqa: BLE001 - recorded as the part's failure
            record["learning"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        record["dinosaur"] = dinosaur(registry, Path(work), smoke=smoke)
    record["seconds"] = time.perf_counter() - started
    record["ok"] = all(r["ok"] for r in record["specs"]) and record["learning"]["ok"] and record["dinosaur"]["ok"]
    return record


def markdown(record: dict) -> str:
    where = record.get("gpu") or ("CPU smoke run" if record["smoke"] else "no GPU")
    lines = [
        f"# GPU check ({where}, torch {record['torch']}, {record['seconds']:.0f} s): "
        + ("passed" if record["ok"] else "FAILED"),
        "",
        "| spec | batch | resolution × frames | steps/s | first step (s) | peak MB | result |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in record["specs"]:
        size = f"{'×'.join(map(str, r.get('resolution', [])))} × {r.get('frames', '?')}"
        if r["ok"]:
            row = f"{r['steps_per_s']:.2f} | {r['first_step_s']:.2f} | {r['peak_mb']:.0f} | ok"
        else:
            row = f"| | | {r['error'][:200]}"
        lines.append(f"| {r['spec']} | {r.get('batch_size', '')} | {size} | {row} |")
    learn = record["learning"]
    lines += ["", "## Slot Attention learning check", ""]
    if "best_fg_ari" in learn:
        lines.append(
            f"{learn['spec']} at {'×'.join(map(str, learn['resolution']))} on {learn['device']}: best FG-ARI "
            f"{learn['best_fg_ari']} after {learn['steps']} steps in {learn['seconds']:.0f} s; goal {learn['goal']} "
            + ("reached" if learn["reached"] else "not reached")
        )
    else:
        lines.append(f"failed: {learn['error']}")
    dino = record["dinosaur"]
    lines += ["", "## DINOSAUR plumbing check", ""]
    lines.append(f"skipped: {dino['skipped']}" if "skipped" in dino else ("ok" if dino["ok"] else dino["error"]))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (the test suite's run)")
    ap.add_argument("--out", help="output prefix (default benchmarks/results/gpu_check[_smoke])")
    ap.add_argument("--steps", type=int, help="timed steps per spec (default 5; smoke 1)")
    ap.add_argument("--time-limit", type=float, default=360.0, help="seconds for the learning check (default 360)")
    ap.add_argument("--eval-every", type=int, help="steps between FG-ARI evaluations (default 250; smoke 3)")
    ap.add_argument("--specs", nargs="*", type=Path, help="these specs instead of every paper-size spec")
    args = ap.parse_args(argv)
    out = Path(args.out or RESULTS / ("gpu_check_smoke" if args.smoke else "gpu_check"))
    record = run_check(
        smoke=args.smoke,
        steps=args.steps or (1 if args.smoke else 5),
        time_limit=args.time_limit,
        eval_every=args.eval_every or (3 if args.smoke else 250),
        specs=[p.resolve() for p in args.specs] if args.specs is not None else paper_specs(),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(record))
    print(markdown(record))
    return 0 if record["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
