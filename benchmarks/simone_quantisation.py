"""The latent-free baseline of SIMONe's per-channel mixture on the CPU dataset.

    python benchmarks/simone_quantisation.py

Fits, by EM with σ_x fixed at 0.08, a few constant intensity levels to the channel values
of the first 128 validation clips, and prints the per-pixel NLL (3 channels) of: 4 global
levels with no masks, and a ground-truth foreground/background split with 2 or 3 levels on
the foreground; then a perfect reconstruction.  A trained model whose pixel NLL is near the
split-plus-levels value has found the quantisation solution, which uses no object latents.
"""
import h5py, numpy as np
f = h5py.File("data/moving_sprites_32.h5")
idx = np.sort(f["splits/val"][:128])
x = f["frames"][idx].astype(np.float64) / 255.0  # n t h w c
fgm = f["masks"][idx] > 0
sig = 0.08; c0 = np.log(sig * np.sqrt(2 * np.pi))
def em(v, K, iters=300):
    mu = np.linspace(v.min(), v.max(), K); w = np.ones(K) / K
    for _ in range(iters):
        lp = -0.5 * ((v[:, None] - mu[None]) / sig) ** 2 + np.log(w[None])
        r = np.exp(lp - lp.max(1, keepdims=True)); r /= r.sum(1, keepdims=True)
        w = r.mean(0).clip(1e-9); mu = (r * v[:, None]).sum(0) / r.sum(0).clip(1e-12)
    lp = -0.5 * ((v[:, None] - mu[None]) / sig) ** 2 - c0 + np.log(w[None])
    m = lp.max(1, keepdims=True)
    return mu, w, -(m[:, 0] + np.log(np.exp(lp - m).sum(1)))
allv = x.reshape(-1)
mu, w, n = em(allv, 4)
print("4 global constant levels, no masks:", mu.round(2), w.round(2), "nll/pixel", round(n.reshape(-1, 3).sum(1).mean(), 3))
fg = x[fgm].reshape(-1); frac = fgm.mean()
for K in (2, 3):
    mu, w, n = em(fg, K)
    per_fg = n.reshape(-1, 3).sum(1).mean()
    bg = -3 * c0 * -1  # bg explained exactly by the black slot with weight 1: 3*c0
    tot = frac * per_fg + (1 - frac) * 3 * c0
    print(f"oracle fg/bg split, {K} constant levels on the fg:", mu.round(2), w.round(2), "nll/pixel", round(tot, 3))
print("perfect reconstruction nll/pixel", round(3 * c0, 3), "fg fraction", round(frac, 3))
