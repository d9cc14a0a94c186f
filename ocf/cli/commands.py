"""The bodies of ``ocf build``, ``train``, ``eval``, ``viz``, ``sample`` and ``bench``:
load what the command names, call the job in :mod:`ocf.run`, print and write its results.

The process-wide plugins (:func:`ocf.plugins.default`) are fetched here, at the command
line, and reach the jobs as the registry of the resolved spec.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import yaml

from ocf import assembly
from ocf import plugins as ocf_plugins
from ocf import spec as spec_mod
from ocf.cli.table import format_table
from ocf.errors import SpecError, UserError
from ocf.run import bench as bench_job
from ocf.run import train
from ocf.run.checkpoints import load_run
from ocf.run.data import first_batch
from ocf.run.evaluate import check_compatible, eval_forward, evaluate_model, rescoring_spec
from ocf.run.files import atomic_write, atomic_write_text, check_output_file, ensure_folder, writing_into
from ocf.run.generate import can_generate, conditioning, generate
from ocf.run.memory import check_memory, memory_limit
from ocf.run.setup import check_device
from ocf.spec import ResolvedSpec
from ocf.viz import decomposition_pictures, sample_pictures


def load_spec(path: str, overrides: list[str]) -> ResolvedSpec:
    """Load a spec with the default plugins; mention failed plugins when a name is unknown."""
    plugins = ocf_plugins.default()
    try:
        return spec_mod.load(path, plugins.registry, overrides)
    except SpecError as exc:
        failed = plugins.failed()
        if failed and any("unknown" in p for p in exc.problems):
            notes = [
                f"note: plugin {p.name!r} failed to load ({p.error}); its components are unavailable" for p in failed
            ]
            raise SpecError(exc.problems + notes) from None
        raise


def cmd_build(args) -> int:
    resolved = load_spec(args.spec, args.overrides)
    check_device(resolved.spec.train)  # what training would refuse on this machine
    memory = check_memory(resolved)  # before anything is allocated
    model = assembly.build(resolved, dry_run=False)
    state = assembly.dry_forward(model)
    rows = assembly.report(model, state, resolved.registry)
    table = [["stage", "component", "plugin", "params", "outputs"]]
    for r in rows:
        outs = ", ".join(f"{k} {list(v)}" for k, v in r.outputs.items()) or "-"
        table.append([r.stage, r.name, r.plugin, f"{r.parameters:,}", outs])
    d = resolved.spec.data
    shape = [2, d.frames, d.channels, *d.resolution]
    print(f"spec {resolved.spec.name}: data [b t c h w] = [{', '.join(map(str, shape))}]")
    print(format_table(table))
    total = sum(p.numel() for p in model.parameters())
    print(f"total parameters: {total:,}")
    print(memory_line(resolved, memory))
    return 0


def memory_line(resolved: ResolvedSpec, memory) -> str:
    """``memory per training step: about 0.57 GB (...); limit 22.1 GB (the RAM available ...)``."""
    limit, source = memory_limit(resolved.spec.train)
    bound = f"; limit {limit / 1e9:.3g} GB ({source})" if limit else "; no limit known on this machine"
    if memory is None:
        return "memory per training step: not estimated (the model cannot be built on the meta device)" + bound
    return f"memory per training step: {memory.describe()}{bound}"


def cmd_train(args) -> int:
    info = list(ocf_plugins.default().info.values())
    if args.multirun:  # the overrides are the sweep; hydra applies them to the expanded spec
        for run_dir in train.multirun(load_spec(args.spec, []), args.overrides, out=args.out, plugin_info=info):
            print(run_dir)
        return 0
    resolved = load_spec(args.spec, args.overrides)
    run_dir = train.run(resolved, out=args.out, resume=args.resume, steps=args.steps, plugin_info=info)
    summary = json.loads((run_dir / "summary.json").read_text())
    losses = ", ".join(f"{k} {v:.4g}" for k, v in summary.get("losses", {}).items()) or "no loss logged"
    print(f"ocf: {resolved.spec.name or 'run'} trained to step {summary['step']} in {run_dir} ({losses})")
    print(f"next: ocf eval {run_dir}  ·  ocf viz {run_dir}")
    return 0


def evaluate_run(
    run_dir: str,
    *,
    split: str | None = None,
    as_json: bool = False,
    checkpoint: str | None = None,
    max_samples: int | None = None,
    metrics: list[str] | None = None,
    metric_options: dict[str, dict] | None = None,
    data: str | None = None,
) -> dict[str, float]:
    """``ocf eval``: score a run's checkpoint — with its spec's metrics, or ``metrics`` (any
    registered metric, options from ``metric_options``), on its own file or on ``data`` —
    write ``RUN/eval[_CKPT][_DATA]_<split>.json`` and print the scores (a table, or the
    record as JSON).  Scores already in that file for the same checkpoint and data are kept
    unless scored again.  Each metric's convention is printed and recorded."""
    resolved, model, ckpt = load_run(run_dir, ocf_plugins.default().registry, checkpoint)
    if metrics is not None or metric_options or data is not None:
        resolved = rescoring_spec(resolved, metrics=metrics, metric_options=metric_options, data=data)
    split = split or resolved.spec.eval.split
    if data is not None:
        check_compatible(resolved, split, run_dir)
    name = "eval" if checkpoint is None else f"eval_{Path(str(checkpoint)).stem}"
    if data is not None:
        name += f"_{Path(data).stem}"
    record_file = check_output_file(Path(run_dir) / f"{name}_{split}.json")  # before scoring
    conventions: dict[str, str] = {}
    results = evaluate_model(
        model, resolved, split=split, max_samples=max_samples, progress=not as_json, conventions=conventions
    )
    record = {
        "run": str(run_dir),
        "checkpoint": str(ckpt),
        "data": resolved.spec.data.path,
        "split": split,
        "metrics": results,
        "metric_options": resolved.spec.eval.metric_options,
        "conventions": conventions,
    }
    _write_eval_record(record_file, record)
    if as_json:
        print(json.dumps(record, indent=2))
    else:
        rows = [["metric", "value"]] + [[k, "nan" if math.isnan(v) else f"{v:.4f}"] for k, v in results.items()]
        print(f"{run_dir} ({ckpt.name}, {resolved.spec.data.path}, split {split})")
        print(format_table(rows))
        print("\n".join(f"{m}: {text}" for m, text in conventions.items()))
    return results


