"""Operator hooks: run one executable per deploy phase, bounded in time and output, and report what happened.

A hooks folder (`[deploy] hooks_dir`, default `hooks/` beside sartoris.toml) holds at most one executable per
phase, named after it: `pre-sync`, `post-sync`, `finish`, `abort`, `pre-rollback`, `post-rollback`.

    hook file missing            -> skipped: ran=False, ok=True
    exists, not executable       -> ran=False, ok=False, error="... is not executable (chmod +x ...)"
    exits 0                      -> ok
    exits non-zero / signalled   -> ok=False, error carries the status and the hook's last output line
    runs past its timeout        -> its whole process group gets SIGTERM, then SIGKILL; ok=False, "timed out"

A hook is exec'd directly (no shell, no arguments) in the slot's working copy, stdin from /dev/null, with the
deploy host's environment plus SARTORIS_* variables (see HookContext.environment). Its stdout and stderr are
captured together and only the last 64 KiB are kept. A failed hook is a result, never an exception.

What the deploy flow does with the results (the contract hooks are written against):
- a failing pre-* hook (pre-sync, pre-rollback) stops the deploy before anything is tagged, pushed or
  switched;
- post-sync / post-rollback run after the fan-out, whatever its outcome, with SARTORIS_OUTCOME set to ok,
  partial or aborted; a post hook that announces must not announce success for an aborted run (the shipped
  notifiers in scripts/hooks/ read SARTORIS_OUTCOME for that), and a failing post hook undoes nothing;
- finish and abort run when `sartoris finish` / `sartoris abort` release the slot's lock.

The environment is never logged nor put in an error message: operators keep tokens in it.
"""

from __future__ import annotations

import enum
import errno
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sartoris.output_tail import closing_words
from sartoris.process_groups import end_process_group

OUTPUT_LIMIT = 64 * 1024
"""Bytes of a hook's output kept: enough for a traceback, bounded against a runaway hook."""

DEFAULT_TIMEOUT = 120.0
"""Seconds a hook may run when the caller has no configured bound."""

KILL_GRACE = 2.0
"""Seconds between SIGTERM and SIGKILL for a hook that timed out."""

KILL_WAIT = 5.0
"""Seconds to wait for the kernel to finish off a SIGKILLed group before giving up on seeing it gone."""

DRAIN_GRACE = 1.0
"""Seconds to keep reading output after the hook exits, if something it left running still holds the pipe."""

_ACTIONS = frozenset({"sync", "rollback", "finish", "abort"})
_OUTCOMES = frozenset({"ok", "partial", "aborted", "unknown"})  # unknown: finish after a run that died switching


class HookPhase(enum.StrEnum):
    """The moments a hook can run at; the value is also the hook's file name."""

    PRE_SYNC = "pre-sync"
    POST_SYNC = "post-sync"
    FINISH = "finish"
    ABORT = "abort"
    PRE_ROLLBACK = "pre-rollback"
    POST_ROLLBACK = "post-rollback"


@dataclass(frozen=True, slots=True)
class HookContext:
    """What a hook is told about the run, passed as SARTORIS_* environment variables."""

    action: str
    phase: HookPhase
    slot: int
    prefix: str
    tag: str | None = None
    outcome: str | None = None
    failed_hosts: tuple[str, ...] = ()
    not_switched_hosts: tuple[str, ...] = ()  # the run stopped before their turn: still on their old release
    name: str = ""
    message: str = ""

    def __post_init__(self) -> None:
        """Reject values a caller could only pass by mistake, so a hook never sees a malformed variable."""
        if self.action not in _ACTIONS:
            raise ValueError(f"unknown hook action {self.action!r}; expected one of {sorted(_ACTIONS)}")
        if not isinstance(self.phase, HookPhase):
            raise TypeError(f"phase must be a HookPhase, not {self.phase!r}")
        if self.slot < 0:
            raise ValueError(f"slot must be >= 0, not {self.slot}")
        if self.outcome is not None and self.outcome not in _OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r}; expected one of {sorted(_OUTCOMES)}")
        for host in (*self.failed_hosts, *self.not_switched_hosts):
            if not host or any(character.isspace() for character in host):
                raise ValueError(f"host {host!r} would break a space-separated list of hosts")
        if any("\0" in value for value in self.environment().values()):
            raise ValueError("hook context values cannot contain NUL characters")

    def environment(self) -> dict[str, str]:
        """The SARTORIS_* variables for the hook; unset values are empty strings so a hook can test them."""
        return {
            "SARTORIS_ACTION": self.action,
            "SARTORIS_PHASE": str(self.phase),
            "SARTORIS_SLOT": str(self.slot),
            "SARTORIS_TAG": self.tag or "",
            "SARTORIS_PREFIX": self.prefix,
            "SARTORIS_OUTCOME": str(self.outcome) if self.outcome is not None else "",
            "SARTORIS_FAILED_HOSTS": _host_list(self.failed_hosts),
            "SARTORIS_FAILED_COUNT": str(len(self.failed_hosts)),
            "SARTORIS_NOT_SWITCHED_HOSTS": _host_list(self.not_switched_hosts),
            "SARTORIS_NOT_SWITCHED_COUNT": str(len(self.not_switched_hosts)),
            "SARTORIS_NAME": self.name,
            "SARTORIS_MESSAGE": self.message,
        }


