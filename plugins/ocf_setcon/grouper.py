"""SetCon's latent model (Löwe et al., 2020): Slot Attention carried over the frames of a
video, a transition predictor for the slots two frames on, and a DeepSets set embedding.

The Slot Attention itself is :class:`ocf_slot_attention.grouper.SlotAttentionGrouper`
(imported, not copied); this grouper only changes where each frame's slots start."""

from __future__ import annotations

from typing import Literal

import torch
from einops import rearrange
from pydantic import Field
from torch import Tensor, nn

from ocf.components import BuildContext
from ocf.fields import Repeats, Size
from ocf.records import Latents, State
from ocf.testing import example_state as _example_state
from ocf_slot_attention.grouper import SlotAttentionGrouper


class Transition(nn.Module):
    """Per-slot transition ``p_{t+2} = s_{t+1} + f([s_t, s_{t+1}, s_{t+1} − s_t])`` with
    ``f = Linear(3d → h) → LayerNorm → Linear(h → d)`` (SetCon's predictor; h = d in the paper)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.f = nn.Sequential(nn.Linear(3 * dim, hidden), nn.LayerNorm(hidden), nn.Linear(hidden, dim))

    def forward(self, prev: Tensor, cur: Tensor) -> Tensor:
        """prev = s_t, cur = s_{t+1}, both ``[... k d]`` → predicted s_{t+2} ``[... k d]``."""
        return cur + self.f(torch.cat([prev, cur, cur - prev], dim=-1))


def _mlp3(c_in: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(c_in, hidden), nn.ELU(), nn.Linear(hidden, hidden), nn.ELU(), nn.Linear(hidden, out))


class SetEmbedding(nn.Module):
    """DeepSets embedding of a set of slots: ``g(S) = ρ(LayerNorm(Σ_k φ(s_k)))`` with φ and ρ
    three-layer MLPs with ELU (the unofficial code's); ``[... k d]`` → ``[... e]``, invariant to
    the order of the k slots."""

    def __init__(self, dim: int, hidden: int, out: int) -> None:
        super().__init__()
        self.phi = _mlp3(dim, hidden, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.rho = _mlp3(hidden, hidden, out)

    def forward(self, slots: Tensor) -> Tensor:
        return self.rho(self.norm(self.phi(slots).sum(dim=-2)))  # sum over k: a set


class SetConGrouper(SlotAttentionGrouper):
    """Slot Attention over video (frame t starts from frame t−1's slots), SetCon's slot transition and DeepSets set
    embedding."""

    name = "setcon.grouper"
    needs = ("features.tokens",)
    provides = ("latents.objects", "latents.attention", "latents.masks", "latents.extras")

    class Spec(SlotAttentionGrouper.Spec):
        slot_init: Literal["glorot", "unit", "learned"] = Field(
            "glorot",
            description="slots of the first frame: 'glorot'/'unit' sample a learned Gaussian (Slot Attention's init, "
            "see "
            "slot_attention.grouper); 'learned' uses k learned fixed vectors, one per slot (the unofficial public "
            "code)",
        )
        later_iterations: Repeats = Field(
            1,
            description="attention rounds for frames t > 0 when slots are carried over (the paper: fewer than "
            "`iterations`)",
        )
        carry: bool = Field(
            True,
            description="start frame t from frame t−1's slots (the paper); false: every frame starts from the init "
            "(the public code)",
        )
        transition_hidden: Size | None = Field(
            None,
            description="hidden width h of the transition f: Linear(3d→h) → LayerNorm → Linear(h→d) (null: the slot "
            "dim d, as the paper)",
        )
        set_hidden: Size = Field(128, description="hidden width of the DeepSets set embedding g's φ and ρ MLPs")
        set_dim: Size | None = Field(
            64,
            description="output size e of the set embedding g (null: no set embedding, e.g. for a slot-wise objective)",
        )
        objects: Literal["inferred", "predicted"] = Field(
            "inferred",
            description="what latents.objects holds for frames t >= 2: the slots Slot Attention infers (default), or "
            "the "
            "transition's predictions from frames t-2 and t-1 (to score future prediction with a decoder probe)",
        )

    def __init__(self, spec: Spec, ctx: BuildContext) -> None:
        super().__init__(spec, ctx)
        d, k = spec.slot_dim, spec.num_slots
        if spec.slot_init == "learned":  # k fixed learned vectors replace the Gaussian
            del self.mu, self.log_sigma
            self.slot_embed = nn.Parameter(nn.init.xavier_uniform_(torch.empty(k, d)))
        self.transition = Transition(d, spec.transition_hidden or d)
        self.set_embed = SetEmbedding(d, spec.set_hidden, spec.set_dim) if spec.set_dim else None
        self.grid = ctx.dims.get("features.grid")
        if spec.set_dim:
            ctx.dims["latents.set_embedding"] = spec.set_dim

    @classmethod
    def example_state(cls, ctx: BuildContext, batch_size: int) -> State:
        """Tokens of 4-frame clips, so that the transition (which needs 3 frames) runs."""
        state = _example_state(cls.needs, ctx, batch_size)
        g = torch.Generator().manual_seed(1)
        tokens = state.features.tokens
        state.features.tokens = torch.randn(tokens.shape[0], 4, *tokens.shape[2:], generator=g).requires_grad_()
        state.batch.frames = torch.rand(tokens.shape[0], 4, *state.batch.frames.shape[2:], generator=g)
        return state

    def init_slots(self, batch: int) -> Tensor:
        if self.spec.slot_init == "learned":
            return self.slot_embed.unsqueeze(0).expand(batch, -1, -1)
        return super().init_slots(batch)

    def group(self, state: State) -> tuple[Tensor, Tensor]:
        """Frames in order: slots ``[b t k d]``, attention ``[b t k n]``."""
        tokens = state.features.tokens  # [b t n c]
        b = tokens.shape[0]
        if not self.spec.carry:
            return super().group(state)
        slots, attn, _ = self.attend_frames(tokens, self.init_slots(b), self.spec.later_iterations)
        return slots, attn  # [b t k d], [b t k n]

    def predict(self, slots: Tensor) -> Tensor:
        """Slots ``[b t k d]`` → predictions ``[b t−2 k d]`` of frames 2 … t−1 from the two
        frames before each."""
        return self.transition(slots[:, :-2], slots[:, 1:-1])

    def forward(self, state: State) -> Latents:
        slots, attn = self.group(state)  # [b t k d], [b t k n]
        extras: dict[str, Tensor] = {"slots": slots}
        if slots.shape[1] >= 3:
            predicted = self.predict(slots)  # [b t-2 k d]
            extras["predicted"] = predicted
            if self.set_embed is not None:
                extras["set_predicted"] = self.set_embed(predicted)  # [b t-2 e], anchors for frames 2..t-1
                extras["set_actual"] = self.set_embed(slots)  # [b t e]
        grid = state.features.grid or self.grid
        masks = None
        if grid is not None and grid[0] * grid[1] == attn.shape[-1]:
            masks = rearrange(attn, "b t k (h w) -> b t k h w", h=grid[0])
        objects = slots
        if self.spec.objects == "predicted" and "predicted" in extras:  # frames 0, 1 inferred; 2.. predicted
            objects = torch.cat([slots[:, :2], extras["predicted"]], dim=1)
        objects = objects[:, 0] if objects.shape[1] == 1 else objects
        return Latents(objects=objects, attention=attn, masks=masks, extras=extras)
