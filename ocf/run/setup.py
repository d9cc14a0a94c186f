"""What every job sets up before it runs a model: the device, precision and speed options,
the optimizer with its learning-rate schedule (and fp16's gradient scaler), frozen and
recomputed stages, and one optimisation step (:func:`train_step`, with gradient
accumulation), shared by the training loop and ``ocf bench``."""

from __future__ import annotations

import copy
import types
import warnings
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
    """``train.device`` (``auto``: cuda, then mps, then cpu).  A CUDA device is the one of this
    process's ``LOCAL_RANK`` (one GPU per process under torchrun)."""
    if t.device not in ("auto", "cuda"):
        check_device(t)
        return torch.device(t.device)
    if t.device == "cuda" or torch.cuda.is_available():
        check_device(t)
        return dist.cuda_device()
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def check_precision(t: TrainSpec, device: torch.device) -> None:
    """Refuse a ``train.precision`` torch cannot compute on ``device``: bf16 on a GPU without
    bfloat16 support, and a half precision whose autocast (or fp16's gradient scaler) torch
    does not provide there."""
    if t.precision == "fp32":
        return
    dtype = torch.bfloat16 if t.precision == "bf16" else torch.float16
    if t.precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError(f"train.precision: bf16, but {device} does not support bfloat16; use fp16 (or fp32)")
    try:
        with torch.autocast(device_type=device.type, dtype=dtype):
            probe = torch.ones(2, 2, device=device) @ torch.ones(2, 2, device=device)
        if t.precision == "fp16":
            torch.amp.GradScaler(device.type)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise UserError(
            f"train.precision: {t.precision} is not supported on {device.type} by torch {torch.__version__} ({exc}); "
            "use fp32"
        ) from None
    if probe.dtype != dtype:
        raise UserError(
            f"train.precision: {t.precision}, but torch {torch.__version__} computes {probe.dtype} under "
            f"{device.type} autocast (it cannot compute {dtype} there); use fp32"
        )


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


def checkpoint_stages(model: Model, stages: list[str]) -> None:
    """``train.checkpoint_stages``: the forward pass of each named stage keeps no activations
    while training; the backward pass recomputes them (``torch.utils.checkpoint``,
    non-reentrant, with the RNG state of the first pass, so the gradients are the same)."""
    known = model.stages()
    for name in stages:
        if name not in known:
            raise UserError(f"train.checkpoint_stages: no stage {name!r}; the model has {', '.join(known)}")
        known[name].forward = types.MethodType(_recomputed_forward, known[name])


def _recomputed_forward(self: torch.nn.Module, state, *args, **kwargs):
    forward = type(self).forward.__get__(self)
    if not (self.training and torch.is_grad_enabled()):
        return forward(state, *args, **kwargs)
    # the recomputation sees the state as it was: later stages add their records to ``state``
    return torch.utils.checkpoint.checkpoint(forward, copy.copy(state), *args, use_reentrant=False, **kwargs)


