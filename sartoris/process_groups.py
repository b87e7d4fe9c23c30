"""Ending a child process together with everything it started: the group of a child started in a session
of its own (hooks, pushes), SIGTERM first, SIGKILL after a grace, watched through /proc so that a member that
traps SIGTERM or outlives its leader is not left running unseen.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator


def end_process_group(process: subprocess.Popen[bytes], grace: float, kill_wait: float) -> None:
    """Stop `process` (started with start_new_session, so it leads its own group) and everything it started:
    SIGTERM to the group, SIGKILL after `grace` to whatever is left of it, then reap the process. A member that
    outlives its leader (a hook trapping SIGTERM) is waited for and killed too."""
    group = process.pid
    _signal_group(group, signal.SIGTERM)
    if not _wait_group(process, time.monotonic() + grace):
        _signal_group(group, signal.SIGKILL)
        _wait_group(process, time.monotonic() + kill_wait)
    process.wait()


def kill_with_children(process: subprocess.Popen[bytes], wait: float) -> None:
    """SIGKILL `process` (one in Sartoris's own group, which a terminal's Ctrl-C reaches too) and every process it
    started (git's ssh for a fetch, which would otherwise wait out its own timeout), then reap it, waiting at most
    `wait` seconds."""
    for descendant in [process.pid, *_descendants_of(process.pid)]:  # the parent first: it starts no more
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(descendant, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=wait)


def _descendants_of(pid: int) -> list[int]:
    """The processes `pid` started, and theirs, from /proc's parent links (none where there is no /proc)."""
    parents: dict[int, list[int]] = {}
    with contextlib.suppress(OSError):
        for process, fields in _processes():
            if len(fields) > 1 and fields[1].isdigit():
                parents.setdefault(int(fields[1]), []).append(process)
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def _processes() -> Iterator[tuple[int, list[str]]]:
    """Each process in /proc with the fields of its stat after the name (state, parent, group, ...); OSError when
    there is no /proc. A process gone meanwhile is left out."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as stat:
                yield int(name), stat.read().rpartition(")")[2].split()
        except OSError:
            continue  # gone meanwhile


def _wait_group(process: subprocess.Popen[bytes], deadline: float) -> bool:
    """Wait until no process of the group is running; False if some still are at the deadline."""
    while True:
        process.poll()  # reap the leader so it stops counting
        if not _group_running(process.pid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _group_running(group: int) -> bool:
    """True while a process of `group` still runs; zombies waiting for a slow init to reap them do not count."""
    try:
        return any(len(f) > 2 and f[2] == str(group) and f[0] not in ("Z", "X") for _, f in _processes())
    except OSError:
        return _signal_group(group, 0)  # no /proc: unreaped zombies count too, costing at most the grace


def _signal_group(group: int, signum: int) -> bool:
    """Send `signum` to a process group; False when the group no longer exists."""
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # a member changed identity (setuid); the group still exists
    return True
