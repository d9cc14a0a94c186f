"""The contrastive plugin (contrastive.ntxent, moco, byol, simsiam, dino): each one's defining
property, the two-view mechanism (time views, augmentations, EMA copies of upstream
stages), that they compose with any encoder or grouper through a spec, that each shipped
config's loss falls on a tiny dataset, and that the old setcon.* names and the old import
path still work with a DeprecationWarning."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from ocf import plugins
from ocf.components import BuildContext
from ocf.records import Batch, State
from ocf.spec import resolve
from ocf_contrastive.losses import distillation_loss, entropy, moco_loss, negative_cosine, nt_xent
from ocf_contrastive.nets import EMACopy, augment
from ocf_contrastive.objective import BYOL, DINO, MoCo, NTXent, SimSiam, _TinyEncoder

REGISTRY = plugins.default().registry
ROOT = Path(__file__).resolve().parents[1]
NEW = {
    "contrastive.ntxent": NTXent,
    "contrastive.moco": MoCo,
    "contrastive.byol": BYOL,
    "contrastive.simsiam": SimSiam,
    "contrastive.dino": DINO,
}
OLD = {
    "setcon.nt_xent": NTXent,
    "setcon.moco": MoCo,
    "setcon.byol": BYOL,
    "setcon.simsiam": SimSiam,
    "setcon.dino": DINO,
}


def _setup(cls, frames=3, **params):
    """An objective built with a tiny online encoder in ctx.built, and a State whose
    features that encoder computed (so gradients reach it)."""
    torch.manual_seed(0)
    dims = {"features.tokens": 8, "features.grid": (6, 6)}
    ctx = BuildContext(channels=3, frames=frames, resolution=(6, 6), dims=dims)
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


def test_moco_loss_is_cross_entropy_over_cosine_logits_with_the_queue_as_negatives():
    g = torch.Generator().manual_seed(0)
    q, k, queue = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g), torch.randn(6, 5, generator=g)
    cos = F.normalize(q, dim=1) @ F.normalize(torch.cat([k, queue]), dim=1).T  # [4 10]
    expected = -(cos / 0.2).log_softmax(dim=1).diagonal().mean()  # query i's positive: key i
    torch.testing.assert_close(moco_loss(q, k, queue, 0.2), expected)


def test_distillation_loss_is_the_cross_entropy_from_teacher_to_student():
    g = torch.Generator().manual_seed(0)
    s, p_t = torch.randn(3, 4, generator=g), torch.rand(3, 4, generator=g).softmax(1)
    q = (s / 0.1).softmax(1)
    expected = -(p_t * q.log()).sum(1).mean()
    torch.testing.assert_close(distillation_loss(s, p_t, 0.1), expected)
    # its minimum over students is the teacher's entropy, reached when the student equals the teacher
    assert distillation_loss(0.1 * p_t.log(), p_t, 0.1).item() == pytest.approx(entropy(p_t).item(), rel=1e-5)


def _spec(tmp_path, objective, grouper=None, steps=30, frames=2):
    model = {"encoder": {"type": "cnn", "channels": [16, 16], "strides": [2, 1]}, "objectives": [objective]}
    if grouper:
        model["grouper"] = grouper
    return {
        "name": "contrastive-tiny",
        "data": {
            "dataset": "moving_sprites",
            "path": str(tmp_path / "ms.h5"),
            "frames": frames,
            "resolution": [16, 16],
            "generate": {
                "n": 64,
                "seed": 0,
                "options": {"resolution": 16, "frames": frames, "min_objects": 2, "max_objects": 2},
            },
        },
        "model": model,
        "train": {
            "steps": steps,
            "batch_size": 16,
            "threads": 1,
            "log_every": 5,
            "image_every": 0,
            "checkpoint_every": steps,
            "optimizer": {"type": "adam", "lr": 2e-3},
        },
        "eval": {"metrics": ["mse"]},
    }


def test_nt_xent_learns_on_time_views(tmp_path):
    """It learns: SimCLR's loss on (frame t, frame t+1) views of moving sprites falls clearly."""
    from ocf import train

    torch.manual_seed(0)
    spec = _spec(tmp_path, {"type": "contrastive.ntxent", "temperature": 0.5})
    run = train.run(resolve(spec, REGISTRY), out=str(tmp_path / "r"), progress=False)
    losses = [json.loads(row)["loss"] for row in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in row]
    assert losses[-1] < losses[0] - 0.3, losses


@pytest.mark.parametrize(
    "objective", ["contrastive.moco", "contrastive.byol", "contrastive.dino", "contrastive.simsiam"]
)
def test_family_composes_with_a_slot_attention_grouper(tmp_path, objective):
    """Through a spec: the objective's EMA copy (or second pass) covers the model's own encoder
    and grouper (source: objects, augmented views), trains a few steps and resumes its state."""
    from ocf import train
    from ocf.assembly import build

    grouper = {"type": "slot_attention.grouper", "num_slots": 3, "slot_dim": 16, "mlp_hidden": 32}
    objective = {"type": objective, "source": "objects", "views": "augment", "hidden": 32, "out_dim": 16}
    spec = _spec(tmp_path, objective, grouper, steps=3)
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


