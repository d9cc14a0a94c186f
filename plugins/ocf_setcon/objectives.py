"""SetCon's objectives: the set-level InfoNCE the paper proposes and the slot-wise contrast
it argues against.  Both read what ``setcon.grouper`` provides in ``latents.extras``."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, PositiveFloat
from torch import Tensor

from ocf.components import BuildContext, Objective, ObjectiveSpec
from ocf.records import Latents, State
from ocf.testing import example_state as _example_state
from ocf_setcon.losses import info_nce, nt_xent, set_pairs


def _extra(state: State, key: str, who: str) -> Tensor:
    extras = state.latents.extras if state.latents is not None else {}
    if key not in extras:
        t = state.batch.frames.shape[1]
        hint = (
            f"clips of at least 3 frames (data.frames is {t})"
            if t < 3
            else "the grouper setcon.grouper (with set_dim set, for set embeddings)"
        )
        raise ValueError(f"{who} needs latents.extras[{key!r}], which needs {hint}")
    return extras[key]


def _setcon_state(ctx: BuildContext, batch_size: int, frames: int = 4, k: int = 3, d: int = 8, e: int = 6) -> State:
    """A State holding what setcon.grouper provides for 4-frame clips (conformance)."""
    state = _example_state(("batch.frames",), ctx, batch_size)
    g = torch.Generator().manual_seed(2)
    slots = torch.randn(batch_size, frames, k, d, generator=g).requires_grad_()
    extras = {
        "slots": slots,
        "predicted": torch.randn(batch_size, frames - 2, k, d, generator=g).requires_grad_(),
        "set_predicted": torch.randn(batch_size, frames - 2, e, generator=g).requires_grad_(),
        "set_actual": torch.randn(batch_size, frames, e, generator=g).requires_grad_(),
    }
    state.batch.frames = torch.rand(batch_size, frames, ctx.channels, *ctx.resolution, generator=g)
    state.latents = Latents(objects=slots, extras=extras)
    return state


class SetInfoNCE(Objective):
    """Set-level InfoNCE: g(predicted set) against g(actual set) of the same (video, time), every other (video, time)
    a negative."""

    name = "setcon.set_infonce"
    needs = ("latents.extras",)

    class Spec(ObjectiveSpec):
        temperature: PositiveFloat = Field(
            0.1, description="τ dividing the cosine similarities (the public code's NT-Xent: 0.5)"
        )
        form: Literal["infonce", "nt_xent"] = Field(
            "infonce",
            description="infonce: anchors are predicted sets, candidates the actual sets of every (video, time) in the "
            "batch "
            "(the paper); nt_xent: SimCLR's symmetric loss over predicted and actual sets of the predicted frames, "
            "each set's other view its positive (the unofficial public code)",
        )

    @classmethod
    def example_state(cls, ctx: BuildContext, batch_size: int) -> State:
        return _setcon_state(ctx, batch_size)

    def forward(self, state: State) -> dict[str, Tensor]:
        pred = _extra(state, "set_predicted", self.label)  # [b t-2 e]
        actual = _extra(state, "set_actual", self.label)  # [b t e]
        if self.spec.form == "nt_xent":
            tp = pred.shape[1]
            loss = nt_xent(
                pred.reshape(-1, pred.shape[-1]), actual[:, -tp:].reshape(-1, actual.shape[-1]), self.spec.temperature
            )
            return {"set_nt_xent": loss}
        anchors, candidates, positive = set_pairs(pred, actual)
        loss, _ = info_nce(anchors, candidates, positive, self.spec.temperature)
        return {"set_infonce": loss}


class SlotContrast(Objective):
    """Slot-wise InfoNCE (the control SetCon argues against): each predicted slot against the actual slot it
    predicts, slots of other (video, time) as negatives."""

    name = "setcon.slot_contrast"
    needs = ("latents.extras",)

    class Spec(ObjectiveSpec):
        temperature: PositiveFloat = Field(0.1, description="τ dividing the cosine similarities")
        same_set_negatives: bool = Field(
            False,
            description="also use the other slots of the same (video, time) as negatives; off by default, as in the "
            "slot-wise "
            "losses the paper discusses, which putting the same object in every slot satisfies",
        )

    @classmethod
    def example_state(cls, ctx: BuildContext, batch_size: int) -> State:
        return _setcon_state(ctx, batch_size)

    def forward(self, state: State) -> dict[str, Tensor]:
        pred = _extra(state, "predicted", self.label)  # [b t' k d]
        slots = _extra(state, "slots", self.label)  # [b t k d]
        b, tp, k, d = pred.shape
        t = slots.shape[1]
        set_index = (
            torch.arange(b * t, device=slots.device).view(b, t)[:, t - tp :].reshape(-1)
        )  # [b t'] set of each anchor set
        anchor_set = set_index.repeat_interleave(k)  # [(b t' k)]
        positive = anchor_set * k + torch.arange(k, device=slots.device).repeat(b * tp)  # same slot, same (video, time)
        exclude = None
        if not self.spec.same_set_negatives:  # leave out the other slots of the positive's set
            cand_set = torch.arange(b * t, device=slots.device).repeat_interleave(k)  # [(b t k)]
            exclude = cand_set[None, :] == anchor_set[:, None]
            exclude[torch.arange(len(positive)), positive] = False
        loss, _ = info_nce(pred.reshape(-1, d), slots.reshape(-1, d), positive, self.spec.temperature, exclude=exclude)
        return {"slot_infonce": loss}
