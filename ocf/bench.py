"""Deprecated: ``ocf bench``'s measurement moved to :mod:`ocf.run.bench` and its command
body (``bench``, ``format_record``) to :mod:`ocf.cli.commands`."""

from __future__ import annotations

import warnings

from ocf.run.bench import hot_operators, matmul_peak, peak_memory_mb, run

warnings.warn(
    "ocf.bench is deprecated; import from ocf.run.bench or ocf.cli.commands (bench, format_record)",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["format_record", "hot_operators", "main", "matmul_peak", "peak_memory_mb", "run"]


def format_record(r: dict) -> str:
    """Deprecated: :func:`ocf.cli.commands.format_record`."""
    from ocf.cli.commands import format_record as _format_record

    return _format_record(r)


def main(spec_path: str, overrides: list[str], **kwargs) -> dict:
    """Deprecated: :func:`ocf.cli.commands.bench`."""
    from ocf.cli.commands import bench

    return bench(spec_path, overrides, **kwargs)
