"""The fault matrix on real hosts: a host whose git hangs or crawls, whose sshd dies mid-sync, whose deploy root is
full or read-only, whose slot holds a stale lock, a corrupt store or a folder Sartoris does not own.

For each: the right phase and a clear error on that host, the failure budget and depool rules applied, the other
hosts switched, the wall time bounded by the timeouts, and `status` telling the truth about the broken host.
(Connect faults and a rejecting publish target are covered in test_sync.py.)
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Deployment, fresh_slot
from faults import (
    REFUSED_CHECKOUT,
    act_mid_run,
    chatty_login,
    deployment_on,
    drop_connections,
    hang_git,
    hang_switch,
    hold_tree_git,
    host_processes_with,
    in_host_namespace,
    is_clean,
    let_go,
    link_target,
    live_tree,
    own_fleet,
    processes_with,
    refuse_checkouts,
    signal_each,
    slow_fetch,
    sshd_pid,
    stalls,
    start_sartoris,
    store,
    store_tags,
    tree_commit,
    trees,
    wait_for,
    write_script,
)
from fleet import Fleet
from sample_repo import commit_change, git, make_checkout

from sartoris.remote import REMOTE_KILL_GRACE
from sartoris.rollout import NOT_REOPENED

pytestmark = pytest.mark.integration

COMMAND_TIMEOUT = 8
CONNECT_TIMEOUT = 3
# What a run costs beyond the timeouts on this (shared, loaded) machine: tagging, publishing, connecting,
# depooling, recording. Generous, yet far below the 300 s hangs the tests plant.
OVERHEAD = 25
HANG = 297  # seconds a hung hook sleeps; an odd number, so its processes can be told apart from others'
OWN_NETS = ("127.50", "127.51")  # nets no other suite uses


def _short(deployment: Deployment, **fanout: object) -> None:
    deployment.configure(command_timeout=COMMAND_TIMEOUT, connect_timeout=CONNECT_TIMEOUT, **fanout)


def _first_sync(deployment: Deployment, group: str) -> str:
    """Deploy the current commit to the group; the commit."""
    run = deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", group, "--json")
    assert run.code == 0, run.stderr
    return str(run.json()["commit"])


def _two_releases(deployment: Deployment, group: str, hosts: list[str]) -> str:
    """Deploy the current commit, then a one-file change of index.php, to `hosts` (as the group `group`), with short
    timeouts: the first release's commit, whose tree every host keeps."""
    deployment.group(group, hosts)
    _short(deployment)
    first = _first_sync(deployment, group)
    commit_change(deployment.checkout, "index.php", "<?php echo 'release 2';\n")
    assert deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", group).code == 0
    return first


def _timed_sync(deployment: Deployment, *args: str) -> tuple[int, dict[str, object], str, float]:
    began = time.monotonic()
    run = deployment.sartoris("sync", "--slot", str(deployment.slot), "--json", *args)
    seconds = time.monotonic() - began
    assert run.stdout, run.stderr
    return run.code, run.json(), run.stderr, seconds


def _host(report: dict[str, object], address: str) -> dict[str, object]:
    return next(h for h in report["hosts"] if h["host"] == address)  # type: ignore[attr-defined]


def _status(deployment: Deployment, group: str) -> tuple[int, dict[str, dict[str, object]]]:
    run = deployment.sartoris("status", "--slot", str(deployment.slot), "--hosts", group, "--json")
    assert run.code in (0, 5), run.stderr
    return run.code, {h["host"]: h for h in run.json()["hosts"]}


def _on(deployment: Deployment, address: str, commit: str) -> bool:
    """The host's slot links to the tree of `commit`, which is checked out at it and clean."""
    return (
        link_target(deployment, address) == tree_commit(deployment, commit)
        and deployment.host_head(address) == commit
        and is_clean(deployment, address)
    )


def _mentions_timeout(error: object) -> bool:
    """An error that tells the operator the host ran out of time (not a bare exit status)."""
    return any(word in str(error).lower() for word in ("timed out", "timeout"))


def test_a_host_that_gives_commands_no_stdin_fails_its_fetch_and_is_never_switched(deployment: Deployment) -> None:
    """Sartoris's host script travels on stdin. A host whose forced command (or a login shell's startup file)
    leaves commands no stdin runs nothing and exits 0: that host fails in the fetch phase, saying so, instead of
    passing for fetched and switched; the others switch."""
    nostdin = deployment.fleet.faults["nostdin"][0]
    hosts = [*deployment.fleet.hosts[:2], nostdin]
    deployment.group("trio", hosts)
    code, report, stderr, _ = _timed_sync(deployment, "--hosts", "trio", "--max-failures", "1")
    assert code == 5, stderr
    broken = _host(report, nostdin)
    assert (broken["ok"], broken["phase"], broken["depooled"]) == (False, "fetch", True)
    assert "ran none of the script" in str(broken["error"])
    assert report["counts"] == {"targeted": 3, "ok": 2, "failed": 1, "depooled": 1, "not_switched": 0}
    assert all(_on(deployment, h, deployment.head()) for h in hosts[:2])


# --- a host's git hangs or crawls ----------------------------------------------------------------------------


def test_a_hung_checkout_costs_one_command_timeout_and_depools_only_that_host(deployment: Deployment) -> None:
    """A host whose `git checkout` hangs fails in the checkout phase after command_timeout (not the hang), is
    depooled and stays whole on its old tree; the others switch; status says it is behind and depooled."""
    hosts = deployment.fleet.hosts[:5]
    deployment.group("five", hosts)
    _short(deployment)
    old = _first_sync(deployment, "five")
    hang_switch(deployment, hosts[0], HANG)
    new = commit_change(deployment.checkout, "index.php", "<?php echo 'release 2';\n")
    code, report, stderr, seconds = _timed_sync(deployment, "--hosts", "five", "--max-failures", "1")
    assert code == 5, stderr
    assert seconds < COMMAND_TIMEOUT + OVERHEAD, f"a {HANG}s hang cost the run {seconds:.0f}s"
    broken = _host(report, hosts[0])
    assert broken["phase"] == "checkout" and not broken["ok"] and broken["depooled"]
    assert report["counts"] == {"targeted": 5, "ok": 4, "failed": 1, "depooled": 1, "not_switched": 0}
    assert deployment.pool_changes() == [f"depool {hosts[0]}"]
    assert _on(deployment, hosts[0], old)
    assert all(_on(deployment, h, new) for h in hosts[1:])
    # The host gave up by itself (remote timeout): nothing of that switch is left running there.
    wait_for(lambda: not processes_with(f"sleep {HANG}"), 10, "the hung hook to be killed on the host")
    status_code, status = _status(deployment, "five")
    assert status_code == 5
    assert status[hosts[0]]["state"] == "behind" and status[hosts[0]]["commit"] == old
    assert status[hosts[0]]["depooled"] is True
    assert all(status[h]["state"] == "current" for h in hosts[1:])
    assert _mentions_timeout(broken["error"]), broken["error"]


def test_a_status_whose_git_hangs_on_a_host_ends_there_at_its_deadline(deployment: Deployment) -> None:
    """A host whose git hangs (a stuck NFS mount) answers status within command_timeout, unreachable, saying it timed
    out on the host, and its hung git is gone from the host within the KILL grace: it ran on after the controller
    gave up, and a cron'd status piled them up. The other host, on the release, is current."""
    hung, other = hosts = deployment.fleet.hosts[36:38]
    deployment.group("pair", hosts)
    deployment.group("other", [other])
    _short(deployment)
    _first_sync(deployment, "pair")
    commit_change(deployment.checkout, "index.php", "<?php echo 'release 2';\n")
    _first_sync(deployment, "other")  # the hung host is behind: its status asks git
    asking = f"git -C {deployment.fleet.remote_root}/php-slot{deployment.slot} rev-parse"
    stuck = hang_git(deployment, hung)
    try:
        began = time.monotonic()
        code, status = _status(deployment, "pair")
        seconds = time.monotonic() - began
        assert code == 5 and seconds < COMMAND_TIMEOUT + OVERHEAD, seconds
        assert status[hung]["state"] == "unreachable", status[hung]
        ahead = f"(stopped ahead of the {COMMAND_TIMEOUT:g}s timeout)"
        said = f"sartoris: timed out on the host after {COMMAND_TIMEOUT - 2:g}s {ahead}"
        assert status[hung]["error"] == said, status[hung]
        assert status[other]["state"] == "current"
        wait_for(lambda: not processes_with(asking), REMOTE_KILL_GRACE + 1, "the hung git to be gone from the host")
    finally:
        stuck.unlink()
        for pid in processes_with(asking):  # what a status with no deadline of its own left: ours, by PID
            os.kill(pid, signal.SIGKILL)


def test_a_slow_fetch_within_the_timeout_still_succeeds(deployment: Deployment) -> None:
    """A host whose fetch takes seconds (but less than command_timeout) is waited for and switched like the rest."""
    hosts = deployment.fleet.hosts[5:9]
    deployment.group("four", hosts)
    _short(deployment)
    _first_sync(deployment, "four")
    slow_fetch(deployment, hosts[0], 3)
    new = commit_change(deployment.checkout, "index.php", "<?php echo 'release 2';\n")
    code, report, stderr, _ = _timed_sync(deployment, "--hosts", "four")
    assert code == 0, stderr
    assert report["outcome"] == "ok"
    assert float(_host(report, hosts[0])["seconds"]) >= 3
    assert all(_on(deployment, h, new) for h in hosts)
    assert deployment.pool_changes() == []


