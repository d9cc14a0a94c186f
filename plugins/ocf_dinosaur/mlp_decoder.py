"""``dinosaur.mlp_decoder``: every slot broadcast to every patch position, plus a learned
position embedding, through a shared MLP to a feature vector and an alpha logit per patch;
alpha (softmax over slots) mixes the slots' features into the reconstruction and is the mask."""

from __future__ import annotations

import torch
from einops import rearrange
from pydantic import Field
from torch import Tensor, nn

from ocf.components import BuildContext, ComponentSpec, Decoder
from ocf.fields import Size
from ocf.records import Rendering, State
from ocf_dinosaur.patches import patch_grid, patch_rendering, slots_per_frame, target_tokens


def mlp(widths: list[int]) -> nn.Sequential:
    """Linear layers through ``widths`` with ReLU between them and zero biases."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        linear = nn.Linear(a, b)
        nn.init.zeros_(linear.bias)
        layers.append(linear)
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class MLPPatchDecoder(Decoder):
    """DINOSAUR's MLP decoder: per slot and patch, an MLP on slot + position embedding gives the patch's
    features and an alpha logit; the reconstruction is the alpha-weighted sum over slots (alpha: softmax over
    slots, the masks at patch resolution)."""

    name = "dinosaur.mlp_decoder"
    needs = ("latents.objects", "features.tokens", "features.grid")
    provides = ("rendering.recon", "rendering.target", "rendering.mask_logits")

    class Spec(ComponentSpec):
        hidden: list[Size] = Field(
            [2048, 2048, 2048],
            min_length=1,
            max_length=16,
            description="widths of the MLP's hidden layers (its last layer gives the feature width + 1 alpha logit)",
        )
        position_std: float = Field(
            0.02, gt=0, le=10, description="standard deviation of the learned position embedding's initial values"
        )

    def __init__(self, spec: Spec, ctx: BuildContext) -> None:
        super().__init__(spec, ctx)
        d = ctx.dim("latents.objects")
        self.features = ctx.dim("features.tokens")
        grid = ctx.dim("features.grid")
        self.pos = nn.Parameter(spec.position_std * torch.randn(1, grid[0] * grid[1], d))
        self.mlp = mlp([d, *spec.hidden, self.features + 1])

    def decode(self, slots: Tensor) -> tuple[Tensor, Tensor]:
        """slots ``[b t k d]`` → per-slot features ``[b t k n c]`` and alpha logits ``[b t k n]``."""
        b, t = slots.shape[:2]
        x = rearrange(slots, "b t k d -> (b t k) 1 d") + self.pos  # [(b t k) n d]
        out = rearrange(self.mlp(x), "(b t k) n c -> b t k n c", b=b, t=t)
        return out[..., : self.features], out[..., self.features]

    def forward(self, state: State) -> Rendering:
        target = target_tokens(state)  # [b t n c]
        grid = patch_grid(state, target.shape[2])
        feats, logits = self.decode(slots_per_frame(state, target.shape[1]))
        alpha = logits.softmax(dim=2)  # over slots
        recon = (feats * alpha.unsqueeze(-1)).sum(dim=2)  # [b t n c]
        return patch_rendering(recon, target, logits, grid)
