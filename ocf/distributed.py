"""torch.distributed glue for ``torchrun ... -m ocf train SPEC``: DDP with gloo on CPU and
NCCL on GPU; logging, pictures and checkpoints on rank 0 only."""

from __future__ import annotations

import os

import torch
import torch.distributed as td
from torch import nn


def enabled() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init() -> None:
    if enabled() and not td.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        td.init_process_group(backend=backend)
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank())


def rank() -> int:
    return td.get_rank() if td.is_available() and td.is_initialized() else 0


def world_size() -> int:
    return td.get_world_size() if td.is_available() and td.is_initialized() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def barrier() -> None:
    if td.is_available() and td.is_initialized():
        td.barrier()


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel when running under torchrun, the model itself otherwise."""
    if world_size() == 1:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)
