"""The use cases that move hosts: sync (a new tag, or --retry-failed), rollback, and the dry-run plan.

Each runs under the slot's lock (its own, or the one `start` took), calls the pre hook before anything
changes, publishes the release while the first hosts' SSH connections open, rolls it out (canaries first),
calls the post hook with the outcome, and records the run.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import structlog

from sartoris.census import census
from sartoris.closing import DeployRun, left_on_reading_back
from sartoris.config import Config
from sartoris.errors import (
    ConfigError,
    InterruptedRun,
    LockHeldError,
    PublishError,
    RefusedError,
    SartorisError,
    StateError,
    UsageError,
)
from sartoris.hook_calls import post_hook, pre_hook
from sartoris.hooks import HookPhase
from sartoris.interrupts import despite_interrupt, run_stoppable_then
from sartoris.inventory import Host, machine_identity, recorded_host, resolve_hosts, unlisted
from sartoris.policy import FailureBudget, outcome_of_stopped_run, rejected_on_top, rollback_target
from sartoris.pool import depooled_among
from sartoris.progress import Progress
from sartoris.remote import RemoteRelease, fetch_command, switch_command
from sartoris.repo import Release, SlotCheckout
from sartoris.results import CANARY_FAILED, CANARY_PHASE, HostResult, HostState, Outcome, Phase, SyncReport
from sartoris.rollout import RolloutResult, roll_out
from sartoris.slot_hosts import beyond_the_fleet
from sartoris.state import DeployedRelease, History, SlotLock, existing_history, written_after_the_change
from sartoris.transport import Connector, ensure_open_files

log = structlog.get_logger("sartoris")


class PublishStop:
    """The one point where a publish (in a worker thread) and Ctrl-C (on the event loop) agree: either the publish
    commits first, and the run goes on to record itself as interrupted with the release, or the stop comes first,
    and the publish starts no further push and undoes its tag."""

    def __init__(self) -> None:
        self.requested = threading.Event()  # each push looks at it before it starts and while it runs
        self._lock = threading.Lock()
        self._committed = False

    def commit(self) -> None:
        """Called by the publish when it is complete; PublishError when the stop came first."""
        with self._lock:
            if self.requested.is_set():
                raise PublishError("interrupted while publishing")
            self._committed = True

    def request(self) -> bool:
        """Ask the publish to stop; whether it had already committed (then it stands)."""
        with self._lock:
            self.requested.set()
            return self._committed


# Publishes a run's release (pushes, and the tag for a new one) and returns it; stops at the PublishStop.
Publish = Callable[[PublishStop], Release]

CANARY_BUDGET = FailureBudget(count=0, name="the canaries' budget")


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """What the operator asked a sync or rollback to do."""

    slot: int
    targets: tuple[Host, ...]
    message: str
    concurrency: int
    budget: FailureBudget
    force: bool = False
    action: str = "sync"  # or "rollback": a rollback does not stop switching past max_failures (see roll_out)
    hosts_chosen: bool = False  # the operator named the hosts (--hosts), rather than the config's own `hosts`
    hosts_from: tuple[str, ...] = ()  # the hosts files `targets` came from, as absolute paths (see slot_hosts)


@contextmanager
def _run_lock(config: Config, slot: int, command: str, message: str, force: bool) -> Iterator[SlotLock | None]:
    """The slot's lock for one run; inside this operator's started deploy, start's lock (yielded) lets the run
    in and the started deploy's run lock keeps a second run out."""
    lock = SlotLock(config.state_dir, slot)
    held = lock.holder()
    if held is not None and lock.is_own_start(held):
        with SlotLock(config.state_dir, slot, run=True).held(command, message, force=force):
            now = lock.holder() or {}
            if [now.get(k) for k in ("command", "pid", "since")] != [held.get(k) for k in ("command", "pid", "since")]:
                raise RefusedError(f"slot {slot}: the started deploy ended as this {command} began; run it again")
            yield lock
        return
    with lock.held(command, message, force=force):
        yield None


def _refuse_if_locked(config: Config, slot: int, force: bool) -> None:
    """_run_lock's verdict without taking the lock: LockHeldError when a run there would be refused."""
    lock = SlotLock(config.state_dir, slot)
    held = lock.holder()
    if lock.is_own_start(held):
        lock = SlotLock(config.state_dir, slot, run=True)  # this operator's started deploy: one run at a time
        held = lock.holder()
    if held is not None and not (force and lock.may_be_broken(held)):
        raise LockHeldError(lock.describe(held))


