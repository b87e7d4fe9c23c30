"""What a rollout reports for hosts it stopped before their switch (rollout.roll_out), with stand-in connections:
a host that fetched the release and was never switched says how far it got, `fetch`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sartoris.config import Config, parse_config
from sartoris.errors import StateError
from sartoris.inventory import Host
from sartoris.policy import FailureBudget
from sartoris.remote import SCRIPT_END, RemoteRelease
from sartoris.results import Phase
from sartoris.rollout import roll_out
from sartoris.state import History
from sartoris.transport import CommandResult

FETCHED = CommandResult(0, f"{SCRIPT_END}\n", "")
REFUSED = CommandResult(1, f"sartoris-phase:checkout\n{SCRIPT_END}\n", "fatal: refused\n")  # failed before the swap


class _Session:
    """A connection whose commands end as given, one after the other: the fetch, then the switch."""

    connect_seconds = 0.0

    def __init__(self, *ends: CommandResult) -> None:
        self._ends = list(ends)

    async def run(self, command: str, timeout: float, stdin: str = "") -> CommandResult:
        return self._ends.pop(0)

    def close(self) -> None:
        """Nothing to close."""

    async def wait_closed(self) -> None:
        """Closed at once."""


class _Connector:
    """Hands out each host's stand-in connection."""

    def __init__(self, sessions: dict[str, _Session]) -> None:
        self._sessions = sessions

    async def connect(self, host: Host) -> _Session:
        return self._sessions[host.label]

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
