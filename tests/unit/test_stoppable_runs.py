"""Tests for sartoris.interrupts.run_stoppable: the first Ctrl-C cancels a run, later ones do not abandon it,
a process started with Ctrl-C ignored keeps ignoring it, and run_stoppable_then holds Ctrl-C while the run
is written down."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sartoris.interrupts import run_stoppable, run_stoppable_then, stop_on_sigterm_or_hangup


def press_ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def test_the_first_ctrl_c_cancels_and_a_second_is_only_acknowledged() -> None:
    """The run catches the cancel, finishes what is in flight through a second press, and returns its result."""

    async def run() -> str:
        press_ctrl_c()
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            press_ctrl_c()
            await asyncio.sleep(0.2)
            return "recorded"
        return "not interrupted"

    assert run_stoppable(run()) == "recorded"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize(
    "runner",
    [
        pytest.param(run_stoppable, id="run_stoppable"),
        pytest.param(lambda main: run_stoppable_then(main, lambda _: None), id="run_stoppable_then"),
    ],
)
def test_a_run_that_lets_the_cancel_through_ends_as_an_interrupt(runner: Callable[[Any], object]) -> None:
    """A run that does not catch the cancel from Ctrl-C ends in KeyboardInterrupt, as under asyncio.run, with
    Ctrl-C's handler restored (nothing is written down: the run returned no result)."""

    async def run() -> None:
        press_ctrl_c()
        await asyncio.sleep(5)

    with pytest.raises(KeyboardInterrupt):
        runner(run())
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_process_that_ignores_ctrl_c_keeps_ignoring_it() -> None:
    """A background job (started with SIGINT ignored) is not stopped by a Ctrl-C meant for the foreground."""

    async def run() -> str:
        press_ctrl_c()
        await asyncio.sleep(0.2)
        return "done"

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        assert run_stoppable(run()) == "done"
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_while_the_run_is_written_down_is_held_and_reported() -> None:
    """A press after the event loop ended neither cuts the record short nor is lost: it is reported after."""
    written: list[str] = []

    async def run() -> str:
        return "deployed"

    def write_down(result: str) -> str:
        press_ctrl_c()
        time.sleep(0.05)  # the press is handled here, between bytecodes, if nothing holds it
        written.append(result)
        return f"recorded {result}"

    assert run_stoppable_then(run(), write_down) == ("recorded deployed", True)
    assert written == ["deployed"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_run_stoppable_then_still_lets_the_first_ctrl_c_cancel_the_run() -> None:
    """The first Ctrl-C still cancels a run under run_stoppable_then; its result is written down, no press held."""

    async def run() -> str:
        press_ctrl_c()
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            return "stopped"
        return "not interrupted"

    assert run_stoppable_then(run(), str.upper) == ("STOPPED", False)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_landing_in_a_worker_thread_while_the_run_is_written_down_is_held_too() -> None:
    """The run used a worker thread (as the publish does), so the kernel may hand SIGINT to that thread; the
    record is still written whole and the press reported."""
    written: list[str] = []

    async def run() -> str:
        return await asyncio.to_thread(lambda: "published")

    def write_down(result: str) -> str:
        presser = threading.Thread(target=press_ctrl_c)
        presser.start()
        presser.join()
        time.sleep(0.05)
        written.append(result)
        return result

    assert run_stoppable_then(run(), write_down) == ("published", True)
    assert written == ["published"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.fixture
def termination_signals_restored() -> Iterator[None]:
    previous = {signum: signal.signal(signum, signal.SIG_DFL) for signum in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


async def _signalled_run(signum: signal.Signals) -> str:
    """A run that sends this process `signum` and then waits: whether the signal stopped it (by cancelling it)."""
    os.kill(os.getpid(), signum)
    try:
        await asyncio.sleep(5)
    except asyncio.CancelledError:
        return "stopped and recorded"
    return "not stopped"


@pytest.mark.usefixtures("termination_signals_restored")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["sigterm", "sighup"])
def test_sigterm_and_a_hang_up_stop_a_run_the_way_ctrl_c_does(signum: signal.Signals) -> None:
    """`kill PID`, or the operator's terminal hanging up, cancels the run (which then ends what it must and
    returns), instead of killing the process."""
    stop_on_sigterm_or_hangup()
    assert run_stoppable(_signalled_run(signum)) == "stopped and recorded"


@pytest.mark.usefixtures("termination_signals_restored")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["sigterm", "sighup"])
def test_a_background_job_that_ignores_ctrl_c_still_stops_on_sigterm_the_same_way(signum: signal.Signals) -> None:
    """`sartoris sync &` from a script starts with SIGINT ignored: Ctrl-C stays ignored, but SIGTERM and SIGHUP
    still stop the run the recorded way (not by killing it), and are ours again once the run's loop ends."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        stop_on_sigterm_or_hangup()
        assert run_stoppable_then(_signalled_run(signum), lambda outcome: outcome) == ("stopped and recorded", False)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signum) not in (signal.SIG_DFL, signal.SIG_IGN)
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("termination_signals_restored")
def test_a_deploy_under_nohup_keeps_running_after_a_hang_up() -> None:
    """`nohup sartoris sync` starts with SIGHUP ignored: it stays ignored, so the deploy outlives the terminal."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    stop_on_sigterm_or_hangup()
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL


@pytest.mark.usefixtures("termination_signals_restored")
def test_a_sigterm_while_the_run_is_written_down_is_held_like_ctrl_c() -> None:
    """SIGTERM as the run is written down: the record is finished first, then the command ends as interrupted
    (the hold reports it), as a Ctrl-C there does; it is not dropped into a normal exit."""
    stop_on_sigterm_or_hangup()

    async def run() -> str:
        return "published"

    def write_down(result: str) -> str:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        return result

    assert run_stoppable_then(run(), write_down) == ("published", True)
    assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN)
