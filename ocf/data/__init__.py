"""ocf's data layer: HDF5 dataset files, procedural generators, readers and batches.

- :mod:`ocf.data.format`: the file layouts (ours and the object-centric-library one),
  validation (:func:`read_info`) and :func:`write_dataset`.
- :mod:`ocf.data.generator`: :class:`Generator`, the base of procedural datasets, and
  :func:`make_dataset`.
- :mod:`ocf.data.loader`: :class:`H5Dataset`, :func:`collate`, :func:`make_loader`;
  :mod:`ocf.data.summary`: :func:`describe` (what ``ocf data inspect`` prints).
- :mod:`ocf.data.guards`: the cheap checks against files that would crash a reader or fool a
  metric (mask ids out of range, items never written, splits beyond memory).
- :mod:`ocf.data.batches`: the batch of each training step (:class:`StepBatches`,
  :func:`take_batch`) and the one frame-window rule (:func:`window`).
- :mod:`ocf.data.frames`: :func:`import_frames` (a folder of video frames → a clip file).

The ``ocf data`` command lives in :mod:`ocf.cli.data`.  See docs/data.md.
"""

from ocf.data.batches import StepBatches, ordered_batch, take_batch, window
from ocf.data.format import DatasetInfo, read_info, write_dataset
from ocf.data.generator import Generator, make_dataset
from ocf.data.loader import H5Dataset, collate, describe, make_loader

__all__ = [
    "DatasetInfo",
    "Generator",
    "H5Dataset",
    "StepBatches",
    "collate",
    "describe",
    "make_dataset",
    "make_loader",
    "ordered_batch",
    "read_info",
    "take_batch",
    "window",
    "write_dataset",
]
