"""AIR / SQAIR plugin: estimators on a toy model with a tractable likelihood, the
components' behaviour, the prior's sampling path, and that the model learns."""

import itertools
import math

import pytest
import torch

from ocf import plugins
from ocf.components import BuildContext
from ocf.metrics import CountAccuracy
from ocf.records import Batch, State
from ocf.spec import load
from ocf_sqair.decoder import GlimpseDecoder
from ocf_sqair.encoder import FrameEncoder
from ocf_sqair.estimators import iwae_bound, learning_signal, leave_one_out_bound, surrogate
from ocf_sqair.grouper import SqairGrouper
from ocf_sqair.metrics import DiscoveryRate, IwaeBound
from ocf_sqair.objective import IwaeObjective
from ocf_sqair.prior import SqairPrior

REGISTRY = plugins.default().registry


# ----------------------------------------------------------------- toy model, exact answers
# z ∈ {0, 1}; p(z = 1) = 0.3; p(x | z) = N(x; μ_z, 1) with μ = (−1, 2); x = 1.5 observed.
# q(z = 1) = sigmoid(φ).  log p(x) and E[IWAE_k] are computed exactly by enumeration.
PRIOR1, MU, X = 0.3, torch.tensor([-1.0, 2.0]), 1.5


def toy_log_joint(z):
    log_prior = torch.where(z > 0, math.log(PRIOR1), math.log(1 - PRIOR1))
    return log_prior - 0.5 * (X - MU[z.long()]) ** 2 - 0.5 * math.log(2 * math.pi)


def toy_log_q(z, phi):
    return -torch.nn.functional.binary_cross_entropy_with_logits(phi.expand_as(z.float()), z.float(), reduction="none")


def exact_expected_iwae(k, phi):
    """E_q[IWAE_k] by summing over all 2^k particle configurations (differentiable in φ)."""
    total = 0.0
    for combo in itertools.product([0, 1], repeat=k):
        z = torch.tensor(combo)
        log_q = toy_log_q(z, phi)
        log_w = toy_log_joint(z) - log_q
        total = total + log_q.sum().exp() * iwae_bound(log_w.unsqueeze(1))[0]
    return total


def test_iwae_bound_rises_with_k_towards_log_px():
    log_px = float(torch.logsumexp(toy_log_joint(torch.tensor([0, 1])), 0))
    phi = torch.tensor(-1.0)
    g = torch.Generator().manual_seed(0)
    means = []
    for k in (1, 2, 5, 20, 200):
        z = (torch.rand(k, 4000, generator=g) < torch.sigmoid(phi)).long()  # [p b]
        log_w = toy_log_joint(z) - toy_log_q(z, phi)
        means.append(float(iwae_bound(log_w).mean()))
    assert all(a < b for a, b in zip(means, means[1:])), means
    assert means[-1] <= log_px + 1e-3 and log_px - means[-1] < 0.01
    assert log_px - means[0] > 0.2  # k = 1 (the ELBO) is clearly looser
    # the sampled k = 5 mean agrees with the exact expectation
    assert abs(means[2] - float(exact_expected_iwae(5, phi))) < 0.02


def test_leave_one_out_bound_matches_its_definition():
    log_w = torch.randn(4, 3)
    got = leave_one_out_bound(log_w)
    for j in range(4):
        replaced = log_w.clone()
        replaced[j] = torch.cat([log_w[:j], log_w[j + 1 :]]).mean(0)
        assert torch.allclose(got[j], torch.logsumexp(replaced, 0) - math.log(4), atol=1e-6)
    with pytest.raises(ValueError, match="at least 2 particles"):
        leave_one_out_bound(torch.randn(1, 3))


def _gradient_samples(kind, k=4, reps=20000, phi0=-0.5, seed=0):
    """Per-replicate estimates of d E[IWAE_k] / dφ from the surrogate loss."""
    g = torch.Generator().manual_seed(seed)
    phi = torch.full((reps,), phi0, requires_grad=True)
    z = (torch.rand(k, reps, generator=g) < torch.sigmoid(phi.detach())).long()
    log_q = toy_log_q(z, phi)
    log_w = toy_log_joint(z) - log_q
    bound, score = surrogate(log_w, log_q, kind)
    (bound + score).sum().backward()
    return phi.grad


