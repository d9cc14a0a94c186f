"""benchmarks/gpu_check.py --smoke: the GPU check's code runs end to end on the CPU at tiny
sizes and records every paper-size spec, the learning check and the DINOSAUR item."""

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks import gpu_check

ROOT = Path(__file__).resolve().parents[1]


def test_paper_specs_are_listed_from_the_configs():
    specs = [p.relative_to(ROOT).as_posix() for p in gpu_check.paper_specs()]
    for name in ("configs/genesis/paper_64.yaml", "configs/slot_attention/clevr_128.yaml"):
        assert name in specs
    assert any("movi_c_" in s for s in specs)
    assert "configs/slot_attention/shapes_32.yaml" not in specs and specs == sorted(specs)


def test_smoke_run_records_every_part(tmp_path):
    specs = ["configs/slot_attention/tetrominoes_35.yaml", "configs/rotating/4shapes_paper.yaml"]
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_check", "--smoke", "--out", str(tmp_path / "check"), "--specs", *specs],
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    record = json.loads((tmp_path / "check.json").read_text())
    assert record["smoke"] and record["ok"]
    assert [r["spec"] for r in record["specs"]] == specs
    for r in record["specs"]:
        assert r["ok"] and r["steps_per_s"] > 0 and r["peak_mb"] > 0 and r["batch_size"] == 1, r
    learn = record["learning"]
    assert learn["steps"] == 3 and learn["resolution"] == [32, 32] and len(learn["history"]) == 1
    assert -1 <= learn["best_fg_ari"] <= 1
    dino = record["dinosaur"]  # both the plugin and `ocf features` are built in: the item runs
    assert "skipped" not in dino and dino["ok"], dino
    assert "model.encoder.cache=features" in dino["commands"][1]
    md = (tmp_path / "check.md").read_text()
    assert "tetrominoes_35.yaml | 1 | 32×32 × 1 |" in md and "Slot Attention learning check" in md


def test_a_failing_spec_is_recorded_and_the_check_fails(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ndata: {dataset: shapes, path: x.h5}\nmodel: {encoder: {type: no_such_encoder}}\n")
    record = gpu_check.spec_steps(bad, gpu_check.plugins.default().registry, smoke=True, steps=1)
    assert not record["ok"] and "no_such_encoder" in record["error"]
