"""Importance-weighted bounds and VIMCO (Mnih & Rezende, 2016) learning signals for
discrete latents.  Generic: every function takes per-particle log-weights ``[p b]``.

The surrogate loss ``−(IWAE + Σ_j stop_grad(signal_j) · log q_j)`` gives the reparameterised
gradient of the bound for continuous latents (through ``log_w``) plus a score-function term
for the discrete choices whose log-probability is ``log q_j``:

- ``vimco`` (the paper): ``signal_j = L̂ − L̂_{−j}``, where ``L̂_{−j}`` is the bound with
  ``log w_j`` replaced by the mean of the other particles' log-weights.  Unbiased for the
  gradient of E[L̂].
- ``reference`` (the SQAIR/AIR reference code): ``signal_j = log w_j − L̂_{−j}``; lower
  variance, but it scores each choice by its own particle's weight rather than by the
  bound (biased for E[L̂], unbiased for an ELBO-like target).
- ``reinforce``: ``signal_j = L̂`` with no baseline (for comparisons).
- ``none``: no score-function term.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

Signal = Literal["reference", "vimco", "reinforce", "none"]


def iwae_bound(log_w: Tensor) -> Tensor:
    """``[b]``: log (1/p Σ_j w_j) over particles ``log_w [p b]``."""
    return torch.logsumexp(log_w, 0) - math.log(log_w.shape[0])


def leave_one_out_bound(log_w: Tensor) -> Tensor:
    """``[p b]``: ``L̂_{−j}``, the bound with particle j's log-weight replaced by the mean
    of the others' (VIMCO's control variate; needs p ≥ 2)."""
    p = log_w.shape[0]
    if p < 2:
        raise ValueError("VIMCO needs at least 2 particles (set the grouper's particles >= 2)")
    others = (log_w.sum(0, keepdim=True) - log_w) / (p - 1)  # [p b]
    # row j of the [p p b] table: every particle's log w, with particle j's replaced
    table = log_w.unsqueeze(0).expand(p, p, -1).clone()
    idx = torch.arange(p, device=log_w.device)
    table[idx, idx] = others
    return torch.logsumexp(table, 1) - math.log(p)


def learning_signal(log_w: Tensor, kind: Signal = "reference") -> Tensor:
    """``[p b]`` learning signal (no gradient) for each particle's discrete choices."""
    log_w = log_w.detach()
    if kind == "none":
        return torch.zeros_like(log_w)
    bound = iwae_bound(log_w).unsqueeze(0)
    if kind == "reinforce":
        return bound.expand_as(log_w)
    baseline = leave_one_out_bound(log_w)
    if kind == "vimco":
        return bound - baseline
    if kind == "reference":
        return log_w - baseline
    raise ValueError(f"unknown learning signal {kind!r}; use reference, vimco, reinforce or none")


def surrogate(log_w: Tensor, log_q_discrete: Tensor, kind: Signal = "reference") -> tuple[Tensor, Tensor]:
    """``(bound [b], score [b])``: minimise ``−(bound + score)``.  ``score`` has value
    ``Σ_j signal_j · log q_j`` and carries the score-function gradient."""
    signal = learning_signal(log_w, kind)
    return iwae_bound(log_w), (signal * log_q_discrete).sum(0)
