"""One picture library: ``ocf data inspect`` and ``ocf viz`` colour the same ground truth the
same way (palette, ignore colour, channel convention)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ocf import viz
from ocf.cli import main
from ocf.data import H5Dataset


def _cells(image: Image.Image, rows: int, cols: int, cell: int, pad: int = 2) -> list[list[np.ndarray]]:
    """Cut an ``image_grid`` picture (column titles, no row titles) into its ``cell``-sized cells."""
    a = np.asarray(image.convert("RGB"))
    top = a.shape[0] - pad - rows * (cell + pad)  # the title band
    return [
        [a[top + pad + i * (cell + pad) :][:cell, pad + j * (cell + pad) :][:, :cell] for j in range(cols)]
        for i in range(rows)
    ]


@pytest.fixture(scope="module")
def grey_depth_file(tmp_path_factory):
    """nshapes with depth: C = 2 (grey, nearness) and -1 labels where shapes overlap."""
    path = tmp_path_factory.mktemp("pictures") / "depth.h5"
    assert (
        main(
            [
                "data",
                "make",
                "nshapes",
                "--out",
                str(path),
                "--n",
                "20",
                "--seed",
                "3",
                "--quiet",
                "depth=true",
                "size=14",
                "resolution=32",
            ]
        )
        == 0
    )
    return path


def test_inspect_and_viz_colour_the_same_masks_with_the_same_pixels(grey_depth_file, tmp_path):
    png = tmp_path / "sheet.png"
    assert main(["data", "inspect", str(grey_depth_file), "--out", str(png), "--n", "3", "--frames", "1"]) == 0
    items = [H5Dataset(grey_depth_file, split="train")[i] for i in range(3)]  # what training and ocf viz read
    frames = np.stack([item["frames"][0].numpy() for item in items])  # [3 2 32 32] float in [0, 1]
    masks = np.stack([item["masks"][0].numpy() for item in items])  # [3 32 32]
    assert frames.shape[1] == 2 and (masks == -1).any() and (masks == 0).any() and (masks > 0).any()

    scale = 3  # the sheet scales 32 px cells to at least 96 px
    with Image.open(png) as im:
        sheet = _cells(im, rows=3, cols=3, cell=32 * scale)  # frame, truth, labels
    figure = _cells(
        viz.decomposition_figure(frames, None, None, None, masks, scale=scale), rows=3, cols=2, cell=32 * scale
    )  # input, gt
    for i in range(3):
        np.testing.assert_array_equal(sheet[i][0], figure[i][0])  # the frame
        np.testing.assert_array_equal(sheet[i][1], figure[i][1])  # ground truth over the frame
        labels = sheet[i][2][::scale, ::scale]
        np.testing.assert_array_equal(labels, viz.colorize(masks[i], background=0))
        grey = np.round(frames[i, 0] * 255).astype(np.uint8)  # C = 2 is shown as its first channel
        np.testing.assert_array_equal(sheet[i][0][::scale, ::scale], np.repeat(grey[..., None], 3, -1))


def test_one_palette_and_one_ignore_colour():
    labels = np.array([[0, 1, 2], [-1, 21, 5]])
    out = viz.colorize(labels, background=0)
    assert (out[0, 0] == 0).all()  # background black
    assert (out[1, 0] == viz.IGNORE_COLOUR).all()
    assert (out[0, 1] == viz.PALETTE[1]).all() and (out[1, 1] == viz.PALETTE[1]).all()  # 21 wraps to 1
    grey = np.full((2, 2, 2), 0.5, np.float32)  # [c h w] grey + depth
    grey[1] = 1.0
    assert (viz.to_uint8(grey) == 128).all()  # the depth channel is not shown
