"""SQAIR's generative prior over objects: a learned categorical on the number of new
objects, N(0, I) appearance and a recurrent location prior for discovery, and a GRU per
object for propagation."""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field, PositiveFloat
from torch import Tensor, nn

from ocf.components import BuildContext, ComponentSpec, Prior, SampleRequest
from ocf.fields import Size
from ocf.prob import bernoulli_log_prob
from ocf.records import DiagonalGaussian, Latents, PriorTerms, State
from ocf_sqair.common import bernoulli_sample, constrain, gaussian, net, tie_scales, where_log_prob


class SqairPrior(Prior):
    """SQAIR prior: discovery count ~ learnable categorical (first frame vs later frames, biased to no new objects),
    what ~ N(0, I), recurrent where prior; propagation GRU per object (presence bias +10). Returns per-particle
    log p in extras."""

    conditional = True  # sample(condition=...) continues observed frames
    name = "sqair.prior"
    needs = ("latents.extras",)
    provides = ("prior.terms", "prior.extras")

    class Spec(ComponentSpec):
        hidden: list[Size] = Field([256, 256], min_length=1, description="hidden widths of the prior MLPs (ELU)")
        rnn_hidden: Size = Field(256, description="state size of the propagation GRU and the recurrent where prior")
        first_frame_penalty: float = Field(
            1.0,
            description="initial count logits on the first frame are −penalty·n for n new objects (0: uniform, no "
            "bias)",
        )
        later_frame_penalty: float = Field(
            5.0,
            description="initial count logits after the first frame are −penalty·n: strongly favours no new object (0: "
            "no bias)",
        )
        learn_counts: bool = Field(
            True, description="the count logits are learned (reference); false keeps them at their initial values"
        )
        propagation_presence_bias: float = Field(
            10.0, description="added to the propagation prior's presence logit (reference +10)"
        )
        where_std_offset: float = Field(
            -3.0, description="propagated where std = softplus(raw + offset) + 1e-4 (motion is small)"
        )
        discovery_where_std_offset: float = Field(
            0.0,
            description="discovered where std = softplus(raw + offset) + 1e-4 (0: std ≈ 0.7 at init; −3 would make the "
            "prior so narrow that any glimpse away from its mean costs hundreds of nats)",
        )
        what_min_std: float = Field(1e-2, gt=0, description="propagated what std = softplus(raw) + this")
        discovery_where: Literal["learned", "fixed"] = Field(
            "learned",
            description="prior of a discovered object's box: the learned recurrent prior (SQAIR) or a fixed Gaussian "
            "on the raw box (AIR's, as in Eslami et al. and pyro's example), which keeps glimpses near an "
            "expected object size",
        )
        fixed_scale: float = Field(
            0.4,
            gt=0.0,
            lt=1.0,
            description="discovery_where fixed: the median glimpse scale (the raw scale's mean is its logit)",
        )
        fixed_scale_std: PositiveFloat = Field(
            0.5, description="discovery_where fixed: std of the raw scale (logit units)"
        )
        fixed_shift_std: PositiveFloat = Field(
            1.0, description="discovery_where fixed: std of the raw shifts (shift = tanh(raw))"
        )

    example = {"hidden": [8], "rnn_hidden": 8}
    example_state = "ocf_sqair.fixtures:prior_state"  # conformance fixture

    def __init__(self, spec: Spec, ctx: BuildContext) -> None:
        super().__init__(spec, ctx)
        self.k = ctx.dim("latents.num_slots")
        self.d = ctx.dim("latents.objects")
        self.frames = ctx.frames
        self.propagate = bool(ctx.dims.get("sqair.propagate", True))  # AIR: every frame is a first frame
        self.square = bool(ctx.dims.get("sqair.square", False))  # boxes (s, x, y): the second scale is unused
        h, d = spec.rnn_hidden, self.d
        n = torch.arange(self.k + 1, dtype=torch.float32)
        counts = torch.stack([-spec.first_frame_penalty * n, -spec.later_frame_penalty * n])  # [2 k+1]
        if spec.learn_counts:
            self.count_logits = nn.Parameter(counts)
        else:
            self.register_buffer("count_logits", counts)
        self.where_rnn = nn.GRUCell(4, h)
        self.where_head = net([h, *spec.hidden, 8])
        if self.propagate:
            self.temporal = nn.GRUCell(d + 4, h)
            self.prop_head = net([h, *spec.hidden, 8 + 2 * d + 1])

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if not self.propagate:  # AIR checkpoints written when the propagation prior was always built
            for key in [k for k in state_dict if k.startswith((prefix + "temporal.", prefix + "prop_head."))]:
                del state_dict[key]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # -- pieces shared by log p and sampling ------------------------------------------------
    def _count_logits(self, t: int, free: Tensor) -> Tensor:
        """``[n k+1]`` log-probabilities of n new objects given ``free [n]`` free slots."""
        logits = self.count_logits[0 if t == 0 or not self.propagate else 1]
        allowed = torch.arange(self.k + 1, device=free.device).unsqueeze(0) <= free.unsqueeze(-1)  # [n k+1]
        return logits.unsqueeze(0).masked_fill(~allowed, float("-inf")).log_softmax(-1)

    def _propagation(
        self, h: Tensor, what: Tensor, where_raw: Tensor
    ) -> tuple[DiagonalGaussian, DiagonalGaussian, Tensor]:
        """Heads of the propagation prior from the GRU state ``h [... h]``: where and what as
        residuals on the previous values, and the presence logit."""
        s, d = self.spec, self.d
        out = self.prop_head(h)
        p_where = gaussian(out[..., :8], std_offset=s.where_std_offset, mean_offset=where_raw)
        p_what = gaussian(out[..., 8 : 8 + 2 * d], min_std=s.what_min_std, mean_offset=what)
        return p_where, p_what, out[..., -1] + s.propagation_presence_bias

    def _where(self, h: Tensor) -> DiagonalGaussian:
        s = self.spec
        if s.discovery_where == "fixed":
            logit = math.log(s.fixed_scale / (1 - s.fixed_scale))
            mean = h.new_tensor([logit, logit, 0.0, 0.0]).expand(*h.shape[:-1], 4)
            std = h.new_tensor([s.fixed_scale_std, s.fixed_scale_std, s.fixed_shift_std, s.fixed_shift_std]).expand(
                *h.shape[:-1], 4
            )
            return DiagonalGaussian(mean, std)
        return gaussian(self.where_head(h), std_offset=s.discovery_where_std_offset)

    # -- log p --------------------------------------------------------------------------------
    def log_prob(self, ex: dict) -> Tensor:
        """``[N t]`` log p(z_t | z_<t) of every particle's latents (``latents.extras``)."""
        what, where_raw, pres = ex["what"], ex["where_raw"], ex["presence"]
        n, t_len, k = pres.shape
        hsz = self.spec.rnn_hidden
        h_temp = what.new_zeros(n, k, hsz)
        out = []
        for t in range(t_len):
            lp = what.new_zeros(n)
            prop_dec, propagated, discovered, free = (
                ex["prop_decided"][:, t],
                ex["propagated"][:, t],
                ex["discovered"][:, t],
                ex["free"][:, t],
            )
            if t > 0 and bool(prop_dec.any()):
                keep = ex["propagated"][:, t - 1].unsqueeze(-1)  # hidden of objects that were themselves propagated
                z_prev = torch.cat([what[:, t - 1], where_raw[:, t - 1]], -1)
                h_temp = self.temporal(z_prev.flatten(0, 1), (h_temp * keep).flatten(0, 1)).view(n, k, hsz)
                p_where, p_what, logit = self._propagation(h_temp, what[:, t - 1], where_raw[:, t - 1])
                lp = lp + (prop_dec * bernoulli_log_prob(logit, propagated)).sum(-1)
                lp = lp + (
                    propagated
                    * (where_log_prob(p_where, where_raw[:, t], self.square) + p_what.log_prob(what[:, t]).sum(-1))
                ).sum(-1)
            # discovery: number of new objects, then each new object's where and what
            count = self._count_logits(t, free.sum(-1)).gather(-1, discovered.sum(-1).long().unsqueeze(-1)).squeeze(-1)
            lp = lp + count
            hw, prev = what.new_zeros(n, hsz), what.new_zeros(n, 4)
            for j in range(k):
                dj = discovered[:, j]
                hw = torch.where(dj.unsqueeze(-1) > 0, self.where_rnn(prev, hw), hw)
                p_where = self._where(hw)
                lp = lp + dj * (
                    where_log_prob(p_where, where_raw[:, t, j], self.square)
                    + DiagonalGaussian(torch.zeros_like(what[:, t, j]), torch.ones_like(what[:, t, j]))
                    .log_prob(what[:, t, j])
                    .sum(-1)
                )
                prev = torch.where(dj.unsqueeze(-1) > 0, where_raw[:, t, j], prev)
            out.append(lp)
        return torch.stack(out, 1)

    def forward(self, state: State) -> PriorTerms:
        """``extras["log_p"] [(p b) t]``; ``terms`` is empty: the bound is formed by
        ``sqair.iwae``, not by adding KL terms."""
        return PriorTerms(terms={}, extras={"log_p": self.log_prob(state.latents.extras)})

    # -- generation ---------------------------------------------------------------------------
    def draw(self, request: SampleRequest) -> Latents:
        """Roll the prior forward: ``objects [n t k d]`` (what), ``presence [n t k]``,
        ``where [n t k 4]`` boxes, for ``frames`` frames (default: the data's).  With
        ``condition`` (the State of the model run on the first frames of n clips), those
        frames keep their inferred latents (particle 0) and the prior continues from them.
        ``temperature`` scales the standard deviations of every Gaussian."""
        n, temperature, generator, condition, frames = request.unpack()
        frames = frames or self.frames
        k, d, hsz = self.k, self.d, self.spec.rnn_hidden
        like = dict(device=self.count_logits.device, dtype=self.count_logits.dtype)
        what, where_raw, pres, propagated = self._given(n, condition, frames, like)

        def normal(shape):
            return torch.randn(shape, generator=generator, **like)

        # replay the propagation GRU over the given frames
        h_temp = torch.zeros(n, k, hsz, **like)
        for t in range(1, what.shape[1] if self.propagate else 0):
            z_prev = torch.cat([what[:, t - 1], where_raw[:, t - 1]], -1)
            h_temp = self.temporal(
                z_prev.flatten(0, 1), (h_temp * propagated[:, t - 1].unsqueeze(-1)).flatten(0, 1)
            ).view(n, k, hsz)
        what_l, where_l, pres_l, prop_l = (
            list(what.unbind(1)),
            list(where_raw.unbind(1)),
            list(pres.unbind(1)),
            list(propagated.unbind(1)),
        )
        for t in range(len(what_l), frames):
            w_t, z_t, p_t = torch.zeros(n, k, 4, **like), torch.zeros(n, k, d, **like), torch.zeros(n, k, **like)
            if t > 0 and self.propagate:  # AIR: every frame is explained by discovery alone
                z_prev = torch.cat([what_l[-1], where_l[-1]], -1)
                h_temp = self.temporal(z_prev.flatten(0, 1), (h_temp * prop_l[-1].unsqueeze(-1)).flatten(0, 1)).view(
                    n, k, hsz
                )
                p_where, p_what, logit = self._propagation(h_temp, what_l[-1], where_l[-1])
                p_t = bernoulli_sample(logit, generator) * pres_l[-1]
                w_t = p_where.mean + temperature * p_where.std * normal(p_where.mean.shape)
                z_t = p_what.mean + temperature * p_what.std * normal(p_what.mean.shape)
            prop_t = p_t.clone()
            self._discover(t, p_t, w_t, z_t, normal, temperature, generator)
            what_l.append(z_t), where_l.append(w_t), pres_l.append(p_t), prop_l.append(prop_t)
        what, where_raw, pres = torch.stack(what_l, 1), torch.stack(where_l, 1), torch.stack(pres_l, 1)
        return Latents(
            objects=what,
            presence=pres,
            where=constrain(where_raw, self.square),
            extras={"where_raw": where_raw, "propagated": torch.stack(prop_l, 1)},
        )

    def _given(self, n: int, condition: State | None, frames: int, like: dict) -> tuple[Tensor, ...]:
        """The conditioning frames' what, raw where, presence and propagated flags
        (particle 0 of ``condition``), or empty ``[n 0 ...]`` tensors without one."""
        k, d = self.k, self.d
        if condition is None:
            return tuple(torch.zeros(n, 0, k, *shape, **like) for shape in ((d,), (4,), (), ()))
        ex = condition.latents.extras if condition.latents is not None else {}
        if "where_raw" not in ex:
            raise ValueError(
                "condition must be the State of a model with grouper sqair.grouper (it has no "
                "latents.extras['where_raw'])"
            )
        b = condition.latents.presence.shape[0]
        if b != n:
            raise ValueError(f"n = {n} samples but the condition holds {b} clips; ask for n = {b}")
        given = tuple(ex[key][:b].to(like["dtype"]) for key in ("what", "where_raw", "presence", "propagated"))
        if given[0].shape[1] > frames:
            raise ValueError(f"frames = {frames} is fewer than the {given[0].shape[1]} conditioning frames")
        return given

    def _discover(
        self,
        t: int,
        p_t: Tensor,
        w_t: Tensor,
        z_t: Tensor,
        normal,
        temperature: float,
        generator: torch.Generator | None,
    ) -> None:
        """Sample frame ``t``'s new objects into the free slots of ``p_t [n k]``, ``w_t [n k 4]``
        and ``z_t [n k d]`` (in place): a count from the count prior, then each new object's
        where from the recurrent where prior and its what from N(0, T²I)."""
        n, k, d = p_t.shape[0], self.k, self.d
        free = 1.0 - p_t
        probs = self._count_logits(t, free.sum(-1)).exp()
        new = torch.multinomial(probs, 1, generator=generator).squeeze(-1)  # [n] new objects
        hw, prev = p_t.new_zeros(n, self.spec.rnn_hidden), p_t.new_zeros(n, 4)
        rank = free.cumsum(-1) * free  # 1, 2, ... over the free slots
        for j in range(k):
            dj = ((rank[:, j] >= 1) & (rank[:, j] <= new)).to(p_t.dtype)
            hw = torch.where(dj.unsqueeze(-1) > 0, self.where_rnn(prev, hw), hw)
            p_where = self._where(hw)
            wj = tie_scales(p_where.mean + temperature * p_where.std * normal((n, 4)), self.square)
            zj = temperature * normal((n, d))
            sel = dj.unsqueeze(-1) > 0
            w_t[:, j] = torch.where(sel, wj, w_t[:, j])
            z_t[:, j] = torch.where(sel, zj, z_t[:, j])
            p_t[:, j] = torch.maximum(p_t[:, j], dj)
            prev = torch.where(sel, wj, prev)
