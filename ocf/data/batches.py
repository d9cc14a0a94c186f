"""Batches for a training step: which samples (:class:`StepBatches`) and which frames
(:func:`window`).

Every frame window in ocf is cut here, by one rule: frames and masks always have a time
axis; an extra has one when the file declares it (``time_axis``, from the extra's ``axes``
attribute, see :mod:`ocf.data.format`), never because its second axis happens to be as
long as the clip.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

import torch
from torch import Tensor

from ocf.errors import UserError
from ocf.records import Batch


class BatchSource(Protocol):
    """What :func:`take_batch` reads from (an :class:`~ocf.data.H5Dataset`)."""

    time_extras: frozenset[str]

    def __len__(self) -> int: ...

    def get_batch(self, positions: list[int]) -> Batch: ...


def window_starts(t: int, frames: int, count: int, generator: torch.Generator | None = None) -> Tensor:
    """``[count]`` first frame of each window of ``frames`` out of ``t``: uniform with a
    ``generator``, else 0 (the first frames)."""
    if generator is None:
        return torch.zeros(count, dtype=torch.long)
    return torch.randint(0, t - frames + 1, (count,), generator=generator)


def cut(x: Tensor, starts: Tensor, frames: int) -> Tensor:
    """``x [b t ...]`` → ``[b frames ...]``: ``frames`` steps of axis 1 from ``starts [b]``."""
    index = starts[:, None] + torch.arange(frames)[None]  # [b frames]
    index = index.reshape(index.shape + (1,) * (x.dim() - 2)).expand(index.shape + x.shape[2:])
    return torch.gather(x, 1, index)


def window(batch: Batch, starts: Tensor, frames: int, time_extras: Collection[str]) -> Batch:
    """Cut ``frames`` frames from ``starts [b]`` per sample out of frames, masks and the
    extras named in ``time_extras`` (those with a time axis); other extras are kept whole."""
    return Batch(
        frames=cut(batch.frames, starts, frames),
        masks=None if batch.masks is None else cut(batch.masks, starts, frames),
        extras={k: cut(v, starts, frames) if k in time_extras else v for k, v in batch.extras.items()},
    )


class StepBatches:
    """Indices of the batch at each step, a pure function of (seed, step).

    Epoch ``e`` visits a permutation drawn from ``seed + e``; each rank takes its slice of
    every global batch.  Random frame windows come from the same (seed, step).  ``source``
    names the split and its file (``'train' of data/x.h5``) in the error a too-large batch
    raises.
    """

    def __init__(
        self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1, *, source: str | None = None
    ) -> None:
        if n < batch_size:
            of = f" {source}" if source else ""
            raise UserError(f"train.batch_size {batch_size} is larger than the training split{of} ({n} samples)")
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


def take_batch(ds: BatchSource, idx: list[int], frames: int, *, seed: int, step: int, random_window: bool) -> Batch:
    """Gather samples ``idx`` and cut a window of ``frames`` frames: random per sample from
    (seed, step) in training, the first frames otherwise."""
    batch = ds.get_batch(idx)
    t = batch.frames.shape[1]
    if frames >= t:
        return batch
    generator = torch.Generator().manual_seed(seed * 7919 + step) if random_window else None
    return window(batch, window_starts(t, frames, len(idx), generator), frames, ds.time_extras)


def ordered_batch(ds: BatchSource, start: int, stop: int, frames: int) -> Batch:
    """Samples ``start .. stop - 1`` (``stop`` capped at the split's size), their first
    ``frames`` frames: what evaluation and pictures read."""
    return take_batch(ds, list(range(start, min(stop, len(ds)))), frames, seed=0, step=0, random_window=False)
