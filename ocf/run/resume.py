"""Resuming a run with a spec: the spec given to ``ocf train --resume`` is compared with
the run's ``spec.yaml``.  Keys that change what the run learns (model, data, seed,
optimisation, batch size, ...) must stay as they are; keys that only say how long and how
visibly it trains (:data:`ADJUSTABLE`) may change.  Every resume is recorded as one line of
``RUN_DIR/resumes.jsonl`` (the step, the changes with their old and new values, the step it
stops at), and ``spec.yaml`` is rewritten with the changed values, so the run folder shows
what the run was trained with and from which step."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml

from ocf import distributed as dist
from ocf.errors import SpecError, UserError
from ocf.run.data import registry_of
from ocf.run.files import atomic_write_text, writing
from ocf.spec import ResolvedSpec, read_yaml, resolve

#: keys (or whole sections) a resume may change: they set the length of the run, how often
#: it logs, draws, checkpoints and evaluates, where it computes, and how it is scored, never
#: the weights a given step produces on a given device
ADJUSTABLE = (
    "name",
    "description",
    "train.steps",
    "train.log_every",
    "train.image_every",
    "train.checkpoint_every",
    "train.eval_every",
    "train.eval_samples",
    "train.threads",
    "train.device",
    "train.compile",
    "train.channels_last",
    "train.checkpoint_stages",
    "train.memory_limit_gb",
    "eval",
)
#: how an absent key is shown
ABSENT = "(absent)"
#: refused keys listed before the rest are counted
SHOWN = 20


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}, "c": [{"d": 2}]}`` → ``{"a.b": 1, "c.0.d": 2}``; lists of plain
    values (a resolution, betas) stay whole."""
    if isinstance(tree, dict) and tree:
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    if isinstance(tree, list) and any(isinstance(v, (dict, list)) for v in tree):
        out = {}
        for i, v in enumerate(tree):
            out.update(flatten(v, f"{prefix}{i}."))
        return out
    return {prefix[:-1]: tree}


def spec_changes(saved: dict, given: dict) -> dict[str, tuple[Any, Any]]:
    """Every dotted key whose value differs between two expanded specs: ``{key: (saved,
    given)}``, :data:`ABSENT` for a key only one of them has."""
    a, b = flatten(saved), flatten(given)
    keys = list(a) + [k for k in b if k not in a]
    return {k: (a.get(k, ABSENT), b.get(k, ABSENT)) for k in keys if a.get(k, ABSENT) != b.get(k, ABSENT)}


def adjustable(key: str) -> bool:
    """Whether a resume may change ``key`` (see :data:`ADJUSTABLE`)."""
    return any(key == a or key.startswith(f"{a}.") for a in ADJUSTABLE)


def _shown(value: Any) -> str:
    return value if value is ABSENT else json.dumps(value, default=str)


def check_resume_spec(resolved: ResolvedSpec, run_dir: Path) -> dict[str, tuple[Any, Any]]:
    """The changes ``resolved`` makes to the run's ``spec.yaml`` (both with every default
    filled in); raises :class:`UserError` listing every change a resume may not make, each
    with the run's value and the given one."""
    spec_file = run_dir / "spec.yaml"
    if not spec_file.is_file():
        raise UserError(f"--resume: {run_dir} has no spec.yaml to compare the given spec with")
    try:
        saved = resolve(read_yaml(spec_file), registry_of(resolved)).expanded()
    except SpecError as exc:
        raise UserError(f"--resume: the run's {spec_file} does not validate any more:\n{exc}") from None
    changes = spec_changes(saved, resolved.expanded())
    refused = [k for k in changes if not adjustable(k)]
    if refused:
        lines = [f"  {k}: {_shown(changes[k][0])} in the run, {_shown(changes[k][1])} given" for k in refused[:SHOWN]]
        if len(refused) > SHOWN:
            lines.append(f"  ... and {len(refused) - SHOWN} more")
        raise UserError(
            f"--resume: the given spec differs from {spec_file} in {len(refused)} key(s) that change what the run "
            "learns:\n" + "\n".join(lines) + "\nKeep them as the run has them, or train into a new --out. "
            f"A resume may change only {', '.join(ADJUSTABLE)}."
        )
    return changes


def record_resume(
    run_dir: Path, resolved: ResolvedSpec, changes: dict[str, tuple[Any, Any]], step: int, stop: int
) -> None:
    """Append the resume to ``resumes.jsonl`` and, when the spec changed, write the new one
    to ``spec.yaml`` (rank 0 only)."""
    if dist.rank() != 0:
        return
    line = {
        "step": step,
        "stop": stop,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "changes": {k: {"run": old, "given": new} for k, (old, new) in changes.items()},
    }
    log = run_dir / "resumes.jsonl"
    with writing(log), open(log, "a") as f:
        f.write(json.dumps(line, default=str) + "\n")
    if changes:
        atomic_write_text(run_dir / "spec.yaml", yaml.safe_dump(resolved.expanded(), sort_keys=False))
