"""Tests for the deploy history's listing: one slot's view keeps the fleet-wide pool changes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from sartoris.state import History


def test_one_slots_history_keeps_pool_changes_and_drops_other_slots(tmp_path: Path) -> None:
    """One slot's history keeps the fleet-wide pool changes (they belong to no slot) and drops other slots' events."""
    history = History(tmp_path)
    history.record_event("start", 0, "train 0")
    history.record_event("start", 1, "train 1")
    history.record_event("depool", None, "by hand")
    history.record_event("finish", 1, "train 1")
    assert [(e.action, e.slot) for e in history.entries(1)] == [("finish", 1), ("depool", None), ("start", 1)]
    assert len(history.entries()) == 4
    assert [e.action for e in history.entries(0, limit=1)] == ["depool"]


def test_a_pool_change_in_the_log_names_its_hosts(tmp_path: Path) -> None:
    """`log --json` gave a depool `"hosts": []` and the plain log no name: an audit could not answer "who
    depooled mw1017, and when?". Its hosts are now listed, the ones the command failed for with the error."""
    from sartoris.pool import PoolReport
    from sartoris.render import log_table

    history = History(tmp_path)
    report = PoolReport("depool", ("mw1017", "mw1018"), (("mw1019", "confctl exited 1"),))
    history.record_event("depool", None, "by hand", report.as_json(), outcome="partial")
    entry = history.entries()[0]
    assert entry.as_json(with_hosts=True)["hosts"] == [
        {"host": "mw1017", "ok": True, "error": None},
        {"host": "mw1018", "ok": True, "error": None},
        {"host": "mw1019", "ok": False, "error": "confctl exited 1"},
    ]
    assert "depool   partial   mw1017, mw1018; failed: mw1019  by hand" in log_table([entry])


def test_log_rows_line_their_columns_up_with_and_without_a_slot() -> None:
    """A pool change belongs to no slot, and its row lacked the `slot N` column, so its action and outcome stood
    under the other rows' slot; a depool that failed for its only host showed no host at all."""
    from sartoris.render import log_table
    from sartoris.state import Entry

    failed = {"changed": [], "failed": [{"host": "mw3", "error": "exit 1"}]}
    rows = log_table(
        [
            Entry(2, None, "depool", "", "", "partial", "", "ops", 0.0, 1.0, failed),
            Entry(1, 0, "sync", "app-slot0-1", "c" * 40, "ok", "", "ops", 0.0, 1.0, {}),
        ]
    ).splitlines()
    assert rows[0].index("depool") == rows[1].index("sync") and rows[0].index("partial") == rows[1].index("ok")
    assert rows[0].endswith("partial   failed: mw3")


def test_a_partial_run_that_put_no_host_on_its_release_is_not_deployed(tmp_path: Path) -> None:
    """A sync that stopped before any host got its release (its hosts failed, one within the budget depooled: a
    `partial` run) is not the slot's current release, nor a step of the rollback stack; one that switched a host is."""
    from sartoris.results import HostResult, Outcome, Phase, SyncReport

    history = History(tmp_path)
    good = SyncReport(0, "t1", "a" * 40, Outcome.OK, (HostResult("mw1", True, Phase.DONE),))
    failed = HostResult("mw1", False, Phase.CHECKOUT, "refused", depooled=True)
    stopped = HostResult("mw2", False, Phase.CHECKOUT, "not switched: 2 hosts failed", stopped=True)
    nowhere = SyncReport(0, "t2", "b" * 40, Outcome.PARTIAL, (failed, stopped))
    somewhere = SyncReport(0, "t3", "c" * 40, Outcome.PARTIAL, (HostResult("mw2", True, Phase.DONE), failed))
    history.record("sync", good, "one", 0.0)
    history.record("sync", nowhere, "two", 0.0)
    assert [r.tag for r in history.deployed(0)] == ["t1"]
    history.record("sync", somewhere, "three", 0.0)
    assert [r.tag for r in history.deployed(0)] == ["t3", "t1"]


def test_a_depool_by_hand_stays_by_hand_when_a_run_depools_the_host_again(tmp_path: Path) -> None:
    """`pool --caught-up` leaves hosts an operator took out; a run that fails such a host and depools it again must
    not turn it into one of the run's depools (which --caught-up would put back)."""
    history = History(tmp_path)
    history.set_depooled(["mw1"], True, "", by_hand=True)
    history.set_depooled(["mw1", "mw2"], True, "")  # a run's depool of both
    assert history.depooled_hosts("", by_hand=True) == frozenset({"mw1"})
    assert history.depooled_hosts("") == frozenset({"mw1", "mw2"})
    history.set_depooled(["mw1"], False, "")  # pooled: no longer out by hand either
    history.set_depooled(["mw1"], True, "")
    assert history.depooled_hosts("", by_hand=True) == frozenset()


