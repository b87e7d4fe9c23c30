"""Tests for sartoris.pool.run_pool_command: the configured depool/pool command, run once per host, bounded,
in its own session (the operator's Ctrl-C must not kill a depool half-way), a failure reported as one line."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from sartoris.pool import run_pool_command


def run(template: tuple[str, ...], timeout: float = 10) -> str | None:
    return asyncio.run(run_pool_command(template, "mw1001", timeout))


def test_success_is_none_and_the_host_is_substituted(tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    assert run(("sh", "-c", f'echo "$1" > {seen}', "sh", "{host}")) is None
    assert seen.read_text() == "mw1001\n"


def test_a_failing_command_says_its_status_and_last_stderr_line() -> None:
    assert run(("sh", "-c", "echo first >&2; echo 'pool busy' >&2; exit 3")) == "sh exited 3: pool busy"


def test_a_missing_command_is_one_line() -> None:
    assert run(("/nonexistent/confctl", "{host}")) == "/nonexistent/confctl: No such file or directory"


def test_the_command_runs_in_its_own_session(tmp_path: Path) -> None:
    """A terminal's Ctrl-C goes to the foreground process group; the depool command is not in it."""
    session = tmp_path / "session"
    assert run((sys.executable, "-c", f"import os; open({str(session)!r}, 'w').write(str(os.getsid(0)))")) is None
    assert int(session.read_text()) != os.getsid(0)


def test_a_hung_command_is_stopped_with_what_it_started(tmp_path: Path) -> None:
    child = tmp_path / "child"
    began = time.monotonic()
    error = run(("sh", "-c", f"sleep 30 & echo $! > {child}; wait"), timeout=0.5)
    assert error == "sh timed out after 0.5s" and time.monotonic() - began < 5
    pid = int(child.read_text())
    deadline = time.monotonic() + 5
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(pid), "the command's background child outlived the timeout"


def test_a_child_that_left_the_group_does_not_hold_the_run_past_the_timeout(tmp_path: Path) -> None:
    """A descendant in its own session escapes the kill and keeps the pipes open; the wait is still bounded."""
    escaped = tmp_path / "escaped"
    began = time.monotonic()
    error = run(("sh", "-c", f"setsid sh -c 'echo $$ > {escaped}; exec sleep 30' & wait"), timeout=0.5)
    try:
        assert error == "sh timed out after 0.5s" and time.monotonic() - began < 6
    finally:
        if escaped.exists():
            os.kill(int(escaped.read_text()), 9)


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting to be reaped counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
