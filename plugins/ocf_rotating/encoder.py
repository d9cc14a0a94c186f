"""Rotating Features' encoder, half of its autoencoder (Löwe et al., 2023, the 4Shapes architecture): a rotating
conv encoder with a rotating linear bottleneck, a mirrored decoder with rotating transposed
convs, and the output model ``sigmoid(w_c·‖z‖ + b_c)`` on the output magnitudes.

Widths for hidden d and linear L, as in the public code: encoder convs c → d (stride 2),
d → d, d → 2d (stride 2), 2d → 2d, 2d → 2d (stride 2), all 3×3 padding 1, then a rotating
linear 2d·gh·gw → L.  The decoder mirrors the strides: rotating linear L → 2d·gh·gw, then
2d → 2d (transposed, stride 2), 2d → 2d, 2d → 2d (transposed, stride 2), 2d → d, d → c
(transposed, stride 2): each stage keeps its width through the upsampling and narrows in the
conv after it, so the decoder's middle resolution has 2d channels where the encoder's has d.
On precomputed features (DINO) the encoder adds a stride-1 conv 2d → 2d and the decoder's last
stage is d → d (transposed, stride 2), d → c.  Transposed convs use output padding 1; the
output is centre-cropped to the input size (the public code crops 14×14 DINO maps this way).
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
    """``[c, d, d, 2d, 2d, 2d]``: input channels, then each of the five image-encoder convs' output."""
    return [c, d, d, 2 * d, 2 * d, 2 * d]


def encoder_plan(c: int, d: int, features: bool = False) -> list[tuple[int, int, int]]:
    """(in, out, stride) of each encoder conv; ``features`` adds the stride-1 2d → 2d conv of the DINO model."""
    plan = [(c, d, 2), (d, d, 1), (d, 2 * d, 2), (2 * d, 2 * d, 1), (2 * d, 2 * d, 2)]
    return plan + [(2 * d, 2 * d, 1)] if features else plan


def decoder_plan(c: int, d: int, features: bool = False) -> list[tuple[int, int, int]]:
    """(in, out, stride) of each decoder layer, stride 2 being a transposed conv (see the module docstring)."""
    plan = [(2 * d, 2 * d, 2), (2 * d, 2 * d, 1), (2 * d, 2 * d, 2), (2 * d, d, 1)]
    return plan + ([(d, d, 2), (d, c, 1)] if features else [(d, c, 2)])


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
        features = spec.input == "features"
        plan = encoder_plan(c, spec.hidden, features)
        opts = dict(bias_in_magnitude=spec.bias_in_magnitude, eps=spec.eps)
        self.convs = nn.ModuleList(rotating_conv(i, o, n, stride=s, **opts) for i, o, s in plan)
        gh, gw = h, w
        for _, _, s in plan:
            gh, gw = conv_out_size(gh, 3, s, 1), conv_out_size(gw, 3, s, 1)
        top = plan[-1][1]
        self.linear = rotating_linear(top * gh * gw, spec.linear, n, **opts)
        self.n, self.input_grid = n, (h, w)
        ctx.dims["features.maps"] = (n, spec.linear)
        ctx.dims["rotating.encoder"] = {
            "channels": conv_channels(c, spec.hidden),
            "decoder_plan": decoder_plan(c, spec.hidden, features),
            "grid": (gh, gw),
            "input_grid": (h, w),
            "rotation_dims": n,
        }

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
