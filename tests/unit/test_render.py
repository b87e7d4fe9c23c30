"""The human summary of a run: counts, then the failed hosts grouped by identical error."""

from __future__ import annotations

from dataclasses import replace

from sartoris.render import status_summary, sync_summary
from sartoris.results import HostResult, HostState, HostStatus, Outcome, Phase, StatusReport, SyncReport


def test_an_aborted_sync_says_why_and_that_nobody_was_switched() -> None:
    """An abort names its reason on the summary's own line; the hosts that fetched are counted and grouped as
    not switched, apart from the one that failed (under its own error), biggest group first."""
    hosts = (
        HostResult("mw1", False, Phase.FETCH, "not switched: the run aborted", 0.2, stopped=True),
        HostResult("mw2", False, Phase.FETCH, "not switched: the run aborted", 0.2, stopped=True),
        HostResult("mw3", False, Phase.CONNECT, "connection refused"),
    )
    reason = "1 of 3 hosts failed to fetch, more than max_failures (0)"
    report = SyncReport(0, "app-slot0-20261126-120000", "a" * 40, Outcome.ABORTED, hosts, 0.5, reason)
    assert sync_summary(report).splitlines()[1:] == [
        "  3 targeted, 0 ok, 1 failed, 0 depooled, 2 not switched (the run stopped first)",
        f"  aborted ({reason}): no host was switched, nobody was depooled",
        "  [2] fetch: not switched: the run aborted",
        "      mw1, mw2",
        "  [1] connect: connection refused",
        "      mw3",
    ]


def test_a_rollback_of_part_of_the_fleet_says_the_slots_release_stays() -> None:
    """After `rollback --hosts` of a few hosts, `status` still compares with the release the others run: the
    rollback's summary says so; one of the whole fleet, or a sync of part of it, does not."""
    part = SyncReport(0, "app-slot0-20261126-120000", "a" * 40, Outcome.OK, (), sets_release=False)
    note = "  part of the fleet: the slot's release is still the one the others run (status compares with it)"
    assert note in sync_summary(part, "rollback").splitlines()
    assert note not in sync_summary(part, "sync").splitlines()
    assert note not in sync_summary(replace(part, sets_release=True), "rollback").splitlines()


def test_a_rollback_says_how_many_hosts_were_already_on_its_tag() -> None:
    """`rollback --hosts X --to T` run again reported `ok` with no hint that nothing moved: the summary says how many
    hosts the switch found already on the tag; a rollback that moved every host, or a sync, does not."""
    hosts = (
        HostResult("mw1", True, Phase.DONE, unchanged=True),
        HostResult("mw2", True, Phase.DONE, unchanged=True),
        HostResult("mw3", True, Phase.DONE),
    )
    report = SyncReport(0, "app-slot0-1", "a" * 40, Outcome.OK, hosts)
    line = "  2 hosts were already on app-slot0-1: nothing changed on them"
    assert sync_summary(report, "rollback").splitlines()[2:] == [line]
    one = replace(report, hosts=hosts[1:])
    assert "  1 host was already on app-slot0-1: nothing changed on it" in sync_summary(one, "rollback")
    assert "already on" not in sync_summary(report, "sync")
    assert "already on" not in sync_summary(replace(report, hosts=hosts[2:]), "rollback")


def test_a_run_with_nothing_to_do_says_so() -> None:
    """A retry that found every host on the tag has no hosts to group: its reason is its one line of news."""
    report = SyncReport(0, "app-slot0-1", "a" * 40, Outcome.OK, (), 0.1, "nothing to retry: every host is on it")
    assert sync_summary(report).splitlines()[1:] == [
        "  0 targeted, 0 ok, 0 failed, 0 depooled",
        "  nothing to retry: every host is on it",
    ]


def test_status_names_the_depooled_hosts_not_only_their_count() -> None:
    """The plain status said "2 depooled" and nothing more, so finding them took --json; they are listed, current
    or not, after the hosts that are not current."""
    hosts = (
        HostStatus("mw1", HostState.CURRENT, "a" * 40),
        HostStatus("mw2", HostState.CURRENT, "a" * 40, depooled=True),
        HostStatus("mw3", HostState.BEHIND, "b" * 40, depooled=True),
    )
    lines = status_summary(StatusReport(0, "app-slot0-20261126-120000", "a" * 40, hosts)).splitlines()
    assert lines[-4:] == ["  [1] behind: bbbbbbbbbbbb", "      mw3", "  [2] depooled", "      mw2, mw3"]