@pytest.mark.parametrize(
    ("budget", "code", "outcome"),
    [
        pytest.param("1", 5, "partial", id="within-budget-depooled"),
        pytest.param("0", 3, "aborted", id="over-budget-aborts"),
    ],
)
def test_a_hung_fetch_fails_that_host_in_the_fetch_phase(
    deployment: Deployment, budget: str, code: int, outcome: str
) -> None:
    """A host whose fetch hangs fails in the fetch phase after command_timeout. Within the budget it is depooled
    and the rest switch; over it the run aborts with nobody switched or depooled. Either way, once the hang is
    gone, --retry-failed (or a new sync) brings the host to the release."""
    hosts = deployment.fleet.hosts[9:13]
    deployment.group("four", hosts)
    _short(deployment)
    old = _first_sync(deployment, "four")
    hook = slow_fetch(deployment, hosts[0], HANG)
    new = commit_change(deployment.checkout, "index.php", "<?php echo 'release 2';\n")
    got, report, stderr, seconds = _timed_sync(deployment, "--hosts", "four", "--max-failures", budget)
    assert got == code, stderr
    assert seconds < COMMAND_TIMEOUT + OVERHEAD, f"a {HANG}s fetch hang cost the run {seconds:.0f}s"
    assert report["outcome"] == outcome
    broken = _host(report, hosts[0])
    assert broken["phase"] == "fetch"
    assert _on(deployment, hosts[0], old)
    if outcome == "partial":
        assert broken["depooled"] and deployment.pool_changes() == [f"depool {hosts[0]}"]
        assert all(_on(deployment, h, new) for h in hosts[1:])
    else:
        assert deployment.pool_changes() == []
        assert all(_on(deployment, h, old) for h in hosts)
    wait_for(lambda: not processes_with(f"sleep {HANG}"), 10, "the hung fetch to be killed on the host")
    hook.unlink()
    again = ("--retry-failed",) if outcome == "partial" else ()
    code2, report2, stderr2, _ = _timed_sync(deployment, "--hosts", "four", *again)
    assert code2 == 0, (stderr2, report2)
    assert all(_on(deployment, h, new) for h in hosts)
    assert _mentions_timeout(broken["error"]), broken["error"]


# --- a failing checkout, a corrupt store, a folder that is not ours ------------------------------------------------


def test_a_failing_checkout_fails_the_host_and_retry_failed_converges(deployment: Deployment) -> None:
    """A host whose checkout fails (a hook left in its live tree refuses it) is named with the error; status shows
    it behind and depooled; once fixed, --retry-failed moves just that host and `pool --caught-up` puts it back.
    (A stale index.lock used to be this fault: a build now drops its copy, see test_remote.)"""
    hosts = deployment.fleet.hosts[13:17]
    deployment.group("four", hosts)
    _short(deployment)
    old = _first_sync(deployment, "four")
    refusing_hook = refuse_checkouts(deployment, hosts[0])
    new = commit_change(deployment.checkout, "index.php", "<?php echo 'release 2';\n")
    code, report, stderr, _ = _timed_sync(deployment, "--hosts", "four", "--max-failures", "1")
    assert code == 5, stderr
    broken = _host(report, hosts[0])
    assert broken["phase"] == "checkout" and REFUSED_CHECKOUT in str(broken["error"]) and broken["depooled"]
    assert link_target(deployment, hosts[0]) == tree_commit(deployment, old)
    status_code, status = _status(deployment, "four")
    assert status_code == 5 and status[hosts[0]]["state"] == "behind" and status[hosts[0]]["depooled"] is True
    refusing_hook.unlink()  # the host is fixed
    code, retry, stderr, _ = _timed_sync(deployment, "--hosts", "four", "--retry-failed")
    assert code == 0, stderr
    assert retry["tag"] == report["tag"] and [h["host"] for h in retry["hosts"]] == [hosts[0]]
    assert all(_on(deployment, h, new) for h in hosts)
    pooled = deployment.sartoris("pool", "--caught-up", "--slot", str(deployment.slot))
    assert pooled.code == 0, pooled.stderr
    status_code, status = _status(deployment, "four")
    assert status_code == 0 and status[hosts[0]]["state"] == "current"
    assert f"pool {hosts[0]}" in deployment.pool_changes()


def test_retry_failed_of_the_fleet_also_retries_the_hosts_a_sync_with_hosts_added_and_failed(
    deployment: Deployment, tmp_path: Path
) -> None:
    """`sync --hosts fleet --hosts ./new-servers` where a new server failed, then `sync --retry-failed` (the config's
    own hosts): it said "nothing to retry: every targeted host is on the tag", exit 0, with the new server off the
    release. The retry now also asks the hosts the release's runs targeted, as their hosts files (a group, or a
    file given by path) list them now: one taken out of its file since (decommissioned) is not asked."""
    fleet, new = deployment.fleet.hosts[44:46], deployment.fleet.hosts[46:48]
    deployment.group("fleet", fleet)
    servers = tmp_path / "new-servers"  # a file given by its path, not a group of hosts/
    servers.write_text("".join(f"{host}\n" for host in new))
    deployment.configure(deploy={"hosts": ["fleet"]}, command_timeout=COMMAND_TIMEOUT, connect_timeout=CONNECT_TIMEOUT)
    refusing = [refuse_checkouts(deployment, host) for host in new]
    release = commit_change(deployment.checkout, "index.php", "<?php echo 'with new servers';\n")
    everyone = ("--hosts", "fleet", "--hosts", str(servers))
    code, report, stderr, _ = _timed_sync(deployment, *everyone, "--max-failures", "2")
    assert code == 5 and [h["host"] for h in report["hosts"] if not h["ok"]] == new, stderr
    for hook in refusing:
        hook.unlink()  # both fixed; then one of them is decommissioned: its file no longer lists it
    servers.write_text(f"{new[0]}\n")
    code, retry, stderr, _ = _timed_sync(deployment, "--retry-failed")
    assert code == 0, stderr
    assert [h["host"] for h in retry["hosts"]] == new[:1]
    assert _on(deployment, new[0], release) and not _on(deployment, new[1], release)


def test_a_rollback_and_status_of_the_fleet_also_cover_the_servers_a_sync_with_hosts_added(
    deployment: Deployment, tmp_path: Path
) -> None:
    """After `sync --hosts fleet --hosts ./new-servers` of a bad release, a plain `rollback` took it off the
    config's hosts only, leaving the new servers on it, and `status` called the slot all current (exit 0). Both now
    cover the hosts the release's runs targeted beyond the fleet, as their files list them now."""
    fleet, new = deployment.fleet.hosts[40:42], deployment.fleet.hosts[42:43]
    deployment.group("fleet", fleet)
    servers = tmp_path / "new-servers"
    servers.write_text(f"{new[0]}\n")
    deployment.configure(deploy={"hosts": ["fleet"]})
    everyone = ("--hosts", "fleet", "--hosts", str(servers))
    first = _timed_sync(deployment, *everyone)
    bad = commit_change(deployment.checkout, "index.php", "<?php echo 'bad';\n")
    second = _timed_sync(deployment, *everyone)
    assert first[0] == second[0] == 0, (first[2], second[2])
    status = deployment.sartoris("status", "--slot", str(deployment.slot), "--json")
    assert status.code == 0 and [h["host"] for h in status.json()["hosts"]] == [*fleet, *new], status.stderr
    back = deployment.sartoris("rollback", "--slot", str(deployment.slot), "--json")
    assert back.code == 0 and [h["host"] for h in back.json()["hosts"]] == [*fleet, *new], back.stderr
    assert all(_on(deployment, host, str(first[1]["commit"])) for host in (*fleet, *new))
    assert not any(deployment.host_head(host) == bad for host in (*fleet, *new))
    status = deployment.sartoris("status", "--slot", str(deployment.slot), "--json")
    assert status.code == 0 and status.json()["counts"]["current"] == 3, status.stdout


def test_caught_up_on_one_slot_leaves_out_a_host_behind_on_the_slot_whose_run_depooled_it(
    deployment: Deployment,
) -> None:
    """One pool serves every slot: a host that a run of slot A depooled (its checkout failed) was put back by
    `pool --caught-up --slot B` as soon as it was current on B, while it still served A's old release. It is now
    left out, named with slot A, until it is on A's release too. A caught-up that pools nobody writes no history
    row (a cron'd one filled `log` with empty pool rows)."""
    hosts = deployment.fleet.hosts[30:33]
    deployment.group("three", hosts)
    _short(deployment)
    other = fresh_slot()
    make_checkout(deployment.root, other, files=20, submodules=1, submodule_files=3)
    _first_sync(deployment, "three")
    assert deployment.sartoris("sync", "--slot", str(other), "--hosts", "three").code == 0
    refusing_hook = refuse_checkouts(deployment, hosts[0])
    commit_change(deployment.checkout, "index.php", "<?php echo 'release 2';\n")
    code, report, stderr, _ = _timed_sync(deployment, "--hosts", "three", "--max-failures", "1")
    assert code == 5 and _host(report, hosts[0])["depooled"], stderr
    commit_change(deployment.root / f"php-slot{other}", "index.php", "<?php echo 'other 2';\n")
    assert deployment.sartoris("sync", "--slot", str(other), "--hosts", "three").code == 0

    caught_up = ("pool", "--caught-up", "--slot", str(other), "--json")
    rows = len(deployment.sartoris("log", "-n", "1000", "--json").json()["entries"])
    run = deployment.sartoris(*caught_up)
    assert run.code == 0, run.stderr
    assert run.json()["changed"] == [] and f"pool {hosts[0]}" not in deployment.pool_changes()
    assert len(deployment.sartoris("log", "-n", "1000", "--json").json()["entries"]) == rows
    assert run.json()["recorded"] is False  # it wrote nothing, and says so, as a retry with nothing to retry does
    assert run.json()["behind_in_other_slots"] == [{"host": hosts[0], "slot": deployment.slot}]
    refusing_hook.unlink()
    assert _timed_sync(deployment, "--hosts", "three", "--retry-failed")[0] == 0
    run = deployment.sartoris(*caught_up)
    assert run.code == 0 and run.json()["changed"] == [hosts[0]], run.stderr


