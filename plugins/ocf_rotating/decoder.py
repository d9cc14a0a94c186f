"""Rotating Features' decoder: the encoder mirrored (see :mod:`ocf_rotating.encoder` for the
channel plan) with stride-2 rotating transposed convs, a centre crop to the input size, and
the output model ``sigmoid(w_c·‖z‖ + b_c)`` on the output magnitudes."""

from __future__ import annotations

from typing import Literal

import torch
from einops import rearrange
from pydantic import Field
from torch import nn

from ocf.components import BuildContext, Decoder
from ocf.records import Rendering, State
from ocf_rotating.encoder import LayerOptions
from ocf_rotating.layers import magnitude, rotating_conv, rotating_conv_transpose, rotating_linear


class RotatingDecoder(Decoder):
    """Rotating Features decoder: rotating linear, mirrored rotating (transposed) convs to [b t r c h w], output
    sigmoid(w_c·‖z‖ + b_c)."""

    name = "rotating.decoder"
    needs = ("features.maps",)
    provides = ("rendering.recon", "rendering.extras.rotating")
    example_state = "ocf_rotating.fixtures:decoder_state"  # conformance fixture

    class Spec(LayerOptions):
        output: Literal["sigmoid", "linear"] = Field(
            "sigmoid",
            description="sigmoid(w_c·‖z‖ + b_c) for images (paper); linear w_c·‖z‖ + b_c for precomputed features "
            "(public code on DINO)",
        )

    def __init__(self, spec: Spec, ctx: BuildContext) -> None:
        super().__init__(spec, ctx)
        enc = ctx.dim("rotating.encoder")
        n, linear = ctx.dim("features.maps")
        plan, (gh, gw) = enc["decoder_plan"], enc["grid"]
        top, out_c = plan[0][0], plan[-1][1]
        opts = dict(bias_in_magnitude=spec.bias_in_magnitude, eps=spec.eps)
        self.linear = rotating_linear(linear, top * gh * gw, n, **opts)
        self.convs = nn.ModuleList(
            (rotating_conv_transpose if s == 2 else rotating_conv)(i, o, n, **opts) for i, o, s in plan
        )
        self.output_weight = nn.Parameter(torch.ones(out_c))
        self.output_bias = nn.Parameter(torch.zeros(out_c))
        self.grid, self.top, self.out_grid, self.channels = (gh, gw), top, enc["input_grid"], out_c
        size = (gh * 8, gw * 8)
        if size[0] < self.out_grid[0] or size[1] < self.out_grid[1]:
            raise ValueError(f"the decoder upsamples {gh}x{gw} to {size}, smaller than the input {self.out_grid}")

    def forward(self, state: State) -> Rendering:
        z = state.features.maps  # [b t r L]
        b = z.shape[0]
        z = self.linear(rearrange(z, "b t r l -> (b t) r l"))
        z = rearrange(z, "B r (c h w) -> B r c h w", c=self.top, h=self.grid[0], w=self.grid[1])
        for layer in self.convs:
            z = layer(z)
        H, W = z.shape[-2:]
        h, w = self.out_grid
        top, left = (H - h) // 2, (W - w) // 2
        z = z[..., top : top + h, left : left + w]  # centre crop to the input size
        mag = magnitude(z, 1, self.spec.eps)  # [B c h w]
        out = mag * self.output_weight.view(-1, 1, 1) + self.output_bias.view(-1, 1, 1)
        if self.spec.output == "sigmoid":
            out = torch.sigmoid(out)
        target = (state.features.extras or {}).get("target")
        return Rendering(
            recon=rearrange(out, "(b t) c h w -> b t c h w", b=b),
            target=target,
            extras={"rotating": rearrange(z, "(b t) r c h w -> b t r c h w", b=b)},
        )
