"""Tests for sartoris.interrupts.run_stoppable: the first Ctrl-C cancels a run, later ones do not abandon it,
and a process started with Ctrl-C ignored keeps ignoring it."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from sartoris.interrupts import run_stoppable


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


def test_a_run_that_lets_the_cancel_through_ends_as_an_interrupt() -> None:
    async def run() -> None:
        press_ctrl_c()
        await asyncio.sleep(5)

    with pytest.raises(KeyboardInterrupt):
        run_stoppable(run())


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
