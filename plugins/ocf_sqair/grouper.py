"""SQAIR's inference network (AIR when propagation is off): per frame, propagate the
previous objects, then discover new ones."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor, nn

from ocf.components import BuildContext, ComponentSpec, Grouper
from ocf.fields import Repeats, Size
from ocf.prob import bernoulli_log_prob
from ocf.records import Latents, State
from ocf_common.glimpse import extract, place
from ocf_sqair.common import bernoulli_sample, constrain, gaussian, net, tie_scales, where_log_prob


class SqairGrouper(Grouper):
    """SQAIR inference: per frame, propagation (temporal GRU per object, relation RNN across objects, location first,
    proposal glimpse) then AIR discovery (recurrent attend-infer loop); presence Bernoulli, where and what
    Gaussians, p particles."""

    name = "sqair.grouper"
    needs = ("batch.frames", "features.tokens")
    provides = ("latents.objects", "latents.presence", "latents.where", "latents.extras")

    class Spec(ComponentSpec):
        max_objects: Size = Field(3, description="k: most objects present at once (slots)")
        what_dim: Size = Field(50, description="d: size of z_what")
        glimpse_size: Size = Field(20, description="side of the square glimpse the encoders read (paper 20)")
        hidden: list[Size] = Field([256, 256], min_length=1, description="hidden widths of every MLP (ELU)")
        rnn_hidden: Size = Field(256, description="state size of the discovery RNN, temporal GRU and relation RNN")
        propagate: bool = Field(
            True,
            description="SQAIR: propagate objects from frame to frame; false: AIR, every frame explained by discovery "
            "alone",
        )
        particles: Repeats = Field(
            5, description="importance samples per input in training (the batch is repeated this many times)"
        )
        eval_particles: Repeats | None = Field(
            None, description="importance samples in evaluation (null: as particles)"
        )
        discovery_presence_bias: float = Field(1.0, description="added to the discovery presence logit (reference +1)")
        propagation_presence_bias: float = Field(
            5.0, description="added to the propagation presence logit (reference +5)"
        )
        where_std_offset: float = Field(-3.0, description="where std = softplus(raw + offset) + 1e-4 (reference −3)")
        what_min_std: float = Field(1e-2, gt=0, description="what std = softplus(raw) + this (reference 1e-2)")
        mask_propagated: bool = Field(
            False,
            description="discovery glimpses read the frame with the propagated objects' boxes blanked out (explicit "
            "explaining-away; off in the paper, where discovery sees the propagated objects only through "
            "its conditioning)",
        )
        where_scale_bias: float = Field(
            0.0,
            description="initial bias of the discovered scale logits (scale = sigmoid(logit)); negative starts with "
            "smaller glimpses",
        )
        square_glimpses: bool = Field(
            False,
            description="one scale for both axes: z_where = (s, x, y) as in AIR (Eslami et al.); false: separate x and "
            "y scales as in SQAIR",
        )

    example = {"max_objects": 2, "what_dim": 4, "glimpse_size": 4, "hidden": [8], "rnn_hidden": 8, "particles": 2}
    example_state = "ocf_sqair.fixtures:grouper_state"  # conformance fixture

    def __init__(self, spec: Spec, ctx: BuildContext) -> None:
        super().__init__(spec, ctx)
        gh, gw = ctx.dim("features.grid")
        enc = ctx.dim("features.tokens") * gh * gw
        k, d, g, hid, h = spec.max_objects, spec.what_dim, spec.glimpse_size, spec.hidden, spec.rnn_hidden
        e = hid[-1]
        self.glimpse_encoder = nn.Sequential(net([ctx.channels * g * g, *hid]), nn.ELU())
        # discovery (AIR)
        self.disc_rnn = nn.RNNCell(enc + d + 4 + 1 + e, h)
        self.disc_where = net([h, *hid, 8])
        self.disc_what = net([e, *hid, 2 * d])
        self.disc_pres = net([h + e, *hid, 1])
        with torch.no_grad():
            self.disc_where[-1].bias[:2] += spec.where_scale_bias
        if spec.propagate:  # propagation
            self._build_propagation(ctx, enc, e)
        ctx.dims["latents.objects"] = d
        ctx.dims["latents.num_slots"] = k
        ctx.dims["sqair.propagate"] = spec.propagate
        ctx.dims["sqair.square"] = spec.square_glimpses

    def _build_propagation(self, ctx: BuildContext, enc: int, e: int) -> None:
        s = self.spec
        d, hid, h = s.what_dim, s.hidden, s.rnn_hidden
        self.prop_embed = net([d + 4, e])
        self.temporal = nn.GRUCell(d + 4, h)
        self.relation = nn.RNNCell(h + 2 * (d + 4), h)
        self.proposal = net([2 * h + 4, *hid, 4])
        self.prop_where = net([2 * h + e, *hid, 8])
        self.prop_what = net([2 * h + e + d, *hid, 2 * d])
        self.prop_pres = net([2 * h + e + d, *hid, 1])
        with torch.no_grad():  # start neutral: discovery unchanged by the summary, proposals at the previous where
            for layer in (self.prop_embed[-1], self.proposal[-1]):
                layer.weight.zero_()
                layer.bias.zero_()

    def _glimpse(self, img: Tensor, where_raw: Tensor) -> Tensor:
        g = self.spec.glimpse_size
        return self.glimpse_encoder(extract(img, constrain(where_raw, self.spec.square_glimpses), g).flatten(1))

    def forward(self, state: State) -> Latents:
        s = self.spec
        frames = state.batch.frames  # [b t c h w]
        tokens = state.features.tokens  # [b t n e]
        b, t_len = frames.shape[:2]
        p = s.particles if self.training or s.eval_particles is None else s.eval_particles
        x = frames.repeat(p, 1, 1, 1, 1)  # [(p b) t c h w], particle-major
        enc = tokens.flatten(2).repeat(p, 1, 1)  # [(p b) t (n e)]
        n, k, d, h = x.shape[0], s.max_objects, s.what_dim, s.rnn_hidden
        zeros = x.new_zeros
        # the previous frame: present; present through propagation; where; what; temporal GRU state
        prev = {
            "pres": zeros(n, k),
            "flag": zeros(n, k),
            "where": zeros(n, k, 4),
            "what": zeros(n, k, d),
            "h_temp": zeros(n, k, h),
        }
        out: dict[str, list[Tensor]] = {key: [] for key in _OUTPUTS}
        for t in range(t_len):
            img = x[:, t]
            log_q = [zeros(n), zeros(n)]  # continuous, discrete: log q of this frame's choices
            if s.propagate and t > 0:
                pres, where, what = self.propagate(img, prev, log_q)
                prop_decided = prev["pres"]
            else:
                pres, where, what = zeros(n, k), zeros(n, k, 4), zeros(n, k, d)
                prop_decided = zeros(n, k)
            propagated, free = pres, 1.0 - pres
            pres, where, what, discovered, disc_decided = self.discover(
                img, enc[:, t], t, propagated, where, what, log_q
            )
            step = {
                "what": what,
                "where_raw": where,
                "presence": pres,
                "propagated": propagated,
                "discovered": discovered,
                "prop_decided": prop_decided,
                "free": free,
                "disc_decided": disc_decided,
                "log_q": log_q[0] + log_q[1],
                "log_q_discrete": log_q[1],
            }
            for key in _OUTPUTS:
                out[key].append(step[key])
            prev.update(pres=pres, flag=propagated, where=where, what=what)
        extras: dict = {key: torch.stack(v, 1) for key, v in out.items()}  # [(p b) t ...]
        extras["where"] = constrain(extras["where_raw"], self.spec.square_glimpses)
        extras["num_particles"] = p
        return Latents(
            objects=extras["what"][:b], presence=extras["presence"][:b], where=extras["where"][:b], extras=extras
        )

    def propagate(self, img: Tensor, prev: dict[str, Tensor], log_q: list[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Propagation at one frame ``img [n c h w]``: the temporal GRU per object, then a
        relation RNN across objects in slot order; each object is located first (a proposal
        glimpse where it is expected), then its what and presence.  ``prev`` holds the
        previous frame (its ``h_temp`` is updated); ``log_q`` accumulates the continuous and
        discrete log q.  Returns presence ``[n k]``, where ``[n k 4]``, what ``[n k d]``."""
        s = self.spec
        n, k, d, h = img.shape[0], s.max_objects, s.what_dim, s.rnn_hidden
        pres_prev, where_prev, what_prev = prev["pres"], prev["where"], prev["what"]
        # temporal GRU per object: hidden kept for propagated objects, fresh for new ones
        h_in = torch.cat([what_prev, where_prev], -1)  # [n k d+4]
        h_old = (prev["h_temp"] * prev["flag"].unsqueeze(-1)).flatten(0, 1)
        h_temp = prev["h_temp"] = self.temporal(h_in.flatten(0, 1), h_old).view(n, k, h)
        rel, last = img.new_zeros(n, h), img.new_zeros(n, d + 4)
        pres_l, where_l, what_l = [], [], []
        for j in range(k):  # relation RNN across objects, in slot order
            alive = pres_prev[:, j]
            hj = h_temp[:, j]
            rel = self.relation(torch.cat([hj, what_prev[:, j], where_prev[:, j], last], -1), rel)
            ctx_j = torch.cat([hj, rel], -1)
            # location first: a proposal glimpse where the object is expected
            proposal = where_prev[:, j] + self.proposal(torch.cat([ctx_j, where_prev[:, j]], -1))
            q_where = gaussian(
                self.prop_where(torch.cat([ctx_j, self._glimpse(img, proposal)], -1)),
                std_offset=s.where_std_offset,
                mean_offset=where_prev[:, j],
            )
            w = tie_scales(q_where.rsample(), s.square_glimpses)
            glimpse = self._glimpse(img, w)
            q_what = gaussian(
                self.prop_what(torch.cat([ctx_j, glimpse, what_prev[:, j]], -1)),
                min_std=s.what_min_std,
                mean_offset=what_prev[:, j],
            )
            z = q_what.rsample()
            logit = self.prop_pres(torch.cat([ctx_j, glimpse, z], -1)).squeeze(-1) + s.propagation_presence_bias
            pj = bernoulli_sample(logit) * alive  # an object absent at t−1 cannot be propagated
            log_q[1] = log_q[1] + alive * bernoulli_log_prob(logit, pj)
            log_q[0] = log_q[0] + pj * (where_log_prob(q_where, w, s.square_glimpses) + q_what.log_prob(z).sum(-1))
            last = torch.cat([z, w], -1) * pj.unsqueeze(-1)
            pres_l.append(pj), where_l.append(w), what_l.append(z)
        return torch.stack(pres_l, 1), torch.stack(where_l, 1), torch.stack(what_l, 1)

    def discover(
        self, img: Tensor, enc: Tensor, t: int, propagated: Tensor, where: Tensor, what: Tensor, log_q: list[Tensor]
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """AIR discovery at frame ``t``: a recurrent attend-infer loop over the slots that
        propagation left free; a 0 ends it.  ``enc [n (n e)]`` is the frame's features;
        ``propagated``, ``where``, ``what`` are propagation's results, kept in the slots it
        filled; ``log_q`` accumulates as in :meth:`propagate`.  Returns presence, where,
        what, discovered ``[n k]`` and the decided flags ``[n k]``."""
        s = self.spec
        n, k, d, h = img.shape[0], s.max_objects, s.what_dim, s.rnn_hidden
        free = 1.0 - propagated
        summary, img_d = self._discovery_input(img, t, propagated, where, what)
        hd, alive, last = img.new_zeros(n, h), img.new_ones(n), img.new_zeros(n, d + 5)
        pres_l, where_l, what_l, disc_l, dec_l = [], [], [], [], []
        for j in range(k):
            f = free[:, j]
            hd = torch.where(f.unsqueeze(-1) > 0, self.disc_rnn(torch.cat([enc, last, summary], -1), hd), hd)
            q_where = gaussian(self.disc_where(hd), std_offset=s.where_std_offset)
            w = tie_scales(q_where.rsample(), s.square_glimpses)
            glimpse = self._glimpse(img_d, w)
            q_what = gaussian(self.disc_what(glimpse), min_std=s.what_min_std)
            z = q_what.rsample()
            logit = self.disc_pres(torch.cat([hd, glimpse], -1)).squeeze(-1) + s.discovery_presence_bias
            decide = f * alive
            pj = bernoulli_sample(logit) * decide
            log_q[1] = log_q[1] + decide * bernoulli_log_prob(logit, pj)
            log_q[0] = log_q[0] + pj * (where_log_prob(q_where, w, s.square_glimpses) + q_what.log_prob(z).sum(-1))
            alive = alive * (1.0 - decide * (1.0 - pj))
            keep = f.unsqueeze(-1) > 0
            last = torch.where(keep, torch.cat([z, w, img.new_ones(n, 1)], -1) * pj.unsqueeze(-1), last)
            pres_l.append(torch.where(f > 0, pj, propagated[:, j]))
            where_l.append(torch.where(keep, w, where[:, j]))
            what_l.append(torch.where(keep, z, what[:, j]))
            disc_l.append(pj), dec_l.append(decide)
        stack = lambda xs: torch.stack(xs, 1)  # noqa: E731
        return stack(pres_l), stack(where_l), stack(what_l), stack(disc_l), stack(dec_l)

    def _discovery_input(
        self, img: Tensor, t: int, propagated: Tensor, where: Tensor, what: Tensor
    ) -> tuple[Tensor, Tensor]:
        """What discovery knows of the propagated objects (a summary ``[n e]``), and the
        frame it reads (with their boxes blanked when ``mask_propagated``)."""
        s = self.spec
        n, k = img.shape[0], s.max_objects
        if s.propagate:
            summary = (self.prop_embed(torch.cat([what, where], -1)) * propagated.unsqueeze(-1)).sum(1)  # [n e]
        else:
            summary = img.new_zeros(n, s.hidden[-1])
        if not (s.mask_propagated and s.propagate and t > 0):
            return summary, img
        ones = img.new_ones(n, k, img.shape[1], s.glimpse_size, s.glimpse_size)
        boxes = place(ones, constrain(where.detach(), s.square_glimpses), tuple(img.shape[-2:]))
        boxes = boxes * propagated[..., None, None, None]
        return summary, img * (1.0 - boxes.amax(1).clamp(0, 1))


#: What the grouper records per frame (stacked over t into ``latents.extras``).
_OUTPUTS = (
    "what",
    "where_raw",
    "presence",
    "propagated",
    "discovered",
    "prop_decided",
    "free",
    "disc_decided",
    "log_q",
    "log_q_discrete",
)
