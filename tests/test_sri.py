"""The SRI plugin: matching, the scene encoder's order invariance, the ordered posterior,
gradient isolation from the segregation stage, sampling, the three compositions (build,
train a few steps, sample), generative metrics, and a short learning run."""

from __future__ import annotations

import types
import warnings
from pathlib import Path

import pytest
import torch
import yaml

from ocf import plugins
from ocf.assembly import Model, build
from ocf.cli import main
from ocf.data.batches import take_batch
from ocf.errors import SpecError, UserError
from ocf.geco import Geco
from ocf.records import Batch, DiagonalGaussian, Latents, State
from ocf.run import generate, train
from ocf.run.data import open_split
from ocf.spec import GecoSpec, resolve
from ocf_sri.matching import greedy_match, hungarian_match
from ocf_sri.prior import SceneEncoder

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = plugins.default().registry
COMPOSITIONS = [
    "configs/compositions/slot_attention_sri.yaml",
    "configs/compositions/simone_sri.yaml",
    "configs/sri/genesis_sri.yaml",
]


def tiny(data_path: Path, **prior) -> dict:
    return {
        "data": {
            "dataset": "correlated",
            "path": str(data_path),
            "resolution": [16, 16],
            "generate": {
                "n": 64,
                "seed": 0,
                "options": {"resolution": 16, "rule": "same_color", "min_objects": 2, "max_objects": 3},
            },
        },
        "model": {
            "encoder": {"type": "cnn", "channels": [16, 16]},
            "grouper": {"type": "slot_attention.gaussian_grouper", "num_slots": 3, "slot_dim": 8, "mlp_hidden": 16},
            "prior": {"type": "sri.prior", "layers": 2, "lstm_hidden": 16, **prior},
            "decoder": {"type": "spatial_broadcast", "channels": [16, 16]},
            "objectives": [
                {"type": "mixture_nll", "sigma": 0.1, "reduction": "mean_pixel"},
                {"type": "sri.ordered_nll", "sigma": 0.1, "reduction": "mean_pixel"},
                {"type": "kl", "weight": 0.01},
            ],
        },
        "train": {"steps": 2, "batch_size": 4, "image_every": 0, "checkpoint_every": 2},
        "eval": {
            "batch_size": 8,
            "max_samples": 16,
            "metrics": ["fg_ari", "mse", "kid", "relation_accuracy"],
            "metric_options": {"kid": {"subset_size": 8, "subsets": 5}},
        },
    }


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    return tmp_path_factory.mktemp("sri") / "correlated16.h5"


def tiny_model(data_path, seed=0, **prior) -> Model:
    torch.manual_seed(seed)
    return build(resolve(tiny(data_path, **prior), REGISTRY), dry_run=False)


# -- matching ----------------------------------------------------------------------------
def test_matching_returns_a_permutation_and_greedy_equals_hungarian_when_unique():
    g = torch.Generator().manual_seed(0)
    cost = torch.rand(64, 6, 6, generator=g)
    for match in (greedy_match, hungarian_match):
        perm = match(cost)
        assert torch.equal(perm.sort(dim=1).values, torch.arange(6).expand(64, 6))
    # posterior slots are a shuffled copy of the rollout: a unique zero-cost optimum
    points = torch.randn(64, 6, 5, generator=g)
    shuffle = torch.stack([torch.randperm(6, generator=g) for _ in range(64)])
    posterior = torch.gather(points, 1, shuffle.unsqueeze(-1).expand_as(points))
    cost = torch.cdist(points, posterior).pow(2)
    greedy, hungarian = greedy_match(cost), hungarian_match(cost)
    assert torch.equal(greedy, hungarian)
    assert torch.allclose(torch.gather(posterior, 1, greedy.unsqueeze(-1).expand_as(points)), points)


def test_greedy_follows_rollout_order_where_hungarian_optimises():
    cost = torch.tensor([[[0.0, 1.0], [0.1, 10.0]]])  # greedy: step 0 takes slot 0, step 1 pays 10
    assert greedy_match(cost).tolist() == [[0, 1]] and hungarian_match(cost).tolist() == [[1, 0]]


