"""``ocf repro NAME``: train and score every seed of a registered result, then write its card.

Each seed of each run chain (the result's, its baseline's, its control's) is a
:class:`Task`, run by a worker process (``python -m ocf repro --task TASK.json``, which calls
:func:`run_task`) with ``threads`` torch threads; up to ``jobs`` workers run at once.  Run
directories are kept (``RUNS/<name>/seed<N>``, a chain's earlier runs beside it as
``seed<N>.init``): a seed with a ``repro.json`` is finished and not rerun, a half-finished run
resumes from its last checkpoint (``--resume``), so a killed ``ocf repro`` picks up where it
stopped.  The card is built by :mod:`ocf.run.cards`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ocf.errors import TrainingError, UserError
from ocf.registry import Registry
from ocf.results import Result, Run, lookup
from ocf.run import train
from ocf.run.checkpoints import load_run
from ocf.run.data import ensure_dataset
from ocf.run.evaluate import evaluate_model
from ocf.spec import load

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Stage:
    """One training run of a chain, resolved: the spec file, its overrides, steps and run dir."""

    spec: str
    overrides: list[str]
    steps: int
    out: str


@dataclass
class Task:
    """One seed of one run chain: what a worker trains and scores."""

    label: str  # the result the runs belong to: NAME, NAME.control or the baseline's name
    seed: int
    stages: list[Stage]
    threads: int = 1

    @property
    def out(self) -> Path:
        return Path(self.stages[-1].out)

    @property
    def record_file(self) -> Path:
        return self.out / "repro.json"

    def fingerprint(self) -> dict:
        """What must match for an existing run dir to count as this task's (threads may differ)."""
        return {"seed": self.seed, "stages": [{k: v for k, v in dataclasses.asdict(s).items()} for s in self.stages]}

    def stage_overrides(self, i: int) -> list[str]:
        extra = [f"train.seed={self.seed}", f"train.threads={self.threads}"]
        if i > 0:
            extra.append(f"train.init_from={self.stages[i - 1].out}")
        return list(self.stages[i].overrides) + extra

    def commands(self) -> list[str]:
        """The ``ocf`` commands that do by hand what the worker does."""
        lines = []
        for i, s in enumerate(self.stages):
            words = [
                "ocf",
                "train",
                _shown(s.spec),
                *self.stage_overrides(i),
                "--out",
                _shown(s.out),
                "--steps",
                str(s.steps),
            ]
            lines.append(" ".join(shlex.quote(w) for w in words))
        out = shlex.quote(_shown(str(self.out)))
        return lines + [f"ocf eval {out} --json", f"ocf eval {out} --checkpoint init --json"]


def _shown(path: str) -> str:
    """A path relative to the repository or the working directory when inside them."""
    p = Path(path)
    for base in (Path.cwd(), ROOT):
        try:
            return str(p.resolve().relative_to(base.resolve()))
        except ValueError:
            continue
    return str(p)


# --------------------------------------------------------------------------- planning


def chain_tasks(
    label: str, run: Run, seed: int, steps: int | None, root: Path, registry: Registry, threads: int
) -> Task:
    """The task training ``run`` (and the runs it starts from) for ``seed`` under ``root/label``."""
    chain = run.chain()
    stages = []
    for i, r in enumerate(chain):
        spec = r.spec_path()
        n = steps or r.steps or load(spec, registry, r.overrides).spec.train.steps
        out = root / label / (f"seed{seed}" + ".init" * (len(chain) - 1 - i))
        stages.append(Stage(str(spec), list(r.overrides), int(n), str(out.resolve())))
    return Task(label, seed, stages, threads)


def plan(
    result: Result, registry: Registry, seeds: list[int], steps: int | None, root: Path, threads: int
) -> dict[str, list[Task]]:
    """The tasks per role: ``result``, ``baseline`` (the baseline result's own runs, shared
    with ``ocf repro BASELINE``) and ``control``."""
    suffix = "" if steps is None else f"-{steps}steps"
    roles = {"result": (result.name, result)}
    if result.baseline:
        roles["baseline"] = (result.baseline, lookup(registry, result.baseline))
    if result.control:
        roles["control"] = (f"{result.name}.control", result.control.run)
    return {
        role: [chain_tasks(label + suffix, run, s, steps, root, registry, threads) for s in seeds]
        for role, (label, run) in roles.items()
    }


