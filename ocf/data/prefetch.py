"""Feeding a device: each training step's batch moved to the model's device, and on CUDA
made ahead of time in pinned memory (:class:`DeviceBatches`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import torch

from ocf.records import Batch


def pin_batch(batch: Batch) -> Batch:
    """``batch`` in page-locked (pinned) host memory, which a CUDA copy reads asynchronously."""
    return Batch(
        frames=batch.frames.pin_memory(),
        masks=None if batch.masks is None else batch.masks.pin_memory(),
        extras={k: v.pin_memory() for k, v in batch.extras.items()},
    )


def to_device(batch: Batch, device: torch.device, non_blocking: bool = False) -> Batch:
    """``batch`` on ``device``; ``non_blocking`` copies from pinned memory return at once."""
    return Batch(
        frames=batch.frames.to(device, non_blocking=non_blocking),
        masks=None if batch.masks is None else batch.masks.to(device, non_blocking=non_blocking),
        extras={k: v.to(device, non_blocking=non_blocking) for k, v in batch.extras.items()},
    )


class DeviceBatches:
    """The batch of each training step on ``device``, from ``make(step)`` (the batch as the
    dataset gives it).

    On CUDA the next step's batch is assembled in a background thread while the current step
    runs on the GPU, in pinned memory, and copied with ``non_blocking=True``, so reading the
    file and assembling the batch hide behind the GPU's work.  Elsewhere (``prefetch`` off)
    each batch is made when asked for, in this thread, and moved with ``.to(device)``:
    nothing else changes on a CPU.  Batches are a pure function of the step, so which thread
    makes them does not change them."""

    def __init__(
        self,
        make: Callable[[int], Batch],
        device: torch.device,
        *,
        prefetch: bool | None = None,
        pin: bool | None = None,
    ) -> None:
        self.make, self.device = make, device
        self.prefetch = device.type == "cuda" if prefetch is None else prefetch
        self.pin = device.type == "cuda" if pin is None else pin
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="ocf-batches") if self.prefetch else None
        self._next: tuple[int, Future] | None = None

    def _host(self, step: int) -> Batch:
        batch = self.make(step)
        return pin_batch(batch) if self.pin else batch

    def get(self, step: int) -> Batch:
        """Step ``step``'s batch on the device; with prefetching, starts making ``step + 1``'s."""
        if self._pool is None:
            return self._host(step).to(self.device)
        if self._next is not None and self._next[0] == step:
            batch = self._next[1].result()
        else:
            if self._next is not None:  # one thread makes batches: let the stale one finish first
                with contextlib.suppress(Exception):
                    self._next[1].result()
            batch = self._host(step)
        self._next = (step + 1, self._pool.submit(self._host, step + 1))
        return to_device(batch, self.device, non_blocking=self.pin)

    def close(self) -> None:
        """Wait for the batch being made and stop the thread."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool, self._next = None, None
