"""Plugins that cannot break ocf (issue 20): what a plugin raises at import or in a hook is
contained and named, a misspelled hook or a Spec that is not a model fails the plugin, a
failing component names its stage, and a failed or disabled plugin is named wherever one
of its components is asked for, including on a run it built."""

import importlib
import json
import os
import signal
import sys
import textwrap
import time
import types
from dataclasses import dataclass

import pytest
import torch
import yaml
from pydantic import BaseModel
from toy_plugin import ToyGrouper, spec_dict

import ocf.plugins
from ocf import assembly
from ocf.cli.main import main, run_guarded
from ocf.components import ComponentSpec, Grouper
from ocf.errors import ComponentError, SpecError, UserError
from ocf.hookspecs import hookimpl
from ocf.plugin_guard import PluginInterrupt
from ocf.plugins import Plugins
from ocf.records import Latents
from ocf.spec import resolve


@dataclass
class Dist:
    name: str
    version: str = "1.2"


@dataclass
class ImportingEntryPoint:
    """An entry point whose load() imports a real module, so its import-time code runs there."""

    name: str
    value: str
    dist: Dist

    def load(self):
        return importlib.import_module(self.value)


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """Write plugin modules (``write(name, source)``) into an importable folder; returns
    entry points for them.  The modules are forgotten afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    written = []

    def write(ep_name, source):
        module = f"plugsafe_{ep_name}_{len(written)}"
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        written.append(module)
        return ImportingEntryPoint(ep_name, module, Dist(f"ocf-{ep_name}"))

    yield write
    for m in written:
        sys.modules.pop(m, None)


GOOD = """
    from ocf.components import Objective
    from ocf.hookspecs import hookimpl

    class Entropy(Objective):
        name = "good.entropy"

        def forward(self, state):
            return {}

    @hookimpl
    def ocf_register_components(registry):
        registry.register(Entropy)
