"""The training loop: a plain PyTorch loop that any assembled model runs through.

Run directory layout::

    RUN_DIR/spec.yaml          the fully resolved spec (every default filled in)
    RUN_DIR/versions.json      python, torch, ocf and every plugin's distribution version
    RUN_DIR/metrics.jsonl      one JSON line per logged step (losses, lr, steps/s) and per
                               evaluation during training (``eval/<metric>``, ``train.eval_every``)
    RUN_DIR/tb/                TensorBoard events (when tensorboard is installed)
    RUN_DIR/pictures/          decompositions every ``train.image_every`` steps
    RUN_DIR/checkpoints/       init.pt (step 0) and last.pt, written atomically
    RUN_DIR/summary.json       the final step, losses, steps/s

Batches are a pure function of (seed, step) (see :class:`StepBatches`), and the checkpoint
keeps the RNG, optimizer, schedule and GECO state, so N steps then N resumed steps equal
2N steps in one go.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor

from ocf import distributed as dist
from ocf.assembly import Model, build
from ocf.errors import TrainingError, UserError
from ocf.geco import Geco
from ocf.records import Batch
from ocf.spec import ResolvedSpec, Spec, TrainSpec


# -- data --------------------------------------------------------------------------------
def ensure_dataset(spec: Spec, registry) -> Path:
    """The spec's data file, generated from its registered generator when missing."""
    from ocf.data import make_dataset

    d = spec.data
    path = Path(d.path)
    if path.exists():
        return path
    if d.generate is None or d.dataset == "hdf5":
        raise UserError(f"data.path: {path} does not exist (and data.generate is off)")
    if dist.rank() == 0:
        print(f"ocf: {path} is missing; generating {d.generate.n} samples of {d.dataset!r} (seed {d.generate.seed})", file=sys.stderr)
        make_dataset(registry, d.dataset, path, n=d.generate.n, seed=d.generate.seed, options=d.generate.options)
    dist.barrier()
    return path


def open_split(spec: Spec, split: str, registry, frames: int | None = None):
    from ocf.data import H5Dataset

    path = ensure_dataset(spec, registry)
    ds = H5Dataset(path, split=split, frames=None, in_memory=spec.data.in_memory)
    check_shape(spec, ds, path)
    return ds


def check_shape(spec: Spec, ds, path: Path) -> None:
    """The file must hold what the spec says: resolution, channels, enough frames."""
    t, h, w, c = ds.sample_shape  # per sample [T H W C]
    d = spec.data
    problems = []
    if (h, w) != tuple(d.resolution):
        problems.append(f"data.resolution is {list(d.resolution)} but {path} holds {h}x{w} frames")
    if c != d.channels:
        problems.append(f"data.channels is {d.channels} but {path} holds {c}-channel frames")
    if t < d.frames:
        problems.append(f"data.frames is {d.frames} but {path} holds clips of {t} frames")
    for name, shape in d.extras.items():
        extra = ds.info.extras.get(name)
        if extra is None:
            problems.append(f"data.extras names {name!r}, but {path} has no such extra (it has {', '.join(sorted(ds.info.extras)) or 'none'})")
        elif tuple(extra.shape[1:]) != tuple(shape):
            problems.append(f"data.extras.{name} is {list(shape)} per sample but {path} holds {list(extra.shape[1:])}")
    if problems:
        raise UserError("; ".join(problems))


