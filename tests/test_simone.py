"""The SIMONe plugin: the loss against the formula, shapes through the whole model with
K ≠ T, the decoder's subset / chunking / mask normalisation, gradients, determinism, the
video FG-ARI path, and a short learning run on moving sprites."""

from __future__ import annotations

import random

import pytest
import torch

from ocf import plugins
from ocf.assembly import Model, build
from ocf.components import BuildContext
from ocf.records import Batch, DiagonalGaussian, Latents, Rendering, State
from ocf.spec import resolve
from ocf.testing import check_component
from ocf_simone.decoder import PixelMLPDecoder
from ocf_simone.encoder import SimoneEncoder, sinusoidal_3d
from ocf_simone.grouper import SimonePooling
from ocf_simone.objective import SimoneLikelihood
from ocf_simone.prior import SimonePrior
from ocf_simone.viz import plot_frame_latents

REGISTRY = plugins.default().registry


def spec(frames=3, res=16, **decoder):
    """A tiny SIMONe: 16x16 → two stride-2 convs → 4x4 → pool → 2x2 = K 4 slots; T = 3."""
    return {
        "data": {"dataset": "moving_sprites", "path": "unused.h5", "frames": frames, "resolution": [res, res]},
        "model": {
            "encoder": {
                "type": "simone.encoder",
                "conv_channels": [8, 8],
                "width": 16,
                "heads": 2,
                "ffn": 32,
                "layers": 1,
            },
            "grouper": {"type": "simone.pooling", "latent_dim": 6, "hidden": [16]},
            "prior": {"type": "simone.prior"},
            "decoder": {"type": "simone.pixel_mlp", "hidden": [16, 16], **decoder},
            "objectives": [
                {"type": "simone.likelihood"},
                {"type": "kl", "terms": ["object_kl"], "name": "object_kl", "weight": 1e-5},
                {"type": "kl", "terms": ["frame_kl"], "name": "frame_kl", "weight": 1e-4},
            ],
        },
    }


def tiny_model(seed=0, **kwargs) -> Model:
    torch.manual_seed(seed)
    return build(resolve(spec(**kwargs), REGISTRY), dry_run=False)


def video(b=2, t=3, res=16, seed=0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.rand(b, t, 3, res, res, generator=g), torch.randint(0, 3, (b, t, res, res), generator=g))


def test_plugin_registers_its_components():
    names = {
        (kind, e.name)
        for kind in ("encoder", "grouper", "prior", "decoder", "objective")
        for e in REGISTRY.entries(kind)
    }
    assert {
        ("encoder", "simone.encoder"),
        ("grouper", "simone.pooling"),
        ("prior", "simone.prior"),
        ("decoder", "simone.pixel_mlp"),
        ("objective", "simone.likelihood"),
    } <= names


@pytest.mark.parametrize("cls", [SimonePooling, PixelMLPDecoder, SimonePrior, SimoneLikelihood])
def test_conformance_on_video(cls):
    # example latents have k = 3 slots, t = 5 frames; the core shape check wants mask
    # logits over every frame, so the decoder decodes all 5 (at half resolution)
    params = {"train_frames": 5} if cls is PixelMLPDecoder else {}
    check_component(cls, params, frames=5)


def test_encoder_conformance_small():
    check_component(SimoneEncoder, {"conv_channels": [8, 8], "width": 12, "heads": 3, "ffn": 16, "layers": 2}, frames=3)


# -- the loss ---------------------------------------------------------------------------
def direct_pixel_nll(x, rgb, logits, sigma):
    """The formula, slot by slot with torch.distributions: −Σ log Σ_k w_k N(x; rgb_k, σ) / (t h w), mean over b."""
    b, t, k, c, h, w = rgb.shape
    weights = logits.softmax(dim=2)
    mixture = torch.zeros_like(x)
    for j in range(k):
        density = torch.distributions.Normal(rgb[:, :, j], sigma).log_prob(x).exp()  # [b t c h w]
        mixture = mixture + weights[:, :, j].unsqueeze(2) * density
    return -(mixture.log().sum(dim=(1, 2, 3, 4)) / (t * h * w)).mean()


