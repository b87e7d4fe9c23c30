"""Tests for sartoris.pool: the configured depool/pool command, run once per host, bounded, in its own session
(the operator's Ctrl-C must not kill a depool half-way), a failure reported as one line; and a standalone
`depool` interrupted by Ctrl-C remembers what it did."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
import structlog.testing

from sartoris import pool
from sartoris.closing import DeployRun
from sartoris.config import Config, parse_config
from sartoris.errors import InterruptedRun, StateError
from sartoris.inventory import Host, machine_of, parse_host
from sartoris.pool import change_pool, depooled_among, releases_owed, remember_pool_state, run_pool_command
from sartoris.rollout import _Depools, depool_hosts
from sartoris.state import History


def run(template: tuple[str, ...], timeout: float = 10) -> str | None:
    return asyncio.run(run_pool_command(template, "mw1001", timeout))


def test_success_is_none_and_the_host_is_substituted(tmp_path: Path) -> None:
    """A command that succeeds gives None, and `{host}` in its template is replaced by the host's name."""
    seen = tmp_path / "seen"
    assert run(("sh", "-c", f'echo "$1" > {seen}', "sh", "{host}")) is None
    assert seen.read_text() == "mw1001\n"


def test_a_failing_command_says_its_status_and_last_stderr_line() -> None:
    """A failing command is reported as its exit status and the last line it wrote to stderr."""
    assert run(("sh", "-c", "echo first >&2; echo 'pool busy' >&2; exit 3")) == "sh exited 3: pool busy"


def test_a_failing_command_is_quoted_by_its_last_message_line_not_an_indented_continuation() -> None:
    """A depool command whose error goes on over indented lines (a usage text, a traceback's frames) was quoted by
    its last line alone (`badctl exited 2: second`); now by the last line that starts a message, escaped when it
    holds control characters (an escape sequence would act on the operator's terminal)."""
    usage = "echo 'confctl: unknown pool mw1' >&2; printf '  first\\n  second\\n' >&2; exit 2"
    assert run(("sh", "-c", usage)) == "sh exited 2: confctl: unknown pool mw1"
    assert run(("sh", "-c", "printf '  only indented\\n' >&2; exit 2")) == "sh exited 2: only indented"
    assert run(("sh", "-c", "printf 'bad \\033[2J pool\\n' >&2; exit 2")) == "sh exited 2: 'bad \\x1b[2J pool'"


def test_a_missing_command_is_one_line() -> None:
    """A command that cannot be started is reported in one line: its path and the system's reason."""
    assert run(("/nonexistent/confctl", "{host}")) == "/nonexistent/confctl: No such file or directory"


def test_the_command_runs_in_its_own_session(tmp_path: Path) -> None:
    """A terminal's Ctrl-C goes to the foreground process group; the depool command is not in it."""
    session = tmp_path / "session"
    assert run((sys.executable, "-c", f"import os; open({str(session)!r}, 'w').write(str(os.getsid(0)))")) is None
    assert int(session.read_text()) != os.getsid(0)


def test_a_hung_command_is_stopped_with_what_it_started(tmp_path: Path) -> None:
    """A command past its timeout is killed with the processes it started, so none of them outlives the run."""
    child = tmp_path / "child"
    began = time.monotonic()
    error = run(("sh", "-c", f"sleep 30 & echo $! > {child}; wait"), timeout=0.5)
    assert error == "sh timed out after 0.5s" and time.monotonic() - began < 5
    pid = int(child.read_text())
    deadline = time.monotonic() + 5
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(pid), "the command's background child outlived the timeout"


def test_a_child_that_left_the_group_does_not_hold_the_run_past_the_timeout(tmp_path: Path) -> None:
    """A descendant in its own session escapes the kill and keeps the pipes open; the wait is still bounded."""
    escaped = tmp_path / "escaped"
    began = time.monotonic()
    error = run(("sh", "-c", f"setsid sh -c 'echo $$ > {escaped}; exec sleep 30' & wait"), timeout=0.5)
    try:
        assert error == "sh timed out after 0.5s" and time.monotonic() - began < 6
    finally:
        if escaped.exists():
            os.kill(int(escaped.read_text()), 9)


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting to be reaped counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def depool_config(tmp_path: Path, command: str) -> Config:
    text = f"""
[deploy]
name = "app"
remote_root = "/srv/app"
publish_url = "{tmp_path}/publish.git"

[depool]
command = "{command}"
"""
    return parse_config(text, tmp_path / "sartoris.toml")


