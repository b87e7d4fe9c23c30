"""`sartoris sync` and `sartoris status` against the real sshd fleet: the pipeline end to end."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from conftest import UNREACHABLE_KINDS, Deployment, unreachable_faults, write_config
from faults import REFUSED_CHECKOUT, refuse_checkouts, store, write_script
from sample_repo import UNREACHABLE_UPSTREAM, add_nested_submodules, commit_change, git, make_upstream

pytestmark = pytest.mark.integration


def submodule_heads(deployment: Deployment, address: str) -> dict[str, str]:
    """Each submodule's checked-out commit on a host, read from its disk."""
    slot = deployment.host_slot(address)
    heads = {}
    for name in ("Ext0", "Ext1"):
        done = subprocess.run(
            ["git", "-C", str(slot / "extensions" / name), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
        heads[name] = done.stdout.strip()
    return heads


def pinned_submodules(deployment: Deployment) -> dict[str, str]:
    return {name: git(deployment.checkout, "rev-parse", f"HEAD:extensions/{name}") for name in ("Ext0", "Ext1")}


def test_first_deploy_bootstraps_every_host_with_submodules(deployment: Deployment) -> None:
    """A first sync creates the slot on every host, checked out at the tag, submodules at the pinned commits."""
    assert all(deployment.host_head(h) is None for h in deployment.fleet.hosts)
    run = deployment.sartoris("sync", "--slot", str(deployment.slot), "-m", "first", "--json")
    assert run.code == 0, run.stderr
    report = run.json()
    assert report["outcome"] == "ok"
    assert report["commit"] == deployment.head()
    assert report["counts"] == {"targeted": 50, "ok": 50, "failed": 0, "depooled": 0, "not_switched": 0}
    assert {h["phase"] for h in report["hosts"]} == {"done"}
    pinned = pinned_submodules(deployment)
    for host in deployment.fleet.hosts:
        assert deployment.host_head(host) == report["commit"]
        assert submodule_heads(deployment, host) == pinned
    gitmodules = (deployment.host_slot(deployment.fleet.hosts[0]) / ".gitmodules").read_text()
    assert UNREACHABLE_UPSTREAM in gitmodules  # so the submodules above came from the deploy host
    tag = git(deployment.checkout, "describe", "--exact-match", "HEAD")
    assert tag == report["tag"] and tag.startswith(f"it-slot{deployment.slot}-")


def test_second_deploy_moves_every_host(deployment: Deployment) -> None:
    """A second sync after a change inside a submodule moves every host and that submodule to the new commits."""
    assert deployment.sartoris("sync", "--slot", str(deployment.slot)).code == 0
    first = deployment.head()
    second = commit_change(deployment.checkout, "extensions/Ext1/fix.php", "<?php // fixed\n", "fix")
    run = deployment.sartoris("sync", "--slot", str(deployment.slot), "--json")
    assert run.code == 0, run.stderr
    assert run.json()["commit"] == second != first
    pinned = pinned_submodules(deployment)
    for host in deployment.fleet.hosts:
        assert deployment.host_head(host) == second
        assert submodule_heads(deployment, host) == pinned
        assert (deployment.host_slot(host) / "extensions/Ext1/fix.php").read_text() == "<?php // fixed\n"


def test_a_moved_then_dropped_submodule_follows_the_release_on_every_host(deployment: Deployment) -> None:
    """`git mv` of a submodule whose commit also changed (it once put hosts' live trees at the submodule's commit),
    then `git rm` of it: each sync leaves hosts with exactly the release, the module at its new path, then gone."""
    hosts = deployment.fleet.hosts[:3]
    deployment.group("three", hosts)
    assert deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "three").code == 0
    git(deployment.checkout, "mv", "extensions/Ext1", "extensions/Moved")
    git(deployment.checkout, "commit", "--quiet", "--message", "move Ext1")
    moved = commit_change(deployment.checkout, "extensions/Moved/fix.php", "<?php // moved\n", "fix where it moved")
    run = deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "three", "--json")
    assert run.code == 0, run.stderr
    for host in hosts:
        slot = deployment.host_slot(host)
        assert deployment.host_head(host) == moved
        assert (slot / "extensions/Moved/fix.php").read_text() == "<?php // moved\n"
        assert not (slot / "extensions/Ext1").exists()
    git(deployment.checkout, "rm", "--quiet", "extensions/Moved")
    dropped = commit_change(deployment.checkout, "index.php", "<?php // without Ext1\n", "drop Ext1")
    assert deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "three").code == 0
    for host in hosts:
        assert deployment.host_head(host) == dropped
        assert sorted(p.name for p in (deployment.host_slot(host) / "extensions").iterdir()) == ["Ext0"]


