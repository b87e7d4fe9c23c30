"""The deploy lifecycle on the real fleet: lock, start/finish/abort, rollback, slots, hooks, pool state,
canaries, retries, dry runs and history."""

from __future__ import annotations

import json
import os
import resource
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, Deployment, unreachable_faults
from faults import refuse_checkouts
from sample_repo import commit_change, git

from sartoris.state import History

pytestmark = pytest.mark.integration


def write_hook(deployment: Deployment, name: str, body: str) -> Path:
    """An executable hook in the deploy's hooks/ folder."""
    hook = deployment.root / "hooks" / name
    hook.parent.mkdir(exist_ok=True)
    hook.write_text("#!/bin/sh\n" + body)
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    return hook


def env_recording_hook(deployment: Deployment, name: str) -> Path:
    """A hook that writes its SARTORIS_* environment as JSON to <name>.env.json beside the deploy."""
    record = deployment.root.parent / f"{name}.env.json"
    write_hook(
        deployment,
        name,
        f"exec {sys.executable} -c 'import json, os; json.dump("
        f'{{k: v for k, v in os.environ.items() if k.startswith("SARTORIS_")}}, open("{record}", "w"))\'\n',
    )
    return record


def lock_file(deployment: Deployment) -> Path:
    return deployment.root / ".sartoris" / "locks" / f"slot{deployment.slot}.lock"


def test_overlapping_syncs_one_is_refused(deployment: Deployment) -> None:
    """A sync while another sync holds the slot (its pre-sync hook still running) exits 4 and touches nothing."""
    write_hook(deployment, "pre-sync", "sleep 4\n")
    first = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "sartoris.py"),
            "--config",
            str(deployment.config),
            "sync",
            "--slot",
            str(deployment.slot),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not lock_file(deployment).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        second = deployment.sartoris("sync", "--slot", str(deployment.slot))
        assert second.code == 4
        assert "is locked by" in second.stderr and "sync" in second.stderr
    finally:
        assert first.wait(timeout=120) == 0
    assert not lock_file(deployment).exists()
    assert len(git(deployment.checkout, "tag").split()) == 1


def test_start_sync_finish_keeps_the_lock_until_finish(deployment: Deployment) -> None:
    """start takes the lock, sync runs under it (with start's message) and keeps it, a second start says the
    deploy is the operator's own, finish releases it and runs the finish hook."""
    record = env_recording_hook(deployment, "finish")
    assert deployment.sartoris("start", "--slot", str(deployment.slot), "-m", "train").code == 0
    held = json.loads(lock_file(deployment).read_text())
    assert held["command"] == "start" and held["message"] == "train" and held["head"] == deployment.head()
    sync = deployment.sartoris("sync", "--slot", str(deployment.slot), "--json")
    assert sync.code == 0, sync.stderr
    assert json.loads(lock_file(deployment).read_text())["synced"] == sync.json()["tag"]
    last = deployment.sartoris("log", "--slot", str(deployment.slot), "--json").json()["entries"][0]
    assert (last["action"], last["message"]) == ("sync", "train")  # a sync without -m says which deploy it was
    again = deployment.sartoris("start", "--slot", str(deployment.slot))
    assert again.code == 4 and "your own deploy" in again.stderr, again.stderr
    assert deployment.sartoris("finish", "--slot", str(deployment.slot)).code == 0
    assert not lock_file(deployment).exists()
    env = json.loads(record.read_text())
    assert env["SARTORIS_ACTION"] == "finish" and env["SARTORIS_TAG"] == sync.json()["tag"]
    assert deployment.sartoris("finish", "--slot", str(deployment.slot)).code == 4


def test_finish_announces_the_release_a_rollback_went_back_to(deployment: Deployment) -> None:
    """Inside a started deploy, sync T1, sync T2, then roll back to T1: finish announces T1 (what every host runs),
    not T2 (rolled back from), to the finish hook and on its own line."""
    record = env_recording_hook(deployment, "finish")
    hosts = deployment.group("three", deployment.fleet.hosts[:3])
    first = deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", hosts, "--json").json()
    assert deployment.sartoris("start", "--slot", str(deployment.slot), "--no-remote", "-m", "train").code == 0
    commit_change(deployment.checkout, "index.php", "<?php echo 'release 2';\n")
    assert deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", hosts).code == 0
    back = deployment.sartoris("rollback", "--slot", str(deployment.slot), "--hosts", hosts, "--json")
    assert back.code == 0 and back.json()["tag"] == first["tag"], back.stderr
    done = deployment.sartoris("finish", "--slot", str(deployment.slot))
    assert done.code == 0 and first["tag"] in done.stdout, done.stdout
    assert json.loads(record.read_text())["SARTORIS_TAG"] == first["tag"]


def test_start_then_abort_restores_checkout_and_submodules(deployment: Deployment) -> None:
    """abort after commits (in a submodule too) puts HEAD and submodules back where start found them."""
    head = deployment.head()
    sub_before = git(deployment.checkout / "extensions" / "Ext0", "rev-parse", "HEAD")
    assert deployment.sartoris("start", "--slot", str(deployment.slot), "--no-remote").code == 0
    commit_change(deployment.checkout, "extensions/Ext0/hack.php", "<?php // hack\n", "hack")
    assert deployment.head() != head
    run = deployment.sartoris("abort", "--slot", str(deployment.slot))
    assert run.code == 0, run.stderr
    assert deployment.head() == head
    assert git(deployment.checkout / "extensions" / "Ext0", "rev-parse", "HEAD") == sub_before
    assert git(deployment.checkout, "status", "--porcelain") == ""
    assert not lock_file(deployment).exists()


