"""ocf's own vision transformer: the pre-norm ViT of DINO, DINOv2 and MAE, whose state-dict keys and
shapes are those of timm's ``VisionTransformer`` (``patch_embed.proj``, ``cls_token``, ``reg_token``,
``pos_embed``, ``blocks.N.{norm1,attn.qkv,attn.proj,ls1.gamma,norm2,mlp.fc1,mlp.fc2,ls2.gamma}``,
``norm``), so released and timm-converted weights load into it. It needs only torch.

    tokens [B, p + n, C] = blocks(concat(class, registers, patches) + position embedding)

Every LayerNorm has eps 1e-6; the qkv projection is one Linear whose output rows are the queries,
keys and values of all heads in that order; attention is ``scaled_dot_product_attention``."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

EPS = 1e-6


@dataclass(frozen=True)
class ViTConfig:
    """The architecture of a :class:`VisionTransformer` (the names are timm's keyword arguments)."""

    img_size: tuple[int, int] = (224, 224)
    patch_size: int = 16
    in_chans: int = 3
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    init_values: float | None = None  # LayerScale's initial gamma (DINOv2: 1e-5); None: no LayerScale
    reg_tokens: int = 0
    no_embed_class: bool = False  # True: the position embedding covers the patches only (DINOv2 with registers)
    drop_path_rate: float = 0.0


def resample_pos_embed(pos: Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int], prefix: int) -> Tensor:
    """A position embedding ``[1, prefix + h*w, C]`` for the patch grid ``old_grid`` resampled to
    ``new_grid`` (bicubic, antialiased, in float32); the first ``prefix`` rows are kept as they are."""
    if tuple(old_grid) == tuple(new_grid):
        return pos
    head, grid = pos[:, :prefix], pos[:, prefix:]
    image = grid.float().reshape(1, old_grid[0], old_grid[1], -1).permute(0, 3, 1, 2)
    image = F.interpolate(image, size=tuple(new_grid), mode="bicubic", align_corners=False, antialias=True)
    grid = image.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], -1).to(pos.dtype)
    return torch.cat([head, grid], dim=1)


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch_size`` patches, each projected to ``embed_dim`` by one convolution."""

    def __init__(self, img_size: tuple[int, int], patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.img_size = tuple(img_size)
        self.patch_size = (patch_size, patch_size)
        self.grid_size = (self.img_size[0] // patch_size, self.img_size[1] // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """images ``[B c h w]`` → (patch embeddings ``[B n C]`` in row-major order, their grid)."""
        x = self.proj(images)
        return x.flatten(2).transpose(1, 2), (x.shape[2], x.shape[3])


class Attention(nn.Module):
    """Multi-head self-attention: one Linear for queries, keys and values, one for the output."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not a multiple of num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # [b heads n d], scale 1/sqrt(d)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """fc1 → GELU (exact) → fc2."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LayerScale(nn.Module):
    """Per-channel scale ``gamma`` of a residual branch (CaiT, DINOv2)."""

    def __init__(self, dim: int, init_values: float) -> None:
        super().__init__()
        self.init_values = init_values
        self.gamma = nn.Parameter(torch.full((dim,), float(init_values)))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class DropPath(nn.Module):
    """Stochastic depth: in training, drops a residual branch for a whole sample with probability ``p``
    and scales the kept ones by ``1 / (1 - p)``; the identity in evaluation mode."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class Block(nn.Module):
    """Pre-norm transformer block: ``x + ls1(attn(norm1(x)))``, then ``x + ls2(mlp(norm2(x)))``."""

    def __init__(self, cfg: ViTConfig, drop_path: float) -> None:
        super().__init__()
        dim = cfg.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=EPS)
        self.attn = Attention(dim, cfg.num_heads, cfg.qkv_bias)
        self.ls1 = LayerScale(dim, cfg.init_values) if cfg.init_values is not None else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=EPS)
        self.mlp = Mlp(dim, int(dim * cfg.mlp_ratio))
        self.ls2 = LayerScale(dim, cfg.init_values) if cfg.init_values is not None else nn.Identity()
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.ls1(self.attn(self.norm1(x))))
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x))))


class VisionTransformer(nn.Module):
    """A ViT without classifier head; ``forward`` gives the normalised tokens of the last block,
    :meth:`forward_tokens` those of any block."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed_dim = cfg.embed_dim
        self.no_embed_class = cfg.no_embed_class
        self.num_prefix_tokens = 1 + cfg.reg_tokens  # the class token, then the registers
        self.patch_embed = PatchEmbed(cfg.img_size, cfg.patch_size, cfg.in_chans, cfg.embed_dim)
        self.cls_token = nn.Parameter(torch.empty(1, 1, cfg.embed_dim))
        self.reg_token = nn.Parameter(torch.empty(1, cfg.reg_tokens, cfg.embed_dim)) if cfg.reg_tokens else None
        positions = self.patch_embed.num_patches + (0 if cfg.no_embed_class else self.num_prefix_tokens)
        self.pos_embed = nn.Parameter(torch.empty(1, positions, cfg.embed_dim))
        rates = [cfg.drop_path_rate * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]  # 0 up to the rate
        self.blocks = nn.ModuleList(Block(cfg, rate) for rate in rates)
        self.norm: nn.Module = nn.LayerNorm(cfg.embed_dim, eps=EPS)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Random initialisation: truncated normal (std 0.02) position embedding and Linear weights,
        zero Linear biases, near-zero (std 1e-6) class and register tokens."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        if self.reg_token is not None:
            nn.init.normal_(self.reg_token, std=1e-6)
        for module in self.blocks.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def embed(self, images: Tensor) -> Tensor:
        """images ``[B c h w]`` → the first block's input ``[B p + n C]``: class token, register tokens,
        patch embeddings, plus the position embedding (resampled when the images' grid is not the model's)."""
        x, grid = self.patch_embed(images)
        prefix = [self.cls_token.expand(x.shape[0], -1, -1)]
        if self.reg_token is not None:
            prefix.append(self.reg_token.expand(x.shape[0], -1, -1))
        pos = self.pos_embed
        if grid != self.patch_embed.grid_size:
            kept = 0 if self.no_embed_class else self.num_prefix_tokens
            pos = resample_pos_embed(pos, self.patch_embed.grid_size, grid, kept)
        if self.no_embed_class:
            return torch.cat([*prefix, x + pos], dim=1)
        return torch.cat([*prefix, x], dim=1) + pos

    def forward_tokens(self, images: Tensor, block: int = -1, norm: bool = False) -> Tensor:
        """The tokens ``[B p + n C]`` after block ``block`` (negative: from the end), through the final
        LayerNorm when ``norm``; later blocks do not run."""
        last = block % len(self.blocks)
        x = self.embed(images)
        for blk in self.blocks[: last + 1]:
            x = blk(x)
        return self.norm(x) if norm else x

    def forward(self, images: Tensor) -> Tensor:
        return self.forward_tokens(images, -1, norm=True)

    def truncate(self, block: int, keep_norm: bool) -> None:
        """Remove the blocks after ``block`` and, unless ``keep_norm``, the final LayerNorm."""
        del self.blocks[block % len(self.blocks) + 1 :]
        if not keep_norm:
            self.norm = nn.Identity()


