"""What every toolbox command shares: the shape of its parser and its error exit.

A command's help is its description followed by an ``examples:`` epilog kept as written;
a failure it can explain (a cluster that can't be read, a Pod that isn't there, a server
that doesn't answer) is one line ``clusterdns COMMAND: message`` on stderr and exit
status 1, never a traceback.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["ToolError", "add_command", "command"]

Run = Callable[[argparse.Namespace], int]


class ToolError(Exception):
    """A failure to report in one line (exit status 1), e.g. a cluster that can't be reached."""


def add_command(
    sub: Any, name: str, *, help: str, description: str, example: str, run: Run
) -> argparse.ArgumentParser:
    """The subcommand ``name``: ``description``, then ``example`` verbatim, running ``run``."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help,
        description=description,
        epilog=example,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=run)
    return parser


def command(name: str) -> Callable[[Run], Run]:
    """Decorate a command's ``run``: a :class:`ToolError` it raises (LoadError is one) is
    printed as ``clusterdns NAME: message`` and the exit status is 1."""

    def wrap(run: Run) -> Run:
        @functools.wraps(run)
        def guarded(args: argparse.Namespace) -> int:
            try:
                return run(args)
            except ToolError as err:
                print(f"clusterdns {name}: {err}", file=sys.stderr)
                return 1

        return guarded

    return wrap
