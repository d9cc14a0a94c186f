"""Specs: YAML → validated pydantic models.

A spec has four parts — ``data``, ``model``, ``train``, ``eval`` — plus a ``name``.  Model
components are written ``{type: <registered name>, <parameter>: <value>, ...}``; their
parameters are validated by the component's own ``Spec``.  YAML is loaded with
``yaml.safe_load`` only, so a spec can never construct Python objects or import a path,
and components are looked up by registered name only.  Every problem is reported at once,
each with its path in the spec (``model.grouper.num_slots: ...``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from annotated_types import Ge, Le, Lt
from pydantic import BaseModel, Field, ValidationError, field_validator

from ocf.components import STAGES as _STAGE_TABLE
from ocf.components import ComponentSpec
from ocf.errors import SpecError, UserError
from ocf.fields import (
    MAX_STEPS,
    SPEC_CONFIG,
    FiniteFloat,
    NonNegativeFiniteFloat,
    PositiveFiniteFloat,
    Repeats,
    Seed,
    Size,
)
from ocf.registry import Registry, validation_problems
from ocf.spec_checks import registry_problems
from ocf.spec_geco import GecoConstraints, GecoSpec  # noqa: F401  (ocf.spec.GecoSpec stays importable)

#: The single stages' keys in a spec's ``model`` section (derived from :data:`ocf.components.STAGES`).
STAGES = tuple(s.key for s in _STAGE_TABLE if not s.many)


#: The most samples ``data.generate.n`` may ask for (generated data is held in memory).
MAX_GENERATE = 1_000_000
#: The most CPU threads ``train.threads`` may ask for.
MAX_THREADS = 1024

Steps = Annotated[int, Ge(1), Le(MAX_STEPS)]
#: Adam's β₁ and β₂: in [0, 1).
Beta = Annotated[float, Ge(0), Lt(1)]


class _Strict(BaseModel):
    model_config = SPEC_CONFIG  # unknown keys are errors; floats are finite


class GenerateSpec(_Strict):
    n: int = Field(2000, ge=1, le=MAX_GENERATE, description="samples to generate when the file is missing")
    seed: Seed = Field(0, description="generator seed")
    options: dict[str, Any] = Field(default_factory=dict, description="generator options")


class DataSpec(_Strict):
    dataset: str = Field(description="a registered generator name (see `ocf data make --help`) or 'hdf5' for any file")
    path: str = Field(
        description="HDF5 file, relative to the working folder (not the spec file); generated from `dataset` "
        "with `generate` when missing"
    )
    generate: GenerateSpec | None = Field(
        default_factory=GenerateSpec, description="how to make the file when it is missing (null: never)"
    )
    frames: Size = Field(1, description="frames per sample given to the model (a window of the file's clips)")
    resolution: tuple[Size, Size] = Field((32, 32), description="[h, w] of the frames")
    channels: Size = Field(3, description="image channels")
    in_memory: bool = Field(True, description="hold the split in memory (fast for small datasets)")
    value_range: tuple[FiniteFloat, FiniteFloat] = Field(
        (0.0, 1.0),
        description="[lo, hi] the model sees frames in: the file's [0, 1] frames are mapped linearly to it before "
        "the model reads them (objectives compare in this range), and renderings (recon, rgb, target) are mapped "
        "back to [0, 1] for metrics, pictures and samples; [-1, 1] is how the official Slot Attention code feeds "
        "images",
    )
    extras: dict[str, list[Size]] = Field(
        default_factory=dict,
        description="per-sample shapes of the file's extras the model reads, e.g. {features: [768, 14, 14]} for "
        "precomputed feature maps: checked against the file, faked in the dry run, and given to components as "
        "ctx.dims['batch.extras.<name>']",
    )
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"

    @field_validator("value_range")
    @classmethod
    def _increasing(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not v[0] < v[1]:
            raise ValueError(f"value_range must be [lo, hi] with lo < hi, got {list(v)}")
        return v


class OptimizerSpec(_Strict):
    type: Literal["adam", "adamw", "rmsprop"] = "adam"
    lr: PositiveFiniteFloat = 4e-4
    weight_decay: NonNegativeFiniteFloat = 0.0
    betas: tuple[Beta, Beta] = Field((0.9, 0.999), description="Adam's β₁, β₂, each in [0, 1)")
    momentum: NonNegativeFiniteFloat = Field(0.0, description="RMSprop momentum")
    eps: PositiveFiniteFloat = 1e-8


class ScheduleSpec(_Strict):
    warmup_steps: int = Field(0, ge=0, le=MAX_STEPS, description="linear warm-up from 0 to lr")
    decay: Literal["none", "step", "exponential"] = "none"
    decay_rate: float = Field(0.5, gt=0, le=1, description="factor applied per decay_steps")
    decay_steps: Steps = 100000


class CurriculumSpec(_Strict):
    parameter: Literal["frames"] = Field("frames", description="the data parameter that grows")
    start: Size
    increment: Size = 1
    every: Steps = Field(description="steps between increments")
    max: Size


class TrainSpec(_Strict):
    steps: Steps = 1000
    batch_size: Size = 32
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    grad_clip: PositiveFiniteFloat | None = Field(None, description="clip the global gradient norm")
    seed: Seed = Field(0, description="seed of the parameters' initialisation, batch order and frame windows")
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    threads: int | None = Field(
        None, ge=1, le=MAX_THREADS, description=f"torch threads on CPU, at most {MAX_THREADS} (default: torch's choice)"
    )
    channels_last: bool = Field(
        False, description="keep 4-D convolution weights channels-last (measure with `ocf bench` before relying on it)"
    )
    compile: bool = Field(
        False, description="torch.compile the model (costs compile time on the first steps; measure with `ocf bench`)"
    )
    tf32: bool = Field(False, description="allow TF32 matmuls and convolutions on Ampere+ GPUs (no effect on CPU)")
    accumulate: Repeats = Field(
        1,
        description="micro-batches per optimiser step: each step's train.batch_size samples are split into this many "
        "forward and backward passes whose gradients add up to the full batch's (the same update with less memory)",
    )
    checkpoint_stages: list[str] = Field(
        default_factory=list,
        description="stages (encoder, grouper, decoder, ...) whose activations are recomputed during the backward "
        "pass instead of kept (torch.utils.checkpoint): less memory for more compute, the same gradients",
    )
    log_every: Steps = 50
    image_every: int = Field(500, ge=0, le=MAX_STEPS, description="steps between pictures (0: never)")
    checkpoint_every: Steps = 500
    eval_every: int = Field(
        0,
        ge=0,
        le=MAX_STEPS,
        description="steps between evaluations of eval.metrics on the validation split during training, logged as "
        "eval/<metric> (0: never)",
    )
    eval_samples: Steps | None = Field(
        256, description="validation samples per evaluation during training (None: the whole split)"
    )
    init_from: str | None = Field(None, description="run dir or checkpoint to initialise parameters from")
    freeze: list[str] = Field(
        default_factory=list, description="stages whose parameters are frozen (encoder, grouper, ...)"
    )
    geco: GecoConstraints = Field(
        None, description="one GECO constraint, or several by name ({name: {term, goal, penalises, ...}})"
    )
    curriculum: CurriculumSpec | None = None
    memory_limit_gb: float | None = Field(
        None,
        gt=0,
        le=10**6,
        description="the most memory (GB) a training step may need by `ocf build`'s estimate (default: the RAM "
        "available, or the CUDA device's memory)",
    )


class EvalSpec(_Strict):
    metrics: list[str] = Field(default_factory=lambda: ["fg_ari", "ari", "mbo", "mse"])
    split: str = "test"
    batch_size: Size = 32
    max_samples: Steps | None = None
    seed: Seed = 0
    metric_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="options per metric name, e.g. {kid: {feature: random, subset_size: 100}}"
    )


class ModelSpec(_Strict):
    encoder: dict[str, Any]
    grouper: dict[str, Any] | None = None
    prior: dict[str, Any] | None = None
    decoder: dict[str, Any] | None = None
    objectives: list[dict[str, Any]] = Field(default_factory=list)


class Spec(_Strict):
    name: str = Field("unnamed", description="the run's name, used in folder names: a plain name (no / \\ or ..)")
    description: str = ""
    data: DataSpec
    model: ModelSpec
    train: TrainSpec = Field(default_factory=TrainSpec)
    eval: EvalSpec = Field(default_factory=EvalSpec)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        if not name.strip() or name in (".", "..") or any(c in name for c in "/\\\0"):
            raise ValueError("must be a plain name (not empty, no '/', '\\', '..' or NUL): it names folders")
        return name


@dataclass
class ComponentChoice:
    """One component of a resolved spec."""

    stage: str  # encoder, grouper, prior, decoder, objectives.0, ...
    kind: str  # encoder, grouper, prior, decoder, objective
    name: str
    cls: type
    params: ComponentSpec
    index: int | None = None  # position in the spec's list for a stage a spec lists (objectives)


@dataclass
class ResolvedSpec:
    """A validated spec, its components, and the registry they were resolved against (the
    run layer builds models, opens datasets and scores metrics through this registry)."""

    spec: Spec
    components: list[ComponentChoice]
    registry: Registry | None = field(default=None, repr=False, compare=False)

    def component(self, stage: str) -> ComponentChoice | None:
        return next((c for c in self.components if c.stage == stage), None)

    def expanded(self) -> dict[str, Any]:
        """The spec as a plain dict with every default filled in (component parameters
        included): what run dirs save and overrides apply to."""
        out = self.spec.model_dump(mode="json")
        for c in self.components:
            entry = {"type": c.name, **c.params.model_dump(mode="json")}
            if c.index is not None:
                out["model"][c.stage.split(".")[0]][c.index] = entry
            else:
                out["model"][c.stage] = entry
        return out


# -- loading ---------------------------------------------------------------------------
#: Limits on a spec file, so a hostile or broken file is refused quickly: its size in bytes,
#: the nodes it expands to (YAML aliases counted at every use) and its nesting depth.
MAX_SPEC_BYTES = 1 << 20
MAX_SPEC_NODES = 100_000
MAX_SPEC_DEPTH = 50


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML spec file: safe YAML only (no tags), UTF-8 text, within the
    limits above; every refusal is a :class:`SpecError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such spec file")
    size = path.stat().st_size
    if size > MAX_SPEC_BYTES:
        raise SpecError([f"{path}: {size:,} bytes; a spec may hold at most {MAX_SPEC_BYTES:,} bytes"])
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SpecError([f"{path}: not a UTF-8 text file (byte {exc.start}); a spec is YAML text"]) from None
    except yaml.constructor.ConstructorError as exc:
        raise SpecError(
            [f"{path}: YAML tag not allowed in a spec (specs cannot construct Python objects): {exc.problem}"]
        ) from None
    except yaml.YAMLError as exc:
        raise SpecError([f"{path}: not valid YAML: {exc}"]) from None
    except RecursionError:
        raise SpecError([f"{path}: nested too deeply (a spec may nest {MAX_SPEC_DEPTH} levels)"]) from None
    _check_size(path, data)
    if not isinstance(data, dict):
        raise SpecError([f"{path}: a spec is a mapping with data, model, train, eval; got {type(data).__name__}"])
    return data


def _check_size(path: Path, data: Any) -> None:
    """Refuse a document that expands to more than MAX_SPEC_NODES nodes (an alias bomb) or
    nests deeper than MAX_SPEC_DEPTH, stopping as soon as a limit is passed."""
    nodes, stack = 0, [(data, 1)]
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if nodes > MAX_SPEC_NODES:
            raise SpecError(
                [
                    f"{path}: expands to more than {MAX_SPEC_NODES:,} values (YAML aliases count at every "
                    "use); a spec is far smaller"
                ]
            )
        if depth > MAX_SPEC_DEPTH:
            raise SpecError([f"{path}: nested deeper than {MAX_SPEC_DEPTH} levels"])
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
            stack.extend((k, depth + 1) for k in value)
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def resolve(data: dict[str, Any], registry: Registry) -> ResolvedSpec:
    """Validate a spec dict against the schema and the registry; raise SpecError with
    every problem."""
    problems: list[str] = []
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        problems.extend(validation_problems(exc))
        spec = None
    problems.extend(registry_problems(_valid(DataSpec, data.get("data")), _valid(EvalSpec, data.get("eval")), registry))
    components: list[ComponentChoice] = []
    model = data.get("model") if isinstance(data.get("model"), dict) else None
    if model is not None:
        for stage in _STAGE_TABLE:
            entries = model.get(stage.key)
            if not stage.many:
                entries = [entries]
            elif not isinstance(entries, list):
                continue
            for i, entry in enumerate(entries):
                if entry is None:
                    continue
                where = f"{stage.key}.{i}" if stage.many else stage.key
                choice = _resolve_component(where, stage.kind, entry, registry, problems)
                if choice is not None:
                    choice.index = i if stage.many else None
                    components.append(choice)
    if problems:
        raise SpecError(problems)
    assert spec is not None
    return ResolvedSpec(spec, components, registry)


def _valid(model: type[BaseModel], value: Any) -> Any:
    """``value`` validated by ``model`` (``None``: the defaults), or None when it is not valid
    (the schema's problems are reported already)."""
    try:
        return model.model_validate({} if value is None else value)
    except ValidationError:
        return None


def load(path: str | Path, registry: Registry, overrides: list[str] = ()) -> ResolvedSpec:
    """Read, validate, expand with defaults, apply overrides, validate again."""
    resolved = resolve(read_yaml(path), registry)
    if overrides:
        from ocf import overrides as ov

        resolved = resolve(ov.apply(resolved.expanded(), list(overrides)), registry)
    return resolved


def _resolve_component(
    stage: str, kind: str, entry: Any, registry: Registry, problems: list[str]
) -> ComponentChoice | None:
    try:
        name, cls, params = registry.resolve(kind, entry, f"model.{stage}")
    except SpecError as exc:
        problems.extend(exc.problems)
        return None
    return ComponentChoice(stage, kind, name, cls, params)
