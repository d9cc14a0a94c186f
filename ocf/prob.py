"""Probabilistic helpers shared by every plugin: Gaussians, Bernoulli / binary concrete,
analytic KL and the numerically safe mixture likelihood.

Everything here is elementwise (no reduction) unless said otherwise, so priors and
objectives choose their own reductions.  Shapes use the glossary in :mod:`ocf.records`.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ocf.records import DiagonalGaussian

__all__ = [
    "DiagonalGaussian",
    "gaussian_from_params",
    "gaussian_log_likelihood",
    "kl_normal_normal",
    "bernoulli_log_prob",
    "relaxed_bernoulli_sample",
    "relaxed_bernoulli_log_prob",
    "mixture_log_likelihood",
]

LOG_2PI = math.log(2 * math.pi)
MAX_LOG_STD = 3.0  # exp(3) ≈ 20: as SIMONe's clamp(log_scale, -10, 3)


def gaussian_from_params(
    mean: Tensor,
    raw_scale: Tensor,
    kind: Literal["exp_clamp", "softplus"] = "exp_clamp",
    min_std: float = 1e-4,
) -> DiagonalGaussian:
    """A :class:`DiagonalGaussian` from a network's unconstrained scale output.

    ``exp_clamp``: ``std = exp(clamp(raw_scale, log(min_std), 3))`` (raw_scale is a log-std).
    ``softplus``: ``std = softplus(raw_scale) + min_std``.
    """
    if kind == "exp_clamp":
        std = raw_scale.clamp(math.log(min_std), MAX_LOG_STD).exp()
    elif kind == "softplus":
        std = F.softplus(raw_scale) + min_std
    else:
        raise ValueError(f"unknown scale kind {kind!r}; use 'exp_clamp' or 'softplus'")
    return DiagonalGaussian(mean, std)


def gaussian_log_likelihood(x: Tensor, mean: Tensor, sigma: float | Tensor) -> Tensor:
    """Elementwise ``log N(x; mean, sigma²)``."""
    sigma = torch.as_tensor(sigma, dtype=mean.dtype, device=mean.device)
    return -0.5 * ((x - mean) / sigma) ** 2 - sigma.log() - 0.5 * LOG_2PI


def kl_normal_normal(q: DiagonalGaussian, p: DiagonalGaussian | None = None) -> Tensor:
    """Elementwise ``KL(q || p)`` of diagonal Gaussians; ``p = None`` is ``N(0, 1)``."""
    return q.kl_to_standard_normal() if p is None else q.kl(p)


def bernoulli_log_prob(logits: Tensor, x: Tensor) -> Tensor:
    """Elementwise ``log Bernoulli(x; sigmoid(logits))``; ``x`` in [0, 1] (soft targets allowed)."""
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none")


def relaxed_bernoulli_sample(
    logits: Tensor,
    temperature: float,
    *,
    hard: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """A reparameterised binary concrete sample in (0, 1) (Maddison et al., 2017):
    ``sigmoid((logits + log u - log(1 - u)) / temperature)``, ``u ~ U(0, 1)``.
    ``hard``: round to {0, 1} in the forward pass, straight-through gradient."""
    u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
    u = u.clamp(1e-6, 1 - 1e-6)
    y = torch.sigmoid((logits + u.log() - (-u).log1p()) / temperature)
    if hard:
        y = y + ((y > 0.5).to(y.dtype) - y).detach()
    return y


def relaxed_bernoulli_log_prob(y: Tensor, logits: Tensor, temperature: float, eps: float = 1e-6) -> Tensor:
    """Elementwise log-density of a binary concrete sample ``y`` in (0, 1)."""
    y = y.clamp(eps, 1 - eps)
    log_y, log_1my = y.log(), (-y).log1p()
    t = temperature
    return (
        math.log(t) + logits - (t + 1) * (log_y + log_1my)
        - 2 * torch.logaddexp(logits - t * log_y, -t * log_1my)
    )


def mixture_log_likelihood(x: Tensor, rgb: Tensor, mask_logits: Tensor, sigma: float | Tensor, *, per_channel: bool = True) -> Tensor:
    """Per-pixel log-likelihood of a spatial mixture of Gaussians.

    x: ``[b t c h w]``; rgb: ``[b t k c h w]`` component means; mask_logits:
    ``[b t k h w]`` (softmax over k gives the mixing weights); any leading axes work as
    long as k sits at ``rgb[..., k, c, h, w]``.  Returns ``[b t c h w]``, each channel its
    own mixture: ``log Σ_k softmax(mask)_k · N(x_c; rgb_kc, σ²)``; with
    ``per_channel=False`` ``[b t 1 h w]``, one mixture over whole pixels:
    ``log Σ_k softmax(mask)_k · Π_c N(x_c; rgb_kc, σ²)``.  Computed as a logsumexp over k
    so it stays finite when every component is far from x (the exp/log form underflows).
    """
    log_weights = mask_logits.log_softmax(dim=-3).unsqueeze(-3)  # [b t k 1 h w]
    log_n = gaussian_log_likelihood(x.unsqueeze(-4), rgb, sigma)  # [b t k c h w]
    if not per_channel:
        log_n = log_n.sum(dim=-3, keepdim=True)  # over c: [b t k 1 h w]
    return torch.logsumexp(log_weights + log_n, dim=-4)
