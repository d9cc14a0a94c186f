"""``ocf bench``: how fast a spec trains and evaluates on this machine, and how close it
comes to the machine's limit.

Measured in one process, so the ratios are comparable even when absolute timings drift:

- **data**: samples/s of batch assembly from the dataset (the loader alone), beside
  the samples/s the model consumes — a starved model shows data slower than training;
- **train**: median seconds per optimisation step after warm-up (the training loop's own
  step: forward, loss, finiteness check, backward, clip, optimizer and schedule), steps/s
  and samples/s;
- **flops**: floating-point operations of one training step, counted by
  ``torch.utils.flop_counter.FlopCounterMode`` (matmuls and convolutions; elementwise work
  is not counted), the achieved FLOP/s, and that as a fraction of this machine's dense
  matmul peak measured in the same run (in the dtype ``train.precision`` computes matmuls in,
  same threads; on CUDA large products, timed between synchronisations, TF32 as
  ``train.tf32`` sets it);
- **eval**: median seconds per evaluation batch (``eval.batch_size``, no gradients);
- **memory**: peak resident set size of the process (CPU) or the allocator peak (CUDA).
"""

from __future__ import annotations

import functools
import platform
import resource
import statistics
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from ocf.assembly import build
from ocf.data.batches import take_batch
from ocf.records import Batch
from ocf.run.data import first_batch, open_split, registry_of
from ocf.run.setup import Optimisation, check_precision, checkpoint_stages, pick_device, speed_options, train_step
from ocf.spec import ResolvedSpec


def matmul_peak(
    device: torch.device, n: int | None = None, seconds: float = 1.0, dtype: torch.dtype = torch.float32
) -> float:
    """Dense matmul FLOP/s on ``device`` in ``dtype``: the best of repeated n×n products
    (n = 1024 on a CPU; on CUDA n = 8192 and 10 products per timing, between synchronisations,
    so kernel launches and clocks ramping up do not count)."""
    cuda = device.type == "cuda"
    n = n or (8192 if cuda else 1024)
    reps = 10 if cuda else 1
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    best, start = float("inf"), time.perf_counter()
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        _sync(device)
        best = min(best, (time.perf_counter() - t0) / reps)
    return 2 * n**3 / best


#: the dtype matmuls run in under each ``train.precision``
PRECISION_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run(resolved: ResolvedSpec, *, steps: int = 20, warmup: int = 3, progress: bool = True, profile: int = 0) -> dict:
    """Measure a resolved spec; returns the record ``ocf bench`` prints.

    The timed step is the training loop's own (:func:`ocf.run.setup.train_step`).
    ``profile > 0`` also runs a few training steps under ``torch.profiler`` after the
    timed ones and stores the ``profile`` most expensive operators (by self CPU time,
    with their share of the profiled time) under ``record['profile']``."""
    spec = resolved.spec
    t = spec.train
    if t.threads:
        torch.set_num_threads(t.threads)
    device = pick_device(t)
    check_precision(t, device)
    torch.manual_seed(t.seed)
    ds = open_split(spec, spec.data.train_split, registry_of(resolved))
    draw = RandomBatches(ds, t.batch_size, spec.data.frames, t.seed)
    data_times = [_seconds(draw, i) for i in range(max(steps, 5))]  # data alone
    model = build(resolved, dry_run=False).to(device).train()
    checkpoint_stages(model, t.checkpoint_stages)
    bench = _Stepper(model, speed_options(model, t, device), Optimisation.create(model, t), t, device)
    batches = [draw(i).to(device) for i in range(min(steps + warmup, 8))]
    counter = FlopCounterMode(display=False)
    with counter:  # the eager model: compiled graphs hide their operations from the counter
        bench.step(batches[0], eager=True)
    flops = counter.get_total_flops()
    step_times, first_step = _time_steps(bench, batches, steps, warmup, progress)
    hot = hot_operators(functools.partial(bench.step, batches[0]), top=profile, steps=3) if profile else None
    eval_batch = first_batch(resolved, spec.eval.split, spec.eval.batch_size).to(device)
    eval_sec = _time_eval(model, eval_batch, steps, device)
    sec, data_sec = statistics.median(step_times), statistics.median(data_times)
    peak_mb = peak_memory_mb(device)  # before the matmul peak's large products
    record = {
        "spec": spec.name or "",
        "batch_size": t.batch_size,
        "steps_measured": steps,
        "train": {
            "sec_per_step": sec,
            "steps_per_s": 1 / sec,
            "samples_per_s": t.batch_size / sec,
            "first_step_s": first_step,
        },
        "options": _options(t),
        "data": {"sec_per_batch": data_sec, "samples_per_s": t.batch_size / data_sec, "starved": data_sec > sec},
        "flops": _flops(flops, sec, device, PRECISION_DTYPES[t.precision]),
        "eval": {
            "batch_size": eval_batch.frames.shape[0],
            "sec_per_batch": eval_sec,
            "samples_per_s": eval_batch.frames.shape[0] / eval_sec,
        },
        "memory": {
            "peak_mb": peak_mb,
            "kind": "cuda allocator peak" if device.type == "cuda" else "process peak RSS",
        },
        "machine": _machine(device),
        "precision": t.precision,
    }
    if hot is not None:
        record["profile"] = hot
    return record


