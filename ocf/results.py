"""Expected results as data: what a named result trains, how it is scored, and what it must reach.

A :class:`Result` names a spec with overrides and a step budget, the seeds, the metrics, and
the expected range of one judged metric: a mean over seeds to reach and a floor for each
seed (absolute, or relative to the untrained model of the same seed, or to a baseline
result of the same seed), a success rule ("every seed" or "k of n seeds"), and optionally a
control run that must stay under a ceiling.  Plugins register results through the hook
``ocf_register_results(registry)`` with ``registry.register(result)``;
``ocf repro`` runs them (:mod:`ocf.run.repro`) and writes a result card.

:func:`judge` turns per-seed values into the verdict a card shows.
"""

from __future__ import annotations

import importlib.resources
import math
import re
import statistics
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ocf.errors import SpecError, UserError
from ocf.registry import Registry

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
_BOUND = re.compile(r"^\s*(untrained|baseline)\s*([+-])\s*([0-9.eE+-]+)\s*$")
_K_OF_N = re.compile(r"^\s*(\d+)\s+of\s+(\d+)\s*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Run(_Model):
    """One training run: a spec, its overrides and its step budget; optionally started from
    another run trained first with the same seed (``train.init_from``)."""

    spec: str = Field(
        description="the spec file: relative to the repository's configs/ directory, or to the "
        "package data of `package`, or absolute"
    )
    package: str | None = Field(None, description="a Python package whose data holds the spec (a plugin's own specs)")
    overrides: list[str] = Field(default_factory=list, description="dotted key=value overrides of the spec")
    steps: int | None = Field(None, ge=1, description="the step budget; None: the spec's train.steps")
    init_from: Run | None = Field(
        None, description="a run trained first with the same seed; this one starts from its weights"
    )

    @field_validator("spec")
    @classmethod
    def _yaml(cls, value: str) -> str:
        if not value.endswith((".yaml", ".yml")):
            raise ValueError(f"a spec is a .yaml file, got {value!r}")
        return value

    @field_validator("overrides")
    @classmethod
    def _dotted(cls, values: list[str]) -> list[str]:
        bad = [v for v in values if "=" not in v or v.startswith("=")]
        if bad:
            raise ValueError(f"overrides are key=value, got {', '.join(map(repr, bad))}")
        return values

    def spec_path(self) -> Path:
        """The spec file this run trains; :class:`UserError` if it does not exist."""
        if self.package:
            try:
                path = Path(str(importlib.resources.files(self.package) / self.spec))
            except ModuleNotFoundError:
                raise UserError(f"spec {self.spec}: package {self.package!r} is not installed") from None
        else:
            path = Path(self.spec) if Path(self.spec).is_absolute() else CONFIGS / self.spec
        if not path.is_file():
            raise UserError(f"spec {self.spec}: no such file ({path})")
        return path

    def chain(self) -> list[Run]:
        """The runs to train in order: ``init_from`` first (recursively), this one last."""
        return (self.init_from.chain() if self.init_from else []) + [self]


class Bound(_Model):
    """A threshold: ``value`` alone, or ``value`` above the untrained model's score of the
    same seed, or above the baseline result's score of the same seed (its mean, for a mean).
    Written as a number, or as text: ``"untrained + 0.2"``, ``"baseline + 0.1"``."""

    value: float
    over: Literal["absolute", "untrained", "baseline"] = "absolute"

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data):
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            return {"value": data}
        if isinstance(data, str):
            match = _BOUND.match(data)
            if match:
                sign = 1.0 if match.group(2) == "+" else -1.0
                return {"value": sign * float(match.group(3)), "over": match.group(1)}
            try:
                return {"value": float(data)}
            except ValueError:
                raise ValueError(f"a bound is a number, 'untrained + X' or 'baseline + X', got {data!r}") from None
        return data

    def text(self) -> str:
        if self.over == "absolute":
            return f"{self.value:g}"
        return f"{self.over} {'+' if self.value >= 0 else '-'} {abs(self.value):g}"


class Control(_Model):
    """A run that must *not* reach the result (e.g. the method with its key ingredient
    removed): the mean of its ``metric`` over the seeds must stay at or under ``ceiling``."""

    run: Run
    metric: str | None = Field(None, description="the metric judged; None: the result's metric")
    ceiling: float
    shows: str = Field("", description="what the control shows")


