"""SQAIR's inference network (AIR when propagation is off): per frame, propagate the
previous objects, then discover new ones."""

from __future__ import annotations

import torch
from pydantic import Field, PositiveInt
from torch import Tensor, nn

from ocf.components import BuildContext, ComponentSpec, Grouper
from ocf.prob import bernoulli_log_prob
from ocf.records import Batch, Features, Latents, State
from ocf_common.glimpse import extract, place
from ocf_sqair.common import bernoulli_sample, constrain, gaussian, net, tie_scales, where_log_prob


class SqairGrouper(Grouper):
    """SQAIR inference: per frame, propagation (temporal GRU per object, relation RNN across objects, location first, proposal glimpse) then AIR discovery (recurrent attend-infer loop); presence Bernoulli, where and what Gaussians, p particles."""

    name = "sqair.grouper"
    needs = ("batch.frames", "features.tokens")
    provides = ("latents.objects", "latents.presence", "latents.where", "latents.extras")

    class Spec(ComponentSpec):
        max_objects: PositiveInt = Field(3, description="k: most objects present at once (slots)")
        what_dim: PositiveInt = Field(50, description="d: size of z_what")
        glimpse_size: PositiveInt = Field(20, description="side of the square glimpse the encoders read (paper 20)")
        hidden: list[PositiveInt] = Field([256, 256], min_length=1, description="hidden widths of every MLP (ELU)")
        rnn_hidden: PositiveInt = Field(256, description="state size of the discovery RNN, temporal GRU and relation RNN")
        propagate: bool = Field(True, description="SQAIR: propagate objects from frame to frame; false: AIR, every frame explained by discovery alone")
        particles: PositiveInt = Field(5, description="importance samples per input in training (the batch is repeated this many times)")
        eval_particles: PositiveInt | None = Field(None, description="importance samples in evaluation (null: as particles)")
        discovery_presence_bias: float = Field(1.0, description="added to the discovery presence logit (reference +1)")
        propagation_presence_bias: float = Field(5.0, description="added to the propagation presence logit (reference +5)")
        where_std_offset: float = Field(-3.0, description="where std = softplus(raw + offset) + 1e-4 (reference −3)")
        what_min_std: float = Field(1e-2, gt=0, description="what std = softplus(raw) + this (reference 1e-2)")
        mask_propagated: bool = Field(False, description="discovery glimpses read the frame with the propagated objects' boxes blanked out (explicit explaining-away; off in the paper, where discovery sees the propagated objects only through its conditioning)")
        where_scale_bias: float = Field(0.0, description="initial bias of the discovered scale logits (scale = sigmoid(logit)); negative starts with smaller glimpses")
        square_glimpses: bool = Field(False, description="one scale for both axes: z_where = (s, x, y) as in AIR (Eslami et al.); false: separate x and y scales as in SQAIR")

    example = {"max_objects": 2, "what_dim": 4, "glimpse_size": 4, "hidden": [8], "rnn_hidden": 8, "particles": 2}

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

    @classmethod
    def example_state(cls, ctx: BuildContext, batch_size: int) -> State:
        """Two frames (so propagation runs) and one-token features of 8 channels."""
        g = torch.Generator().manual_seed(0)
        h, w = ctx.resolution
        ctx.dims.update({"features.tokens": 8, "features.grid": (1, 1)})
        frames = torch.rand(batch_size, 2, ctx.channels, h, w, generator=g)
        tokens = torch.randn(batch_size, 2, 1, 8, generator=g, requires_grad=True)
        return State(Batch(frames), features=Features(tokens=tokens, grid=(1, 1)))

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
        pres_prev, flag_prev = zeros(n, k), zeros(n, k)  # present at t−1; present at t−1 through propagation
        where_prev, what_prev, h_temp = zeros(n, k, 4), zeros(n, k, d), zeros(n, k, h)
        out: dict[str, list[Tensor]] = {key: [] for key in ("what", "where_raw", "presence", "propagated", "discovered", "prop_decided", "free", "disc_decided", "log_q", "log_q_discrete")}
        for t in range(t_len):
            img = x[:, t]
            log_q_c, log_q_d = zeros(n), zeros(n)
            pres, where, what = zeros(n, k), zeros(n, k, 4), zeros(n, k, d)
            prop_decided = zeros(n, k)
            if s.propagate and t > 0:
                # temporal GRU per object: hidden kept for propagated objects, fresh for new ones
                h_in = torch.cat([what_prev, where_prev], -1)  # [n k d+4]
                h_temp = self.temporal(h_in.flatten(0, 1), (h_temp * flag_prev.unsqueeze(-1)).flatten(0, 1)).view(n, k, h)
                rel, last = zeros(n, h), zeros(n, d + 4)
                pres_l, where_l, what_l = [], [], []
                for j in range(k):  # relation RNN across objects, in slot order
                    alive = pres_prev[:, j]
                    hj = h_temp[:, j]
                    rel = self.relation(torch.cat([hj, what_prev[:, j], where_prev[:, j], last], -1), rel)
                    ctx_j = torch.cat([hj, rel], -1)
                    # location first: a proposal glimpse where the object is expected
                    proposal = where_prev[:, j] + self.proposal(torch.cat([ctx_j, where_prev[:, j]], -1))
                    q_where = gaussian(self.prop_where(torch.cat([ctx_j, self._glimpse(img, proposal)], -1)), std_offset=s.where_std_offset, mean_offset=where_prev[:, j])
                    w = tie_scales(q_where.rsample(), s.square_glimpses)
                    glimpse = self._glimpse(img, w)
                    q_what = gaussian(self.prop_what(torch.cat([ctx_j, glimpse, what_prev[:, j]], -1)), min_std=s.what_min_std, mean_offset=what_prev[:, j])
                    z = q_what.rsample()
                    logit = self.prop_pres(torch.cat([ctx_j, glimpse, z], -1)).squeeze(-1) + s.propagation_presence_bias
                    pj = bernoulli_sample(logit) * alive  # an object absent at t−1 cannot be propagated
                    log_q_d = log_q_d + alive * bernoulli_log_prob(logit, pj)
                    log_q_c = log_q_c + pj * (where_log_prob(q_where, w, s.square_glimpses) + q_what.log_prob(z).sum(-1))
                    last = torch.cat([z, w], -1) * pj.unsqueeze(-1)
                    pres_l.append(pj), where_l.append(w), what_l.append(z)
                pres, where, what = torch.stack(pres_l, 1), torch.stack(where_l, 1), torch.stack(what_l, 1)
                prop_decided = pres_prev
            propagated = pres
            # discovery (AIR): a recurrent attend-infer loop over the free slots; a 0 ends it
            free = 1.0 - propagated
            if s.propagate:  # what discovery knows of the propagated objects
                summary = (self.prop_embed(torch.cat([what, where], -1)) * propagated.unsqueeze(-1)).sum(1)  # [n e]
            else:
                summary = zeros(n, s.hidden[-1])
            img_d = img
            if s.mask_propagated and s.propagate and t > 0:  # blank what propagation already explains
                ones = img.new_ones(n, k, img.shape[1], s.glimpse_size, s.glimpse_size)
                boxes = place(ones, constrain(where.detach(), s.square_glimpses), tuple(img.shape[-2:])) * propagated[..., None, None, None]
                img_d = img * (1.0 - boxes.amax(1).clamp(0, 1))
            hd, alive, last = zeros(n, h), x.new_ones(n), zeros(n, d + 5)
            pres_l, where_l, what_l, disc_l, dec_l = [], [], [], [], []
            for j in range(k):
                f = free[:, j]
                hd = torch.where(f.unsqueeze(-1) > 0, self.disc_rnn(torch.cat([enc[:, t], last, summary], -1), hd), hd)
                q_where = gaussian(self.disc_where(hd), std_offset=s.where_std_offset)
                w = tie_scales(q_where.rsample(), s.square_glimpses)
                glimpse = self._glimpse(img_d, w)
                q_what = gaussian(self.disc_what(glimpse), min_std=s.what_min_std)
                z = q_what.rsample()
                logit = self.disc_pres(torch.cat([hd, glimpse], -1)).squeeze(-1) + s.discovery_presence_bias
                decide = f * alive
                pj = bernoulli_sample(logit) * decide
                log_q_d = log_q_d + decide * bernoulli_log_prob(logit, pj)
                log_q_c = log_q_c + pj * (where_log_prob(q_where, w, s.square_glimpses) + q_what.log_prob(z).sum(-1))
                alive = alive * (1.0 - decide * (1.0 - pj))
                keep = f.unsqueeze(-1) > 0
                last = torch.where(keep, torch.cat([z, w, x.new_ones(n, 1)], -1) * pj.unsqueeze(-1), last)
                pres_l.append(torch.where(f > 0, pj, propagated[:, j]))
                where_l.append(torch.where(keep, w, where[:, j]))
                what_l.append(torch.where(keep, z, what[:, j]))
                disc_l.append(pj), dec_l.append(decide)
            pres, where, what = torch.stack(pres_l, 1), torch.stack(where_l, 1), torch.stack(what_l, 1)
            discovered = torch.stack(disc_l, 1)
            for key, v in (("what", what), ("where_raw", where), ("presence", pres), ("propagated", propagated), ("discovered", discovered),
                           ("prop_decided", prop_decided), ("free", free), ("disc_decided", torch.stack(dec_l, 1)),
                           ("log_q", log_q_c + log_q_d), ("log_q_discrete", log_q_d)):
                out[key].append(v)
            pres_prev, flag_prev, where_prev, what_prev = pres, propagated, where, what
        extras: dict = {key: torch.stack(v, 1) for key, v in out.items()}  # [(p b) t ...]
        extras["where"] = constrain(extras["where_raw"], self.spec.square_glimpses)
        extras["num_particles"] = p
        return Latents(objects=extras["what"][:b], presence=extras["presence"][:b], where=extras["where"][:b], extras=extras)
