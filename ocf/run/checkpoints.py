"""Run directories and checkpoints: writing them atomically, reading them back, and
rebuilding a run's model (:func:`load_run`).

Run directory layout::

    RUN_DIR/spec.yaml          the fully resolved spec (every default filled in)
    RUN_DIR/versions.json      python, torch, ocf, every plugin's version and which plugin supplied each component
    RUN_DIR/metrics.jsonl      one JSON line per logged step and per evaluation during training
    RUN_DIR/tb/                TensorBoard events (when tensorboard is installed)
    RUN_DIR/pictures/          decompositions every ``train.image_every`` steps
    RUN_DIR/checkpoints/       init.pt (step 0) and last.pt, written atomically
    RUN_DIR/summary.json       the final step, losses, steps/s
"""

from __future__ import annotations

import importlib.metadata as md
import json
import pickle
import platform
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import yaml

from ocf import distributed as dist
from ocf.assembly import Model, build
from ocf.errors import CheckpointError, OutputError, UserError
from ocf.plugin_notes import used_components
from ocf.registry import Registry
from ocf.run.files import atomic_write, atomic_write_text, ensure_folder, writing
from ocf.spec import ResolvedSpec, read_yaml, resolve

LIBRARIES = ("ocf", "torch", "pluggy", "pydantic", "einops", "torchmetrics", "h5py", "hydra-zen", "numpy")


#: entries every checkpoint ``--resume`` reads must hold
RESUME_ENTRIES = ("model", "optimizer", "scheduler", "rng", "step")
#: how many parameters an error message lists before counting the rest
SHOWN = 5


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write atomically: a temp file in the same directory, then rename.  On failure (a full
    disk) the temp file is removed and an :class:`~ocf.errors.OutputError` names ``path``."""
    path = Path(path)
    with writing(path.parent, "create the checkpoint folder"):
        path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: _torch_save(payload, tmp), "write the checkpoint")


def _torch_save(payload: dict[str, Any], tmp: Path) -> None:
    """``torch.save`` through a Python file, whose write errors (a full disk) torch keeps as
    the context of its own RuntimeError: that :class:`OSError` is raised instead."""
    with open(tmp, "wb") as f:
        try:
            torch.save(payload, f)
        except RuntimeError as exc:
            cause: BaseException | None = exc
            while cause is not None and not isinstance(cause, OSError):
                cause = cause.__cause__ or cause.__context__
            if cause is None:
                raise
            raise cause from None


def load_checkpoint(path: Path, need: tuple[str, ...] = ("model",)) -> dict[str, Any]:
    """A checkpoint's dict, read with ``weights_only=True`` (tensors and plain values only; no
    code in the file runs), holding the entries ``need`` and a ``model`` state dict of named
    tensors; anything else raises :class:`~ocf.errors.CheckpointError` naming the file."""
    path = Path(path)
    ck = _read(path)
    if not isinstance(ck, dict):
        raise CheckpointError(
            f"{path}: not an ocf checkpoint (it holds a {_kind(ck)}, not a dict with a 'model' entry)"
        )
    missing = [k for k in need if k not in ck]
    if missing:
        have = ", ".join(repr(k) for k in list(ck)[:10]) or "nothing"
        raise CheckpointError(f"{path}: not an ocf checkpoint: no {' or '.join(map(repr, missing))} (it holds {have})")
    if "model" in ck:
        check_state_dict(path, ck["model"])
    return ck


def _read(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file") from None
    except Exception as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        refused = [line for line in lines if "GLOBAL" in line or "global" in line.split()]
        if isinstance(exc, pickle.UnpicklingError) and refused:
            raise CheckpointError(
                f"{path}: holds Python objects, not only tensors and plain values ({refused[0][:200]}); checkpoints "
                "are read with weights_only=True, which refuses them rather than run code from the file"
            ) from None
        unsupported = [line for line in lines if line.startswith("Unsupported")]
        detail = (unsupported or lines or ["no detail"])[0].split(". ")[0][:200]
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint (empty, truncated or another format: "
            f"{type(exc).__name__}: {detail})"
        ) from None


def _kind(value: Any) -> str:
    return type(value).__name__


def check_state_dict(path: Path, state: Any, entry: str = "model") -> None:
    """``state`` must map names to tensors."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: '{entry}' is a {_kind(state)}, not a state dict of named tensors")
    bad = [(k, v) for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        shown = ", ".join(f"{k!r} ({_kind(v)})" for k, v in bad[:SHOWN])
        raise CheckpointError(f"{path}: '{entry}' holds {len(bad)} entries that are not named tensors: {shown}")


def nonfinite(tensors: dict[str, Any]) -> list[str]:
    """Names of the floating tensors of ``tensors`` holding a NaN or an infinity."""
    return [
        k
        for k, v in tensors.items()
        if isinstance(v, torch.Tensor) and (v.is_floating_point() or v.is_complex()) and not bool(v.isfinite().all())
    ]


def _numeric_kind(t: torch.Tensor) -> str:
    if t.dtype == torch.bool:
        return "bool"
    return "complex" if t.is_complex() else "float" if t.is_floating_point() else "integer"


def differences(state: dict[str, torch.Tensor], own: dict[str, torch.Tensor]) -> list[str]:
    """How the named tensors ``state`` differ from a model's ``own``: other shapes (both
    shown), other kinds of number, missing and unexpected names, the first few of each."""
    common = [k for k in own if k in state]
    shapes = [k for k in common if tuple(state[k].shape) != tuple(own[k].shape)]
    kinds = [k for k in common if k not in shapes and _numeric_kind(state[k]) != _numeric_kind(own[k])]
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]

    def listed(keys: list[str], show) -> str:
        more = f"; and {len(keys) - SHOWN} more" if len(keys) > SHOWN else ""
        return "; ".join(show(k) for k in keys[:SHOWN]) + more

    out = []
    if shapes:
        shown = listed(shapes, lambda k: f"{k}: checkpoint {list(state[k].shape)}, model {list(own[k].shape)}")
        out.append(f"{len(shapes)} tensor(s) with another shape ({shown})")
    if kinds:
        shown = listed(kinds, lambda k: f"{k}: checkpoint {state[k].dtype}, model {own[k].dtype}")
        out.append(f"{len(kinds)} tensor(s) with another kind of number ({shown})")
    if missing:
        out.append(f"{len(missing)} missing ({listed(missing, lambda k: f'{k} {list(own[k].shape)}')})")
    if extra:
        out.append(f"{len(extra)} the model does not have ({listed(extra, lambda k: f'{k} {list(state[k].shape)}')})")
    return out


