"""Pictures: sizes, channel handling, and files PIL can read back."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ocf import viz


@pytest.mark.parametrize("c", [1, 2, 3, 5])
def test_to_uint8_handles_channels(c):
    x = torch.rand(2, c, 5, 7)
    out = viz.to_uint8(x)
    assert out.shape == (2, 5, 7, 3) and out.dtype == np.uint8
    if c == 1:
        assert (out[..., 0] == out[..., 2]).all()
    assert viz.to_uint8(np.full((1, 4, 4), 2.0)).max() == 255  # clipped


def test_overlay_colours_labels_and_keeps_background():
    image = torch.zeros(3, 4, 4)
    labels = torch.tensor([[0, 1], [2, -1]])  # resized (nearest) to 4 x 4
    out = viz.overlay(image, labels, alpha=1.0, background=0)
    assert out.shape == (4, 4, 3)
    assert (out[0, 0] == 0).all()  # background left as the (black) image
    assert tuple(out[0, 3]) == tuple(viz.PALETTE[1]) and tuple(out[3, 0]) == tuple(viz.PALETTE[2])
    assert len({tuple(c) for c in viz.PALETTE}) == len(viz.PALETTE)


def test_image_grid_size_and_titles():
    cells = [[np.zeros((10, 12, 3), np.uint8)] * 3, [np.zeros((10, 12), np.uint8), None]]
    plain = viz.image_grid(cells, pad=2)
    assert plain.size == (2 + 3 * (12 + 2), 2 + 2 * (10 + 2))
    titled = viz.image_grid(cells, ["a", "b", "c"], pad=2, row_labels=["one", "two"], scale=2)
    assert titled.width > 2 + 3 * (24 + 2) and titled.height > 2 + 2 * (20 + 2)


@pytest.mark.parametrize("c, with_rgb", [(3, True), (1, False), (4, True)])
def test_decomposition_figure(tmp_path, c, with_rgb):
    b, k, h, w = 3, 4, 16, 16
    frames, recon = torch.rand(b, c, h, w), torch.rand(b, c, h, w)
    masks = torch.randn(b, k, 8, 8).softmax(dim=1)  # lower resolution than the frames
    rgb = torch.rand(b, k, c, h, w) if with_rgb else None
    gt = torch.randint(-1, 4, (b, h, w))
    fig = viz.decomposition_figure(frames, recon, masks, rgb, gt, max_items=2, scale=1)
    assert isinstance(fig, Image.Image) and fig.mode == "RGB"
    columns = 4 + k  # input, recon, gt, pred, slots
    assert fig.width >= columns * (w + 2) and fig.height >= 2 * (h + 2)
    assert fig.height < 3 * (h + 2) + 30  # max_items respected
    path = tmp_path / "fig.png"
    fig.save(path)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == fig.size
    small = viz.decomposition_figure(frames, None, masks, None, None, scale=1)
    assert small.width < fig.width  # recon and gt columns dropped
    bare = viz.decomposition_figure(frames, recon, None, None, gt, scale=1)  # a model without masks
    assert bare.width < small.width


def test_video_figure_and_gif(tmp_path):
    b, t, k = 2, 5, 3
    frames = viz.video_figure(
        torch.rand(b, t, 3, 12, 12),
        torch.rand(b, t, 3, 12, 12),
        torch.rand(b, t, k, 12, 12),
        None,
        torch.randint(0, 3, (b, t, 12, 12)),
    )
    assert len(frames) == t and len({f.size for f in frames}) == 1
    path = viz.save_gif(frames, tmp_path / "clip.gif", fps=5)
    with Image.open(path) as im:
        assert im.format == "GIF" and im.n_frames == t and im.size == frames[0].size
    arr_path = viz.save_gif(np.random.rand(3, 8, 9, 1), tmp_path / "arr.gif", fps=2)
    with Image.open(arr_path) as im:
        assert im.n_frames == 3 and im.size == (9, 8)


def test_line_plot(tmp_path):
    series = {
        "beta": [1.0 / (i + 1) for i in range(40)],
        "kl": [float("nan"), 0.2, 0.3, float("inf"), 0.1],
        "flat": [2.0] * 3,
    }
    img = viz.line_plot(series, tmp_path / "plot.png", width=300, height=200, title="terms")
    assert img.size == (300, 200)
    with Image.open(tmp_path / "plot.png") as im:
        assert im.format == "PNG" and im.size == (300, 200)
    assert viz.line_plot({}, None, 100, 80).size == (100, 80)
