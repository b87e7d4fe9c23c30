"""How scripts/bench.py measures one tool run from the outside, the same way for every tool.

- wall: time from spawn to exit of the tool's process (it runs in its own session and process group).
- controller CPU and peak RSS: the rusage os.wait4 returns for that process, which adds up every descendant it
  waited for (xargs's ssh, Ansible's forks, Sartoris's git push); ru_maxrss is the largest single process.
- tree memory: for tools made of many processes, the peak of the summed PSS of the whole tree, sampled.
- host side: the fleet's sshd listeners outlive every connection and reap the per-connection sshd, which reaps
  the shell and git it ran, so a listener's utime+stime+cutime+cstime grows by everything the hosts did.
- machine: busy CPU of the whole machine (/proc/stat); connections: distinct TCP connections to the hosts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fleet import children_by_parent, descendants

CLK_TCK = os.sysconf("SC_CLK_TCK")
SAMPLE_EVERY = 1.0  # seconds between two samples of a process tree's memory (each costs a /proc scan)
_running: set[int] = set()  # process groups of tool runs in flight, for kill_running()


@dataclass(frozen=True)
class ToolRun:
    """One finished (or killed) tool process."""

    returncode: int
    wall: float
    cpu: float  # user + system seconds of the tool and every descendant it reaped
    maxrss_kb: int  # the largest single process of the tree
    tree_pss_kb: int | None  # sampled peak of the tree's summed PSS, when sampled
    stdout: str
    stderr: str
    timed_out: bool
    user: float = 0.0  # the user part of cpu
    system: float = 0.0  # the system part of cpu (kernel: sockets, fork/exec, files)

    def tail(self, lines: int = 6) -> str:
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return " | ".join(text[-lines:]) if text else f"exit {self.returncode}"


def run_tool(
    argv: Sequence[str],
    *,
    timeout: float,
    out_dir: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    sample_tree: bool = False,
) -> ToolRun:
    """Run argv to its end (killing its process group at the timeout); measure it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = out_dir / "stdout", out_dir / "stderr"
    reaped: list[tuple[int, int, object]] = []
    peak_pss = 0
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        began = time.perf_counter()
        process = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=dict(env) if env else None,
            cwd=cwd, start_new_session=True,
        )
    _running.add(process.pid)
    waiter = threading.Thread(target=lambda: reaped.append(os.wait4(process.pid, 0)), daemon=True)
    waiter.start()
    timed_out = False
    try:
        deadline = began + timeout
        while waiter.is_alive():
            if sample_tree:
                peak_pss = max(peak_pss, tree_pss_kb(process.pid))
            waiter.join(min(SAMPLE_EVERY if sample_tree else 1.0, max(deadline - time.perf_counter(), 0.01)))
            if waiter.is_alive() and time.perf_counter() >= deadline:
                timed_out = True
                _kill_group(process.pid)
                waiter.join(30)
                break
        wall = time.perf_counter() - began
    finally:
        if waiter.is_alive():  # interrupted (Ctrl-C, SIGTERM): take the whole tool down with us
            _kill_group(process.pid)
            waiter.join(30)
        _kill_group(process.pid)  # orphans left in the group (none expected)
        _running.discard(process.pid)
    if not reaped:
        raise RuntimeError(f"{argv[0]}: process {process.pid} could not be reaped")
    _, status, usage = reaped[0]
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped by us: keep Popen from waiting again
    return ToolRun(
        returncode=process.returncode,
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,  # type: ignore[attr-defined]
        maxrss_kb=usage.ru_maxrss,  # type: ignore[attr-defined]
        tree_pss_kb=peak_pss if sample_tree else None,
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
        timed_out=timed_out,
        user=usage.ru_utime,  # type: ignore[attr-defined]
        system=usage.ru_stime,  # type: ignore[attr-defined]
    )


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def kill_running() -> None:
    """SIGKILL every tool run still in flight (by its process group); used on the way out."""
    for pgid in list(_running):
        _kill_group(pgid)