@pytest.mark.parametrize(
    "edited", ["index.php", "extensions/Ext0/includes/dir00/file0000.php"], ids=["checkout", "submodule"]
)
def test_abort_refuses_to_throw_away_uncommitted_edits(deployment: Deployment, edited: str) -> None:
    """A live hack edited after start but not committed (in the checkout or inside a submodule): abort refuses
    (exit 4, naming the file), keeps the edit and the deploy's lock; once it is committed or stashed, abort runs."""
    assert deployment.sartoris("start", "--slot", str(deployment.slot), "--no-remote").code == 0
    path = deployment.checkout / edited
    path.write_text(path.read_text() + "// the hotfix being tried\n")
    run = deployment.sartoris("abort", "--slot", str(deployment.slot))
    assert run.code == 4 and "uncommitted edits" in run.stderr and run.stderr.count("\n") == 1, run.stderr
    assert path.read_text().endswith("// the hotfix being tried\n")
    assert lock_file(deployment).exists()
    git(path.parent, "stash", "--quiet")
    assert deployment.sartoris("abort", "--slot", str(deployment.slot)).code == 0
    assert not lock_file(deployment).exists()


def test_abort_after_a_sync_is_refused(deployment: Deployment) -> None:
    """Once a started deploy has synced the slot's first release, abort refuses (exit 4), saying there is no
    earlier release to roll back to (`sartoris rollback` would refuse too); the lock stays."""
    assert deployment.sartoris("start", "--slot", str(deployment.slot), "--no-remote").code == 0
    assert deployment.sartoris("sync", "--slot", str(deployment.slot)).code == 0
    run = deployment.sartoris("abort", "--slot", str(deployment.slot))
    assert run.code == 4 and "none to roll back to" in run.stderr and "sartoris finish" in run.stderr, run.stderr
    assert lock_file(deployment).exists()


def test_abort_goes_on_while_the_deploy_moved_no_host_else_names_the_release_live_at_start(
    deployment: Deployment,
) -> None:
    """Inside a started deploy, a sync that ended partial with its one host failed (no host switched) made abort
    refuse, advising a bare rollback that would have taken the fleet one release back: abort now restores the
    checkout. After a sync that switched hosts it refuses and names `rollback --to` the release live at start;
    once that rollback ran, abort goes on."""
    slot = str(deployment.slot)
    hosts = deployment.fleet.hosts[:3]
    three, one = deployment.group("three", hosts), deployment.group("one", hosts[:1])
    live = deployment.sartoris("sync", "--slot", slot, "--hosts", three, "--json").json()
    head = deployment.head()
    assert deployment.sartoris("start", "--slot", slot, "--no-remote").code == 0
    refusing = refuse_checkouts(deployment, hosts[0])
    commit_change(deployment.checkout, "index.php", "<?php echo 'two';\n")
    partial = deployment.sartoris("sync", "--slot", slot, "--hosts", one, "--max-failures", "1", "--json")
    assert partial.code == 5 and partial.json()["counts"]["ok"] == 0, partial.stderr
    aborted = deployment.sartoris("abort", "--slot", slot)
    assert aborted.code == 0, aborted.stderr
    assert deployment.head() == head and not lock_file(deployment).exists()
    refusing.unlink()
    assert deployment.sartoris("start", "--slot", slot, "--no-remote").code == 0
    commit_change(deployment.checkout, "index.php", "<?php echo 'three';\n")
    assert deployment.sartoris("sync", "--slot", slot, "--hosts", three).code == 0
    refused = deployment.sartoris("abort", "--slot", slot)
    assert refused.code == 4 and f"`sartoris rollback --to {live['tag']}`" in refused.stderr, refused.stderr
    assert lock_file(deployment).exists()
    back = deployment.sartoris("rollback", "--slot", slot, "--hosts", three, "--to", live["tag"])
    assert back.code == 0, back.stderr
    assert all(deployment.host_head(h) == live["commit"] for h in hosts)
    aborted = deployment.sartoris("abort", "--slot", slot)
    assert aborted.code == 0, aborted.stderr
    assert deployment.head() == head and not lock_file(deployment).exists()


