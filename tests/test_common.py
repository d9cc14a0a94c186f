"""ocf.prob and the common plugin's generic components."""

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, Normal, kl_divergence

import ocf_common
from ocf import prob
from ocf.components import BuildContext
from ocf.errors import SpecError
from ocf.records import Batch, DiagonalGaussian, Latents, PriorTerms, Rendering, State
from ocf.registry import Registry
from ocf.testing import check_component
from ocf_common.components import (
    COMPONENTS,
    CNNEncoder,
    GaussianNLLObjective,
    KLObjective,
    MixtureNLLObjective,
    MSEObjective,
    NormalPrior,
    SpatialBroadcastDecoder,
)


def ctx(frames=1, resolution=(16, 16), **dims):
    c = BuildContext(channels=3, frames=frames, resolution=resolution)
    c.dims.update({k.replace("__", "."): v for k, v in dims.items()})
    return c


def build(cls, c, **params):
    return cls(cls.Spec(**params), c)


# -- ocf.prob -------------------------------------------------------------------------
def test_gaussian_from_params_respects_min_std():
    mean, raw = torch.zeros(1000), torch.linspace(-30, 30, 1000)
    for kind in ("exp_clamp", "softplus"):
        g = prob.gaussian_from_params(mean, raw, kind, min_std=1e-3)
        assert (g.std >= 1e-3 * (1 - 1e-6)).all() and torch.isfinite(g.std).all()
    assert torch.allclose(prob.gaussian_from_params(mean, torch.zeros(3), "exp_clamp").std, torch.ones(3))
    with pytest.raises(ValueError):
        prob.gaussian_from_params(mean, raw, "cube")


def test_gaussian_log_likelihood_matches_torch():
    x, m = torch.randn(5, 4), torch.randn(5, 4)
    assert torch.allclose(prob.gaussian_log_likelihood(x, m, 0.3), Normal(m, 0.3).log_prob(x), atol=1e-5)


def test_gaussian_kl_matches_torch():
    q = DiagonalGaussian(torch.randn(6), torch.rand(6) + 0.1)
    p = DiagonalGaussian(torch.randn(6), torch.rand(6) + 0.1)
    ref = kl_divergence(Normal(q.mean, q.std), Normal(p.mean, p.std))
    assert torch.allclose(q.kl(p), ref, atol=1e-5)
    ref0 = kl_divergence(Normal(q.mean, q.std), Normal(0.0, 1.0))
    assert torch.allclose(q.kl(), ref0, atol=1e-5)
    # the old spellings still work, with a warning saying what to write
    with pytest.warns(DeprecationWarning, match=r"write q.kl\(p\)"):
        assert torch.equal(prob.kl_normal_normal(q, p), q.kl(p))
    with pytest.warns(DeprecationWarning, match=r"write q.kl\(\)"):
        assert torch.equal(q.kl_to_standard_normal(), q.kl())


def test_bernoulli_log_prob_matches_torch():
    logits, x = torch.randn(20), torch.randint(0, 2, (20,)).float()
    assert torch.allclose(prob.bernoulli_log_prob(logits, x), Bernoulli(logits=logits).log_prob(x), atol=1e-5)


def test_mixture_log_likelihood_matches_direct_computation():
    b, t, k, c, h, w = 2, 3, 4, 3, 5, 6
    x, rgb, logits = torch.rand(b, t, c, h, w), torch.rand(b, t, k, c, h, w), torch.randn(b, t, k, h, w)
    sigma = 0.3
    weights = logits.softmax(dim=2)
    direct = sum(weights[:, :, j, None] * Normal(rgb[:, :, j], sigma).log_prob(x).exp() for j in range(k)).log()
    ours = prob.mixture_log_likelihood(x, rgb, logits, sigma)
    assert ours.shape == (b, t, c, h, w)
    assert torch.allclose(ours, direct, atol=1e-5)


def test_mixture_log_likelihood_stays_finite_where_naive_underflows():
    x = torch.ones(1, 1, 3, 4, 4)
    rgb = torch.zeros(1, 1, 2, 3, 4, 4)  # every component is 100 sigmas away
    logits = torch.randn(1, 1, 2, 4, 4, requires_grad=True)
    sigma = 0.01
    naive = (
        (logits.softmax(2).unsqueeze(3) * prob.gaussian_log_likelihood(x.unsqueeze(2), rgb, sigma).exp()).sum(2).log()
    )
    assert torch.isinf(naive).all()
    ours = prob.mixture_log_likelihood(x, rgb, logits, sigma)
    assert torch.isfinite(ours).all()
    assert torch.allclose(ours, Normal(0.0, sigma).log_prob(torch.tensor(1.0)).expand_as(ours))
    ours.sum().backward()
    assert torch.isfinite(logits.grad).all()


# -- conformance and registration -------------------------------------------------------
@pytest.mark.parametrize("kind,name,cls", COMPONENTS, ids=[n for _, n, _ in COMPONENTS])
def test_conformance(kind, name, cls):
    check_component(cls)


