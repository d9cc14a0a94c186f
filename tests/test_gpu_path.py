"""The GPU path, tested on a CPU: gradient accumulation, activation checkpointing, fp16's
gradient scaler (with GECO and clipping, and its state across a resume), precision checks,
the CUDA device of each torchrun process, the pinned prefetch of batches and the matmul
peak of `ocf bench`.  CUDA-only calls are replaced by stand-ins that record how they were
called."""

import contextlib
import threading
import types
from pathlib import Path

import pytest
import torch
import torch.distributed as td
from test_train import tiny_spec, write_spec
from torch import nn

from ocf import distributed as dist
from ocf import plugins
from ocf.assembly import build, dummy_batch
from ocf.cli import main
from ocf.data import prefetch
from ocf.errors import CheckpointError, UserError
from ocf.records import Batch
from ocf.run import bench, setup, train
from ocf.run.checkpoints import check_resume_entries, load_checkpoint
from ocf.spec import TrainSpec, resolve

ROOT = Path(__file__).resolve().parents[1]


class PixelModel(nn.Module):
    """A per-sample model (no batch statistics, no randomness): conv, pooled linear, two
    loss terms that are means over samples."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4, 3)

    def forward(self, batch: Batch):
        x = batch.frames[:, 0]
        h = torch.relu(self.conv(x))
        out = self.head(h.mean((2, 3)))
        mse = ((out - x.mean((2, 3))) ** 2).mean()
        reg = (h**2).mean()
        return types.SimpleNamespace(losses={"mse": mse, "reg": reg})


def frames_batch(n: int = 8, seed: int = 1) -> Batch:
    g = torch.Generator().manual_seed(seed)
    extras = {"counts": torch.arange(n)}
    return Batch(frames=torch.rand(n, 1, 3, 8, 8, generator=g), masks=torch.zeros(n, 1, 8, 8).long(), extras=extras)


def one_step(t: TrainSpec, batch: Batch, steps: int = 1):
    model = PixelModel()
    opt = setup.Optimisation.create(model, t)
    results = [setup.train_step(model, batch, opt, t, torch.device("cpu"), step=i) for i in range(steps)]
    return model, opt, results[-1]


@pytest.mark.parametrize("accumulate", [2, 3])
@pytest.mark.parametrize(
    "geco",
    [
        None,
        {"term": "mse", "goal": 0.01, "step_size": 0.1},
        {  # two named constraints, each with its own beta (as SRI's spec)
            "a": {"term": "mse", "goal": 0.01, "step_size": 0.1, "penalises": []},
            "b": {"term": "reg", "goal": 0.5, "step_size": 0.1, "penalises": []},
        },
    ],
)
def test_accumulation_matches_the_whole_batch(accumulate, geco):
    """accumulate=N splits the step's batch into N micro-batches (uneven for 3 of 8) whose
    weighted gradients add up to the whole batch's: same gradients, parameters, loss, GECO β."""
    kw = {"batch_size": 8, "grad_clip": 0.5, "optimizer": {"lr": 1e-2}, "geco": geco}
    whole_model, whole_opt, whole = one_step(TrainSpec(**kw), frames_batch(), steps=3)
    parts_model, parts_opt, parts = one_step(TrainSpec(**kw, accumulate=accumulate), frames_batch(), steps=3)
    for (name, a), b in zip(whole_model.named_parameters(), parts_model.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-7, rtol=1e-5), name
        assert torch.allclose(a, b, atol=1e-6), name
        assert not torch.equal(a, PixelModel().state_dict()[name])  # it trained
    assert torch.allclose(whole.loss, parts.loss, rtol=1e-5)
    assert torch.allclose(whole.grad_norm, parts.grad_norm, rtol=1e-5)
    assert whole.terms.keys() == parts.terms.keys()
    if geco:
        betas = whole_opt.geco.log_values()
        assert betas == pytest.approx(parts_opt.geco.log_values(), rel=1e-5)
        assert all(b != 1.0 for b in betas.values()) and len(betas) == (2 if "a" in geco else 1)


