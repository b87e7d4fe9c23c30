"""Tests for sartoris.hooks: real executable hooks written into tmp_path, run as the deploy would run them."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sartoris.hooks import (
    DRAIN_GRACE,
    HOST_LIST_LIMIT,
    KILL_GRACE,
    OUTPUT_LIMIT,
    HookContext,
    HookPhase,
    HookResult,
    hook_path,
    run_hook,
)

SYNC_CONTEXT = HookContext(action="sync", phase=HookPhase.PRE_SYNC, slot=0, prefix="php-slot0")


def write_hook(hooks_dir: Path, phase: HookPhase, body: str, mode: int = 0o755) -> Path:
    """Write an executable hook file for `phase` with `body` as its content."""
    hooks_dir.mkdir(parents=True, exist_ok=True)
    path = hook_path(hooks_dir, phase)
    path.write_text(body)
    path.chmod(mode)
    return path


def is_alive(pid: int) -> bool:
    """True while `pid` is a running (not zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A slot working copy for hooks to run in."""
    path = tmp_path / "php-slot0"
    path.mkdir()
    return path


@pytest.fixture
def leftover_pids() -> Iterator[list[int]]:
    """Pids a test's hook left behind; killed at the end whatever happened."""
    pids: list[int] = []
    try:
        yield pids
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("phase", list(HookPhase), ids=str)
def test_hook_path_is_phase_name(tmp_path: Path, phase: HookPhase) -> None:
    """Each phase's hook is the file named after the phase inside the hooks folder."""
    assert hook_path(tmp_path, phase) == tmp_path / phase.value


@pytest.mark.parametrize(
    "make_dir",
    [pytest.param(True, id="empty-folder"), pytest.param(False, id="no-folder")],
)
def test_missing_hook_is_skipped(tmp_path: Path, workdir: Path, make_dir: bool) -> None:
    """No hook file (or no hooks folder at all) is a successful skip, not an error."""
    hooks_dir = tmp_path / "hooks"
    if make_dir:
        hooks_dir.mkdir()
    result = run_hook(hooks_dir, SYNC_CONTEXT, timeout=5, cwd=workdir)
    assert result == HookResult(
        HookPhase.PRE_SYNC, ran=False, ok=True, exit_status=None, seconds=0.0, output_tail="", error=None
    )
    assert result.skipped


def test_a_hooks_dir_that_is_not_a_folder_fails_the_hook(tmp_path: Path, workdir: Path) -> None:
    """hooks_dir naming a file (a misspelt setting) silently meant no hooks, the pre-sync gate included."""
    hooks_dir = tmp_path / "hooks.conf"
    hooks_dir.write_text("pre-sync = check\n")
    result = run_hook(hooks_dir, SYNC_CONTEXT, timeout=5, cwd=workdir)
    assert not result.ok and "is not a folder" in str(result.error)


def test_not_executable_is_reported(tmp_path: Path, workdir: Path) -> None:
    """A hook file without the execute bit fails with a message that says to chmod +x it."""
    path = write_hook(tmp_path / "hooks", HookPhase.PRE_SYNC, "#!/bin/sh\nexit 0\n", mode=0o644)
    result = run_hook(tmp_path / "hooks", SYNC_CONTEXT, timeout=5, cwd=workdir)
    assert not result.ran
    assert not result.ok
    assert result.error == f"pre-sync hook {path} exists but is not executable (chmod +x {path})"


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        pytest.param(lambda p: p.mkdir(parents=True), "is a folder", id="folder"),
        pytest.param(
            lambda p: (p.parent.mkdir(parents=True), p.symlink_to(p.parent / "gone")),
            "is a broken symlink",
            id="broken-symlink",
        ),
        pytest.param(
            lambda p: write_hook(p.parent, HookPhase.PRE_SYNC, "echo no shebang\n"),
            "could not start: Exec format error (no #! line?)",
            id="no-shebang",
        ),
    ],
)
def test_unrunnable_hook_is_reported(
    tmp_path: Path, workdir: Path, make: Callable[[Path], object], expected: str
) -> None:
    """A hook path that exists but cannot be exec'd is an error result naming the reason."""
    path = hook_path(tmp_path / "hooks", HookPhase.PRE_SYNC)
    make(path)
    result = run_hook(tmp_path / "hooks", SYNC_CONTEXT, timeout=5, cwd=workdir)
    assert not result.ok
    assert result.error is not None
    assert expected in result.error


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        pytest.param(
            HookContext(
                action="sync",
                phase=HookPhase.POST_SYNC,
                slot=1,
                prefix="php-slot1",
                tag="mediawiki/php-slot1/2024-05-01T10.00.00",
                outcome="partial",
                failed_hosts=("mw1001", "deploy@mw1002:2222"),
                not_switched_hosts=("mw1003",),
                name="mediawiki",
                message="fix T123",
            ),
            {
                "SARTORIS_ACTION": "sync",
                "SARTORIS_PHASE": "post-sync",
                "SARTORIS_SLOT": "1",
                "SARTORIS_TAG": "mediawiki/php-slot1/2024-05-01T10.00.00",
                "SARTORIS_PREFIX": "php-slot1",
                "SARTORIS_OUTCOME": "partial",
                "SARTORIS_FAILED_HOSTS": "mw1001 deploy@mw1002:2222",
                "SARTORIS_FAILED_COUNT": "2",
                "SARTORIS_NOT_SWITCHED_HOSTS": "mw1003",
                "SARTORIS_NOT_SWITCHED_COUNT": "1",
                "SARTORIS_NAME": "mediawiki",
                "SARTORIS_MESSAGE": "fix T123",
            },
            id="post-sync-partial",
        ),
        pytest.param(
            SYNC_CONTEXT,
            {
                "SARTORIS_ACTION": "sync",
                "SARTORIS_PHASE": "pre-sync",
                "SARTORIS_SLOT": "0",
                "SARTORIS_TAG": "",
                "SARTORIS_PREFIX": "php-slot0",
                "SARTORIS_OUTCOME": "",
                "SARTORIS_FAILED_HOSTS": "",
                "SARTORIS_FAILED_COUNT": "0",
                "SARTORIS_NOT_SWITCHED_HOSTS": "",
                "SARTORIS_NOT_SWITCHED_COUNT": "0",
                "SARTORIS_NAME": "",
                "SARTORIS_MESSAGE": "",
            },
            id="pre-sync-unset-values-empty",
        ),
    ],
)
def test_environment_reaches_hook(
    tmp_path: Path, workdir: Path, context: HookContext, expected: dict[str, str]
) -> None:
    """The hook sees every SARTORIS_* variable with the context's values, plus the base environment."""
    dump = tmp_path / "env.json"
    body = f"#!{sys.executable}\nimport json, os\njson.dump(dict(os.environ), open({str(dump)!r}, 'w'))\n"
    write_hook(tmp_path / "hooks", context.phase, body)
    base = {"PATH": os.environ["PATH"], "SARTORIS_OUTCOME": "stale", "DEPLOYER": "alice"}
    result = run_hook(tmp_path / "hooks", context, timeout=10, cwd=workdir, base_env=base)
    assert result.ok, result.error
    seen = json.loads(dump.read_text())
    assert {key: value for key, value in seen.items() if key.startswith("SARTORIS_")} == expected
    assert seen["DEPLOYER"] == "alice"
    assert context.environment() == expected


