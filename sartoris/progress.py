"""Progress of a fan-out on stderr: a live line on a terminal, plain lines elsewhere, nothing when quiet.

On a terminal one line per phase is redrawn at most ten times a second: hosts done (and how many of them
failed) / not run / running out of N, elapsed time, and the slowest hosts still running. Without a terminal
(cron, CI, pipes) a plain line is printed at each tenth of the way and at the end of a phase, with no control
characters, so a 5,000-host run writes a few dozen lines, not thousands; under --log-format json those same
steps are `progress` events.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

import structlog

from sartoris import streams

_REDRAW_EVERY = 0.1
_SLOWEST_SHOWN = 3


class Progress:
    """Counts hosts through a phase; renders nothing (the quiet and the --json-only case)."""

    def __init__(self) -> None:
        self.name = ""
        self.total = 0
        self.done = 0  # hosts whose work in this phase ended, ok or failed
        self.failed = 0  # of those done, the ones that failed
        self.not_run = 0  # hosts the phase passed over (the run stopped before their turn): neither done nor failed
        self.began = time.monotonic()
        self._running: dict[str, float] = {}

    def phase(self, name: str, total: int) -> None:
        """A new phase over `total` hosts begins."""
        self.name, self.total, self.done, self.failed, self.not_run = name, total, 0, 0, 0
        self.began = time.monotonic()
        self._running.clear()
        self._render(force=True)

    def started(self, host: str) -> None:
        self._running[host] = time.monotonic()
        self._render()

    def finished(self, host: str, ok: bool, *, not_run: bool = False) -> None:
        """`host` is through this phase: done, ok or failed, or passed over (`not_run`: the run stopped before its
        turn, so it is not done)."""
        self._running.pop(host, None)
        self.not_run += not_run
        self.done += not not_run
        self.failed += not ok and not not_run
        self._render(force=self.settled() == self.total)

    def settled(self) -> int:
        """Hosts through this phase: done, or passed over."""
        return self.done + self.not_run

    def in_flight(self) -> int:
        """Hosts started and not finished in this phase."""
        return len(self._running)

    def end(self, *, stopped: bool = False) -> None:
        """The phase is over (also when it was cut short). `stopped`: the run was stopped without waiting for the
        hosts still running (their work was cancelled) or not started, so those are not run."""
        if stopped:
            self.not_run = self.total - self.done
            self._running.clear()
        self._render(force=True, final=True)

    def slowest(self) -> list[tuple[str, float]]:
        now = time.monotonic()
        oldest = sorted(self._running.items(), key=lambda item: item[1])[:_SLOWEST_SHOWN]
        return [(host, now - since) for host, since in oldest]

    def line(self) -> str:
        elapsed = time.monotonic() - self.began
        not_run = f", {self.not_run} not run" if self.not_run else ""
        text = (
            f"{self.name}: {self.done}/{self.total} done ({self.failed} failed){not_run}, {len(self._running)} running,"
            f" {elapsed:.1f}s"
        )
        slowest = self.slowest()
        if slowest and self.settled() < self.total:
            text += "; slowest: " + ", ".join(f"{host} {age:.1f}s" for host, age in slowest)
        return text

    def _render(self, force: bool = False, final: bool = False) -> None:
        """Subclasses draw; the base class stays silent."""


class LineProgress(Progress):
    """Plain lines for logs and pipes: one at each tenth of the phase and one at its end."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        super().__init__()
        self._stream = stream
        self._next_step = 0

    def phase(self, name: str, total: int) -> None:
        self._next_step = 1
        super().phase(name, total)

    def _render(self, force: bool = False, final: bool = False) -> None:
        if final or self._step_reached():
            self._show()

    def _step_reached(self) -> bool:
        """Whether the phase just passed its next tenth (then the one after it is the next)."""
        settled = self.settled()
        if self.total and settled * 10 >= self._next_step * self.total and settled < self.total:
            self._next_step = settled * 10 // self.total + 1
            return True
        return False

    def _show(self) -> None:
        streams.write(self._stream, self.line() + "\n")


class LiveProgress(Progress):
    """A terminal line redrawn in place (carriage return + erase), throttled to ten redraws a second."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        super().__init__()
        self._stream = stream
        self._drawn = 0.0

    def _render(self, force: bool = False, final: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._drawn < _REDRAW_EVERY:
            return
        self._drawn = now
        streams.write(self._stream, "\r\033[K" + self.line() + ("\n" if final else ""))


class EventProgress(LineProgress):
    """Under --log-format json: the plain lines' steps as `progress` events, so stderr stays all JSON lines."""

    def _show(self) -> None:
        structlog.get_logger("sartoris").info(
            "progress",
            phase=self.name,
            done=self.done,
            failed=self.failed,
            not_run=self.not_run,
            running=len(self._running),
            total=self.total,
            seconds=round(time.monotonic() - self.began, 1),
            slowest=[host for host, _ in self.slowest()] if self.settled() < self.total else [],
        )


def for_terminal(quiet: bool, stream: TextIO = sys.stderr, as_events: bool = False) -> Progress:
    """The right progress for where stderr goes (and in which format)."""
    if quiet:
        return Progress()
    if as_events:
        return EventProgress(stream)
    return LiveProgress(stream) if stream.isatty() else LineProgress(stream)
