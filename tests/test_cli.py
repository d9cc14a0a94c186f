"""The CLI: exit codes and messages of the STYLE.md error catalogue, plugins listing."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ocf.cli import main

ROOT = Path(__file__).resolve().parents[1]
SA = ROOT / "configs" / "slot_attention" / "shapes_32.yaml"


def run(args, capsys):
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_build_prints_table(capsys):
    code, out, err = run(["build", str(SA)], capsys)
    assert code == 0, err
    assert "slot_attention.grouper" in out and "spatial_broadcast" in out
    assert "objects [2, 5, 64]" in out


def test_bad_value_exits_2_naming_the_key_without_traceback(capsys):
    code, out, err = run(["build", str(SA), "model.grouper.num_slots=0"], capsys)
    assert code == 2
    assert "model.grouper.num_slots: Input should be greater than" in err and "got 0" in err
    assert "Traceback" not in err


def test_unknown_key_and_unknown_component(tmp_path, capsys):
    code, _, err = run(["build", str(SA), "model.grouper.num_slotz=3"], capsys)
    assert code == 2 and "model.grouper.num_slotz: unknown key" in err
    code, _, err = run(["build", str(SA), "model.grouper.type=slot_attention.groupr"], capsys)
    assert code == 2 and "did you mean slot_attention.grouper" in err


def test_chain_gap(tmp_path, capsys):
    spec = tmp_path / "gap.yaml"
    spec.write_text(SA.read_text().replace("objectives:\n    - {type: mse}", "objectives:\n    - {type: kl}"))
    code, _, err = run(["build", str(spec)], capsys)
    assert code == 2
    assert "objective kl needs prior.terms; the spec has no prior" in err


def test_python_object_yaml_is_refused(tmp_path, capsys):
    spec = tmp_path / "evil.yaml"
    spec.write_text("!!python/object/apply:os.system ['touch pwned']\n")
    code, _, err = run(["build", str(spec)], capsys)
    assert code == 2 and "YAML tag not allowed" in err
    assert not (Path.cwd() / "pwned").exists()


def test_missing_spec_file(capsys):
    code, _, err = run(["build", "no/such/spec.yaml"], capsys)
    assert code == 2 and "no such spec file" in err


def test_plugins_json_lists_built_ins(capsys):
    code, out, _ = run(["plugins", "--json"], capsys)
    assert code == 0
    by_name = {p["name"]: p for p in json.loads(out)}
    assert by_name["common"]["status"] == "ok" and by_name["common"]["source"] == "built-in"
    assert {"kind": "grouper", "name": "slot_attention.grouper"} in by_name["slot_attention"]["components"]


def test_plugins_show_component_contract(capsys):
    code, out, _ = run(["plugins", "show", "slot_attention.grouper"], capsys)
    assert code == 0
    assert "needs:    features.tokens" in out and "num_slots" in out
    code, _, err = run(["plugins", "show", "slot_atention"], capsys)
    assert code == 2 and "did you mean slot_attention" in err


def test_debug_shows_traceback(capsys):
    code, _, err = run(["--debug", "build", str(SA), "model.grouper.num_slots=0"], capsys)
    assert code == 2 and "Traceback" in err


def test_broken_plugin_is_listed_and_others_work(tmp_path):
    """A plugin whose import fails is reported by name; built-ins keep working."""
    dist = tmp_path / "broken_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[ocf]\nbroken = ocf_broken_plugin\n")
    (tmp_path / "ocf_broken_plugin.py").write_text("raise ImportError('needs a library that is not installed')\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run([sys.executable, "-m", "ocf", "plugins", "--json"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    by_name = {p["name"]: p for p in json.loads(out.stdout)}
    assert by_name["broken"]["status"] == "failed"
    assert "needs a library that is not installed" in by_name["broken"]["error"]
    assert by_name["slot_attention"]["status"] == "ok"
    build = subprocess.run([sys.executable, "-m", "ocf", "build", str(SA)], env=env, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr


def test_bench_reports_speed_flops_and_memory(tmp_path, capsys):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "data": {
                    "dataset": "shapes",
                    "path": str(tmp_path / "s.h5"),
                    "resolution": [16, 16],
                    "generate": {"n": 40, "seed": 0, "options": {"resolution": 16}},
                },
                "model": {
                    "encoder": {"type": "cnn", "channels": [8, 8]},
                    "grouper": {"type": "slot_attention.grouper", "num_slots": 3, "slot_dim": 8, "mlp_hidden": 16},
                    "decoder": {"type": "spatial_broadcast", "channels": [8, 8]},
                    "objectives": [{"type": "mse"}],
                },
                "train": {"batch_size": 4},
                "eval": {"batch_size": 4},
            }
        )
    )
    code, out, err = run(
        ["bench", str(spec), "--steps", "3", "--warmup", "1", "--json", "--out", str(tmp_path / "b.json")], capsys
    )
    assert code == 0, err
    r = json.loads(out)
    assert r == json.loads((tmp_path / "b.json").read_text())
    assert r["train"]["steps_per_s"] > 0 and r["data"]["samples_per_s"] > 0 and r["eval"]["samples_per_s"] > 0
    assert r["flops"]["per_step"] > 1e5 and 0 < r["flops"]["utilisation"] < 1.5
    assert r["memory"]["peak_mb"] > 10
    code, out, err = run(
        ["bench", str(spec), "train.channels_last=true", "--steps", "2", "--warmup", "0", "--json"], capsys
    )
    cl = json.loads(out)
    assert code == 0 and cl["options"]["channels_last"] and cl["flops"]["per_step"] == r["flops"]["per_step"]
    code, _, err = run(["bench", str(spec), "--steps", "0"], capsys)
    assert code == 2 and "--steps" in err


def test_console_script_and_module_entry():
    out = subprocess.run([sys.executable, "-m", "ocf", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("ocf ")
    exe = Path(sys.executable).parent / "ocf"
    if exe.exists():
        out = subprocess.run([str(exe), "--version"], capture_output=True, text=True)
        assert out.returncode == 0
    else:
        pytest.fail(f"console script {exe} was not installed")
