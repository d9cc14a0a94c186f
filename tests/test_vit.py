"""The vit plugin: weights files (formats, released key layouts, refusals), and vit.encoder
against timm's own modules (block choice, resolution, freezing, training in a spec).

The weights-file tests need neither timm nor the network. The encoder tests need timm
(``pip install 'ocf[vit]'``); without it they are skipped with the import error as reason."""

import argparse
import pickle
import socket
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from ocf import plugins
from ocf.cli import main
from ocf.components import BuildContext
from ocf.errors import MissingDependencyError, UserError
from ocf.records import Batch, State
from ocf.spec import read_yaml, resolve
from ocf.testing import check_component
from ocf_vit import backbone
from ocf_vit.weights import WeightsError, load_weights

ROOT = Path(__file__).resolve().parents[1]
TINY = {"patch_size": 4, "embed_dim": 32, "depth": 3, "num_heads": 2}


def timm_problem() -> str | None:
    try:
        backbone.import_timm()
    except MissingDependencyError as exc:
        return str(exc)
    return None


needs_timm = pytest.mark.skipif(timm_problem() is not None, reason=f"timm is not usable: {timm_problem()}")


class Toy(nn.Module):
    """A module with a ViT's top-level key layout and no timm: cls_token, pos_embed, blocks.0.fc."""

    def __init__(self, c=4, n=5):
        super().__init__()
        self.cls_token = nn.Parameter(torch.randn(1, 1, c))
        self.pos_embed = nn.Parameter(torch.randn(1, n, c))
        self.blocks = nn.Sequential(nn.Linear(c, c))


def save(obj, path: Path) -> Path:
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(obj, str(path))
    else:
        torch.save(obj, path)
    return path


def assert_same(module: nn.Module, state: dict) -> None:
    got = module.state_dict()
    assert set(got) == set(state)
    for k, v in state.items():
        torch.testing.assert_close(got[k], v, rtol=0, atol=0)


# ---- weights files, without timm ------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_a_state_dict_file_loads_exactly(tmp_path, suffix):
    source, target = Toy(), Toy()
    digest = load_weights(target, save(source.state_dict(), tmp_path / f"w{suffix}"))
    assert_same(target, source.state_dict())
    assert digest.startswith("sha256:") and len(digest) == 7 + 64


def test_released_layouts_are_normalised(tmp_path):
    source = Toy()
    sd = source.state_dict()
    dino_full = {  # a DINO training checkpoint: DDP student, multi-crop wrapped teacher with a head, arguments
        "teacher": {**{f"backbone.{k}": v for k, v in sd.items()}, "head.last_layer.weight": torch.ones(2, 4)},
        "student": {f"module.backbone.{k}": v * 0 for k, v in sd.items()},
        "args": argparse.Namespace(arch="vit_small"),
        "epoch": 100,
    }
    target = Toy()
    load_weights(target, save(dino_full, tmp_path / "dino.pth"))
    assert_same(target, sd)  # the teacher, by default
    load_weights(target, tmp_path / "dino.pth", key="student")
    assert all((v == 0).all() for v in target.state_dict().values())
    mae = {"model": {**sd, "mask_token": torch.zeros(1, 1, 4), "decoder_embed.weight": torch.ones(8, 4)}}
    load_weights(target, save(mae, tmp_path / "mae.pth"))
    assert_same(target, sd)


def test_dinov2_registers_are_converted(tmp_path):
    class Reg(Toy):  # timm's register layout: reg_token, no position embedding for the prefix tokens
        def __init__(self):
            super().__init__(n=4)
            self.reg_token = nn.Parameter(torch.randn(1, 2, 4))

    source = Reg()
    cls_pos = torch.randn(1, 1, 4)
    released = {  # DINOv2's own layout: register_tokens, pos_embed with the class token's row first
        "cls_token": source.cls_token.detach() - cls_pos,
        "pos_embed": torch.cat([cls_pos, source.pos_embed.detach()], dim=1),
        "register_tokens": source.reg_token.detach(),
        "mask_token": torch.zeros(1, 4),
        "blocks.0.weight": source.blocks[0].weight.detach(),
        "blocks.0.bias": source.blocks[0].bias.detach(),
    }
    target = Reg()
    load_weights(target, save(released, tmp_path / "dinov2_reg.pth"))
    for k, v in source.state_dict().items():
        torch.testing.assert_close(target.state_dict()[k], v)


