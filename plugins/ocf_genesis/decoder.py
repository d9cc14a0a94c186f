"""GENESIS-v2's spatial-broadcast decoder: each slot is broadcast to a small grid (the image
size / 2^layers) with two coordinate channels concatenated, upsampled by stride-2 5×5
transposed convs with GroupNorm and ReLU, and mapped by a 1×1 conv to RGB + a mask logit.
RGB goes through a sigmoid ("pixel bound"), masks are a softmax over slots."""

from __future__ import annotations

from typing import Literal

import torch
from einops import rearrange, repeat
from pydantic import Field, model_validator
from torch import nn

from ocf.components import BuildContext, ComponentSpec, Decoder
from ocf.fields import Size
from ocf.records import Rendering, State
from ocf_genesis.encoder import PointwiseConv
from ocf_genesis.grouper import coordinate_grid


class GenesisDecoder(Decoder):
    """GENESIS-v2 decoder: broadcast to image/2^L with coordinate channels, L stride-2 transposed convs with
    GroupNorm, RGB (sigmoid) + mask logit per slot, softmax over slots."""

    name = "genesis.decoder"
    needs = ("latents.objects",)
    provides = ("rendering.recon", "rendering.rgb", "rendering.mask_logits")

    class Spec(ComponentSpec):
        channels: list[Size] = Field(
            [64, 64, 64, 64],
            min_length=1,
            description="output channels of each stride-2 transposed conv (GENESIS-v2: c, c, min(c, 64), min(c, 64) "
            "with c = feat_dim); each doubles h and w",
        )
        kernel_size: Size = Field(5, description="odd square kernel of the transposed convs")
        groups: Size = Field(8, description="GroupNorm groups after each transposed conv (must divide its channels)")
        rgb_activation: Literal["sigmoid", "none"] = Field(
            "sigmoid", description="applied to each slot's RGB (GENESIS-v2 pixel_bound: sigmoid)"
        )

        @model_validator(mode="after")
        def _check(self):
            if self.kernel_size % 2 == 0:
                raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")
            bad = [c for c in self.channels if c % self.groups]
            if bad:
                raise ValueError(f"every entry of channels must be divisible by groups ({self.groups}); {bad} are not")
            return self

    def __init__(self, spec: Spec, ctx: BuildContext) -> None:
        super().__init__(spec, ctx)
        d = ctx.dim("latents.objects")
        h, w = ctx.resolution
        f = 2 ** len(spec.channels)
        if h % f or w % f:
            raise ValueError(
                f"{len(spec.channels)} stride-2 layers need a resolution divisible by {f}; the data is {h}x{w} (use "
                "fewer channels entries)"
            )
        self.size = (h // f, w // f)
        self.channels, self.frames = ctx.channels, ctx.frames
        self.register_buffer("coords", coordinate_grid(*self.size), persistent=False)
        k, pad = spec.kernel_size, spec.kernel_size // 2
        layers: list[nn.Module] = []
        c_in = d + 2
        for c_out in spec.channels:
            layers += [
                nn.ConvTranspose2d(c_in, c_out, k, stride=2, padding=pad, output_padding=1),
                nn.GroupNorm(spec.groups, c_out),
                nn.ReLU(),
            ]
            c_in = c_out
        layers.append(PointwiseConv(c_in, ctx.channels + 1))
        self.net = nn.Sequential(*layers)

    def decode(self, z):
        """``z [m d]`` → RGB ``[m c h w]`` (after the activation) and mask logits ``[m h w]``."""
        grid = repeat(z, "m d -> m d h w", h=self.size[0], w=self.size[1])
        out = self.net(torch.cat([grid, self.coords.expand(z.shape[0], -1, -1, -1)], dim=1))
        rgb, logits = out[:, : self.channels], out[:, self.channels]
        if self.spec.rgb_activation == "sigmoid":
            rgb = rgb.sigmoid()
        return rgb, logits

    def forward(self, state: State) -> Rendering:
        z = state.latents.objects
        if z.dim() == 3:  # [b k d]: one frame, shared over t
            z = z.unsqueeze(1)
        b, tz, k, _ = z.shape
        frames = state.batch.frames if state.batch is not None else None
        t = frames.shape[1] if frames is not None else self.frames
        rgb, logits = self.decode(rearrange(z, "b t k d -> (b t k) d"))
        rgb = rearrange(rgb, "(b t k) c h w -> b t k c h w", b=b, t=tz)
        mask_logits = rearrange(logits, "(b t k) h w -> b t k h w", b=b, t=tz)
        r = Rendering.compose(rgb, mask_logits)
        if tz == 1 and t > 1:  # one frame's slots, shown at every frame
            r.recon, r.rgb, r.mask_logits = (x.expand(b, t, *x.shape[2:]) for x in (r.recon, r.rgb, r.mask_logits))
        return r
