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
        if json_asked(sys.argv[1:]):  # one JSON object, as for any failure
            sys.stdout.write('{"error": "interrupted", "exit": 130}\n')
        sys.exit(130)
    run_command_line()


def json_asked(args: list[str]) -> bool:
    """Whether the command line asks for --json (among the options, not after `--`)."""
    return "--json" in (args[: args.index("--")] if "--" in args else args)
