"""SRI's prior network against the original code (pemami4911/segregate-relate-imagine at d644e2b):
the relational attention block against its formula, the scene variable entering the LSTMs only
at their first step, the parameter counts, and the set-attention variant kept as an option."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from ocf.components import BuildContext
from ocf.records import Batch, DiagonalGaussian, Latents, State
from ocf_sri.matching import MATCHERS, greedy_match
from ocf_sri.prior import RelationalSceneEncoder, SceneEncoder, SlotLSTM, SRIPrior
from ocf_sri.relate import RelationBlock


def make_prior(slot_dim=8, num_slots=4, **spec) -> SRIPrior:
    ctx = BuildContext(
        channels=3,
        frames=1,
        resolution=(16, 16),
        dims={"latents.objects": slot_dim, "latents.num_slots": num_slots},
        kind="prior",
        name="sri.prior",
    )
    return SRIPrior(SRIPrior.Spec(**spec), ctx)


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_relation_block_follows_the_pairwise_formula():
    """x_i + MLP(LN(x_i + Σ_j softmax_j(q_i·k_j/√D) · V([x_i, x_i − x_j]))), computed pair by pair."""
    torch.manual_seed(0)
    block = RelationBlock(6)
    x = torch.randn(2, 5, 6)
    expected = torch.empty_like(x)
    for b in range(2):
        for i in range(5):
            scores = torch.stack([block.q(x[b, i]) @ block.k(x[b, j]) / 6**0.5 for j in range(5)])
            values = torch.stack([block.value(torch.cat([x[b, i], x[b, i] - x[b, j]])) for j in range(5)])
            out = (scores.softmax(0)[:, None] * values).sum(0)
            expected[b, i] = x[b, i] + block.mlp(block.norm(x[b, i] + out))
    assert torch.allclose(block(x), expected, atol=1e-5)
    assert block.q.bias is None and block.k.bias is None


def test_relational_scene_encoder_ignores_slot_order():
    torch.manual_seed(0)
    enc = RelationalSceneEncoder(slot_dim=8, layers=3, scene_dim=16, min_std=1e-3)
    z = torch.randn(5, 4, 8)
    q1, q2 = enc(z), enc(z[:, torch.randperm(4)])
    assert q1.mean.shape == (5, 16)
    assert torch.allclose(q1.mean, q2.mean, atol=1e-5) and torch.allclose(q1.std, q2.std, atol=1e-5)


def test_the_scene_variable_is_only_the_lstm_s_first_input():
    """Step 1 reads GELU(Linear(s)) at the slot dim, step i > 1 reads z_{i-1}; the state starts at zero."""
    torch.manual_seed(0)
    lstm = SlotLSTM(slot_dim=6, scene_dim=12, hidden=10, min_std=1e-3)
    assert lstm.cell.input_size == 6 and lstm.scene[0].out_features == 6
    s, z = torch.randn(3, 12), torch.randn(3, 4, 6)
    mean, std = lstm.teacher_forced(s, z)
    inputs = [lstm.scene(s)] + [z[:, i] for i in range(3)]
    hc = None
    for i, x in enumerate(inputs):
        hc = lstm.cell(x, hc)
        assert torch.allclose(mean[:, i], lstm.mean(hc[0]), atol=1e-6)
        assert torch.allclose(std[:, i], torch.nn.functional.softplus(lstm.raw_std(hc[0])) + 1e-3, atol=1e-6)
    # the scene variable reaches later steps only through the recurrent state: with zero LSTM weights on the
    # hidden state and a closed forget gate, step 2 onwards ignores s
    with torch.no_grad():
        lstm.cell.weight_hh.zero_()
        lstm.cell.bias_ih[10:20] = -1e4  # gates in torch's order i, f, g, o
    m1, _ = lstm.teacher_forced(s, z)
    m2, _ = lstm.teacher_forced(torch.randn(3, 12), z)
    assert not torch.allclose(m1[:, 0], m2[:, 0]) and torch.allclose(m1[:, 1:], m2[:, 1:])


# sri.model.SceneEncoder, AutoregressivePrior and AutoregressivePosterior of the original, instantiated with torch
# (slot dim z, scene dim s = 2z, L relation layers, LSTM hidden 4z): parameters per part
ORIGINAL = {(64, 3, 256): (128_512, 370_880, 354_432), (32, 3, 128): (32_512, 93_280, 89_152)}


@pytest.mark.parametrize("size", sorted(ORIGINAL))
def test_prior_parameters_equal_the_original(size):
    slot_dim, layers, hidden = size
    prior = make_prior(slot_dim=slot_dim, layers=layers, lstm_hidden=hidden)
    parts = (count(prior.relate), count(prior.slot_prior), count(prior.posterior_scales))
    assert parts == ORIGINAL[size]
    assert count(prior) == sum(ORIGINAL[size])


def test_set_attention_is_an_option_and_width_heads_alone_are_deprecated():
    prior = make_prior(relate="set_attention", width=16, heads=2)
    assert isinstance(prior.relate, SceneEncoder) and prior.relate.embed.out_features == 16
    with pytest.warns(DeprecationWarning, match="relate: set_attention"):
        old = make_prior(width=16, heads=2)
    assert isinstance(old.relate, RelationalSceneEncoder)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_prior()


def test_matching_uses_the_rollout_means(monkeypatch):
    """The posterior means are matched to the rollout's means (the original's greedy_matching input), not to its
    samples."""
    torch.manual_seed(0)
    prior = make_prior(slot_dim=4, num_slots=3).train()
    seen = {}
    real_rollout = prior.slot_prior.rollout

    def rollout(s, k, noise):
        seen["rollout"] = real_rollout(s, k, noise)
        return seen["rollout"]

    def matcher(cost):
        seen["cost"] = cost
        return greedy_match(cost)

    monkeypatch.setattr(prior.slot_prior, "rollout", rollout)
    monkeypatch.setitem(MATCHERS, "greedy", matcher)
    mu = torch.randn(2, 3, 4)
    posterior = DiagonalGaussian(mu, torch.ones_like(mu))
    prior(State(Batch(torch.rand(2, 1, 3, 16, 16)), latents=Latents(objects=mu, posterior=posterior)))
    samples, dist = seen["rollout"]
    assert torch.allclose(seen["cost"], torch.cdist(dist.mean, mu).pow(2), atol=1e-5)
    assert not torch.allclose(seen["cost"], torch.cdist(samples, mu).pow(2), atol=1e-3)
