"""The example third-party plugin installs as a package, is discovered through its entry
point, and mixes with built-ins in a spec."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_example_plugin_is_discovered_and_builds(tmp_path):
    target = tmp_path / "site"
    pip = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(ROOT / "examples" / "ocf-example-plugin"),
        ],
        capture_output=True,
        text=True,
    )
    assert pip.returncode == 0, pip.stderr
    env = {**os.environ, "PYTHONPATH": f"{target}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run(
        [sys.executable, "-m", "ocf", "plugins", "--json"], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    by_name = {p["name"]: p for p in json.loads(out.stdout)}
    assert by_name["example"]["status"] == "ok"
    assert by_name["example"]["source"] == "third-party"
    assert {"kind": "objective", "name": "example.mask_entropy"} in by_name["example"]["components"]

    spec = tmp_path / "mixed.yaml"
    spec.write_text(
        (ROOT / "configs" / "slot_attention" / "shapes_32.yaml")
        .read_text()
        .replace("    - {type: mse}", "    - {type: mse}\n    - {type: example.mask_entropy, weight: 0.01}")
    )
    build = subprocess.run(
        [sys.executable, "-m", "ocf", "build", str(spec)], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert build.returncode == 0, build.stderr
    assert "example.mask_entropy" in build.stdout and "mask_entropy []" in build.stdout


def test_example_component_conforms():
    sys.path.insert(0, str(ROOT / "examples" / "ocf-example-plugin"))
    try:
        from ocf_example import MaskEntropy

        from ocf.testing import check_component

        terms = check_component(MaskEntropy)
        assert terms["mask_entropy"].item() > 0
    finally:
        sys.path.remove(str(ROOT / "examples" / "ocf-example-plugin"))


def test_a_plugin_in_the_old_form_still_loads_and_works_with_a_deprecation_warning(tmp_path):
    """A plugin written for the previous release: ``registry.add(kind, name, cls)``, no
    ``name`` on the class, ``self.registered_name`` in its code."""
    import types

    import pytest
    import torch
    from toy_plugin import spec_dict

    from ocf import assembly
    from ocf.components import Objective
    from ocf.hookspecs import hookimpl
    from ocf.spec import resolve

    class OldStyle(Objective):
        needs = ("rendering.recon",)

        def forward(self, state):
            return {f"{self.registered_name}.abs": state.rendering.recon.abs().mean()}

    old = types.ModuleType("old")
    old.ocf_register_components = hookimpl(lambda registry: registry.add("objective", "old.abs", OldStyle))
    import toy_plugin

    from ocf.plugins import Plugins

    plugins = Plugins()
    plugins.add_module(toy_plugin, "toy")
    with pytest.warns(
        DeprecationWarning,
        match=r"registry.add\('objective', 'old.abs', ...\) is deprecated.*"
        r"declare name = 'old.abs' on the class and call registry.register\(Cls\)",
    ):
        info = plugins.add_module(old, "old")
    assert info.status == "ok", info.error
    assert plugins.registry.get("objective", "old.abs") is OldStyle
    assert OldStyle.name == ""  # the loader no longer writes onto the class
    d = spec_dict()
    d["model"]["objectives"].append({"type": "old.abs"})
    model = assembly.build(resolve(d, plugins.registry), dry_run=False)
    with pytest.warns(DeprecationWarning, match="registered_name is deprecated"):
        state = model(assembly.dummy_batch(model.resolved))
    assert set(state.losses) == {"mse", "old.abs.abs"}
    assert torch.isfinite(state.losses["old.abs.abs"])
    assert model.objectives[1].label == "objective old.abs"