def press_ctrl_c_once(ran: Path, first: str) -> None:
    """Ctrl-C (SIGINT to this process) as soon as the depool command for `first` has started."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and first not in (ran.read_text() if ran.exists() else ""):
        time.sleep(0.01)
    os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_during_a_depool_lets_the_running_command_end_starts_no_other_and_remembers_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The load balancer was told about mw1, so mw1 must be remembered as depooled; mw2 and mw3 never ran."""
    monkeypatch.setattr(pool, "_POOL_CONCURRENCY", 1)
    ran = tmp_path / "ran"
    config = depool_config(tmp_path, f"sh -c 'echo $1 >> {ran}; sleep 0.5' sh {{host}}")
    hosts = [parse_host(name) for name in ("mw1", "mw2", "mw3")]
    presser = threading.Thread(target=press_ctrl_c_once, args=(ran, "mw1"))
    presser.start()
    try:
        with pytest.raises(InterruptedRun) as caught:
            change_pool(config, hosts, depool=True, message="hand depool")
    finally:
        presser.join()
    report = caught.value.report
    assert report.changed == ("mw1",)
    assert [host for host, _ in report.failed] == ["mw2", "mw3"]
    assert all(error.startswith("not run: interrupted") for _, error in report.failed)
    assert ran.read_text().split() == ["mw1"]
    history = History(config.state_dir)
    assert history.depooled_hosts("") == frozenset({"mw1"})
    [entry] = history.entries()
    assert (entry.action, entry.outcome, entry.report["interrupted"]) == ("depool", "partial", True)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("before_the_switch", [True, False], ids=["before-the-switch", "after-it"])
def test_ctrl_c_during_a_syncs_depools_starts_no_other_only_before_the_switch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, before_the_switch: bool
) -> None:
    """Before the switch nobody will switch, so the hosts not yet depooled stay in the pool, serving what every
    host serves: no further depool starts. After it, each host left to depool serves the old release beside
    switched ones: all of them still run. Either way the one running when Ctrl-C came ends and counts."""
    monkeypatch.setattr(pool, "_POOL_CONCURRENCY", 1)
    ran = tmp_path / "ran"
    config = depool_config(tmp_path, f"sh -c 'echo $1 >> {ran}; sleep 0.3' sh {{host}}")
    hosts = [parse_host(name) for name in ("mw1", "mw2", "mw3")]
    into = _Depools()

    async def interrupt_after_the_first() -> bool:
        depooling = asyncio.ensure_future(
            depool_hosts(config, History(config.state_dir), hosts, into, before_the_switch=before_the_switch)
        )
        async with asyncio.timeout(10):
            while "mw1" not in (ran.read_text() if ran.exists() else ""):
                await asyncio.sleep(0.01)
        depooling.cancel()  # what run_stoppable does on Ctrl-C
        return await depooling

    assert asyncio.run(interrupt_after_the_first()) is True
    expected = ["mw1"] if before_the_switch else ["mw1", "mw2", "mw3"]
    assert ran.read_text().split() == expected
    assert sorted(into.out) == expected
    assert History(config.state_dir).depooled_hosts("") == frozenset(expected)
    if before_the_switch:
        assert set(into.errors) == {"mw2", "mw3"}
        assert all(error.startswith("not run: interrupted") for error in into.errors.values())


@pytest.mark.parametrize(
    ("command", "outcome", "out"),
    [
        pytest.param("sh -c true sh {host}", "ok", {"mw1", "mw2"}, id="every-host"),
        pytest.param("sh -c 'test $1 = mw1' sh {host}", "partial", {"mw1"}, id="some-hosts"),
        pytest.param("sh -c false sh {host}", "failed", set(), id="no-host"),
    ],
)
def test_a_depools_history_row_says_failed_when_no_host_went_out(
    tmp_path: Path, command: str, outcome: str, out: set[str]
) -> None:
    """A depool whose command failed for every host was logged `partial`, as if some hosts were out of the pool; it
    is now `failed`, and `partial` only when some went out."""
    config = depool_config(tmp_path, command)
    report = change_pool(config, [parse_host("mw1"), parse_host("mw2")], depool=True, message="swap")
    history = History(config.state_dir)
    [entry] = history.entries()
    assert (entry.action, entry.outcome) == ("depool", outcome)
    assert history.depooled_hosts("") == frozenset(out) and report.as_json()["recorded"] is True


