"""The Rotating Features plugin: the layer against its formula and its real-valued
counterpart at n = 1, rotation equivariance, finite gradients on all-zero input, batch-size
independence, the orientation averaging, batched k-means against scikit-learn, the
clustering grouper on constructed outputs, pictures, and a short learning run on 2Shapes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ocf import plugins
from ocf.assembly import build
from ocf.components import BuildContext
from ocf.metrics import fg_ari
from ocf.records import Batch, Rendering, State
from ocf.spec import resolve
from ocf.testing import check_component
from ocf_rotating.decoder import RotatingDecoder
from ocf_rotating.encoder import RotatingEncoder
from ocf_rotating.grouper import RotatingCluster, agglomerative, kmeans, orientations
from ocf_rotating.layers import add_rotation_dims, magnitude, rotating_conv, rotating_conv_transpose, rotating_linear
from ocf_rotating.viz import orientation_colours, rotating_figure

REGISTRY = plugins.default().registry


def spec(n=4, res=16, channels=1, hidden=4, linear=8, **grouper):
    return {
        "data": {"dataset": "nshapes", "path": "unused.h5", "resolution": [res, res], "channels": channels},
        "model": {
            "encoder": {"type": "rotating.encoder", "rotation_dims": n, "hidden": hidden, "linear": linear},
            "decoder": {"type": "rotating.decoder"},
            "grouper": {"type": "rotating.cluster", "n_init": 2, **grouper},
            "objectives": [{"type": "mse"}],
        },
    }


def tiny_model(seed=0, **kwargs):
    torch.manual_seed(seed)
    return build(resolve(spec(**kwargs), REGISTRY), dry_run=False)


def test_plugin_registers_its_components():
    names = {(k, e.name) for k in ("encoder", "grouper", "decoder") for e in REGISTRY.entries(k)}
    assert {("encoder", "rotating.encoder"), ("decoder", "rotating.decoder"), ("grouper", "rotating.cluster")} <= names
    assert REGISTRY.get("grouper", "rotating.cluster").eval_only


@pytest.mark.parametrize("cls", [RotatingEncoder, RotatingDecoder, RotatingCluster])
@pytest.mark.parametrize("channels", [1, 4])  # grey and RGB-D
def test_conformance(cls, channels):
    params = {"rotation_dims": 3, "hidden": 4, "linear": 8} if cls is RotatingEncoder else {}
    check_component(cls, params, channels=channels)


# -- the layer --------------------------------------------------------------------------
def zero_bias(layer):
    with torch.no_grad():
        layer.rotation_bias.zero_()
    return layer


def test_n1_zero_bias_no_norm_is_relu_of_the_plain_layer():
    """n = 1, b_rot = 0, x ≥ 0: ψ = w(x) = χ, so m = relu(ψ) and out = sign(ψ)·relu(ψ) = relu(w(x))."""
    torch.manual_seed(0)
    x = torch.rand(3, 2, 7, 7)  # non-negative, as every rotating input is
    # equal up to the safe norm's ε: |out − relu(ψ)| ≤ 0.5·sqrt(ε) = 5e-5 where ψ ≈ 0
    conv = zero_bias(rotating_conv(2, 5, 1, stride=2, norm="none"))
    assert torch.allclose(
        conv(add_rotation_dims(x, 1))[:, 0], F.relu(F.conv2d(x, conv.op.weight, stride=2, padding=1)), atol=1e-4
    )
    convt = zero_bias(rotating_conv_transpose(2, 5, 1, norm="none"))
    plain_t = F.conv_transpose2d(x, convt.op.weight, stride=2, padding=1, output_padding=1)
    assert torch.allclose(convt(add_rotation_dims(x, 1))[:, 0], F.relu(plain_t), atol=1e-4)
    lin = zero_bias(rotating_linear(6, 4, 1, norm="none"))
    v = torch.rand(5, 6)
    assert torch.allclose(lin(v[:, None])[:, 0], F.relu(v @ lin.op.weight.T), atol=1e-4)


def test_n1_zero_bias_with_batchnorm_follows_the_formula():
    """With BatchNorm the n = 1 layer is sign(ψ)·relu(BN(relu(ψ))) for x ≥ 0 (a plain
    conv → ReLU → BN → ReLU where ψ > 0)."""
    torch.manual_seed(1)
    x = torch.rand(4, 3, 6, 6)
    conv = zero_bias(rotating_conv(3, 5, 1))
    psi = F.conv2d(x, conv.op.weight, padding=1)
    ref = F.batch_norm(F.relu(psi), None, None, conv.norm.weight, conv.norm.bias, training=True)
    expected = torch.sign(psi) * F.relu(ref)
    assert torch.allclose(conv(add_rotation_dims(x, 1))[:, 0], expected, atol=1e-4)


def test_layer_matches_the_paper_formula_with_bias():
    """General n with rotation bias: ψ = w(z) + b, χ = w(‖z‖), m = relu(LN(0.5‖ψ‖ + 0.5χ)), out = ψ/‖ψ‖·m."""
    torch.manual_seed(2)
    z = torch.randn(3, 5, 6)  # [b r c], signed components
    for in_mag in (True, False):
        lin = rotating_linear(6, 4, 5, bias_in_magnitude=in_mag)
        w, bias = lin.op.weight, lin.rotation_bias
        psi = z @ w.T + bias
        chi = z.norm(dim=1) @ w.T
        m_psi = psi.norm(dim=1) if in_mag else (z @ w.T).norm(dim=1)
        m = F.relu(F.layer_norm(0.5 * m_psi + 0.5 * chi, (4,), lin.norm.weight, lin.norm.bias))
        assert torch.allclose(lin(z), psi / psi.norm(dim=1, keepdim=True) * m[:, None], atol=1e-4)
    bound = 1 / math.sqrt(6)
    assert lin.rotation_bias.shape == (5, 4) and lin.rotation_bias.abs().max() <= bound


def _plain_layer(layer, z):
    """The layer as first written with autograd through every step (slices, square-sum-sqrt
    norms, ψ/‖ψ‖·m): the reference the fused forward must reproduce."""
    plain_mag = lambda t, keepdim=False: torch.sqrt(t.square().sum(dim=1, keepdim=keepdim) + layer.eps)  # noqa: E731
    b, r = z.shape[:2]
    both = layer.op(torch.cat([z.flatten(0, 1), plain_mag(z)]))
    psi, chi = both[: b * r].unflatten(0, (b, r)), both[b * r :]
    psi_b = psi + layer.rotation_bias
    m = F.relu(layer.norm(0.5 * plain_mag(psi_b if layer.bias_in_magnitude else psi) + 0.5 * chi))
    return psi_b / plain_mag(psi_b, keepdim=True) * m.unsqueeze(1)


@pytest.mark.parametrize("make", ["conv", "convt", "linear"])
@pytest.mark.parametrize("in_mag", [True, False])
def test_fused_layer_matches_the_plain_autograd_formula(make, in_mag):
    """Values and gradients (input and every parameter) of the fused forward equal the plain one."""
    torch.manual_seed(4)
    n = 4
    layer = {
        "conv": lambda: rotating_conv(3, 5, n, stride=2, bias_in_magnitude=in_mag),
        "convt": lambda: rotating_conv_transpose(3, 5, n, bias_in_magnitude=in_mag),
        "linear": lambda: rotating_linear(6, 4, n, bias_in_magnitude=in_mag),
    }[make]().double()
    z = (
        torch.randn(3, n, 3, 6, 6, dtype=torch.float64)
        if make != "linear"
        else torch.randn(3, n, 6, dtype=torch.float64)
    )
    z[0, :, 0] = 0  # zero vectors: the ε-safe norms' edge
    outs, grads = [], []
    for fn in (layer, lambda x: _plain_layer(layer, x)):
        x = z.clone().requires_grad_()
        out = fn(x)
        grads.append(
            torch.autograd.grad(
                (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum(), [x, *layer.parameters()]
            )
        )
        outs.append(out)
    torch.testing.assert_close(outs[0], outs[1])
    for g_new, g_old in zip(*grads):
        torch.testing.assert_close(g_new, g_old)


def test_magnitude_gradients_match_autograd_and_support_double_backward():
    z = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    for dim, keepdim in ((1, False), (1, True), (-1, False)):
        plain = torch.sqrt(z.square().sum(dim=dim, keepdim=keepdim) + 1e-8)
        torch.testing.assert_close(magnitude(z, dim, keepdim=keepdim), plain)
    assert torch.autograd.gradcheck(lambda t: magnitude(t, 1, 1e-3), (z,))
    assert torch.autograd.gradgradcheck(lambda t: magnitude(t, 1, 1e-3), (z,))


@pytest.mark.parametrize("make", ["conv", "convt", "linear"])
def test_zero_bias_layers_are_rotation_equivariant(make):
    """Weights shared over the rotation dims and norms of magnitudes: f(Rz) = R f(z) for an orthogonal R."""
    torch.manual_seed(3)
    n = 4
    layer = {
        "conv": lambda: rotating_conv(2, 3, n),
        "convt": lambda: rotating_conv_transpose(2, 3, n),
        "linear": lambda: rotating_linear(5, 3, n),
    }[make]()
    zero_bias(layer)
    z = torch.randn(2, n, 2, 5, 5) if make != "linear" else torch.randn(2, n, 5)
    q, _ = torch.linalg.qr(torch.randn(n, n))
    rot = lambda t: torch.einsum("ij,bj...->bi...", q, t)  # noqa: E731
    assert torch.allclose(layer(rot(z)), rot(layer(z)), atol=1e-4)
    layer.rotation_bias.data.fill_(0.3)  # the bias breaks the symmetry: orientations become learnable
    assert not torch.allclose(layer(rot(z)), rot(layer(z)), atol=1e-3)


def test_all_zero_input_gives_finite_gradients():
    model = tiny_model(n=3)
    frames = torch.zeros(2, 1, 1, 16, 16, requires_grad=True)
    model.train()
    state = model(Batch(frames, torch.zeros(2, 1, 16, 16, dtype=torch.long)))
    loss = model.total(state.losses)
    loss.backward()
    assert torch.isfinite(loss)
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert torch.isfinite(frames.grad).all()
    # the norms themselves: d‖z‖/dz at z = 0 is finite (plain vector_norm would give nan for 1/‖z‖ terms)
    z = torch.zeros(2, 4, 3, requires_grad=True)
    (magnitude(z).sum() + (z / magnitude(z, keepdim=True)).sum()).backward()
    assert torch.isfinite(z.grad).all()


def test_nothing_depends_on_the_batch_size():
    """In evaluation (BatchNorm on running statistics) an item's output does not depend on its batch."""
    model = tiny_model(n=3)
    model.train()
    g = torch.Generator().manual_seed(0)
    for _ in range(3):  # give the running statistics something
        model(Batch(torch.rand(4, 1, 1, 16, 16, generator=g)), losses=False)
    model.eval()
    x = torch.rand(5, 1, 1, 16, 16, generator=g)
    with torch.no_grad():
        big = model.decoder(State(Batch(x), features=model.encoder(State(Batch(x))))).extras["rotating"]
        one = model.decoder(State(Batch(x[2:3]), features=model.encoder(State(Batch(x[2:3]))))).extras["rotating"]
    assert big.shape == (5, 1, 3, 1, 16, 16)
    assert torch.allclose(big[2:3], one, atol=1e-5)