def test_missing_and_corrupt_files_name_the_file(tmp_path):
    with pytest.raises(WeightsError, match=r"weights file .*absent\.pth does not exist"):
        load_weights(Toy(), tmp_path / "absent.pth")
    for name in ("bad.safetensors", "bad.pth"):
        (tmp_path / name).write_bytes(b"\x00garbage" * 10)
        with pytest.raises(WeightsError, match=rf"weights file .*{name} is not a readable"):
            load_weights(Toy(), tmp_path / name)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(save(Toy().state_dict(), tmp_path / "ok.safetensors").read_bytes()[:-7])
    with pytest.raises(WeightsError, match="truncated.safetensors is not a readable safetensors file"):
        load_weights(Toy(), truncated)


class Payload:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_pickled_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"cls_token": Payload()}, protocol=2))
    with pytest.raises(WeightsError, match="weights_only=True"):
        load_weights(Toy(), path)
    assert "pickled code ran" not in capsys.readouterr().out


def test_mismatched_keys_and_shapes_are_listed(tmp_path):
    sd = Toy().state_dict()
    wrong_keys = {"cls_token": sd["cls_token"], "pos_embed": sd["pos_embed"], "blocks.9.weight": torch.ones(3, 3)}
    with pytest.raises(WeightsError) as err:
        load_weights(Toy(), save(wrong_keys, tmp_path / "keys.pth"), arch="toy")
    msg = str(err.value)
    assert "keys.pth does not match toy" in msg
    assert "2 missing keys: blocks.0.weight [4, 4], blocks.0.bias [4]" in msg
    assert "1 unexpected keys: blocks.9.weight [3, 3]" in msg
    wider = Toy(c=6, n=5).state_dict()
    with pytest.raises(WeightsError) as err:
        load_weights(Toy(), save(wider, tmp_path / "shapes.safetensors"))
    msg = str(err.value)
    assert "shapes.safetensors" in msg and "4 shape mismatches: cls_token: file [1, 1, 6], model [1, 1, 4]" in msg
    assert "missing" not in msg and "unexpected" not in msg


def test_no_state_dict_and_bad_checkpoint_key(tmp_path):
    with pytest.raises(WeightsError, match=r"holds no state dict of tensors \(found: epoch, args\)"):
        load_weights(Toy(), save({"epoch": 1, "args": [1, 2]}, tmp_path / "meta.pth"))
    with pytest.raises(WeightsError, match=r"has no entry 'student' \(checkpoint_key\); it has teacher"):
        load_weights(Toy(), save({"teacher": Toy().state_dict()}, tmp_path / "t.pth"), key="student")


