"""The minimal Slot Attention reference (tests/reference/) stays runnable: shapes, the
competition of slots for tokens, the init options, and a loss that falls on a few steps."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "reference"))
import minimal_slot_attention as ref  # noqa: E402


def tiny(**kw) -> ref.MinimalSlotAttention:
    return ref.MinimalSlotAttention(
        size=(8, 8), enc_widths=(8, 8), dec_widths=(8,), num_slots=3, slot_dim=16, mlp_hidden=16, **kw
    )


def test_shapes_and_masks_sum_to_one():
    torch.manual_seed(0)
    model = tiny()
    image = torch.rand(2, 3, 8, 8)
    tokens = model.encoder(image)
    assert tokens.shape == (2, 64, 8)
    slots, attn = model.grouper(tokens)
    assert slots.shape == (2, 3, 16) and attn.shape == (2, 3, 64)
    torch.testing.assert_close(attn.sum(1), torch.ones(2, 64))  # softmax over slots
    recon, rgb, masks = model.decoder(slots)
    assert recon.shape == (2, 3, 8, 8) and rgb.shape == (2, 3, 3, 8, 8) and masks.shape == (2, 3, 8, 8)
    torch.testing.assert_close(masks.sum(1), torch.ones(2, 8, 8))
    torch.testing.assert_close(recon, (masks.unsqueeze(2) * rgb).sum(1))


def test_coordinate_grid_corners():
    grid = ref.coordinate_grid(3, 5)
    assert grid.shape == (3, 5, 4)
    assert grid[0, 0].tolist() == [0.0, 0.0, 1.0, 1.0]
    assert grid[2, 4].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert grid[1, 0].tolist() == [0.5, 0.0, 0.5, 1.0]


def test_jax_init_zeroes_biases_and_makes_gru_recurrent_orthogonal():
    torch.manual_seed(0)
    model = tiny(init="jax")
    conv = model.encoder.cnn[0]
    assert torch.count_nonzero(conv.bias) == 0 and torch.count_nonzero(model.decoder.pos.dense.bias) == 0
    bound = (6 / (conv.in_channels * 9 + conv.out_channels * 9)) ** 0.5
    assert conv.weight.abs().max() <= bound and conv.weight.abs().max() > 0.5 * bound
    for w in model.grouper.gru.weight_hh.chunk(3):
        torch.testing.assert_close(w @ w.T, torch.eye(16), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="init must be"):
        tiny(init="he")


def test_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    model = tiny()
    image = torch.zeros(4, 3, 8, 8)
    image[:, 0, 2:5, 2:5] = 1.0
    image[:, 2, 5:7, 1:4] = 0.7
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(50):
        loss = ref.mse_loss(model, image)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
