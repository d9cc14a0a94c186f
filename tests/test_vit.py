"""vit.encoder on ocf's own ViT module (no timm needed): its output against a ViT written out by hand
below, block choice, resolution, freezing, conformance, CLI errors and training in a spec; the
timm backend's error when timm is absent. Weights files: test_vit_weights.py; the module's state-dict
layout and the cross-check against timm: test_vit_model.py."""

import math
import socket
import sys
from pathlib import Path

import pytest
import torch
import yaml

from ocf import plugins
from ocf.cli import main
from ocf.components import BuildContext
from ocf.errors import MissingDependencyError, SpecError, UserError
from ocf.records import Batch, State
from ocf.spec import read_yaml, resolve
from ocf.testing import check_component
from ocf_vit import backbone
from ocf_vit.encoder import ViTEncoder
from ocf_vit.model import VisionTransformer

ROOT = Path(__file__).resolve().parents[1]
ARCH = "vit_tiny_patch16_224"
TINY = {"patch_size": 4, "embed_dim": 32, "depth": 3, "num_heads": 2}
TOL = {"rtol": 1e-4, "atol": 1e-4}  # float32 against the float64 reference, through up to 3 blocks
TOL64 = {"rtol": 1e-10, "atol": 1e-10}  # the encoder in float64 against the reference
VARIANTS = {  # DINO / MAE; DINOv2 (LayerScale); DINOv2 with registers (no position embedding for prefix tokens)
    "dino": {},
    "dinov2": {"init_values": 1e-5},
    "dinov2_reg": {"init_values": 1e-5, "reg_tokens": 2, "no_embed_class": True},
}


# ---- a ViT written out by hand, in float64, from a state dict ---------------------------------------------


def ref_layer_norm(x, sd, name):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + 1e-6) * sd[f"{name}.weight"] + sd[f"{name}.bias"]


def ref_linear(x, sd, name):
    return x @ sd[f"{name}.weight"].T + sd[f"{name}.bias"]


def ref_attention(x, sd, name, heads):
    b, n, c = x.shape
    d = c // heads
    qkv = ref_linear(x, sd, f"{name}.qkv")  # rows: queries of all heads, then keys, then values
    q, k, v = (qkv[..., i * c : (i + 1) * c].reshape(b, n, heads, d).transpose(1, 2) for i in range(3))
    scores = q @ k.transpose(-1, -2) / math.sqrt(d)
    weights = torch.exp(scores - scores.amax(-1, keepdim=True))
    weights = weights / weights.sum(-1, keepdim=True)
    return ref_linear((weights @ v).transpose(1, 2).reshape(b, n, c), sd, f"{name}.proj")


def ref_vit(state_dict, images, *, heads, patch, upto, norm=False):
    """The tokens [B p+n C] after block ``upto`` of the ViT with weights ``state_dict``."""
    sd = {k: v.double() for k, v in state_dict.items()}
    b, c, h, w = images.shape
    gh, gw = h // patch, w // patch
    pieces = images.double().reshape(b, c, gh, patch, gw, patch).permute(0, 2, 4, 1, 3, 5)
    pieces = pieces.reshape(b, gh * gw, c * patch * patch)  # each patch flattened as (channel, row, column)
    kernel = sd["patch_embed.proj.weight"].reshape(-1, c * patch * patch)
    tokens = pieces @ kernel.T + sd["patch_embed.proj.bias"]
    prefix = [sd["cls_token"].expand(b, -1, -1)] + ([sd["reg_token"].expand(b, -1, -1)] if "reg_token" in sd else [])
    if sd["pos_embed"].shape[1] == gh * gw:  # positions for the patches only
        x = torch.cat([*prefix, tokens + sd["pos_embed"]], dim=1)
    else:
        x = torch.cat([*prefix, tokens], dim=1) + sd["pos_embed"]
    for i in range(upto + 1):
        blk = f"blocks.{i}"
        ls1, ls2 = sd.get(f"{blk}.ls1.gamma", 1.0), sd.get(f"{blk}.ls2.gamma", 1.0)
        x = x + ls1 * ref_attention(ref_layer_norm(x, sd, f"{blk}.norm1"), sd, f"{blk}.attn", heads)
        hidden = ref_linear(ref_layer_norm(x, sd, f"{blk}.norm2"), sd, f"{blk}.mlp.fc1")
        hidden = 0.5 * hidden * (1 + torch.erf(hidden / math.sqrt(2)))  # exact GELU
        x = x + ls2 * ref_linear(hidden, sd, f"{blk}.mlp.fc2")
    return ref_layer_norm(x, sd, "norm") if norm else x