def _options(t) -> dict:
    keys = ("precision", "channels_last", "compile", "tf32", "accumulate", "checkpoint_stages")
    return {k: list(v) if isinstance(v := getattr(t, k), list) else v for k in keys}


def _machine(device: torch.device) -> dict:
    return {
        "device": str(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": _cpu_name(),
    }


class RandomBatches:
    """Batch ``i``: ``batch_size`` samples drawn with replacement (a seeded generator, in
    call order) and a random window from (seed, i), as training cuts them."""

    def __init__(self, ds, batch_size: int, frames: int, seed: int) -> None:
        self.ds, self.batch_size, self.frames, self.seed = ds, batch_size, frames, seed
        self.gen = torch.Generator().manual_seed(seed)

    def __call__(self, i: int) -> Batch:
        idx = torch.randint(0, len(self.ds), (self.batch_size,), generator=self.gen).tolist()
        return take_batch(self.ds, idx, self.frames, seed=self.seed, step=i, random_window=True)


class _Stepper:
    """The training step on a fixed model and optimisation; ``eager`` bypasses
    ``torch.compile`` (for the FLOP counter)."""

    def __init__(self, model: torch.nn.Module, net: torch.nn.Module, opt: Optimisation, t, device) -> None:
        self.model, self.net, self.opt, self.t, self.device = model, net, opt, t, device
        self.count = 0

    def step(self, batch: Batch, eager: bool = False) -> None:
        train_step(self.model if eager else self.net, batch, self.opt, self.t, self.device, step=self.count)
        self.count += 1


def _seconds(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def _time_steps(
    bench: _Stepper, batches: list[Batch], steps: int, warmup: int, progress: bool
) -> tuple[list[float], float]:
    """Seconds of each step after ``warmup``, and of the first (with compilation)."""
    bar = range(warmup + steps)
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(bar, desc="bench", file=sys.stderr, dynamic_ncols=True)
    step_times, first_step = [], 0.0
    for i in bar:
        batch = batches[i % len(batches)]
        _sync(bench.device)
        t0 = time.perf_counter()
        bench.step(batch)
        _sync(bench.device)
        if i == 0:
            first_step = time.perf_counter() - t0  # includes torch.compile's compilation
        if i >= warmup:
            step_times.append(time.perf_counter() - t0)
    return step_times, first_step


def _time_eval(model: torch.nn.Module, batch: Batch, steps: int, device: torch.device) -> float:
    """Median seconds of an evaluation forward pass (no gradients), after one warm-up."""
    model.eval()
    times = []
    with torch.no_grad():
        for i in range(max(2, min(5, steps // 4)) + 1):
            _sync(device)
            t0 = time.perf_counter()
            model(batch, losses=False)
            _sync(device)
            if i:
                times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _flops(per_step: float, sec: float, device: torch.device, dtype: torch.dtype = torch.float32) -> dict:
    peak = matmul_peak(device, dtype=dtype)
    achieved = per_step / sec
    return {
        "per_step": per_step,
        "achieved_per_s": achieved,
        "machine_matmul_peak_per_s": peak,
        "peak_dtype": str(dtype).removeprefix("torch."),
        "utilisation": achieved / peak,
    }


def hot_operators(fn, *, top: int = 15, steps: int = 3) -> list[dict]:
    """Run ``fn`` ``steps`` times under ``torch.profiler`` and return the ``top``
    operators by self CPU time: name, calls, self time in ms per step and its share."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            fn()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return [
        {
            "op": e.key,
            "calls_per_step": e.count / steps,
            "self_ms_per_step": e.self_cpu_time_total / 1000 / steps,
            "share": e.self_cpu_time_total / total,
        }
        for e in events[:top]
    ]


def _cpu_name() -> str:
    try:
        return next(row.split(":", 1)[1].strip() for row in open("/proc/cpuinfo") if row.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()
