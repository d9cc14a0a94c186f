"""Rotating layers (Löwe et al., 2023): every activation is an n-vector per feature whose
magnitude says *whether* the feature is present and whose orientation says *which object*
it belongs to.  Tensors are ``[b r c ...]`` (r = n rotation dims, then the usual channel
and spatial axes).

One layer, with weights ``w`` shared across the r rotation dims::

    ψ = w(z) + b_rot                    b_rot [r c], uniform ±1/sqrt(fan_in)
    χ = w(‖z‖)                          the same weights on the input magnitudes (binding)
    m = 0.5·‖ψ‖ + 0.5·χ
    m = ReLU(Norm(m))                   BatchNorm (convs) / LayerNorm (linear), affine
    out = ψ / ‖ψ‖ · m

Norms over r are ε-safe (``sqrt(Σ x² + ε)``) because background features are exactly zero
vectors: their gradients stay finite.  Nothing here depends on the batch size.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Norm = Literal["batch", "layer", "none"]
EPS = 1e-8


class _Magnitude(torch.autograd.Function):
    """``sqrt(Σ z² + eps)`` over ``dim`` (kept) with the gradient ``g · z / m`` in one pass over
    z; autograd through square, sum and sqrt makes four, plus a copy.  The backward uses
    differentiable ops, so double backward works."""

    @staticmethod
    def forward(ctx, z: Tensor, dim: int, eps: float) -> Tensor:
        m = (z * z).sum(dim=dim, keepdim=True).add_(eps).sqrt_()
        ctx.save_for_backward(z, m)
        return m

    @staticmethod
    def backward(ctx, g: Tensor):
        z, m = ctx.saved_tensors
        return z * (g / m), None, None


def magnitude(z: Tensor, dim: int = 1, eps: float = EPS, keepdim: bool = False) -> Tensor:
    """ε-safe vector norm over the rotation axis: ``sqrt(Σ z² + eps)``; finite gradient at 0."""
    m = _Magnitude.apply(z, dim, eps)
    return m if keepdim else m.squeeze(dim)


def add_rotation_dims(x: Tensor, n: int) -> Tensor:
    """``[b c ...]`` → ``[b r c ...]``: the input in rotation dim 0, zeros in the others."""
    return torch.cat([x.unsqueeze(1), x.new_zeros(x.shape[0], n - 1, *x.shape[1:])], dim=1)


def unit(z: Tensor, eps: float = EPS) -> Tensor:
    """Orientations ``z / ‖z‖`` over the rotation axis (dim 1); zero vectors stay (near) zero."""
    return z / magnitude(z, 1, eps, keepdim=True)


class RotatingLayer(nn.Module):
    """Applies a bias-free real-valued ``op`` (conv, transposed conv, linear) to rotating
    features ``[b r c_in ...]`` → ``[b r c_out ...]`` as in the module docstring.

    op: the shared weights; must act on ``[B c_in ...]`` and have no bias.
    out_channels, fan_in: for the rotation bias and its init (uniform ±1/sqrt(fan_in)).
    norm: ``batch`` (BatchNorm2d on ``[b c h w]`` magnitudes), ``layer`` (LayerNorm over c
        of ``[b c]``), or ``none`` (identity; for tests and ablations).
    bias_in_magnitude: True (paper) takes ``‖ψ‖`` after adding the rotation bias; False
        (the public code) takes the norm of ``w(z)`` before it.
    """

    def __init__(
        self,
        op: nn.Module,
        out_channels: int,
        n: int,
        fan_in: int,
        *,
        spatial: bool,
        norm: Norm = "batch",
        bias_in_magnitude: bool = True,
        eps: float = EPS,
    ) -> None:
        super().__init__()
        if getattr(op, "bias", None) is not None:
            raise ValueError("the shared op of a rotating layer must have no bias (the rotation bias replaces it)")
        self.op, self.n, self.spatial, self.eps = op, n, spatial, eps
        self.bias_in_magnitude = bias_in_magnitude
        shape = (n, out_channels, 1, 1) if spatial else (n, out_channels)
        bound = 1.0 / math.sqrt(fan_in)
        self.rotation_bias = nn.Parameter(torch.empty(shape).uniform_(-bound, bound))
        if norm == "batch":
            self.norm = (
                nn.BatchNorm2d(out_channels, affine=True) if spatial else nn.BatchNorm1d(out_channels, affine=True)
            )
        elif norm == "layer":
            if spatial:
                raise ValueError("norm 'layer' is for rotating linear layers; convs use 'batch'")
            self.norm = nn.LayerNorm(out_channels, elementwise_affine=True)
        else:
            self.norm = nn.Identity()

    def forward(self, z: Tensor) -> Tensor:
        b, r = z.shape[:2]
        if r != self.n:
            raise ValueError(
                f"rotating layer built for n = {self.n} rotation dims got input with {r} ({list(z.shape)} [b r c ...])"
            )
        mag_in = magnitude(z, 1, self.eps)  # [b c ...]
        # one call of the shared weights on the r rotation dims and the magnitudes: [(b r + b) c ...];
        # split (not two slices) so the backward is one cat instead of two zero-filled copies
        psi, chi = self.op(torch.cat([z.flatten(0, 1), mag_in])).split([b * r, b])
        psi = psi.unflatten(0, (b, r))  # [b r c ...]; chi [b c ...]
        psi_b = psi + self.rotation_bias
        mag_b = magnitude(psi_b, 1, self.eps, keepdim=True)  # [b 1 c ...]
        m_psi = mag_b.squeeze(1) if self.bias_in_magnitude else magnitude(psi, 1, self.eps)
        m = F.relu(self.norm(0.5 * m_psi + 0.5 * chi))  # [b c ...]
        # ψ/‖ψ‖·m with the ratio taken on the r-times smaller magnitudes: one pass over ψ
        return psi_b * (m.unsqueeze(1) / mag_b)


def rotating_conv(
    c_in: int, c_out: int, n: int, *, kernel: int = 3, stride: int = 1, padding: int = 1, **kw
) -> RotatingLayer:
    """Rotating 2-D convolution ``[b r c_in h w]`` → ``[b r c_out h' w']``."""
    op = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False)
    return RotatingLayer(op, c_out, n, c_in * kernel * kernel, spatial=True, **kw)


def rotating_conv_transpose(
    c_in: int, c_out: int, n: int, *, kernel: int = 3, stride: int = 2, padding: int = 1, output_padding: int = 1, **kw
) -> RotatingLayer:
    """Rotating transposed convolution (×stride upsampling); fan-in as torch computes it
    for transposed weights (c_out · k²)."""
    op = nn.ConvTranspose2d(
        c_in, c_out, kernel, stride=stride, padding=padding, output_padding=output_padding, bias=False
    )
    return RotatingLayer(op, c_out, n, c_out * kernel * kernel, spatial=True, **kw)


def rotating_linear(c_in: int, c_out: int, n: int, **kw) -> RotatingLayer:
    """Rotating linear layer ``[b r c_in]`` → ``[b r c_out]`` (LayerNorm on magnitudes by default)."""
    kw.setdefault("norm", "layer")
    return RotatingLayer(nn.Linear(c_in, c_out, bias=False), c_out, n, c_in, spatial=False, **kw)
