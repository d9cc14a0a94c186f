"""SIMONe's latent heads: object posteriors from the time-mean of the encoder tokens (one
slot per token position), frame posteriors from their space-mean."""

from __future__ import annotations

from pathlib import Path

import torch
from pydantic import Field, model_validator
from torch import Tensor

from ocf.components import BuildContext, ComponentSpec, Grouper
from ocf.fields import Size
from ocf.records import DiagonalGaussian, Latents, State
from ocf_common.layers import mlp


class SimonePooling(Grouper):
    """SIMONe latents: K object posteriors from the time-mean of the tokens, T frame posteriors from the space-mean,
    each through its own MLP."""

    name = "simone.pooling"
    needs = ("features.tokens", "features.grid")
    provides = ("latents.objects", "latents.frames", "latents.posterior", "latents.frame_posterior")

    class Spec(ComponentSpec):
        latent_dim: Size = Field(32, description="dimension d of every object and frame latent")
        hidden: list[Size] = Field(
            [1024],
            description="hidden widths of the two MLPs (ReLU); each ends in a linear map to 2·d = (mean, log-scale)",
        )
        log_scale_min: float = Field(
            -10.0, description="lower clamp of the log-scale (scale = exp(clamp(log_scale, min, max)))"
        )
        log_scale_max: float = Field(3.0, description="upper clamp of the log-scale")
        init_log_scale: float | None = Field(
            None,
            description="start both MLPs' log-scale outputs near this value (the bias of their last layer; null: "
            "PyTorch's default init, log-scale ≈ 0, scale ≈ 1)",
        )
        tie_objects: bool = Field(
            False,
            description="control experiment: one object posterior from the mean over all tokens, shared by every slot, "
            "so slots cannot differ (a model that still segments is not using its object latents)",
        )
        eval_sample: bool = Field(
            False,
            description="in evaluation, latents.objects/frames are samples too (default: the posterior means); the "
            "decoder samples from the posteriors itself",
        )

        @model_validator(mode="after")
        def _check(self):
            if self.log_scale_min >= self.log_scale_max:
                raise ValueError(
                    f"log_scale_min ({self.log_scale_min}) must be below log_scale_max ({self.log_scale_max})"
                )
            return self

    def __init__(self, spec: Spec, ctx: BuildContext) -> None:
        super().__init__(spec, ctx)
        c = ctx.dim("features.tokens")
        gh, gw = ctx.dim("features.grid")
        dims = [c, *spec.hidden, 2 * spec.latent_dim]
        self.object_mlp = mlp(dims)
        self.frame_mlp = mlp(dims)
        if spec.init_log_scale is not None:
            with torch.no_grad():
                for head in (self.object_mlp, self.frame_mlp):
                    head[-1].bias[spec.latent_dim :] = spec.init_log_scale
        ctx.dims["latents.objects"] = spec.latent_dim
        ctx.dims["latents.frames"] = spec.latent_dim
        ctx.dims["latents.num_slots"] = gh * gw

    def _gaussian(self, out: Tensor) -> DiagonalGaussian:
        mean, log_scale = out.chunk(2, dim=-1)
        return DiagonalGaussian(mean, log_scale.clamp(self.spec.log_scale_min, self.spec.log_scale_max).exp())

    def pictures(self, state: State, out_dir: Path) -> list[Path]:
        """``frame_latents.png``: the frame-latent means of the first video over time."""
        from ocf_simone.viz import plot_frame_latents

        path = Path(out_dir) / "frame_latents.png"
        plot_frame_latents(state.latents, path)
        return [path]

    def forward(self, state: State) -> Latents:
        tokens = state.features.tokens  # [b t n c]
        pooled = tokens.mean(dim=1)  # over t: [b k c], k = n
        if self.spec.tie_objects:
            pooled = pooled.mean(dim=1, keepdim=True).expand_as(pooled)
        posterior = self._gaussian(self.object_mlp(pooled))  # [b k d]
        frame_posterior = self._gaussian(self.frame_mlp(tokens.mean(dim=2)))  # over n: [b t d]
        sample = self.training or self.spec.eval_sample
        return Latents(
            objects=posterior.rsample() if sample else posterior.mean,
            frames=frame_posterior.rsample() if sample else frame_posterior.mean,
            posterior=posterior,
            frame_posterior=frame_posterior,
        )
