"""``dinosaur.feature_mse``: DINOSAUR's training objective."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ocf.components import BuildContext, Objective, ObjectiveSpec
from ocf.records import Batch, Rendering, State


class FeatureReconstruction(Objective):
    """Mean squared error between the decoder's reconstruction of the backbone's patch features and those
    features, detached (term ``feature_mse``); needs a decoder that sets rendering.target."""

    name = "dinosaur.feature_mse"
    needs = ("rendering.recon", "rendering.target")

    class Spec(ObjectiveSpec):
        pass

    @classmethod
    def example_state(cls, ctx: BuildContext, batch_size: int) -> State:
        """Random features ``[b t 16 4 4]`` and a reconstruction of them, for the conformance check."""
        b, t, c = batch_size, ctx.frames, 16
        frames = torch.rand(b, t, ctx.channels, *ctx.resolution)
        target = torch.randn(b, t, c, 4, 4)
        recon = torch.randn(b, t, c, 4, 4, requires_grad=True)
        return State(Batch(frames), rendering=Rendering(recon=recon, target=target))

    def forward(self, state: State) -> dict[str, Tensor]:
        r = state.rendering
        return {"feature_mse": F.mse_loss(r.recon, r.target.detach())}
