"""Tests for the slot's deploy lock: inside one started deploy, runs still go one at a time, and the deploy
cannot be finished or aborted under a running sync."""

from __future__ import annotations

from pathlib import Path

import pytest

from sartoris.config import Config, parse_config
from sartoris.deploy import _run_lock
from sartoris.errors import LockHeldError, RefusedError
from sartoris.lifecycle import abort, finish
from sartoris.state import SlotLock


@pytest.fixture
def config(tmp_path: Path) -> Config:
    text = '[deploy]\nname = "mw"\nremote_root = "/srv/mw"\npublish_url = "/srv/git/php-slot{slot}.git"\n'
    return parse_config(text, tmp_path / "sartoris.toml")


def test_a_run_alone_takes_and_releases_the_slot_lock(config: Config) -> None:
    lock = SlotLock(config.state_dir, 0)
    with _run_lock(config, 0, "sync", "", False) as started:
        assert started is None
        held = lock.holder()
        assert held is not None and held["command"] == "sync"
        with pytest.raises(LockHeldError), _run_lock(config, 0, "sync", "", False):
            pass
    assert lock.holder() is None


def test_two_runs_inside_one_started_deploy_go_one_at_a_time(config: Config) -> None:
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


def test_a_stale_run_lock_does_not_keep_the_deploy_from_finishing(config: Config) -> None:
    SlotLock(config.state_dir, 0).acquire("start", "train")
    run_lock = SlotLock(config.state_dir, 0, run=True)
    run_lock.acquire("sync")
    run_lock.path.write_text(run_lock.path.read_text().replace('"pid": ', '"pid": 999999999, "was": '))
    assert run_lock.busy() is None
    report = finish(config, 0, force=False)
    assert report.lock is None
