"""ocf's ViT module (ocf_vit.model): the state-dict layout of every documented architecture (built on
the meta device, no timm needed), position-embedding resampling, and, where timm can be imported,
the cross-check that timm's VisionTransformer and ocf's compute the same thing from the same weights."""

import pytest
import torch
from torch import nn

from ocf.components import BuildContext
from ocf.errors import MissingDependencyError
from ocf.records import Batch, State
from ocf_vit import backbone
from ocf_vit.encoder import ViTEncoder
from ocf_vit.model import LayerScale, VisionTransformer, config, resample_pos_embed

# ---- the released architectures' state-dict layout (timm's VisionTransformer keys, num_classes=0) ----------


def block0(width, hidden, layerscale):
    """Keys and shapes of block 0 (every block has the same with its own index)."""
    keys = {
        "blocks.0.norm1.weight": (width,),
        "blocks.0.norm1.bias": (width,),
        "blocks.0.attn.qkv.weight": (3 * width, width),
        "blocks.0.attn.qkv.bias": (3 * width,),
        "blocks.0.attn.proj.weight": (width, width),
        "blocks.0.attn.proj.bias": (width,),
        "blocks.0.norm2.weight": (width,),
        "blocks.0.norm2.bias": (width,),
        "blocks.0.mlp.fc1.weight": (hidden, width),
        "blocks.0.mlp.fc1.bias": (hidden,),
        "blocks.0.mlp.fc2.weight": (width, hidden),
        "blocks.0.mlp.fc2.bias": (width,),
    }
    if layerscale:
        keys.update({"blocks.0.ls1.gamma": (width,), "blocks.0.ls2.gamma": (width,)})
    return keys


# arch: (image size, patch, width, MLP hidden, depth, registers, pos_embed rows, LayerScale init, total keys)
# pos_embed rows: 1 + (224/16)^2 = 197 with the class token; 1 + (518/14)^2 = 1370; 37^2 = 1369 without it.
LAYOUTS = {
    "vit_small_patch16_224.dino": (224, 16, 384, 1536, 12, 0, 197, None, 150),
    "vit_base_patch16_224.dino": (224, 16, 768, 3072, 12, 0, 197, None, 150),
    "vit_small_patch14_dinov2.lvd142m": (518, 14, 384, 1536, 12, 0, 1370, 1e-5, 174),
    "vit_base_patch14_dinov2.lvd142m": (518, 14, 768, 3072, 12, 0, 1370, 1e-5, 174),
    "vit_small_patch14_reg4_dinov2.lvd142m": (518, 14, 384, 1536, 12, 4, 1369, 1e-5, 175),
    "vit_base_patch14_reg4_dinov2.lvd142m": (518, 14, 768, 3072, 12, 4, 1369, 1e-5, 175),
    "vit_base_patch16_224.mae": (224, 16, 768, 3072, 12, 0, 197, None, 150),
}


def shapes(module):
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def test_every_documented_arch_has_a_layout():
    assert set(LAYOUTS) == set(backbone.DOCUMENTED_ARCHS)


@pytest.mark.parametrize("arch", list(LAYOUTS))
def test_state_dict_layout_of_the_released_architectures(arch):
    img, patch, width, hidden, depth, regs, rows, init, total = LAYOUTS[arch]
    with torch.device("meta"):  # full size, nothing allocated
        vit = backbone.create_vit(arch, {})
    assert isinstance(vit, VisionTransformer) and all(p.is_meta for p in vit.parameters())
    got = shapes(vit)
    assert len(got) == total
    top = {
        "cls_token": (1, 1, width),
        "pos_embed": (1, rows, width),
        "patch_embed.proj.weight": (width, 3, patch, patch),
        "patch_embed.proj.bias": (width,),
        "norm.weight": (width,),
        "norm.bias": (width,),
        **({"reg_token": (1, regs, width)} if regs else {}),
    }
    assert {k: v for k, v in got.items() if not k.startswith("blocks.")} == top
    for i in range(depth):
        block = {k.replace(f"blocks.{i}.", "blocks.0.", 1): v for k, v in got.items() if k.startswith(f"blocks.{i}.")}
        assert block == block0(width, hidden, init is not None), f"block {i}"
    assert vit.patch_embed.img_size == (img, img) and vit.num_prefix_tokens == 1 + regs
    assert all(m.eps == 1e-6 for m in vit.modules() if isinstance(m, nn.LayerNorm))
    assert sum(isinstance(m, nn.LayerNorm) for m in vit.modules()) == 2 * depth + 1
    scales = [m.init_values for m in vit.modules() if isinstance(m, LayerScale)]
    assert scales == ([init] * 2 * depth if init is not None else [])


# ---- position embeddings for other grids -------------------------------------------------------------------