def test_hungarian_finds_the_cheapest_permutation_of_every_scene():
    import itertools

    g = torch.Generator().manual_seed(1)
    cost = torch.rand(8, 5, 5, generator=g, dtype=torch.float64)
    perm = hungarian_match(cost)
    assert perm.dtype == torch.long and perm.shape == (8, 5)
    rows = torch.arange(5)
    for c, p in zip(cost, perm):
        best = min(sum(float(c[i, j]) for i, j in enumerate(js)) for js in itertools.permutations(range(5)))
        assert float(c[rows, p].sum()) == pytest.approx(best, abs=1e-12)
    assert hungarian_match(torch.zeros(0, 3, 3)).shape == (0, 3)


# -- the prior ---------------------------------------------------------------------------
def test_scene_encoder_ignores_slot_order():
    torch.manual_seed(0)
    enc = SceneEncoder(slot_dim=8, width=16, layers=3, heads=2, scene_dim=16, min_std=1e-3)
    z = torch.randn(5, 4, 8)
    q1, q2 = enc(z), enc(z[:, torch.randperm(4)])
    assert torch.allclose(q1.mean, q2.mean, atol=1e-5) and torch.allclose(q1.std, q2.std, atol=1e-5)


def test_ordered_posterior_permutes_the_posterior_means(data_path):
    model = tiny_model(data_path).train()
    state = model(Batch(torch.rand(4, 1, 3, 16, 16)))
    extras, post = state.prior.extras, state.latents.posterior
    order = extras["order"]
    assert torch.equal(order.sort(1).values, torch.arange(3).expand(4, 3))
    assert set(state.prior.terms) == {"scene_kl", "slot_kl", "cross_order_kl", "segregation_kl"}
    assert all(torch.isfinite(v) and v >= -1e-5 for v in state.prior.terms.values())
    assert extras["ordered"].shape == (4, 3, 8) and extras["scene"].shape == (4, 16)  # scene dim 2·d
    # with std → 0 the ordered sample is the permuted mean: check through the prior directly
    model.prior.posterior_scales.raw_std.bias.data.fill_(-60.0)
    model.prior.posterior_scales.raw_std.weight.data.zero_()
    model.prior.posterior_scales.min_std = 1e-8
    torch.manual_seed(1)
    st = State(
        state.batch,
        latents=Latents(objects=post.mean, posterior=DiagonalGaussian(post.mean.detach(), post.std.detach())),
    )
    out = model.prior(st).extras
    expected = torch.gather(post.mean.detach(), 1, out["order"].unsqueeze(-1).expand(4, 3, 8))
    assert torch.allclose(out["ordered"], expected, atol=1e-4)


def test_no_gradient_flows_through_the_matching_or_into_the_segregation_slots(data_path):
    model = tiny_model(data_path).train()
    state = model(Batch(torch.rand(4, 1, 3, 16, 16)))
    sri_terms = [state.prior.terms[k] for k in ("scene_kl", "slot_kl", "cross_order_kl")] + [
        state.losses["ordered_nll"]
    ]
    seg = [p for p in list(model.encoder.parameters()) + list(model.grouper.parameters())]
    grads = torch.autograd.grad(sum(sri_terms), seg, allow_unused=True)
    assert all(g is None or g.abs().max() == 0 for g in grads)
    assert not state.prior.extras["order"].requires_grad
    # the segregation VAE's own KL does train the grouper
    grads = torch.autograd.grad(
        state.prior.terms["segregation_kl"], list(model.grouper.parameters()), allow_unused=True
    )
    assert any(g is not None and g.abs().max() > 0 for g in grads)
    # and SRI's own networks get gradients from its terms
    prior_grads = torch.autograd.grad(sum(sri_terms), list(model.prior.parameters()), allow_unused=True)
    assert all(g is not None for g in prior_grads)


