"""SQAIR's glimpse decoder: each present object's appearance decoded to a patch and placed
on the canvas by the inverse spatial transformer, over a learned background."""

from __future__ import annotations

import torch
from pydantic import Field, PositiveFloat
from torch import Tensor, nn

from ocf.components import BuildContext, ComponentSpec, Decoder
from ocf.fields import Size
from ocf.prob import gaussian_log_likelihood
from ocf.records import Rendering, State
from ocf_common.glimpse import place
from ocf_sqair.common import net


class GlimpseDecoder(Decoder):
    """Glimpse decoder MLP → patch × learnable output scale, placed by the inverse transformer, summed over present
    objects, plus a learnable background; fixed-σ Gaussian likelihood per particle."""

    name = "sqair.glimpse"
    needs = ("latents.objects", "latents.presence", "latents.where")
    provides = ("rendering.recon", "rendering.rgb", "rendering.extras")

    class Spec(ComponentSpec):
        glimpse_size: Size = Field(20, description="side of the decoded square patch (paper 20)")
        hidden: list[Size] = Field(
            [256, 256], min_length=1, description="hidden widths of the glimpse decoder MLP (ELU)"
        )
        output_scale: float = Field(
            0.25, description="initial value of the learnable scale multiplying every patch (reference 0.25)"
        )
        output_bias: float = Field(
            -2.0,
            description="initial bias of the patch logits (patch = scale·sigmoid(logits)); negative starts empty "
            "glimpses near blank (pyro's fix)",
        )
        sigma: PositiveFloat = Field(
            0.3,
            description="fixed σ of the Gaussian likelihood N(x; canvas, σ²) (reference 0.3; learning it collapses "
            "inference)",
        )
        learn_background: bool = Field(True, description="learn a background (mean) image, initialised to 0")

    example = {"glimpse_size": 4, "hidden": [8]}
    example_state = "ocf_sqair.fixtures:decoder_state"  # conformance fixture

    def __init__(self, spec: Spec, ctx: BuildContext) -> None:
        super().__init__(spec, ctx)
        d = ctx.dim("latents.objects")
        self.channels, self.size, g = ctx.channels, ctx.resolution, spec.glimpse_size
        self.net = net([d, *spec.hidden, ctx.channels * g * g])
        with torch.no_grad():
            self.net[-1].bias.fill_(spec.output_bias)
        self.output_scale = nn.Parameter(torch.tensor(float(spec.output_scale)))
        bg = torch.zeros(ctx.channels, *ctx.resolution)
        if spec.learn_background:
            self.background = nn.Parameter(bg)
        else:
            self.register_buffer("background", bg)

    def render(self, what: Tensor, presence: Tensor, where: Tensor) -> tuple[Tensor, Tensor]:
        """``what [n t k d]``, ``presence [n t k]``, ``where [n t k 4]`` → canvas ``[n t c h w]``
        and the placed objects ``[n t k c h w]``."""
        g = self.spec.glimpse_size
        patch = self.output_scale * torch.sigmoid(self.net(what))  # [n t k (c g g)]
        patch = patch.unflatten(-1, (self.channels, g, g))
        layers = place(patch, where, self.size) * presence[..., None, None, None]  # [n t k c h w]
        return self.background + layers.sum(2), layers

    def forward(self, state: State) -> Rendering:
        lat = state.latents
        ex = lat.extras
        frames = state.batch.frames
        b = frames.shape[0]
        if "what" in ex:  # every particle: [(p b) t ...]
            canvas, layers = self.render(ex["what"], ex["presence"], ex["where"])
        else:  # e.g. latents from Prior.sample
            canvas, layers = self.render(lat.objects, lat.presence, lat.where)
        reps = canvas.shape[0] // b
        target = frames.repeat(reps, 1, 1, 1, 1)
        if target.shape != canvas.shape:
            raise ValueError(
                f"decoder sqair.glimpse: the canvas {tuple(canvas.shape)} does not match the frames "
                f"{tuple(frames.shape)} repeated"
            )
        log_lik = gaussian_log_likelihood(target, canvas, self.spec.sigma).flatten(2).sum(-1)  # [(p b) t]
        return Rendering(recon=canvas[:b], rgb=layers[:b], extras={"log_lik": log_lik, "canvas": canvas})