def test_without_timm_the_encoder_says_what_to_install(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "timm", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'ocf\[vit\]'") as err:
        backbone.import_timm()
    assert isinstance(err.value, UserError) and err.value.exit_code == 2


def test_the_plugin_lists_the_encoder():
    info = plugins.default().info["vit"]
    assert info.status == "ok", info.error
    assert ("encoder", "vit.encoder") in info.entries


# ---- vit.encoder, with timm ----------------------------------------------------------------------


def tiny_vit(seed=0, img_size=16, **args):
    torch.manual_seed(seed)
    return backbone.create_vit("vit_tiny_patch16_224", {**TINY, **args}, (img_size, img_size)).eval()


def encoder(weights, *, data_res=(16, 16), frames=1, **params):
    from ocf_vit.encoder import ViTEncoder

    spec = ViTEncoder.Spec(arch="vit_tiny_patch16_224", arch_args=params.pop("arch_args", TINY), weights=str(weights))
    spec = spec.model_copy(update=params)
    ctx = BuildContext(channels=3, frames=frames, resolution=data_res)
    return ViTEncoder(ViTEncoder.Spec.model_validate(spec.model_dump()), ctx), ctx


def frames_state(b=2, t=1, hw=16, seed=1):
    g = torch.Generator().manual_seed(seed)
    return State(Batch(torch.rand(b, t, 3, hw, hw, generator=g)))


def normalised(frames):
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (frames.flatten(0, 1) - mean) / std


def manual_blocks(vit, x, upto):
    """The tokens after block ``upto``, run by hand through timm's modules."""
    x = vit.norm_pre(vit._pos_embed(vit.patch_embed(x)))
    for blk in vit.blocks[: upto + 1]:
        x = blk(x)
    return x


@needs_timm
@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_loaded_weights_give_timms_output(tmp_path, suffix):
    source = tiny_vit()
    path = save(dict(source.state_dict()), tmp_path / f"vit{suffix}")
    enc, ctx = encoder(path, final_norm=True)
    state = frames_state(t=3)
    out = enc(state)
    assert out.tokens.shape == (2, 3, 16, 32) and out.grid == (4, 4)
    assert ctx.dims["features.tokens"] == 32 and ctx.dims["features.grid"] == (4, 4)
    with torch.no_grad():
        expected = source.forward_features(normalised(state.batch.frames))[:, 1:]  # timm: all blocks, norm
    torch.testing.assert_close(out.tokens.flatten(0, 1), expected)
    assert enc.weights_digest.startswith("sha256:")


@needs_timm
@pytest.mark.parametrize("block", [0, 1, -1, -2])
def test_block_selects_that_blocks_output(tmp_path, block):
    source = tiny_vit()
    enc, _ = encoder(save(dict(source.state_dict()), tmp_path / "vit.pt"), block=block, prefix_tokens="extras")
    state = frames_state()
    out = enc(state)
    with torch.no_grad():
        x = manual_blocks(source, normalised(state.batch.frames), block % 3)
    torch.testing.assert_close(out.tokens[:, 0], x[:, 1:])
    torch.testing.assert_close(out.extras["prefix_tokens"][:, 0], x[:, :1])  # the class token
    assert len(enc.vit.blocks) == block % 3 + 1  # later blocks are not kept


@needs_timm
def test_block_out_of_range_is_a_spec_error(tmp_path):
    with pytest.raises(UserError, match=r"block: 3 is out of range for 3 blocks"):
        encoder("random", block=3)


@needs_timm
def test_resolution_resamples_position_embeddings(tmp_path):
    source = tiny_vit(img_size=16)  # a 4x4 grid of position embeddings in the file
    path = save(dict(source.state_dict()), tmp_path / "vit.safetensors")
    enc, ctx = encoder(path, resolution=(24, 32))
    assert enc.vit.pos_embed.shape == (1, 1 + 6 * 8, 32) and ctx.dims["features.grid"] == (6, 8)
    torch.testing.assert_close(enc.vit.pos_embed[:, :1], source.pos_embed[:, :1])  # the class token's row kept
    out = enc(frames_state(hw=16))  # data at 16x16, resized to 24x32 for the ViT
    assert out.tokens.shape == (2, 1, 48, 32) and out.grid == (6, 8)
    with pytest.raises(UserError, match=r"resolution: \[18, 16\] is not a multiple of the patch size \[4, 4\]"):
        encoder(path, resolution=(18, 16))


@needs_timm
def test_frozen_stays_in_eval_without_gradients(tmp_path):
    path = save(dict(tiny_vit(drop_path_rate=0.5).state_dict()), tmp_path / "vit.pt")
    enc, _ = encoder(path, arch_args={**TINY, "drop_path_rate": 0.5})
    enc.train()
    assert not any(p.requires_grad for p in enc.parameters())
    assert not any(m.training for m in enc.vit.modules()) and enc.training
    state = frames_state()
    first, second = enc(state).tokens, enc(state).tokens
    torch.testing.assert_close(first, second)  # drop-path stays off
    assert not first.requires_grad
    tuned, _ = encoder(path, arch_args={**TINY, "drop_path_rate": 0.5}, frozen=False)
    tuned.train()
    assert all(p.requires_grad for p in tuned.parameters()) and tuned.vit.training
    tuned(state).tokens.sum().backward()
    assert all(p.grad is not None for p in tuned.parameters())


@needs_timm
def test_no_network_is_attempted(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    path = save(dict(tiny_vit().state_dict()), tmp_path / "vit.safetensors")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    enc, _ = encoder(path)
    enc(frames_state())
    from ocf_vit.encoder import ViTEncoder

    for arch in backbone.DOCUMENTED_ARCHS:  # the released architectures are created offline too
        spec = ViTEncoder.Spec(arch=arch, weights="random", block=0, resolution=(28, 28) if "14" in arch else None)
        ViTEncoder(spec, BuildContext(channels=3, frames=1, resolution=(32, 32)))


@needs_timm
def test_documented_archs_have_the_released_shapes():
    from ocf_vit.encoder import ViTEncoder

    expected = {  # patch size, width, depth, prefix tokens (class + registers)
        "vit_small_patch16_224.dino": (16, 384, 12, 1),
        "vit_base_patch16_224.dino": (16, 768, 12, 1),
        "vit_small_patch14_dinov2.lvd142m": (14, 384, 12, 1),
        "vit_base_patch14_dinov2.lvd142m": (14, 768, 12, 1),
        "vit_small_patch14_reg4_dinov2.lvd142m": (14, 384, 12, 5),
        "vit_base_patch14_reg4_dinov2.lvd142m": (14, 768, 12, 5),
        "vit_base_patch16_224.mae": (16, 768, 12, 1),
    }
    assert set(expected) == set(backbone.DOCUMENTED_ARCHS)
    for arch, (patch, width, depth, prefix) in expected.items():
        vit = backbone.create_vit(arch, {})
        assert (vit.patch_embed.patch_size[0], vit.embed_dim, len(vit.blocks), vit.num_prefix_tokens) == (
            patch,
            width,
            depth,
            prefix,
        ), arch
    enc = ViTEncoder(
        ViTEncoder.Spec(arch="vit_small_patch14_reg4_dinov2.lvd142m", weights="random", block=0, resolution=(28, 28)),
        BuildContext(channels=3, frames=1, resolution=(28, 28)),
    )
    assert enc(frames_state(hw=28)).tokens.shape == (2, 1, 4, 384)  # registers dropped


@needs_timm
def test_conformance_with_a_file_and_video(tmp_path):
    path = save(dict(tiny_vit().state_dict()), tmp_path / "vit.pt")
    params = {"arch": "vit_tiny_patch16_224", "arch_args": TINY, "weights": str(path)}
    check_component(__import__("ocf_vit.encoder").encoder.ViTEncoder, params, frames=3)
    check_component(__import__("ocf_vit.encoder").encoder.ViTEncoder, {**params, "frozen": False})


@needs_timm
def test_cli_exits_2_naming_file_and_keys(tmp_path, capsys):
    spec = ROOT / "configs" / "vit" / "shapes_32.yaml"
    wrong = save(dict(tiny_vit(img_size=32, embed_dim=48).state_dict()), tmp_path / "wide.safetensors")
    assert main(["build", str(spec), f"model.encoder.weights={wrong}"]) == 2
    err = capsys.readouterr().err
    assert "wide.safetensors does not match vit_tiny_patch16_224" in err
    assert "shape mismatches: cls_token: file [1, 1, 48], model [1, 1, 64]" in err and "Traceback" not in err
    assert main(["build", str(spec), f"model.encoder.weights={tmp_path / 'none.pt'}"]) == 2
    assert "none.pt does not exist" in capsys.readouterr().err


@needs_timm
def test_random_weights_file_trains_in_the_cpu_config(tmp_path):
    from ocf.run import train
    from ocf_vit.random_weights import main as random_weights

    out = tmp_path / "vit_tiny_p4.safetensors"
    args = ["--arg", "patch_size=4", "--arg", "embed_dim=64", "--arg", "depth=2", "--arg", "num_heads=2"]
    assert random_weights(["vit_tiny_patch16_224", str(out), *args, "--arg", "img_size=32"]) == 0
    d = read_yaml(ROOT / "configs" / "vit" / "shapes_32.yaml")
    d["data"].update(path=str(tmp_path / "shapes.h5"), generate={"n": 48, "seed": 0})
    d["model"]["encoder"].update(weights=str(out), frozen=True)
    d["train"].update(steps=3, batch_size=8, log_every=1)
    d["eval"] = {"metrics": ["mse"]}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(d))
    run = train.run(resolve(d, plugins.default().registry), out=str(tmp_path / "run"), progress=False)
    trained = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]
    from safetensors.torch import load_file

    written = load_file(str(out))
    kept = [k.removeprefix("encoder.vit.") for k in trained if k.startswith("encoder.vit.")]
    assert "blocks.1.attn.qkv.weight" in kept and "norm.weight" not in kept  # the final norm is not used
    for k in kept:  # the frozen backbone is the file's, untouched by training
        torch.testing.assert_close(trained[f"encoder.vit.{k}"], written[k], rtol=0, atol=0)
    assert main(["eval", str(run), "--json"]) == 0
