"""The training loop: a plain PyTorch loop that any assembled model runs through.

:func:`run` writes a run directory (layout in :mod:`ocf.run.checkpoints`).  Batches are a
pure function of (seed, step) (see :class:`~ocf.data.batches.StepBatches`), and the
checkpoint keeps the RNG, optimizer, schedule and GECO state, so N steps then N resumed
steps equal 2N steps in one go.
"""

from __future__ import annotations

import contextlib
import functools
import json
import signal
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from ocf import distributed as dist
from ocf.assembly import Model, build
from ocf.data.batches import StepBatches, take_batch
from ocf.data.info import DatasetInfo
from ocf.data.prefetch import DeviceBatches
from ocf.errors import DataError, TrainingError, UserError
from ocf.records import Batch
from ocf.run.checkpoints import (
    RESUME_ENTRIES,
    check_resume_entries,
    init_from,
    load_checkpoint,
    load_model_state,
    load_optimisation_state,
    nonfinite,
    optimisation_state,
    prepare_run_dir,
    save_checkpoint,
)
from ocf.run.data import curriculum_frames, first_batch, open_split, registry_of
from ocf.run.evaluate import eval_forward, evaluate_model
from ocf.run.files import atomic_write_text, ensure_folder, folder_lock, writing
from ocf.run.resume import check_resume_spec, record_resume
from ocf.run.setup import (
    Optimisation,
    StepResult,
    check_precision,
    checkpoint_stages,
    freeze,
    pick_device,
    speed_options,
    train_step,
)
from ocf.spec import ResolvedSpec, Spec, resolve
from ocf.viz import decomposition_pictures


