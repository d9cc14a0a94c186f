"""Deprecated: the ``ocf data`` command moved to :mod:`ocf.cli.data` and
:func:`import_frames` to :mod:`ocf.data.frames`."""

from __future__ import annotations

import warnings

from ocf.cli.data import (
    add_parser,
    cmd_import_frames,
    cmd_inspect,
    cmd_list,
    cmd_make,
    format_summary,
    parse_settings,
    parse_splits,
    write_sheet,
)
from ocf.data.frames import IMAGE_SUFFIXES, import_frames

warnings.warn(
    "ocf.data.cli is deprecated; import the command from ocf.cli.data and import_frames from ocf.data.frames",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "add_parser",
    "cmd_import_frames",
    "cmd_inspect",
    "cmd_list",
    "cmd_make",
    "format_summary",
    "import_frames",
    "parse_settings",
    "parse_splits",
    "write_sheet",
]