def test_accumulation_split_keeps_every_sample_and_refuses_empty_parts():
    parts = setup.micro_batches(frames_batch(5), 2)
    assert [p.frames.shape[0] for p in parts] == [3, 2]
    assert torch.equal(torch.cat([p.extras["counts"] for p in parts]), torch.arange(5))
    assert torch.equal(torch.cat([p.frames for p in parts]), frames_batch(5).frames)
    with pytest.raises(UserError, match="train.accumulate is 6, more micro-batches than the 5 samples"):
        setup.micro_batches(frames_batch(5), 6)


def test_accumulation_under_ddp_syncs_only_the_last_micro_batch():
    calls = []

    class FakeDDP(PixelModel):
        @contextlib.contextmanager
        def no_sync(self):
            calls.append("no_sync")
            yield

    t = TrainSpec(batch_size=8, accumulate=4)
    model = FakeDDP()
    setup.train_step(model, frames_batch(), setup.Optimisation.create(model, t), t, torch.device("cpu"), step=0)
    assert calls == ["no_sync"] * 3


def slot_model(tmp_path, value_range=(0, 1)):
    d = tiny_spec(tmp_path / "unused.h5")
    d["data"]["value_range"] = list(value_range)
    resolved = resolve(d, plugins.default().registry)
    torch.manual_seed(0)
    return build(resolved, dry_run=False), dummy_batch(resolved, 4)


def gradients(model, batch, seed=3):
    model.train()
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)  # the slot initialisation draws noise
    state = model(batch)
    sum(v.sum() for v in state.losses.values()).backward()
    return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("value_range", [(0, 1), (-1, 1)])
def test_activation_checkpointing_gives_the_same_gradients(tmp_path, value_range):
    """Recomputed stages see the state as it was (with value_range [-1, 1] the model replaces
    state.batch after the stages ran) and the RNG as it was (slot noise)."""
    model, batch = slot_model(tmp_path, value_range)
    plain = gradients(model, batch)
    setup.checkpoint_stages(model, ["encoder", "grouper", "decoder"])
    recomputed = gradients(model, batch)
    assert plain.keys() == recomputed.keys() and len(plain) > 5
    for k in plain:
        assert torch.allclose(plain[k], recomputed[k], atol=1e-6, rtol=1e-5), k
    with torch.no_grad():  # evaluation runs the stages plainly
        model.eval()
        assert model(batch).losses["mse"] >= 0


def test_activation_checkpointing_saves_activations(tmp_path):
    model, batch = slot_model(tmp_path)
    model.train()

    def saved_bytes():
        total = []

        def pack(x):
            total.append(x.numel() * x.element_size())
            return x

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
            state = model(batch)
        return sum(total), state

    before, _ = saved_bytes()
    setup.checkpoint_stages(model, ["encoder", "decoder"])
    after, _ = saved_bytes()
    assert after < before / 2


def test_activation_checkpointing_composes_with_compile_and_names_bad_stages(tmp_path):
    model, batch = slot_model(tmp_path)
    plain = gradients(model, batch)
    setup.checkpoint_stages(model, ["decoder"])
    compiled = torch.compile(model, backend="eager")
    torch._dynamo.reset()
    again = {k.removeprefix("_orig_mod."): v for k, v in gradients(compiled, batch).items()}
    assert plain.keys() == again.keys()
    for k in plain:
        assert torch.allclose(plain[k], again[k], atol=1e-6, rtol=1e-5), k
    with pytest.raises(UserError, match="train.checkpoint_stages: no stage 'decoderr'; the model has encoder"):
        setup.checkpoint_stages(model, ["decoderr"])


