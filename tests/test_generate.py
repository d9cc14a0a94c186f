"""Generation (`ocf sample`, ocf.run.generate): unconditional samples from a prior, refusal
without a generative prior, conditional roll-out through a sequential prior, pictures."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest
import torch

from ocf import plugins, viz
from ocf.assembly import build
from ocf.cli import main
from ocf.components import ComponentSpec, Prior
from ocf.errors import UserError
from ocf.hookspecs import hookimpl
from ocf.records import Batch, Latents, PriorTerms
from ocf.run import generate, train
from ocf.spec import resolve


def spec(data_path: Path, *, prior: dict | None = None, grouper: str = "slot_attention.gaussian_grouper") -> dict:
    model = {
        "encoder": {"type": "cnn", "channels": [8, 8]},
        "grouper": {"type": grouper, "num_slots": 3, "slot_dim": 8, "mlp_hidden": 16},
        "decoder": {"type": "spatial_broadcast", "channels": [8, 8]},
        "objectives": [{"type": "mse"}],
    }
    if prior:
        model["prior"] = prior
    return {
        "data": {
            "dataset": "shapes",
            "path": str(data_path),
            "resolution": [16, 16],
            "generate": {"n": 48, "seed": 0, "options": {"resolution": 16}},
        },
        "model": model,
        "train": {"steps": 2, "batch_size": 4, "image_every": 0, "checkpoint_every": 2},
        "eval": {"batch_size": 8},
    }


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    return tmp_path_factory.mktemp("gen") / "shapes16.h5"


def test_unconditional_samples_have_the_data_shape_and_follow_the_seed(data_path):
    torch.manual_seed(0)
    model = build(resolve(spec(data_path, prior={"type": "normal"}), plugins.default().registry), dry_run=False)
    model.train()

    def draw(seed, temp=1.0):
        return generate.generate(model, 5, temperature=temp, generator=torch.Generator().manual_seed(seed))

    a, b, c = draw(1), draw(1), draw(2)
    assert a.rendering.recon.shape == (5, 1, 3, 16, 16) and torch.isfinite(a.rendering.recon).all()
    assert a.latents.objects.shape == (5, 3, 8)
    assert torch.equal(a.rendering.recon, b.rendering.recon) and not torch.equal(a.rendering.recon, c.rendering.recon)
    assert torch.allclose(draw(1, 0.5).latents.objects, 0.5 * a.latents.objects)
    assert model.training  # restored


def test_models_without_a_generative_prior_refuse(data_path):
    reg = plugins.default().registry
    no_prior = build(resolve(spec(data_path, grouper="slot_attention.grouper"), reg), dry_run=False)
    with pytest.raises(UserError, match="no prior"):
        generate.generate(no_prior, 2)
    normal = build(resolve(spec(data_path, prior={"type": "normal"}), reg), dry_run=False)
    with pytest.raises(UserError, match="cannot continue observed frames"):
        generate.generate(normal, condition=Batch(torch.rand(2, 1, 3, 16, 16)), frames=1)


class EchoPrior(Prior):
    """Test prior: N(0, I) KL; sampling continues the condition's slots unchanged."""

    needs = ("latents.posterior",)
    provides = ("prior.terms",)
    seen: dict = {}

    class Spec(ComponentSpec):
        pass

    def forward(self, state):
        return PriorTerms(terms={"kl": state.latents.posterior.mean.pow(2).mean()})

    def sample(self, n, *, temperature=1.0, generator=None, condition=None, frames=None):
        EchoPrior.seen = {"n": n, "frames": frames, "condition": condition}
        return Latents(objects=condition.latents.posterior.mean)


def test_conditional_generation_runs_the_model_on_the_observed_frames_first(data_path):
    mod = types.ModuleType("echo")
    mod.ocf_register_components = hookimpl(lambda registry: registry.add("prior", "echo.prior", EchoPrior))
    p = plugins.default()
    p.add_module(mod, "echo")
    try:
        model = build(resolve(spec(data_path, prior={"type": "echo.prior"}), p.registry), dry_run=False).eval()
        observed = Batch(torch.rand(3, 1, 3, 16, 16))
        torch.manual_seed(0)  # slot attention draws its initial slots
        state = generate.generate(model, condition=observed, frames=1)
        seen = EchoPrior.seen
        assert seen["n"] == 3 and seen["frames"] == 1
        torch.manual_seed(0)
        with torch.no_grad():
            direct = model(observed, losses=False)
        assert torch.allclose(seen["condition"].latents.posterior.mean, direct.latents.posterior.mean)
        assert torch.allclose(state.rendering.recon, direct.rendering.recon, atol=1e-6)  # same slots → same picture
        with pytest.raises(UserError, match="at least"):
            generate.generate(model, condition=Batch(torch.rand(3, 2, 3, 16, 16)), frames=1)
    finally:
        p.unregister("echo")


def test_ocf_sample_writes_pictures_and_refuses_clearly(tmp_path, data_path, capsys):
    reg = plugins.default().registry
    run = train.run(resolve(spec(data_path, prior={"type": "normal"}), reg), out=str(tmp_path / "run"), progress=False)
    assert main(["sample", str(run), "--n", "6", "--temperature", "0.8"]) == 0
    assert (run / "samples" / "samples.png").exists()
    assert torch.load(run / "samples" / "samples.pt")["recon"].shape == (6, 1, 3, 16, 16)
    assert main(["sample", str(run), "--temperature", "0"]) == 2
    assert "--temperature must be positive" in capsys.readouterr().err
    bare = train.run(
        resolve(spec(data_path, grouper="slot_attention.grouper"), reg), out=str(tmp_path / "bare"), progress=False
    )
    assert main(["sample", str(bare)]) == 2
    assert "has no prior" in capsys.readouterr().err


def test_video_samples_make_a_gif_with_boxes(tmp_path):
    n, t = 2, 3
    recon = torch.zeros(n, t, 3, 16, 16)
    where = torch.tensor([0.5, 0.5, 0.0, 0.0]).expand(n, t, 1, 4)  # one centred box covering [4, 12)
    state = types.SimpleNamespace(
        rendering=types.SimpleNamespace(recon=recon), latents=Latents(where=where, presence=torch.ones(n, t, 1))
    )
    paths = viz.sample_pictures(state, tmp_path, real=torch.rand(n, t, 3, 16, 16), observed=1)
    assert [p.name for p in paths] == ["samples.png", "samples.gif"] and all(p.exists() for p in paths)


def test_draw_boxes_outlines_present_objects_in_their_slot_colour():
    image = torch.zeros(3, 16, 16)
    where = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.25, 0.25, 0.5, 0.5]])
    out = viz.draw_boxes(image, where, torch.tensor([1.0, 0.0]))
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert (out[4, 4:12] == viz.PALETTE[0]).all() and (out[4:12, 11] == viz.PALETTE[0]).all()  # top edge, right edge
    assert (out[5:11, 5:11] == 0).all()  # inside stays untouched
    assert not (out == viz.PALETTE[1]).all(axis=-1).any()  # the absent object is not drawn
