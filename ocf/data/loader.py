"""Reading dataset files into :class:`~ocf.records.Batch` es.

:class:`H5Dataset` reads one split of a file (either layout, see :mod:`ocf.data.format`).
With ``in_memory=True`` (default) the split is read once into RAM as uint8 and batches are
cut from it with tensor indexing; otherwise every sample is read from the file when asked
for, through an h5py handle opened on first use in each process (never inherited across a
fork or pickled), so DataLoader workers are safe.

The dataset implements ``__getitems__`` so a DataLoader fetches a whole batch in one call;
:func:`collate` turns that (or a list of single items) into a ``Batch``.  Windows of
``frames < T`` frames are cut as training cuts them (:mod:`ocf.data.batches`): frames,
masks and the extras the file declares with a time axis (:attr:`H5Dataset.time_extras`).
"""

from __future__ import annotations

import math
import os
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from ocf.data import format as fmt
from ocf.data.batches import cut, window_starts
from ocf.data.guards import check_ids, check_memory
from ocf.data.summary import describe  # noqa: F401 - re-exported: ocf.data.loader.describe
from ocf.errors import DataError
from ocf.records import Batch


class Fetched(dict):
    """A batch already stacked by :meth:`H5Dataset.__getitems__`: ``frames [b t c h w]``
    float, ``masks [b t h w]`` long (absent without masks), extras ``[b ...]``."""


def _to_tensor(array: np.ndarray) -> torch.Tensor:
    """numpy → torch with dtypes torch handles everywhere (float64 → float32, wide unsigned → int64)."""
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    elif array.dtype.kind == "u" and array.dtype != np.uint8:
        array = array.astype(np.int64)
    return torch.from_numpy(np.ascontiguousarray(array))


