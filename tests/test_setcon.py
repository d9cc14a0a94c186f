"""SetCon: video Slot Attention with carry-over, transition, set embedding, the set-level
InfoNCE and its slot-wise control, the retrieval metric, and the two-stage (pretext → probe)
path through the generic init_from / freeze."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ocf import plugins
from ocf.assembly import build
from ocf.components import BuildContext
from ocf.records import Batch, Features, Latents, State
from ocf.spec import load, resolve
from ocf_setcon.grouper import SetConGrouper, SetEmbedding, Transition
from ocf_setcon.losses import info_nce, nt_xent, set_pairs, top1_hits
from ocf_setcon.metrics import SetRetrieval
from ocf_setcon.objectives import SetInfoNCE, SlotContrast

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = plugins.default().registry


def _direct_info_nce(anchors, candidates, positive, tau):
    total = 0.0
    for i, a in enumerate(anchors):
        sims = [float(F.cosine_similarity(a, c, dim=0)) / tau for c in candidates]
        total += -(sims[int(positive[i])] - math.log(sum(math.exp(s) for s in sims)))
    return total / len(anchors)


def test_info_nce_equals_direct_computation():
    g = torch.Generator().manual_seed(0)
    anchors, candidates = torch.randn(5, 7, generator=g), torch.randn(9, 7, generator=g)
    positive = torch.tensor([3, 0, 8, 3, 1])
    loss, logits = info_nce(anchors, candidates, positive, 0.3)
    assert logits.shape == (5, 9)
    assert loss.item() == pytest.approx(_direct_info_nce(anchors, candidates, positive, 0.3), rel=1e-5)


def test_info_nce_minimum_when_anchors_match_positives():
    tau, n = 0.2, 6
    candidates = torch.eye(n, 8)  # orthonormal: sim 1 with itself, 0 with the rest
    positive = torch.arange(n)
    matched, _ = info_nce(candidates.clone(), candidates, positive, tau)
    # the closed form: -log(e^{1/τ} / (e^{1/τ} + (n-1)))
    assert matched.item() == pytest.approx(-math.log(math.exp(1 / tau) / (math.exp(1 / tau) + n - 1)), rel=1e-5)
    g = torch.Generator().manual_seed(1)
    for _ in range(20):  # any other anchors do worse
        other, _ = info_nce(candidates + 0.5 * torch.randn(n, 8, generator=g), candidates, positive, tau)
        assert other.item() > matched.item()
    shuffled, _ = info_nce(candidates[torch.roll(positive, 1)], candidates, positive, tau)
    assert shuffled.item() > matched.item() + 1


def test_nt_xent_equals_direct_computation():
    g = torch.Generator().manual_seed(2)
    z1, z2 = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g)
    z = torch.cat([z1, z2])
    total = 0.0
    for i in range(8):
        j = (i + 4) % 8
        sims = {k: float(F.cosine_similarity(z[i], z[k], dim=0)) / 0.5 for k in range(8) if k != i}
        total += -(sims[j] - math.log(sum(math.exp(s) for s in sims.values())))
    assert nt_xent(z1, z2, 0.5).item() == pytest.approx(total / 8, rel=1e-5)


def test_set_pairs_index_the_same_video_and_time():
    b, t, tp, e = 3, 5, 3, 4
    actual = torch.randn(b, t, e)
    predicted = actual[:, t - tp :].clone()  # predictions of the last tp frames
    anchors, candidates, positive = set_pairs(predicted, actual)
    assert anchors.shape == (b * tp, e) and candidates.shape == (b * t, e) and positive.shape == (b * tp,)
    assert torch.equal(candidates[positive], anchors)
    assert top1_hits(anchors, candidates, positive).all()


def _ctx(frames=5, tokens=16, grid=(4, 4)):
    return BuildContext(
        channels=3, frames=frames, resolution=(8, 8), dims={"features.tokens": tokens, "features.grid": grid}
    )


def _grouper(**params):
    spec = SetConGrouper.Spec(
        num_slots=3, slot_dim=8, mlp_hidden=16, transition_hidden=16, set_hidden=16, set_dim=6, **params
    )
    return SetConGrouper(spec, _ctx())


def _token_state(b=2, t=5, n=16, c=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    state = State(Batch(torch.rand(b, t, 3, 8, 8, generator=g)))
    state.features = Features(tokens=torch.randn(b, t, n, c, generator=g), grid=(4, 4))
    return state


def test_grouper_shapes_over_b_and_t():
    torch.manual_seed(0)
    lat = _grouper()(_token_state(b=2, t=5))
    assert lat.objects.shape == (2, 5, 3, 8)
    assert lat.attention.shape == (2, 5, 3, 16)
    assert lat.masks.shape == (2, 5, 3, 4, 4)
    torch.testing.assert_close(lat.masks.sum(2), torch.ones(2, 5, 4, 4))  # softmax over slots
    ex = lat.extras
    assert ex["predicted"].shape == (2, 3, 3, 8)  # frames 2..4
    assert ex["set_predicted"].shape == (2, 3, 6) and ex["set_actual"].shape == (2, 5, 6)


def test_slots_carry_over_with_fewer_iterations(monkeypatch):
    torch.manual_seed(0)
    grouper = _grouper(iterations=3, later_iterations=1)
    calls = []
    real = SetConGrouper.attend

    def spy(self, tokens, slots, iterations=None):
        out = real(self, tokens, slots, iterations)
        calls.append((slots.detach().clone(), iterations, out[0].detach().clone()))
        return out

    monkeypatch.setattr(SetConGrouper, "attend", spy)
    grouper(_token_state(t=4))
    assert [c[1] for c in calls] == [None, 1, 1, 1]  # spec's 3 rounds on frame 0, then 1
    for prev, cur in zip(calls, calls[1:]):
        torch.testing.assert_close(cur[0], prev[2])  # frame t starts from frame t-1's slots
    calls.clear()
    _grouper(carry=False, slot_init="learned")(_token_state(t=3))
    assert len(calls) == 1  # no carry: every frame from the init, all frames folded together


def test_objects_can_be_the_transition_predictions():
    torch.manual_seed(0)
    grouper = _grouper(objects="predicted")
    state = _token_state(t=5)
    torch.manual_seed(1)
    lat = grouper(state)
    torch.testing.assert_close(lat.objects[:, :2], lat.extras["slots"][:, :2])
    torch.testing.assert_close(lat.objects[:, 2:], lat.extras["predicted"])


def test_learned_slot_init_replaces_the_gaussian():
    grouper = _grouper(slot_init="learned")
    names = {n for n, _ in grouper.named_parameters()}
    assert "slot_embed" in names and "mu" not in names and "log_sigma" not in names
    torch.testing.assert_close(grouper.init_slots(2), grouper.slot_embed.expand(2, -1, -1))


def test_transition_formula_and_set_embedding_invariance():
    torch.manual_seed(0)
    tr = Transition(4, 8)
    s0, s1 = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    expected = s1 + tr.f(torch.cat([s0, s1, s1 - s0], -1))
    torch.testing.assert_close(tr(s0, s1), expected)
    g = SetEmbedding(4, 8, 5)
    perm = torch.randperm(3)
    torch.testing.assert_close(g(s0), g(s0[:, perm]))  # a set: the order of slots does not matter
    assert not torch.allclose(g(s0), g(s1))


def _setcon_state(set_predicted, set_actual, predicted=None, slots=None):
    b, t = set_actual.shape[:2]
    state = State(Batch(torch.zeros(b, t, 3, 4, 4)))
    extras = {"set_predicted": set_predicted, "set_actual": set_actual}
    if predicted is not None:
        extras.update(predicted=predicted, slots=slots)
    state.latents = Latents(objects=slots, extras=extras)
    return state


def test_set_infonce_objective_and_variants():
    torch.manual_seed(0)
    actual = torch.randn(3, 5, 6)
    pred = torch.randn(3, 3, 6)
    obj = SetInfoNCE(SetInfoNCE.Spec(temperature=0.2), _ctx())
    loss = obj(_setcon_state(pred, actual))["set_infonce"]
    anchors, candidates, positive = set_pairs(pred, actual)
    assert loss.item() == pytest.approx(_direct_info_nce(anchors, candidates, positive, 0.2), rel=1e-5)
    perfect = obj(_setcon_state(actual[:, 2:] * 10, actual))["set_infonce"]
    assert perfect.item() < loss.item()
    nt = SetInfoNCE(SetInfoNCE.Spec(temperature=0.5, form="nt_xent"), _ctx())
    out = nt(_setcon_state(pred, actual))["set_nt_xent"]
    assert out.item() == pytest.approx(nt_xent(pred.reshape(9, 6), actual[:, 2:].reshape(9, 6), 0.5).item(), rel=1e-6)


def test_objectives_explain_short_clips():
    state = State(Batch(torch.zeros(2, 2, 3, 4, 4)))
    state.latents = Latents(objects=torch.zeros(2, 2, 3, 8), extras={"slots": torch.zeros(2, 2, 3, 8)})
    with pytest.raises(ValueError, match="at least 3 frames"):
        SetInfoNCE(SetInfoNCE.Spec(), _ctx())(state)
    with pytest.raises(ValueError, match="at least 3 frames"):
        SlotContrast(SlotContrast.Spec(), _ctx())(state)


def test_slot_contrast_is_satisfied_by_collapsed_slots():
    """The paper's point: if every slot holds the same thing, a slot-wise loss (negatives from
    other (video, time) only) is still at its best; with same-set negatives it is not."""
    b, t, k, d = 4, 4, 3, 16
    per_set = torch.eye(b * t, d).view(b, t, 1, d)  # one orthogonal vector per (video, time)
    collapsed = per_set.expand(b, t, k, d).clone()  # the same object in every slot
    state = _setcon_state(torch.zeros(b, t - 2, 1), torch.zeros(b, t, 1), collapsed[:, 2:].clone(), collapsed)
    plain = SlotContrast(SlotContrast.Spec(temperature=0.1), _ctx())(state)["slot_infonce"]
    # every anchor sees its positive (sim 1) against negatives of sim 0 only
    n_neg = (b * t - 1) * k
    best = -math.log(math.exp(10) / (math.exp(10) + n_neg))
    assert plain.item() == pytest.approx(best, rel=1e-4)
    strict = SlotContrast(SlotContrast.Spec(temperature=0.1, same_set_negatives=True), _ctx())(state)["slot_infonce"]
    assert strict.item() > plain.item() + 0.5


def test_retrieval_metric():
    actual = torch.randn(4, 5, 8)
    m = SetRetrieval()
    m.update_state(_setcon_state(actual[:, 2:] + 0.01 * torch.randn(4, 3, 8), actual))
    assert float(m.compute()) == 1.0
    m2 = SetRetrieval()
    m2.update_state(_setcon_state(actual[:, 1:4], actual))  # predicts the previous frame: always wrong
    assert float(m2.compute()) == 0.0
    assert "setcon.retrieval" in REGISTRY.names("metric")


def _tiny_spec(tmp_path, objective="setcon.set_infonce", **train):
    return {
        "name": "setcon-tiny",
        "data": {
            "dataset": "moving_sprites",
            "path": str(tmp_path / "ms.h5"),
            "frames": 4,
            "resolution": [16, 16],
            "generate": {
                "n": 96,
                "seed": 0,
                "options": {"resolution": 16, "frames": 4, "min_objects": 2, "max_objects": 2},
            },
        },
        "model": {
            "encoder": {"type": "cnn", "channels": [16, 16], "strides": [2, 1]},
            "grouper": {
                "type": "setcon.grouper",
                "num_slots": 3,
                "slot_dim": 16,
                "mlp_hidden": 32,
                "transition_hidden": 32,
                "set_hidden": 32,
                "set_dim": 16,
            },
            "objectives": [{"type": objective, "temperature": 0.1}],
        },
        "train": {
            "steps": 40,
            "batch_size": 16,
            "threads": 1,
            "log_every": 5,
            "image_every": 0,
            "checkpoint_every": 40,
            "optimizer": {"type": "adam", "lr": 2e-3},
            **train,
        },
        "eval": {"metrics": ["setcon.retrieval", "fg_ari"], "batch_size": 16, "max_samples": 16},
    }


def _losses(run):
    import json

    return [json.loads(row) for row in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in row]


def test_setcon_learns_and_probe_trains_on_frozen_stages(tmp_path):
    """It learns: the set InfoNCE falls clearly within 40 steps on tiny moving sprites; then a
    decoder probe initialised from the run trains with the encoder and grouper frozen."""
    from ocf.run import evaluate, train
    from ocf.run.checkpoints import load_run

    torch.manual_seed(0)
    run = train.run(resolve(_tiny_spec(tmp_path), REGISTRY), out=str(tmp_path / "pre"), progress=False)
    losses = [row["loss"] for row in _losses(run)]
    assert losses[-1] < 0.6 * losses[0], losses
    scores = evaluate.evaluate_model(load_run(run, REGISTRY)[1], load_run(run, REGISTRY)[0], progress=False)
    assert scores["setcon.retrieval"] > 0.3  # chance is 1/64
    probe = _tiny_spec(tmp_path, steps=5, init_from=str(run), freeze=["encoder", "grouper"])
    probe["name"] = "setcon-tiny-probe"
    probe["model"]["decoder"] = {"type": "spatial_broadcast", "channels": [16], "broadcast_size": [8, 8], "upsample": 1}
    probe["model"]["objectives"] = [{"type": "mse"}]
    probe["eval"]["metrics"] = ["fg_ari", "mse"]
    before = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]
    prun = train.run(resolve(probe, REGISTRY), out=str(tmp_path / "probe"), progress=False)
    after = torch.load(prun / "checkpoints" / "last.pt", weights_only=True)["model"]
    for name, value in before.items():  # frozen stages are exactly the pretext's
        if name.startswith(("encoder.", "grouper.")):
            torch.testing.assert_close(after[name], value)
    assert any(n.startswith("decoder.") for n in after)


def test_configs_build():
    for path in sorted((ROOT / "configs" / "setcon").glob("*.yaml")):
        build(load(path, REGISTRY))


def test_import_frames_frame_step(tmp_path):
    """`ocf data import-frames --frame-step 4 --clip-length 3 --stride 1` gives (t−8, t−4, t)
    triples of one long video: the public SetCon code's samples."""
    from PIL import Image

    from ocf.data import H5Dataset
    from ocf.data.frames import import_frames
    from ocf.errors import UserError

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(12):
        Image.fromarray(np.full((6, 6, 3), i * 20, np.uint8)).save(folder / f"frame_{i}.png")
    out = import_frames(folder, tmp_path / "v.h5", clip_length=3, stride=1, frame_step=4, splits={"train": 1.0})
    ds = H5Dataset(out, split="train")
    assert len(ds) == 12 - 8
    clips = ds.get_batch(list(range(len(ds)))).frames  # [n 3 c h w] in [0, 1]
    values = (clips[:, :, 0, 0, 0] * 255).round().long() // 20
    assert values.tolist() == [[s, s + 4, s + 8] for s in range(4)]
    with pytest.raises(UserError, match="frames 6 apart"):
        import_frames(folder, tmp_path / "w.h5", clip_length=3, frame_step=6)