def test_stale_lock_is_reported_and_broken_with_force(deployment: Deployment) -> None:
    """A sync lock left by a dead process on this host is called stale; --force breaks it and the sync runs."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    lock_file(deployment).parent.mkdir(parents=True)
    lock_file(deployment).write_text(
        json.dumps(
            {
                "user": "root",
                "host": socket.gethostname(),
                "pid": dead.pid,
                "since": "2026-01-01T00:00:00Z",
                "command": "sync",
                "message": "killed",
            }
        )
    )
    refused = deployment.sartoris("sync", "--slot", str(deployment.slot))
    assert refused.code == 4 and "stale" in refused.stderr and "--force" in refused.stderr
    forced = deployment.sartoris("sync", "--slot", str(deployment.slot), "--force")
    assert forced.code == 0, forced.stderr
    assert not lock_file(deployment).exists()


def test_rollback_switches_back_without_fetching(deployment: Deployment) -> None:
    """rollback returns every host to the previous deploy; with fetch_url broken it still works: no fetch."""
    first = deployment.sartoris("sync", "--slot", str(deployment.slot), "--json").json()
    commit_change(deployment.checkout, "index.php", "<?php echo 'release 2';\n")
    second = deployment.sartoris("sync", "--slot", str(deployment.slot), "--json").json()
    assert first["commit"] != second["commit"]
    deployment.configure(deploy={"fetch_url": "/nonexistent/php-slot{slot}.git"})
    # --dry-run names the tag it would go back to, the hosts and their commands, and changes nothing
    dry = deployment.sartoris("rollback", "--slot", str(deployment.slot), "--dry-run", "--json")
    assert dry.code == 0, dry.stderr
    plan = dry.json()
    assert (plan["outcome"], plan["tag"], plan["commit"]) == ("planned", first["tag"], first["commit"])
    assert plan["counts"]["targeted"] == 50 and "sartoris_module" in plan["commands"]["switch"]
    assert all(deployment.host_head(h) == second["commit"] for h in deployment.fleet.hosts)
    said = deployment.sartoris("rollback", "--slot", str(deployment.slot), "--dry-run")
    assert said.code == 0 and f"would roll back slot {deployment.slot} to {first['tag']}" in said.stdout
    began = time.monotonic()
    run = deployment.sartoris("rollback", "--slot", str(deployment.slot), "--json")
    seconds = time.monotonic() - began
    assert run.code == 0, run.stderr
    assert run.json()["tag"] == first["tag"]
    assert all(deployment.host_head(h) == first["commit"] for h in deployment.fleet.hosts)
    print(f"rollback of {len(deployment.fleet.hosts)} hosts took {seconds:.2f}s")
    status = deployment.sartoris("status", "--slot", str(deployment.slot), "--json").json()
    assert status["tag"] == first["tag"] and status["counts"]["current"] == 50


def _two_releases_on_a_fleet_of(
    deployment: Deployment, count: int
) -> tuple[str, list[str], str, dict[str, Any], dict[str, Any]]:
    """[deploy] hosts of the fleet's first `count` hosts, a group `sub` of its first two, and two syncs of the fleet:
    the slot, the hosts, the group and each sync's JSON."""
    slot, hosts = str(deployment.slot), deployment.fleet.hosts[:count]
    deployment.configure(deploy={"hosts": [deployment.group(f"first-{count}", hosts)]})
    sub = deployment.group("sub", hosts[:2])
    first = deployment.sartoris("sync", "--slot", slot, "--json")
    commit_change(deployment.checkout, "index.php", "<?php echo 'release 2';\n")
    second = deployment.sartoris("sync", "--slot", slot, "--json")
    assert first.code == second.code == 0, first.stderr + second.stderr
    return slot, hosts, sub, first.json(), second.json()


def test_a_rollback_of_two_hosts_leaves_the_other_six_on_the_slots_release(deployment: Deployment) -> None:
    """The audit's sequence: 8 hosts synced twice, `rollback --hosts` of 2 of them. `status` called the 6 untouched
    hosts (on the newer release) behind, and `sync --retry-failed` rolled them back too. Now the slot's release stays
    the newer one: status names the 2 as behind, the retry puts only them back on it, and a bare rollback still
    goes back from it, for the whole fleet."""
    slot, hosts, sub, first, second = _two_releases_on_a_fleet_of(deployment, 8)
    back = deployment.sartoris("rollback", "--slot", slot, "--hosts", sub, "--json")
    assert back.code == 0 and back.json()["tag"] == first["tag"], back.stderr
    assert back.json()["sets_release"] is False
    said = deployment.sartoris("rollback", "--slot", slot, "--dry-run", "--json")  # still goes back from the second
    assert said.code == 0 and said.json()["tag"] == first["tag"], said.stderr
    status = deployment.sartoris("status", "--slot", slot, "--json")
    assert status.code == 5 and status.json()["tag"] == second["tag"], status.stdout
    assert {h["host"]: h["state"] for h in status.json()["hosts"]} == {
        host: "behind" if host in hosts[:2] else "current" for host in hosts
    }
    retry = deployment.sartoris("sync", "--slot", slot, "--retry-failed", "--json")
    assert retry.code == 0 and retry.json()["tag"] == second["tag"], retry.stderr
    assert sorted(h["host"] for h in retry.json()["hosts"]) == sorted(hosts[:2])  # the other six left alone
    assert all(deployment.host_head(h) == second["commit"] for h in hosts)
    fleet_back = deployment.sartoris("rollback", "--slot", slot, "--json")
    assert fleet_back.code == 0 and fleet_back.json()["sets_release"] is True, fleet_back.stderr
    assert all(deployment.host_head(h) == first["commit"] for h in hosts)
    now = deployment.sartoris("status", "--slot", slot, "--json")
    assert now.code == 0 and now.json()["tag"] == first["tag"], now.stdout


def test_a_rollback_dry_run_says_whether_it_would_change_the_slots_release(deployment: Deployment) -> None:
    """`rollback --dry-run` did not say whether the rollback would move the slot's release: with --hosts of part of
    the fleet it says the release stays (`sets_release` false, as the rollback then records); for the whole fleet,
    that the release would be the tag."""
    slot, _, sub, first, _ = _two_releases_on_a_fleet_of(deployment, 4)
    part = ("rollback", "--slot", slot, "--hosts", sub, "--to", first["tag"], "--dry-run")
    planned = deployment.sartoris(*part, "--json")
    assert planned.code == 0 and planned.json()["sets_release"] is False, planned.stderr
    said = deployment.sartoris(*part)
    assert "  part of the fleet: the slot's release would stay the one the others run" in said.stdout, said.stdout
    whole = deployment.sartoris("rollback", "--slot", slot, "--dry-run", "--json")
    assert whole.code == 0 and whole.json()["sets_release"] is True, whole.stderr
    said = deployment.sartoris("rollback", "--slot", slot, "--dry-run")
    assert f"  the slot's release would be {first['tag']} (status compares with it)" in said.stdout, said.stdout
    run = deployment.sartoris(*part[:-1], "--json")
    assert run.code == 0 and run.json()["sets_release"] is False, run.stderr