"""


def load(entry_points, env=None):
    plugins = Plugins()
    plugins.load_entry_points(env or {}, entry_points=entry_points)
    return plugins


# -- what a plugin raises is contained --------------------------------------------------------


@pytest.mark.parametrize(
    "body, expected",
    [
        ("import sys\nsys.exit(3)", "SystemExit while importing: the plugin called sys.exit(3)"),
        ("import sys\nsys.exit()", "SystemExit while importing: the plugin called sys.exit(None)"),
        ("raise KeyboardInterrupt", "KeyboardInterrupt while importing: the plugin raised KeyboardInterrupt itself"),
        ("class Odd(BaseException): pass\nraise Odd('odd')", "Odd while importing: odd"),
        ("import nonexistent_module_xyz", "ModuleNotFoundError while importing: No module named"),
    ],
)
def test_anything_raised_at_import_fails_only_that_plugin(plugin_dir, body, expected):
    plugins = load([plugin_dir("evil", body), plugin_dir("good", GOOD)])
    assert plugins.info["evil"].status == "failed"
    assert plugins.info["evil"].error.startswith(expected)
    assert plugins.info["good"].status == "ok" and ("objective", "good.entropy") in plugins.registry


@pytest.mark.parametrize("raised", ["SystemExit(0)", "KeyboardInterrupt()", "GeneratorExit()"])
def test_anything_raised_in_a_hook_fails_the_plugin_and_withdraws_its_entries(plugin_dir, raised):
    source = f"""
        from ocf.components import Objective
        from ocf.hookspecs import hookimpl

        class Half(Objective):
            name = "half.one"

            def forward(self, state):
                return {{}}

        @hookimpl
        def ocf_register_components(registry):
            registry.register(Half)
            raise {raised}
    """
    plugins = load([plugin_dir("half", source), plugin_dir("good", GOOD)])
    info = plugins.info["half"]
    assert info.status == "failed" and "in hook ocf_register_components" in info.error
    assert ("objective", "half.one") not in plugins.registry
    assert plugins.info["good"].status == "ok"


def test_a_real_ctrl_c_while_a_plugin_loads_stops_ocf_and_names_the_plugin(plugin_dir):
    slow = plugin_dir("slow", "import os, signal, time\nos.kill(os.getpid(), signal.SIGINT)\ntime.sleep(5)")
    before = signal.getsignal(signal.SIGINT)
    start = time.monotonic()
    with pytest.raises(PluginInterrupt, match=r"plugin 'slow' \(import\).*OCF_DISABLE_PLUGINS=slow"):
        load([slow])
    assert time.monotonic() - start < 4
    assert signal.getsignal(signal.SIGINT) is before  # the guard put the handler back


def test_the_optional_timeout_fails_a_plugin_that_hangs_at_import(plugin_dir):
    hang = plugin_dir("hang", "import time\nwhile True:\n    time.sleep(0.05)")
    start = time.monotonic()
    plugins = load([hang, plugin_dir("good", GOOD)], env={"OCF_PLUGIN_TIMEOUT": "0.3"})
    assert time.monotonic() - start < 5
    assert plugins.info["hang"].status == "failed"
    assert plugins.info["hang"].error == "PluginTimeout while importing: still running after 0.3 s (OCF_PLUGIN_TIMEOUT)"
    assert plugins.info["good"].status == "ok"


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan", "inf"])
def test_a_bad_timeout_is_an_error(value):
    with pytest.raises(UserError, match=f"OCF_PLUGIN_TIMEOUT='{value}': give a positive number of seconds"):
        load([], env={"OCF_PLUGIN_TIMEOUT": value})


# -- hook names and Specs are checked at load -------------------------------------------------


def test_a_misspelled_hook_fails_the_plugin_naming_it():
    mod = types.ModuleType("typo_hooks")
    mod.ocf_register_component = hookimpl(lambda registry: None)
    info = Plugins().add_module(mod, "typo")
    assert info.status == "failed"
    assert "plugin 'typo': ocf_register_component is not an ocf hook; did you mean ocf_register_components?" in (
        info.error
    )


def test_a_hook_without_the_marker_fails_the_plugin():
    mod = types.ModuleType("unmarked_hooks")
    mod.ocf_register_components = lambda registry: None
    info = Plugins().add_module(mod, "unmarked")
    assert info.status == "failed"
    assert "ocf_register_components is not marked @ocf.hookimpl, so ocf would never call it" in info.error


class PlainSpec:
    width = 3


class LooseSpec(BaseModel):  # a pydantic model, but unknown keys would pass silently
    width: int = 3


@pytest.mark.parametrize("spec", [PlainSpec, LooseSpec, None])
def test_a_spec_that_is_not_a_component_spec_fails_registration(spec):
    cls = type("BadSpecGrouper", (Grouper,), {"name": "badspec.grouper", "Spec": spec, "__module__": __name__})
    mod = types.ModuleType("badspec_plugin")
    mod.ocf_register_components = hookimpl(lambda registry: registry.register(cls))
    info = Plugins().add_module(mod, "badspec")
    assert info.status == "failed"
    assert info.error.startswith("RegistryError in hook ocf_register_components: grouper 'badspec.grouper'")
    assert "its Spec must be a pydantic model subclassing ocf.ComponentSpec" in info.error


# -- a failing component names its stage -------------------------------------------------------


class BrokenInit(Grouper):
    name = "bad.grouper"
    needs = ("features.tokens",)
    provides = ("latents.objects",)

    def __init__(self, spec, ctx):
        super().__init__(spec, ctx)
        self.table = {}["missing"]  # a bug: KeyError


class ShapeBug(Grouper):
    name = "bad.shapes"
    needs = ("features.tokens",)
    provides = ("latents.objects",)

    class Spec(ComponentSpec):
        num_slots: int = 2

    def __init__(self, spec, ctx):
        super().__init__(spec, ctx)
        self.q = torch.nn.Parameter(torch.zeros(3, 5))
        ctx.dims["latents.objects"] = 3

    def forward(self, state):
        tokens = state.features.tokens
        attn = torch.einsum("btnc,kc->btnk", tokens, self.q)  # c is 8, q has 5 columns
        return Latents(objects=attn.mean(2))


class TrainBug(ToyGrouper):
    name = "bad.train"

    def forward(self, state):
        if not torch.is_grad_enabled():  # the dry run passes; training fails
            return super().forward(state)
        raise ZeroDivisionError("division by zero in the slot update")


@pytest.fixture
def bad_plugins(toy_plugins):
    mod = types.ModuleType("bad_plugin")
    mod.ocf_register_components = hookimpl(lambda registry: registry.register(BrokenInit, ShapeBug, TrainBug))
    info = toy_plugins.add_module(mod, "bad")
    assert info.status == "ok", info.error
    yield toy_plugins
    toy_plugins.unregister("bad")


def grouped(plugins, grouper):
    d = spec_dict()
    d["model"]["grouper"] = {"type": grouper}
    return resolve(d, plugins.registry)


def test_an_init_that_raises_names_stage_component_plugin_and_line(bad_plugins):
    with pytest.raises(ComponentError) as exc:
        assembly.build(grouped(bad_plugins, "bad.grouper"))
    text = str(exc.value)
    assert text.startswith(
        "model.grouper: grouper bad.grouper (plugin bad) failed while being built (__init__): KeyError: 'missing'"
    )
    assert "test_plugin_safety.py:" in text and 'in __init__: self.table = {}["missing"]' in text


def test_a_dry_run_shape_error_names_stage_component_and_input_shapes(bad_plugins):
    with pytest.raises(SpecError) as exc:
        assembly.build(grouped(bad_plugins, "bad.shapes"))
    text = str(exc.value)
    assert text.startswith(
        "dry run on a batch of shape [2, 1, 3, 8, 8] failed: model.grouper (bad.shapes, plugin bad) failed on "
        "features.tokens [2, 1, 64, 8]: RuntimeError: einsum()"
    )
    assert "in forward: attn = torch.einsum(" in text


def test_a_train_time_error_keeps_its_type_and_carries_the_stage(bad_plugins):
    model = assembly.build(grouped(bad_plugins, "bad.train"))  # the dry run (no grad) passes
    batch = assembly.dummy_batch(model.resolved)
    with pytest.raises(ZeroDivisionError) as exc:
        model(batch)
    stage = exc.value.ocf_stage
    assert stage.startswith("model.grouper (bad.train, plugin bad) failed on features.tokens [2, 1, 64, 8]: ")
    assert "ZeroDivisionError: division by zero in the slot update" in stage
    assert f"ocf: {stage}" in exc.value.__notes__

    def job():
        model(batch)

    assert run_guarded(job) == 1


def test_the_cli_prints_one_screen_without_debug_and_the_traceback_with_it(bad_plugins, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ocf.plugins, "_DEFAULT", bad_plugins)
    d = spec_dict()
    d["model"]["grouper"] = {"type": "bad.grouper"}
    spec = tmp_path / "bad.yaml"
    spec.write_text(yaml.safe_dump(d))
    assert main(["build", str(spec)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.splitlines()) <= 3
    assert err.startswith("ocf: error: model.grouper: grouper bad.grouper (plugin bad) failed while being built")
    assert main(["build", str(spec), "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err

    d["model"]["grouper"] = {"type": "bad.shapes"}
    spec.write_text(yaml.safe_dump(d))
    assert main(["build", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "model.grouper (bad.shapes, plugin bad) failed on features.tokens [2, 1, 64, 8]" in err
    assert "Traceback" not in err


# -- a failed or disabled plugin is named where its components are asked for -------------------

BROKEN = "import nonexistent_dependency_xyz\n"


@pytest.fixture
def with_broken(plugin_dir, monkeypatch):
    """The process-wide plugins: the toy plugin, 'foo' that fails to import, 'off' disabled."""
    import toy_plugin

    plugins = load([plugin_dir("foo", BROKEN), plugin_dir("off", GOOD)], env={"OCF_DISABLE_PLUGINS": "off"})
    plugins.add_module(toy_plugin, "toy")
    monkeypatch.setattr(ocf.plugins, "_DEFAULT", plugins)
    return plugins


def test_ocf_build_names_the_failed_plugin_and_debug_shows_its_import_traceback(with_broken, tmp_path, capsys):
    d = spec_dict()
    d["model"]["grouper"] = {"type": "foo.grouper"}
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(d))
    assert main(["build", str(spec)]) == 2
    err = capsys.readouterr().err
    assert (
        "model.grouper.type: unknown grouper 'foo.grouper': plugin 'foo', which supplies it, failed to load "
        "(ModuleNotFoundError while importing: No module named 'nonexistent_dependency_xyz')" in err
    )
    assert "Traceback" not in err
    assert main(["build", str(spec), "--debug"]) == 2
    err = capsys.readouterr().err
    assert "plugin 'foo' failed to load; its traceback:" in err and "import nonexistent_dependency_xyz" in err


def test_plugins_show_names_the_failed_or_disabled_plugin(with_broken, capsys):
    assert main(["plugins", "show", "foo.grouper"]) == 2
    assert "no component named 'foo.grouper' is available: plugin 'foo', which supplies it, failed to load" in (
        capsys.readouterr().err
    )
    assert main(["plugins", "show", "off.entropy"]) == 2
    assert "plugin 'off', which supplies it, is disabled (OCF_DISABLE_PLUGINS)" in capsys.readouterr().err
    assert main(["plugins", "show", "foo"]) == 0
    out = capsys.readouterr().out
    assert "failed" in out and "(--debug shows its traceback)" in out
    assert main(["plugins", "show", "foo", "--debug"]) == 0
    assert "Traceback" in capsys.readouterr().out


def test_data_make_names_the_failed_plugin(with_broken, tmp_path, capsys):
    assert main(["data", "make", "foo.shapes", "--out", str(tmp_path / "x.h5"), "--n", "2"]) == 2
    assert "unknown dataset 'foo.shapes': plugin 'foo', which supplies it, failed to load" in capsys.readouterr().err
    assert not (tmp_path / "x.h5").exists()


def old_run(tmp_path, grouper, record):
    run = tmp_path / "run"
    run.mkdir()
    d = spec_dict()
    d["model"]["grouper"] = {"type": grouper}
    (run / "spec.yaml").write_text(yaml.safe_dump(d))
    (run / "versions.json").write_text(json.dumps(record))
    return run


@pytest.mark.parametrize("command", ["eval", "viz", "sample"])
def test_commands_on_an_old_run_say_which_plugin_built_it(with_broken, tmp_path, capsys, command):
    run = old_run(
        tmp_path,
        "foo.grouper",
        {"plugin:foo": "ocf-foo 1.2 (ok)", "component:foo.grouper": "foo", "component:toy.encoder": "toy"},
    )
    assert main([command, str(run)]) == 2
    err = capsys.readouterr().err
    assert "unknown grouper 'foo.grouper': plugin 'foo', which supplies it, failed to load" in err
    assert (
        "note: this run was built with plugin 'foo' (ocf-foo 1.2) for 'foo.grouper', which failed to load: "
        "ModuleNotFoundError while importing" in err
    )


def test_an_old_run_whose_plugin_is_gone_says_so(with_broken, tmp_path, capsys):
    run = old_run(tmp_path, "gone.grouper", {"plugin:gone": "ocf-gone 0.3 (ok)"})  # a record without component:
    assert main(["eval", str(run)]) == 2
    err = capsys.readouterr().err
    assert "note: this run was built with plugin 'gone' (ocf-gone 0.3) for 'gone.grouper', which is not installed" in (
        err
    )


def test_a_new_run_records_which_plugin_supplied_each_component(toy_plugins, tmp_path):
    from ocf.run.checkpoints import prepare_run_dir

    resolved = resolve(spec_dict(), toy_plugins.registry)
    run = prepare_run_dir(resolved, str(tmp_path / "r"), resume=False, plugin_info=toy_plugins.info.values())
    record = json.loads((run / "versions.json").read_text())
    assert record["plugin:toy"] == "  (ok)"
    for name in ("toy.encoder", "toy.grouper", "toy.decoder", "toy.mse"):
        assert record[f"component:{name}"] == "toy"


def test_the_signal_handlers_are_untouched_after_loading(plugin_dir):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGALRM)
    load([plugin_dir("good", GOOD)], env={"OCF_PLUGIN_TIMEOUT": "5"})
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGALRM)) == before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_loading_the_shipped_plugins_still_works_in_a_thread():
    """Off the main thread the guard cannot install handlers; loading still works."""
    import threading

    result = {}
    t = threading.Thread(target=lambda: result.update(p=ocf.plugins.load({"OCF_LOAD_PLUGINS": "common"})))
    t.start()
    t.join(60)
    assert result["p"].info["common"].status == "ok"
    assert os.getpid() > 0