def test_hook_registers_every_component():
    reg = Registry()
    ocf_common.ocf_register_components(reg.bound("common"))
    assert {(k, n) for k, n, _ in COMPONENTS} == {(e.kind, e.name) for e in reg.entries()}
    for _, _, cls in COMPONENTS:
        assert cls.describe() and "\n" not in cls.describe()
        for name, field in cls.Spec.model_fields.items():
            if name != "weight":
                assert field.description, f"{cls.__name__}.{name} has no description"


# -- encoder ----------------------------------------------------------------------------
def test_cnn_encoder_shapes_and_dims():
    c = ctx(frames=2, resolution=(16, 12))
    enc = build(CNNEncoder, c, channels=[8, 16], strides=[2, 1], kernel_size=5)
    feats = enc(State(Batch(torch.rand(3, 2, 3, 16, 12))))
    assert feats.grid == (8, 6) and feats.tokens.shape == (3, 2, 48, 16)
    assert c.dims["features.tokens"] == 16 and c.dims["features.grid"] == (8, 6)


def test_cnn_encoder_spec_rejects_mismatched_strides():
    with pytest.raises(ValueError, match="strides"):
        CNNEncoder.Spec(channels=[8, 8], strides=[1])
    with pytest.raises(ValueError, match="kernel_size has 1 entries but channels has 2"):
        CNNEncoder.Spec(channels=[8, 8], kernel_size=[3])


def test_cnn_encoder_kernel_per_layer():
    """The unofficial SetCon encoder's layout: a 7x7 stride-2 conv, then 3x3 convs."""
    c = ctx(frames=1, resolution=(64, 64))
    enc = build(CNNEncoder, c, channels=[16, 32, 8], strides=[2, 2, 2], kernel_size=[7, 3, 3])
    convs = [m for m in enc.convs if isinstance(m, torch.nn.Conv2d)]
    assert [m.kernel_size for m in convs] == [(7, 7), (3, 3), (3, 3)] and [m.padding for m in convs] == [
        (3, 3),
        (1, 1),
        (1, 1),
    ]
    feats = enc(State(Batch(torch.rand(2, 1, 3, 64, 64))))
    assert feats.grid == (8, 8) and feats.tokens.shape == (2, 1, 64, 8) and c.dims["features.grid"] == (8, 8)


def test_encoder_position_embedding_breaks_translation_symmetry():
    enc = build(CNNEncoder, ctx(), channels=[8])
    tokens = enc(State(Batch(torch.zeros(1, 1, 3, 16, 16)))).tokens
    assert not torch.allclose(tokens[0, 0, 0], tokens[0, 0, -1])


# -- decoder ----------------------------------------------------------------------------
def test_spatial_broadcast_shapes_masks_and_recon():
    c = ctx(frames=1, latents__objects=8)
    dec = build(SpatialBroadcastDecoder, c, channels=[8, 8])
    r = dec(State(Batch(torch.rand(2, 1, 3, 16, 16)), latents=Latents(objects=torch.randn(2, 5, 8))))
    assert r.recon.shape == (2, 1, 3, 16, 16) and r.rgb.shape == (2, 1, 5, 3, 16, 16)
    assert r.mask_logits.shape == (2, 1, 5, 16, 16)
    assert torch.allclose(r.masks.sum(dim=2), torch.ones(2, 1, 16, 16))
    assert torch.allclose(r.recon, (r.masks.unsqueeze(3) * r.rgb).sum(2), atol=1e-6)


def test_fused_broadcast_conv_equals_broadcast_then_conv():
    from ocf_common.layers import Broadcast, BroadcastConv

    conv = torch.nn.Conv2d(6, 5, 3, padding=1)
    fused = BroadcastConv(conv, (7, 9))
    plain = Broadcast(6, (7, 9))
    plain.pos.load_state_dict(fused.pos.state_dict())
    z = torch.randn(4, 6)
    assert torch.allclose(fused(z), conv(plain(z)), atol=1e-5)
    with pytest.raises(ValueError):
        BroadcastConv(torch.nn.Conv2d(6, 5, 3, stride=2, padding=1), (7, 9))


def test_spatial_broadcast_over_time():
    c = ctx(frames=3, resolution=(8, 8), latents__objects=4)
    dec = build(SpatialBroadcastDecoder, c, channels=[4], rgb_activation="sigmoid")
    batch = Batch(torch.rand(2, 3, 3, 8, 8))
    shared = dec(State(batch, latents=Latents(objects=torch.randn(2, 2, 4))))
    assert shared.recon.shape == (2, 3, 3, 8, 8) and torch.equal(shared.recon[:, 0], shared.recon[:, 2])
    assert (shared.rgb >= 0).all() and (shared.rgb <= 1).all()
    per_frame = dec(State(batch, latents=Latents(objects=torch.randn(2, 3, 2, 4))))
    assert per_frame.rgb.shape == (2, 3, 2, 3, 8, 8)