def test_a_failed_build_is_removed_at_once_and_one_a_kill_left_by_the_next_sync(deployment: Deployment) -> None:
    """A switch whose build fails removes the tree it was building (`<commit>.building`) before it exits: it was
    left on the host until the slot's next switch, keeping a disk it filled full until then. A build a switch could
    not remove (killed at its deadline) is removed by the slot's next sync, of another release, with any other, and
    the host switches: a build that filled a disk no longer fails every later release there."""
    hosts = deployment.fleet.hosts[36:38]
    deployment.group("pair", hosts)
    _short(deployment)
    _first_sync(deployment, "pair")
    refusing_hook = refuse_checkouts(deployment, hosts[0])
    failed = commit_change(deployment.checkout, "index.php", "<?php echo 'release 2';\n")
    code, report, stderr, _ = _timed_sync(deployment, "--hosts", "pair", "--max-failures", "1")
    assert code == 5 and REFUSED_CHECKOUT in str(_host(report, hosts[0])["error"]), stderr
    assert sorted(trees(deployment, hosts[0]).glob("*.building")) == []
    for name in (failed, "e" * 40):  # as a KILL at the deadline leaves them: this release's and an earlier one's
        planted = trees(deployment, hosts[0]) / f"{name}.building"
        (planted / "big").mkdir(parents=True)
        (planted / "big" / "file.bin").write_bytes(b"\0" * 1_000_000)
    refusing_hook.unlink()  # the host is fixed
    third = commit_change(deployment.checkout, "index.php", "<?php echo 'release 3';\n")
    code, report, stderr, _ = _timed_sync(deployment, "--hosts", "pair")
    assert code == 0, stderr
    assert all(_on(deployment, h, third) for h in hosts)
    assert sorted(trees(deployment, hosts[0]).glob("*.building")) == []


def test_switch_failures_past_max_failures_stop_the_switch_and_depool_only_within_it(deployment: Deployment) -> None:
    """A release whose switch fails host after host does not take the fleet out of the pool: switch failures count
    against max_failures with the fetch's; past it no further switch starts. The host that failed within the
    budget is depooled; the one past it and those not reached stay pooled, all on the old tag (exit 5, the
    reason said). With no budget left, the first failure stops a run nobody switched in: aborted (exit 3); the host
    that failed was depooled by the run before, which the report says (`depooled_before`), not "left in the pool"."""
    hosts = deployment.fleet.hosts[24:29]
    deployment.group("five", hosts)
    _short(deployment)
    old = _first_sync(deployment, "five")
    for address in hosts[:2]:
        refuse_checkouts(deployment, address)
    commit_change(deployment.checkout, "index.php", "<?php echo 'release 2';\n")
    code, report, stderr, _ = _timed_sync(deployment, "--hosts", "five", "--max-failures", "1", "--concurrency", "1")
    assert code == 5, stderr
    assert report["reason"] == (
        "2 hosts failed to switch, more than max_failures (1): 3 hosts not switched, 1 failed host left in the pool"
    )
    first, second = _host(report, hosts[0]), _host(report, hosts[1])
    assert first["depooled"] and REFUSED_CHECKOUT in str(first["error"])
    assert not second["depooled"] and REFUSED_CHECKOUT in str(second["error"])
    for address in hosts[2:]:
        entry = _host(report, address)
        assert not entry["ok"] and not entry["depooled"] and str(entry["error"]).startswith("not switched: 2 hosts")
    assert report["counts"]["not_switched"] == 3  # type: ignore[index]
    assert all(_on(deployment, address, old) for address in hosts)
    assert deployment.pool_changes() == [f"depool {hosts[0]}"]
    code, report, stderr, _ = _timed_sync(deployment, "--hosts", "five", "--max-failures", "0", "--concurrency", "1")
    assert code == 3 and report["outcome"] == "aborted", stderr
    assert "1 host failed to switch, more than max_failures (0): 4 hosts not switched" in str(report["reason"])
    # the host that failed again was depooled by the first run: out of the pool, not "left in the pool" (audit)
    assert "left in the pool" not in str(report["reason"]) and _host(report, hosts[0])["depooled_before"] is True
    assert all(_on(deployment, address, old) for address in hosts)
    assert deployment.pool_changes() == [f"depool {hosts[0]}"]


def test_a_rollback_does_not_stop_at_switch_failures(deployment: Deployment) -> None:
    """A rollback takes every host it can back to the good release, whatever max_failures says of the switch: a
    host it left behind would run the release being rolled back from. Its failures are depooled (exit 5)."""
    hosts = deployment.fleet.hosts[24:28]
    good = _two_releases(deployment, "four", hosts)
    for address in hosts[:2]:  # the good release's tree is kept (no checkout to refuse): its swap fails instead
        slot = deployment.host_slot(address)
        (slot.parent / f"{slot.name}.sartoris-new" / "in-the-way").mkdir(parents=True)
    run = deployment.sartoris(
        "rollback", "--slot", str(deployment.slot), "--hosts", "four", "--max-failures", "0", "--concurrency", "1",
        "--json",
    )
    assert run.code == 5, run.stderr
    report = run.json()
    assert [h["host"] for h in report["hosts"] if h["depooled"]] == hosts[:2]
    assert report["counts"]["not_switched"] == 0 and report["reason"] is None
    assert all(_on(deployment, address, good) for address in hosts[2:])
    assert sorted(deployment.pool_changes()) == sorted(f"depool {address}" for address in hosts[:2])


def test_caught_up_leaves_out_a_host_whose_rollback_of_part_of_the_fleet_failed(deployment: Deployment) -> None:
    """`rollback --hosts pair` of two of three hosts, one of whose swap fails: depooled, it still runs the release
    the rollback meant to take it off, the slot's own. `pool --caught-up` put it back in the pool on that release
    at once; it now waits until the host is on the rollback's release, and then pools it."""
    hosts = deployment.fleet.hosts[40:43]
    good = _two_releases(deployment, "three", hosts)
    deployment.group("pair", hosts[:2])
    slot = deployment.host_slot(hosts[0])
    in_the_way = slot.parent / f"{slot.name}.sartoris-new" / "in-the-way"
    in_the_way.mkdir(parents=True)  # the good release's tree is kept (no checkout to refuse): its swap fails instead
    rollback = ("rollback", "--slot", str(deployment.slot), "--hosts", "pair", "--json")  # back to `good`
    run = deployment.sartoris(*rollback)
    assert run.code == 5 and run.json()["sets_release"] is False, run.stderr
    assert [h["host"] for h in run.json()["hosts"] if h["depooled"]] == [hosts[0]]
    caught_up = ("pool", "--caught-up", "--slot", str(deployment.slot), "--json")
    held = deployment.sartoris(*caught_up)
    assert held.code == 0 and held.json()["changed"] == [], held.stdout
    shutil.rmtree(in_the_way.parent)
    assert deployment.sartoris(*rollback).code == 0 and _on(deployment, hosts[0], good)
    pooled = deployment.sartoris(*caught_up)
    assert pooled.code == 0 and pooled.json()["changed"] == [hosts[0]], pooled.stdout


def _sync_holding_the_history(
    deployment: Deployment, ready: Path, what: str, lock: str, *args: str
) -> tuple[int | None, str, str]:
    """`sync --json` with `args`, while another process takes the history's lock (`BEGIN IMMEDIATE` or `EXCLUSIVE`)
    once `ready` exists and holds it to the run's end; its exit code, stdout and stderr."""
    holder = sqlite3.connect(deployment.root / ".sartoris" / "history.sqlite3", isolation_level=None)
    try:
        process = start_sartoris(deployment, "sync", "--slot", str(deployment.slot), *args, "--json")
        stdout, stderr, _ = act_mid_run(process, ready.exists, what, lambda: holder.execute(lock), timeout=120)
    finally:
        holder.close()
    return process.returncode, stdout, stderr


def _release_2_with_the_history_held_from_the_fetch(
    deployment: Deployment, tmp_path: Path, hosts: list[str], lock: str, *, canary: bool = False
) -> tuple[str, int | None, str, str]:
    """Deploy release 1 to `hosts` (with the first as the canary when `canary`), then sync release 2 while another
    process takes the history's lock (`lock`) once the first host's fetch has begun; the old commit and the sync's
    exit code, stdout and stderr."""
    deployment.group("pair", hosts)
    _short(deployment)
    old = _first_sync(deployment, "pair")
    if canary:
        deployment.group("canary", hosts[:1])
        _short(deployment, deploy={"canaries": ["canary"]})
    fetching = tmp_path / "fetching"
    slow_fetch(deployment, hosts[0], 2, fetching)
    commit_change(deployment.checkout, "index.php", "<?php echo 'release 2';\n")
    code, stdout, stderr = _sync_holding_the_history(deployment, fetching, "a host's fetch", lock, "--hosts", "pair")
    return old, code, stdout, stderr