def test_a_host_depooled_under_one_spelling_is_out_under_another(tmp_path: Path) -> None:
    """`depool mw1` is seen by a status whose group file says mw1:22 (or DEPLOY@MW1), and by one that says
    mw1:2222: the command was given the name alone (`{host}` has no port), so the load balancer took out the name.
    A run that depooled `mw1:2201` (a line with a wrong port) took out mw1, and `status` of the fleet's `mw1`
    said it was in the pool."""
    history = History(tmp_path / ".sartoris")
    history.set_depooled(["mw1:2201", "not a host line"], True, "")
    targets = [parse_host(spec) for spec in ("deploy@MW1:22", "mw1:2222", "mw2")]
    assert depooled_among(history, targets, "") == frozenset({"deploy@MW1:22", "mw1:2222"})


def test_pooling_a_host_clears_every_spelling_it_was_depooled_under(tmp_path: Path) -> None:
    """`pool mw1:22` after `depool mw1`, `depool root@mw1` and a run's depool of `mw1:2201` leaves no row saying
    mw1 is still out (the load balancer has put the name back)."""
    history = History(tmp_path / ".sartoris")
    remember_pool_state(history, [parse_host("mw1"), parse_host("mw2")], True, "")
    history.set_depooled(["root@mw1", "mw1:2201"], True, "")
    remember_pool_state(history, [parse_host("mw1:22")], False, "")
    assert history.depooled_hosts("") == frozenset({"mw2"})
    assert depooled_among(history, [parse_host("mw1"), parse_host("mw2:22")], "") == frozenset({"mw2:22"})


def test_a_depool_command_naming_the_slot_keeps_each_slots_pool_apart(tmp_path: Path) -> None:
    """With `{slot}` in a depool command each slot has its own pool (a host out of slot 0's is still in slot 1's):
    the state is kept per slot; without it, one pool per host serves every slot."""
    by_slot = depool_config(tmp_path, "confctl depool {host} --service php-slot{slot}")
    assert (by_slot.for_slot(0).depool.scope, by_slot.for_slot(1).depool.scope) == ("slot0", "slot1")
    assert depool_config(tmp_path, "confctl depool {host}").for_slot(0).depool.scope == ""
    history = History(tmp_path / "state")
    mw1 = [parse_host("mw1")]
    remember_pool_state(history, mw1, True, by_slot.for_slot(0).depool.scope)
    assert depooled_among(history, mw1, "slot0") == frozenset({"mw1"})
    assert depooled_among(history, mw1, "slot1") == depooled_among(history, mw1, "") == frozenset()


def test_pool_state_kept_before_scopes_is_read_by_every_pool_until_replaced(tmp_path: Path) -> None:
    """A history written by an older Sartoris (one `pool` table, no scopes) keeps its depooled hosts: the host-wide
    pool has them, and so has each slot's pool (a config whose commands name the slot) until that slot's own
    state replaces them; the old table is left as it was, for an older Sartoris."""
    state = tmp_path / "state"
    state.mkdir()
    with closing(sqlite3.connect(state / "history.sqlite3")) as db, db:
        db.execute("CREATE TABLE pool (host TEXT PRIMARY KEY, depooled INTEGER NOT NULL, changed REAL NOT NULL)")
        db.executemany("INSERT INTO pool VALUES (?, ?, 0)", [("mw1", 1), ("mw2", 1), ("mw3", 0)])
    history = History(state)
    assert history.depooled_hosts("") == history.depooled_hosts("slot0") == frozenset({"mw1", "mw2"})
    remember_pool_state(history, [parse_host("mw1")], False, "slot0")  # slot 0's own word on mw1
    assert history.depooled_hosts("slot0") == frozenset({"mw2"})
    assert History(state).depooled_hosts("") == frozenset({"mw1", "mw2"})  # opened again: nothing lost or doubled
    with closing(sqlite3.connect(state / "history.sqlite3")) as db:
        assert db.execute("SELECT COUNT(*) FROM pool").fetchone() == (3,)