def test_vimco_gradient_is_unbiased_and_beats_reinforce():
    phi = torch.tensor(-0.5, requires_grad=True)
    exact = torch.autograd.grad(exact_expected_iwae(4, phi), phi)[0]
    vimco, reinforce = _gradient_samples("vimco"), _gradient_samples("reinforce")
    for est in (vimco, reinforce):
        stderr = est.std() / math.sqrt(len(est))
        assert abs(est.mean() - exact) < 4 * stderr + 1e-4, (float(est.mean()), float(exact), float(stderr))
    assert vimco.var() < 0.5 * reinforce.var()
    # the reference code's signal also has far lower variance than plain REINFORCE
    assert _gradient_samples("reference").var() < 0.5 * reinforce.var()
    # without any score-function term the estimator misses the discrete part: biased
    none = _gradient_samples("none")
    assert abs(none.mean() - exact) > 10 * none.std() / math.sqrt(len(none))


def test_learning_signals():
    log_w = torch.tensor([[0.0, 1.0], [2.0, 1.0], [1.0, 1.0]])
    base = leave_one_out_bound(log_w)
    assert torch.allclose(learning_signal(log_w, "vimco"), iwae_bound(log_w) - base)
    assert torch.allclose(learning_signal(log_w, "reference"), log_w - base)
    assert torch.allclose(learning_signal(log_w, "reinforce"), iwae_bound(log_w).expand(3, 2))
    assert not learning_signal(log_w.requires_grad_(), "vimco").requires_grad
    # equal weights: every baseline is exact, every VIMCO signal 0
    assert torch.allclose(learning_signal(log_w, "vimco")[:, 1], torch.zeros(3), atol=1e-6)
    with pytest.raises(ValueError, match="unknown learning signal"):
        learning_signal(log_w, "nvil")


# ------------------------------------------------------------------------ the components
def _model(b=2, t=3, k=3, res=(24, 24), propagate=True, particles=3, decoder=None, **grouper):
    ctx = BuildContext(1, t, res)
    enc = FrameEncoder(FrameEncoder.Spec(hidden=[16]), ctx)
    spec = dict(
        max_objects=k, what_dim=4, glimpse_size=6, hidden=[16], rnn_hidden=16, propagate=propagate, particles=particles
    )
    grp = SqairGrouper(SqairGrouper.Spec(**{**spec, **grouper}), ctx)
    prior = SqairPrior(SqairPrior.Spec(hidden=[16], rnn_hidden=16), ctx)
    dec = GlimpseDecoder(GlimpseDecoder.Spec(**{"glimpse_size": 6, "hidden": [16], **(decoder or {})}), ctx)
    return ctx, enc, grp, prior, dec


def _run(parts, frames):
    _, enc, grp, prior, dec = parts
    state = State(Batch(frames))
    state.features = enc(state)
    state.latents = grp(state)
    state.prior = prior(state)
    state.rendering = dec(state)
    return state


def test_grouper_particles_shapes_and_discovery_stops_at_the_first_zero():
    torch.manual_seed(0)
    parts = _model(b=4, t=3, propagate=False, particles=3, discovery_presence_bias=0.5)
    state = _run(parts, torch.rand(4, 3, 1, 24, 24))
    lat, ex = state.latents, state.latents.extras
    assert lat.objects.shape == (4, 3, 3, 4) and lat.presence.shape == (4, 3, 3) and lat.where.shape == (4, 3, 3, 4)
    assert ex["what"].shape == (12, 3, 3, 4) and ex["log_q"].shape == (12, 3) and ex["num_particles"] == 3
    assert torch.equal(lat.presence, ex["presence"][:4])  # particle 0 is the first b rows
    pres = ex["presence"]
    assert set(pres.unique().tolist()) <= {0.0, 1.0}
    assert (pres[..., 1:] <= pres[..., :-1]).all()  # once 0, every later presence is 0
    assert (pres.sum(-1) < 3).any() and (pres.sum(-1) > 0).any()  # both outcomes occur
    assert ex["prop_decided"].sum() == 0  # AIR: no propagation
    # discovery decides a slot only while every earlier free slot was present
    decided = ex["disc_decided"]
    assert torch.equal(decided[..., 1:], pres[..., :-1])
    assert torch.equal(decided[..., 0], torch.ones_like(decided[..., 0]))
    # boxes: scale in (0, 1), shift in (-1, 1)
    assert (lat.where[..., :2] > 0).all() and (lat.where[..., :2] < 1).all() and (lat.where[..., 2:].abs() < 1).all()


