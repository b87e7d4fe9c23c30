"""Roll one release out to a set of hosts: fetch everywhere, decide, depool the failed, switch the rest.

Shared by sync, rollback, `sync --retry-failed` and canaries. A host's connection is opened once (for the
fetch, or while the release was published) and reused for the switch; a second one is opened only when that one
was lost before the switch reached the host (the switch then runs on it) or mid-switch (to look how it ended).
On Ctrl-C (the run's task cancelled): during the fetch nothing is switched; while failed hosts are depooled, that
depool ends (bounded by the depool timeout) and no host is switched; during the switch no new host is started
and the ones in flight finish (each is bounded by command_timeout, plus connect_timeout for one switched on a new
connection; one whose connection dropped or whose reply was late, by the look at how it ended: its deadline's
KILL, plus connect_timeout and a few seconds), so no host is left between its old and new tree.
Either way the result is returned, so the run is recorded.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import structlog

from sartoris.config import Config
from sartoris.errors import HostError, StateError
from sartoris.fanout import fan_out
from sartoris.interrupts import despite_interrupt
from sartoris.inventory import Host
from sartoris.policy import (
    FailureBudget,
    decide_after_fetch,
    is_transient_fetch_error,
    outcome_of_stopped_run,
    retry_delay,
    switch_failures_tolerated,
    within_depool_cap,
)
from sartoris.pool import apply_pool_change, depooled_among
from sartoris.progress import Progress
from sartoris.remote import (
    NOT_RUN,
    HostCommand,
    RemoteRelease,
    bounded,
    damaged_store_remedy,
    fetch_command,
    found_recorded,
    found_unchanged,
    gone_from_the_host,
    last_phase,
    parse_head,
    ran_to_its_end,
    stopped_on_the_host,
    switch_command,
    switch_outcome_command,
    unpruned_trees,
)
from sartoris.results import NOT_SEEN, NOT_SEEN_AGAIN, HostResult, Outcome, Phase
from sartoris.state import History
from sartoris.transport import (
    CommandResult,
    CommandTimeout,
    ConnectError,
    Connector,
    NotStarted,
    Session,
    close_sessions,
)

log = structlog.get_logger("sartoris")

_TAIL = 2000  # characters of a failed host's stderr kept in the log
INTERRUPTED = "interrupted before this host was switched"


@dataclass(frozen=True, slots=True)
class RolloutResult:
    """Every targeted host's final result, the verdict, and why a run was aborted."""

    outcome: Outcome
    hosts: tuple[HostResult, ...]
    abort_reason: str | None = None
    interrupted: bool = False


@dataclass(frozen=True, slots=True)
class _Fetched:
    """A host after the fetch phase: its result, and its open session when it succeeded."""

    host: Host
    result: HostResult
    session: Session | None


async def roll_out(
    config: Config,
    release: RemoteRelease,
    targets: Sequence[Host],
    *,
    concurrency: int,
    budget: FailureBudget,
    history: History,
    connector: Connector,
    progress: Progress | None = None,
    pool: Sequence[Host] | None = None,
    stop_past_budget: bool = True,
    before_switching: Callable[[], None] | None = None,
) -> RolloutResult:
    """Fetch on every target, then abort or depool-and-switch; never raises for a host's failure. `pool`: the
    hosts `max_failures`' percentage and `max_depooled` count over, when the run is wider than these targets
    (canaries, then the rest). `stop_past_budget`: switch failures count against max_failures, and past it no
    further switch starts; a rollback switches every host it can instead (a host it leaves behind is on the
    release being rolled back from, which the others are leaving), and depools each failure.
    `before_switching`: called once, just before the first host may switch (never when none will)."""
    progress = progress or Progress()
    fetcher = _Fetcher(config, connector, bounded(fetch_command(release), config.fanout.command_timeout), release)
    done: dict[str, _Fetched] = {}

    def keep(fetched: _Fetched) -> None:
        done[fetched.host.label] = fetched
        progress.finished(fetched.host.label, fetched.result.ok)

    async def fetch(host: Host) -> _Fetched:
        progress.started(host.label)
        return await fetcher.fetch(host)

    progress.phase("fetch", len(targets))
    try:
        await fan_out(targets, fetch, limit=concurrency, on_result=keep)
    except asyncio.CancelledError:
        progress.end(stopped=True)  # the fetches in flight were cancelled: like the hosts not begun, not run
        await _close_all(done.values(), connector)
        log.warning("interrupted", phase="fetch")
        stopped = _interrupted_fetch(targets, done, fetcher.connected)
        return RolloutResult(Outcome.ABORTED, stopped, "interrupted", interrupted=True)
    progress.end()
    fetched = [done[h.label] for h in targets]
    try:
        return await _decide_and_switch(
            config, release, fetched, concurrency, budget, history, progress, pool or targets, connector,
            stop_past_budget, before_switching,
        )
    finally:  # an interrupt now would lose the run's result: the (bounded) close ends first
        await despite_interrupt(_close_all(fetched, connector))


