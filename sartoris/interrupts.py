"""Ctrl-C during a run: the first one stops it, later ones do not abandon it.

asyncio's runner turns a second Ctrl-C into KeyboardInterrupt straight out of the event loop, which leaves the
switches in flight unwatched and the run unrecorded. A run under `run_stoppable` takes the first Ctrl-C as a
cancellation (each phase then ends what it must, bounded by its timeouts, and returns its result) and only
says so for the later ones while its event loop runs. `run_stoppable_then` also holds Ctrl-C from the end of
the event loop until the run is written down, so no press can cut the record in half or lose it; a press
there is only reported.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Coroutine
from types import FrameType
from typing import Any, TypeVar

import structlog

log = structlog.get_logger("sartoris")

_T = TypeVar("_T")
_R = TypeVar("_R")


class _HeldInterrupt:
    """A SIGINT handler that only remembers that Ctrl-C was pressed."""

    def __init__(self) -> None:
        self.pressed = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.pressed = True


def run_stoppable(main: Coroutine[Any, Any, _T]) -> _T:
    """asyncio.run(main), where only the first Ctrl-C interrupts; KeyboardInterrupt if `main` let it through.
    A process started with SIGINT ignored (a background job) keeps ignoring it, as asyncio.run would."""
    if not _interruptible():
        return asyncio.run(main)
    return asyncio.run(_guarded(main, None))


def run_stoppable_then(main: Coroutine[Any, Any, _T], then: Callable[[_T], _R]) -> tuple[_R, bool]:
    """run_stoppable(main), then `then(result)` (which must be bounded: writing the run down) with Ctrl-C held
    from the moment the event loop stops handling it; its result, and whether Ctrl-C was pressed meanwhile."""
    if not _interruptible():
        return then(asyncio.run(main)), False
    hold = _HeldInterrupt()
    try:
        result = asyncio.run(_guarded(main, hold))
        return then(result), hold.pressed
    finally:
        if signal.getsignal(signal.SIGINT) is hold:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def _interruptible() -> bool:
    """False in a process started with SIGINT ignored (or handled by someone else): leave that as it is."""
    return signal.getsignal(signal.SIGINT) is signal.default_int_handler


def _hand_over(loop: asyncio.AbstractEventLoop, hold: _HeldInterrupt | None) -> None:
    """Take the loop's Ctrl-C handler away; install `hold` in its place with SIGINT blocked meanwhile, so that
    no press falls between the two (it would raise KeyboardInterrupt there)."""
    if hold is None:
        loop.remove_signal_handler(signal.SIGINT)
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        loop.remove_signal_handler(signal.SIGINT)
        signal.signal(signal.SIGINT, hold)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


async def _guarded(main: Coroutine[Any, Any, _T], hold: _HeldInterrupt | None) -> _T:
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    presses = 0

    def on_ctrl_c() -> None:
        nonlocal presses
        presses += 1
        if presses == 1 and task is not None:
            task.cancel()
        else:
            log.warning("still_stopping", note="waiting for what is in flight to end (bounded by its timeouts)")

    loop.add_signal_handler(signal.SIGINT, on_ctrl_c)
    try:
        return await main
    except asyncio.CancelledError:
        if presses:
            raise KeyboardInterrupt from None  # nothing in `main` kept the run: the plain interrupted exit
        raise
    finally:
        _hand_over(loop, hold)


async def despite_interrupt(
    work: Awaitable[_T], on_interrupt: Callable[[], None] | None = None
) -> tuple[_T, bool]:
    """Await `work` (which must be bounded) to its end even when the run is interrupted meanwhile; its result,
    and whether an interrupt came. `on_interrupt` (if given) is called when it comes, to tell `work` to wind
    down (start nothing new)."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task), False
    except asyncio.CancelledError:
        if on_interrupt is not None:
            on_interrupt()
        return await task, True
