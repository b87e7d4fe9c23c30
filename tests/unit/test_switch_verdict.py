"""What a host's switch result says, from what its script printed (rollout._switch_host), with a stand-in session:
the link swap is the switch, so a host whose script got past it is on the release whatever happened after."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog

from sartoris.inventory import Host
from sartoris.remote import NOT_RUN, RECORDED_MARK, SCRIPT_END, UNCHANGED_MARK, HostCommand, RemoteRelease
from sartoris.results import HostResult, Phase
from sartoris.rollout import NOT_RECORDED, _Fetched, _switch_host, seen_again
from sartoris.transport import CommandResult, CommandTimeout, HostError, NotStarted

SWAPPED = "sartoris-phase:checkout\nsartoris-phase:done\n"  # the marker the switch prints right after the swap
_RELEASE = RemoteRelease("/srv/app/php-slot0", "/srv/git/php-slot0.git", "t1", "a" * 40)


class _Script:
    """A session whose one command ends as given: a result, or an exception (a timeout, a dropped connection)."""

    def __init__(self, end: CommandResult | Exception) -> None:
        self._end = end

    async def run(self, command: str, timeout: float, stdin: str = "") -> CommandResult:
        if isinstance(self._end, Exception):
            raise self._end
        return self._end


Look = Callable[[_Fetched, HostError, float], Awaitable[HostResult]]


async def _unseen(item: _Fetched, lost: HostError, began: float) -> HostResult:
    """An unknown outcome (lost connection, late reply) as the look on a new connection gives it for a host that
    stayed behind."""
    return HostResult(item.host.label, False, Phase.CHECKOUT, f"{lost}; not on the release", 1.0)


async def _switched(end: CommandResult | Exception, look: Look = _unseen) -> HostResult:
    fetched = _Fetched(Host("web1", "web1"), HostResult("web1", True, Phase.FETCH, seconds=1.0), _Script(end))  # type: ignore[arg-type]
    return await _switch_host(fetched, _RELEASE, HostCommand("sh -s", "switch"), 10.0, look)


async def test_a_deadline_that_strikes_the_prune_after_the_swap_leaves_the_host_on_the_release() -> None:
    """The prune of old trees runs after the swap; when the host's deadline ended it there, the host was reported
    failed at checkout (and depooled) though it ran the release."""
    result = await _switched(CommandTimeout("timed out after 8s", SWAPPED))
    assert result.ok and result.phase is Phase.DONE and result.error is None


async def test_a_host_the_switch_found_already_on_the_release_is_reported_unchanged() -> None:
    """A host already on the release ended `ok` like one the switch moved: its switch's line saying so marks it
    `unchanged` (also when the deadline struck the prune after it); a host the switch moved is not."""
    unchanged = f"{SWAPPED}{UNCHANGED_MARK}\n"
    found = await _switched(CommandResult(0, f"{unchanged}\n{SCRIPT_END}\n", ""))
    assert found.ok and found.unchanged and found.as_json()["unchanged"] is True
    assert (await _switched(CommandTimeout("timed out after 8s", unchanged))).unchanged
    moved = await _switched(CommandResult(0, f"{SWAPPED}\n{SCRIPT_END}\n", ""))
    assert moved.ok and not moved.unchanged and moved.as_json()["unchanged"] is False


async def test_a_failure_after_the_swap_leaves_the_host_on_the_release() -> None:
    """A non-zero exit after the swap marker (the prune's rm failing) is not a failed switch either."""
    assert (await _switched(CommandResult(1, SWAPPED, "rm: cannot remove ...\n"))).ok


async def test_a_failure_before_the_swap_is_a_failed_checkout() -> None:
    """A script that ended before the marker left the host on its old tree: failed, at the phase it reached."""
    failed = await _switched(CommandResult(1, "sartoris-phase:checkout\nsartoris-phase:submodules\n", "fatal: x\n"))
    assert not failed.ok and failed.phase is Phase.SUBMODULES
    dropped = await _switched(HostError("disconnected"))  # settled by a look on a new connection (integration)
    assert not dropped.ok and dropped.phase is Phase.CHECKOUT and dropped.error == "disconnected; not on the release"


async def test_a_switch_that_failed_on_a_damaged_store_says_how_to_mend_it() -> None:
    """A switch whose git could not read an object of the store (here a file's, in git 2.39's words from a host whose
    store lost it) failed with git's words alone; its error now ends with the remedy a fetch's gets. A switch that
    failed for another reason gets none."""
    lost = (
        "sartoris-note: the release did not build from a copy of the live tree: built from a fresh clone\n"
        "error: unable to read sha1 file of dir9/new.php (8d002d9630c9003140443642530d0816686541c9)\n"
        "error: invalid object 100644 8d002d9630c9003140443642530d0816686541c9 for 'dir9/new.php'\n"
    )
    damaged = await _switched(CommandResult(1, "sartoris-phase:checkout\n", lost))
    assert not damaged.ok and damaged.phase is Phase.CHECKOUT and damaged.error is not None
    assert damaged.error.startswith("error: unable to read sha1 file of dir9/new.php"), damaged.error
    assert damaged.error.endswith(f"remove {_RELEASE.store} there, and the next sync fetches it anew)"), damaged.error
    other = await _switched(CommandResult(1, "sartoris-phase:checkout\n", "fatal: x\n"))
    assert other.error == "fatal: x"


async def test_a_reply_late_past_the_timeout_before_the_swap_is_settled_by_a_look_not_failed_outright() -> None:
    """No reply within command_timeout (the host's own deadline answers before it) is a stall on the way back, which
    may have held back the marker of a switch that swapped: it is settled by a look on a new connection, as a lost
    connection is, instead of being reported failed (and depooled) outright."""
    seen: list[HostError] = []

    async def look(item: _Fetched, unseen: HostError, began: float) -> HostResult:
        seen.append(unseen)
        return HostResult(item.host.label, True, Phase.DONE, seconds=1.0, note=f"{unseen}; on the release")

    result = await _switched(CommandTimeout("timed out after 8s", "sartoris-phase:checkout\n"), look)
    assert [str(e) for e in seen] == ["timed out after 8s"] and isinstance(seen[0], CommandTimeout)
    assert result.ok and result.note == "timed out after 8s; on the release"


RELEASE = "c" * 40
OLD = "d" * 40


def _looked(exit_status: int, stdout: str, stderr: str = "") -> HostResult:
    answer = CommandResult(exit_status, stdout, stderr)
    return seen_again("web1", "timed out after 15s", answer, RELEASE, 16.0, Phase.SUBMODULES)


def test_a_look_that_finds_the_release_reports_the_host_ok_saying_how_it_was_seen() -> None:
    """The look on a new connection prints the live tree's commit and whether the slot's switch record names the
    release: both, and it is an ok host, done, not failed, with a note (added to the JSON) that says the outcome was
    first unknown and how it was settled."""
    result = _looked(0, f"{RELEASE}\n{RECORDED_MARK}\n\n{SCRIPT_END}\n")
    assert (result.ok, result.phase, result.error) == (True, Phase.DONE, None)
    assert result.note == "timed out after 15s; on the release (seen on a new connection)"
    assert result.as_json()["note"] == result.note


def test_a_look_that_finds_the_release_and_the_switchs_record_of_it_reports_the_host_unchanged() -> None:
    """A switch whose reply was lost may have found the slot already on the release (a rollback run again): the look
    says so after the commit, and the host is `unchanged`, as it would be with the reply; without that line it is
    not."""
    result = _looked(0, f"{RELEASE}\n{RECORDED_MARK}\n{UNCHANGED_MARK}\n\n{SCRIPT_END}\n")
    assert result.ok and result.unchanged and result.as_json()["unchanged"] is True
    assert result.note == "timed out after 15s; on the release (seen on a new connection)"
    assert not _looked(0, f"{RELEASE}\n{RECORDED_MARK}\n\n{SCRIPT_END}\n").unchanged


def test_a_look_that_finds_the_releases_commit_without_the_switchs_record_fails_the_host() -> None:
    """A switch that refused a live tree of the release changed on the host (a redeploy) leaves that tree live, at
    the release's commit, and records nothing: a look that read the commit alone called the host switched and ok.
    Without the record it is failed, at the phase the switch reached, saying what the look saw."""
    result = _looked(0, f"{RELEASE}\n\n{SCRIPT_END}\n")
    assert (result.ok, result.phase, result.note) == (False, Phase.SUBMODULES, None)
    assert result.error == f"timed out after 15s; {NOT_RECORDED} (seen on a new connection)"


def test_a_look_that_finds_the_old_tree_fails_the_host_at_the_phase_it_reached() -> None:
    """Another commit (or no live tree at all), seen to the script's end: failed, at the phase the switch's output
    reached, saying it is not on the release."""
    for stdout in (f"{OLD}\n\n{SCRIPT_END}\n", f"\n{SCRIPT_END}\n"):
        result = _looked(0, stdout)
        assert (result.ok, result.phase, result.note) == (False, Phase.SUBMODULES, None)
        assert result.error == "timed out after 15s; the host is not on the release (seen on a new connection)"


def test_a_look_that_got_no_answer_says_the_outcome_is_still_unknown() -> None:
    """A look that failed on the host, or whose script never ran, is no answer: failed, saying why it could not see."""
    failed = _looked(124, "", "sartoris: timed out after 8s (stopped on the host)\n")
    assert not failed.ok and failed.error == (
        "timed out after 15s; could not see how it ended: sartoris: timed out after 8s (stopped on the host)"
    )
    assert _looked(0, "").error == f"timed out after 15s; could not see how it ended: {NOT_RUN}"


async def test_a_switch_script_that_never_ran_is_not_a_switch() -> None:
    """Exit 0 with no output at all: the host's shell got no script (see remote.bounded), nothing was swapped."""
    result = await _switched(CommandResult(0, "", ""))
    assert (result.ok, result.phase, result.error) == (False, Phase.CHECKOUT, NOT_RUN)


async def test_a_switch_that_waited_for_another_run_on_its_host_says_so_though_it_switched() -> None:
    """Two runs switching one slot on one host at once is worth knowing even when both succeed: the second waited
    for the host's switch lock (see remote._switch_lock), and the run now warns about it, naming the host."""
    note = "sartoris-wait: another run is switching /srv/php-slot0 on this host: waiting for it to end\n"
    with structlog.testing.capture_logs() as events:
        result = await _switched(CommandResult(0, SWAPPED, note))
    assert result.ok
    waited = [e for e in events if e["event"] == "waited_for_another_switch"]
    assert waited and waited[0]["host"] == "web1" and waited[0]["log_level"] == "warning"
    assert waited[0]["note"] == "another run is switching /srv/php-slot0 on this host: waiting for it to end"


async def test_a_switch_that_could_not_start_on_its_new_connection_fails_at_connect_without_a_look() -> None:
    """On a connection opened again for the switch, a session that still cannot be opened leaves the host on its
    old tree with no command run: failed at `connect`, never a `checkout` nor a look that could only say the same."""
    looked: list[HostError] = []

    async def look(item: _Fetched, unseen: HostError, began: float) -> HostResult:
        looked.append(unseen)
        return await _unseen(item, unseen, began)

    result = await _switched(NotStarted("could not open a session: open failed"), look)
    assert (result.ok, result.phase, result.error) == (False, Phase.CONNECT, "could not open a session: open failed")
    assert looked == []


async def test_a_switch_whose_session_never_opened_in_time_fails_at_connect_without_a_look() -> None:
    """A connection that froze while the switch's session opened was taken for a switch that may have run: looked at
    on a new connection, once its deadline and KILL were past, and reported as possibly run when that failed. The
    command was never sent (see transport.Session.run): the host is on its old tree, failed at `connect` (depooled as
    any failed switch), at once and without a look."""
    looked: list[HostError] = []

    async def look(item: _Fetched, unseen: HostError, began: float) -> HostResult:
        looked.append(unseen)
        return await _unseen(item, unseen, began)

    never = "timed out after 8s opening a session (the command was never sent)"
    result = await _switched(CommandTimeout(never, "", sent=False), look)
    assert (result.ok, result.phase, result.error, result.stopped) == (False, Phase.CONNECT, never, False)
    assert looked == []