class Logger:
    """``metrics.jsonl`` and TensorBoard (when installed), on rank 0 only."""

    def __init__(self, run_dir: Path, enabled: bool) -> None:
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self.file = None
        if enabled:
            with writing(self.path):
                self.file = open(self.path, "a")
        self.tb = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run_dir / "tb"))
            except Exception:  # tensorboard is optional
                self.tb = None

    def log(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        with writing(self.path):
            self.file.write(json.dumps({"step": step, **values}) + "\n")
            self.file.flush()
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self.file:
            self.file.close()
        if self.tb is not None:
            self.tb.close()


def run(
    resolved: ResolvedSpec,
    *,
    out: str | None = None,
    resume: bool = False,
    steps: int | None = None,
    progress: bool = True,
    plugin_info: Iterable[Any] | None = None,
) -> Path:
    """Train ``resolved`` into a run dir and return its path.  ``plugin_info`` (the
    loaded plugins' :class:`~ocf.plugins.PluginInfo`) is recorded in ``versions.json``."""
    dist.init()
    t = resolved.spec.train
    if t.threads:
        torch.set_num_threads(t.threads)
    folder = Path(out or Path("runs") / resolved.spec.name)
    with _lock(folder, resume):
        restart = _restart_unfinished(folder, resume)
        resume = resume and not restart
        run_dir = prepare_run_dir(resolved, out, resume, plugin_info)
        changes = check_resume_spec(resolved, run_dir) if resume else {}
        job = TrainingRun(resolved, run_dir, resume=resume, total_steps=t.steps if steps is None else steps)
        if resume:
            record_resume(run_dir, resolved, changes, job.start, job.total_steps)
        job.loop(progress)
    return run_dir


def _lock(run_dir: Path, resume: bool):
    """The run folder's lock (:func:`folder_lock`), taken by rank 0 before anything is
    written there; a path :func:`prepare_run_dir` will refuse is left to it."""
    if dist.rank() != 0 or (resume and not run_dir.is_dir()) or (run_dir.exists() and not run_dir.is_dir()):
        return contextlib.nullcontext()
    return folder_lock(ensure_folder(run_dir, "run folder"))


def _restart_unfinished(run_dir: Path, resume: bool) -> bool:
    """Whether ``run_dir`` holds a run that began training but stopped before its first
    checkpoint: no ``last.pt``, but logged metrics or ``init.pt``.  Without ``--resume`` that
    is refused; with it the run restarts from step 0 (its metrics are cleared).  A folder
    whose run failed while being set up is reused as before."""
    if (run_dir / "checkpoints" / "last.pt").exists():
        return False
    metrics, init = run_dir / "metrics.jsonl", run_dir / "checkpoints" / "init.pt"
    logged = metrics.is_file() and metrics.stat().st_size > 0
    if not (logged or init.is_file()):
        return False
    found = [p.relative_to(run_dir).as_posix() for p in (run_dir / "spec.yaml", metrics, init) if p.is_file()]
    if not resume:
        raise UserError(
            f"{run_dir} holds a run that stopped before its first checkpoint ({', '.join(found)}); "
            "pass --resume to restart it from step 0, or choose another --out"
        )
    if dist.rank() == 0:
        print(f"ocf: {run_dir} stopped before its first checkpoint; restarting it from step 0", file=sys.stderr)
        with writing(run_dir / "metrics.jsonl", "remove"):
            (run_dir / "metrics.jsonl").unlink(missing_ok=True)
    return True


class TrainingRun:
    """The state of one run between steps: model, optimisation, data, logger and the
    last checkpoint written.  Set up (and resumed) on creation; :meth:`loop` trains."""

    def __init__(self, resolved: ResolvedSpec, run_dir: Path, *, resume: bool, total_steps: int) -> None:
        self.resolved, self.spec, self.t = resolved, resolved.spec, resolved.spec.train
        self.run_dir, self.ckpt_dir, self.total_steps = run_dir, run_dir / "checkpoints", total_steps
        self.device = pick_device(self.t)
        check_precision(self.t, self.device)
        torch.manual_seed(self.t.seed)
        self.model: Model = build(resolved, dry_run=False).to(self.device)
        if self.t.init_from and not resume:
            init_from(self.model, self.t.init_from)
        freeze(self.model, self.t.freeze)
        checkpoint_stages(self.model, self.t.checkpoint_stages)
        self.opt = Optimisation.create(self.model, self.t)
        self.start = self._resume() if resume else 0
        self.train_ds = open_split(self.spec, self.spec.data.train_split, registry_of(resolved))
        check_splits(self.train_ds.info, self.spec)
        n, t = len(self.train_ds), self.t
        self.sampler = StepBatches(n, t.batch_size, t.seed, dist.rank(), dist.world_size(), source=self.train_ds.source)
        self.batches = DeviceBatches(self.cpu_batch, self.device)
        self.net = speed_options(dist.wrap(self.model, self.device), self.t, self.device)
        self.logger = Logger(run_dir, dist.rank() == 0)
        last = self.ckpt_dir / "last.pt"
        self.last_good: Path | None = last if last.exists() else None
        self.picture_batch: Batch | None = None
        self.times: list[float] = []
        self.terms: dict[str, float] = {}  # the last logged loss terms (summary.json)
        if not resume:
            self.save(0, "init.pt")  # the initialisation, for `ocf eval RUN --checkpoint init`

    def _resume(self) -> int:
        """Restore model, optimizer, schedule, GECO and RNG from ``last.pt``; its step.  A
        malformed checkpoint, or one of another model, raises :class:`CheckpointError`."""
        path = self.ckpt_dir / "last.pt"
        ck = load_checkpoint(path, need=RESUME_ENTRIES)
        step = check_resume_entries(path, ck)
        if self.total_steps < step:
            raise UserError(f"--resume: {path} is at step {step}, past the {self.total_steps} steps asked for")
        load_model_state(self.model, ck["model"], path)
        load_optimisation_state(self.opt, ck, path)
        torch.set_rng_state(ck["rng"])
        return step

    def loop(self, progress: bool) -> None:
        """Steps ``start .. total_steps - 1``; on Ctrl-C, checkpoint and re-raise."""
        bar = _progress(
            range(self.start, self.total_steps),
            enabled=progress and dist.rank() == 0,
            initial=self.start,
            total=self.total_steps,
        )
        self.model.train()
        try:
            with _DeferredInterrupt() as interrupt:
                for step in bar:
                    self.step(step, bar)
                    if interrupt.requested and step + 1 < self.total_steps:
                        self._stop(step + 1)
        finally:
            self.batches.close()
            self.logger.close()
            if hasattr(bar, "close"):
                bar.close()
        self.finish()

    def _stop(self, done: int) -> None:
        """Ctrl-C arrived during step ``done - 1``, which was allowed to finish: checkpoint the
        state after it (exactly what an uninterrupted run holds there) and re-raise."""
        saved = self.save(done)
        where = f"; saved step {done} to {saved}" if saved else ""
        print(f"\nocf: interrupted{where}; continue with --resume", file=sys.stderr)
        raise KeyboardInterrupt

    def cpu_batch(self, step: int) -> Batch:
        """Step ``step``'s batch (this rank's share), as the dataset gives it."""
        frames, idx = curriculum_frames(self.spec, step), self.sampler.indices(step)
        return take_batch(self.train_ds, idx, frames, seed=self.t.seed, step=step, random_window=True)

    def step(self, step: int, bar: Any) -> None:
        t0 = time.perf_counter()
        frames = curriculum_frames(self.spec, step)
        batch = self.batches.get(step)
        result = train_step(self.net, batch, self.opt, self.t, self.device, step=step, last_good=self.last_good)
        self.times.append(time.perf_counter() - t0)
        self.periodic(step + 1, result, frames, bar)

    def periodic(self, done: int, result: StepResult, frames: int, bar: Any) -> None:
        """After ``done`` steps: log, picture, checkpoint and evaluate when they are due."""
        t, last = self.t, done == self.total_steps
        if done % t.log_every == 0 or last:
            self.log(done, result, frames, bar)
        if dist.rank() == 0 and t.image_every and (done % t.image_every == 0 or last):
            self.picture(done)
        if done % t.checkpoint_every == 0 or last:
            self.last_good = self.save(done) or self.last_good
        if dist.rank() == 0 and t.eval_every and (done % t.eval_every == 0 or last):
            self.evaluate(done)

    def log(self, done: int, result: StepResult, frames: int, bar: Any) -> None:
        self.terms = {k: float(v.detach()) for k, v in result.terms.items()}
        rate = len(self.times) / sum(self.times)
        loss = float(result.loss.detach())
        values = {
            "loss": loss,
            **{f"loss/{k}": v for k, v in self.terms.items()},
            "lr": self.opt.scheduler.get_last_lr()[0],
            "steps_per_s": rate,
        }
        if result.grad_norm is not None:
            values["grad_norm"] = float(result.grad_norm)
        if self.opt.geco:
            values.update(self.opt.geco.log_values())
        if self.t.curriculum:
            values["curriculum/frames"] = frames
        self.logger.log(done, values)
        if hasattr(bar, "set_postfix"):
            bar.set_postfix({"loss": f"{loss:.4g}", "it/s": f"{rate:.2f}"})
        self.times.clear()

    def picture(self, done: int) -> None:
        if self.picture_batch is None:
            self.picture_batch = first_batch(self.resolved, self.spec.data.val_split, 8)
        save_picture(self.model, self.picture_batch, self.run_dir / "pictures" / f"step_{done:07d}.png", self.device)

    def evaluate(self, done: int) -> None:
        scores = evaluate_model(
            self.model, self.resolved, split=self.spec.data.val_split, max_samples=self.t.eval_samples, progress=False
        )
        self.logger.log(done, {f"eval/{k}": v for k, v in scores.items()})

    def save(self, step: int, name: str = "last.pt") -> Path | None:
        """Checkpoint everything a resume needs (rank 0; others return ``None``).  Weights or
        optimizer state holding NaN or infinity are never saved: :class:`TrainingError`
        names them and the last good checkpoint, which stays as it was."""
        self.check_finite(step)  # on every rank: their weights are the same
        if dist.rank() != 0:
            return None
        payload = {"model": self.model.state_dict(), **optimisation_state(self.opt)}
        payload.update(rng=torch.get_rng_state(), step=step)
        save_checkpoint(self.ckpt_dir / name, payload)
        return self.ckpt_dir / name

    def check_finite(self, step: int) -> None:
        """Raise :class:`TrainingError` if a weight or optimizer state holds NaN or infinity."""
        bad = nonfinite(self.model.state_dict())
        for i, entries in enumerate(self.opt.optimizer.state.values()):
            bad += [f"optimizer state {k} of parameter {i}" for k in nonfinite(entries)]
        if bad:
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            where = (
                f"the last good checkpoint is {self.last_good}" if self.last_good else "no checkpoint was written yet"
            )
            raise TrainingError(
                f"the weights hold NaN or infinite values after step {step} ({', '.join(bad[:5])}{more}); "
                f"they were not saved, and {where}"
            )

    def finish(self) -> None:
        summary_file = self.run_dir / "summary.json"
        if dist.rank() == 0 and (self.terms or not summary_file.exists()):  # a resumed finished run keeps its own
            geco = self.opt.geco
            summary = {"step": self.total_steps, "losses": self.terms, "geco_beta": geco.summary() if geco else None}
            atomic_write_text(summary_file, json.dumps(summary, indent=2))
        dist.barrier()


def check_splits(info: DatasetInfo, spec: Spec) -> None:
    """Before the first step: the splits the run reads later (``data.val_split`` for pictures
    and evaluations during training, ``eval.split`` for ``ocf eval``) are in the data file;
    :class:`DataError` names the key, the file, the split and the splits the file has."""
    t = spec.train
    keys = {"eval.split": spec.eval.split}
    if t.image_every or t.eval_every:
        keys = {"data.val_split": spec.data.val_split, **keys}
    for key, split in keys.items():
        try:
            found = len(info.split_indices(split))
        except DataError as exc:
            raise DataError(f"{key}: {exc}") from None
        if not found:
            raise DataError(f"{key}: split {split!r} of {info.path} is empty")


def save_picture(model: Model, batch: Batch, path: Path, device: torch.device) -> None:
    """The decomposition of ``batch`` (an evaluation forward pass, which leaves the
    training RNG where it was: resume equality)."""
    state = eval_forward(model, batch.to(device), seed=0)
    with writing(path):
        decomposition_pictures(state, path)


class _DeferredInterrupt:
    """Within it, the first Ctrl-C (SIGINT) only sets ``requested``, so the training step under
    way finishes and the loop checkpoints a consistent state; a second Ctrl-C interrupts at
    once.  Outside the main thread (where handlers cannot be set) it does nothing."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> _DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _progress(it, enabled: bool, initial: int, total: int):
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, initial=initial, total=total, desc="train", dynamic_ncols=True, mininterval=1.0, file=sys.stderr)


def multirun(
    base: ResolvedSpec, overrides: list[str], out: str | None = None, plugin_info: Iterable[Any] | None = None
) -> list[str]:
    """Sweep comma-separated overrides of ``base`` through hydra-zen; each point trains
    into its own run dir (``out`` or ``runs/<name>-sweep``, then the job number).  Returns
    the run dirs."""
    from ocf import overrides as ov

    sweep_dir = Path(out or Path("runs") / f"{base.spec.name}-sweep")
    info = None if plugin_info is None else list(plugin_info)
    task = functools.partial(_sweep_point, registry=registry_of(base), plugin_info=info)
    return ov.launch_multirun(base.expanded(), list(overrides), task, str(sweep_dir.resolve()))


def _sweep_point(cfg: dict, job_dir: str, *, registry, plugin_info) -> str:
    return str(run(resolve(cfg, registry), out=job_dir, progress=True, plugin_info=plugin_info))