def test_a_rollback_run_again_says_its_hosts_were_already_on_the_tag(deployment: Deployment) -> None:
    """`rollback --hosts X --to T` run again, its hosts already on T, reported `ok` as if it had moved them: it now
    says how many hosts were already on the tag (each `unchanged` in the JSON), exit 0 as before."""
    slot, hosts, sub, first, _ = _two_releases_on_a_fleet_of(deployment, 4)
    back = ("rollback", "--slot", slot, "--hosts", sub, "--to", first["tag"])
    moved = deployment.sartoris(*back)
    assert moved.code == 0 and "already on" not in moved.stdout, moved.stdout + moved.stderr
    again = deployment.sartoris(*back)
    assert again.code == 0, again.stderr
    assert f"  2 hosts were already on {first['tag']}: nothing changed on them" in again.stdout.splitlines()
    third = deployment.sartoris(*back, "--json")
    assert third.code == 0 and third.json()["outcome"] == "ok", third.stderr
    assert [h["unchanged"] for h in third.json()["hosts"]] == [True, True]
    assert all(deployment.host_head(h) == first["commit"] for h in hosts[:2])


def test_rollback_dry_run_refuses_what_the_rollback_refuses_and_writes_nothing(deployment: Deployment) -> None:
    """Before any deploy, `rollback --dry-run` says there is nothing to roll back to (exit 4), as the rollback
    does, without creating the history; an unknown canary group is bad input for both (exit 2)."""
    state = deployment.root / ".sartoris"
    history = state / "history.sqlite3"
    if history.exists():
        history.unlink()
    for args in ((), ("--to", "some-tag")):
        planned = deployment.sartoris("rollback", "--slot", str(deployment.slot), "--dry-run", *args)
        assert planned.code == (2 if args else 4) and "--to" in planned.stderr, planned.stderr
    assert not history.exists()
    assert deployment.sartoris("sync", "--slot", str(deployment.slot)).code == 0
    commit_change(deployment.checkout, "index.php", "<?php echo 'two';\n")
    assert deployment.sartoris("sync", "--slot", str(deployment.slot)).code == 0
    deployment.configure(deploy={"canaries": ["no-such-group"]})
    for dry in ((), ("--dry-run",)):
        run = deployment.sartoris("rollback", "--slot", str(deployment.slot), *dry)
        assert run.code == 2 and "no-such-group" in run.stderr, (dry, run.stderr)


def test_rollback_to_a_named_tag(deployment: Deployment) -> None:
    """rollback --to TAG switches hosts to that tag; a name that is not a tag this slot deployed (unknown, a tag
    never deployed, a revision like TAG^{}) is bad input, exit 2, one line."""
    first = deployment.sartoris("sync", "--slot", str(deployment.slot), "--json").json()
    commit_change(deployment.checkout, "index.php", "<?php echo 'two';\n")
    deployment.sartoris("sync", "--slot", str(deployment.slot))
    commit_change(deployment.checkout, "index.php", "<?php echo 'three';\n")
    deployment.sartoris("sync", "--slot", str(deployment.slot))
    run = deployment.sartoris("rollback", "--slot", str(deployment.slot), "--to", first["tag"], "--json")
    assert run.code == 0, run.stderr
    assert all(deployment.host_head(h) == first["commit"] for h in deployment.fleet.hosts)
    unknown = deployment.sartoris("rollback", "--slot", str(deployment.slot), "--to", "no-such-tag")
    assert unknown.code == 2 and "--to 'no-such-tag'" in unknown.stderr and len(unknown.stderr.splitlines()) == 1
    planned = deployment.sartoris("rollback", "--slot", str(deployment.slot), "--to", "no-such-tag", "--dry-run")
    assert (planned.code, planned.stderr) == (2, unknown.stderr)  # the plan refuses what the rollback would
    git(deployment.checkout, "tag", "never-deployed")
    for bad in ("never-deployed", first["tag"] + "^{}", first["tag"] + "~1"):  # a tag, yes, but not a deployed one
        refused = deployment.sartoris("rollback", "--slot", str(deployment.slot), "--to", bad)
        assert refused.code == 2 and "switched hosts to that tag" in refused.stderr, (bad, refused.stderr)


def test_version_link_names_the_slot(deployment: Deployment) -> None:
    """`slots link` makes php-X -> php-slotN; commands run inside the link infer the slot; `slots` lists it."""
    run = deployment.sartoris("slots", "link", str(deployment.slot), "php-1.20wmf1")
    assert run.code == 0, run.stderr
    link = deployment.root / "php-1.20wmf1"
    assert os.readlink(link) == f"php-slot{deployment.slot}"
    dry = deployment.sartoris("sync", "--dry-run", "--json", cwd=link)
    assert dry.code == 0, dry.stderr
    assert dry.json()["slot"] == deployment.slot
    listing = deployment.sartoris("slots", "--json").json()
    entry = next(s for s in listing["slots"] if s["slot"] == deployment.slot)
    assert entry["links"] == ["php-1.20wmf1"]
    assert deployment.sartoris("slots", "link", str(deployment.slot), "../escape").code == 2


def test_hooks_get_their_environment_and_post_sync_the_outcome(deployment: Deployment) -> None:
    """pre-sync and post-sync run with SARTORIS_* set; post-sync knows the outcome and the failed hosts."""
    pre = env_recording_hook(deployment, "pre-sync")
    post = env_recording_hook(deployment, "post-sync")
    faulty = deployment.fleet.faults["refused"][0]
    deployment.group("with-fault", [*deployment.fleet.hosts[:3], faulty])
    run = deployment.sartoris(
        "sync", "--slot", str(deployment.slot), "--hosts", "with-fault", "--max-failures", "1", "--json"
    )
    assert run.code == 5
    tag = run.json()["tag"]
    pre_env, post_env = json.loads(pre.read_text()), json.loads(post.read_text())
    assert pre_env["SARTORIS_PHASE"] == "pre-sync" and pre_env["SARTORIS_TAG"] == tag
    assert (
        pre_env["SARTORIS_SLOT"] == str(deployment.slot) and pre_env["SARTORIS_PREFIX"] == f"php-slot{deployment.slot}"
    )
    assert post_env["SARTORIS_ACTION"] == "sync" and post_env["SARTORIS_OUTCOME"] == "partial"
    assert post_env["SARTORIS_FAILED_HOSTS"] == faulty