def test_a_submodule_inside_a_submodule_reaches_every_host(deployment: Deployment, tmp_path: Path) -> None:
    """A nested submodule (extensions/Skin/lib/Icons, its upstream unreachable from hosts) is published with the
    release and checked out at its pinned commit on the hosts, served from the deploy host's publish target."""
    hosts = deployment.fleet.hosts[:2]
    deployment.group("pair", hosts)
    skin, icons = add_nested_submodules(deployment.checkout, tmp_path / "upstream")
    run = deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "pair", "--json")
    assert run.code == 0, run.stderr
    pinned = git(deployment.checkout / skin, "rev-parse", "HEAD:lib/Icons")
    for host in hosts:
        slot = deployment.host_slot(host)
        assert git(slot / icons, "rev-parse", "HEAD") == pinned
        assert (slot / icons / "includes/dir00/file0000.php").exists()
        assert UNREACHABLE_UPSTREAM in (slot / skin / ".gitmodules").read_text()


def test_a_release_pinning_150_submodules_reaches_every_host_whole(deployment: Deployment, tmp_path: Path) -> None:
    """A core that pins as many extensions as MediaWiki's does: its switch script is longer than one argument may
    be on Linux (128 KiB), and it still reaches the hosts (on the command's stdin) and checks every module out."""
    hosts = deployment.fleet.hosts[:3]
    deployment.group("three", hosts)
    names = [f"Many{n:03}" for n in range(148)]
    for name in names:
        upstream = make_upstream(tmp_path / "upstream" / name, 1, name)
        git(deployment.checkout, "submodule", "--quiet", "add", "--name", name, str(upstream), f"extensions/{name}")
    git(deployment.checkout, "commit", "--quiet", "--message", "148 more extensions")
    run = deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "three", "--json")
    assert run.code == 0, run.stderr
    assert run.json()["counts"]["ok"] == 3
    pinned = {line.split()[3]: line.split()[2] for line in git(deployment.checkout, "ls-tree", "HEAD", "extensions/")
              .splitlines() if line.startswith("160000")}
    assert len(pinned) == 150
    for host in hosts:
        slot = deployment.host_slot(host)
        assert deployment.host_head(host) == deployment.head()
        assert {path: git(slot / path, "rev-parse", "HEAD") for path in pinned} == pinned


def test_status_reports_every_host_current_after_a_sync(deployment: Deployment) -> None:
    """status agrees with the sync: every host current at the deployed commit, exit 0."""
    sync = deployment.sartoris("sync", "--slot", str(deployment.slot), "--json")
    assert sync.code == 0, sync.stderr
    run = deployment.sartoris("status", "--slot", str(deployment.slot), "--json")
    assert run.code == 0, run.stderr
    status = run.json()
    assert status["tag"] == sync.json()["tag"]
    assert status["counts"] == {"current": 50, "behind": 0, "missing": 0, "unreachable": 0, "depooled": 0}
    assert {h["commit"] for h in status["hosts"]} == {sync.json()["commit"]}


def test_status_tells_behind_missing_and_unreachable_apart(deployment: Deployment) -> None:
    """A host left behind, a host never deployed, a host whose slot is a hand-made directory (missing too, saying
    why), one whose slot links to a tree that is gone (missing, saying where it points: it answered) and the fault
    hosts each get their own state; exit 5."""
    fleet = deployment.fleet
    old_hosts, fresh_host, hand_made, gone = fleet.hosts[:3], fleet.hosts[3], fleet.hosts[4], fleet.hosts[5]
    deployment.host_slot(hand_made).mkdir(parents=True)
    (deployment.host_slot(hand_made) / "index.php").write_text("<?php // copied by hand\n")
    deployment.group("old", [*old_hosts, gone])
    assert deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "old").code == 0
    gone_tree = f".sartoris/{deployment.host_slot(gone).name}/trees/{'d' * 40}"
    deployment.host_slot(gone).unlink()
    deployment.host_slot(gone).symlink_to(gone_tree)
    commit_change(deployment.checkout, "index.php", "<?php echo 'release 2';\n")
    deployment.group("new", old_hosts[:2])
    assert deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "new").code == 0
    faulty = unreachable_faults(fleet)
    deployment.group("census", [*old_hosts, fresh_host, hand_made, gone, *faulty])
    run = deployment.sartoris("status", "--slot", str(deployment.slot), "--hosts", "census", "--json")
    assert run.code == 5
    states = {h["host"]: h["state"] for h in run.json()["hosts"]}
    assert states[old_hosts[0]] == states[old_hosts[1]] == "current"
    assert states[old_hosts[2]] == "behind"
    assert states[fresh_host] == states[hand_made] == states[gone] == "missing"
    errors = {h["host"]: h["error"] for h in run.json()["hosts"]}
    assert errors[fresh_host] is None and "is not managed by sartoris (a directory, not a link)" in errors[hand_made]
    assert errors[gone] == (
        f"the slot link points to {gone_tree}, which does not exist (the next sync links the slot anew)"
    )
    assert {states[h] for h in faulty} == {"unreachable"}