def _version_1_history(folder: Path) -> None:
    """A history as Sartoris kept it before depools were told apart (schema 1), with mw1 out of the pool."""
    with closing(sqlite3.connect(folder / "history.sqlite3")) as db, db:
        db.execute("CREATE TABLE pool_state (scope TEXT NOT NULL, host TEXT NOT NULL, depooled INTEGER NOT NULL,"
                   " changed REAL NOT NULL, PRIMARY KEY (scope, host))")
        db.execute("INSERT INTO pool_state VALUES ('', 'mw1', 1, 0)")
        db.execute("PRAGMA user_version = 1")


def test_a_version_1_history_gains_the_hand_column_and_its_depools_read_as_a_runs(tmp_path: Path) -> None:
    """A history kept before depools were told apart: opened, it gains the column; its depools read as made by a run,
    which `pool --caught-up` handled as before."""
    _version_1_history(tmp_path)
    history = History(tmp_path)
    assert history.depooled_hosts("") == frozenset({"mw1"}) and history.depooled_hosts("", by_hand=True) == frozenset()


def test_a_version_1_history_this_user_may_only_read_is_read_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A monitoring account's `status` on a history it may not write: the migration failed it ("attempt to write a
    readonly database"); it reads the history as it is, and a writer migrates it later."""
    _version_1_history(tmp_path)
    connect = sqlite3.connect
    monkeypatch.setattr(
        sqlite3, "connect", lambda path, **options: connect(f"file:{path}?mode=ro", uri=True, **options)
    )
    assert History(tmp_path).depooled_hosts("") == frozenset({"mw1"})


def test_processes_opening_a_version_1_history_at_once_migrate_it_once(tmp_path: Path) -> None:
    """Two processes read version 1 and both added the column: the second failed on "duplicate column name"
    (7 of 30 trials with 6 processes). The migration now runs under the write lock, re-reading the version."""
    for trial in range(10):
        folder = tmp_path / str(trial)
        folder.mkdir()
        _version_1_history(folder)
        go = folder / "go"
        opener = (  # imported first, then all open the history at once
            "import time; from pathlib import Path; from sartoris.state import History\n"
            f"while not Path({str(go)!r}).exists(): time.sleep(0.001)\n"
            f"History(Path({str(folder)!r}))"
        )
        opening = [subprocess.Popen([sys.executable, "-c", opener], stderr=subprocess.PIPE) for _ in range(6)]
        time.sleep(0.5)
        go.touch()
        failures = [p.communicate(timeout=60)[1] for p in opening if p.wait(timeout=60) != 0]
        assert failures == [], failures


def test_a_run_noted_before_its_switch_is_replaced_by_its_record_or_stays_unfinished(tmp_path: Path) -> None:
    """A run notes itself before its first switch; its record replaces the note. A run that died in between left no
    row, so `rollback` skipped its release and went two back; its note now stays, as a release that may have
    reached hosts."""
    from sartoris.results import HostResult, Outcome, Phase, SyncReport

    history = History(tmp_path)
    done = HostResult("mw1", True, Phase.DONE)
    history.record("sync", SyncReport(0, "t1", "1" * 40, Outcome.OK, (done,)), "", 0.0)
    row = history.begin("sync", 0, "t2", "2" * 40, "", 1.0)
    history.record("sync", SyncReport(0, "t2", "2" * 40, Outcome.OK, (done,)), "", 1.0, row)
    assert [(e.tag, e.outcome) for e in history.entries(0)] == [("t2", "ok"), ("t1", "ok")]
    history.begin("sync", 0, "t3", "3" * 40, "", 2.0)  # and then the run died
    assert [r.tag for r in history.deployed(0)] == ["t3", "t2", "t1"]
    assert history.entries(0)[0].outcome == "unfinished"


def test_a_run_that_died_in_its_canary_phase_is_not_the_fleets_release(tmp_path: Path) -> None:
    """A run killed while only its canaries could switch became the slot's current release: `status` measured the
    fleet against it and `--retry-failed` took it to every host, canaries bypassed. Its note says it is in its
    canary phase, which counts as rejected, until the rest begin switching."""
    from sartoris.results import CANARY_PHASE, HostResult, Outcome, Phase, SyncReport

    history = History(tmp_path)
    history.record("sync", SyncReport(0, "t1", "1" * 40, Outcome.OK, (HostResult("mw1", True, Phase.DONE),)), "", 0)
    row = history.begin("sync", 0, "t2", "2" * 40, "", 1.0, CANARY_PHASE)  # then killed
    assert history.deployed(0)[0].rejected
    last = history.last_deployed(0)
    assert last is not None and last.tag == "t1"
    history.past_the_canaries(row)  # had it lived on: the rest begin switching
    last = history.last_deployed(0)
    assert last is not None and last.tag == "t2"