def test_a_run_the_history_cannot_take_is_reported_and_never_exits_0(deployment: Deployment, tmp_path: Path) -> None:
    """Two hosts switched and one failed its checkout and was depooled, but the deploy host's history would take
    neither the run nor the depool (another process holds its write lock past the 10 s wait, as a full disk or a
    broken database would refuse it): the report is still printed, with "recorded": false, one stderr line says
    `status`, `log` and `rollback` do not know the run, nor that the depooled host is out of the pool, and the exit
    is 5, so a script does not carry on as if all were done."""
    hosts = deployment.fleet.hosts[29:32]
    deployment.group("three", hosts)
    _short(deployment)
    _first_sync(deployment, "three")
    switching = tmp_path / "switching"
    hang_switch(deployment, hosts[0], 2, switching)
    refuse_checkouts(deployment, hosts[2])
    new = commit_change(deployment.checkout, "index.php", "<?php echo 'release 2';\n")
    code, stdout, stderr = _sync_holding_the_history(
        deployment, switching, "a host's switch", "BEGIN IMMEDIATE", "--hosts", "three", "--max-failures", "1"
    )
    assert code == 5, stderr
    report = json.loads(stdout)
    assert report["outcome"] == "partial" and report["recorded"] is False
    assert _host(report, hosts[2])["depooled"] is True and f"depool {hosts[2]}" in deployment.pool_changes()
    assert all(_on(deployment, h, new) for h in hosts[:2])
    said = [line for line in stderr.splitlines() if line.startswith("sartoris: ")]
    assert said and "was not written to the history" in said[-1] and "database is locked" in said[-1], stderr
    assert f"nor that {hosts[2]} is out of the pool" in said[-1], stderr


def test_a_run_the_history_cannot_note_before_its_switch_switches_no_host(
    deployment: Deployment, tmp_path: Path
) -> None:
    """Another process holds the history's write lock from the fetch on: the run cannot note itself (`unfinished`)
    before its first switch. It switched every host and then could not record them; a run that died then would have
    left no trace at all. It now aborts before any switch (exit 3), every host on its old tree."""
    hosts = deployment.fleet.hosts[34:36]
    old, code, stdout, stderr = _release_2_with_the_history_held_from_the_fetch(
        deployment, tmp_path, hosts, "BEGIN IMMEDIATE"
    )
    assert code == 3, stderr
    report = json.loads(stdout)
    assert report["outcome"] == "aborted" and "could not note the run" in str(report["reason"])
    assert all(_on(deployment, h, old) for h in hosts)


@pytest.mark.parametrize("canary", [False, True], ids=["plain", "with-a-canary"])
def test_a_history_that_cannot_be_read_before_the_switch_aborts_the_run_with_its_report(
    deployment: Deployment, tmp_path: Path, canary: bool
) -> None:
    """Another process holds the history exclusively (no reads either) from the fetch on: the pool state the depool
    cap counts cannot be read. The run ended with exit 4 and no report, though it had published and fetched; it now
    aborts before any switch, with its report (reason, "recorded": false) and exit 3, every host on its old tree.
    In the canary phase the reason is that one too, not "a canary failed" (no canary did)."""
    hosts = deployment.fleet.hosts[32:34]
    old, code, stdout, stderr = _release_2_with_the_history_held_from_the_fetch(
        deployment, tmp_path, hosts, "BEGIN EXCLUSIVE", canary=canary
    )
    assert code == 3, stderr
    report = json.loads(stdout)
    assert report["outcome"] == "aborted" and report["recorded"] is False
    assert "the pool state could not be read" in str(report["reason"]) and "locked" in str(report["reason"])
    assert all(_on(deployment, h, old) for h in hosts)


@pytest.mark.parametrize("where", ["submodule", "checkout"])
def test_a_switch_whose_connection_drops_is_reported_as_it_ended_on_the_host(
    deployment: Deployment, tmp_path: Path, where: str
) -> None:
    """The connection drops while a host's switch runs a checkout (the host's sshd session killed, the host itself
    fine), and the switch goes on there without it. Bringing a submodule to its new commit, it prints nothing more
    until the swap, and ends on the release; in the superproject's checkout, it dies at its next line of output, on
    its old tree. Either way Sartoris looks on a new connection, once that switch has ended, and reports what the
    host ended on: on the release, not depooled; or failed and depooled, saying it is not on the release."""
    hosts = deployment.fleet.hosts[31:33]
    deployment.group("two", hosts)
    _short(deployment)
    old = _first_sync(deployment, "two")
    checking_out = tmp_path / "checking-out"
    gitdir = live_tree(deployment, hosts[0]) / ".git"
    hooks = gitdir / "modules" / "Ext0" / "hooks" if where == "submodule" else gitdir / "hooks"
    write_script(hooks / "post-checkout", f"touch {shlex.quote(str(checking_out))}\nsleep 3\n")
    new = commit_change(deployment.checkout, "extensions/Ext0/bumped.php", "<?php // a submodule change\n")
    process = start_sartoris(
        deployment, "sync", "--slot", str(deployment.slot), "--hosts", "two", "--max-failures", "1", "--json"
    )
    stdout, stderr, _ = act_mid_run(
        process,
        checking_out.exists,
        f"the host's {where} checkout",
        lambda: drop_connections(deployment.fleet, hosts[0]),
    )
    report = json.loads(stdout)
    dropped = _host(report, hosts[0])
    assert _on(deployment, hosts[1], new)
    if where == "submodule":
        assert process.returncode == 0, stderr
        assert dropped["ok"] and dropped["phase"] == "done" and not dropped["depooled"], dropped
        assert str(dropped["note"]).endswith("; on the release (seen on a new connection)"), dropped
        assert "switched_despite_lost_connection" in stderr
        assert _on(deployment, hosts[0], new) and deployment.pool_changes() == []
    else:
        assert process.returncode == 5, stderr
        assert not dropped["ok"] and dropped["phase"] == "checkout" and dropped["depooled"], dropped
        assert str(dropped["error"]).endswith("the host is not on the release (seen on a new connection)")
        assert _on(deployment, hosts[0], old) and deployment.pool_changes() == [f"depool {hosts[0]}"]


def test_a_host_whose_connection_drops_between_its_fetch_and_its_switch_is_switched_on_a_new_one(
    deployment: Deployment,
) -> None:
    """A host's idle connection drops after its fetch, while another host's slow fetch holds the run (its sshd
    session killed, the host fine). It was failed at `checkout` and depooled, its switch never tried though it never
    started; the switch now runs on a new connection: the host is switched, not depooled, with a warning."""
    slow, dropped = deployment.fleet.hosts[33:35]
    deployment.group("pair", [slow, dropped])
    deployment.configure(command_timeout=14, connect_timeout=CONNECT_TIMEOUT)  # room for the slow fetch
    _first_sync(deployment, "pair")

    def drop_its_connection() -> None:
        assert drop_connections(deployment.fleet, dropped), "no sshd session of the host was found to kill"

    new, process, stdout, stderr = _sync_breaking_a_host_after_its_fetch(
        deployment, "pair", slow, dropped, drop_its_connection
    )
    assert process.returncode == 0, stderr
    host = _host(json.loads(stdout), dropped)
    assert (host["ok"], host["phase"], host["error"], host["depooled"]) == (True, "done", None, False), host
    assert "switch_connection_reopened" in stderr
    assert deployment.pool_changes() == []
    assert _on(deployment, dropped, new) and _on(deployment, slow, new)


@pytest.mark.parametrize("output", ["json", "text"])
def test_a_rollback_whose_connection_drops_on_a_host_already_on_its_tag_says_it_changed_nothing(
    deployment: Deployment, output: str
) -> None:
    """`rollback --to T` run again, its hosts already on T, while one host's connection drops during its switch (its
    sshd session killed, the host fine): that switch ends on the host without it, and a look on a new connection
    settles it. The look said nothing of the switch finding the slot already on T (that line came after the swap,
    lost with the connection): the host said `"unchanged": false` and the summary counted one host fewer as already
    on T, though nothing moved. The look now reads the switch's record of it: both hosts unchanged."""
    hosts = deployment.fleet.hosts[38:40]
    deployment.group("two", hosts)
    _short(deployment)
    first = deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "two", "--json")
    assert first.code == 0, first.stderr
    tag, commit = str(first.json()["tag"]), str(first.json()["commit"])
    commit_change(deployment.checkout, "index.php", "<?php echo 'release 2';\n")
    assert deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "two").code == 0
    back = ("rollback", "--slot", str(deployment.slot), "--hosts", "two", "--to", tag)
    assert deployment.sartoris(*back).code == 0  # both hosts now on T
    held = hold_tree_git(deployment, hosts[0])  # its switch's check of the live tree waits for the drop

    def drop_then_let_go() -> None:
        assert drop_connections(deployment.fleet, hosts[0]), "no sshd session of the host was found to kill"
        let_go(held)

    process = start_sartoris(deployment, *back, *(("--json",) if output == "json" else ()))
    try:
        stdout, stderr, _ = act_mid_run(
            process,
            lambda: bool(host_processes_with(deployment.fleet, hosts[0], "update-index -q --refresh")),
            "the host's switch to check its live tree",
            drop_then_let_go,
        )
    finally:
        if held.exists():  # the run never got there
            let_go(held)
    assert process.returncode == 0, stderr
    assert "switched_despite_lost_connection" in stderr  # settled by the look, not by the reply
    if output == "json":
        report = json.loads(stdout)
        dropped = _host(report, hosts[0])
        assert dropped["ok"] and str(dropped["note"]).endswith("(seen on a new connection)"), dropped
        assert [h["unchanged"] for h in report["hosts"]] == [True, True], report["hosts"]
    else:
        assert f"  2 hosts were already on {tag}: nothing changed on them" in stdout.splitlines(), stdout
    assert all(_on(deployment, h, commit) for h in hosts)
    assert deployment.pool_changes() == []