def sync(
    config: Config, request: SyncRequest, *, retry_failed: bool = False, progress: Progress | None = None
) -> SyncReport:
    """Tag and publish a new release and roll it out; or, with retry_failed, re-roll the current release
    to the hosts that are not on it."""
    history = History(config.state_dir)
    with _run_lock(config, request.slot, "sync", request.message, request.force) as started_lock:
        started = time.time()
        checkout = SlotCheckout(config.checkout_path(request.slot), config.fanout.command_timeout)
        if retry_failed:  # the hosts a `sync --hosts` of the release added, which the fleet leaves out, too
            request = _with_the_hosts_beyond_the_fleet(config, request, history)
        connector, canary_hosts = _preflight(config, request)
        if not retry_failed:
            _check_the_canary_gate(config, request, canary_hosts)
        if retry_failed:
            known, targets = _retry_plan(config, request, checkout, history, progress)
            if not targets:  # no run: nothing recorded (log TAG keeps the real deploy's hosts), no hook announces
                why = "nothing to retry: every targeted host is on the tag"
                return SyncReport(
                    request.slot, known.tag, known.commit, Outcome.OK, (), time.time() - started, why, kept=False
                )
            publish: Publish = partial(_already_published, known)
        else:
            checkout.ensure_clean()
            checkout.ensure_submodules_initialised(checkout.head_commit())
            tag = checkout.next_tag(config.deploy.name, request.slot, datetime.now(UTC))
            pre_hook(config, HookPhase.PRE_SYNC, "sync", request.slot, tag, request.message)
            publish = partial(_tag_and_publish, config, request.slot, checkout, tag, request.message)
            targets = request.targets
        return _roll_out_and_record(
            config, request, publish, targets, history, "sync", started,
            canary_hosts=() if retry_failed else canary_hosts, connector=connector, progress=progress,
            before_switching=partial(_note_switching, started_lock), recorded=partial(_note_synced, started_lock),
        )


def _note_synced(started_lock: SlotLock | None, report: SyncReport) -> None:
    """Inside a started deploy, once a sync or rollback is written down (before its post hook, which a kill -9 may
    cut short: finish then announces the run's record, not a run that died switching), note the tag it put hosts
    on (finish announces the release the hosts run, not one rolled back from; a rollback of part of the fleet
    leaves the deploy's release as it was), and the tag of its last run whatever its outcome (so finish announces
    a deploy whose only sync aborted as aborted); the run is no longer switching."""
    noted = {"switching": None, "last_run": report.tag}
    if report.outcome is not Outcome.ABORTED and report.sets_release:  # a rollback of part of the fleet moved a few
        noted["synced"] = report.tag
    # the run is over and recorded: a note that cannot be written costs a warning, never its report
    _note_in_the_deploy(started_lock, "deploy_lock_not_updated", report.tag, **noted)


def _note_switching(started_lock: SlotLock | None, tag: str) -> None:
    """Inside a started deploy, note that a run's hosts may begin switching to `tag`: if the run dies before it
    ends (kill -9, a power cut), abort still knows that hosts may run that tag, and refuses."""
    _note_in_the_deploy(started_lock, "switching_not_noted", tag, switching=tag)  # a safety net: the run goes on


def _note_in_the_deploy(started_lock: SlotLock | None, warning: str, tag: str, **fields: str | None) -> None:
    """Add `fields` to the started deploy's lock, if the run is inside one; a lock that cannot be written (a full
    disk, the lock gone) is logged as `warning`, not raised."""
    if started_lock is None:
        return
    try:
        started_lock.update(**fields)
    except (RefusedError, OSError) as exc:
        log.warning(warning, tag=tag, lock=str(started_lock.path), error=str(exc))


