"""SIMONe's decoder: one MLP applied to every (t, k, h, w) location independently, on a
fresh sample of object latent k and frame latent t plus the location's (t, x, y)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from pydantic import Field
from torch import Tensor, nn

from ocf.components import BuildContext, ComponentSpec, Decoder
from ocf.fields import Count, Size
from ocf.records import DiagonalGaussian, Rendering, State
from ocf_common.layers import mlp


class PixelMLPDecoder(Decoder):
    """SIMONe per-pixel MLP on [object sample, frame sample, t, x, y] → rgb + mask logit; mask logits layer-
    normalised over [t k h w], softmax over slots."""

    name = "simone.pixel_mlp"
    needs = ("latents.posterior", "latents.frame_posterior", "batch.frames")
    provides = ("rendering.recon", "rendering.rgb", "rendering.mask_logits")

    class Spec(ComponentSpec):
        hidden: list[Size] = Field(
            [512] * 5, min_length=1, description="hidden widths of the per-pixel MLP (ReLU); the paper has 5 × 512"
        )
        mask_norm: bool = Field(
            True, description="layer-normalise the mask logits over [t k h w] jointly, per video (paper: on)"
        )
        mask_norm_affine: bool = Field(
            True,
            description="a learned scalar scale and bias after that layer norm (paper: on; the public reproduction: "
            "off). Scalar because the normalised shape differs between training and evaluation",
        )
        train_frames: Size | None = Field(
            None,
            description="frames decoded per training step, a random sorted subset drawn from torch's RNG (null: T/2, "
            "at least 1)",
        )
        train_stride: Size = Field(
            2, description="in training decode every train_stride-th pixel along h and w (2: half resolution)"
        )
        chunk_size: Count = Field(
            65536,
            description="(t k h w) locations per MLP call, rounded down to whole frames (at least one): bounds memory "
            "when evaluation decodes every pixel",
        )
        eval_sample: bool = Field(
            True,
            description="in evaluation, also draw a fresh sample per location (as in training and the public "
            "reproduction); false: decode the posterior means",
        )

    def __init__(self, spec: Spec, ctx: BuildContext) -> None:
        super().__init__(spec, ctx)
        self.object_dim = ctx.dim("latents.objects")
        self.frame_dim = ctx.dim("latents.frames")
        self.channels, self.resolution = ctx.channels, tuple(ctx.resolution)
        self.mlp = mlp([self.object_dim + self.frame_dim + 3, *spec.hidden, ctx.channels + 1])
        if spec.mask_norm and spec.mask_norm_affine:
            self.norm_scale = nn.Parameter(torch.ones(()))
            self.norm_bias = nn.Parameter(torch.zeros(()))

    # -- which locations ---------------------------------------------------------------
    def subset(self, frames: int) -> tuple[Tensor, int]:
        """Training: a sorted random subset of ``train_frames`` frame indices from torch's
        global RNG and the pixel stride; evaluation: every frame, stride 1."""
        if not self.training:
            return torch.arange(frames), 1
        td = min(frames, self.spec.train_frames or max(1, frames // 2))
        return torch.randperm(frames)[:td].sort().values, self.spec.train_stride

    # -- decoding ----------------------------------------------------------------------
    def decode(
        self,
        objects: DiagonalGaussian,
        frame_latents: DiagonalGaussian,
        t_index: Tensor,
        size: tuple[int, int],
        stride: int = 1,
        *,
        sample: bool = True,
    ) -> tuple[Tensor, Tensor]:
        """Decode frames ``t_index`` at every ``stride``-th pixel of an ``size`` (h, w) video.

        objects: ``[b k d]``; frame_latents: ``[b t d]`` (all T frames).  Returns rgb
        ``[b t' k c h' w']`` and raw (not normalised) mask logits ``[b t' k h' w']``.

        Noise is drawn one decoded frame (k·h'·w' locations) at a time in (b, t') order,
        so the result does not depend on ``chunk_size``.
        """
        mean_o, std_o = objects.mean, objects.std  # [b k d]
        mean_f, std_f = frame_latents.mean, frame_latents.std  # [b t d]
        b, k, do = mean_o.shape
        total_t, df = mean_f.shape[1:]
        dev, dt = mean_o.device, mean_o.dtype
        t_index = t_index.to(dev)
        t_coord, y_coord, x_coord = _locations(total_t, t_index, size, stride, dt)
        hh, ww = y_coord.shape[2], x_coord.shape[3]
        td = len(t_index)
        n_frames = b * td  # decoded frames, in (b t') order
        per_chunk = max(1, self.spec.chunk_size // (k * hh * ww))
        out = None  # [(b t') k h' w' (c + 1)], filled chunk by chunk (no list of pieces to concatenate)
        for start in range(0, n_frames, per_chunk):
            ids = torch.arange(start, min(n_frames, start + per_chunk), device=dev)
            bi, ti = ids // td, ids % td
            f = len(ids)
            mo = mean_o[bi].view(f, k, 1, 1, do)
            mf = mean_f[bi, t_index[ti]].view(f, 1, 1, 1, df)
            if sample:  # a fresh reparameterised sample for every (t, k, h, w) location
                eps = torch.stack([torch.randn(k, hh, ww, do + df, device=dev, dtype=dt) for _ in range(f)])
                z_o = mo + std_o[bi].view(f, k, 1, 1, do) * eps[..., :do]  # [f k h w do]
                z_f = mf + std_f[bi, t_index[ti]].view(f, 1, 1, 1, df) * eps[..., do:]  # [f k h w df]
            else:
                z_o, z_f = mo.expand(f, k, hh, ww, do), mf.expand(f, k, hh, ww, df)
            shape = (f, k, hh, ww, 1)
            x = torch.cat(
                [z_o, z_f, t_coord[ti].view(f, 1, 1, 1, 1).expand(shape), x_coord.expand(shape), y_coord.expand(shape)],
                dim=-1,
            )  # [f k h w (do + df + 3)]
            piece = self.mlp(x)  # [f k h w (c + 1)]
            if per_chunk >= n_frames:
                out = piece
                break
            if out is None:
                out = piece.new_empty((n_frames, *piece.shape[1:]))
            out[start : start + f] = piece
        out = rearrange(out, "(b t) k h w c -> b t k h w c", b=b)
        rgb = rearrange(out[..., : self.channels], "b t k h w c -> b t k c h w")
        return rgb, out[..., self.channels]

    def normalise(self, logits: Tensor) -> Tensor:
        """Layer norm of ``[b t k h w]`` mask logits over [t k h w] jointly (per video),
        then the optional scalar affine."""
        if not self.spec.mask_norm:
            return logits
        logits = F.layer_norm(logits, logits.shape[1:])
        if self.spec.mask_norm_affine:
            logits = logits * self.norm_scale + self.norm_bias
        return logits

    def forward(self, state: State) -> Rendering:
        lat = state.latents
        # generation from a prior gives point latents without posteriors: decode them as given
        objects = (
            lat.posterior if lat.posterior is not None else DiagonalGaussian(lat.objects, torch.zeros_like(lat.objects))
        )
        frame_latents = (
            lat.frame_posterior
            if lat.frame_posterior is not None
            else DiagonalGaussian(lat.frames, torch.zeros_like(lat.frames))
        )
        frames = state.batch.frames if state.batch is not None else None
        size = tuple(frames.shape[-2:]) if frames is not None else self.resolution
        total_t = frame_latents.mean.shape[1]
        t_index, stride = self.subset(total_t)
        sample = self.training or self.spec.eval_sample
        rgb, logits = self.decode(objects, frame_latents, t_index, size, stride, sample=sample)
        mask_logits = self.normalise(logits)  # [b t' k h' w']
        target = None
        if frames is not None and (len(t_index) < total_t or stride > 1):
            target = frames[:, t_index.to(frames.device), :, ::stride, ::stride]  # the pixels decoded
        return Rendering.compose(rgb, mask_logits, target=target, extras={"t_index": t_index})  # [b t' c h' w']


def _locations(total_t: int, t_index: Tensor, size: tuple[int, int], stride: int, dtype: torch.dtype):
    """The location indicators of the decoded pixels: t in [0, 1] over the T frames ``[t']``,
    y ``[1 1 h' 1 1]`` and x ``[1 1 1 w' 1]`` in [-1, 1] over the full grid."""
    dev, (h, w) = t_index.device, size
    ys, xs = torch.arange(0, h, stride, device=dev), torch.arange(0, w, stride, device=dev)
    t_coord = torch.linspace(0, 1, total_t, device=dev, dtype=dtype)[t_index]  # [t']
    y_coord = torch.linspace(-1, 1, h, device=dev, dtype=dtype)[ys].view(1, 1, len(ys), 1, 1)
    x_coord = torch.linspace(-1, 1, w, device=dev, dtype=dtype)[xs].view(1, 1, 1, len(xs), 1)
    return t_coord, y_coord, x_coord
