"""Pictures for training logs, ``ocf viz`` and ``ocf data inspect``: decompositions,
segmentation overlays, dataset contact sheets, GIFs for video and line charts (PIL, numpy).

Inputs may be torch tensors or numpy arrays; images are float ``[.. c h w]`` in [0, 1].
One channel convention: ``c = 1`` is grey, ``c = 2`` (grey + depth, as ``nshapes`` writes
it) shows its first channel as grey, ``c >= 3`` its first three (RGB).  Label ``l`` is
drawn in ``PALETTE[l % len(PALETTE)]``, ignore (negative) labels in ``IGNORE_COLOUR``.
Outputs are ``uint8 [h w 3]`` arrays or ``PIL.Image``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["IGNORE_COLOUR", "PALETTE", "to_uint8", "colorize", "overlay", "image_grid", "sample_sheet",
           "decomposition_figure", "video_figure", "save_gif", "line_plot", "draw_boxes"]

#: Distinct colours (RGB) for labels and series; label i uses ``PALETTE[i % len]``.
PALETTE: np.ndarray = np.array(
    [
        (230, 25, 75), (60, 180, 75), (0, 130, 200), (255, 225, 25), (245, 130, 48),
        (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
        (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
        (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128),
    ],
    dtype=np.uint8,
)  # fmt: skip
#: Colour of ignore (negative) labels in :func:`colorize`; :func:`overlay` darkens them instead.
IGNORE_COLOUR = np.array((40, 40, 40), dtype=np.uint8)
_TEXT = (0, 0, 0)


def _numpy(x: Any) -> np.ndarray:
    """A torch tensor (any device, with grad) or array-like as a numpy array."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16" or str(x.dtype) == "torch.float16":
            x = x.float()
        x = x.numpy()
    return np.asarray(x)


def _three_channels(x: np.ndarray) -> np.ndarray:
    """Channels-last ``[.. c]`` → ``[.. 3]`` by the module's channel convention: c = 1 and
    c = 2 (grey + depth) repeat the first channel, c >= 3 keeps the first three."""
    if x.shape[-1] < 3:
        return np.repeat(x[..., :1], 3, axis=-1)
    return x[..., :3]