class Result(Run):
    """A named, expected result: a run, the seeds, the metrics, and the expected range of
    ``metric`` (see the module docstring)."""

    #: the registry kind (``registry.register(result)`` reads it)
    kind: ClassVar[str] = "result"
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", description="the name `ocf repro NAME` takes")
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    metric: str = Field(description="the metric judged")
    metrics: list[str] = Field(default_factory=list, description="metrics reported (empty: the spec's eval.metrics)")
    higher_is_better: bool = True
    mean: Bound | None = Field(None, description="the mean over seeds must reach this")
    floor: list[Bound] = Field(default_factory=list, description="each seed must reach every one of these")
    success: str = Field("all", description="how many seeds must reach the floor: 'all' or 'k of n'")
    baseline: str | None = Field(None, description="the result whose seeds 'baseline + X' bounds compare against")
    control: Control | None = None
    threads: int = Field(2, ge=1, description="the threads per seed `max_minutes` assumes")
    max_minutes: float | None = Field(None, gt=0, description="the wall-clock budget per seed at `threads`")
    shows: str = Field(description="what the result shows, in a sentence or two")
    evidence: str = Field(
        "",
        description="what is known from elsewhere (the original code, an independent "
        "implementation) and the documented expectation",
    )

    @field_validator("floor", mode="before")
    @classmethod
    def _one_or_many(cls, value):
        return [] if value is None else value if isinstance(value, list) else [value]

    @field_validator("success")
    @classmethod
    def _rule(cls, value: str) -> str:
        match = _K_OF_N.match(value)
        if value != "all" and not (match and 0 < int(match.group(1)) <= int(match.group(2))):
            raise ValueError(f"success is 'all' or 'k of n' with 0 < k <= n, got {value!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Result:
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds repeat: {self.seeds}")
        if any(b.over == "baseline" for b in self.bounds()) and not self.baseline:
            raise ValueError("a 'baseline + X' bound needs `baseline`, the name of the result to compare against")
        if self.baseline == self.name:
            raise ValueError("a result cannot be its own baseline")
        if self.metrics and self.metric not in self.metrics:
            raise ValueError(f"metric {self.metric!r} is not among metrics {self.metrics}")
        if self.success != "all" and not self.floor:
            raise ValueError(f"success {self.success!r} counts seeds reaching the floor, but there is no floor")
        return self

    def bounds(self) -> list[Bound]:
        return ([self.mean] if self.mean else []) + list(self.floor)

    def required(self, n: int) -> int:
        """How many of ``n`` seeds must reach the floor: all, or k/n of them rounded up."""
        match = _K_OF_N.match(self.success)
        return n if not match else math.ceil(int(match.group(1)) / int(match.group(2)) * n - 1e-9)

    def seed_list(self, n: int | None = None) -> list[int]:
        """The first ``n`` seeds (the entry's, then the integers after its largest)."""
        if n is None:
            return list(self.seeds)
        extra = range(max(self.seeds) + 1, max(self.seeds) + 1 + max(0, n - len(self.seeds)))
        return (list(self.seeds) + list(extra))[:n]

    def target_text(self) -> str:
        """The expected range in words, e.g. ``fg_ari: mean >= 0.5; every seed >= untrained + 0.2``."""
        op = ">=" if self.higher_is_better else "<="
        parts = [f"mean {op} {self.mean.text()}"] if self.mean else []
        if self.floor:
            who = "every seed" if self.success == "all" else f"at least {self.success} seeds"
            parts.append(f"{who} {op} " + " and ".join(b.text() for b in self.floor))
        if self.control:
            parts.append(f"control mean <= {self.control.ceiling:g}")
        return f"{self.metric}: " + ("; ".join(parts) if parts else "no target (reported for comparison)")


def make(**fields) -> Result:
    """A :class:`Result` from keyword fields; :class:`SpecError` listing every bad field."""
    try:
        return Result.model_validate(fields)
    except ValidationError as exc:
        name = fields.get("name", "?")
        raise SpecError(
            [f"result {name}: {'.'.join(map(str, e['loc'])) or '(entry)'}: {e['msg']}" for e in exc.errors()]
        ) from None


def registered(registry: Registry) -> dict[str, tuple[Result, str]]:
    """Every registered result by name, with the plugin that registered it."""
    out = {}
    for entry in registry.entries("result"):
        if not isinstance(entry.obj, Result):
            raise UserError(
                f"result {entry.name!r} of plugin {entry.plugin!r} is a {type(entry.obj).__name__}, "
                "not an ocf.results.Result"
            )
        out[entry.name] = (entry.obj, entry.plugin)
    return out


def lookup(registry: Registry, name: str) -> Result:
    """The result registered as ``name`` (close matches suggested otherwise)."""
    from ocf.errors import RegistryError

    try:
        return registry.get("result", name)
    except RegistryError as exc:
        raise UserError(f"{exc}; `ocf repro --list` shows them") from None


def threshold(bounds: list[Bound], untrained: float | None, baseline: float | None, higher: bool) -> float:
    """The value a seed must reach under every bound (the strictest: the largest, or the
    smallest when lower is better), given the untrained and baseline scores of the same seed
    (``untrained - 0.01`` is 0.01 below the untrained score); NaN when a score is missing."""
    values = []
    for b in bounds:
        ref = {"absolute": 0.0, "untrained": untrained, "baseline": baseline}[b.over]
        values.append(math.nan if ref is None else ref + b.value)
    if not values:
        return math.nan
    return max(values) if higher else min(values)


def reaches(value: float, limit: float, higher: bool) -> bool:
    if math.isnan(value) or math.isnan(limit):
        return False
    return value >= limit if higher else value <= limit


def summary(values: list[float]) -> dict:
    """Mean, standard error of the mean (sample SD / sqrt(n); None for one value) and n."""
    clean = [v for v in values if not math.isnan(v)]
    mean = statistics.fmean(clean) if clean else math.nan
    se = statistics.stdev(clean) / math.sqrt(len(clean)) if len(clean) > 1 else None
    return {"mean": mean, "se": se, "n": len(clean)}


def judge(
    result: Result,
    seeds: dict[int, dict],
    baseline: dict[int, float] | None = None,
    control: dict[int, float] | None = None,
) -> dict:
    """The verdict on per-seed outcomes ``{seed: {"value": v, "untrained": u}}`` (the judged
    metric of the trained and the step-0 model), the baseline's value per seed and the
    control's.  Returns the per-seed thresholds and passes, the mean with its standard error,
    the success count against the required one, the mean target, the control and ``passed``
    (None when the result has no target)."""
    hi = result.higher_is_better
    base = baseline or {}
    rows = {}
    for seed, s in seeds.items():
        limit = threshold(result.floor, s.get("untrained"), base.get(seed), hi)
        rows[seed] = {
            **s,
            "baseline": base.get(seed),
            "floor": None if math.isnan(limit) else limit,
            "reached": reaches(s["value"], limit, hi) if result.floor else None,
        }
    stats = summary([s["value"] for s in seeds.values()])
    verdict: dict = {"metric": result.metric, "target": result.target_text(), "seeds": rows, **stats}
    checks = []
    if result.floor:
        hits = sum(bool(r["reached"]) for r in rows.values())
        need = result.required(len(rows))
        verdict["success"] = {"reached": hits, "of": len(rows), "required": need, "rate": hits / max(len(rows), 1)}
        checks.append(hits >= need)
    if result.mean:
        base_mean = summary(list(base.values()))["mean"] if base else None
        untrained_mean = summary([s.get("untrained", math.nan) for s in seeds.values()])["mean"]
        limit = threshold([result.mean], untrained_mean, base_mean, hi)
        verdict["mean_target"] = {"limit": limit, "reached": reaches(stats["mean"], limit, hi)}
        checks.append(verdict["mean_target"]["reached"])
    if result.control:
        c = summary(list((control or {}).values()))
        ok = not math.isnan(c["mean"]) and c["mean"] <= result.control.ceiling
        verdict["control"] = {**c, "ceiling": result.control.ceiling, "seeds": control or {}, "below": ok}
        checks.append(ok)
    verdict["passed"] = all(checks) if checks else None
    return verdict