async def _decide_and_switch(
    config: Config,
    release: RemoteRelease,
    fetched: list[_Fetched],
    concurrency: int,
    budget: FailureBudget,
    history: History,
    progress: Progress,
    pool: Sequence[Host],
    connector: Connector,
    stop_past_budget: bool,
    before_switching: Callable[[], None] | None,
) -> RolloutResult:
    labels = [h.label for h in pool]
    try:
        already_out = depooled_among(history, pool, config.depool.scope)
    except StateError as exc:  # the cap cannot be counted (a locked or broken history): switch nobody
        return _aborted(fetched, f"the pool state could not be read ({exc}): no host switched")
    decision = decide_after_fetch(
        [f.result for f in fetched],
        budget,
        depool_cap=config.depool.max_depooled,
        already_depooled=already_out,
        pool=labels,
    )
    log.info(
        "fetch_done",
        ok=sum(f.result.ok for f in fetched),
        failed=len([f for f in fetched if not f.result.ok]),
        abort=decision.abort,
    )
    if decision.abort:
        assert decision.reason is not None  # FetchDecision holds it: an abort, and only an abort, carries one
        return _aborted(fetched, decision.reason)
    by_label = {f.host.label: f for f in fetched}
    depools = _Depools()
    failed_fetch = [by_label[label].host for label in decision.depool]
    interrupted = await depool_hosts(config, history, failed_fetch, depools, before_the_switch=True)
    if interrupted:  # nobody switched yet: the hosts that fetched stay on their old tree
        unswitched = tuple(depools.mark(_stopped(f.result, INTERRUPTED)) for f in fetched)
        return RolloutResult(outcome_of_stopped_run(unswitched), unswitched, "interrupted", interrupted=True)
    tolerated = len(fetched)  # a rollback: no failure stops it
    if stop_past_budget:
        tolerated = switch_failures_tolerated(budget, len(labels), len(decision.depool))
    switch = _SwitchPhase(
        release, bounded(switch_command(release), config.fanout.command_timeout), config.fanout.command_timeout,
        tolerated, f"{len(decision.depool)} failed to fetch" if decision.depool else None, budget, progress,
        connector,
    )
    ready = [f for f in fetched if f.session is not None]
    if ready and before_switching is not None:
        try:
            before_switching()
        except StateError as exc:  # the run could not be noted: a run that dies would leave no trace, so stop
            reason = f"the history could not note the run before its switch ({exc}): no host switched"
            return _aborted(fetched, reason, depools)
    interrupted = await switch.run(ready, concurrency)
    switched = switch.results
    # failed hosts are on their old tree; past the budget the run stopped, and they are left in the pool like the
    # hosts it did not reach: depooling them would only shrink the pool, which that old release still serves
    failed_switch, beyond = switch.failed[:tolerated], switch.failed[tolerated:]
    if beyond:
        log.error("max_failures_reached", phase="switch", not_depooled=sorted(beyond))
    allowed = within_depool_cap(failed_switch, already_out | depools.out, config.depool.max_depooled, labels)
    if len(allowed) < len(failed_switch):
        log.error("max_depooled_reached", not_depooled=sorted(set(failed_switch) - set(allowed)))
    interrupted_late = await depool_hosts(
        config, history, [by_label[label].host for label in allowed], depools, before_the_switch=False
    )
    interrupted = interrupted or interrupted_late
    finals = _out_before(tuple(depools.mark(switched.get(f.host.label, f.result)) for f in fetched), already_out)
    if interrupted or switch.halted is not None:  # aborted only while no host switched, nobody depooled
        why = "interrupted" if interrupted else switch.outcome(len(set(beyond) - already_out))
        return RolloutResult(outcome_of_stopped_run(finals), finals, why, interrupted=interrupted)
    return RolloutResult(Outcome.OK if all(r.ok for r in finals) else Outcome.PARTIAL, finals)


