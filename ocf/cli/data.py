"""The ``ocf data`` command: ``make``, ``list``, ``inspect`` and ``import-frames``.

:func:`add_parser` adds the command to the top-level sub-parsers, with one sub-command per
entry of :data:`SUBCOMMANDS`; each sub-command sets ``func(args) -> int``.
``get_registry()`` returns the loaded :class:`~ocf.registry.Registry`.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ocf.cli.args import add_resolution
from ocf.cli.convert import add_check_parser, add_convert_parser
from ocf.data import format as fmt
from ocf.data.frames import import_frames
from ocf.data.generator import make_dataset
from ocf.data.loader import describe
from ocf.errors import UserError
from ocf.run.files import check_output_file, writing


class _DataParser(argparse.ArgumentParser):
    """Sub-command parser that hands arguments it does not know to a ``settings`` list
    when the command has one (``ocf data make``): ``KEY=VALUE`` anywhere, and
    ``--key value`` / ``--key=value`` / ``--flag`` for generator options."""

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        namespace, extras = super().parse_known_args(args, namespace)
        if not hasattr(namespace, "settings"):
            return namespace, extras
        settings, rest, i = list(namespace.settings or []), [], 0
        while i < len(extras):
            token = extras[i]
            if token.startswith("--") and len(token) > 2:
                if "=" in token:
                    settings.append(token[2:])
                elif i + 1 < len(extras) and not extras[i + 1].startswith("--"):
                    settings.append(f"{token[2:]}={extras[i + 1]}")
                    i += 1
                else:
                    settings.append(f"{token[2:]}=true")
            elif "=" in token and not token.startswith("-"):
                settings.append(token)
            else:
                rest.append(token)
            i += 1
        namespace.settings = settings
        return namespace, rest


def add_parser(subparsers: Any, get_registry: Callable[[], Any]) -> argparse.ArgumentParser:
    """Add ``data`` with the sub-commands of :data:`SUBCOMMANDS` to ``subparsers`` (from
    ``add_subparsers``)."""
    data = subparsers.add_parser(
        "data",
        help="make, convert, check, list, inspect and import dataset files",
        description="Make procedural datasets, inspect dataset files, import video frames.",
    )
    sub = data.add_subparsers(dest="data_command", metavar="COMMAND", parser_class=_DataParser)
    sub.required = True
    for add in SUBCOMMANDS:
        add(sub, get_registry)
    return data


def _add_make(sub: Any, get_registry: Callable[[], Any]) -> None:
    p = sub.add_parser(
        "make",
        help="generate a procedural dataset file",
        description="Generate N samples of a registered generator into an HDF5 file (written atomically).",
        epilog="Generator options are KEY=VALUE pairs, --KEY VALUE or --set KEY=VALUE (values are YAML), e.g. "
        "`ocf data make shapes --out data/shapes.h5 --n 2000 resolution=64 --background random`. "
        "`ocf data list` shows every generator and its options.",
    )
    p.add_argument("name", help="generator name")
    p.add_argument("settings", nargs="*", metavar="KEY=VALUE", help="generator options")
    p.add_argument("--out", required=True, help="HDF5 file to write")
    p.add_argument("--n", type=int, default=1000, help="number of samples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a generator option (repeatable)")
    p.add_argument(
        "--splits",
        default="train=0.8,val=0.1,test=0.1",
        help="split fractions NAME=F,... (default train=0.8,val=0.1,test=0.1)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=lambda args: cmd_make(args, get_registry))


def _add_list(sub: Any, get_registry: Callable[[], Any]) -> None:
    p = sub.add_parser("list", help="list generators and their options")
    p.add_argument("name", nargs="?", help="show one generator only")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=lambda args: cmd_list(args, get_registry))


def _add_inspect(sub: Any, get_registry: Callable[[], Any]) -> None:
    p = sub.add_parser(
        "inspect",
        help="summarise a dataset file and draw samples",
        description="Print a summary of a dataset file (either layout); with --out, write a PNG of "
        "samples with their ground-truth masks.",
    )
    p.add_argument("file", help="HDF5 dataset file")
    p.add_argument("--out", help="PNG to write: per sample the frame, the mask overlay and the mask")
    p.add_argument("--split", default=None, help="split to draw from (default: train if present, else all)")
    p.add_argument("--n", type=int, default=8, help="samples to draw (default 8)")
    p.add_argument("--frames", type=int, default=4, help="frames per video sample to draw (default 4)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_inspect)


def _add_import_frames(sub: Any, get_registry: Callable[[], Any]) -> None:
    p = sub.add_parser(
        "import-frames",
        help="turn a folder of video frames into a clip dataset",
        description="Read the images in DIR sorted by name (numbers compared as numbers) as one "
        "video and cut it into clips of --clip-length frames (no masks).",
    )
    p.add_argument("dir", help="folder of image frames")
    p.add_argument("--out", required=True, help="HDF5 file to write")
    p.add_argument("--clip-length", type=int, default=8, help="frames per clip T (default 8)")
    p.add_argument("--stride", type=int, default=None, help="frames between clip starts (default: the clip length)")
    p.add_argument(
        "--frame-step",
        type=int,
        default=1,
        help="source frames between consecutive frames of a clip (default 1; e.g. 4 with --clip-length 3 "
        "gives frames t-8, t-4, t)",
    )
    add_resolution(p, "resize frames to H W (default: the first frame's size)")
    p.add_argument(
        "--splits",
        default="train=0.8,val=0.1,test=0.1",
        help="contiguous split fractions (default train=0.8,val=0.1,test=0.1)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_import_frames)


# Each entry adds one ``ocf data`` sub-command: ``add(subparsers, get_registry)`` creates its
# parser and sets ``func(args) -> int``.  New data sub-commands are added to this list.
def _add_convert(sub: Any, get_registry: Callable[[], Any]) -> None:
    add_convert_parser(sub, get_registry)


def _add_check(sub: Any, get_registry: Callable[[], Any]) -> None:
    add_check_parser(sub)


SUBCOMMANDS: list[Callable[[Any, Callable[[], Any]], None]] = [
    _add_make,
    _add_list,
    _add_inspect,
    _add_import_frames,
    _add_convert,
    _add_check,
]


# --------------------------------------------------------------------------- parsing helpers


def parse_settings(items: list[str]) -> dict[str, Any]:
    """``["a=1", "b=[1, 2]"]`` → ``{"a": 1, "b": [1, 2]}`` (values are YAML)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-")
        if not sep or not key:
            raise UserError(f"expected a generator option as KEY=VALUE, got {item!r}")
        try:
            out[key.replace("-", "_")] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise UserError(f"{key}: cannot parse value {value!r}: {exc}") from None
    return out


