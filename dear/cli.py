"""The ``dear`` command. Subcommands are added as the engine, reasoners and leaderboards land."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dear",
        description="Deep Equilibrium Algorithmic Reasoners: train, evaluate and compare "
        "equilibrium and unrolled reasoners on CLRS-30 (data: see `clrs-tasks`).",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from dear import __version__

        print(__version__)
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