def _mixed_targets(deployment: Deployment) -> tuple[list[str], list[str]]:
    faulty = unreachable_faults(deployment.fleet)
    good = deployment.fleet.hosts
    deployment.group("mixed", [*good, *faulty])
    return good, faulty


def test_too_many_fetch_failures_abort_with_no_host_switched(deployment: Deployment) -> None:
    """Refused, tarpit, auth and host-key failures over the budget: exit 3, nobody switched, nobody depooled; the
    report says so host by host (`ok` means on the release: the hosts that fetched are "not switched")."""
    good, faulty = _mixed_targets(deployment)
    assert (
        deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "mixed", "--max-failures", "10").code
        == 5
    )
    before = {h: deployment.host_head(h) for h in good}
    depooled_before = len(deployment.pool_changes())
    commit_change(deployment.checkout, "index.php", "<?php echo 'must not reach anyone';\n")
    run = deployment.sartoris(
        "sync", "--slot", str(deployment.slot), "--hosts", "mixed", "--max-failures", "3", "--json"
    )
    assert run.code == 3, run.stderr
    report = run.json()
    assert report["outcome"] == "aborted"
    assert report["counts"] == {"targeted": 54, "ok": 0, "failed": 4, "depooled": 0, "not_switched": 50}
    assert {h: deployment.host_head(h) for h in good} == before
    assert len(deployment.pool_changes()) == depooled_before
    unswitched = {h["host"]: (h["phase"], h["error"]) for h in report["hosts"] if h["host"] in good}
    assert set(unswitched.values()) == {("fetch", "not switched: the run aborted")}
    failures = {h["host"]: h for h in report["hosts"] if h["host"] not in good}
    assert set(failures) == set(faulty)
    assert {h["phase"] for h in failures.values()} == {"connect"}
    by_kind = {kind: failures[deployment.fleet.faults[kind][0]]["error"] for kind in UNREACHABLE_KINDS}
    assert by_kind["refused"] == "connection refused"
    assert "timed out" in by_kind["tarpit"]
    assert "authentication failed" in by_kind["auth"]
    assert "host key not verifiable" in by_kind["hostkey"]


def test_failures_within_budget_are_depooled_once_and_the_rest_switched(deployment: Deployment) -> None:
    """Four fetch failures within a budget of 4: exit 5, each failed host depooled exactly once, the rest switched."""
    good, faulty = _mixed_targets(deployment)
    run = deployment.sartoris(
        "sync", "--slot", str(deployment.slot), "--hosts", "mixed", "--max-failures", "4", "--json"
    )
    assert run.code == 5, run.stderr
    report = run.json()
    assert report["outcome"] == "partial"
    assert report["counts"] == {"targeted": 54, "ok": 50, "failed": 4, "depooled": 4, "not_switched": 0}
    assert sorted(deployment.pool_changes()) == sorted(f"depool {h}" for h in faulty)
    assert all(deployment.host_head(h) == report["commit"] for h in good)
    assert {h["host"] for h in report["hosts"] if h["depooled"]} == set(faulty)
    status = deployment.sartoris("status", "--slot", str(deployment.slot), "--hosts", "mixed", "--json").json()
    assert status["counts"]["depooled"] == 4 and status["counts"]["current"] == 50