def parse_splits(text: str) -> dict[str, float]:
    """``"train=0.8,val=0.1,test=0.1"`` → fractions; ``""`` or ``"none"`` → no splits."""
    if text.strip().lower() in ("", "none"):
        return {}
    out = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise UserError(f"--splits: expected NAME=FRACTION,..., got {text!r}") from None
    return out


# --------------------------------------------------------------------------- make / list


def cmd_make(args: argparse.Namespace, get_registry: Callable[[], Any]) -> int:
    options = parse_settings(list(args.settings) + list(args.set))
    registry = get_registry()
    start = time.perf_counter()
    check_output_file(args.out, "dataset file")  # before generating: a folder, read-only or missing place
    with writing(args.out, "write the dataset file"):  # a full disk while writing (the temporary file is removed)
        path = make_dataset(
            registry,
            args.name,
            args.out,
            n=args.n,
            seed=args.seed,
            options=options,
            splits=parse_splits(args.splits),
            progress=not args.quiet,
        )
    seconds = time.perf_counter() - start
    summary = describe(path, max_samples=200)
    shape = " ".join(str(s) for s in summary["frames"]["shape"])
    splits = ", ".join(f"{k} {v}" for k, v in summary["splits"].items())
    print(
        f"wrote {Path(path).resolve()}: {args.name} frames [N T H W C] = [{shape}], splits {splits} ({seconds:.1f} s)"
    )
    return 0


def _constraints(info: Any) -> str:
    """``">= 8, <= 512"`` / ``"one of black, random"`` for a pydantic field."""
    import typing

    parts = []
    for m in info.metadata:
        for attr, sign in (
            ("ge", ">="),
            ("gt", ">"),
            ("le", "<="),
            ("lt", "<"),
            ("min_length", "length >="),
            ("max_length", "length <="),
        ):
            if getattr(m, attr, None) is not None:
                parts.append(f"{sign} {getattr(m, attr)}")
    ann = info.annotation
    if typing.get_origin(ann) is list:
        ann = typing.get_args(ann)[0]
    if typing.get_origin(ann) is typing.Literal:
        parts.append("one of " + ", ".join(map(str, typing.get_args(ann))))
    return ", ".join(parts)


def _generator_summary(name: str, cls: Any) -> dict[str, Any]:
    options = {}
    for field, info in cls.Options.model_fields.items():
        options[field] = {"default": info.get_default(call_default_factory=True), "description": info.description or ""}
        constraints = _constraints(info)
        if constraints:
            options[field]["constraints"] = constraints
    return {"name": name, "description": cls.description, "video": bool(cls.video), "options": options}


