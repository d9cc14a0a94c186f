"""The ``ocf features`` command: ``extract`` (a frozen encoder's tokens into a copy of the data
file, :func:`ocf.run.features.extract`) and ``bench`` (a training step with and without that cache)."""

from __future__ import annotations

import json
from pathlib import Path

from ocf.cli.commands import format_record, load_spec
from ocf.errors import UserError
from ocf.run import features


def add_parser(sub, common) -> None:
    p = sub.add_parser(
        "features",
        parents=[common],
        help="cache a frozen encoder's features in a data file, and measure the speed-up",
        description="Run a spec's frozen encoder (e.g. vit.encoder) once over its data and store the tokens; "
        "training with model.encoder.cache then reads them instead of running the backbone.",
    )
    sub2 = p.add_subparsers(dest="features_command", metavar="COMMAND")
    sub2.required = True
    e = sub2.add_parser(
        "extract",
        parents=[common],
        help="write a copy of the spec's data file with the encoder's tokens as an extra",
        description="Copy the spec's data file (only the samples of --split when given) to OUT and add the "
        "extra NAME [N T P D] (axes n t p d) holding the encoder's patch tokens, with the backbone and its "
        "weights digest in the attributes. Written under a temporary name and renamed at the end.",
    )
    e.add_argument("spec")
    e.add_argument("overrides", nargs="*", help="dotted overrides, e.g. model.encoder.weights=dino.pth")
    e.add_argument("--out", required=True, help="the features file to write (.h5)")
    e.add_argument("--split", action="append", default=[], help="keep only this split (repeatable; default all)")
    e.add_argument("--name", default="features", help="name of the extra (default features)")
    e.add_argument("--batch-size", type=int, default=None, help="frames per encoder batch (default train.batch_size)")
    e.add_argument("--dtype", choices=sorted(features.DTYPES), default="float32", help="stored dtype (default float32)")
    e.add_argument("--force", action="store_true", help="replace OUT when it exists")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.set_defaults(func=cmd_extract)
    b = sub2.add_parser(
        "bench",
        parents=[common],
        help="seconds per training step with the encoder computed and read from a features file",
        description="Run `ocf bench` twice in one process on FILE: once computing the encoder's tokens and once "
        "reading them from the cache (model.encoder.cache), and report the ratio.",
    )
    b.add_argument("spec")
    b.add_argument("file", help="a features file written by `ocf features extract`")
    b.add_argument("overrides", nargs="*", help="dotted overrides applied to both runs")
    b.add_argument("--name", default="features", help="name of the extra (default features)")
    b.add_argument("--steps", type=int, default=10, help="measured steps (default 10)")
    b.add_argument("--warmup", type=int, default=2, help="unmeasured steps first (default 2)")
    b.add_argument("--json", action="store_true", help="print the records as JSON")
    b.set_defaults(func=cmd_bench)


def cmd_extract(args) -> int:
    if args.batch_size is not None and args.batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    resolved = load_spec(args.spec, args.overrides)
    done = features.extract(
        resolved,
        args.out,
        splits=args.split,
        name=args.name,
        force=args.force,
        batch_size=args.batch_size,
        dtype=args.dtype,
        progress=not args.quiet,
    )
    ident = done["identity"]
    print(
        f"wrote {Path(done['path']).resolve()}: {done['name']} {done['shape']} {done['dtype']} from "
        f"{ident['encoder']} (weights {ident['weights_sha256']})"
    )
    print("train on it with: " + " ".join(features.cache_overrides(done["path"], done["name"])))
    return 0


def cmd_bench(args) -> int:
    if args.steps < 1 or args.warmup < 0:
        raise UserError("--steps must be at least 1 and --warmup at least 0")
    if not Path(args.file).exists():
        raise UserError(f"{args.file} does not exist; write it with `ocf features extract SPEC --out {args.file}`")
    r = features.bench_cache(
        load_spec,
        args.spec,
        args.overrides,
        args.file,
        name=args.name,
        steps=args.steps,
        warmup=args.warmup,
        progress=not args.json,
    )
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    for key in ("computed", "cached"):
        print(f"{args.spec} on {args.file}, encoder tokens {key}\n{format_record(r[key])}\n")
    sec = {k: r[k]["train"]["sec_per_step"] * 1000 for k in ("computed", "cached")}
    print(
        f"seconds per step: {sec['computed']:.0f} ms computed, {sec['cached']:.0f} ms cached: "
        f"{r['speedup']:.2f}x faster with the cache"
    )
    return 0