def _out_before(results: tuple[HostResult, ...], already_out: frozenset[str]) -> tuple[HostResult, ...]:
    """`results`, each failed host this run did not depool but that was out of the pool before it marked so."""
    return tuple(
        replace(r, depooled_before=True) if r.failed and not r.depooled and r.host in already_out else r
        for r in results
    )


class _SwitchPhase:
    """Switch every ready host, `concurrency` at once. Ctrl-C, or more than `tolerated` failed switches, starts no
    further switch; the switches in flight end (each bounded by the command timeout) either way."""

    def __init__(
        self, release: RemoteRelease, command: HostCommand, timeout: float, tolerated: int,
        fetch_failures: str | None, budget: FailureBudget, progress: Progress, connector: Connector,
    ) -> None:
        self._release, self._command, self._timeout, self._tolerated = release, command, timeout, tolerated
        self._fetch_failures, self._budget = fetch_failures, budget
        self._progress, self._connector = progress, connector
        self.results: dict[str, HostResult] = {}
        self.failed: list[str] = []  # in the order their switches failed
        self.halted: str | None = None  # why no further switch starts, once too many failed
        self._interrupted = False

    async def run(self, ready: list[_Fetched], concurrency: int) -> bool:
        """Switch the hosts; True when Ctrl-C stopped the phase."""
        self._progress.phase("switch", len(ready))
        task = asyncio.ensure_future(fan_out(ready, self._switch_one, limit=concurrency))
        try:
            await asyncio.shield(task)
            return False
        except asyncio.CancelledError:
            self._interrupted = True
            log.warning("interrupted", phase="switch", in_flight=self._progress.in_flight())
            await task  # bounded: each switch in flight ends within command_timeout
            return True
        finally:
            self._progress.end()

    async def _switch_one(self, item: _Fetched) -> HostResult:
        if (held := self._held_back(item)) is not None:
            result = held
        else:
            self._progress.started(item.host.label)
            result = await _switch_host(
                item, self._release, self._command, self._timeout, self._look_again, self._switch_again
            )
            if result.failed:
                self.failed.append(item.host.label)
                if len(self.failed) > self._tolerated and self.halted is None:
                    self.halted = self._past_budget()
                    log.error("switch_stopped", reason=self.halted)
        self.results[item.host.label] = result
        self._progress.finished(item.host.label, result.ok, not_run=result.stopped)
        return result

    async def _switch_again(self, item: _Fetched, lost: NotStarted, began: float) -> HostResult:
        """The switch never reached the host (the fetch's connection was found closed, or would not open a session),
        so the host is as its fetch left it: open a new connection (one attempt, bounded by connect_timeout) and run
        the switch there, the host then switched or failed by that run as any host. One that cannot be reached
        again fails at `connect`: no command ran on it."""
        label = item.host.label
        if (held := self._held_back(item)) is not None:  # Ctrl-C, or the budget spent, before the new connection
            return held
        try:
            session = await self._connector.connect(item.host)
        except HostError as again:
            seconds = item.result.seconds + time.monotonic() - began
            return _failed_switch(label, f"{lost}; {NOT_REOPENED}: {again}", seconds, Phase.CONNECT)
        try:
            if (held := self._held_back(item)) is not None:  # ... or while it was opened: no switch starts now
                return held
            log.warning("switch_connection_reopened", host=label, error=str(lost))
            spent = replace(item.result, seconds=item.result.seconds + time.monotonic() - began)
            reopened = _Fetched(item.host, spent, session)
            return await _switch_host(reopened, self._release, self._command, self._timeout, self._look_again)
        finally:
            await close_sessions([session])

    def _held_back(self, item: _Fetched) -> HostResult | None:
        """The host's result when no switch may start on it any more (Ctrl-C, or too many failed), else None."""
        if self._interrupted:
            return _stopped(item.result, INTERRUPTED)
        if self.halted is not None:
            return _stopped(item.result, f"not switched: {self.halted}")
        return None

    async def _look_again(self, item: _Fetched, unseen: HostError, began: float) -> HostResult:
        """How a switch ended is unknown: its connection was lost (its script goes on without it on the host), or
        its reply did not come within command_timeout (a stalled network can hold back the reply of a switch that
        swapped the link). On a new connection, once that switch cannot run any more, report what the host really
        ended on, the release or its old tree, not a guess either way.

        A connection may be lost early: the look waits on the slot's switch lock for that switch to end (see
        remote.switch_outcome_command). A reply is late only at the deadline, when the host's own is past: the look
        first waits out the rest here (the KILL after it; a few seconds), so a switch that is not holding the lock
        yet (queued behind another run's) cannot swap after the look saw the old tree."""
        label, error = item.host.label, str(unseen)
        gone = began + gone_from_the_host(self._timeout)  # the switch is no longer running on the host by then
        timed_out, reached = False, Phase.CHECKOUT
        if isinstance(unseen, CommandTimeout):  # how far its output came: the phase it failed in, if it did
            timed_out, reached = True, last_phase(unseen.stdout, Phase.CHECKOUT)

        def seconds() -> float:
            return item.result.seconds + time.monotonic() - began

        if timed_out:
            await asyncio.sleep(max(gone - time.monotonic(), 0.0))
        wait = max(gone - time.monotonic(), 0.0) + _OUTCOME_CHECK_SECONDS
        probe = bounded(switch_outcome_command(self._release), wait)
        try:
            session = await self._connector.connect(item.host)
        except HostError as again:
            return _failed_switch(
                label, f"{error}; {NOT_SEEN_AGAIN}: {again}", seconds(), reached
            )
        try:
            answer = await session.run(probe.command, timeout=wait, stdin=probe.script)
        except HostError as again:
            return _failed_switch(label, f"{error}; {NOT_SEEN}: {again}", seconds(), reached)
        finally:
            session.close()
        result = seen_again(label, error, answer, self._release.commit, seconds(), reached)
        if result.ok:
            event = "switched_despite_timeout" if timed_out else "switched_despite_lost_connection"
            log.warning(event, host=label, error=error)
        else:
            log.debug("host_failed", host=label, phase=result.phase.value, error=result.error)
        return result

    def _past_budget(self) -> str:
        with_fetch = f" with the {self._fetch_failures}" if self._fetch_failures else ""
        failed = _hosts(len(self.failed))
        return f"{failed} failed to switch{with_fetch}, more than {self._budget.name} ({self._budget})"

    def outcome(self, left_pooled: int) -> str:
        """The run's reason once the phase stopped: how many failed (all of them, in flight ones included), and
        what the stop did."""
        not_started = sum(r.stopped for r in self.results.values())
        what = [f"{_hosts(not_started)} not switched" if not_started else "every host had already started"]
        if left_pooled:
            what.append(f"{_hosts(left_pooled, 'failed host')} left in the pool")
        return f"{self._past_budget()}: " + ", ".join(what)


