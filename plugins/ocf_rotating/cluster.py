"""Deprecated: moved to :mod:`ocf_rotating.grouper`."""

from ocf.compat import moved

__getattr__ = moved(__name__, "ocf_rotating.grouper")
