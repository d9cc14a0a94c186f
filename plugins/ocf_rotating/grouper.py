"""Evaluation of Rotating Features: objects are clusters of output orientations.

Per pixel: normalise the decoder's output vectors ``[r c]`` to unit length, zero those whose
magnitude is at most ``threshold`` (they fall into the background, near the origin),
average the remaining unit vectors over channels (``Σ_c w_c·ẑ_c / (Σ_c w_c + ε)``), then
cluster the ``[h·w, r]`` points of each image: k-means with a known number of clusters
(objects + 1), batched over images and restarts in torch, or agglomerative clustering
(scipy) with a distance threshold when the count is unknown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from einops import rearrange
from pydantic import Field, NonNegativeFloat, PositiveFloat
from torch import Tensor

from ocf.components import BuildContext, ComponentSpec, Grouper
from ocf.fields import Repeats, Seed, Size
from ocf.records import Latents, State
from ocf_rotating.layers import EPS, magnitude


def orientations(z: Tensor, threshold: float = 0.1, eps: float = EPS) -> tuple[Tensor, Tensor]:
    """Rotating outputs ``[B r c h w]`` → per-pixel orientation ``[B r h w]`` (the masked
    unit vectors averaged over channels; zero where every channel is below ``threshold``)
    and the magnitudes ``[B c h w]``."""
    mag = magnitude(z, 1, eps)  # [B c h w]
    keep = (mag > threshold).to(z.dtype)  # [B c h w]
    unit = z / mag.unsqueeze(1)
    return (unit * keep.unsqueeze(1)).sum(2) / (keep.sum(1).unsqueeze(1) + eps), mag


def _sq_dist(xt: Tensor, xx: Tensor, c: Tensor) -> Tensor:
    """Squared distances ``[B k n]`` between centres ``c [B k d]`` and points given as
    ``xt [B d n]`` with squared norms ``xx [B n]`` (n innermost: fast on CPU)."""
    return (xx.unsqueeze(1) - 2 * torch.bmm(c, xt) + c.square().sum(-1, keepdim=True)).clamp_min_(0)


def _nearest(dist: Tensor) -> tuple[Tensor, Tensor]:
    """Minimum and its first index over the k axis of ``[B k n]`` (a loop over the few
    centres beats a reduction over a non-innermost axis on CPU)."""
    best, idx = dist[:, 0].clone(), torch.zeros(dist.shape[0], dist.shape[2], dtype=torch.long, device=dist.device)
    for j in range(1, dist.shape[1]):
        closer = dist[:, j] < best
        best = torch.where(closer, dist[:, j], best)
        idx.masked_fill_(closer, j)
    return best, idx


def _kmeanspp(pts: Tensor, xt: Tensor, xx: Tensor, K: int, generator: torch.Generator | None) -> Tensor:
    """k-means++ seeding of ``K`` centres ``[N K d]`` for each of the ``N`` point sets ``pts [N n d]``:
    each next centre drawn with probability ∝ squared distance to the nearest chosen one."""
    N, n = pts.shape[:2]
    rows = torch.arange(N, device=pts.device)
    first = torch.randint(0, n, (N,), generator=generator, device=pts.device)
    centres = pts[rows, first].unsqueeze(1)  # [N 1 d]
    nearest = _sq_dist(xt, xx, centres)[:, 0]  # [N n]
    for _ in range(1, K):
        pick = torch.multinomial(nearest + 1e-12, 1, generator=generator).squeeze(1)  # identical points: uniform
        new = pts[rows, pick].unsqueeze(1)
        centres = torch.cat([centres, new], dim=1)
        nearest = torch.minimum(nearest, _sq_dist(xt, xx, new)[:, 0])
    return centres


def kmeans(
    x: Tensor,
    k: Tensor | int,
    *,
    n_init: int = 10,
    iters: int = 50,
    tol: float = 1e-4,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Batched k-means (k-means++ seeding, Lloyd iterations, ``n_init`` restarts kept in the
    batch axis; the best inertia per item wins).

    x: points ``[B n d]``; k: clusters per item (int or long ``[B]``; items with fewer than
    ``max k`` clusters never use the extra centres).  Stops when no assignment changes or
    every centre moved less than scikit-learn's tolerance (``tol`` times the mean
    per-dimension variance of the item's points, summed over centres).  Returns labels
    ``[B n]`` long, centres ``[B K d]`` and inertia ``[B]`` (sum of squared distances to
    the assigned centre).  No per-item Python loop: every item and restart is one batch.
    """
    B, n, d = x.shape
    dev = x.device
    ks = torch.as_tensor(k, device=dev).long().expand(B).clamp(1, n)
    K, R = int(ks.max()), n_init  # R restarts per item
    pts = x.repeat_interleave(R, dim=0)  # [(B R) n d]
    BR = B * R
    xt, xx = pts.transpose(1, 2).contiguous(), pts.square().sum(-1)  # [(B R) d n], [(B R) n]
    unused = torch.arange(K, device=dev).unsqueeze(0) >= ks.repeat_interleave(R).unsqueeze(1)  # [(B R) K]
    rows = torch.arange(BR, device=dev)
    centres = _kmeanspp(pts, xt, xx, K, generator)  # [(B R) K d]
    limit = tol * x.var(dim=1, unbiased=False).mean(dim=1).repeat_interleave(R)  # [(B R)]
    ids = torch.arange(K, device=dev).view(1, K, 1)
    active = rows  # restarts still moving; converged ones drop out of the batch
    labels = torch.full((BR, n), -1, dtype=torch.long, device=dev)
    for _ in range(iters):
        c, xt_a = centres[active], xt[active]
        # the assignment needs ‖c‖² − 2 c·x only (‖x‖² is the same for every centre)
        score = c.square().sum(-1, keepdim=True) - 2 * torch.bmm(c, xt_a)  # [A K n]
        _, new_labels = _nearest(score.masked_fill_(unused[active].unsqueeze(2), float("inf")))
        onehot = (new_labels.unsqueeze(1) == ids).to(x.dtype)  # [A K n]
        counts = onehot.sum(2, keepdim=True)  # [A K 1]
        moved = torch.where(counts > 0, torch.bmm(onehot, pts[active]) / counts.clamp_min(1), c)  # empty cluster: keep
        shift = (moved - c).square().sum(dim=(1, 2))  # [A]
        same = (new_labels == labels[active]).all(dim=1)
        centres[active] = moved
        labels[active] = new_labels
        active = active[~(same | (shift <= limit[active]))]
        if len(active) == 0:
            break
    best_d, labels = _nearest(_sq_dist(xt, xx, centres).masked_fill_(unused.unsqueeze(2), float("inf")))
    inertia = best_d.sum(1).view(B, R)
    pick = inertia.argmin(dim=1)  # best restart per item
    sel = torch.arange(B, device=dev) * R + pick
    return labels[sel], centres[sel], inertia[torch.arange(B, device=dev), pick]