def direct_whole_pixel_nll(x, rgb, logits, sigma):
    """The whole-pixel mixture: −Σ log Σ_k w_k Π_c N(x_c; rgb_kc, σ) / (t h w), mean over b."""
    b, t, k, c, h, w = rgb.shape
    weights = logits.softmax(dim=2)
    mixture = torch.zeros(b, t, h, w, dtype=x.dtype)
    for j in range(k):
        density = torch.distributions.Normal(rgb[:, :, j], sigma).log_prob(x).exp().prod(dim=2)  # [b t h w]
        mixture = mixture + weights[:, :, j] * density
    return -(mixture.log().sum(dim=(1, 2, 3)) / (t * h * w)).mean()


def likelihood_terms(x, rgb, logits, sigma=0.08, mixture="channel"):
    obj = SimoneLikelihood(
        SimoneLikelihood.Spec(sigma=sigma, mixture=mixture), BuildContext(3, x.shape[1], tuple(x.shape[-2:]))
    )
    state = State(Batch(x), rendering=Rendering(rgb=rgb, mask_logits=logits))
    return obj(state)["nll"]


def random_mixture(seed):
    g = torch.Generator().manual_seed(seed)
    b, t, k, c, h, w = 2, 3, 4, 3, 5, 6
    x = torch.rand(b, t, c, h, w, generator=g, dtype=torch.float64)
    rgb = x.unsqueeze(2) + 0.1 * torch.randn(b, t, k, c, h, w, generator=g, dtype=torch.float64)
    return x, rgb, torch.randn(b, t, k, h, w, generator=g, dtype=torch.float64)


def test_likelihood_equals_the_formula():
    x, rgb, logits = random_mixture(0)
    ours = likelihood_terms(x, rgb, logits)
    assert torch.allclose(ours, direct_pixel_nll(x, rgb, logits, 0.08), rtol=1e-10)
    assert SimoneLikelihood.Spec().weight == 0.2 and SimoneLikelihood.Spec().sigma == 0.08


def test_whole_pixel_mixture_equals_its_formula_and_differs_from_per_channel():
    x, rgb, logits = random_mixture(2)
    ours = likelihood_terms(x, rgb, logits, mixture="pixel")
    assert torch.allclose(ours, direct_whole_pixel_nll(x, rgb, logits, 0.08), rtol=1e-10)
    # two slots that each get a different half of the channels right, sharing the mask:
    # per channel this is nearly as good as one right slot; as a whole pixel it is not
    x = torch.full((1, 1, 3, 1, 1), 0.5, dtype=torch.float64)
    split = torch.stack(
        [
            x[:, :, :] + torch.tensor([0, 0, 0.5], dtype=torch.float64).view(1, 1, 3, 1, 1),
            x[:, :, :] + torch.tensor([0.5, 0.5, 0], dtype=torch.float64).view(1, 1, 3, 1, 1),
        ],
        2,
    )
    logits = torch.zeros(1, 1, 2, 1, 1, dtype=torch.float64)
    assert likelihood_terms(x, split, logits, mixture="pixel") - likelihood_terms(x, split, logits) > 10


def test_likelihood_stays_finite_where_the_exp_log_form_underflows():
    g = torch.Generator().manual_seed(1)
    b, t, k, c, h, w = 2, 2, 3, 3, 4, 4
    x = torch.rand(b, t, c, h, w, generator=g)
    rgb = (
        x.unsqueeze(2) + 1.2 + 0.1 * torch.rand(b, t, k, c, h, w, generator=g)
    )  # every slot ~15 σ away: exponents below −110
    logits = torch.randn(b, t, k, h, w, generator=g)
    naive = direct_pixel_nll(x, rgb, logits, 0.08)  # float32: exp underflows to 0, log gives inf
    assert not torch.isfinite(naive)
    ours = likelihood_terms(x, rgb, logits)
    exact = direct_pixel_nll(x.double(), rgb.double(), logits.double(), 0.08)  # float64 still represents e^-110
    assert torch.isfinite(ours) and torch.allclose(ours.double(), exact, rtol=1e-5)