def test_a_host_whose_connection_freezes_before_its_switch_opens_fails_at_connect_without_a_look(
    deployment: Deployment,
) -> None:
    """A host's connection freezes after its fetch (its sshd session stopped, as a stalled network would; the host
    fine, new connections served), so its switch's session never opens and the command is never sent. It was taken
    for a switch that may have run: looked at on a new connection once its deadline and KILL were past, reported at
    `checkout` as "not on the release (seen on a new connection)", or as possibly run had that look failed. It now
    fails at `connect` once command_timeout is out, saying the command was never sent, with no look; depooled as any
    failed switch, on its old tree."""
    slow, frozen = deployment.fleet.hosts[38:40]
    deployment.group("pair", [slow, frozen])
    deployment.configure(command_timeout=14, connect_timeout=CONNECT_TIMEOUT)  # room for the slow fetch
    old = _first_sync(deployment, "pair")
    with stalls(deployment.fleet, frozen) as stall:
        new, process, stdout, stderr = _sync_breaking_a_host_after_its_fetch(deployment, "pair", slow, frozen, stall)
    assert process.returncode == 5, stderr
    host = _host(json.loads(stdout), frozen)
    assert (host["ok"], host["phase"], host["depooled"], host["stopped"]) == (False, "connect", True, False), host
    assert host["error"] == "timed out after 14s opening a session (the command was never sent)", host
    assert "switched_despite" not in stderr
    assert deployment.pool_changes() == [f"depool {frozen}"]
    assert _on(deployment, slow, new) and _on(deployment, frozen, old)


def _sync_breaking_a_host_after_its_fetch(
    deployment: Deployment, group: str, slow: str, victim: str, act: Callable[[], object]
) -> tuple[str, subprocess.Popen[str], str, str]:
    """Sync a one-file change to `group`, `slow`'s fetch held 6 s; `act()` (a dropped connection, a killed host) once
    `victim` has fetched and while the run is still in its fetch phase. The new commit, the finished process, and
    its stdout and stderr."""
    slow_fetch(deployment, slow, 6)  # holds the run in the fetch phase after the victim has fetched
    new = commit_change(deployment.checkout, "index.php", "<?php echo 'release 2';\n")
    before = store_tags(deployment, victim)
    process = start_sartoris(
        deployment, "sync", "--slot", str(deployment.slot), "--hosts", group, "--max-failures", "1", "--json"
    )

    def after_its_fetch() -> None:
        time.sleep(1)  # let its fetch command return to the controller
        assert process.poll() is None, "the run ended before the slow host finished fetching"
        act()

    stdout, stderr, _ = act_mid_run(
        process, lambda: store_tags(deployment, victim) - before != set(), "the host to fetch", after_its_fetch, 120
    )
    return new, process, stdout, stderr


@pytest.mark.parametrize("action", ["sync", "rollback"])
def test_a_switch_whose_reply_is_held_past_the_timeout_is_reported_as_it_ended_on_the_host(
    deployment: Deployment, tmp_path: Path, action: str
) -> None:
    """A host's SSH session stalls (its sshd stopped, as a network stall would) while its switch runs, and the
    switch ends on the host, swap and all, with its reply held back past command_timeout. It was reported failed at
    checkout and depooled though the host ran the release; now, once the host's own deadline is past, Sartoris looks
    on a new connection and reports it ok, not depooled, with a note saying how it was seen (a rollback alike)."""
    hosts = deployment.fleet.hosts[36:38]
    deployment.group("two", hosts)
    _short(deployment, deploy={"hosts": ["two"]})  # the whole fleet: status then compares with the rollback's release
    first = _first_sync(deployment, "two")
    if action == "rollback":  # the good release's tree is gone from the host: the rollback checks it out again
        commit_change(deployment.checkout, "index.php", "<?php echo 'bad';\n")
        assert deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "two").code == 0
        shutil.rmtree(trees(deployment, hosts[0]) / first)
        target = first
    else:
        target = commit_change(deployment.checkout, "index.php", "<?php echo 'release 2';\n")
    checking_out = tmp_path / "checking-out"
    hang_switch(deployment, hosts[0], 2, checking_out)  # the swap comes 2 s after the stall
    args = ("--slot", str(deployment.slot), "--hosts", "two", "--json")
    process = start_sartoris(deployment, action, *args, *(("--max-failures", "1") if action == "sync" else ()))
    with stalls(deployment.fleet, hosts[0]) as stall:
        stdout, stderr, seconds = act_mid_run(process, checking_out.exists, "the host's checkout", stall)
    assert process.returncode == 0, stderr
    report = json.loads(stdout)
    held = _host(report, hosts[0])
    assert (held["ok"], held["phase"], held["error"], held["depooled"]) == (True, "done", None, False), held
    assert held["note"] == f"timed out after {COMMAND_TIMEOUT}s; on the release (seen on a new connection)"
    assert "switched_despite_timeout" in stderr
    assert seconds < COMMAND_TIMEOUT + OVERHEAD
    assert deployment.pool_changes() == []
    assert all(_on(deployment, h, target) for h in hosts)
    _, status = _status(deployment, "two")
    assert all(status[h]["state"] == "current" for h in hosts), status


def _garbage_head(deployment: Deployment, address: str) -> None:
    (store(deployment, address) / "HEAD").write_text("this is not a ref\n\0\0garbage\n")


def _no_objects(deployment: Deployment, address: str) -> None:
    shutil.rmtree(store(deployment, address) / "objects")


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(_garbage_head, id="store-HEAD-garbage"),
        pytest.param(_no_objects, id="store-objects-deleted"),
    ],
)
def test_a_corrupt_repository_fails_only_that_host_and_status_says_so(
    deployment: Deployment, corrupt: Callable[[Deployment, str], None]
) -> None:
    """A host whose slot store is corrupt fails with a clear git error (no traceback), is depooled, its slot link
    is left where it was; the others switch; status neither calls that host current nor passes its broken slot off
    as a slot never deployed. (A broken live tree no longer fails its host: see the next test.)"""
    hosts = deployment.fleet.hosts[17:21]
    deployment.group("four", hosts)
    _short(deployment)
    old = _first_sync(deployment, "four")
    corrupt(deployment, hosts[0])
    new = commit_change(deployment.checkout, "index.php", "<?php echo 'release 2';\n")
    code, report, stderr, _ = _timed_sync(deployment, "--hosts", "four", "--max-failures", "1")
    assert code == 5, stderr
    assert "Traceback" not in stderr
    broken = _host(report, hosts[0])
    assert not broken["ok"] and broken["depooled"] and broken["phase"] in ("fetch", "checkout")
    assert str(broken["error"]).strip() and "\n" not in str(broken["error"])
    assert link_target(deployment, hosts[0]) == tree_commit(deployment, old)
    assert all(_on(deployment, h, new) for h in hosts[1:])
    assert deployment.pool_changes() == [f"depool {hosts[0]}"]
    _, status = _status(deployment, "four")
    assert status[hosts[0]]["state"] != "current" and status[hosts[0]]["depooled"] is True
    assert all(status[h]["state"] == "current" for h in hosts[1:])
    # The host has a slot; if its commit cannot be read, status must say so rather than call it never deployed.
    assert status[hosts[0]]["state"] != "missing" or status[hosts[0]]["error"], status[hosts[0]]


def _packs_deleted(deployment: Deployment, address: str) -> None:
    for pack in store(deployment, address).glob("objects/pack/pack-*"):
        pack.unlink()


def _store_folder_emptied(deployment: Deployment, address: str) -> None:
    shutil.rmtree(store(deployment, address))
    store(deployment, address).mkdir()


def _store_remedy(deployment: Deployment) -> str:
    """The start of the remedy a host's error ends with when its slot store is damaged, naming the store as the host
    sees it."""
    on_the_host = f"{deployment.fleet.remote_root}/.sartoris/php-slot{deployment.slot}/store.git"
    return f"(the slot's object store on the host is damaged: remove {on_the_host} there, and the next sync fetches"


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(_packs_deleted, id="packs-deleted"),
        pytest.param(_store_folder_emptied, id="store-folder-emptied"),
        pytest.param(_garbage_head, id="store-HEAD-garbage"),
    ],
)
def test_a_damaged_store_says_how_to_mend_it_and_that_mends_the_host(
    deployment: Deployment, damage: Callable[[Deployment, str], None]
) -> None:
    """A host whose slot store is damaged failed every later sync at fetch with git's words alone, though removing
    the store mends it (Sartoris may not: every tree of the slot there shares its objects, the live one too). Its
    error now says so, naming the store as the host sees it; done as said, the next sync puts the host on the
    release like the others, and status calls it current."""
    hosts = deployment.fleet.hosts[46:48]
    deployment.group("two", hosts)
    _short(deployment)
    _first_sync(deployment, "two")
    damage(deployment, hosts[0])
    commit_change(deployment.checkout, "index.php", "<?php echo 'release 2';\n")
    code, report, stderr, _ = _timed_sync(deployment, "--hosts", "two", "--max-failures", "1")
    assert code == 5, stderr
    broken = _host(report, hosts[0])
    remedy = _store_remedy(deployment)
    assert broken["phase"] == "fetch" and remedy in str(broken["error"]), broken
    assert "\n" not in str(broken["error"])
    shutil.rmtree(store(deployment, hosts[0]))  # the remedy
    new = commit_change(deployment.checkout, "index.php", "<?php echo 'release 3';\n")
    code, report, stderr, _ = _timed_sync(deployment, "--hosts", "two")
    assert code == 0, stderr
    assert all(_on(deployment, h, new) for h in hosts)
    status_code, status = _status(deployment, "two")
    assert status_code == 0 and all(status[h]["state"] == "current" for h in hosts), status


