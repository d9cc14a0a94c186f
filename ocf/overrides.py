"""Command-line overrides and sweeps (``--multirun``).  Every Hydra import in ocf lives in
this module.

Overrides use Hydra's grammar (``model.grouper.num_slots=7``, ``train.optimizer.lr=1e-3``,
``data.resolution=[32,32]``, sweeps ``model.grouper.num_slots=4,7``).  Because the spec is
expanded with every default before the overrides apply, ``a.b=5`` works for keys the YAML
left out; there is no need for Hydra's ``+a.b=5``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from ocf.errors import SpecError


def _parse(overrides: list[str]):
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        return OverridesParser.create().parse_overrides(list(overrides))
    except OverrideParseException as exc:
        raise SpecError([f"override: {exc}"]) from None


def apply(expanded: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply non-sweep overrides to an expanded spec dict; returns a new dict."""
    out = copy.deepcopy(expanded)
    problems = []
    for ov in _parse(overrides):
        if ov.is_sweep_override():
            problems.append(f"{ov.key_or_group}: a sweep ({ov.input_line}) needs --multirun")
            continue
        key = ov.key_or_group
        if ov.is_delete():
            _delete(out, key)
        else:
            _set(out, key, _plain(ov.value()))
    if problems:
        raise SpecError(problems)
    return out


def launch_multirun(
    expanded: dict[str, Any], overrides: list[str], task: Callable[[dict[str, Any], str], Any], sweep_dir: str
) -> list[Any]:
    """Run ``task(spec_dict, run_dir)`` once per point of the sweep through hydra-zen's
    launcher, so Hydra supplies the run directories (``sweep_dir/<job number>``)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra_zen import launch
    from omegaconf import OmegaConf

    def job(cfg) -> Any:
        return task(OmegaConf.to_container(cfg, resolve=True), HydraConfig.get().runtime.output_dir)

    hydra_overrides = [o for o in overrides] + [
        f"hydra.sweep.dir={sweep_dir}",
        "hydra.sweep.subdir=${hydra.job.num}",
        "hydra/job_logging=disabled",
        "hydra/hydra_logging=disabled",
    ]
    results = launch(expanded, job, overrides=hydra_overrides, multirun=True, version_base="1.3", to_dictconfig=True)
    return [r.return_value for r in results[0]]


def _plain(value: Any) -> Any:
    """Hydra returns its own list/dict types for some values; make them plain."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _set(tree: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node: Any = tree
    for i, part in enumerate(parts[:-1]):
        nxt = _child(node, part, ".".join(parts[: i + 1]))
        if nxt is None:
            nxt = {}
            _assign(node, part, nxt)
        node = nxt
    _assign(node, parts[-1], value)


def _delete(tree: dict, dotted: str) -> None:
    parts = dotted.split(".")
    node: Any = tree
    for i, part in enumerate(parts[:-1]):
        node = _child(node, part, ".".join(parts[: i + 1]))
    if isinstance(node, list):
        del node[int(parts[-1])]
    elif isinstance(node, dict):
        node.pop(parts[-1], None)


def _child(node: Any, part: str, where: str) -> Any:
    if isinstance(node, list):
        try:
            return node[int(part)]
        except (ValueError, IndexError):
            raise SpecError([f"{where}: no list item {part!r} (the list has {len(node)} items)"]) from None
    if isinstance(node, dict):
        return node.get(part)
    raise SpecError([f"{where}: cannot descend into a {type(node).__name__}"])


def _assign(node: Any, part: str, value: Any) -> None:
    if isinstance(node, list):
        node[int(part)] = value
    else:
        node[part] = value