def pss_kb(pid: int) -> int:
    """Proportional set size of one process (shared pages split between their users), 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def tree_pss_kb(root: int) -> int:
    """Summed PSS of a process and all its descendants, right now (one scan of /proc: ~20 ms here)."""
    tree = children_by_parent()
    return sum(pss_kb(pid) for pid in (root, *descendants(root, tree)))


# --- the host side and the machine ---------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return raw[raw.rindex(")") + 2 :].split()


def listeners_cpu(pids: Iterable[int]) -> float:
    """utime + stime + cutime + cstime of the sshd listeners, in seconds (reaped descendants included)."""
    ticks = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            ticks += sum(int(value) for value in fields[11:15])
    return ticks / CLK_TCK


def wait_sessions_reaped(pids: Iterable[int], timeout: float = 15.0) -> bool:
    """Wait (bounded) until no listener has a child left: every session's CPU is then in cutime/cstime."""
    wanted = set(pids)
    deadline = time.monotonic() + timeout
    while True:
        tree = children_by_parent()
        if not any(tree.get(pid) for pid in wanted):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def machine_busy_cpu() -> float:
    """CPU seconds the whole machine spent not idle since boot (user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def _hex_endpoint(address: str, port: int) -> str:
    """How /proc/net/tcp writes an IPv4 endpoint: the address as a host-order 32-bit hex number, then the port."""
    return f"{int.from_bytes(socket.inet_aton(address), sys.byteorder):08X}:{port:04X}"


class ConnectionCounter:
    """Counts distinct TCP connections to a set of servers by sampling /proc/net/tcp in a thread.

    A closed connection stays listed in TIME_WAIT for 60 s on the side that closed first, so sampling every
    second sees every connection, however short, as one (client endpoint, server endpoint) pair.
    """

    def __init__(self, servers: Iterable[tuple[str, int]], every: float = 1.0) -> None:
        self._servers = {_hex_endpoint(address, port) for address, port in servers}
        self._every = every
        self._seen: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> set[tuple[str, str]]:
        found = set()
        with open("/proc/net/tcp") as table:
            next(table)
            for line in table:
                fields = line.split(maxsplit=4)
                local, remote, state = fields[1], fields[2], fields[3]
                if state == "0A":  # LISTEN
                    continue
                if local in self._servers:
                    found.add((remote, local))
                elif remote in self._servers:
                    found.add((local, remote))
        return found

    def _loop(self) -> None:
        while not self._stop.wait(self._every):
            self._seen |= self._sample()

    def start(self) -> None:
        self._before = self._sample()
        self._thread.start()

    def stop(self) -> int:
        """The number of connections opened since start (and seen)."""
        self._stop.set()
        self._thread.join(10)
        self._seen |= self._sample()
        return len(self._seen - self._before)


@dataclass(frozen=True)
class HostSide:
    """What the fleet and the machine spent while one tool ran."""

    host_cpu: float  # sshd listeners and everything below them
    machine_cpu: float  # the whole machine, busy
    connections: int  # TCP connections opened to the measured hosts
    quiet: bool  # every session was reaped before the reading (else host_cpu misses the stragglers)


class HostMeter:
    """Readings before and after a run of the fleet's listeners and the machine."""

    def __init__(self, listener_pids: Sequence[int], servers: Iterable[tuple[str, int]]) -> None:
        self._pids = list(listener_pids)
        self._connections = ConnectionCounter(servers)

    def __enter__(self) -> HostMeter:
        wait_sessions_reaped(self._pids)
        self._cpu = listeners_cpu(self._pids)
        self._machine = machine_busy_cpu()
        self._connections.start()
        self.result: HostSide | None = None
        return self

    def __exit__(self, *exc: object) -> None:
        quiet = wait_sessions_reaped(self._pids)
        self.result = HostSide(
            host_cpu=listeners_cpu(self._pids) - self._cpu,
            machine_cpu=machine_busy_cpu() - self._machine,
            connections=self._connections.stop(),
            quiet=quiet,
        )
