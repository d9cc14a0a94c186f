"""The GENESIS-v2 plugin: the UNet's depth, IC-SBP against the stick-breaking formula
(masks sum to one, seeds inside the scope, reproducible under a torch seed), the slot
posterior's independence, the decoder, the autoregressive prior against a step-by-step
LSTM, the mixture likelihood against GENESIS's formula, GECO's direction on a GENESIS
model, and a short learning run."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ocf import plugins
from ocf.assembly import Model, build
from ocf.components import BuildContext
from ocf.errors import SpecError, UserError
from ocf.records import Batch, DiagonalGaussian, Features, Latents, Rendering, State
from ocf.run import train
from ocf.run.data import ensure_dataset
from ocf.spec import resolve
from ocf.testing import check_component
from ocf_genesis.decoder import GenesisDecoder
from ocf_genesis.encoder import PointwiseConv, UNetEncoder
from ocf_genesis.grouper import ICSBPGrouper
from ocf_genesis.metrics import AttentionFgAri
from ocf_genesis.prior import AutoregressivePrior

REGISTRY = plugins.default().registry


def spec(res=16, k=3, prior="normal", **train_kw):
    """A tiny GENESIS-v2: 16x16 → a 3-block UNet (bottom 4x4), K slots of 8, 2-layer decoder."""
    d = {
        "name": "genesis-tiny",
        "data": {
            "dataset": "shapes",
            "path": "unused.h5",
            "resolution": [res, res],
            "generate": {"n": 64, "seed": 0, "options": {"resolution": res, "max_objects": 2}},
        },
        "model": {
            "encoder": {"type": "genesis.unet", "filters": 8, "mlp_hidden": 16},
            "grouper": {"type": "genesis.icsbp", "num_slots": k, "latent_dim": 8},
            "prior": {"type": prior},
            "decoder": {"type": "genesis.decoder", "channels": [16, 8]},
            "objectives": [{"type": "mixture_nll", "sigma": 0.7, "reduction": "sum"}, {"type": "kl"}],
        },
    }
    if train_kw:
        d["train"] = {
            "batch_size": 8,
            "log_every": 1,
            "image_every": 0,
            "checkpoint_every": 1000,
            "optimizer": {"lr": 1e-3},
            **train_kw,
        }
        d["eval"] = {"metrics": ["fg_ari", "genesis.attention_fg_ari", "mse"], "batch_size": 16}
    return d


def tiny_model(seed=0, **kw) -> Model:
    torch.manual_seed(seed)
    return build(resolve(spec(**kw), REGISTRY), dry_run=False)


def images(b=2, res=16, seed=0, t=1) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.rand(b, t, 3, res, res, generator=g), torch.randint(0, 3, (b, t, res, res), generator=g))


def grouper_alone(k=4, c=8, grid=(6, 5), **params) -> ICSBPGrouper:
    ctx = BuildContext(3, 1, grid, dims={"features.tokens": c, "features.grid": grid})
    torch.manual_seed(0)
    return ICSBPGrouper(ICSBPGrouper.Spec(num_slots=k, latent_dim=6, **params), ctx)


def tokens(b=2, c=8, grid=(6, 5), seed=0) -> State:
    g = torch.Generator().manual_seed(seed)
    return State(
        Batch(torch.rand(b, 1, 3, *grid, generator=g)),
        features=Features(tokens=torch.randn(b, 1, grid[0] * grid[1], c, generator=g), grid=grid),
    )


# -- registration and contracts ----------------------------------------------------------
def test_plugin_registers_its_components():
    info = plugins.default().info["genesis"]
    assert info.status == "ok", info.error
    names = {(e.kind, e.name) for e in REGISTRY.entries(plugin="genesis")}
    assert names == {
        ("encoder", "genesis.unet"),
        ("grouper", "genesis.icsbp"),
        ("decoder", "genesis.decoder"),
        ("prior", "genesis.ar_prior"),
        ("metric", "genesis.attention_fg_ari"),
        ("result", "genesis_shapes"),
    }


@pytest.mark.parametrize(
    "cls, params",
    [
        (UNetEncoder, {"filters": 8, "mlp_hidden": 16}),
        (ICSBPGrouper, {"num_slots": 3, "latent_dim": 8}),
        (GenesisDecoder, {"channels": [8, 8]}),
        (AutoregressivePrior, {}),
        (AutoregressivePrior, {"kl": "analytic"}),
    ],
)
def test_conformance(cls, params):
    check_component(cls, params)


@pytest.mark.parametrize("res, blocks, bottom", [(64, 5, 4), (32, 4, 4), (16, 3, 4), (128, 6, 4)])
def test_unet_depth_follows_the_image_size(res, blocks, bottom):
    ctx = BuildContext(3, 1, (res, res))
    enc = UNetEncoder(UNetEncoder.Spec(filters=8, mlp_hidden=8), ctx)
    assert len(enc.down) == len(enc.up) == blocks and enc.bottom[1:] == (bottom, bottom)
    assert ctx.dims["features.tokens"] == 8 and ctx.dims["features.grid"] == (res, res)
    if res <= 32:
        out = enc(State(Batch(torch.rand(2, 1, 3, res, res))))
        assert out.tokens.shape == (2, 1, res * res, 8) and out.grid == (res, res)


def test_unet_has_genesis_channel_plan_and_group_norm():
    enc = UNetEncoder(UNetEncoder.Spec(filters=16), BuildContext(3, 1, (64, 64)))
    outs = [b[0].out_channels for b in enc.down]
    ins = [b[0].in_channels for b in enc.up]
    assert outs == [16, 16, 32, 32, 32] and ins == [64, 64, 64, 32, 32]  # GENESIS's 5-block UNet, c = 16
    assert all(isinstance(b[1], torch.nn.GroupNorm) and b[1].num_groups == 8 for b in [*enc.down, *enc.up])
    assert all(b[0].bias is None for b in enc.down)


def test_bad_sizes_are_reported():
    with pytest.raises(ValueError, match="divisible by groups"):
        UNetEncoder(UNetEncoder.Spec(filters=12), BuildContext(3, 1, (32, 32)))
    with pytest.raises(ValueError, match="not divisible by 8"):
        UNetEncoder(UNetEncoder.Spec(filters=8), BuildContext(3, 1, (36, 36)))
    with pytest.raises(ValueError, match="resolution divisible by 16"):
        GenesisDecoder(
            GenesisDecoder.Spec(channels=[8, 8, 8, 8]), BuildContext(3, 1, (24, 24), dims={"latents.objects": 4})
        )
    d = spec()
    d["model"]["grouper"]["clamp"] = [0.5, 0.2]
    with pytest.raises(SpecError, match="model.grouper: clamp must satisfy"):
        resolve(d, REGISTRY)


# -- IC-SBP ------------------------------------------------------------------------------
def reference_sbp(emb, noise, sigma, k, lo=0.01, hi=0.99):
    """Stick breaking written out pixel by pixel in float64: emb [e n], noise [n] → masks [k n]."""
    e, n = emb.shape
    scope = torch.ones(n, dtype=torch.float64)
    masks = []
    for _ in range(k - 1):
        i = int(torch.argmax(noise * scope))
        alpha = torch.tensor(
            [math.exp(-float(((emb[:, j] - emb[:, i]) ** 2).sum()) / sigma) for j in range(n)], dtype=torch.float64
        )
        alpha = alpha.clamp(lo, hi)
        masks.append(scope * alpha)
        scope = scope * (1 - alpha)
    masks.append(scope)
    return torch.stack(masks)


def test_stick_breaking_matches_the_formula():
    g = grouper_alone(k=4)
    emb = torch.randn(2, 8, 30, dtype=torch.float64) * 0.5
    noise = torch.rand(2, 30, dtype=torch.float64)
    with torch.no_grad():
        g.log_sigma.fill_(math.log(0.7))
        log_masks, seeds = g.stick_breaking(emb, noise)
    for i in range(2):
        ref = reference_sbp(emb[i], noise[i], 0.7, 4)
        assert torch.allclose(log_masks[i].exp(), ref, atol=1e-10)


def test_masks_sum_to_one_at_every_pixel_and_seeds_lie_in_scope():
    g = grouper_alone(k=5).train()
    lat = g(tokens())
    masks = lat.masks  # [b t k h w]
    assert masks.shape == (2, 1, 5, 6, 5) and lat.attention.shape == (2, 1, 5, 30)
    assert torch.allclose(masks.sum(2), torch.ones(2, 1, 6, 5), atol=1e-5)
    assert (masks > 0).all()
    log_masks, seeds = lat.extras["log_masks"].flatten(3), lat.extras["seeds"]
    for step in range(4):  # each seed pixel takes α = 0.99 of what was left there
        seed = seeds[:, 0, step]
        at_seed = log_masks[:, 0, step].gather(1, seed[:, None]).exp().squeeze(1)
        scope_before = 1 - masks.flatten(3)[:, 0, :step].sum(1).gather(1, seed[:, None]).squeeze(1)
        assert torch.allclose(at_seed, 0.99 * scope_before, atol=1e-5)


def test_untrained_embeddings_are_coordinates():
    g = grouper_alone()
    emb = g(tokens()).extras["embeddings"][0, 0]  # [e h w]; the gate starts at 0
    assert torch.all(emb[:-2] == 0)
    assert torch.allclose(emb[-2, :, 0], torch.linspace(-1, 1, 6)) and torch.allclose(
        emb[-1, 0], torch.linspace(-1, 1, 5)
    )
    assert g.log_sigma.exp().item() == pytest.approx(1 / (4 * math.log(2)))


def test_stick_breaking_is_deterministic_under_a_torch_seed():
    g = grouper_alone().eval()
    state = tokens()

    def run(seed):
        torch.manual_seed(seed)
        return g(state)

    a, b, c = run(3), run(3), run(4)
    assert torch.equal(a.masks, b.masks) and torch.equal(a.extras["seeds"], b.extras["seeds"])
    assert torch.equal(a.objects, b.objects)
    assert not torch.equal(a.extras["seeds"], c.extras["seeds"])  # the seed pixels come from torch's RNG


def test_eval_is_reproducible_through_the_model():
    model = tiny_model().eval()
    batch = images()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        a = model(batch, losses=False).segmentation()
        torch.manual_seed(0)
        b = model(batch, losses=False).segmentation()
    assert torch.equal(a, b)


def test_each_slot_posterior_depends_only_on_its_own_mask():
    g = grouper_alone(k=3).eval()
    state = tokens()
    torch.manual_seed(0)
    lat = g(state)
    x = state.features.tokens[:, 0].transpose(1, 2).reshape(2, 8, 6, 5)
    feats = g.feat_head(x).flatten(2)  # [b 2d n]
    masks = lat.masks[:, 0].flatten(2)  # [b k n]
    for k in range(3):
        pooled = (masks[:, k, None] * feats).sum(-1) / (masks[:, k].sum(-1, keepdim=True) + 1e-5)
        mean, raw = g.z_head(pooled).chunk(2, -1)
        assert torch.allclose(lat.posterior.mean[:, k], mean, atol=1e-5)
        assert torch.allclose(lat.posterior.std[:, k], torch.nn.functional.softplus(raw + 0.5) + 1e-8, atol=1e-5)
    assert lat.objects.shape == (2, 3, 6) and torch.equal(lat.objects, lat.posterior.mean)  # eval: the means
    g.train()
    assert not torch.equal(g(state).objects, g(state).posterior.mean)  # training: samples


def test_gradients_reach_the_kernel_and_the_embedding_gate():
    model = tiny_model()
    model.train()
    Model.total(model(images()).losses).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing
    assert model.grouper.log_sigma.grad.abs() > 0 and model.grouper.embed.gate.grad.abs() > 0


@pytest.mark.parametrize("kernel", ["laplacian", "epanechnikov"])
def test_other_kernels(kernel):
    g = grouper_alone(kernel=kernel)
    m = g(tokens()).masks
    assert torch.allclose(m.sum(2), torch.ones_like(m[:, :, 0]), atol=1e-5)
    init = {"laplacian": 1 / (2 * math.log(2)), "epanechnikov": 0.5}[kernel]
    assert g.log_sigma.exp().item() == pytest.approx(init)


def test_video_latents_per_frame():
    model = tiny_model()
    d = spec()
    d["data"]["frames"] = 2
    torch.manual_seed(0)
    model = build(resolve(d, REGISTRY), dry_run=False).train()
    state = model(images(t=2))
    assert state.latents.objects.shape == (2, 2, 3, 8) and state.latents.masks.shape == (2, 2, 3, 16, 16)
    assert state.rendering.recon.shape == (2, 2, 3, 16, 16) and torch.isfinite(state.losses["nll"])


# -- decoder -----------------------------------------------------------------------------
def test_decoder_broadcasts_from_image_over_2_to_the_layers():
    ctx = BuildContext(3, 1, (32, 32), dims={"latents.objects": 6})
    dec = GenesisDecoder(GenesisDecoder.Spec(channels=[16, 16, 8, 8]), ctx)
    assert dec.size == (2, 2)
    convs = [m for m in dec.net if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(convs) == 4 and convs[0].in_channels == 6 + 2 and convs[0].kernel_size == (5, 5)
    z = torch.randn(2, 3, 6)
    r = dec(State(Batch(torch.rand(2, 1, 3, 32, 32)), latents=Latents(objects=z)))
    assert r.rgb.shape == (2, 1, 3, 3, 32, 32) and r.mask_logits.shape == (2, 1, 3, 32, 32)
    assert r.rgb.min() >= 0 and r.rgb.max() <= 1  # sigmoid
    assert torch.allclose(r.recon, (r.mask_logits.softmax(2).unsqueeze(3) * r.rgb).sum(2))
    # slots are decoded independently: changing one slot changes only its own rgb
    z2 = z.clone()
    z2[:, 1] += 1.0
    r2 = dec(State(Batch(torch.rand(2, 1, 3, 32, 32)), latents=Latents(objects=z2)))
    assert torch.allclose(r2.rgb[:, :, 0], r.rgb[:, :, 0]) and not torch.allclose(r2.rgb[:, :, 1], r.rgb[:, :, 1])


@pytest.mark.parametrize("bias", [True, False])
def test_pointwise_conv_is_a_1x1_conv2d(bias):
    """PointwiseConv (the 1×1 heads, as a batched matmul) equals F.conv2d in values and in
    the gradients of input, weight and bias; its state dict is nn.Conv2d's."""
    torch.manual_seed(5)
    conv = PointwiseConv(6, 4, bias=bias).double()
    assert isinstance(conv, torch.nn.Conv2d) and conv.kernel_size == (1, 1)
    assert set(conv.state_dict()) == set(torch.nn.Conv2d(6, 4, 1, bias=bias).state_dict())
    x = torch.randn(3, 6, 5, 7, dtype=torch.float64)
    g = torch.randn(3, 4, 5, 7, dtype=torch.float64)
    results = []
    for fn in (conv, lambda t: torch.nn.functional.conv2d(t, conv.weight, conv.bias)):
        xi = x.clone().requires_grad_()
        out = fn(xi)
        results.append((out, *torch.autograd.grad(out, [xi, *conv.parameters()], g)))
    for new, old in zip(*results):
        torch.testing.assert_close(new, old)
    # a channels-last input gives the same
    torch.testing.assert_close(conv(x.contiguous(memory_format=torch.channels_last)), results[0][0])


