"""Every registered component of ocf's built-in plugins passes ocf.testing.check_component
(timm style), and every shipped spec builds.

Third-party plugins installed in the same environment are left out, so a broken third-party
package cannot fail ocf's own suite; ``OCF_TEST_THIRD_PARTY=1`` checks their components too
(a plugin author's way to run this suite over their package)."""

import os
from pathlib import Path

import pytest

from ocf import assembly, plugins
from ocf.plugins import PluginInfo
from ocf.registry import COMPONENT_KINDS, Entry
from ocf.spec import load
from ocf.testing import check_component

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = plugins.default().registry
INFO = plugins.default().info
THIRD_PARTY = os.environ.get("OCF_TEST_THIRD_PARTY", "") not in ("", "0")


def checked(entries, info, third_party: bool) -> list:
    """The entries this suite checks: those of built-in plugins, or all with ``third_party``."""
    return [e for e in entries if third_party or (e.plugin in info and info[e.plugin].source == "built-in")]


ENTRIES = checked([e for kind in COMPONENT_KINDS for e in REGISTRY.entries(kind)], INFO, THIRD_PARTY)
CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))


def test_built_in_plugins_load():
    info = plugins.default().info
    for name in ("common", "slot_attention"):
        assert info[name].status == "ok", info[name].error


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_component_conformance(entry):
    check_component(entry.obj)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_every_config_builds(path):
    resolved = load(path, REGISTRY)
    assembly.build(resolved)  # includes the dry forward pass


def test_conformance_covers_the_built_in_plugins_only_by_default():
    """A third-party plugin's components are checked only with OCF_TEST_THIRD_PARTY=1."""
    common = next(e for e in REGISTRY.entries("encoder") if e.plugin == "common")
    theirs = Entry("encoder", "acme.encoder", common.obj, "acme")
    info = {"common": INFO["common"], "acme": PluginInfo(name="acme", distribution="acme-ocf", source="third-party")}
    assert checked([common, theirs], info, third_party=False) == [common]
    assert checked([common, theirs], info, third_party=True) == [common, theirs]
    assert {"common", "slot_attention"} <= {e.plugin for e in ENTRIES}