def test_a_run_that_stopped_before_most_of_a_large_fleet_still_runs_its_hook(tmp_path: Path, workdir: Path) -> None:
    """4,000 hosts left unswitched make a list longer than Linux lets one environment string be (128 KiB): the
    hook could not start at all. The list is cut to whole hosts within HOST_LIST_LIMIT; the count is whole."""
    hosts = tuple(f"deploy@app{n:04}.eqiad.example.org:22" for n in range(4000))
    context = HookContext(
        action="sync", phase=HookPhase.POST_SYNC, slot=0, prefix="php-slot0", tag="t", outcome="partial",
        not_switched_hosts=hosts, failed_hosts=hosts[:1],
    )
    dump = tmp_path / "env.json"
    body = f"#!{sys.executable}\nimport json, os\njson.dump(dict(os.environ), open({str(dump)!r}, 'w'))\n"
    write_hook(tmp_path / "hooks", context.phase, body)
    result = run_hook(tmp_path / "hooks", context, timeout=10, cwd=workdir)
    assert result.ok, result.error
    seen = json.loads(dump.read_text())
    listed = seen["SARTORIS_NOT_SWITCHED_HOSTS"].split()
    assert len(seen["SARTORIS_NOT_SWITCHED_HOSTS"]) <= HOST_LIST_LIMIT and listed == list(hosts[: len(listed)])
    assert seen["SARTORIS_NOT_SWITCHED_COUNT"] == "4000" and len(listed) > 800
    assert (seen["SARTORIS_FAILED_HOSTS"], seen["SARTORIS_FAILED_COUNT"]) == (hosts[0], "1")


