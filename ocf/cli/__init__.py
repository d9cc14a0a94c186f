"""The ``ocf`` command line (console entry point ``ocf.cli:main``; also ``python -m ocf``).

Floors: :mod:`ocf.cli.main` (parser, :func:`main`, error policy) uses
:mod:`ocf.cli.plugins`, :mod:`ocf.cli.commands` and :mod:`ocf.cli.data`, which use
:mod:`ocf.cli.table` and the jobs in :mod:`ocf.run`.  Nothing below the CLI imports it.
"""

from ocf.cli.commands import load_spec
from ocf.cli.main import build_parser, main, run_guarded
from ocf.cli.plugins import component_doc
from ocf.cli.table import format_table

__all__ = ["build_parser", "component_doc", "format_table", "load_spec", "main", "run_guarded"]
