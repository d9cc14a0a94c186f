"""The contrastive family (setcon.nt_xent, moco, byol, simsiam, dino): each one's defining
property, the two-view mechanism (time views, augmentations, EMA copies of upstream
stages), and that they compose with any encoder or grouper through a spec."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from ocf import plugins
from ocf.components import BuildContext
from ocf.records import Batch, State
from ocf.spec import resolve
from ocf_setcon.contrastive import BYOL, DINO, EMACopy, MoCo, NTXent, SimSiam, _TinyEncoder, augment, entropy, negative_cosine
from ocf_setcon.losses import nt_xent

REGISTRY = plugins.default().registry


def _setup(cls, frames=3, **params):
    """An objective built with a tiny online encoder in ctx.built, and a State whose
    features that encoder computed (so gradients reach it)."""
    torch.manual_seed(0)
    ctx = BuildContext(channels=3, frames=frames, resolution=(6, 6), dims={"features.tokens": 8, "features.grid": (6, 6)})
    enc = _TinyEncoder(3, 8)
    ctx.built = {"encoder": enc}  # what ocf.assembly.build provides (BuildContext.built)
    obj = cls(cls.Spec(**params), ctx)
    obj.train()
    state = State(Batch(torch.rand(4, frames, 3, 6, 6, generator=torch.Generator().manual_seed(1))))
    state.features = enc(state)
    return obj, enc, state


def test_nt_xent_objective_is_simclr_on_time_views():
    obj, _, state = _setup(NTXent, temperature=0.5)
    r = state.features.tokens.mean(2)  # [b t c]
    expected = nt_xent(obj.head(r[:, :-1]).flatten(0, 1), obj.head(r[:, 1:]).flatten(0, 1), 0.5)
    torch.testing.assert_close(obj(state)["nt_xent"], expected)


def test_moco_queue_is_fifo():
    obj, _, _ = _setup(MoCo, queue_size=5, out_dim=4)
    keys = [torch.randn(3, 4), torch.randn(3, 4)]
    obj.enqueue(keys[0])
    assert int(obj.queue_ptr) == 3
    torch.testing.assert_close(obj.queue[:3], F.normalize(keys[0], dim=1))
    old_tail = obj.queue[3:].clone()
    obj.enqueue(keys[1])  # wraps: slots 3, 4, then 0 (the oldest key goes first)
    assert int(obj.queue_ptr) == 1
    torch.testing.assert_close(obj.queue[3:], F.normalize(keys[1][:2], dim=1))
    torch.testing.assert_close(obj.queue[0], F.normalize(keys[1][2], dim=0))
    torch.testing.assert_close(obj.queue[1:3], F.normalize(keys[0][1:], dim=1))
    assert not torch.allclose(obj.queue[3:], old_tail)


def test_moco_key_encoder_is_the_ema_of_the_query_encoder_and_keys_are_enqueued():
    obj, enc, state = _setup(MoCo, momentum=0.9, queue_size=64)
    obj(state)  # first training step: the key encoder starts as a copy
    for p_t, p_o in zip(obj.target["encoder"].parameters(), enc.parameters()):
        torch.testing.assert_close(p_t, p_o)
    before = [p.clone() for p in obj.target["encoder"].parameters()]
    with torch.no_grad():  # an optimizer step on the query encoder
        for p in enc.parameters():
            p.add_(1.0)
    ptr = int(obj.queue_ptr)
    obj(state)
    for p_t, b, p_o in zip(obj.target["encoder"].parameters(), before, enc.parameters()):
        torch.testing.assert_close(p_t, 0.9 * b + 0.1 * p_o)
        assert not p_t.requires_grad
    assert int(obj.queue_ptr) == (ptr + 4 * 2) % 64  # b·(t−1) keys per step
    obj.eval()
    frozen = [p.clone() for p in obj.target["encoder"].parameters()]
    obj(state)  # evaluation moves neither the EMA nor the queue
    assert all(torch.equal(a, b) for a, b in zip(frozen, obj.target["encoder"].parameters()))


def test_negative_cosine_stops_the_gradient_of_the_target():
    p = torch.randn(5, 4, requires_grad=True)
    z = torch.randn(5, 4, requires_grad=True)
    negative_cosine(p, z).backward()
    assert p.grad is not None and p.grad.abs().sum() > 0
    assert z.grad is None


def test_simsiam_is_symmetric_with_stop_gradient():
    obj, enc, state = _setup(SimSiam)
    r = state.features.tokens.mean(2)
    z1, z2 = obj.head(r[:, :-1]).flatten(0, 1), obj.head(r[:, 1:]).flatten(0, 1)
    p1, p2 = obj.predictor(z1), obj.predictor(z2)
    manual = 0.5 * (-F.cosine_similarity(p1, z2.detach()).mean() - F.cosine_similarity(p2, z1.detach()).mean())
    loss = obj(state)["simsiam"]
    torch.testing.assert_close(loss, manual)
    # with the stop-gradient, the loss's gradient equals the one through the predictor branches only
    grads = torch.autograd.grad(loss, list(obj.head.parameters()))
    grads_manual = torch.autograd.grad(manual, list(obj.head.parameters()))
    for a, b in zip(grads, grads_manual):
        torch.testing.assert_close(a, b)


def test_byol_target_branch_gets_no_gradient():
    obj, enc, state = _setup(BYOL, momentum=0.99)
    loss = obj(state)["byol"]
    assert 0.0 <= loss.item() <= 4.0  # 2 − 2·cos
    loss.backward()
    assert all(p.grad is not None for p in obj.predictor.parameters())
    assert all(p.grad is not None for p in enc.parameters())  # the online encoder learns through view 1
    assert all(p.grad is None and not p.requires_grad for p in obj.target.parameters())
    t = obj.target_view(state, 0.99)
    assert t.grad_fn is None


def test_dino_centre_is_an_ema_of_teacher_outputs_and_sharpening_lowers_entropy():
    obj, _, state = _setup(DINO, center_momentum=0.9, out_dim=16)
    assert torch.count_nonzero(obj.center) == 0
    obj(state)
    obj.eval()
    t = obj.target_view(state, obj.spec.momentum)  # the teacher outputs of that step (no update in eval)
    torch.testing.assert_close(obj.center, 0.1 * t.mean(0))
    c1 = obj.center.clone()
    obj.train()
    obj(state)
    obj.eval()
    t2 = obj.target_view(state, obj.spec.momentum)
    torch.testing.assert_close(obj.center, 0.9 * c1 + 0.1 * t2.mean(0))
    logits = 5 * torch.randn(32, 16)
    obj.center.zero_()
    sharp = entropy(obj.teacher_probs(logits))  # τ_t = 0.04
    soft = entropy((logits / obj.spec.student_temperature).softmax(1))  # τ_s = 0.1
    assert sharp < soft
    # centring removes a shared shift of the teacher outputs
    obj.center.copy_(torch.full((16,), 3.0))
    torch.testing.assert_close(obj.teacher_probs(logits + 3.0), (logits / obj.spec.teacher_temperature).softmax(1))


def test_ema_copy_holds_its_sources_unregistered():
    src = torch.nn.Linear(3, 3)
    ema = EMACopy({"lin": src})
    assert [n for n, _ in ema.named_parameters()] == ["copies.lin.weight", "copies.lin.bias"]
    with torch.no_grad():
        ema["lin"].weight.zero_()
    ema.update(0.5)  # first update: a plain copy
    torch.testing.assert_close(ema["lin"].weight, src.weight)
    assert "synced" in dict(ema.named_buffers())


def test_augment_identity_and_range():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 2, 3, 8, 8, generator=g)
    same = augment(x, crop_scale=1.0, flip=False, brightness=0.0)
    torch.testing.assert_close(same, x)
    y = augment(x, generator=g)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    assert not torch.allclose(y, x)
    x = 0.5 * torch.rand(3, 2, 3, 8, 8, generator=g) + 0.1  # no clamping at 1
    z = augment(x, crop_scale=1.0, flip=False, brightness=0.5, generator=g)
    gain = z / x  # one draw per clip: every frame of a clip gets the same brightness
    torch.testing.assert_close(gain[:, 0], gain[:, 1])
    assert not torch.allclose(gain[0], gain[1])


def _spec(tmp_path, objective, grouper=None, steps=30, frames=2):
    model = {"encoder": {"type": "cnn", "channels": [16, 16], "strides": [2, 1]}, "objectives": [objective]}
    if grouper:
        model["grouper"] = grouper
    return {
        "name": "contrastive-tiny",
        "data": {"dataset": "moving_sprites", "path": str(tmp_path / "ms.h5"), "frames": frames, "resolution": [16, 16],
                 "generate": {"n": 64, "seed": 0, "options": {"resolution": 16, "frames": frames, "min_objects": 2, "max_objects": 2}}},
        "model": model,
        "train": {"steps": steps, "batch_size": 16, "threads": 1, "log_every": 5, "image_every": 0, "checkpoint_every": steps,
                  "optimizer": {"type": "adam", "lr": 2e-3}},
        "eval": {"metrics": ["mse"]},
    }


def test_nt_xent_learns_on_time_views(tmp_path):
    """It learns: SimCLR's loss on (frame t, frame t+1) views of moving sprites falls clearly."""
    from ocf import train

    torch.manual_seed(0)
    run = train.run(resolve(_spec(tmp_path, {"type": "setcon.nt_xent", "temperature": 0.5}), REGISTRY), out=str(tmp_path / "r"), progress=False)
    losses = [json.loads(l)["loss"] for l in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in l]
    assert losses[-1] < losses[0] - 0.3, losses


@pytest.mark.parametrize("objective", ["setcon.moco", "setcon.byol", "setcon.dino", "setcon.simsiam"])
def test_family_composes_with_a_slot_attention_grouper(tmp_path, objective):
    """Through a spec: the objective's EMA copy (or second pass) covers the model's own encoder
    and grouper (source: objects, augmented views), trains a few steps and resumes its state."""
    from ocf import train
    from ocf.assembly import build

    grouper = {"type": "slot_attention.grouper", "num_slots": 3, "slot_dim": 16, "mlp_hidden": 32}
    spec = _spec(tmp_path, {"type": objective, "source": "objects", "views": "augment", "hidden": 32, "out_dim": 16}, grouper, steps=3)
    model = build(resolve(spec, REGISTRY))
    obj = model.objectives[0]
    assert obj._online["encoder"] is model.encoder and obj._online["grouper"] is model.grouper
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    if obj.target is not None:
        assert not any(id(p) in trainable for p in obj.target.parameters())
    run = train.run(resolve(spec, REGISTRY), out=str(tmp_path / "r"), progress=False)
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]
    if obj.target is not None:
        assert bool(state["objectives.0.target.synced"])
        assert any(k.startswith("objectives.0.target.copies.grouper.") for k in state)
