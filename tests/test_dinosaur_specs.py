"""The dinosaur specs: the CPU spec learns on procedural shapes (the feature loss falls), the
paper-size COCO specs build, and the COCO spec trains a few steps on a tiny converted COCO
file with a random ViT-B/16 weights file written by ocf_vit.random_weights."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from ocf import plugins
from ocf.assembly import build
from ocf.spec import load, read_yaml, resolve

REGISTRY = plugins.default().registry
ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "dinosaur"


def _rows(run):
    return [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("decoder", ["dinosaur.mlp_decoder", "dinosaur.transformer_decoder"])
def test_feature_loss_falls_on_procedural_shapes(tmp_path, decoder):
    """configs/dinosaur/shapes_32.yaml (frozen random tiny ViT) on 96 procedural scenes: within 40
    steps the feature reconstruction loss falls to under 60% of its first value, with either
    decoder; the ViT's weights do not change."""
    from ocf.run import train

    d = read_yaml(CONFIGS / "shapes_32.yaml")
    d["data"].update(path=str(tmp_path / "shapes.h5"), generate={"n": 96, "seed": 0})
    if decoder == "dinosaur.transformer_decoder":
        d["model"]["decoder"] = {"type": decoder, "layers": 2, "heads": 4}
    d["train"].update(steps=40, batch_size=16, log_every=1, checkpoint_every=40, eval_every=0, threads=1)
    d["train"]["optimizer"]["lr"] = 1e-3
    d["train"]["schedule"] = {"warmup_steps": 0}
    d["eval"] = {"metrics": ["fg_ari", "mbo"], "batch_size": 16, "max_samples": 16}
    torch.manual_seed(0)
    run = train.run(resolve(d, REGISTRY), out=str(tmp_path / "run"), progress=False)
    losses = [r["loss"] for r in _rows(run) if "loss" in r]
    assert len(losses) == 40 and all(math.isfinite(x) for x in losses)
    first, last = losses[0], float(np.mean(losses[-5:]))
    assert last < 0.6 * first, losses
    trained = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]
    torch.manual_seed(0)
    fresh = build(resolve(d, REGISTRY), dry_run=False).state_dict()
    vit = [k for k in trained if k.startswith("encoder.vit.")]
    assert vit and all(torch.equal(trained[k], fresh[k]) for k in vit)  # frozen, random init from the seed


@pytest.mark.parametrize("name", ["coco_224", "coco_224_transformer"])
def test_paper_size_specs_build(name):
    """At paper size: DINO ViT-B/16 at 224 (14x14 patches of 768), 7 slots of 256, and the decoder
    of each spec; the masks come out at the patch grid."""
    resolved = load(CONFIGS / f"{name}.yaml", REGISTRY)
    spec = resolved.spec
    assert spec.train.batch_size == 64 and spec.train.optimizer.lr == pytest.approx(4e-4)
    assert spec.train.schedule.warmup_steps == 10000 and spec.train.schedule.decay == "exponential"
    model = build(resolved)
    assert model.encoder.grid == (14, 14) and model.encoder.vit.embed_dim == 768
    assert model.grouper.spec.num_slots == 7 and model.grouper.spec.slot_dim == 256
    if name == "coco_224":
        widths = [m.out_features for m in model.decoder.mlp if isinstance(m, torch.nn.Linear)]
        assert widths == [2048, 2048, 2048, 769]
    else:
        assert len(model.decoder.blocks) == 4 and model.decoder.blocks[0].self_attn.num_heads == 8


def _tiny_coco(root):
    """Two COCO-format annotation files (train and val) over four random images."""
    from PIL import Image

    folder = root / "images"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images, anns = {"train": [], "val": []}, {"train": [], "val": []}
    for i in range(4):
        split = "train" if i < 3 else "val"
        h, w = (48, 64) if i % 2 else (64, 48)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{i}.png")
        images[split].append({"id": i + 1, "file_name": f"{i}.png", "height": h, "width": w})
        for j, (x, y) in enumerate(((4, 6), (20, 24))):
            poly = [x, y, x + 16, y, x + 16, y + 12, x, y + 12]
            anns[split].append(
                {
                    "id": 10 * i + j + 1,
                    "image_id": i + 1,
                    "category_id": 1 + j,
                    "iscrowd": 0,
                    "bbox": [x, y, 16, 12],
                    "segmentation": [poly],
                    "area": 192,
                }
            )
    cats = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    paths = []
    for split in ("train", "val"):
        doc = {"images": images[split], "annotations": anns[split], "categories": cats}
        paths.append(root / f"instances_{split}2017.json")
        paths[-1].write_text(json.dumps(doc))
    return paths, folder


def test_coco_spec_trains_a_few_steps_on_a_tiny_converted_file(tmp_path, capsys):
    """configs/dinosaur/coco_224.yaml, unchanged but for the data file, a random ViT-B/16 weights
    file and a short run: 2 steps at batch 2 on a COCO file converted at 224x224, then evaluation
    on the val split (FG-ARI and mBO over the instance masks)."""
    from ocf.data.convert import convert
    from ocf.run import train
    from ocf_vit.random_weights import main as random_weights

    jsons, folder = _tiny_coco(tmp_path / "coco")
    data = tmp_path / "coco_224.h5"
    convert("coco", [*jsons, folder], data, resolution=(224, 224))
    weights = tmp_path / "dino_vitbase16_random.pth"
    assert random_weights(["vit_base_patch16_224.dino", str(weights)]) == 0
    fast = [f"data.path={data}", f"model.encoder.weights={weights}", "train.steps=2", "train.batch_size=2"]
    fast += ["train.log_every=1", "train.checkpoint_every=2", "train.eval_every=0", "train.threads=2"]
    fast += ["eval.batch_size=1"]
    resolved = load(CONFIGS / "coco_224.yaml", REGISTRY, fast)
    run = train.run(resolved, out=str(tmp_path / "run"), progress=False)
    rows = _rows(run)
    steps = [r for r in rows if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2] and all(math.isfinite(r["loss"]) for r in steps)
    from ocf.cli import main

    capsys.readouterr()
    assert main(["eval", str(run), "--json"]) == 0
    out = capsys.readouterr().out
    assert '"fg_ari"' in out and '"mbo"' in out, out
