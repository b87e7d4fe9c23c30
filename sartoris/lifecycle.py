"""Bracketing a deploy: `start` takes the slot's lock and remembers the checkout and the slot's release, `finish`
releases it, `abort` puts the checkout back where start found it (only while every host may run only a release
it ran at start, or the slot's release then) and releases it."""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable, Collection, Hashable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import structlog

from sartoris.closing import (
    DeployRun,
    SameHost,
    abort_refusal,
    announcement,
    on_commit,
    since_each_was_switched,
    targeting_every_host,
)
from sartoris.config import Config
from sartoris.errors import InterruptedRun, LockHeldError, RefusedError, SartorisError
from sartoris.hook_calls import post_hook
from sartoris.hooks import HookPhase
from sartoris.inventory import machine_identity
from sartoris.repo import KEPT_REF_PREFIX, Restored, SlotCheckout
from sartoris.slots import refuse_an_unknown_slot
from sartoris.state import History, SlotLock, existing_history, shown, written_after_the_change

log = structlog.get_logger("sartoris")


@dataclass(frozen=True, slots=True)
class LifecycleReport:
    """What start, finish or abort did, for the terminal and --json."""

    action: str
    slot: int
    lock: dict[str, Any] | None
    detail: str
    hook_stopped: bool = False  # an interrupt stopped the finish or abort hook
    hook_error: str | None = None  # why the finish or abort hook (the announcement) failed, when it did
    partly_removed: tuple[str, ...] = ()  # folders abort meant to remove and could not remove whole: not done clean

    def as_json(self) -> dict[str, Any]:
        return {
            "action": self.action, "slot": self.slot, "lock": self.lock, "detail": self.detail,
            "hook_stopped": self.hook_stopped, "hook_error": self.hook_error,
            "partly_removed": list(self.partly_removed),
        }


def start(config: Config, slot: int, message: str, *, no_remote: bool, force: bool) -> LifecycleReport:
    """Take the slot's lock for a deploy, record HEAD and submodule commits, fetch upstream (unless --no-remote)."""
    checkout = SlotCheckout(config.checkout_path(slot), config.fanout.command_timeout)
    history = History(config.state_dir)  # a state folder that cannot be used refuses the start before the lock
    history.ensure_sound()
    lock = SlotLock(config.state_dir, slot)
    head = checkout.head_commit()
    # the lock before the working copy: while another deploy holds the slot, its edits are its operator's, and the
    # refusal names that deploy (not "commit or stash" someone else's work)
    lock.acquire(
        "start",
        message,
        force=force,
        head=head,
        branch=checkout.branch(),
        submodules=checkout.submodule_heads(),
        no_remote=no_remote,
    )
    try:
        checkout.ensure_clean(before="a start")
        SlotLock(config.state_dir, slot, run=True).break_if_stale()  # left by a killed run of an earlier deploy
        # read under the lock, so no other run comes between: the deploy's runs are the rows after this mark
        mark, live = history.newest_id(), history.last_deployed(slot)
        lock.update(history_mark=mark, live_tag=live.tag if live else None, live_commit=live.commit if live else None)
        if not no_remote:
            checkout.fetch_upstream()
    except BaseException:
        lock.release()
        raise
    with written_after_the_change("start", slot=slot):
        history.record_event("start", slot, message, {"head": head}, commit=head)
    detail = f"slot {slot} locked at {head[:12]}" + (" (no remote fetch: live hack)" if no_remote else "")
    return LifecycleReport("start", slot, lock.holder(), detail)


@contextmanager
def _started_deploy(config: Config, slot: int, action: str, force: bool) -> Iterator[tuple[SlotLock, dict[str, Any]]]:
    """The started deploy's lock and record, with its run lock held throughout `action`, so no sync or rollback
    of that deploy runs meanwhile (nor starts while it ends). A run lock whose process is gone is broken."""
    lock, run_lock = SlotLock(config.state_dir, slot), SlotLock(config.state_dir, slot, run=True)
    try:
        run_lock.break_if_stale()  # a killed run's; an unreadable one only by the operator's --force
        run_lock.acquire(action)
    except LockHeldError as exc:
        raise RefusedError(
            f"{exc}; wait for it to end before you {action} (if that run is gone, remove {run_lock.path})"
        ) from None
    try:
        held = lock.holder()  # read under the run lock: what the last run of the deploy recorded is in it
        if (why := lock.unreadable(held)) is not None:  # whose deploy it holds, if any, is unknown
            raise RefusedError(
                f"slot {slot}: the lock file {lock.path} cannot be read ({why}), so whose deploy it holds is unknown;"
                " once no deploy is in progress, remove that file"
            )
        if held is None or held.get("command") != "start":
            raise RefusedError(f"slot {slot} has no deploy in progress (no `sartoris start`) to {action}")
        if not lock.is_ours(held) and not force:
            raise RefusedError(lock.describe(held) + f"; pass --force to {action} someone else's deploy")
        yield lock, held
    finally:
        run_lock.release()