def rollback(config: Config, request: SyncRequest, to: str | None, progress: Progress | None = None) -> SyncReport:
    """Switch the hosts back to the previous deployed release of the slot (or tag `to`); no fetch where the
    commits are already on the host."""
    history = History(config.state_dir)
    with _run_lock(config, request.slot, "rollback", request.message, request.force) as started_lock:
        started = time.time()
        checkout = SlotCheckout(config.checkout_path(request.slot), config.fanout.command_timeout)
        request = _with_the_hosts_beyond_the_fleet(config, request, history)  # the release leaves them too
        connector, _ = _preflight(config, request)
        tag = _rollback_tag(checkout, history.deployed(request.slot), request.slot, to)
        release = checkout.release_of(tag)
        pre_hook(config, HookPhase.PRE_ROLLBACK, "rollback", request.slot, tag, request.message)
        url, connect_timeout = config.publish_url(request.slot), config.fanout.connect_timeout
        republish = partial(_republish, checkout, release, url, connect_timeout)
        return _roll_out_and_record(
            config, request, republish, request.targets, history, "rollback",
            started, canary_hosts=(), connector=connector, progress=progress,
            before_switching=partial(_note_switching, started_lock), recorded=partial(_note_synced, started_lock),
            to=release.commit,
        )


def _preflight(config: Config, request: SyncRequest) -> tuple[Connector, tuple[Host, ...]]:
    """Read everything a run needs before anything changes: keys, known_hosts, ssh config, canary groups,
    and the open-files limit the run's connections need (sessions stay open from the fetch to the switch), so
    a bad setting is a one-line error with no tag made and no host touched. The connector that read them, and
    the targeted canaries, serve the whole run. A damaged history is refused too: the run could not be recorded."""
    if (history := existing_history(config.state_dir)) is not None:
        history.ensure_sound()
    hooks_dir = config.deploy.hooks_dir
    if config.deploy.hooks_dir_set and not os.path.lexists(hooks_dir):  # misspelt: its pre hook would not gate
        raise ConfigError(f"{config.path}: [deploy] hooks_dir {hooks_dir} does not exist (no hooks would run)")
    ensure_open_files(len(request.targets) + min(request.concurrency, len(request.targets)))
    return Connector(config.ssh, config.fanout.connect_timeout), _canaries(config, request.targets)


def _rollback_tag(checkout: SlotCheckout, deployed: Sequence[DeployedRelease], slot: int, to: str | None) -> str:
    """The tag a rollback switches to, from the slot's deployed releases (newest first): `to`, which must name a
    tag this slot deployed (the contract's "given deployed tag": not any tag, nor a revision like `TAG^{}`, nor a
    release a canary rejected) that its working copy still has, else bad input (exit 2); without `to`, the
    previous deploy's, else refused (exit 4)."""
    if to is None:
        tag = rollback_target(deployed)
        if tag is None:
            raise RefusedError(f"slot {slot} has no earlier deploy to roll back to; pass --to TAG")
        return tag
    runs = [release for release in deployed if release.tag == to]  # switched hosts: not aborted
    if not runs:
        raise UsageError(
            f"--to {to!r}: no run in slot {slot}'s history switched hosts to that tag (an aborted run switches none;"
            " `sartoris log` lists every run)"
        )
    if all(release.rejected for release in runs):  # it reached only canaries, and one failed on it
        raise UsageError(f"--to {to!r}: a canary rejected that release; it never went out to the fleet")
    if not checkout.has_tag(to):
        raise UsageError(f"--to {to!r}: {checkout.path} no longer has that tag")
    return to


def _tag_and_publish(
    config: Config, slot: int, checkout: SlotCheckout, tag: str, message: str, stop: PublishStop
) -> Release:
    """Tag and push the release; if that fails or the run is stopped first, the tag is deleted again (the
    publish target holds the tag only once everything else is there, see SlotCheckout.publish)."""
    release = checkout.tag_release(tag, message)
    try:
        checkout.publish(release, config.publish_url(slot), stop.requested, config.fanout.connect_timeout)
        stop.commit()
    except BaseException:
        problem = checkout.delete_tag(tag)
        if problem is not None:  # say so, but report why the publish failed
            log.error("tag_not_deleted", tag=tag, error=problem)
        raise
    log.info("release_published", tag=tag, commit=release.commit, submodules=len(release.submodules))
    return release


def _republish(
    checkout: SlotCheckout, release: Release, url: str, connect_timeout: float, stop: PublishStop
) -> Release:
    """Push an existing release again (rollback): a no-op when the publish target still has it."""
    checkout.publish(release, url, stop.requested, connect_timeout)
    stop.commit()
    return release