def test_default_base_environment_is_os_environ(tmp_path: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without base_env the hook inherits the deploy host's environment."""
    monkeypatch.setenv("SARTORIS_TEST_MARKER", "inherited")
    write_hook(tmp_path / "hooks", HookPhase.PRE_SYNC, '#!/bin/sh\necho "marker=$SARTORIS_TEST_MARKER"\n')
    result = run_hook(tmp_path / "hooks", SYNC_CONTEXT, timeout=5, cwd=workdir)
    assert result.output_tail == "marker=inherited\n"


def test_success_reports_output(tmp_path: Path, workdir: Path) -> None:
    """A hook that exits 0 is ok, with its stdout and stderr captured together."""
    write_hook(tmp_path / "hooks", HookPhase.PRE_SYNC, "#!/bin/sh\necho out\necho err >&2\n")
    result = run_hook(tmp_path / "hooks", SYNC_CONTEXT, timeout=5, cwd=workdir)
    assert (result.ran, result.ok, result.exit_status, result.error) == (True, True, 0, None)
    assert result.output_tail == "out\nerr\n"
    assert 0 < result.seconds < 5


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        pytest.param(
            "echo purging\necho 'varnish1: 500 refused' >&2\necho\nexit 3\n",
            3,
            "pre-sync hook exited 3: varnish1: 500 refused",
            id="last-line",
        ),
        pytest.param("exit 7\n", 7, "pre-sync hook exited 7", id="no-output"),
        pytest.param("kill -KILL $$\n", -9, "pre-sync hook was killed by SIGKILL", id="signal"),
    ],
)
def test_failure_carries_status_and_last_line(
    tmp_path: Path, workdir: Path, body: str, status: int, error: str
) -> None:
    """A non-zero exit is ok=False with the status and the last non-blank output line in the error."""
    write_hook(tmp_path / "hooks", HookPhase.PRE_SYNC, "#!/bin/sh\n" + body)
    result = run_hook(tmp_path / "hooks", SYNC_CONTEXT, timeout=5, cwd=workdir)
    assert (result.ran, result.ok, result.exit_status, result.error) == (True, False, status, error)


def test_a_failed_hooks_last_line_is_escaped_when_it_holds_control_characters(tmp_path: Path, workdir: Path) -> None:
    """A failing hook's last line went raw into the refusal (`pre-sync hook exited 1: … \\033[2J`) and cleared the
    operator's screen; it is quoted with its control characters escaped, as lock fields are (state.shown)."""
    write_hook(tmp_path / "hooks", HookPhase.PRE_SYNC, "#!/bin/sh\nprintf 'bad \\377\\376 bytes \\033[2J\\n'\nexit 1\n")
    result = run_hook(tmp_path / "hooks", SYNC_CONTEXT, timeout=5, cwd=workdir)
    assert result.error == "pre-sync hook exited 1: 'bad \ufffd\ufffd bytes \\x1b[2J'"
    assert result.error.isprintable()


