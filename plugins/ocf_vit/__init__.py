"""Pretrained vision transformers (DINO, DINOv2, MAE) as ocf encoders.

The ViT runs on ocf's own module (:mod:`ocf_vit.model`, torch only) by default, or on timm's with
``backend: timm``; timm is an optional extra (``pip install 'ocf[vit]'``), and asking for it
without it installed is a :class:`~ocf.errors.MissingDependencyError` saying what to install."""

from ocf.hookspecs import hookimpl


@hookimpl
def ocf_register_components(registry):
    from ocf_vit.encoder import ViTEncoder

    registry.register(ViTEncoder)
