"""Ask every host which commit its slot has checked out: `sartoris status`, and the census behind
`sync --retry-failed` and `pool --caught-up`."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import structlog

from sartoris.config import Config
from sartoris.errors import HostError
from sartoris.fanout import fan_out
from sartoris.inventory import Host
from sartoris.pool import depooled_among
from sartoris.progress import Progress
from sartoris.remote import (
    NOT_A_CHECKOUT,
    deadline_error,
    gone_tree,
    not_ours,
    parse_head,
    script_lines,
    status_command,
)
from sartoris.results import HostState, HostStatus, StatusReport
from sartoris.slot_hosts import beyond_the_fleet
from sartoris.slots import refuse_an_unknown_slot
from sartoris.state import SlotLock, existing_history
from sartoris.transport import CommandResult, Connector, ensure_open_files

log = structlog.get_logger("sartoris")

_NOT_A_CHECKOUT = "the slot links to a tree with no git checkout (its `.git` is gone)"


def _tree_gone(target: str) -> str:
    """The error of a host whose slot links to a tree of the slot's that is gone: git's own words were a bare
    "cannot change to …: No such file or directory", and the host was called unreachable."""
    return f"the slot link points to {target}, which does not exist (the next sync links the slot anew)"


def status(
    config: Config,
    slot: int,
    targets: Sequence[Host],
    concurrency: int,
    progress: Progress | None = None,
    beyond: bool = False,
) -> StatusReport:
    """The census of `slot` on `targets`, compared with the last release deployed from here; `beyond` (the config's
    own hosts asked): the hosts that runs of that release named beyond them too (slot_hosts), so new servers a `sync
    --hosts` added are not left out of the picture. A slot this deploy host knows nothing of (no working copy, no
    release of it in the history) is bad input, not a fleet that lacks it."""
    last, depooled = None, frozenset[str]()
    history = existing_history(config.state_dir)
    refuse_an_unknown_slot(config, slot, history is not None and bool(history.deployed(slot)))
    if history is not None:
        last = history.last_deployed(slot)
        if beyond and last is not None:
            targets = (*targets, *beyond_the_fleet(config, history, slot, last.commit, targets).hosts)
        depooled = depooled_among(history, targets, config.depool.scope)
    hosts = asyncio.run(census(config, slot, targets, last.commit if last else None, depooled, concurrency, progress))
    return StatusReport(
        slot=slot,
        tag=last.tag if last else None,
        commit=last.commit if last else None,
        hosts=tuple(hosts),
        lock=_lock_as_seen(SlotLock(config.state_dir, slot)),
    )


def _lock_as_seen(lock: SlotLock) -> dict[str, Any] | None:
    """The slot lock's holder for `status`, marked `stale` when the run that took it is gone from this host: status
    showed a killed run's lock like a live one, and only the next sync or start said it could be broken. A locks
    folder this user may not look into is a lock that cannot be read: the census is not thrown away over it."""
    held = lock.holder_as_seen()
    if held is not None and lock.is_stale(held):
        return {**held, "stale": True}
    return held


async def census(
    config: Config,
    slot: int,
    targets: Sequence[Host],
    expected: str | None,
    depooled: frozenset[str],
    concurrency: int,
    progress: Progress | None = None,
) -> list[HostStatus]:
    """One read-only command per host, at most `concurrency` at once; a host that cannot answer is unreachable."""
    ensure_open_files(min(concurrency, len(targets)))  # never more connections at once than hosts
    connector = Connector(config.ssh, config.fanout.connect_timeout)
    timeout = config.fanout.command_timeout
    command = status_command(config.remote_slot_path(slot), expected, timeout)

    progress = progress or Progress()

    async def ask(host: Host) -> HostStatus:
        progress.started(host.label)
        answer = await _ask(host)
        log.debug("host_status", host=host.label, state=answer.state.value, commit=answer.commit, error=answer.error)
        progress.finished(host.label, answer.state is not HostState.UNREACHABLE)
        return answer

    async def _ask(host: Host) -> HostStatus:
        pooled_out = host.label in depooled
        try:
            session = await connector.connect(host)
        except HostError as exc:
            return HostStatus(host.label, HostState.UNREACHABLE, depooled=pooled_out, error=str(exc))
        try:
            result = await session.run(command, timeout=timeout)
        except HostError as exc:
            return HostStatus(host.label, HostState.UNREACHABLE, depooled=pooled_out, error=str(exc))
        finally:
            session.close()
        return host_status(host.label, result, expected, pooled_out, timeout)

    progress.phase("status", len(targets))
    stopped = False
    try:
        return await fan_out(targets, ask, limit=concurrency)
    except asyncio.CancelledError:
        stopped = True  # the hosts that had not answered yet were cancelled: not run
        raise
    finally:
        progress.end(stopped=stopped)
        await connector.close()


def host_status(label: str, result: CommandResult, expected: str | None, depooled: bool, seconds: float) -> HostStatus:
    """What a host's status script (status_command, given `seconds`) said, as its state against the `expected` commit.
    A slot path the next switch refuses (a folder, a link Sartoris did not make) is never current, whatever commit
    its checkout has (named, when it can be read): `missing`, as no release of Sartoris's is there, saying why in the
    switch's words; so is a slot linking to a tree that is gone, or to one with no `.git`, saying which. A git the
    host stopped at its own deadline is unreachable, saying so (timeout itself is silent)."""
    if (why := not_ours(result.stdout)) is not None:
        return HostStatus(label, HostState.MISSING, parse_head(result.stdout), depooled=depooled, error=why)
    if not result.ok:
        error = deadline_error(result.exit_status, seconds) or result.error_line()
        return HostStatus(label, HostState.UNREACHABLE, depooled=depooled, error=error)
    if NOT_A_CHECKOUT in script_lines(result.stdout):
        return HostStatus(label, HostState.MISSING, depooled=depooled, error=_NOT_A_CHECKOUT)
    if (target := gone_tree(result.stdout)) is not None:
        return HostStatus(label, HostState.MISSING, depooled=depooled, error=_tree_gone(target))
    head = parse_head(result.stdout)
    if head is None:
        state = HostState.MISSING
    elif head == expected:
        state = HostState.CURRENT
    else:
        state = HostState.BEHIND
    return HostStatus(label, state, commit=head, depooled=depooled)