def test_model_shapes_rgbd_and_negative_input_error():
    model = tiny_model(n=2, channels=4, res=32)  # the CAE on RGB-D
    model.train()
    state = model(Batch(torch.rand(3, 1, 4, 32, 32)))
    assert state.features.maps.shape == (3, 1, 2, 8)
    assert state.rendering.recon.shape == (3, 1, 4, 32, 32)
    assert state.rendering.extras["rotating"].shape == (3, 1, 2, 4, 32, 32)
    assert ((state.rendering.recon > 0) & (state.rendering.recon < 1)).all()
    with pytest.raises(ValueError, match="non-negative"):
        model(Batch(-torch.rand(1, 1, 4, 32, 32)))


# -- evaluation: orientations and clustering -------------------------------------------
def test_orientations_mask_and_average_over_channels():
    z = torch.zeros(1, 2, 3, 1, 2)  # [B r c h w]: 2 rotation dims, 3 channels, 2 pixels
    z[0, :, 0, 0, 0] = torch.tensor([2.0, 0.0])  # pixel 0: channel 0 along x, strong
    z[0, :, 1, 0, 0] = torch.tensor([0.0, 0.5])  # channel 1 along y
    z[0, :, 2, 0, 0] = torch.tensor([0.0, 0.05])  # channel 2 below the threshold: ignored
    z[0, :, 0, 0, 1] = torch.tensor([0.01, 0.0])  # pixel 1: everything below the threshold
    orient, mag = orientations(z, threshold=0.1)
    assert torch.allclose(orient[0, :, 0, 0], torch.tensor([0.5, 0.5]), atol=1e-5)  # (x̂ + ŷ) / 2
    assert torch.allclose(orient[0, :, 0, 1], torch.zeros(2), atol=1e-5)  # background → origin
    assert torch.allclose(mag[0, :, 0, 0], torch.tensor([2.0, 0.5, 0.05]), atol=1e-4)


