"""Deprecated: evaluation moved to :mod:`ocf.run.evaluate` (``evaluate_model``,
``metric_objects``), :mod:`ocf.run.checkpoints` (``load_run``), :mod:`ocf.viz`
(``decomposition_pictures``) and :mod:`ocf.cli.commands` (``evaluate_run``, ``visualise``:
the ``ocf eval`` / ``ocf viz`` bodies)."""

from __future__ import annotations

import warnings

from ocf.run.evaluate import evaluate_model
from ocf.run.evaluate import metric_objects as _metric_objects
from ocf.viz import decomposition_pictures

warnings.warn(
    "ocf.evaluate is deprecated; import from ocf.run.evaluate, ocf.run.checkpoints (load_run), "
    "ocf.viz (decomposition_pictures) or ocf.cli.commands (evaluate_run, visualise)",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["decomposition_pictures", "evaluate_model", "load_run", "main", "metric_objects", "visualise"]


def load_run(run_dir, checkpoint: str | None = None):
    """Deprecated form of :func:`ocf.run.checkpoints.load_run` with the process-wide plugins."""
    from ocf import plugins
    from ocf.run.checkpoints import load_run as _load_run

    return _load_run(run_dir, plugins.default().registry, checkpoint)


def metric_objects(resolved, registry=None):
    """Deprecated form of :func:`ocf.run.evaluate.metric_objects` (the registry now comes
    from ``resolved``)."""
    return _metric_objects(resolved)


def main(run_dir: str, **kwargs):
    """Deprecated: :func:`ocf.cli.commands.evaluate_run`."""
    from ocf.cli.commands import evaluate_run

    return evaluate_run(run_dir, **kwargs)


def visualise(run_dir: str, **kwargs):
    """Deprecated: :func:`ocf.cli.commands.visualise`."""
    from ocf.cli.commands import visualise as _visualise

    return _visualise(run_dir, **kwargs)
