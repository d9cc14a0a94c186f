"""Deprecated: moved to :mod:`ocf_rotating.data`."""

from ocf.compat import moved

__getattr__ = moved(__name__, "ocf_rotating.data")
