"""Scoring a model on held-out data (``ocf eval``, and evaluation during training).

Evaluation runs under a fixed torch seed (``eval.seed``) so stochastic models (sampled
slot initialisations, random seed pixels) give the same numbers every time, and it never
moves the caller's random state: every evaluation forward pass goes through
:func:`evaluating`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from ocf.assembly import Model
from ocf.data import H5Dataset
from ocf.data.batches import ordered_batch
from ocf.errors import UserError
from ocf.records import Batch, State
from ocf.run.data import check_shape, open_split, registry_of
from ocf.run.generate import can_generate, generate
from ocf.spec import ResolvedSpec, resolve


@contextmanager
def evaluating(model: torch.nn.Module, seed: int) -> Iterator[None]:
    """Eval mode, no gradients, and the torch RNG seeded with ``seed`` inside a fork of the
    caller's RNG (left as it was); the model's train/eval mode is restored on exit."""
    was = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)
            yield
    finally:
        model.train(was)


def eval_forward(model: Model, batch: Batch, seed: int) -> State:
    """One forward pass without losses under :func:`evaluating`."""
    with evaluating(model, seed):
        return model(batch, losses=False)


def metric_objects(resolved: ResolvedSpec) -> dict[str, object]:
    """The metrics of ``eval.metrics``, built by ``EvalMetric.from_spec(resolved,
    **eval.metric_options.<name>)`` from the registry ``resolved`` was resolved against."""
    out = {}
    options = resolved.spec.eval.metric_options
    unknown = sorted(set(options) - set(resolved.spec.eval.metrics))
    if unknown:
        raise UserError(f"eval.metric_options names {', '.join(unknown)}, which eval.metrics does not list")
    registry = registry_of(resolved)
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


def evaluate_model(
    model: Model,
    resolved: ResolvedSpec,
    *,
    split: str | None = None,
    max_samples: int | None = None,
    progress: bool = True,
    conventions: dict[str, str] | None = None,
) -> dict[str, float]:
    """Every metric of ``eval.metrics`` over a split; metrics the model cannot support are
    reported as an error naming what is missing.  A ``conventions`` dict, when given, is
    filled with each metric's convention in words (``EvalMetric.convention()``)."""
    spec = resolved.spec
    split = split or spec.eval.split
    ds = open_split(spec, split, registry_of(resolved))
    limit = max_samples or spec.eval.max_samples
    n = len(ds) if limit is None else min(len(ds), limit)
    metrics = metric_objects(resolved)
    device = next(model.parameters(), torch.zeros(())).device
    bs = spec.eval.batch_size
    starts = range(0, n, bs)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"eval {split}", file=sys.stderr, dynamic_ncols=True, mininterval=1.0)
    generative = [m for m in metrics.values() if getattr(m, "generative", False)]
    if generative:
        reason = can_generate(model)
        if reason:
            raise UserError(f"metric {', '.join(m.name for m in generative)} scores generated scenes, but {reason}")
    with evaluating(model, spec.eval.seed):
        sampler = torch.Generator(device=device).manual_seed(spec.eval.seed + 1)
        for s in starts:
            batch = ordered_batch(ds, s, min(n, s + bs), spec.data.frames).to(device)
            state = model(batch, losses=False)
            for m in metrics.values():
                m.check(state)
                m.update_state(state)
            if generative:  # as many unconditional samples as real scenes
                fake = generate(model, batch.frames.shape[0], generator=sampler)
                for m in generative:
                    m.update_generated(fake)
    if conventions is not None:
        conventions.update({name: m.convention() for name, m in metrics.items()})
    return {name: float(m.compute()) for name, m in metrics.items()}


def rescoring_spec(
    resolved: ResolvedSpec,
    *,
    metrics: list[str] | None = None,
    metric_options: dict[str, dict[str, Any]] | None = None,
    data: str | Path | None = None,
) -> ResolvedSpec:
    """A finished run's spec set up to score other metrics or another file without
    retraining: ``eval.metrics`` replaced by ``metrics`` (each checked against the
    registry, with a suggestion for a misspelt name), their options those of
    ``eval.metric_options`` updated by ``metric_options``, and ``data.path`` replaced by
    ``data`` (never generated)."""
    registry = registry_of(resolved)
    expanded = resolved.expanded()
    if metrics is not None:
        if not metrics:
            raise UserError("--metrics: name at least one metric")
        for name in metrics:
            registry.entry("metric", name)  # RegistryError: unknown metric ..., did you mean ...?
        old = expanded["eval"].get("metric_options") or {}
        expanded["eval"]["metrics"] = list(metrics)
        expanded["eval"]["metric_options"] = {k: v for k, v in old.items() if k in metrics}
    chosen = expanded["eval"]["metrics"]
    for name, opts in (metric_options or {}).items():
        if name not in chosen:
            raise UserError(f"--metric-option names {name!r}, which is not scored (scored: {', '.join(chosen)})")
        expanded["eval"]["metric_options"].setdefault(name, {}).update(opts)
    if data is not None:
        path = Path(data)
        if not path.is_file():
            raise UserError(f"--data: {path} does not exist")
        expanded["data"].update(path=str(path), generate=None, dataset="hdf5")
    return resolve(expanded, registry)


def check_compatible(resolved: ResolvedSpec, split: str, run: str | Path) -> None:
    """Refuse a data file whose frames the run's model cannot read (resolution, channels,
    clip length, declared extras), naming the run's values and the file's."""
    spec = resolved.spec
    try:
        ds = H5Dataset(spec.data.path, split=split, frames=None, in_memory=False)
        check_shape(spec, ds, Path(spec.data.path))
    except UserError as exc:
        raise UserError(f"{spec.data.path} does not fit the run {run}: {exc}") from None
