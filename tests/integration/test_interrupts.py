"""Interrupting a run on the real fleet: Ctrl-C (SIGINT) during the fetch or the switch, and the controller killed
outright. Every host ends on its old tree or its new one, never between; the lock, the history and the next run
behave as the contract says (exit 130, stale lock refused until --force, --retry-failed converges)."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Deployment
from faults import (
    act_mid_run,
    hang_switch,
    is_clean,
    link_target,
    processes_with,
    remove_switch_hooks,
    slot_processes,
    slow_fetch,
    start_sartoris,
    store,
    tree_commit,
    wait_for,
    write_script,
)
from sample_repo import commit_change, git

pytestmark = pytest.mark.integration

CONNECT_TIMEOUT = 3
PROMPT = 10  # seconds within which Ctrl-C must end the run (generous: this machine is shared and loaded)


def _lock(deployment: Deployment) -> Path:
    return deployment.root / ".sartoris" / "locks" / f"slot{deployment.slot}.lock"


def _first_sync(deployment: Deployment, group: str) -> str:
    run = deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", group, "--json")
    assert run.code == 0, run.stderr
    return str(run.json()["commit"])


def _where(deployment: Deployment, address: str, old: str, new: str) -> str:
    """ "old" or "new" when the host's slot is wholly on that release (link, HEAD and a clean tree), else what it is."""
    target = link_target(deployment, address)
    for name, commit in (("old", old), ("new", new)):
        if target == tree_commit(deployment, commit):
            head = deployment.host_head(address)
            clean = is_clean(deployment, address)
            return name if head == commit and clean else f"{name} link, HEAD {head}, clean={clean}"
    return f"link {target!r}"


def _assert_ended_promptly_by_the_interrupt(process: subprocess.Popen[str], stderr: str, took: float) -> None:
    """Exit 130 within PROMPT seconds of the Ctrl-C, and one clean line, never a traceback."""
    assert process.returncode == 130, stderr
    assert took < PROMPT, f"Ctrl-C took {took:.1f}s to end the run"
    assert "Traceback" not in stderr


def _hold_the_first_push(deployment: Deployment, marker: Path, seconds: float) -> Path:
    """The slot's publish repository, made beforehand with a pre-receive hook that writes its PID to `marker`
    and holds each push for `seconds`, deaf to SIGTERM (only SIGKILL ends it early)."""
    publish = deployment.root / "publish" / f"php-slot{deployment.slot}.git"
    git(deployment.root, "init", "--quiet", "--bare", str(publish))
    write_script(publish / "hooks" / "pre-receive", f"trap '' TERM\necho $$ > {marker}\nexec sleep {seconds:g}\n")
    return publish


def _gone(marker: Path) -> bool:
    """Whether the hook that wrote its PID to `marker` has ended (a zombie not yet reaped counts as ended)."""
    stat = Path(f"/proc/{marker.read_text().strip()}/stat")
    try:
        return stat.read_text().rpartition(")")[2].split()[0] in ("Z", "X")
    except OSError:
        return True


def _settle(deployment: Deployment) -> None:
    """Wait until no host is still running a script on this slot (what the controller left running ends by itself)."""
    wait_for(lambda: not slot_processes(deployment), 60, "the hosts' scripts on the slot to end", interval=0.5)


def _status(deployment: Deployment, group: str) -> tuple[int, dict[str, object]]:
    run = deployment.sartoris("status", "--slot", str(deployment.slot), "--hosts", group, "--json")
    assert run.code in (0, 5), run.stderr
    return run.code, run.json()