def test_opening_a_current_history_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once a history has the current schema, opening and reading it needs no write (a user with read-only access,
    a read-only mount: `status` and `log` still work): here every connection is opened read-only."""
    state = tmp_path / "state"
    History(state).set_depooled(["mw1"], True, "")
    connect = sqlite3.connect
    monkeypatch.setattr(
        sqlite3, "connect", lambda path, **options: connect(f"file:{path}?mode=ro", uri=True, **options)
    )
    history = History(state)
    assert history.depooled_hosts("slot0") == frozenset({"mw1"}) and history.entries(None) == []


def test_a_history_that_fails_after_the_commands_ran_is_an_event_not_a_refusal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The depool commands ran (the load balancer was told), then the history could not be written (a full disk):
    the command still reports what it changed, with an error event, instead of a StateError whose exit 4 would
    say that nothing changed."""
    ran = tmp_path / "ran"
    config = depool_config(tmp_path, f"sh -c 'echo $1 >> {ran}' sh {{host}}")
    History(config.state_dir)

    def full_disk(self: History, *args: object, **kwargs: object) -> None:
        raise StateError("history: database or disk is full")

    monkeypatch.setattr(History, "set_depooled", full_disk)
    monkeypatch.setattr(History, "record_event", full_disk)
    with structlog.testing.capture_logs() as events:
        report = change_pool(config, [parse_host("mw1")], depool=True, message="hand depool")
    assert report.changed == ("mw1",) and ran.read_text().split() == ["mw1"]
    assert [e["what"] for e in events if e["event"] == "history_not_recorded"] == ["depool state", "depool"]
    assert "disk is full" in str(report.not_recorded) and not report.state_recorded
    assert report.as_json()["recorded"] is False


@pytest.mark.parametrize("lost", ["set_depooled", "record_event", "set_depooled record_event"])
def test_a_depool_the_history_did_not_take_exits_5_and_says_what_does_not_know_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], lost: str,
    cli_main: Callable[[list[str]], int],
) -> None:
    """`depool mw1` ran its command (the load balancer took mw1 out) but the history would not take the change:
    it exited 0 with a log line, and `status` went on showing mw1 in the pool. Now "recorded": false, exit 5, and
    one stderr line saying which of `status` and `log` do not know it."""
    ran = tmp_path / "ran"
    config = depool_config(tmp_path, f"sh -c 'echo $1 >> {ran}' sh {{host}}")
    config.path.write_text(f'[deploy]\nname = "app"\nremote_root = "/srv/app"\npublish_url = "{tmp_path}/p.git"\n'
                           f'[depool]\ncommand = "sh -c \'echo $1 >> {ran}\' sh {{host}}"\n')

    def locked(self: History, *args: object, **kwargs: object) -> None:
        raise StateError("history: database is locked")

    (tmp_path / "hosts").mkdir()
    (tmp_path / "hosts" / "app").write_text("mw1\n")
    for method in lost.split():
        monkeypatch.setattr(History, method, locked)
    code = cli_main(["--config", str(config.path), "depool", "mw1", "--json"])
    out, err = capsys.readouterr()
    assert code == 5 and ran.read_text().split() == ["mw1"], err
    assert '"recorded": false' in out
    said = [line for line in err.splitlines() if line.startswith("sartoris: ")]
    assert said and "the depool of mw1 was not written to the history (history: database is locked)" in said[-1]
    unaware = {
        "set_depooled": "`status` and `pool --caught-up` do not know it (`log` lists it)",
        "record_event": "`log` does not list it",
        "set_depooled record_event": "`status`, `log` and `pool --caught-up` do not know it",
    }[lost]
    assert unaware in said[-1]


