"""Train ocf's demo model, the minimal reference, or a mix of their parts on the demo's data
file with the demo's settings, and score FG-ARI on the test split with ocf's metric.

    python tests/reference/compare.py --encoder ref --grouper ref --decoder ref --seed 1
    python tests/reference/compare.py --encoder ocf --grouper ocf --decoder ocf --seed 1 --steps 500

Each part (encoder, grouper, decoder) comes from ocf (built from the demo spec exactly as
``ocf train`` builds it) or from tests/reference/minimal_slot_attention.py.  Batches are ocf's
(the same sampler and seed), the optimiser is Adam with a linear warm-up and gradient-norm
clipping, and the loss the MSE of the reconstruction — as the demo spec trains.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import minimal_slot_attention as ref  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "configs" / "slot_attention" / "demo.yaml"


class OcfEncoder(nn.Module):
    def __init__(self, enc: nn.Module) -> None:
        super().__init__()
        self.enc = enc

    def forward(self, image: Tensor) -> Tensor:
        from ocf.records import Batch, State

        return self.enc(State(Batch(frames=image.unsqueeze(1)))).tokens[:, 0]


class OcfGrouper(nn.Module):
    def __init__(self, grp: nn.Module) -> None:
        super().__init__()
        self.grp = grp

    def forward(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        return self.grp.attend(tokens, self.grp.init_slots(tokens.shape[0]))


class OcfDecoder(nn.Module):
    def __init__(self, dec: nn.Module) -> None:
        super().__init__()
        self.dec = dec

    def forward(self, slots: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        from ocf.records import Latents, State

        r = self.dec(State(batch=None, latents=Latents(objects=slots)))
        return r.recon[:, 0], r.rgb[:, 0], r.masks[:, 0]


class Hybrid(nn.Module):
    def __init__(self, encoder: nn.Module, grouper: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder, self.grouper, self.decoder = encoder, grouper, decoder

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        recon, _, masks = self.decoder(self.grouper(self.encoder(image))[0])
        return recon, masks


def build(args: argparse.Namespace, overrides: list[str]) -> nn.Module:
    """The ocf model is built first (as ``ocf train`` does right after seeding), then the
    reference; each part is taken from the one the arguments name."""
    from ocf.assembly import build as ocf_build
    from ocf.cli.commands import load_spec

    torch.manual_seed(args.seed)
    model = ocf_build(load_spec(str(SPEC), overrides), dry_run=False)
    mine = ref.MinimalSlotAttention(slot_init=args.slot_init, init=args.ref_init)
    parts = {
        "encoder": OcfEncoder(model.encoder) if args.encoder == "ocf" else mine.encoder,
        "grouper": OcfGrouper(model.grouper) if args.grouper == "ocf" else mine.grouper,
        "decoder": OcfDecoder(model.decoder) if args.decoder == "ocf" else mine.decoder,
    }
    for name in args.jax_init:
        ref.jax_init(parts[name])
    if args.encoder_conv_init:
        for m in parts["encoder"].modules():
            if isinstance(m, nn.Conv2d):
                init = nn.init.kaiming_uniform_ if args.encoder_conv_init == "he" else nn.init.xavier_uniform_
                init(m.weight, **({"nonlinearity": "relu"} if args.encoder_conv_init == "he" else {}))
                nn.init.zeros_(m.bias)
    return Hybrid(**parts)


def fg_ari_on(model: nn.Module, ds, batch_size: int = 64, signed: bool = False) -> tuple[float, float]:
    """Mean FG-ARI and MSE over a split, slots drawn from torch seed 0 (as ``ocf eval``)."""
    from ocf.data.batches import ordered_batch
    from ocf.metrics import fg_ari

    scores, errors = [], []
    was = model.training
    model.eval()
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(0)
        for s in range(0, len(ds), batch_size):
            batch = ordered_batch(ds, s, s + batch_size, 1)
            image = batch.frames[:, 0] * 2 - 1 if signed else batch.frames[:, 0]
            recon, masks = model(image)
            scores.append(fg_ari(masks.argmax(1).flatten(1), batch.masks[:, 0].flatten(1)))
            errors.append(((recon - image) ** 2).flatten(1).mean(1))
    model.train(was)
    return float(torch.cat(scores).nanmean()), float(torch.cat(errors).mean())


def train(args: argparse.Namespace, overrides: list[str]) -> dict:
    from ocf.data.batches import StepBatches, take_batch
    from ocf.data.loader import H5Dataset

    torch.set_num_threads(args.threads)
    model = build(args, overrides)
    data = str(ROOT / "data" / "demo_shapes_32.h5")
    train_ds, test_ds = H5Dataset(data, split="train"), H5Dataset(data, split="test")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=args.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / args.warmup))
    sampler = StepBatches(len(train_ds), 32, args.seed)
    log, t0 = {"fg_ari": {}, "test_mse": {}, "train_mse": {}}, time.time()
    untrained = fg_ari_on(model, test_ds, signed=args.signed)
    running = []
    for step in range(args.steps):
        image = take_batch(train_ds, sampler.indices(step), 1, seed=args.seed, step=step, random_window=True).frames
        if args.signed:
            image = image * 2 - 1  # [0, 1] -> [-1, 1], as the official code feeds images
        loss = F.mse_loss(model(image[:, 0])[0], image[:, 0])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        running.append(loss.item())
        done = step + 1
        if done % 25 == 0:
            log["train_mse"][done] = sum(running) / len(running)
            running = []
        if done in args.eval_at or done == args.steps:
            log["fg_ari"][done], log["test_mse"][done] = fg_ari_on(model, test_ds, signed=args.signed)
            print(
                f"step {done}: FG-ARI {log['fg_ari'][done]:.3f} test MSE {log['test_mse'][done]:.4f} "
                f"({time.time() - t0:.0f} s)",
                flush=True,
            )
    return {
        "args": vars(args),
        "overrides": overrides,
        "untrained": {"fg_ari": untrained[0], "mse": untrained[1]},
        "seconds": time.time() - t0,
        "model": model,
        **log,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for part in ("encoder", "grouper", "decoder"):
        p.add_argument(f"--{part}", choices=["ocf", "ref"], default="ref")
    p.add_argument(
        "--jax-init",
        nargs="*",
        default=[],
        choices=["encoder", "grouper", "decoder"],
        help="re-initialise these parts with Glorot-uniform weights and zero biases",
    )
    p.add_argument(
        "--encoder-conv-init", choices=["he", "glorot"], help="re-initialise only the encoder's convs (zero biases)"
    )
    p.add_argument("--ref-init", default="torch", choices=["torch", "jax"])
    p.add_argument("--slot-init", default="unit", choices=["unit", "glorot"], help="the reference's slot init")
    p.add_argument("--signed", action="store_true", help="feed and reconstruct images in [-1, 1] instead of [0, 1]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=900)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--eval-at", type=int, nargs="*", default=[300, 500])
    p.add_argument("--out", help="write the result as JSON here")
    args, overrides = p.parse_known_args()
    result = train(args, overrides)
    print(json.dumps({k: result[k] for k in ("untrained", "fg_ari", "test_mse", "seconds")}))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({k: v for k, v in result.items() if k != "model"}, indent=1))
        torch.save(result["model"].state_dict(), Path(args.out).with_suffix(".pt"))


if __name__ == "__main__":
    main()