def test_a_store_that_lost_an_object_a_rollback_reads_says_how_to_mend_it_and_that_mends_the_host(
    deployment: Deployment,
) -> None:
    """A host whose slot store lost an object of an older release (a file's, loose) has every commit of it, so a
    rollback there fetched nothing and failed at the switch with git's words alone, on every try. Its error now ends
    with the remedy a failed fetch's gets; done as said, the rollback again puts the host on the release like the
    other, and status calls both current."""
    hosts = deployment.fleet.hosts[48:50]
    deployment.group("two", hosts)
    _short(deployment, deploy={"hosts": ["two"]})  # the whole fleet: status then compares with the rollback's release
    _first_sync(deployment, "two")
    good = commit_change(deployment.checkout, "index.php", "<?php echo 'release 2';\n")
    synced = deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "two", "--json")
    assert synced.code == 0, synced.stderr
    commit_change(deployment.checkout, "index.php", "<?php echo 'release 3';\n")
    assert deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "two").code == 0
    shutil.rmtree(trees(deployment, hosts[0]) / good)  # the rollback checks the good release out again there
    blob = git(deployment.checkout, "rev-parse", f"{good}:index.php")
    (store(deployment, hosts[0]) / "objects" / blob[:2] / blob[2:]).unlink()  # fetched loose: a one-file release
    back = ("rollback", "--slot", str(deployment.slot), "--hosts", "two", "--to", str(synced.json()["tag"]), "--json")
    run = deployment.sartoris(*back)
    assert run.code == 5, run.stderr
    broken = _host(run.json(), hosts[0])
    remedy = _store_remedy(deployment)
    assert broken["phase"] == "checkout" and broken["depooled"] and remedy in str(broken["error"]), broken
    assert f"unable to read sha1 file of index.php ({blob})" in str(broken["error"]), broken
    assert _on(deployment, hosts[1], good)
    shutil.rmtree(store(deployment, hosts[0]))  # the remedy
    run = deployment.sartoris(*back)
    assert run.code == 0, run.stderr
    assert all(_on(deployment, h, good) for h in hosts)
    status_code, status = _status(deployment, "two")
    assert status_code == 0 and all(status[h]["state"] == "current" for h in hosts), status


def _garbage_live_head(deployment: Deployment, address: str) -> None:
    (live_tree(deployment, address) / ".git" / "HEAD").write_text("garbage\n")


def _no_live_head(deployment: Deployment, address: str) -> None:
    (live_tree(deployment, address) / ".git" / "HEAD").unlink()


def _truncated_live_index(deployment: Deployment, address: str) -> None:
    index = live_tree(deployment, address) / ".git" / "index"
    index.write_bytes(index.read_bytes()[:10])


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(_garbage_live_head, id="HEAD-garbage"),
        pytest.param(_no_live_head, id="HEAD-removed"),
        pytest.param(_truncated_live_index, id="index-truncated"),
    ],
)
def test_a_live_tree_whose_git_is_broken_no_longer_fails_its_host(
    deployment: Deployment, damage: Callable[[Deployment, str], None]
) -> None:
    """A host whose live tree's `.git` is broken (its objects/info/alternates still there, so a switch builds the
    next tree from a copy of it) failed every later release of the slot: each switch copied the broken tree, and
    its checkout failed again. The build from the copy is now thrown away and made again from a fresh clone of the
    store: the host switches like the others, whole and clean, is not depooled, and status calls it current. The
    run says, for that host only, that its tree was built from a fresh clone because the copy did not build."""
    hosts = deployment.fleet.hosts[43:46]
    deployment.group("three", hosts)
    _short(deployment)
    _first_sync(deployment, "three")
    damage(deployment, hosts[0])
    new = commit_change(deployment.checkout, "index.php", "<?php echo 'release 2';\n")
    code, report, stderr, _ = _timed_sync(deployment, "--hosts", "three")
    assert code == 0, stderr
    said = [line for line in stderr.splitlines() if "tree_built_from_a_fresh_clone" in line]
    assert len(said) == 1 and hosts[0] in said[0] and "a copy of the live tree" in said[0], stderr
    assert report["counts"] == {"targeted": 3, "ok": 3, "failed": 0, "depooled": 0, "not_switched": 0}
    assert all(_on(deployment, h, new) for h in hosts)
    assert deployment.pool_changes() == []
    status_code, status = _status(deployment, "three")
    assert status_code == 0 and all(status[h]["state"] == "current" for h in hosts), status


def test_a_rollback_builds_again_a_kept_tree_someone_changed_on_the_host(deployment: Deployment) -> None:
    """A rollback to a release whose tree a host still keeps reused that tree as it was, though its tracked files
    had been edited and deleted on the host: the host served them as the release. That host now builds the tree
    again and ends on the release exactly, like the others, and nobody is depooled."""
    hosts = deployment.fleet.hosts[46:48]
    first = _two_releases(deployment, "pair", hosts)
    kept = trees(deployment, hosts[0]) / first
    (kept / "index.php").write_text("<?php echo 'patched on the host';\n")  # its own file: release 2 changed it
    (kept / "includes" / "dir03" / "file0003.php").unlink()
    run = deployment.sartoris("rollback", "--slot", str(deployment.slot), "--hosts", "pair", "--json")
    assert run.code == 0, run.stderr
    assert run.json()["commit"] == first
    assert all(_on(deployment, h, first) for h in hosts)
    assert deployment.pool_changes() == []


def test_a_live_tree_whose_files_were_changed_on_the_host_fails_a_redeploy_and_the_next_release_is_exact(
    deployment: Deployment,
) -> None:
    """A sync of the release a host already runs (no new commit) reported the host on it though files of its live
    tree had been edited and deleted on the host. That host now fails in the checkout phase with one line naming
    the tree and those files, is depooled, and serves its tree as it is (no mending in place); the next release,
    built from a copy of that tree, is exact there, and the old tree keeps the edits."""
    hosts = deployment.fleet.hosts[48:50]
    deployment.group("pair", hosts)
    _short(deployment)
    first = _first_sync(deployment, "pair")
    live = live_tree(deployment, hosts[0])
    edited, deleted = live / "includes" / "dir02" / "file0002.php", live / "includes" / "dir01" / "file0001.php"
    edited.write_text("<?php // patched on the host\n")
    deleted.unlink()
    code, report, stderr, _ = _timed_sync(deployment, "--hosts", "pair", "--max-failures", "1")
    assert code == 5 and report["commit"] == first, stderr
    broken = _host(report, hosts[0])
    assert broken["phase"] == "checkout" and broken["depooled"]
    tree = f"{deployment.fleet.remote_root}/{tree_commit(deployment, first)}"
    assert str(broken["error"]).startswith(
        f"sartoris: the live tree {tree} was changed on the host (includes/dir01/file0001.php,"
        " includes/dir02/file0002.php): deploy another release"
    ), broken["error"]
    assert deployment.pool_changes() == [f"depool {hosts[0]}"]
    assert link_target(deployment, hosts[0]) == tree_commit(deployment, first)
    assert edited.read_text() == "<?php // patched on the host\n" and not deleted.exists()
    assert _on(deployment, hosts[1], first)
    new = commit_change(deployment.checkout, "index.php", "<?php echo 'release 2';\n")
    code, report, stderr, _ = _timed_sync(deployment, "--hosts", "pair")
    assert code == 0, stderr
    assert all(_on(deployment, h, new) for h in hosts)
    assert edited.read_text() == "<?php // patched on the host\n" and not deleted.exists()


def test_a_foreign_folder_at_the_slot_is_never_replaced(deployment: Deployment, tmp_path: Path) -> None:
    """A host whose slot path is a real folder (here someone's own git checkout) fails in the checkout phase with
    an error saying the slot is not managed by sartoris; the folder and its files are untouched; status calls it
    missing, saying so, and reports the commit that folder really has."""
    hosts = deployment.fleet.hosts[21:24]
    deployment.group("three", hosts)
    _short(deployment)
    foreign = deployment.host_slot(hosts[0])
    foreign.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(deployment.checkout, foreign, symlinks=True)
    precious = foreign / "precious.txt"
    precious.write_text("an operator's hand-made fix\n")
    foreign_head = git(foreign, "rev-parse", "HEAD")
    new = commit_change(deployment.checkout, "index.php", "<?php echo 'release 2';\n")
    code, report, stderr, _ = _timed_sync(deployment, "--hosts", "three", "--max-failures", "1")
    assert code == 5, stderr
    broken = _host(report, hosts[0])
    assert broken["phase"] == "checkout" and broken["depooled"]
    assert "not managed by sartoris" in str(broken["error"])
    assert foreign.is_dir() and not foreign.is_symlink()
    assert precious.read_text() == "an operator's hand-made fix\n"
    assert git(foreign, "rev-parse", "HEAD") == foreign_head
    assert all(_on(deployment, h, new) for h in hosts[1:])
    _, status = _status(deployment, "three")
    assert status[hosts[0]]["state"] == "missing" and status[hosts[0]]["commit"] == foreign_head
    assert "is not managed by sartoris (a directory, not a link)" in str(status[hosts[0]]["error"])


def test_a_login_shell_printing_without_a_newline_hides_nothing_of_a_hosts_state(deployment: Deployment) -> None:
    """A host whose account's shell prints an xterm title (no newline) before each command had it glued to the first
    line of every script's output: status read no commit there (`missing`, exit 5, for a host on the release), and
    a hand-made folder at the slot path, whose refusal line it no longer saw, passed for `current`, which `pool
    --caught-up` then believed. Each script's own output now starts after a line of its own."""
    chatty, other = hosts = deployment.fleet.hosts[48:50]
    deployment.group("chat", hosts)
    _short(deployment)
    with chatty_login(deployment.fleet, chatty):
        commit = _first_sync(deployment, "chat")
        assert all(_on(deployment, h, commit) for h in hosts)
        code, status = _status(deployment, "chat")
        assert code == 0 and {h: status[h]["state"] for h in hosts} == {chatty: "current", other: "current"}
        slot = deployment.host_slot(chatty)
        copied = slot.with_name("copied")
        shutil.copytree(slot.resolve(), copied, symlinks=True)
        slot.unlink()
        copied.rename(slot)
        code, status = _status(deployment, "chat")
        assert code == 5 and status[chatty]["state"] == "missing" and status[chatty]["commit"] == commit
        assert "is not managed by sartoris (a directory, not a link)" in str(status[chatty]["error"])