class StepBatches:
    """Indices of the batch at each step, a pure function of (seed, step).

    Epoch ``e`` visits a permutation drawn from ``seed + e``; each rank takes its slice of
    every global batch.  Random frame windows come from the same (seed, step).
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1) -> None:
        if n < batch_size:
            raise UserError(f"train.batch_size {batch_size} is larger than the training split ({n} samples)")
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.per_epoch = n // batch_size
        self._perm_epoch, self._perm = -1, None

    def indices(self, step: int) -> list[int]:
        epoch, pos = divmod(step, self.per_epoch)
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm, self._perm_epoch = torch.randperm(self.n, generator=g), epoch
        idx = self._perm[pos * self.batch_size : (pos + 1) * self.batch_size]
        return idx[self.rank :: self.world].tolist()


def take_batch(ds, idx: list[int], frames: int, *, seed: int, step: int, random_window: bool) -> Batch:
    """Gather samples and cut a window of ``frames`` frames (random per sample in training)."""
    batch = ds.get_batch(idx)
    t = batch.frames.shape[1]
    if frames >= t:
        return batch
    if random_window:
        g = torch.Generator().manual_seed(seed * 7919 + step)
        starts = torch.randint(0, t - frames + 1, (len(idx),), generator=g)
    else:
        starts = torch.zeros(len(idx), dtype=torch.long)
    return window(batch, starts, frames)


def window(batch: Batch, starts: Tensor, frames: int) -> Batch:
    """Cut ``frames`` frames from ``starts`` per sample; extras with a time axis
    (second axis equal to the clip length) are cut too."""
    t = batch.frames.shape[1]
    ar = starts[:, None] + torch.arange(frames)[None]  # [b frames]

    def cut(x: Tensor) -> Tensor:
        index = ar.reshape(ar.shape + (1,) * (x.dim() - 2)).expand(ar.shape + x.shape[2:])
        return torch.gather(x, 1, index)

    return Batch(
        frames=cut(batch.frames),
        masks=None if batch.masks is None else cut(batch.masks),
        extras={k: cut(v) if v.dim() >= 2 and v.shape[1] == t else v for k, v in batch.extras.items()},
    )


def curriculum_frames(spec: Spec, step: int) -> int:
    c = spec.train.curriculum
    if c is None:
        return spec.data.frames
    return min(c.max, c.start + (step // c.every) * c.increment, spec.data.frames)


# -- optimisation ------------------------------------------------------------------------
def make_optimizer(params, t: TrainSpec) -> torch.optim.Optimizer:
    o = t.optimizer
    if o.type == "adam":
        return torch.optim.Adam(params, lr=o.lr, betas=o.betas, eps=o.eps, weight_decay=o.weight_decay)
    if o.type == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, betas=o.betas, eps=o.eps, weight_decay=o.weight_decay)
    return torch.optim.RMSprop(params, lr=o.lr, momentum=o.momentum, eps=o.eps, weight_decay=o.weight_decay)


def lr_factor(t: TrainSpec, step: int) -> float:
    s = t.schedule
    f = min(1.0, (step + 1) / s.warmup_steps) if s.warmup_steps else 1.0
    if s.decay == "step":
        f *= s.decay_rate ** (step // s.decay_steps)
    elif s.decay == "exponential":
        f *= s.decay_rate ** (step / s.decay_steps)
    return f


def pick_device(t: TrainSpec) -> torch.device:
    if t.device != "auto":
        if t.device == "cuda" and not torch.cuda.is_available():
            raise UserError("train.device is cuda but no CUDA device is available")
        return torch.device(t.device)
    if torch.cuda.is_available():
        return torch.device("cuda", dist.local_rank())
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def speed_options(model: torch.nn.Module, t: TrainSpec, device: torch.device) -> torch.nn.Module:
    """Apply ``train.channels_last`` / ``tf32`` to ``model`` and return what to call:
    the model, or its ``torch.compile`` wrapper with ``train.compile``."""
    if t.tf32 and device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if t.channels_last:
        model.to(memory_format=torch.channels_last)
    return torch.compile(model) if t.compile else model


def autocast(t: TrainSpec, device: torch.device):
    if t.precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if t.precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


# -- checkpoints -------------------------------------------------------------------------
def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write atomically: a temp file in the same directory, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: no such checkpoint") from None
    except Exception as exc:
        raise UserError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {exc})") from None


def find_checkpoint(run_or_file: str | Path) -> Path:
    p = Path(run_or_file)
    if p.is_file():
        return p
    last = p / "checkpoints" / "last.pt"
    if last.exists():
        return last
    raise UserError(f"{p}: no checkpoint found (expected {last})")


def init_from(model: Model, source: str) -> list[str]:
    """Copy every parameter whose name and shape match from another run's checkpoint."""
    state = load_checkpoint(find_checkpoint(source))["model"]
    own = model.state_dict()
    loaded = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not loaded:
        raise UserError(f"train.init_from: {source} shares no parameter with this model")
    own.update(loaded)
    model.load_state_dict(own)
    return sorted(loaded)


