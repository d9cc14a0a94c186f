"""AIR's image encoder: an MLP on the flattened frame."""

from __future__ import annotations

from einops import rearrange
from pydantic import Field
from torch import nn

from ocf.components import BuildContext, ComponentSpec, Encoder
from ocf.fields import Size
from ocf.records import Features, State
from ocf_common.layers import mlp


class FrameEncoder(Encoder):
    """Per-frame MLP (ELU) on the flattened image: one token per frame, the image encoding AIR's discovery RNN reads."""

    name = "sqair.encoder"
    needs = ("batch.frames",)
    provides = ("features.tokens", "features.grid")

    class Spec(ComponentSpec):
        hidden: list[Size] = Field(
            [256, 256],
            min_length=1,
            description="widths of the MLP layers (ELU after each); the last is the token size",
        )

    def __init__(self, spec: Spec, ctx: BuildContext) -> None:
        super().__init__(spec, ctx)
        h, w = ctx.resolution
        self.net = nn.Sequential(mlp([ctx.channels * h * w, *spec.hidden], nn.ELU), nn.ELU())
        ctx.dims["features.tokens"] = spec.hidden[-1]
        ctx.dims["features.grid"] = (1, 1)

    def forward(self, state: State) -> Features:
        frames = state.batch.frames  # [b t c h w]
        tokens = self.net(rearrange(frames, "b t c h w -> b t 1 (c h w)"))
        return Features(tokens=tokens, grid=(1, 1))