def test_post_sync_hears_of_an_abort(deployment: Deployment) -> None:
    """An aborted sync runs post-sync with SARTORIS_OUTCOME=aborted, never ok, and SARTORIS_FAILED_HOSTS names the
    host that failed, not the one that fetched and was only left unswitched by the abort."""
    post = env_recording_hook(deployment, "post-sync")
    faulty = deployment.fleet.faults["refused"][0]
    deployment.group("with-fault", [deployment.fleet.hosts[0], faulty])
    assert deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "with-fault").code == 3
    post_env = json.loads(post.read_text())
    assert (post_env["SARTORIS_OUTCOME"], post_env["SARTORIS_FAILED_HOSTS"]) == ("aborted", faulty)


def test_a_failing_post_sync_or_finish_hook_is_in_the_json_and_the_summary(deployment: Deployment) -> None:
    """A post-sync hook that fails (the cache purge) leaves the sync's outcome and exit code as they are, but said so
    only in a log line on stderr: a script reading --json, or cron, saw a deploy like any other. The JSON now says
    why in `hook_error` (null when the hook succeeded), and so does the summary; finish (the announcement) too."""
    slot = str(deployment.slot)
    ok = deployment.sartoris("sync", "--slot", slot, "--json")
    assert ok.code == 0 and ok.json()["hook_error"] is None, ok.stderr
    write_hook(deployment, "post-sync", "echo 'varnish purge failed' >&2\nexit 1\n")
    commit_change(deployment.checkout, "index.php", "<?php echo 'purge me';\n")
    run = deployment.sartoris("sync", "--slot", slot, "--json")
    assert run.code == 0 and run.json()["outcome"] == "ok", run.stderr
    assert run.json()["hook_error"] == "post-sync hook exited 1: varnish purge failed"
    commit_change(deployment.checkout, "index.php", "<?php echo 'purge me again';\n")
    said = deployment.sartoris("sync", "--slot", slot)
    assert said.code == 0 and "  post-sync hook exited 1: varnish purge failed" in said.stdout, said.stdout
    write_hook(deployment, "finish", "echo 'irc bot away' >&2\nexit 2\n")
    assert deployment.sartoris("start", "--slot", slot).code == 0
    finish = deployment.sartoris("finish", "--slot", slot, "--json")
    assert finish.code == 0 and finish.json()["hook_error"] == "finish hook exited 2: irc bot away", finish.stdout


def test_failing_pre_sync_hook_stops_everything(deployment: Deployment) -> None:
    """A pre-sync hook that fails: exit 4 naming the hook, no tag, no host touched, lock released."""
    write_hook(deployment, "pre-sync", "echo 'varnish said no' >&2\nexit 3\n")
    run = deployment.sartoris("sync", "--slot", str(deployment.slot))
    assert run.code == 4
    assert "pre-sync" in run.stderr and "varnish said no" in run.stderr
    assert git(deployment.checkout, "tag") == ""
    assert all(deployment.host_head(h) is None for h in deployment.fleet.hosts)
    assert not lock_file(deployment).exists()


def test_depool_pool_and_caught_up(deployment: Deployment) -> None:
    """depool records the host out (status shows it); pool --caught-up leaves a host depooled by hand out (taken out
    for maintenance, it would have gone back to the load balancer once current) and names it; pool HOST puts it
    back."""
    host = deployment.fleet.hosts[0]
    assert deployment.sartoris("depool", host, "-m", "disk swap").code == 0
    assert deployment.pool_changes() == [f"depool {host}"]
    status = deployment.sartoris("status", "--slot", str(deployment.slot), "--json").json()
    assert next(h for h in status["hosts"] if h["host"] == host)["depooled"] is True
    deployment.group("one", [host])
    assert deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "one").code == 0
    run = deployment.sartoris("pool", "--caught-up", "--slot", str(deployment.slot), "--json")
    assert run.code == 0, run.stderr
    assert run.json()["changed"] == [] and run.json()["left_out"] == [host]
    assert run.json()["recorded"] is False  # no history row: "recorded" true read as a row written
    assert deployment.pool_changes() == [f"depool {host}"]
    assert deployment.sartoris("pool", host).code == 0
    assert deployment.pool_changes() == [f"depool {host}", f"pool {host}"]
    status = deployment.sartoris("status", "--slot", str(deployment.slot), "--hosts", "one", "--json").json()
    assert status["counts"]["depooled"] == 0


def test_caught_up_looks_at_every_depooled_host_or_at_the_hosts_named(deployment: Deployment) -> None:
    """`pool --caught-up` re-pools every host a run depooled that is now current, also one outside the config's
    default `hosts` (deployed with --hosts); `--hosts G` narrows it to that group."""
    inside, outside = deployment.fleet.hosts[:2]
    deployment.group("default", [inside])
    deployment.group("both", [inside, outside])
    deployment.configure(deploy={"hosts": ["default"]})
    History(deployment.root / ".sartoris").set_depooled([inside, outside], True, "")  # as a run that failed them
    assert deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "both").code == 0
    caught_up = ("pool", "--caught-up", "--slot", str(deployment.slot), "--json")
    narrowed = deployment.sartoris(*caught_up, "--hosts", "default")
    assert narrowed.code == 0 and narrowed.json()["changed"] == [inside], narrowed.stderr
    rest = deployment.sartoris(*caught_up)
    assert rest.code == 0 and rest.json()["changed"] == [outside], rest.stderr
    status = deployment.sartoris("status", "--slot", str(deployment.slot), "--hosts", "both", "--json").json()
    assert status["counts"]["depooled"] == 0


