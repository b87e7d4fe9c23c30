"""The one structlog configuration: events to stderr (readable on a terminal, key=value or JSON lines
elsewhere), and optionally every event, debug included, to a log file as JSON lines."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, WrappedLogger

from sartoris import streams
from sartoris.errors import UsageError

_ONE_WRITER = threading.Lock()  # one per process, not per logger: every logger writes to the same stderr


class _StreamLogger:
    """structlog's last step: each rendered event as one line on stderr, written so that a reader gone away (a
    closed pipe, a hung-up terminal) costs the events, never the run; one writer at a time (the publish logs
    from a worker thread). stderr is looked up at each write: a logger is cached on first use, and must not keep
    writing to a stream that has since been replaced (and closed), as an embedding program or a test does."""

    def msg(self, message: str) -> None:
        with _ONE_WRITER:
            streams.write(sys.stderr, message + "\n")

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


class _Outputs:
    """Where a rendered event goes: stderr at the chosen level, the log file at every level."""

    def __init__(self, stderr_level: int, log_file: TextIO | None) -> None:
        self.stderr_level = stderr_level
        self.log_file = log_file

    def to_file(self, _logger: WrappedLogger, _method: str, event: EventDict) -> EventDict:
        """Write the full event to the log file, then drop it from stderr when below stderr's level."""
        if self.log_file is not None and not streams.write(self.log_file, json.dumps(event, default=str) + "\n"):
            self.log_file = None  # a full disk: the events still reach stderr, and the run goes on
            streams.write(sys.stderr, "sartoris: --log-file could not be written; no more events go to it\n")
        if logging.getLevelNamesMapping().get(str(event.get("level", "info")).upper(), 20) < self.stderr_level:
            raise structlog.DropEvent
        return event


def _clear_live_line(_logger: WrappedLogger, _method: str, event: str) -> str:
    """On a terminal, erase a live progress line before an event is printed over it."""
    return "\r\033[K" + event


def _open_log_file(path: Path) -> TextIO:
    """The --log-file, opened for appending; a path that cannot be written is bad input (exit 2, one line)."""
    try:
        return open(path, "a", encoding="utf-8")  # lives with the process
    except OSError as exc:
        raise UsageError(f"--log-file {path}: {exc.strerror or exc}") from None


_configured = False  # set by configure(): before it, structlog would print its events on stdout


def command_ended(code: int, error: str | None) -> None:
    """The command's last event (debug: in --log-file always, on stderr with -v), so the log file says how the
    run ended, a refusal or an error included; nothing when logging was never set up (a usage error)."""
    if _configured:
        structlog.get_logger("sartoris").debug("command_ended", exit=code, error=error)


def configure(verbosity: int = 0, json_lines: bool = False, log_file: Path | None = None) -> None:
    """Route events to stderr (stdout is kept for --json); -v shows per-host events, -q only warnings."""
    level = logging.DEBUG if verbosity > 0 else logging.WARNING if verbosity < 0 else logging.INFO
    handle = _open_log_file(log_file) if log_file is not None else None
    outputs = _Outputs(level, handle)
    on_terminal = sys.stderr.isatty()
    renderer: Any
    if json_lines:
        renderer = structlog.processors.JSONRenderer()
    elif on_terminal:
        renderer = structlog.dev.ConsoleRenderer(colors="NO_COLOR" not in os.environ, pad_event_to=0)
    else:
        renderer = structlog.processors.KeyValueRenderer(key_order=["timestamp", "level", "event"])
    processors: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        outputs.to_file,
        renderer,
    ]
    if on_terminal and not json_lines:
        processors.append(_clear_live_line)
    global _configured
    _configured = True
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG if handle else level),
        logger_factory=lambda *_: _StreamLogger(),
        cache_logger_on_first_use=True,
    )
