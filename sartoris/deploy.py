"""The use cases: sync a slot to a new tag across the fleet, and take the census of a slot.

A sync flows one way: lock -> tag -> publish -> fetch on every host -> decide (abort or go on) ->
depool the failed -> switch the rest over the connections the fetch opened -> depool switch
failures -> record. Decisions come from sartoris.policy; this module only sequences the I/O.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from sartoris.config import Config
from sartoris.depool import run_pool_command
from sartoris.errors import HostError
from sartoris.fanout import fan_out
from sartoris.inventory import Host
from sartoris.policy import FailureBudget, decide_after_fetch, is_transient_fetch_error, retry_delay
from sartoris.remote import RemoteRelease, fetch_command, last_phase, parse_head, status_command, switch_command
from sartoris.repo import Release, SlotCheckout
from sartoris.results import HostResult, HostState, HostStatus, Outcome, Phase, StatusReport, SyncReport
from sartoris.state import History, SlotLock
from sartoris.transport import CommandTimeout, Connector, Session

log = structlog.get_logger("sartoris")

_DEPOOL_CONCURRENCY = 16
_CLOSE_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """What the operator asked a sync to do."""

    slot: int
    targets: tuple[Host, ...]
    message: str
    concurrency: int
    budget: FailureBudget


@dataclass(frozen=True, slots=True)
class _Fetched:
    """A host after the fetch phase: its result, and its open session when it succeeded."""

    host: Host
    result: HostResult
    session: Session | None


def sync(config: Config, request: SyncRequest) -> SyncReport:
    """Tag, publish, fetch everywhere, then switch or abort; holds the slot's lock for the whole run."""
    lock = SlotLock(config.state_dir, request.slot)
    with lock.held("sync", request.message):
        started = time.time()
        checkout = SlotCheckout(config.checkout_path(request.slot), config.fanout.command_timeout)
        checkout.ensure_clean()
        tag = checkout.next_tag(config.deploy.name, request.slot, datetime.now(UTC))
        release = checkout.tag_release(tag, request.message)
        try:
            checkout.publish(release, config.publish_url(request.slot))
        except BaseException:
            checkout.delete_tag(tag)
            raise
        log.info("release_published", tag=tag, commit=release.commit, submodules=len(release.submodules))
        report = asyncio.run(_fan_out_release(config, request, release, started))
        History(config.state_dir).record("sync", report, request.message, started)
        return report


async def _fan_out_release(config: Config, request: SyncRequest, release: Release, started: float) -> SyncReport:
    remote = _remote_release(config, request.slot, release)
    connector = Connector(config.ssh, config.fanout.connect_timeout)
    fetcher = _Fetcher(config, connector, fetch_command(remote))
    fetched = await fan_out(request.targets, fetcher.fetch, limit=request.concurrency)
    try:
        decision = decide_after_fetch([f.result for f in fetched], request.budget)
        log.info("fetch_done", ok=len(decision.proceed), failed=len(decision.depool), abort=decision.abort)
        if decision.abort:
            return _report(request, release, Outcome.ABORTED, [f.result for f in fetched], started)
        history = History(config.state_dir)
        by_label = {f.host.label: f for f in fetched}
        depooled = await _depool(config, history, [by_label[label].host for label in decision.depool])
        switch = switch_command(remote)
        ready = [f for f in fetched if f.session is not None]
        timeout = config.fanout.command_timeout

        async def switch_one(item: _Fetched) -> HostResult:
            assert item.session is not None
            return await _switch_host(item, switch, timeout)

        switched = {r.host: r for r in await fan_out(ready, switch_one, limit=request.concurrency)}
        failed_switch = [by_label[r.host].host for r in switched.values() if not r.ok]
        depooled |= await _depool(config, history, failed_switch)
        finals = [switched.get(f.host.label, f.result) for f in fetched]
        finals = [_with_depooled(r, r.host in depooled) for r in finals]
        outcome = Outcome.OK if all(r.ok for r in finals) else Outcome.PARTIAL
        return _report(request, release, outcome, finals, started)
    finally:
        await _close_all([f.session for f in fetched if f.session is not None])