def _signal_mid_switch(
    deployment: Deployment,
    tmp_path: Path,
    hosts: list[str],
    signum: signal.Signals,
    times: int = 1,
    outputs: dict[str, object] | None = None,
    before_signal: Callable[[], object] = lambda: None,
    started: bool = False,
) -> tuple[str, str, int, str, str]:
    """Deploy once, then sync a new commit two hosts at a time with every host's checkout held for 3 s, and send
    `signum` to the controller one second into the first switch (`times` times, half a second apart), right
    after `before_signal()`. `outputs` replaces the piped stdout/stderr; `started`: the new commit and its sync
    come inside a deploy begun with `start`. Returns old and new commits, exit code, output."""
    deployment.group("six", hosts)
    deployment.configure(command_timeout=12, connect_timeout=CONNECT_TIMEOUT)
    old = _first_sync(deployment, "six")
    if started:
        begun = deployment.sartoris("start", "--slot", str(deployment.slot), "--no-remote")
        assert begun.code == 0, begun.stderr
    switching = tmp_path / "switching"
    switching.mkdir()
    for host in hosts:
        hang_switch(deployment, host, 3, marker=switching / host)
    new = commit_change(deployment.checkout, "index.php", "<?php echo 'release 2';\n")
    process = start_sartoris(
        deployment, "sync", "--slot", str(deployment.slot), "--hosts", "six", "--concurrency", "2", "--json",
        **(outputs or {}),
    )

    def signal_after_a_second() -> None:
        time.sleep(1)
        before_signal()
        for press in range(times):
            if press:
                time.sleep(0.5)
            process.send_signal(signum)

    stdout, stderr, _ = act_mid_run(
        process, lambda: any(switching.iterdir()), "a host to be in the middle of its switch", signal_after_a_second
    )
    return old, new, process.returncode, stdout, stderr


def test_ctrl_c_during_the_fetch_exits_130_promptly_with_no_host_switched(
    deployment: Deployment, tmp_path: Path
) -> None:
    """SIGINT while the hosts fetch: exit 130 within seconds, the JSON report printed (aborted, each host where it
    stopped: fetching, or still connecting to a host that never answers), every host still wholly on its old
    tree, the slot's lock released, and the run in the history as aborted."""
    hosts = deployment.fleet.hosts[26:32]
    tarpit = deployment.fleet.faults["tarpit"][0]
    deployment.group("six", hosts)
    deployment.configure(command_timeout=20, connect_timeout=CONNECT_TIMEOUT)
    old = _first_sync(deployment, "six")
    fetching = tmp_path / "fetching"
    fetching.mkdir()
    for host in hosts:
        slow_fetch(deployment, host, 15, marker=fetching / host)
    new = commit_change(deployment.checkout, "index.php", "<?php echo 'release 2';\n")
    deployment.group("six", [*hosts, tarpit])
    deployment.configure(command_timeout=20, connect_timeout=30)  # the silent host is still connecting at Ctrl-C
    process = start_sartoris(deployment, "sync", "--slot", str(deployment.slot), "--hosts", "six", "--json")
    stdout, stderr, took = act_mid_run(
        process,
        lambda: any(fetching.iterdir()),
        "a host to be in the middle of its fetch",
        lambda: process.send_signal(signal.SIGINT),
    )
    _assert_ended_promptly_by_the_interrupt(process, stderr, took)
    report = json.loads(stdout)
    assert report["outcome"] == "aborted" and report["commit"] == new
    stopped = {h["host"]: (h["ok"], h["phase"], h["error"]) for h in report["hosts"]}
    assert stopped[tarpit] == (False, "connect", "interrupted before it was connected")
    assert all(stopped[h] == (False, "fetch", "interrupted during the fetch") for h in hosts if (fetching / h).exists())
    assert {h: _where(deployment, h, old, new) for h in hosts} == {h: "old" for h in hosts}
    assert not _lock(deployment).exists()
    history = deployment.sartoris("log", "--slot", str(deployment.slot), "--json")
    assert history.code == 0, history.stderr
    last = history.json()["entries"][0]
    assert last["action"] == "sync" and last["outcome"] == "aborted" and last["tag"] == report["tag"]
    assert deployment.pool_changes() == []
    _settle(deployment)  # the hosts' fetches end by themselves; still nobody switched
    assert {h: _where(deployment, h, old, new) for h in hosts} == {h: "old" for h in hosts}


