"""Generic decoders."""

from __future__ import annotations

from typing import Literal

from einops import rearrange
from pydantic import Field, model_validator
from torch import nn

from ocf.components import BuildContext, ComponentSpec, Decoder
from ocf.fields import NonNegativeSize, Size
from ocf.records import Rendering, State
from ocf_common.layers import Broadcast, BroadcastConv


class SpatialBroadcastDecoder(Decoder):
    """Broadcasts each slot to a grid, adds a position embedding, and decodes RGB + a mask logit per slot; masks are
    a softmax over slots."""

    name = "spatial_broadcast"
    needs = ("latents.objects",)
    provides = ("rendering.recon", "rendering.rgb", "rendering.mask_logits")

    class Spec(ComponentSpec):
        channels: list[Size] = Field(
            [32, 32, 32, 32],
            min_length=1,
            description="output channels of each hidden layer (each followed by ReLU); the first `upsample` layers are "
            "stride-2 transposed convs",
        )
        kernel_size: Size = Field(3, description="odd square kernel of the hidden layers")
        out_kernel_size: Size = Field(3, description="odd square kernel of the output layer (rgb + mask logit)")
        broadcast_size: tuple[Size, Size] | None = Field(
            None, description="[h, w] grid each slot is broadcast to (null: the data resolution divided by 2^upsample)"
        )
        upsample: NonNegativeSize = Field(
            0,
            description="number of stride-2 transposed convs; broadcast_size * 2^upsample must equal the data "
            "resolution",
        )
        rgb_activation: Literal["none", "sigmoid"] = Field(
            "none", description="applied to each slot's rgb (the paper uses none)"
        )

        @model_validator(mode="after")
        def _check(self):
            if self.kernel_size % 2 == 0 or self.out_kernel_size % 2 == 0:
                raise ValueError("kernel_size and out_kernel_size must be odd")
            if self.upsample > len(self.channels):
                raise ValueError(
                    f"upsample ({self.upsample}) cannot exceed the number of layers ({len(self.channels)})"
                )
            return self

    def __init__(self, spec: Spec, ctx: BuildContext) -> None:
        super().__init__(spec, ctx)
        d = ctx.dim("latents.objects")
        h, w = ctx.resolution
        f = 2**spec.upsample
        size = tuple(spec.broadcast_size) if spec.broadcast_size else (h // f, w // f)
        if (size[0] * f, size[1] * f) != (h, w):
            raise ValueError(
                f"broadcast_size {list(size)} × 2^{spec.upsample} does not give the data resolution {[h, w]}"
            )
        self.size, self.channels, self.frames = size, ctx.channels, ctx.frames
        k, pad = spec.kernel_size, spec.kernel_size // 2
        layers: list[nn.Module] = []
        c_in = d
        for i, c_out in enumerate(spec.channels):
            if i < spec.upsample:  # doubles h and w for any odd kernel
                layers.append(nn.ConvTranspose2d(c_in, c_out, k, stride=2, padding=pad, output_padding=1))
            else:
                layers.append(nn.Conv2d(c_in, c_out, k, padding=pad))
            layers.append(nn.ReLU())
            c_in = c_out
        layers.append(nn.Conv2d(c_in, ctx.channels + 1, spec.out_kernel_size, padding=spec.out_kernel_size // 2))
        if spec.upsample == 0:  # broadcast + position + first conv fused: no [(b t k) d h w] map
            self.stem, layers = BroadcastConv(layers[0], size), layers[1:]
        else:  # the broadcast grid is small; build it
            self.stem = Broadcast(d, size)
        self.net = nn.Sequential(*layers)

    def forward(self, state: State) -> Rendering:
        z = state.latents.objects
        if z.dim() == 3:  # time-invariant [b k d]: decode once, share over t
            z = z.unsqueeze(1)
        b, tz, k, d = z.shape
        frames = state.batch.frames if state.batch is not None else None
        t = frames.shape[1] if frames is not None else self.frames
        x = self.stem(rearrange(z, "b t k d -> (b t k) d"))  # [(b t k) c h w]
        out = rearrange(self.net(x), "(b t k) c h w -> b t k c h w", b=b, t=tz)
        rgb, mask_logits = out[:, :, :, : self.channels], out[:, :, :, self.channels]
        if self.spec.rgb_activation == "sigmoid":
            rgb = rgb.sigmoid()
        r = Rendering.compose(rgb, mask_logits)
        if tz == 1 and t > 1:  # one frame's slots, shown at every frame
            r.recon, r.rgb, r.mask_logits = (x.expand(b, t, *x.shape[2:]) for x in (r.recon, r.rgb, r.mask_logits))
        return r
