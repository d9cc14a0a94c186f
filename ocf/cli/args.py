"""Argument helpers the sub-command parsers share."""

from __future__ import annotations

import argparse


def add_resolution(parser: argparse.ArgumentParser, help: str) -> None:
    """``--resolution H W`` (two integers, default None)."""
    parser.add_argument("--resolution", type=int, nargs=2, metavar=("H", "W"), default=None, help=help)