class H5Dataset(Dataset):
    """One split of a dataset file.

    Args:
        path: HDF5 file (ocf or object-centric-library layout).
        split: split name, ``"all"`` or a range ``"0:100"`` / ``"80%:90%"``.
        frames: frames per sample; ``None`` = all ``T`` of the file. Must be ``<= T``.
        in_memory: read the split into RAM once (uint8) instead of per sample.
        random_window: with ``frames < T``, take a random window (training) instead of the
            first ``frames`` frames (evaluation).
        seed: seeds the window generator in the main process; DataLoader workers use their
            own ``worker_info.seed`` (derived from the loader's seeded generator).

    Items are dicts: ``frames [t c h w]`` float in [0, 1], ``masks [t h w]`` long (when the
    file has masks), extras as tensors without the sample axis (time extras windowed too).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        split: str = "train",
        frames: int | None = None,
        in_memory: bool = True,
        random_window: bool = False,
        seed: int = 0,
    ) -> None:
        self.path = Path(path)
        self.split = split
        self.info = fmt.read_info(self.path)
        self.indices = self.info.split_indices(split)
        if len(self.indices) == 0:
            raise DataError(f"{self.path}: split {split!r} is empty")
        t = self.info.t
        if frames is not None and not 1 <= frames <= t:
            raise DataError(f"{self.path}: {frames} frames per sample asked for, but the file's clips have {t}")
        self.window = t if frames is None else int(frames)
        self.in_memory = in_memory
        self.random_window = bool(random_window) and self.window < t
        self.seed = int(seed)
        self._file = None
        self._file_pid: int | None = None
        self._datasets: dict[str, Any] | None = None
        self._gen: torch.Generator | None = None
        self._gen_key: Any = None
        self._mem: dict[str, torch.Tensor] | None = None
        self._extras: dict[str, torch.Tensor] = {}
        if in_memory:
            check_memory(self.path, split, len(self.indices), self._item_bytes())
            self._mem = self._load_all()
        else:
            self._extras = self._load_extras()

    # -- geometry ----------------------------------------------------------------------
    @property
    def source(self) -> str:
        """``'train' of data/x.h5``: the split and its file, for messages."""
        return f"{self.split!r} of {self.path}"

    @property
    def num_frames(self) -> int:
        return self.window

    @property
    def sample_shape(self) -> tuple[int, int, int, int]:
        """``(T, H, W, C)`` of one sample as returned (``T`` = the window)."""
        return self.window, self.info.h, self.info.w, self.info.c

    @property
    def channels(self) -> int:
        return self.info.c

    @property
    def resolution(self) -> tuple[int, int]:
        return self.info.h, self.info.w

    @property
    def has_masks(self) -> bool:
        return self.info.has_masks

    @property
    def metadata(self) -> dict[str, Any]:
        return self.info.metadata

    @cached_property
    def time_extras(self) -> frozenset[str]:
        """Names of the extras with a time axis (as the file declares them): the ones a
        frame window cuts."""
        return frozenset(k for k, e in self.info.extras.items() if e.time_axis)

    def __len__(self) -> int:
        return len(self.indices)

    # -- file handles (per process) ---------------------------------------------------
    def _handle(self) -> dict[str, Any]:
        """``{name: h5py.Dataset}`` of the frames and masks, opened once per process
        (looking datasets up in the file on every read costs as much as the read)."""
        if self._file is None or self._file_pid != os.getpid():
            import h5py

            try:
                self._file = h5py.File(self.path, "r")
            except OSError as exc:
                raise DataError(
                    f"{self.path}: cannot be opened as HDF5 (not an HDF5 file, truncated or corrupt): {exc}"
                ) from None
            self._file_pid = os.getpid()
            keys = [k for k in (self.info.frames_key, self.info.masks_key) if k]
            self._datasets = {k: self._file[k] for k in keys}
        return self._datasets

    def close(self) -> None:
        if self._file is not None and self._file_pid == os.getpid():
            self._file.close()
        self._file = None
        self._datasets = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_file"] = None
        state["_file_pid"] = None
        state["_datasets"] = None
        state["_gen"] = None
        state["_gen_key"] = None
        return state

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass

    # -- reading --------------------------------------------------------------------
    def _load_all(self) -> dict[str, torch.Tensor]:
        """The whole split as tensors: frames ``[M T H W C]`` uint8, masks ``[M T H W]``,
        extras ``[M ...]``."""
        idx = self.indices
        lo, hi = int(idx.min()), int(idx.max()) + 1
        contiguous = hi - lo == len(idx) and bool(np.all(np.diff(idx) == 1))
        sel = slice(lo, hi)
        local = None if contiguous else idx - lo
        info = self.info
        with fmt.open_h5(self.path) as f:

            def take(a: np.ndarray) -> np.ndarray:
                return a if local is None else a[local]

            mem = {"frames": torch.from_numpy(np.ascontiguousarray(take(fmt.read_frames(self.path, f, info, sel))))}
            masks = fmt.read_masks(self.path, f, info, sel)
            if masks is not None:
                masks = take(masks)
                check_ids(self.path, masks, info.max_id, self.split, idx)
                mem["masks"] = torch.from_numpy(np.ascontiguousarray(masks))
            for key in info.extras:
                mem["extra." + key] = _to_tensor(take(fmt.read_extra(self.path, f, info, key, sel)))
        return mem

    def _item_bytes(self) -> int:
        """Bytes one item takes in memory: frames, masks and extras."""
        info, pixels = self.info, self.info.t * self.info.h * self.info.w
        with fmt.open_h5(self.path) as f:
            mask_bytes = f[info.masks_key].dtype.itemsize if info.has_masks else 0
        extras = sum(math.prod(e.shape[1:]) * np.dtype(e.dtype).itemsize for e in info.extras.values())
        return pixels * (info.c + mask_bytes) + extras

    def _load_extras(self) -> dict[str, torch.Tensor]:
        """The split's extras ``[M ...]`` (small) for lazy mode."""
        with fmt.open_h5(self.path) as f:
            out = {}
            for key in self.info.extras:
                full = fmt.read_extra(self.path, f, self.info, key, slice(None))
                out[key] = _to_tensor(full[self.indices])
        return out

    def _window_starts(self, count: int) -> torch.Tensor:
        """``[count]`` first frame of every window (zeros unless ``random_window``)."""
        if not self.random_window:
            return window_starts(self.info.t, self.window, count)
        worker = get_worker_info()
        key = (os.getpid(), None if worker is None else worker.id)
        if self._gen is None or self._gen_key != key:
            seed = self.seed if worker is None else worker.seed
            self._gen = torch.Generator().manual_seed(int(seed) % (2**63))
            self._gen_key = key
        return window_starts(self.info.t, self.window, count, self._gen)

    def _fetch(self, positions: list[int]) -> Fetched:
        starts = self._window_starts(len(positions))
        if self._mem is not None:
            return self._fetch_memory(torch.as_tensor(positions, dtype=torch.long), starts)
        return self._fetch_file(positions, starts)

    def _fetch_memory(self, pos: torch.Tensor, starts: torch.Tensor) -> Fetched:
        mem = self._mem
        full = self.window == self.info.t

        def take(x: torch.Tensor) -> torch.Tensor:  # the samples, then their window
            return x[pos] if full else cut(x[pos], starts, self.window)

        out = Fetched()
        frames = take(mem["frames"])  # [b t h w c] uint8
        out["frames"] = (
            frames.permute(0, 1, 4, 2, 3).to(torch.float32, memory_format=torch.contiguous_format).div_(255.0)
        )
        if "masks" in mem:
            out["masks"] = take(mem["masks"]).long()
        for key in self.info.extras:
            value = mem["extra." + key]
            out[key] = take(value) if key in self.time_extras else value[pos]
        return out

    def _fetch_file(self, positions: list[int], starts: torch.Tensor) -> Fetched:
        """Read a batch from the file, one h5py read per sample and dataset (h5py's list
        indexing is far slower); only the window's frames are read. Extras come from RAM."""
        f = self._handle()
        info = self.info
        frames, masks = [], []
        for p, s in zip(positions, starts.tolist()):
            i = int(self.indices[p])
            frames.append(fmt.read_frames(self.path, f, info, i, s, s + self.window))
            if info.has_masks:
                masks.append(fmt.read_masks(self.path, f, info, i, s, s + self.window))
                check_ids(self.path, masks[-1][None], info.max_id, self.split, [i])
        out = Fetched()
        out["frames"] = (
            torch.from_numpy(np.stack(frames))
            .permute(0, 1, 4, 2, 3)
            .to(torch.float32, memory_format=torch.contiguous_format)
            .div_(255.0)
        )
        if masks:
            out["masks"] = torch.from_numpy(np.stack(masks).astype(np.int64))
        pos = torch.as_tensor(positions, dtype=torch.long)
        for key in info.extras:
            value = self._extras[key][pos]
            out[key] = cut(value, starts, self.window) if key in self.time_extras and self.window < info.t else value
        return out

    def __getitems__(self, positions: list[int]) -> Fetched:
        """A whole batch at once (used by DataLoader): see :class:`Fetched`."""
        return self._fetch(list(positions))

    def get_batch(self, positions: list[int]) -> Batch:
        """The samples at ``positions`` as one :class:`Batch` (one vectorised read; much
        faster than collating single items)."""
        return collate(self.__getitems__(positions))

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= position < len(self):
            raise IndexError(position)
        return {k: v[0] for k, v in self._fetch([int(position) % len(self)]).items()}