def test_spatial_broadcast_upsampling():
    c = ctx(resolution=(32, 32), latents__objects=4)
    dec = build(SpatialBroadcastDecoder, c, channels=[4, 4, 4], upsample=2, broadcast_size=(8, 8), kernel_size=5)
    r = dec(State(Batch(torch.rand(1, 1, 3, 32, 32)), latents=Latents(objects=torch.randn(1, 2, 4))))
    assert r.recon.shape == (1, 1, 3, 32, 32)
    with pytest.raises(ValueError, match="resolution"):
        build(SpatialBroadcastDecoder, c, channels=[4, 4], upsample=1, broadcast_size=(8, 8))


# -- prior ------------------------------------------------------------------------------
def test_normal_prior_kl_matches_torch_and_samples():
    c = ctx(frames=2, latents__objects=6, latents__num_slots=3, latents__frames=5)
    prior = build(NormalPrior, c)
    post = DiagonalGaussian(torch.randn(4, 3, 6), torch.rand(4, 3, 6) + 0.1)
    frame_post = DiagonalGaussian(torch.randn(4, 2, 5), torch.rand(4, 2, 5) + 0.1)
    terms = prior(
        State(Batch(torch.rand(4, 2, 3, 16, 16)), latents=Latents(posterior=post, frame_posterior=frame_post))
    ).terms
    ref = kl_divergence(Normal(post.mean, post.std), Normal(0.0, 1.0)).sum((1, 2)).mean()
    ref_f = kl_divergence(Normal(frame_post.mean, frame_post.std), Normal(0.0, 1.0)).sum((1, 2)).mean()
    assert torch.allclose(terms["kl"], ref, atol=1e-5) and torch.allclose(terms["frame_kl"], ref_f, atol=1e-5)
    s = prior.sample(7, generator=torch.Generator().manual_seed(0))
    assert s.objects.shape == (7, 3, 6) and s.frames.shape == (7, 2, 5)


# -- objectives -------------------------------------------------------------------------
def rendering_state(b=2, t=1, k=3, c=3, h=4, w=4):
    rgb, logits = torch.rand(b, t, k, c, h, w), torch.randn(b, t, k, h, w)
    recon = (logits.softmax(2).unsqueeze(3) * rgb).sum(2)
    return State(Batch(torch.rand(b, t, c, h, w)), rendering=Rendering(recon=recon, rgb=rgb, mask_logits=logits))


def test_mse_and_gaussian_nll():
    s, c = rendering_state(), ctx()
    assert torch.allclose(build(MSEObjective, c)(s)["mse"], F.mse_loss(s.rendering.recon, s.batch.frames))
    ll = Normal(s.rendering.recon, 0.2).log_prob(s.batch.frames)  # [b t c h w]
    nll = {r: build(GaussianNLLObjective, c, sigma=0.2, reduction=r)(s)["nll"] for r in ("sum", "mean_pixel", "mean")}
    assert torch.allclose(nll["sum"], -ll.flatten(1).sum(1).mean(), atol=1e-4)
    assert torch.allclose(nll["mean_pixel"], -ll.sum(2).mean(), atol=1e-5)
    assert torch.allclose(nll["mean"], -ll.mean(), atol=1e-5)


def test_mixture_nll_uses_the_rendering_target():
    s, c = rendering_state(), ctx()
    s.rendering.target = torch.rand_like(s.batch.frames)
    r = s.rendering
    expected = -prob.mixture_log_likelihood(r.target, r.rgb, r.mask_logits, 0.1).flatten(1).sum(1).mean()
    assert torch.allclose(build(MixtureNLLObjective, c, sigma=0.1)(s)["nll"], expected)


def test_kl_objective_sums_or_selects_terms():
    s = State(
        Batch(torch.rand(1, 1, 3, 4, 4)),
        prior=PriorTerms(terms={"kl": torch.tensor(2.0), "frame_kl": torch.tensor(3.0)}),
    )
    assert build(KLObjective, ctx())(s) == {"kl": torch.tensor(5.0)}
    assert build(KLObjective, ctx(), terms=["frame_kl"], name="frame_kl")(s) == {"frame_kl": torch.tensor(3.0)}
    with pytest.raises(ValueError, match="no term scene_kl"):
        build(KLObjective, ctx(), terms=["scene_kl"])(s)


def test_spec_errors_name_the_path():
    from ocf.spec import resolve

    reg = Registry()
    ocf_common.ocf_register_components(reg.bound("common"))
    data = {
        "data": {"dataset": "shapes", "path": "x.h5"},
        "model": {"encoder": {"type": "cnn", "kernel_size": 0}, "objectives": [{"type": "mixture_nll", "sigma": -1}]},
    }
    with pytest.raises(SpecError) as err:
        resolve(data, reg)
    text = str(err.value)
    assert "model.encoder.kernel_size" in text and "model.objectives.0.sigma" in text
