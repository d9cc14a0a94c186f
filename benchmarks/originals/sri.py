"""pemami4911/segregate-relate-imagine: SRI on GENESIS-v2 (its ``SRI`` module, two GECOs) and that
GENESIS-v2 alone (its ``GenesisV2`` module, one GECO), trained as its train.py trains SRI.

Run-time patches: ``PATCHES`` below (nothing else differs from the checkout).
"""

from __future__ import annotations

from pathlib import Path

import torch

from benchmarks.originals import load, stub

PATCHES = (
    "CPU: the model and the GECO tensors stay on the CPU (no .to(local_rank), no GECO.to_cuda, no DDP)",
    "`attrdict` is a stub whose AttrDict is a dict with attribute access (the package does not import on Python 3.10+)",
    "input: ocf's generated 32×32 correlated scenes ([b 3 32 32] in [0, 1], what its loader gives after "
    "(x + 1) / 2) instead of the ShapeStacks loader",
    "settings: K 4, img_size 32, batch 16 and train.py's defaults otherwise (z_dim 64, s_dim 128, L 3, "
    "gaussian kernel, semiconv, pixel_bound, pixel_std 0.7, MoG-Normed, lr 1e-4, GECO goal 0.5655 per element)",
    "GENESIS-v2 alone: its GenesisV2 module (the SRI repository's, with the slot-wise independent prior) "
    "and one GECO on err + KL, the first half of train.py's SRI objective",
)


class _AttrDict(dict):
    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError as exc:
            raise AttributeError(key) from exc

    def __setattr__(self, key, value):
        self[key] = value


def build(root: Path, batch, which: str = "sri", K: int = 4, z_dim: int = 64, s_dim: int = 128, layers: int = 3):
    stub("attrdict", AttrDict=_AttrDict)
    sri_model = load(root, "sri.model")
    geco_mod = load(root, "third_party.genesis_v2.geco")
    x = batch.frames[:, 0].contiguous()
    size = x.shape[-1]
    model = sri_model.SRI(K, True, z_dim, True, "gaussian", 0.7, False, "MoG-Normed", False, size, s_dim, layers)
    goal, lr = 0.5655 * 3 * size**2, 1e-6 * (64**2 / size**2)
    gecos = [geco_mod.GECO(goal, lr, 0.99, 1.0, 1e-10, 10.0) for _ in range(2)]
    if which == "genesis":
        model = model.genesisv2
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def kl_stage(losses, key):
        if key in losses:
            return losses[key].mean(0)
        if key + "_k" in losses:
            return torch.stack(losses[key + "_k"], dim=1).mean(dim=0).sum()
        return torch.tensor(0.0)

    def step():  # train.py's loop body without logging
        opt.zero_grad()
        if which == "genesis":
            _, losses, *_ = model(x)
            total = gecos[0].loss(losses.genv2_err.mean(0), kl_stage(losses, "kl_l") + kl_stage(losses, "kl_m"))
        else:
            _, losses, *_ = model(x)
            kl = losses.sri_kl_scene.mean(0) + losses.sri_kl_z_ordered.mean(0) + losses.sri_kl_slot.mean(0)
            total = gecos[0].loss(losses.genv2_err.mean(0), kl_stage(losses, "kl_l") + kl_stage(losses, "kl_m"))
            total = total + gecos[1].loss(losses.sri_err.mean(0), kl)
        total.backward()
        opt.step()
        return total

    return step, model
