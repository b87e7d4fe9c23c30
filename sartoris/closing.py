"""Pure decisions on ending a started deploy, from the runs it made (its syncs and rollbacks as the history wrote
them down, oldest first): whether `abort` may put the checkout back, and what `finish` says of a release.

Nothing here does I/O: lifecycle reads the deploy's lock and history and calls these.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sartoris.results import CANARY_FAILED
from sartoris.state import UNFINISHED, shown


@dataclass(frozen=True, slots=True)
class DeployRun:
    """One sync or rollback of a started deploy: its release, how it ended, and where it left each host."""

    action: str
    tag: str
    commit: str
    outcome: str  # ok, partial, aborted, or unfinished: noted before its first switch and never written down
    rejected: bool = False  # a canary failed on its release
    switched: tuple[str, ...] = ()  # hosts it put on its release
    failed: tuple[str, ...] = ()  # hosts that failed themselves
    not_switched: tuple[str, ...] = ()  # hosts it stopped before their turn

    @classmethod
    def from_record(cls, action: str, tag: str, commit: str, outcome: str, report: Mapping[str, Any]) -> DeployRun:
        """The run from its history row (older records have no `stopped`: every host not on the release failed)."""
        hosts = [h for h in report.get("hosts") or [] if isinstance(h, dict) and isinstance(h.get("host"), str)]
        return cls(
            action,
            tag,
            commit,
            outcome,
            rejected=report.get("reason") == CANARY_FAILED,
            switched=tuple(h["host"] for h in hosts if h.get("ok")),
            failed=tuple(h["host"] for h in hosts if not h.get("ok") and not h.get("stopped")),
            not_switched=tuple(h["host"] for h in hosts if not h.get("ok") and h.get("stopped")),
        )

    @property
    def unfinished(self) -> bool:
        """The run died while its hosts could switch: any of them may run its release."""
        return self.outcome == UNFINISHED


def abort_refusal(
    slot: int,
    live: tuple[str, str] | None,
    runs: Sequence[DeployRun],
    noted: Iterable[str] = (),
    switching: str | None = None,
) -> str | None:
    """Why `abort` must leave the deploy as it is, or None when no host may run a release other than `live` (the
    slot's release, tag and commit, when the deploy started): each host is where the last of `runs` that switched
    it put it, and a run that died while switching (`switching`, the lock's note, or an unfinished run) may have
    put any. A rollback to `live`, a retry that only finished it, a run that switched no host: abort may go on.
    `noted`: the tags the deploy's lock says its runs went to; one that is not among `runs` (the history did not
    take it) leaves where hosts are unknown."""
    live_tag, live_commit = live if live is not None else (None, None)
    back = f"`sartoris rollback --to {live_tag}` (the release live at `start`)" if live_tag else None
    recorded = {run.tag for run in runs}
    lost = [tag for tag in noted if tag not in recorded]
    if lost:
        return (
            f"slot {slot}: this deploy's run of {shown(lost[0])} is not in the history, so which hosts run it is"
            " unknown: see `sartoris status`, then " + (f"{back} or " if back else "") + "`sartoris finish`"
        )
    died = [run.tag for run in runs if run.unfinished and run.commit != live_commit]
    if switching or died:
        return (
            f"slot {slot}: a run of this deploy died while switching hosts to {shown(switching or died[-1])}, so some"
            " may run it: see `sartoris status`, then "
            + (f"{back} or " if back else "")
            + "`sync --retry-failed`, and `finish`"
        )
    moved = _unique(runs[i].tag for i in sorted(set(_last_switch(runs).values())) if runs[i].commit != live_commit)
    if not moved:
        return None
    if back is None:
        return (
            f"slot {slot}: this deploy put hosts on {', '.join(moved)}, and no release was live before it, so there is"
            " none to roll back to: end the deploy with `sartoris finish`"
        )
    return (
        f"slot {slot}: this deploy put hosts on {', '.join(moved)}; {back} puts them back, then `sartoris abort`"
        " restores the checkout (or keep them there and `sartoris finish`)"
    )


def reached_hosts(runs: Sequence[DeployRun], tag: str) -> bool:
    """Whether a run of `runs` put a host on `tag` (or may have: it died while switching)."""
    return any(run.switched or run.unfinished for run in runs if run.tag == tag)


def _last_switch(runs: Sequence[DeployRun]) -> dict[str, int]:
    """For each host a run switched, the index in `runs` of the last run that did."""
    return {host: index for index, run in enumerate(runs) for host in run.switched}


def _unique(tags: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(tags))