def _as_a_background_job() -> None:
    """What a script's `sartoris sync &` gets from a shell without job control: SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


@pytest.mark.parametrize(
    ("signum", "background"),
    [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGTERM, True)],
    ids=["ctrl-c", "sigterm", "sigterm-to-a-background-job"],
)
def test_ctrl_c_during_the_switch_leaves_every_host_old_or_new_and_retry_converges(
    deployment: Deployment, tmp_path: Path, signum: signal.Signals, background: bool
) -> None:
    """SIGINT while hosts switch (two at a time), or SIGTERM (`kill PID`, a cancelled CI job; also to a background
    job, which ignores Ctrl-C), which stops a run the same way: exit 130; the switches in flight finish, no new
    one starts; every host is wholly on the old or the new tree, as its line in the report says; the lock is
    released; then --retry-failed converges."""
    hosts = deployment.fleet.hosts[32:38]
    job = {"preexec_fn": _as_a_background_job} if background else None
    old, new, code, stdout, stderr = _signal_mid_switch(deployment, tmp_path, hosts, signum, outputs=job)
    assert code == 130, stderr
    assert "Traceback" not in stderr
    report = json.loads(stdout)
    _settle(deployment)
    where = {h: _where(deployment, h, old, new) for h in hosts}
    assert set(where.values()) <= {"old", "new"}, where
    assert where == {h["host"]: "new" if h["ok"] else "old" for h in report["hosts"]}, (where, report["hosts"])
    assert "old" in where.values(), "Ctrl-C came too late to stop any host from starting its switch"
    assert "new" in where.values(), "the switches in flight at Ctrl-C were not let finish"
    assert not _lock(deployment).exists()
    for host in hosts:
        remove_switch_hooks(deployment, host)
    retry = deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "six", "--retry-failed", "--json")
    assert retry.code == 0, retry.stderr
    assert retry.json()["tag"] == report["tag"]
    assert {h: _where(deployment, h, old, new) for h in hosts} == {h: "new" for h in hosts}
    code, status = _status(deployment, "six")
    assert code == 0 and status["counts"]["current"] == 6  # type: ignore[index]


def test_a_hang_up_during_the_switch_stops_the_run_like_ctrl_c_and_records_every_host(
    deployment: Deployment, tmp_path: Path
) -> None:
    """The operator's terminal (or SSH session) hangs up while hosts switch: SIGHUP, and every later write to the
    terminal fails (EIO). The run stops as on Ctrl-C: exit 130, the switches in flight finish, no new one starts;
    the history records each host as it really is, old or new; the lock is released."""
    hosts = deployment.fleet.hosts[32:38]
    terminal, controller_side = pty.openpty()
    hung_up = threading.Event()

    def read_the_terminal() -> None:  # what an open terminal does; a full pty buffer would block the writer
        while not hung_up.is_set():
            if select.select([terminal], [], [], 0.1)[0]:
                os.read(terminal, 65536)

    reader = threading.Thread(target=read_the_terminal, daemon=True)
    reader.start()

    def hang_up() -> None:
        hung_up.set()
        reader.join(5)
        os.close(terminal)

    try:
        old, new, code, _, _ = _signal_mid_switch(
            deployment, tmp_path, hosts, signal.SIGHUP,
            outputs={"stdout": controller_side, "stderr": controller_side}, before_signal=hang_up,
        )
    finally:
        hung_up.set()
        os.close(controller_side)
        with contextlib.suppress(OSError):
            os.close(terminal)
    assert code == 130
    _settle(deployment)
    where = {h: _where(deployment, h, old, new) for h in hosts}
    last = deployment.sartoris("log", "--slot", str(deployment.slot), "--json").json()["entries"][0]
    assert last["commit"] == new and last["outcome"] != "ok", last
    recorded = deployment.sartoris("log", last["tag"], "--json").json()["hosts"]
    assert where == {h["host"]: "new" if h["ok"] else "old" for h in recorded}, (where, recorded)
    assert "old" in where.values() and "new" in where.values(), where
    assert not _lock(deployment).exists()


def test_a_reader_gone_from_the_output_does_not_stop_the_deploy(deployment: Deployment) -> None:
    """stdout and stderr are pipes whose reader has gone (`sartoris sync | head`, a dead log shipper): every
    write fails with EPIPE, and the deploy still runs to its end, switches every host, records the run and
    exits 0, instead of dying at its first progress line with the release tagged and nothing recorded."""
    hosts = deployment.fleet.hosts[32:35]
    deployment.group("three", hosts)
    old = _first_sync(deployment, "three")
    new = commit_change(deployment.checkout, "index.php", "<?php echo 'release 2';\n")
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        process = start_sartoris(
            deployment, "-v", "sync", "--slot", str(deployment.slot), "--hosts", "three",
            stdout=write_end, stderr=write_end,
        )
        code = process.wait(timeout=120)
    finally:
        os.close(write_end)
    assert code == 0
    assert {h: _where(deployment, h, old, new) for h in hosts} == {h: "new" for h in hosts}
    last = deployment.sartoris("log", "--slot", str(deployment.slot), "--json").json()["entries"][0]
    assert (last["commit"], last["outcome"], last["counts"]["ok"]) == (new, "ok", 3), last


def test_ctrl_c_during_status_says_interrupted_in_one_line_and_one_json_object(deployment: Deployment) -> None:
    """Ctrl-C while `status --json` waits on a host that never answers: exit 130 promptly, stdout the one JSON
    object (`{"error": "interrupted", "exit": 130}`), stderr ending in the one line; Typer alone exits silently."""
    tarpit = deployment.fleet.faults["tarpit"][0]
    deployment.group("silent", [deployment.fleet.hosts[0], tarpit])
    deployment.configure(connect_timeout=30)
    process = start_sartoris(deployment, "status", "--slot", str(deployment.slot), "--hosts", "silent", "--json")
    began = time.monotonic()
    stdout, stderr, took = act_mid_run(
        process,
        lambda: time.monotonic() - began > 2,
        "two seconds of waiting on the silent host",
        lambda: process.send_signal(signal.SIGINT),
    )
    _assert_ended_promptly_by_the_interrupt(process, stderr, took)
    assert json.loads(stdout) == {"error": "interrupted", "exit": 130}
    assert stderr.splitlines()[-1] == "sartoris: interrupted"


def test_a_second_ctrl_c_does_not_abandon_the_switches_in_flight(deployment: Deployment, tmp_path: Path) -> None:
    """Ctrl-C twice during the switch: the second one is only acknowledged; the switches in flight still finish,
    the report is printed and recorded, exit 130, and every host is wholly old or new as its line says."""
    hosts = deployment.fleet.hosts[32:38]
    old, new, code, stdout, stderr = _signal_mid_switch(deployment, tmp_path, hosts, signal.SIGINT, times=2)
    assert code == 130, stderr
    assert "Traceback" not in stderr and "still_stopping" in stderr
    report = json.loads(stdout)
    _settle(deployment)
    where = {h: _where(deployment, h, old, new) for h in hosts}
    assert where == {h["host"]: "new" if h["ok"] else "old" for h in report["hosts"]}, (where, report["hosts"])
    assert "new" in where.values(), "the switches in flight at Ctrl-C were not let finish"
    history = deployment.sartoris("log", "--slot", str(deployment.slot), "--json")
    assert history.json()["entries"][0]["tag"] == report["tag"]
    assert not _lock(deployment).exists()


def test_abort_refuses_after_a_run_of_the_deploy_was_killed_while_switching(
    deployment: Deployment, tmp_path: Path
) -> None:
    """SIGKILL to a sync inside a started deploy, mid-switch: some hosts may run its tag, and no record said so.
    abort used to break the dead run's lock and put the checkout back under them; it now refuses, leaving the
    checkout as it is, and finish says the run died while switching. The history keeps the run as unfinished, so
    `rollback` goes back to the release before it (it used to skip that one, going two releases back)."""
    hosts = deployment.fleet.hosts[44:50]
    old, new, code, _stdout, _stderr = _signal_mid_switch(deployment, tmp_path, hosts, signal.SIGKILL, started=True)
    assert code == -signal.SIGKILL
    _settle(deployment)
    aborted = deployment.sartoris("abort", "--slot", str(deployment.slot))
    assert aborted.code == 4 and "died while switching hosts to" in aborted.stderr, aborted.stderr
    assert git(deployment.checkout, "rev-parse", "HEAD") == new
    finished = deployment.sartoris("finish", "--slot", str(deployment.slot))
    assert finished.code == 0 and "died while switching" in finished.stdout, finished.stdout + finished.stderr
    assert not _lock(deployment).exists()
    entries = deployment.sartoris("log", "--slot", str(deployment.slot), "--json").json()["entries"]
    assert [e["commit"] for e in entries if e["outcome"] == "unfinished"] == [new]
    plan = deployment.sartoris("rollback", "--slot", str(deployment.slot), "--dry-run", "--json")
    assert plan.code == 0 and plan.json()["commit"] == old, plan.stderr


def test_abort_goes_on_once_a_rollback_put_back_every_host_a_killed_run_targeted(
    deployment: Deployment, tmp_path: Path
) -> None:
    """A sync inside a started deploy SIGKILLed mid-switch leaves its `unfinished` row for good: abort refused
    forever, also once `rollback --to <the release live at start>`, as its advice said, put every host back (the
    advice looped). The row now names the run's targets, and a later run that switched them all lets abort go on."""
    hosts = deployment.fleet.hosts[44:50]
    old, _new, code, _stdout, _stderr = _signal_mid_switch(deployment, tmp_path, hosts, signal.SIGKILL, started=True)
    assert code == -signal.SIGKILL
    _settle(deployment)
    slot = str(deployment.slot)
    refused = deployment.sartoris("abort", "--slot", slot)
    assert refused.code == 4 and "`sartoris rollback --to " in refused.stderr, refused.stderr
    live = refused.stderr.split("`sartoris rollback --to ")[1].split("`")[0]
    back = deployment.sartoris("rollback", "--slot", slot, "--to", live, "--hosts", "six")
    assert back.code == 0, back.stderr
    aborted = deployment.sartoris("abort", "--slot", slot)
    assert aborted.code == 0, aborted.stderr
    assert git(deployment.checkout, "rev-parse", "HEAD") == old and not _lock(deployment).exists()


