"""Base classes for the five kinds of component.

A component is a ``torch.nn.Module`` with

- a nested pydantic ``Spec`` (extra keys forbidden, every field described and constrained)
  holding its parameters;
- ``needs`` and ``provides``: the dotted :class:`~ocf.records.State` fields it reads and
  writes (``"features.tokens"``, ``"latents.frames"``), checked by :func:`ocf.assembly.build`
  before anything runs;
- ``__init__(spec, ctx)``, where ``ctx`` (a :class:`BuildContext`) tells it the data shape
  and the sizes earlier components produce, and where it records the sizes it produces;
- ``forward(state)`` returning its record.

Every component receives the whole :class:`~ocf.records.State`, so one that needs more
than its predecessor's record (raw frames, the posterior) just declares it in ``needs``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ocf.errors import ComponentError, RegistryError, SpecError, UserError
from ocf.failures import build_failure
from ocf.fields import SPEC_CONFIG, NonNegativeFiniteFloat
from ocf.records import Features, Latents, PriorTerms, Rendering, State, path_problem, valid_paths


class ComponentSpec(BaseModel):
    """Base for component parameter models: unknown keys are errors and floats are finite
    (NaN and infinities refused); annotate fields with the ranged types of :mod:`ocf.fields`."""

    model_config = ConfigDict(**SPEC_CONFIG, frozen=True)


@dataclass
class BuildContext:
    """What a component may know when it is built.

    channels, frames, resolution: the data shape ``[t c h w]`` of one sample.
    dims: sizes produced by earlier components, keyed by dotted field
        (``"features.tokens"`` → token channels, ``"latents.objects"`` → slot dim,
        ``"latents.num_slots"`` → k).  A component writes the sizes it provides.
    built: the components built before this one, by stage.
    kind, name, where: the component being built (``"prior"``, ``"sri.prior"``,
        ``"model.prior"``); ``label`` joins the first two for messages.
    registry: the registry the spec was resolved against (used by :meth:`build`).
    data: the spec's ``data`` section (path, value range...) when built from a spec, else None.
    """

    channels: int
    frames: int
    resolution: tuple[int, int]
    dims: dict[str, Any] = field(default_factory=dict)
    #: The components built so far, by stage (``"encoder"``, ``"decoder"``, ...), so a
    #: later one can share an earlier one's modules (e.g. an objective that renders other
    #: latents with the model's decoder): wrap such a reference in :class:`Shared` so it
    #: stays out of your own ``nn.Module`` registration (it is already part of the model).
    built: dict[str, Any] = field(default_factory=dict)
    registry: Any = field(default=None, repr=False)
    kind: str = ""
    name: str = ""
    where: str = ""
    data: Any = field(default=None, repr=False)

    @property
    def label(self) -> str:
        """``"prior sri.prior"``: the component being built, for messages."""
        return f"{self.kind} {self.name}".strip() or "this component"

    def dim(self, key: str, component: str | None = None) -> Any:
        """The size an earlier component recorded under ``key``; a SpecError naming the
        component being built (or ``component``) when none did."""
        if key not in self.dims:
            known = ", ".join(sorted(self.dims)) or "none"
            who = component or self.label
            where = f"{self.where}: " if self.where else ""  # the key path of the component being built
            raise SpecError(
                [f"{where}{who} needs the size of {key}, which no earlier component provides (known: {known})"]
            )
        return self.dims[key]

    def build(self, kind: str, entry: Any, where: str) -> Component:
        """Build a nested component from a spec entry ``{type: <name>, ...}`` through the
        model's registry, with this context; ``where`` names the parameter holding the
        entry (``"decoder"``), so problems read ``model.objectives.1.decoder.type: ...``."""
        path = f"{self.where}.{where}" if self.where else where
        if self.registry is None:
            raise SpecError([f"{path}: {self.label} builds a nested {kind}, but no registry was given to the build"])
        name, cls, params = self.registry.resolve(kind, entry, path)
        return self.construct(cls, params, kind=kind, name=name, where=path)

    def construct(self, cls: type[Component], params: Any, *, kind: str, name: str, where: str) -> Component:
        """``cls(params, self)`` with this context describing it (kind, name, where); a
        ValueError or TypeError from the constructor becomes a SpecError naming ``where``."""
        saved = (self.kind, self.name, self.where)
        self.kind, self.name, self.where = kind, name, where
        try:
            return cls(params, self)
        except UserError:
            raise
        except (ValueError, TypeError) as exc:
            raise SpecError([f"{where}: {kind} {name} cannot be built: {exc}"]) from exc
        except Exception as exc:  # a bug in the component: name it (the CLI shows a traceback with --debug)
            raise ComponentError(build_failure(where, kind, name, cls, exc, self.registry)) from exc
        finally:
            self.kind, self.name, self.where = saved


class Shared:
    """A component another stage owns, called from this one without registering it again
    (its parameters stay under the owning stage, counted and saved once)."""

    __slots__ = ("component",)

    def __init__(self, component: nn.Module) -> None:
        self.component = component

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.component(*args, **kwargs)


class _RegisteredName:
    """``registered_name``: deprecated alias of ``name``."""

    def __get__(self, obj: Any, owner: type) -> str:
        warnings.warn(
            "registered_name is deprecated and will be removed in the next release: use name (declare "
            "name = '<plugin>.<component>' on the class) or label in messages",
            DeprecationWarning,
            stacklevel=2,
        )
        return (owner if obj is None else obj).name


class Component(nn.Module):
    kind: ClassVar[str] = ""
    #: The registered name, declared on the class (``name = "sri.prior"``).  An instance
    #: carries the name it was built under (an alias, or the name given to the old
    #: ``registry.add``).
    name: ClassVar[str] = ""
    needs: ClassVar[tuple[str, ...]] = ()
    provides: ClassVar[tuple[str, ...]] = ()
    #: Deprecated alias of ``name``.
    registered_name = _RegisteredName()
    #: Parameters for the conformance check and docs when the Spec has required fields.
    example: ClassVar[dict[str, Any]] = {}

    class Spec(ComponentSpec):
        pass

    def __init__(self, spec: ComponentSpec, ctx: BuildContext) -> None:
        super().__init__()
        self.spec = spec
        built_as = getattr(ctx, "name", "")  # ctx may be None for a component used on its own
        if built_as:
            self.name = built_as  # type: ignore[misc]

    @property
    def label(self) -> str:
        """``"prior sri.prior"``: kind and name, for messages."""
        return f"{self.kind} {self.name or type(self).__name__}"

    @classmethod
    def describe(cls) -> str:
        """The docstring's first paragraph, on one line (the class name if none)."""
        doc = (cls.__doc__ or "").strip()
        return " ".join(doc.split("\n\n")[0].split()) or cls.__name__

    def forward(self, state: State) -> Any:
        """Read ``state`` (the fields in ``needs``) and return this stage's record."""
        returns = stage(self.kind).record_type if self.kind in BASES else None
        what = returns.__name__ if returns is not None else "a dict of scalar loss terms"
        raise NotImplementedError(f"{self.label} does not implement forward(state) -> {what}")

    def pictures(self, state: State, out_dir: Path) -> list[Path]:
        """Pictures particular to this component, drawn by ``ocf viz`` from an evaluation
        forward pass (e.g. SIMONe's frame latents over time); returns the files written.
        The generic decomposition figures are drawn by ocf itself."""
        return []


