"""GENESIS-v2's UNet feature encoder: 3×3 conv + GroupNorm + ReLU blocks, nearest-neighbour
down- and up-sampling, an MLP at the bottom and skip connections; its depth follows the
image size so the bottom is always 4×4 (64×64 → 5 blocks, 32×32 → 4)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from pydantic import Field
from torch import Tensor, nn

from ocf.components import BuildContext, ComponentSpec, Encoder
from ocf.fields import Repeats, Size
from ocf.records import Features, State


def conv_gn_relu(c_in: int, c_out: int, groups: int) -> nn.Sequential:
    """3×3 conv (no bias) → GroupNorm → ReLU: GENESIS's ``ConvGNReLU``."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.GroupNorm(groups, c_out), nn.ReLU())


class PointwiseConv(nn.Conv2d):
    """A 1×1 ``nn.Conv2d`` (same parameters, init and state dict) computed as one batched
    matmul over the pixels, ``[B o c] @ [B c (h w)]``: on CPU oneDNN's 1×1 convolution with
    few channels is up to ten times slower (GENESIS's 16 → 4 output head took 20 ms of a
    150 ms training step, forward and backward)."""

    def __init__(self, c_in: int, c_out: int, bias: bool = True) -> None:
        super().__init__(c_in, c_out, 1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        B, _, h, w = x.shape
        x = x.flatten(2)  # [B c (h w)]
        weight = self.weight.flatten(1).expand(B, -1, -1)  # [B o c]
        if self.bias is None:
            out = torch.bmm(weight, x)
        else:
            out = torch.baddbmm(self.bias.view(1, -1, 1).expand(B, -1, x.shape[-1]), weight, x)
        return out.view(B, -1, h, w)  # [B o h w]


def unet_blocks(resolution: tuple[int, int], blocks: int | None) -> tuple[int, tuple[int, int]]:
    """Number of blocks (``log2(min(h, w)) − 1`` unless given) and the bottom grid."""
    h, w = resolution
    n = blocks if blocks is not None else int(math.log2(min(h, w))) - 1
    if n < 2:
        raise ValueError(f"a {h}x{w} image is too small for the UNet (needs at least 8x8, or blocks >= 2)")
    f = 2 ** (n - 1)
    if h % f or w % f:
        raise ValueError(f"the UNet halves the resolution {n - 1} times; {h}x{w} is not divisible by {f} (set blocks)")
    return n, (h // f, w // f)


class UNetEncoder(Encoder):
    """GENESIS-v2 UNet: GroupNorm conv blocks, depth from the image size (bottom 4×4), bottleneck MLP, skip
    connections; full-resolution feature tokens."""

    name = "genesis.unet"
    needs = ("batch.frames",)
    provides = ("features.tokens", "features.grid")

    class Spec(ComponentSpec):
        filters: Size = Field(
            64,
            description="c, the channels of the first block (GENESIS-v2: min(feat_dim, 64)); deeper blocks use 2c; the "
            "output has c channels",
        )
        blocks: Repeats | None = Field(
            None,
            ge=2,
            description="down/up blocks (null: log2(min(h, w)) - 1, so a 64x64 image gets 5 and a 4x4 bottom)",
        )
        mlp_hidden: Size = Field(128, description="hidden width of the bottleneck MLP (two hidden layers)")
        groups: Size = Field(8, description="GroupNorm groups (must divide filters)")

    def __init__(self, spec: Spec, ctx: BuildContext) -> None:
        super().__init__(spec, ctx)
        c, g = spec.filters, spec.groups
        if c % g:
            raise ValueError(f"filters ({c}) must be divisible by groups ({g})")
        n, (bh, bw) = unet_blocks(ctx.resolution, spec.blocks)
        # channel plan of GENESIS's 4/5/6-block UNets, generalised to any depth
        enc_out = [c if i < n - 3 else 2 * c for i in range(n)]
        enc_in = [ctx.channels] + enc_out[:-1]
        dec_out = [2 * c if i < 2 else c for i in range(n)]
        dec_in = [enc_out[-1] + enc_out[-1]] + [dec_out[i - 1] + enc_out[n - 1 - i] for i in range(1, n)]
        self.down = nn.ModuleList(conv_gn_relu(a, b, g) for a, b in zip(enc_in, enc_out))
        self.up = nn.ModuleList(conv_gn_relu(a, b, g) for a, b in zip(dec_in, dec_out))
        flat = enc_out[-1] * bh * bw
        self.mlp = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, spec.mlp_hidden),
            nn.ReLU(),
            nn.Linear(spec.mlp_hidden, spec.mlp_hidden),
            nn.ReLU(),
            nn.Linear(spec.mlp_hidden, flat),
            nn.ReLU(),
        )
        self.bottom = (enc_out[-1], bh, bw)
        ctx.dims["features.tokens"] = dec_out[-1]
        ctx.dims["features.grid"] = tuple(ctx.resolution)

    def feature_map(self, x: Tensor) -> Tensor:
        """``[b c h w]`` images → ``[b c' h w]`` features."""
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            skips.append(x)
            if i < len(self.down) - 1:
                x = F.interpolate(x, scale_factor=0.5, mode="nearest")
        x = self.mlp(x).view(x.shape[0], *self.bottom)
        for i, block in enumerate(self.up):
            x = block(torch.cat([x, skips[-1 - i]], dim=1))
            if i < len(self.up) - 1:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return x

    def forward(self, state: State) -> Features:
        frames = state.batch.frames  # [b t c h w]
        x = self.feature_map(rearrange(frames, "b t c h w -> (b t) c h w"))
        h, w = x.shape[-2:]
        tokens = rearrange(x, "(b t) c h w -> b t (h w) c", b=frames.shape[0])
        return Features(tokens=tokens, grid=(h, w))