def test_a_killed_controller_leaves_a_stale_lock_that_force_breaks(deployment: Deployment, tmp_path: Path) -> None:
    """SIGKILL to the controller mid-switch: every host is still wholly old or new; the next sync is refused (exit 4,
    stale lock, --force named) and changes nothing; status meanwhile reports each host's real commit, its exit
    code agreeing; `sync --force` then converges and releases the lock."""
    hosts = deployment.fleet.hosts[38:44]
    old, new, code, _stdout, _stderr = _signal_mid_switch(deployment, tmp_path, hosts, signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert _lock(deployment).exists()
    _settle(deployment)
    where = {h: _where(deployment, h, old, new) for h in hosts}
    assert set(where.values()) <= {"old", "new"}, where
    tags = git(deployment.checkout, "tag")
    refused = deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "six")
    assert refused.code == 4, refused.stderr
    assert "stale" in refused.stderr and "--force" in refused.stderr
    assert refused.stderr.strip().count("\n") == 0
    assert git(deployment.checkout, "tag") == tags
    assert {h: _where(deployment, h, old, new) for h in hosts} == where
    code, status = _status(deployment, "six")
    reported = {h["host"]: h for h in status["hosts"]}  # type: ignore[attr-defined]
    assert {h: reported[h]["commit"] for h in hosts} == {h: deployment.host_head(h) for h in hosts}
    assert code == (0 if all(r["state"] == "current" for r in reported.values()) else 5)
    assert status["lock"] is not None  # status shows the stale lock
    for host in hosts:
        remove_switch_hooks(deployment, host)
    forced = deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "six", "--force", "--json")
    assert forced.code == 0, forced.stderr
    assert {h: _where(deployment, h, old, new) for h in hosts} == {h: "new" for h in hosts}
    assert not _lock(deployment).exists()
    code, status = _status(deployment, "six")
    assert code == 0 and status["counts"]["current"] == 6 and status["lock"] is None  # type: ignore[index]


