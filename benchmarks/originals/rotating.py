"""loeweX/RotatingFeatures: its RotatingAutoEncoder on 4Shapes-sized input, trained as its main.py trains.

Run-time patches: ``PATCHES`` below (nothing else differs from the checkout).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from omegaconf import OmegaConf

from benchmarks.originals import load, stub

PATCHES = (
    "CPU: the model is built without model_utils' .cuda() and the batch stays on the CPU",
    "input: ocf's generated 4Shapes batch (frame 0, [b 1 32 32] in [0, 1]) instead of its dataset loader",
    "settings from the issue's table: hidden_dim 16, linear_dim 32, rotation_dimensions 8, batch 16",
    "`timm` is a stub module (imported for DINO preprocessing, which 4Shapes does not use); so is `skimage` "
    "when it is not installed (imported by the evaluation utilities, which a training step does not call)",
)


def build(root: Path, batch, hidden: int = 16, linear: int = 32, rotation_dims: int = 8):
    stub("timm")
    if importlib.util.find_spec("skimage") is None:
        stub("skimage")
    opt = OmegaConf.create(
        {
            "seed": 1,
            "input": {
                "batch_size": batch.frames.shape[0],
                "dino_processed": False,
                "dataset": 0,
                "image_size": list(batch.frames.shape[-2:]),
                "channel": batch.frames.shape[2],
                "num_objects_per_img": 4,
            },
            "model": {"hidden_dim": hidden, "linear_dim": linear, "rotation_dimensions": rotation_dims},
            "training": {
                "learning_rate": 1e-3,
                "learning_rate_schedule": 1,
                "warmup_steps": 500,
                "weight_decay": 0,
                "gradient_clip": 0.1,
            },
            "evaluation": {"magnitude_mask_threshold": 0.1, "mask_overlap": 1},
        }
    )
    autoencoder = load(root, "codebase.model.RotatingAutoEncoder")
    utils = load(root, "codebase.utils.utils")
    model = autoencoder.RotatingAutoEncoder(opt).train()
    optimizer = torch.optim.Adam(
        model.parameters(), lr=opt.training.learning_rate, weight_decay=opt.training.weight_decay
    )
    images = batch.frames[:, 0].contiguous()
    state = {"step": 0}

    def step():  # main.py's train loop body, evaluate=False
        utils.update_learning_rate(optimizer, opt, state["step"])
        optimizer.zero_grad()
        loss, _ = model(images, {}, evaluate=False)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), opt.training.gradient_clip)
        optimizer.step()
        state["step"] += 1
        return loss

    return step, model
