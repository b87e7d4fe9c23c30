"""Tests for the slot's deploy lock: inside one started deploy, runs still go one at a time, and the deploy
cannot be finished or aborted under a running sync."""

from __future__ import annotations

import calendar
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from sample_repo import add_nested_submodules, add_submodule, git, make_checkout, make_upstream

from sartoris.config import Config, parse_config
from sartoris.deploy import _run_lock
from sartoris.errors import DirtyCheckoutError, LockHeldError, RefusedError
from sartoris.lifecycle import abort, finish, start
from sartoris.results import Outcome
from sartoris.state import SlotLock, current_user


@pytest.fixture
def config(tmp_path: Path) -> Config:
    text = '[deploy]\nname = "mw"\nremote_root = "/srv/mw"\npublish_url = "/srv/git/php-slot{slot}.git"\n'
    return parse_config(text, tmp_path / "sartoris.toml")


def test_a_run_alone_takes_and_releases_the_slot_lock(config: Config) -> None:
    """Outside a started deploy a run takes the slot lock itself, keeps a second run out, and releases it at the end."""
    lock = SlotLock(config.state_dir, 0)
    with _run_lock(config, 0, "sync", "", False) as started:
        assert started is None
        held = lock.holder()
        assert held is not None and held["command"] == "sync"
        with pytest.raises(LockHeldError), _run_lock(config, 0, "sync", "", False):
            pass
    assert lock.holder() is None


def test_two_runs_inside_one_started_deploy_go_one_at_a_time(config: Config) -> None:
    """Inside a started deploy a run goes in under start's lock, but a second run, finish and abort are refused until
    it ends; the deploy stays started."""
    lock = SlotLock(config.state_dir, 0)
    lock.acquire("start", "train")
    with _run_lock(config, 0, "sync", "", False) as started:
        assert started is not None and started.path == lock.path
        with pytest.raises(LockHeldError, match="sync"), _run_lock(config, 0, "rollback", "", False):
            pass
        for end in (finish, abort):
            with pytest.raises(RefusedError, match="wait for it to end"):
                end(config, 0, force=False)
    held = lock.holder()
    assert held is not None and held["command"] == "start"  # the deploy stays started for the next run
    with _run_lock(config, 0, "sync", "", False) as again:
        assert again is not None


def stale_run_lock(config: Config) -> SlotLock:
    """A run lock left by a sync that was killed (its process is gone)."""
    run_lock = SlotLock(config.state_dir, 0, run=True)
    run_lock.acquire("sync")
    run_lock.path.write_text(run_lock.path.read_text().replace('"pid": ', '"pid": 999999999, "was": '))
    return run_lock


def test_a_stale_run_lock_is_broken_by_finish(config: Config) -> None:
    """A stale run lock (its process gone) is broken by finish: a killed sync does not leave the deploy unfinishable."""
    SlotLock(config.state_dir, 0).acquire("start", "train")
    run_lock = stale_run_lock(config)
    held = run_lock.holder()
    assert held is not None and run_lock.is_stale(held)
    report = finish(config, 0, force=False)
    assert report.lock is None
    assert run_lock.holder() is None and SlotLock(config.state_dir, 0).holder() is None


def test_a_stale_run_lock_is_broken_by_the_next_start(config: Config, tmp_path: Path) -> None:
    """A stale run lock left by a killed run of an earlier deploy is broken by the next start, so the new runs go in."""
    checkout = tmp_path / "php-slot0"
    checkout.mkdir()
    identity = {f"GIT_{who}_{what}": "t@t" for who in ("AUTHOR", "COMMITTER") for what in ("NAME", "EMAIL")}
    for argv in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "one"]):
        subprocess.run(["git", "-C", str(checkout), *argv], check=True, env={**os.environ, **identity})
    run_lock = stale_run_lock(config)
    start(config, 0, "train", no_remote=True, force=False)
    assert run_lock.holder() is None
    with _run_lock(config, 0, "sync", "", False) as started:
        assert started is not None