def _remote_release(config: Config, slot: int, release: Release) -> RemoteRelease:
    return RemoteRelease(
        slot_path=config.remote_slot_path(slot),
        fetch_url=config.fetch_url(slot),
        tag=release.tag,
        commit=release.commit,
        submodules=release.submodules,
    )


class _Fetcher:
    """The fetch phase for one host: connect, then fetch with bounded, jittered retries on network errors."""

    def __init__(self, config: Config, connector: Connector, command: str) -> None:
        self._connector = connector
        self._command = command
        self._timeout = config.fanout.command_timeout
        self._retries = config.fanout.retries
        self._fetch_slots = asyncio.Semaphore(config.fanout.fetch_concurrency)
        self._random = random.Random()

    async def fetch(self, host: Host) -> _Fetched:
        begin = time.monotonic()
        try:
            session = await self._connector.connect(host)
        except HostError as exc:
            return self._failed(host, Phase.CONNECT, str(exc), begin)
        deadline = begin + self._timeout
        attempt = 0
        while True:
            try:
                async with self._fetch_slots:
                    result = await session.run(self._command, timeout=max(deadline - time.monotonic(), 0.1))
            except HostError as exc:
                session.close()
                return self._failed(host, Phase.FETCH, str(exc), begin)
            if result.ok:
                log.debug("host_fetched", host=host.label, seconds=round(time.monotonic() - begin, 3))
                return _Fetched(host, HostResult(host.label, True, Phase.FETCH, seconds=time.monotonic() - begin), session)
            delay = retry_delay(attempt, self._random)
            if attempt < self._retries and is_transient_fetch_error(result.stderr) and time.monotonic() + delay < deadline:
                log.info("fetch_retry", host=host.label, attempt=attempt + 1, error=result.error_line())
                attempt += 1
                await asyncio.sleep(delay)
                continue
            session.close()
            return self._failed(host, Phase.FETCH, result.error_line(), begin)

    @staticmethod
    def _failed(host: Host, phase: Phase, error: str, begin: float) -> _Fetched:
        log.warning("host_failed", host=host.label, phase=phase.value, error=error)
        return _Fetched(host, HostResult(host.label, False, phase, error, time.monotonic() - begin), None)


async def _switch_host(item: _Fetched, command: str, timeout: float) -> HostResult:
    assert item.session is not None
    label, begin = item.host.label, time.monotonic()

    def failed(phase: Phase, error: str) -> HostResult:
        log.warning("host_failed", host=label, phase=phase.value, error=error)
        return HostResult(label, False, phase, error, item.result.seconds + time.monotonic() - begin)

    try:
        result = await item.session.run(command, timeout=timeout)
    except CommandTimeout as exc:
        return failed(last_phase(exc.stdout, Phase.CHECKOUT), str(exc))
    except HostError as exc:
        return failed(Phase.CHECKOUT, str(exc))
    if not result.ok:
        return failed(last_phase(result.stdout, Phase.CHECKOUT), result.error_line())
    seconds = item.result.seconds + time.monotonic() - begin
    log.debug("host_switched", host=label, seconds=round(seconds, 3))
    return HostResult(label, True, Phase.DONE, seconds=seconds)


async def _depool(config: Config, history: History, hosts: Sequence[Host]) -> set[str]:
    """Run the depool command once per host; the labels of hosts it depooled. A failing command is logged."""
    template = config.depool.command
    if not hosts or template is None:
        if hosts:
            log.warning("depool_not_configured", hosts=[h.label for h in hosts])
        return set()

    async def depool_one(host: Host) -> tuple[Host, str | None]:
        return host, await run_pool_command(template, host.name, config.depool.timeout)

    done: set[str] = set()
    for host, error in await fan_out(hosts, depool_one, limit=_DEPOOL_CONCURRENCY):
        if error is None:
            log.info("host_depooled", host=host.label)
            done.add(host.label)
        else:
            log.error("depool_failed", host=host.label, error=error)
    history.set_depooled(done, True)
    return done


