"""Rotating Features' encoder, half of its autoencoder (Löwe et al., 2023, the 4Shapes architecture): a rotating
conv encoder with a rotating linear bottleneck, a mirrored decoder with rotating transposed
convs, and the output model ``sigmoid(w_c·‖z‖ + b_c)`` on the output magnitudes.

Widths for hidden d and linear L: encoder convs c → d (stride 2), d → d, d → 2d (stride 2),
2d → 2d, 2d → 2d (stride 2), all 3×3 padding 1, then a rotating linear 2d·gh·gw → L; the
decoder runs the same channels backwards with stride-2 transposed convs (output padding 1)
and centre-crops to the input size (the public code crops 14×14 DINO maps this way).
"""

from __future__ import annotations

from typing import Literal

from einops import rearrange
from pydantic import Field, PositiveFloat
from torch import nn

from ocf.components import BuildContext, ComponentSpec, Encoder
from ocf.fields import Size
from ocf.records import Features, State
from ocf_common.layers import conv_out_size
from ocf_rotating.layers import EPS, add_rotation_dims, rotating_conv, rotating_linear

STRIDES = (2, 1, 2, 1, 2)


def conv_channels(c: int, d: int) -> list[int]:
    """``[c, d, d, 2d, 2d, 2d]``: input channels, then each encoder conv's output."""
    return [c, d, d, 2 * d, 2 * d, 2 * d]


class LayerOptions(ComponentSpec):
    bias_in_magnitude: bool = Field(
        True,
        description="take ‖ψ‖ after adding the rotation bias, as the paper writes it (true); the public code takes the "
        "norm of w(z) before the bias (false)",
    )
    eps: PositiveFloat = Field(
        EPS,
        le=1e-2,
        description="ε of the safe norms sqrt(Σ z² + ε) over the rotation axis (background vectors are exactly zero)",
    )


class RotatingEncoder(Encoder):
    """Rotating Features encoder: input in rotation dim 0 of n, five rotating 3×3 convs (strides 2,1,2,1,2), rotating
    linear → features.maps [b t r L]."""

    name = "rotating.encoder"
    needs = ("batch.frames",)
    provides = ("features.maps",)

    class Spec(LayerOptions):
        rotation_dims: Size = Field(
            8,
            description="n, the rotation dims of every feature (paper 4Shapes: 8; n = 2 is the Complex AutoEncoder; n "
            "= 1 cannot separate objects)",
        )
        hidden: Size = Field(32, description="d: conv widths d, d, 2d, 2d, 2d (paper 4Shapes: 32)")
        linear: Size = Field(64, description="L: width of the rotating linear bottleneck (paper 4Shapes: 64)")
        input: Literal["frames", "features"] = Field(
            "frames",
            description="frames: the images (any channel count, e.g. RGB-D); features: a precomputed feature map from "
            "batch.extras[features_key] (e.g. DINO features), reconstructed instead of the image",
        )
        features_key: str = Field(
            "features",
            min_length=1,
            description="the extra holding [c h w] feature maps per sample when input is 'features' (declare its shape "
            "in data.extras)",
        )

    def __init__(self, spec: Spec, ctx: BuildContext) -> None:
        super().__init__(spec, ctx)
        n = spec.rotation_dims
        if spec.input == "features":
            key = f"batch.extras.{spec.features_key}"
            if key not in ctx.dims:
                raise ValueError(
                    "input 'features' needs the shape of the feature maps: add `extras: "
                    f"{{{spec.features_key}: [C, H, W]}}` to the spec's data section"
                )
            c, h, w = ctx.dim(key)
            # features may be negative; rotating inputs must not be: BatchNorm + ReLU first
            # (as the public code does for DINO)
            self.preprocess = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU())
        else:
            (c, (h, w)) = ctx.channels, ctx.resolution
        chans = conv_channels(c, spec.hidden)
        opts = dict(bias_in_magnitude=spec.bias_in_magnitude, eps=spec.eps)
        self.convs = nn.ModuleList(
            rotating_conv(chans[i], chans[i + 1], n, stride=s, **opts) for i, s in enumerate(STRIDES)
        )
        gh, gw = h, w
        for s in STRIDES:
            gh, gw = conv_out_size(gh, 3, s, 1), conv_out_size(gw, 3, s, 1)
        self.linear = rotating_linear(chans[-1] * gh * gw, spec.linear, n, **opts)
        self.n, self.input_grid = n, (h, w)
        ctx.dims["features.maps"] = (n, spec.linear)
        ctx.dims["rotating.encoder"] = {"channels": chans, "grid": (gh, gw), "input_grid": (h, w), "rotation_dims": n}

    def forward(self, state: State) -> Features:
        frames = state.batch.frames  # [b t c h w]
        b, t = frames.shape[:2]
        target = None
        if self.spec.input == "features":
            feats = state.batch.extras.get(self.spec.features_key)
            if feats is None:
                raise ValueError(
                    f"encoder rotating.encoder: the batch has no extra {self.spec.features_key!r} (input is "
                    f"'features'); its extras are {sorted(state.batch.extras)}"
                )
            if feats.dim() == 4:  # [b c h w] → one frame
                feats = feats.unsqueeze(1)
            feats = feats.to(frames.dtype)
            target = feats  # [b t c h w]: the features are what the model reconstructs
            x = self.preprocess(rearrange(feats, "b t c h w -> (b t) c h w"))
        else:
            x = rearrange(frames, "b t c h w -> (b t) c h w")
            if bool((x < 0).any()):
                raise ValueError(
                    "encoder rotating.encoder: input values must be non-negative (magnitudes); got negative pixels"
                )
        z = add_rotation_dims(x, self.n)  # [B r c h w], B = b t
        for layer in self.convs:
            z = layer(z)
        z = self.linear(rearrange(z, "B r c h w -> B r (c h w)"))  # [B r L]
        return Features(maps=rearrange(z, "(b t) r l -> b t r l", b=b), extras={"target": target})
