"""Tests for the slot's deploy lock: inside one started deploy, runs still go one at a time, and the deploy
cannot be finished or aborted under a running sync."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from sartoris.config import Config, parse_config
from sartoris.deploy import _run_lock
from sartoris.errors import LockHeldError, RefusedError
from sartoris.lifecycle import abort, finish, start
from sartoris.state import SlotLock


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
