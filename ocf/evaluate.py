"""``ocf eval`` and ``ocf viz``: score a trained run on held-out data and draw what it learned.

Evaluation runs under a fixed torch seed (``eval.seed``) so stochastic models (sampled
slot initialisations, random seed pixels) give the same numbers every time.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch
import yaml

from ocf.assembly import Model, build
from ocf.errors import UserError
from ocf.records import State


def load_run(run_dir: str | Path, checkpoint: str | None = None) -> tuple[object, Model, Path]:
    """The resolved spec of a run dir and its model with the chosen checkpoint's weights
    (``None``: the last; ``"init"``: the initialisation; or a file path)."""
    from ocf import plugins
    from ocf.spec import resolve
    from ocf.train import find_checkpoint, load_checkpoint

    run_dir = Path(run_dir)
    spec_file = run_dir / "spec.yaml"
    if not spec_file.exists():
        raise UserError(f"{run_dir}: not a run directory (no spec.yaml)")
    resolved = resolve(yaml.safe_load(spec_file.read_text()), plugins.default().registry)
    if checkpoint is None:
        ckpt = find_checkpoint(run_dir)
    elif checkpoint == "init":
        ckpt = run_dir / "checkpoints" / "init.pt"
    else:
        ckpt = Path(checkpoint)
    model = build(resolved, dry_run=False)
    model.load_state_dict(load_checkpoint(ckpt)["model"])
    model.eval()
    return resolved, model, ckpt


def metric_objects(resolved, registry) -> dict[str, object]:
    """The metrics of ``eval.metrics``, built by ``EvalMetric.from_spec(resolved,
    **eval.metric_options.<name>)``."""
    out = {}
    options = resolved.spec.eval.metric_options
    unknown = sorted(set(options) - set(resolved.spec.eval.metrics))
    if unknown:
        raise UserError(f"eval.metric_options names {', '.join(unknown)}, which eval.metrics does not list")
    for name in resolved.spec.eval.metrics:
        try:
            cls = registry.get("metric", name)
            opts = dict(options.get(name, {}))
            out[name] = cls.from_spec(resolved, **opts)
        except TypeError as exc:
            raise UserError(f"eval.metric_options.{name}: {exc}") from None
        except UserError as exc:
            raise UserError(f"eval.metrics: {exc}") from None
    return out


def evaluate_model(model: Model, resolved, *, split: str | None = None, max_samples: int | None = None, progress: bool = True) -> dict[str, float]:
    """Every metric of ``eval.metrics`` over a split; metrics the model cannot support are
    reported as an error naming what is missing."""
    from ocf import plugins
    from ocf.train import open_split, take_batch

    spec = resolved.spec
    registry = plugins.default().registry
    split = split or spec.eval.split
    ds = open_split(spec, split, registry)
    n = len(ds) if max_samples is None and spec.eval.max_samples is None else min(len(ds), max_samples or spec.eval.max_samples)
    metrics = metric_objects(resolved, registry)
    device = next(model.parameters(), torch.zeros(())).device
    bs = spec.eval.batch_size
    starts = range(0, n, bs)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"eval {split}", file=sys.stderr, dynamic_ncols=True, mininterval=1.0)
    generative = [m for m in metrics.values() if getattr(m, "generative", False)]
    if generative:
        from ocf.generate import can_generate, generate

        reason = can_generate(model)
        if reason:
            raise UserError(f"metric {', '.join(m.name for m in generative)} scores generated scenes, but {reason}")
    was = model.training
    model.eval()
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(spec.eval.seed)
        sampler = torch.Generator(device=device).manual_seed(spec.eval.seed + 1)
        for s in starts:
            batch = take_batch(ds, list(range(s, min(n, s + bs))), spec.data.frames, seed=0, step=0, random_window=False).to(device)
            state = model(batch, losses=False)
            for m in metrics.values():
                m.check(state)
                m.update_state(state)
            if generative:  # as many unconditional samples as real scenes
                fake = generate(model, batch.frames.shape[0], generator=sampler)
                for m in generative:
                    m.update_generated(fake)
    model.train(was)
    return {name: float(m.compute()) for name, m in metrics.items()}


def main(run_dir: str, *, split: str | None = None, as_json: bool = False, checkpoint: str | None = None, max_samples: int | None = None) -> dict[str, float]:
    resolved, model, ckpt = load_run(run_dir, checkpoint)
    split = split or resolved.spec.eval.split
    results = evaluate_model(model, resolved, split=split, max_samples=max_samples, progress=not as_json)
    record = {"run": str(run_dir), "checkpoint": str(ckpt), "split": split, "metrics": results}
    name = "eval" if checkpoint is None else f"eval_{Path(str(checkpoint)).stem}"
    (Path(run_dir) / f"{name}_{split}.json").write_text(json.dumps(record, indent=2))
    if as_json:
        print(json.dumps(record, indent=2))
    else:
        from ocf.cli import format_table

        rows = [["metric", "value"]] + [[k, "nan" if math.isnan(v) else f"{v:.4f}"] for k, v in results.items()]
        print(f"{run_dir} ({ckpt.name}, split {split})")
        print(format_table(rows))
    return results


def decomposition_pictures(state: State, path: Path, max_items: int = 8) -> list[Path]:
    """Input, reconstruction, ground truth, predicted segmentation and per-slot images as
    a PNG (first frame); for video also a GIF over time.  Returns the files written."""
    from ocf import viz

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = state.batch.frames[:max_items].float().cpu()  # [b t c h w]
    seg = state.segmentation()
    r = state.rendering
    recon = r.recon[:max_items].float().cpu() if r is not None and r.recon is not None and r.target is None else None
    rgb = r.rgb[:max_items].float().cpu() if r is not None and r.rgb is not None and r.target is None else None
    masks = seg[:max_items].float().cpu() if seg is not None else None
    gt = state.batch.masks[:max_items].cpu() if state.batch.masks is not None else None
    figures = viz.video_figure(frames, recon, masks, rgb, gt, max_items=max_items)  # one per frame
    figures[0].save(path)
    written = [path]
    if len(figures) > 1:
        gif = path.with_suffix(".gif")
        viz.save_gif(figures, gif, fps=4)
        written.append(gif)
    return written


def visualise(run_dir: str, *, out: str | None = None, split: str | None = None, n: int = 8, checkpoint: str | None = None) -> list[Path]:
    from ocf import plugins
    from ocf.train import open_split, take_batch

    resolved, model, ckpt = load_run(run_dir, checkpoint)
    spec = resolved.spec
    ds = open_split(spec, split or spec.eval.split, plugins.default().registry)
    batch = take_batch(ds, list(range(min(n, len(ds)))), spec.data.frames, seed=0, step=0, random_window=False)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(spec.eval.seed)
        state = model(batch, losses=False)
    out_dir = Path(out or Path(run_dir) / "viz")
    written = decomposition_pictures(state, out_dir / "decomposition.png", max_items=n)
    for stage, component in model.stages().items():
        written += component.pictures(state, out_dir)
    for p in written:
        print(p)
    return written
