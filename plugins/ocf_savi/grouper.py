"""SAVi (Kipf et al., 2022, "Conditional Object-Centric Learning from Video"): Slot Attention
over video in which, per frame, Slot Attention corrects the slots and a transformer predicts
where the next frame's slots start; the first frame's slots are learned-Gaussian draws or
encodings of the objects' first-frame boxes or centres.

The Slot Attention is :class:`ocf_slot_attention.grouper.SlotAttentionGrouper` (imported, not
copied), and the frame loop is its ``attend_frames``, which SetCon shares."""

from __future__ import annotations

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn

from ocf.components import BuildContext
from ocf.fields import MAX_REPEATS, Repeats, Size
from ocf.records import Latents, State
from ocf.testing import example_state as _example_state
from ocf_savi.conditioning import Condition, CoordinateInit, Units, first_frame, normalized_coords
from ocf_slot_attention.grouper import SlotAttentionGrouper


class Predictor(nn.Module):
    """Transformer over the k slots of a frame (post-norm blocks, ReLU MLP, no dropout):
    ``[b k d]`` → ``[b k d]``, the slots the next frame starts from."""

    def __init__(self, dim: int, layers: int, heads: int, hidden: int) -> None:
        super().__init__()
        block = nn.TransformerEncoderLayer(dim, heads, hidden, dropout=0.0, batch_first=True)
        self.net = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)

    def forward(self, slots: Tensor) -> Tensor:
        return self.net(slots)  # self-attention over k: slots exchange information


