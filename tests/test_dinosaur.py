"""The dinosaur plugin's components: the grouper (slot_attention.grouper behind an input MLP),
the MLP and autoregressive transformer patch decoders, the feature objective, and how their
patch-resolution masks are scored (FG-ARI, mBO over instance masks)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ocf import plugins
from ocf.assembly import build
from ocf.components import BuildContext
from ocf.metrics import FgAri, Mbo
from ocf.records import Batch, Features, Latents, Rendering, State
from ocf.spec import load
from ocf.testing import check_component
from ocf_dinosaur.grouper import DinosaurGrouper
from ocf_dinosaur.mlp_decoder import MLPPatchDecoder
from ocf_dinosaur.objective import FeatureReconstruction
from ocf_dinosaur.transformer_decoder import TransformerPatchDecoder, last_layer_with_attention
from ocf_slot_attention.grouper import SlotAttentionGrouper

REGISTRY = plugins.default().registry
ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
C, GRID, K, D = 24, (4, 6), 3, 16  # feature width, patch grid, slots, slot dim


def _ctx(**dims):
    ctx = BuildContext(channels=3, frames=1, resolution=(16, 24))
    ctx.dims.update({"features.tokens": C, "features.grid": GRID, "latents.objects": D, "latents.num_slots": K})
    ctx.dims.update(dims)
    return ctx


def _build(cls, ctx=None, **params):
    ctx = ctx or _ctx()
    return ctx.construct(cls, cls.Spec(**params), kind=cls.kind, name=cls.name, where=cls.kind)


def _state(b=2, t=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = GRID[0] * GRID[1]
    batch = Batch(torch.rand(b, t, 3, 16, 24, generator=g))
    state = State(batch, features=Features(tokens=torch.randn(b, t, n, C, generator=g), grid=GRID))
    state.latents = Latents(objects=torch.randn(b, K, D, generator=g))
    return state


# -- conformance -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls, params",
    [
        (DinosaurGrouper, {}),
        (DinosaurGrouper, {"num_slots": 3, "slot_dim": 8, "input_hidden": 12, "weight_init": "glorot"}),
        (MLPPatchDecoder, {}),
        (MLPPatchDecoder, {"hidden": [32]}),
        (TransformerPatchDecoder, {}),
        (TransformerPatchDecoder, {"width": 32, "heads": 4, "layers": 1, "position_embedding": False}),
        (FeatureReconstruction, {}),
    ],
)
def test_check_component(cls, params):
    check_component(cls, params)


# -- the grouper -------------------------------------------------------------------------------


def test_grouper_is_slot_attention_on_the_projected_tokens():
    """dinosaur.grouper's slots and attention equal slot_attention.grouper's (same weights, same
    noise) run on LayerNorm + MLP of the tokens: the attention is reused, not copied."""
    ctx = _ctx()
    ours = _build(DinosaurGrouper, ctx, num_slots=K, slot_dim=D, mlp_hidden=32, input_hidden=20)
    assert ctx.dims["features.tokens"] == C  # the decoders still see the backbone's width
    assert ctx.dims["latents.objects"] == D and ctx.dims["latents.num_slots"] == K
    plain = _build(SlotAttentionGrouper, _ctx(**{"features.tokens": D}), num_slots=K, slot_dim=D, mlp_hidden=32)
    plain.load_state_dict({k: v for k, v in ours.state_dict().items() if not k.startswith("project.")})
    state = _state()
    torch.manual_seed(3)
    out = ours(state)
    projected = State(state.batch, features=Features(tokens=ours.project(state.features.tokens), grid=GRID))
    torch.manual_seed(3)
    ref = plain(projected)
    assert out.objects.shape == (2, K, D) and out.attention.shape == (2, 1, K, GRID[0] * GRID[1])
    torch.testing.assert_close(out.objects, ref.objects)
    torch.testing.assert_close(out.attention, ref.attention)
    p = ours.project
    assert isinstance(p[0], torch.nn.LayerNorm) and (p[1].in_features, p[1].out_features) == (C, 20)
    assert p[3].out_features == D


def test_grouper_input_mlp_defaults_to_the_token_width():
    g = _build(DinosaurGrouper)
    assert g.project[1].out_features == C and g.project[3].out_features == 256
    assert g.to_k.in_features == 256 and g.mlp[0].out_features == 1024 and g.spec.num_slots == 7


# -- the MLP decoder ---------------------------------------------------------------------------


def test_mlp_decoder_shapes_masks_and_alpha_mixing():
    dec = _build(MLPPatchDecoder, hidden=[32, 32, 32])
    state = _state()
    r = dec(state)
    n = GRID[0] * GRID[1]
    assert r.recon.shape == (2, 1, C, *GRID) and r.target.shape == (2, 1, C, *GRID)
    assert r.mask_logits.shape == (2, 1, K, *GRID)
    torch.testing.assert_close(r.masks.sum(2), torch.ones(2, 1, *GRID))
    assert len([m for m in dec.mlp if isinstance(m, torch.nn.Linear)]) == 4  # 3 hidden + output
    assert dec.mlp[-1].out_features == C + 1 and dec.pos.shape == (1, n, D)
    # the reconstruction is, per patch, the alpha-weighted sum of each slot's own decoding
    per_slot = []
    for k in range(K):
        one = state.latents.objects[:, k : k + 1]  # [b 1 d]
        x = one.unsqueeze(2) + dec.pos.unsqueeze(0)  # [b 1 n d]
        per_slot.append(dec.mlp(x))  # [b 1 n c+1]
    out = torch.stack(per_slot, 2)  # [b 1 k n c+1]
    alpha = out[..., C].softmax(2)
    recon = (out[..., :C] * alpha.unsqueeze(-1)).sum(2)  # [b 1 n c]
    torch.testing.assert_close(r.recon.flatten(3).transpose(2, 3), recon)
    torch.testing.assert_close(r.masks.flatten(3), alpha)
    torch.testing.assert_close(r.target.flatten(3).transpose(2, 3), state.features.tokens)


def test_mlp_decoder_shares_image_slots_over_frames_and_takes_video_slots():
    dec = _build(MLPPatchDecoder, hidden=[16])
    state = _state(t=2)
    r = dec(state)
    assert r.recon.shape == (2, 2, C, *GRID)
    torch.testing.assert_close(r.mask_logits[:, 0], r.mask_logits[:, 1])  # the same slots for both frames
    state.latents.objects = torch.randn(2, 2, K, D)
    assert dec(state).mask_logits.shape == (2, 2, K, *GRID)


def test_decoders_refuse_tokens_without_a_matching_grid():
    state = _state()
    state.features.grid = (5, 5)
    with pytest.raises(ValueError, match="patch grid with 24 patches"):
        _build(MLPPatchDecoder, hidden=[8])(state)


# -- the transformer decoder -------------------------------------------------------------------


def test_transformer_decoder_shapes_and_masks_sum_to_one():
    dec = _build(TransformerPatchDecoder, layers=2, heads=4)
    r = dec(_state())
    assert r.recon.shape == (2, 1, C, *GRID) and r.mask_logits.shape == (2, 1, K, *GRID)
    torch.testing.assert_close(r.masks.sum(2), torch.ones(2, 1, *GRID))
    assert (r.masks >= 0).all()


def test_transformer_decoder_is_causal_over_patches():
    """Output patch i reads target patches < i only (shifted behind the BOS token): changing
    patch j leaves outputs and masks 0..j unchanged and changes output j + 1."""
    torch.manual_seed(0)
    dec = _build(TransformerPatchDecoder, layers=3, heads=4, width=32).eval()
    state = _state()
    j = 10
    with torch.no_grad():
        before = dec(state)
        state.features.tokens[:, :, j] += torch.randn(C)
        after = dec(state)
    rec0, rec1 = before.recon.flatten(3), after.recon.flatten(3)  # [b t c n]
    m0, m1 = before.mask_logits.flatten(3), after.mask_logits.flatten(3)
    torch.testing.assert_close(rec0[..., : j + 1], rec1[..., : j + 1], rtol=0, atol=1e-6)
    torch.testing.assert_close(m0[..., : j + 1], m1[..., : j + 1], rtol=0, atol=1e-6)
    assert (rec0[..., j + 1] - rec1[..., j + 1]).abs().max() > 1e-3
    assert (m0[..., j + 1 :] - m1[..., j + 1 :]).abs().max() > 1e-6


def test_transformer_decoder_shifts_behind_the_bos_token():
    """Output patch 0 reads only the BOS token and the slots: it does not change with any target."""
    dec = _build(TransformerPatchDecoder, layers=1, heads=4).eval()
    state = _state()
    with torch.no_grad():
        a = dec(state).recon.flatten(3)[..., 0]
        state.features.tokens.normal_()
        b = dec(state).recon.flatten(3)[..., 0]
    torch.testing.assert_close(a, b)


def test_unrolled_last_layer_matches_torchs_decoder_layer():
    """The last layer, computed from its submodules to expose the cross-attention, gives the
    output of ``nn.TransformerDecoderLayer.forward``; its weights are a softmax over slots."""
    torch.manual_seed(0)
    layer = torch.nn.TransformerDecoderLayer(32, 4, 64, dropout=0.0, batch_first=True, norm_first=True).eval()
    x, mem = torch.randn(2, 7, 32), torch.randn(2, 3, 32)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(7)
    out, weights = last_layer_with_attention(layer, x, mem, mask)
    torch.testing.assert_close(out, layer(x, mem, tgt_mask=mask, tgt_is_causal=True))
    assert weights.shape == (2, 7, 3)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 7))
    q = layer.norm2(x + layer.self_attn(*(layer.norm1(x),) * 3, attn_mask=mask, need_weights=False)[0])
    w_q, w_k, _ = layer.multihead_attn.in_proj_weight.chunk(3)
    b_q, b_k, _ = layer.multihead_attn.in_proj_bias.chunk(3)
    qh = (q @ w_q.T + b_q).view(2, 7, 4, 8).transpose(1, 2)
    kh = (mem @ w_k.T + b_k).view(2, 3, 4, 8).transpose(1, 2)
    expected = ((qh @ kh.transpose(-1, -2)) / 8**0.5).softmax(-1).mean(1)  # heads averaged
    torch.testing.assert_close(weights, expected)


# -- the objective and gradients ---------------------------------------------------------------


def test_feature_mse_is_the_mean_squared_error_against_detached_features():
    recon = torch.randn(2, 1, C, *GRID, requires_grad=True)
    target = torch.randn(2, 1, C, *GRID, requires_grad=True)
    state = _state()
    state.rendering = Rendering(recon=recon, target=target)
    obj = _build(FeatureReconstruction)
    loss = obj(state)["feature_mse"]
    torch.testing.assert_close(loss, ((recon - target) ** 2).sum() / recon.numel())
    loss.backward()
    assert recon.grad is not None and target.grad is None


@pytest.mark.parametrize(
    "decoder", [{"type": "dinosaur.mlp_decoder", "hidden": [32]}, {"type": "dinosaur.transformer_decoder"}]
)
def test_gradients_reach_grouper_and_decoder_but_not_the_frozen_vit(decoder):
    overrides = ["data.resolution=[16,16]", "model.grouper.slot_dim=16", "model.grouper.mlp_hidden=32"]
    overrides.append("model.decoder=" + str(decoder).replace("'", ""))
    model = build(load(ROOT / "configs" / "dinosaur" / "shapes_32.yaml", REGISTRY, overrides), dry_run=False)
    model.train()
    batch = Batch(torch.rand(2, 1, 3, 16, 16))
    state = model(batch)
    model.total(state.losses).backward()
    assert set(state.losses) == {"feature_mse"}
    assert state.rendering.mask_logits.shape == (2, 1, 4, 4, 4)  # 4 slots on the 4x4 patch grid
    vit = model.encoder.vit
    assert not vit.training and all(p.grad is None and not p.requires_grad for p in vit.parameters())
    for part in (model.grouper, model.decoder):
        missing = [n for n, p in part.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
        assert not missing, missing
    assert model.grouper.project[1].weight.grad.abs().sum() > 0


# -- evaluation: patch masks upsampled, FG-ARI and mBO over instance masks ---------------------


def _scores(state):
    fg, mbo = FgAri(), Mbo()
    fg.update_state(state)
    mbo.update_state(state)
    return fg.compute().item(), mbo.compute().item()


def test_patch_masks_are_upsampled_and_scored_against_instance_masks():
    """A decoder rendering at the 4x6 patch grid whose masks follow two instances (2x2 patches,
    8x8-pixel blocks of a 16x24 image): evaluation upsamples the soft masks bilinearly to the
    image and takes the argmax over slots, which rounds off each block's corners that touch
    background on both sides (there the object's weight is 0.625² < 0.5): 4 pixels of instance 1,
    1 of instance 2 (its others lie on the image border).  mBO averages each instance's best IoU
    with a predicted mask, whatever the instances' ids."""
    from sklearn.metrics import adjusted_rand_score

    labels = torch.zeros(1, 1, *GRID, dtype=torch.long)
    labels[..., 1:3, 1:3] = 1
    labels[..., 2:4, 4:6] = 2
    truth = labels.repeat_interleave(4, -2).repeat_interleave(4, -1)  # [b t 16 24]
    expected = truth.clone()
    for y, x in ((4, 4), (4, 11), (11, 4), (11, 11), (8, 16)):
        expected[0, 0, y, x] = 0
    state = State(Batch(torch.rand(1, 1, 3, 16, 24), masks=truth))
    state.rendering = Rendering(recon=torch.zeros(1, 1, C, *GRID), target=torch.zeros(1, 1, C, *GRID))
    state.rendering.mask_logits = F.one_hot(labels, K).permute(0, 1, 4, 2, 3).float() * 8.0  # [b t k h' w']
    fg = truth > 0
    for swap in (False, True):
        if swap:
            state.batch.masks = torch.where(fg, 3 - truth, truth)
        ari, mbo = _scores(state)
        assert ari == pytest.approx(adjusted_rand_score(truth[fg], expected[fg]))
        assert mbo == pytest.approx((60 / 64 + 63 / 64) / 2)
    # one slot holding both instances (123 pixels after rounding): best IoUs 60/127 and 63/124
    state.rendering.mask_logits = F.one_hot(labels.clamp(max=1), K).permute(0, 1, 4, 2, 3).float() * 8.0
    ari, mbo = _scores(state)
    assert ari == pytest.approx(adjusted_rand_score(truth[fg], expected.clamp(max=1)[fg]))
    assert mbo == pytest.approx((60 / 127 + 63 / 124) / 2)