def test_ctrl_c_before_any_host_is_touched_exits_130_and_releases_the_lock(deployment: Deployment) -> None:
    """SIGINT while a pre-sync hook runs (before tagging): exit 130, no tag left behind, no host touched, lock gone."""
    hook = deployment.root / "hooks" / "pre-sync"
    hook.parent.mkdir(exist_ok=True)
    started = deployment.root.parent / "pre-sync-started"
    hook.write_text(f"#!/bin/sh\ntouch {started}\nsleep 31\n")
    hook.chmod(0o755)
    hosts = deployment.fleet.hosts[44:46]
    deployment.group("pair", hosts)
    process = start_sartoris(deployment, "sync", "--slot", str(deployment.slot), "--hosts", "pair")
    _, stderr, took = act_mid_run(
        process, started.exists, "the pre-sync hook to start", lambda: process.send_signal(signal.SIGINT)
    )
    _assert_ended_promptly_by_the_interrupt(process, stderr, took)
    assert git(deployment.checkout, "tag") == ""
    assert all(deployment.host_head(h) is None for h in hosts)
    assert not _lock(deployment).exists()
    wait_for(lambda: not processes_with("sleep 31"), 10, "the interrupted pre-sync hook to be stopped")


def _established_to(addresses: list[str], port: int) -> int:
    """TCP connections in state ESTABLISHED from this machine to `port` on any of `addresses` (/proc/net/tcp)."""
    wanted = {f"{socket.inet_aton(a)[::-1].hex().upper()}:{port:04X}" for a in addresses}
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for row in rows if row.split()[2] in wanted and row.split()[3] == "01")


