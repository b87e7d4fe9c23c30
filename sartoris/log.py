"""The one structlog configuration: events to stderr, readable on a terminal, plain key=value elsewhere."""

from __future__ import annotations

import logging
import os
import sys

import structlog


def configure(verbosity: int = 0, json_lines: bool = False) -> None:
    """Route every event to stderr (stdout is kept for --json); -v shows per-host successes too."""
    level = logging.DEBUG if verbosity > 0 else logging.INFO
    if verbosity < 0:
        level = logging.WARNING
    renderer: structlog.typing.Processor
    if json_lines:
        renderer = structlog.processors.JSONRenderer()
    else:
        on_terminal = sys.stderr.isatty()
        colors = on_terminal and "NO_COLOR" not in os.environ
        renderer = (
            structlog.dev.ConsoleRenderer(colors=colors, pad_event_to=0)
            if on_terminal
            else structlog.processors.KeyValueRenderer(key_order=["timestamp", "level", "event"])
        )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