def test_a_run_refuses_when_the_started_deploy_ends_as_it_begins(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """finish (or another operator's start) replaced the deploy lock between the run's read and its run lock."""
    lock = SlotLock(config.state_dir, 0)
    lock.acquire("start", "train")
    take = SlotLock.acquire

    def meanwhile_finished_and_restarted(self: SlotLock, command: str, *args: object, **kwargs: object) -> None:
        if self.path.name.endswith(".run.lock"):
            lock.release()
            lock.acquire("start", "next train", since="later")
        take(self, command, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(SlotLock, "acquire", meanwhile_finished_and_restarted)
    with pytest.raises(RefusedError, match="ended as this sync began"), _run_lock(config, 0, "sync", "", False):
        pass
    assert SlotLock(config.state_dir, 0, run=True).holder() is None


def _history_of_commits(checkout: Path, count: int) -> list[str]:
    """A repository at `checkout` on branch main with `count` commits; their ids, oldest first."""
    checkout.mkdir()
    identity = {f"GIT_{who}_{what}": "t@t" for who in ("AUTHOR", "COMMITTER") for what in ("NAME", "EMAIL")}
    env = {**os.environ, **identity}
    subprocess.run(["git", "-C", str(checkout), "init", "-q", "-b", "main"], check=True, env=env)
    for n in range(count):
        commit = ["git", "-C", str(checkout), "commit", "-q", "--allow-empty", "-m", f"c{n}"]
        subprocess.run(commit, check=True, env=env)
    return _git(checkout, "rev-list", "--reverse", "HEAD").split()


def _git(checkout: Path, *argv: str) -> str:
    done = subprocess.run(["git", "-C", str(checkout), *argv], check=True, capture_output=True, text=True)
    return done.stdout.strip()


def test_abort_of_a_deploy_started_on_a_detached_head_moves_no_branch(config: Config, tmp_path: Path) -> None:
    """start found HEAD detached; the operator then checked out main. abort used to `reset --hard` main back to
    the start's commit, dropping main's newer commits; it now detaches HEAD at that commit and leaves main alone."""
    checkout = tmp_path / "php-slot0"
    commits = _history_of_commits(checkout, 3)
    _git(checkout, "checkout", "-q", "--detach", commits[0])
    start(config, 0, "train", no_remote=True, force=False)
    _git(checkout, "checkout", "-q", "main")
    abort(config, 0, force=False)
    assert _git(checkout, "rev-parse", "main") == commits[2]
    assert _git(checkout, "rev-parse", "HEAD") == commits[0]
    assert subprocess.run(["git", "-C", str(checkout), "symbolic-ref", "-q", "HEAD"], check=False).returncode == 1


def _submodule_added_after_start(config: Config, tmp_path: Path, *, in_place: bool = False) -> Path:
    """A slot with one extension, started, then given the submodule extensions/New (committed), as an operator
    would between `start` and `abort`; `in_place`: New was a repository cloned there first (its .git a folder).
    The checkout."""
    checkout = make_checkout(tmp_path, 0, files=2, submodules=1, submodule_files=2)
    start(config, 0, "train", no_remote=True, force=False)
    upstream = make_upstream(tmp_path / "upstream" / "New", 2, "New")
    if in_place:
        git(tmp_path, "clone", "--quiet", str(upstream), str(checkout / "extensions/New"))
    add_submodule(checkout, upstream, "New", "extensions/New")
    return checkout


def test_abort_removes_the_work_tree_of_a_submodule_the_deploy_added_when_it_holds_no_work(
    config: Config, tmp_path: Path
) -> None:
    """A submodule added after `start`, then abort: the checkout and submodules went back, but the new submodule's
    work tree stayed as an untracked folder. Holding nothing its commits do not, with its repository kept under
    .git/modules, it is removed, and abort says so."""
    checkout = _submodule_added_after_start(config, tmp_path)
    report = abort(config, 0, force=False)
    assert git(checkout, "status", "--porcelain", "--untracked-files=all", "--ignored") == ""
    assert not (checkout / "extensions/New").exists() and (checkout / ".git/modules/New").is_dir()
    assert "; removed extensions/New (the work tree of a submodule this deploy added" in report.detail


def test_abort_removes_an_added_submodule_with_a_nested_one_whole(config: Config, tmp_path: Path) -> None:
    """A submodule added after `start` with its own submodule initialised in it: both hold nothing their commits do
    not and keep their repositories under .git/modules, so abort removes the outer work tree, the nested one with
    it."""
    checkout = make_checkout(tmp_path, 0, files=2, submodules=1, submodule_files=2)
    start(config, 0, "train", no_remote=True, force=False)
    skin, _ = add_nested_submodules(checkout, tmp_path / "upstream")
    report = abort(config, 0, force=False)
    assert not (checkout / skin).exists() and f"; removed {skin} (" in report.detail
    assert git(checkout, "status", "--porcelain", "--untracked-files=all", "--ignored") == ""


@pytest.mark.parametrize(
    ("kind", "why"),
    [
        pytest.param("untracked", "extensions/New holds work its commits do not (notes.txt", id="untracked-file"),
        pytest.param("ignored", "extensions/New holds work its commits do not (debug.log", id="ignored-file"),
        pytest.param("before", "it was there before `start`", id="made-before-start"),
        pytest.param("in_place", "it has no .git file", id="its-own-repository-inside"),
    ],
)
def test_abort_keeps_the_work_tree_of_an_added_submodule_that_may_hold_work_and_says_why(
    config: Config, tmp_path: Path, kind: str, why: str
) -> None:
    """The work tree of a submodule added after `start` that holds a file its commits do not (untracked or ignored),
    that git made before `start` (its .git file is older: it may have been an untracked folder then), or that holds
    its own repository, is left where it is: abort names it and why."""
    checkout = _submodule_added_after_start(config, tmp_path, in_place=kind == "in_place")
    new = checkout / "extensions/New"
    if kind == "untracked":
        (new / "notes.txt").write_text("mine\n")
    elif kind == "ignored":
        (checkout / ".git/modules/New/info").mkdir(exist_ok=True)
        (checkout / ".git/modules/New/info/exclude").write_text("*.log\n")
        (new / "debug.log").write_text("mine\n")
    elif kind == "before":
        os.utime(new / ".git", (time.time() - 3600, time.time() - 3600))
    files = sorted(p.relative_to(new) for p in new.rglob("*") if ".git" not in p.relative_to(new).parts)
    report = abort(config, 0, force=False)
    assert sorted(p.relative_to(new) for p in new.rglob("*") if ".git" not in p.relative_to(new).parts) == files
    left = "; left extensions/New, the work tree of a submodule this deploy added, as an untracked folder: "
    assert left + why in report.detail


def test_abort_keeps_under_a_ref_the_commits_only_the_checkout_held(config: Config, tmp_path: Path) -> None:
    """A commit made in a submodule after `start` (on a detached HEAD, as `submodule update` leaves it) and one on
    the checkout's branch: abort put both repositories back, and the commits were then in no branch or tag, left
    to the reflog (and gc) without a word. Each is now kept under refs/sartoris/aborted/, and abort names it; a
    commit some ref still reaches is not."""
    checkout = make_checkout(tmp_path, 0, files=2, submodules=1, submodule_files=2)
    start(config, 0, "train", no_remote=True, force=False)
    module = checkout / "extensions/Ext0"
    git(module, "checkout", "-q", "--detach")  # as `git submodule update` leaves it
    (module / "precious.txt").write_text("work\n")
    git(module, "add", "precious.txt")
    git(module, "commit", "-q", "-m", "precious sub commit")
    precious = git(module, "rev-parse", "HEAD")
    git(checkout, "commit", "-q", "-am", "the submodule's new commit")  # -a takes the new gitlink
    hack = git(checkout, "rev-parse", "HEAD")
    git(checkout, "branch", "keep-me", hack)  # a branch holds it: nothing to keep
    git(checkout, "commit", "-q", "--allow-empty", "-m", "a live hack, never pushed")
    live_hack = git(checkout, "rev-parse", "HEAD")
    report = abort(config, 0, force=False)
    listed = ("for-each-ref", "--format=%(objectname)", "refs/sartoris/aborted/")
    kept = {repo: git(repo, *listed) for repo in (module, checkout)}
    assert kept == {module: precious, checkout: live_hack}
    assert f"; kept submodule extensions/Ext0's commit {precious[:12]}, which no branch or tag holds" in report.detail
    assert f"; kept the checkout's commit {live_hack[:12]}" in report.detail and hack[:12] not in report.detail


def test_two_aborts_in_one_second_keep_both_commits(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kept ref was named to the second and moved by a second abort in that second: the first abort's commit,
    named as kept, was left to the reflog after all. Each kept commit gets a ref of its own, only ever created."""
    epoch = time.gmtime(0)
    monkeypatch.setattr(time, "gmtime", lambda *_: epoch)  # every abort here in one second
    checkout = make_checkout(tmp_path, 0, files=2, submodules=1, submodule_files=2)
    hacks = []
    for n in range(2):
        start(config, 0, f"train {n}", no_remote=True, force=False)
        git(checkout, "commit", "-q", "--allow-empty", "-m", f"hack {n}")
        hacks.append(git(checkout, "rev-parse", "HEAD"))
        assert f"refs/sartoris/aborted/slot0-19700101-000000-{hacks[-1][:12]}" in abort(config, 0, force=False).detail
    kept = git(checkout, "for-each-ref", "--format=%(objectname)", "refs/sartoris/aborted/").split()
    assert sorted(kept) == sorted(hacks)


def test_finish_after_the_deploys_only_sync_aborted_announces_an_abort(config: Config, tmp_path: Path) -> None:
    """The deploy's one sync aborted (too many hosts failed to fetch): finish told the finish hook nothing (no tag,
    no outcome), which the shipped notifier announced as "deploy … finished". It now passes that sync's tag and
    `aborted`, and says so."""
    from sartoris.results import HostResult, Outcome, Phase, SyncReport
    from sartoris.state import History

    commits = _history_of_commits(tmp_path / "php-slot0", 1)
    hook = tmp_path / "hooks" / "finish"
    hook.parent.mkdir()
    hook.write_text(f'#!/bin/sh\necho "$SARTORIS_TAG $SARTORIS_OUTCOME" > {tmp_path / "announced"}\n')
    hook.chmod(0o755)
    start(config, 0, "train", no_remote=True, force=False)
    tag = "mw-slot0-20261127-110000"
    failed = HostResult("mw1", False, Phase.FETCH, "connection refused")
    History(config.state_dir).record("sync", SyncReport(0, tag, commits[0], Outcome.ABORTED, (failed,)), "", 0.0)
    SlotLock(config.state_dir, 0).update(last_run=tag)  # as the aborted sync noted it
    report = finish(config, 0, force=False)
    assert "aborted" in report.detail and tag in report.detail
    assert (tmp_path / "announced").read_text().split() == [tag, "aborted"]


def test_a_run_inside_a_started_deploy_notes_its_tag_before_switching_and_when_it_ends(config: Config) -> None:
    """Before its first switch a run notes the tag it is switching to (a run that dies then leaves it, so abort
    refuses); when it ends, the tag of its last run whatever the outcome, and the synced tag unless it aborted or
    rolled back part of the fleet."""
    from sartoris.deploy import _note_switching, _note_synced
    from sartoris.results import HostResult, Outcome, Phase, SyncReport

    lock = SlotLock(config.state_dir, 0)
    lock.acquire("start", "train")
    _note_switching(lock, "t1")
    assert (lock.holder() or {}).get("switching") == "t1"
    failed = HostResult("mw1", False, Phase.CHECKOUT, "refused")
    _note_synced(lock, SyncReport(0, "t1", "c" * 40, Outcome.ABORTED, (failed,)))
    held = lock.holder() or {}
    assert (held.get("switching"), held.get("last_run"), held.get("synced")) == (None, "t1", None)
    _note_synced(lock, SyncReport(0, "t2", "c" * 40, Outcome.OK, (HostResult("mw1", True, Phase.DONE),)))
    held = lock.holder() or {}
    assert (held.get("last_run"), held.get("synced")) == ("t2", "t2")
    # a rollback of part of the fleet moved a few hosts: the deploy's release (what finish announces) stays t2
    part = SyncReport(0, "t1", "c" * 40, Outcome.OK, (HostResult("mw1", True, Phase.DONE),), sets_release=False)
    _note_synced(lock, part)
    held = lock.holder() or {}
    assert (held.get("last_run"), held.get("synced")) == ("t1", "t2")


@pytest.mark.parametrize("content", ["", "[1, 2]", '{"user": "ali'], ids=["empty", "not-an-object", "cut-short"])
def test_a_lock_file_that_cannot_be_read_is_broken_by_force_once_it_is_not_being_written(
    config: Config, content: str
) -> None:
    """A crash between the lock's creation and its write leaves an empty file; --force said it could not break a
    lock of "?@? (pid None)", and a lock holding a JSON list was "unexpected TypeError", exit 1. Such a file is
    named as unreadable; a fresh one may be being written (refused), an old one is broken by --force."""
    lock = SlotLock(config.state_dir, 0)
    lock.path.parent.mkdir(parents=True)
    lock.path.write_text(content)
    with pytest.raises(LockHeldError, match=r"cannot be read.*retry"):
        lock.acquire("sync", force=True)
    an_hour_ago = time.time() - 3600
    os.utime(lock.path, (an_hour_ago, an_hour_ago))
    with pytest.raises(LockHeldError, match=r"cannot be read.*pass --force"):
        lock.acquire("sync")
    lock.acquire("sync", force=True)
    assert (lock.holder() or {}).get("pid") == os.getpid()


def _denied_reading(monkeypatch: pytest.MonkeyPatch, lock: SlotLock) -> None:
    """Reading `lock`'s file fails as for another operator's lock under a umask of 077 (root reads any file)."""
    read = Path.read_text

    def denied(path: Path, *args: object, **kwargs: object) -> str:
        if path == lock.path:
            raise PermissionError(13, "Permission denied")
        return read(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", denied)


def test_a_lock_this_user_may_not_read_is_held_and_never_broken(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another operator's lock written under a umask of 077 could not be read, was taken for a damaged one and,
    ten seconds on, broken by --force under a live run. A lock this user may not read is held, and stays so."""
    lock = SlotLock(config.state_dir, 0)
    lock.acquire("sync")
    an_hour_ago = time.time() - 3600
    os.utime(lock.path, (an_hour_ago, an_hour_ago))
    _denied_reading(monkeypatch, lock)
    held = lock.holder() or {}
    assert lock.unreadable(held) == "Permission denied" and not lock.may_be_broken(held)
    with pytest.raises(LockHeldError):
        SlotLock(config.state_dir, 0).acquire("sync", force=True)


def test_a_lock_whose_pid_now_belongs_to_another_process_is_stale(config: Config) -> None:
    """After a reboot (or PIDs wrapping) the dead run's PID can be alive again in another process: the lock notes
    when its process started, so that process is not taken for the run."""
    lock = SlotLock(config.state_dir, 0)
    lock.acquire("sync")
    held = lock.holder() or {}
    assert held.get("pid_start") and not lock.is_stale(held)  # this very process: alive, not stale
    reused = {**held, "pid": 1}  # pid 1 lives, but did not start when this lock's process did
    assert lock.is_stale(reused)


def test_finish_announces_a_run_that_died_switching_even_after_an_earlier_sync(config: Config, tmp_path: Path) -> None:
    """t1 synced, then the run of t2 was killed mid-switch: finish announced "deployed t1" with `ok`, though some
    hosts may run t2. It now names t2 with `unknown`."""
    from sartoris.results import HostResult, Outcome, Phase, SyncReport
    from sartoris.state import History

    _history_of_commits(tmp_path / "php-slot0", 1)
    hook = tmp_path / "hooks" / "finish"
    hook.parent.mkdir()
    hook.write_text(f'#!/bin/sh\necho "$SARTORIS_TAG $SARTORIS_OUTCOME" > {tmp_path / "announced"}\n')
    hook.chmod(0o755)
    start(config, 0, "train", no_remote=True, force=False)
    history, lock = History(config.state_dir), SlotLock(config.state_dir, 0)
    history.record("sync", SyncReport(0, "t1", "1" * 40, Outcome.OK, (HostResult("mw1", True, Phase.DONE),)), "", 0)
    lock.update(synced="t1", last_run="t1")
    history.begin("sync", 0, "t2", "2" * 40, "", 1.0)
    lock.update(switching="t2")  # and then that run was killed
    report = finish(config, 0, force=False)
    assert "t2 died while switching" in report.detail
    assert (tmp_path / "announced").read_text().split() == ["t2", "unknown"]


def test_a_deploy_lock_that_cannot_be_updated_after_a_run_costs_a_warning_not_the_report(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Noting the run's tag in the started deploy's lock on a full disk raised OSError after the run: its report
    was lost and the exit was 1. The run is over and recorded; the failed note is a warning."""
    import structlog.testing

    from sartoris.deploy import _note_synced
    from sartoris.results import HostResult, Outcome, Phase, SyncReport

    lock = SlotLock(config.state_dir, 0)
    lock.acquire("start", "train")

    def full_disk(self: SlotLock, **fields: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(SlotLock, "update", full_disk)
    with structlog.testing.capture_logs() as events:
        _note_synced(lock, SyncReport(0, "t1", "1" * 40, Outcome.OK, (HostResult("mw1", True, Phase.DONE),)))
    assert [e["event"] for e in events] == ["deploy_lock_not_updated"]


def test_finish_and_abort_do_not_call_an_unreadable_deploy_lock_no_deploy(config: Config) -> None:
    """A started deploy's lock file emptied (a crash): finish and abort said "no deploy in progress", which is false;
    they now say the lock cannot be read and what to do."""
    lock = SlotLock(config.state_dir, 0)
    lock.acquire("start", "train")
    lock.path.write_text("")
    for end in (finish, abort):
        with pytest.raises(RefusedError, match="cannot be read") as refused:
            end(config, 0, force=True)
        assert "no deploy in progress" not in str(refused.value)


@pytest.mark.parametrize("why", ["empty or damaged", "Permission denied"])
def test_status_shows_an_unreadable_lock_as_unreadable_with_its_path(
    config: Config, monkeypatch: pytest.MonkeyPatch, why: str
) -> None:
    """A lock file that cannot be read showed in `status` as "locked by ?@? since None", and in its JSON as a holder
    named "?". It is shown as unreadable, why, and where the file is; the JSON names no holder (its keys are kept,
    null: keys may be added to the JSON, never taken away)."""
    from sartoris.render import status_summary
    from sartoris.results import StatusReport

    lock = SlotLock(config.state_dir, 0)
    lock.acquire("start", "train")
    if why == "Permission denied":
        _denied_reading(monkeypatch, lock)
    else:
        lock.path.write_text("")
    report = StatusReport(0, None, None, (), lock=lock.holder())
    assert f"  locked, but the lock file {lock.path} cannot be read ({why})" in status_summary(report).splitlines()
    nobody = dict.fromkeys(("user", "host", "pid", "since", "command", "message"))  # keys kept: the JSON's shape
    assert report.as_json()["lock"] == {**nobody, "unreadable": True, "why": why, "path": str(lock.path)}


def test_lock_fields_holding_control_characters_are_shown_escaped(config: Config) -> None:
    """A lock written by hand or by an old version may hold escape sequences: `status` and the refusal naming the
    holder wrote them raw to the operator's terminal (which acts on them). They are shown quoted and escaped."""
    from sartoris.render import status_summary
    from sartoris.results import StatusReport

    lock = SlotLock(config.state_dir, 0)
    lock.acquire("sync")
    hostile = {"user": "ali\x1b[2J", "host": "deploy\rX", "since": "\x9b31m", "command": "sync\x07", "pid": 1,
               "message": "go\x1b]0;owned\x07"}
    lock.path.write_text(json.dumps(hostile))
    with pytest.raises(LockHeldError) as refused:
        SlotLock(config.state_dir, 0).acquire("sync")
    shown = [str(refused.value), status_summary(StatusReport(0, None, None, (), lock=lock.holder()))]
    for text in shown:
        assert not any(c in text for c in "\x1b\r\x07\x9b"), text
    assert "locked by 'ali\\x1b[2J'@'deploy\\rX' since '\\x9b31m'" in shown[1]
    assert "(pid 1)" in shown[0] and "'go\\x1b]0;owned\\x07'" in shown[0]
    lock.release()
    lock.acquire("start", "train", synced="t1\x1b[2J", history_mark=0)  # a tag the lock names, shown by abort, finish
    with pytest.raises(RefusedError) as refused_abort:
        abort(config, 0, force=False)
    said = [str(refused_abort.value), finish(config, 0, force=False).detail]
    assert all("\x1b" not in text and "'t1\\x1b[2J'" in text for text in said), said


def test_finish_and_abort_tell_an_unreadable_lock_by_reading_it_not_by_a_question_mark(config: Config) -> None:
    """finish and abort took a lock whose command is "?" for an unreadable one, since that is what the reading
    filled in: a readable lock saying so (written by hand) was "cannot be read". SlotLock.unreadable says it now."""
    lock = SlotLock(config.state_dir, 0)
    lock.acquire("?", "by hand")
    for end in (finish, abort):
        with pytest.raises(RefusedError, match="no deploy in progress") as refused:
            end(config, 0, force=True)
        assert "cannot be read" not in str(refused.value)
    assert lock.unreadable(lock.holder()) is None


def test_an_unreadable_lock_is_never_written_back_with_a_made_up_holder(config: Config) -> None:
    """Noting a run in a started deploy's lock that could not be read wrote the reading's stand-in holder ("?")
    back into the file, which then read as held by "?". It is refused and the file left as it was."""
    lock = SlotLock(config.state_dir, 0)
    lock.acquire("start", "train")
    lock.path.write_text("")
    with pytest.raises(RefusedError, match="cannot be read"):
        lock.update(synced="t1")
    assert lock.path.read_text() == ""


def test_status_says_a_lock_whose_run_is_gone_is_stale(config: Config) -> None:
    """A standalone sync killed with its lock held showed in `status` as a live holder; only the next sync or start
    said it was stale. status now says so (and its JSON marks the lock `stale`); a live run's lock is not marked."""
    from sartoris.census import _lock_as_seen
    from sartoris.render import status_summary
    from sartoris.results import StatusReport

    lock = SlotLock(config.state_dir, 0)
    lock.acquire("sync")
    live = _lock_as_seen(lock)
    assert live is not None and "stale" not in live
    assert "stale" not in status_summary(StatusReport(0, None, None, (), lock=live))
    lock.path.write_text(lock.path.read_text().replace('"pid": ', '"pid": 999999999, "was": '))
    seen = _lock_as_seen(lock)
    assert seen is not None and StatusReport(0, None, None, (), lock=seen).as_json()["lock"]["stale"] is True
    assert "that run is gone: the lock is stale" in status_summary(StatusReport(0, None, None, (), lock=seen))
def test_abort_goes_on_after_runs_that_left_every_host_on_the_release_live_at_start(config: Config) -> None:
    """A retry inside the deploy that only finished the release live at `start` marked the deploy "synced", and
    abort refused, advising a rollback that would have taken the fleet one release back; abort now restores the
    checkout. Once a run put hosts on a new release, abort refuses and names the rollback to the live one."""
    from sartoris.results import HostResult, Outcome, Phase, SyncReport
    from sartoris.state import History

    commits = _history_of_commits(config.checkout_path(0), 2)
    history, lock = History(config.state_dir), SlotLock(config.state_dir, 0)
    done = (HostResult("mw1", True, Phase.DONE), HostResult("mw8", False, Phase.CHECKOUT, "refused", depooled=True))
    history.record("sync", SyncReport(0, "live", commits[0], Outcome.PARTIAL, done), "", 0.0)
    start(config, 0, "train", no_remote=True, force=False)
    assert (lock.holder() or {}).get("live_tag") == "live"
    retried = SyncReport(0, "live", commits[0], Outcome.OK, (HostResult("mw8", True, Phase.DONE),))
    history.record("sync", retried, "train", 1.0)
    lock.update(synced="live", last_run="live")  # as the retry noted it
    _git(config.checkout_path(0), "commit", "-q", "--allow-empty", "-m", "a hack")
    abort(config, 0, force=False)
    assert _git(config.checkout_path(0), "rev-parse", "HEAD") == commits[1] and lock.holder() is None
    start(config, 0, "train 2", no_remote=True, force=False)
    history.record("sync", SyncReport(0, "new", commits[1], Outcome.OK, (HostResult("mw1", True, Phase.DONE),)), "", 2)
    lock.update(synced="new", last_run="new")
    with pytest.raises(RefusedError, match="`sartoris rollback --to live`"):
        abort(config, 0, force=False)


def test_finish_does_not_say_deployed_of_a_release_no_host_got(config: Config) -> None:
    """The deploy's sync ended partial with its one host failed: finish said "deployed <tag>" of a release no host
    runs. It now says this deploy switched no host to it."""
    from sartoris.results import HostResult, Outcome, Phase, SyncReport
    from sartoris.state import History

    commits = _history_of_commits(config.checkout_path(0), 1)
    start(config, 0, "train", no_remote=True, force=False)
    failed = HostResult("mw8", False, Phase.CHECKOUT, "refused", depooled=True)
    History(config.state_dir).record("sync", SyncReport(0, "t1", commits[0], Outcome.PARTIAL, (failed,)), "", 1.0)
    SlotLock(config.state_dir, 0).update(synced="t1", last_run="t1")
    report = finish(config, 0, force=False)
    assert "switched no host to t1" in report.detail and "deployed" not in report.detail


def _fleet_of_eight(config: Config) -> Config:
    """`config` with [deploy] hosts mw1..mw8 (a group file beside it)."""
    (config.base_dir / "hosts").mkdir()
    (config.base_dir / "hosts" / "fleet").write_text("".join(f"mw{n}\n" for n in range(1, 9)))
    text = '[deploy]\nname = "mw"\nremote_root = "/srv/mw"\npublish_url = "/srv/git/php-slot{slot}.git"\n'
    return parse_config(text + 'hosts = ["fleet"]\n', config.path)


def test_finish_calls_a_release_synced_to_part_of_the_fleet_partial_but_not_one_a_retry_finished(
    config: Config,
) -> None:
    """[deploy] hosts are mw1..mw8. A deploy whose sync of a new tag reached mw1 alone is partial, 7 not targeted.
    A deploy whose only run retried mw8 on a tag synced before it (the others already on it, so not in the run) was
    announced the same, partial, "7 host(s) … do not run it", though all 8 did; so was a new tag of the commit the
    fleet runs, synced to one re-imaged host. Hosts the slot's runs left on the release's commit are not counted."""
    from sartoris.results import HostResult, Outcome, Phase, SyncReport
    from sartoris.state import History

    fleet = _fleet_of_eight(config)
    commits = _history_of_commits(fleet.checkout_path(0), 2)
    history = History(fleet.state_dir)
    every = tuple(HostResult(f"mw{n}", True, Phase.DONE) for n in range(1, 8))
    history.record("sync", SyncReport(0, "t0", commits[0], Outcome.PARTIAL, (*every, HostResult(
        "mw8", False, Phase.CHECKOUT, "refused", depooled=True))), "", 1.0)
    start(fleet, 0, "retry", no_remote=True, force=False)
    history.record("sync", SyncReport(0, "t0", commits[0], Outcome.OK, (HostResult("mw8", True, Phase.DONE),)), "", 1.0)
    SlotLock(fleet.state_dir, 0).update(synced="t0", last_run="t0")
    assert finish(fleet, 0, force=False).detail == "slot 0 released; deployed t0"
    start(fleet, 0, "one", no_remote=True, force=False)
    history.record("sync", SyncReport(0, "t1", commits[1], Outcome.OK, (HostResult("mw1", True, Phase.DONE),)), "", 1.0)
    SlotLock(fleet.state_dir, 0).update(synced="t1", last_run="t1")
    assert "deployed t1 to 1 host(s), part of the fleet: 7 host(s)" in finish(fleet, 0, force=False).detail
    start(fleet, 0, "re-imaged mw8", no_remote=True, force=False)  # a new tag of the commit the fleet runs
    history.record("sync", SyncReport(0, "t2", commits[0], Outcome.OK, (HostResult("mw8", True, Phase.DONE),)), "", 1.0)
    SlotLock(fleet.state_dir, 0).update(synced="t2", last_run="t2")
    said = finish(fleet, 0, force=False).detail  # mw2-mw7 run t2's commit (as t0); mw1 alone is on t1's
    assert "deployed t2 to 1 host(s), part of the fleet: 1 host(s) of [deploy] hosts were not targeted" in said


def test_finish_names_the_hosts_it_did_not_target_whose_state_is_unknown_and_calls_the_release_partial(
    config: Config, tmp_path: Path
) -> None:
    """t0 went to mw1..mw8, mw3's switch not seen to end (connection lost, no look on a new one); a deploy then
    synced t1, a new tag of t0's commit, to mw8 alone. finish counted mw3 as on the commit and announced "deployed
    t1", ok, while whether mw3 runs it is unknown: it is now partial (history and hook), naming mw3."""
    from sartoris.results import NOT_SEEN_AGAIN, HostResult, Outcome, Phase, SyncReport
    from sartoris.state import History

    fleet = _fleet_of_eight(config)
    commit = _history_of_commits(fleet.checkout_path(0), 1)[0]
    history = History(fleet.state_dir)
    lost = HostResult("mw3", False, Phase.CHECKOUT, f"timed out after 30s; {NOT_SEEN_AGAIN}: refused", depooled=True)
    every = tuple(HostResult(f"mw{n}", True, Phase.DONE) for n in (1, 2, 4, 5, 6, 7, 8))
    history.record("sync", SyncReport(0, "t0", commit, Outcome.PARTIAL, (*every, lost)), "", 0)
    start(fleet, 0, "re-imaged mw8", no_remote=True, force=False)
    history.record("sync", SyncReport(0, "t1", commit, Outcome.OK, (HostResult("mw8", True, Phase.DONE),)), "", 1)
    SlotLock(fleet.state_dir, 0).update(synced="t1", last_run="t1")
    hook = tmp_path / "hooks" / "finish"
    hook.parent.mkdir()
    hook.write_text(f'#!/bin/sh\necho "$SARTORIS_OUTCOME" > {tmp_path / "announced"}\n')
    hook.chmod(0o755)
    assert finish(fleet, 0, force=False).detail == (
        "slot 0 released; deployed t1 to 1 host(s), whether mw3 (1 host(s) of [deploy] hosts it did not target) run"
        " it is unknown: a switch of theirs was not seen to end (see `sartoris status`)"
    )
    assert (tmp_path / "announced").read_text().split() == ["partial"]
    assert history.entries(0, 1)[0].outcome == "partial"


def test_finish_and_abort_read_the_runs_before_the_deploy_back_to_the_last_switch_of_each_host_only(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slot with a long history: finish and abort read every run it ever had (every host's record of each) to tell
    where the hosts were at start, though the newest run that switched every host of [deploy] hosts tells it. They
    now read back to that run (a page of rows), and say what they said."""
    from sartoris import state
    from sartoris.results import HostResult, Outcome, Phase, SyncReport
    from sartoris.state import History

    fleet = _fleet_of_eight(config)
    commits = _history_of_commits(fleet.checkout_path(0), 2)
    history = History(fleet.state_dir)
    every = tuple(HostResult(f"mw{n}", True, Phase.DONE) for n in range(1, 9))
    for n in range(100):
        history.record("sync", SyncReport(0, f"t{n}", commits[0], Outcome.OK, every), "", n)
    start(fleet, 0, "one", no_remote=True, force=False)
    history.record("sync", SyncReport(0, "new", commits[1], Outcome.OK, every[:1]), "", 100)
    SlotLock(fleet.state_dir, 0).update(synced="new", last_run="new")
    parsed: list[object] = []
    entry = state._entry
    monkeypatch.setattr(state, "_entry", lambda row: parsed.append(row) or entry(row))
    with pytest.raises(RefusedError, match=r"put hosts on new; `sartoris rollback --to t99` \(the release live"):
        abort(fleet, 0, force=False)
    assert len(parsed) < 20, len(parsed)
    parsed.clear()
    said = finish(fleet, 0, force=False).detail
    assert said.startswith("slot 0 released; deployed new to 1 host(s), part of the fleet: 7 host(s) of [deploy]")
    assert len(parsed) < 20, len(parsed)


def test_a_deploy_started_by_an_earlier_sartoris_is_judged_by_the_runs_after_its_start_row(config: Config) -> None:
    """A start lock that notes neither the slot's release nor where the history stood (taken before Sartoris noted
    them): its runs are those after its own `start` row. They were those begun after the lock's time, which is to
    the second, so a sync that ended in the second the start began (`sync -m hotfix && start`) passed for the
    deploy's, and abort named the release before it as live at start (following it reverted the hotfix). With no
    start row to go by, abort refuses, naming no rollback target."""
    from sartoris.results import HostResult, Outcome, Phase, SyncReport
    from sartoris.state import History

    commits = _history_of_commits(config.checkout_path(0), 1)
    history, lock = History(config.state_dir), SlotLock(config.state_dir, 0)
    done = (HostResult("mw1", True, Phase.DONE),)
    history.record("sync", SyncReport(0, "older", "1" * 40, Outcome.OK, done), "", time.time() - 60)
    lock.acquire("start", "train", head=commits[0], branch="main")  # as an earlier Sartoris took it
    with pytest.raises(RefusedError, match="no `start` of it") as refused:
        abort(config, 0, force=False)
    assert "--to" not in str(refused.value)
    since = float(calendar.timegm(time.strptime(str((lock.holder() or {})["since"]), "%Y-%m-%dT%H:%M:%SZ")))
    history.record("sync", SyncReport(0, "hotfix", "2" * 40, Outcome.OK, done), "hotfix", since + 0.4)  # same second
    history.record_event("start", 0, "train", {"head": commits[0]}, commit=commits[0])  # the start's own row
    abort(config, 0, force=False)  # the hotfix was live at start: the deploy moved nothing
    lock.acquire("start", "train 2", head=commits[0], branch="main")
    history.record_event("start", 0, "train 2", {"head": commits[0]}, commit=commits[0])
    history.record("sync", SyncReport(0, "new", "3" * 40, Outcome.OK, done), "", time.time())
    with pytest.raises(RefusedError, match="this deploy put hosts on new; `sartoris rollback --to hotfix`"):
        abort(config, 0, force=False)


def test_finish_announces_a_host_a_retry_of_other_hosts_left_failed(config: Config, tmp_path: Path) -> None:
    """A partial sync (mw2 and mw3 failed), then `sync --retry-failed --hosts mw2` (ok): finish announced `ok` with
    no failed host from the retry alone, while mw3 never got the release. It now announces `partial` with mw3."""
    from sartoris.results import HostResult, Outcome, Phase, SyncReport
    from sartoris.state import History

    commits = _history_of_commits(config.checkout_path(0), 1)
    hook = tmp_path / "hooks" / "finish"
    hook.parent.mkdir()
    hook.write_text(f'#!/bin/sh\necho "$SARTORIS_OUTCOME $SARTORIS_FAILED_HOSTS" > {tmp_path / "announced"}\n')
    hook.chmod(0o755)
    start(config, 0, "train", no_remote=True, force=False)
    history = History(config.state_dir)
    failed = [HostResult(h, False, Phase.CHECKOUT, "refused", depooled=True) for h in ("mw2", "mw3")]
    first = SyncReport(0, "t1", commits[0], Outcome.PARTIAL, (HostResult("mw1", True, Phase.DONE), *failed))
    history.record("sync", first, "train", 1.0)
    history.record("sync", SyncReport(0, "t1", commits[0], Outcome.OK, (HostResult("mw2", True, Phase.DONE),)), "", 2)
    SlotLock(config.state_dir, 0).update(synced="t1", last_run="t1")
    report = finish(config, 0, force=False)
    assert (tmp_path / "announced").read_text().split() == ["partial", "mw3"]
    assert "partial: 1 host(s) failed" in report.detail


@pytest.mark.parametrize(
    ("runs", "outcome"),
    [
        pytest.param([], "ok", id="nothing-synced"),
        pytest.param([("t1", Outcome.ABORTED, False)], "aborted", id="its-sync-aborted"),
        pytest.param([("t1", Outcome.PARTIAL, True)], "partial", id="partial"),
        pytest.param([("t1", None, False)], "unknown", id="its-run-died-switching"),
    ],
)
def test_log_shows_the_outcome_finish_announced(
    config: Config, runs: list[tuple[str, Outcome | None, bool]], outcome: str
) -> None:
    """`log` showed every finish as `ok`, also of a deploy whose release aborted, was partial, or whose run died
    switching (its hook got aborted, partial, unknown); the finish entry now has the outcome finish announced."""
    from sartoris.render import log_table
    from sartoris.results import HostResult, Phase, SyncReport
    from sartoris.state import History

    _history_of_commits(config.checkout_path(0), 1)
    start(config, 0, "train", no_remote=True, force=False)
    history, lock = History(config.state_dir), SlotLock(config.state_dir, 0)
    for tag, ended, one_ok in runs:
        if ended is None:  # noted before its first switch, then killed
            history.begin("sync", 0, tag, "1" * 40, "train", 1.0)
            lock.update(switching=tag)
            continue
        hosts = (HostResult("mw1", True, Phase.DONE),) if one_ok else ()
        failed = HostResult("mw2", False, Phase.FETCH, "connection refused")
        history.record("sync", SyncReport(0, tag, "1" * 40, ended, (*hosts, failed)), "train", 1.0)
        lock.update(last_run=tag, **({} if ended is Outcome.ABORTED else {"synced": tag}))
    finish(config, 0, force=False)
    entry = history.entries(0, limit=1)[0]
    assert (entry.action, entry.outcome, entry.as_json()["outcome"]) == ("finish", outcome, outcome)
    assert f"finish   {outcome}" in log_table([entry])


def test_a_start_on_a_slot_another_deploy_holds_names_that_deploy_not_its_uncommitted_edits(config: Config) -> None:
    """alice started a deploy and is editing the working copy; bob's `start` was told to "commit or stash" her
    uncommitted changes. The lock is now looked at first: bob is told alice holds the slot (and alice, starting
    again from a second terminal, that it is her own deploy); the lock and the edits stay as they were. On a free
    slot the dirty working copy still refuses the start, leaving no lock."""
    checkout = config.checkout_path(0)
    _history_of_commits(checkout, 1)
    lock = SlotLock(config.state_dir, 0)
    start(config, 0, "alice: 1.20wmf2 train", no_remote=True, force=False)
    (checkout / "wip.php").write_text("<?php // alice's work in progress\n")
    _git(checkout, "add", "wip.php")
    with pytest.raises(LockHeldError, match="your own deploy"):
        start(config, 0, "again", no_remote=True, force=True)
    lock.path.write_text(lock.path.read_text().replace(f'"user": "{current_user()}"', '"user": "alice"'))
    held = lock.path.read_text()
    with pytest.raises(LockHeldError, match=r"locked by alice@.*1\.20wmf2 train"):
        start(config, 0, "bob: security fix", no_remote=True, force=True)
    assert lock.path.read_text() == held and _git(checkout, "status", "--porcelain") == "A  wip.php"
    lock.release()  # a free slot: the dirty working copy refuses the start, which leaves no lock behind
    with pytest.raises(DirtyCheckoutError, match="commit or stash"):
        start(config, 0, "bob: security fix", no_remote=True, force=False)
    assert lock.holder() is None


def test_abort_and_finish_read_a_host_spelt_two_ways_as_one_machine(config: Config, tmp_path: Path) -> None:
    """A sync of `127.0.0.8` then a rollback of `root@127.0.0.8:22` (the same machine, the default port): abort
    refused for good; a partial sync then a retry under the other spelling: finish announced that host failed."""
    from sartoris.results import HostResult, Outcome, Phase, SyncReport
    from sartoris.state import History

    commits = _history_of_commits(config.checkout_path(0), 2)
    history, lock = History(config.state_dir), SlotLock(config.state_dir, 0)

    def on(*labels: str) -> tuple[HostResult, ...]:
        return tuple(HostResult(label, True, Phase.DONE) for label in labels)

    history.record("sync", SyncReport(0, "live", "1" * 40, Outcome.OK, on("127.0.0.8")), "", 0)
    start(config, 0, "train", no_remote=True, force=False)
    history.record("sync", SyncReport(0, "new", "2" * 40, Outcome.OK, on("127.0.0.8")), "", 1)
    history.record("rollback", SyncReport(0, "live", "1" * 40, Outcome.OK, on("root@127.0.0.8:22")), "", 2)
    lock.update(synced="live", last_run="live")
    abort(config, 0, force=False)
    assert _git(config.checkout_path(0), "rev-parse", "HEAD") == commits[1] and lock.holder() is None
    hook = tmp_path / "hooks" / "finish"
    hook.parent.mkdir()
    hook.write_text(f'#!/bin/sh\necho "$SARTORIS_OUTCOME $SARTORIS_FAILED_HOSTS" > {tmp_path / "announced"}\n')
    hook.chmod(0o755)
    start(config, 0, "train 2", no_remote=True, force=False)
    failed = HostResult("127.0.0.8", False, Phase.CHECKOUT, "refused", depooled=True)
    history.record("sync", SyncReport(0, "t2", "3" * 40, Outcome.PARTIAL, (*on("127.0.0.1"), failed)), "", 3)
    history.record("sync", SyncReport(0, "t2", "3" * 40, Outcome.OK, on("root@127.0.0.8:22")), "", 4)
    lock.update(synced="t2", last_run="t2")
    report = finish(config, 0, force=False)
    assert (tmp_path / "announced").read_text().split() == ["ok"] and report.detail == "slot 0 released; deployed t2"


def test_abort_refuses_while_a_host_whose_switch_was_not_seen_to_end_may_run_the_release(
    config: Config, tmp_path: Path
) -> None:
    """The deploy's one sync lost its host's connection mid-switch and could not look again (partial, the host
    depooled): abort restored the checkout and released the lock while that host may run the release, and finish
    said this deploy switched no host to it. abort now refuses; finish tells its hook `unknown`."""
    from sartoris.results import NOT_SEEN_AGAIN, HostResult, Outcome, Phase, SyncReport
    from sartoris.state import History

    commits = _history_of_commits(config.checkout_path(0), 2)
    history, lock = History(config.state_dir), SlotLock(config.state_dir, 0)
    history.record("sync", SyncReport(0, "live", "1" * 40, Outcome.OK, (HostResult("mw8", True, Phase.DONE),)), "", 0)
    start(config, 0, "train", no_remote=True, force=False)
    error = f"timed out after 30s; {NOT_SEEN_AGAIN}: connect timed out after 5s"
    lost = HostResult("mw8", False, Phase.CHECKOUT, error, depooled=True)
    history.record("sync", SyncReport(0, "new", "2" * 40, Outcome.PARTIAL, (lost,)), "", 1)
    lock.update(synced="new", last_run="new")
    with pytest.raises(RefusedError, match="`sartoris rollback --to live`"):
        abort(config, 0, force=False)
    assert lock.holder() is not None and _git(config.checkout_path(0), "rev-parse", "HEAD") == commits[1]
    hook = tmp_path / "hooks" / "finish"
    hook.parent.mkdir()
    hook.write_text(f'#!/bin/sh\necho "$SARTORIS_OUTCOME $SARTORIS_FAILED_HOSTS" > {tmp_path / "announced"}\n')
    hook.chmod(0o755)
    report = finish(config, 0, force=False)
    assert (tmp_path / "announced").read_text().split() == ["unknown", "mw8"]
    assert "switched no host" not in report.detail and "new may run on 1 host(s)" in report.detail


def test_abort_after_a_fleet_mixed_at_start_advises_rolling_back_only_the_hosts_it_moved(config: Config) -> None:
    """A run before the deploy was interrupted with mw1 on `live` and mw2 still on `older`; the deploy synced mw1.
    abort advised `rollback --to live` for the whole fleet, which would move mw2, never touched, onto `live`; from
    the slot's runs before the deploy it now names mw1 alone, in a hosts file, to go back to `live`."""
    from sartoris.results import HostResult, Outcome, Phase, SyncReport
    from sartoris.state import History

    _history_of_commits(config.checkout_path(0), 1)
    history = History(config.state_dir)
    on = (HostResult("mw1", True, Phase.DONE), HostResult("mw2", True, Phase.DONE))
    history.record("sync", SyncReport(0, "older", "1" * 40, Outcome.OK, on), "", 0)
    stopped = HostResult("mw2", False, Phase.FETCH, "interrupted before this host was switched", stopped=True)
    history.record("sync", SyncReport(0, "live", "2" * 40, Outcome.PARTIAL, (on[0], stopped)), "", 1)
    start(config, 0, "train", no_remote=True, force=False)
    history.record("sync", SyncReport(0, "new", "3" * 40, Outcome.OK, on[:1]), "", 2)
    SlotLock(config.state_dir, 0).update(synced="new", last_run="new")
    with pytest.raises(RefusedError, match=r"rollback --to live --hosts ./back-to-live`, ./back-to-live listing mw1 "):
        abort(config, 0, force=False)


def test_finish_counts_a_host_a_tag_of_the_same_commit_took_there_as_on_the_release(
    config: Config, tmp_path: Path
) -> None:
    """Inside one deploy, tag A went to mw1 alone, then tag B, of the same commit, to mw2..mw8. finish compared tags:
    it said mw1 was "not switched" to B (partial, 1 not switched) though mw1 runs B's commit. A host on the release's
    commit now counts as on it, whatever tag took it there: deployed B, ok."""
    from sartoris.results import HostResult, Outcome, Phase, SyncReport
    from sartoris.state import History

    fleet = _fleet_of_eight(config)
    commit = _history_of_commits(fleet.checkout_path(0), 1)[0]
    history = History(fleet.state_dir)
    hook = tmp_path / "hooks" / "finish"
    hook.parent.mkdir()
    hook.write_text(f'#!/bin/sh\necho "$SARTORIS_OUTCOME" > {tmp_path / "announced"}\n')
    hook.chmod(0o755)
    start(fleet, 0, "by hand", no_remote=True, force=False)
    history.record("sync", SyncReport(0, "A", commit, Outcome.OK, (HostResult("mw1", True, Phase.DONE),)), "", 1)
    rest = tuple(HostResult(f"mw{n}", True, Phase.DONE) for n in range(2, 9))
    history.record("sync", SyncReport(0, "B", commit, Outcome.OK, rest), "", 2)
    SlotLock(fleet.state_dir, 0).update(synced="B", last_run="B")
    assert finish(fleet, 0, force=False).detail == "slot 0 released; deployed B"
    assert (tmp_path / "announced").read_text().split() == ["ok"]
    assert history.entries(0, 1)[0].outcome == "ok"
