"""Every option and positional argument of both command-line programs says what it is in
``--help``: an option without help text shows only its name and metavar, which leaves a user
guessing at units and defaults (``dear pareto nodecls --repeats REPEATS``)."""

from __future__ import annotations

import argparse

import pytest

from clrs_tasks.cli import build_parser as clrs_tasks_parser
from dear.cli import build_parser as dear_parser


def _undocumented(parser: argparse.ArgumentParser, prog: str) -> list[str]:
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                missing += _undocumented(sub, f"{prog} {name}")
        elif action.help is None:
            missing.append(f"{prog} {'/'.join(action.option_strings) or action.dest}")
    return missing


@pytest.mark.parametrize("build, prog", [(dear_parser, "dear"), (clrs_tasks_parser, "clrs-tasks")])
def test_every_command_line_argument_has_help_text(build, prog) -> None:
    assert _undocumented(build(), prog) == []


def test_the_check_finds_an_undocumented_option() -> None:
    parser = argparse.ArgumentParser(prog="x")
    sub = parser.add_subparsers().add_parser("run")
    sub.add_argument("--documented", help="yes")
    sub.add_argument("--bare")
    assert _undocumented(parser, "x") == ["x run --bare"]
