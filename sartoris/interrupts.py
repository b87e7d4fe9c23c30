"""Ctrl-C during a run: the first one stops it, later ones do not abandon it.

asyncio's runner turns a second Ctrl-C into KeyboardInterrupt straight out of the event loop, which leaves the
switches in flight unwatched and the run unrecorded. A run under `run_stoppable` takes the first Ctrl-C as a
cancellation (each phase then ends what it must, bounded by its timeouts, and returns its result) and only
says so for the later ones while its event loop runs. `run_stoppable_then` also writes the run down inside the
event loop, with Ctrl-C only remembered meanwhile, so no press can cut the record in half or lose it.
`stop_on_sigterm_or_hangup` makes SIGTERM and SIGHUP follow the same rules.
"""

from __future__ import annotations

import asyncio
import os
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
    """asyncio.run(main), where only the first Ctrl-C (or SIGTERM, SIGHUP) interrupts; KeyboardInterrupt if `main`
    let it through. A process started with SIGINT ignored (a background job) keeps ignoring it, as asyncio.run
    would, and still stops on SIGTERM and SIGHUP the same way."""
    stops = _stop_signals()  # read before asyncio.run, which puts a handler of its own on SIGINT
    if not stops:
        return asyncio.run(main)
    return asyncio.run(_guarded(main, stops))


def run_stoppable_then(main: Coroutine[Any, Any, _T], then: Callable[[_T], _R]) -> tuple[_R, bool]:
    """run_stoppable(main), then `then(result)` (which must be bounded: writing the run down) before Ctrl-C can
    interrupt again; its result, and whether Ctrl-C was pressed after `main` ended."""
    stops = _stop_signals()
    if not stops:
        return then(asyncio.run(main)), False
    written: list[tuple[_R, bool]] = []
    try:
        asyncio.run(_guarded(main, stops, lambda result: written.append(_write_down(then, result, stops))))
    except KeyboardInterrupt:  # pressed while the event loop shut down, after the run was written down
        if not written:
            raise
        return written[0][0], True
    return written[0]


def stop_on_sigterm_or_hangup() -> None:
    """Make SIGTERM (`kill PID`, a CI job cancelled) and SIGHUP (the terminal or SSH session that started the run
    hung up) stop a run the way Ctrl-C does: recorded, no host left half switched, exit 130, instead of killing
    the process with its lock held and its run unwritten (after a hang-up its output goes nowhere: see
    `sartoris.streams`). Each is left alone where it is not at its default: under `nohup` SIGHUP stays ignored
    and the deploy runs on. A background job (started with Ctrl-C ignored) still stops on them, as a Ctrl-C
    would stop a foreground one."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) is signal.SIG_DFL:
            signal.signal(signum, _as_ctrl_c)


def _as_ctrl_c(signum: int, frame: FrameType | None) -> None:
    """The handler of SIGTERM and SIGHUP outside a run's event loop: what Ctrl-C does there, so one set of rules
    applies (the SIGINT a Ctrl-C sends, or, where SIGINT is ignored, the KeyboardInterrupt it would raise)."""
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # whoever handles Ctrl-C now (asyncio's runner,
        os.kill(os.getpid(), signal.SIGINT)  # the write-down's hold) handles this the same way
    else:
        raise KeyboardInterrupt


def _interruptible() -> bool:
    """False in a process started with SIGINT ignored (or handled by someone else): leave that as it is."""
    return signal.getsignal(signal.SIGINT) is signal.default_int_handler


def _stop_signals() -> list[signal.Signals]:
    """The signals that stop a run: Ctrl-C's SIGINT where it is not ignored, and SIGTERM and SIGHUP where
    stop_on_sigterm_or_hangup made them act like it."""
    stops = [signal.SIGINT] if _interruptible() else []
    return stops + [s for s in (signal.SIGTERM, signal.SIGHUP) if signal.getsignal(s) is _as_ctrl_c]


async def _guarded(
    main: Coroutine[Any, Any, _T],
    stops: list[signal.Signals],
    on_result: Callable[[_T], object] | None = None,
) -> _T:
    """Await `main` with the first of the `stops` signals (Ctrl-C, SIGTERM, SIGHUP) cancelling it; then (if given)
    call `on_result` with its result inside the loop, before any later one reaches the loop."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    presses = 0
    finished = False

    def on_ctrl_c() -> None:
        nonlocal presses
        if finished:  # a press while on_result ran, already remembered by the hold
            return
        presses += 1
        if presses == 1 and task is not None:
            task.cancel()
        else:
            log.warning("still_stopping", note="waiting for what is in flight to end (bounded by its timeouts)")

    handlers = {signum: signal.getsignal(signum) for signum in stops}
    for signum in stops:
        loop.add_signal_handler(signum, on_ctrl_c)
    try:
        result = await main
        finished = True  # no await from here on: the loop cannot run on_ctrl_c before on_result is done
        if on_result is not None:
            on_result(result)
        return result
    except asyncio.CancelledError:
        if presses:
            raise KeyboardInterrupt from None  # nothing in `main` kept the run: the plain interrupted exit
        raise
    finally:
        for signum, handler in handlers.items():
            loop.remove_signal_handler(signum)  # which puts SIGTERM and SIGHUP at SIG_DFL: ours again
            if signum is not signal.SIGINT:
                signal.signal(signum, handler)


def _write_down(then: Callable[[_T], _R], result: _T, stops: list[signal.Signals]) -> tuple[_R, bool]:
    """then(result) with the stop signals (Ctrl-C, SIGTERM, SIGHUP) only remembered. Inside the loop their Python
    handler is asyncio's no-op (the loop hears of them through its wakeup file), so swapping it for the hold and
    back can never raise, in whichever thread the signal lands; the swap back runs one still pending into the
    hold. A signal held here ends the command with exit 130 once the run is written down."""
    hold = _HeldInterrupt()
    quiet = {signum: signal.signal(signum, hold) for signum in stops}
    try:
        written = then(result)
    finally:
        for signum, handler in quiet.items():
            signal.signal(signum, handler)
    if hold.pressed:
        log.warning("interrupt_held", note="a stop came as the run was written down; it is recorded, exiting 130")
    return written, hold.pressed


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
