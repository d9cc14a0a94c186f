"""Deprecated: the encoder moved to :mod:`ocf_rotating.encoder`, the decoder to
:mod:`ocf_rotating.decoder`, the conformance fixture to :mod:`ocf_rotating.fixtures`."""

from ocf.compat import moved

__getattr__ = moved(__name__, "ocf_rotating.encoder", "ocf_rotating.decoder", "ocf_rotating.fixtures")