def _ran(history: History, action: str, tag: str, sets_release: bool = True) -> None:
    """Write down a run of `tag` that switched its one host; `sets_release` false for a rollback of part of the
    hosts, which left the slot's release to the rest."""
    from sartoris.results import HostResult, Outcome, Phase, SyncReport

    done = (HostResult("mw1", True, Phase.DONE),)
    report = SyncReport(0, tag, tag[-1] * 40, Outcome.OK, done, sets_release=sets_release)
    history.record(action, report, "", 0.0)


def test_a_rollback_of_part_of_the_fleet_leaves_the_slots_release_to_the_rest(tmp_path: Path) -> None:
    """`rollback --hosts` of 2 of 8 hosts made its release the slot's: `status` called the 6 untouched hosts, on the
    newer release, behind, and `--retry-failed` rolled them all back. The slot's release stays the one the rest run,
    and a bare `rollback` still goes back from it; a rollback of the whole fleet changes it, as before."""
    from sartoris.policy import rollback_target

    history = History(tmp_path)
    _ran(history, "sync", "t7")
    _ran(history, "sync", "t8")
    _ran(history, "rollback", "t7", sets_release=False)
    last = history.last_deployed(0)
    assert last is not None and last.tag == "t8"
    assert rollback_target(history.deployed(0)) == "t7"
    newest = history.deployed(0)[0]  # it still reached hosts: `--to` and abort read it
    assert (newest.tag, newest.sets_release) == ("t7", False)
    _ran(history, "rollback", "t7")
    last = history.last_deployed(0)
    assert last is not None and last.tag == "t7"


def test_a_sync_of_part_of_the_fleet_still_sets_the_slots_release(tmp_path: Path) -> None:
    """`sync --hosts` ships the newest code: the hosts it left out are behind it, so it stays the slot's release."""
    history = History(tmp_path)
    _ran(history, "sync", "t7")
    _ran(history, "sync", "t8", sets_release=False)
    last = history.last_deployed(0)
    assert last is not None and last.tag == "t8"


def test_an_unfinished_rollback_of_part_of_the_fleet_is_not_the_slots_release(tmp_path: Path) -> None:
    """A rollback of part of the fleet that died while switching (only its note in the history) may have moved its
    own hosts, never the rest: the slot's release stays; `sets_release` is read from the note as from a record."""
    history = History(tmp_path)
    _ran(history, "sync", "t7")
    _ran(history, "sync", "t8")
    history.begin("rollback", 0, "t7", "7" * 40, "", 1.0, targets=["mw1"], sets_release=False)
    assert history.deployed(0)[0].tag == "t7"
    last = history.last_deployed(0)
    assert last is not None and last.tag == "t8"
    history.begin("rollback", 0, "t7", "7" * 40, "", 2.0, targets=["mw1", "mw2"])
    last = history.last_deployed(0)
    assert last is not None and last.tag == "t7"


def test_a_rollback_written_before_runs_noted_the_fleet_keeps_its_meaning(tmp_path: Path) -> None:
    """A rollback row from an earlier Sartoris (no `sets_release` key) made its release the slot's, and still does:
    history is read as it was written, not reinterpreted."""
    history = History(tmp_path)
    _ran(history, "sync", "t7")
    _ran(history, "sync", "t8")
    _ran(history, "rollback", "t7", sets_release=False)
    with closing(sqlite3.connect(tmp_path / "history.sqlite3")) as db, db:
        db.execute("UPDATE deploys SET report = json_remove(report, '$.sets_release')")
    last = history.last_deployed(0)
    assert last is not None and last.tag == "t7"


def test_a_slots_runs_by_a_mark_are_read_newest_first_a_page_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """finish and abort read the runs before a deploy newest first and stop once they know enough: runs_back_from
    gives the slot's syncs and rollbacks by the mark (itself included), newest first across pages, without other
    slots' rows or events, and reads a page only when asked for a run in it."""
    import itertools

    from sartoris import state

    history = History(tmp_path)
    for n in range(40):  # rows 3n+1 (a start), 3n+2 (slot 1's run), 3n+3 (slot 0's run tN)
        history.record_event("start", 0, "")
        history.begin("sync", 1, f"other{n}", "c" * 40, "", 0)
        history.begin("rollback" if n % 3 else "sync", 0, f"t{n}", "c" * 40, "", 0)
    assert [entry.tag for entry in history.runs_back_from(0, 3 * 38 + 3)] == [f"t{n}" for n in range(38, -1, -1)]
    parsed: list[object] = []
    entry = state._entry
    monkeypatch.setattr(state, "_entry", lambda row: parsed.append(row) or entry(row))
    assert [e.tag for e in itertools.islice(history.runs_back_from(0, 3 * 39 + 3), 3)] == ["t39", "t38", "t37"]
    assert len(parsed) == 8  # the first page alone
