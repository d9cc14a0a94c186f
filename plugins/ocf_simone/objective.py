"""SIMONe's pixel term (``simone.likelihood``): the mixture likelihood of the decoded
pixels, normalised by the number of decoded pixels."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat
from torch import Tensor

from ocf.components import Objective, ObjectiveSpec
from ocf.prob import mixture_log_likelihood
from ocf.records import State


class SimoneLikelihood(Objective):
    """SIMONe pixel term: −log Σ_k softmax(mask)_k N(x; rgb_k, σ_x²) per channel, summed over pixels and channels,
    divided by t·h·w (term ``nll``)."""

    name = "simone.likelihood"
    needs = ("rendering.rgb", "rendering.mask_logits")

    class Spec(ObjectiveSpec):
        weight: float = Field(0.2, ge=0.0, description="α, multiplies the term (paper 0.2)")
        sigma: PositiveFloat = Field(0.08, description="σ_x, the fixed standard deviation of every mixture component")
        mixture: Literal["channel", "pixel"] = Field(
            "channel",
            description="'channel': each colour channel is its own mixture over slots (the paper's formula); 'pixel': "
            "one "
            "mixture per pixel over the slots' whole RGB (log Σ_k m_k Π_c N), as MONet / GENESIS",
        )

    def forward(self, state: State) -> dict[str, Tensor]:
        r = state.rendering
        target = state.target  # the decoded subset in training: [b t' c h' w']
        per_channel = self.spec.mixture == "channel"
        ll = mixture_log_likelihood(
            target, r.rgb, r.mask_logits, self.spec.sigma, per_channel=per_channel
        )  # [b t c|1 h w]
        t, _, h, w = ll.shape[1:]
        return {"nll": -(ll.flatten(1).sum(1) / (t * h * w)).mean()}
