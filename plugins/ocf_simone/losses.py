"""Deprecated: ``SimonePrior`` moved to :mod:`ocf_simone.prior` and ``SimoneLikelihood`` to
:mod:`ocf_simone.objective`."""

from ocf.compat import moved

__getattr__ = moved(__name__, "ocf_simone.prior", "ocf_simone.objective")
