"""A minimal Slot Attention (Locatello et al., 2020), written from the paper's description as a
test-side reference for ocf's ``slot_attention`` plugin.  It shares no code with ocf's model
(only ocf's data reader and metric are used by the training script next to it).

Image ``[b 3 h w]`` in [0, 1] → CNN + soft position embedding → LayerNorm + MLP → tokens
``[b n c]`` → K slots from a learned Gaussian, refined by attention with a softmax over slots
→ each slot broadcast to the full grid + position embedding → CNN → rgb + alpha logit per slot
→ alphas softmaxed over slots → reconstruction.

``init="torch"`` keeps PyTorch's default layer initialisation; ``init="jax"`` re-initialises
every linear and conv layer as Keras/Flax do by default (Glorot-uniform weights, zero biases;
the GRU's recurrent weights orthogonal).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def coordinate_grid(h: int, w: int) -> Tensor:
    """``[h w 4]``: the pixel's y and x in [0, 1] and their complements 1 − y, 1 − x."""
    y = torch.linspace(0, 1, h).view(h, 1).expand(h, w)
    x = torch.linspace(0, 1, w).view(1, w).expand(h, w)
    return torch.stack([y, x, 1 - y, 1 - x], dim=-1)


class PositionEmbedding(nn.Module):
    """Adds ``Dense(4 → channels)`` of the coordinate grid to a channels-last map ``[b h w c]``."""

    def __init__(self, channels: int, h: int, w: int) -> None:
        super().__init__()
        self.dense = nn.Linear(4, channels)
        self.register_buffer("grid", coordinate_grid(h, w), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.dense(self.grid)


def conv_stack(c_in: int, widths: list[int], kernel: int) -> nn.Sequential:
    """Stride-1 'same' convs, each followed by ReLU."""
    layers: list[nn.Module] = []
    for c_out in widths:
        layers += [nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2), nn.ReLU()]
        c_in = c_out
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """``[b 3 h w]`` → tokens ``[b (h w) c]``."""

    def __init__(self, widths: list[int], kernel: int, size: tuple[int, int]) -> None:
        super().__init__()
        c = widths[-1]
        self.cnn = conv_stack(3, widths, kernel)
        self.pos = PositionEmbedding(c, *size)
        self.norm = nn.LayerNorm(c)
        self.mlp = nn.Sequential(nn.Linear(c, c), nn.ReLU(), nn.Linear(c, c))

    def forward(self, image: Tensor) -> Tensor:
        x = self.pos(self.cnn(image).permute(0, 2, 3, 1))  # [b h w c]
        return self.mlp(self.norm(x.flatten(1, 2)))


class SlotAttention(nn.Module):
    """tokens ``[b n c]`` → slots ``[b k d]`` and the last round's attention ``[b k n]``."""

    def __init__(
        self,
        in_dim: int,
        num_slots: int,
        dim: int,
        hidden: int,
        iterations: int,
        slot_init: str = "glorot",
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        self.num_slots, self.dim, self.iterations, self.eps = num_slots, dim, iterations, eps
        if slot_init == "glorot":  # the paper's code: both parameters Glorot-uniform of shape [1 1 d]
            bound = (6 / (1 + dim)) ** 0.5
            self.mu = nn.Parameter(torch.empty(1, 1, dim).uniform_(-bound, bound))
            self.log_sigma = nn.Parameter(torch.empty(1, 1, dim).uniform_(-bound, bound))
        else:  # "unit": small mean, unit spread
            self.mu = nn.Parameter(0.1 * torch.randn(1, 1, dim))
            self.log_sigma = nn.Parameter(torch.zeros(1, 1, dim))
        self.norm_in, self.norm_slot, self.norm_mlp = nn.LayerNorm(in_dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(in_dim, dim, bias=False)
        self.v = nn.Linear(in_dim, dim, bias=False)
        self.gru = nn.GRUCell(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        b = tokens.shape[0]
        slots = self.mu + self.log_sigma.exp() * torch.randn(b, self.num_slots, self.dim)
        x = self.norm_in(tokens)
        keys, values = self.k(x), self.v(x)
        attn = tokens.new_zeros(b, self.num_slots, tokens.shape[1])
        for _ in range(self.iterations):
            previous = slots
            queries = self.q(self.norm_slot(slots))
            attn = torch.softmax(queries @ keys.transpose(1, 2) / self.dim**0.5, dim=1)  # over slots
            weights = (attn + self.eps) / (attn + self.eps).sum(dim=2, keepdim=True)  # mean over tokens
            updates = weights @ values  # [b k d]
            slots = self.gru(updates.reshape(-1, self.dim), previous.reshape(-1, self.dim)).view(b, -1, self.dim)
            slots = slots + self.mlp(self.norm_mlp(slots))
        return slots, attn


class Decoder(nn.Module):
    """slots ``[b k d]`` → reconstruction ``[b 3 h w]``, per-slot rgb ``[b k 3 h w]``, alpha masks ``[b k h w]``."""

    def __init__(self, dim: int, widths: list[int], kernel: int, size: tuple[int, int]) -> None:
        super().__init__()
        self.size = size
        self.pos = PositionEmbedding(dim, *size)
        self.cnn = conv_stack(dim, widths, kernel)
        self.out = nn.Conv2d(widths[-1], 4, 3, padding=1)

    def forward(self, slots: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, k, d = slots.shape
        h, w = self.size
        x = self.pos(slots.reshape(b * k, 1, 1, d).expand(b * k, h, w, d))  # broadcast, then add positions
        out = self.out(self.cnn(x.permute(0, 3, 1, 2))).view(b, k, 4, h, w)
        rgb, masks = out[:, :, :3], out[:, :, 3].softmax(dim=1)
        return (masks.unsqueeze(2) * rgb).sum(dim=1), rgb, masks


class MinimalSlotAttention(nn.Module):
    """The autoencoder: ``forward(image)`` → (reconstruction, masks ``[b k h w]``)."""

    def __init__(
        self,
        size: tuple[int, int] = (32, 32),
        enc_widths: tuple[int, ...] = (32, 32, 32, 32),
        dec_widths: tuple[int, ...] = (32, 32, 32),
        kernel: int = 3,
        num_slots: int = 4,
        slot_dim: int = 64,
        mlp_hidden: int = 128,
        iterations: int = 3,
        slot_init: str = "glorot",
        init: str = "torch",
    ) -> None:
        super().__init__()
        self.encoder = Encoder(list(enc_widths), kernel, size)
        self.grouper = SlotAttention(enc_widths[-1], num_slots, slot_dim, mlp_hidden, iterations, slot_init)
        self.decoder = Decoder(slot_dim, list(dec_widths), kernel, size)
        if init == "jax":
            jax_init(self)
        elif init != "torch":
            raise ValueError(f"init must be 'torch' or 'jax', got {init!r}")

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        recon, _, masks = self.decoder(self.grouper(self.encoder(image))[0])
        return recon, masks


def jax_init(module: nn.Module) -> None:
    """Keras/Flax defaults on every layer under ``module``: Glorot-uniform kernels, zero biases;
    a GRU's input kernel Glorot-uniform per gate, its recurrent kernel orthogonal per gate."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.GRUCell):
            for w_in, w_rec in zip(m.weight_ih.data.chunk(3), m.weight_hh.data.chunk(3)):
                nn.init.xavier_uniform_(w_in)
                nn.init.orthogonal_(w_rec)
            nn.init.zeros_(m.bias_ih)
            nn.init.zeros_(m.bias_hh)


def mse_loss(model: MinimalSlotAttention, image: Tensor) -> Tensor:
    return F.mse_loss(model(image)[0], image)