def test_a_depool_of_a_host_no_hosts_file_lists_is_refused_before_any_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cli_main: Callable[[list[str]], int]
) -> None:
    """`depool mw1O01` (a typo) ran the load balancer's command, which matched nothing and succeeded, and the host
    was remembered as depooled: the operator believed mw1001 was out. A name no hosts file lists (on that port) and
    no pool state remembers is now refused, exit 2, with nothing run; a host remembered as depooled can be pooled
    back after its hosts file dropped it."""
    ran = tmp_path / "ran"
    (tmp_path / "hosts").mkdir()
    (tmp_path / "hosts" / "app").write_text("mw[1001-1002]\nmw2001:2222\n")
    (tmp_path / "hosts" / "broken").write_text("not a host!\n")  # a broken group does not hold a depool up
    command = f"sh -c 'echo $1 >> {ran}' sh {{host}}"
    (tmp_path / "sartoris.toml").write_text(
        f'[deploy]\nname = "app"\nremote_root = "/srv/app"\npublish_url = "{tmp_path}/p.git"\n'
        f'[depool]\ncommand = "{command}"\npool_command = "{command}"\n'
    )
    run = ["--config", str(tmp_path / "sartoris.toml")]

    assert cli_main([*run, "depool", "mw1O01", "mw1002"]) == 2
    assert "depool: mw1O01: in no hosts file" in capsys.readouterr().err and not ran.exists()
    assert cli_main([*run, "depool", "mw2001"]) == 2
    assert "mw2001 is listed as mw2001:2222" in capsys.readouterr().err and not ran.exists()

    assert cli_main([*run, "depool", "mw1001", "mw2001:2222"]) == 0
    (tmp_path / "hosts" / "app").write_text("mw1002\n")  # mw1001 decommissioned, still out of the pool
    assert cli_main([*run, "pool", "mw1001"]) == 0
    *depooled, pooled = ran.read_text().split()  # the two depools run side by side, in either order
    assert sorted(depooled) == ["mw1001", "mw2001"] and pooled == "mw1001"


def test_the_slots_a_host_owes_are_those_whose_runs_depooled_it_since_it_was_last_pooled() -> None:
    """A host is owed to every slot whose run took it out after the last `pool` that put it back, however each
    named it (mw1, mw1:22); a remembered entry no hosts line could have written is ignored."""
    from sartoris.pool import slots_owed

    changes = [
        (3, "sync", "mw1"),
        (None, "pool", "mw1:22"),  # put back: slot 3 is settled
        (4, "sync", "mw1:22"),
        (5, "rollback", "mw1"),
        (4, "sync", "mw2"),
        (4, "sync", "not a host"),
    ]
    assert slots_owed(changes) == {"mw1": {4, 5}, "mw2": {4}}


def test_a_host_a_rollback_of_part_of_the_fleet_named_owes_that_rollbacks_release() -> None:
    """`rollback --hosts` of mw1 and mw2 to A while the slot stays on B: mw1's switch failed (depooled, still on B),
    and `pool --caught-up` put it back in the pool serving B, the release the rollback meant to take it off. A host
    whose newest run was such a rollback owes its release; a later run naming it gives it the slot's again."""
    runs = [
        DeployRun("sync", "tA", "A", "ok", switched=("mw1", "mw2", "mw3")),
        DeployRun("sync", "tB", "B", "ok", switched=("mw1", "mw2", "mw3:22")),
        DeployRun("rollback", "tA", "A", "partial", switched=("mw2",), failed=("mw1:22",), sets_release=False),
    ]
    hosts = [parse_host(name) for name in ("mw1", "mw2", "mw3", "mw4")]
    assert releases_owed(runs[::-1], hosts, "B", 22) == {"mw1": "A", "mw2": "A", "mw3": "B", "mw4": "B"}
    runs.append(DeployRun("sync", "tC", "C", "partial", switched=("mw2",), failed=("mw1",)))
    assert releases_owed(runs[::-1], hosts, "C", 22) == {"mw1": "C", "mw2": "C", "mw3": "C", "mw4": "C"}
    whole = DeployRun("rollback", "tB", "B", "partial", switched=("mw2",), failed=("mw1",), sets_release=True)
    assert releases_owed([whole, *runs[::-1]], hosts, "B", 22)["mw1"] == "B"  # a rollback of the fleet sets it


def _owed_by_every_run(runs: list[DeployRun], hosts: list[Host], slots_release: str) -> dict[str, str]:
    """What releases_owed answered when it read every run of the slot, oldest first (its code then)."""
    newest_part_rollback: dict[tuple[str, int], str | None] = {}
    for each in runs:
        partial_rollback = each.commit if each.action == "rollback" and not each.sets_release else None
        for named in (*each.switched, *each.failed, *each.not_switched):
            if (machine := machine_of(named, 22)) is not None:
                newest_part_rollback[machine] = partial_rollback
    return {h.label: newest_part_rollback.get(h.key(22)) or slots_release for h in hosts}