def test_a_host_failing_the_switch_is_depooled_and_the_others_switch(deployment: Deployment) -> None:
    """A host whose checkout fails (a hook left in its live tree refuses it) fails in the checkout phase, is
    depooled, others proceed."""
    fleet = deployment.fleet
    deployment.group("some", fleet.hosts[:5])
    assert deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "some").code == 0
    old = deployment.head()
    refuse_checkouts(deployment, fleet.hosts[0])
    commit_change(deployment.checkout, "index.php", "<?php echo 'release 2';\n")
    run = deployment.sartoris(
        "sync", "--slot", str(deployment.slot), "--hosts", "some", "--max-failures", "1", "--json"
    )
    assert run.code == 5, run.stderr
    report = run.json()
    broken = next(h for h in report["hosts"] if h["host"] == fleet.hosts[0])
    assert broken["phase"] == "checkout" and REFUSED_CHECKOUT in broken["error"] and broken["depooled"]
    assert deployment.host_head(fleet.hosts[0]) == old
    assert all(deployment.host_head(h) == report["commit"] for h in fleet.hosts[1:5])
    assert deployment.pool_changes() == [f"depool {fleet.hosts[0]}"]


def test_a_failed_depool_command_is_reported_per_host_and_in_the_summary(deployment: Deployment) -> None:
    """The depool command fails for a host that failed its fetch: exit 5 as before, but the host's JSON says why
    it is still in the pool (`depool_error`), and the summary names it, instead of a log event alone."""
    broken = deployment.fleet.faults["refused"][0]
    good = deployment.fleet.hosts[30:32]
    deployment.group("some", [*good, broken])
    deployment.configure(depool={"command": "/bin/false {host}"}, max_failures=1)
    run = deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "some", "--json")
    assert run.code == 5, run.stderr
    by_host = {h["host"]: h for h in run.json()["hosts"]}
    assert not by_host[broken]["depooled"] and "/bin/false exited 1" in by_host[broken]["depool_error"]
    assert all(by_host[h]["ok"] and by_host[h]["depool_error"] is None for h in good)
    plain = deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "some", "--retry-failed")
    assert "depool command failed, still in the pool: 1" in plain.stdout, plain.stdout


def test_human_summary_groups_failed_hosts_by_error(deployment: Deployment) -> None:
    """Without --json the summary gives the counts, then one line per distinct error with its hosts."""
    _mixed_targets(deployment)
    run = deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "mixed", "--max-failures", "4")
    assert run.code == 5
    assert "54 targeted, 50 ok, 4 failed, 4 depooled" in run.stdout
    assert "[1] connect: connection refused" in run.stdout


def test_dirty_checkout_is_refused_before_anything_is_tagged(deployment: Deployment) -> None:
    """Uncommitted changes in the slot's working copy: exit 4, no tag, no host touched."""
    (deployment.checkout / "index.php").write_text("<?php // uncommitted\n")
    run = deployment.sartoris("sync", "--slot", str(deployment.slot))
    assert run.code == 4
    assert run.stderr.strip().count("\n") == 0 and "uncommitted changes" in run.stderr
    assert git(deployment.checkout, "tag") == ""
    assert all(deployment.host_head(h) is None for h in deployment.fleet.hosts)