@pytest.mark.parametrize(
    ("prelude", "kill_grace"),
    [
        pytest.param("", KILL_GRACE, id="sigterm"),
        pytest.param("trap '' TERM\n", 0.5, id="term-ignored-sigkill"),
    ],
)
def test_timeout_kills_hook_and_its_children(
    tmp_path: Path, workdir: Path, leftover_pids: list[int], prelude: str, kill_grace: float
) -> None:
    """A hook past its timeout is stopped with everything it started, within the timeout plus the grace."""
    pid_file = tmp_path / "child.pid"
    body = f"#!/bin/sh\n{prelude}echo started\nsleep 60 &\necho $! > {pid_file}\nwait\n"
    write_hook(tmp_path / "hooks", HookPhase.POST_SYNC, body)
    context = HookContext(action="sync", phase=HookPhase.POST_SYNC, slot=0, prefix="php-slot0")
    started = time.monotonic()
    result = run_hook(tmp_path / "hooks", context, timeout=1, cwd=workdir, kill_grace=kill_grace)
    elapsed = time.monotonic() - started
    child = int(pid_file.read_text())
    leftover_pids.append(child)
    assert (result.ran, result.ok, result.exit_status) == (True, False, None)
    assert result.error == "post-sync hook timed out after 1s"
    assert result.output_tail == "started\n"
    assert elapsed < 1 + kill_grace + DRAIN_GRACE + 1.5
    assert not is_alive(child)


def test_interrupt_stops_hook_before_propagating(tmp_path: Path, workdir: Path, leftover_pids: list[int]) -> None:
    """Ctrl-C while a hook runs stops the hook and its children, then the interrupt goes on up."""
    pid_file = tmp_path / "child.pid"
    write_hook(tmp_path / "hooks", HookPhase.PRE_SYNC, f"#!/bin/sh\nsleep 60 &\necho $! > {pid_file}\nwait\n")

    def interrupt(signum: int, frame: object) -> None:
        """Play the Ctrl-C that Python turns SIGINT into."""
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_hook(tmp_path / "hooks", SYNC_CONTEXT, timeout=30, cwd=workdir, kill_grace=0.5)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    child = int(pid_file.read_text())
    leftover_pids.append(child)
    assert not is_alive(child)


def test_background_child_holding_output_does_not_hang(tmp_path: Path, workdir: Path, leftover_pids: list[int]) -> None:
    """A hook that exits but leaves a process holding its output is done shortly after it exits."""
    pid_file = tmp_path / "child.pid"
    write_hook(tmp_path / "hooks", HookPhase.FINISH, f"#!/bin/sh\nsleep 30 &\necho $! > {pid_file}\necho bye\n")
    context = HookContext(action="finish", phase=HookPhase.FINISH, slot=0, prefix="php-slot0")
    result = run_hook(tmp_path / "hooks", context, timeout=20, cwd=workdir)
    leftover_pids.append(int(pid_file.read_text()))
    assert result.ok
    assert result.output_tail == "bye\n"
    assert result.seconds < DRAIN_GRACE + 2  # far below the 20s timeout


def test_output_is_bounded(tmp_path: Path, workdir: Path) -> None:
    """A hook printing 10 MB keeps only the last 64 KiB of its output, ending with its last line."""
    body = (
        f"#!{sys.executable}\nimport sys\n"
        "for n in range(10 * 1024 * 1024 // 16):\n    sys.stdout.write(f'line {n:010d}\\n')\n"
        "print('LAST')\n"
    )
    write_hook(tmp_path / "hooks", HookPhase.PRE_SYNC, body)
    result = run_hook(tmp_path / "hooks", SYNC_CONTEXT, timeout=30, cwd=workdir)
    assert result.ok, result.error
    assert len(result.output_tail.encode()) == OUTPUT_LIMIT
    assert result.output_tail.endswith(f"line {10 * 1024 * 1024 // 16 - 1:010d}\nLAST\n")


def test_cwd_is_respected(tmp_path: Path, workdir: Path) -> None:
    """The hook runs in the given folder, even when the hooks folder is given as a relative path."""
    write_hook(tmp_path / "hooks", HookPhase.PRE_SYNC, "#!/bin/sh\npwd -P\n")
    relative = Path(os.path.relpath(tmp_path / "hooks"))
    result = run_hook(relative, SYNC_CONTEXT, timeout=5, cwd=workdir)
    assert result.output_tail == f"{workdir.resolve()}\n"