@pytest.mark.parametrize("propagate", [False, True])
def test_square_glimpses_use_one_scale_and_give_the_second_no_density(propagate):
    torch.manual_seed(0)
    parts = _model(b=3, t=2, propagate=propagate, particles=2, square_glimpses=True, discovery_presence_bias=3.0)
    state = _run(parts, torch.rand(3, 2, 1, 24, 24))
    ex = state.latents.extras
    assert ex["presence"].sum() > 0
    assert torch.equal(ex["where"][..., 0], ex["where"][..., 1])  # sx = sy = sigmoid(raw[0])
    assert torch.equal(ex["where"][..., 0], torch.sigmoid(ex["where_raw"][..., 0]))
    assert torch.equal(
        ex["where_raw"][..., 0], ex["where_raw"][..., 1]
    )  # one consistent raw scale for the priors' RNNs
    # log p has no density on the second scale: perturbing it alone, at the last slot
    # of the last frame (which no later recurrence reads), leaves log p unchanged
    _, _, _, prior, _ = parts
    bump = torch.zeros_like(ex["where_raw"])
    bump[:, -1, -1, 1] = 5.0
    assert torch.allclose(prior.log_prob({**ex, "where_raw": ex["where_raw"] + bump}), prior.log_prob(ex))
    bump[:, -1, -1, 0] = 5.0
    discovered_last = ex["discovered"][:, -1, -1] > 0
    if discovered_last.any():  # the first scale does have a density
        assert not torch.allclose(prior.log_prob({**ex, "where_raw": ex["where_raw"] + bump}), prior.log_prob(ex))
    from ocf.records import DiagonalGaussian
    from ocf_sqair.common import constrain, where_log_prob

    raw = torch.randn(5, 4)
    dist = DiagonalGaussian(torch.zeros(4), torch.ones(4))
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(raw[:, [0, 2, 3]]).sum(-1)
    assert torch.allclose(where_log_prob(dist, raw, square=True), expected)
    assert torch.allclose(where_log_prob(dist, raw), torch.distributions.Normal(0.0, 1.0).log_prob(raw).sum(-1))
    assert torch.equal(constrain(raw)[:, 1], torch.sigmoid(raw[:, 1]))  # default: separate scales


def test_fixed_discovery_where_prior_is_the_stated_gaussian():
    ctx = BuildContext(1, 1, (24, 24))
    ctx.dims.update({"latents.num_slots": 3, "latents.objects": 4, "sqair.propagate": False})
    prior = SqairPrior(
        SqairPrior.Spec(
            hidden=[8],
            rnn_hidden=8,
            discovery_where="fixed",
            fixed_scale=0.25,
            fixed_scale_std=0.3,
            fixed_shift_std=0.8,
        ),
        ctx,
    )
    dist = prior._where(torch.randn(5, 8))
    assert torch.allclose(dist.mean, torch.tensor([math.log(1 / 3), math.log(1 / 3), 0.0, 0.0]).expand(5, 4))
    assert torch.allclose(dist.std, torch.tensor([0.3, 0.3, 0.8, 0.8]).expand(5, 4))
    drawn = prior.sample(2000, generator=torch.Generator().manual_seed(0))
    scale = drawn.where[..., 0][drawn.presence > 0]  # boxes of the objects the prior drew
    assert len(scale) > 500
    assert abs(scale.median().item() - 0.25) < 0.02  # sigmoid keeps the median of the logit