def _with_depooled(result: HostResult, depooled: bool) -> HostResult:
    if result.depooled == depooled:
        return result
    return HostResult(result.host, result.ok, result.phase, result.error, result.seconds, depooled)


def _report(
    request: SyncRequest, release: Release, outcome: Outcome, results: Sequence[HostResult], started: float
) -> SyncReport:
    return SyncReport(
        slot=request.slot,
        tag=release.tag,
        commit=release.commit,
        outcome=outcome,
        hosts=tuple(results),
        seconds=time.time() - started,
    )


async def _close_all(sessions: Sequence[Session]) -> None:
    for session in sessions:
        session.close()
    if sessions:
        await asyncio.wait([asyncio.ensure_future(s.wait_closed()) for s in sessions], timeout=_CLOSE_TIMEOUT)


def status(config: Config, slot: int, targets: Sequence[Host], concurrency: int) -> StatusReport:
    """Ask every host which commit its slot has checked out and compare with the last deploy from here."""
    history = History(config.state_dir)
    last = history.last_deployed(slot)
    depooled = history.depooled_hosts()
    command = status_command(config.remote_slot_path(slot))
    hosts = asyncio.run(_census(config, targets, command, last.commit if last else None, depooled, concurrency))
    return StatusReport(
        slot=slot,
        tag=last.tag if last else None,
        commit=last.commit if last else None,
        hosts=tuple(hosts),
        lock=SlotLock(config.state_dir, slot).holder(),
    )


async def _census(
    config: Config,
    targets: Sequence[Host],
    command: str,
    expected: str | None,
    depooled: frozenset[str],
    concurrency: int,
) -> list[HostStatus]:
    connector = Connector(config.ssh, config.fanout.connect_timeout)
    timeout = config.fanout.command_timeout

    async def census_one(host: Host) -> HostStatus:
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
        if not result.ok:
            return HostStatus(host.label, HostState.UNREACHABLE, depooled=pooled_out, error=result.error_line())
        head = parse_head(result.stdout)
        if head is None:
            state = HostState.MISSING
        elif head == expected:
            state = HostState.CURRENT
        else:
            state = HostState.BEHIND
        return HostStatus(host.label, state, commit=head, depooled=pooled_out)

    return await fan_out(targets, census_one, limit=concurrency)


@dataclass(frozen=True, slots=True)
class SyncPlan:
    """What a sync would do, computed without changing anything (`sync --dry-run`)."""

    slot: int
    tag: str
    commit: str
    publish_url: str
    hosts: tuple[str, ...]
    fetch_command: str
    switch_command: str
    budget: str

    def as_json(self) -> dict[str, object]:
        return {
            "slot": self.slot, "tag": self.tag, "commit": self.commit, "outcome": "planned",
            "publish_url": self.publish_url, "max_failures": self.budget, "hosts": list(self.hosts),
            "commands": {"fetch": self.fetch_command, "switch": self.switch_command},
        }

    def describe(self) -> str:
        return "\n".join([
            f"would sync slot {self.slot} to a new tag {self.tag} at {self.commit[:12]}",
            f"  publish to {self.publish_url}; {len(self.hosts)} hosts; abort past {self.budget} fetch failures",
            "  fetch on each host:", *("    " + line for line in self.fetch_command.splitlines()),
            "  then switch on each host:", *("    " + line for line in self.switch_command.splitlines()),
        ])


def plan_sync(config: Config, request: SyncRequest) -> SyncPlan:
    """The dry run: read the working copy, name the tag it would create, build the host commands."""
    checkout = SlotCheckout(config.checkout_path(request.slot), config.fanout.command_timeout)
    checkout.ensure_clean()
    commit = checkout.head_commit()
    tag = checkout.next_tag(config.deploy.name, request.slot, datetime.now(UTC))
    remote = _remote_release(config, request.slot, Release(tag, commit, checkout.submodules_at(commit)))
    return SyncPlan(
        slot=request.slot, tag=tag, commit=commit, publish_url=config.publish_url(request.slot),
        hosts=tuple(h.label for h in request.targets), fetch_command=fetch_command(remote),
        switch_command=switch_command(remote), budget=str(request.budget),
    )
