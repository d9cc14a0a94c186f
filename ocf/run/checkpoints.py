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
import os
import platform
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import yaml

from ocf import distributed as dist
from ocf.assembly import Model, build
from ocf.errors import UserError
from ocf.plugin_notes import used_components
from ocf.registry import Registry
from ocf.spec import ResolvedSpec, read_yaml, resolve

LIBRARIES = ("ocf", "torch", "pluggy", "pydantic", "einops", "torchmetrics", "h5py", "hydra-zen", "numpy")


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write atomically: a temp file in the same directory, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: no such checkpoint") from None
    except Exception as exc:
        raise UserError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {exc})") from None


def find_checkpoint(run_or_file: str | Path) -> Path:
    p = Path(run_or_file)
    if p.is_file():
        return p
    last = p / "checkpoints" / "last.pt"
    if last.exists():
        return last
    raise UserError(f"{p}: no checkpoint found (expected {last})")


def init_from(model: Model, source: str) -> list[str]:
    """Copy every parameter whose name and shape match from another run's checkpoint."""
    state = load_checkpoint(find_checkpoint(source))["model"]
    own = model.state_dict()
    loaded = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not loaded:
        raise UserError(f"train.init_from: {source} shares no parameter with this model")
    own.update(loaded)
    model.load_state_dict(own)
    return sorted(loaded)


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
    ``versions.json`` written for a new run; refuses to overwrite or to resume nothing."""
    run_dir = Path(out or Path("runs") / resolved.spec.name)
    has_ckpt = (run_dir / "checkpoints" / "last.pt").exists()
    if resume and not has_ckpt:
        raise UserError(f"--resume: {run_dir} has no checkpoint to resume from")
    if not resume and has_ckpt:
        raise UserError(f"{run_dir} already holds a run; pass --resume to continue it or --out for a new one")
    if dist.rank() == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            (run_dir / "spec.yaml").write_text(yaml.safe_dump(resolved.expanded(), sort_keys=False))
            info = versions(resolved.registry, plugin_info)
            info.update(used_components(resolved.registry, resolved.expanded()))  # named if one goes missing
            (run_dir / "versions.json").write_text(json.dumps(info, indent=2))
    return run_dir


def load_run(
    run_dir: str | Path, registry: Registry, checkpoint: str | None = None
) -> tuple[ResolvedSpec, Model, Path]:
    """The resolved spec of a run dir and its model (in eval mode) with the chosen
    checkpoint's weights (``None``: the last; ``"init"``: the initialisation; or a file path)."""
    run_dir = Path(run_dir)
    spec_file = run_dir / "spec.yaml"
    if not spec_file.exists():
        raise UserError(f"{run_dir}: not a run directory (no spec.yaml)")
    resolved = resolve(read_yaml(spec_file), registry)
    if checkpoint is None:
        ckpt = find_checkpoint(run_dir)
    elif checkpoint == "init":
        ckpt = run_dir / "checkpoints" / "init.pt"
    else:
        ckpt = Path(checkpoint)
    model = build(resolved, dry_run=False)
    model.load_state_dict(load_checkpoint(ckpt)["model"])
    model.eval()
    return resolved, model, ckpt
