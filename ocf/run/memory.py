"""The memory one training step needs, estimated before anything is allocated, and the
check ``ocf build`` runs with it (:func:`check_memory`).

The model is built on torch's ``meta`` device, where tensors have shapes but no storage:

- **parameters**: the bytes of every parameter, once for the weights and, for the trainable
  ones, once more for the gradients and once per optimizer state (two for Adam and AdamW, one
  for RMSprop, two with momentum);
- **activations**: a forward pass on a meta batch of one sample, with
  :func:`torch.autograd.graph.saved_tensors_hooks` counting the bytes of every tensor kept for
  the backward pass (each storage once, parameters not again), times ``train.batch_size``.

A component that cannot run on meta tensors (one that reads a value, e.g. ``.item()``) leaves
a parameter-only estimate, and :attr:`MemoryEstimate.note` says why.  The limit is
``train.memory_limit_gb``, by default the memory the training device has: the RAM the
operating system reports available (``MemAvailable`` in ``/proc/meminfo``), or a CUDA
device's total memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ocf.data.guards import available_memory
from ocf.errors import UserError
from ocf.records import Batch
from ocf.spec import ResolvedSpec, TrainSpec

GB = 1e9


@dataclass
class MemoryEstimate:
    """What one training step of a spec needs, in bytes."""

    parameters: int  # count of all parameters
    parameter_bytes: int  # weights, gradients and optimizer state
    activation_bytes: int | None  # kept for backward, at train.batch_size; None when unknown
    batch_size: int
    note: str = ""  # why the activations are not counted

    @property
    def total(self) -> int:
        return self.parameter_bytes + (self.activation_bytes or 0)

    def describe(self) -> str:
        """``about 1.23 GB (parameters with gradients and optimizer state 0.01 GB, activations
        1.22 GB at batch 32)``."""
        parts = f"parameters with gradients and optimizer state {_gb(self.parameter_bytes)}"
        if self.activation_bytes is None:
            return f"at least {_gb(self.total)} ({parts}; activations not counted: {self.note})"
        return f"about {_gb(self.total)} ({parts}, activations {_gb(self.activation_bytes)} at batch {self.batch_size})"


def _gb(n: float) -> str:
    return f"{n / GB:.3g} GB" if n >= 0.01 * GB else f"{n / 2**20:.3g} MB"


def optimizer_states(t: TrainSpec) -> int:
    """Tensors the optimizer keeps per trainable parameter."""
    o = t.optimizer
    if o.type in ("adam", "adamw"):
        return 2
    return 1 + (o.momentum > 0)


def estimate(resolved: ResolvedSpec) -> MemoryEstimate | None:
    """The estimate for ``resolved`` (``None`` when its model cannot be built on the meta
    device; the real build then reports what is wrong)."""
    from ocf.assembly import build
    from ocf.run.setup import freeze

    t = resolved.spec.train
    with torch.random.fork_rng(devices=[]):  # leave the global RNG where it was
        try:
            with torch.device("meta"):
                model = build(resolved, dry_run=False)
            freeze(model, t.freeze)
        except Exception:
            return None
        params = list(model.parameters())
        weights = sum(p.numel() * p.element_size() for p in params)
        trainable = sum(p.numel() * p.element_size() for p in params if p.requires_grad)
        parameter_bytes = weights + trainable * (1 + optimizer_states(t))
        saved, note = saved_bytes(model, resolved)
    activations = None if saved is None else saved * t.batch_size
    count = sum(p.numel() for p in params)
    return MemoryEstimate(count, parameter_bytes, activations, t.batch_size, note)


def meta_batch(resolved: ResolvedSpec, batch_size: int = 1) -> Batch:
    """A batch of the spec's shapes on the meta device (what :func:`ocf.assembly.dummy_batch` makes)."""
    d = resolved.spec.data
    with torch.device("meta"):
        frames = torch.empty(batch_size, d.frames, d.channels, *d.resolution)
        masks = torch.zeros(batch_size, d.frames, *d.resolution, dtype=torch.long)
        extras = {"counts": torch.zeros(batch_size, d.frames, dtype=torch.long)}
        for name, shape in d.extras.items():
            extras[name] = torch.empty(batch_size, *shape)
    return Batch(frames=frames, masks=masks, extras=extras)


def saved_bytes(model: torch.nn.Module, resolved: ResolvedSpec) -> tuple[int | None, str]:
    """Bytes the training forward of one meta sample keeps for backward (each storage once,
    parameters excluded), and ``""``; or ``None`` and why it could not run on meta tensors."""
    from ocf.assembly import Model

    params = {id(p) for p in model.parameters()}
    kept: dict[int, torch.Tensor] = {}  # holding them keeps ids unique

    def pack(t: torch.Tensor) -> torch.Tensor:
        base = t if t._base is None else t._base
        if id(t) not in params and id(base) not in params:
            kept.setdefault(id(base), base)
        return t

    model.train()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            state = model(meta_batch(resolved))
            Model.total({k: v.float() for k, v in state.losses.items()})
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return None, f"the model cannot run on shapes alone ({first[:160]})"
    return sum(_storage_bytes(t) for t in kept.values()), ""


def _storage_bytes(t: torch.Tensor) -> int:
    try:
        return t.untyped_storage().nbytes()
    except (RuntimeError, NotImplementedError):  # tensors without a plain storage
        return t.numel() * t.element_size()


def memory_limit(t: TrainSpec) -> tuple[int | None, str]:
    """The limit a step's estimate is checked against, in bytes, and where it comes from."""
    if t.memory_limit_gb is not None:
        return int(t.memory_limit_gb * GB), "train.memory_limit_gb"
    if t.device == "cuda" or (t.device == "auto" and torch.cuda.is_available()):
        total = torch.cuda.get_device_properties(0).total_memory
        return total, f"the memory of CUDA device {torch.cuda.get_device_name(0)}"
    return available_memory(), "the RAM available on this machine"


def check_memory(resolved: ResolvedSpec) -> MemoryEstimate | None:
    """The estimate of ``resolved``; :class:`UserError` naming ``train.batch_size`` and the
    model's sizes when it exceeds the limit (:func:`memory_limit`)."""
    est = estimate(resolved)
    limit, source = memory_limit(resolved.spec.train)
    if est is None or limit is None or est.total <= limit:
        return est
    raise UserError(
        f"train.batch_size: a training step needs {est.describe()}, more than the limit of {_gb(limit)} "
        f"({source}); lower train.batch_size, data.resolution or the model's sizes (slots, widths), "
        "or set train.memory_limit_gb"
    )
