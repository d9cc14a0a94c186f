"""``vit.encoder``: a pretrained vision transformer (ocf's own module or timm's) whose patch tokens are the
features."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from pydantic import Field
from torch import Tensor

from ocf.components import BuildContext, ComponentSpec, Encoder
from ocf.errors import SpecError
from ocf.fields import MAX_REPEATS, Size
from ocf.records import Features, State
from ocf_vit.backbone import Backend, block_tokens, create_vit, truncate
from ocf_vit.weights import load_weights

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ViTEncoder(Encoder):
    """A pretrained vision transformer (DINO, DINOv2, MAE) with weights from a local file; its patch tokens
    at one block are the features, video frame by frame."""

    name = "vit.encoder"
    needs = ("batch.frames",)
    provides = ("features.tokens", "features.grid")
    example = {
        "arch": "vit_tiny_patch16_224",
        "arch_args": {"patch_size": 4, "embed_dim": 32, "depth": 2, "num_heads": 2},
        "weights": "random",
    }

    class Spec(ComponentSpec):
        arch: str = Field(
            description="architecture by timm model name, e.g. vit_small_patch16_224.dino, vit_base_patch16_224.dino, "
            "vit_small_patch14_dinov2.lvd142m, vit_base_patch14_dinov2.lvd142m, "
            "vit_small_patch14_reg4_dinov2.lvd142m, vit_base_patch16_224.mae; backend timm takes any timm "
            "VisionTransformer name (created with pretrained=False: nothing is downloaded)",
        )
        backend: Backend = Field(
            "auto",
            description="module that runs the ViT: 'ocf' (ocf's own, needs only torch), 'timm' (timm's "
            "VisionTransformer, needs the ocf[vit] extra), 'auto' (ocf's); both load the same weights files",
        )
        weights: str = Field(
            description="path of the weights file (.safetensors, or a PyTorch state dict or checkpoint read with "
            "torch.load(weights_only=True)); 'random' keeps the module's random initialisation (plumbing checks only)",
        )
        checkpoint_key: str | None = Field(
            None,
            description="entry of a checkpoint holding several state dicts to load (e.g. 'student'); null: "
            "'teacher', 'model' or 'state_dict', whichever is present, or the file itself",
        )
        arch_args: dict[str, int | float | bool | str] = Field(
            {},
            description="arguments that change the architecture, named as timm.create_model's (depth, embed_dim, "
            "num_heads, patch_size, mlp_ratio, init_values, reg_tokens, ...; backend timm: any of timm's), e.g. a "
            "tiny model for CPU runs; a released checkpoint needs none",
        )
        block: int = Field(
            -1,
            ge=-MAX_REPEATS,
            le=MAX_REPEATS,
            description="index of the transformer block whose output tokens are the features (negative: "
            "from the end; -1 the last)",
        )
        final_norm: bool = Field(False, description="apply the ViT's final LayerNorm to that block's output")
        frozen: bool = Field(
            True,
            description="no gradients into the ViT and the ViT always in evaluation mode (dropout, drop-path off); "
            "false fine-tunes it",
        )
        resolution: tuple[Size, Size] | None = Field(
            None,
            description="[h w] the frames are resized to (bicubic) before the ViT, each a multiple of the patch "
            "size; the position embeddings are resampled to its patch grid (null: the data's resolution)",
        )
        mean: tuple[float, ...] = Field(IMAGENET_MEAN, description="per-channel mean subtracted from the frames")
        std: tuple[float, ...] = Field(IMAGENET_STD, description="per-channel std the frames are divided by")
        prefix_tokens: Literal["drop", "extras"] = Field(
            "drop",
            description="the class and register tokens: 'drop' (features.tokens are the patch tokens only) or "
            "'extras' (also kept in features.extras.prefix_tokens [b t p c])",
        )

    def __init__(self, spec: Spec, ctx: BuildContext) -> None:
        super().__init__(spec, ctx)
        if len(spec.mean) != ctx.channels or len(spec.std) != ctx.channels:
            raise SpecError(
                [f"{ctx.where}: mean and std need one value per channel ({ctx.channels}), got {spec.mean}, {spec.std}"]
            )
        size = tuple(spec.resolution or ctx.resolution)
        vit = create_vit(spec.arch, dict(spec.arch_args), size, spec.backend)
        patch = tuple(vit.patch_embed.patch_size)
        if size[0] % patch[0] or size[1] % patch[1]:
            raise SpecError(
                [
                    f"{ctx.where}.resolution: {list(size)} is not a multiple of the patch size {list(patch)}; set "
                    "resolution to one"
                ]
            )
        depth = len(vit.blocks)
        if not -depth <= spec.block < depth:
            raise SpecError([f"{ctx.where}.block: {spec.block} is out of range for {depth} blocks"])
        self.weights_digest = None if spec.weights == "random" else self._load(vit, spec)
        self.block = spec.block % depth
        truncate(vit, self.block, keep_norm=spec.final_norm)  # later blocks never run
        self.vit = vit
        if spec.frozen:
            self.vit.requires_grad_(False)
            self.vit.eval()
        self.size = size
        self.grid = (size[0] // patch[0], size[1] // patch[1])
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(1, -1, 1, 1), persistent=False)
        ctx.dims["features.tokens"] = vit.embed_dim
        ctx.dims["features.grid"] = self.grid

    @staticmethod
    def _load(vit, spec: Spec) -> str:
        return load_weights(vit, spec.weights, key=spec.checkpoint_key, arch=spec.arch)

    def train(self, mode: bool = True) -> ViTEncoder:
        """Training mode for the module, except a frozen ViT, which stays in evaluation mode."""
        super().train(mode)
        if self.spec.frozen:
            self.vit.eval()
        return self

    def embed(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """images ``[B c h w]`` in [0, 1] → (patch tokens ``[B n c]``, prefix tokens ``[B p c]``)."""
        x = images
        if tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bicubic", align_corners=False, antialias=True)
        x = (x - self.mean) / self.std
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.spec.frozen):
            return block_tokens(self.vit, x, self.block, norm=self.spec.final_norm)

    def forward(self, state: State) -> Features:
        frames = state.batch.frames  # [b t c h w]
        b = frames.shape[0]
        patches, prefix = self.embed(rearrange(frames, "b t c h w -> (b t) c h w"))
        patches = rearrange(patches, "(b t) n c -> b t n c", b=b)
        extras = {}
        if self.spec.prefix_tokens == "extras":
            extras["prefix_tokens"] = rearrange(prefix, "(b t) p c -> b t p c", b=b)
        return Features(tokens=patches, grid=self.grid, extras=extras)