def blobs(g, items=3, k=4, n=200, d=5, spread=0.05):
    centres = torch.randn(items, k, d, generator=g) * 2
    which = torch.randint(0, k, (items, n), generator=g)
    pts = centres.gather(1, which.unsqueeze(-1).expand(items, n, d)) + spread * torch.randn(items, n, d, generator=g)
    return pts, which


def test_kmeans_matches_scikit_learn():
    sk = pytest.importorskip("sklearn.cluster")
    g = torch.Generator().manual_seed(0)
    pts, which = blobs(g)
    labels, centres, inertia = kmeans(pts, 4, n_init=10, generator=torch.Generator().manual_seed(1))
    assert labels.shape == (3, 200) and centres.shape == (3, 4, 5)
    assert torch.allclose(fg_ari(labels, which + 1), torch.ones(3, dtype=torch.float64))  # recovers the blobs
    noisy, _ = blobs(g, spread=1.0)  # overlapping blobs: compare the objective with sklearn's
    _, _, ours = kmeans(noisy, 4, n_init=10, generator=torch.Generator().manual_seed(2))
    for i in range(3):
        ref = sk.KMeans(4, n_init=10, random_state=0).fit(noisy[i].double().numpy()).inertia_
        assert float(ours[i]) <= ref * 1.02, (i, float(ours[i]), ref)


