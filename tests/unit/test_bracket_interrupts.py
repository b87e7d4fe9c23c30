"""An interrupt while `finish` or `abort` runs its hook (the command done and recorded): the real command line,
no hosts needed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _sartoris(config: Path, *args: str, **popen: object) -> subprocess.Popen[str]:
    """The command line in its own process group, with Ctrl-C and hang-ups at their defaults (as in a terminal)."""

    def defaults() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)

    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, str(ROOT / "sartoris.py"), "--config", str(config), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, preexec_fn=defaults,
        **popen,
    )


def _started_deploy(tmp_path: Path, hook: str) -> Path:
    """A deploy host (a one-commit checkout of slot 0) whose `hook` notes its PID, says it started, and sleeps;
    `sartoris start` has run. Its sartoris.toml."""
    checkout = tmp_path / "php-slot0"
    checkout.mkdir()
    identity = {f"GIT_{who}_{what}": "t@t" for who in ("AUTHOR", "COMMITTER") for what in ("NAME", "EMAIL")}
    for argv in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "one"]):
        subprocess.run(["git", "-C", str(checkout), *argv], check=True, env={**os.environ, **identity})
    config = tmp_path / "sartoris.toml"
    config.write_text('[deploy]\nname = "mw"\nremote_root = "/srv/mw"\npublish_url = "/srv/git/php-slot{slot}.git"\n')
    script = tmp_path / "hooks" / hook
    script.parent.mkdir()
    script.write_text(f"#!/bin/sh\necho $$ > {tmp_path / 'hook.pid'}\nexec sleep 30\n")
    script.chmod(0o755)
    started = _sartoris(config, "start", "--slot", "0", "--no-remote")
    assert started.wait(timeout=60) == 0, started.communicate()
    return config


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] not in ("Z", "X")
    except OSError:
        return False


@pytest.mark.parametrize(
    ("action", "signum", "to_the_group"),
    [
        pytest.param("finish", signal.SIGINT, True, id="finish-ctrl-c"),
        pytest.param("finish", signal.SIGTERM, False, id="finish-sigterm"),
        pytest.param("abort", signal.SIGHUP, False, id="abort-sighup"),
    ],
)
def test_an_interrupt_during_the_finish_or_abort_hook_still_reports_the_command_and_says_the_hook_stopped(
    tmp_path: Path, action: str, signum: signal.Signals, to_the_group: bool
) -> None:
    """The lock was released and the event recorded when the hook began; an interrupt there printed only
    `sartoris: interrupted` (under --json `{"error": "interrupted"}`), hiding that the command was done, and nothing
    said the hook was stopped. Now: exit 130 as the contract says, the command's report (one JSON object), a
    `hook_failed` event naming the interrupt, and a last line saying the command is done and its hook stopped."""
    config = _started_deploy(tmp_path, action)
    pid_file = tmp_path / "hook.pid"
    process = _sartoris(config, action, "--slot", "0", "--json")
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.exists() and pid_file.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        if to_the_group:
            os.killpg(process.pid, signum)  # Ctrl-C in a terminal: the whole foreground group
        else:
            process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, stderr
    report = json.loads(stdout)
    assert (report["action"], report["slot"], report["hook_stopped"]) == (action, 0, True), stdout
    assert f"its {action} hook was stopped" in report["detail"]
    assert "hook_failed" in stderr and f"{action} hook stopped: interrupted" in stderr, stderr
    last = stderr.strip().splitlines()[-1]
    assert last == f"sartoris: interrupted: the {action} is done and recorded; its {action} hook was stopped", stderr
    assert not (tmp_path / ".sartoris" / "locks" / "slot0.lock").exists()
    hook = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _alive(hook) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(hook)


def _sleepers(seconds: str) -> list[int]:
    """The running `sleep SECONDS` processes (a duration no other test uses marks the ones a test started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _alive(int(entry.name)):
            try:
                if (entry / "cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", seconds.encode()]:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.parametrize(
    ("signum", "to_the_group"),
    [pytest.param(signal.SIGINT, True, id="ctrl-c"), pytest.param(signal.SIGTERM, False, id="sigterm")],
)
def test_an_interrupt_during_starts_upstream_fetch_ends_the_command_and_git_at_once(
    tmp_path: Path, signum: int, to_the_group: bool
) -> None:
    """`start` fetching from an upstream that never answers: Ctrl-C said "interrupted", then the command stayed until
    command_timeout ran out (GitPython's watchdog thread held the exit; a second Ctrl-C gave a traceback), and a
    SIGTERM also left git fetching. It now ends at once, exit 130, and git and what it started are gone."""
    upstream = tmp_path / "upstream.git"
    subprocess.run(["git", "init", "-q", "--bare", str(upstream)], check=True)
    config = _started_deploy(tmp_path, "unused")
    started_fetch = tmp_path / "fetch.pid"
    checkout = tmp_path / "php-slot0"
    subprocess.run(["git", "-C", str(checkout), "remote", "add", "origin", str(upstream)], check=True)
    # the upload-pack git starts for a local fetch: it notes its shell's PID, then never answers
    hang = f"echo $$ > {started_fetch}; sleep 61.25; git-upload-pack"
    subprocess.run(["git", "-C", str(checkout), "config", "remote.origin.uploadpack", hang], check=True)
    config.write_text(config.read_text() + "\n[fanout]\ncommand_timeout = 60\n")
    assert _sartoris(config, "abort", "--slot", "0").wait(timeout=60) == 0  # the deploy _started_deploy began
    run = _sartoris(config, "start", "--slot", "0")
    deadline = time.monotonic() + 30
    while not started_fetch.exists() and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.05)
    assert started_fetch.exists(), run.communicate()
    time.sleep(0.3)  # the sleep under it started
    stopped_at = time.monotonic()
    if to_the_group:
        os.killpg(run.pid, signum)
    else:
        os.kill(run.pid, signum)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 130 and time.monotonic() - stopped_at < 10, stderr
    assert "Traceback" not in stderr
    deadline = time.monotonic() + 5
    while _sleepers("61.25") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _sleepers("61.25") == []
