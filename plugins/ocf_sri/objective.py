"""The NLL of the input under SRI's ordered slots, rendered by the model's own decoder
(shared) or by a second decoder the objective owns."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field
from torch import Tensor

from ocf.components import BuildContext, Objective, ObjectiveSpec, Shared
from ocf.errors import SpecError
from ocf.prob import mixture_log_likelihood
from ocf.records import Latents, State
from ocf_common.objectives import REDUCTION_HELP, Reduction, reduce_nll


class OrderedNLL(Objective):
    """Negative log-likelihood of the input under the slots in SRI's learned order (term ``ordered_nll``), via the
    shared or a separate decoder."""

    name = "sri.ordered_nll"
    needs = ("prior.extras",)

    class Spec(ObjectiveSpec):
        sigma: float = Field(0.7, gt=0, description="standard deviation of each mixture component (GENESIS-v2: 0.7)")
        reduction: Reduction = Field("sum", description=REDUCTION_HELP)
        decoder: dict[str, Any] | None = Field(
            None,
            description="null: render with the model's decoder (shared weights, as the paper's text); a decoder spec "
            "such as {type: spatial_broadcast, channels: [32, 32]}: a second decoder trained by this term "
            "only",
        )

    #: for the conformance check, which builds the objective without a model
    example = {"decoder": {"type": "spatial_broadcast", "channels": [8]}}

    @classmethod
    def example_state(cls, ctx: BuildContext, batch_size: int) -> State:
        """Ordered slots ``[b 3 6]`` in ``prior.extras`` and a batch of the context's shape."""
        from ocf.records import Batch, PriorTerms

        ctx.dims.update({"latents.objects": 6, "latents.num_slots": 3})
        h, w = ctx.resolution
        g = torch.Generator().manual_seed(0)
        batch = Batch(torch.rand(batch_size, ctx.frames, ctx.channels, h, w, generator=g))
        prior = PriorTerms(terms={}, extras={"ordered": torch.randn(batch_size, 3, 6, generator=g)})
        return State(batch, latents=Latents(), prior=prior)

    def __init__(self, spec: Spec, ctx: BuildContext) -> None:
        super().__init__(spec, ctx)
        self.own, self._shared = None, None
        if spec.decoder is not None:  # a second decoder, trained by this term only
            self.own = ctx.build("decoder", spec.decoder, "decoder")
        elif "decoder" in ctx.built:  # the model's decoder: called, not registered a second time
            self._shared = Shared(ctx.built["decoder"])
        else:
            raise SpecError(
                [
                    f"{self.label} shares the model's decoder, but the spec has none; "
                    "add model.decoder or give this objective its own decoder"
                ]
            )

    @property
    def decoder(self):
        return self.own if self.own is not None else self._shared.component

    def forward(self, state: State) -> dict[str, Tensor]:
        ordered = state.prior.extras.get("ordered")
        if ordered is None:
            raise ValueError("objective sri.ordered_nll needs prior.extras['ordered'] (the sri.prior provides it)")
        frames = state.latents.frames if state.latents is not None else None
        rendering = self.decoder(
            State(state.batch, features=state.features, latents=Latents(objects=ordered, frames=frames))
        )
        if rendering.rgb is None or rendering.mask_logits is None:
            raise ValueError("objective sri.ordered_nll needs a decoder that gives per-slot rgb and mask logits")
        target = rendering.target if rendering.target is not None else state.batch.frames
        ll = mixture_log_likelihood(target, rendering.rgb, rendering.mask_logits, self.spec.sigma)
        return {"ordered_nll": reduce_nll(ll, self.spec.reduction)}
