"""Pieces the SQAIR components share: the latent parameterisation and Gaussian heads.

Particles.  The grouper repeats the batch ``p`` times (particle-major: row ``i + j·b`` is
item ``i``, particle ``j``) and keeps every particle's latents in ``latents.extras``
(keys below, leading axis ``(p b)``); ``latents.objects / presence / where`` are particle
0's, shaped ``[b t k ...]`` like any other grouper's, for metrics and pictures.  The prior,
decoder and objective read the ``(p b)`` tensors, so nothing in the core knows about
particles.

``latents.extras`` (N = p·b):

- ``num_particles``: int p;
- ``what [N t k d]``, ``where_raw [N t k 4]`` (unconstrained Gaussian samples),
  ``where [N t k 4]`` (box ``(sx, sy, tx, ty)``: scale = sigmoid, shift = tanh, see
  :mod:`ocf_common.glimpse`), ``presence [N t k]`` in {0, 1};
- ``propagated [N t k]`` present through propagation, ``discovered [N t k]`` present
  through discovery (a slot is one or the other), ``prop_decided [N t k]`` the object was
  present at t−1 so propagation decided its presence, ``free [N t k]`` the slot was empty
  after propagation (a discovery candidate), ``disc_decided [N t k]`` discovery decided
  this slot's presence (free and discovery still running);
- ``log_q [N t]``: log q of every latent of the frame; ``log_q_discrete [N t]``: the part
  from the presence choices (what VIMCO's learning signal multiplies).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ocf.records import DiagonalGaussian
from ocf_common.layers import mlp


def net(dims: list[int]) -> nn.Sequential:
    """An MLP with ELU between layers (none after the last)."""
    return mlp(dims, nn.ELU)


def constrain(where_raw: Tensor, square: bool = False) -> Tensor:
    """Unconstrained ``[... 4]`` → box ``(sx, sy, tx, ty)``: scale sigmoid, shift tanh.
    ``square``: one scale for both axes, ``sx = sy = sigmoid(raw[0])`` (AIR's
    z_where = (s, x, y)); ``raw[1]`` is then unused."""
    scale = where_raw[..., :1].expand(*where_raw.shape[:-1], 2) if square else where_raw[..., :2]
    return torch.cat([torch.sigmoid(scale), torch.tanh(where_raw[..., 2:])], -1)


def tie_scales(where_raw: Tensor, square: bool) -> Tensor:
    """With ``square``, copy raw[0] into the unused raw[1] so every consumer of the raw
    box (the recurrent priors and RNN inputs) sees one consistent scale."""
    return torch.cat([where_raw[..., :1], where_raw[..., :1], where_raw[..., 2:]], -1) if square else where_raw


def where_log_prob(dist: DiagonalGaussian, where_raw: Tensor, square: bool = False) -> Tensor:
    """``log N(where_raw)`` summed over the box dimensions in use: all four, or with
    ``square`` the three of (s, x, y) (the unused second scale has no density)."""
    lp = dist.log_prob(where_raw)
    return (lp[..., [0, 2, 3]] if square else lp).sum(-1)


def gaussian(
    out: Tensor, *, std_offset: float = 0.0, min_std: float = 1e-4, mean_offset: Tensor | None = None
) -> DiagonalGaussian:
    """``out [... 2m]`` → N(mean (+ mean_offset), softplus(raw + std_offset) + min_std)."""
    mean, raw = out.chunk(2, -1)
    if mean_offset is not None:
        mean = mean + mean_offset
    return DiagonalGaussian(mean, F.softplus(raw + std_offset) + min_std)


def bernoulli_sample(logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """``{0, 1}`` samples of Bernoulli(sigmoid(logits)), no gradient."""
    u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
    return (u < torch.sigmoid(logits.detach())).to(logits.dtype)
