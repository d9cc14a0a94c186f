"""The pictures ocf writes for a model run: decompositions of an evaluation forward pass and
sample sheets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ocf.viz.draw import image_grid, to_uint8
from ocf.viz.figures import draw_boxes, save_gif, video_figure


def decomposition_pictures(state: Any, path: str | Path, max_items: int = 8) -> list[Path]:
    """Input, reconstruction, ground truth, predicted segmentation and per-slot images of
    a :class:`~ocf.records.State` as a PNG (first frame); for video also a GIF over time.
    Returns the files written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = state.batch.frames[:max_items].float().cpu()  # [b t c h w]
    seg = state.segmentation()
    r = state.rendering
    own = r is not None and r.target is None  # the rendering reconstructs the input frames
    recon = r.recon[:max_items].float().cpu() if own and r.recon is not None else None
    rgb = r.rgb[:max_items].float().cpu() if own and r.rgb is not None else None
    masks = seg[:max_items].float().cpu() if seg is not None else None
    gt = state.batch.masks[:max_items].cpu() if state.batch.masks is not None else None
    figures = video_figure(frames, recon, masks, rgb, gt, max_items=max_items)  # one per frame
    figures[0].save(path)
    written = [path]
    if len(figures) > 1:
        gif = path.with_suffix(".gif")
        save_gif(figures, gif, fps=4)
        written.append(gif)
    return written


def sample_pictures(
    state: Any, out_dir: str | Path, *, real: Any = None, observed: int = 0, per_row: int = 8
) -> list[Path]:
    """Pictures of generated scenes (a :class:`~ocf.records.State` from
    :func:`ocf.run.generate.generate`): ``samples.png`` (images: a grid; video: one row per
    sample over time, boxes drawn where the latents have ``where``/``presence``) and
    ``samples.gif`` for video.  With
    ``real`` clips ``[n t c h w]``, each is shown above its generated one; the first
    ``observed`` frames are titled "obs" (inferred) and the rest "gen" (generated)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    recon = state.rendering.recon.float().clamp(0, 1).cpu()  # [n t c h w]
    n, t = recon.shape[:2]
    lat = state.latents
    where = lat.where.cpu() if lat is not None and lat.where is not None else None
    presence = lat.presence.cpu() if lat is not None and lat.presence is not None else None

    def cell(i: int, j: int) -> np.ndarray:
        if where is None:
            return to_uint8(recon[i, j])
        return draw_boxes(recon[i, j], where[i, j], None if presence is None else presence[i, j])

    scale = max(1, 64 // max(recon.shape[-2:]))
    if t == 1:
        cells = [cell(i, 0) for i in range(n)]
        rows = [cells[r : r + per_row] for r in range(0, n, per_row)]
        image_grid(rows, pad=2, scale=scale).save(out_dir / "samples.png")
        return [out_dir / "samples.png"]
    real = real.float().cpu() if real is not None else None
    rows, labels = [], []
    for i in range(n):
        if real is not None:
            rows.append([to_uint8(real[i, j]) if j < real.shape[1] else None for j in range(t)])
            labels.append(f"real {i}")
        rows.append([cell(i, j) for j in range(t)])
        labels.append(f"sample {i}")
    titles = [("obs " if j < observed else "gen ") + str(j) if observed else f"t={j}" for j in range(t)]
    image_grid(rows, titles, pad=2, row_labels=labels, scale=scale).save(out_dir / "samples.png")
    per_frame = [
        image_grid([[cell(i, j) for i in range(n)]], [f"{'obs' if j < observed else 'gen'} t={j}"], pad=2, scale=scale)
        for j in range(t)
    ]
    return [out_dir / "samples.png", save_gif(per_frame, out_dir / "samples.gif", fps=3)]