# ---- helpers ------------------------------------------------------------------------------------------


def save(obj, path: Path) -> Path:
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(obj, str(path))
    else:
        torch.save(obj, path)
    return path


def random_state(seed=0, img_size=16, **args):
    """Random values (std 0.5, not the initialisation's) for every key of a tiny ViT's state dict."""
    shapes = backbone.create_vit(ARCH, {**TINY, **args}, (img_size, img_size)).state_dict()
    g = torch.Generator().manual_seed(seed)
    return {k: 0.5 * torch.randn(v.shape, generator=g) for k, v in shapes.items()}


def encoder(weights, *, data_res=(16, 16), frames=1, arch_args=None, **params):
    raw = {"arch": ARCH, "arch_args": arch_args or TINY, "weights": str(weights), **params}
    ctx = BuildContext(channels=3, frames=frames, resolution=data_res)
    return ViTEncoder(ViTEncoder.Spec.model_validate(raw), ctx), ctx


def frames_state(b=2, t=1, hw=16, seed=1):
    g = torch.Generator().manual_seed(seed)
    return State(Batch(torch.rand(b, t, 3, hw, hw, generator=g)))


def normalised(frames):
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (frames.flatten(0, 1) - mean) / std


# ---- vit.encoder on ocf's module --------------------------------------------------------------------------


@pytest.mark.parametrize(("variant", "suffix"), [("dino", ".pt"), ("dinov2", ".safetensors"), ("dinov2_reg", ".pt")])
def test_loaded_weights_give_the_hand_written_vits_output(tmp_path, variant, suffix):
    args = {**TINY, "depth": 1, **VARIANTS[variant]}
    sd = random_state(**args)
    enc, ctx = encoder(save(sd, tmp_path / f"vit{suffix}"), arch_args=args, final_norm=True, prefix_tokens="extras")
    assert isinstance(enc.vit, VisionTransformer)
    state = frames_state(t=3)
    out = enc(state)
    prefix = 1 + args.get("reg_tokens", 0)
    assert out.tokens.shape == (2, 3, 16, 32) and out.grid == (4, 4)
    assert out.extras["prefix_tokens"].shape == (2, 3, prefix, 32)
    assert ctx.dims["features.tokens"] == 32 and ctx.dims["features.grid"] == (4, 4)
    expected = ref_vit(sd, normalised(state.batch.frames.double()), heads=2, patch=4, upto=0, norm=True)
    torch.testing.assert_close(out.tokens.flatten(0, 1), expected[:, prefix:].float(), **TOL)
    torch.testing.assert_close(out.extras["prefix_tokens"].flatten(0, 1), expected[:, :prefix].float(), **TOL)
    out = enc.double()(State(Batch(state.batch.frames.double())))  # the same computation in float64
    torch.testing.assert_close(out.tokens.flatten(0, 1), expected[:, prefix:], **TOL64)
    torch.testing.assert_close(out.extras["prefix_tokens"].flatten(0, 1), expected[:, :prefix], **TOL64)
    assert enc.weights_digest.startswith("sha256:")


@pytest.mark.parametrize("block", [0, 1, -1, -2])
def test_block_selects_that_blocks_output(tmp_path, block):
    args = {**TINY, **VARIANTS["dinov2_reg"]}
    sd = random_state(**args)
    enc, _ = encoder(save(sd, tmp_path / "vit.pt"), arch_args=args, block=block, prefix_tokens="extras")
    state = frames_state()
    out = enc(state)
    expected = ref_vit(sd, normalised(state.batch.frames.double()), heads=2, patch=4, upto=block % 3)
    torch.testing.assert_close(out.tokens[:, 0], expected[:, 3:].float(), **TOL)
    out = enc.double()(State(Batch(state.batch.frames.double())))
    torch.testing.assert_close(out.tokens[:, 0], expected[:, 3:], **TOL64)
    torch.testing.assert_close(out.extras["prefix_tokens"][:, 0], expected[:, :3], **TOL64)  # class, 2 registers
    assert len(enc.vit.blocks) == block % 3 + 1  # later blocks are not kept
    assert not any(k.startswith("norm.") for k in enc.vit.state_dict())  # nor the unused final norm


def test_block_out_of_range_is_a_spec_error():
    with pytest.raises(UserError, match=r"block: 3 is out of range for 3 blocks"):
        encoder("random", block=3)
    with pytest.raises(UserError, match=r"block: -4 is out of range for 3 blocks"):
        encoder("random", block=-4)


