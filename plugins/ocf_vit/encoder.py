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
from ocf.errors import SpecError, UserError
from ocf.features import CacheIdentity, check_cache, state_digest
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
        cache: str | None = Field(
            None,
            description="name of an extra of the data file holding this encoder's patch tokens [t n c], written by "
            "`ocf features extract`: the tokens are read from it instead of computed (the weights still load; "
            "their digest and the backbone must match the file's, else exit 2); needs frozen: true, "
            "prefix_tokens: drop and the extra declared in data.extras; null: compute the tokens",
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
        self.where = ctx.where or "model.encoder"
        self.value_range = tuple(ctx.data.value_range) if ctx.data is not None else (0.0, 1.0)
        ctx.dims["features.tokens"] = vit.embed_dim
        ctx.dims["features.grid"] = self.grid
        if spec.cache is not None:
            self._check_cache(ctx)

    @staticmethod
    def _load(vit, spec: Spec) -> str:
        return load_weights(vit, spec.weights, key=spec.checkpoint_key, arch=spec.arch)

    def cache_identity(self, digest: bool = True) -> CacheIdentity:
        """What the tokens depend on (see :mod:`ocf.features`): the backbone and the digest of the
        weights that run (not computed without ``digest``); a UserError when they cannot be cached
        (not frozen, prefix tokens kept)."""
        where = self.where
        if not self.spec.frozen:
            raise UserError(
                f"{where}.frozen: a fine-tuned ViT (frozen: false) changes during training, so its tokens cannot "
                f"be cached; set {where}.frozen=true"
            )
        if self.spec.prefix_tokens != "drop":
            raise UserError(f"{where}.prefix_tokens: the cache holds the patch tokens only; set it to drop")
        s = self.spec
        backbone = {
            "arch": s.arch,
            "arch_args": dict(sorted(s.arch_args.items())),
            "block": self.block,
            "final_norm": s.final_norm,
            "resolution": list(self.size),
            "mean": list(s.mean),
            "std": list(s.std),
            "value_range": list(self.value_range),
        }
        info = {"weights": s.weights, "weights_file_sha256": self.weights_digest, "backend": s.backend}
        weights = state_digest(self.vit) if digest else ""
        return CacheIdentity(self.name, backbone, weights, self.grid, self.vit.embed_dim, info)

    def _check_cache(self, ctx: BuildContext) -> None:
        """The cache extra is declared with this encoder's token layout, and (built from a spec) the data
        file's extra was extracted with this backbone and these weights."""
        name = self.spec.cache
        mine = self.cache_identity(digest=not self.mean.is_meta)
        declared = ctx.dims.get(f"batch.extras.{name}")
        if declared is None or len(declared) != 3 or tuple(declared[1:]) != (mine.tokens, mine.dim):
            raise SpecError(
                [
                    f"{ctx.where}.cache: reads the extra {name!r} of [t {mine.tokens} {mine.dim}] tokens per sample; "
                    f"declare it as data.extras.{name}=[T,{mine.tokens},{mine.dim}] (T: the file's clip length), "
                    f"got {None if declared is None else list(declared)}"
                ]
            )
        if ctx.data is not None and not self.mean.is_meta:  # a build on the meta device loads no weights
            check_cache(ctx.data.path, name, mine, ctx.where)

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

    def encode_frames(self, frames: Tensor) -> Tensor:
        """frames ``[b t c h w]`` → patch tokens ``[b t n c]``, computed (never read from the cache)."""
        patches, _ = self.embed(rearrange(frames, "b t c h w -> (b t) c h w"))
        return rearrange(patches, "(b t) n c -> b t n c", b=frames.shape[0])

    def forward(self, state: State) -> Features:
        frames = state.batch.frames  # [b t c h w]
        if self.spec.cache is not None:  # a frame window of the cached tokens [b T n c]
            cached = state.batch.extras.get(self.spec.cache)
            if cached is None:
                raise UserError(f"vit.encoder: the batch has no extra {self.spec.cache!r} to read cached tokens from")
            return Features(tokens=cached[:, : frames.shape[1]].to(self.mean.dtype), grid=self.grid, extras={})
        b = frames.shape[0]
        patches, prefix = self.embed(rearrange(frames, "b t c h w -> (b t) c h w"))
        patches = rearrange(patches, "(b t) n c -> b t n c", b=b)
        extras = {}
        if self.spec.prefix_tokens == "extras":
            extras["prefix_tokens"] = rearrange(prefix, "(b t) p c -> b t p c", b=b)
        return Features(tokens=patches, grid=self.grid, extras=extras)
