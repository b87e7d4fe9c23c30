"""The fetch phase's retries (rollout._Fetcher): a network error is tried again, a host's own deadline is not."""

from __future__ import annotations

from pathlib import Path

from sartoris.config import parse_config
from sartoris.inventory import Host
from sartoris.remote import HostCommand, RemoteRelease
from sartoris.results import Phase
from sartoris.rollout import _Fetcher
from sartoris.transport import CommandResult

_RELEASE = RemoteRelease("/srv/app/php-slot0", "/srv/git/php-slot0.git", "t1", "a" * 40)
_EARLY_EOF = "fatal: the remote end hung up unexpectedly\nfatal: early EOF\n"


class _Session:
    """A session whose fetches end as `results` say, in turn; it counts them."""

    connect_seconds = 0.0

    def __init__(self, results: list[CommandResult]) -> None:
        self._results = results
        self.runs = 0

    async def run(self, command: str, timeout: float, stdin: str = "") -> CommandResult:
        self.runs += 1
        return self._results.pop(0)

    def close(self) -> None:
        pass


class _Connector:
    def __init__(self, session: _Session) -> None:
        self._session = session

    async def connect(self, host: Host) -> _Session:
        return self._session


def _fetcher(tmp_path: Path, session: _Session) -> _Fetcher:
    text = (
        '[deploy]\nname = "mw"\nremote_root = "/srv/mw"\npublish_url = "/srv/git/p{slot}.git"\n'
        "[fanout]\nretries = 2\ncommand_timeout = 60\n"
    )
    config = parse_config(text, tmp_path / "sartoris.toml")
    return _Fetcher(config, _Connector(session), HostCommand("sh -s", "fetch"), _RELEASE)  # type: ignore[arg-type]


async def test_a_network_error_is_fetched_again(tmp_path: Path) -> None:
    """git's words of a dropped connection to the publish server: the fetch is tried again, and succeeds."""
    session = _Session([CommandResult(128, "", _EARLY_EOF), CommandResult(0, "sartoris-script:end\n", "")])
    fetched = await _fetcher(tmp_path, session).fetch(Host("web1", "web1"))
    assert session.runs == 2 and fetched.result.ok, fetched.result


async def test_a_fetch_its_hosts_deadline_stopped_is_not_retried(tmp_path: Path) -> None:
    """A fetch the host's own deadline stopped (exit 124, or 137 for its KILL) leaves git's "early EOF" of the
    upload-pack the kill ended: that read as a network error, so it was retried with the seconds left, and failed
    again saying "timed out after 1.3463s", which hid the host's deadline. It fails at once, saying so."""
    for status in (124, 137):
        stopped = f"{_EARLY_EOF}sartoris: timed out on the host after 58s\n"
        session = _Session([CommandResult(status, "", stopped), CommandResult(0, "sartoris-script:end\n", "")])
        fetched = await _fetcher(tmp_path, session).fetch(Host("web1", "web1"))
        assert session.runs == 1 and not fetched.result.ok and fetched.result.phase is Phase.FETCH
        assert "on the host after 58s" in str(fetched.result.error), fetched.result.error