def _hosts(count: int, noun: str = "host") -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


class _Fetcher:
    """The fetch phase for one host: connect, then fetch with bounded, jittered retries on network errors."""

    def __init__(self, config: Config, connector: Connector, command: HostCommand, release: RemoteRelease) -> None:
        self._connector = connector
        self._command = command
        self._release = release
        self._timeout = config.fanout.command_timeout
        self._retries = config.fanout.retries
        self._fetch_slots = asyncio.Semaphore(config.fanout.fetch_concurrency)
        self._random = random.Random()
        self.connected: set[str] = set()  # labels of the hosts whose connection is up: an interrupt says how far

    async def fetch(self, host: Host) -> _Fetched:
        begin = time.monotonic()
        try:
            session = await self._connector.connect(host)
        except ConnectError as exc:  # its own time: a connection opened early failed before this fetch began
            return _failed_fetch(host, Phase.CONNECT, str(exc), time.monotonic() - exc.seconds)
        self.connected.add(host.label)
        begin = time.monotonic() - session.connect_seconds  # not the wait for the publish, for one opened early
        deadline: float | None = None  # command_timeout counts from the first fetch, not the queue for a slot
        attempt = 0
        while True:
            try:
                async with self._fetch_slots:
                    if deadline is None:
                        deadline = time.monotonic() + self._timeout
                    result = await session.run(
                        self._command.command, timeout=max(deadline - time.monotonic(), 0.1), stdin=self._command.script
                    )
            except HostError as exc:
                session.close()
                return _failed_fetch(host, Phase.FETCH, str(exc), begin)
            except asyncio.CancelledError:
                session.close()
                raise
            if result.ok and not ran_to_its_end(result.stdout):
                session.close()
                return _failed_fetch(host, Phase.FETCH, NOT_RUN, begin)
            if result.ok:
                seconds = time.monotonic() - begin
                log.debug("host_fetched", host=host.label, seconds=round(seconds, 3))
                return _Fetched(host, HostResult(host.label, True, Phase.FETCH, seconds=seconds), session)
            delay = retry_delay(attempt, self._random)
            if (
                attempt < self._retries
                and not stopped_on_the_host(result.exit_status)  # its "early EOF" is the kill's, not the network's
                and is_transient_fetch_error(result.stderr)
                and time.monotonic() + delay < deadline
            ):
                log.info("fetch_retry", host=host.label, attempt=attempt + 1, error=result.error_line())
                attempt += 1
                await asyncio.sleep(delay)
                continue
            session.close()
            remedy = damaged_store_remedy(result.stderr, self._release)  # one line saying how to mend it, if known
            return _failed_fetch(host, Phase.FETCH, result.error_line(remedy), begin, result.stderr)


