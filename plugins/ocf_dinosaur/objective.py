"""``dinosaur.feature_mse``: DINOSAUR's training objective."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ocf.components import Objective, ObjectiveSpec
from ocf.records import State


class FeatureReconstruction(Objective):
    """Mean squared error between the decoder's reconstruction of the backbone's patch features and those
    features, detached (term ``feature_mse``); needs a decoder that sets rendering.target."""

    name = "dinosaur.feature_mse"
    needs = ("rendering.recon", "rendering.target")

    class Spec(ObjectiveSpec):
        pass

    def forward(self, state: State) -> dict[str, Tensor]:
        r = state.rendering
        return {"feature_mse": F.mse_loss(r.recon, r.target.detach())}
