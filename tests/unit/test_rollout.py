"""What a rollout reports for hosts it stopped before their switch (rollout.roll_out), with stand-in connections:
a host that fetched the release and was never switched says how far it got, `fetch`; one whose connection was lost
before its switch reached it is switched on a new connection, or fails at `connect`."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import structlog

from sartoris.config import Config, parse_config
from sartoris.errors import StateError
from sartoris.inventory import Host
from sartoris.policy import FailureBudget
from sartoris.remote import SCRIPT_END, UNPRUNED_MARK, RemoteRelease
from sartoris.results import HostResult, Phase
from sartoris.rollout import roll_out
from sartoris.state import History
from sartoris.transport import CommandResult, ConnectError, NotStarted

FETCHED = CommandResult(0, f"{SCRIPT_END}\n", "")
REFUSED = CommandResult(1, f"sartoris-phase:checkout\n{SCRIPT_END}\n", "fatal: refused\n")  # failed before the swap
SWITCHED = CommandResult(0, f"sartoris-phase:checkout\nsartoris-phase:done\n{SCRIPT_END}\n", "")
LOST = NotStarted("could not open a session: SSH connection closed")  # the fetch's connection, found closed


class _Session:
    """A connection whose commands end as given, one after the other (the fetch, then the switch): a result, or an
    exception raised."""

    connect_seconds = 0.0

    def __init__(self, *ends: CommandResult | Exception) -> None:
        self._ends = list(ends)
        self.closed = False

    async def run(self, command: str, timeout: float, stdin: str = "") -> CommandResult:
        end = self._ends.pop(0)
        if isinstance(end, Exception):
            raise end
        return end

    def close(self) -> None:
        self.closed = True

    async def wait_closed(self) -> None:
        """Closed at once."""


class _Connector:
    """Hands out each host's stand-in connection; a host given several gets the next at each connect (a
    ConnectError is raised)."""

    def __init__(self, sessions: dict[str, _Session | list[_Session | ConnectError]]) -> None:
        self._sessions = sessions
        self.connects: list[str] = []

    async def connect(self, host: Host) -> _Session:
        self.connects.append(host.label)
        given = self._sessions[host.label]
        if isinstance(given, _Session):
            return given
        session = given.pop(0)
        if isinstance(session, ConnectError):
            raise session
        return session

    async def close(self) -> None:
        """Nothing to close."""


@pytest.fixture
def config(tmp_path: Path) -> Config:
    text = '[deploy]\nname = "mw"\nremote_root = "/srv/mw"\npublish_url = "/srv/git/php-slot{slot}.git"\n'
    return parse_config(text, tmp_path / "sartoris.toml")


def _history_unwritable() -> None:
    raise StateError("disk full")


@pytest.mark.parametrize(
    ("budget", "before_switching"),
    [
        pytest.param(0, None, id="left-out-of-the-switch-past-max-failures"),
        pytest.param(5, _history_unwritable, id="run-stopped-before-its-first-switch"),
    ],
)
async def test_a_host_that_fetched_and_was_never_switched_reports_the_fetch_phase(
    config: Config, tmp_path: Path, budget: int, before_switching: Callable[[], None] | None
) -> None:
    """A host that fetched the release but that the run stopped before switching (past max_failures, or a run
    that could not note itself before its switch) was reported at phase `checkout`, as though a checkout had run
    on it; it says `fetch`, how far it got, stopped and not ok."""
    hosts = [Host("mw1", "mw1"), Host("mw2", "mw2")]
    connector = _Connector({"mw1": _Session(FETCHED, REFUSED), "mw2": _Session(FETCHED)})
    release = RemoteRelease("/srv/mw/php-slot0", "/srv/git/php-slot0.git", "t1", "a" * 40)
    result = await roll_out(
        config, release, hosts, concurrency=1, budget=FailureBudget.parse(budget), history=History(tmp_path / "state"),
        connector=connector, before_switching=before_switching,  # type: ignore[arg-type]
    )
    never_switched = result.hosts[-1]
    assert never_switched.host == "mw2" and never_switched.stopped and not never_switched.ok
    assert never_switched.phase is Phase.FETCH, never_switched


async def test_hosts_a_failed_canary_kept_from_the_run_report_that_they_got_nowhere(
    config: Config, tmp_path: Path
) -> None:
    """When a canary fails, the rest of the fleet is not attempted: no connection, no fetch. They were reported at
    phase `fetch`, which now means a host fetched the release; they say `connect`, the step they never began."""
    from sartoris.deploy import SyncRequest, _deploy
    from sartoris.progress import Progress
    from sartoris.repo import Release

    canary, rest = Host("mw1", "mw1"), Host("mw2", "mw2")
    connector = _Connector({"mw1": _Session(FETCHED, REFUSED)})  # mw2 is never connected to
    request = SyncRequest(0, (canary, rest), "", 1, FailureBudget.parse(5))
    result = await _deploy(
        config, request, Release("t1", "a" * 40, ()), (canary, rest), (canary,), History(tmp_path / "state"),
        connector, Progress(), lambda: None,  # type: ignore[arg-type]
    )
    skipped = result.hosts[-1]
    assert skipped.host == "mw2" and skipped.stopped and skipped.error == "not attempted: a canary failed"
    assert skipped.phase is Phase.CONNECT, skipped


async def _switch_after_a_lost_connection(
    config: Config, tmp_path: Path, again: _Session | ConnectError
) -> tuple[HostResult, _Connector, list[dict[str, object]]]:
    """mw1 fetches, then its connection is found lost as its switch starts; connecting again gives `again`. Its
    result, the connector, and the events logged."""
    connector = _Connector({"mw1": [_Session(FETCHED, LOST), again], "mw2": _Session(FETCHED, SWITCHED)})
    release = RemoteRelease("/srv/mw/php-slot0", "/srv/git/php-slot0.git", "t1", "a" * 40)
    with structlog.testing.capture_logs() as events:
        result = await roll_out(
            config, release, [Host("mw1", "mw1"), Host("mw2", "mw2")], concurrency=1, budget=FailureBudget.parse(5),
            history=History(tmp_path / "state"), connector=connector,  # type: ignore[arg-type]
        )
    return result.hosts[0], connector, events


async def test_a_host_whose_connection_was_lost_before_its_switch_is_switched_on_a_new_one(
    config: Config, tmp_path: Path
) -> None:
    """A switch that never reached the host (its fetch's connection found closed) was failed at `checkout` and
    depooled after a mere look; the switch now runs on a new connection, the host switched, with a warning."""
    reopened = _Session(SWITCHED)
    host, connector, events = await _switch_after_a_lost_connection(config, tmp_path, reopened)
    assert (host.ok, host.phase, host.error, host.depooled) == (True, Phase.DONE, None, False), host
    assert connector.connects.count("mw1") == 2 and reopened.closed
    warned = [e for e in events if e["event"] == "switch_connection_reopened"]
    assert warned and warned[0]["host"] == "mw1" and warned[0]["log_level"] == "warning"


async def test_a_host_that_cannot_be_reached_again_before_its_switch_fails_at_connect(
    config: Config, tmp_path: Path
) -> None:
    """When the new connection cannot be opened either, the host fails at `connect`, not `checkout` (no command ran
    on it), saying its fetch's connection was lost before the switch and a new one could not be opened."""
    host, _, _ = await _switch_after_a_lost_connection(config, tmp_path, ConnectError("connection refused", 0.1))
    assert (host.ok, host.phase) == (False, Phase.CONNECT), host
    assert host.error == (
        "could not open a session: SSH connection closed; the fetch's connection was lost before the switch,"
        " and a new one could not be opened: connection refused"
    )


async def test_no_switch_starts_on_a_new_connection_once_the_budget_is_spent_meanwhile(
    config: Config, tmp_path: Path
) -> None:
    """mw1's switch never reached it and a new connection was being opened while mw2's switch failed past
    max_failures: the switch then started on the new connection all the same. Once the budget is spent (or Ctrl-C
    came) while the connection opens, the host is left as its fetch left it, not switched, the connection closed."""

    class _SlowSecondConnect(_Connector):
        async def connect(self, host: Host) -> _Session:
            if host.label == "mw1" and "mw1" in self.connects:
                await asyncio.sleep(0.3)  # mw2's switch fails meanwhile
            return await super().connect(host)

    reopened = _Session(SWITCHED)
    connector = _SlowSecondConnect({"mw1": [_Session(FETCHED, LOST), reopened], "mw2": _Session(FETCHED, REFUSED)})
    release = RemoteRelease("/srv/mw/php-slot0", "/srv/git/php-slot0.git", "t1", "a" * 40)
    result = await roll_out(
        config, release, [Host("mw1", "mw1"), Host("mw2", "mw2")], concurrency=2, budget=FailureBudget.parse(0),
        history=History(tmp_path / "state"), connector=connector,  # type: ignore[arg-type]
    )
    held = next(host for host in result.hosts if host.host == "mw1")
    assert held.stopped and not held.ok and "not switched" in str(held.error), held
    assert reopened.closed and reopened._ends == [SWITCHED]  # connected, and closed, with no switch run on it


@pytest.mark.parametrize(
    ("slow_commands_left", "switched", "last_line"),
    [
        pytest.param(1, 3, "switch: 3/8 done (0 failed), 5 not run, 0 running", id="switch-the-in-flight-ones-end"),
        pytest.param(2, 0, "fetch: 1/8 done (0 failed), 7 not run, 0 running", id="fetch-the-in-flight-ones-cancelled"),
    ],
)
async def test_the_progress_of_a_phase_stopped_by_ctrl_c_counts_as_done_only_the_hosts_whose_work_ended(
    config: Config, tmp_path: Path, slow_commands_left: int, switched: int, last_line: str
) -> None:
    """Ctrl-C while two switches were in flight and five not begun printed "switch: 6/8 done, 0 failed, 5 not run,
    2 running" when one host had switched: the passed-over hosts were counted as done; a fetch stopped so ended on
    "1/8 done, 0 failed, 2 running", its cancelled and never-begun hosts in no count. Done is now the hosts whose
    work ended: no line counts more hosts than the phase has, and the last one adds up to them, as the report."""
    from sartoris.progress import LineProgress

    in_flight = asyncio.Event()

    class _Slow(_Session):
        """The fetch (two commands left) or the switch (one left) takes a while."""

        async def run(self, command: str, timeout: float, stdin: str = "") -> CommandResult:
            if len(self._ends) == slow_commands_left:
                in_flight.set()
                await asyncio.sleep(0.2)
            return await super().run(command, timeout, stdin)

    labels = [f"mw{n}" for n in range(1, 9)]
    sessions: dict[str, _Session | list[_Session | ConnectError]] = {"mw1": _Session(FETCHED, SWITCHED)}
    sessions.update({label: _Slow(FETCHED, SWITCHED) for label in labels[1:]})
    release = RemoteRelease("/srv/mw/php-slot0", "/srv/git/php-slot0.git", "t1", "a" * 40)
    out = (tmp_path / "progress").open("w+")
    run = asyncio.ensure_future(roll_out(
        config, release, [Host(label, label) for label in labels], concurrency=2, budget=FailureBudget.parse(5),
        history=History(tmp_path / "state"), connector=_Connector(sessions),  # type: ignore[arg-type]
        progress=LineProgress(out),
    ))
    await asyncio.wait_for(in_flight.wait(), 5)
    run.cancel()
    result = await asyncio.wait_for(run, 5)
    assert result.interrupted
    assert sum(host.ok for host in result.hosts) == switched
    phase = last_line.split(":")[0]
    counts = re.compile(rf"{phase}: (\d+)/(\d+) done,? \(?\d+ failed\)?(?:, (\d+) not run)?, (\d+) running")
    out.seek(0)
    lines = [line for line in out.read().splitlines() if line.startswith(f"{phase}: ")]
    for line in lines:
        found = counts.match(line)
        assert found is not None, line
        done, total, not_run, running = (int(n or 0) for n in found.groups())
        assert total == 8 and done + not_run + running <= total, line  # the rest: waiting for their turn
    assert lines[-1].startswith(last_line), lines


async def test_a_tree_the_prune_could_not_remove_is_warned_of_and_the_host_is_switched(
    config: Config, tmp_path: Path
) -> None:
    """A switch that swapped the link but whose prune could not remove an old tree (its UNPRUNED_MARK line) was ok
    with no word, the tree kept past keep_releases for ever: the host is still switched, and the run warns
    `old_trees_not_pruned` naming the host and the tree; a host whose prune said nothing gets no warning."""
    tree = "/srv/mw/.sartoris/php-slot0/trees/" + "b" * 40
    unpruned = CommandResult(0, SWITCHED.stdout.replace(SCRIPT_END, f"{UNPRUNED_MARK} {tree}\n{SCRIPT_END}"), "")
    connector = _Connector({"mw1": _Session(FETCHED, unpruned), "mw2": _Session(FETCHED, SWITCHED)})
    release = RemoteRelease("/srv/mw/php-slot0", "/srv/git/php-slot0.git", "t1", "a" * 40)
    with structlog.testing.capture_logs() as events:
        result = await roll_out(
            config, release, [Host("mw1", "mw1"), Host("mw2", "mw2")], concurrency=1, budget=FailureBudget.parse(0),
            history=History(tmp_path / "state"), connector=connector,  # type: ignore[arg-type]
        )
    assert all(host.ok for host in result.hosts), result.hosts
    warned = [(e["log_level"], e["host"], e["tree"]) for e in events if e["event"] == "old_trees_not_pruned"]
    assert warned == [("warning", "mw1", tree)]