# -- likelihood --------------------------------------------------------------------------
def test_mixture_nll_is_genesis_x_loss():
    """The common mixture_nll (σ 0.7, reduction sum) equals GENESIS's x_loss:
    −Σ_{c,h,w} log Σ_k m_k N(x; x_k, σ), mean over b."""
    g = torch.Generator().manual_seed(0)
    b, k, h, w = 2, 3, 5, 4
    x = torch.rand(b, 1, 3, h, w, generator=g, dtype=torch.float64)
    rgb = torch.rand(b, 1, k, 3, h, w, generator=g, dtype=torch.float64)
    logits = torch.randn(b, 1, k, h, w, generator=g, dtype=torch.float64)
    obj = REGISTRY.get("objective", "mixture_nll")
    o = obj(obj.Spec(sigma=0.7, reduction="sum"), BuildContext(3, 1, (h, w)))
    ours = o(State(Batch(x), rendering=Rendering(rgb=rgb, mask_logits=logits)))["nll"]
    m = logits.softmax(2).unsqueeze(3)
    dens = torch.distributions.Normal(rgb, 0.7).log_prob(x.unsqueeze(2)).exp()
    expected = -(m * dens).sum(2).log().sum(dim=(1, 2, 3, 4)).mean()
    assert torch.allclose(ours, expected, rtol=1e-12)
    # a perfect reconstruction costs 0.5 log(2π 0.49) ≈ 0.5622 per pixel-channel: the 0.5655 GECO goal is just above
    perfect = o(State(Batch(x), rendering=Rendering(rgb=x.unsqueeze(2).expand_as(rgb), mask_logits=logits)))["nll"]
    assert perfect.item() / (3 * h * w) == pytest.approx(0.5 * math.log(2 * math.pi * 0.49))