def freeze(model: Model, stages: list[str]) -> None:
    known = model.stages()
    for stage in stages:
        if stage not in known:
            raise UserError(f"train.freeze: no stage {stage!r}; the model has {', '.join(known)}")
        for p in known[stage].parameters():
            p.requires_grad_(False)


# -- run directory -----------------------------------------------------------------------
def versions() -> dict[str, str]:
    import importlib.metadata as md

    from ocf import plugins

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in ("ocf", "torch", "pluggy", "pydantic", "einops", "torchmetrics", "h5py", "hydra-zen", "numpy"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    for info in plugins.default().info.values():
        out[f"plugin:{info.name}"] = f"{info.distribution} {info.version} ({info.status})"
    return out


def prepare_run_dir(resolved: ResolvedSpec, out: str | None, resume: bool) -> Path:
    run_dir = Path(out or Path("runs") / resolved.spec.name)
    has_ckpt = (run_dir / "checkpoints" / "last.pt").exists()
    if resume and not has_ckpt:
        raise UserError(f"--resume: {run_dir} has no checkpoint to resume from")
    if not resume and has_ckpt:
        raise UserError(f"{run_dir} already holds a run; pass --resume to continue it or --out for a new one")
    if dist.rank() == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            (run_dir / "spec.yaml").write_text(yaml.safe_dump(resolved.expanded(), sort_keys=False))
            (run_dir / "versions.json").write_text(json.dumps(versions(), indent=2))
    return run_dir


class Logger:
    def __init__(self, run_dir: Path, enabled: bool) -> None:
        self.enabled = enabled
        self.file = open(run_dir / "metrics.jsonl", "a") if enabled else None
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


# -- the loop ----------------------------------------------------------------------------
def run(resolved: ResolvedSpec, *, out: str | None = None, resume: bool = False, steps: int | None = None, progress: bool = True) -> Path:
    """Train ``resolved`` into a run dir and return its path."""
    from ocf import plugins

    dist.init()
    spec = resolved.spec
    t = spec.train
    if t.threads:
        torch.set_num_threads(t.threads)
    registry = plugins.default().registry
    run_dir = prepare_run_dir(resolved, out, resume)
    device = pick_device(t)
    torch.manual_seed(t.seed)
    model = build(resolved, dry_run=False).to(device)
    if t.init_from and not resume:
        init_from(model, t.init_from)
    freeze(model, t.freeze)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise UserError("the model has no trainable parameters (check train.freeze)")
    optimizer = make_optimizer(params, t)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(t, s))
    geco = Geco(t.geco) if t.geco else None
    start = 0
    ckpt_dir = run_dir / "checkpoints"
    if resume:
        ck = load_checkpoint(ckpt_dir / "last.pt")
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
        if geco and ck.get("geco"):
            geco.load_state_dict(ck["geco"])
        torch.set_rng_state(ck["rng"])
        start = int(ck["step"])
    total_steps = t.steps if steps is None else steps
    train_ds = open_split(spec, spec.data.train_split, registry)
    sampler = StepBatches(len(train_ds), t.batch_size, t.seed, dist.rank(), dist.world_size())
    net = speed_options(dist.wrap(model, device), t, device)
    logger = Logger(run_dir, dist.rank() == 0)
    last_good: Path | None = ckpt_dir / "last.pt" if (ckpt_dir / "last.pt").exists() else None

    def checkpoint(step: int, name: str = "last.pt") -> Path | None:
        if dist.rank() != 0:
            return None
        payload = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "geco": geco.state_dict() if geco else None,
            "rng": torch.get_rng_state(),
            "step": step,
        }
        save_checkpoint(ckpt_dir / name, payload)
        return ckpt_dir / name

    if not resume:
        checkpoint(0, "init.pt")  # the initialisation, for `ocf eval RUN --checkpoint init`
    picture_batch = None
    bar = _progress(range(start, total_steps), enabled=progress and dist.rank() == 0, initial=start, total=total_steps)
    times: list[float] = []
    terms_f: dict[str, float] = {}
    step = start
    model.train()
    try:
        for step in bar:
            t0 = time.perf_counter()
            frames = curriculum_frames(spec, step)
            batch = take_batch(train_ds, sampler.indices(step), frames, seed=t.seed, step=step, random_window=True).to(device)
            with autocast(t, device):
                state = net(batch)
            terms = {k: v.float() for k, v in state.losses.items()}
            loss = geco.loss(terms) if geco else Model.total(terms)
            if not torch.isfinite(loss):
                where = f"the last good checkpoint is {last_good}" if last_good else "no checkpoint was written yet"
                values = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in terms.items())
                raise TrainingError(f"loss became {float(loss.detach())} at step {step} ({values}); {where}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, t.grad_clip) if t.grad_clip else None
            optimizer.step()
            scheduler.step()
            times.append(time.perf_counter() - t0)
            done = step + 1
            if done % t.log_every == 0 or done == total_steps:
                terms_f = {k: float(v.detach()) for k, v in terms.items()}
                rate = len(times) / sum(times)
                values = {"loss": float(loss.detach()), **{f"loss/{k}": v for k, v in terms_f.items()}, "lr": scheduler.get_last_lr()[0], "steps_per_s": rate}
                if grad_norm is not None:
                    values["grad_norm"] = float(grad_norm)
                if geco:
                    values["geco/beta"] = geco.beta
                if spec.train.curriculum:
                    values["curriculum/frames"] = frames
                logger.log(done, values)
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix({"loss": f"{float(loss.detach()):.4g}", "it/s": f"{rate:.2f}"})
                times.clear()
            if dist.rank() == 0 and t.image_every and (done % t.image_every == 0 or done == total_steps):
                if picture_batch is None:
                    picture_batch = picture_source(spec, registry)
                save_picture(model, picture_batch, run_dir / "pictures" / f"step_{done:07d}.png", device)
            if done % t.checkpoint_every == 0 or done == total_steps:
                last_good = checkpoint(done) or last_good
            if dist.rank() == 0 and t.eval_every and (done % t.eval_every == 0 or done == total_steps):
                from ocf.evaluate import evaluate_model

                scores = evaluate_model(model, resolved, split=spec.data.val_split, max_samples=t.eval_samples, progress=False)
                logger.log(done, {f"eval/{k}": v for k, v in scores.items()})
    except KeyboardInterrupt:
        if step > start:
            saved = checkpoint(step)
            print(f"\nocf: interrupted; saved step {step} to {saved}; continue with --resume", file=sys.stderr)
        raise
    finally:
        logger.close()
        if hasattr(bar, "close"):
            bar.close()
    if dist.rank() == 0:
        (run_dir / "summary.json").write_text(json.dumps({"step": total_steps, "losses": terms_f, "geco_beta": geco.beta if geco else None}, indent=2))
    dist.barrier()
    return run_dir


def picture_source(spec: Spec, registry, n: int = 8) -> Batch:
    ds = open_split(spec, spec.data.val_split, registry)
    idx = list(range(min(n, len(ds))))
    return take_batch(ds, idx, spec.data.frames, seed=0, step=0, random_window=False)


def save_picture(model: Model, batch: Batch, path: Path, device: torch.device) -> None:
    from ocf.evaluate import decomposition_pictures

    was = model.training
    model.eval()
    try:  # a picture must not move the training RNG (resume equality)
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(0)
            state = model(batch.to(device), losses=False)
        decomposition_pictures(state, path)
    finally:
        model.train(was)


def _progress(it, enabled: bool, initial: int, total: int):
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, initial=initial, total=total, desc="train", dynamic_ncols=True, mininterval=1.0, file=sys.stderr)


def multirun(spec_path: str, overrides: list[str], out: str | None = None) -> int:
    """Sweep comma-separated overrides through hydra-zen; each point gets its own run dir
    holding its resolved spec and versions."""
    from ocf import overrides as ov
    from ocf import plugins
    from ocf.spec import load, resolve

    registry = plugins.default().registry
    base = load(spec_path, registry)
    sweep_dir = Path(out or Path("runs") / f"{base.spec.name}-sweep")

    def task(cfg: dict, job_dir: str) -> str:
        return str(run(resolve(cfg, registry), out=job_dir, progress=True))

    results = ov.launch_multirun(base.expanded(), list(overrides), task, str(sweep_dir.resolve()))
    for r in results:
        print(r)
    return 0