def test_a_slot_link_sartoris_did_not_make_is_never_replaced(deployment: Deployment) -> None:
    """A host whose slot path is a link to a folder elsewhere (a clone made by hand, as scap-era hosts have) fails
    in the checkout phase, saying the link is not sartoris's and where it points, and is depooled; the link and the
    clone are untouched; the other hosts switch."""
    hosts = deployment.fleet.hosts[40:43]
    deployment.group("three", hosts)
    _short(deployment)
    root = deployment.fleet.host_root(hosts[0])
    clone = root / "scap" / f"php-slot{deployment.slot}"
    clone.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(deployment.checkout, clone, symlinks=True)
    clone_head = git(clone, "rev-parse", "HEAD")
    slot = deployment.host_slot(hosts[0])
    slot.symlink_to(f"scap/php-slot{deployment.slot}")  # relative: the same folder as the host sees its disk
    new = commit_change(deployment.checkout, "index.php", "<?php echo 'release 2';\n")
    code, report, stderr, _ = _timed_sync(deployment, "--hosts", "three", "--max-failures", "1")
    assert code == 5, stderr
    broken = _host(report, hosts[0])
    assert broken["phase"] == "checkout" and not broken["ok"] and broken["depooled"]
    assert "a link sartoris did not make, to scap/php-slot" in str(broken["error"]), broken["error"]
    assert deployment.pool_changes() == [f"depool {hosts[0]}"]
    assert os.readlink(slot) == f"scap/php-slot{deployment.slot}"
    assert git(clone, "rev-parse", "HEAD") == clone_head and git(clone, "status", "--porcelain") == ""
    assert all(_on(deployment, h, new) for h in hosts[1:])


def test_status_warns_of_a_slot_link_to_a_clone_made_by_hand_at_the_release(deployment: Deployment) -> None:
    """A deployed host whose slot someone replaced by a link to a clone made by hand at the current commit is not
    current (status said it was, `sync --retry-failed` had nothing to retry, and the next sync failed the host):
    status calls it missing, with the clone's commit and the switch's reason, exit 5, and a retry takes it on,
    failing it as the switch refuses the link, which stays."""
    hosts = deployment.fleet.hosts[44:46]
    deployment.group("pair", hosts)
    _short(deployment)
    commit = _first_sync(deployment, "pair")
    clone = deployment.fleet.host_root(hosts[0]) / "scap" / f"php-slot{deployment.slot}"
    clone.parent.mkdir(parents=True, exist_ok=True)
    git(clone.parent, "clone", "--quiet", "--no-checkout", str(deployment.checkout), clone.name)
    git(clone, "checkout", "--quiet", "--detach", commit)
    slot = deployment.host_slot(hosts[0])
    slot.unlink()
    slot.symlink_to(f"scap/php-slot{deployment.slot}")
    code, status = _status(deployment, "pair")
    assert code == 5
    hand_made = status[hosts[0]]
    assert (hand_made["state"], hand_made["commit"]) == ("missing", commit), hand_made
    assert "is not managed by sartoris: a link sartoris did not make, to scap/php-slot" in str(hand_made["error"])
    assert status[hosts[1]]["state"] == "current"
    code, report, stderr, _ = _timed_sync(deployment, "--hosts", "pair", "--retry-failed", "--max-failures", "1")
    assert code == 5, stderr
    assert [h["host"] for h in report["hosts"]] == [hosts[0]]  # type: ignore[union-attr]
    assert "a link sartoris did not make" in str(_host(report, hosts[0])["error"])
    assert os.readlink(slot) == f"scap/php-slot{deployment.slot}"


# --- a private fleet: hosts that die, deploy roots that fill up or turn read-only -------------------------------


@pytest.fixture(scope="module")
def private_fleet() -> Iterator[Fleet]:
    """Twelve hosts on a net of their own: these tests kill sshd and mount over deploy roots."""
    with own_fleet(OWN_NETS, 12) as fleet:
        yield fleet


def test_a_host_whose_sshd_dies_mid_sync_fails_and_the_others_switch(private_fleet: Fleet, tmp_path: Path) -> None:
    """A host whose sshd (and its connection) dies between its fetch and its switch fails, is depooled and stays on
    its old tree; the others switch; status calls it unreachable. It fails at `connect`, not `checkout` (no command
    ran there): its fetch's connection was lost before the switch and a new one could not be opened."""
    deployment = deployment_on(private_fleet, tmp_path)
    slow, victim, other = private_fleet.hosts[0:3]
    deployment.group("trio", [slow, victim, other])
    deployment.configure(command_timeout=14, connect_timeout=CONNECT_TIMEOUT)
    old = _first_sync(deployment, "trio")
    new, process, stdout, stderr = _sync_breaking_a_host_after_its_fetch(
        deployment, "trio", slow, victim, lambda: private_fleet.kill_host(victim)
    )
    assert process.returncode == 5, stderr
    report = json.loads(stdout)
    broken = _host(report, victim)
    assert broken["phase"] == "connect" and not broken["ok"] and broken["depooled"], broken
    assert str(broken["error"]).endswith(f"; {NOT_REOPENED}: connection refused"), broken
    assert deployment.pool_changes() == [f"depool {victim}"]
    assert _on(deployment, victim, old)
    assert _on(deployment, slow, new) and _on(deployment, other, new)
    _, status = _status(deployment, "trio")
    assert status[victim]["state"] == "unreachable" and status[victim]["depooled"] is True
    assert status[slow]["state"] == status[other]["state"] == "current"


def test_a_full_deploy_root_on_a_new_host_fails_in_the_fetch_phase(private_fleet: Fleet, tmp_path: Path) -> None:
    """A first deploy to a host whose deploy root is a 12 KiB filesystem (room for an empty store, not for the
    release's objects) fails there in the fetch phase, saying the disk is full; the other hosts get the release."""
    deployment = deployment_on(private_fleet, tmp_path)
    full, other = private_fleet.hosts[3:5]
    deployment.group("pair", [full, other])
    _short(deployment)
    root = str(private_fleet.remote_root)
    in_host_namespace(private_fleet, full, "mount", "-t", "tmpfs", "-o", "size=12k", "sartoris-full", root)
    try:
        code, report, stderr, _ = _timed_sync(deployment, "--hosts", "pair", "--max-failures", "1")
        assert code == 5, stderr
        broken = _host(report, full)
        assert broken["phase"] == "fetch" and broken["depooled"]
        assert _on(deployment, other, str(report["commit"]))
        _, status = _status(deployment, "pair")
        assert status[full]["state"] == "missing" and status[full]["depooled"] is True
        assert "space" in str(broken["error"]).lower(), broken["error"]
        # nothing the failed fetch wrote is left to keep the disk full: a store made aside, partial objects
        assert _partial_files(private_fleet, full, root) == ""
    finally:
        in_host_namespace(private_fleet, full, "umount", root)


