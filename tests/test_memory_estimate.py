"""The memory estimate ``ocf build`` makes before allocating (ocf.run.memory): huge specs are
refused quickly with the estimate and the limit and without a large allocation, the shipped
CPU specs fit, and the estimate is within a factor of 3 of what a real training step takes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_bit_identical import SPECS as CPU_SPECS

from ocf import plugins
from ocf import spec as spec_mod
from ocf.cli import main
from ocf.errors import UserError
from ocf.run.memory import GB, check_memory, estimate, memory_limit, optimizer_states

ROOT = Path(__file__).resolve().parents[1]
SA = ROOT / "configs" / "slot_attention" / "shapes_32.yaml"


def load(path: Path, *overrides: str):
    return spec_mod.load(str(path), plugins.default().registry, list(overrides))


def child(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT
    )


def test_parameter_bytes_count_weights_gradients_and_adam_state():
    resolved = load(SA)
    est = estimate(resolved)
    assert est is not None and est.activation_bytes is not None and est.note == ""
    assert est.parameters == 128_836  # what `ocf build` reports as total parameters
    assert optimizer_states(resolved.spec.train) == 2
    assert est.parameter_bytes == 128_836 * 4 * (1 + 1 + 2)
    frozen = estimate(load(SA, "train.freeze=[encoder]"))
    encoder = sum(p.numel() for p in _real_model(resolved).stages()["encoder"].parameters())
    assert frozen.parameter_bytes == est.parameter_bytes - encoder * 4 * 3  # no gradient, no Adam state


def _real_model(resolved):
    from ocf.assembly import build

    return build(resolved, dry_run=False)


def test_activations_scale_with_the_batch_size():
    small = estimate(load(SA, "train.batch_size=4"))
    large = estimate(load(SA, "train.batch_size=32"))
    assert large.activation_bytes == 8 * small.activation_bytes > 0
    assert large.parameter_bytes == small.parameter_bytes


@pytest.mark.parametrize("override", ["model.grouper.num_slots=100000", "data.resolution=[4096,4096]"])
def test_a_huge_spec_is_refused_quickly_without_allocating(override):
    """``ocf build`` in a child process: exit 2, the estimate and the limit in the message, the
    check under 5 s (plugins loaded beforehand), and the peak RSS of the process small."""
    proc = child(
        f"""
        import time, sys
        from ocf import plugins
        from ocf.cli import main
        plugins.default()
        t0 = time.perf_counter()
        code = main(["build", {str(SA)!r}, {override!r}])
        took = time.perf_counter() - t0
        hwm = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")][0] * 1024
        print(f"RESULT {{code}} {{took}} {{hwm}}")
        """
    )
    result = [line for line in proc.stdout.splitlines() if line.startswith("RESULT")]
    assert result, proc.stderr[-3000:]
    code, took, hwm = result[0].split()[1:]
    assert int(code) == 2, proc.stderr[-3000:]
    assert float(took) < 15  # seconds: generous for a loaded 2-core machine
    assert int(hwm) < 2 * GB  # torch and the plugins take well under that; the spec asks for terabytes
    assert "Traceback" not in proc.stderr
    err = proc.stderr
    assert "ocf: error: train.batch_size: a training step needs about " in err
    assert " GB at batch 32), more than the limit of " in err and "(the RAM available on this machine)" in err


def test_memory_limit_gb_sets_the_limit_and_is_named(capsys):
    with pytest.raises(UserError) as exc:
        check_memory(load(SA, "train.memory_limit_gb=0.05"))
    msg = str(exc.value)
    assert msg.startswith("train.batch_size: a training step needs about 0.43")
    assert "more than the limit of 0.05 GB (train.memory_limit_gb)" in msg
    assert main(["build", str(SA), "train.memory_limit_gb=0.05"]) == 2
    assert "train.memory_limit_gb" in capsys.readouterr().err
    assert memory_limit(load(SA, "train.memory_limit_gb=3").spec.train) == (3 * 10**9, "train.memory_limit_gb")
    for bad in ("0", "-1", "nan", "inf"):
        assert main(["build", str(SA), f"train.memory_limit_gb={bad}"]) == 2
        assert "train.memory_limit_gb" in capsys.readouterr().err


def test_build_prints_the_estimate_and_the_limit(capsys):
    assert main(["build", str(SA)]) == 0
    out = capsys.readouterr().out
    line = [x for x in out.splitlines() if x.startswith("memory per training step:")]
    assert line and "about 0.43" in line[0] and "activations" in line[0] and "at batch 32" in line[0]
    assert "limit " in line[0] and "(the RAM available on this machine)" in line[0]


def test_a_model_that_cannot_run_on_meta_tensors_falls_back_to_parameters(capsys):
    spec = ROOT / "configs" / "rotating" / "4shapes_32_cpu.yaml"
    est = estimate(load(spec))
    assert est.activation_bytes is None and "cannot run on shapes alone" in est.note
    assert est.total == est.parameter_bytes > 0
    assert main(["build", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "memory per training step: at least " in out and "activations not counted" in out


@pytest.mark.parametrize("name", CPU_SPECS)
def test_every_shipped_cpu_spec_is_under_its_limit(name):
    resolved = load(ROOT / "configs" / name)
    limit, _ = memory_limit(resolved.spec.train)
    est = check_memory(resolved)  # does not raise
    assert est is not None and limit is not None and est.total < limit


def test_the_estimate_is_within_a_factor_of_3_of_a_real_step():
    """Peak RSS growth (VmHWM after resetting it) over building the model, the optimizer and
    one training step, against the estimate."""
    proc = child(
        f"""
        import torch
        from ocf import assembly, plugins, spec
        from ocf.run.memory import estimate
        from ocf.run.setup import Optimisation, train_step

        def status(key):
            return [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key)][0] * 1024

        resolved = spec.load({str(SA)!r}, plugins.default().registry, [])
        est = estimate(resolved).total
        torch.manual_seed(0)
        batch = assembly.dummy_batch(resolved, resolved.spec.train.batch_size)
        open("/proc/self/clear_refs", "w").write("5")  # reset VmHWM to the current RSS
        before = status("VmRSS")
        model = assembly.build(resolved, dry_run=False)
        opt = Optimisation.create(model, resolved.spec.train)
        train_step(model, batch, opt, resolved.spec.train, torch.device("cpu"), step=0)
        print("RESULT", est, status("VmHWM") - before)
        """
    )
    result = [line for line in proc.stdout.splitlines() if line.startswith("RESULT")]
    assert result, proc.stderr[-3000:]
    est, measured = map(int, result[0].split()[1:])
    assert measured > 50e6  # the step is large enough to measure
    assert measured / 3 < est < measured * 3, (est, measured)
