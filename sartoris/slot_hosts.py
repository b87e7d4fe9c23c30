"""The hosts a slot's release went to beyond `[deploy] hosts`: the new servers a `sync --hosts fleet --hosts new`
named. A retry, a rollback and a status of the config's own hosts ask them too, so a release that went to them is
neither left there unseen nor called done while they lack it.

Each run notes the hosts files its targets came from (`hosts_from`, absolute paths); they are read again here, so a
host taken out of its file since (decommissioned) is not asked. A run written before runs noted them counts the
hosts it named that some hosts file still lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sartoris.closing import DeployRun
from sartoris.config import Config
from sartoris.errors import InventoryError
from sartoris.inventory import Host, dedupe, recorded_host, resolve_hosts, unlisted
from sartoris.results import Outcome
from sartoris.state import History

_ABORTED = Outcome.ABORTED.value  # a run that switched nobody


@dataclass(frozen=True, slots=True)
class Beyond:
    """Hosts a slot's release went to that the fleet leaves out, and the hosts files that list them now."""

    hosts: tuple[Host, ...] = ()
    files: tuple[str, ...] = ()


def beyond_the_fleet(config: Config, history: History, slot: int, commit: str, fleet: Sequence[Host]) -> Beyond:
    """The hosts runs of `commit` in `slot` targeted, as their hosts files list them now, that `fleet` leaves out
    (compared as machines), with the files that list them. A run that aborted switched nobody: the release did not
    go to its hosts (new servers that could not fetch, dropped since)."""
    port = config.ssh.default_port
    found: list[tuple[Host, str]] = []
    listed: set[tuple[str, int]] | None = None
    read: dict[str, tuple[Host, ...]] = {}  # each file once, however many runs (retries) noted it
    for run in history.runs_of(slot, commit):
        if run.outcome == _ABORTED:
            continue
        files = run.report.get("hosts_from")
        if isinstance(files, list) and files:
            names = [name for name in files if isinstance(name, str)]
            found += [(host, name) for name in names for host in read.setdefault(name, _read(config, name))]
            continue
        if listed is None:  # a run from before runs noted their files
            listed = {host.key(port) for host in config.listed_hosts()}
        named = [host for label in DeployRun.from_entry(run).named if (host := recorded_host(label))]
        found += [(host, "") for host in named if host.key(port) in listed]
    outside = set(unlisted([host for host, _ in found], fleet, port))
    hosts = dedupe([host for host, _ in found if host.label in outside], port)
    files = tuple(dict.fromkeys(name for host, name in found if name and host.label in outside))
    return Beyond(hosts, files)


def _read(config: Config, name: str) -> tuple[Host, ...]:
    """The hosts the hosts file `name` (an absolute path) lists now, read as targeting reads it; none when it is
    gone or no longer reads as one."""
    try:
        return resolve_hosts([name], config.hosts_dir, config.base_dir, config.ssh.default_port)
    except InventoryError:  # gone, unreadable, a bad line, or emptied: it lists no host
        return ()