def test_propagation_keeps_slots_and_never_revives_absent_objects():
    torch.manual_seed(1)
    parts = _model(b=3, t=4, propagate=True, particles=2)
    ex = _run(parts, torch.rand(3, 4, 1, 24, 24)).latents.extras
    pres, prop, disc, dec = ex["presence"], ex["propagated"], ex["discovered"], ex["prop_decided"]
    assert torch.equal(dec[:, 1:], pres[:, :-1]) and dec[:, 0].sum() == 0  # decided iff present at t−1
    assert (prop <= dec).all()  # an object absent at t−1 cannot be propagated
    assert torch.equal(pres, prop + disc) and (prop * disc == 0).all()
    assert torch.equal(ex["free"], 1 - prop)


def test_identities_stable_on_a_sequence_with_known_motion():
    """Two squares move with known velocities.  Propagation that keeps every object
    (presence bias +50) must keep each object of the first frame in its own slot, as a
    propagated object, at every later frame, whatever discovery does meanwhile: identity
    is the slot index.  (Whether the learned locations follow the objects is measured by
    the benchmark, not here.)"""
    torch.manual_seed(2)
    t_len, res = 5, 24
    frames = torch.zeros(2, t_len, 1, res, res)
    for t in range(t_len):
        frames[:, t, 0, 2 + t : 8 + t, 2:8] = 1.0  # down by 1 px / frame
        frames[:, t, 0, 14:20, 16 - 2 * t : 22 - 2 * t] = 1.0  # left by 2 px / frame
    parts = _model(
        b=2, t=t_len, propagate=True, particles=4, propagation_presence_bias=50.0, discovery_presence_bias=2.0
    )
    ex = _run(parts, frames).latents.extras
    pres, prop = ex["presence"], ex["propagated"]
    first = pres[:, 0]
    assert first.sum() > 0
    for t in range(1, t_len):
        assert torch.equal(prop[:, t] * first, first)  # still there, in the same slot, propagated
        assert torch.equal(ex["discovered"][:, t] * first, torch.zeros_like(first))  # never rediscovered


def test_mask_propagated_blanks_what_propagation_explains():
    """With ``mask_propagated`` discovery reads the frame with the propagated objects'
    boxes blanked: pixels inside them are 0, the rest unchanged."""
    torch.manual_seed(3)
    k = 2
    parts = _model(
        b=2,
        t=2,
        k=k,
        propagate=True,
        particles=1,
        mask_propagated=True,
        propagation_presence_bias=50.0,
        discovery_presence_bias=50.0,
    )
    grp = parts[2]
    seen = []
    original = grp._glimpse
    grp._glimpse = lambda img, w: (seen.append(img.detach().clone()), original(img, w))[1]
    frames = torch.rand(2, 2, 1, 24, 24) + 0.1
    ex = _run(parts, frames).latents.extras
    assert ex["propagated"][:, 1].sum() == 2 * k  # every object of frame 0 was propagated
    discovery_t1 = seen[k + 2 * k :]  # frame 0: k discovery glimpses; frame 1: 2 per propagated slot, then discovery
    assert len(discovery_t1) == k
    img = discovery_t1[0]
    for i in range(2):
        for j in range(k):
            sx, sy, tx, ty = ex["where"][i, 1, j].tolist()
            x0, y0, x1, y1 = (tx - sx + 1) * 12, (ty - sy + 1) * 12, (tx + sx + 1) * 12, (ty + sy + 1) * 12
            cx, cy = int((x0 + x1) / 2), int((y0 + y1) / 2)
            if 0 <= cx < 24 and 0 <= cy < 24 and x1 - x0 > 4 and y1 - y0 > 4:
                assert img[i, 0, cy, cx] == 0  # the box centre is blanked
        assert (img[i] == frames[i, 1]).any()  # not everything is
    # without the option discovery reads the frame as it is
    seen.clear()
    grp.spec = grp.spec.model_copy(update={"mask_propagated": False})
    _run(parts, frames)
    assert torch.equal(seen[k + 2 * k], frames[:, 1])


