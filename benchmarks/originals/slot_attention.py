"""evelinehong/slot-attention-pytorch: its SlotAttentionAutoEncoder, trained as its train.py trains.

Chosen as the PyTorch port to compare with because it is a whole autoencoder (CNN encoder,
slot attention, spatial-broadcast decoder, the official TensorFlow code's training loop)
rather than the slot-attention module alone (lucidrains/slot-attention, which it builds on),
and it is the port later PyTorch reimplementations cite and adapt.

Run-time patches: ``PATCHES`` below (nothing else differs from the checkout).
"""

from __future__ import annotations

from pathlib import Path

import torch

from benchmarks.originals import load

PATCHES = (
    "CPU: none needed, the code picks the CPU itself when CUDA is absent",
    "input: ocf's generated 128×128 shapes batch ([b 3 128 128] in [0, 1], as its ToTensor gives) "
    "instead of its CLEVR loader",
    "settings: 7 slots, 3 iterations, hid_dim 64, batch 8; Adam 4e-4 with its warm-up and decay schedule",
)


def build(root: Path, batch, num_slots: int = 7, iterations: int = 3, hid_dim: int = 64):
    model_mod = load(root, "model")
    images = batch.frames[:, 0].contiguous()
    model = model_mod.SlotAttentionAutoEncoder(tuple(images.shape[-2:]), num_slots, iterations, hid_dim).train()
    optimizer = torch.optim.Adam([{"params": model.parameters()}], lr=4e-4)
    criterion = torch.nn.MSELoss()
    state = {"i": 0}

    def step():  # train.py's inner loop
        state["i"] += 1
        i = state["i"]
        lr = 4e-4 * (i / 10000 if i < 10000 else 1.0) * 0.5 ** (i / 100000)
        optimizer.param_groups[0]["lr"] = lr
        recon_combined, _, _, _ = model(images)
        loss = criterion(recon_combined, images)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss

    return step, model