def test_fp16_scaler_unscales_before_clipping_with_geco():
    geco = {"term": "mse", "goal": 0.01}
    t16 = TrainSpec(batch_size=8, grad_clip=1e6, precision="fp16", geco=geco)
    t32 = TrainSpec(batch_size=8, grad_clip=1e6, geco=geco)
    model = PixelModel()
    opt = setup.Optimisation.create(model, t16)
    assert opt.scaler is not None and opt.scaler.get_scale() == 65536.0  # torch's default
    opt.scaler.load_state_dict({**opt.scaler.state_dict(), "scale": 1024.0})  # no fp16 overflow here
    half = setup.train_step(model, frames_batch(), opt, t16, torch.device("cpu"), step=0)
    _, _, full = one_step(t32, frames_batch())
    assert opt.scaler.get_scale() == 1024.0  # the step was taken
    # the norm clipped (and logged) is the true gradient's, not the scaled one (65536 times larger)
    assert float(half.grad_norm) == pytest.approx(float(full.grad_norm), rel=0.05)
    assert TrainSpec().precision == "fp32" and setup.Optimisation.create(PixelModel(), TrainSpec()).scaler is None


def test_fp16_overflow_skips_the_update_and_lowers_the_scale():
    t = TrainSpec(batch_size=8, precision="fp16", optimizer={"lr": 1e-2})
    model = PixelModel()
    opt = setup.Optimisation.create(model, t)
    opt.scaler.load_state_dict({**opt.scaler.state_dict(), "scale": 3e38})
    before = {k: v.clone() for k, v in model.state_dict().items()}
    setup.train_step(model, frames_batch(), opt, t, torch.device("cpu"), step=0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert opt.scaler.get_scale() == pytest.approx(1.5e38)


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    return tmp_path_factory.mktemp("gpu_data") / "shapes16.h5"


def test_fp16_resume_restores_the_scaler_exactly(tmp_path, data_path):
    reg = plugins.default().registry
    spec = resolve(tiny_spec(data_path, steps=4, image_every=0, precision="fp16", accumulate=2), reg)
    straight = train.run(spec, out=str(tmp_path / "a"), progress=False)
    train.run(spec, out=str(tmp_path / "b"), steps=2, progress=False)
    half = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    assert half["scaler"]["scale"] > 0 and "_growth_tracker" in half["scaler"]
    resumed = train.run(spec, out=str(tmp_path / "b"), resume=True, progress=False)
    a = load_checkpoint(straight / "checkpoints" / "last.pt")
    b = load_checkpoint(resumed / "checkpoints" / "last.pt")
    assert a["scaler"] == b["scaler"]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    bad = {**half, "scaler": {"scale": "big"}}
    with pytest.raises(CheckpointError, match="'scaler' is not a gradient scaler state"):
        check_resume_entries(tmp_path / "bad.pt", bad)


def test_fp32_checkpoints_hold_no_scaler(tmp_path, data_path):
    reg = plugins.default().registry
    run = train.run(resolve(tiny_spec(data_path, steps=2, image_every=0), reg), out=str(tmp_path / "r"))
    assert "scaler" not in load_checkpoint(run / "checkpoints" / "last.pt")


def test_half_precision_torch_cannot_compute_is_exit_2(tmp_path, data_path, monkeypatch, capsys):
    """An autocast that leaves matmuls in fp32 (torch disables autocast for a dtype it cannot
    compute on the device) is refused before training."""
    spec = write_spec(tmp_path / "s.yaml", tiny_spec(data_path, precision="fp16"))
    monkeypatch.setattr(torch, "autocast", lambda **kw: contextlib.nullcontext())
    assert main(["train", str(spec), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "train.precision: fp16, but torch" in err and "torch.float32 under cpu autocast" in err


def test_unsupported_precision_messages(monkeypatch):
    def broken(**kw):
        raise RuntimeError("no fp16 here")

    monkeypatch.setattr(torch, "autocast", broken)
    with pytest.raises(UserError, match=r"fp16 is not supported on cpu by torch .* \(no fp16 here\); use fp32"):
        setup.check_precision(TrainSpec(precision="fp16"), torch.device("cpu"))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    with pytest.raises(UserError, match="bf16, but cuda:0 does not support bfloat16; use fp16"):
        setup.check_precision(TrainSpec(precision="bf16"), torch.device("cuda", 0))
    setup.check_precision(TrainSpec(), torch.device("cuda", 0))  # fp32 needs no check


@pytest.fixture
def two_gpus(monkeypatch):
    """torchrun's environment for the second process on a machine with two (stand-in) GPUs."""
    calls = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.setdefault("set_device", d))
    monkeypatch.setattr(td, "init_process_group", lambda backend: calls.setdefault("backend", backend))
    return calls


def test_each_torchrun_process_takes_its_own_gpu(two_gpus, monkeypatch):
    dist.init()
    assert two_gpus == {"set_device": torch.device("cuda", 1), "backend": "cpu:gloo,cuda:nccl"}
    assert setup.pick_device(TrainSpec()) == torch.device("cuda", 1)
    assert setup.pick_device(TrainSpec(device="cuda")) == torch.device("cuda", 1)
    assert setup.pick_device(TrainSpec(device="cpu")) == torch.device("cpu")
    made = {}
    monkeypatch.setattr(dist, "world_size", lambda: 2)
    monkeypatch.setattr(nn.parallel, "DistributedDataParallel", lambda m, **kw: made.update(kw) or m)
    dist.wrap(PixelModel(), torch.device("cuda", 1))
    assert made["device_ids"] == [1]
    monkeypatch.setenv("LOCAL_RANK", "2")
    with pytest.raises(UserError, match="LOCAL_RANK is 2 but this machine has 2 CUDA device"):
        setup.pick_device(TrainSpec())


def test_cpu_processes_use_gloo(monkeypatch):
    calls = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(td, "init_process_group", lambda backend: calls.setdefault("backend", backend))
    dist.init()
    assert calls == {"backend": "gloo"}


def counted_batches(log):
    def make(step):
        log.append((step, threading.current_thread().name))
        return frames_batch(2, seed=step)

    return make


def test_cpu_batches_are_made_when_asked_in_this_thread():
    log = []
    batches = prefetch.DeviceBatches(counted_batches(log), torch.device("cpu"))
    assert not batches.prefetch and not batches.pin
    assert torch.equal(batches.get(4).frames, frames_batch(2, seed=4).frames)
    assert log == [(4, threading.current_thread().name)]
    batches.close()


def test_prefetch_makes_the_next_batch_ahead_in_pinned_memory(monkeypatch):
    pinned, copies = [], []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: pinned.append(self.shape) or self.clone())
    real_to = torch.Tensor.to

    def to(self, *args, **kwargs):
        copies.append(kwargs.get("non_blocking"))
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", to)
    log = []
    batches = prefetch.DeviceBatches(counted_batches(log), torch.device("cpu"), prefetch=True, pin=True)
    got = [batches.get(s) for s in (0, 1, 2, 7)]  # 7: out of order, made on demand
    batches.close()
    for s, b in zip((0, 1, 2, 7), got):
        assert torch.equal(b.frames, frames_batch(2, seed=s).frames)
        assert torch.equal(b.extras["counts"], torch.arange(2))
    assert [s for s, _ in log] == [0, 1, 2, 3, 7, 8]  # each next step made ahead
    assert {name for s, name in log if s in (1, 2, 3, 8)} == {"ocf-batches_0"}
    assert len(pinned) == 3 * 6 and copies and all(copies)  # frames, masks, counts per batch


def test_prefetch_reports_a_failing_batch_at_its_step():
    def make(step):
        if step == 1:
            raise UserError("step 1 cannot be read")
        return frames_batch(2)

    batches = prefetch.DeviceBatches(make, torch.device("cpu"), prefetch=True)
    batches.get(0)
    with pytest.raises(UserError, match="step 1 cannot be read"):
        batches.get(1)
    batches.close()


def test_matmul_peak_in_the_precisions_dtype():
    record = bench._flops(1e9, 0.5, torch.device("cpu"), torch.bfloat16)
    assert record["peak_dtype"] == "bfloat16" and record["achieved_per_s"] == 2e9
    assert record["utilisation"] == pytest.approx(2e9 / record["machine_matmul_peak_per_s"])
    assert bench.PRECISION_DTYPES == {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    assert bench.matmul_peak(torch.device("cpu"), n=64, seconds=0.05) > 1e6