def test_a_stopped_switch_says_which_failed_hosts_are_still_in_the_pool() -> None:
    """Past max_failures the failed hosts beyond it stay pooled: the plain report lists them apart from the
    depooled ones, which share their error line with them."""
    hosts = (
        HostResult("mw1", False, Phase.CHECKOUT, "error: refused", 0.2, depooled=True),
        HostResult("mw2", False, Phase.CHECKOUT, "error: refused", 0.2),
        HostResult("mw3", True, Phase.DONE, None, 0.2),
    )
    reason = "2 hosts failed to switch, more than max_failures (1): 1 failed host left in the pool"
    report = SyncReport(0, "app-slot0-1", "a" * 40, Outcome.PARTIAL, hosts, 0.5, reason)
    assert sync_summary(report).splitlines()[1:] == [
        "  3 targeted, 1 ok, 2 failed, 1 depooled",
        f"  {reason}",
        "  [2] checkout: error: refused",
        "      mw1, mw2",
        "  failed and still in the pool (on their old tree): 1",
        "  [1] not depooled",
        "      mw2",
    ]


def test_a_failed_host_depooled_before_the_run_is_not_said_to_be_in_the_pool() -> None:
    """A failed host past max_failures that an earlier run had depooled was listed as "failed and still in the
    pool": an operator was told a broken host served traffic. It is listed as out of the pool since before."""
    hosts = (
        HostResult("mw1", False, Phase.CHECKOUT, "error: refused", 0.2, depooled=True),
        HostResult("mw2", False, Phase.CHECKOUT, "error: refused", 0.2, depooled_before=True),
        HostResult("mw3", True, Phase.DONE, None, 0.2),
    )
    reason = "2 hosts failed to switch, more than max_failures (1): every host had already started"
    report = SyncReport(0, "app-slot0-1", "a" * 40, Outcome.PARTIAL, hosts, 0.5, reason)
    lines = sync_summary(report).splitlines()
    assert "failed and still in the pool" not in "\n".join(lines)
    assert lines[-2:] == ["  [1] failed, out of the pool since before this run", "      mw2"]
    assert report.as_json()["hosts"][1]["depooled_before"] is True


def test_a_message_of_several_lines_keeps_its_log_row_one_line() -> None:
    """`-m $'first\\nsartoris: fake'` printed its second line as a row of its own in `log`, which could pass for an
    entry; a row now shows the first line and ` …`."""
    from sartoris.render import log_table
    from sartoris.state import Entry

    entry = Entry(1, 0, "sync", "app-slot0-1", "c" * 40, "ok", "first\nsartoris: fake second line", "ops", 0.0, 1.0, {})
    table = log_table([entry, entry])
    assert table.count("\n") == 1 and "fake" not in table and table.splitlines()[0].endswith("  first …")


def test_an_escape_sequence_in_a_recorded_message_is_shown_escaped_in_log() -> None:
    """-m refuses control characters, but a history from an old version (or a message taken from a lock written by
    hand) may hold one: `log` printed it raw, where it acted on the operator's terminal."""
    from sartoris.render import log_table
    from sartoris.state import Entry

    entry = Entry(1, 0, "sync", "app-slot0-1", "c" * 40, "ok", "train \x1b[2J\x1b]0;owned\x07", "ops", 0.0, 1.0, {})
    row = log_table([entry])
    assert "\x1b" not in row and row.endswith("  'train \\x1b[2J\\x1b]0;owned\\x07'")


def test_a_host_seen_on_the_release_on_a_new_connection_is_ok_and_the_summary_says_how_it_was_seen() -> None:
    """A host whose switch reply came late but that a look on a new connection found on the release counts as ok,
    and is named under its note (a stalled network is worth knowing), not hidden among the rest."""
    note = "timed out after 15s; on the release (seen on a new connection)"
    hosts = (HostResult("mw1", True, Phase.DONE, seconds=20.0, note=note), HostResult("mw2", True, Phase.DONE))
    report = SyncReport(0, "app-slot0-1", "a" * 40, Outcome.OK, hosts, 21.0)
    assert sync_summary(report).splitlines()[1:] == [
        "  2 targeted, 2 ok, 0 failed, 0 depooled",
        f"  [1] ok: {note}",
        "      mw1",
    ]
