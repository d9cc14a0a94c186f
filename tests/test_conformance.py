"""Every registered component passes ocf.testing.check_component (timm style), and every
shipped spec builds."""

from pathlib import Path

import pytest

from ocf import assembly, plugins
from ocf.errors import MissingDependencyError
from ocf.registry import COMPONENT_KINDS
from ocf.spec import load
from ocf.testing import check_component

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = plugins.default().registry
ENTRIES = [e for kind in COMPONENT_KINDS for e in REGISTRY.entries(kind)]
CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))


def test_built_in_plugins_load():
    info = plugins.default().info
    for name in ("common", "slot_attention"):
        assert info[name].status == "ok", info[name].error


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_component_conformance(entry):
    try:
        check_component(entry.obj)
    except MissingDependencyError as exc:  # an optional extra (ocf[vit]) that is not installed
        pytest.skip(str(exc))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_every_config_builds(path):
    resolved = load(path, REGISTRY)
    try:
        assembly.build(resolved)  # includes the dry forward pass
    except MissingDependencyError as exc:  # an optional extra (ocf[vit]) that is not installed
        pytest.skip(str(exc))
