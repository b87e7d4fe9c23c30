"""The `sartoris` command's first frame (console script, launcher, zipapp): a Ctrl-C while Python still imports
Sartoris ends as one that comes later does, in the contract's one line and exit 130, not in a traceback from the
import machinery. Nothing is imported here before the guard."""

from __future__ import annotations

import sys


def run() -> None:
    """Import the command line under the guard, then run it."""
    try:
        from sartoris.cli import run as run_command_line
    except KeyboardInterrupt:
        sys.stderr.write("sartoris: interrupted\n")
        args = sys.argv[1:]
        if "--json" in (args[: args.index("--")] if "--" in args else args):  # one JSON object, as cli._fail
            sys.stdout.write('{"error": "interrupted", "exit": 130}\n')
        sys.exit(130)
    run_command_line()
