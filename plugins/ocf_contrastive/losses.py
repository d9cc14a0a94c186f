"""The family's losses as plain functions on embeddings ``[m e]`` (no State, no modules).
SimCLR's NT-Xent and InfoNCE are shared with SetCon and live in :mod:`ocf_setcon.losses`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ocf_setcon.losses import info_nce, nt_xent

__all__ = ["nt_xent", "moco_loss", "negative_cosine", "distillation_loss", "entropy"]


def moco_loss(queries: Tensor, keys: Tensor, queue: Tensor, temperature: float) -> Tensor:
    """MoCo's InfoNCE: query i's positive is key i, its negatives every other key of the batch
    and every queued key ``[s e]``; cosine similarity over τ.  No gradient reaches keys or queue."""
    candidates = torch.cat([keys.detach(), queue.detach()])
    positive = torch.arange(len(queries), device=queries.device)
    loss, _ = info_nce(queries, candidates, positive, temperature)
    return loss


def negative_cosine(p: Tensor, z: Tensor) -> Tensor:
    """``−cos(p, stopgrad(z))`` averaged over rows: the target ``z`` gets no gradient."""
    return -(F.normalize(p, dim=1) * F.normalize(z.detach(), dim=1)).sum(dim=1).mean()


def distillation_loss(student_logits: Tensor, teacher_probs: Tensor, student_temperature: float) -> Tensor:
    """DINO's cross-entropy ``−Σ p_teacher · log softmax(s / τ_s)``, mean over rows."""
    return -(teacher_probs * F.log_softmax(student_logits / student_temperature, dim=1)).sum(dim=1).mean()


def entropy(p: Tensor) -> Tensor:
    """Mean entropy (nats) of rows of probabilities ``[m e]``."""
    return -(p * p.clamp_min(1e-12).log()).sum(dim=1).mean()
