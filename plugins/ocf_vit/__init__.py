"""Pretrained vision transformers (DINO, DINOv2, MAE) as ocf encoders, backed by timm.

timm is an optional extra (``pip install 'ocf[vit]'``): the plugin always registers
``vit.encoder`` (so ``ocf plugins`` lists it and shows its options), and building one without
timm is a :class:`~ocf.errors.MissingDependencyError` saying what to install."""

from ocf.hookspecs import hookimpl


@hookimpl
def ocf_register_components(registry):
    from ocf_vit.encoder import ViTEncoder

    registry.register(ViTEncoder)