def _already_published(release: Release, stop: PublishStop) -> Release:
    """The release of a retry: the sync it retries published it."""
    stop.commit()
    return release


def _retry_plan(
    config: Config, request: SyncRequest, checkout: SlotCheckout, history: History, progress: Progress | None
) -> tuple[Release, tuple[Host, ...]]:
    """The slot's current release and the targeted hosts not on it (a census finds them)."""
    rejected = rejected_on_top(history.deployed(request.slot))
    if rejected is not None:  # retrying would take a release its canaries failed to everyone
        raise RefusedError(
            f"slot {request.slot}: the last sync ({rejected.tag}) stopped in its canary phase (a canary failed, or"
            " the run died); sync again (canaries first), or put the canaries back with `sartoris rollback`"
        )
    last = history.last_deployed(request.slot)
    if last is None:
        raise RefusedError(f"slot {request.slot} has no deploy to retry; run a sync first")
    depooled = depooled_among(history, request.targets, config.depool.scope)
    statuses = asyncio.run(
        census(config, request.slot, request.targets, last.commit, depooled, request.concurrency, progress)
    )
    stragglers = tuple(h for h, s in zip(request.targets, statuses, strict=True) if s.state is not HostState.CURRENT)
    log.info("retry_targets", tag=last.tag, hosts=len(stragglers), current=len(request.targets) - len(stragglers))
    return checkout.release_of(last.tag), stragglers


def _with_the_hosts_beyond_the_fleet(config: Config, request: SyncRequest, history: History) -> SyncRequest:
    """For a run of the config's own hosts (no --hosts) that moves hosts off or onto the slot's release (a rollback,
    a retry), or a rollback whose --hosts cover them all (`--hosts fleet`: it makes its release the slot's, and left
    the new servers on the one rolled back from, which status then no longer asked): those hosts plus the ones
    runs of that release named beyond them (a `sync --hosts fleet --hosts new`), as their hosts files list them now
    (slot_hosts); the request as it was otherwise."""
    current = history.last_deployed(request.slot)
    if current is None:
        return request
    if request.hosts_chosen and not (request.action == "rollback" and _names_the_whole_fleet(config, request.targets)):
        return request
    beyond = beyond_the_fleet(config, history, request.slot, current.commit, request.targets)
    hosts = beyond.hosts
    if request.action == "rollback":  # it takes the release off the hosts: only those that may run it
        port = config.ssh.default_port
        on_it = {host.key(port) for host in _left_on(config, history, request.slot, current.commit)}
        hosts = tuple(host for host in hosts if host.key(port) in on_it)
    if not hosts:
        return request
    log.info("beyond_the_fleet", tag=current.tag, hosts=[host.label for host in hosts])
    files = tuple(dict.fromkeys((*request.hosts_from, *beyond.files)))
    return replace(request, targets=(*request.targets, *hosts), hosts_from=files)


def _depools_not_remembered(
    config: Config, history: History, targets: Sequence[Host], hosts: Sequence[HostResult]
) -> tuple[str, ...]:
    """The hosts the run depooled that the pool state does not hold as out, because the history would not take
    the change (a full disk, a locked database): `status` and `pool --caught-up` do not know they are out."""
    depooled = {r.host for r in hosts if r.depooled}
    if not depooled:
        return ()
    out = [h for h in targets if h.label in depooled]
    try:
        remembered = depooled_among(history, out, config.depool.scope)
    except StateError:  # a history that cannot be read does not know them either
        remembered = frozenset()
    return tuple(h.label for h in out if h.label not in remembered)