def test_prior_normalises_object_kl_by_k_and_frame_kl_by_t():
    b, k, t, d = 2, 5, 3, 4  # K ≠ T
    g = torch.Generator().manual_seed(0)
    post = DiagonalGaussian(torch.randn(b, k, d, generator=g), torch.rand(b, k, d, generator=g) + 0.1)
    fpost = DiagonalGaussian(torch.randn(b, t, d, generator=g), torch.rand(b, t, d, generator=g) + 0.1)
    ctx = BuildContext(3, t, (8, 8), dims={"latents.num_slots": k, "latents.objects": d, "latents.frames": d})
    prior = SimonePrior(SimonePrior.Spec(), ctx)
    terms = prior(State(Batch(torch.rand(b, t, 3, 8, 8)), latents=Latents(posterior=post, frame_posterior=fpost))).terms
    standard = torch.distributions.Normal(0.0, 1.0)

    def kl(p):
        return torch.distributions.kl_divergence(torch.distributions.Normal(p.mean, p.std), standard)

    assert torch.allclose(terms["object_kl"], (kl(post).sum(dim=(1, 2)) / k).mean())
    assert torch.allclose(terms["frame_kl"], (kl(fpost).sum(dim=(1, 2)) / t).mean())
    sample = prior.sample(4)
    assert sample.objects.shape == (4, k, d) and sample.frames.shape == (4, t, d)


# -- the whole model --------------------------------------------------------------------
def test_shapes_through_the_model_with_k_not_t():
    model = tiny_model(frames=6)  # K = 4, T = 6
    assert model.ctx.dims["latents.num_slots"] == 4
    batch = video(t=6)
    model.train()
    state = model(batch)
    assert state.features.tokens.shape == (2, 6, 4, 16) and state.features.grid == (2, 2)
    lat = state.latents
    assert lat.objects.shape == lat.posterior.mean.shape == (2, 4, 6)
    assert lat.frames.shape == lat.frame_posterior.mean.shape == (2, 6, 6)
    r = state.rendering
    t_index = r.extras["t_index"]
    assert len(t_index) == 3 and torch.equal(t_index, t_index.sort().values)  # T/2 frames, in order
    assert r.recon.shape == r.target.shape == (2, 3, 3, 8, 8)  # every other pixel
    assert r.rgb.shape == (2, 3, 4, 3, 8, 8) and r.mask_logits.shape == (2, 3, 4, 8, 8)
    assert torch.equal(r.target, batch.frames[:, t_index, :, ::2, ::2])
    assert set(state.losses) == {"nll", "object_kl", "frame_kl"}
    assert all(torch.isfinite(v) for v in state.losses.values())
    model.eval()
    with torch.no_grad():
        full = model(batch)
    r = full.rendering
    assert r.target is None and r.recon.shape == (2, 6, 3, 16, 16) and r.mask_logits.shape == (2, 6, 4, 16, 16)
    assert full.segmentation().shape == (2, 6, 4, 16, 16)


def test_tied_control_gives_every_slot_the_same_posterior():
    s = spec()
    s["model"]["grouper"]["tie_objects"] = True
    torch.manual_seed(0)
    model = build(resolve(s, REGISTRY), dry_run=False).eval()
    with torch.no_grad():
        state = model(video())
    mean, scale = state.latents.posterior.mean, state.latents.posterior.std
    assert torch.allclose(mean, mean[:, :1].expand_as(mean)) and torch.allclose(scale, scale[:, :1].expand_as(scale))
    untied = tiny_model().eval()
    with torch.no_grad():
        m = untied(video()).latents.posterior.mean
    assert not torch.allclose(m, m[:, :1].expand_as(m))


def test_init_log_scale_starts_the_posterior_scales_there():
    s = spec()
    s["model"]["grouper"]["init_log_scale"] = -3.0
    torch.manual_seed(0)
    model = build(resolve(s, REGISTRY), dry_run=False).eval()
    with torch.no_grad():
        lat = model(video()).latents
    default = tiny_model().eval()
    with torch.no_grad():
        plain = default(video()).latents
    for post, ref in ((lat.posterior, plain.posterior), (lat.frame_posterior, plain.frame_posterior)):
        # the last layer's weights still add a small input-dependent part around e^-3 ≈ 0.05
        assert post.std.log().mean().item() == pytest.approx(-3.0, abs=0.5)
        assert ref.std.log().mean().item() == pytest.approx(0.0, abs=0.5)
        assert not torch.allclose(post.std, post.std.flatten()[0].expand_as(post.std))


