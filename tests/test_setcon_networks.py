"""SetCon's networks against the unofficial code (dirkneuhaeuser/contrastive-learning-of-object-representations
at 5e4219a): the encoder's BatchNorm, three-layer DeepSets MLPs, the transition's width, and parameter counts
of its models (DeepSet(64, 128), TransitionModel(64), Encoder(64, (64, 64), 3, 'normal')) instantiated with torch."""

from __future__ import annotations

import torch
from torch import nn

from ocf.components import BuildContext
from ocf_setcon.encoder import SetConEncoder
from ocf_setcon.grouper import SetConGrouper, SetEmbedding, Transition


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_set_embedding_and_transition_match_the_unofficial_code():
    g = SetEmbedding(64, 128, 64)
    assert count(g) == 82_880
    assert [type(m) for m in g.phi] == [nn.Linear, nn.ELU, nn.Linear, nn.ELU, nn.Linear]
    assert [m.out_features for m in g.rho if isinstance(m, nn.Linear)] == [128, 128, 64]
    assert count(Transition(64, 64)) == 16_640


def test_the_transition_is_as_wide_as_the_slots_by_default():
    ctx = BuildContext(channels=3, frames=3, resolution=(8, 8), dims={"features.tokens": 16, "features.grid": (8, 8)})
    grouper = SetConGrouper(SetConGrouper.Spec(num_slots=3, slot_dim=24, mlp_hidden=32), ctx)
    assert grouper.transition.f[0].out_features == 24


def test_encoder_has_the_unofficial_batchnorm_and_parameter_count():
    ctx = BuildContext(channels=3, frames=3, resolution=(64, 64))
    layout = dict(
        channels=[64, 128, 128, 256, 64, 64, 64], kernel_size=[7, 3, 3, 3, 3, 3, 3], strides=[2, 2, 1, 2, 1, 1, 1]
    )
    enc = SetConEncoder(SetConEncoder.Spec(**layout), ctx)
    assert count(enc) == 756_352  # the unofficial 'normal' Encoder
    assert isinstance(enc.convs[1], nn.BatchNorm2d) and isinstance(enc.convs[2], nn.ReLU)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in enc.convs) == 1
    plain = SetConEncoder(SetConEncoder.Spec(batch_norm=False, **layout), BuildContext(3, 3, (64, 64)))
    assert count(plain) == 756_352 - 2 * 64
    x = torch.rand(2, 3, 3, 64, 64)
    from ocf.records import Batch, State

    tokens = enc(State(Batch(x))).tokens
    assert tokens.shape == (2, 3, 64, 64)  # 8x8 tokens of 64 channels
    # in training mode the BatchNorm normalises the first conv's output over the frames of the batch
    first = enc.convs[1](enc.convs[0](x.flatten(0, 1)))
    assert torch.allclose(first.mean(dim=(0, 2, 3)), torch.zeros(64), atol=1e-5)
