"""Generation from a trained model's prior (``ocf sample``).

Unconditional: the prior draws latents for ``n`` scenes and the decoder renders them.
Conditional (``--condition N``, for priors that continue sequences): the model infers
latents from the first N frames of real videos, the prior rolls forward to ``--frames``
frames, and the decoder renders the whole clip.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ocf.assembly import Model
from ocf.components import Prior
from ocf.errors import UserError
from ocf.records import Batch, State


def can_generate(model: Model) -> str | None:
    """``None`` if the model can generate, else the reason it cannot."""
    if model.prior is None:
        return "the model has no prior (model.prior); generation needs a generative prior such as `normal` or `sri.prior`"
    if type(model.prior).sample is Prior.sample:
        return f"prior {model.prior.registered_name!r} does not implement sampling; it cannot generate scenes"
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
        state.rendering = model.decoder(state)
        return state
    finally:
        model.train(was)


def sample_pictures(state: State, out_dir: Path, *, real: torch.Tensor | None = None, observed: int = 0, per_row: int = 8) -> list[Path]:
    """``samples.png`` (images: a grid; video: one row per sample over time, boxes drawn
    where the latents have ``where``/``presence``) and ``samples.gif`` for video.  With
    ``real`` clips ``[n t c h w]``, each is shown above its generated one; the first
    ``observed`` frames are titled "obs" (inferred) and the rest "gen" (generated)."""
    from ocf import viz

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    recon = state.rendering.recon.float().clamp(0, 1).cpu()  # [n t c h w]
    n, t = recon.shape[:2]
    lat = state.latents
    where = lat.where.cpu() if lat is not None and lat.where is not None else None
    presence = lat.presence.cpu() if lat is not None and lat.presence is not None else None

    def cell(i: int, j: int):
        if where is None:
            return viz.to_uint8(recon[i, j])
        return viz.draw_boxes(recon[i, j], where[i, j], None if presence is None else presence[i, j])

    written = []
    if t == 1:
        cells = [cell(i, 0) for i in range(n)]
        rows = [cells[r:r + per_row] for r in range(0, n, per_row)]
        grid = viz.image_grid(rows, pad=2, scale=max(1, 64 // max(recon.shape[-2:])))
        grid.save(out_dir / "samples.png")
        return [out_dir / "samples.png"]
    t0 = observed
    real = real.float().cpu() if real is not None else None
    rows, labels = [], []
    for i in range(n):
        if real is not None:
            rows.append([viz.to_uint8(real[i, j]) if j < real.shape[1] else None for j in range(t)])
            labels.append(f"real {i}")
        rows.append([cell(i, j) for j in range(t)])
        labels.append(f"sample {i}")
    titles = [("obs " if j < t0 else "gen ") + str(j) if t0 else f"t={j}" for j in range(t)]
    scale = max(1, 64 // max(recon.shape[-2:]))
    viz.image_grid(rows, titles, pad=2, row_labels=labels, scale=scale).save(out_dir / "samples.png")
    written.append(out_dir / "samples.png")
    per_frame = [viz.image_grid([[cell(i, j) for i in range(n)]], [f"{'obs' if j < t0 else 'gen'} t={j}"], pad=2, scale=scale) for j in range(t)]
    written.append(viz.save_gif(per_frame, out_dir / "samples.gif", fps=3))
    return written


def main(run_dir: str, *, n: int = 16, temperature: float = 1.0, condition: int | None = None, frames: int | None = None,
         seed: int = 0, out: str | None = None, checkpoint: str | None = None, split: str | None = None) -> list[Path]:
    """``ocf sample``: load a run, generate, save pictures under ``RUN/samples`` (or ``out``)."""
    from ocf.evaluate import load_run

    resolved, model, _ = load_run(run_dir, checkpoint)
    reason = can_generate(model)
    if reason:
        raise UserError(f"cannot sample from {run_dir}: {reason}")
    if temperature <= 0:
        raise UserError(f"--temperature must be positive, got {temperature}")
    batch = None
    if condition is not None:
        from ocf import plugins
        from ocf.train import open_split, take_batch

        spec = resolved.spec
        if condition < 1:
            raise UserError(f"--condition must be at least 1 frame, got {condition}")
        if condition > spec.data.frames:
            raise UserError(f"--condition {condition} exceeds the {spec.data.frames} frames the run was trained on (data.frames)")
        ds = open_split(spec, split or spec.eval.split, plugins.default().registry)
        full = take_batch(ds, list(range(min(n, len(ds)))), spec.data.frames, seed=0, step=0, random_window=False)
        batch = Batch(full.frames[:, :condition], None if full.masks is None else full.masks[:, :condition],
                      {k: v[:, :condition] if v.ndim > 1 and v.shape[1] == spec.data.frames else v for k, v in full.extras.items()})
    g = torch.Generator(device=next(model.parameters(), torch.zeros(())).device).manual_seed(seed)
    torch.manual_seed(seed)
    state = generate(model, n, condition=batch, frames=frames, temperature=temperature, generator=g)
    out_dir = Path(out) if out else Path(run_dir) / "samples"
    paths = sample_pictures(state, out_dir, real=None if batch is None else full.frames, observed=condition or 0)
    torch.save({"recon": state.rendering.recon.cpu()}, out_dir / "samples.pt")
    for p in paths:
        print(p)
    return paths