# -- autoregressive prior ----------------------------------------------------------------
def ar_prior(k=4, d=5, **params):
    ctx = BuildContext(3, 1, (8, 8), dims={"latents.num_slots": k, "latents.objects": d})
    torch.manual_seed(0)
    return AutoregressivePrior(AutoregressivePrior.Spec(**params), ctx)


def step_by_step(prior, z):
    """p(z_k | z_<k) by feeding the LSTM one slot at a time (as GENESIS's sampler does)."""
    means, stds, state = [torch.zeros_like(z[:, 0])], [torch.ones_like(z[:, 0])], None
    for i in range(z.shape[1] - 1):
        out, state = prior.lstm(z[:, i : i + 1], state)
        mean, raw = prior.head(out[:, 0]).chunk(2, -1)
        means.append(torch.tanh(mean))
        stds.append(torch.sigmoid(raw + 4) + 1e-4)
    return torch.stack(means, 1), torch.stack(stds, 1)


@pytest.mark.parametrize("kl", ["analytic", "montecarlo"])
def test_ar_prior_kl(kl):
    prior = ar_prior(kl=kl)
    assert prior.lstm.hidden_size == 20  # 4·d, GENESIS-v2's 256 for d = 64
    g = torch.Generator().manual_seed(1)
    q = DiagonalGaussian(torch.randn(3, 4, 5, generator=g), torch.rand(3, 4, 5, generator=g) + 0.2)
    z = q.rsample(generator=g)
    terms = prior(State(Batch(torch.rand(3, 1, 3, 8, 8)), latents=Latents(objects=z, posterior=q))).terms
    mean, std = step_by_step(prior, z)
    tq, tp = torch.distributions.Normal(q.mean, q.std), torch.distributions.Normal(mean, std)
    if kl == "analytic":
        expected = torch.distributions.kl_divergence(tq, tp).sum(dim=(1, 2)).mean()
    else:
        expected = (tq.log_prob(z) - tp.log_prob(z)).sum(dim=(1, 2)).mean()
    assert torch.allclose(terms["kl"], expected, atol=1e-5)


