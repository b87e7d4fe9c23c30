"""The `sartoris` command's first frame (console script, launcher, zipapp): a Ctrl-C while Python still imports
Sartoris ends as one that comes later does, in the contract's one line and exit 130, not in a traceback from the
import machinery. Nothing is imported here before the guard."""

from __future__ import annotations

import sys


def run() -> None:
    """Import the command line under the guard, then run it."""
    _open_closed_standard_streams()
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
    return _asked(args, "--json")


def help_asked(args: list[str]) -> bool:
    """Whether the command line asks for --help or -h (among the options, not after `--`)."""
    return _asked(args, "--help", "-h")


def _asked(args: list[str], *options: str) -> bool:
    """Whether any of `options` is among the command line's options (before a `--`, after which all are words)."""
    before = args[: args.index("--")] if "--" in args else args
    return any(option in before for option in options)


def _open_closed_standard_streams() -> None:
    """Point a standard descriptor the caller closed (`sartoris sync >&-`, a daemon's 2>&-) at /dev/null. Python
    then has no sys.stdout or sys.stderr and every write failed; and the next file opened, the history database,
    would get descriptor 1 or 2, where a hook's or git's output would be written into it."""
    import io
    import os

    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fd)
        except OSError:
            opened = os.open(os.devnull, os.O_RDONLY if fd == 0 else os.O_WRONLY)
            if opened != fd:  # the lowest free descriptor is this one unless a lower one is closed too, done before
                os.dup2(opened, fd)
                os.close(opened)
            if getattr(sys, name) is None:
                mode = "r" if fd == 0 else "w"
                setattr(sys, name, io.TextIOWrapper(io.FileIO(fd, mode, closefd=False), encoding="utf-8"))