def test_prior_count_logits_and_log_prob_pieces():
    ctx = BuildContext(1, 3, (16, 16), dims={"latents.objects": 4, "latents.num_slots": 3, "sqair.propagate": True})
    prior = SqairPrior(SqairPrior.Spec(hidden=[8], rnn_hidden=8, first_frame_penalty=1.0, later_frame_penalty=5.0), ctx)
    free = torch.tensor([3.0, 1.0])
    first = prior._count_logits(0, free)
    assert torch.allclose(first[0], torch.log_softmax(torch.tensor([0.0, -1.0, -2.0, -3.0]), 0))
    assert (
        torch.allclose(first[1, :2], torch.log_softmax(torch.tensor([0.0, -1.0]), 0))
        and torch.isinf(first[1, 2:]).all()
    )
    later = prior._count_logits(2, free)
    assert later[0, 0].exp() > 0.99  # strongly biased towards no new object after the first frame
    # AIR (no propagation): every frame uses the first-frame counts
    ctx_air = BuildContext(
        1, 3, (16, 16), dims={"latents.objects": 4, "latents.num_slots": 3, "sqair.propagate": False}
    )
    air = SqairPrior(SqairPrior.Spec(hidden=[8], rnn_hidden=8), ctx_air)
    assert torch.allclose(air._count_logits(2, free), air._count_logits(0, free))
    # log p of an empty frame is exactly the count term for 0 objects
    ex = {k: torch.zeros(1, 1, 3) for k in ("presence", "propagated", "discovered", "prop_decided")}
    ex.update(free=torch.ones(1, 1, 3), what=torch.zeros(1, 1, 3, 4), where_raw=torch.zeros(1, 1, 3, 4))
    assert torch.allclose(prior.log_prob(ex)[0, 0], first[0, 0])
    # one discovered object adds count, recurrent-where and N(0, I) what terms
    ex1 = {**ex, "presence": torch.tensor([[[1.0, 0, 0]]]), "discovered": torch.tensor([[[1.0, 0, 0]]])}
    what = torch.randn(4)
    ex2 = {**ex1, "what": torch.cat([what, torch.zeros(8)]).view(1, 1, 3, 4)}
    diff = prior.log_prob(ex2) - prior.log_prob(ex1)
    assert torch.allclose(
        diff,
        torch.distributions.Normal(0, 1).log_prob(what).sum()
        - torch.distributions.Normal(0, 1).log_prob(torch.zeros(4)).sum(),
        atol=1e-5,
    )


def test_prior_sample_unconditional_and_conditional():
    ctx, enc, grp, prior, dec = _model(b=3, t=4, propagate=True, particles=2)
    with torch.no_grad():
        prior.count_logits.copy_(torch.tensor([[0.0, 0.0, -20.0, -20.0], [0.0, -20.0, -20.0, -20.0]]))
    g = torch.Generator().manual_seed(0)
    lat = prior.sample(400, generator=g, frames=5)
    assert (
        lat.objects.shape == (400, 5, 3, 4) and lat.presence.shape == (400, 5, 3) and lat.where.shape == (400, 5, 3, 4)
    )
    counts = lat.presence.sum(-1)
    assert set(counts[:, 0].unique().tolist()) == {0.0, 1.0}  # 0 or 1 new objects, equally likely
    assert 0.4 < counts[:, 0].mean() < 0.6
    assert (counts[:, 1:] <= counts[:, :1]).all()  # no discovery later; propagation (bias +10) keeps objects
    assert counts[:, 1:].mean() > 0.9 * counts[:, 0].mean()
    # deterministic under a generator
    again = prior.sample(400, generator=torch.Generator().manual_seed(0), frames=5)
    assert torch.equal(again.presence, lat.presence) and torch.equal(again.objects, lat.objects)
    # conditional: the first frames are the inferred ones, the prior continues from them
    frames = torch.rand(3, 2, 1, 24, 24)
    grp.eval()
    state = _run((ctx, enc, grp, prior, dec), frames)
    cond = prior.sample(3, condition=state, frames=4, generator=g)
    assert cond.presence.shape == (3, 4, 3)
    assert torch.equal(cond.presence[:, :2], state.latents.presence)
    assert torch.equal(cond.where[:, :2], state.latents.where)
    assert (cond.presence[:, 2:].sum(-1) >= 0).all()
    with pytest.raises(ValueError, match="ask for n = 3"):
        prior.sample(5, condition=state, frames=4)
    # the decoder renders sampled latents on a zero placeholder batch
    placeholder = State(Batch(torch.zeros(3, 4, 1, 24, 24)), latents=cond)
    rendering = dec(placeholder)
    assert rendering.recon.shape == (3, 4, 1, 24, 24) and torch.isfinite(rendering.recon).all()


