"""Write a randomly initialised ViT's weights to a file, in the layout of the released
backbone checkpoints (timm's keys; no classifier head), for plumbing checks and tests:

    python -m ocf_vit.random_weights ARCH OUT [--seed N] [--backend ocf|timm] [--arg KEY=VALUE ...]

OUT ending in ``.safetensors`` is written with safetensors, anything else with ``torch.save``.
``--arg`` changes the architecture (``--arg depth=2 --arg embed_dim=32``), as the encoder's
``arch_args`` does; a spec that loads the file must give the same ``arch_args``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import yaml

from ocf.errors import UserError
from ocf_vit.backbone import Backend, create_vit


def write_random_weights(
    arch: str, out: str | Path, seed: int = 0, arch_args: dict | None = None, backend: Backend = "auto"
) -> Path:
    """Save the state dict of ``arch`` (randomly initialised from ``seed`` by ``backend``'s module) to ``out``."""
    torch.manual_seed(seed)
    vit = create_vit(arch, dict(arch_args or {}), backend=backend)
    state = {k: v.contiguous() for k, v in vit.state_dict().items()}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(out))
    else:
        torch.save(state, out)
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m ocf_vit.random_weights", description=__doc__.split("\n\n")[0])
    p.add_argument("arch", help="architecture by timm model name, e.g. vit_small_patch16_224.dino")
    p.add_argument("out", help="file to write (.safetensors, or a PyTorch state dict for any other suffix)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random initialisation (default 0)")
    p.add_argument(
        "--backend", choices=("auto", "ocf", "timm"), default="auto", help="module to initialise (default: ocf's)"
    )
    p.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE", help="architecture argument")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        pairs = [a.split("=", 1) for a in args.arg]
        if any(len(p) != 2 for p in pairs):
            raise UserError(f"--arg takes KEY=VALUE, got {args.arg}")
        arch_args = {k: yaml.safe_load(v) for k, v in pairs}
        out = write_random_weights(args.arch, args.out, args.seed, arch_args, args.backend)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (TypeError, ValueError) as exc:  # an architecture argument timm does not take
        print(f"error: {args.arch} cannot be built with {args.arg}: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
