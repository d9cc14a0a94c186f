"""Core contracts: registry, plugins, spec validation, chain checks, assembly, overrides."""

import types

import pytest
from toy_plugin import spec_dict

from ocf import assembly, overrides
from ocf.components import ComponentSpec, Encoder
from ocf.errors import RegistryError, SpecError
from ocf.hookspecs import hookimpl
from ocf.plugins import Plugins
from ocf.registry import Registry
from ocf.spec import resolve


def test_registry_duplicate_names_both_plugins():
    reg = Registry()
    reg.add("encoder", "x", object, plugin="first")
    with pytest.raises(RegistryError, match="registered twice: by plugin 'first' and by plugin 'second'"):
        reg.add("encoder", "x", object, plugin="second")


def test_registry_unknown_suggests_close_match():
    reg = Registry()
    reg.add("grouper", "slot_attention.grouper", object, plugin="p")
    with pytest.raises(
        RegistryError, match=r"unknown grouper 'slot_attention.groupr'; did you mean slot_attention.grouper\?"
    ):
        reg.get("grouper", "slot_attention.groupr")


def test_broken_plugin_is_reported_and_others_keep_working(toy_plugins):
    broken = types.ModuleType("broken")

    def ocf_register_components(registry):
        registry.add("encoder", "broken.enc", Encoder)
        raise RuntimeError("kaboom")

    broken.ocf_register_components = hookimpl(ocf_register_components)
    info = toy_plugins.add_module(broken, "broken")
    assert info.status == "failed" and "kaboom" in info.error
    assert ("encoder", "broken.enc") not in toy_plugins.registry  # withdrawn
    assert "toy.encoder" in toy_plugins.registry.names("encoder")


def test_plugin_registering_a_non_component_fails_by_name(toy_plugins):
    bad = types.ModuleType("bad")
    bad.ocf_register_components = hookimpl(lambda registry: registry.add("encoder", "bad.enc", dict))
    info = toy_plugins.add_module(bad, "bad")
    assert info.status == "failed" and "subclass of ocf.components.Encoder" in info.error


def test_duplicate_across_plugins_names_both(toy_plugins):
    dup = types.ModuleType("dup")
    dup.ocf_register_components = hookimpl(lambda registry: registry.add("encoder", "toy.encoder", Encoder))
    info = toy_plugins.add_module(dup, "dup")
    assert info.status == "failed"
    assert "by plugin 'toy' and by plugin 'dup'" in info.error


def test_env_switches_select_plugins():
    only = Plugins()
    only.load_entry_points({"OCF_LOAD_PLUGINS": "common"})
    assert only.info["common"].status == "ok"
    assert only.info["slot_attention"].status == "disabled"
    off = Plugins()
    off.load_entry_points({"OCF_DISABLE_PLUGINS": "slot_attention"})
    assert off.info["slot_attention"].status == "disabled"
    assert "slot_attention.grouper" not in off.registry.names("grouper")


def test_spec_errors_have_paths_and_come_all_at_once(toy_plugins):
    d = spec_dict(num_slots=0, colour="red")
    d["train"]["batch_size"] = -1
    with pytest.raises(SpecError) as exc:
        resolve(d, toy_plugins.registry)
    text = str(exc.value)
    assert "model.grouper.num_slots: Input should be greater than or equal to 1, got 0" in text
    assert "model.grouper.colour: unknown key" in text
    assert "train.batch_size: Input should be greater than or equal to 1, got -1" in text


def test_unknown_component_suggests(toy_plugins):
    d = spec_dict()
    d["model"]["grouper"]["type"] = "toy.groupr"
    with pytest.raises(SpecError, match=r"unknown grouper 'toy.groupr'; did you mean toy.grouper\?"):
        resolve(d, toy_plugins.registry)


def test_chain_gap_names_the_missing_link(toy_plugins):
    d = spec_dict()
    d["model"]["decoder"] = {"type": "toy.frame_decoder"}
    resolved = resolve(d, toy_plugins.registry)
    with pytest.raises(
        SpecError, match="decoder toy.frame_decoder needs latents.frames; grouper toy.grouper does not provide it"
    ):
        assembly.build(resolved)


def test_build_runs_a_dry_forward_and_reports_shapes(toy_plugins):
    resolved = resolve(spec_dict(num_slots=3), toy_plugins.registry)
    model = assembly.build(resolved, dry_run=False)
    state = assembly.dry_forward(model)
    rows = {r.stage: r for r in assembly.report(model, state, toy_plugins.registry)}
    assert rows["grouper"].outputs["objects"] == (2, 3, 8)
    assert rows["encoder"].plugin == "toy"
    assert rows["objectives.0"].outputs == {"mse": ()}


def test_expanded_spec_has_all_defaults_and_overrides_apply(toy_plugins):
    resolved = resolve(spec_dict(), toy_plugins.registry)
    expanded = resolved.expanded()
    assert expanded["model"]["grouper"] == {"type": "toy.grouper", "num_slots": 2}
    assert expanded["train"]["optimizer"]["lr"] == pytest.approx(4e-4)
    # a key the YAML left at its default can be overridden without Hydra's '+'
    changed = overrides.apply(expanded, ["model.encoder.width=5", "train.optimizer.lr=1e-3", "data.resolution=[4,4]"])
    again = resolve(changed, toy_plugins.registry)
    assert again.component("encoder").params.width == 5
    assert again.spec.train.optimizer.lr == pytest.approx(1e-3)
    assert again.spec.data.resolution == (4, 4)


def test_a_sweep_override_needs_multirun():
    with pytest.raises(SpecError, match="needs --multirun"):
        overrides.apply({}, ["a.b=1,2"])


def test_yaml_cannot_construct_python_objects(tmp_path):
    from ocf.spec import read_yaml

    bad = tmp_path / "evil.yaml"
    bad.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(SpecError, match="YAML tag not allowed"):
        read_yaml(bad)


def test_gradients_flow_through_the_assembled_model(toy_plugins):
    resolved = resolve(spec_dict(), toy_plugins.registry)
    model = assembly.build(resolved)
    state = model(assembly.dummy_batch(resolved))
    model.total(state.losses).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_conformance_check_catches_a_component_that_lies():
    from ocf.records import Features
    from ocf.testing import ConformanceError, check_component

    class Liar(Encoder):
        provides = ("features.tokens",)

        class Spec(ComponentSpec):
            pass

        def forward(self, state):
            return Features(tokens=None)

    with pytest.raises(ConformanceError, match="provides features.tokens, but it is None"):
        check_component(Liar)
