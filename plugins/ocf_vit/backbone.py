"""Creating ViTs without touching the network, with ocf's own module (:mod:`ocf_vit.model`, torch
only) or timm's (an optional extra): the architectures ocf documents, the lazy timm import, and the
two operations the encoder needs from either (cut the model after a block, read a block's tokens)."""

from __future__ import annotations

from typing import Any, Literal

from torch import Tensor, nn

from ocf.errors import MissingDependencyError, SpecError
from ocf_vit import model

#: The released self-supervised backbones ocf documents, by timm model name: what each is.
DOCUMENTED_ARCHS: dict[str, str] = {
    "vit_small_patch16_224.dino": "DINO ViT-S/16 (dino_deitsmall16_pretrain.pth)",
    "vit_base_patch16_224.dino": "DINO ViT-B/16 (dino_vitbase16_pretrain.pth)",
    "vit_small_patch14_dinov2.lvd142m": "DINOv2 ViT-S/14 (dinov2_vits14_pretrain.pth)",
    "vit_base_patch14_dinov2.lvd142m": "DINOv2 ViT-B/14 (dinov2_vitb14_pretrain.pth)",
    "vit_small_patch14_reg4_dinov2.lvd142m": "DINOv2 ViT-S/14 with 4 registers (dinov2_vits14_reg4_pretrain.pth)",
    "vit_base_patch14_reg4_dinov2.lvd142m": "DINOv2 ViT-B/14 with 4 registers (dinov2_vitb14_reg4_pretrain.pth)",
    "vit_base_patch16_224.mae": "MAE ViT-B/16 (mae_pretrain_vit_base.pth)",
}

Backend = Literal["auto", "ocf", "timm"]
INSTALL = "pip install 'ocf[vit]'"


def import_timm() -> Any:
    """The timm module; a MissingDependencyError naming the extra when it cannot be imported
    (timm itself, or a torchvision that does not load with the installed torch)."""
    try:
        import timm
        from timm.models.vision_transformer import VisionTransformer  # noqa: F401
    except Exception as exc:  # ImportError, or RuntimeError from a torchvision built for another torch
        raise MissingDependencyError(
            f"vit.encoder with backend timm needs timm, which cannot be imported ({type(exc).__name__}: {exc}); "
            f"install it with {INSTALL} (timm needs a torchvision built for your torch), or use backend ocf"
        ) from exc
    return timm


def create_vit(
    arch: str, arch_args: dict[str, Any], img_size: tuple[int, int] | None = None, backend: Backend = "auto"
) -> nn.Module:
    """A randomly initialised ViT ``arch`` (timm model name) for ``img_size`` inputs (None: the
    architecture's own), without a classifier head, from ``backend`` ('auto' and 'ocf': ocf's module;
    'timm': timm's, created with ``pretrained=False``). Never downloads."""
    if backend == "timm":
        return create_timm_vit(arch, arch_args, img_size)
    if backend not in ("auto", "ocf"):
        raise SpecError([f"backend: {backend!r} is not one of auto, ocf, timm"])
    return create_ocf_vit(arch, arch_args, img_size)


def create_ocf_vit(arch: str, arch_args: dict[str, Any], img_size: tuple[int, int] | None = None) -> nn.Module:
    """ocf's :class:`~ocf_vit.model.VisionTransformer` for ``arch``, changed by ``arch_args``."""
    try:
        cfg = model.config(arch, dict(arch_args), img_size)
    except KeyError:
        known = ", ".join(model.ARCHS)
        raise SpecError([f"arch: ocf's ViT has no architecture {arch!r}; it has {known} (each with any tag)"]) from None
    except TypeError as exc:
        raise SpecError([f"arch_args: {exc}"]) from None
    try:
        return model.VisionTransformer(cfg)
    except ValueError as exc:
        raise SpecError([f"arch_args: {arch} cannot be built with {dict(arch_args)}: {exc}"]) from None


def create_timm_vit(arch: str, arch_args: dict[str, Any], img_size: tuple[int, int] | None = None) -> nn.Module:
    """timm's VisionTransformer ``arch`` (any timm ViT name; ``arch_args`` are timm keyword arguments)."""
    timm = import_timm()
    from timm.models import is_model, split_model_name_tag
    from timm.models.vision_transformer import VisionTransformer

    if not is_model(split_model_name_tag(arch)[0]):
        documented = ", ".join(DOCUMENTED_ARCHS)
        raise SpecError([f"arch: timm has no model {arch!r}; the documented backbones are {documented}"])
    kwargs = {"num_classes": 0, **arch_args, **({"img_size": img_size} if img_size else {})}
    vit = timm.create_model(arch, pretrained=False, **kwargs)
    if not isinstance(vit, VisionTransformer):
        raise SpecError([f"arch: {arch!r} is a {type(vit).__name__}, not a timm VisionTransformer"])
    return vit


def truncate(vit: nn.Module, block: int, keep_norm: bool) -> None:
    """Remove the blocks after ``block`` (>= 0) and, unless ``keep_norm``, the final LayerNorm."""
    if isinstance(vit, model.VisionTransformer):
        vit.truncate(block, keep_norm)
    else:
        vit.prune_intermediate_layers([block], prune_norm=not keep_norm)


def block_tokens(vit: nn.Module, images: Tensor, block: int, norm: bool) -> tuple[Tensor, Tensor]:
    """images ``[B c h w]`` → (patch tokens ``[B n C]``, prefix tokens ``[B p C]``) after ``block``,
    through the final LayerNorm when ``norm``."""
    if isinstance(vit, model.VisionTransformer):
        tokens = vit.forward_tokens(images, block, norm=norm)
        return tokens[:, vit.num_prefix_tokens :], tokens[:, : vit.num_prefix_tokens]
    (out,) = vit.forward_intermediates(
        images, indices=[block], return_prefix_tokens=True, norm=norm, output_fmt="NLC", intermediates_only=True
    )
    return out if isinstance(out, tuple) else (out, out[:, :0])  # a ViT without prefix tokens gives no pair
