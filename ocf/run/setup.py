"""What every job sets up before it runs a model: the device, speed options, the optimizer
with its learning-rate schedule, frozen stages, and one optimisation step
(:func:`train_step`), shared by the training loop and ``ocf bench``."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ocf import distributed as dist
from ocf.assembly import Model
from ocf.errors import TrainingError, UserError
from ocf.geco import Geco, GecoSet, make_geco
from ocf.records import Batch
from ocf.spec import TrainSpec


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


def check_device(t: TrainSpec) -> None:
    """Refuse a ``train.device`` this machine does not have (called by ``ocf build`` too)."""
    if t.device == "cuda" and not torch.cuda.is_available():
        raise UserError("train.device: cuda, but no CUDA device is available on this machine (use auto or cpu)")
    mps = getattr(torch.backends, "mps", None)
    if t.device == "mps" and not (mps is not None and mps.is_available()):
        raise UserError("train.device: mps, but no Apple MPS device is available on this machine (use auto or cpu)")


def pick_device(t: TrainSpec) -> torch.device:
    if t.device != "auto":
        check_device(t)
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


def freeze(model: Model, stages: list[str]) -> None:
    known = model.stages()
    for stage in stages:
        if stage not in known:
            raise UserError(f"train.freeze: no stage {stage!r}; the model has {', '.join(known)}")
        for p in known[stage].parameters():
            p.requires_grad_(False)


@dataclass
class Optimisation:
    """What an optimisation step changes besides the model: the trainable parameters,
    the optimizer, its learning-rate schedule (``train.schedule``) and GECO's β."""

    params: list[Tensor]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    geco: Geco | GecoSet | None

    @classmethod
    def create(cls, model: torch.nn.Module, t: TrainSpec) -> Optimisation:
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise UserError("the model has no trainable parameters (check train.freeze)")
        optimizer = make_optimizer(params, t)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(t, s))
        return cls(params, optimizer, scheduler, make_geco(t.geco) if t.geco else None)


@dataclass
class StepResult:
    """One step's loss (the optimised scalar), its float terms and the gradient norm
    before clipping (``None`` without ``train.grad_clip``)."""

    loss: Tensor
    terms: dict[str, Tensor]
    grad_norm: Tensor | None


def train_step(
    net: torch.nn.Module,
    batch: Batch,
    opt: Optimisation,
    t: TrainSpec,
    device: torch.device,
    *,
    step: int,
    last_good: Path | None = None,
) -> StepResult:
    """Forward ``batch`` (under ``train.precision``), combine the loss terms (GECO or their
    sum), stop on a non-finite loss, then backward, clip, optimizer and schedule step.

    Raises :class:`TrainingError` naming the step, the terms and ``last_good`` (the last
    checkpoint written) when the loss is NaN or infinite; nothing is updated then."""
    with autocast(t, device):
        state = net(batch)
    terms = {k: v.float() for k, v in state.losses.items()}
    loss = opt.geco.loss(terms) if opt.geco else Model.total(terms)
    if not torch.isfinite(loss):
        where = f"the last good checkpoint is {last_good}" if last_good else "no checkpoint was written yet"
        values = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in terms.items())
        raise TrainingError(f"loss became {float(loss.detach())} at step {step} ({values}); {where}")
    opt.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(opt.params, t.grad_clip) if t.grad_clip else None
    opt.optimizer.step()
    opt.scheduler.step()
    return StepResult(loss, terms, grad_norm)