def _failed_fetch(host: Host, phase: Phase, error: str, begin: float, stderr: str = "") -> _Fetched:
    log.debug("host_failed", host=host.label, phase=phase.value, error=error, stderr_tail=stderr[-_TAIL:])
    return _Fetched(host, HostResult(host.label, False, phase, error, time.monotonic() - begin), None)


_OUTCOME_CHECK_SECONDS = 10.0  # for the look at a switch whose outcome is unknown, beyond that switch's own end


SEEN_AGAIN = "(seen on a new connection)"
NOT_RECORDED = (
    "the host's live tree is at the release's commit, but the switch did not get to its swap"
    " (it refuses a live tree changed on the host)"
)
NOT_REOPENED = "the fetch's connection was lost before the switch, and a new one could not be opened"


def seen_again(
    label: str, unseen: str, answer: CommandResult, commit: str, seconds: float, reached: Phase = Phase.CHECKOUT
) -> HostResult:
    """A switch whose outcome was `unseen` (its connection lost, its reply late), as the look on a new connection
    (remote.switch_outcome_command) `answer`ed: on the release `commit` as the slot's switch record says, ok, with a
    note saying how that was known (and `unchanged` when the look says the switch found it there); on another tree,
    or at that commit with no record of it, failed (at the phase the switch was seen to reach); no answer, failed,
    saying the outcome is still unknown."""
    on_the_commit = answer.ok and parse_head(answer.stdout) == commit
    if on_the_commit and found_recorded(answer.stdout):
        note, unchanged = f"{unseen}; on the release {SEEN_AGAIN}", found_unchanged(answer.stdout)
        return HostResult(label, True, Phase.DONE, seconds=seconds, note=note, unchanged=unchanged)
    if on_the_commit:  # the live tree it had, at the release's commit: the switch refused it, changed on the host
        return HostResult(label, False, reached, f"{unseen}; {NOT_RECORDED} {SEEN_AGAIN}", seconds)
    if answer.ok and ran_to_its_end(answer.stdout):
        return HostResult(label, False, reached, f"{unseen}; the host is not on the release {SEEN_AGAIN}", seconds)
    why = answer.error_line() if not answer.ok else NOT_RUN
    return HostResult(label, False, reached, f"{unseen}; {NOT_SEEN}: {why}", seconds)