HOST_LIST_LIMIT = 32 * 1024
"""Characters of a host list in one variable: Linux refuses to start a program given any one environment string
over 128 KiB, and a run that stopped before most of a 4,000-host fleet would pass that. The count is whole."""


def _host_list(hosts: tuple[str, ...]) -> str:
    """The hosts, space-separated, cut after the last one that fits HOST_LIST_LIMIT."""
    text = " ".join(hosts)
    if len(text) <= HOST_LIST_LIMIT:
        return text
    return text[: HOST_LIST_LIMIT + 1].rsplit(" ", 1)[0]


@dataclass(frozen=True, slots=True)
class HookResult:
    """What running (or not running) one hook produced; ok=False always carries a one-line error."""

    phase: HookPhase
    ran: bool
    ok: bool
    exit_status: int | None
    seconds: float
    output_tail: str
    error: str | None

    def __post_init__(self) -> None:
        """Keep the record self-consistent: errors go with failures, exit statuses with hooks that ran."""
        if self.ok != (self.error is None):
            raise ValueError(f"ok={self.ok} contradicts error={self.error!r}")
        if not self.ran and self.exit_status is not None:
            raise ValueError("a hook that did not run has no exit status")
        if self.seconds < 0:
            raise ValueError(f"seconds must be >= 0, not {self.seconds}")

    @property
    def skipped(self) -> bool:
        """True when there was no hook for the phase, which is fine."""
        return not self.ran and self.ok


def hook_path(hooks_dir: Path, phase: HookPhase) -> Path:
    """Where the hook for `phase` lives: the phase name inside the hooks folder."""
    return hooks_dir / str(phase)


def run_hook(
    hooks_dir: Path,
    context: HookContext,
    *,
    timeout: float,
    cwd: Path,
    base_env: Mapping[str, str] | None = None,
    kill_grace: float = KILL_GRACE,
) -> HookResult:
    """Run the hook for context.phase, if there is one, and say how it went; a failing hook never raises."""
    if timeout <= 0 or kill_grace < 0:
        raise ValueError(f"timeout must be > 0 and kill_grace >= 0, not {timeout} and {kill_grace}")
    phase = context.phase
    path = hook_path(hooks_dir, phase).absolute()
    if os.path.lexists(hooks_dir) and not hooks_dir.is_dir():  # a misspelt setting must not skip the pre-sync gate
        return _not_started(phase, f"hooks_dir {hooks_dir} is not a folder, so the {phase} hook cannot be looked for")
    if not os.path.lexists(path):
        return HookResult(phase, ran=False, ok=True, exit_status=None, seconds=0.0, output_tail="", error=None)
    problem = _unrunnable(path, phase)
    if problem is not None:
        return _not_started(phase, problem)
    if not cwd.is_dir():
        return _not_started(phase, f"{phase} hook cannot run in {cwd}: not a folder")
    env = dict(os.environ if base_env is None else base_env)
    env.update(context.environment())
    return _execute(path, phase, env=env, cwd=cwd, timeout=timeout, kill_grace=kill_grace)


