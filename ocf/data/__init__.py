"""ocf's data layer: HDF5 dataset files, procedural generators and loaders.

- :mod:`ocf.data.format`: the file layouts (ours and the object-centric-library one),
  validation (:func:`read_info`) and :func:`write_dataset`.
- :mod:`ocf.data.generator`: :class:`Generator`, the base of procedural datasets, and
  :func:`make_dataset`.
- :mod:`ocf.data.loader`: :class:`H5Dataset`, :func:`collate`, :func:`make_loader`,
  :func:`describe`.
- :mod:`ocf.data.cli`: the ``ocf data`` command.

See docs/data.md.
"""

from ocf.data.format import DatasetInfo, read_info, write_dataset
from ocf.data.generator import Generator, make_dataset
from ocf.data.loader import H5Dataset, collate, describe, make_loader

__all__ = [
    "DatasetInfo",
    "Generator",
    "H5Dataset",
    "collate",
    "describe",
    "make_dataset",
    "make_loader",
    "read_info",
    "write_dataset",
]