def to_uint8(images: Any) -> np.ndarray:
    """Float images ``[.. c h w]`` in [0, 1] → ``uint8 [.. h w 3]`` (clipped).

    uint8 input is taken as already in [0, 255].  Channels follow the module's convention
    (grey for c = 1 and c = 2, the first three channels for c > 3).
    """
    x = _numpy(images)
    if x.ndim < 3:
        raise ValueError(f"expected images [.. c h w], got shape {x.shape}")
    x = _three_channels(np.moveaxis(x, -3, -1))
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    return (np.clip(np.nan_to_num(x.astype(np.float32)), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def colorize(labels: Any, background: int | None = None) -> np.ndarray:
    """Label map ``[h w]`` (ints) → ``uint8 [h w 3]`` palette colours.  Negative labels
    (ignore) are dark grey; ``background``, if given, is black."""
    lab = _numpy(labels).astype(np.int64)
    out = PALETTE[np.mod(lab, len(PALETTE))]
    out[lab < 0] = IGNORE_COLOUR
    if background is not None:
        out[lab == background] = 0
    return out


def _resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an int label map ``[h w]`` to ``size = (h, w)``."""
    if labels.shape == size:
        return labels
    rows = (np.arange(size[0]) * labels.shape[0] // size[0]).clip(0, labels.shape[0] - 1)
    cols = (np.arange(size[1]) * labels.shape[1] // size[1]).clip(0, labels.shape[1] - 1)
    return labels[rows][:, cols]


def overlay(image: Any, labels: Any, alpha: float = 0.5, background: int | None = None) -> np.ndarray:
    """Blend palette colours of ``labels [h' w']`` over ``image [c h w]`` → ``uint8 [h w 3]``.

    Labels are resized (nearest) to the image.  Pixels labelled ``background`` (if given)
    or negative are left as the image (ignored ones slightly darkened).
    """
    img = to_uint8(image).astype(np.float32)
    lab = _resize_labels(_numpy(labels).astype(np.int64), img.shape[:2])
    col = colorize(lab).astype(np.float32)
    a = np.full(lab.shape + (1,), float(alpha), dtype=np.float32)
    if background is not None:
        a[lab == background] = 0.0
    out = img * (1.0 - a) + col * a
    out[lab < 0] *= 0.6
    return out.round().clip(0, 255).astype(np.uint8)


def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default()


def _text_size(draw: ImageDraw.ImageDraw, text: str) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=_font())
    return right - left, bottom - top


def _as_rgb(cell: np.ndarray) -> np.ndarray:
    """Channels-last ``[h w c]`` or grey ``[h w]`` (uint8, or float in [0, 1]) → ``uint8 [h w 3]``."""
    cell = np.asarray(cell)
    cell = _three_channels(cell[..., None] if cell.ndim == 2 else cell)
    if cell.dtype != np.uint8:
        cell = (np.clip(cell, 0, 1) * 255 + 0.5).astype(np.uint8)
    return cell


def image_grid(
    rows: Sequence[Sequence[np.ndarray | None]],
    labels: Sequence[str] | None = None,
    pad: int = 2,
    *,
    row_labels: Sequence[str] | None = None,
    scale: int = 1,
    fill: tuple[int, int, int] = (255, 255, 255),
) -> Image.Image:
    """Lay out images in a grid → ``PIL.Image`` (RGB).

    rows: rows of ``uint8 [h w 3]`` (or ``[h w]`` grey) images; cells may differ in size
        (each sits top-left in a cell of the largest size) and ``None`` leaves a blank.
    labels: column titles drawn above the grid; row_labels: titles left of each row.
    pad: pixels between cells and around the grid; scale: integer nearest upscaling.
    """
    cells = [[None if c is None else _as_rgb(c) for c in row] for row in rows]
    shapes = [c.shape[:2] for row in cells for c in row if c is not None]
    ch = max((s[0] for s in shapes), default=1) * scale
    cw = max((s[1] for s in shapes), default=1) * scale
    ncols = max((len(r) for r in cells), default=0)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    title_h = max((_text_size(probe, t)[1] for t in labels), default=0) + pad + 2 if labels else 0
    label_w = max((_text_size(probe, t)[0] for t in row_labels), default=0) + pad + 2 if row_labels else 0
    width = label_w + pad + ncols * (cw + pad)
    height = title_h + pad + len(cells) * (ch + pad)
    canvas = Image.new("RGB", (max(width, 1), max(height, 1)), fill)
    draw = ImageDraw.Draw(canvas)
    for j, text in enumerate(labels or []):
        if j < ncols:
            tw = _text_size(draw, text)[0]
            x = label_w + pad + j * (cw + pad) + max((cw - tw) // 2, 0)
            draw.text((x, pad // 2), text, fill=_TEXT, font=_font())
    for i, row in enumerate(cells):
        y = title_h + pad + i * (ch + pad)
        if row_labels and i < len(row_labels):
            th = _text_size(draw, row_labels[i])[1]
            draw.text((pad, y + max((ch - th) // 2, 0)), row_labels[i], fill=_TEXT, font=_font())
        for j, cell in enumerate(row):
            if cell is None:
                continue
            im = Image.fromarray(cell)
            if scale != 1:
                im = im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)
            canvas.paste(im, (label_w + pad + j * (cw + pad), y))
    return canvas


def sample_sheet(frames: Any, masks: Any | None, max_frames: int = 4, min_size: int = 96) -> Image.Image:
    """The contact sheet of ``ocf data inspect``: a row per sample with, for up to ``max_frames``
    frames (spread over T), the frame and, given masks, the ground truth as ``ocf viz`` draws it
    (``overlay(frame, mask, 0.6, background=0)``) and the labels (``colorize(mask, background=0)``).
    frames ``[N T H W C]`` uint8 as stored in files, masks ``[N T H W]`` or None; cells are
    upscaled (nearest) to at least ``min_size`` pixels.
    """
    frames, masks = _numpy(frames), None if masks is None else _numpy(masks)
    n, t, h = frames.shape[:3]
    shown = np.unique(np.linspace(0, t - 1, min(max_frames, t)).round().astype(int))
    images = np.moveaxis(frames, -1, -3)  # [N T C H W]; to_uint8 keeps uint8 values as they are
    titles, rows = [], [[] for _ in range(n)]
    for j in shown:
        titles += [f"frame t={j}" if t > 1 else "frame"] + (["truth", "labels"] if masks is not None else [])
        for i, row in enumerate(rows):
            row.append(to_uint8(images[i, j]))
            if masks is not None:
                row += [overlay(images[i, j], masks[i, j], 0.6, background=0), colorize(masks[i, j], background=0)]
    return image_grid(rows, titles, pad=2, scale=max(1, int(np.ceil(min_size / h))))


def _resize_float(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float map ``[h w]`` to ``size = (h, w)``."""
    if x.shape == size:
        return x
    im = Image.fromarray(np.ascontiguousarray(x, dtype=np.float32))  # mode F
    return np.asarray(im.resize((size[1], size[0]), Image.Resampling.BILINEAR))


def _decomposition_rows(frames, recon, masks, rgb, gt_masks, max_items) -> tuple[list[list[np.ndarray]], list[str]]:
    """Rows (one per item) and column titles of a decomposition figure (numpy inputs)."""
    b, _, h, w = frames.shape
    k = 0 if masks is None else masks.shape[1]
    titles = ["input"] + (["recon"] if recon is not None else []) + (["gt"] if gt_masks is not None else [])
    titles += (["pred"] if masks is not None else []) + [f"slot {i}" for i in range(k)]
    rows = []
    for i in range(min(b, max_items)):
        row = [to_uint8(frames[i])]
        if recon is not None:
            row.append(to_uint8(recon[i]))
        if gt_masks is not None:
            row.append(overlay(frames[i], gt_masks[i], 0.6, background=0))
        if masks is None:
            rows.append(row)
            continue
        m = np.stack([_resize_float(masks[i, j].astype(np.float32), (h, w)) for j in range(k)])  # [k h w]
        row.append(overlay(frames[i], m.argmax(axis=0), 0.6))
        for j in range(k):
            if rgb is not None:
                slot = to_uint8(rgb[i, j]).astype(np.float32)
                if slot.shape[:2] != (h, w):
                    slot = np.stack([_resize_float(slot[..., c], (h, w)) for c in range(3)], axis=-1)
                mask = m[j].clip(0, 1)[..., None]
                # rgb * mask on white, so an empty slot reads as blank
                row.append((slot * mask + 255.0 * (1.0 - mask)).round().clip(0, 255).astype(np.uint8))
            else:
                row.append(to_uint8(m[j][None]))  # the soft mask in grey
        rows.append(row)
    return rows, titles


def decomposition_figure(
    frames: Any,
    recon: Any | None,
    masks: Any | None,
    rgb: Any | None = None,
    gt_masks: Any | None = None,
    max_items: int = 8,
    *,
    scale: int | None = None,
) -> Image.Image:
    """One row per item: input, recon, ground-truth overlay, predicted segmentation
    overlay (argmax over k), then each slot (``rgb * mask`` on white, or the mask in grey).

    frames, recon: ``[b c h w]``; masks: ``[b k h' w']`` soft masks (resized to h w);
    rgb: ``[b k c h w]`` or None; gt_masks: ``[b h w]`` or None (0 = background left
    uncoloured, −1 darkened).  ``recon`` / ``gt_masks`` None drop their column, ``masks``
    None the segmentation and slot columns.  scale: integer upscaling
    (default: cells of at least 64 px).
    """
    frames = _numpy(frames)
    rows, titles = _decomposition_rows(
        frames,
        None if recon is None else _numpy(recon),
        None if masks is None else _numpy(masks),
        None if rgb is None else _numpy(rgb),
        None if gt_masks is None else _numpy(gt_masks),
        max_items,
    )
    if scale is None:
        scale = max(1, 64 // max(frames.shape[-2:]))
    return image_grid(rows, titles, pad=2, scale=scale)


def video_figure(
    frames: Any,
    recon: Any | None,
    masks: Any | None,
    rgb: Any | None = None,
    gt_masks: Any | None = None,
    max_items: int = 4,
    *,
    scale: int | None = None,
) -> list[Image.Image]:
    """Decomposition figures over time, one per frame, for :func:`save_gif`.

    frames, recon: ``[b t c h w]``; masks: ``[b t k h w]``; rgb: ``[b t k c h w]`` or
    None; gt_masks: ``[b t h w]`` or None.
    """
    frames = _numpy(frames)
    pick = lambda x, t: None if x is None else _numpy(x)[:, t]  # noqa: E731
    return [
        decomposition_figure(
            frames[:, t], pick(recon, t), pick(masks, t), pick(rgb, t), pick(gt_masks, t), max_items, scale=scale
        )
        for t in range(frames.shape[1])
    ]


def save_gif(frames: Sequence[Image.Image] | np.ndarray, path: str | Path, fps: float = 4.0) -> Path:
    """Write an animated, looping GIF.  frames: PIL images, or ``uint8 [t h w c]`` /
    float ``[t h w c]`` in [0, 1] (c = 1 or 3).  Returns the path."""
    if isinstance(frames, np.ndarray) or hasattr(frames, "detach"):
        arr = _numpy(frames)
        if arr.dtype != np.uint8:
            arr = (np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8)
        images = [Image.fromarray(_as_rgb(a)) for a in arr]
    else:
        images = [im.convert("RGB") for im in frames]
    if not images:
        raise ValueError("save_gif needs at least one frame")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    duration = max(int(round(1000.0 / fps)), 20)
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0)
    return path


def line_plot(
    series: dict[str, Sequence[float]],
    path: str | Path | None = None,
    width: int = 480,
    height: int = 320,
    *,
    title: str | None = None,
) -> Image.Image:
    """A simple line chart of named series over their index (steps) → ``PIL.Image``,
    also saved to ``path`` if given (format from the suffix).  Non-finite values are
    skipped; the y range covers all series; a legend names each series in its colour."""
    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    values = [float(v) for s in series.values() for v in s if np.isfinite(v)]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    n = max((len(s) for s in series.values()), default=0)
    label_w = max(_text_size(draw, f"{v:.3g}")[0] for v in (lo, hi)) + 6
    line_h = _text_size(draw, "Ag")[1] + 4
    top = 4 + (line_h if title else 0)
    left, right, bottom = label_w + 4, width - 8, height - line_h - 4
    if title:
        draw.text((left, 2), title, fill=_TEXT, font=_font())
    draw.rectangle((left, top, right, bottom), outline=(120, 120, 120))
    draw.text((2, top), f"{hi:.3g}", fill=_TEXT, font=_font())
    draw.text((2, bottom - line_h), f"{lo:.3g}", fill=_TEXT, font=_font())
    draw.text((left, bottom + 2), "0", fill=_TEXT, font=_font())
    end = str(max(n - 1, 0))
    draw.text((right - _text_size(draw, end)[0], bottom + 2), end, fill=_TEXT, font=_font())

    def xy(i: int, v: float) -> tuple[float, float]:
        x = left + (right - left) * (i / max(n - 1, 1))
        y = bottom - (bottom - top) * ((v - lo) / (hi - lo))
        return x, y

    legend_y = top + 4
    for j, (name, s) in enumerate(series.items()):
        colour = tuple(int(c) for c in PALETTE[j % len(PALETTE)])
        _draw_series(draw, [xy(i, float(v)) if np.isfinite(v) else None for i, v in enumerate(s)], colour)
        tw = _text_size(draw, name)[0]
        mid = legend_y + line_h // 2
        draw.line((right - tw - 22, mid, right - tw - 8, mid), fill=colour, width=3)
        draw.text((right - tw - 4, legend_y), name, fill=_TEXT, font=_font())
        legend_y += line_h
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        img.save(path)
    return img


def _draw_series(draw: ImageDraw.ImageDraw, points: list[tuple[float, float] | None], colour: tuple) -> None:
    """Lines through each run of points (``None`` ends a run); a final run of one point is a dot."""
    run: list[tuple[float, float]] = []
    for point in points + [None]:
        if point is not None:
            run.append(point)
            continue
        if len(run) > 1:
            draw.line(run, fill=colour, width=2)
        last, run = run, []
    if len(last) == 1:
        draw.ellipse((last[0][0] - 2, last[0][1] - 2, last[0][0] + 2, last[0][1] + 2), fill=colour)


def draw_boxes(
    image: Any, where: Any, presence: Any | None = None, *, threshold: float = 0.5, width: int = 1
) -> np.ndarray:
    """Outline object boxes on an image, box k in ``PALETTE[k]`` (so a slot that keeps its
    index over time keeps its colour).

    image: float ``[c h w]`` in [0, 1] or uint8 ``[h w 3]``; where: ``[k 4]`` as
    :class:`~ocf.records.Latents` documents, ``(sx, sy, tx, ty)`` in [-1, 1] coordinates;
    presence: ``[k]``, boxes at or below ``threshold`` are not drawn.  Returns uint8 ``[h w 3]``.
    """
    arr = _numpy(image)
    arr = _as_rgb(arr if arr.dtype == np.uint8 else to_uint8(arr))
    h, w = arr.shape[:2]
    where = _numpy(where).reshape(-1, 4)
    keep = np.ones(len(where), bool) if presence is None else _numpy(presence).reshape(-1) > threshold
    im = Image.fromarray(arr)
    draw = ImageDraw.Draw(im)
    for k in np.flatnonzero(keep):
        sx, sy, tx, ty = (float(v) for v in where[k])
        x0, x1 = (tx - abs(sx) + 1) * w / 2, (tx + abs(sx) + 1) * w / 2
        y0, y1 = (ty - abs(sy) + 1) * h / 2, (ty + abs(sy) + 1) * h / 2
        colour = tuple(int(c) for c in PALETTE[k % len(PALETTE)])
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=colour, width=width)
    return np.asarray(im)


# -- pictures of a model's state (``ocf viz``, training pictures, ``ocf sample``) ----------
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


def sample_pictures(state: Any, out_dir: str | Path, *, real: Any = None, observed: int = 0,
                    per_row: int = 8) -> list[Path]:
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
        rows = [cells[r:r + per_row] for r in range(0, n, per_row)]
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
    per_frame = [image_grid([[cell(i, j) for i in range(n)]], [f"{'obs' if j < observed else 'gen'} t={j}"], pad=2,
                            scale=scale) for j in range(t)]
    return [out_dir / "samples.png", save_gif(per_frame, out_dir / "samples.gif", fps=3)]
