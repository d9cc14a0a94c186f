"""GENESIS-v2's autoregressive slot prior: p(z_1) = N(0, I), and for k > 1 an LSTM over the
preceding slot samples z_1 … z_{k-1} whose output maps by one linear layer to the mean
(tanh) and std (sigmoid(· + 4) + 1e−4, so it starts near 1) of z_k.  The slot order is the
grouper's (IC-SBP's seed order)."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from ocf.components import BuildContext, ComponentSpec, Prior, SampleRequest
from ocf.fields import Size
from ocf.records import DiagonalGaussian, Latents, PriorTerms, State


class AutoregressivePrior(Prior):
    """GENESIS-v2 autoregressive slot prior: N(0, I) for the first slot, an LSTM over the preceding slots for the
    rest; term ``kl``; sample(n)."""

    name = "genesis.ar_prior"
    needs = ("latents.objects", "latents.posterior")
    provides = ("prior.terms",)

    class Spec(ComponentSpec):
        hidden: Size | None = Field(
            None, description="LSTM hidden size (null: 4·d, which is GENESIS-v2's 256 for d = 64)"
        )
        kl: Literal["montecarlo", "analytic"] = Field(
            "montecarlo",
            description="montecarlo: log q(z) − log p(z | z_<k) at the posterior sample (the GENESIS code); analytic: "
            "KL(q(z_k) || p(z_k | z_<k)) in closed form given the preceding samples (lower variance)",
        )

    def __init__(self, spec: Spec, ctx: BuildContext) -> None:
        super().__init__(spec, ctx)
        self.num_slots = ctx.dim("latents.num_slots")
        self.dim = ctx.dim("latents.objects")
        hidden = spec.hidden or 4 * self.dim
        self.lstm = nn.LSTM(self.dim, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 2 * self.dim)

    def _gaussian(self, out: Tensor) -> DiagonalGaussian:
        mean, raw = self.head(out).chunk(2, dim=-1)
        return DiagonalGaussian(torch.tanh(mean), torch.sigmoid(raw + 4.0) + 1e-4)

    def conditionals(self, z: Tensor) -> DiagonalGaussian:
        """p(z_k | z_<k) for every k given slots ``z [m k d]``: mean and std ``[m k d]``
        (the first slot's are 0 and 1)."""
        m, k, d = z.shape
        first = DiagonalGaussian(z.new_zeros(m, 1, d), z.new_ones(m, 1, d))
        if k == 1:
            return first
        out, _ = self.lstm(z[:, :-1])  # [m k-1 hidden]
        rest = self._gaussian(out)
        return DiagonalGaussian(torch.cat([first.mean, rest.mean], 1), torch.cat([first.std, rest.std], 1))

    def forward(self, state: State) -> PriorTerms:
        """``kl``: summed over slots and dims (and t), averaged over b."""
        lat = state.latents
        z, q = lat.objects, lat.posterior
        lead = z.shape[:-2]  # (b,) or (b, t)
        z2 = z.reshape(-1, *z.shape[-2:])
        q2 = DiagonalGaussian(q.mean.reshape(z2.shape), q.std.reshape(z2.shape))
        p = self.conditionals(z2)
        if self.spec.kl == "montecarlo":
            kl = q2.log_prob(z2) - p.log_prob(z2)
        else:
            kl = q2.kl(p)
        kl = kl.reshape(*lead, -1).flatten(1).sum(1).mean()
        return PriorTerms(
            terms={"kl": kl}, extras={"prior_mean": p.mean.reshape(z.shape), "prior_std": p.std.reshape(z.shape)}
        )

    @torch.no_grad()
    def draw(self, request: SampleRequest) -> Latents:
        """``objects [n k d]``: z_1 ~ N(0, I), then z_k ~ p(z_k | z_<k) one step at a time;
        ``temperature`` scales every draw's noise."""
        n, temperature, generator, _, frames = request.unpack()
        like = dict(device=self.head.weight.device, dtype=self.head.weight.dtype)

        def noise() -> Tensor:
            return temperature * torch.randn(n, 1, self.dim, generator=generator, **like)

        z = [noise()]
        state = None
        for _ in range(1, self.num_slots):
            out, state = self.lstm(z[-1], state)
            p = self._gaussian(out)
            z.append(p.mean + p.std * noise())
        return Latents(objects=torch.cat(z, dim=1))