def agglomerative(
    x: Tensor, distance_threshold: float, linkage: str = "average", max_clusters: int | None = None
) -> Tensor:
    """Per-item hierarchical clustering (scipy) of points ``[B n d]`` → labels ``[B n]``
    (0-based): clusters merge while their linkage distance is below ``distance_threshold``;
    ``max_clusters`` caps the count instead when given and reached."""
    from scipy.cluster.hierarchy import fcluster
    from scipy.cluster.hierarchy import linkage as scipy_linkage

    pts = x.detach().double().cpu().numpy()
    out = np.zeros(pts.shape[:2], dtype=np.int64)
    for i, p in enumerate(pts):  # scipy has no batched linkage; k-means is the batched path
        tree = scipy_linkage(p, method=linkage, metric="euclidean")
        lab = fcluster(tree, t=distance_threshold, criterion="distance")
        if max_clusters is not None and lab.max() > max_clusters:
            lab = fcluster(tree, t=max_clusters, criterion="maxclust")
        out[i] = lab - 1
    return torch.from_numpy(out).to(x.device)


class RotatingCluster(Grouper):
    """Rotating Features evaluation: mask magnitudes ≤ threshold, average unit orientations over channels, cluster
    per image (batched k-means, or agglomerative) → masks."""

    name = "rotating.cluster"
    eval_only = True
    needs = ("rendering.extras.rotating",)
    provides = ("latents.masks",)
    example_state = "ocf_rotating.fixtures:grouper_state"  # conformance fixture

    class Spec(ComponentSpec):
        threshold: NonNegativeFloat = Field(
            0.1,
            description="output features with magnitude at most this are background (zero vectors) before clustering "
            "(paper 0.1)",
        )
        method: Literal["kmeans", "agglomerative"] = Field(
            "kmeans",
            description="kmeans: a known number of clusters; agglomerative: the count follows from distance_threshold",
        )
        num_clusters: Size | None = Field(
            None,
            description="k-means clusters per image (null: objects + 1 from batch.extras.counts, i.e. the objects and "
            "the background)",
        )
        n_init: Repeats = Field(
            10, description="k-means restarts per image (paper: 10, as scikit-learn's KMeans); the best inertia wins"
        )
        iters: Repeats = Field(
            50,
            description="at most this many Lloyd iterations (scikit-learn: 300; converged trained outputs stop after "
            "10-40)",
        )
        distance_threshold: PositiveFloat = Field(
            1.0,
            description="agglomerative: clusters merge while their linkage distance is below this (default tuned on "
            "4Shapes validation images with ward linkage; for average/complete/single linkage it is a "
            "distance between orientation vectors, at most 2)",
        )
        linkage: Literal["average", "complete", "single", "ward"] = Field(
            "ward", description="agglomerative linkage criterion (scipy)"
        )
        max_clusters: Size | None = Field(None, description="agglomerative: at most this many clusters (null: no cap)")
        seed: Seed = Field(0, description="seed of the k-means initialisation (evaluation is deterministic)")

    def __init__(self, spec: Spec, ctx: BuildContext) -> None:
        super().__init__(spec, ctx)

    def forward(self, state: State) -> Latents:
        z = state.rendering.extras["rotating"]  # [b t r c h w]
        b, t, r, c, h, w = z.shape
        with torch.no_grad():
            orient, mag = orientations(rearrange(z.detach(), "b t r c h w -> (b t) r c h w"), self.spec.threshold)
            points = rearrange(orient, "B r h w -> B (h w) r")
            if self.spec.method == "kmeans":
                k = self._clusters(state, b, t)
                g = torch.Generator(device=points.device).manual_seed(self.spec.seed)
                labels, _, _ = kmeans(points, k, n_init=self.spec.n_init, iters=self.spec.iters, generator=g)
                K = int(k.max()) if isinstance(k, Tensor) else k
            else:
                labels = agglomerative(points, self.spec.distance_threshold, self.spec.linkage, self.spec.max_clusters)
                K = int(labels.max()) + 1
            masks = torch.zeros(b * t, K, h * w, device=z.device, dtype=z.dtype).scatter_(1, labels.unsqueeze(1), 1.0)
        return Latents(
            masks=rearrange(masks, "(b t) k (h w) -> b t k h w", b=b, h=h),
            extras={
                "orientation": rearrange(orient, "(b t) r h w -> b t r h w", b=b),
                "magnitude": rearrange(mag, "(b t) c h w -> b t c h w", b=b),
            },
        )

    def _clusters(self, state: State, b: int, t: int) -> Tensor | int:
        if self.spec.num_clusters is not None:
            return self.spec.num_clusters
        counts = state.batch.extras.get("counts")
        if counts is None:
            raise ValueError(
                "grouper rotating.cluster: num_clusters is null (objects + 1), but the batch has no extras['counts']; "
                "set num_clusters or use method: agglomerative"
            )
        return counts.reshape(b, -1)[:, :t].expand(b, t).reshape(-1).long() + 1  # [(b t)]

    def pictures(self, state: State, out_dir: Path) -> list[Path]:
        """``ocf viz``: input, recon, magnitudes, orientations as colours, clusters, truth."""
        from ocf_rotating.viz import rotating_figure

        path = Path(out_dir) / "rotating.png"
        rotating_figure(state, path)
        return [path]
