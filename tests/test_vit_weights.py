"""The vit plugin's weights files: formats, the released checkpoints' key layouts, and the refusal of
missing, corrupt, code-carrying or mismatched files. Neither timm nor the network is needed."""

import argparse
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from ocf_vit.weights import WeightsError, load_weights


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
