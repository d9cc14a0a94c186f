"""Conformance fixtures: tiny States for :func:`ocf.testing.check_component`, kept out of
the component classes (each names its fixture as ``example_state = "ocf_sqair.fixtures:..."``).
This module imports the components; none of them imports it."""

from __future__ import annotations

import torch

from ocf.components import BuildContext
from ocf.records import Batch, Features, State
from ocf_sqair.decoder import GlimpseDecoder
from ocf_sqair.encoder import FrameEncoder
from ocf_sqair.grouper import SqairGrouper
from ocf_sqair.prior import SqairPrior


def tiny_state(ctx: BuildContext, batch_size: int, upto: str, frames: int = 2) -> State:
    """Run a tiny encoder → grouper (→ prior → decoder) on ``frames`` random frames of
    ``ctx``'s size (two: propagation runs); writes the sizes they produce into ``ctx.dims``."""
    g = torch.Generator().manual_seed(0)
    h, w = ctx.resolution
    state = State(Batch(torch.rand(batch_size, frames, ctx.channels, h, w, generator=g)))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        sub = BuildContext(ctx.channels, frames, ctx.resolution)
        state.features = FrameEncoder(FrameEncoder.Spec(hidden=[8]), sub)(state)
        grouper = SqairGrouper(SqairGrouper.Spec(**{**SqairGrouper.example, "discovery_presence_bias": 3.0}), sub)
        state.latents = grouper(state)
        if upto in ("prior", "decoder"):
            state.prior = SqairPrior(SqairPrior.Spec(**SqairPrior.example), sub)(state)
        if upto == "decoder":
            state.rendering = GlimpseDecoder(GlimpseDecoder.Spec(**GlimpseDecoder.example), sub)(state)
    ctx.dims.update(sub.dims)
    return state


def grouper_state(ctx: BuildContext, batch_size: int) -> State:
    """Two frames (so propagation runs) and one-token features of 8 channels."""
    g = torch.Generator().manual_seed(0)
    h, w = ctx.resolution
    ctx.dims.update({"features.tokens": 8, "features.grid": (1, 1)})
    frames = torch.rand(batch_size, 2, ctx.channels, h, w, generator=g)
    tokens = torch.randn(batch_size, 2, 1, 8, generator=g, requires_grad=True)
    return State(Batch(frames), features=Features(tokens=tokens, grid=(1, 1)))


def prior_state(ctx: BuildContext, batch_size: int) -> State:
    """Latents from a tiny encoder → grouper."""
    return tiny_state(ctx, batch_size, upto="grouper")


def decoder_state(ctx: BuildContext, batch_size: int) -> State:
    """Latents and prior terms, over the context's frames."""
    return tiny_state(ctx, batch_size, upto="prior", frames=ctx.frames)


def objective_state(ctx: BuildContext, batch_size: int) -> State:
    """The whole tiny model's State (encoder → decoder)."""
    return tiny_state(ctx, batch_size, upto="decoder")