def test_resampling_keeps_prefix_rows_and_the_same_grid():
    pos = torch.randn(1, 1 + 16, 8)
    assert resample_pos_embed(pos, (4, 4), (4, 4), 1) is pos
    out = resample_pos_embed(pos, (4, 4), (6, 2), 1)
    assert out.shape == (1, 1 + 12, 8)
    torch.testing.assert_close(out[:, :1], pos[:, :1], rtol=0, atol=0)
    plane = torch.arange(4.0).repeat(4).view(1, 16, 1).expand(1, 16, 3)  # varies along the width only
    rows = resample_pos_embed(plane, (4, 4), (5, 4), 0).view(5, 4, 3)  # more rows, same columns
    torch.testing.assert_close(rows, plane.view(4, 4, 3)[:1].expand(5, 4, 3))


@pytest.mark.parametrize("regs", [0, 2])
def test_images_of_another_size_use_a_resampled_position_embedding(regs):
    vit = VisionTransformer(config("vit_tiny_patch16_224", _tiny(reg_tokens=regs, no_embed_class=bool(regs))))
    tokens = vit.forward_tokens(torch.rand(2, 3, 24, 32), block=0)
    assert tokens.shape == (2, 1 + regs + 6 * 8, 32)
    assert vit.pos_embed.shape[1] == (0 if regs else 1) + 16  # the module's own is unchanged


def _tiny(**args):
    return {"patch_size": 4, "embed_dim": 32, "depth": 3, "num_heads": 2, "img_size": 16, **args}


# ---- against timm --------------------------------------------------------------------------------------------


def timm_problem():
    try:
        backbone.import_timm()
    except MissingDependencyError as exc:
        return str(exc)
    return None


needs_timm = pytest.mark.skipif(
    timm_problem() is not None, reason=f"cross-check against timm, which cannot be imported: {timm_problem()}"
)
VARIANTS = [{}, {"init_values": 1e-5}, {"init_values": 1e-5, "reg_tokens": 2, "no_embed_class": True}]


@needs_timm
@pytest.mark.parametrize("arch", list(LAYOUTS))
def test_layouts_are_timms(arch):
    with torch.device("meta"):
        theirs = backbone.create_vit(arch, {}, backend="timm")
        ours = backbone.create_vit(arch, {}, backend="ocf")
    assert list(shapes(ours).items()) == list(shapes(theirs).items())  # same keys, shapes and order


@needs_timm
@pytest.mark.parametrize("args", VARIANTS, ids=["dino", "dinov2", "dinov2_reg"])
def test_timms_weights_give_timms_output(args):
    torch.manual_seed(0)
    timm_vit = backbone.create_vit("vit_tiny_patch16_224", _tiny(**args), backend="timm").eval()
    g = torch.Generator().manual_seed(1)
    timm_vit.load_state_dict({k: 0.5 * torch.randn(v.shape, generator=g) for k, v in timm_vit.state_dict().items()})
    ours = VisionTransformer(config("vit_tiny_patch16_224", _tiny(**args))).eval()
    ours.load_state_dict(timm_vit.state_dict())
    images = torch.randn(2, 3, 16, 16, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(ours(images), timm_vit.forward_features(images))
        inter = timm_vit.forward_intermediates(images, indices=[0, 1, 2], output_fmt="NLC", intermediates_only=True)
        for i, theirs in enumerate(inter):  # patch tokens after each block, before the final norm
            torch.testing.assert_close(ours.forward_tokens(images, i)[:, ours.num_prefix_tokens :], theirs)


@needs_timm
def test_resampling_is_timms():
    from timm.layers import resample_abs_pos_embed

    pos = torch.randn(1, 1 + 49, 16)
    for grid in [(6, 8), (3, 2), (14, 14)]:
        theirs = resample_abs_pos_embed(pos, new_size=grid, old_size=(7, 7), num_prefix_tokens=1)
        torch.testing.assert_close(resample_pos_embed(pos, (7, 7), grid, 1), theirs)


@needs_timm
def test_the_timm_backend_gives_the_ocf_backends_tokens(tmp_path):
    timm_vit = backbone.create_vit("vit_tiny_patch16_224", _tiny(**VARIANTS[2]), backend="timm")
    path = tmp_path / "vit.pt"
    torch.save(timm_vit.state_dict(), path)
    frames = torch.rand(2, 1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    out = {}
    for backend in ("timm", "ocf"):
        spec = ViTEncoder.Spec(
            arch="vit_tiny_patch16_224",
            arch_args=_tiny(**VARIANTS[2]),
            weights=str(path),
            backend=backend,
            block=1,
            final_norm=True,
            resolution=(24, 32),
            prefix_tokens="extras",
        )
        enc = ViTEncoder(spec, BuildContext(channels=3, frames=1, resolution=(16, 16)))
        assert isinstance(enc.vit, VisionTransformer) == (backend == "ocf") and len(enc.vit.blocks) == 2
        out[backend] = enc(State(Batch(frames)))
    assert out["ocf"].tokens.shape == (2, 1, 48, 32) and out["ocf"].grid == out["timm"].grid == (6, 8)
    torch.testing.assert_close(out["ocf"].tokens, out["timm"].tokens)
    torch.testing.assert_close(out["ocf"].extras["prefix_tokens"], out["timm"].extras["prefix_tokens"])
