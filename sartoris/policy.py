"""Pure decisions: how many failed hosts a run tolerates, abort or go on, who is depooled, when to retry.

Nothing here does I/O; the deploy use cases call these with the results they collected.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Protocol

from sartoris.results import HostResult, Outcome, Phase

_COUNT_DIGITS = 9  # a host count is below 10**9, written as text or as an integer
_COUNT = re.compile(rf"[0-9]{{1,{_COUNT_DIGITS}}}")
_PERCENT = re.compile(r"(?P<number>[0-9]{1,3}(?:\.[0-9]{1,6})?)%")


@dataclass(frozen=True, slots=True)
class FailureBudget:
    """How many failed hosts a run tolerates: an absolute count or a percentage of the targeted hosts."""

    count: int | None = None
    percent: float | None = None
    name: str = field(default="max_failures", compare=False)  # what an abort's reason calls it

    def __post_init__(self) -> None:
        """Hold exactly one of count or percent, each in its range, so every budget can be evaluated."""
        if (self.count is None) == (self.percent is None):
            raise ValueError("a failure budget needs exactly one of count or percent")
        if self.count is not None and (isinstance(self.count, bool) or self.count < 0):
            raise ValueError(f"a failure budget count must be a whole number >= 0, not {self.count!r}")
        if self.percent is not None and not 0.0 <= self.percent <= 100.0:
            raise ValueError(f"a failure budget percentage must be from 0% to 100%, not {self.percent!r}")

    @classmethod
    def parse(cls, value: int | str) -> FailureBudget:
        """Read 3, "3", "5%" or "2.5%"; a ValueError's message starts "must be" so callers prefix the key."""
        expected = 'must be a number of hosts (like 3) or a percentage from 0% to 100% (like "5%")'
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValueError(f"{expected}, not {value!r}")
        if isinstance(value, int):
            if not 0 <= value < 10**_COUNT_DIGITS:
                raise ValueError(f"{expected}, not {value!r}")
            return cls(count=value)
        text = value.strip()
        if _COUNT.fullmatch(text):
            return cls(count=int(text))
        match = _PERCENT.fullmatch(text)
        if match is None or float(match["number"]) > 100.0:
            raise ValueError(f"{expected}, not {value!r}")
        return cls(percent=float(match["number"]))

    def allowed(self, targeted: int) -> int:
        """The number of failed hosts tolerated out of `targeted`; a percentage rounds down."""
        if targeted < 0:
            raise ValueError(f"targeted hosts must be >= 0, not {targeted}")
        if self.count is not None:
            return self.count
        assert self.percent is not None  # __post_init__ guarantees one of the two
        # Fraction(str(...)) keeps "0.29%" exact; float arithmetic would floor 29.0 down to 28.
        return math.floor(Fraction(str(self.percent)) * targeted / 100)

    def exceeded(self, failed: int, targeted: int) -> bool:
        """True when MORE hosts failed than the budget allows; exactly at the budget goes on."""
        return failed > self.allowed(targeted)

    def __str__(self) -> str:
        """The budget as an operator writes it: "3" or "5%"."""
        if self.count is not None:
            return str(self.count)
        assert self.percent is not None
        percent = float(self.percent)  # an int passed as percent has no is_integer() before Python 3.12
        return f"{int(percent) if percent.is_integer() else percent}%"


@dataclass(frozen=True, slots=True)
class FetchDecision:
    """After the fetch phase: abort the whole run (and why), or depool the failed hosts and switch the rest."""

    abort: bool
    depool: tuple[str, ...]
    proceed: tuple[str, ...]
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.abort and (self.proceed or self.depool):
            raise ValueError("an aborted run switches no host and depools nobody")
        if self.abort != (self.reason is not None):
            raise ValueError("an abort, and only an abort, carries a reason")


def decide_after_fetch(
    results: Sequence[HostResult],
    budget: FailureBudget,
    *,
    depool_cap: FailureBudget | None = None,
    already_depooled: frozenset[str] = frozenset(),
    pool: Sequence[str] | None = None,
) -> FetchDecision:
    """Abort past the failure budget, or when depooling the failed would take out more than depool_cap of the
    targeted hosts (counting those already out); otherwise depool exactly the failed hosts, switch the rest.
    Hosts already out of the pool never stop a run that takes no one else out (a hotfix for them included).
    `pool`: the hosts the budget's percentage and the cap count over, when more than these results (the whole
    run: canaries and the rest)."""
    failed = tuple(r.host for r in results if not r.ok)
    targeted = list(pool) if pool is not None else [r.host for r in results]  # "N% of the targeted hosts": the run's
    if budget.exceeded(len(failed), len(targeted)):
        reason = f"{len(failed)} of {len(results)} hosts failed to fetch, more than {budget.name} ({budget}"
        if budget.percent is not None and len(targeted) != len(results):  # after the canaries, or the canaries
            reason += f" of the run's {len(targeted)} hosts: {budget.allowed(len(targeted))}"
        reason += ")"
        return FetchDecision(abort=True, depool=(), proceed=(), reason=reason)
    newly_out = [host for host in failed if host not in already_depooled]
    out_after = already_depooled.intersection(targeted).union(failed)
    if depool_cap is not None and newly_out and depool_cap.exceeded(len(out_after), len(targeted)):
        reason = (
            f"depooling {len(newly_out)} more would leave {len(out_after)} of {len(targeted)} hosts out of the pool,"
            f" more than max_depooled ({depool_cap})"
        )
        return FetchDecision(abort=True, depool=(), proceed=(), reason=reason)
    return FetchDecision(abort=False, depool=failed, proceed=tuple(r.host for r in results if r.ok))