def test_shared_or_separate_decoder_for_the_ordered_nll(data_path):
    shared = tiny_model(data_path)
    assert shared.objectives[1].decoder is shared.decoder
    assert not any(n.startswith("objectives.") for n, _ in shared.named_parameters())  # registered once
    d = tiny(data_path)
    d["model"]["objectives"][1]["decoder"] = {"type": "spatial_broadcast", "channels": [8]}
    separate = build(resolve(d, REGISTRY), dry_run=False)
    assert separate.objectives[1].decoder is not separate.decoder
    assert any(n.startswith("objectives.1.own.") for n, _ in separate.named_parameters())
    d["model"]["objectives"][1]["decoder"] = {"type": "spatial_broadcast", "channel": [8]}
    with pytest.raises(SpecError, match="decoder"):
        build(resolve(d, REGISTRY), dry_run=False)


def test_samples_follow_the_seed_and_temperature(data_path):
    model = tiny_model(data_path)
    a = generate.generate(model, 3, generator=torch.Generator().manual_seed(0))
    b = generate.generate(model, 3, generator=torch.Generator().manual_seed(0))
    cold = generate.generate(model, 3, temperature=1e-6, generator=torch.Generator().manual_seed(5))
    colder = generate.generate(model, 3, temperature=1e-6, generator=torch.Generator().manual_seed(6))
    assert a.rendering.recon.shape == (3, 1, 3, 16, 16) and torch.equal(a.rendering.recon, b.rendering.recon)
    assert torch.allclose(cold.latents.objects, colder.latents.objects, atol=1e-4)  # T → 0: the prior's modes
    with pytest.raises(UserError, match="cannot continue"):
        generate.generate(model, condition=Batch(torch.rand(2, 1, 3, 16, 16)), frames=1)


def test_geco_constrains_the_sum_of_several_terms():
    geco = Geco(GecoSpec(term=["nll", "ordered_nll"], goal=1.0, step_size=0.1, speedup=None))
    terms = {"nll": torch.tensor(2.0), "ordered_nll": torch.tensor(3.0), "kl": torch.tensor(4.0)}
    assert float(geco.loss(terms)) == pytest.approx(5.0 + 4.0)
    assert geco.beta == pytest.approx(torch.exp(torch.tensor(0.1 * (1.0 - 5.0))).item())  # err 5 > goal: β shrinks


# -- compositions ------------------------------------------------------------------------
@pytest.mark.parametrize("path", COMPOSITIONS)
def test_compositions_build_train_and_sample(path, tmp_path):
    """Each composition at a tiny size: a few training steps, then `ocf sample`."""
    raw = yaml.safe_load((ROOT / path).read_text())
    d, m = raw["data"], raw["model"]
    d.update(resolution=[16, 16], path=str(tmp_path / "data.h5"))
    d["generate"] = {"n": 24, "seed": 0, "options": dict(d["generate"].get("options", {}), resolution=16)}
    if m["encoder"]["type"] == "simone.encoder":  # 16x16 → 2 convs → 4x4 → pool 2 → 4 slots
        m["encoder"].update(conv_channels=[8, 8], width=16, heads=2, ffn=16)
        m["grouper"]["hidden"] = [16]
    raw["train"].update(steps=2, batch_size=2, image_every=0, log_every=1)
    raw["eval"] = {"metrics": ["mse"]}
    run = train.run(resolve(raw, REGISTRY), out=str(tmp_path / "run"), progress=False)
    assert main(["sample", str(run), "--n", "3"]) == 0
    assert (run / "samples" / "samples.png").exists()


# -- generation metrics ------------------------------------------------------------------
def test_kid_and_fid_separate_distributions_with_offline_features():
    from ocf.metrics import Fid, Kid

    g = torch.Generator().manual_seed(0)
    real = State(Batch(torch.rand(40, 1, 3, 16, 16, generator=g)))
    fake = lambda x: types.SimpleNamespace(rendering=types.SimpleNamespace(recon=x))  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        same, dark = Kid(subset_size=20, subsets=10), Kid(subset_size=20, subsets=10)
        for m, x in (
            (same, torch.rand(40, 1, 3, 16, 16, generator=g)),
            (dark, 0.3 * torch.rand(40, 1, 3, 16, 16, generator=g)),
        ):
            m.update_state(real)
            m.update_generated(fake(x))
        assert abs(float(same.compute())) < 0.1 < float(dark.compute())
        fid = Fid()
        fid.update_state(real)
        fid.update_generated(fake(0.3 * torch.rand(40, 1, 3, 16, 16, generator=g)))
        assert float(fid.compute()) > 1.0


