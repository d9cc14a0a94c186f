"""The spatial-transformer glimpse utility (ocf_common.glimpse)."""

import pytest
import torch

from ocf_common.glimpse import extract, place


def pixel_boxes(where, size):
    """Boxes ``(sx, sy, tx, ty)`` → pixel ``(x0, y0, x1, y1)`` on a ``size`` × ``size`` image."""
    sx, sy, tx, ty = where.unbind(-1)
    return torch.stack(
        [(tx - sx + 1) * size / 2, (ty - sy + 1) * size / 2, (tx + sx + 1) * size / 2, (ty + sy + 1) * size / 2], -1
    )


def test_extract_pixel_aligned_box_is_an_exact_crop():
    img = torch.rand(1, 2, 16, 16)
    where = torch.tensor([[0.5, 0.5, 0.0, 0.0]])  # the central 8x8 pixels
    assert torch.allclose(extract(img, where, 8), img[..., 4:12, 4:12], atol=1e-6)
    shifted = torch.tensor([[0.25, 0.5, -0.75, 0.5]])  # x in [-1, -0.5]: columns 0..3; y in [0, 1]: rows 8..15
    assert torch.allclose(extract(img, shifted, (8, 4)), img[..., 8:16, 0:4], atol=1e-6)


def test_extract_then_place_round_trip():
    img = torch.rand(3, 1, 16, 16)
    # 8x8-pixel boxes whose edges fall on pixel edges (one pixel is 0.125 in [-1, 1])
    where = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.5, 0.5, 0.25, -0.5], [0.5, 0.5, -0.5, 0.375]])
    back = place(extract(img, where, 8), where, 16)
    boxes = pixel_boxes(where, 16).round().long()
    for i, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        inside = torch.zeros(16, 16, dtype=torch.bool)
        inside[y0:y1, x0:x1] = True
        assert torch.allclose(back[i, 0][inside], img[i, 0][inside], atol=1e-5)  # the box comes back
        assert back[i, 0][~inside].abs().max() < 1e-6  # and nothing else


def test_place_then_extract_recovers_a_smooth_patch_at_any_box():
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, 10), torch.linspace(-1, 1, 10), indexing="ij")
    patch = (torch.exp(-(xs**2 + ys**2) * 2)).expand(2, 1, 10, 10)
    where = torch.tensor([[0.37, 0.41, 0.13, -0.21], [0.6, 0.55, -0.3, 0.2]])
    again = extract(place(patch, where, 48), where, 10)
    assert (again - patch).abs().max() < 0.05


def test_batched_leading_axes_and_gradients():
    img = torch.rand(2, 3, 1, 12, 12, requires_grad=True)
    where = torch.tensor([0.4, 0.3, 0.1, -0.2]).repeat(2, 3, 1).requires_grad_()
    g = extract(img, where, 5)
    assert g.shape == (2, 3, 1, 5, 5)
    canvas = place(g, where, (12, 14))
    assert canvas.shape == (2, 3, 1, 12, 14)
    canvas.square().sum().backward()
    assert torch.isfinite(where.grad).all() and where.grad.abs().sum() > 0
    assert img.grad.abs().sum() > 0
    # the per-item result equals the unbatched one
    assert torch.allclose(g[1, 2], extract(img[1, 2].detach()[None], where[1, 2].detach()[None], 5)[0], atol=1e-6)


def test_errors():
    with pytest.raises(ValueError, match="4 values"):
        extract(torch.rand(2, 1, 8, 8), torch.rand(2, 3), 4)
    with pytest.raises(ValueError, match="leading axes"):
        place(torch.rand(3, 1, 4, 4), torch.rand(2, 4), 8)
