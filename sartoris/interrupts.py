"""Ctrl-C during a run: the first one stops it, later ones do not abandon it.

asyncio's runner turns a second Ctrl-C into KeyboardInterrupt straight out of the event loop, which leaves the
switches in flight unwatched and the run unrecorded. A run under `run_stoppable` takes the first Ctrl-C as a
cancellation (each phase then ends what it must, bounded by its timeouts, and returns its result) and only
says so for the later ones while its event loop runs. (A Ctrl-C after that, while the run is recorded and
its post hook runs, still interrupts those.)
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

import structlog

log = structlog.get_logger("sartoris")

_T = TypeVar("_T")


def run_stoppable(main: Coroutine[Any, Any, _T]) -> _T:
    """asyncio.run(main), where only the first Ctrl-C interrupts; KeyboardInterrupt if `main` let it through.
    A process started with SIGINT ignored (a background job) keeps ignoring it, as asyncio.run would."""
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return asyncio.run(main)
    return asyncio.run(_guarded(main))


async def _guarded(main: Coroutine[Any, Any, _T]) -> _T:
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
        loop.remove_signal_handler(signal.SIGINT)


async def despite_interrupt(work: Awaitable[_T]) -> tuple[_T, bool]:
    """Await `work` (which must be bounded) to its end even when the run is interrupted meanwhile; its result,
    and whether an interrupt came."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task), False
    except asyncio.CancelledError:
        return await task, True
