"""Assembly: a resolved spec → a checked, built :class:`Model`.

``build`` first checks the needs/provides chain (naming the missing link), then builds the
components in stage order, passing a shared :class:`~ocf.components.BuildContext` so each
can read the sizes earlier ones produce, and finally runs a dry forward pass on a dummy
batch of the spec's data shape.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ocf.components import STAGES, BuildContext, Component, run_position, stage
from ocf.errors import SpecError, TrainingError, UserError
from ocf.failures import STAGE_ATTR, describe_failure, stage_message
from ocf.records import Batch, State
from ocf.spec import ResolvedSpec

#: Which stage normally provides each record (for chain-gap messages); from the stage table.
RECORD_OWNER = {s.record: s.kind for s in STAGES if s.record is not None}


def run_order(parts: Iterable[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """``(label, component class or instance)`` pairs (any label) in the order a model runs them:
    the stage table's order, an ``eval_only`` grouper after the decoder, objectives last
    in the order the spec lists them (the sort is stable)."""
    return sorted(parts, key=lambda part: run_position(part[1]))


class Model(nn.Module):
    """The assembled model: runs the stages in order and the objectives on the result.

    ``components`` maps each single stage's key (``"encoder"``, ...) to its component and
    ``"objectives"`` to the list of objectives in spec order."""

    def __init__(self, resolved: ResolvedSpec, components: dict[str, Any], ctx: BuildContext) -> None:
        super().__init__()
        self.resolved = resolved
        self.ctx = ctx
        for s in STAGES:
            if not s.many:
                setattr(self, s.key, components.get(s.key))
        self.objectives = nn.ModuleList(components.get("objectives", []))

    def stages(self) -> dict[str, Component]:
        """Every component by label: ``"encoder"``, ..., ``"objectives.0"``, ... ."""
        out = {s.key: getattr(self, s.key) for s in STAGES if not s.many and getattr(self, s.key) is not None}
        out.update({f"objectives.{i}": o for i, o in enumerate(self.objectives)})
        return out

    def order(self) -> list[tuple[str, Component]]:
        """The components in run order (see :func:`run_order`)."""
        return run_order(self.stages().items())

    def forward(self, batch: Batch, *, losses: bool = True) -> State:
        """Run the stages and the objectives on ``batch`` (frames in [0, 1]). With a
        ``data.value_range`` other than [0, 1], the stages and objectives see the frames in that
        range, and the returned state holds the batch as given and renderings mapped back."""
        scaled = self.to_model_range(batch)
        state = State(scaled)
        for label, comp in self.order():
            record = stage(comp.kind).record
            if record is None:  # objectives: their terms are summed below
                continue
            if getattr(comp, "eval_only", False) and self.training:
                continue
            setattr(state, record, self._run(label, comp, state))
        if losses:
            state.losses = self.objective_terms(state)
        if scaled is not batch:
            state.batch = batch
            state.rendering = self.to_unit_range(state.rendering, like=batch.frames)
        return state

    @property
    def value_range(self) -> tuple[float, float]:
        """``data.value_range``: the range the stages see frames in."""
        lo, hi = self.resolved.spec.data.value_range
        return float(lo), float(hi)

    def to_model_range(self, batch: Batch) -> Batch:
        """``batch`` with its [0, 1] frames mapped to ``value_range`` (the same object when that is [0, 1])."""
        lo, hi = self.value_range
        if (lo, hi) == (0.0, 1.0):
            return batch
        return dataclasses.replace(batch, frames=batch.frames * (hi - lo) + lo)

    def to_unit_range(self, rendering: Any, like: torch.Tensor | None = None) -> Any:
        """A decoder's rendering with its images (``recon``, ``rgb``, ``target``) mapped from
        ``value_range`` back to [0, 1]: what metrics, pictures and samples read. With ``like``
        (the frames), only tensors with the frames' channels are images: a decoder that renders
        something else (features on a patch grid) keeps its values."""
        lo, hi = self.value_range
        if rendering is None or (lo, hi) == (0.0, 1.0):
            return rendering
        images = {
            k: (v - lo) / (hi - lo)
            for k in ("recon", "rgb", "target")
            if (v := getattr(rendering, k, None)) is not None and (like is None or v.shape[-3] == like.shape[-3])
        }
        return dataclasses.replace(rendering, **images)

    def _run(self, label: str, comp: Component, state: State) -> Any:
        """``comp(state)``; an exception it raises leaves with a message naming the stage,
        the component, its plugin and the shapes it got (``exc.ocf_stage``; see
        :mod:`ocf.failures`), its type unchanged."""
        try:
            return comp(state)
        except (UserError, TrainingError):
            raise
        except Exception as exc:
            if stage_message(exc) is None:
                registry = getattr(self.resolved, "registry", None)
                message = describe_failure(f"model.{label}", comp, state, exc, registry)
                setattr(exc, STAGE_ATTR, message)
                exc.add_note(f"ocf: {message}")
            raise

    def objective_terms(self, state: State) -> dict[str, Tensor]:
        terms: dict[str, Tensor] = {}
        for i, obj in enumerate(self.objectives):
            for name, value in self._run(f"objectives.{i}", obj, state).items():
                key = name if name not in terms else f"{obj.name}.{name}"
                terms[key] = value * obj.spec.weight
        return terms

    @staticmethod
    def total(terms: dict[str, Tensor]) -> Tensor:
        return torch.stack([v.reshape(()) for v in terms.values()]).sum()


def check_chain(resolved: ResolvedSpec) -> None:
    """Raise SpecError naming every component whose needs no earlier stage provides."""
    available = {"batch.frames", "batch.masks", "batch.extras"}
    by_kind = {c.kind: c for c in resolved.components if not stage(c.kind).many}
    problems = []
    for choice, _ in run_order((c, c.cls) for c in resolved.components):
        for need in choice.cls.needs:
            if need in available or any(need.startswith(a + ".") for a in available):
                continue
            record = need.split(".")[0]
            owner_kind = RECORD_OWNER.get(record, record)
            owner = by_kind.get(owner_kind)
            if owner is None:
                problems.append(
                    f"model.{choice.stage}: {choice.kind} {choice.name} needs {need}; the spec has no {owner_kind}"
                )
            else:
                problems.append(
                    f"model.{choice.stage}: {choice.kind} {choice.name} needs {need}; "
                    f"{owner.kind} {owner.name} does not provide it"
                )
        available.update(choice.cls.provides)
    if problems:
        raise SpecError(problems)


def dummy_batch(resolved: ResolvedSpec, batch_size: int = 2, seed: int = 0) -> Batch:
    d = resolved.spec.data
    g = torch.Generator().manual_seed(seed)
    h, w = d.resolution
    frames = torch.rand(batch_size, d.frames, d.channels, h, w, generator=g)
    masks = torch.randint(0, 4, (batch_size, d.frames, h, w), generator=g)
    counts = (masks.flatten(2).max(-1).values).long()
    extras = {"counts": counts}
    for name, shape in d.extras.items():  # extras the spec says the model reads
        extras[name] = torch.randn(batch_size, *shape, generator=g)
    return Batch(frames=frames, masks=masks, extras=extras)


@dataclass
class StageReport:
    stage: str
    kind: str
    name: str
    plugin: str
    parameters: int
    outputs: dict[str, tuple[int, ...]]


def build(resolved: ResolvedSpec, *, dry_run: bool = True) -> Model:
    """Check the chain, build every component and (by default) run a dry forward pass."""
    check_chain(resolved)
    d = resolved.spec.data
    ctx = BuildContext(
        channels=d.channels, frames=d.frames, resolution=tuple(d.resolution), registry=resolved.registry, data=d
    )
    ctx.dims.update({f"batch.extras.{name}": tuple(shape) for name, shape in d.extras.items()})
    components: dict[str, Any] = {"objectives": []}
    for choice in resolved.components:
        comp = ctx.construct(
            choice.cls, choice.params, kind=choice.kind, name=choice.name, where=f"model.{choice.stage}"
        )
        ctx.built[choice.stage] = comp
        if stage(choice.kind).many:
            components[stage(choice.kind).key].append(comp)
        else:
            components[choice.stage] = comp
    model = Model(resolved, components, ctx)
    if dry_run:
        dry_forward(model)
    return model


def dry_forward(model: Model, batch_size: int = 2) -> State:
    batch = dummy_batch(model.resolved, batch_size)
    was_training = model.training
    model.train()
    try:
        with torch.no_grad():
            state = model(batch)
    except (SpecError, UserError):
        raise
    except Exception as exc:
        where = stage_message(exc) or f"{type(exc).__name__}: {exc}"
        raise SpecError([f"dry run on a batch of shape {list(batch.frames.shape)} failed: {where}"]) from exc
    finally:
        model.train(was_training)
    return state


def report(model: Model, state: State, registry=None) -> list[StageReport]:
    """One row per stage: its component, plugin, parameter count and output shapes."""
    rows = []
    for label, comp in model.stages().items():
        plugin = ""
        if registry is not None:
            plugin = registry.entry(comp.kind, comp.name).plugin
        n = sum(p.numel() for p in comp.parameters())
        record = stage(comp.kind).record
        if record is None:
            with torch.no_grad():
                outputs = {k: tuple(v.shape) for k, v in comp(state).items()}
        else:
            outputs = _shapes(getattr(state, record))
        rows.append(StageReport(label, comp.kind, comp.name, plugin, n, outputs))
    return rows


def _shapes(record: Any) -> dict[str, tuple[int, ...]]:
    if record is None:
        return {}
    out: dict[str, tuple[int, ...]] = {}
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        if isinstance(value, Tensor):
            out[f.name] = tuple(value.shape)
        elif dataclasses.is_dataclass(value):
            for g in dataclasses.fields(value):
                v = getattr(value, g.name)
                if isinstance(v, Tensor):
                    out[f"{f.name}.{g.name}"] = tuple(v.shape)
        elif isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, Tensor):
                    out[f"{f.name}.{k}"] = tuple(v.shape)
    return out
