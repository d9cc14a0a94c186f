"""Conformance fixtures: States holding a small rotating encoder's features (and a
decoder's rendering) for :func:`ocf.testing.check_component`; the components name them as
``example_state = "ocf_rotating.fixtures:..."``, and none of them imports this module."""

from __future__ import annotations

import torch

from ocf.components import BuildContext
from ocf.records import Batch, State
from ocf_rotating.decoder import RotatingDecoder
from ocf_rotating.encoder import RotatingEncoder


def example_rotating_state(ctx: BuildContext, batch_size: int, *, with_rendering: bool) -> State:
    """A State holding a small encoder's rotating features (and, if asked, a decoder's
    rendering) of random frames; writes the sizes into ``ctx.dims``."""
    g = torch.Generator().manual_seed(0)
    b, t, c, (h, w) = batch_size, ctx.frames, ctx.channels, ctx.resolution
    frames = torch.rand(b, t, c, h, w, generator=g)
    masks = torch.randint(0, 3, (b, t, h, w), generator=g)
    state = State(Batch(frames, masks, {"counts": masks.flatten(2).amax(-1)}))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        enc = RotatingEncoder(RotatingEncoder.Spec(rotation_dims=3, hidden=4, linear=8), ctx)
        state.features = enc(state)
        state.features.maps = state.features.maps.detach().requires_grad_()
        if with_rendering:
            dec = RotatingDecoder(RotatingDecoder.Spec(), ctx)
            state.rendering = dec(state)
            state.rendering.extras["rotating"] = state.rendering.extras["rotating"].detach()
    return state


def decoder_state(ctx: BuildContext, batch_size: int) -> State:
    """Random frames through a small rotating encoder."""
    return example_rotating_state(ctx, batch_size, with_rendering=False)


def grouper_state(ctx: BuildContext, batch_size: int) -> State:
    """Random frames through a small rotating encoder and decoder."""
    return example_rotating_state(ctx, batch_size, with_rendering=True)