def test_connections_open_during_the_publish_and_ctrl_c_there_touches_no_host(
    deployment: Deployment, tmp_path: Path
) -> None:
    """While the release is pushed (held by the publish target's pre-receive hook), the hosts' connections are
    already open; Ctrl-C to the process group then ends the run with exit 130, no tag left behind, nothing run on
    any host (no store, no tree), the lock released."""
    hosts = deployment.fleet.hosts[40:44]
    deployment.group("four", hosts)
    pushing = tmp_path / "pushing"
    _hold_the_first_push(deployment, pushing, 30)
    process = start_sartoris(
        deployment, "sync", "--slot", str(deployment.slot), "--hosts", "four", start_new_session=True
    )

    def pushing_with_every_host_connected() -> bool:
        return pushing.exists() and _established_to(hosts, deployment.fleet.port) >= len(hosts)

    _, stderr, took = act_mid_run(
        process, pushing_with_every_host_connected, "every host connected while the push is held",
        lambda: os.killpg(process.pid, signal.SIGINT),
    )
    _assert_ended_promptly_by_the_interrupt(process, stderr, took)
    assert git(deployment.checkout, "tag") == ""
    for host in hosts:
        assert not store(deployment, host).exists() and deployment.host_head(host) is None
    assert not _lock(deployment).exists()
    wait_for(lambda: _established_to(hosts, deployment.fleet.port) == 0, 10, "the connections to close")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_a_signal_to_sartoris_alone_during_the_publish_ends_the_push_in_flight(
    deployment: Deployment, tmp_path: Path, signum: signal.Signals
) -> None:
    """SIGINT or SIGTERM to the sartoris process only (`kill PID`, a supervisor), while the target's pre-receive
    hook holds the first push (a submodule commit's) for a minute: that push is ended with what it started, no
    further push starts, the publish target never gets the tag, the new tag is deleted, exit 130 promptly."""
    hosts = deployment.fleet.hosts[40:42]
    deployment.group("two", hosts)
    pushing = tmp_path / "pushing"
    publish = _hold_the_first_push(deployment, pushing, 60)
    process = start_sartoris(deployment, "sync", "--slot", str(deployment.slot), "--hosts", "two")
    _, stderr, took = act_mid_run(
        process, pushing.exists, "the first push to start", lambda: process.send_signal(signum)
    )
    _assert_ended_promptly_by_the_interrupt(process, stderr, took)
    assert git(deployment.checkout, "tag") == ""
    assert not [ref for ref in git(publish, "for-each-ref", "--format=%(refname)").split() if "tags" in ref]
    assert not processes_with(str(publish)), "the push's receive-pack outlived the run"
    wait_for(lambda: _gone(pushing), 5, "the publish target's hook to be gone")
    for host in hosts:
        assert not store(deployment, host).exists()
    assert not _lock(deployment).exists()