@dataclass
class Optimisation:
    """What an optimisation step changes besides the model: the trainable parameters,
    the optimizer, its learning-rate schedule (``train.schedule``) and GECO's β."""

    params: list[Tensor]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    geco: Geco | GecoSet | None
    #: fp16's loss scaler (``torch.amp.GradScaler``); ``None`` in fp32 and bf16
    scaler: torch.amp.GradScaler | None = None

    @classmethod
    def create(cls, model: torch.nn.Module, t: TrainSpec) -> Optimisation:
        """For the trainable parameters of ``model``, already on its device (fp16's scaler
        works on that device)."""
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise UserError("the model has no trainable parameters (check train.freeze)")
        optimizer = make_optimizer(params, t)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(t, s))
        scaler = torch.amp.GradScaler(params[0].device.type) if t.precision == "fp16" else None
        return cls(params, optimizer, scheduler, make_geco(t.geco) if t.geco else None, scaler)


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
    """One optimisation step on ``batch``: for each of ``train.accumulate`` micro-batches,
    forward (under ``train.precision``), combine the loss terms (GECO or their sum), stop on
    a non-finite loss, and backward the loss weighted by the micro-batch's share of the
    samples; then unscale (fp16), clip, optimizer and schedule step.  GECO's β is updated once
    per step, from the error of the whole batch.

    Raises :class:`TrainingError` naming the step, the terms and ``last_good`` (the last
    checkpoint written) when a loss is NaN or infinite; nothing is updated then."""
    parts = micro_batches(batch, t.accumulate)
    opt.optimizer.zero_grad(set_to_none=True)
    if len(parts) == 1:
        loss, terms = _forward_backward(net, batch, opt, t, device, step, last_good, weight=None)
    else:
        loss, terms = _accumulate(net, parts, opt, t, device, step, last_good)
    if opt.scaler is not None:
        opt.scaler.unscale_(opt.optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(opt.params, t.grad_clip) if t.grad_clip else None
    if opt.scaler is None:
        opt.optimizer.step()
        opt.scheduler.step()
    else:
        opt.scaler.step(opt.optimizer)  # skipped when the scaled gradients overflowed
        opt.scaler.update()
        with warnings.catch_warnings():  # the schedule follows the steps taken or skipped alike
            warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step()`", UserWarning)
            opt.scheduler.step()
    return StepResult(loss, terms, grad_norm)


def micro_batches(batch: Batch, n: int) -> list[Batch]:
    """``batch`` split along its samples into ``n`` nearly equal parts (``[batch]`` for 1)."""
    if n == 1:
        return [batch]
    size = batch.frames.shape[0]
    if n > size:
        raise UserError(
            f"train.accumulate is {n}, more micro-batches than the {size} samples a step gives this process "
            "(train.batch_size over the torchrun processes)"
        )

    def split(x: Tensor | None) -> list[Tensor | None]:
        return [None] * n if x is None else list(x.tensor_split(n))

    extras = {k: split(v) for k, v in batch.extras.items()}
    return [
        Batch(frames=f, masks=m, extras={k: v[i] for k, v in extras.items()})
        for i, (f, m) in enumerate(zip(split(batch.frames), split(batch.masks)))
    ]


def _accumulate(net, parts, opt, t, device, step, last_good) -> tuple[Tensor, dict[str, Tensor]]:
    """Forward and backward every micro-batch; the step's loss and terms (weighted means)."""
    total = sum(p.frames.shape[0] for p in parts)
    loss, terms, errs = torch.zeros((), device=device), {}, None
    for i, part in enumerate(parts):
        weight = part.frames.shape[0] / total
        sync = i == len(parts) - 1 or not hasattr(_ddp(net), "no_sync")
        with nullcontext() if sync else _ddp(net).no_sync():  # DDP averages gradients once, after the last
            part_loss, part_terms = _forward_backward(net, part, opt, t, device, step, last_good, weight=weight)
        loss = loss + weight * part_loss.detach()
        for k, v in part_terms.items():
            terms[k] = terms.get(k, 0.0) + weight * v.detach()
        if opt.geco:  # each constraint's error, weighted like the loss
            part = [weight * e for e in opt.geco.errors(part_terms)]
            errs = part if errs is None else [a + b for a, b in zip(errs, part)]
    if opt.geco:
        opt.geco.update_errors(errs)
    return loss, terms


def _forward_backward(net, batch, opt, t, device, step, last_good, *, weight) -> tuple[Tensor, dict[str, Tensor]]:
    """Forward, loss, finiteness check and backward of one (micro-)batch; ``weight`` (its share
    of the step's samples) scales the backward, ``None`` is the whole batch (GECO updates)."""
    with autocast(t, device):
        state = net(batch)
    terms = {k: v.float() for k, v in state.losses.items()}
    loss = opt.geco.loss(terms, update=weight is None) if opt.geco else Model.total(terms)
    if not torch.isfinite(loss):
        where = f"the last good checkpoint is {last_good}" if last_good else "no checkpoint was written yet"
        values = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in terms.items())
        raise TrainingError(f"loss became {float(loss.detach())} at step {step} ({values}); {where}")
    scaled = loss if weight is None else loss * weight
    (scaled if opt.scaler is None else opt.scaler.scale(scaled)).backward()
    return loss, terms


def _ddp(net: torch.nn.Module) -> torch.nn.Module:
    """The DistributedDataParallel module under a ``torch.compile`` wrapper (or ``net``)."""
    return getattr(net, "_orig_mod", net)