# -- the shipped configs ---------------------------------------------------------------------
def _tiny(config: str, work, steps: int) -> dict:
    """configs/contrastive/<config> at test size: 32 clips of 3 frames at 16x16, a 2-layer
    encoder of 16 channels, 3 slots of 16, heads of 32, batch 8, Adam 2e-3; every option of
    the objective that is not a size stays as shipped."""
    spec = yaml.safe_load((ROOT / "configs" / "contrastive" / config).read_text())
    options = {"resolution": 16, "frames": 3, "min_objects": 2, "max_objects": 2}
    spec["data"].update(
        path=str(work / "ms.h5"), frames=3, resolution=[16, 16], generate={"n": 32, "seed": 0, "options": options}
    )
    spec["model"]["encoder"].update(channels=[16, 16], strides=[2, 1])
    if "grouper" in spec["model"]:
        spec["model"]["grouper"].update(num_slots=3, slot_dim=16, mlp_hidden=32)
    objective = spec["model"]["objectives"][0]
    objective.update(hidden=32, out_dim=32 if "dino" in config else 16)
    if "queue_size" in objective:
        objective["queue_size"] = 32  # no larger than the 96 frames of the tiny dataset
    spec["train"].update(
        steps=steps,
        batch_size=8,
        log_every=1,
        checkpoint_every=steps,
        threads=1,
        seed=0,
        optimizer={"type": "adam", "lr": 2e-3},
        schedule={"warmup_steps": 0},
    )
    spec["eval"]["metrics"] = []
    return spec


CONFIGS = ["ntxent_32.yaml", "moco_32.yaml", "byol_32.yaml", "simsiam_32.yaml", "dino_32.yaml"]


def test_there_is_a_config_for_every_method():
    shipped = sorted(p.name for p in (ROOT / "configs" / "contrastive").glob("*.yaml"))
    assert shipped == sorted(CONFIGS)
    types = {
        yaml.safe_load((ROOT / "configs" / "contrastive" / c).read_text())["model"]["objectives"][0]["type"]
        for c in CONFIGS
    }
    assert types == set(NEW)


@pytest.mark.parametrize("config", CONFIGS)
def test_each_shipped_config_lowers_its_loss_on_a_tiny_dataset(tmp_path, config):
    """80 steps: the mean loss of the last 10 is clearly below that of steps 5-15 (MoCo's
    queue starts with random keys and is full of real ones after step 2)."""
    from ocf import train

    torch.manual_seed(0)
    run = train.run(resolve(_tiny(config, tmp_path, 80), REGISTRY), out=str(tmp_path / "r"), progress=False)
    losses = [json.loads(row)["loss"] for row in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in row]
    assert len(losses) == 80
    early, late = sum(losses[5:15]) / 10, sum(losses[-10:]) / 10
    assert late < early - 0.05 * abs(early) - 0.05, (early, late)


# -- the names and import path before the move -------------------------------------------------
@pytest.mark.parametrize("old", sorted(OLD))
def test_old_setcon_name_builds_the_same_objective_and_warns(old):
    new_cls = OLD[old]
    alias = REGISTRY.get("objective", old)
    assert REGISTRY.entry("objective", old).plugin == "contrastive"
    assert issubclass(alias, new_cls) and alias is not new_cls and alias.Spec is new_cls.Spec
    with pytest.warns(DeprecationWarning, match=f"'{old}' is deprecated.*write type: {new_cls.name}"):
        old_obj, _, state = _setup(alias)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new name does not warn
        new_obj, _, _ = _setup(new_cls)
    assert old_obj.state_dict().keys() == new_obj.state_dict().keys()
    new_obj.load_state_dict(old_obj.state_dict())  # a checkpoint made under the old name loads
    old_obj.eval(), new_obj.eval()
    assert old_obj(state).keys() == new_obj(state).keys()


def test_every_new_name_is_registered_and_declared_on_its_class():
    for name, cls in NEW.items():
        assert REGISTRY.get("objective", name) is cls and cls.name == name
        assert REGISTRY.entry("objective", name).plugin == "contrastive"
    setcon = {e.name for e in REGISTRY.entries("objective", plugin="setcon")}
    assert setcon == {"setcon.set_infonce", "setcon.slot_contrast"}


def test_old_import_path_warns_and_returns_the_moved_objects():
    import ocf_contrastive.nets
    import ocf_setcon.contrastive as old

    with pytest.warns(DeprecationWarning, match="import it from ocf_contrastive.objective"):
        assert old.MoCo is MoCo
    with pytest.warns(DeprecationWarning, match="import it from ocf_contrastive.nets"):
        assert old.augment is ocf_contrastive.nets.augment
    with pytest.warns(DeprecationWarning, match="contrastive.ntxent"):
        assert old.FAMILY == {"nt_xent": NTXent, "moco": MoCo, "byol": BYOL, "simsiam": SimSiam, "dino": DINO}
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = old.nope