def test_ctrl_c_during_the_depool_records_who_was_depooled_and_switches_nobody(
    deployment: Deployment, tmp_path: Path
) -> None:
    """Ctrl-C (to the process group, as a terminal sends it) while a host that failed its fetch is being
    depooled: the depool command is not killed, it ends and is remembered, no host is switched, exit 130, and
    the run is in the history (partial: a host was depooled) with the host marked depooled."""
    hosts = deployment.fleet.hosts[46:49]
    faulty = deployment.fleet.faults["refused"][0]
    deployment.group("four", [*hosts, faulty])
    started = tmp_path / "depool-started"
    slow_depool = tmp_path / "slow-depool"
    confctl = Path(__file__).resolve().parents[2] / "scripts" / "fake-confctl"
    slow_depool.write_text(f'#!/bin/sh\ntouch {started}\nsleep 3\nexec {confctl} {deployment.pool_log} depool "$1"\n')
    slow_depool.chmod(0o755)
    deployment.configure(
        connect_timeout=CONNECT_TIMEOUT, max_failures=1, depool={"command": f"{slow_depool} {{host}}"}
    )
    process = start_sartoris(
        deployment, "sync", "--slot", str(deployment.slot), "--hosts", "four", "--json", start_new_session=True
    )
    stdout, stderr, took = act_mid_run(  # Ctrl-C on a terminal: SIGINT to the whole foreground process group
        process, started.exists, "the depool of the refused host", lambda: os.killpg(process.pid, signal.SIGINT)
    )
    _assert_ended_promptly_by_the_interrupt(process, stderr, took)
    report = json.loads(stdout)
    by_host = {h["host"]: h for h in report["hosts"]}
    assert report["outcome"] == "partial"
    assert by_host[faulty]["depooled"] and not by_host[faulty]["ok"]
    for host in hosts:
        assert not by_host[host]["ok"] and by_host[host]["phase"] == "fetch", by_host[host]  # fetched, not switched
        assert deployment.host_head(host) is None
    assert deployment.pool_changes() == [f"depool {faulty}"]
    history = deployment.sartoris("log", "--slot", str(deployment.slot), "--json")
    assert history.code == 0, history.stderr
    last = history.json()["entries"][0]
    assert last["action"] == "sync" and last["tag"] == report["tag"] and last["outcome"] == report["outcome"]
    code, status = _status(deployment, "four")
    assert code == 5 and status["counts"]["depooled"] == 1  # type: ignore[index]
    assert not _lock(deployment).exists()