class Encoder(Component):
    """Frames → :class:`~ocf.records.Features`."""

    kind = "encoder"
    needs = ("batch.frames",)


class Grouper(Component):
    """Features → :class:`~ocf.records.Latents`.

    Set ``eval_only = True`` for a grouper that runs only at evaluation (e.g. clustering
    the decoder's output), after the decoder; training skips it."""

    kind = "grouper"
    eval_only: ClassVar[bool] = False


@dataclass(frozen=True)
class SampleRequest:
    """What :meth:`Prior.sample` was asked for, as :meth:`Prior.draw` receives it."""

    n: int
    temperature: float = 1.0
    generator: torch.Generator | None = None
    condition: State | None = None
    frames: int | None = None

    def unpack(self) -> tuple[int, float, torch.Generator | None, State | None, int | None]:
        return self.n, self.temperature, self.generator, self.condition, self.frames


class Prior(Component):
    """Latents → named KL / negative log-prob terms; optionally generative (:meth:`draw`)."""

    kind = "prior"
    #: True for a prior that can continue observed frames (``sample(condition=...)``).
    conditional: ClassVar[bool] = False

    def __init__(self, spec: ComponentSpec, ctx: BuildContext) -> None:
        super().__init__(spec, ctx)
        # follows .to(device / dtype), so sample() draws where the model lives
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    @property
    def factory_kwargs(self) -> dict[str, Any]:
        """``device`` and ``dtype`` of the model, for tensors ``sample`` creates."""
        return {"device": self._anchor.device, "dtype": self._anchor.dtype}

    def sample(
        self,
        n: int,
        *,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        condition: State | None = None,
        frames: int | None = None,
    ) -> Latents:
        """Draw latents for ``n`` scenes (``ocf sample``, :func:`ocf.run.generate.generate`).

        temperature scales the prior's noise; generator makes draws reproducible.
        condition: the State of the model run (in eval mode) on observed frames; a prior
        that can continue a sequence (SQAIR) sets ``conditional = True`` and rolls forward
        from it, others raise :class:`~ocf.errors.UserError`.  frames: how many frames the
        latents cover (None: the spec's ``data.frames``).  A generative prior implements
        :meth:`draw`; this method checks the request and calls it.
        """
        if condition is not None and not self.conditional:
            raise UserError(f"{self.label} draws whole scenes; it cannot continue observed frames (drop --condition)")
        return self.draw(SampleRequest(n, temperature, generator, condition, frames))

    def draw(self, request: SampleRequest) -> Latents:
        """The latents of ``request.n`` scenes; priors that are not generative do not
        implement it."""
        raise NotImplementedError(f"{self.label} cannot sample")

    @classmethod
    def can_sample(cls) -> bool:
        """Whether the class implements sampling (:meth:`draw`, or an override of ``sample``)."""
        return cls.draw is not Prior.draw or cls.sample is not Prior.sample