def test_air_prior_samples_every_frame_afresh():
    ctx = BuildContext(1, 3, (16, 16), dims={"latents.objects": 4, "latents.num_slots": 3, "sqair.propagate": False})
    air = SqairPrior(SqairPrior.Spec(hidden=[8], rnn_hidden=8, first_frame_penalty=0.0), ctx)
    assert not hasattr(air, "temporal")  # no propagation prior to train
    lat = air.sample(300, generator=torch.Generator().manual_seed(0), frames=3)
    assert lat.extras["propagated"].sum() == 0
    counts = lat.presence.sum(-1)  # uniform over 0..3 new objects on every frame
    for t in range(3):
        assert 1.2 < counts[:, t].mean() < 1.8
    assert (counts[:, 1] != counts[:, 0]).float().mean() > 0.5  # frames are independent


def test_decoder_places_present_objects_over_the_background():
    ctx = BuildContext(1, 1, (16, 16), dims={"latents.objects": 3})
    dec = GlimpseDecoder(GlimpseDecoder.Spec(glimpse_size=8, hidden=[8], output_scale=1.0, sigma=0.5), ctx)
    with torch.no_grad():
        dec.background.fill_(0.1)
    what = torch.randn(1, 1, 2, 3)
    where = torch.tensor([0.5, 0.5, -0.5, -0.5]).expand(1, 1, 2, 4)  # the top-left 8x8 quadrant
    absent = dec.render(what, torch.zeros(1, 1, 2), where)[0]
    assert torch.allclose(absent, torch.full_like(absent, 0.1))
    canvas, layers = dec.render(what, torch.tensor([[[1.0, 0.0]]]), where)
    patch = torch.sigmoid(dec.net(what[0, 0, 0])).view(8, 8)
    assert torch.allclose(canvas[0, 0, 0, :8, :8], 0.1 + patch, atol=1e-5)
    assert torch.allclose(canvas[0, 0, 0, 8:, :], torch.full((8, 16), 0.1))
    assert layers[0, 0, 1].abs().max() == 0
    # the likelihood is N(x; canvas, σ²) summed over pixels
    state = State(Batch(torch.rand(1, 1, 1, 16, 16)))
    from ocf.records import Latents

    state.latents = Latents(objects=what, presence=torch.tensor([[[1.0, 0.0]]]), where=where)
    r = dec(state)
    expected = torch.distributions.Normal(r.recon, 0.5).log_prob(state.batch.frames).sum()
    assert torch.allclose(r.extras["log_lik"].sum(), expected, atol=1e-3)


def test_objective_and_metrics_agree_with_an_independent_computation():
    torch.manual_seed(3)
    parts = _model(b=2, t=2, particles=4)
    state = _run(parts, torch.rand(2, 2, 1, 24, 24))
    terms = IwaeObjective(IwaeObjective.Spec(), None)(state)
    log_w = (
        (state.rendering.extras["log_lik"] + state.prior.extras["log_p"] - state.latents.extras["log_q"])
        .sum(1)
        .view(4, 2)
    )
    bound = torch.logsumexp(log_w, 0) - math.log(4)
    assert torch.allclose(terms["nll_iwae"], -bound.mean())
    assert float(terms["vimco"].detach()) == 0.0 and terms["vimco"].requires_grad
    metric = IwaeBound()
    metric.update_state(state)
    assert torch.allclose(metric.compute().float(), bound.mean())
    rate = DiscoveryRate()
    rate.update_state(state)
    disc = state.latents.extras["discovered"][:2, 1:].sum(-1) > 0
    assert float(rate.compute()) == pytest.approx(float(disc.float().mean()))
    state.batch.extras["counts"] = state.latents.presence.sum(-1).long()
    acc = CountAccuracy()
    acc.update_state(state)
    assert float(acc.compute()) == 1.0