def _deploy_runs(
    history: History, slot: int, held: dict[str, Any]
) -> tuple[tuple[str, str] | None, list[DeployRun] | None, int | None]:
    """The slot's release (tag, commit) when the started deploy `held` began, the deploy's runs, oldest first
    (None when where they begin is unknown), and the id of the newest row before them (see _runs_before). A lock
    taken by an earlier Sartoris notes neither: its
    runs are those after its own `start` row (the slot's newest start, written once the lock was taken, and
    every Sartoris wrote it), not those begun after its time, which is to the second only (a sync that ended
    in the second the start began would pass for the deploy's)."""
    mark = held.get("history_mark")
    if not isinstance(mark, int):
        mark = _start_row(history, slot, held)
        if mark is None:
            return None, None, None
    if "live_tag" in held:
        tag, commit = held.get("live_tag"), held.get("live_commit")
        live = (tag, commit) if isinstance(tag, str) and isinstance(commit, str) else None
    else:
        release = history.last_deployed(slot, up_to=mark)
        live = (release.tag, release.commit) if release is not None else None
    return live, [DeployRun.from_entry(entry) for entry in history.runs_after(slot, mark)], mark


def _runs_before(
    history: History, slot: int, mark: int | None, machines: Collection[Hashable] | None, same_host: SameHost
) -> list[DeployRun]:
    """The slot's runs by row `mark` (before a deploy), oldest first, that say where `machines` were when it started
    (all of them for None): read newest first, back to the newest that switched each, and no further; a slot with
    years of history is not read whole (closing.since_each_was_switched). None where the mark is unknown."""
    if mark is None:
        return []
    newest_first = (DeployRun.from_entry(entry) for entry in history.runs_back_from(slot, mark))
    return since_each_was_switched(newest_first, machines, same_host)


def _and_their_hosts(
    fleet: frozenset[Hashable] | None, runs: list[DeployRun], same_host: SameHost
) -> frozenset[Hashable] | None:
    """The machines where abort asks where each was at start: the fleet's and those the deploy's runs named (None,
    every machine, when the fleet is unknown: then every host the history names counts)."""
    if fleet is None:
        return None
    return fleet | {same_host(host) for run in runs for host in (*run.named, *run.maybe_switched)}


def _start_row(history: History, slot: int, held: dict[str, Any]) -> int | None:
    """The id of the `start` row of the deploy `held` (a lock with no history mark): the slot's newest start, if it
    is this deploy's (the head the lock noted, written no earlier than the lock's time); None when the history
    has none (its write failed)."""
    row = history.newest_start(slot)
    if row is None or row.commit != held.get("head") or row.started < _since(held.get("since")):
        return None
    return row.id


def _same_host(config: Config) -> SameHost:
    """Hosts as the machines they name, as targeting dedupes them: `mw1`, `mw1:22` and `deploy@mw1` are one."""
    return machine_identity(config.ssh.default_port)


def _fleet(labels: tuple[str, ...] | None, same_host: SameHost) -> frozenset[Hashable] | None:
    """The machines a rollback of the whole fleet would switch ([deploy] hosts, their `labels`: _fleet_labels); None
    when the config names none or its hosts cannot be read (then every host the history names counts)."""
    return None if labels is None else frozenset(same_host(label) for label in labels)


def _fleet_labels(config: Config) -> tuple[str, ...] | None:
    """[deploy] hosts as their group files write them; None when they cannot be read."""
    try:
        return tuple(host.label for host in config.fleet())
    except (SartorisError, OSError):
        return None


