"""The public SIMONe reproduction (Generally Intelligent, generallyintelligent/simone): its SIMONE
module's training step (forward, loss, backward, gradient clip 5, Adam), as its Lightning trainer runs it.

Run-time patches: ``PATCHES`` below (nothing else differs from the checkout).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from types import SimpleNamespace

import torch

from benchmarks.originals import load, on_path, stub

PATCHES = (
    "CPU and fp32: the step is run directly (forward, loss, backward, clip 5, Adam) instead of through "
    "its Lightning Trainer (DDP, precision 16 on GPUs); `pytorch_lightning` is a stub whose LightningModule is "
    "a torch Module with `save_hyperparameters` and `device`",
    "settings: constants.py's XY_RESOLUTION 32, T 4 (so K = 4 slots), set before the model modules import them; "
    "1 transformer layer per stack, batch 8",
    "decoder 3×128 case: the decoder's per-pixel MLP (5×512 in the code) is replaced after construction by "
    "its own MLP class with hidden [128, 128, 128]",
    "input: ocf's generated moving-sprites clips ([b 4 3 32 32] in [0, 1]) instead of its CATER loader",
)


class _LightningModule(torch.nn.Module):
    def save_hyperparameters(self):
        caller = inspect.currentframe().f_back.f_locals
        self.hparams = SimpleNamespace(**{k: v for k, v in caller.items() if k not in ("self", "__class__")})

    @property
    def device(self):
        return next(self.parameters(), torch.empty(0)).device


def _constants(root: Path, resolution: int, frames: int) -> None:
    c = load(root, "constants")
    c.XY_RESOLUTION, c.T = resolution, frames
    c.XY_SPATIAL_DIM_AFTER_CONV_ENCODER = resolution // c.CONV_STRIDE**c.CONV_LAYERS
    c.XY_SPATIAL_DIM_AFTER_TRANSFORMER = c.XY_SPATIAL_DIM_AFTER_CONV_ENCODER // 2
    c.K = c.XY_SPATIAL_DIM_AFTER_TRANSFORMER**2


def build(root: Path, batch, decoder_hidden: list[int] | None = None, transformer_layers: int = 1):
    stub("pytorch_lightning", LightningModule=_LightningModule)
    videos = batch.frames.contiguous()
    _constants(root, videos.shape[-1], videos.shape[1])
    with on_path(root):
        simone = load(root, "model.simone")
        common = load(root, "model.common")
    model = simone.SIMONE(
        learning_rate=20e-5, transformer_layers=transformer_layers, sigma_x=0.08, alpha=0.2, beta_o=1e-5, beta_f=1e-4
    ).train()
    if decoder_hidden is not None:
        old = model.decoder.mlp
        model.decoder.mlp = common.MLP(in_features=_in_features(old), out_features=4, hidden_features=decoder_hidden)
    optimizer = model.configure_optimizers()

    def step():
        loss = model.step(videos)["loss"]
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        return loss

    return step, model


def _in_features(mlp: torch.nn.Module) -> int:
    return next(m for m in mlp.modules() if isinstance(m, torch.nn.Linear)).in_features
