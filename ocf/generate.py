"""Deprecated: generation moved to :mod:`ocf.run.generate` (``generate``,
``can_generate``), :mod:`ocf.viz` (``sample_pictures``) and :mod:`ocf.cli.commands`
(``sample``: the ``ocf sample`` body)."""

from __future__ import annotations

import warnings

from ocf.run.generate import can_generate, generate
from ocf.viz import sample_pictures

warnings.warn(
    "ocf.generate is deprecated; import from ocf.run.generate, ocf.viz (sample_pictures) or ocf.cli.commands (sample)",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["can_generate", "generate", "main", "sample_pictures"]


def main(run_dir: str, **kwargs):
    """Deprecated: :func:`ocf.cli.commands.sample`."""
    from ocf.cli.commands import sample

    return sample(run_dir, **kwargs)
