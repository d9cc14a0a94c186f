"""Load order and clash rules (issue 20): built-ins load first and cannot be knocked out or
shadowed by a third-party plugin; third-party component names carry the plugin's prefix;
unknown names in the environment switches are errors."""

import sys
import types
from dataclasses import dataclass

import pytest

from ocf.components import Objective
from ocf.errors import UserError
from ocf.hookspecs import hookimpl
from ocf.plugins import Plugins


@dataclass
class Dist:
    name: str
    version: str = "1.0"


@dataclass
class FakeEntryPoint:
    """What load_entry_points reads of an importlib.metadata entry point."""

    name: str
    value: str
    dist: Dist | None

    def load(self):
        return sys.modules[self.value]


def plugin_module(module_name: str, objective_name: str) -> str:
    """A module registering one objective called ``objective_name``; returns its name."""
    cls = type("Obj" + module_name, (Objective,), {"name": objective_name, "forward": lambda self, s: {}})
    mod = types.ModuleType(module_name)
    mod.ocf_register_components = hookimpl(lambda registry: registry.register(cls))
    sys.modules[module_name] = mod
    return module_name


@pytest.fixture
def fake_plugins():
    names = []

    def make(ep_name, module_name, objective_name, dist):
        names.append(plugin_module(module_name, objective_name))
        return FakeEntryPoint(ep_name, module_name, Dist(dist))

    yield make
    for n in names:
        sys.modules.pop(n, None)


def test_a_clash_withdraws_the_third_party_plugin_even_when_it_sorts_first(fake_plugins):
    builtin = fake_plugins("common", "fake_builtin_common", "mse", "ocf")
    early = fake_plugins("aaa", "fake_third_party_aaa", "mse", "ocf-aaa")  # sorts before "common"
    plugins = Plugins()
    plugins.load_entry_points({}, entry_points=[early, builtin])
    assert plugins.info["common"].status == "ok"
    assert plugins.registry.entry("objective", "mse").plugin == "common"
    assert plugins.info["aaa"].status == "failed"
    assert "'mse' is registered twice" in plugins.info["aaa"].error and "common" in plugins.info["aaa"].error


def test_a_third_party_entry_point_cannot_take_a_built_in_name(fake_plugins):
    builtin = fake_plugins("common", "fake_builtin_common2", "mse", "ocf")
    impostor = fake_plugins("common", "fake_impostor", "common.other", "evil-common")
    plugins = Plugins()
    plugins.load_entry_points({}, entry_points=[impostor, builtin])
    assert plugins.info["common"].status == "ok" and plugins.info["common"].distribution == "ocf"
    refused = plugins.info["common (evil-common)"]
    assert refused.status == "failed" and "already taken by built-in plugin 'common'" in refused.error
    assert ("objective", "common.other") not in plugins.registry


def test_third_party_component_names_need_the_plugin_prefix(fake_plugins):
    bare = fake_plugins("mine", "fake_unprefixed", "entropy", "ocf-mine")
    good = fake_plugins("yours", "fake_prefixed", "yours.entropy", "ocf-yours")
    plugins = Plugins()
    plugins.load_entry_points({}, entry_points=[bare, good])
    assert plugins.info["mine"].status == "failed" and "write mine.entropy" in plugins.info["mine"].error
    assert plugins.info["yours"].status == "ok"


def test_unknown_names_in_the_switches_are_errors(fake_plugins):
    ep = fake_plugins("common", "fake_builtin_common3", "mse", "ocf")
    for switch in ("OCF_LOAD_PLUGINS", "OCF_DISABLE_PLUGINS"):
        with pytest.raises(UserError, match=f"{switch} names unknown plugin.*'comon'.*installed plugins: common"):
            Plugins().load_entry_points({switch: "comon"}, entry_points=[ep])
