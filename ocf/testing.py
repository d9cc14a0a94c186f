"""Conformance checks for plugin authors: ``check_component`` builds a component, runs it
on a tiny batch, and checks its contract.

    from ocf.testing import check_component
    check_component(MyGrouper, params={"num_slots": 3})

It fakes the State fields the component ``needs`` (random tensors of documented shapes),
then checks that the output is the right record, that every field it ``provides`` is
present and finite, that its documented shapes hold, and that every parameter receives a
gradient.  A component whose needs are unusual supplies its own inputs with
``example_state``: a classmethod ``example_state(ctx, batch_size) -> State``, or a string
``"package.fixtures:function"`` naming such a function in a test-support module (which
keeps fixtures, and the imports they need, out of the component's module).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ocf.components import STAGES, BuildContext, Component, stage
from ocf.records import Batch, DiagonalGaussian, Features, Latents, PriorTerms, Rendering, State
from ocf.testing_contract import ConformanceError, check_dims, check_inputs, check_latents, check_rendering

__all__ = ["ConformanceError", "check_component", "example_state"]

#: kind → the record its forward returns (derived from :data:`ocf.components.STAGES`).
RECORD_TYPES = {s.kind: s.record_type for s in STAGES if s.record is not None}


def example_state(needs: tuple[str, ...], ctx: BuildContext, batch_size: int = 2, seed: int = 0) -> State:
    """A State with random values for the standard fields in ``needs``; writes the sizes
    it chose into ``ctx.dims`` for the records it fakes (tokens 16 channels on a 4×4 grid,
    3 slots of 8).  Latents carry masks ``[b t k h w]``, attention ``[b t k n]`` and boxes
    ``where [b t k 4]`` when ``needs`` names them."""
    g = torch.Generator().manual_seed(seed)
    b, t, c, (h, w) = batch_size, ctx.frames, ctx.channels, ctx.resolution
    k, d, n_c, grid = 3, 8, 16, (4, 4)
    records = {n.split(".")[0] for n in needs}
    if records & {"features", "latents", "prior", "rendering"}:
        ctx.dims.setdefault("features.tokens", n_c)
        ctx.dims.setdefault("features.grid", grid)
    if records & {"latents", "prior", "rendering"}:
        ctx.dims.setdefault("latents.objects", d)
        ctx.dims.setdefault("latents.frames", d)
        ctx.dims.setdefault("latents.num_slots", k)

    def rnd(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=g).requires_grad_()

    masks = torch.randint(0, 3, (b, t, h, w), generator=g)
    state = State(Batch(torch.rand(b, t, c, h, w, generator=g), masks, {"counts": masks.flatten(2).amax(-1)}))
    fields = {n.split(".")[0] + "." + n.split(".")[1] for n in needs if n.count(".") >= 1}
    if any(f.startswith("features.") for f in fields):
        state.features = Features(tokens=rnd(b, t, grid[0] * grid[1], n_c), grid=grid)
    if any(f.startswith("latents.") for f in fields):
        state.latents = Latents(
            objects=rnd(b, k, d),
            frames=rnd(b, t, d),
            posterior=DiagonalGaussian(rnd(b, k, d), torch.nn.functional.softplus(rnd(b, k, d)) + 1e-3),
            frame_posterior=DiagonalGaussian(rnd(b, t, d), torch.nn.functional.softplus(rnd(b, t, d)) + 1e-3),
            presence=torch.rand(b, t, k, generator=g),
        )
    if any(f.startswith("prior.") for f in fields):
        state.prior = PriorTerms(terms={"kl": rnd(1).square().sum()})
    if any(f.startswith("rendering.") for f in fields):
        logits = rnd(b, t, k, h, w)
        rgb = rnd(b, t, k, c, h, w)
        state.rendering = Rendering.compose(rgb, logits)
    if state.latents is not None:  # drawn last, so the fields above keep their values
        if "latents.masks" in fields:
            state.latents.masks = rnd(b, t, k, h, w).softmax(2)
        if "latents.attention" in fields:
            state.latents.attention = rnd(b, t, k, grid[0] * grid[1]).softmax(2)
        if "latents.where" in fields:
            state.latents.where = rnd(b, t, k, 4).tanh()
    return state


def check_component(
    cls: type[Component],
    params: dict[str, Any] | None = None,
    *,
    channels: int = 3,
    frames: int = 1,
    resolution: tuple[int, int] = (16, 16),
    batch_size: int = 2,
    allow_no_grad: tuple[str, ...] = (),
    registry: Any = None,
) -> Any:
    """Build ``cls`` from its spec (defaults plus ``params``), run it on a tiny batch and
    check its contract; returns the output record.  Raises ConformanceError.

    registry: what nested components (``ctx.build``) resolve through; default: the
    process-wide plugins' registry, loaded on first use."""
    spec = cls.Spec.model_validate({**getattr(cls, "example", {}), **(params or {})})
    ctx = BuildContext(channels=channels, frames=frames, resolution=resolution, registry=registry or _DefaultRegistry())
    state = _fixture(cls)(ctx, batch_size)
    name, kind = cls.name or cls.__name__, cls.kind
    check_inputs(state, cls.needs, f"{kind} {name}", custom=getattr(cls, "example_state", None) is not None)
    torch.manual_seed(0)
    comp = ctx.construct(cls, spec, kind=kind, name=name, where=kind)
    comp.train()
    before = dataclasses.replace(state)
    out = _forward(comp, state, f"{kind} {name}")
    tensors = _check_output(cls, out, state, name)
    bad = [path for path, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ConformanceError(f"{kind} {name} produced non-finite values in {', '.join(bad)}")
    _check_shapes(state, kind, name, batch_size, frames, channels, resolution)
    problems = check_dims(cls.provides, ctx.dims, state, f"{kind} {name}")
    if isinstance(out, Latents):
        problems += check_latents(out, before)
    if isinstance(out, Rendering):
        problems += check_rendering(out, resolution)
    if problems:
        raise ConformanceError(f"{kind} {name}: " + "; ".join(problems))
    params_ = [(n, p) for n, p in comp.named_parameters() if p.requires_grad]
    if params_:
        loss = sum(v.float().sum() for v in tensors.values() if v.requires_grad)
        if not isinstance(loss, Tensor):
            raise ConformanceError(f"{kind} {name} has parameters but its output does not depend on them")
        loss.backward()
        missing = [
            n
            for n, p in params_
            if (p.grad is None or not torch.isfinite(p.grad).all()) and not n.startswith(allow_no_grad)
        ]
        if missing:
            raise ConformanceError(f"{kind} {name}: parameters without a finite gradient: {', '.join(missing)}")
    return out


def _forward(comp: Component, state: State, label: str) -> Any:
    """``comp(state)``; reading a record the fake input lacks is a ConformanceError saying
    what to declare or supply."""
    try:
        return comp(state)
    except AttributeError as exc:
        if "'NoneType' object has no attribute" not in str(exc):
            raise
        raise ConformanceError(
            f"{label} read a field missing from its input ({exc}); declare every field it reads in needs "
            "(check_component fakes those), or give the class an example_state that supplies it"
        ) from exc


def _check_output(cls: type[Component], out: Any, state: State, name: str) -> dict[str, Tensor]:
    """Check the output's type (and, for a stage record, that it holds what ``cls``
    provides, storing it in ``state``); returns its tensors by dotted path."""
    kind, record = cls.kind, stage(cls.kind).record
    if record is None:
        if not isinstance(out, dict) or not out:
            raise ConformanceError(
                f"objective {name} must return a non-empty dict of scalar terms, got {type(out).__name__}"
            )
        for term, v in out.items():
            if v.dim() != 0 and v.numel() != 1:
                raise ConformanceError(f"objective {name}: term {term!r} is not a scalar (shape {list(v.shape)})")
        return dict(out)
    expected = RECORD_TYPES[kind]
    if not isinstance(out, expected):
        raise ConformanceError(f"{kind} {name} must return {expected.__name__}, got {type(out).__name__}")
    setattr(state, record, out)
    for path in cls.provides:
        if state.get(path) is None:
            raise ConformanceError(f"{kind} {name} declares it provides {path}, but it is None")
    return _tensors(out, record)


def _fixture(cls: type[Component]) -> Callable[[BuildContext, int], State]:
    """The class's conformance fixture: its ``example_state`` (a classmethod, or a
    ``"module:function"`` string naming a function in a fixtures module, imported only
    here), else the generic :func:`example_state` of its ``needs``."""
    factory = getattr(cls, "example_state", None)
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
    if factory is None:
        return lambda ctx, batch_size: example_state(cls.needs, ctx, batch_size)
    return factory


class _DefaultRegistry:
    """The process-wide plugins' registry, loaded only when a component builds a nested one."""

    def resolve(self, kind: str, entry: Any, where: str) -> Any:
        from ocf import plugins

        return plugins.default().registry.resolve(kind, entry, where)


def _tensors(record: Any, prefix: str) -> dict[str, Tensor]:
    """The record's tensors by dotted path (``latents.posterior.std``)."""
    out = {}
    for f in dataclasses.fields(record):
        v, path = getattr(record, f.name), f"{prefix}.{f.name}"
        if isinstance(v, Tensor):
            out[path] = v
        elif isinstance(v, DiagonalGaussian):
            out.update({f"{path}.mean": v.mean, f"{path}.std": v.std})
        elif isinstance(v, dict):
            out.update({f"{path}.{k}": x for k, x in v.items() if isinstance(x, Tensor)})
    return out


def _check_shapes(state: State, kind: str, name: str, b: int, t: int, c: int, hw: tuple[int, int]) -> None:
    problems = []
    f = state.features
    if kind == "encoder" and f is not None and f.tokens is not None:
        if f.tokens.dim() != 4 or f.tokens.shape[:2] != (b, t):
            problems.append(f"features.tokens should be [b t n c] = [{b} {t} n c], got {list(f.tokens.shape)}")
        elif f.grid is not None and f.grid[0] * f.grid[1] != f.tokens.shape[2]:
            problems.append(f"features.grid {f.grid} does not match n = {f.tokens.shape[2]}")
    lat = state.latents
    if kind == "grouper" and lat is not None and lat.objects is not None:
        if lat.objects.dim() not in (3, 4) or lat.objects.shape[0] != b:
            problems.append(f"latents.objects should be [b k d] or [b t k d], got {list(lat.objects.shape)}")
    r = state.rendering
    if kind == "decoder" and r is not None:
        if r.recon is not None and r.target is None and tuple(r.recon.shape) != (b, t, c, *hw):
            problems.append(f"rendering.recon should be [b t c h w] = {[b, t, c, *hw]}, got {list(r.recon.shape)}")
        # a decoder that renders a subset (frames, resolution) says so with rendering.target
        bt = (b, t) if r.target is None else tuple(r.target.shape[:2])
        if r.mask_logits is not None and (r.mask_logits.dim() != 5 or tuple(r.mask_logits.shape[:2]) != bt):
            problems.append(
                f"rendering.mask_logits should be [b t k h w] with [b t] = {list(bt)}, got {list(r.mask_logits.shape)}"
            )
        if r.recon is not None and r.target is not None and r.recon.shape != r.target.shape:
            problems.append(
                f"rendering.recon {list(r.recon.shape)} does not match rendering.target {list(r.target.shape)}"
            )
    if problems:
        raise ConformanceError(f"{kind} {name}: " + "; ".join(problems))