def test_vimco_term_moves_the_presence_network():
    torch.manual_seed(4)
    parts = _model(b=2, t=1, propagate=False, particles=3)
    state = _run(parts, torch.rand(2, 1, 1, 24, 24))
    obj = IwaeObjective(IwaeObjective.Spec(signal="vimco"), None)
    obj(state)["vimco"].backward()
    grp = parts[2]
    assert grp.disc_pres[-1].weight.grad.abs().sum() > 0
    assert grp.disc_where[-1].weight.grad.abs().sum() > 0  # through the glimpse the presence reads
    assert all(p.grad is None for p in parts[4].parameters())  # the decoder only enters the (detached) signal


def test_presence_warmup_holds_the_presence_network_then_releases_it():
    torch.manual_seed(5)
    parts = _model(b=2, t=1, propagate=False, particles=3)
    grp = parts[2]
    obj = IwaeObjective(IwaeObjective.Spec(presence_warmup=1), None)
    obj.train()
    for step in range(2):
        grp.zero_grad()
        terms = obj(_run(parts, torch.rand(2, 1, 1, 24, 24)))
        (terms["nll_iwae"] + terms["vimco"]).backward()
        pres_grad = grp.disc_pres[-1].weight.grad
        if step == 0:  # held: no gradient reaches the presence head, the rest learns
            assert pres_grad is None or pres_grad.abs().sum() == 0
            assert grp.disc_what[-1].weight.grad.abs().sum() > 0
        else:
            assert pres_grad.abs().sum() > 0
    assert int(obj.steps) == 2 and "steps" in obj.state_dict()  # resumes with the checkpoint


# ------------------------------------------------------------------------------- learning
def test_air_learns_on_tiny_moving_digits(tmp_path):
    """A few dozen steps of AIR on tiny 16x16 digits: the negative IWAE bound falls clearly
    (by ~45 nats here; a decoder at full output scale starts far from the data)."""
    torch.manual_seed(0)
    from ocf_common.datasets import MovingDigits

    gen = MovingDigits()
    opts = gen.Options(resolution=16, digit_size=6, frames=1, max_digits=2)
    data = gen.generate(64, 0, opts)
    frames = torch.from_numpy(data["frames"]).float().div(255).permute(0, 1, 4, 2, 3)  # [n t c h w]
    ctx, enc, grp, prior, dec = _model(
        t=1, res=(16, 16), propagate=False, particles=3, decoder={"output_scale": 1.0, "output_bias": 0.0}
    )
    modules = torch.nn.ModuleList([enc, grp, prior, dec])
    opt = torch.optim.Adam(modules.parameters(), lr=3e-3)
    obj = IwaeObjective(IwaeObjective.Spec(), None)
    losses = []
    for _ in range(40):
        idx = torch.randint(0, 64, (16,))
        terms = obj(_run((ctx, enc, grp, prior, dec), frames[idx]))
        loss = terms["nll_iwae"] + terms["vimco"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(terms["nll_iwae"].detach()))
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 25, (first, last)


def test_configs_build_and_train_one_step(tmp_path):
    from ocf.run import train

    for name, extra in (
        ("air_digits_32.yaml", []),
        ("sqair_digits_32.yaml", ["data.frames=3"]),
        ("paper_50.yaml", ["data.frames=2", "train.batch_size=2"]),
    ):
        resolved = load(
            f"configs/sqair/{name}",
            REGISTRY,
            ["train.steps=1", "train.eval_every=0", f"data.path={tmp_path}/{name}.h5", "data.generate.n=40", *extra],
        )
        run = train.run(resolved, out=str(tmp_path / name), progress=False)
        assert (run / "checkpoints" / "last.pt").exists()
