"""What DINOSAUR's decoders share: reading the slots and the target patch features from the
State, and the Rendering of a patch-level reconstruction with its masks."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor

from ocf.records import Rendering, State


def slots_per_frame(state: State, frames: int) -> Tensor:
    """``latents.objects`` as ``[b t k d]``: image slots ``[b k d]`` are shared by every frame."""
    objects = state.latents.objects
    if objects.dim() == 3:
        return objects.unsqueeze(1).expand(-1, frames, -1, -1)
    return objects


def target_tokens(state: State) -> Tensor:
    """The backbone's patch features ``[b t n c]``, detached: the decoders reconstruct them and
    no gradient flows back into the backbone through the target."""
    return state.features.tokens.detach()


def patch_grid(state: State, n: int) -> tuple[int, int]:
    """The token grid ``(h, w)`` of the features; an error when it does not hold ``n`` patches."""
    grid = state.features.grid
    if grid is None or grid[0] * grid[1] != n:
        raise ValueError(f"the features need a patch grid with {n} patches (features.grid), got {grid}")
    return tuple(grid)


def patch_rendering(recon: Tensor, target: Tensor, mask_logits: Tensor, grid: tuple[int, int]) -> Rendering:
    """recon, target ``[b t n c]`` and mask logits ``[b t k n]`` (softmax over k gives the masks)
    → a Rendering at the patch grid: ``recon`` and ``target`` ``[b t c h' w']``, ``mask_logits``
    ``[b t k h' w']``.  Setting ``target`` says the rendering covers the patch grid, not the
    pixels; evaluation upsamples the masks bilinearly to the image."""
    h, w = grid
    return Rendering(
        recon=rearrange(recon, "b t (h w) c -> b t c h w", h=h, w=w),
        target=rearrange(target, "b t (h w) c -> b t c h w", h=h, w=w),
        mask_logits=rearrange(mask_logits, "b t k (h w) -> b t k h w", h=h, w=w),
    )


def log_masks(masks: Tensor, eps: float = 1e-12) -> Tensor:
    """Logits whose softmax over the slot axis gives back ``masks`` (which sum to 1 over it)."""
    return torch.log(masks.clamp_min(eps))