def collate(items: list[dict[str, torch.Tensor]] | Fetched) -> Batch:
    """Single items (``frames [t c h w]`` ...) or a :class:`Fetched` batch → :class:`Batch`
    with ``frames [b t c h w]``, ``masks [b t h w]`` long or None, extras ``[b ...]``."""
    if isinstance(items, Fetched):
        stacked = dict(items)
    else:
        items = list(items)
        if not items:
            raise ValueError("collate needs at least one item")
        stacked = {k: torch.stack([it[k] for it in items]) for k in items[0]}
    frames = stacked.pop("frames")
    masks = stacked.pop("masks", None)
    return Batch(frames=frames, masks=None if masks is None else masks.long(), extras=stacked)


def make_loader(
    path: str | os.PathLike,
    split: str = "train",
    batch_size: int = 32,
    shuffle: bool = True,
    seed: int = 0,
    frames: int | None = None,
    drop_last: bool = False,
    num_workers: int = 0,
    sampler: Sampler | None = None,
    in_memory: bool = True,
    random_window: bool | None = None,
    pin_memory: bool = False,
    dataset: H5Dataset | None = None,
) -> DataLoader:
    """A DataLoader over one split that yields :class:`Batch` es.

    ``random_window`` defaults to ``shuffle`` (random windows while training, first frames
    in evaluation). With a ``sampler`` (e.g. ``DistributedSampler``) ``shuffle`` only sets
    the window default; the sampler orders the samples. Shuffling and worker seeds come from
    a torch generator seeded with ``seed``. Pass ``dataset`` to reuse an open
    :class:`H5Dataset` (its split, frames and window settings win).
    """
    if batch_size < 1:
        raise DataError(f"batch_size must be >= 1, got {batch_size}")
    if dataset is None:
        dataset = H5Dataset(
            path,
            split=split,
            frames=frames,
            in_memory=in_memory,
            random_window=shuffle if random_window is None else random_window,
            seed=seed,
        )
    generator = torch.Generator().manual_seed(int(seed))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        drop_last=drop_last,
        num_workers=num_workers,
        collate_fn=collate,
        generator=generator,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )
