"""What a run produced, host by host: frozen records that check their own invariants.

A host that fails is a HostResult with ok=False and the phase it failed in, never an exception.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


class Phase(enum.StrEnum):
    """How far a host got; for a failed host, the phase that failed."""

    CONNECT = "connect"
    FETCH = "fetch"
    CHECKOUT = "checkout"
    SUBMODULES = "submodules"
    DONE = "done"


# A run's reason when a canary failed: its release reached at most the canaries and was rejected there, so it
# is never the slot's current release (status's baseline, --retry-failed's tag) nor a rollback's target.
CANARY_FAILED = "a canary failed"
# An unfinished run's note while only its canaries may switch: a run that dies there is as good as rejected (its
# release passed no canary), so status, --retry-failed and rollback do not take it for the fleet's release.
CANARY_PHASE = "unfinished in its canary phase"

# How a host whose switch's outcome stayed unknown says so in its error: its connection was lost or its reply late,
# and the look on a new connection could not tell (rollout._look_again). Its switch may have swapped the link: the
# host may run the release, though it is filed as failed.
NOT_SEEN_AGAIN = "could not connect again to see how it ended"
NOT_SEEN = "could not see how it ended"


def switch_unseen(error: object) -> bool:
    """A failed host's `error` says its switch may have ended on the release, unseen (see NOT_SEEN)."""
    return isinstance(error, str) and (f"; {NOT_SEEN_AGAIN}: " in error or f"; {NOT_SEEN}: " in error)


class Outcome(enum.StrEnum):
    """The verdict on a whole sync or rollback."""

    OK = "ok"
    PARTIAL = "partial"
    ABORTED = "aborted"


class HostState(enum.StrEnum):
    """Where a host's slot stands compared with the last deploy."""

    CURRENT = "current"
    BEHIND = "behind"
    MISSING = "missing"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True, slots=True)
class HostResult:
    """One host's outcome in one phase of a run. `ok`: on the release. `stopped`: not on it because the run
    stopped before this host's turn (aborted, interrupted, a canary failed), not because the host failed."""

    host: str
    ok: bool
    phase: Phase
    error: str | None = None
    seconds: float = 0.0
    depooled: bool = False
    stopped: bool = False
    depool_error: str | None = None  # the depool command failed: the host is still in the pool, and why
    # a host on the release whose switch's outcome was first unknown (its connection lost, its reply late): how
    # it was settled, e.g. "timed out after 15s; on the release (seen on a new connection)"
    note: str | None = None
    unchanged: bool = False  # on the release before the run: its switch found the slot there and changed nothing
    # a failed host this run did not depool (past max_failures or max_depooled) that an earlier run or an operator
    # had taken out of the pool: it is out, not "left in the pool"
    depooled_before: bool = False

    def __post_init__(self) -> None:
        if self.ok == bool(self.error):
            raise ValueError(f"{self.host}: ok={self.ok} contradicts error={self.error!r}")
        if self.unchanged and not self.ok:
            raise ValueError(f"{self.host}: a host left unchanged on the release is on it")
        if self.note and not self.ok:
            raise ValueError(f"{self.host}: a failed host says why in its error, not in a note")
        if self.ok and self.stopped:
            raise ValueError(f"{self.host}: a host on the release was not stopped")

    @property
    def failed(self) -> bool:
        """The host itself failed (what hooks are told, what is depooled), as opposed to stopped."""
        return not self.ok and not self.stopped

    def as_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "ok": self.ok,
            "phase": self.phase.value,
            "error": self.error,
            "depooled": self.depooled,
            "seconds": round(self.seconds, 3),
            "stopped": self.stopped,
            "depool_error": self.depool_error,
            "note": self.note,
            "unchanged": self.unchanged,
            "depooled_before": self.depooled_before,
        }


@dataclass(frozen=True, slots=True)
class SyncReport:
    """A finished sync or rollback: the release and every targeted host's final result."""

    slot: int
    tag: str
    commit: str
    outcome: Outcome
    hosts: tuple[HostResult, ...]
    seconds: float = 0.0
    reason: str | None = None
    not_recorded: str | None = None  # why the deploy host's history could not take the run, when it could not
    depools_not_recorded: tuple[str, ...] = ()  # hosts the run depooled that the pool state does not hold as out
    kept: bool = True  # False for a run meant to leave no record (a --retry-failed with nothing to retry)
    # the run makes its release the slot's: false for a rollback of part of the fleet (see deploy)
    sets_release: bool = True
    hosts_from: tuple[str, ...] = ()  # the hosts files its targets came from, as absolute paths (see slot_hosts)
    hook_error: str | None = None  # why its post hook (cache purge, announcement) failed, when it did

    def __post_init__(self) -> None:
        failed = sum(not r.ok for r in self.hosts)
        if self.outcome is Outcome.OK and failed:
            raise ValueError("an ok sync cannot have failed hosts")
        if self.outcome is Outcome.PARTIAL and not failed:
            raise ValueError("a partial sync needs at least one failed host")

    @property
    def counts(self) -> dict[str, int]:
        return {
            "targeted": len(self.hosts),
            "ok": sum(r.ok for r in self.hosts),
            "failed": sum(r.failed for r in self.hosts),
            "depooled": sum(r.depooled for r in self.hosts),
            "not_switched": sum(r.stopped for r in self.hosts),
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "slot": self.slot,
            "tag": self.tag,
            "commit": self.commit,
            "outcome": self.outcome.value,
            "counts": self.counts,
            "hosts": [r.as_json() for r in self.hosts],
            "seconds": round(self.seconds, 3),
            "reason": self.reason,
            "recorded": self.kept and self.not_recorded is None and not self.depools_not_recorded,
            "sets_release": self.sets_release,
            "hosts_from": list(self.hosts_from),
            "hook_error": self.hook_error,
        }


@dataclass(frozen=True, slots=True)
class HostStatus:
    """One host's answer to the census."""

    host: str
    state: HostState
    commit: str | None = None
    depooled: bool = False
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "state": self.state.value,
            "commit": self.commit,
            "depooled": self.depooled,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class StatusReport:
    """The census of a slot across the targeted hosts, against the last tag deployed from here."""

    slot: int
    tag: str | None
    commit: str | None
    hosts: tuple[HostStatus, ...]
    lock: dict[str, Any] | None = None

    @property
    def counts(self) -> dict[str, int]:
        states = Counter(h.state for h in self.hosts)
        counts = {state.value: states.get(state, 0) for state in HostState}
        counts["depooled"] = sum(h.depooled for h in self.hosts)
        return counts

    @property
    def all_current(self) -> bool:
        return all(h.state is HostState.CURRENT for h in self.hosts)

    def as_json(self) -> dict[str, Any]:
        return {
            "slot": self.slot,
            "tag": self.tag,
            "commit": self.commit,
            "lock": self.lock,
            "counts": self.counts,
            "hosts": [h.as_json() for h in self.hosts],
        }


def group_by_error(results: Iterable[HostResult]) -> list[tuple[str, list[str]]]:
    """Failed hosts grouped by identical (phase, error), biggest group first, as dshbak would."""
    groups: dict[str, list[str]] = {}
    for result in results:
        if not result.ok:
            groups.setdefault(f"{result.phase.value}: {result.error}", []).append(result.host)
    return sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
