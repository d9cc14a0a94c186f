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
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(target), str(ROOT / "examples" / "ocf-example-plugin")],
        capture_output=True, text=True,
    )
    assert pip.returncode == 0, pip.stderr
    env = {**os.environ, "PYTHONPATH": f"{target}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run([sys.executable, "-m", "ocf", "plugins", "--json"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    by_name = {p["name"]: p for p in json.loads(out.stdout)}
    assert by_name["example"]["status"] == "ok"
    assert by_name["example"]["source"] == "third-party"
    assert {"kind": "objective", "name": "example.mask_entropy"} in by_name["example"]["components"]

    spec = tmp_path / "mixed.yaml"
    spec.write_text((ROOT / "configs" / "slot_attention" / "shapes_32.yaml").read_text().replace(
        "    - {type: mse}", "    - {type: mse}\n    - {type: example.mask_entropy, weight: 0.01}"))
    build = subprocess.run([sys.executable, "-m", "ocf", "build", str(spec)], env=env, capture_output=True, text=True, cwd=tmp_path)
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
