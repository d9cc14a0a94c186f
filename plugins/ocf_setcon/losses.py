"""Contrastive losses as plain functions on embeddings (no State, no modules), shared by
SetCon's objectives, the contrastive family and the retrieval metric."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def similarity(a: Tensor, b: Tensor, kind: str = "cosine") -> Tensor:
    """``a [m e]``, ``b [n e]`` → ``[m n]`` cosine similarity (or dot product)."""
    if kind == "cosine":
        a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    return a @ b.transpose(0, 1)


def info_nce(
    anchors: Tensor,
    candidates: Tensor,
    positive: Tensor,
    temperature: float,
    *,
    kind: str = "cosine",
    exclude: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """InfoNCE: mean over anchors of ``−log softmax_j(sim(a_i, c_j)/τ)[positive_i]``.

    anchors ``[m e]``, candidates ``[n e]``, positive ``[m]`` long (the index of each
    anchor's positive among the candidates; every other candidate is a negative).
    exclude: bool ``[m n]``, candidates to leave out of an anchor's softmax (never its
    positive).  Returns the loss and the logits ``[m n]``.
    """
    logits = similarity(anchors, candidates, kind) / temperature
    if exclude is not None:
        logits = logits.masked_fill(exclude, float("-inf"))
    return F.cross_entropy(logits, positive), logits


def nt_xent(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    """SimCLR's NT-Xent over 2N views: ``z1``, ``z2`` ``[N e]`` are two views of N items;
    each of the 2N embeddings has its other view as positive and the other 2N − 2 as
    negatives (cosine similarity / τ); mean over the 2N."""
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=-1)  # [2N e]
    logits = z @ z.T / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))  # not itself
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, target)


def top1_hits(anchors: Tensor, candidates: Tensor, positive: Tensor, kind: str = "cosine") -> Tensor:
    """Bool ``[m]``: the anchor's most similar candidate is its positive."""
    return similarity(anchors, candidates, kind).max(dim=1).indices == positive


def set_pairs(set_predicted: Tensor, set_actual: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """SetCon's anchors and candidates: ``set_predicted [b t' e]`` (predictions of the last
    t' frames), ``set_actual [b t e]`` → anchors ``[b·t' e]``, candidates ``[b·t e]`` (every
    (video, time) of the batch) and the index of each anchor's positive (same video, same
    time)."""
    b, tp, _ = set_predicted.shape
    t = set_actual.shape[1]
    if tp > t:
        raise ValueError(f"{tp} predicted sets but only {t} actual ones")
    video = torch.arange(b, device=set_actual.device)[:, None]
    time = torch.arange(t - tp, t, device=set_actual.device)[None, :]
    positive = (video * t + time).reshape(-1)  # [b t']
    return set_predicted.reshape(b * tp, -1), set_actual.reshape(b * t, -1), positive