def test_a_deploy_root_that_fills_up_keeps_the_host_on_its_old_tree(private_fleet: Fleet, tmp_path: Path) -> None:
    """A host whose deploy root is full (its trees intact, no byte free) fails the fetch of the next release saying
    the disk is full, is depooled, keeps serving its old tree whole; status calls it behind."""
    deployment = deployment_on(private_fleet, tmp_path)
    full, other = private_fleet.hosts[5:7]
    deployment.group("pair", [full, other])
    _short(deployment)
    old = _first_sync(deployment, "pair")
    root = str(private_fleet.remote_root)
    on_disk = str(private_fleet.host_root(full))
    fill = (
        f"mount -t tmpfs -o size=48m sartoris-full {root} && cp -a {on_disk}/. {root}/"
        f" && {{ dd if=/dev/zero of={root}/filler bs=4k 2>/dev/null; true; }}"
    )
    in_host_namespace(private_fleet, full, "sh", "-c", fill)
    try:
        new = commit_change(deployment.checkout, "index.php", "<?php echo 'release 2';\n")
        code, report, stderr, _ = _timed_sync(deployment, "--hosts", "pair", "--max-failures", "1")
        assert code == 5, stderr
        broken = _host(report, full)
        assert broken["phase"] == "fetch" and broken["depooled"]
        assert _on(deployment, other, new)
        _, status = _status(deployment, "pair")
        assert status[full]["state"] == "behind" and status[full]["commit"] == old
        # inside the host's view: still linked to the old tree, and that tree is whole
        slot = f"php-slot{deployment.slot}"
        check = f"cd {root} && readlink {slot} && GIT_OPTIONAL_LOCKS=0 git -C {slot} status --porcelain"
        seen = subprocess.run(
            ["nsenter", "-t", str(sshd_pid(private_fleet, full)), "-m", "--", "sh", "-c", check],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        assert seen == tree_commit(deployment, old) + "\n", seen
        assert "space" in str(broken["error"]).lower(), broken["error"]
        assert _partial_files(private_fleet, full, root) == ""  # the partial pack or objects of the failed fetch
    finally:
        in_host_namespace(private_fleet, full, "umount", root)


def test_a_read_only_deploy_root_fails_the_fetch_and_keeps_the_old_tree(private_fleet: Fleet, tmp_path: Path) -> None:
    """A host whose deploy root turned read-only fails the next sync in the fetch phase with the filesystem's error,
    is depooled and keeps its old tree; the others switch; status calls it behind."""
    deployment = deployment_on(private_fleet, tmp_path)
    frozen, other = private_fleet.hosts[7:9]
    deployment.group("pair", [frozen, other])
    _short(deployment)
    old = _first_sync(deployment, "pair")
    root = str(private_fleet.remote_root)
    in_host_namespace(private_fleet, frozen, "mount", "-o", "remount,bind,ro", root)
    try:
        new = commit_change(deployment.checkout, "index.php", "<?php echo 'release 2';\n")
        code, report, stderr, _ = _timed_sync(deployment, "--hosts", "pair", "--max-failures", "1")
        assert code == 5, stderr
        broken = _host(report, frozen)
        assert broken["phase"] == "fetch" and broken["depooled"]
        assert _on(deployment, frozen, old) and _on(deployment, other, new)
        _, status = _status(deployment, "pair")
        assert status[frozen]["state"] == "behind" and status[frozen]["commit"] == old
        assert "read-only" in str(broken["error"]).lower(), broken["error"]
    finally:
        in_host_namespace(private_fleet, frozen, "mount", "-o", "remount,bind,rw", root)


def test_an_old_tree_the_prune_cannot_remove_is_said_and_the_host_still_switches(
    private_fleet: Fleet, tmp_path: Path
) -> None:
    """A tree the switch's prune cannot remove (here a read-only mount over it) was kept past keep_releases with no
    word, switch after switch. The host still switches and stays in the pool, and the run warns
    `old_trees_not_pruned` for that host, naming the tree; a host whose prune worked gets no such line."""
    deployment = deployment_on(private_fleet, tmp_path)
    stuck, other = private_fleet.hosts[3:5]
    deployment.group("pair", [stuck, other])
    deployment.configure(
        command_timeout=COMMAND_TIMEOUT, connect_timeout=CONNECT_TIMEOUT, deploy={"keep_releases": 1}
    )
    first = _first_sync(deployment, "pair")
    commit_change(deployment.checkout, "index.php", "<?php echo 'release 2';\n")
    _first_sync(deployment, "pair")
    oldest = f"{private_fleet.remote_root}/.sartoris/php-slot{deployment.slot}/trees/{first}"
    in_host_namespace(private_fleet, stuck, "sh", "-c", f"mount --bind {oldest} {oldest}")
    try:
        in_host_namespace(private_fleet, stuck, "mount", "-o", "remount,bind,ro", oldest)
        third = commit_change(deployment.checkout, "index.php", "<?php echo 'release 3';\n")
        code, report, stderr, _ = _timed_sync(deployment, "--hosts", "pair")
        assert code == 0, stderr
        assert report["counts"] == {"targeted": 2, "ok": 2, "failed": 0, "depooled": 0, "not_switched": 0}
        assert _on(deployment, stuck, third) and _on(deployment, other, third)
        assert deployment.pool_changes() == []
        said = [line for line in stderr.splitlines() if "old_trees_not_pruned" in line]
        assert len(said) == 1 and stuck in said[0] and oldest in said[0], stderr
        assert (trees(deployment, stuck) / first).is_dir() and not (trees(deployment, other) / first).exists()
    finally:
        in_host_namespace(private_fleet, stuck, "umount", oldest)


def _in_host(fleet: Fleet, address: str, script: str) -> subprocess.CompletedProcess[str]:
    """A shell script run as the host sees its disk (inside its mount namespace)."""
    return subprocess.run(
        ["nsenter", "-t", str(sshd_pid(fleet, address)), "-m", "--", "sh", "-c", script],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def _partial_files(fleet: Fleet, address: str, root: str) -> str:
    """What failed fetches left in a host's slot stores, as the host sees its disk: git's partial packs and objects
    (`tmp_*`), stores made aside (`store.git.init-<pid>`); one path a line."""
    return _in_host(fleet, address, f"find {root}/.sartoris -name 'tmp_*' -o -name '*.init-*'").stdout


def test_a_disk_that_fills_up_during_the_switch_leaves_the_host_on_its_old_tree(
    private_fleet: Fleet, tmp_path: Path
) -> None:
    """A host whose disk fills up after its fetch fails in the switch (checkout phase), saying the disk is full, and
    still serves its old tree, whole and clean, through the slot link; the others switch; status calls it behind."""
    deployment = deployment_on(private_fleet, tmp_path)
    slow, full, other = private_fleet.hosts[9:12]
    deployment.group("trio", [slow, full, other])
    deployment.configure(command_timeout=14, connect_timeout=CONNECT_TIMEOUT)
    old = _first_sync(deployment, "trio")
    slow_fetch(deployment, slow, 6)  # holds the run between the full host's fetch and its switch
    root = str(private_fleet.remote_root)
    slot = f"php-slot{deployment.slot}"
    tags = f"git --git-dir {root}/.sartoris/{slot}/store.git for-each-ref --format='%(refname)' refs/tags"
    assert (
        _in_host(
            private_fleet,
            full,
            f"mount -t tmpfs -o size=48m sartoris-full {root} && cp -a {private_fleet.host_root(full)}/. {root}/",
        ).returncode
        == 0
    )
    try:
        before = _in_host(private_fleet, full, tags).stdout
        new = commit_change(deployment.checkout, "index.php", "<?php echo 'release 2';\n")
        process = start_sartoris(
            deployment, "sync", "--slot", str(deployment.slot), "--hosts", "trio", "--max-failures", "1", "--json"
        )

        def fill_the_disk() -> None:
            _in_host(private_fleet, full, f"dd if=/dev/zero of={root}/filler bs=4k 2>/dev/null; true")
            assert process.poll() is None, "the run ended before the slow host finished fetching"

        stdout, stderr, _ = act_mid_run(
            process,
            lambda: _in_host(private_fleet, full, tags).stdout != before,
            "the full host's fetch",
            fill_the_disk,
            timeout=120,
        )
        assert process.returncode == 5, stderr
        report = json.loads(stdout)
        broken = _host(report, full)
        assert broken["phase"] in ("checkout", "submodules") and broken["depooled"]
        assert _on(deployment, slow, new) and _on(deployment, other, new)
        seen = _in_host(
            private_fleet,
            full,
            f"cd {root} && readlink {slot} && GIT_OPTIONAL_LOCKS=0 git -C {slot} status --porcelain",
        )
        assert seen.returncode == 0 and seen.stdout == tree_commit(deployment, old) + "\n", seen
        _, status = _status(deployment, "trio")
        assert status[full]["state"] == "behind" and status[full]["commit"] == old
        # git's checkout names the file it could not write and says why only on a later line: the error keeps why
        assert "space" in str(broken["error"]).lower(), broken["error"]
        # and the half-built tree is gone with the switch: the disk is not left full until the next deploy
        builds = _in_host(private_fleet, full, f"ls -d {root}/.sartoris/{slot}/trees/*.building")
        assert builds.returncode != 0 and builds.stdout == "", builds.stdout
    finally:
        _in_host(private_fleet, full, f"umount {root}")


def _family(pid: int) -> list[int]:
    """A process and all its descendants (an sshd and the sessions it forked)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    family, queue = [], [pid]
    while queue:
        current = queue.pop()
        family.append(current)
        queue += children.get(current, [])
    return family


def test_keepalives_detect_a_host_that_went_silent(private_fleet: Fleet, tmp_path: Path) -> None:
    """A host that stops answering after its fetch (frozen, its TCP connection still open) is given up by the
    keep-alives within a few intervals, long before command_timeout: it fails, is depooled, the others switch."""
    deployment = deployment_on(private_fleet, tmp_path)
    slow, silent, other = private_fleet.hosts[0], private_fleet.hosts[2], private_fleet.hosts[3]
    deployment.group("trio", [slow, silent, other])
    command_timeout = 60
    deployment.configure(command_timeout=command_timeout, connect_timeout=CONNECT_TIMEOUT)
    deployment.config.write_text(deployment.config.read_text().replace("[ssh]\n", "[ssh]\nkeepalive_interval = 1\n"))
    old = _first_sync(deployment, "trio")
    slow_fetch(deployment, slow, 6)
    new = commit_change(deployment.checkout, "index.php", "<?php echo 'release 2';\n")
    before = store_tags(deployment, silent)
    frozen: list[int] = []
    began = time.monotonic()
    process = start_sartoris(
        deployment, "sync", "--slot", str(deployment.slot), "--hosts", "trio", "--max-failures", "1", "--json"
    )

    def freeze_the_silent_host() -> None:
        time.sleep(1)
        frozen.extend(_family(sshd_pid(private_fleet, silent)))
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)

    try:
        stdout, stderr, _ = act_mid_run(
            process,
            lambda: store_tags(deployment, silent) - before != set(),
            "the silent host to fetch",
            freeze_the_silent_host,
            timeout=command_timeout + 60,
        )
    finally:
        signal_each(frozen, signal.SIGCONT)
    seconds = time.monotonic() - began
    assert process.returncode == 5, stderr
    report = json.loads(stdout)
    broken = _host(report, silent)
    assert not broken["ok"] and broken["phase"] == "connect" and broken["depooled"]  # its switch never began
    assert _on(deployment, slow, new) and _on(deployment, other, new)
    assert _on(deployment, silent, old)
    assert seconds < command_timeout, f"a silent host held the run {seconds:.0f}s (keep-alives every 1s)"
    lost, _, afterwards = str(broken["error"]).partition("; ")  # then: connecting again to switch timed out
    assert not _mentions_timeout(lost) and afterwards.startswith(NOT_REOPENED), broken["error"]