def test_gradients_reach_every_parameter():
    model = tiny_model()
    model.train()
    Model.total(model(video()).losses).backward()
    missing = [
        n
        for n, p in model.named_parameters()
        if p.grad is None or not torch.isfinite(p.grad).all() or not p.grad.abs().sum() > 0
    ]
    assert not missing, missing


def test_deterministic_under_a_seed():
    def run():
        model = tiny_model(seed=3)
        torch.manual_seed(7)
        return model(video()).losses

    a, b = run(), run()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_frame_subset_comes_from_torchs_rng():
    model = tiny_model(frames=8)
    decoder = model.decoder.train()

    def subset(torch_seed, python_seed):
        torch.manual_seed(torch_seed)
        random.seed(python_seed)
        return decoder.subset(8)[0]

    assert torch.equal(subset(0, 1), subset(0, 2))  # Python's random plays no part
    assert len({tuple(subset(s, 0).tolist()) for s in range(6)}) > 1  # the torch seed does
    assert decoder.eval().subset(8)[0].tolist() == list(range(8))


@pytest.mark.parametrize("eval_sample", [True, False])
def test_chunked_eval_decode_equals_unchunked(eval_sample):
    model = tiny_model(eval_sample=eval_sample).eval()
    batch = video()
    decoder = model.decoder
    with torch.no_grad():
        state = State(batch)
        state.features = model.encoder(state)
        state.latents = model.grouper(state)
        outs = []
        for chunk in (1, 4 * 16 * 16 * 2 + 7, 10**9):  # one frame per call, two frames, everything at once
            decoder.spec = decoder.spec.model_copy(update={"chunk_size": chunk})
            torch.manual_seed(5)
            outs.append(decoder(state))
    for r in outs[1:]:
        assert torch.allclose(r.rgb, outs[0].rgb, atol=1e-6) and torch.allclose(
            r.mask_logits, outs[0].mask_logits, atol=1e-5
        )


_DECODE_PEAK = """
import sys, torch
sys.path.insert(0, {tests!r})
from test_simone import tiny_model
from ocf.records import DiagonalGaussian
frames, chunk = int(sys.argv[1]), int(sys.argv[2])
decoder = tiny_model(frames=frames, res=64, hidden=[256, 256], chunk_size=chunk).decoder.eval()
k, d = 4, decoder.object_dim
objects = DiagonalGaussian(torch.zeros(1, k, d), torch.ones(1, k, d))
frame_latents = DiagonalGaussian(torch.zeros(1, frames, d), torch.ones(1, frames, d))
def status(key):  # kB
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key + ":"))
with torch.no_grad():
    decoder.decode(objects, frame_latents, torch.arange(1), (64, 64))  # warm the allocator and the kernels
    before = status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:  # reset the peak (VmHWM) to the current RSS
        f.write("5")
    rgb, logits = decoder.decode(objects, frame_latents, torch.arange(frames), (64, 64))
print((status("VmHWM") - before) / 1024)
"""


