"""The ``ocf data convert`` and ``ocf data check`` sub-commands (argparse wiring and handlers).

``add_convert_parser(subparsers, get_registry)`` and ``add_check_parser(subparsers)`` add the
sub-commands to the ``data`` command's sub-parsers; each sets ``func(args) -> int``.
Handlers raise :class:`~ocf.errors.UserError` for bad input (the CLI's guard prints it and
exits 2); ``check`` returns 1 when the file has inconsistencies.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ocf.cli.args import add_resolution
from ocf.errors import UserError


def add_convert_parser(subparsers: Any, get_registry: Callable[[], Any] | None = None) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "convert",
        help="convert a standard dataset (CLEVR, Multi-dSprites, ClevrTex, MOVi, COCO...) to an ocf file",
        description="Convert a standard dataset from its distributed format to ocf's HDF5 layout, streaming and "
        "atomically (an interrupted run leaves no file; run it again to restart). No TensorFlow needed.",
        epilog="Examples: `ocf data convert clevr_with_masks clevr_with_masks_train.tfrecords --out data/clevr6.h5 "
        "--crop 29:221,64:256 --resolution 128 128`; `ocf data convert movi movi_c/128x128/1.0.0 --out "
        "data/movi_c.h5`; `ocf data convert coco instances_val2017.json val2017 --out data/coco.h5 "
        "--resolution 224 224`. `ocf data convert --list` shows every source.",
    )
    p.add_argument("source", nargs="?", help="dataset format (see --list)")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="input files or folders")
    p.add_argument("--out", help="HDF5 file to write")
    p.add_argument("--list", action="store_true", help="list the sources and their variants")
    p.add_argument("--json", action="store_true", help="with --list: print JSON")
    p.add_argument("--variant", default=None, help="dataset variant (e.g. colored_on_grayscale; see --list)")
    p.add_argument(
        "--split",
        action="append",
        default=[],
        metavar="NAME=RANGE",
        help="add or replace a named split as a range of the converted items, e.g. val=0:500 or "
        "test=90%%:100%% (repeatable)",
    )
    add_resolution(p, "resize to H W (centre-crop to the aspect first; frames bilinear, masks nearest)")
    p.add_argument(
        "--crop",
        default=None,
        metavar="BOX",
        help="crop before resizing: Y0:Y1,X0:X1 in pixels, or center:F for the centred square of F times "
        "the short side",
    )
    p.add_argument("--limit", type=int, default=None, help="convert only the first N items")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=lambda args: cmd_convert(args, get_registry))
    return p


def add_check_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "check",
        help="print a dataset card and find inconsistencies",
        description="Print a dataset card (sizes, splits, objects per item, background convention, value ranges) "
        "and list inconsistencies; exit 1 when there are any.",
    )
    p.add_argument("file", help="HDF5 dataset file")
    p.add_argument("--json", action="store_true", help="print the card as JSON")
    p.add_argument("--max-samples", type=int, default=None, help="scan only the first N items (default: all)")
    p.set_defaults(func=cmd_check)
    return p


def _parse_split_args(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip() or not text.strip():
            raise UserError(f"--split: expected NAME=RANGE (e.g. val=0:500), got {item!r}")
        out[name.strip()] = text.strip()
    return out


def _registry(get_registry: Callable[[], Any] | None) -> Any:
    return get_registry() if get_registry is not None else None


def list_sources(registry: Any = None) -> list[dict[str, Any]]:
    from ocf.data.convert import converters

    return [
        {
            "name": name,
            "description": cls.description,
            "video": bool(cls.video),
            "variants": dict(cls.variants),
            "default_variant": cls.default_variant,
        }
        for name, cls in sorted(converters(registry).items())
    ]


def cmd_convert(args: argparse.Namespace, get_registry: Callable[[], Any] | None = None) -> int:
    from ocf.data.convert import convert

    if args.list:
        sources = list_sources(_registry(get_registry))
        if args.json:
            print(json.dumps(sources, indent=2))
            return 0
        for s in sources:
            print(f"{s['name']}{' (video)' if s['video'] else ''}: {s['description']}")
            for v, text in s["variants"].items():
                print(f"    --variant {v}{' (default)' if v == s['default_variant'] else ''}: {text}")
        return 0
    if not args.source or not args.inputs or not args.out:
        raise UserError("usage: ocf data convert SOURCE INPUT... --out FILE.h5 (or --list)")
    summary = convert(
        args.source,
        args.inputs,
        args.out,
        variant=args.variant,
        resolution=args.resolution,
        crop=args.crop,
        limit=args.limit,
        splits=_parse_split_args(args.split),
        progress=not args.quiet,
        registry=_registry(get_registry),
    )
    shape = " ".join(map(str, (summary["n"],) + tuple(summary["shape"])))
    splits = ", ".join(f"{k} {v}" for k, v in summary["splits"].items())
    print(f"wrote {summary['path']}: {args.source} frames [N T H W C] = [{shape}], splits {splits}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from ocf.data.check import check, format_card

    if args.max_samples is not None and args.max_samples < 1:
        raise UserError(f"--max-samples must be >= 1, got {args.max_samples}")
    if not Path(args.file).is_file():
        raise UserError(f"{args.file}: no such file")
    card = check(args.file, max_samples=args.max_samples)
    print(json.dumps(card, indent=2, default=str) if args.json else format_card(card))
    return 1 if card["problems"] else 0