#: Architectures by timm model name (without the tag after a dot, which names released weights).
ARCHS: dict[str, dict] = {
    "vit_tiny_patch16_224": dict(img_size=224, patch_size=16, embed_dim=192, depth=12, num_heads=3),
    "vit_small_patch16_224": dict(img_size=224, patch_size=16, embed_dim=384, depth=12, num_heads=6),
    "vit_base_patch16_224": dict(img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12),
    "vit_small_patch14_dinov2": dict(
        img_size=518, patch_size=14, embed_dim=384, depth=12, num_heads=6, init_values=1e-5
    ),
    "vit_base_patch14_dinov2": dict(
        img_size=518, patch_size=14, embed_dim=768, depth=12, num_heads=12, init_values=1e-5
    ),
    "vit_small_patch14_reg4_dinov2": dict(
        img_size=518,
        patch_size=14,
        embed_dim=384,
        depth=12,
        num_heads=6,
        init_values=1e-5,
        reg_tokens=4,
        no_embed_class=True,
    ),
    "vit_base_patch14_reg4_dinov2": dict(
        img_size=518,
        patch_size=14,
        embed_dim=768,
        depth=12,
        num_heads=12,
        init_values=1e-5,
        reg_tokens=4,
        no_embed_class=True,
    ),
}
#: The arguments ``arch_args`` may change.
ARCH_ARGS = tuple(f for f in ViTConfig.__dataclass_fields__)


def config(arch: str, arch_args: dict, img_size: tuple[int, int] | None = None) -> ViTConfig:
    """The ViTConfig of ``arch`` (a key of :data:`ARCHS`, optionally with a tag) changed by
    ``arch_args``; a KeyError for an unknown architecture, a TypeError for an unknown argument."""
    base = ARCHS[arch.split(".", 1)[0]]
    unknown = sorted(set(arch_args) - set(ARCH_ARGS))
    if unknown:
        raise TypeError(f"unknown architecture arguments {unknown}; ocf's ViT takes {', '.join(ARCH_ARGS)}")
    args = {**base, **arch_args, **({"img_size": img_size} if img_size else {})}
    size = args["img_size"]
    args["img_size"] = (size, size) if isinstance(size, int) else tuple(size)
    _check_ranges(args)
    return ViTConfig(**args)


#: (lowest, highest) of each numeric architecture argument
_RANGES = {
    "patch_size": (1, 1 << 12),
    "in_chans": (1, 1 << 12),
    "embed_dim": (1, 1 << 16),
    "depth": (1, 1000),
    "num_heads": (1, 1 << 12),
    "reg_tokens": (0, 1 << 12),
    "mlp_ratio": (1e-3, 1e3),
    "drop_path_rate": (0.0, 1.0),
}


def _check_ranges(args: dict) -> None:
    """A ValueError naming the first architecture argument of the wrong type or out of its range."""
    for key, (lo, hi) in _RANGES.items():
        if key not in args:
            continue  # the architecture's default
        value = args[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
            raise ValueError(f"arch_args.{key} must be a number in [{lo}, {hi}], got {value!r}")
    if any(not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 1 << 16 for v in args["img_size"]):
        raise ValueError(f"img_size must be positive integers, got {list(args['img_size'])}")