def switch_failures_tolerated(budget: FailureBudget, targeted: int, failed_to_fetch: int) -> int:
    """How many hosts may fail their switch before the run starts no further switch: what the budget leaves after
    the fetch phase's failures. Both count against it, as exit 5 has it ("the failed hosts, within max_failures,
    were depooled"): a release that fails to switch everywhere stops after a few hosts instead of taking the
    whole fleet out of the pool."""
    return max(0, budget.allowed(targeted) - failed_to_fetch)


class _Release(Protocol):
    """What a rollback needs of a deployed release (sartoris.state.DeployedRelease)."""

    @property
    def tag(self) -> str: ...
    @property
    def commit(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def rejected(self) -> bool: ...
    @property
    def sets_the_release(self) -> bool: ...


def rollback_target(newest_first: Sequence[_Release]) -> str | None:
    """The tag `rollback` (without --to) goes back to: what ran before the current release, the way a stack of
    deploys unwinds. A sync pushes its release (replacing a rejected one on top: a canary failure is never
    gone back to); a rollback pops back to its release, or, to one no longer on the stack (popped by an earlier
    rollback), pops every release first synced after it, then pushes it: a rollback goes back in time, so what it
    left is never below it. So a second rollback goes further back instead of returning to the release just
    rolled back from. A rollback of part of the fleet is no step: it left the slot's release to the rest, and a
    rollback goes back from that. None when there is nothing below the current release."""
    stack: list[_Release] = []
    first_synced: dict[str, int] = {}  # commit -> when its first sync ran, in the order of the history
    for when, release in enumerate(reversed([r for r in newest_first if r.sets_the_release])):
        if release.action != "rollback":
            first_synced.setdefault(release.commit, when)
        if stack and stack[-1].rejected:
            stack.pop()
        if release.action == "rollback" and any(r.commit == release.commit for r in stack):
            while stack[-1].commit != release.commit:
                stack.pop()
        elif release.action == "rollback" and release.commit in first_synced:
            while stack and first_synced.get(stack[-1].commit, -1) > first_synced[release.commit]:
                stack.pop()
            stack.append(release)
        elif stack and stack[-1].commit == release.commit and not release.rejected:
            stack[-1] = release  # a re-sync of what runs; a rejected one stays apart, to be dropped on its own
        else:
            stack.append(release)
    current = stack[-1].commit if stack else None
    return next((r.tag for r in reversed(stack) if r.commit != current and not r.rejected), None)


def rejected_on_top(newest_first: Sequence[_Release]) -> _Release | None:
    """The slot's newest release, when a canary rejected it (or its run died in the canary phase): a retry would
    take it to everyone. A rollback of part of the fleet on top of it is no step (see rollback_target): it does not
    make the rejected release any less the newest."""
    newest = next((release for release in newest_first if release.sets_the_release), None)
    return newest if newest is not None and newest.rejected else None


def within_depool_cap(
    candidates: Sequence[str], already_depooled: frozenset[str], cap: FailureBudget | None, targeted: Sequence[str]
) -> tuple[str, ...]:
    """The candidates that may be depooled without the pool losing more than `cap` of the targeted hosts."""
    if cap is None:
        return tuple(candidates)
    out = set(already_depooled.intersection(targeted))
    chosen = []
    for host in candidates:
        if host in out or not cap.exceeded(len(out) + 1, len(targeted)):
            chosen.append(host)
            out.add(host)
    return tuple(chosen)


# git's wording when the transport to the publish server broke, as opposed to a bad ref or a broken repo.
_TRANSIENT_FETCH = re.compile(
    r"connection reset|early eof|the remote end hung up|could not read from remote repository"
    r"|unable to connect|connection refused|connection timed out|operation timed out|unexpected disconnect"
    r"|connection closed|could not resolve host|rpc failed|read error|broken pipe|temporary failure"
    r"|service unavailable|http 50[234]|returned error: 50[234]",
    re.IGNORECASE,
)
# ... and the wording of a request no retry will fix, which git (or ssh) follows with the same "could not read
# from remote repository" as a broken connection: no such repository, refused login, changed host key.
_PERMANENT_FETCH = re.compile(
    r"does not appear to be a git repository|repository not found|permission denied"
    r"|host key verification failed|couldn't find remote ref|not our ref|returned error: 40[134]",
    re.IGNORECASE,
)
RETRY_BASE_SECONDS = 0.5
RETRY_CAP_SECONDS = 8.0


def outcome_of_stopped_run(hosts: Sequence[HostResult]) -> Outcome:
    """The verdict of a run stopped early (a canary failed, or Ctrl-C before or between switches): `aborted`
    only while it is true that no host switched and nobody was depooled, as exit 3 promises (a host its switch
    found already on the release's commit, `unchanged`, was not switched); else `ok` when every host ended on the
    release, else `partial`."""
    if not any((r.ok and r.phase is Phase.DONE and not r.unchanged) or r.depooled for r in hosts):
        return Outcome.ABORTED
    return Outcome.OK if all(r.ok for r in hosts) else Outcome.PARTIAL


def is_transient_fetch_error(stderr: str) -> bool:
    """True when git's stderr says the network or the server failed (worth retrying), not the request."""
    return bool(_TRANSIENT_FETCH.search(stderr)) and not _PERMANENT_FETCH.search(stderr)


def retry_delay(attempt: int, rng: random.Random) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)], so retries spread out."""
    return rng.uniform(0.0, min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2**attempt))