def _write_eval_record(path: Path, record: dict) -> None:
    """Write ``record``, keeping the other metrics of an earlier record of the same
    checkpoint, data file and split (written atomically)."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        old = None
    same = isinstance(old, dict) and all(old.get(k) == record[k] for k in ("checkpoint", "data", "split"))
    if same and isinstance(old.get("metrics"), dict):
        record = {
            **record,
            "metrics": {**old["metrics"], **record["metrics"]},
            "metric_options": {**(old.get("metric_options") or {}), **record["metric_options"]},
        }
    atomic_write_text(path, json.dumps(record, indent=2))


def parse_metric_options(items: list[str] | None) -> dict[str, dict]:
    """``["kid.feature=random", "mbo.matching=hungarian"]`` → ``{kid: {feature: random}, ...}``
    (values read as YAML scalars)."""
    out: dict[str, dict] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        metric, dot, option = key.partition(".")
        if not (sep and dot and metric and option):
            raise UserError(f"--metric-option {item!r}: expected METRIC.OPTION=VALUE, e.g. kid.subset_size=100")
        out.setdefault(metric, {})[option] = yaml.safe_load(value)
    return out


def cmd_eval(args) -> int:
    metrics = None if args.metrics is None else [m.strip() for m in args.metrics.split(",") if m.strip()]
    evaluate_run(
        args.run_dir,
        split=args.split,
        as_json=args.json,
        checkpoint=args.checkpoint,
        max_samples=args.max_samples,
        metrics=metrics,
        metric_options=parse_metric_options(args.metric_option),
        data=args.data,
    )
    return 0


def visualise(
    run_dir: str, *, out: str | None = None, split: str | None = None, n: int = 8, checkpoint: str | None = None
) -> list[Path]:
    """``ocf viz``: the decomposition of the first ``n`` samples and each component's own
    pictures, under ``RUN/viz`` (or ``out``); prints the files written."""
    resolved, model, _ = load_run(run_dir, ocf_plugins.default().registry, checkpoint)
    spec = resolved.spec
    out_dir = ensure_folder(out or Path(run_dir) / "viz", "viz output folder")  # before the forward pass
    state = eval_forward(model, first_batch(resolved, split or spec.eval.split, n), spec.eval.seed)
    with writing_into(out_dir):
        written = decomposition_pictures(state, out_dir / "decomposition.png", max_items=n)
        for component in model.stages().values():
            written += component.pictures(state, out_dir)
    for p in written:
        print(p)
    return written


def cmd_viz(args) -> int:
    visualise(args.run_dir, out=args.out, split=args.split, n=args.n)
    return 0


def sample(
    run_dir: str,
    *,
    n: int = 16,
    temperature: float = 1.0,
    condition: int | None = None,
    frames: int | None = None,
    seed: int = 0,
    out: str | None = None,
    checkpoint: str | None = None,
    split: str | None = None,
) -> list[Path]:
    """``ocf sample``: load a run, generate, save pictures and ``samples.pt`` under
    ``RUN/samples`` (or ``out``); prints the files written."""
    resolved, model, _ = load_run(run_dir, ocf_plugins.default().registry, checkpoint)
    reason = can_generate(model)
    if reason:
        raise UserError(f"cannot sample from {run_dir}: {reason}")
    if temperature <= 0:
        raise UserError(f"--temperature must be positive, got {temperature}")
    out_dir = ensure_folder(out or Path(run_dir) / "samples", "sample output folder")  # before generating
    real, observed = conditioning(resolved, split, n, condition) if condition is not None else (None, None)
    g = torch.Generator(device=next(model.parameters(), torch.zeros(())).device).manual_seed(seed)
    torch.manual_seed(seed)
    state = generate(model, n, condition=observed, frames=frames, temperature=temperature, generator=g)
    with writing_into(out_dir):
        paths = sample_pictures(state, out_dir, real=None if real is None else real.frames, observed=condition or 0)
    recon = state.rendering.recon.cpu()
    atomic_write(out_dir / "samples.pt", lambda tmp: torch.save({"recon": recon}, tmp))
    for p in paths:
        print(p)
    return paths


def cmd_sample(args) -> int:
    sample(
        args.run_dir,
        n=args.n,
        temperature=args.temperature,
        condition=args.condition,
        frames=args.frames,
        seed=args.seed,
        out=args.out,
        checkpoint=args.checkpoint,
        split=args.split,
    )
    return 0


def bench(
    spec_path: str,
    overrides: list[str],
    *,
    steps: int = 20,
    warmup: int = 3,
    as_json: bool = False,
    out: str | None = None,
    profile: int = 0,
) -> dict:
    """``ocf bench``: measure a spec, print the record (a table, or JSON) and write it to ``out``."""
    resolved = load_spec(spec_path, overrides)
    record = bench_job.run(resolved, steps=steps, warmup=warmup, progress=not as_json, profile=profile)
    record["command"] = "ocf bench " + " ".join([spec_path, *overrides, f"--steps {steps}"])
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2) if as_json else f"{spec_path}\n{format_record(record)}")
    return record


def cmd_bench(args) -> int:
    if args.steps < 1 or args.warmup < 0 or args.profile < 0:
        raise UserError("--steps must be at least 1, --warmup and --profile at least 0")
    bench(
        args.spec,
        args.overrides,
        steps=args.steps,
        warmup=args.warmup,
        as_json=args.json,
        out=args.out,
        profile=args.profile,
    )
    return 0


def format_record(r: dict) -> str:
    """The table ``ocf bench`` prints for a record of :func:`ocf.run.bench.run`."""
    tr, fl = r["train"], r["flops"]
    rows = [
        ["measure", "value"],
        [
            "train",
            f"{tr['steps_per_s']:.2f} steps/s, {tr['samples_per_s']:.1f} samples/s "
            f"({tr['sec_per_step'] * 1000:.0f} ms/step, median of {r['steps_measured']})",
        ],
        [
            "data",
            f"{r['data']['samples_per_s']:.0f} samples/s"
            + ("  (slower than training: the model is starved)" if r["data"]["starved"] else ""),
        ],
        ["FLOPs/step", f"{fl['per_step'] / 1e9:.2f} GFLOP"],
        [
            "achieved",
            f"{fl['achieved_per_s'] / 1e9:.2f} GFLOP/s = {100 * fl['utilisation']:.1f}% of the measured "
            f"matmul peak ({fl['machine_matmul_peak_per_s'] / 1e9:.1f} GFLOP/s)",
        ],
        [
            "eval",
            f"{r['eval']['samples_per_s']:.1f} samples/s (batch {r['eval']['batch_size']}, "
            f"{r['eval']['sec_per_batch'] * 1000:.0f} ms)",
        ],
        ["memory", f"{r['memory']['peak_mb']:.0f} MB ({r['memory']['kind']})"],
        ["first step", f"{tr['first_step_s']:.2f} s (with train.compile this includes compilation)"],
        ["options", ", ".join(f"{k}={v}" for k, v in r["options"].items())],
        [
            "machine",
            f"{r['machine']['cpu'] or r['machine']['device']}, {r['machine']['threads']} threads, "
            f"torch {r['machine']['torch']}",
        ],
    ]
    text = format_table(rows)
    if r.get("profile"):
        hot = [["operator (self CPU time)", "ms/step", "share", "calls/step"]]
        hot += [
            [h["op"], f"{h['self_ms_per_step']:.1f}", f"{100 * h['share']:.1f}%", f"{h['calls_per_step']:g}"]
            for h in r["profile"]
        ]
        text += "\n\n" + format_table(hot)
    return text