def _failed_switch(
    label: str, error: str, seconds: float, phase: Phase = Phase.CHECKOUT, stderr: str = ""
) -> HostResult:
    log.debug("host_failed", host=label, phase=phase.value, error=error, stderr_tail=stderr[-_TAIL:])
    return HostResult(label, False, phase, error, seconds)


async def _switch_host(
    item: _Fetched,
    release: RemoteRelease,
    command: HostCommand,
    timeout: float,
    look_again: Callable[[_Fetched, HostError, float], Awaitable[HostResult]],
    switch_again: Callable[[_Fetched, NotStarted, float], Awaitable[HostResult]] | None = None,
) -> HostResult:
    """Run the switch of `release` (its `command`) on the host's session. A switch whose end was not seen (the
    connection lost, or the reply not in within `timeout`) before its swap marker came is settled by `look_again`;
    one that never reached the host, by `switch_again` (on a new connection), else it failed at `connect`, no
    command having run; one whose session did not even open within `timeout` failed at `connect` too: its time is
    spent, and there is nothing to look at. A switch that failed says what to do about it, when that is known
    (a damaged store: damaged_store_remedy)."""
    assert item.session is not None
    label, begin = item.host.label, time.monotonic()

    def failed(phase: Phase, error: str, stderr: str = "") -> HostResult:
        return _failed_switch(label, error, item.result.seconds + time.monotonic() - begin, phase, stderr)

    try:
        result = await item.session.run(command.command, timeout=timeout, stdin=command.script)
    except NotStarted as exc:  # the host is as the fetch left it: nothing to look at, the switch can still run
        return await switch_again(item, exc, begin) if switch_again is not None else failed(Phase.CONNECT, str(exc))
    except CommandTimeout as exc:
        if not exc.sent:  # the session never opened (a frozen connection): the host is as the fetch left it
            return failed(Phase.CONNECT, str(exc))
        # the host's own deadline comes first and is answered (exit 124): no reply at all by ours is a stall on the
        # way back, which may have held back the marker of a switch that ended, swap and all, on the host
        if last_phase(exc.stdout, Phase.CHECKOUT) is not Phase.DONE:
            return await look_again(item, exc, begin)
        log.warning("old_trees_not_pruned", host=label, error=str(exc))  # the link was swapped: on the release
        stdout = exc.stdout
    except HostError as exc:  # the connection was lost once the command may have been sent: it may be running
        return await look_again(item, exc, begin)
    else:
        reached = last_phase(result.stdout, Phase.CHECKOUT)
        if not result.ok and reached is not Phase.DONE:
            remedy = damaged_store_remedy(result.stderr, release, switch=True)  # as for a fetch's failure
            return failed(reached, result.error_line(remedy), result.stderr)
        if reached is not Phase.DONE:  # exit 0 without the swap's marker: the script never ran (see bounded)
            return failed(reached, NOT_RUN if not ran_to_its_end(result.stdout) else "ended before the swap")
        if not result.ok:
            log.warning("old_trees_not_pruned", host=label, error=result.error_line())
        if (note := result.wait_note()) is not None:  # another run switched this slot on this host at once
            log.warning("waited_for_another_switch", host=label, note=note)
        for note in result.notes():  # a quicker start of the tree did not build, or a kept tree was changed
            log.warning("tree_built_from_a_fresh_clone", host=label, note=note)
        stdout = result.stdout
    for tree in unpruned_trees(stdout):  # on the release all the same; the tree stays past keep_releases
        log.warning("old_trees_not_pruned", host=label, tree=tree, error=f"{tree} could not be removed")
    seconds = item.result.seconds + time.monotonic() - begin
    unchanged = found_unchanged(stdout)  # already on the release: the run moved nothing there
    log.debug("host_switched", host=label, seconds=round(seconds, 3), unchanged=unchanged)
    return HostResult(label, True, Phase.DONE, seconds=seconds, unchanged=unchanged)