def check_reusable(task: Task) -> None:
    """Refuse a run dir that holds a different configuration than ``task``."""
    saved = task.out / "task.json"
    if saved.exists():
        before = json.loads(saved.read_text()).get("fingerprint")
        if before != task.fingerprint():
            raise UserError(
                f"{task.out} holds runs of another configuration (a different spec, overrides or "
                "steps); pass --runs DIR for a new directory, or delete it"
            )


def finished(task: Task) -> bool:
    return task.record_file.exists()


# --------------------------------------------------------------------------- the worker


def run_task(task: Task, registry: Registry, plugin_info: Iterable[Any] | None = None) -> dict:
    """Train every stage of ``task`` (resuming a stage from its last checkpoint, skipping a
    finished one), score the last stage's trained and step-0 models, write ``repro.json``."""
    t0 = time.time()
    resumed = False
    for i, stage in enumerate(task.stages):
        resolved = load(stage.spec, registry, task.stage_overrides(i))
        out = Path(stage.out)
        if _stage_done(out, stage.steps):
            continue
        resume = (out / "checkpoints" / "last.pt").exists()
        resumed |= resume
        train.run(resolved, out=str(out), resume=resume, steps=stage.steps, progress=False, plugin_info=plugin_info)
    t1 = time.time()
    resolved, model, _ = load_run(task.out, registry)
    conventions: dict[str, str] = {}
    trained = evaluate_model(model, resolved, progress=False, conventions=conventions)
    _, model0, _ = load_run(task.out, registry, "init")
    untrained = evaluate_model(model0, resolved, progress=False)
    record = {
        "label": task.label,
        "seed": task.seed,
        "metrics": trained,
        "untrained": untrained,
        "conventions": conventions,
        "steps": [s.steps for s in task.stages],
        "steps_per_s": _median_rate(task.out),
        "train_seconds": t1 - t0,
        "eval_seconds": time.time() - t1,
        "resumed": resumed,
        "threads": task.threads,
        "run_dir": str(task.out),
        "commands": task.commands(),
    }
    tmp = task.record_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, task.record_file)
    return record


def _stage_done(out: Path, steps: int) -> bool:
    summary = out / "summary.json"
    return summary.exists() and json.loads(summary.read_text()).get("step") == steps


def _median_rate(run_dir: Path) -> float | None:
    rates = [r["steps_per_s"] for r in _jsonl(run_dir / "metrics.jsonl") if "steps_per_s" in r]
    return statistics.median(rates) if rates else None


def _jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a kill
            pass
    return out


def write_task(task: Task) -> Path:
    task.out.mkdir(parents=True, exist_ok=True)
    path = task.out / "task.json"
    path.write_text(json.dumps({**dataclasses.asdict(task), "fingerprint": task.fingerprint()}, indent=2))
    return path


def read_task(path: str | Path) -> Task:
    data = json.loads(Path(path).read_text())
    data.pop("fingerprint", None)
    data["stages"] = [Stage(**s) for s in data["stages"]]
    return Task(**data)


# --------------------------------------------------------------------------- the scheduler


def done_steps(task: Task) -> int:
    """Steps trained so far over the task's stages (from their logs; all of them once finished)."""
    if finished(task):
        return sum(s.steps for s in task.stages)
    total = 0
    for s in task.stages:
        out = Path(s.out)
        if _stage_done(out, s.steps):
            total += s.steps
            continue
        steps = [r["step"] for r in _jsonl(out / "metrics.jsonl") if "loss" in r]
        total += min(max(steps, default=0), s.steps)
    return total