def test_kmeans_with_a_different_k_per_item():
    g = torch.Generator().manual_seed(3)
    pts, which = blobs(g, items=2, k=4)
    pts[1] = pts[1].clone()
    which2 = which.clone()
    which2[1] = which[1] % 2  # item 1: merge to two blobs
    pts2, _ = blobs(torch.Generator().manual_seed(4), items=1, k=2)
    pts = torch.cat([pts[:1], pts2[:1, :200]])
    labels, _, _ = kmeans(pts, torch.tensor([4, 2]), n_init=4, generator=torch.Generator().manual_seed(0))
    assert int(labels[0].max()) == 3 and int(labels[1].max()) <= 1  # item 1 never uses centres 2, 3


def constructed_state(b=2, n=4, with_counts=True):
    """Rotating outputs of two 'objects' with orthogonal orientations on a zero background."""
    h = w = 8
    z = torch.zeros(b, 1, n, 1, h, w)
    masks = torch.zeros(b, 1, h, w, dtype=torch.long)
    for i in range(b):
        masks[i, 0, 1:4, 1 + i : 4 + i] = 1
        masks[i, 0, 5:8, 4:7] = 2
    e0, e1 = torch.eye(n)[0], torch.eye(n)[1]
    z[:, 0, :, 0] = torch.where((masks[:, 0] == 1)[:, None], e0[None, :, None, None], z[:, 0, :, 0])
    z[:, 0, :, 0] = torch.where((masks[:, 0] == 2)[:, None], 0.8 * e1[None, :, None, None], z[:, 0, :, 0])
    z = z + 0.02 * torch.randn(z.shape, generator=torch.Generator().manual_seed(0))  # background below threshold
    extras = {"counts": torch.full((b, 1), 2)} if with_counts else {}
    return State(
        Batch(torch.rand(b, 1, 1, h, w), masks, extras),
        rendering=Rendering(recon=torch.rand(b, 1, 1, h, w), extras={"rotating": z}),
    )


@pytest.mark.parametrize("method", ["kmeans", "agglomerative"])
def test_cluster_grouper_recovers_constructed_objects(method):
    state = constructed_state()
    grouper = RotatingCluster(RotatingCluster.Spec(method=method), BuildContext(1, 1, (8, 8)))
    lat = grouper(state)
    k = lat.masks.shape[2]
    assert k == 3  # objects + background (k-means from counts; agglomerative finds it)
    labels = lat.masks.argmax(2).flatten(1)
    truth = state.batch.masks.flatten(1)
    from ocf.metrics import ari

    assert torch.allclose(ari(labels, truth), torch.ones(2, dtype=torch.float64))
    assert lat.extras["orientation"].shape == (2, 1, 4, 8, 8) and lat.extras["magnitude"].shape == (2, 1, 1, 8, 8)


def test_cluster_grouper_without_counts_says_what_to_do():
    grouper = RotatingCluster(RotatingCluster.Spec(), BuildContext(1, 1, (8, 8)))
    with pytest.raises(ValueError, match="num_clusters"):
        grouper(constructed_state(with_counts=False))
    fixed = RotatingCluster(RotatingCluster.Spec(num_clusters=3), BuildContext(1, 1, (8, 8)))
    assert fixed(constructed_state(with_counts=False)).masks.shape[2] == 3


def test_agglomerative_cap():
    pts, _ = blobs(torch.Generator().manual_seed(5), items=1, k=4, n=60)
    assert int(agglomerative(pts, 0.5).max()) == 3
    assert int(agglomerative(pts, 0.5, max_clusters=2).max()) == 1


