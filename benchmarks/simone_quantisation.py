"""The latent-free baseline of SIMONe's per-channel mixture on a video dataset.

    python -m benchmarks.simone_quantisation [--data data/moving_sprites_32.h5] [--sigma 0.08] [--clips 128]

Fits, by EM with σ_x fixed, a few constant intensity levels to the channel values of the
first validation clips and prints the per-pixel NLL (all channels) of: 4 global levels
with no masks; the ground-truth foreground/background split with the background exact and
2 or 3 levels on the foreground; a perfect reconstruction.  A trained model whose pixel NLL
is near the split-plus-levels value has found the quantisation solution, which uses no
object latents.
"""

from __future__ import annotations

import argparse
import math

import h5py
import torch


def level_nll(
    v: torch.Tensor, k: int, sigma: float, iters: int = 300
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """EM for a 1-D mixture of ``k`` Gaussians of fixed ``sigma`` on values ``v [n]``:
    the levels, their weights and each value's negative log-likelihood."""
    mu, w = torch.linspace(v.min().item(), v.max().item(), k, dtype=v.dtype), torch.full((k,), 1.0 / k, dtype=v.dtype)

    def log_joint():  # [n k]
        return -0.5 * ((v[:, None] - mu) / sigma) ** 2 - math.log(sigma * math.sqrt(2 * math.pi)) + w.log()

    for _ in range(iters):
        r = log_joint().softmax(dim=1)
        w = r.mean(0).clamp_min(1e-9)
        mu = (r * v[:, None]).sum(0) / r.sum(0).clamp_min(1e-12)
    return mu, w, -log_joint().logsumexp(dim=1)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="data/moving_sprites_32.h5")
    p.add_argument("--sigma", type=float, default=0.08)
    p.add_argument("--clips", type=int, default=128)
    args = p.parse_args(argv)
    with h5py.File(args.data, "r") as f:
        idx = sorted(f["splits/val"][: args.clips])
        x = torch.from_numpy(f["frames"][idx]).double() / 255.0  # [n t h w c]
        fg = torch.from_numpy(f["masks"][idx] > 0)  # [n t h w]
    c = x.shape[-1]
    exact = c * math.log(args.sigma * math.sqrt(2 * math.pi))  # NLL of a pixel reconstructed exactly
    mu, w, nll = level_nll(x.flatten(), 4, args.sigma)
    print(
        f"4 global constant levels, no masks: levels {mu.numpy().round(2)} weights {w.numpy().round(2)} "
        f"nll/pixel {nll.view(-1, c).sum(1).mean():.3f}"
    )
    frac = fg.double().mean().item()
    for k in (2, 3):
        mu, w, nll = level_nll(x[fg].flatten(), k, args.sigma)
        total = frac * nll.view(-1, c).sum(1).mean().item() + (1 - frac) * exact
        print(
            f"true fg/bg split, {k} constant levels on the fg: levels {mu.numpy().round(2)} "
            f"weights {w.numpy().round(2)} nll/pixel {total:.3f}"
        )
    print(f"perfect reconstruction nll/pixel {exact:.3f} (foreground fraction {frac:.3f})")


if __name__ == "__main__":
    main()
