"""Tiny States for the conformance checks of the components that read SQAIR latents."""

from __future__ import annotations

import torch

from ocf.components import BuildContext
from ocf.records import Batch, State


def tiny_state(ctx: BuildContext, batch_size: int, upto: str, frames: int = 2) -> State:
    """Run a tiny encoder → grouper (→ prior → decoder) on ``frames`` random frames of
    ``ctx``'s size (two: propagation runs); writes the sizes they produce into ``ctx.dims``."""
    from ocf_sqair.decoder import GlimpseDecoder
    from ocf_sqair.encoder import FrameEncoder
    from ocf_sqair.grouper import SqairGrouper
    from ocf_sqair.prior import SqairPrior

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