def test_pictures(tmp_path):
    state = constructed_state()
    state.latents = RotatingCluster(RotatingCluster.Spec(), BuildContext(1, 1, (8, 8)))(state)
    grouper = RotatingCluster(RotatingCluster.Spec(), BuildContext(1, 1, (8, 8)))
    assert grouper.pictures(state, tmp_path) == [tmp_path / "rotating.png"]  # what ocf viz draws
    img = rotating_figure(state, tmp_path / "rot.png")
    assert (tmp_path / "rot.png").exists() and img.size[0] > 6 * 64
    for n in (1, 2, 5):
        col = orientation_colours(torch.randn(2, n, 4, 4))
        assert col.shape == (2, 4, 4, 3) and col.dtype.name == "uint8"
    assert (orientation_colours(torch.zeros(1, 3, 2, 2)) == 0).all()  # background is black


# -- it learns ------------------------------------------------------------------------------
def test_it_learns_on_2shapes():
    from ocf_common.datasets import GENERATORS

    gen = GENERATORS["nshapes"]()
    data = gen.generate(64, 0, gen.Options(resolution=16, num_shapes=2, size=6))
    frames = torch.from_numpy(data["frames"]).permute(0, 1, 4, 2, 3).float() / 255  # [N 1 1 16 16]
    torch.manual_seed(0)
    model = tiny_model(n=4, hidden=8, linear=16)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    model.train()
    for step in range(60):
        idx = torch.arange(step * 16, step * 16 + 16) % 64
        state = model(Batch(frames[idx]))
        loss = model.total(state.losses)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.75 * first, (first, last)  # measured: 0.27 → 0.19


# Parameter counts of loeweX/RotatingFeatures at commit 7a2f38f (RotatingAutoEncoder instantiated with torch:
# encoder, decoder and output model; on features also the input BatchNorm), against ocf's model at the same settings.
ORIGINAL_PARAMETERS = {
    "4Shapes paper (d 32, L 64)": (dict(hidden=32, linear=64), 377_740),
    "4Shapes CPU (d 16, L 32)": (dict(hidden=16, linear=32), 98_508),
}


def _rotating_layer_params(c_in, c_out, n, kernel):
    return c_in * c_out * kernel + n * c_out + 2 * c_out  # shared weights, rotation bias [n c], affine norm


@pytest.mark.parametrize("case", sorted(ORIGINAL_PARAMETERS))
def test_parameter_count_equals_the_original(case):
    kwargs, original = ORIGINAL_PARAMETERS[case]
    model = tiny_model(n=8, res=32, **kwargs)
    assert sum(p.numel() for p in model.parameters()) == original
    # the same count from the public code's layer list: decoder 2d→2d (T), 2d→2d, 2d→2d (T), 2d→d, d→1 (T)
    d, L, n = kwargs["hidden"], kwargs["linear"], 8
    convs = [(1, d), (d, d), (d, 2 * d), (2 * d, 2 * d), (2 * d, 2 * d)]
    convs += [(2 * d, 2 * d), (2 * d, 2 * d), (2 * d, 2 * d), (2 * d, d), (d, 1)]
    count = sum(_rotating_layer_params(i, o, n, 9) for i, o in convs)
    count += _rotating_layer_params(2 * d * 16, L, n, 1) + _rotating_layer_params(L, 2 * d * 16, n, 1)
    count += 2  # the output model's w and b
    assert count == original
    widths = [(m.op.in_channels, m.op.out_channels) for m in model.decoder.convs]
    assert widths == convs[5:]


def test_parameter_count_on_features_equals_the_original():
    """On precomputed features the public code adds a stride-1 conv to the encoder and ends the decoder with
    d → d (transposed) then d → c; 6 feature channels, d 4, L 8, n 8: 6,468 parameters there."""
    spec_ = spec(n=8, res=28, channels=3, hidden=4, linear=8)
    spec_["data"].update(dataset="hdf5", generate=None, extras={"features": [6, 14, 14]})
    spec_["model"]["encoder"]["input"] = "features"
    spec_["model"]["decoder"]["output"] = "linear"
    model = build(resolve(spec_, REGISTRY), dry_run=False)
    assert sum(p.numel() for p in model.parameters()) == 6_468
    assert len(model.encoder.convs) == 6 and [m.op.out_channels for m in model.decoder.convs][-2:] == [4, 6]
    feats = torch.rand(2, 6, 14, 14)
    state = model(Batch(torch.rand(2, 1, 3, 28, 28), extras={"features": feats}), losses=False)
    assert state.rendering.recon.shape == (2, 1, 6, 14, 14)