def test_stdin_is_dev_null(tmp_path: Path, workdir: Path) -> None:
    """A hook reading stdin gets end-of-file at once instead of waiting for a terminal."""
    write_hook(tmp_path / "hooks", HookPhase.PRE_SYNC, "#!/bin/sh\nif read line; then exit 1; fi\necho eof\n")
    result = run_hook(tmp_path / "hooks", SYNC_CONTEXT, timeout=5, cwd=workdir)
    assert (result.ok, result.output_tail) == (True, "eof\n")


def test_missing_cwd_is_an_error_result(tmp_path: Path) -> None:
    """A working copy that is not there is reported as a failed hook, not raised."""
    write_hook(tmp_path / "hooks", HookPhase.PRE_SYNC, "#!/bin/sh\nexit 0\n")
    result = run_hook(tmp_path / "hooks", SYNC_CONTEXT, timeout=5, cwd=tmp_path / "gone")
    assert not result.ok
    assert result.error == f"pre-sync hook cannot run in {tmp_path / 'gone'}: not a folder"


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"action": "deploy"}, id="unknown-action"),
        pytest.param({"outcome": "success"}, id="unknown-outcome"),
        pytest.param({"slot": -1}, id="negative-slot"),
        pytest.param({"failed_hosts": ("mw1 mw2",)}, id="host-with-space"),
        pytest.param({"not_switched_hosts": ("",)}, id="empty-not-switched-host"),
        pytest.param({"message": "a\0b"}, id="nul"),
    ],
)
def test_context_rejects_malformed_values(kwargs: dict[str, object]) -> None:
    """A context a hook could misread is a programmer error raised at construction."""
    values: dict[str, object] = {"action": "sync", "phase": HookPhase.PRE_SYNC, "slot": 0, "prefix": "php-slot0"}
    with pytest.raises(ValueError):
        HookContext(**{**values, **kwargs})  # type: ignore[arg-type]


def test_result_checks_invariants() -> None:
    """A result cannot claim success while carrying an error, nor fail without one."""
    with pytest.raises(ValueError):
        HookResult(HookPhase.FINISH, ran=True, ok=True, exit_status=0, seconds=0.1, output_tail="", error="x")
    with pytest.raises(ValueError):
        HookResult(HookPhase.FINISH, ran=True, ok=False, exit_status=1, seconds=0.1, output_tail="", error=None)


def test_timeout_must_be_positive(tmp_path: Path) -> None:
    """An unbounded or negative timeout is a programmer error."""
    with pytest.raises(ValueError):
        run_hook(tmp_path, SYNC_CONTEXT, timeout=0, cwd=tmp_path)


def test_what_a_successful_hook_printed_is_logged_at_debug(tmp_path: Path) -> None:
    """A post-sync hook's "purged 42 urls" was thrown away even with -v or --log-file; it is now a debug event."""
    import structlog.testing

    from sartoris.config import parse_config
    from sartoris.hook_calls import post_hook

    (tmp_path / "php-slot0").mkdir()
    hook = tmp_path / "hooks" / "post-sync"
    hook.parent.mkdir()
    hook.write_text("#!/bin/sh\necho purged 42 urls\n")
    hook.chmod(0o755)
    text = '[deploy]\nname = "mw"\nremote_root = "/srv/mw"\npublish_url = "/srv/git/php-slot{slot}.git"\n'
    config = parse_config(text, tmp_path / "sartoris.toml")
    with structlog.testing.capture_logs() as events:
        assert post_hook(config, HookPhase.POST_SYNC, "sync", 0, "t1", "ok") is None  # no error for the report
    said = [e for e in events if e["event"] == "hook_output"]
    assert said and "purged 42 urls" in said[0]["tail"] and said[0]["log_level"] == "debug"
    hook.write_text("#!/bin/sh\necho 'varnish said no' >&2\nexit 3\n")
    assert post_hook(config, HookPhase.POST_SYNC, "sync", 0, "t1", "ok") == "post-sync hook exited 3: varnish said no"