def test_ar_prior_is_causal():
    prior = ar_prior()
    z = torch.randn(2, 4, 5)
    p = prior.conditionals(z)
    z2 = z.clone()
    z2[:, 2] += 3.0
    p2 = prior.conditionals(z2)
    assert torch.equal(p.mean[:, :3], p2.mean[:, :3]) and not torch.allclose(p.mean[:, 3], p2.mean[:, 3])
    assert torch.equal(p.mean[:, 0], torch.zeros(2, 5)) and torch.equal(p.std[:, 0], torch.ones(2, 5))


def test_ar_prior_sample():
    prior = ar_prior()
    a = prior.sample(6, generator=torch.Generator().manual_seed(0))
    b = prior.sample(6, generator=torch.Generator().manual_seed(0))
    assert a.objects.shape == (6, 4, 5) and torch.equal(a.objects, b.objects)
    cold = prior.sample(3, temperature=0.0).objects  # no noise: z_1 = 0, then the chain of prior means
    mean, _ = step_by_step(prior, cold)
    assert torch.equal(cold[:, 0], torch.zeros(3, 5)) and torch.allclose(cold, mean, atol=1e-6)
    with pytest.raises(UserError, match="cannot continue"):
        prior.sample(2, condition=State(Batch(torch.rand(1, 1, 3, 8, 8))))