def execute(
    tasks: list[Task], jobs: int, progress: bool = True, poll: float = 1.0, registry: Registry | None = None
) -> dict[str, str]:
    """Run the unfinished ``tasks``, ``jobs`` worker processes at a time (``jobs=0``: one
    after another in this process, with ``registry``), with a progress bar over their steps.
    Returns the failures: task log → reason.  On Ctrl-C or SIGTERM the workers are
    interrupted (they checkpoint) and the interruption re-raised."""
    from tqdm.auto import tqdm

    total = sum(s.steps for t in tasks for s in t.stages)
    done = sum(done_steps(t) for t in tasks)  # resumed steps count as done, not as speed
    bar = tqdm(
        total=total, initial=done, desc="repro", unit="step", file=sys.stderr, dynamic_ncols=True, disable=not progress
    )
    waiting, running, failures = [t for t in tasks if not finished(t)], {}, {}
    if jobs == 0:
        for task in waiting:
            write_task(task)
            run_task(task, registry)
            bar.update(sum(s.steps for s in task.stages))
        bar.close()
        return failures
    previous = _sigterm_as_interrupt()
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                task = waiting.pop(0)
                running[task.seed, task.label] = (task, *_launch(task))
            for key, (task, proc, log) in list(running.items()):
                if proc.poll() is not None:
                    del running[key]
                    log.close()
                    if proc.returncode != 0 or not finished(task):
                        why = f"{task.label} seed {task.seed} exited {proc.returncode}"
                        failures[str(task.out / "repro.log")] = why
            bar.n = sum(done_steps(t) for t in tasks)
            bar.refresh()
            if running:
                time.sleep(poll)
    except BaseException:
        _interrupt([p for _, p, _ in running.values()])
        raise
    finally:
        bar.close()
        _restore_sigterm(previous)
    return failures


def _launch(task: Task):
    """Start a worker for ``task``; its output goes to ``repro.log`` in the task's run dir."""
    path = write_task(task)
    env = {**os.environ, "OMP_NUM_THREADS": str(task.threads), "MKL_NUM_THREADS": str(task.threads)}
    log = open(task.out / "repro.log", "a")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ocf", "repro", "--task", str(path)], stdout=log, stderr=subprocess.STDOUT, env=env
    )
    return proc, log


def _interrupt(procs: list[subprocess.Popen], grace: float = 60.0) -> None:
    """SIGINT every worker (the training loop checkpoints), then wait; kill what lingers."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    deadline = time.time() + grace
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()


def _sigterm_as_interrupt():
    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        return None


def _restore_sigterm(previous) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def prepare(tasks: list[Task], registry: Registry) -> None:
    """Check that run dirs can be reused and generate every dataset once, before workers
    start (so parallel seeds do not each generate the same file)."""
    seen = set()
    for task in tasks:
        check_reusable(task)
        for i, s in enumerate(task.stages):
            if (s.spec, tuple(s.overrides)) in seen:
                continue
            seen.add((s.spec, tuple(s.overrides)))
            ensure_dataset(load(s.spec, registry, task.stage_overrides(i)).spec, registry)


def reproduce(
    result: Result,
    registry: Registry,
    *,
    seeds: int | None = None,
    steps: int | None = None,
    jobs: int = 1,
    threads: int | None = None,
    runs: str | Path = "runs/repro",
    progress: bool = True,
) -> dict[str, dict[int, dict]]:
    """Run (or pick up) every seed of ``result``, its baseline's and its control's, ``jobs``
    worker processes at a time (0: in this process) with ``threads`` torch threads each
    (default: the CPU cores shared among the jobs); return their records by role and seed.
    :class:`TrainingError` names failed seeds and their logs."""
    if jobs < 0 or (threads is not None and threads < 1) or (steps is not None and steps < 1):
        raise UserError("--threads and --steps must be at least 1, --jobs at least 0 (0: in this process)")
    if seeds is not None and seeds < 1:
        raise UserError("--seeds must be at least 1")
    threads = threads or max(1, cores() // max(jobs, 1))
    roles = plan(result, registry, result.seed_list(seeds), steps, Path(runs), threads)
    every = [t for tasks in roles.values() for t in tasks]
    prepare(every, registry)
    failures = execute(every, jobs, progress, registry=registry)
    if failures:
        raise TrainingError("; ".join(f"{why} (log: {log})" for log, why in failures.items()))
    return {role: {t.seed: json.loads(t.record_file.read_text()) for t in tasks} for role, tasks in roles.items()}
