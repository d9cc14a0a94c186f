"""torch.distributed glue for ``torchrun ... -m ocf train SPEC``: DDP with gloo on CPU and
NCCL on GPU (one GPU per process, the one of its ``LOCAL_RANK``); logging, pictures and
checkpoints on rank 0 only.  Each rank trains on its share of every step's batch
(:class:`~ocf.data.batches.StepBatches` slices it by rank, as a ``DistributedSampler``
would)."""

from __future__ import annotations

import os

import torch
import torch.distributed as td
from torch import nn

from ocf.errors import UserError


def enabled() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init() -> None:
    """Join the process group torchrun describes (its environment variables): NCCL for CUDA
    tensors and gloo for CPU tensors when this machine has a GPU (so ``train.device: cpu``
    still works), gloo alone otherwise; the current CUDA device becomes this rank's."""
    if enabled() and not td.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(cuda_device())
            td.init_process_group(backend="cpu:gloo,cuda:nccl")
        else:
            td.init_process_group(backend="gloo")


def rank() -> int:
    return td.get_rank() if td.is_available() and td.is_initialized() else 0


def world_size() -> int:
    return td.get_world_size() if td.is_available() and td.is_initialized() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def cuda_device() -> torch.device:
    """``cuda:LOCAL_RANK``; a process without a GPU of its own is refused."""
    index, count = local_rank(), torch.cuda.device_count()
    if index >= count:
        raise UserError(
            f"LOCAL_RANK is {index} but this machine has {count} CUDA device(s): start at most {count} processes "
            "per node (torchrun --nproc-per-node)"
        )
    return torch.device("cuda", index)


def barrier() -> None:
    if td.is_available() and td.is_initialized():
        td.barrier()


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel when running under torchrun, the model itself otherwise."""
    if world_size() == 1:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)