def _roll_out_and_record(
    config: Config,
    request: SyncRequest,
    publish: Publish,
    targets: Sequence[Host],
    history: History,
    action: str,
    started: float,
    *,
    canary_hosts: tuple[Host, ...],
    connector: Connector,
    progress: Progress | None,
    before_switching: Callable[[str], None],
    recorded: Callable[[SyncReport], None],
    to: str | None = None,
) -> SyncReport:
    """Publish, roll out and write the run down, tell `recorded` (before the post hook), then run the post hook.
    `to`: a rollback's commit, known before it publishes."""
    begun: list[int] = []  # the history's note of this run, once hosts may switch
    sets_release = _sets_the_slots_release(config, request, history, action, to)

    def switching(release: Release) -> None:
        """Before a phase's first host may switch: the started deploy's note, then the history's, written once, in
        the canary phase as not yet past its canaries, and cleared of that when the rest begin switching. A
        StateError stops the run before any switch: a run the history cannot note is not begun."""
        before_switching(release.tag)
        if begun:
            history.past_the_canaries(begun[0])
            return
        in_canary_phase = CANARY_PHASE if canary_hosts else None
        begun.append(
            history.begin(
                action, request.slot, release.tag, release.commit, request.message, started, in_canary_phase,
                targets=[host.label for host in targets], sets_release=sets_release,
            )
        )

    def report_and_record(ran: tuple[Release, RolloutResult]) -> tuple[SyncReport, bool]:
        """Write the run down (Ctrl-C is held meanwhile, so the record is never cut or lost)."""
        release, result = ran
        report = SyncReport(
            slot=request.slot,
            tag=release.tag,
            commit=release.commit,
            outcome=result.outcome,
            hosts=result.hosts,
            seconds=time.time() - started,
            reason=result.abort_reason,
            sets_release=sets_release,
            hosts_from=request.hosts_from,
        )
        with written_after_the_change(action, tag=release.tag, outcome=report.outcome.value) as written:
            history.record(action, report, request.message, started, begun[0] if begun else None)
        if written.error is not None:
            report = replace(report, not_recorded=written.error)
        forgotten = _depools_not_remembered(config, history, targets, report.hosts)
        if forgotten:
            report = replace(report, depools_not_recorded=forgotten)
        recorded(report)
        return report, result.interrupted

    progress = progress or Progress()
    run = _publish_and_deploy(config, request, publish, targets, canary_hosts, history, connector, progress, switching)
    (report, interrupted), pressed_while_recording = run_stoppable_then(run, report_and_record)
    try:
        post = HookPhase.POST_SYNC if action == "sync" else HookPhase.POST_ROLLBACK
        failed = tuple(r.host for r in report.hosts if r.failed)
        stopped = tuple(r.host for r in report.hosts if r.stopped)
        outcome = report.outcome.value
        message = request.message
        hook_error = post_hook(config, post, action, request.slot, report.tag, outcome, failed, message, stopped)
        if hook_error is not None:
            report = replace(report, hook_error=hook_error)
    except KeyboardInterrupt:  # the hook is stopped (hooks.py); the run is recorded: still print its report
        interrupted = True
    if interrupted or pressed_while_recording:
        raise InterruptedRun(report)
    return report


def _sets_the_slots_release(
    config: Config, request: SyncRequest, history: History, action: str, to: str | None = None
) -> bool:
    """Whether the run makes its release the slot's (DeployedRelease.sets_the_release): every sync does, and a
    rollback to the slot's release itself (`to`: its commit; a rejected canary release above it is left behind). A
    rollback does when it targets every host of the config's fleet ([deploy] hosts), or every host the slot's runs
    left on its release that a hosts file still lists (a `sync --hosts` undone; the last group of a rollback done
    group by group), compared as machines (`mw1`, `mw1:22` and `deploy@mw1` are one). A rollback of part of them
    leaves the slot's release where the rest are. A config naming no fleet, or one whose hosts cannot be read, has
    none to leave part of: the run counts as covering it, as every run did before this was noted. Decided when
    the run starts: a later edit of the hosts files rewrites nothing."""
    if action != "rollback" or not request.hosts_chosen:  # its targets are the fleet
        return True
    port = config.ssh.default_port
    try:
        fleet = config.fleet()
    except (SartorisError, OSError):
        return True
    if not unlisted(fleet, request.targets, port):
        return True
    current = history.last_deployed(request.slot)
    if current is None or current.commit == to:
        return True
    listed = {host.key(port) for host in (*fleet, *config.listed_hosts())}
    listed |= {host.key(port) for host in beyond_the_fleet(config, history, request.slot, current.commit, fleet).hosts}
    on_it = [host for host in _left_on(config, history, request.slot, current.commit) if host.key(port) in listed]
    return not unlisted(on_it, request.targets, port)


