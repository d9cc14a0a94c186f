"""Pictures particular to Rotating Features: output orientations as colours, magnitudes,
and the cluster masks, one row per image."""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ocf import viz
from ocf.records import State


def orientation_colours(orient: Tensor) -> np.ndarray:
    """Orientations ``[B r h w]`` (unit vectors, zero for background) → ``uint8 [B h w 3]``.

    n = 1: sign (red +, blue −); n = 2: hue = angle (the Complex AutoEncoder's phase);
    n ≥ 3: the three principal directions of the foreground orientations of the whole
    batch, each mapped from [−1, 1] to [0, 1].  Brightness is the vector's length, so the
    background (zero vectors) is black."""
    o = orient.detach().double().cpu()
    B, r, h, w = o.shape
    length = o.square().sum(1).sqrt().clamp(0, 1).numpy()  # [B h w]
    if r == 1:
        s = o[:, 0].numpy()
        rgb = np.stack([(s > 0) * 1.0, np.zeros_like(s), (s < 0) * 1.0], -1) * np.abs(s)[..., None]
    elif r == 2:
        angle = torch.atan2(o[:, 1], o[:, 0]).numpy() / (2 * np.pi) % 1.0
        hsv = np.vectorize(colorsys.hsv_to_rgb)(angle, np.ones_like(angle), length)
        rgb = np.stack(hsv, -1)
    else:
        flat = o.permute(0, 2, 3, 1).reshape(-1, r)  # [(B h w) r]
        fg = flat[flat.square().sum(1) > 0.25]
        basis = torch.eye(r, dtype=flat.dtype)[:, :3]
        if len(fg) >= 3:
            _, _, v = torch.linalg.svd(fg - fg.mean(0), full_matrices=False)
            basis = v[:3].T  # [r 3]
        proj = (flat @ basis).reshape(B, h, w, 3).numpy()
        rgb = (proj.clip(-1, 1) + 1) / 2 * length[..., None]
    return (rgb.clip(0, 1) * 255 + 0.5).astype(np.uint8)


def rotating_figure(state: State, path: str | Path | None = None, *, max_items: int = 8, scale: int | None = None):
    """Input, reconstruction, output magnitude (mean over channels), orientations as
    colours, the cluster segmentation and ground truth, for the first frame of each item.
    Needs an evaluation-mode State (the ``rotating.cluster`` grouper ran).  Returns the
    PIL image, saved to ``path`` if given."""
    lat = state.latents
    if lat is None or "orientation" not in (lat.extras or {}):
        raise ValueError("rotating_figure needs the rotating.cluster grouper's output: run the model in eval mode")
    frames = state.batch.frames[:max_items, 0].float().cpu()  # [b c h w]
    b = frames.shape[0]
    recon = state.rendering.recon[:b, 0].float().cpu() if state.target is state.batch.frames else None
    mag = lat.extras["magnitude"][:b, 0].float().mean(1).cpu()  # [b h w]
    colours = orientation_colours(lat.extras["orientation"][:b, 0])  # [b h w 3]
    seg = lat.masks[:b, 0].argmax(1).cpu()  # [b h w]
    gt = state.batch.masks[:b, 0].cpu() if state.batch.masks is not None else None
    h, w = frames.shape[-2:]
    rows = []
    for i in range(b):
        row = [viz.to_uint8(frames[i])]
        if recon is not None:
            row.append(viz.to_uint8(recon[i]))
        m = mag[i] / max(float(mag[i].max()), 1e-6)
        row += [viz.to_uint8(m[None]), colours[i], viz.colorize(seg[i])]
        if gt is not None:
            row.append(viz.colorize(gt[i], background=0))
        rows.append(row)
    titles = (
        ["input"]
        + (["recon"] if recon is not None else [])
        + ["magnitude", "orientation", "clusters"]
        + (["truth"] if gt is not None else [])
    )
    image = viz.image_grid(rows, titles, pad=2, scale=scale or max(1, 64 // max(h, w)))
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
    return image