def test_the_release_each_host_owes_is_read_from_the_runs_back_to_the_newest_that_named_it() -> None:
    """`pool --caught-up` read every run the slot ever had to tell which release each depooled host owes; it now
    reads them newest first back to the newest that named each host asked about. Over random histories (three
    spellings of a host, rollbacks of part of the fleet or of all of it, hosts no run named), each host owes what
    the whole history said, and fewer runs are read."""
    import random

    rng = random.Random(20)
    machines = ("mw1", "mw2", "mw3", "mw4", "mw5")
    saved = owed_a_rollbacks = 0
    for _ in range(400):
        runs = []
        for _ in range(rng.randint(0, 12)):
            named = [rng.choice((h, f"{h}:22", f"deploy@{h}")) for h in machines[:4] if rng.random() < 0.5]
            fates: dict[str, list[str]] = {"switched": [], "failed": [], "not_switched": []}
            for host in named:
                fates[rng.choice(("switched", "switched", "failed", "not_switched"))].append(host)
            action, commit = rng.choice((("sync", "A"), ("sync", "B"), ("rollback", "A"), ("rollback", "C")))
            switched, failed, stopped = (tuple(fates[fate]) for fate in ("switched", "failed", "not_switched"))
            runs.append(DeployRun(
                action, f"t{commit}", commit, "partial", switched=switched, failed=failed, not_switched=stopped,
                sets_release=rng.random() < 0.5,
            ))
        hosts = [parse_host(rng.choice((h, f"{h}:22"))) for h in machines if rng.random() < 0.6]
        newest_first = iter(runs[::-1])
        owed = releases_owed(newest_first, hosts, "B", 22)
        assert owed == _owed_by_every_run(runs, hosts, "B")
        saved += len(list(newest_first))  # the runs it left unread
        owed_a_rollbacks += sum(commit != "B" for commit in owed.values())
    assert saved > 500 and owed_a_rollbacks > 100  # the histories were cut, and rollbacks of part of the fleet counted