def _names_the_whole_fleet(config: Config, targets: Sequence[Host]) -> bool:
    """Whether `targets` hold every machine of [deploy] hosts (however each is spelt); False for a config naming no
    fleet, or one whose hosts cannot be read: its --hosts are all there is to go by."""
    try:
        fleet = config.fleet()
    except (SartorisError, OSError):
        return False
    return bool(fleet) and not unlisted(fleet, targets, config.ssh.default_port)


def _left_on(config: Config, history: History, slot: int, commit: str) -> list[Host]:
    """The hosts the slot's runs left on `commit`, or that may run it (closing.left_on), from its runs of `commit`
    and its runs newest first back to the newest that settled each host of those: not its whole history."""
    runs_of_it = (DeployRun.from_entry(entry) for entry in history.runs_of(slot, commit))
    newest_first = (DeployRun.from_entry(entry) for entry in history.runs_back_from(slot))
    labels = left_on_reading_back(newest_first, runs_of_it, commit, machine_identity(config.ssh.default_port))
    return [host for label in labels if (host := recorded_host(label))]


async def _publish_and_deploy(
    config: Config,
    request: SyncRequest,
    publish: Publish,
    targets: Sequence[Host],
    canary_hosts: tuple[Host, ...],
    history: History,
    connector: Connector,
    progress: Progress,
    before_switching: Callable[[Release], None],
) -> tuple[Release, RolloutResult]:
    """Publish while the first hosts' connections open, then deploy."""
    first = (canary_hosts or tuple(targets))[: request.concurrency]
    try:
        release = await _publish_while_connecting(publish, connector, first)
        switching = partial(before_switching, release)
        return release, await _deploy(
            config, request, release, targets, canary_hosts, history, connector, progress, switching
        )
    finally:  # the rollout closes what it used; this closes the early connections nothing took (after a failed
        # or interrupted publish, or an error)
        await despite_interrupt(connector.close())


async def _publish_while_connecting(publish: Publish, connector: Connector, first: Sequence[Host]) -> Release:
    """Run `publish` (the deploy host's git, in a worker thread) while the SSH connections the rollout starts with
    open: the handshakes load the hosts and the publish this machine, so neither waits for the other. No host runs
    anything before the release is published.

    On Ctrl-C (or SIGTERM) the publish is told to stop: it ends the push in flight, starts no further one, and
    deletes the tag it made (a git command other than a push gets the terminal's Ctrl-C, or ends within its
    timeout). If it had already completed, the release stands and the run goes on only to stop at once, so the
    rollout records it as interrupted with that tag."""
    stop = PublishStop()
    connector.open_early(first)
    job = asyncio.ensure_future(asyncio.to_thread(publish, stop))
    try:
        return await asyncio.shield(job)
    except asyncio.CancelledError:
        if stop.request():
            release = await job  # it has committed: it is returning
            run = asyncio.current_task()
            assert run is not None
            run.cancel()  # the rollout's first wait sees the Ctrl-C, and records the run as interrupted
            return release
        await asyncio.wait([job])
        if not job.cancelled():
            job.exception()  # retrieved: the publish's own failure ("stopped") is the interrupt's doing
        raise


async def _deploy(
    config: Config,
    request: SyncRequest,
    release: Release,
    targets: Sequence[Host],
    canary_hosts: tuple[Host, ...],
    history: History,
    connector: Connector,
    progress: Progress,
    before_switching: Callable[[], None],
) -> RolloutResult:
    """Canaries first (any failure stops the run), then the rest of the targets."""
    remote = _remote_release(config, request.slot, release)
    rest = [h for h in targets if h not in canary_hosts]
    canary = None
    if canary_hosts:
        log.info("canaries", hosts=[h.label for h in canary_hosts])
        canary = await roll_out(
            config,
            remote,
            canary_hosts,
            concurrency=request.concurrency,
            budget=CANARY_BUDGET,
            history=history,
            connector=connector,
            progress=progress,
            pool=targets,  # max_depooled counts over the whole run, not the canaries alone
            before_switching=before_switching,
        )
        if canary.outcome is not Outcome.OK or canary.interrupted:
            failed = [r.host for r in canary.hosts if r.failed]
            # a canary failing is the canaries' verdict; a stop before any did (the history unreadable) is not
            why = CANARY_FAILED if failed else canary.abort_reason or CANARY_FAILED
            why = "interrupted" if canary.interrupted else why
            if failed and not canary.interrupted:
                log.error("canary_failed", failed=failed)
            skipped = tuple(  # never begun: not connected, let alone fetched
                HostResult(h.label, False, Phase.CONNECT, f"not attempted: {why}", stopped=True) for h in rest
            )
            hosts = _in_order(targets, canary.hosts + skipped)
            return RolloutResult(outcome_of_stopped_run(hosts), hosts, why, canary.interrupted)
    main = await roll_out(
        config, remote, rest, concurrency=request.concurrency, budget=request.budget, history=history,
        connector=connector, progress=progress, pool=targets, stop_past_budget=request.action != "rollback",
        before_switching=before_switching,
    )
    if canary is None:
        return main
    hosts = _in_order(targets, canary.hosts + main.hosts)
    # the rest aborted (or was interrupted) after the canaries switched: not "aborted", which promises no host did
    outcome = outcome_of_stopped_run(hosts) if main.outcome is Outcome.ABORTED else main.outcome
    return RolloutResult(outcome, hosts, main.abort_reason, main.interrupted)