def test_torchscript_feature_extractor_and_clear_errors(tmp_path):
    from ocf.metrics import make_extractor

    class Net(torch.nn.Module):
        def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
            assert x.dtype == torch.uint8
            return x.float().mean(dim=(2, 3)) * (2.0 if return_features else 1.0)

    path = tmp_path / "net.pt"
    torch.jit.script(Net()).save(str(path))
    ext = make_extractor("inception", weights=str(path))
    x = torch.full((2, 3, 4, 4), 0.5)
    assert torch.allclose(ext(x), torch.full((2, 3), 256.0))  # uint8 128 · 2 (return_features=True)
    with pytest.raises(UserError, match="needs weights"):
        make_extractor("inception")
    with pytest.raises(UserError, match="not found"):
        make_extractor("torchscript", weights=str(tmp_path / "missing.pt"))


def test_relation_accuracy_scores_rule_abiding_scenes_high(data_path):
    from ocf_common.relation import RelationAccuracy

    tiny_model(data_path)  # makes sure the file exists through a training-free path below
    resolved = resolve(tiny(data_path), REGISTRY)
    open_split(resolved.spec, "test", REGISTRY)
    ds = open_split(resolved.spec, "test", REGISTRY)
    real = take_batch(ds, list(range(len(ds))), 1, seed=0, step=0, random_window=False).frames
    metric = RelationAccuracy.from_spec(resolved)
    assert metric.rule == "same_color"
    fake = lambda x: types.SimpleNamespace(rendering=types.SimpleNamespace(recon=x))  # noqa: E731
    metric.update_generated(fake(real))
    assert float(metric.compute()) > 0.9
    noisy = RelationAccuracy(rule="same_color")
    noisy.update_generated(fake(torch.rand(16, 1, 3, 16, 16)))
    assert float(noisy.compute()) < 0.2


def test_ocf_eval_scores_generated_scenes_and_refuses_models_that_cannot_generate(tmp_path, data_path, capsys):
    run = train.run(resolve(tiny(data_path), REGISTRY), out=str(tmp_path / "run"), progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["eval", str(run), "--json"]) == 0
    out = capsys.readouterr().out
    import json

    metrics = json.loads(out)["metrics"]
    assert 0 <= metrics["relation_accuracy"] <= 1 and metrics["kid"] == metrics["kid"]
    d = tiny(data_path)
    del d["model"]["prior"]
    d["model"]["grouper"]["type"] = "slot_attention.grouper"
    d["model"]["objectives"] = [{"type": "mse"}]
    bare = train.run(resolve(d, REGISTRY), out=str(tmp_path / "bare"), progress=False)
    assert main(["eval", str(bare)]) == 2
    assert "scores generated scenes" in capsys.readouterr().err


# -- learning ----------------------------------------------------------------------------
def test_sri_losses_fall_on_correlated_scenes(data_path):
    """40 Adam steps on 16 same-colour scenes: both NLLs and the SRI KLs fall."""
    model = tiny_model(data_path).train()
    resolved = resolve(tiny(data_path), REGISTRY)
    ds = open_split(resolved.spec, "train", REGISTRY)
    batch = take_batch(ds, list(range(16)), 1, seed=0, step=0, random_window=False)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    history = []
    for _ in range(40):
        state = model(batch)
        loss = Model.total(state.losses)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append({k: float(v.detach()) for k, v in {**state.losses, **state.prior.terms}.items()})
    first = {k: sum(h[k] for h in history[:3]) / 3 for k in history[0]}
    last = {k: sum(h[k] for h in history[-5:]) / 5 for k in history[0]}
    assert last["nll"] < first["nll"] - 0.5 and last["ordered_nll"] < first["ordered_nll"] - 0.5, (first, last)
    assert last["slot_kl"] < first["slot_kl"], (first, last)