def load_model_state(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Load ``state`` (checked by :func:`check_state_dict`) into ``model`` if every name,
    shape and kind of number matches and every weight is finite; else
    :class:`~ocf.errors.CheckpointError` naming ``path`` and the first differences."""
    problems = differences(state, model.state_dict())
    if problems:
        raise CheckpointError(
            f"{path}: does not fit this model (a checkpoint of another model or spec?): " + "; ".join(problems)
        )
    bad = nonfinite(state)
    if bad:
        raise CheckpointError(f"{path}: {len(bad)} tensors hold NaN or infinite values ({', '.join(bad[:SHOWN])})")
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: does not fit this model ({str(exc).splitlines()[0][:300]})") from None


def find_checkpoint(run_or_file: str | Path) -> Path:
    p = Path(run_or_file)
    if p.is_file():
        return p
    last = p / "checkpoints" / "last.pt"
    if last.exists():
        return last
    raise CheckpointError(f"{p}: no checkpoint found (expected {last})")


def init_from(model: Model, source: str) -> list[str]:
    """Copy every parameter whose name, shape and kind of number match from another run's
    checkpoint (refusing non-finite weights); the others are named on stderr."""
    path = find_checkpoint(source)
    state = load_checkpoint(path)["model"]
    own = model.state_dict()
    loaded = {
        k: v
        for k, v in state.items()
        if k in own and own[k].shape == v.shape and _numeric_kind(own[k]) == _numeric_kind(v)
    }
    if not loaded:
        detail = "; ".join(differences(state, own)) or "it holds no tensor"
        raise CheckpointError(f"train.init_from: {path} shares no parameter with this model ({detail})")
    bad = nonfinite(loaded)
    if bad:
        raise CheckpointError(
            f"train.init_from: {path}: {len(bad)} tensors hold NaN or infinite values ({', '.join(bad[:SHOWN])})"
        )
    skipped = differences(state, own)
    if skipped and dist.rank() == 0:
        print(
            f"ocf: train.init_from {path}: copied {len(loaded)} of {len(own)} tensors; the rest keep their "
            f"initialisation: {'; '.join(skipped)}",
            file=sys.stderr,
        )
    own.update(loaded)
    model.load_state_dict(own)
    return sorted(loaded)


def check_resume_entries(path: Path, ck: dict[str, Any]) -> int:
    """The types of what ``--resume`` reads besides the model (optimizer, schedule, RNG,
    step, GECO); returns the step."""
    step = ck["step"]
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(f"{path}: 'step' must be a non-negative integer, got {step!r} ({_kind(step)})")
    opt = ck["optimizer"]
    if not (isinstance(opt, dict) and isinstance(opt.get("state"), dict) and isinstance(opt.get("param_groups"), list)):
        raise CheckpointError(f"{path}: 'optimizer' is not an optimizer state (a dict with 'state' and 'param_groups')")
    sched = ck["scheduler"]
    if not (isinstance(sched, dict) and isinstance(sched.get("last_epoch"), int)):
        raise CheckpointError(f"{path}: 'scheduler' is not a schedule state (a dict with an integer 'last_epoch')")
    rng, want = ck["rng"], torch.get_rng_state()
    if not (isinstance(rng, torch.Tensor) and rng.dtype == torch.uint8 and rng.shape == want.shape):
        got = f"{rng.dtype} {list(rng.shape)}" if isinstance(rng, torch.Tensor) else _kind(rng)
        raise CheckpointError(f"{path}: 'rng' is not a torch RNG state (uint8 {list(want.shape)}), got {got}")
    geco = ck.get("geco")
    if geco is not None:
        numbers = isinstance(geco, dict) and isinstance(geco.get("beta"), (int, float))
        if not (numbers and (geco.get("err_ema") is None or isinstance(geco.get("err_ema"), (int, float)))):
            raise CheckpointError(f"{path}: 'geco' is not a GECO state (a dict with numbers 'beta' and 'err_ema')")
    scaler = ck.get("scaler")
    if scaler is not None and not (isinstance(scaler, dict) and isinstance(scaler.get("scale"), (int, float))):
        raise CheckpointError(f"{path}: 'scaler' is not a gradient scaler state (a dict with a number 'scale')")
    return step


def optimisation_state(opt: Any) -> dict[str, Any]:
    """What a resume needs of an :class:`~ocf.run.setup.Optimisation` besides the model:
    optimizer, schedule, GECO and (fp16) the gradient scaler."""
    state = {
        "optimizer": opt.optimizer.state_dict(),
        "scheduler": opt.scheduler.state_dict(),
        "geco": opt.geco.state_dict() if opt.geco else None,
    }
    if opt.scaler is not None:
        state["scaler"] = opt.scaler.state_dict()
    return state


def load_optimisation_state(opt: Any, ck: dict[str, Any], path: Path) -> None:
    """Restore :func:`optimisation_state` from checkpoint ``ck`` (read from ``path``).  An fp16
    run resumed from a checkpoint without a scaler state starts a new scaler."""
    load_optimizer_state(opt.optimizer, ck["optimizer"], path)
    own = opt.scheduler.state_dict()
    if set(own) - set(ck["scheduler"]):
        raise CheckpointError(f"{path}: 'scheduler' lacks {', '.join(sorted(set(own) - set(ck['scheduler'])))}")
    opt.scheduler.load_state_dict(ck["scheduler"])
    if opt.geco and ck.get("geco"):
        opt.geco.load_state_dict(ck["geco"])
    if opt.scaler is not None and ck.get("scaler"):
        opt.scaler.load_state_dict(ck["scaler"])


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any], path: Path) -> None:
    """Load ``state`` into ``optimizer`` and check that every per-parameter tensor has its
    parameter's shape and is finite."""
    try:
        optimizer.load_state_dict(state)
    except (KeyError, IndexError, RuntimeError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: 'optimizer' does not fit this model's optimizer ({exc})") from None
    names = {id(p): i for i, p in enumerate(p for g in optimizer.param_groups for p in g["params"])}
    for param, entries in optimizer.state.items():
        for key, value in entries.items():
            if not isinstance(value, torch.Tensor) or value.dim() == 0:
                continue
            where = f"'optimizer' state {key!r} of parameter {names.get(id(param), '?')}"
            if value.shape != param.shape:
                raise CheckpointError(f"{path}: {where} is {list(value.shape)}, the parameter {list(param.shape)}")
            if nonfinite({key: value}):
                raise CheckpointError(f"{path}: {where} holds NaN or infinite values")


def versions(registry: Registry | None = None, plugin_info: Iterable[Any] | None = None) -> dict[str, str]:
    """Python, platform, the core libraries and the plugins: from ``plugin_info``
    (:class:`~ocf.plugins.PluginInfo` of every plugin, as ``ocf plugins`` lists them) when
    given, else every plugin with entries in ``registry``, as its entry point names it."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in LIBRARIES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    if plugin_info is not None:
        for info in plugin_info:
            out[f"plugin:{info.name}"] = f"{info.distribution} {info.version} ({info.status})"
    elif registry is not None:
        points = {ep.name: ep for ep in md.entry_points(group="ocf")}
        for name in sorted({e.plugin for e in registry.entries()}):
            d = getattr(points.get(name), "dist", None)
            out[f"plugin:{name}"] = f"{d.name if d else ''} {d.version if d else ''} (ok)"
    return out


def prepare_run_dir(
    resolved: ResolvedSpec, out: str | None, resume: bool, plugin_info: Iterable[Any] | None = None
) -> Path:
    """The run directory (``out`` or ``runs/<name>``), with ``spec.yaml`` and
    ``versions.json`` written for a new run; refuses to overwrite or to resume nothing, and
    checks that files can be written there before any training."""
    run_dir = Path(out or Path("runs") / resolved.spec.name)
    if run_dir.exists() and not run_dir.is_dir():
        raise OutputError(f"{run_dir}: is a file, not a run folder (choose another --out)")
    has_ckpt = (run_dir / "checkpoints" / "last.pt").exists()
    if resume and not has_ckpt:
        raise UserError(f"--resume: {run_dir} has no checkpoint to resume from")
    if not resume and has_ckpt:
        raise UserError(f"{run_dir} already holds a run; pass --resume to continue it or --out for a new one")
    if dist.rank() == 0:
        ensure_folder(run_dir, "run folder")
        if not resume:
            atomic_write_text(run_dir / "spec.yaml", yaml.safe_dump(resolved.expanded(), sort_keys=False))
            info = versions(resolved.registry, plugin_info)
            info.update(used_components(resolved.registry, resolved.expanded()))  # named if one goes missing
            atomic_write_text(run_dir / "versions.json", json.dumps(info, indent=2))
    return run_dir


def load_run(
    run_dir: str | Path, registry: Registry, checkpoint: str | None = None
) -> tuple[ResolvedSpec, Model, Path]:
    """The resolved spec of a run dir and its model (in eval mode) with the chosen
    checkpoint's weights (``None`` or ``"last"``: the last; ``"init"``: the initialisation;
    or a file path).  A checkpoint that does not fit the run's model is refused, naming the
    first differing parameters."""
    run_dir = Path(run_dir)
    spec_file = run_dir / "spec.yaml"
    if not spec_file.exists():
        raise UserError(f"{run_dir}: not a run directory (no spec.yaml)")
    resolved = resolve(read_yaml(spec_file), registry)
    if checkpoint is None:
        ckpt = find_checkpoint(run_dir)
    elif checkpoint in ("init", "last"):
        ckpt = run_dir / "checkpoints" / f"{checkpoint}.pt"
    else:
        ckpt = Path(checkpoint)
    state = load_checkpoint(ckpt)["model"]
    model = build(resolved, dry_run=False)
    load_model_state(model, state, ckpt)
    model.eval()
    return resolved, model, ckpt