def _in_order(targets: Sequence[Host], results: Sequence[HostResult]) -> tuple[HostResult, ...]:
    by_label = {r.host: r for r in results}
    return tuple(by_label[h.label] for h in targets)


def _canaries(config: Config, targets: Sequence[Host]) -> tuple[Host, ...]:
    """The targeted hosts listed in the `canaries` groups, in target order."""
    if not config.deploy.canaries:
        return ()
    port = config.ssh.default_port
    canaries = resolve_hosts(config.deploy.canaries, config.hosts_dir, Path.cwd(), port, base=config.base_dir)
    canary_keys = {h.key(port) for h in canaries}
    return tuple(h for h in targets if h.key(port) in canary_keys)


def _check_the_canary_gate(config: Config, request: SyncRequest, canary_hosts: Sequence[Host]) -> None:
    """Configured canaries of which no host is targeted would skip the canary phase without a word (a name spelt
    otherwise than in the hosts files, `mw1:22` for `mw1`, turned the gate off): refused (exit 2) for the
    config's own hosts, said on stderr for hosts the operator chose with --hosts (a few hosts, a new server)."""
    if not config.deploy.canaries or canary_hosts:
        return
    groups = ", ".join(config.deploy.canaries)
    if request.hosts_chosen:
        log.warning("no_canary_targeted", canaries=groups, note="no canary phase: none of their hosts is targeted")
        return
    raise ConfigError(
        f"{config.path}: [deploy] canaries ({groups}): none of their hosts is among [deploy] hosts, so the canary"
        " phase would be skipped; list them as the hosts files do (name and port)"
    )


def _remote_release(config: Config, slot: int, release: Release) -> RemoteRelease:
    return RemoteRelease(
        slot_path=config.remote_slot_path(slot),
        fetch_url=config.fetch_url(slot),
        tag=release.tag,
        commit=release.commit,
        submodules=release.submodules,
        keep_trees=config.deploy.keep_releases,
        umask=config.deploy.umask,
        run=secrets.token_hex(8),
    )


_PART_OF_THE_FLEET = "part of the fleet: the slot's release would stay the one the others run (status compares with it)"


