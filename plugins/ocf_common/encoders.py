"""Generic encoders."""

from __future__ import annotations

from einops import rearrange
from pydantic import Field, model_validator
from torch import nn

from ocf.components import BuildContext, ComponentSpec, Encoder
from ocf.fields import Size
from ocf.records import Features, State
from ocf_common.layers import SoftPositionEmbed, conv_out_size, mlp


class CNNEncoder(Encoder):
    """Per-frame CNN + soft position embedding, then LayerNorm and MLP on the tokens (Slot Attention's encoder)."""

    name = "cnn"
    needs = ("batch.frames",)
    provides = ("features.tokens", "features.grid")

    class Spec(ComponentSpec):
        channels: list[Size] = Field(
            [32, 32, 32, 32], min_length=1, description="output channels of each conv layer (each followed by ReLU)"
        )
        kernel_size: Size | list[Size] = Field(
            3,
            description="square kernel of every conv layer, or one per layer (as long as channels); each padded by "
            "kernel_size // 2",
        )
        strides: list[Size] | None = Field(
            None, description="stride of each conv layer, as long as channels (null: all 1)"
        )
        mlp_hidden: Size | None = Field(
            None,
            description="hidden width of the token MLP (null: last conv channels); tokens keep the last conv's "
            "channels",
        )

        @model_validator(mode="after")
        def _strides_match(self):
            if self.strides is not None and len(self.strides) != len(self.channels):
                raise ValueError(f"strides has {len(self.strides)} entries but channels has {len(self.channels)}")
            if isinstance(self.kernel_size, list) and len(self.kernel_size) != len(self.channels):
                raise ValueError(
                    f"kernel_size has {len(self.kernel_size)} entries but channels has {len(self.channels)}"
                )
            return self

    def __init__(self, spec: Spec, ctx: BuildContext) -> None:
        super().__init__(spec, ctx)
        strides = spec.strides or [1] * len(spec.channels)
        kernels = spec.kernel_size if isinstance(spec.kernel_size, list) else [spec.kernel_size] * len(spec.channels)
        layers: list[nn.Module] = []
        c_in, (h, w) = ctx.channels, ctx.resolution
        for c_out, s, k in zip(spec.channels, strides, kernels):
            pad = k // 2
            layers += [nn.Conv2d(c_in, c_out, k, stride=s, padding=pad), nn.ReLU()]
            c_in = c_out
            h, w = conv_out_size(h, k, s, pad), conv_out_size(w, k, s, pad)
        if min(h, w) < 1:
            raise ValueError(f"the convs shrink a {list(ctx.resolution)} frame to nothing")
        self.convs = nn.Sequential(*layers)
        self.pos = SoftPositionEmbed(c_in)
        self.norm = nn.LayerNorm(c_in)
        self.mlp = mlp([c_in, spec.mlp_hidden or c_in, c_in])
        ctx.dims["features.tokens"] = c_in
        ctx.dims["features.grid"] = (h, w)

    def forward(self, state: State) -> Features:
        frames = state.batch.frames  # [b t c h w]
        x = self.convs(rearrange(frames, "b t c h w -> (b t) c h w"))
        x = self.pos(x)
        h, w = x.shape[-2:]
        tokens = rearrange(x, "(b t) c h w -> b t (h w) c", b=frames.shape[0])
        return Features(tokens=self.mlp(self.norm(tokens)), grid=(h, w))
