"""The stricter half of :func:`ocf.testing.check_component`: what a component records in
``ctx.dims`` matches what it outputs; masks and attention have their documented shapes at
the data's resolution; posteriors are well formed; every ``needs`` is in the input."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ocf.records import Latents, Rendering, State

#: size keys a component providing the field must record in ``ctx.dims`` (the last axis)
RECORDED = ("features.tokens", "latents.objects", "latents.frames")


class ConformanceError(AssertionError):
    pass


def check_inputs(state: State, needs: tuple[str, ...], label: str, custom: bool) -> None:
    """Every field in ``needs`` is present in the input ``state``."""
    missing = [path for path in needs if state.get(path) is None]
    if not missing:
        return
    if custom:
        raise ConformanceError(f"{label}: its example_state does not supply {', '.join(missing)}, which it needs")
    raise ConformanceError(
        f"{label} needs {', '.join(missing)}, which check_component cannot fake; give the class an example_state "
        "(a classmethod example_state(ctx, batch_size) -> State, or a 'package.fixtures:function' string) that "
        "supplies it"
    )


def check_dims(provides: tuple[str, ...], dims: dict[str, Any], state: State, label: str) -> list[str]:
    """The sizes recorded in ``ctx.dims`` against the output: each provided tensor's last
    axis, the slot count and the token grid."""
    problems = []
    for path in provides:
        value = state.get(path)
        if not isinstance(value, Tensor):
            continue
        if path in RECORDED and path not in dims:
            problems.append(f"provides {path} but records no ctx.dims[{path!r}] (later components read it)")
        recorded = dims.get(path)
        if isinstance(recorded, int) and value.shape[-1] != recorded:
            problems.append(
                f"records ctx.dims[{path!r}] = {recorded} but outputs {path} {list(value.shape)} (last axis "
                f"{value.shape[-1]})"
            )
    lat, slots = state.latents, dims.get("latents.num_slots")
    if "latents.objects" in provides and lat is not None and lat.objects is not None and isinstance(slots, int):
        if lat.objects.dim() >= 3 and lat.objects.shape[-2] != slots:
            problems.append(
                f"records ctx.dims['latents.num_slots'] = {slots} but outputs latents.objects "
                f"{list(lat.objects.shape)} ({lat.objects.shape[-2]} slots)"
            )
    f, grid = state.features, dims.get("features.grid")
    if "features.tokens" in provides and f is not None and f.grid is not None and grid is not None:
        if tuple(grid) != tuple(f.grid):
            problems.append(f"records ctx.dims['features.grid'] = {tuple(grid)} but outputs features.grid {f.grid}")
    return problems


def check_latents(out: Latents, before: State) -> list[str]:
    """A grouper's masks ``[b t k h w]`` at the data's resolution (or its input's token
    grid), attention ``[b t k n]`` over the input's tokens, and well-formed posteriors."""
    b, t, _, *hw = before.batch.frames.shape  # the input's (a fixture may use other sizes)
    problems = []
    k = out.objects.shape[-2] if out.objects is not None and out.objects.dim() >= 3 else None
    grid = before.features.grid if before.features is not None else None
    sizes = [tuple(hw)] + ([tuple(grid)] if grid is not None else [])  # the data's or the token grid's
    if out.masks is not None:
        m = out.masks
        if m.dim() != 5 or tuple(m.shape[:2]) != (b, t) or tuple(m.shape[-2:]) not in sizes:
            at = " or ".join(f"{s[0]}×{s[1]}" for s in sizes)
            problems.append(f"latents.masks should be [b t k h w] = [{b} {t} k h w] at {at}, got {list(m.shape)}")
        elif k is not None and m.shape[2] != k:
            problems.append(f"latents.masks has {m.shape[2]} slots, latents.objects {k}")
    if out.attention is not None:
        a = out.attention
        tokens = before.features.tokens if before.features is not None else None
        n = tokens.shape[2] if tokens is not None and tokens.dim() == 4 else None
        if a.dim() != 4 or tuple(a.shape[:2]) != (b, t) or (n is not None and a.shape[3] != n):
            problems.append(f"latents.attention should be [b t k n] = [{b} {t} k {n or 'n'}], got {list(a.shape)}")
        elif k is not None and a.shape[2] != k:
            problems.append(f"latents.attention has {a.shape[2]} slots, latents.objects {k}")
    for field, values in (("posterior", out.objects), ("frame_posterior", out.frames)):
        problems += _posterior_problems(f"latents.{field}", getattr(out, field), values)
    return problems


def _posterior_problems(path: str, q: Any, values: Tensor | None) -> list[str]:
    if q is None:
        return []
    mean, std = getattr(q, "mean", None), getattr(q, "std", None)
    if not (isinstance(mean, Tensor) and isinstance(std, Tensor)):
        return [f"{path} should hold tensors mean and std, got {type(q).__name__}"]
    problems = []
    if mean.shape != std.shape:
        problems.append(f"{path}: mean {list(mean.shape)} and std {list(std.shape)} differ in shape")
    if not torch.isfinite(mean).all() or not torch.isfinite(std).all():
        problems.append(f"{path} has non-finite mean or std")
    elif not (std > 0).all():
        problems.append(f"{path} has a std that is not positive (min {std.min().item():.3g})")
    if values is not None and mean.shape != values.shape:
        problems.append(f"{path} mean {list(mean.shape)} does not match the latents it describes {list(values.shape)}")
    return problems


def check_rendering(r: Rendering, hw: tuple[int, int]) -> list[str]:
    """A decoder's masks at the resolution of what it renders, and per-slot appearances
    that line up with them."""
    problems = []
    size = tuple(r.target.shape[-2:]) if r.target is not None else tuple(hw)
    if r.mask_logits is not None and r.mask_logits.dim() == 5 and tuple(r.mask_logits.shape[-2:]) != size:
        problems.append(
            f"rendering.mask_logits is at resolution {list(r.mask_logits.shape[-2:])}, the rendering at {list(size)}"
        )
    if r.rgb is not None and r.mask_logits is not None and r.mask_logits.dim() == 5:
        m = r.mask_logits
        if r.rgb.dim() != 6 or r.rgb.shape[:3] != m.shape[:3] or r.rgb.shape[-2:] != m.shape[-2:]:
            problems.append(
                f"rendering.rgb should be [b t k c h w] matching mask_logits {list(m.shape)}, got {list(r.rgb.shape)}"
            )
    return problems
