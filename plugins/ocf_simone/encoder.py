"""SIMONe's encoder: a per-frame CNN, then two transformer stacks over all tokens of the
clip with a scaled 2×2 spatial pooling between them (Kabra et al., 2021, App. A.3)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from pydantic import Field, PositiveFloat, model_validator
from torch import Tensor, nn

from ocf.components import BuildContext, ComponentSpec, Encoder
from ocf.fields import NonNegativeSize, Repeats, Size
from ocf.records import Features, State
from ocf_common.layers import conv_out_size


def sinusoidal_3d(t: int, h: int, w: int, channels: int, *, device=None, dtype=None) -> Tensor:
    """``[t h w channels]`` sinusoidal position encoding over integer (t, h, w) positions.

    Each axis gets ``2·ceil(channels / 6)`` channels of interleaved (sin, cos) pairs at
    frequencies ``10000^(−2i / per_axis)``; the three are concatenated in (t, h, w) order
    and cut to ``channels`` (the layout of the public reproduction's encoding)."""
    per_axis = 2 * math.ceil(channels / 6)
    inv_freq = 1.0 / (10000 ** (torch.arange(0, per_axis, 2, device=device, dtype=torch.float32) / per_axis))

    def axis(n: int) -> Tensor:  # [n per_axis]
        angle = torch.arange(n, device=device, dtype=torch.float32)[:, None] * inv_freq[None]
        return torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(-2)

    emb = torch.cat(
        [
            axis(t)[:, None, None].expand(t, h, w, per_axis),
            axis(h)[None, :, None].expand(t, h, w, per_axis),
            axis(w)[None, None, :].expand(t, h, w, per_axis),
        ],
        dim=-1,
    )
    return emb[..., :channels].to(dtype or torch.get_default_dtype())


def transformer_stack(width: int, heads: int, ffn: int, layers: int) -> nn.ModuleList:
    """``layers`` pre-norm transformer encoder layers (ReLU FFN, no dropout)."""
    return nn.ModuleList(
        nn.TransformerEncoderLayer(width, heads, ffn, dropout=0.0, batch_first=True, norm_first=True)
        for _ in range(layers)
    )


class SimoneEncoder(Encoder):
    """SIMONe encoder: per-frame CNN, 3-D position encoding and a transformer over the clip, scaled 2×2 pooling, a
    second position encoding and transformer."""

    name = "simone.encoder"
    needs = ("batch.frames",)
    provides = ("features.tokens", "features.grid")

    class Spec(ComponentSpec):
        conv_channels: list[Size] = Field(
            [128, 128, 128],
            min_length=1,
            description="output channels of each per-frame conv layer (each followed by ReLU)",
        )
        conv_kernel: Size = Field(4, description="square kernel of every conv layer")
        conv_strides: list[Size] | None = Field(
            None, description="stride of each conv layer, as long as conv_channels (null: all 2)"
        )
        conv_padding: NonNegativeSize = Field(1, description="zero padding of every conv layer")
        width: Size = Field(
            320, description="transformer width (the CNN output is projected to it by a linear map without bias)"
        )
        heads: Size = Field(5, description="attention heads; must divide width")
        ffn: Size = Field(1024, description="hidden width of each transformer layer's feed-forward block")
        layers: Repeats = Field(
            4, description="transformer layers in each of the two stacks (paper: 4 full model, 1 small)"
        )
        pool_size: Size = Field(
            2, description="per-frame average pooling window (and stride) between the stacks; 1: no pooling"
        )
        input_scale: float = Field(
            1.0,
            description="frames enter the CNN as input_scale·x + input_shift (x in [0, 1]); 2 and −1 map them to [−1, "
            "1]",
        )
        input_shift: float = Field(0.0, description="see input_scale")
        embed_norm: bool = Field(
            False,
            description="layer-normalise the projected CNN features before the first position encoding, so the content "
            "starts as large as the encoding instead of ~1/60 of it on dark frames",
        )
        pool_scale: PositiveFloat = Field(
            0.5,
            description="multiplies the average-pooled tokens: 0.5 reads the paper's sqrt(K/(h·w)) scaling of "
            "sum-pooling; "
            "2.0 is the public reproduction's sum-pooling × 0.5 (docs/plugins/simone.md compares the two)",
        )

        @model_validator(mode="after")
        def _check(self):
            if self.conv_strides is not None and len(self.conv_strides) != len(self.conv_channels):
                raise ValueError(
                    f"conv_strides has {len(self.conv_strides)} entries but conv_channels has {len(self.conv_channels)}"
                )
            if self.width % self.heads:
                raise ValueError(f"heads ({self.heads}) must divide width ({self.width})")
            return self

    def __init__(self, spec: Spec, ctx: BuildContext) -> None:
        super().__init__(spec, ctx)
        strides = spec.conv_strides or [2] * len(spec.conv_channels)
        layers: list[nn.Module] = []
        c_in, (h, w) = ctx.channels, ctx.resolution
        for c_out, s in zip(spec.conv_channels, strides):
            layers += [nn.Conv2d(c_in, c_out, spec.conv_kernel, stride=s, padding=spec.conv_padding), nn.ReLU()]
            c_in = c_out
            h = conv_out_size(h, spec.conv_kernel, s, spec.conv_padding)
            w = conv_out_size(w, spec.conv_kernel, s, spec.conv_padding)
        if min(h, w) < 1:
            raise ValueError(f"the convs shrink a {list(ctx.resolution)} frame to nothing")
        p = spec.pool_size
        if h % p or w % p:
            raise ValueError(
                f"pool_size {p} does not divide the {h}x{w} grid the convs produce from {list(ctx.resolution)} frames"
            )
        self.convs = nn.Sequential(*layers)
        self.project = nn.Linear(c_in, spec.width, bias=False)
        self.embed_norm = nn.LayerNorm(spec.width) if spec.embed_norm else nn.Identity()
        self.stack_1 = transformer_stack(spec.width, spec.heads, spec.ffn, spec.layers)
        self.stack_2 = transformer_stack(spec.width, spec.heads, spec.ffn, spec.layers)
        ctx.dims["features.tokens"] = spec.width
        ctx.dims["features.grid"] = (h // p, w // p)

    @staticmethod
    def _run(stack: nn.ModuleList, x: Tensor) -> Tensor:
        for layer in stack:
            x = layer(x)
        return x

    def forward(self, state: State) -> Features:
        frames = state.batch.frames  # [b t c h w]
        b, t = frames.shape[:2]
        x = frames * self.spec.input_scale + self.spec.input_shift  # exact identity at the defaults 1 and 0
        x = self.convs(rearrange(x, "b t c h w -> (b t) c h w"))  # [(b t) c h w], 8x8 at 64x64
        x = self.embed_norm(self.project(rearrange(x, "(b t) c h w -> b t h w c", b=b)))  # [b t h w c]
        _, _, h, w, c = x.shape
        x = x + sinusoidal_3d(t, h, w, c, device=x.device, dtype=x.dtype)
        x = self._run(
            self.stack_1, rearrange(x, "b t h w c -> b (t h w) c")
        )  # every token of the clip attends to every other
        x = rearrange(x, "b (t h w) c -> (b t) c h w", t=t, h=h)
        x = F.avg_pool2d(x, self.spec.pool_size) * self.spec.pool_scale  # per frame: [(b t) c h/2 w/2]
        x = rearrange(x, "(b t) c h w -> b t h w c", b=b)
        _, _, h, w, _ = x.shape
        x = x + sinusoidal_3d(t, h, w, c, device=x.device, dtype=x.dtype)
        x = self._run(self.stack_2, rearrange(x, "b t h w c -> b (t h w) c"))
        tokens = rearrange(x, "b (t n) c -> b t n c", t=t)  # n = h·w = K after pooling
        return Features(tokens=tokens, grid=(h, w))