def test_max_depooled_cap_aborts_instead_of_draining_the_pool(deployment: Deployment) -> None:
    """Four failures within max_failures but over max_depooled (2): exit 3, nobody depooled or switched."""
    faulty = unreachable_faults(deployment.fleet)
    deployment.group("mixed", [*deployment.fleet.hosts[:6], *faulty])
    deployment.configure(depool={"max_depooled": 2})
    run = deployment.sartoris(
        "sync", "--slot", str(deployment.slot), "--hosts", "mixed", "--max-failures", "4", "--json"
    )
    assert run.code == 3
    assert "max_depooled" in run.stderr
    assert deployment.pool_changes() == []
    assert all(deployment.host_head(h) is None for h in deployment.fleet.hosts[:6])


def test_a_failing_canary_stops_the_rest_of_the_fleet(deployment: Deployment) -> None:
    """Canaries go first; a canary failure aborts (exit 3) before any other host fetches or switches."""
    canary_good, canary_bad = deployment.fleet.hosts[0], deployment.fleet.faults["auth"][0]
    deployment.group("canary", [canary_good, canary_bad])
    deployment.group("all", [canary_good, canary_bad, *deployment.fleet.hosts[1:10]])
    deployment.configure(deploy={"canaries": ["canary"]}, max_failures=5)
    run = deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "all", "--json")
    assert run.code == 3, run.stderr
    report = run.json()
    assert report["outcome"] == "aborted"
    assert all(deployment.host_head(h) is None for h in deployment.fleet.hosts[1:10])
    skipped = [h for h in report["hosts"] if h["error"] == "not attempted: a canary failed"]
    assert len(skipped) == 9


def test_a_canary_that_fails_after_another_switched_is_a_partial_run(deployment: Deployment) -> None:
    """Exit 3 promises no host switched and nobody depooled. When one canary switched and the other failed its
    checkout, the run is partial (exit 5) and the rest of the fleet stays on the old tag. The failed canary is not
    depooled: it is on the old tag, as the fleet the run stopped before is, and canaries tolerate no failure."""
    canary_good, canary_bad = deployment.fleet.hosts[10:12]
    rest = deployment.fleet.hosts[12:16]
    deployment.group("canary", [canary_good, canary_bad])
    deployment.group("all", [canary_good, canary_bad, *rest])
    first = deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "all", "--json")
    assert first.code == 0, first.stderr
    old = deployment.head()
    refusing = refuse_checkouts(deployment, canary_bad)
    new = commit_change(deployment.checkout, "index.php", "<?php echo 'canary 2';\n")
    deployment.configure(deploy={"canaries": ["canary"]}, max_failures=5)
    run = deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "all", "--json")
    assert run.code == 5, run.stderr
    report = run.json()
    by_host = {h["host"]: h for h in report["hosts"]}
    assert report["outcome"] == "partial" and report["reason"] == "a canary failed"
    assert by_host[canary_good]["ok"] and deployment.host_head(canary_good) == new
    assert not by_host[canary_bad]["depooled"] and by_host[canary_bad]["phase"] == "checkout"
    assert deployment.host_head(canary_bad) == old
    assert all(by_host[h]["error"] == "not attempted: a canary failed" for h in rest)
    assert all(deployment.host_head(h) == old for h in rest)
    assert deployment.pool_changes() == []
    # The rejected release is not the slot's current one: status measures against the old, and a retry that
    # would take the rejected release to the rest of the fleet (with no canary first) is refused.
    status = deployment.sartoris("status", "--slot", str(deployment.slot), "--hosts", "all", "--json").json()
    assert status["commit"] == old
    assert {h["host"]: h["state"] for h in status["hosts"] if h["state"] != "current"} == {canary_good: "behind"}
    retry = deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "all", "--retry-failed")
    assert retry.code == 4 and "a canary failed" in retry.stderr, retry.stderr
    assert all(deployment.host_head(h) == old for h in rest)
    # Nor can `rollback --to` take it to the fleet: a tag picked from `sartoris log` is checked.
    to_rejected = deployment.sartoris("rollback", "--slot", str(deployment.slot), "--hosts", "all", "--to",
                                      report["tag"])
    assert to_rejected.code == 2 and "a canary rejected that release" in to_rejected.stderr, to_rejected.stderr
    assert all(deployment.host_head(h) == old for h in rest)
    # `rollback` puts the canaries back on the release the rest of the fleet runs.
    refusing.unlink()
    back = deployment.sartoris("rollback", "--slot", str(deployment.slot), "--hosts", "all", "--json")
    assert back.code == 0, back.stderr
    assert back.json()["commit"] == old
    assert all(deployment.host_head(h) == old for h in [canary_good, canary_bad, *rest])


def test_a_run_whose_rest_aborts_after_the_canaries_switched_is_partial_not_aborted(deployment: Deployment) -> None:
    """The canary switched, then the rest's fetch failed past max_failures: exit 3 and "aborted" promise that no
    host switched, and the canary did, so it is partial (exit 5), nobody depooled, the rest on the old tag, and
    the history counts the canary's release (status then calls the canary current, not behind); the post-sync hook
    is told which hosts were never switched."""
    canary, rest = deployment.fleet.hosts[20], deployment.fleet.hosts[21:23]
    refused = deployment.fleet.faults["refused"][0]
    deployment.group("canary", [canary])
    deployment.group("all", [canary, *rest, refused])
    assert deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "canary").code == 0
    old = deployment.head()
    deployment.configure(deploy={"canaries": ["canary"]}, max_failures=0)
    announced = env_recording_hook(deployment, "post-sync")
    new = commit_change(deployment.checkout, "index.php", "<?php echo 'canary only';\n")
    run = deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "all", "--json")
    assert run.code == 5, run.stderr
    report = run.json()
    assert report["outcome"] == "partial" and "failed to fetch" in report["reason"]
    # the announcement says the rest never got the release, not only which host failed
    env = json.loads(announced.read_text())
    assert (env["SARTORIS_OUTCOME"], env["SARTORIS_FAILED_HOSTS"]) == ("partial", refused)
    assert env["SARTORIS_NOT_SWITCHED_HOSTS"].split() == rest
    assert deployment.host_head(canary) == new and all(deployment.host_head(h) != new for h in rest)
    assert not any(h["depooled"] for h in report["hosts"]) and deployment.pool_changes() == []
    status = deployment.sartoris("status", "--slot", str(deployment.slot), "--hosts", "canary", "--json").json()
    assert status["commit"] == new and status["hosts"][0]["state"] == "current"
    assert old != new