@pytest.mark.parametrize("variant", ["dino", "dinov2_reg"])
def test_resolution_resamples_position_embeddings(tmp_path, variant):
    args = {**TINY, **VARIANTS[variant]}
    sd = random_state(**args)  # a 4x4 grid of position embeddings in the file
    kept = 0 if variant == "dinov2_reg" else 1  # rows before the grid: the class token's, or none
    level = torch.randn(32)
    sd["pos_embed"][:, kept:] = level  # the same embedding at every position
    enc, ctx = encoder(save(sd, tmp_path / "vit.safetensors"), arch_args=args, resolution=(24, 32))
    assert enc.vit.pos_embed.shape == (1, kept + 6 * 8, 32) and ctx.dims["features.grid"] == (6, 8)
    torch.testing.assert_close(enc.vit.pos_embed[:, :kept], sd["pos_embed"][:, :kept])  # the class token's row
    torch.testing.assert_close(enc.vit.pos_embed[0, kept:], level.expand(48, 32))  # bicubic keeps a constant
    out = enc(frames_state(hw=16))  # data at 16x16, resized to 24x32 for the ViT
    assert out.tokens.shape == (2, 1, 48, 32) and out.grid == (6, 8) and torch.isfinite(out.tokens).all()
    with pytest.raises(UserError, match=r"resolution: \[18, 16\] is not a multiple of the patch size \[4, 4\]"):
        encoder("random", resolution=(18, 16))


def test_frozen_stays_in_eval_without_gradients(tmp_path):
    args = {**TINY, "drop_path_rate": 0.5}
    path = save(random_state(**args), tmp_path / "vit.pt")
    enc, _ = encoder(path, arch_args=args)
    enc.train()
    assert not any(p.requires_grad for p in enc.parameters())
    assert not any(m.training for m in enc.vit.modules()) and enc.training
    state = frames_state()
    first, second = enc(state).tokens, enc(state).tokens
    torch.testing.assert_close(first, second)  # drop-path stays off
    assert not first.requires_grad
    tuned, _ = encoder(path, arch_args=args, frozen=False)
    tuned.train()
    assert all(p.requires_grad for p in tuned.parameters()) and tuned.vit.training
    torch.manual_seed(0)
    first, second = tuned(state).tokens, tuned(state).tokens
    assert not torch.allclose(first, second)  # drop-path is on while fine-tuning
    second.sum().backward()
    assert all(p.grad is not None for p in tuned.parameters())
    tuned.eval()
    torch.testing.assert_close(tuned(state).tokens, enc(state).tokens)  # same weights, evaluation mode


