"""Command-line entry point ``xlstm-ts`` (also ``python -m xlstm_ts``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xlstm-ts", description="Time-series forecasting with xLSTM."
    )
    parser.add_argument("--version", action="version", version=f"xlstm-ts {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the command; returns the process exit code."""
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_help()
    return 0
