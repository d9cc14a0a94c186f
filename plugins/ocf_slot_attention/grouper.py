"""Slot Attention (Locatello et al., 2020): K slots drawn from a learned Gaussian and refined
by a few rounds of attention in which slots compete for the input tokens."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from einops import einsum, rearrange
from pydantic import Field, PositiveFloat
from torch import Tensor, nn

from ocf.components import BuildContext, ComponentSpec, Grouper
from ocf.fields import Repeats, Size
from ocf.prob import gaussian_from_params
from ocf.records import Latents, State


def glorot_init_(module: nn.Module) -> None:
    """Keras's default initialisation on every Linear and GRUCell under ``module``: Glorot-uniform
    kernels (per gate for a GRU's input weights), orthogonal recurrent weights per gate, zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.GRUCell):
            with torch.no_grad():
                for w_in, w_rec in zip(m.weight_ih.chunk(3), m.weight_hh.chunk(3)):
                    w_in.copy_(nn.init.xavier_uniform_(torch.empty_like(w_in)))
                    w_rec.copy_(nn.init.orthogonal_(torch.empty_like(w_rec)))
                m.bias_ih.zero_()
                m.bias_hh.zero_()


class SlotAttentionGrouper(Grouper):
    """Slot Attention: learned-Gaussian slot init, iterative attention with softmax over slots, GRU + MLP updates."""

    name = "slot_attention.grouper"
    needs = ("features.tokens",)
    provides = ("latents.objects", "latents.attention")

    class Spec(ComponentSpec):
        num_slots: Size = Field(7, description="number of slots k")
        slot_dim: Size = Field(64, description="slot dimension d")
        mlp_hidden: Size = Field(128, description="hidden width of the residual slot MLP")
        iterations: Repeats = Field(3, description="attention rounds")
        epsilon: PositiveFloat = Field(1e-8, description="added to the attention before renormalising over tokens")
        qkv_bias: bool = Field(False, description="biases in the q/k/v projections (the paper has none)")
        implicit_grad: bool = Field(
            False, description="detach the slots before the last round (implicit differentiation, Chang et al. 2022)"
        )
        slot_init: Literal["glorot", "unit"] = Field(
            "glorot",
            description="initial value of the slot Gaussian's parameters: 'glorot' draws mu and log sigma from "
            "Glorot-uniform "
            "(±0.30 for d = 64, the official code); 'unit' sets mu ~ N(0, 0.1²) and sigma = 1 (see "
            "docs/plugins/slot_attention.md)",
        )
        weight_init: Literal["torch", "glorot"] = Field(
            "torch",
            description="initialisation of the q/k/v projections, the GRU and the MLP: 'torch' keeps PyTorch's "
            "defaults (uniform ±1/sqrt(fan_in) weights and biases); 'glorot' uses Glorot-uniform weights, "
            "orthogonal GRU recurrent weights and zero biases (the Keras defaults of the official code), which "
            "makes the attention sharper at the start (see docs/plugins/slot_attention.md)",
        )

    def __init__(self, spec: Spec, ctx: BuildContext) -> None:
        super().__init__(spec, ctx)
        c = ctx.dim("features.tokens")
        d = spec.slot_dim
        if spec.slot_init == "glorot":
            self.mu = nn.Parameter(nn.init.xavier_uniform_(torch.empty(1, d)))
            self.log_sigma = nn.Parameter(nn.init.xavier_uniform_(torch.empty(1, d)))
        else:
            self.mu = nn.Parameter(0.1 * torch.randn(1, d))
            self.log_sigma = nn.Parameter(torch.zeros(1, d))
        self.norm_inputs = nn.LayerNorm(c)
        self.norm_slots = nn.LayerNorm(d)
        self.norm_mlp = nn.LayerNorm(d)
        self.to_q = nn.Linear(d, d, bias=spec.qkv_bias)
        self.to_k = nn.Linear(c, d, bias=spec.qkv_bias)
        self.to_v = nn.Linear(c, d, bias=spec.qkv_bias)
        self.gru = nn.GRUCell(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, spec.mlp_hidden), nn.ReLU(), nn.Linear(spec.mlp_hidden, d))
        if spec.weight_init == "glorot":
            glorot_init_(self)
        ctx.dims["latents.objects"] = d
        ctx.dims["latents.num_slots"] = spec.num_slots

    def init_slots(self, batch: int) -> Tensor:
        """``[batch k d]`` reparameterised draws from N(mu, sigma²), so mu and sigma both
        learn; drawn from torch's RNG in training and evaluation alike."""
        noise = torch.randn(batch, self.spec.num_slots, self.spec.slot_dim, device=self.mu.device, dtype=self.mu.dtype)
        return self.mu + self.log_sigma.exp() * noise

    def attend(self, tokens: Tensor, slots: Tensor, iterations: int | None = None) -> tuple[Tensor, Tensor]:
        """tokens ``[b n c]``, initial slots ``[b k d]`` → slots ``[b k d]``, attention of
        the last round ``[b k n]`` (sums to 1 over k); b is frames folded into the batch.
        ``iterations`` overrides the spec's number of rounds (e.g. fewer for video frames
        whose slots start from the previous frame's)."""
        s = self.spec
        rounds = s.iterations if iterations is None else iterations
        x = self.norm_inputs(tokens)
        k, v = self.to_k(x), self.to_v(x)  # [b n d]
        scale = s.slot_dim**-0.5
        for i in range(rounds):
            if s.implicit_grad and i == rounds - 1:
                slots = slots.detach()
            q = self.to_q(self.norm_slots(slots))  # [b k d]
            logits = einsum(q, k, "b k d, b n d -> b k n") * scale
            attn = logits.softmax(dim=1)  # over k: slots compete for tokens
            weights = attn + s.epsilon
            weights = weights / weights.sum(dim=-1, keepdim=True)  # over n: a weighted mean
            updates = einsum(weights, v, "b k n, b n d -> b k d")
            slots = self.gru(rearrange(updates, "b k d -> (b k) d"), rearrange(slots, "b k d -> (b k) d")).view_as(
                slots
            )  # [b k d]
            if self.mlp is not None:  # a subclass may drop the residual MLP (SAVi's corrector has none)
                slots = slots + self.mlp(self.norm_mlp(slots))
        return slots, attn

    def attend_frames(
        self,
        tokens: Tensor,
        slots: Tensor,
        later_iterations: int | None = None,
        predict: Callable[[Tensor], Tensor] | None = None,
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Slot Attention carried over the frames of ``tokens [b t n c]`` in order: frame 0
        starts from ``slots [b k d]`` and runs the spec's rounds; frame t > 0 starts from
        frame t−1's slots, passed through ``predict`` when given, and runs ``later_iterations``
        rounds (None: the spec's).  Returns slots ``[b t k d]``, attention ``[b t k n]`` and
        the predictions ``[b t k d]`` (``predict`` of each frame's slots: the start of the
        next frame; None without ``predict``).  SetCon and SAVi share this loop."""
        slots_t, attn_t, pred_t = [], [], []
        s = slots
        for i in range(tokens.shape[1]):
            s, a = self.attend(tokens[:, i], s, None if i == 0 else later_iterations)
            slots_t.append(s)
            attn_t.append(a)
            if predict is not None:
                s = predict(s)  # [b k d]: where frame i+1 starts
                pred_t.append(s)
        predicted = torch.stack(pred_t, 1) if predict is not None else None
        return torch.stack(slots_t, 1), torch.stack(attn_t, 1), predicted

    def group(self, state: State) -> tuple[Tensor, Tensor]:
        """Every frame separately: slots ``[b t k d]``, attention ``[b t k n]``."""
        tokens = state.features.tokens  # [b t n c]
        b = tokens.shape[0]
        flat = rearrange(tokens, "b t n c -> (b t) n c")
        slots, attn = self.attend(flat, self.init_slots(flat.shape[0]))
        slots = rearrange(slots, "(b t) k d -> b t k d", b=b)
        attn = rearrange(attn, "(b t) k n -> b t k n", b=b)
        return slots, attn

    def forward(self, state: State) -> Latents:
        slots, attn = self.group(state)
        objects = slots[:, 0] if slots.shape[1] == 1 else slots  # [b k d] for images
        return Latents(objects=objects, attention=attn)


class GaussianSlotAttentionGrouper(SlotAttentionGrouper):
    """Slot Attention whose slots are the means of a Gaussian posterior (learned std head); objects are
    reparameterised samples."""

    name = "slot_attention.gaussian_grouper"
    provides = SlotAttentionGrouper.provides + ("latents.posterior",)

    class Spec(SlotAttentionGrouper.Spec):
        std_kind: Literal["softplus", "exp_clamp"] = Field(
            "softplus",
            description="how the std head's output becomes a std (softplus + min_std, or exp of a clamped log-std)",
        )
        min_std: PositiveFloat = Field(1e-3, description="lower bound on the posterior std")
        eval_sample: bool = Field(
            False, description="in evaluation, sample the objects too (default: use the posterior mean)"
        )

    def __init__(self, spec: Spec, ctx: BuildContext) -> None:
        super().__init__(spec, ctx)
        self.to_std = nn.Linear(spec.slot_dim, spec.slot_dim)

    def forward(self, state: State) -> Latents:
        mean, attn = self.group(state)  # [b t k d]
        if mean.shape[1] == 1:
            mean = mean[:, 0]  # [b k d]
        posterior = gaussian_from_params(mean, self.to_std(mean), self.spec.std_kind, self.spec.min_std)
        sample = self.training or self.spec.eval_sample
        objects = posterior.rsample() if sample else posterior.mean
        return Latents(objects=objects, attention=attn, posterior=posterior)
