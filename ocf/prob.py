"""Probabilistic helpers shared by every plugin: the diagonal Gaussian (with its analytic
KL), Bernoulli log-probabilities and the numerically safe mixture likelihood.

Everything here is elementwise (no reduction) unless said otherwise, so priors and
objectives choose their own reductions.  Shapes use the glossary in :mod:`ocf.records`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "DiagonalGaussian",
    "gaussian_from_params",
    "gaussian_log_likelihood",
    "bernoulli_log_prob",
    "mixture_log_likelihood",
]

LOG_2PI = math.log(2 * math.pi)
MAX_LOG_STD = 3.0  # exp(3) ≈ 20: as SIMONe's clamp(log_scale, -10, 3)


@dataclass
class DiagonalGaussian:
    """A diagonal Gaussian ``N(mean, std**2)``; ``mean`` and ``std`` share any shape."""

    mean: Tensor
    std: Tensor

    def rsample(self, generator: torch.Generator | None = None) -> Tensor:
        eps = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * eps

    def log_prob(self, x: Tensor) -> Tensor:
        """Elementwise log-density (no reduction)."""
        var = self.std**2
        return -0.5 * ((x - self.mean) ** 2 / var + torch.log(2 * torch.pi * var))

    def kl(self, other: DiagonalGaussian | None = None) -> Tensor:
        """Elementwise ``KL(self || other)`` (no reduction); ``other = None`` is ``N(0, 1)``."""
        if other is None:
            return 0.5 * (self.std**2 + self.mean**2 - 1.0) - torch.log(self.std)
        var_ratio = (self.std / other.std) ** 2
        t1 = ((self.mean - other.mean) / other.std) ** 2
        return 0.5 * (var_ratio + t1 - 1.0 - torch.log(var_ratio))

    def kl_to_standard_normal(self) -> Tensor:
        """Deprecated spelling of ``kl()``."""
        _deprecated("DiagonalGaussian.kl_to_standard_normal()", "q.kl()")
        return self.kl()


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
    """Deprecated spelling of ``q.kl(p)``."""
    _deprecated("ocf.prob.kl_normal_normal(q, p)", "q.kl(p)")
    return q.kl(p)


def _deprecated(old: str, new: str) -> None:
    warnings.warn(
        f"{old} is deprecated and will be removed in the next release; write {new}", DeprecationWarning, stacklevel=3
    )


def bernoulli_log_prob(logits: Tensor, x: Tensor) -> Tensor:
    """Elementwise ``log Bernoulli(x; sigmoid(logits))``; ``x`` in [0, 1] (soft targets allowed)."""
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none")


def mixture_log_likelihood(
    x: Tensor, rgb: Tensor, mask_logits: Tensor, sigma: float | Tensor, *, per_channel: bool = True
) -> Tensor:
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