class SAViGrouper(SlotAttentionGrouper):
    """SAVi: per frame, Slot Attention corrects the slots and a transformer predicts the next frame's; first-frame
    slots from a learned Gaussian or from the objects' first-frame boxes or centres (batch extras)."""

    name = "savi.grouper"
    needs = ("features.tokens",)
    provides = ("latents.objects", "latents.attention", "latents.extras")

    class Spec(SlotAttentionGrouper.Spec):
        num_slots: Size = Field(
            11, description="number of slots k (conditioned: the objects of the extra + background, zero-padded)"
        )
        slot_dim: Size = Field(128, description="slot dimension d")
        iterations: Repeats = Field(1, description="Slot Attention rounds on the first frame")
        later_iterations: Repeats = Field(1, description="Slot Attention rounds on every later frame")
        corrector_mlp: bool = Field(
            False, description="keep Slot Attention's residual MLP after each GRU update (SAVi's corrector has none)"
        )
        predictor_layers: int = Field(
            1,
            ge=0,
            le=MAX_REPEATS,
            description="transformer blocks of the predictor between frames (0: none, slots carry over unchanged)",
        )
        predictor_heads: Size = Field(4, description="attention heads of the predictor (must divide slot_dim)")
        predictor_hidden: Size = Field(256, description="hidden width of the predictor's MLP")
        condition: Condition = Field(
            "none",
            description="first-frame slots: 'none' draws them from Slot Attention's learned Gaussian; 'boxes' encodes "
            "each object's box [y0, x0, y1, x1], 'centres' its centre [y, x] (a box's centre when the extra holds "
            "boxes), both from the extra `condition_key`",
        )
        condition_key: str = Field(
            "boxes",
            min_length=1,
            description="batch extra holding the objects' boxes (x, y, w, h) or centres (x, y), [o c] per sample or "
            "[t o c] (frame 0 of the window is used); declare it in data.extras",
        )
        condition_units: Units = Field(
            "pixels", description="units of the conditioning extra: 'pixels' of the frames, or 'normalized' to [0, 1]"
        )
        condition_hidden: Size = Field(256, description="hidden width of the conditioning MLP")
        background_slot: bool = Field(
            True, description="conditioned: slot 0 encodes a zero box for the background, objects follow from slot 1"
        )

        @model_validator(mode="after")
        def _heads_divide(self):
            if self.predictor_layers and self.slot_dim % self.predictor_heads:
                raise ValueError(f"predictor_heads ({self.predictor_heads}) must divide slot_dim ({self.slot_dim})")
            return self

    def __init__(self, spec: Spec, ctx: BuildContext) -> None:
        super().__init__(spec, ctx)
        d, k = spec.slot_dim, spec.num_slots
        if not spec.corrector_mlp:
            self.mlp = self.norm_mlp = None
        self.predictor = (
            Predictor(d, spec.predictor_layers, spec.predictor_heads, spec.predictor_hidden)
            if spec.predictor_layers
            else None
        )
        self.resolution = tuple(ctx.resolution)
        self.condition = None
        if spec.condition != "none":
            del self.mu, self.log_sigma  # the conditioning MLP replaces the Gaussian
            self._check_extra(ctx)
            coord_dim = 4 if spec.condition == "boxes" else 2
            self.condition = CoordinateInit(coord_dim, spec.condition_hidden, d, k, spec.background_slot)

    def _check_extra(self, ctx: BuildContext) -> None:
        s = self.spec
        key = f"batch.extras.{s.condition_key}"
        if key not in ctx.dims:
            raise ValueError(
                f"condition {s.condition!r} reads the extra {s.condition_key!r}: declare its per-sample shape in the "
                f"spec's data section (`extras: {{{s.condition_key}: [T, O, 4]}}` for boxes of every frame)"
            )
        shape = tuple(ctx.dims[key])
        if len(shape) not in (2, 3) or shape[-1] not in (2, 4):
            raise ValueError(f"data.extras.{s.condition_key} is {list(shape)}; expected [O, 4|2] or [T, O, 4|2]")
        objects = shape[-2] + int(s.background_slot)
        if objects > s.num_slots:
            raise ValueError(
                f"data.extras.{s.condition_key} holds {shape[-2]} objects; with the background slot that needs "
                f"num_slots >= {objects}, got {s.num_slots}"
            )

    @classmethod
    def example_state(cls, ctx: BuildContext, batch_size: int) -> State:
        """Tokens of 3-frame clips (so the predictor runs) and boxes of 2 objects in every frame."""
        state = _example_state(cls.needs, ctx, batch_size)
        g = torch.Generator().manual_seed(1)
        tokens = state.features.tokens
        b, (h, w) = tokens.shape[0], ctx.resolution
        state.features.tokens = torch.randn(b, 3, *tokens.shape[2:], generator=g).requires_grad_()
        state.batch.frames = torch.rand(b, 3, *state.batch.frames.shape[2:], generator=g)
        xy = torch.rand(b, 3, 2, 2, generator=g) * torch.tensor([w / 2, h / 2])
        key = cls.Spec().condition_key  # the default extra, "boxes": [b t o 4]
        state.batch.extras[key] = torch.cat([xy, xy.new_full(xy.shape, 4.0)], dim=-1)
        ctx.dims[f"batch.extras.{key}"] = (3, 2, 4)  # its declared per-sample shape
        return state

    def initial_slots(self, state: State, batch: int) -> Tensor:
        """First-frame slots ``[b k d]``: Gaussian draws, or the conditioning MLP's encodings."""
        if self.condition is None:
            return self.init_slots(batch)
        s = self.spec
        extra = state.batch.extras.get(s.condition_key)
        if extra is None:
            raise ValueError(
                f"grouper {self.name}: condition {s.condition!r} reads the batch extra {s.condition_key!r}, which "
                f"this data does not have (its extras: {', '.join(sorted(state.batch.extras)) or 'none'})"
            )
        dtype = state.features.tokens.dtype
        extra = first_frame(extra.to(dtype), s.condition_key, 4 if s.condition == "boxes" else 2)
        return self.condition(normalized_coords(extra, s.condition, s.condition_units, self.resolution))

    def run(self, state: State) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
        """Slots ``[b t k d]``, attention ``[b t k n]``, the predictions ``[b t k d]`` (None
        without a predictor) and the first frame's initial slots ``[b k d]``."""
        tokens = state.features.tokens  # [b t n c]
        init = self.initial_slots(state, tokens.shape[0])  # [b k d]
        slots, attn, predicted = self.attend_frames(tokens, init, self.spec.later_iterations, self.predictor)
        return slots, attn, predicted, init

    def group(self, state: State) -> tuple[Tensor, Tensor]:
        """Frames in order: slots ``[b t k d]``, attention ``[b t k n]``."""
        slots, attn, _, _ = self.run(state)
        return slots, attn

    def forward(self, state: State) -> Latents:
        slots, attn, predicted, init = self.run(state)
        extras: dict[str, Tensor] = {"initial": init}
        if predicted is not None:
            extras["predicted"] = predicted  # [b t k d]: where frame t+1 starts
        objects = slots[:, 0] if slots.shape[1] == 1 else slots  # [b k d] for images
        return Latents(objects=objects, attention=attn, extras=extras)