def _decode_peak_mb(frames: int, chunk: int) -> float:
    """Growth of the process's peak RSS while one 64x64 video of ``frames`` frames and 4
    slots is decoded at full resolution (256-wide hidden layers), in a fresh process:
    its peak RSS during the decode (VmHWM, reset just before) minus its RSS before.  glibc's mmap threshold is pinned
    so that freed large blocks go back to the system and the peak RSS follows the live
    tensors instead of the allocator's cache."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("needs Linux's /proc/self/clear_refs to reset the peak RSS")

    code = _DECODE_PEAK.format(tests=str(Path(__file__).parent))
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(frames), str(chunk)], capture_output=True, text=True, check=True, env=env
    )
    return float(out.stdout.split()[-1])


def test_eval_decode_memory_is_bounded_by_the_chunk_not_the_video_length():
    one_frame = 4 * 64 * 64  # k·h·w locations per decoded frame
    whole = _decode_peak_mb(16, 10**9)  # 16 frames in one MLP call
    # unchunked: 262,144 locations x 256 floats = 268 MB per hidden activation;
    # one frame per call: 17 MB per activation, whatever the video length
    assert whole > 250, f"unchunked decode grew the peak by only {whole:.0f} MB: the probe cannot see the difference"
    short, long = _decode_peak_mb(16, one_frame), _decode_peak_mb(64, one_frame)
    assert short < 80, f"16 frames, one per call: the peak grew {short:.0f} MB"
    output_mb = 48 * 4 * 64 * 64 * 4 * 4 / 2**20  # the 48 extra frames of rgb + mask logit: the result itself
    assert long - short < 2 * output_mb + 8, (
        f"peak grew with video length beyond the output: {short:.0f} MB at 16 frames, {long:.0f} MB at 64"
    )


@pytest.mark.parametrize("affine", [False, True])
def test_masks_are_a_softmax_over_slots_of_layer_normed_logits(affine):
    model = tiny_model(mask_norm_affine=affine)
    decoder = model.decoder
    if affine:
        with torch.no_grad():
            decoder.norm_scale.fill_(2.0)
            decoder.norm_bias.fill_(0.5)
    batch = video()
    for training in (True, False):
        model.train(training)
        with torch.no_grad():
            state = State(batch)
            state.features = model.encoder(state)
            state.latents = model.grouper(state)
            torch.manual_seed(9)
            r = decoder(state)
            torch.manual_seed(9)  # the same subset and noise, without the norm
            t_index, stride = decoder.subset(3)
            _, raw = decoder.decode(state.latents.posterior, state.latents.frame_posterior, t_index, (16, 16), stride)
        flat = raw.flatten(1)  # per video, over [t k h w] jointly
        mean, var = flat.mean(1), flat.var(1, unbiased=False)
        expected = (raw - mean.view(-1, 1, 1, 1, 1)) / (var.view(-1, 1, 1, 1, 1) + 1e-5).sqrt()
        if affine:
            expected = 2.0 * expected + 0.5
        assert torch.allclose(r.mask_logits, expected, atol=1e-5)
        assert torch.allclose(r.masks.sum(dim=2), torch.ones(()), atol=1e-6)  # softmax over k


def test_video_fg_ari_over_the_whole_clip():
    model = tiny_model().eval()
    batch = video()
    with torch.no_grad():
        state = model(batch, losses=False)
    metric = REGISTRY.get("metric", "fg_ari")()
    metric.check(state)
    metric.update_state(state)
    value = float(metric.compute())
    assert -1.0 <= value <= 1.0  # an untrained model: near 0, but computed over all t h w at once


def test_position_encoding_is_distinct_per_location():
    pe = sinusoidal_3d(3, 4, 5, 20)
    assert pe.shape == (3, 4, 5, 20)
    flat = pe.reshape(-1, 20)
    assert torch.cdist(flat, flat).add(torch.eye(60) * 10).min() > 1e-3


def test_pool_scale_and_grid_checks():
    ctx = BuildContext(3, 2, (16, 16))
    enc = SimoneEncoder(SimoneEncoder.Spec(conv_channels=[8], width=8, heads=2, ffn=8, layers=1, pool_size=2), ctx)
    assert ctx.dims["features.grid"] == (4, 4)  # 16 → 8 → pooled 4
    with pytest.raises(ValueError, match="pool_size"):
        SimoneEncoder(
            SimoneEncoder.Spec(conv_channels=[8, 8, 8], width=8, heads=2, ffn=8, layers=1, pool_size=4),
            BuildContext(3, 2, (16, 16)),
        )
    with pytest.raises(ValueError, match="heads"):
        SimoneEncoder.Spec(width=10, heads=3)
    assert enc(State(video(t=2))).tokens.shape == (2, 2, 16, 8)


def test_input_scale_and_shift_act_on_the_frames():
    """input_scale·x + input_shift feeds the CNN: the same tokens as feeding the mapped frames."""
    kw = dict(conv_channels=[8], width=8, heads=2, ffn=8, layers=1)
    torch.manual_seed(0)
    mapped = SimoneEncoder(SimoneEncoder.Spec(**kw, input_scale=2.0, input_shift=-1.0), BuildContext(3, 2, (16, 16)))
    plain = SimoneEncoder(SimoneEncoder.Spec(**kw), BuildContext(3, 2, (16, 16)))
    plain.load_state_dict(mapped.state_dict())
    batch = video(t=2)
    want = plain(State(Batch(batch.frames * 2 - 1))).tokens
    assert torch.allclose(mapped(State(batch)).tokens, want, atol=1e-6)
    assert not torch.allclose(plain(State(batch)).tokens, want, atol=1e-3)


def test_embed_norm_makes_the_content_as_large_as_the_position_encoding():
    """On dark frames the projected CNN features start ~1/60 of the encoding's size
    (RMS 0.71); embed_norm layer-normalises them to RMS 1 per token."""
    torch.manual_seed(0)
    frames = torch.zeros(2, 2, 3, 16, 16)
    frames[..., 4:9, 4:9] = 0.8  # one small bright sprite on black
    sizes = {}
    for norm in (False, True):
        enc = SimoneEncoder(
            SimoneEncoder.Spec(conv_channels=[32, 32], width=32, heads=2, ffn=8, layers=1, embed_norm=norm),
            BuildContext(3, 2, (16, 16)),
        )
        x = enc.convs(frames.flatten(0, 1)).permute(0, 2, 3, 1)
        x = enc.embed_norm(enc.project(x))
        sizes[norm] = x.pow(2).mean(-1).sqrt()  # RMS per token
    assert sizes[False].max() < 0.2
    assert sizes[True].min() > 0.9 and sizes[True].max() < 1.01  # LayerNorm: RMS 1 up to its eps


def test_decoder_decodes_point_latents_from_the_prior():
    model = tiny_model().eval()
    latents = model.prior.sample(2)
    with torch.no_grad():
        r = model.decoder(State(video(), latents=latents))
    assert r.recon.shape == (2, 3, 3, 16, 16) and torch.isfinite(r.recon).all()


def test_frame_latent_plot(tmp_path):
    model = tiny_model().eval()
    with torch.no_grad():
        state = model(video(), losses=False)
    img = plot_frame_latents(state.latents, tmp_path / "frames.png", top=3)
    assert (tmp_path / "frames.png").exists() and img.size[0] > 0


def test_ocf_viz_draws_the_video_decomposition_and_the_frame_latents(tmp_path):
    from ocf.cli import main
    from ocf.run import train

    d = spec(frames=3)
    d["data"].update(
        path=str(tmp_path / "sprites.h5"), generate={"n": 16, "seed": 0, "options": {"resolution": 16, "frames": 3}}
    )
    d["train"] = {"steps": 1, "batch_size": 2, "image_every": 0}
    run = train.run(resolve(d, REGISTRY), out=str(tmp_path / "run"), progress=False)
    assert main(["viz", str(run), "--n", "2"]) == 0
    for name in ("decomposition.png", "decomposition.gif", "frame_latents.png"):
        assert (run / "viz" / name).stat().st_size > 0, name


# -- learning ---------------------------------------------------------------------------
def test_pixel_loss_falls_on_moving_sprites():
    """encoder → pooling → pixel MLP on 8 clips of 4 frames (16x16, camera pan): 40 Adam
    steps at lr 1e-3 cut the pixel NLL well below its start."""
    from ocf_common.datasets import GENERATORS

    gen = GENERATORS["moving_sprites"]
    data = gen().generate(8, 0, gen.parse_options({"resolution": 16, "frames": 4, "camera_shift": 1.0}))
    frames = torch.from_numpy(data["frames"]).permute(0, 1, 4, 2, 3).float() / 255.0  # [b t c h w]
    batch = Batch(frames)
    torch.manual_seed(0)
    data_spec = spec(frames=4)
    data_spec["model"]["encoder"].update(conv_channels=[32, 32], width=32, heads=4, ffn=64)
    data_spec["model"]["decoder"].update(hidden=[64, 64])
    model = build(resolve(data_spec, REGISTRY), dry_run=False).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    nll = []
    for _ in range(40):
        state = model(batch)
        loss = Model.total(state.losses)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        nll.append(state.losses["nll"].item() / 0.2)
    start, end = sum(nll[:3]) / 3, sum(nll[-5:]) / 5
    assert end < start - 1.0 and end < 0.5 * start, (start, end)