def test_finish_after_a_canary_rejected_the_release_does_not_announce_it(deployment: Deployment) -> None:
    """Inside a started deploy, a sync that a canary rejected after another canary switched is partial (exit 5),
    but its release did not go out: abort still refuses (a canary runs it), and finish tells the finish hook
    the deploy of that tag was aborted and says on its line that it was not deployed."""
    record = env_recording_hook(deployment, "finish")
    canary_good, canary_bad = deployment.fleet.hosts[16:18]
    deployment.group("canary", [canary_good, canary_bad])
    deployment.group("all", [canary_good, canary_bad, *deployment.fleet.hosts[18:20]])
    assert deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "all").code == 0
    refuse_checkouts(deployment, canary_bad)
    deployment.configure(deploy={"canaries": ["canary"]}, max_failures=5)
    assert deployment.sartoris("start", "--slot", str(deployment.slot), "--no-remote", "-m", "train").code == 0
    commit_change(deployment.checkout, "index.php", "<?php echo 'rejected';\n")
    run = deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "all", "--json")
    assert run.code == 5 and run.json()["reason"] == "a canary failed", run.stderr
    rejected = run.json()["tag"]
    refused = deployment.sartoris("abort", "--slot", str(deployment.slot))
    assert refused.code == 4 and "sartoris rollback" in refused.stderr, refused.stderr
    done = deployment.sartoris("finish", "--slot", str(deployment.slot))
    assert done.code == 0, done.stderr
    assert f"{rejected} was rejected by a canary and not deployed" in done.stdout, done.stdout
    assert "still on 1 canary host(s)" in done.stdout
    env = json.loads(record.read_text())
    assert (env["SARTORIS_TAG"], env["SARTORIS_OUTCOME"]) == (rejected, "aborted")
    assert env["SARTORIS_FAILED_HOSTS"] == canary_bad
    assert env["SARTORIS_NOT_SWITCHED_HOSTS"].split() == deployment.fleet.hosts[18:20]  # never given the release
    assert not lock_file(deployment).exists()


def test_too_low_an_open_files_limit_is_refused_before_the_tag(deployment: Deployment) -> None:
    """A run that could not hold its connections open is refused (exit 4) before it tags or publishes."""

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (300, 300))  # 50 hosts + 50 at once + 256 do not fit

    done = subprocess.run(
        [sys.executable, str(ROOT / "sartoris.py"), "--config", str(deployment.config), "sync", "--slot",
         str(deployment.slot), "--json"],
        capture_output=True, text=True, timeout=120, check=False, preexec_fn=low_limit,
    )
    assert done.returncode == 4, done.stderr
    assert "open-files limit is 300" in done.stderr and done.stderr.count("\n") == 1
    assert git(deployment.checkout, "tag") == ""
    assert all(deployment.host_head(h) is None for h in deployment.fleet.hosts)


def test_a_concurrency_above_the_host_count_needs_no_more_open_files(deployment: Deployment) -> None:
    """The connections a run may hold are counted from the hosts it targets: `concurrency` far above the host count
    (a fleet-wide setting used on a small group) asks for no more open files than the group needs."""
    six = deployment.group("six", deployment.fleet.hosts[:6])
    deployment.configure(concurrency=1_000_000)

    def limit(files: int) -> Callable[[], None]:
        return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))

    runs = {
        command: subprocess.run(
            [sys.executable, str(ROOT / "sartoris.py"), "--config", str(deployment.config), command, "--slot",
             str(deployment.slot), "--hosts", six],
            capture_output=True, text=True, timeout=120, check=False, preexec_fn=limit(280),  # 6 + 6 + 256 fit
        )
        for command in ("status", "sync")
    }
    assert runs["status"].returncode == 5, runs["status"].stderr  # nothing deployed yet: six missing
    assert runs["sync"].returncode == 0, runs["sync"].stderr
    assert all(deployment.host_head(h) == deployment.head() for h in deployment.fleet.hosts[:6])


def test_retry_failed_converges(deployment: Deployment) -> None:
    """After a partial sync, --retry-failed re-deploys the same tag to just the stragglers; status all current."""
    hosts = deployment.fleet.hosts[:6]
    deployment.group("six", hosts)
    assert deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "six").code == 0
    refusing_hook = refuse_checkouts(deployment, hosts[0])
    commit_change(deployment.checkout, "index.php", "<?php echo 'two';\n")
    partial = deployment.sartoris(
        "sync", "--slot", str(deployment.slot), "--hosts", "six", "--max-failures", "1", "--json"
    ).json()
    assert partial["outcome"] == "partial"
    refusing_hook.unlink()
    retry = deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "six", "--retry-failed", "--json")
    assert retry.code == 0, retry.stderr
    assert retry.json()["tag"] == partial["tag"]
    assert [h["host"] for h in retry.json()["hosts"]] == [hosts[0]]
    status = deployment.sartoris("status", "--slot", str(deployment.slot), "--hosts", "six", "--json").json()
    assert status["counts"]["current"] == 6
    # Once every host is on the tag, a retry has nothing to do: it says so, exit 0, and records nothing (so `log
    # TAG` still shows the real deploy's hosts); its dry run is refused as bad usage, as it cannot know the hosts.
    again = deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "six", "--retry-failed", "--json")
    assert again.code == 0 and again.json()["hosts"] == [] and "nothing to retry" in again.json()["reason"]
    assert again.json()["recorded"] is False  # it wrote nothing, and says so
    runs = deployment.sartoris("log", partial["tag"], "--json").json()
    assert len(runs["hosts"]) == 1  # the retry's one host, then the first run of the tag with its failed host
    assert [[h["ok"] for h in run["hosts"]] for run in runs["earlier_runs"]] == [[False] + [True] * 5]
    assert deployment.sartoris("log", partial["tag"]).stdout.count(partial["tag"]) == 2  # both runs, as text too
    dry = deployment.sartoris("sync", "--slot", str(deployment.slot), "--retry-failed", "--dry-run")
    assert dry.code == 2 and "sartoris status" in dry.stderr