def test_no_network_is_attempted_and_documented_archs_have_the_released_widths(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    path = save(random_state(), tmp_path / "vit.safetensors")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    enc, _ = encoder(path)
    enc(frames_state())
    widths = {  # width, prefix tokens (class + registers)
        "vit_small_patch16_224.dino": (384, 1),
        "vit_base_patch16_224.dino": (768, 1),
        "vit_small_patch14_dinov2.lvd142m": (384, 1),
        "vit_base_patch14_dinov2.lvd142m": (768, 1),
        "vit_small_patch14_reg4_dinov2.lvd142m": (384, 5),
        "vit_base_patch14_reg4_dinov2.lvd142m": (768, 5),
        "vit_base_patch16_224.mae": (768, 1),
    }
    assert set(widths) == set(backbone.DOCUMENTED_ARCHS)
    for arch, (width, prefix) in widths.items():  # the released architectures are created and run offline
        patch = 14 if "14" in arch else 16
        spec = ViTEncoder.Spec(arch=arch, weights="random", block=0, prefix_tokens="extras")
        enc = ViTEncoder(spec, BuildContext(channels=3, frames=1, resolution=(2 * patch, 2 * patch)))
        assert isinstance(enc.vit, VisionTransformer) and len(enc.vit.blocks) == 1
        out = enc(frames_state(b=1, hw=2 * patch))
        assert out.tokens.shape == (1, 1, 4, width), arch
        assert out.extras["prefix_tokens"].shape == (1, 1, prefix, width), arch


def test_unknown_arch_or_argument_is_a_spec_error():
    with pytest.raises(SpecError, match=r"arch: ocf's ViT has no architecture 'vit_huge_patch99'; it has vit_tiny"):
        encoder("random", arch="vit_huge_patch99")
    with pytest.raises(SpecError, match=r"arch_args: unknown architecture arguments \['global_pool'\]"):
        encoder("random", arch_args={**TINY, "global_pool": "avg"})
    with pytest.raises(SpecError, match=r"embed_dim 32 is not a multiple of num_heads 3"):
        encoder("random", arch_args={**TINY, "num_heads": 3})


def test_conformance_with_a_file_and_video(tmp_path):
    path = save(random_state(), tmp_path / "vit.pt")
    params = {"arch": ARCH, "arch_args": TINY, "weights": str(path)}
    check_component(ViTEncoder, params, frames=3)
    check_component(ViTEncoder, {**params, "frozen": False, "backend": "ocf"})


def test_cli_exits_2_naming_file_and_keys(tmp_path, capsys):
    spec = ROOT / "configs" / "vit" / "shapes_32.yaml"
    wrong = save(random_state(img_size=32, embed_dim=48), tmp_path / "wide.safetensors")
    assert main(["build", str(spec), f"model.encoder.weights={wrong}"]) == 2
    err = capsys.readouterr().err
    assert "wide.safetensors does not match vit_tiny_patch16_224" in err
    assert "shape mismatches: cls_token: file [1, 1, 48], model [1, 1, 64]" in err and "Traceback" not in err
    assert main(["build", str(spec), f"model.encoder.weights={tmp_path / 'none.pt'}"]) == 2
    assert "none.pt does not exist" in capsys.readouterr().err


def test_random_weights_file_trains_in_the_cpu_config(tmp_path):
    from safetensors.torch import load_file

    from ocf.run import train
    from ocf_vit.random_weights import main as random_weights

    out = tmp_path / "vit_tiny_p4.safetensors"
    args = ["--arg", "patch_size=4", "--arg", "embed_dim=64", "--arg", "depth=2", "--arg", "num_heads=2"]
    assert random_weights([ARCH, str(out), *args, "--arg", "img_size=32"]) == 0
    d = read_yaml(ROOT / "configs" / "vit" / "shapes_32.yaml")
    d["data"].update(path=str(tmp_path / "shapes.h5"), generate={"n": 48, "seed": 0})
    d["model"]["encoder"].update(weights=str(out), frozen=True)
    d["train"].update(steps=3, batch_size=8, log_every=1)
    d["eval"] = {"metrics": ["mse"]}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(d))
    run = train.run(resolve(d, plugins.default().registry), out=str(tmp_path / "run"), progress=False)
    trained = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]
    written = load_file(str(out))
    kept = [k.removeprefix("encoder.vit.") for k in trained if k.startswith("encoder.vit.")]
    assert "blocks.1.attn.qkv.weight" in kept and "norm.weight" not in kept  # the final norm is not used
    assert len(kept) == len(written) - 2
    for k in kept:  # the frozen backbone is the file's, untouched by training
        torch.testing.assert_close(trained[f"encoder.vit.{k}"], written[k], rtol=0, atol=0)
    assert any(not k.startswith("encoder.") for k in trained)  # the rest of the model is there and trained
    assert main(["eval", str(run), "--json"]) == 0


def test_random_weights_refuses_an_unknown_argument(tmp_path, capsys):
    from ocf_vit.random_weights import main as random_weights

    assert random_weights([ARCH, str(tmp_path / "w.pt"), "--arg", "global_pool=avg"]) == 2
    assert "unknown architecture arguments ['global_pool']" in capsys.readouterr().err
    assert not (tmp_path / "w.pt").exists()


# ---- backends ---------------------------------------------------------------------------------------------


def test_without_timm_auto_uses_ocf_and_timm_says_what_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "timm", None)  # as if timm were not installed
    enc, _ = encoder("random")
    assert isinstance(enc.vit, VisionTransformer) and enc(frames_state()).tokens.shape == (2, 1, 16, 32)
    with pytest.raises(MissingDependencyError, match=r"needs timm.*pip install 'ocf\[vit\]'.*or use backend ocf"):
        encoder("random", backend="timm")
    spec = ROOT / "configs" / "vit" / "shapes_32.yaml"
    assert main(["build", str(spec), "model.encoder.backend=timm"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'ocf[vit]'" in err and "Traceback" not in err
    with pytest.raises(MissingDependencyError) as exc:
        backbone.import_timm()
    assert isinstance(exc.value, UserError) and exc.value.exit_code == 2


def test_an_unknown_backend_is_refused(capsys):
    spec = ROOT / "configs" / "vit" / "shapes_32.yaml"
    assert main(["build", str(spec), "model.encoder.backend=jax"]) == 2
    err = capsys.readouterr().err
    assert "model.encoder.backend" in err and "'auto', 'ocf' or 'timm'" in err


def test_the_plugin_lists_the_encoder():
    info = plugins.default().info["vit"]
    assert info.status == "ok", info.error
    assert ("encoder", "vit.encoder") in info.entries