def test_caught_up_reads_the_runs_back_to_the_newest_that_named_each_depooled_host_not_the_slots_whole_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pool --caught-up` read every run the slot ever had, every host's record of each, to tell which release each
    depooled host owes (2,000 syncs of 300 hosts: 7 s and 355 MB). It now reads them newest first back to the
    newest that named each (here the last sync, which depooled mw1), and puts mw1 back once it is on that release."""
    from sartoris import census, state
    from sartoris.results import HostResult, HostState, HostStatus, Outcome, Phase, SyncReport

    config = parse_config(
        f'[deploy]\nname = "app"\nremote_root = "/srv/app"\npublish_url = "{tmp_path}/publish.git"\n[depool]\n'
        'command = "true {host}"\npool_command = "true {host}"\n', tmp_path / "sartoris.toml",
    )
    history = History(config.state_dir)
    every = tuple(HostResult(host, True, Phase.DONE) for host in ("mw1", "mw2", "mw3"))
    for n in range(100):
        history.record("sync", SyncReport(0, f"t{n}", f"{n:040x}", Outcome.OK, every), "", 0.0)
    failed = HostResult("mw1", False, Phase.CHECKOUT, "refused", depooled=True)
    history.record("sync", SyncReport(0, "new", "f" * 40, Outcome.PARTIAL, (failed, *every[1:])), "", 0.0)
    history.set_depooled(["mw1"], True, "")
    asked: list[tuple[list[str], str | None]] = []

    async def on_it(_config: Config, _slot: int, targets: list[Host], expected: str | None, *_: object) -> list[
        HostStatus
    ]:
        asked.append(([h.label for h in targets], expected))
        return [HostStatus(h.label, HostState.CURRENT, expected) for h in targets]

    monkeypatch.setattr(census, "census", on_it)
    parsed: list[object] = []
    entry = state._entry
    monkeypatch.setattr(state, "_entry", lambda row: parsed.append(row) or entry(row))
    report = pool.pool_caught_up(config, 0, None)
    assert report.changed == ("mw1",) and asked == [(["mw1"], "f" * 40)]
    assert len(parsed) < 20, len(parsed)


def test_caught_up_puts_a_name_back_only_when_every_depooled_host_of_that_name_is_caught_up() -> None:
    """The pool command puts back a name (`{host}` has no port): with mw1:2201 caught up and mw1:2202 still behind,
    pooling mw1:2201 put the one behind back in the load balancer too. A name goes back once, when all its depooled
    hosts are caught up; the report names a host held back so, and the hosts of its name that hold it."""
    from sartoris.pool import _whole_pool_members

    hosts = {label: parse_host(label) for label in ("mw1:2201", "mw1:2202", "mw2", "deploy@mw2:2222", "mw3")}
    candidates = list(hosts.values())
    current = [hosts["mw1:2201"], hosts["mw2"], hosts["deploy@mw2:2222"], hosts["mw3"]]
    chosen, held = _whole_pool_members(current, candidates)
    assert [h.label for h in chosen] == ["mw2", "mw3"] and held == (("mw1:2201", ("mw1:2202",)),)
    report = pool.PoolReport("pool", (), (), held_by_name=held, logged=False)
    assert report.as_json()["held_back_by_name"] == [{"host": "mw1:2201", "behind": ["mw1:2202"]}]
    assert "left out, caught up, but mw1:2202 of the same name is not, or was not asked" in report.describe()


def test_caught_up_of_some_hosts_holds_back_a_name_a_depooled_host_it_did_not_ask_shares(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run depooled mw1:2201 and mw1:2202; `pool --caught-up --hosts G` with G listing mw1:2201 alone (caught up)
    put the name mw1 back, serving mw1:2202, which it never asked, and marked that one pooled too. The name stays
    out, the report naming the host not asked."""
    from sartoris.results import HostResult, Outcome, Phase, SyncReport

    config = depool_config(tmp_path, "sh -c true sh {host}")
    history = History(config.state_dir)
    done = (HostResult("mw9", True, Phase.DONE),)
    history.record("sync", SyncReport(0, "t1", "1" * 40, Outcome.OK, done), "", 0.0)
    history.set_depooled(["mw1:2201", "mw1:2202"], True, "")
    monkeypatch.setattr(pool, "_on_the_releases_owed", lambda _c, _h, _s, hosts, commit, _d: (
        {h.label for h in hosts}, {h.label: commit for h in hosts}))
    report = pool.pool_caught_up(config, 0, [parse_host("mw1:2201")])
    assert report.changed == () and report.held_by_name == (("mw1:2201", ("mw1:2202",)),)
    assert history.depooled_hosts("") == frozenset({"mw1:2201", "mw1:2202"})


def test_caught_up_holds_a_host_out_for_a_slot_with_no_release_yet_and_names_the_hosts_still_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One pool for every slot: slot 10's first sync failed on mw1 and depooled it, so slot 10 has no release;
    `pool --caught-up --slot 11` skipped slot 10 and pooled mw1, whatever its slot 10 copy held. It now stays out,
    named with slot 10. A host not on the release it owes on the slot asked (mw2) was left out without a word; the
    report names it."""
    from sartoris.results import HostResult, Outcome, Phase, SyncReport

    config = depool_config(tmp_path, "sh -c true sh {host}")
    history = History(config.state_dir)
    failed = (HostResult("mw1", False, Phase.CHECKOUT, "refused", depooled=True),)
    history.record("sync", SyncReport(10, "s10-t1", "a" * 40, Outcome.PARTIAL, failed), "", 0.0)
    done = (HostResult("mw1", True, Phase.DONE), HostResult("mw3", True, Phase.DONE))
    history.record("sync", SyncReport(11, "s11-t1", "b" * 40, Outcome.PARTIAL, (*done, HostResult(
        "mw2", False, Phase.CHECKOUT, "refused", depooled=True))), "", 0.0)
    history.set_depooled(["mw1", "mw2"], True, "")
    monkeypatch.setattr(pool, "_on_the_releases_owed", lambda _c, _h, _s, hosts, commit, _d: (
        {h.label for h in hosts if h.label != "mw2"}, {h.label: commit for h in hosts}))
    report = pool.pool_caught_up(config, 11, None)
    assert report.changed == () and report.behind_elsewhere == (("mw1", 10),) and report.still_behind == ("mw2",)
    assert report.as_json()["still_behind"] == ["mw2"]
    assert "left out, not on the release they owe yet: mw2" in report.describe()
