"""The ``ocf`` command line: the parser, :func:`main` and the error policy.

Exit codes: 0 success, 2 a user error (bad spec, missing file: a message, no traceback),
1 a failure (a bug, or training that cannot go on).  ``--debug`` always shows tracebacks.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable

from ocf import plugins as ocf_plugins
from ocf.cli import commands
from ocf.cli.data import add_parser as add_data_parser
from ocf.cli.features import add_parser as add_features_parser
from ocf.cli.plugins import cmd_plugins
from ocf.cli.predict import add_parser as add_predict_parser
from ocf.cli.repro import add_parser as add_repro_parser
from ocf.errors import ComponentError, TrainingError, UserError
from ocf.failures import stage_message
from ocf.plugin_guard import PluginInterrupt
from ocf.plugin_notes import debug_tracebacks, error_notes


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks for every error"
    )
    parser = argparse.ArgumentParser(prog="ocf", description="object-centric learning framework", parents=[common])
    from ocf import __version__

    parser.add_argument("--version", action="version", version=f"ocf {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in (_add_build, _add_plugins, _add_train, _add_eval, _add_viz, _add_bench, _add_sample):
        add(sub, common)
    add_data_parser(sub, lambda: ocf_plugins.default().registry)
    add_features_parser(sub, common)
    add_predict_parser(sub, common)
    add_repro_parser(sub, common)
    return parser


def _add_build(sub, common) -> None:
    p = sub.add_parser("build", parents=[common], help="validate and assemble a spec; print its components and shapes")
    p.add_argument("spec")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. model.grouper.num_slots=7")
    p.set_defaults(func=commands.cmd_build)


def _add_plugins(sub, common) -> None:
    p = sub.add_parser("plugins", parents=[common], help="list plugins, or show one plugin or component")
    p.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    p.add_argument("name", nargs="?")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plugins)


def _add_train(sub, common) -> None:
    p = sub.add_parser("train", parents=[common], help="train a model from a spec")
    p.add_argument("spec")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--out", help="run directory (default runs/<spec name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--multirun", action="store_true", help="sweep comma-separated overrides through Hydra")
    p.add_argument("--steps", type=int, help="stop after this many steps (overrides train.steps)")
    p.set_defaults(func=commands.cmd_train)


def _add_eval(sub, common) -> None:
    p = sub.add_parser(
        "eval", parents=[common], help="score a trained run (any registered metric, any compatible file)"
    )
    p.add_argument("run_dir")
    p.add_argument("--split", default=None)
    p.add_argument("--json", action="store_true")
    p.add_argument("--checkpoint", default=None, help="checkpoint file (default: the run's last)")
    p.add_argument("--max-samples", type=int, default=None)
    p.add_argument(
        "--metrics",
        default=None,
        metavar="M1,M2,...",
        help="score these registered metrics instead of the spec's eval.metrics (ocf plugins list shows them)",
    )
    p.add_argument(
        "--metric-option",
        action="append",
        default=None,
        metavar="METRIC.OPTION=VALUE",
        help="an option of a scored metric, as in eval.metric_options (repeatable)",
    )
    p.add_argument(
        "--data",
        default=None,
        metavar="FILE",
        help="score on this HDF5 file instead of the run's (same resolution, channels and clip length)",
    )
    p.set_defaults(func=commands.cmd_eval)


def _add_viz(sub, common) -> None:
    p = sub.add_parser("viz", parents=[common], help="pictures of what a run learned")
    p.add_argument("run_dir")
    p.add_argument("--out", default=None)
    p.add_argument("--split", default=None)
    p.add_argument("--n", type=int, default=8)
    p.set_defaults(func=commands.cmd_viz)


def _add_bench(sub, common) -> None:
    p = sub.add_parser(
        "bench",
        parents=[common],
        help="training and evaluation speed, FLOPs and memory of a spec",
        description="Train a spec for a few steps and report steps/s and samples/s (median after "
        "warm-up), FLOPs per step and their share of this machine's measured matmul peak, "
        "data-loading throughput, evaluation speed and peak memory.",
    )
    p.add_argument("spec")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides")
    p.add_argument("--steps", type=int, default=20, help="measured steps (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="unmeasured steps first (default 3)")
    p.add_argument("--json", action="store_true", help="print the record as JSON")
    p.add_argument("--out", default=None, help="also write the JSON record to this file")
    p.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="also profile three training steps and list the N most expensive operators by self CPU time",
    )
    p.set_defaults(func=commands.cmd_bench)


def _add_sample(sub, common) -> None:
    p = sub.add_parser(
        "sample",
        parents=[common],
        help="generate scenes from a trained model's prior",
        description="Sample latents from the run's prior and render them; pictures go to "
        "RUN_DIR/samples. With --condition N the model infers the first N frames of real "
        "test videos and a sequential prior (e.g. SQAIR's) rolls forward.",
    )
    p.add_argument("run_dir")
    p.add_argument("--n", type=int, default=16, help="how many scenes (default 16)")
    p.add_argument("--temperature", type=float, default=1.0, help="scale of the prior's noise (default 1)")
    p.add_argument(
        "--condition", type=int, default=None, metavar="N", help="condition on the first N frames of real videos"
    )
    p.add_argument("--frames", type=int, default=None, help="frames to generate (default: the spec's data.frames)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output folder (default RUN_DIR/samples)")
    p.add_argument("--checkpoint", default=None, help="checkpoint name or path (default last)")
    p.add_argument("--split", default=None, help="split the conditioning videos come from (default eval.split)")
    p.set_defaults(func=commands.cmd_sample)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "overrides"):  # overrides may come after options: ocf train S --out R a.b=1
        args.overrides = list(args.overrides) + [e for e in extra if "=" in e and not e.startswith("-")]
        extra = [e for e in extra if not ("=" in e and not e.startswith("-"))]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return run_guarded(
        lambda: args.func(args), debug=getattr(args, "debug", False), run_dir=getattr(args, "run_dir", None)
    )


def run_guarded(job: Callable[[], int | None], debug: bool = False, run_dir: str | None = None) -> int:
    """Run ``job`` with ocf's error policy: user errors exit 2 without a traceback,
    training failures and failing components exit 1 with their message, bugs raise
    (traceback, exit 1).  An error about an unknown name gets notes naming failed plugins
    and what the run in ``run_dir`` records about the plugins that built it; ``--debug``
    adds the tracebacks, those of the failed plugins' imports included."""
    try:
        return int(job() or 0)
    except UserError as exc:
        _error(f"ocf: error: {exc}", exc, debug, run_dir)
        return 2
    except TrainingError as exc:
        _error(f"ocf: training stopped: {exc}", exc, debug)
        return 1
    except ComponentError as exc:
        _error(f"ocf: error: {exc}", exc, debug)
        return 1
    except KeyboardInterrupt as exc:
        print(f"ocf: interrupted {exc}" if isinstance(exc, PluginInterrupt) else "ocf: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a component's exception carries its stage; anything else is a bug
        stage = stage_message(exc)
        if stage is None:
            raise
        _error(f"ocf: error: {stage}", exc, debug)
        if not debug:
            print("ocf: (--debug shows the traceback)", file=sys.stderr)
        return 1


def _error(message: str, exc: BaseException, debug: bool, run_dir: str | None = None) -> None:
    plugins = ocf_plugins.loaded()
    if debug:
        traceback.print_exception(exc)
        for text in debug_tracebacks(message, plugins):
            print(text, file=sys.stderr)
    print(message, file=sys.stderr)
    for note in error_notes(message, plugins, run_dir):
        print(note, file=sys.stderr)