class Decoder(Component):
    """Latents → :class:`~ocf.records.Rendering`."""

    kind = "decoder"


class ObjectiveSpec(ComponentSpec):
    weight: NonNegativeFiniteFloat = Field(1.0, description="multiplies every term this objective returns")


class Objective(Component):
    """State → named scalar loss terms ``{name: tensor}``; the model multiplies them by
    ``spec.weight`` and sums every objective's terms into the loss."""

    kind = "objective"

    class Spec(ObjectiveSpec):
        pass


@dataclass(frozen=True)
class Stage:
    """One stage of a model.

    kind: the registry kind and the base class's ``kind`` (``"objective"``).
    key: where the stage sits in a spec's ``model`` section and on the built model
        (``"objectives"``, a list).
    base: the class every component of this kind subclasses.
    record: the :class:`~ocf.records.State` attribute its output is stored in (``None``
        for objectives, whose terms are summed into the loss).
    record_type: the record class its ``forward`` returns.
    order: position in the run order (an ``eval_only`` grouper runs after the decoder).
    many: a spec lists any number of this stage (objectives).
    """

    kind: str
    key: str
    base: type[Component]
    record: str | None
    record_type: type | None
    order: int
    many: bool = False


#: The stage table: the one place that says which stages exist, in what order they run,
#: which base class each component subclasses and which record each one writes.
STAGES: tuple[Stage, ...] = (
    Stage("encoder", "encoder", Encoder, "features", Features, 0),
    Stage("grouper", "grouper", Grouper, "latents", Latents, 1),
    Stage("prior", "prior", Prior, "prior", PriorTerms, 2),
    Stage("decoder", "decoder", Decoder, "rendering", Rendering, 3),
    Stage("objective", "objectives", Objective, None, None, 4, many=True),
)

#: The component kinds, in stage order.
KINDS: tuple[str, ...] = tuple(s.kind for s in STAGES)
#: kind → base class (derived from :data:`STAGES`).
BASES: dict[str, type[Component]] = {s.kind: s.base for s in STAGES}


def stage(kind: str) -> Stage:
    """The :class:`Stage` of a component kind (``"grouper"``)."""
    for s in STAGES:
        if s.kind == kind:
            return s
    raise KeyError(f"unknown component kind {kind!r}; kinds are {', '.join(KINDS)}")


def run_position(component: type[Component] | Component) -> float:
    """Where a component runs: its stage's order, except that an ``eval_only`` grouper
    runs after the decoder (it needs the rendering and is skipped in training)."""
    s = stage(component.kind)
    if getattr(component, "eval_only", False):
        return stage("decoder").order + 0.5
    return s.order


def check_class(kind: str, name: str, cls: object) -> None:
    """Check a class registered as a component of ``kind``: a subclass of the stage's base
    whose ``needs``/``provides`` name record fields.  Raises RegistryError naming the class."""
    base = BASES[kind]
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise RegistryError(f"{kind} {name!r} must be a subclass of ocf.components.{base.__name__}, got {cls!r}")
    spec = getattr(cls, "Spec", None)
    if not (isinstance(spec, type) and issubclass(spec, ComponentSpec)):
        raise RegistryError(
            f"{kind} {name!r} ({cls.__module__}.{cls.__qualname__}): its Spec must be a pydantic model "
            f"subclassing ocf.ComponentSpec (unknown keys are errors), got {spec!r}"
        )
    problems = [
        f"{attr} {problem}"
        for attr in ("needs", "provides")
        for path in getattr(cls, attr)
        if (problem := path_problem(path)) is not None
    ]
    if problems:
        raise RegistryError(
            f"{kind} {name!r} ({cls.__module__}.{cls.__qualname__}): "
            + "; ".join(problems)
            + f". Valid fields: {', '.join(valid_paths())} (and keys inside batch.extras, prior.terms and the extras)"
        )
