"""Generation from a trained model's prior (``ocf sample``, and generative metrics).

Unconditional: the prior draws latents for ``n`` scenes and the decoder renders them.
Conditional (``--condition N``, for priors that continue sequences): the model infers
latents from the first N frames of real videos, the prior rolls forward to ``--frames``
frames, and the decoder renders the whole clip.
"""

from __future__ import annotations

import torch

from ocf.assembly import Model
from ocf.data.batches import ordered_batch
from ocf.errors import UserError
from ocf.records import Batch, State
from ocf.run.data import open_split, registry_of
from ocf.spec import ResolvedSpec


def can_generate(model: Model) -> str | None:
    """``None`` if the model can generate, else the reason it cannot."""
    if model.prior is None:
        return (
            "the model has no prior (model.prior); generation needs a generative prior such as `normal` or `sri.prior`"
        )
    if not type(model.prior).can_sample():
        return f"prior {model.prior.name!r} does not implement sampling; it cannot generate scenes"
    if model.decoder is None:
        return "the model has no decoder to render sampled latents"
    return None


@torch.no_grad()
def generate(
    model: Model,
    n: int | None = None,
    *,
    condition: Batch | None = None,
    frames: int | None = None,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> State:
    """Sample latents from ``model.prior`` and render them: a :class:`State` whose
    ``batch`` is a zero placeholder of the generated shape, ``latents`` the samples and
    ``rendering`` the decoder's output (``rendering.recon [n t c h w]``).

    With ``condition`` (observed frames ``[n t0 c h w]``) the model first runs on them
    and the prior continues from that state; ``frames`` is the total length to generate
    (default: the spec's ``data.frames``, or ``t0`` + 1 when conditioning on them all).
    """
    reason = can_generate(model)
    if reason:
        raise UserError(f"cannot sample: {reason}")
    was = model.training
    model.eval()
    try:
        data = model.resolved.spec.data
        device = next(model.parameters(), torch.zeros(())).device
        observed = None
        if condition is not None:
            condition = condition.to(device)
            n = condition.frames.shape[0]
            observed = model(condition, losses=False)
            t0 = condition.frames.shape[1]
            frames = frames or max(data.frames, t0 + 1)
            if frames < t0:
                raise UserError(f"--frames ({frames}) must be at least the {t0} conditioning frames")
        if n is None or n < 1:
            raise UserError("the number of samples must be at least 1")
        frames = frames or data.frames
        latents = model.prior.sample(n, temperature=temperature, generator=generator, condition=observed, frames=frames)
        h, w = data.resolution
        placeholder = Batch(torch.zeros(n, frames, data.channels, h, w, device=device))
        state = State(placeholder, latents=latents)
        state.rendering = model.to_unit_range(model.decoder(state))
        return state
    finally:
        model.train(was)


def conditioning(resolved: ResolvedSpec, split: str | None, n: int, condition: int) -> tuple[Batch, Batch]:
    """The first ``n`` clips of ``split`` (default ``eval.split``): whole (``data.frames``
    frames, the real clips to show) and their first ``condition`` frames (what the model
    observes), both cut by the one window rule."""
    spec = resolved.spec
    if condition < 1:
        raise UserError(f"--condition must be at least 1 frame, got {condition}")
    if condition > spec.data.frames:
        raise UserError(
            f"--condition {condition} exceeds the {spec.data.frames} frames the run was trained on (data.frames)"
        )
    ds = open_split(spec, split or spec.eval.split, registry_of(resolved))
    return ordered_batch(ds, 0, n, spec.data.frames), ordered_batch(ds, 0, n, condition)