def cmd_list(args: argparse.Namespace, get_registry: Callable[[], Any]) -> int:
    registry = get_registry()
    names = [args.name] if args.name else registry.names("dataset")
    summaries = [_generator_summary(n, registry.get("dataset", n)) for n in names]
    if args.json:
        print(json.dumps(summaries, indent=2, default=str))
        return 0
    for s in summaries:
        print(f"{s['name']}{' (video)' if s['video'] else ''}: {s['description']}")
        for key, o in s["options"].items():
            extra = f" [{o['constraints']}]" if o.get("constraints") else ""
            print(f"    {key} = {o['default']!r}{extra}  {o['description']}")
    return 0


# --------------------------------------------------------------------------- inspect


def format_summary(summary: dict[str, Any]) -> str:
    """The text ``ocf data inspect`` prints."""
    f = summary["frames"]
    lines = [
        f"{summary['path']} ({summary['layout']} layout)",
        f"  frames      [N T H W C] = [{' '.join(map(str, f['shape']))}] {f['dtype']}"
        + ("  (video)" if summary["video"] else ""),
        "  splits      " + ", ".join(f"{k}: {v}" for k, v in summary["splits"].items()),
    ]
    m = summary["masks"]
    if m is None:
        lines.append("  masks       none")
    else:
        o = m["objects_per_sample"]
        hist = " ".join(f"{k}:{v}" for k, v in o["histogram"].items())
        ignore = ", with -1 (ignore)" if m["has_ignore"] else ""
        lines.append(f"  masks       {m['kind']}, ids up to {m['max_id']}{ignore}")
        if m.get("problem"):
            lines.append(f"  problem     {m['problem']} (`ocf data check` scans every item)")
        lines.append(
            f"  objects     per sample min {o['min']} max {o['max']} mean {o['mean']} "
            f"(first {o['from_samples']} samples; histogram {hist})"
        )
    for key, e in summary["extras"].items():
        time = " (time axis)" if e["time_axis"] else ""
        lines.append(f"  extra       {key} [{' '.join(map(str, e['shape']))}] {e['dtype']}{time}")
    for item in summary.get("skipped", []):
        lines.append(f"  skipped     {item}")
    meta = summary["metadata"]
    if meta:
        for key in ("generator", "description", "seed", "options", "channels"):
            if key in meta:
                value = json.dumps(meta[key]) if isinstance(meta[key], (dict, list)) else meta[key]
                lines.append(f"  {key:<11} {value}")
        rest = sorted(k for k in meta if k not in ("generator", "description", "seed", "options", "channels"))
        if rest:
            lines.append(f"  metadata    {', '.join(rest)}")
    return "\n".join(lines)


def cmd_inspect(args: argparse.Namespace) -> int:
    summary = describe(args.file)
    print(json.dumps(summary, indent=2, default=str) if args.json else format_summary(summary))
    if args.out:
        info = fmt.read_info(args.file)
        split = args.split or ("train" if "train" in info.splits else "all")
        if args.n < 1:
            raise UserError(f"--n must be >= 1, got {args.n}")
        index = np.sort(info.split_indices(split)[: args.n]).tolist()
        with fmt.open_h5(info.path) as f:
            frames = fmt.read_frames(info.path, f, info, index)
            masks = fmt.read_masks(info.path, f, info, index)
        write_sheet(args.out, frames, masks, max_frames=args.frames)
        print(f"wrote {args.out}: {len(index)} samples of split {split!r}")
    return 0


def write_sheet(out: str | Path, frames: np.ndarray, masks: np.ndarray | None, max_frames: int = 4) -> Path:
    """PNG contact sheet of ``frames [N T H W C]`` with ``masks [N T H W]`` overlaid."""
    from ocf.viz import sample_sheet

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sample_sheet(frames, masks, max_frames=max_frames).save(out, format="PNG")
    return out


# --------------------------------------------------------------------------- import-frames


def cmd_import_frames(args: argparse.Namespace) -> int:
    path = import_frames(
        args.dir,
        args.out,
        clip_length=args.clip_length,
        stride=args.stride,
        resolution=args.resolution,
        splits=parse_splits(args.splits),
        progress=not args.quiet,
        frame_step=args.frame_step,
    )
    summary = describe(path, max_samples=0)
    print(f"wrote {path}: frames [N T H W C] = [{' '.join(map(str, summary['frames']['shape']))}]")
    return 0