def test_ctrl_c_during_the_post_sync_hook_still_prints_the_recorded_report(
    deployment: Deployment, tmp_path: Path
) -> None:
    """Every host is switched and the run recorded when the post-sync hook starts; a Ctrl-C there stops the hook,
    says so (`hook_failed`: before, nothing said the purge or announcement did not happen), exits 130 and still
    prints the run's one JSON report (before, it printed only an error line)."""
    hosts = deployment.fleet.hosts[40:43]
    deployment.group("three", hosts)
    started = tmp_path / "post-sync-started"
    write_script(deployment.root / "hooks" / "post-sync", f"touch {started}\nexec sleep 30\n")
    process = start_sartoris(
        deployment, "sync", "--slot", str(deployment.slot), "--hosts", "three", "--json", start_new_session=True
    )
    stdout, stderr, took = act_mid_run(
        process, started.exists, "the post-sync hook", lambda: os.killpg(process.pid, signal.SIGINT)
    )
    _assert_ended_promptly_by_the_interrupt(process, stderr, took)
    assert "hook_failed" in stderr and "post-sync hook stopped: interrupted" in stderr, stderr
    report = json.loads(stdout)
    assert report["outcome"] == "ok" and report["counts"]["ok"] == 3
    assert all(deployment.host_head(host) == report["commit"] for host in hosts)
    last = deployment.sartoris("log", "--slot", str(deployment.slot), "--json").json()["entries"][0]
    assert last["action"] == "sync" and last["tag"] == report["tag"] and last["outcome"] == "ok"
    assert not _lock(deployment).exists()


def test_a_run_killed_during_its_post_sync_hook_is_announced_by_finish_as_recorded(
    deployment: Deployment, tmp_path: Path
) -> None:
    """SIGKILL to a sync inside a started deploy while its post-sync hook runs: the run was already written down
    (ok), but the lock's "switching" note was cleared only after the hook, so finish announced `unknown` ("died
    while switching"). The note is now cleared as the run is written down: finish announces the recorded run."""
    hosts = deployment.fleet.hosts[30:32]
    deployment.group("two", hosts)
    assert deployment.sartoris("start", "--slot", str(deployment.slot), "--no-remote").code == 0
    new = commit_change(deployment.checkout, "index.php", "<?php echo 'release 2';\n")
    started, hook_pid, announced = tmp_path / "post-sync-started", tmp_path / "hook.pid", tmp_path / "announced"
    write_script(deployment.root / "hooks" / "post-sync", f"echo $$ > {hook_pid}\ntouch {started}\nexec sleep 30\n")
    write_script(deployment.root / "hooks" / "finish", f'echo "$SARTORIS_TAG $SARTORIS_OUTCOME" > {announced}\n')
    process = start_sartoris(deployment, "sync", "--slot", str(deployment.slot), "--hosts", "two")
    try:
        act_mid_run(process, started.exists, "the post-sync hook", lambda: process.send_signal(signal.SIGKILL))
    finally:
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(hook_pid.read_text()), signal.SIGKILL)  # the hook runs in a session of its own
    assert process.returncode == -signal.SIGKILL
    last = deployment.sartoris("log", "--slot", str(deployment.slot), "--json").json()["entries"][0]
    assert (last["action"], last["outcome"], last["commit"]) == ("sync", "ok", new)
    finished = deployment.sartoris("finish", "--slot", str(deployment.slot))
    said = f"deployed {last['tag']} to 2 host(s), part of the fleet"  # of [deploy] hosts, 48 were not targeted
    assert finished.code == 0 and said in finished.stdout, finished.stdout + finished.stderr
    assert announced.read_text().split() == [last["tag"], "partial"]
    assert not _lock(deployment).exists()
