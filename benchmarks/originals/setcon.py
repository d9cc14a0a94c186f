"""The unofficial SetCon code (dirkneuhaeuser/contrastive-learning-of-object-representations): its
``Composed`` model and ``contrasting`` loss (NT-Xent), trained as its train_pretext.py trains.

Run-time patches: ``PATCHES`` below (nothing else differs from the checkout).
"""

from __future__ import annotations

from pathlib import Path

import torch

from benchmarks.originals import load

PATCHES = (
    "CPU: none needed, the code picks the CPU itself when CUDA is absent",
    "input: ocf's generated 64×64 moving-sprites clips of 3 frames, split into (prev_prev, prev, current) "
    "[b 3 64 64] each in [0, 1], instead of its 30 fps video loader",
    "construction: torch.normal is given |std| while the model is built (SlotAttentionAdjusted draws its "
    "learned slot initialisations with a std from randn, which current torch rejects when negative)",
    "settings: cnn 'normal', feature_dim 64, 7 slots, hidden_dim 128, batch 32, 64×64 "
    "(train_pretext.py's Adam 1e-4 with weight decay 1e-6)",
)


def build(root: Path, batch, feature_dim: int = 64, hidden_dim: int = 128, num_slots: int = 7, cnn: str = "normal"):
    models = load(root, "models")
    frames = batch.frames
    prev_prev, prev, cur = (frames[:, i].contiguous() for i in range(3))
    normal = torch.normal
    torch.normal = lambda mean, std, *a, **k: normal(mean, std.abs(), *a, **k)
    try:
        model = models.Composed(
            input_channels=3,
            feature_dim=feature_dim,
            hidden_dim=hidden_dim,
            resolution=tuple(frames.shape[-2:]),
            num_slots=num_slots,
            cnn=cnn,
        ).train()
    finally:
        torch.normal = normal
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-6)

    def step():  # train_pretext.py's loop body
        loss = model.contrasting(current=cur, prev=prev, prev_prev=prev_prev)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return loss

    return step, model
