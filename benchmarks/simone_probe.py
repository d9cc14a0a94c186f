"""Diagnose a trained SIMONe run: is the information in the latents, and can the decoder use it?

    python -m benchmarks.simone_probe RUN_DIR [--checkpoint init] [--decoder-steps 600] [--lr 1e-3]
        [--loss model|mse] [--mask-scale S | --no-mask-norm] [--json OUT]

1. Posterior statistics on 64 validation clips: how much the object means vary across
   clips (content) against across slots (slot identity) and their posterior scale.
2. A linear probe: ridge regression from every latent mean of a clip to the position at
   t = 0 of the sprite in clips with exactly one sprite (first 1,200 clips of the file;
   fit on two thirds, R² on the rest).  R² near 1: the encoder has located the sprite.
3. What the slots draw on the foreground (ground-truth sprite pixels of 64 validation
   clips, evaluation decode): each slot's mean mask weight and the mean and spread of
   its RGB there, how often some slot's channel value lies within 2 σ_x of the pixel's
   (what the per-channel mixture rewards) and the error of the mask-weighted
   reconstruction.  Slots with constant grey RGB at distinct levels and a high "within
   2 σ" fraction mean the model quantises intensities instead of segmenting.
4. Decoder-only retraining: re-initialise the decoder, freeze everything else, train the
   decoder alone (batch 8, Adam, clip 5, one thread) and report validation MSE every 200
   steps.  Options change what it is trained with, to see what slows it down.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch


def split(resolved, name):
    from ocf import plugins
    from ocf.train import open_split

    return open_split(resolved.spec, name, plugins.default().registry)


def clips(resolved, ds, idx, step=0):
    """The clips ``idx`` of dataset ``ds`` as a batch (first frames, no random window)."""
    from ocf.train import take_batch

    return take_batch(ds, list(idx), resolved.spec.data.frames, seed=0, step=step, random_window=False)


def posterior_stats(model, batch) -> dict:
    with torch.no_grad():
        lat = model(batch, losses=False).latents
    p, f = lat.posterior, lat.frame_posterior
    return {
        "object_mean_spread_over_clips": p.mean.std(0).mean().item(),
        "object_mean_spread_over_slots": p.mean.std(1).mean().item(),
        "object_scale_median": p.std.median().item(),
        "frame_mean_spread_over_time": f.mean.std(1).mean().item(),
        "frame_scale_median": f.std.median().item(),
    }


def slot_colours(model, batch, sigma: float) -> dict:
    model.eval()
    with torch.no_grad():
        r = model(batch, losses=False).rendering
    fg = batch.masks > 0  # [b t h w], ground-truth sprite pixels
    weights = r.mask_logits.softmax(2)  # [b t k h w]
    rgb = r.rgb.movedim(3, -1)  # [b t k h w c]
    x = batch.frames.movedim(2, -1)  # [b t h w c]
    nearest = (r.rgb - batch.frames.unsqueeze(2)).abs().amin(2).movedim(2, -1)[fg]  # [n c]
    slots = [
        {
            "mask_weight": weights[:, :, k][fg].mean().item(),
            "rgb_mean": rgb[:, :, k][fg].mean(0).tolist(),
            "rgb_std": rgb[:, :, k][fg].std(0).tolist(),
        }
        for k in range(weights.shape[2])
    ]
    return {
        "slots": slots,
        "target_rgb_mean": x[fg].mean(0).tolist(),
        "target_rgb_std": x[fg].std(0).tolist(),
        "channels_within_2_sigma": (nearest < 2 * sigma).float().mean().item(),
        "recon_abs_error": (r.recon.movedim(2, -1) - x).abs()[fg].mean().item(),
    }


def lone_sprite_r2(model, resolved, n=1200) -> list[float]:
    import h5py

    ds = split(resolved, "all")
    means = []
    with torch.no_grad():
        for s in range(0, n, 100):
            lat = model(clips(resolved, ds, range(s, min(n, s + 100))), losses=False).latents
            means.append(torch.cat([lat.posterior.mean.flatten(1), lat.frame_posterior.mean.flatten(1)], 1))
    z = torch.cat(means).double().numpy()
    with h5py.File(resolved.spec.data.path, "r") as f:
        one = f["present"][:n].sum(1) == 1
        y = f["position"][:n][one, 0, 0, :]  # [m 2] px
    x = np.c_[z[one], np.ones(one.sum())]
    cut = len(y) * 2 // 3
    w = np.linalg.solve(x[:cut].T @ x[:cut] + np.eye(x.shape[1]), x[:cut].T @ y[:cut])
    err = ((x[cut:] @ w - y[cut:]) ** 2).sum(0)
    return (1 - err / ((y[cut:] - y[cut:].mean(0)) ** 2).sum(0)).tolist()


def retrain_decoder(model, resolved, steps, lr, loss, mask_scale, no_mask_norm, hidden=None) -> list[dict]:
    from ocf.assembly import Model

    val = clips(resolved, split(resolved, "val"), range(64))
    train_ds = split(resolved, "train")
    dec = model.decoder
    torch.manual_seed(0)
    if hidden:  # a decoder MLP of other widths on the same inputs
        from ocf_common.layers import mlp

        first, last = dec.mlp[0], [m for m in dec.mlp.modules() if isinstance(m, torch.nn.Linear)][-1]
        dec.mlp = mlp([first.in_features, *hidden, last.out_features])
    for m in dec.modules():
        if hasattr(m, "reset_parameters") and m is not dec:
            m.reset_parameters()
    if no_mask_norm:
        dec.normalise = lambda logits: logits
    elif mask_scale is not None:
        plain = dec.normalise
        dec.normalise = lambda logits: plain(logits) * mask_scale
    model.requires_grad_(False)
    dec.requires_grad_(True)
    opt = torch.optim.Adam(dec.parameters(), lr=lr)
    g = torch.Generator().manual_seed(0)
    out, t0 = [], time.time()
    for step in range(steps + 1):
        if step % 200 == 0:
            model.eval()
            with torch.no_grad():
                r = model(val, losses=False).rendering
            out.append(
                {"step": step, "val_mse": (r.recon - val.frames).pow(2).mean().item(), "seconds": time.time() - t0}
            )
            print(out[-1], flush=True)
            model.train()
        if step == steps:
            break
        b = clips(resolved, train_ds, torch.randint(0, len(train_ds), (8,), generator=g).tolist(), step=step)
        state = model(b)
        value = Model.total(state.losses) if loss == "model" else (state.rendering.recon - state.target).pow(2).mean()
        opt.zero_grad()
        value.backward()
        torch.nn.utils.clip_grad_norm_(dec.parameters(), 5.0)
        opt.step()
    return out


def main(argv=None) -> int:
    from ocf.evaluate import load_run

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("--decoder-steps", type=int, default=600)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--loss", choices=["model", "mse"], default="model")
    p.add_argument(
        "--mask-scale", type=float, default=None, help="multiply the layer-normed mask logits by this fixed scale"
    )
    p.add_argument("--no-mask-norm", action="store_true")
    p.add_argument(
        "--hidden",
        type=int,
        nargs="+",
        default=None,
        help="retrain a decoder MLP of these widths instead (e.g. 512 512 512 512 512, the paper's)",
    )
    p.add_argument("--checkpoint", default=None, help="'init' for the untrained model, a file, or the last (default)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    resolved, model, _ = load_run(args.run, args.checkpoint)
    val = clips(resolved, split(resolved, "val"), range(64))
    sigma = next(
        (o.get("sigma", 0.08) for o in resolved.spec.model.objectives if o["type"] == "simone.likelihood"), 0.08
    )
    record = {
        "run": args.run,
        "command": "python " + " ".join(sys.argv),
        "posterior": posterior_stats(model, val),
        "lone_sprite_position_r2": lone_sprite_r2(model, resolved),
        "foreground_slots": slot_colours(model, val, sigma),
    }
    print(json.dumps(record, indent=2), flush=True)
    if args.decoder_steps:
        record["decoder_retraining"] = retrain_decoder(
            model, resolved, args.decoder_steps, args.lr, args.loss, args.mask_scale, args.no_mask_norm, args.hidden
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(record, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