def _not_yet_on_it(
    fleet: frozenset[Hashable] | None, before: list[DeployRun], runs: list[DeployRun], tag: object,
    same_host: SameHost,
) -> tuple[frozenset[Hashable] | None, Mapping[Hashable, str]]:
    """The machines of the fleet that the slot's runs, the deploy's included, did not leave on `tag`'s commit for
    certain, and of those the ones that may run it or not (with their labels): of the first, the ones the deploy's
    runs did not name are the hosts a sync of part of the fleet did not reach, unless they are of the second (then
    whether they run it is unknown). A host already on the commit (a retry names only the hosts a census found
    behind; a new tag of the commit the fleet runs) is no part of the fleet left out."""
    commit = next((run.commit for run in runs if run.tag == tag), None)
    if fleet is None or commit is None:
        return fleet, {}
    held = on_commit([*before, *runs], commit, same_host)
    maybe = {machine: label for machine, label in held.maybe.items() if machine in fleet}
    return frozenset(machine for machine in fleet if machine not in held.on), maybe


def _since(since: object) -> float:
    """A lock's `since` (UTC, to the second) as a time; 0 (the whole history) when it cannot be read."""
    try:
        return float(calendar.timegm(time.strptime(str(since), "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return 0.0


def _refuse_an_unknown_slot(config: Config, slot: int) -> None:
    """A finish or abort of a slot this deploy host knows nothing of (no working copy, no lock, no history of it) is
    a typo of its number: bad input (exit 2), as for start and status, said before a lock or a history is made."""
    if SlotLock(config.state_dir, slot).holder() is None:
        history = existing_history(config.state_dir)
        refuse_an_unknown_slot(config, slot, history is not None and history.has_rows_of(slot))


def finish(config: Config, slot: int, *, force: bool) -> LifecycleReport:
    """Release the lock of a started deploy and run the finish hook (announce)."""
    _refuse_an_unknown_slot(config, slot)
    history = History(config.state_dir)
    same_host = _same_host(config)
    fleet = _fleet(_fleet_labels(config), same_host)
    with _started_deploy(config, slot, "finish", force) as (lock, held):
        # unknown: its release is announced as not in the history
        _, runs, mark = _deploy_runs(history, slot, held)
        before = _runs_before(history, slot, mark, fleet or frozenset(), same_host)  # only the fleet is counted
        lock.release()
    # a run that died while switching (its hosts may run its tag, whatever an earlier run synced); else the
    # release the hosts run; else the tag of the deploy's last run, which aborted
    tag = held.get("synced") or held.get("last_run")
    fleet, maybe_on = _not_yet_on_it(fleet, before, runs or [], tag, same_host)
    said = announcement(runs or [], tag, held.get("switching"), same_host, fleet, maybe_on)
    message = held.get("message", "")
    with written_after_the_change("finish", slot=slot):
        record = {"synced": held.get("synced"), "outcome": said.outcome} | ({"rejected": True} if said.rejected else {})
        # its outcome is what it announced (a deploy that ran nothing ended ok), not always ok
        history.record_event("finish", slot, message, record, tag=said.tag or "", outcome=said.outcome or "ok")
    report = LifecycleReport("finish", slot, None, said.detail(slot))
    return _after_the_hook(
        report,
        lambda: post_hook(
            config, HookPhase.FINISH, "finish", slot, said.tag, said.outcome, said.failed, message, said.not_switched
        ),
    )


def abort(config: Config, slot: int, *, force: bool) -> LifecycleReport:
    """While every host may run only a release it ran at start, or the slot's release then (a retry that finished
    that release on a host it had failed on; see closing.abort_refusal): restore the
    checkout and submodules to where start found them, release the lock."""
    _refuse_an_unknown_slot(config, slot)
    history = History(config.state_dir)
    with _started_deploy(config, slot, "abort", force) as (lock, held):
        live, runs, mark = _deploy_runs(history, slot, held)
        if runs is None:
            raise RefusedError(
                f"slot {slot}: the deploy's lock (taken by an earlier Sartoris) does not say where its runs begin in"
                " the history, which has no `start` of it: which hosts its runs moved is unknown, so there is no"
                " release to name for a rollback: see `sartoris status`, put the hosts back, then end the deploy"
                " with `sartoris finish`"
            )
        noted = [tag for tag in (held.get("synced"), held.get("last_run")) if isinstance(tag, str) and tag]
        # the switching note is made before a run's first switch and cleared when it ends: that run died
        same_host = _same_host(config)
        labels = _fleet_labels(config)  # the hosts files read once
        fleet = _fleet(labels, same_host)
        before = _runs_before(history, slot, mark, _and_their_hosts(fleet, runs, same_host), same_host)
        # a run before the deploy that died while switching, noted by an earlier Sartoris (no targets), may have
        # reached any host: each the fleet or a run names may have run its release at start
        named = (host for run in [*before, *runs] for host in run.named)
        before = targeting_every_host(before, [*(labels or ()), *named])
        head = held.get("head")
        found = head if isinstance(head, str) else None
        refusal = abort_refusal(slot, live, runs, noted, held.get("switching"), same_host, before, fleet, found)
        if refusal is not None:
            raise RefusedError(refusal)
        if not isinstance(head, str):
            raise RefusedError(f"slot {slot}: the lock does not say where the checkout was; restore it by hand")
        checkout = SlotCheckout(config.checkout_path(slot), config.fanout.command_timeout)
        checkout.ensure_no_uncommitted_edits(before="an abort (it would discard them)")
        if held.get("branch") and checkout.branch() != held["branch"]:
            raise RefusedError(
                f"slot {slot}: the checkout moved from branch {shown(held['branch'])} to {checkout.branch()};"
                " switch back before aborting"
            )
        # start found a detached HEAD (branch recorded as None): put HEAD back there, leaving every branch alone
        detach = "branch" in held and held["branch"] is None
        keep_under = f"{KEPT_REF_PREFIX}slot{slot}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
        restored = checkout.restore(head, keep_under, detach=detach, since=_since(held.get("since")) or None)
        lock.release()
    with written_after_the_change("abort", slot=slot):
        history.record_event("abort", slot, held.get("message", ""), {"restored": head}, commit=head)
    detail = f"slot {slot} restored to {head[:12]} and released" + _said(restored)
    report = LifecycleReport("abort", slot, None, detail, partly_removed=restored.partly_removed)
    return _after_the_hook(
        report, lambda: post_hook(config, HookPhase.ABORT, "abort", slot, None, "aborted", (), held.get("message", ""))
    )


def _said(restored: Restored) -> str:
    """What abort says of the work trees of submodules the deploy added, which restoring the checkout left (or could
    remove only part of), and of the commits it kept under a ref (no ref reached them once the checkout was put
    back)."""
    leftovers = restored.leftovers
    removed = [shown(left.path) for left in leftovers if left.kept is None and not left.replaced]
    said = (
        f"; removed {', '.join(removed)} (the work tree of a submodule this deploy added, holding nothing its commits"
        " do not; its repository stays under .git/modules)"
        if removed
        else ""
    )
    for left in leftovers:
        if left.partly is not None:
            said += (
                f"; could not remove all of {shown(left.path)}, the work tree of a submodule this deploy added, which"
                " held nothing its commits do not (its repository stays under .git/modules):"
                f" {shown(left.partly.error)}; {shown(left.partly.describe())}; remove what is left of it"
            )
        elif left.replaced:
            said += (
                f"; put back {shown(left.path)} as `start` found it, in place of the work tree of a submodule this"
                " deploy added there, which held nothing its commits do not (its repository stays under .git/modules)"
            )
        elif left.kept is not None:
            said += (
                f"; left {shown(left.path)}, the work tree of a submodule this deploy added, as an untracked folder:"
                f" {shown(left.kept)}; remove it once nothing in it is needed"
            )
    for kept in restored.kept:
        said += f"; kept {shown(kept.describe())} (`git -C {shown(kept.git_dir or kept.path)} log {kept.ref}`)"
    return said


def _after_the_hook(report: LifecycleReport, hook: Callable[[], str | None]) -> LifecycleReport:
    """`report`, once `hook` (finish's or abort's, run when the command is done and recorded) has run, with why the
    hook failed if it did. An interrupt there stops the hook; the command is done all the same, so it still reports,
    saying that its hook (what it would have announced) was stopped: InterruptedRun, exit 130, as sync after an
    interrupted post hook."""
    try:
        hook_error = hook()
    except KeyboardInterrupt:
        what = f"its {report.action} hook was stopped"
        detail = f"{report.detail}; interrupted: {what} (what it announces may not have gone out)"
        stopped = replace(report, detail=detail, hook_stopped=True)
        raise InterruptedRun(stopped, f"interrupted: the {report.action} is done and recorded; {what}") from None
    if hook_error is None:
        return report
    return replace(report, detail=f"{report.detail}; {hook_error}", hook_error=hook_error)