def test_generation_decodes_ar_prior_samples():
    from ocf.run.generate import generate

    model = tiny_model(prior="genesis.ar_prior")
    a = generate(model, 4, generator=torch.Generator().manual_seed(0))
    b = generate(model, 4, generator=torch.Generator().manual_seed(0))
    assert a.latents.objects.shape == (4, 3, 8) and a.rendering.recon.shape == (4, 1, 3, 16, 16)
    assert torch.equal(a.rendering.recon, b.rendering.recon) and torch.isfinite(a.rendering.recon).all()


# -- metric ------------------------------------------------------------------------------
def test_attention_fg_ari_scores_the_grouper_masks():
    true = torch.zeros(2, 1, 4, 4, dtype=torch.long)
    true[:, :, :, 2:] = 1
    true[:, :, 2:, :2] = 2
    perfect = torch.nn.functional.one_hot(true, 3).permute(0, 1, 4, 2, 3).float()
    wrong = torch.nn.functional.one_hot(torch.zeros_like(true), 3).permute(0, 1, 4, 2, 3).float()
    state = State(
        Batch(torch.rand(2, 1, 3, 4, 4), true),
        latents=Latents(masks=perfect),
        rendering=Rendering(mask_logits=wrong.log().clamp(min=-30)),
    )
    m = AttentionFgAri()
    m.update_state(state)
    assert m.compute().item() == pytest.approx(1.0)
    core = REGISTRY.get("metric", "fg_ari")()
    core.update_state(state)  # the core metric reads the decoder masks: all one slot
    assert core.compute().item() == pytest.approx(0.0)


