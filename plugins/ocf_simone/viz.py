"""Pictures particular to SIMONe: the frame latents of one video over time."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from ocf import viz
from ocf.records import Latents


def plot_frame_latents(
    latents: Latents | Tensor, path: str | Path | None = None, *, item: int = 0, top: int = 6
) -> Image.Image:
    """Line chart of the ``top`` frame-latent dimensions that vary most over time, for
    video ``item``: means of ``latents.frame_posterior`` (or ``latents.frames``, or a
    ``[b t d]`` tensor) against t.  Saved to ``path`` if given; returns the image."""
    if isinstance(latents, Latents):
        post = latents.frame_posterior
        latents = post.mean if post is not None else latents.frames
    if latents is None:
        raise ValueError("plot_frame_latents needs frame latents (a SIMONe grouper provides them)")
    z = latents[item].detach().float().cpu()  # [t d]
    order = (
        z.std(dim=0, unbiased=False).argsort(descending=True)[:top]
        if z.shape[0] > 1
        else torch.arange(min(top, z.shape[1]))
    )
    series = {f"dim {int(i)}": z[:, i].tolist() for i in order}
    return viz.line_plot(series, path, title="frame latents over time (mean)")
