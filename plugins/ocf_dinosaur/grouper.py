"""``dinosaur.grouper``: the Slot Attention grouper of the ``slot_attention`` plugin behind an
input MLP that maps the backbone's patch tokens to the slot width."""

from __future__ import annotations

from pydantic import Field
from torch import Tensor, nn

from ocf.components import BuildContext
from ocf.fields import Size
from ocf_slot_attention.grouper import SlotAttentionGrouper


class DinosaurGrouper(SlotAttentionGrouper):
    """Slot Attention over ViT patch tokens, each first passed through LayerNorm and a two-layer MLP to the
    slot width (DINOSAUR's grouper input); the attention itself is ``slot_attention.grouper``'s."""

    name = "dinosaur.grouper"

    class Spec(SlotAttentionGrouper.Spec):
        num_slots: Size = Field(7, description="number of slots k")
        slot_dim: Size = Field(256, description="slot dimension d; the input MLP maps the tokens to it")
        mlp_hidden: Size = Field(1024, description="hidden width of the residual slot MLP")
        input_hidden: Size | None = Field(
            None, description="hidden width of the input MLP on the tokens (null: the token width)"
        )

    def __init__(self, spec: Spec, ctx: BuildContext) -> None:
        width = ctx.dim("features.tokens")
        # Slot Attention sees the projected tokens: build it for that width, then restore the
        # backbone's width for later components (the decoders reconstruct the tokens themselves).
        ctx.dims["features.tokens"] = spec.slot_dim
        try:
            super().__init__(spec, ctx)
        finally:
            ctx.dims["features.tokens"] = width
        hidden = spec.input_hidden or width
        self.project = nn.Sequential(
            nn.LayerNorm(width), nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, spec.slot_dim)
        )
        for layer in (self.project[1], self.project[3]):
            nn.init.zeros_(layer.bias)

    def attend(self, tokens: Tensor, slots: Tensor, iterations: int | None = None) -> tuple[Tensor, Tensor]:
        """As :meth:`SlotAttentionGrouper.attend`, on the tokens ``[b n c]`` projected to ``[b n d]``."""
        return super().attend(self.project(tokens), slots, iterations)
