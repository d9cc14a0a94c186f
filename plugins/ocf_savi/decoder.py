"""SAVi's decoder: the spatial broadcast decoder of the common plugin, reading out the chosen
targets — the frames, optical flow (SAVi), depth (SAVi++) or any per-pixel extra — instead of
only RGB; and SAVi's reconstruction loss."""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from pydantic import Field, field_validator
from torch import Tensor

from ocf.components import BuildContext, Objective, ObjectiveSpec
from ocf.fields import Size
from ocf.records import Rendering, State
from ocf_common.decoders import SpatialBroadcastDecoder
from ocf_savi.targets import (
    DepthTransform,
    FlowFormat,
    channels_first,
    dequantise,
    flow_to_rgb,
    transform_depth,
)


class SAViDecoder(SpatialBroadcastDecoder):
    """Spatial broadcast decoder whose per-slot readout is the target (frames, flow, depth or a named per-pixel
    extra, concatenated over channels) plus a mask logit; sets rendering.target to what it reconstructs."""

    name = "savi.decoder"
    needs = ("latents.objects",)
    provides = ("rendering.recon", "rendering.rgb", "rendering.mask_logits")

    class Spec(SpatialBroadcastDecoder.Spec):
        target: list[str] = Field(
            ["rgb"],
            min_length=1,
            description="what to reconstruct, one name or several (concatenated over channels): 'rgb' the frames, "
            "'flow' optical flow (extra flow_key), 'depth' (extra depth_key), or the name of any per-pixel extra "
            "[t h w] or [t h w c] declared in data.extras",
        )
        flow_key: str = Field("forward_flow", min_length=1, description="the extra holding flow [t h w 2]")
        flow_format: FlowFormat = Field(
            "rgb", description="'rgb': flow drawn on SAVi's colour wheel (3 channels); 'raw': the 2 flow channels"
        )
        flow_resolution: tuple[Size, Size] | None = Field(
            None, description="[h, w] of the frames the flow's pixels refer to (null: the target's resolution)"
        )
        flow_scaling: float = Field(50.0, gt=0, description="colour-wheel saturation = |flow| · this / hypot(h, w)")
        depth_key: str = Field("depth", min_length=1, description="the extra holding depth [t h w]")
        depth_transform: DepthTransform = Field("log_plus", description="applied to depth (SAVi++: log(1 + d))")

        @field_validator("target", mode="before")
        @classmethod
        def _one_or_many(cls, v):
            return [v] if isinstance(v, str) else v

    def __init__(self, spec: Spec, ctx: BuildContext) -> None:
        keys = {"flow": spec.flow_key, "depth": spec.depth_key}
        sizes = [self._size(name, keys.get(name, name), spec, ctx) for name in spec.target]
        grids = {hw for hw, _ in sizes}
        if len(grids) > 1:
            raise ValueError(f"the targets {spec.target} have different resolutions {sorted(grids)}")
        (hw,) = grids
        super().__init__(spec, dataclasses.replace(ctx, channels=sum(c for _, c in sizes), resolution=hw))
        self.keys = keys
        self.flow_grid = tuple(spec.flow_resolution) if spec.flow_resolution else hw

    @staticmethod
    def _size(name: str, key: str, spec: Spec, ctx: BuildContext) -> tuple[tuple[int, int], int]:
        """(h, w) and channels of one target, from the data shape or its extra's declared shape."""
        if name == "rgb":
            return tuple(ctx.resolution), ctx.channels
        shape = ctx.dims.get(f"batch.extras.{key}")
        if shape is None:
            raise ValueError(
                f"target {name!r} reads the extra {key!r}: declare its per-sample shape in the spec's data section "
                f"(`extras: {{{key}: [T, H, W{', 2' if name == 'flow' else ''}]}}`)"
            )
        if len(shape) not in (3, 4):
            raise ValueError(f"data.extras.{key} is {list(shape)}; a target extra is [T, H, W] or [T, H, W, C]")
        channels = shape[3] if len(shape) == 4 else 1
        if name == "flow" and spec.flow_format == "rgb":
            channels = 3
        return (shape[1], shape[2]), channels

    def read_target(self, state: State, name: str, frames: int) -> Tensor:
        """One target ``[b t c h w]`` from the batch."""
        if name == "rgb":
            return state.batch.frames
        key = self.keys.get(name, name)
        extras = state.batch.extras
        if key not in extras:
            raise ValueError(
                f"decoder {self.name}: target {name!r} reads the batch extra {key!r}, which this data does not have "
                f"(its extras: {', '.join(sorted(extras)) or 'none'})"
            )
        x = dequantise(extras[key], extras.get(f"{key}_range"))  # [b t h w (c)]
        if name == "flow" and self.spec.flow_format == "rgb":
            x = flow_to_rgb(x[..., :2], self.flow_grid, self.spec.flow_scaling)  # [b t h w 3]
        elif name == "depth":
            x = transform_depth(x, self.spec.depth_transform)
        return channels_first(x, key, frames).to(state.batch.frames.dtype)

    def forward(self, state: State) -> Rendering:
        r = super().forward(state)  # recon [b t c h w] over the concatenated target channels
        if self.spec.target != ["rgb"]:
            t = r.recon.shape[1]
            r.target = torch.cat([self.read_target(state, name, t) for name in self.spec.target], dim=2)
        return r


class SAViReconstruction(Objective):
    """SAVi's reconstruction loss: squared error between the rendering and its target (the decoder's
    rendering.target, else the frames), summed over (t c h w) and averaged over b (term ``recon``)."""

    name = "savi.recon"
    needs = ("rendering.recon",)

    class Spec(ObjectiveSpec):
        reduction: Literal["sum", "mean"] = Field(
            "sum", description="sum: over (t c h w), mean over b (SAVi); mean: over every element (as mse)"
        )

    def forward(self, state: State) -> dict[str, Tensor]:
        err = (state.rendering.recon - state.target).square()
        if self.spec.reduction == "sum":
            return {"recon": err.flatten(1).sum(1).mean()}
        return {"recon": err.mean()}