# -- training ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    return tmp_path_factory.mktemp("genesis") / "shapes16.h5"


@pytest.mark.parametrize("goal, direction", [(10_000.0, "up"), (1.0, "down")])
def test_geco_beta_moves_around_its_goal(tmp_path, data_path, goal, direction):
    """Error below the goal: β grows (with the speed-up) to compress; above: β shrinks to reconstruct first."""
    d = spec(steps=4, geco={"term": "nll", "goal": goal, "step_size": 1e-4, "alpha": 0.0, "speedup": 10.0})
    d["data"]["path"] = str(data_path)
    run = train.run(resolve(d, REGISTRY), out=str(tmp_path / direction), progress=False)
    lines = [json.loads(row) for row in (run / "metrics.jsonl").read_text().splitlines()]
    betas = [row["geco/beta"] for row in lines if "geco/beta" in row]
    nll = lines[0]["loss/nll"]
    assert len(betas) == 4
    if direction == "up":
        assert betas == sorted(betas) and betas[0] == pytest.approx(math.exp(10 * 1e-4 * (goal - nll)), rel=1e-4)
    else:
        assert betas == sorted(betas, reverse=True) and betas[0] == pytest.approx(
            math.exp(1e-4 * (goal - nll)), rel=1e-4
        )


def test_it_learns(data_path):
    """80 steps on 16x16 shapes: the mixture NLL falls clearly and the masks stay a partition."""
    from ocf.data import H5Dataset

    d = spec(steps=1)
    d["data"]["path"] = str(data_path)
    resolved = resolve(d, REGISTRY)
    ensure_dataset(resolved.spec, REGISTRY)
    ds = H5Dataset(data_path, split="train", frames=None, in_memory=True)
    torch.manual_seed(0)
    model = build(resolved, dry_run=False).train()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for step in range(80):
        batch = ds.get_batch([(step * 8 + i) % len(ds) for i in range(8)])
        state = model(batch)
        loss = state.losses["nll"] + 1e-3 * state.losses["kl"]  # β as GECO drives it while the goal is unmet
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(state.losses["nll"].item() / (3 * 16 * 16))  # per pixel-channel
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    floor = 0.5 * math.log(2 * math.pi * 0.49)  # a perfect reconstruction
    assert last < first and (last - floor) < 0.5 * (first - floor), (first, last)
    assert torch.allclose(state.latents.masks.sum(2), torch.ones_like(state.latents.masks[:, :, 0]), atol=1e-5)


def test_configs_build():
    from ocf.spec import load

    for path, k, res in [("configs/genesis/shapes_32.yaml", 4, 32), ("configs/genesis/paper_64.yaml", 9, 64)]:
        r = load(path, REGISTRY)
        assert r.spec.data.resolution == (res, res)
        assert r.component("grouper").params.num_slots == k
        geco = r.spec.train.geco
        assert geco.term == "nll" and geco.goal == pytest.approx(0.5655 * 3 * res * res, rel=0.2)