@dataclass(frozen=True, slots=True)
class SyncPlan:
    """What a sync would do, computed without changing anything (`sync --dry-run`)."""

    slot: int
    tag: str
    commit: str
    publish_url: str
    hosts: tuple[str, ...]
    canaries: tuple[str, ...]
    fetch_command: str
    switch_command: str
    budget: str
    action: str = "sync"
    sets_release: bool = True  # the run would make its release the slot's (_sets_the_slots_release)

    def as_json(self) -> dict[str, object]:
        """The `sync --json` shape, plus the plan's own keys. No host has run anything: each is a host the run
        stopped before its turn (ok false, phase connect, stopped), as the contract's types want (not null)."""
        return {
            "slot": self.slot,
            "tag": self.tag,
            "commit": self.commit,
            "outcome": "planned",
            "counts": {
                "targeted": len(self.hosts), "ok": 0, "failed": 0, "depooled": 0, "not_switched": len(self.hosts)
            },
            "hosts": [self._host_json(host) for host in self.hosts],
            "publish_url": self.publish_url,
            "max_failures": self.budget,
            "canaries": list(self.canaries),
            "commands": {"fetch": self.fetch_command, "switch": self.switch_command},
            "sets_release": self.sets_release,
        }

    def _host_json(self, host: str) -> dict[str, object]:
        return {
            "host": host,
            "ok": False,
            "phase": Phase.CONNECT.value,
            "error": None,
            "depooled": False,
            "seconds": 0.0,
            "stopped": True,
            "canary": host in self.canaries,
        }

    def describe(self) -> str:
        what = "roll back" if self.action == "rollback" else "sync"
        to = f"{self.tag}" if self.action == "rollback" else f"a new tag {self.tag}"
        lines = [
            f"would {what} slot {self.slot} to {to} at {self.commit[:12]}",
            f"  publish to {self.publish_url}; {len(self.hosts)} hosts; abort past {self.budget} fetch failures"
            + ("" if self.action == "rollback" else f", start no further switch past {self.budget} failures in all"),
        ]
        if self.action == "rollback":  # whether the run would change the slot's release (not for part of the fleet)
            sets = f"the slot's release would be {self.tag} (status compares with it)"
            lines.append(f"  {sets if self.sets_release else _PART_OF_THE_FLEET}")
        if self.canaries:
            lines.append(f"  canaries first: {', '.join(self.canaries)}")
        lines += [
            "  fetch on each host:",
            *("    " + line for line in self.fetch_command.splitlines()),
            "  then switch on each host:",
            *("    " + line for line in self.switch_command.splitlines()),
        ]
        return "\n".join(lines)


def plan_rollback(config: Config, request: SyncRequest, to: str | None) -> SyncPlan:
    """`rollback --dry-run`: the tag a rollback would switch the hosts to (checked as the rollback would check it),
    whether it would make it the slot's release, and the host commands, refused as the run would be (a lock held by
    another run, what _preflight reads), changing nothing."""
    _refuse_if_locked(config, request.slot, request.force)
    # no history yet is no deploy yet; opening it would create it
    history = existing_history(config.state_dir)
    if history is not None:  # the hosts the rollback would take the release off, as it would
        request = _with_the_hosts_beyond_the_fleet(config, request, history)
    _preflight(config, request)
    deployed = history.deployed(request.slot) if history is not None else []
    checkout = SlotCheckout(config.checkout_path(request.slot), config.fanout.command_timeout)
    release = checkout.release_of(_rollback_tag(checkout, deployed, request.slot, to))
    # the run's own decision, on what the run would see (no history has no release to roll back to: refused above)
    sets_release = history is None or _sets_the_slots_release(config, request, history, "rollback", release.commit)
    return replace(_plan(config, request, release, (), "rollback"), sets_release=sets_release)


def plan_sync(config: Config, request: SyncRequest) -> SyncPlan:
    """The dry run: read the working copy, name the tag it would create, build the host commands; refused as
    the run would be (a lock held by another run, a dirty checkout, unreadable keys or known_hosts, an unknown
    canary group), without taking or changing anything."""
    _refuse_if_locked(config, request.slot, request.force)
    _, canaries = _preflight(config, request)
    _check_the_canary_gate(config, request, canaries)
    checkout = SlotCheckout(config.checkout_path(request.slot), config.fanout.command_timeout)
    checkout.ensure_clean()
    commit = checkout.head_commit()
    checkout.ensure_submodules_initialised(commit)
    tag = checkout.next_tag(config.deploy.name, request.slot, datetime.now(UTC))
    return _plan(config, request, Release(tag, commit, checkout.submodules_at(commit)), canaries, "sync")


def _plan(
    config: Config, request: SyncRequest, release: Release, canaries: Sequence[Host], action: str
) -> SyncPlan:
    """A dry run's plan of `release` to the request's hosts: what each host would be sent."""
    remote = _remote_release(config, request.slot, release)
    return SyncPlan(
        slot=request.slot,
        tag=release.tag,
        commit=release.commit,
        publish_url=config.publish_url(request.slot),
        hosts=tuple(h.label for h in request.targets),
        canaries=tuple(h.label for h in canaries),
        fetch_command=fetch_command(remote),
        switch_command=switch_command(remote),
        budget=str(request.budget),
        action=action,
    )