def test_dry_run_changes_nothing(deployment: Deployment) -> None:
    """--dry-run prints the plan (tag, hosts, commands) and creates no tag, lock, publish repo or host tree. Its
    hosts have the contract's types (ok a bool, phase a step: null was neither): each was stopped before its turn."""
    run = deployment.sartoris("sync", "--slot", str(deployment.slot), "--dry-run", "--json")
    assert run.code == 0, run.stderr
    plan = run.json()
    assert plan["outcome"] == "planned"
    assert plan["counts"] == {"targeted": 50, "ok": 0, "failed": 0, "depooled": 0, "not_switched": 50}
    assert [h["host"] for h in plan["hosts"]] == list(deployment.fleet.hosts)
    hosts = {(h["ok"], h["phase"], h["depooled"], h["stopped"]) for h in plan["hosts"]}
    assert hosts == {(False, "connect", False, True)}
    assert "git" in plan["commands"]["fetch"] and "checkout" in plan["commands"]["switch"]
    assert git(deployment.checkout, "tag") == ""
    assert not (deployment.root / "publish").exists()
    assert all(deployment.host_head(h) is None for h in deployment.fleet.hosts)


def test_log_records_deploys_with_per_host_outcomes(deployment: Deployment) -> None:
    """log lists syncs and pool changes newest first, each with its per-host outcomes (under --json); log TAG
    shows one deploy's per-host results."""
    sync = deployment.sartoris("sync", "--slot", str(deployment.slot), "-m", "for the log", "--json").json()
    deployment.sartoris("depool", deployment.fleet.hosts[1])
    entries = deployment.sartoris("log", "--json").json()["entries"]
    assert [e["action"] for e in entries[:2]] == ["depool", "sync"]
    assert entries[1]["tag"] == sync["tag"] and entries[1]["message"] == "for the log"
    assert entries[1]["counts"]["ok"] == 50
    assert [h["host"] for h in entries[1]["hosts"]] == deployment.fleet.hosts  # per-host outcomes, as contracted
    assert all(h["ok"] and h["phase"] == "done" for h in entries[1]["hosts"])
    History(deployment.root / ".sartoris").record_event("start", deployment.slot + 1, "another slot's deploy")
    here = deployment.sartoris("log", "--json", cwd=deployment.checkout, with_config=True).json()["entries"]
    assert [e["action"] for e in here[:2]] == ["depool", "sync"]  # the folder's slot, and the pool changes
    assert deployment.sartoris("log", "--json").json()["entries"][0]["slot"] == deployment.slot + 1
    one = deployment.sartoris("log", sync["tag"], "--json").json()
    assert len(one["hosts"]) == 50 and all(h["ok"] for h in one["hosts"])
    text = deployment.sartoris("log", sync["tag"]).stdout
    assert "[50] ok" in text


def test_slot_in_hooks_dir_hosts_and_the_depool_command_is_the_synced_slot(deployment: Deployment) -> None:
    """`{slot}` in hooks_dir, hosts and the depool command: the sync runs hooks/<slot>/pre-sync, targets the
    slot's own group, and depools a failed host with the slot in the command, remembered as out of that slot's
    pool only."""
    slot = deployment.slot
    faulty = deployment.fleet.faults["refused"][0]
    deployment.group(f"slot{slot}-hosts", [*deployment.fleet.hosts[:2], faulty])
    confctl = Path(__file__).resolve().parents[2] / "scripts" / "fake-confctl"
    deployment.configure(
        max_failures=1,
        deploy={"hooks_dir": "hooks/{slot}", "hosts": ["slot{slot}-hosts"]},
        depool={"command": f"{confctl} {deployment.pool_log} depool {{host}}-php{{slot}}"},
    )
    ran = deployment.root / "pre-sync-ran"
    hook = deployment.root / "hooks" / str(slot) / "pre-sync"
    hook.parent.mkdir(parents=True)
    hook.write_text(f"#!/bin/sh\necho \"$SARTORIS_SLOT\" > {ran}\n")
    hook.chmod(0o755)
    run = deployment.sartoris("sync", "--slot", str(slot), "--json")
    assert run.code == 5, run.stderr
    assert sorted(h["host"] for h in run.json()["hosts"]) == sorted([*deployment.fleet.hosts[:2], faulty])
    assert ran.read_text().strip() == str(slot)
    assert deployment.pool_changes() == [f"depool {faulty}-php{slot}"]
    other = slot + 1  # the host is out of this slot's pool only: the other slot's status does not call it depooled
    deployment.group(f"slot{other}-hosts", [faulty])
    (deployment.root / f"php-slot{other}").mkdir()  # a slot this deploy host has (status refuses one it has not)
    statuses = {
        n: deployment.sartoris("status", "--slot", str(n), "--json").json()["hosts"][-1] for n in (slot, other)
    }
    depooled = {n: (s["host"], s["depooled"]) for n, s in statuses.items()}
    assert depooled == {slot: (faulty, True), other: (faulty, False)}
