"""data.value_range: the stages and objectives see frames in [lo, hi]; what leaves the model
(the batch, the rendering's images) is back in [0, 1]."""

from __future__ import annotations

import pytest
import torch

import ocf_common
import ocf_slot_attention
from ocf.assembly import build
from ocf.errors import SpecError
from ocf.records import Batch, Rendering, State
from ocf.registry import Registry
from ocf.spec import resolve


def registry() -> Registry:
    reg = Registry()
    ocf_common.ocf_register_components(reg.bound("common"))
    ocf_slot_attention.ocf_register_components(reg.bound("slot_attention"))
    return reg


def spec(value_range=None) -> dict:
    data = {"dataset": "shapes", "path": "x.h5", "resolution": [8, 8]}
    if value_range is not None:
        data["value_range"] = value_range
    return {
        "data": data,
        "model": {
            "encoder": {"type": "cnn", "channels": [8]},
            "grouper": {"type": "slot_attention.grouper", "num_slots": 2, "slot_dim": 8},
            "decoder": {"type": "spatial_broadcast", "channels": [8]},
            "objectives": [{"type": "mse"}],
        },
    }


def test_stages_see_the_range_and_outputs_come_back_in_unit_range():
    torch.manual_seed(0)
    model = build(resolve(spec([-1, 1]), registry()), dry_run=False)
    seen = {}

    def capture(module, args):
        seen["frames"] = args[0].batch.frames.clone()

    model.encoder.register_forward_pre_hook(capture)
    frames = torch.rand(2, 1, 3, 8, 8)
    batch = Batch(frames)
    torch.manual_seed(1)  # the same slot draws in both runs
    state = model(batch)
    assert torch.allclose(seen["frames"], frames * 2 - 1)
    assert state.batch is batch  # the caller's batch, untouched
    # the same stages run by hand in model space
    inner = State(Batch(frames * 2 - 1))
    inner.features = model.encoder(inner)
    torch.manual_seed(1)
    inner.latents = model.grouper(inner)
    rendering = model.decoder(inner)
    assert torch.allclose(state.rendering.recon, (rendering.recon + 1) / 2, atol=1e-6)
    assert torch.allclose(state.rendering.rgb, (rendering.rgb + 1) / 2, atol=1e-6)
    # the objective compares in model space: 4x the unit-range squared error
    unit_mse = ((state.rendering.recon - frames) ** 2).mean()
    assert torch.allclose(state.losses["mse"], 4 * unit_mse, rtol=1e-5)


def test_renderings_that_are_not_images_keep_their_values():
    """A decoder that renders features (64 channels on a 4x4 patch grid, as DINOSAUR's) keeps
    them as they are; a pixel rendering at a lower resolution is still mapped back."""
    model = build(resolve(spec([-1, 1]), registry()), dry_run=False)
    frames = torch.rand(2, 1, 3, 8, 8)
    features = torch.randn(2, 1, 64, 4, 4)
    pixels = torch.rand(2, 1, 3, 4, 4) * 2 - 1
    out = model.to_unit_range(Rendering(recon=features, target=features.clone()), like=frames)
    assert torch.equal(out.recon, features) and torch.equal(out.target, features)
    out = model.to_unit_range(Rendering(recon=pixels), like=frames)
    assert torch.allclose(out.recon, (pixels + 1) / 2)


def test_default_range_leaves_the_batch_object_alone():
    model = build(resolve(spec(), registry()), dry_run=False)
    batch = Batch(torch.rand(2, 1, 3, 8, 8))
    assert model.to_model_range(batch) is batch
    assert model.value_range == (0.0, 1.0)


@pytest.mark.parametrize("bad", [[1, -1], [0, 0], [0, float("nan")]])
def test_a_range_that_is_not_increasing_is_refused(bad):
    with pytest.raises(SpecError, match="value_range"):
        resolve(spec(bad), registry())