@pytest.mark.parametrize("dry_run", [False, True], ids=["sync", "dry-run"])
def test_sync_while_the_slot_is_locked_is_refused(deployment: Deployment, dry_run: bool) -> None:
    """A sync while another run holds the slot's lock exits 4 and touches nothing; its dry run says the same
    (it shows what the real run would do, and that run would be refused)."""
    lock = deployment.root / ".sartoris" / "locks" / f"slot{deployment.slot}.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text('{"user": "alice", "host": "deploy1", "pid": 1, "since": "now", "command": "sync"}')
    run = deployment.sartoris("sync", "--slot", str(deployment.slot), *(["--dry-run"] if dry_run else []))
    assert run.code == 4
    assert "alice@deploy1" in run.stderr and run.stderr.strip().count("\n") == 0
    assert git(deployment.checkout, "tag") == ""
    assert lock.read_text().startswith('{"user": "alice"')


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        pytest.param("badkey", (), "unknown key", id="misspelt-config-key"),
        pytest.param("badhost", (), "not a host", id="hostile-hosts-line"),
        pytest.param(None, ("--max-failures", "lots"), "--max-failures", id="bad-max-failures"),
        pytest.param(None, ("--concurrency", "0"), "--concurrency", id="bad-concurrency"),
        pytest.param(None, ("--hosts", "nosuchgroup"), "nosuchgroup", id="unknown-group"),
        pytest.param(None, ("--slot", "9999"), "no such slot", id="unknown-slot"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_runs_nothing(
    deployment: Deployment, setup: str | None, args: tuple[str, ...], message: str
) -> None:
    """Bad config, hosts file or options: exit 2, one line on stderr, no traceback, no tag, no host touched."""
    if setup == "badkey":
        text = deployment.config.read_text().replace("concurrency = 100", "concurency = 100")
        deployment.config.write_text(text)
    if setup == "badhost":
        marker = deployment.root / "pwned"
        deployment.group("fleet", [deployment.fleet.hosts[0], f"host; touch {marker}"])
    slot = () if "--slot" in args else ("--slot", str(deployment.slot))  # given twice is bad usage of its own
    run = deployment.sartoris("sync", *slot, *args)
    assert run.code == 2
    assert run.stderr.count("\n") == 1 and message in run.stderr and "Traceback" not in run.stderr
    assert git(deployment.checkout, "tag") == ""
    assert deployment.host_head(deployment.fleet.hosts[0]) is None
    assert not (deployment.root / "pwned").exists()


def test_unreachable_publish_target_reaches_no_host(deployment: Deployment) -> None:
    """A publish_url that rejects the push: exit 4, the tag is removed again, no host asked to fetch."""
    text = deployment.config.read_text().replace(
        'publish_url = "publish/php-slot{slot}.git"', 'publish_url = "ssh://nobody@127.0.0.1:1/nowhere.git"'
    )
    deployment.config.write_text(text)
    run = deployment.sartoris("sync", "--slot", str(deployment.slot))
    assert run.code == 4, run.stderr
    assert "push to" in run.stderr
    assert git(deployment.checkout, "tag") == ""
    assert all(deployment.host_head(h) is None for h in deployment.fleet.hosts)


def test_a_publish_server_that_never_answers_fails_within_the_connect_timeout(deployment: Deployment) -> None:
    """A publish_url over ssh whose server accepts the connection and never speaks: the push gives up after
    connect_timeout (ssh's ConnectTimeout, banner included), not after command_timeout; exit 4, no tag left."""
    silent = deployment.fleet.faults["tarpit"][0]
    deployment.configure(connect_timeout=2, command_timeout=90)
    text = deployment.config.read_text().replace(
        'publish_url = "publish/php-slot{slot}.git"',
        f'publish_url = "ssh://nobody@{silent}:{deployment.fleet.port}/nowhere.git"',
    )
    deployment.config.write_text(text)
    began = time.monotonic()
    run = deployment.sartoris("sync", "--slot", str(deployment.slot))
    assert run.code == 4 and "push to" in run.stderr, run.stderr
    assert time.monotonic() - began < 30, "the push waited for command_timeout, not connect_timeout"
    assert git(deployment.checkout, "tag") == ""


def test_config_written_for_another_fanout_still_syncs(deployment: Deployment) -> None:
    """A low concurrency and fetch_concurrency still reaches every host (bounded, not stalled)."""
    write_config(deployment.root, deployment.fleet, deployment.pool_log, concurrency=3, fetch_concurrency=1)
    run = deployment.sartoris("sync", "--slot", str(deployment.slot), "--json")
    assert run.code == 0, run.stderr
    assert run.json()["counts"]["ok"] == 50


def test_fetch_concurrency_caps_fetches_at_once_while_connections_run_wider(
    deployment: Deployment, tmp_path: Path
) -> None:
    """With concurrency 6 and fetch_concurrency 2, the hosts' fetches (each held 1 s by a hook in its store,
    logging when it starts and ends) never overlap more than 2 at a time, and do reach 2 (the cap, not a queue)."""
    hosts = deployment.fleet.hosts[44:50]
    deployment.group("six", hosts)
    assert deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "six").code == 0
    log = tmp_path / "fetches.log"
    for host in hosts:
        write_script(
            store(deployment, host) / "hooks" / "reference-transaction",
            f'cat >/dev/null\n[ "$1" = prepared ] || exit 0\necho "+ $(date +%s.%N)" >> {log}\n'
            f'sleep 1\necho "- $(date +%s.%N)" >> {log}\n',
        )
    deployment.configure(concurrency=6, fetch_concurrency=2)
    commit_change(deployment.checkout, "index.php", "<?php echo 'capped';\n")
    run = deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "six", "--json")
    assert run.code == 0, run.stderr
    lines = (line.split() for line in log.read_text().splitlines())
    events = sorted((float(stamp), sign == "+", sign) for sign, stamp in lines)  # at a tie, an end comes first
    assert [sign for _, _, sign in events].count("+") == 6
    running, peak = 0, 0
    for _, _, sign in events:
        running += 1 if sign == "+" else -1
        peak = max(peak, running)
    assert peak == 2
