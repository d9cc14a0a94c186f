"""Creating timm ViTs without touching the network: the architectures ocf documents, the
lazy timm import, and the pretrained-weights file format helpers."""

from __future__ import annotations

from typing import Any

from torch import nn

from ocf.errors import MissingDependencyError, SpecError

#: The released self-supervised backbones ocf documents, by timm model name: what each is.
#: Any other timm VisionTransformer name works too (``arch_args`` can shrink one for tests).
DOCUMENTED_ARCHS: dict[str, str] = {
    "vit_small_patch16_224.dino": "DINO ViT-S/16 (dino_deitsmall16_pretrain.pth)",
    "vit_base_patch16_224.dino": "DINO ViT-B/16 (dino_vitbase16_pretrain.pth)",
    "vit_small_patch14_dinov2.lvd142m": "DINOv2 ViT-S/14 (dinov2_vits14_pretrain.pth)",
    "vit_base_patch14_dinov2.lvd142m": "DINOv2 ViT-B/14 (dinov2_vitb14_pretrain.pth)",
    "vit_small_patch14_reg4_dinov2.lvd142m": "DINOv2 ViT-S/14 with 4 registers (dinov2_vits14_reg4_pretrain.pth)",
    "vit_base_patch14_reg4_dinov2.lvd142m": "DINOv2 ViT-B/14 with 4 registers (dinov2_vitb14_reg4_pretrain.pth)",
    "vit_base_patch16_224.mae": "MAE ViT-B/16 (mae_pretrain_vit_base.pth)",
}

INSTALL = "pip install 'ocf[vit]'"


def import_timm() -> Any:
    """The timm module; a MissingDependencyError naming the extra when it cannot be imported
    (timm itself, or a torchvision that does not load with the installed torch)."""
    try:
        import timm
        from timm.models.vision_transformer import VisionTransformer  # noqa: F401
    except Exception as exc:  # ImportError, or RuntimeError from a torchvision built for another torch
        raise MissingDependencyError(
            f"vit.encoder needs timm, which cannot be imported ({type(exc).__name__}: {exc}); install it with "
            f"{INSTALL} (timm needs a torchvision built for your torch)"
        ) from exc
    return timm


def create_vit(arch: str, arch_args: dict[str, Any], img_size: tuple[int, int] | None = None) -> nn.Module:
    """A randomly initialised timm VisionTransformer ``arch`` for ``img_size`` inputs (None:
    the architecture's own), without a classifier head; never downloads (``pretrained=False``)."""
    timm = import_timm()
    from timm.models import is_model, split_model_name_tag
    from timm.models.vision_transformer import VisionTransformer

    if not is_model(split_model_name_tag(arch)[0]):
        documented = ", ".join(DOCUMENTED_ARCHS)
        raise SpecError([f"arch: timm has no model {arch!r}; the documented backbones are {documented}"])
    kwargs = {"num_classes": 0, **arch_args, **({"img_size": img_size} if img_size else {})}
    model = timm.create_model(arch, pretrained=False, **kwargs)
    if not isinstance(model, VisionTransformer):
        raise SpecError([f"arch: {arch!r} is a {type(model).__name__}, not a timm VisionTransformer"])
    return model