def _execute(
    path: Path, phase: HookPhase, *, env: dict[str, str], cwd: Path, timeout: float, kill_grace: float
) -> HookResult:
    """Start the hook in a session of its own, collect its output, and stop its whole group if it overruns."""
    started = time.monotonic()
    try:
        process = subprocess.Popen(
            [str(path)],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        hint = " (no #! line?)" if exc.errno == errno.ENOEXEC else ""
        return _not_started(phase, f"{phase} hook {path} could not start: {exc.strerror or exc}{hint}")
    with process:
        try:
            output, timed_out = _collect(process, started + timeout)
        except BaseException:  # Ctrl-C or a bug here: never leave the hook running unwatched
            end_process_group(process, kill_grace, KILL_WAIT)
            raise
        if timed_out:
            end_process_group(process, kill_grace, KILL_WAIT)
            _drain(process, output, time.monotonic() + DRAIN_GRACE)
    tail = _tail(output).decode("utf-8", errors="replace")
    seconds = time.monotonic() - started
    if timed_out:
        error: str | None = f"{phase} hook timed out after {timeout:g}s"
        return HookResult(phase, ran=True, ok=False, exit_status=None, seconds=seconds, output_tail=tail, error=error)
    status = process.returncode
    error = None if status == 0 else _exit_error(phase, status, tail)
    return HookResult(
        phase, ran=True, ok=error is None, exit_status=status, seconds=seconds, output_tail=tail, error=error
    )


def _unrunnable(path: Path, phase: HookPhase) -> str | None:
    """None when the hook file at `path` can be exec'd, else why not, in words an operator can act on."""
    if not path.exists():
        return f"{phase} hook {path} is a broken symlink"
    if path.is_dir():
        return f"{phase} hook {path} is a folder, not an executable"
    if not os.access(path, os.X_OK):
        return f"{phase} hook {path} exists but is not executable (chmod +x {path})"
    return None


def _not_started(phase: HookPhase, error: str) -> HookResult:
    """A hook that was there but could not be started."""
    return HookResult(phase, ran=False, ok=False, exit_status=None, seconds=0.0, output_tail="", error=error)


def _collect(process: subprocess.Popen[bytes], deadline: float) -> tuple[bytearray, bool]:
    """Read the hook's output until it closes and exits, keeping a bounded tail; True if the deadline hit."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    output = bytearray()
    exited_at: float | None = None
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            now = time.monotonic()
            if exited_at is None and process.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at >= DRAIN_GRACE:
                return output, False  # something the hook left running holds the pipe: stop listening
            if exited_at is None and now >= deadline:
                return output, True
            wait = 0.05 if exited_at is not None else min(deadline - now, 0.05)
            if not selector.select(timeout=wait):
                continue
            if not _read_into(fd, output):
                break
    try:
        process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return output, True  # closed its output but kept running
    return output, False


def _drain(process: subprocess.Popen[bytes], output: bytearray, deadline: float) -> None:
    """Add what a killed hook wrote last, read until the pipe closes or a short deadline passes."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while (remaining := deadline - time.monotonic()) > 0 and selector.select(timeout=remaining):
            if not _read_into(fd, output):
                break


def _read_into(fd: int, output: bytearray) -> bool:
    """Append one read from `fd`, trimming to a bounded tail now and then; False at end of file."""
    chunk = os.read(fd, OUTPUT_LIMIT)
    output += chunk
    if len(output) > 2 * OUTPUT_LIMIT:
        del output[:-OUTPUT_LIMIT]
    return bool(chunk)


def _tail(output: bytes | bytearray) -> bytes:
    """The last OUTPUT_LIMIT bytes."""
    return bytes(output[-OUTPUT_LIMIT:])


def _exit_error(phase: HookPhase, status: int, tail: str) -> str:
    """One line saying how the hook ended, with its last line of output when it wrote any, escaped when it holds
    control characters (an escape sequence in it would act on the terminal of the refusal or log that says it)."""
    if status < 0:
        try:
            how = f"was killed by {signal.Signals(-status).name}"
        except ValueError:
            how = f"was killed by signal {-status}"
    else:
        how = f"exited {status}"
    words = closing_words(tail)
    return f"{phase} hook {how}" + (f": {words}" if words is not None else "")