@dataclass
class _Depools:
    """The run's depools so far: hosts out of the pool, and the failed commands' errors by host."""

    out: set[str] = field(default_factory=set)
    errors: dict[str, str] = field(default_factory=dict)

    def mark(self, result: HostResult) -> HostResult:
        """`result` with the host's depool state (and its depool command's error, if that failed)."""
        out, error = result.host in self.out, self.errors.get(result.host)
        if (result.depooled, result.depool_error) == (out, error):
            return result
        return replace(result, depooled=out, depool_error=error)


async def depool_hosts(
    config: Config, history: History, hosts: Sequence[Host], into: _Depools, *, before_the_switch: bool
) -> bool:
    """Depool each host once, adding to `into` the labels it worked for and the errors of the commands that failed
    (a failure is reported, not fatal: the host stays in the pool and its record says why); whether the run was
    interrupted meanwhile. An interrupt lets the depools in flight end (each is bounded by the depool timeout) and
    remembers them, so the run's record says which hosts are out of the pool. Before the switch, it starts no
    further depool (nobody will switch: the hosts left in the pool serve the same release as all the others);
    after it, the rest still run, as each of those hosts serves the old release beside switched ones."""
    stop = asyncio.Event()
    work = apply_pool_change(config, history, hosts, depool=True, stop=stop if before_the_switch else None)
    report, interrupted = await despite_interrupt(work, stop.set)
    if interrupted:
        log.warning("interrupted", phase="depool")
    into.out.update(report.changed)
    into.errors.update(dict(report.failed))
    return interrupted


def _aborted(fetched: Sequence[_Fetched], reason: str, depools: _Depools | None = None) -> RolloutResult:
    """The run stopped before any switch, for `reason`: every host that fetched is not switched, the hosts
    `depools` took out marked so; aborted while nobody was depooled, else partial."""
    log.error("rollout_aborted", reason=reason)
    unswitched = tuple(_stopped(f.result, "not switched: the run aborted") for f in fetched)
    if depools is not None:
        unswitched = tuple(depools.mark(result) for result in unswitched)
    return RolloutResult(outcome_of_stopped_run(unswitched), unswitched, reason)


def _stopped(result: HostResult, why: str) -> HostResult:
    """A host's result when the run stopped before its next step: a failure stays as it was; a host whose work so
    far succeeded is still not on the release (`ok` means on it), so it is reported as stopped, and why, at the
    phase it got to (a host that fetched and was never switched says `fetch`: `checkout` would read as a checkout
    that ran, or failed, on it)."""
    return result if not result.ok else HostResult(result.host, False, result.phase, why, result.seconds, stopped=True)


def _interrupted_fetch(
    targets: Sequence[Host], done: dict[str, _Fetched], connected: set[str]
) -> tuple[HostResult, ...]:
    """Every host's result when Ctrl-C stopped the fetch phase: what ended, as it ended (a host that fetched is
    not switched); the rest stopped where they were, connecting (or not begun) or fetching."""
    results = []
    for host in targets:
        fetched = done.get(host.label)
        if fetched is not None:
            results.append(_stopped(fetched.result, INTERRUPTED))
        elif host.label in connected:
            results.append(HostResult(host.label, False, Phase.FETCH, "interrupted during the fetch", stopped=True))
        else:
            results.append(
                HostResult(host.label, False, Phase.CONNECT, "interrupted before it was connected", stopped=True)
            )
    return tuple(results)


async def _close_all(fetched: Iterable[_Fetched], connector: Connector) -> None:
    """Close every session the run opened (bounded), then the connector."""
    await close_sessions([f.session for f in fetched if f.session is not None])
    await connector.close()
