"""Pure decisions on ending a started deploy, from the runs it made (its syncs and rollbacks as the history wrote
them down, oldest first): whether `abort` may put the checkout back, and what `finish` says of a release.

Nothing here does I/O: lifecycle reads the deploy's lock and history and calls these. Hosts are compared as the
machines they name (`same_host`: inventory.machine_of with the config's port), never as written: a run of
`127.0.0.8` and one of `root@127.0.0.8:2200` switched one host.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sartoris.results import CANARY_FAILED, switch_unseen
from sartoris.state import UNFINISHED, Entry, shown

SameHost = Callable[[str], Hashable]  # a host's label -> the machine it names
Release = tuple[str, str]  # tag, commit


def as_written(label: str) -> Hashable:
    """Each label its own machine (where no config says which port a host line without one means)."""
    return label


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
    unseen: tuple[str, ...] = ()  # of `failed`, those whose switch was not seen to end: they may run its release
    # an unfinished run's targets, any of which it may have switched; None where its note (by a Sartoris before
    # notes named them) does not say
    targets: tuple[str, ...] | None = None
    sets_release: bool = True  # false for a rollback of part of the fleet (see DeployedRelease.sets_the_release)

    @classmethod
    def from_record(cls, action: str, tag: str, commit: str, outcome: str, report: Mapping[str, Any]) -> DeployRun:
        """The run from its history row (older records have no `stopped`: every host not on the release failed)."""
        hosts = [h for h in report.get("hosts") or [] if isinstance(h, dict) and isinstance(h.get("host"), str)]
        targets = report.get("targets")
        return cls(
            action,
            tag,
            commit,
            outcome,
            rejected=report.get("reason") == CANARY_FAILED,
            switched=tuple(h["host"] for h in hosts if h.get("ok")),
            failed=tuple(h["host"] for h in hosts if not h.get("ok") and not h.get("stopped")),
            not_switched=tuple(h["host"] for h in hosts if not h.get("ok") and h.get("stopped")),
            unseen=tuple(h["host"] for h in hosts if not h.get("ok") and switch_unseen(h.get("error"))),
            targets=tuple(t for t in targets if isinstance(t, str)) if isinstance(targets, list) else None,
            sets_release=report.get("sets_release") is not False,
        )

    @classmethod
    def from_entry(cls, entry: Entry) -> DeployRun:
        """The run from its history entry."""
        return cls.from_record(entry.action, entry.tag, entry.commit, entry.outcome, entry.report)

    @property
    def unfinished(self) -> bool:
        """The run died while its hosts could switch: any of its targets may run its release."""
        return self.outcome == UNFINISHED

    @property
    def named(self) -> tuple[str, ...]:
        """Every host its record names: switched, failed, stopped before their turn, and, when it died while
        switching, its targets."""
        return self.switched + self.failed + self.not_switched + ((self.targets or ()) if self.unfinished else ())

    @property
    def maybe_switched(self) -> tuple[str, ...]:
        """The hosts it may have put on its release unseen: those whose switch was not seen to end, and, when it
        died while switching, each of its targets."""
        return self.unseen + ((self.targets or ()) if self.unfinished else ())


def abort_refusal(
    slot: int,
    live: tuple[str, str] | None,
    runs: Sequence[DeployRun],
    noted: Iterable[str] = (),
    switching: str | None = None,
    same_host: SameHost = as_written,
    before: Sequence[DeployRun] = (),
    fleet: Collection[Hashable] | None = None,
    found: str | None = None,
) -> str | None:
    """Why `abort` must leave the deploy as it is, or None when every host may run only a release it ran at start (see
    `before`) or `live` (the slot's release, tag and commit, when the deploy started: a retry that finished it on a
    host that had failed it moved that host there, which abort may leave): each host is where the last of `runs`
    that switched it put it, a host whose switch was not seen to end (its connection lost, and no look on a new one
    could tell) may also run that run's release, and so may each target of a run that died while switching
    (unfinished) until a later run switched it. A run that died while switching and that no later run followed
    (`switching`, the lock's note, cleared once a run is written down), or whose targets its record does not name,
    may have put any host there: refused, for good in the second case (no run can show every host back). A rollback
    to `live`, a retry that only finished it, a run that switched no host: abort may go on. `noted`: the tags the
    deploy's lock says its runs went to; one that is not among `runs` (the history did not take it) leaves where
    hosts are unknown. `before`: the slot's runs before the deploy, replayed the same way, say what each host ran at
    start (a host they never named ran `live`); when the hosts the deploy moved did not all run one release then, or
    others ran another, the advice is a rollback of each group of them to its own release (`--hosts`), never the
    fleet's to `live`, which would move hosts the deploy never touched. `fleet`: the machines a rollback of the
    whole fleet would switch (the config's hosts); a host only the history names (decommissioned) is not one of the
    "others"; None: every host the history names is. `found`: the commit `start` found the checkout at, which the
    advice of a refusal for good names (the checkout is then put back by hand)."""
    live_tag, live_commit = live if live is not None else (None, None)
    back = f"`sartoris rollback --to {live_tag}` (the release live at `start`)" if live_tag else None
    recorded = {run.tag for run in runs}
    lost = [tag for tag in noted if tag not in recorded]
    if lost:
        return (
            f"slot {slot}: this deploy's run of {shown(lost[0])} is not in the history, so which hosts run it is"
            " unknown: see `sartoris status`, then " + (f"{back} or " if back else "") + "`sartoris finish`"
        )
    if switching:
        return (
            f"slot {slot}: a run of this deploy died while switching hosts to {shown(switching)}, so some may run"
            " it: see `sartoris status`, then "
            + (f"{back} and `sartoris abort`, or " if back else "")
            + "`sync --retry-failed` and `finish`"
        )
    blind = [run.tag for run in runs if run.unfinished and run.targets is None and run.commit != live_commit]
    if blind:
        return (
            f"slot {slot}: a run of this deploy died while switching hosts to {shown(blind[-1])}, and its record (by an"
            " earlier Sartoris) does not name the hosts it targeted, so any may run it and no later run can show"
            " every host back: see `sartoris status`, put the hosts back"
            + (f" with {back}" if back else "")
            + ", then end the deploy with `sartoris finish` and put the checkout back where `start` found it"
            + (
                f": `git reset --hard {shown(found)} && git submodule update --init --recursive` in the checkout"
                " (the commits it drops stay in git's reflog)"
                if found
                else " (`sartoris log` shows the commit)"
            )
        )
    start = _Start(live, _may_run(before, same_host, lambda _: frozenset()))
    after = _may_run(runs, same_host, start.of)
    off = {machine: label for machine, (label, releases) in after.items() if not start.may_leave(machine, releases)}
    if not off:
        return None
    offs = {r for machine in off for r in after[machine][1] if not start.may_leave(machine, frozenset({r}))}
    died = {run.tag for run in runs if run.unfinished}
    moved = [tag + (_DIED if tag in died else "") for tag in _unique(r.tag for r in runs if (r.tag, r.commit) in offs)]
    if back is None:
        return (
            f"slot {slot}: this deploy put hosts on {', '.join(moved)}, and no release was live before it, so there is"
            " none to roll back to: end the deploy with `sartoris finish`"
        )
    homes: dict[Release | None, list[str]] = {}
    for machine, label in off.items():
        homes.setdefault(start.home(machine), []).append(label)
    now = {
        machine: releases
        for machine, (_, releases) in {**start.hosts, **after}.items()
        if machine not in off and (fleet is None or machine in fleet)
    }
    # a host the deploy moved that the hosts files no longer list (removed, renamed) is out of a fleet-wide rollback's
    # reach: advising one would send the operator round in circles
    gone = [label for machine, label in off.items() if fleet is not None and machine not in fleet]
    if gone:
        why = (
            f"{', '.join(shown(label) for label in gone)} {'is' if len(gone) == 1 else 'are'} no longer in the hosts"
            " files, so a rollback of the whole fleet would not reach"
            f" {'it' if len(gone) == 1 else 'them'}: put back these hosts by name"
        )
        return f"slot {slot}: this deploy put hosts on {', '.join(moved)}; " + _put_back_each(homes, live, why)
    if set(homes) == {live} and all({commit for _, commit in r} == {live_commit} for r in now.values()):
        return (
            f"slot {slot}: this deploy put hosts on {', '.join(moved)}; {back} puts them back, then `sartoris abort`"
            " restores the checkout (or keep them there and `sartoris finish`)"
        )
    return f"slot {slot}: this deploy put hosts on {', '.join(moved)}; " + _put_back_each(homes, live)


_DIED = " (a run of it died while switching: its hosts may run it)"
_MIXED = (
    "they did not all run one release at `start`, or other hosts ran another, so a rollback of the whole fleet would"
    " move hosts this deploy did not: put back only these"
)


def _put_back_each(homes: Mapping[Release | None, Sequence[str]], live: Release | None, why: str = _MIXED) -> str:
    """The advice when a rollback of the whole fleet will not do (`why`: by default, the hosts a deploy moved did
    not all run one release at start, or others run another, which it would move): a rollback of each group of them
    to the release it ran, in a hosts file of its own, the group of `live` (the slot's release at start) last: the
    rollback that takes the last hosts off the deploy's release makes its own the slot's
    (DeployedRelease.sets_the_release), so the slot's release ends as it was at start."""
    homes = dict(sorted(homes.items(), key=lambda item: item[0] == live))  # stable: the others keep their order
    steps = [
        f"`sartoris rollback --to {shown(tag)} --hosts ./back-to-{shown(tag)}`, ./back-to-{shown(tag)} listing"
        f" {', '.join(shown(label) for label in labels)} (one per line)"
        for (tag, _), labels in ((home, labels) for home, labels in homes.items() if home is not None)
    ]
    unknown = homes.get(None, ())
    text = f"{why}, each to the release it ran at `start`, in this order: " + "; ".join(steps)
    if unknown:
        return (
            text + ("; and " if steps else "")
            + f"what {', '.join(shown(label) for label in unknown)} ran at `start` is unknown (a run before the deploy"
            " could not tell): see `sartoris status`, and end the deploy with `sartoris finish`"
        )
    return text + "; then `sartoris abort` restores the checkout (or keep them there and `sartoris finish`)"


@dataclass(frozen=True, slots=True)
class _Start:
    """Where each host was when the deploy started, by the slot's runs before it (`hosts`: the machines they
    named, with every release each may have run); a host none named runs `live`, the slot's release then."""

    live: Release | None
    hosts: Mapping[Hashable, tuple[str, frozenset[Release]]]

    def of(self, machine: Hashable) -> frozenset[Release]:
        """Every release `machine` may have run at start."""
        if machine in self.hosts:
            return self.hosts[machine][1]
        return frozenset({self.live}) if self.live is not None else frozenset()

    def may_leave(self, machine: Hashable, releases: frozenset[Release]) -> bool:
        """Abort may leave `machine` where it may run `releases`: each is one it may have run at start, or the
        slot's release then (a `--retry-failed` that finished it on a host it had failed on moved it there)."""
        allowed = {commit for _, commit in self.of(machine)} | ({self.live[1]} if self.live is not None else set())
        return {commit for _, commit in releases} <= allowed

    def home(self, machine: Hashable) -> Release | None:
        """The release to put `machine` back on: the one it ran at start; the slot's release then where it may
        have run that or another; None where the history cannot tell which (a run before the deploy died, or its
        switch was not seen to end, and neither was the slot's release)."""
        at = self.of(machine)
        if len({commit for _, commit in at}) == 1:
            return next(iter(sorted(at)))
        return self.live if self.live in at or not at else None


@dataclass(frozen=True, slots=True)
class Announcement:
    """What `finish` tells its hook of the deploy's release, and says on its line."""

    tag: str | None  # None: the deploy ran nothing
    outcome: str | None  # ok, partial, aborted, or unknown (a run died while switching, or is not in the history)
    failed: tuple[str, ...] = ()  # hosts that failed in a run of the release and that no later run put on it
    not_switched: tuple[str, ...] = ()  # hosts a run of it stopped before their turn, or a later run moved off it
    running: tuple[str, ...] = ()  # hosts the deploy's runs left on it
    unseen: tuple[str, ...] = ()  # of `failed`, those whose switch was not seen to end: they may run it
    rejected: bool = False  # its last run was rejected by a canary: announced as aborted, never as deployed
    died: bool = False  # its last run died while switching
    recorded: bool = True  # the history has its runs
    action: str = "sync"  # of its last run
    part_of_the_fleet: bool = False  # its last run rolled back part of the fleet: the slot's release did not change
    not_targeted: int = 0  # machines of [deploy] hosts that no run of the release named (a `sync --hosts` of a few)
    # of the machines of [deploy] hosts that no run of the release named, those that may run its commit or not (the
    # slot's runs did not see a switch of theirs end): neither on it nor left out
    state_unknown: tuple[str, ...] = ()

    def detail(self, slot: int) -> str:
        """finish's line."""
        released = f"slot {slot} released"
        if self.tag is None:
            return released
        tag = shown(self.tag)  # only said from here on: a tag from the lock, which a hand may have written
        if self.died:
            return f"{released}; the run of {tag} died while switching hosts: see `sartoris status`"
        if not self.recorded:
            return f"{released}; deployed {tag} (its run is not in the history: see `sartoris status`)"
        if self.rejected:
            still = f"; still on {len(self.running)} canary host(s): `sartoris rollback` puts them back"
            return f"{released}; {tag} was rejected by a canary and not deployed" + (still if self.running else "")
        if self.outcome == "aborted":
            return f"{released}; the deploy's last sync ({tag}) aborted: no host was switched to it"
        if not self.running and self.unseen:  # no host seen on it, but some may be
            return (
                f"{released}; {tag} may run on {len(self.unseen)} host(s) whose switch was not seen to end, and on"
                " no host seen switched: see `sartoris status`"
            )
        if not self.running:  # a partial run whose every host failed
            return f"{released}; this deploy switched no host to {tag}: see `sartoris status`"
        unseen = f" ({len(self.unseen)} may run it: not seen to end)" if self.unseen else ""
        partial = (
            f" (partial: {len(self.failed)} host(s) failed{unseen}, {len(self.not_switched)} not switched: see"
            " `sartoris status`)"
        )
        if self.part_of_the_fleet:
            failures = partial if self.failed or self.not_switched else ""
            return (
                f"{released}; rolled back {len(self.running)} host(s) to {tag}, part of the fleet: the slot's release"
                f" is still the one the others run (see `sartoris status`){failures}"
            )
        done = f"{released}; {'rolled back to' if self.action == 'rollback' else 'deployed'} {tag}"
        if self.not_targeted or self.state_unknown:
            failures = partial if self.failed or self.not_switched else ""
            return f"{done} to {len(self.running)} host(s), {self._left_out()} (see `sartoris status`){failures}"
        return done + partial if self.outcome == "partial" else done

    def _left_out(self) -> str:
        """What finish says of the hosts of [deploy] hosts a sync of some of them did not target: how many do not run
        the release, and which may or may not (named: `status` tells)."""
        said = []
        if self.not_targeted:
            said.append(
                f"part of the fleet: {self.not_targeted} host(s) of [deploy] hosts were not targeted and do not run it"
            )
        if self.state_unknown:
            said.append(
                f"whether {', '.join(shown(label) for label in self.state_unknown)} ({len(self.state_unknown)} host(s)"
                " of [deploy] hosts it did not target) run it is unknown: a switch of theirs was not seen to end"
            )
        return "; ".join(said)


def announcement(
    runs: Sequence[DeployRun], tag: str | None, switching: str | None = None, same_host: SameHost = as_written,
    fleet: Collection[Hashable] | None = None, maybe_on: Mapping[Hashable, str] | None = None,
) -> Announcement:
    """What finish announces of `tag` (the release the deploy's lock says its runs left the hosts on, or that of
    its last run, which aborted) over all of the deploy's `runs`, not its last run of it alone: a host that failed
    in one of them stays failed until a later one puts it on the release (a `--retry-failed --hosts` of one fixed
    host leaves the others failed), and a host a run of the deploy put on another release, and no later run of
    `tag` moved, is not on it (a rollback of a few hosts leaves the rest on the release the deploy synced). Hosts
    are read by the commit they run: one another tag of `tag`'s commit took there is on it. A host
    whose switch to it was not seen to end is failed (it was depooled) but may run it: not "no host got it".
    `switching`: the lock's note of a run that died while switching, which is announced as unknown. `fleet`: the
    machines of [deploy] hosts (None: unknown) that are not on the release's commit for certain, of which a release
    synced to only some is partial; `maybe_on`: those of them that may run that commit or not, with their labels,
    which a sync that did not target them leaves unknown, not "not targeted" (partial too, naming them)."""
    if switching is not None:
        return Announcement(switching, "unknown", died=True)
    if tag is None:
        return Announcement(None, None)
    own = [run for run in runs if run.tag == tag]
    if not own:
        return Announcement(tag, "unknown", recorded=False)
    last = own[-1]
    if last.unfinished or any(run.unfinished and run.targets is None for run in own):
        return Announcement(tag, "unknown", died=True)
    replayed = _replay(runs, same_host)
    states = [(machine.label, machine.state(last.commit)) for machine in replayed.values()]
    hosts = {
        state: tuple(label for label, s in states if s == state) for state in ("on", "failed", "unseen", "not_switched")
    }
    failed = tuple(label for label, s in states if s in ("failed", "unseen"))  # what the hook is told
    if last.rejected or all(run.outcome == "aborted" for run in own):
        outcome = "aborted"  # a release a canary rejected did not go out: never announced as the deploy's
    elif not hosts["on"] and hosts["unseen"]:
        outcome = "unknown"  # no host seen on it, some may be
    else:  # a rollback of part of the fleet is partial too: the rest still run the slot's release
        part = last.action == "rollback" and not last.sets_release
        outcome = "partial" if failed or hosts["not_switched"] or part else "ok"
    left_out: list[Hashable] = []
    if outcome in ("ok", "partial") and last.action == "sync" and fleet is not None:  # a sync of some of the fleet
        left_out = [m for m in fleet if m not in replayed or replayed[m].state(last.commit) is None]
        outcome = "partial" if left_out else outcome
    unknown = sorted(maybe_on[m] for m in left_out if maybe_on is not None and m in maybe_on)
    return Announcement(
        tag, outcome, failed, hosts["not_switched"], hosts["on"], hosts["unseen"], last.rejected, action=last.action,
        part_of_the_fleet=outcome == "partial" and last.action == "rollback" and not last.sets_release,
        not_targeted=len(left_out) - len(unknown), state_unknown=tuple(unknown),
    )


def left_on(runs: Sequence[DeployRun], commit: str, same_host: SameHost = as_written) -> list[str]:
    """The hosts (as the last run that named each wrote it) that `runs`, oldest first, left on `commit`, or that
    may run it (a switch to it not seen to end, a run of it that died while they were its targets)."""
    after = _may_run(runs, same_host, lambda _: frozenset())
    return [label for label, releases in after.values() if commit in {c for _, c in releases}]


@dataclass(frozen=True, slots=True)
class OnCommit:
    """Where runs left the machines they named against one commit: `on` it for certain (seen switched to it, and no
    switch since that may have moved them off), or `maybe` on it or on another (machine -> label, as the last run
    that named it wrote it): a switch to or off it was not seen to end, or a run died while they were its targets."""

    on: frozenset[Hashable]
    maybe: Mapping[Hashable, str]


def on_commit(runs: Sequence[DeployRun], commit: str, same_host: SameHost = as_written) -> OnCommit:
    """Which machines `runs`, oldest first, left on `commit` for certain, and which may run it or not (left_on
    counts both as on it)."""
    on, maybe = set(), {}
    for key, machine in _replay(runs, same_host).items():
        commits = {c for _, c in machine.may_run(frozenset())}
        if commit not in commits:
            continue
        if machine.on is not None and commits == {commit}:
            on.add(key)
        else:
            maybe[key] = machine.label
    return OnCommit(frozenset(on), maybe)


def left_on_reading_back(
    newest_first: Iterable[DeployRun], runs_of_it: Iterable[DeployRun], commit: str, same_host: SameHost = as_written
) -> list[str]:
    """The hosts left_on names over all of a slot's runs, from them read newest first, no further back than its
    answer depends on: only a machine a run of `commit` (`runs_of_it`, the slot's) switched or may have switched
    can run it, and each is settled by the newest run that was seen to switch it, or that may have switched it to
    `commit` (then it may run it, whatever came before). The same hosts, in the order the runs read name them."""
    machines = {same_host(host) for run in runs_of_it for host in (*run.switched, *run.maybe_switched)}
    return left_on(since_each_was_switched(newest_first, machines, same_host, or_maybe_to=commit), commit, same_host)


def since_each_was_switched(
    newest_first: Iterable[DeployRun],
    machines: Collection[Hashable] | None,
    same_host: SameHost = as_written,
    *,
    or_maybe_to: str | None = None,
) -> list[DeployRun]:
    """Of runs read newest first, those back to the newest that was seen to switch each of `machines`, oldest first,
    read no further: where they leave those machines is where all the runs do (a seen switch puts a machine on its
    release whatever came before it; see _replay). Every run when `machines` is None (every machine counts), or
    when a machine was never seen switched. `or_maybe_to`: a commit whose runs that may have switched a machine
    settle it too, for a reader that asks only whether each may run that commit (left_on)."""
    wanted = None if machines is None else set(machines)
    kept: list[DeployRun] = []
    runs = iter(newest_first)
    while (wanted is None or wanted) and (run := next(runs, None)) is not None:  # not one run more than needed
        kept.append(run)
        if wanted is not None:
            settled = (*run.switched, *(run.maybe_switched if run.commit == or_maybe_to else ()))
            wanted.difference_update(same_host(host) for host in settled)
    return kept[::-1]


def targeting_every_host(runs: Sequence[DeployRun], hosts: Iterable[str]) -> list[DeployRun]:
    """`runs`, each that died while switching and whose note (by a Sartoris before notes named them) names no
    targets taken as having targeted every one of `hosts`: any of them may run its release until a later run
    switched it. Read as naming none, such a note counted for no host, and hosts it may have reached passed for
    ones still on the release before it."""
    every = tuple(dict.fromkeys(hosts))
    return [replace(run, targets=every) if run.unfinished and run.targets is None else run for run in runs]


def _may_run(
    runs: Sequence[DeployRun], same_host: SameHost, at_start: Callable[[Hashable], frozenset[Release]]
) -> dict[Hashable, tuple[str, frozenset[Release]]]:
    """For each machine `runs` switched or may have switched, its label and every release it may run after them
    (`at_start`: where it was before them)."""
    return {
        key: (machine.label, machine.may_run(at_start(key)))
        for key, machine in _replay(runs, same_host).items()
        if machine.on is not None or machine.maybe
    }


@dataclass(frozen=True, slots=True)
class _Machine:
    """Where runs left one machine: the release the last run seen to switch it put it on, and what the runs since
    then did to it (those since the first run that named it, when none was seen to switch it). abort reads what it
    may run, finish what it says of it for one release."""

    label: str  # as the last run that named it wrote it
    on: Release | None = None  # None: no run was seen to switch it
    maybe: frozenset[Release] = frozenset()  # of the runs since that may have switched it unseen
    failed: frozenset[str] = frozenset()  # the commits of the runs since that failed on it (unseen or not)
    stopped: frozenset[str] = frozenset()  # the commits of the runs since that stopped before its turn

    def may_run(self, before: frozenset[Release]) -> frozenset[Release]:
        """Every release it may run: the one it was seen switched to (else any of `before`, where it was before
        the runs), or that of a run since that may have switched it unseen."""
        return (frozenset({self.on}) if self.on is not None else before) | self.maybe

    def state(self, commit: str) -> str | None:
        """What finish says of it for a release, by its `commit` (a host another tag of it took there runs it):
        on (seen switched to it, and no run since failed on it or may have moved it); unseen (it may run it, not
        seen there since); failed (a run of it failed on it since, which stays so until a run switches it);
        not_switched (a run of it stopped before its turn, or it was seen switched to another release); None: no
        run of it named it and none switched it."""
        maybe = {c for _, c in self.maybe}
        here = self.on is not None and self.on[1] == commit
        moved = here and bool(maybe - {commit})  # seen on it, then a run of another release may have moved it
        if commit in self.failed:
            return "unseen" if commit in maybe or moved else "failed"
        if here:
            return "unseen" if moved else "on"
        if commit in maybe:
            return "unseen"
        return "not_switched" if commit in self.stopped or self.on is not None else None


def _replay(runs: Sequence[DeployRun], same_host: SameHost) -> dict[Hashable, _Machine]:
    """Where `runs` (oldest first) left each machine they named, in the order they first named them."""
    where: dict[Hashable, _Machine] = {}

    def named(host: str) -> _Machine:
        return replace(where.get(same_host(host)) or _Machine(host), label=host)

    for run in runs:
        release = (run.tag, run.commit)
        for host in run.switched:
            where[same_host(host)] = _Machine(host, release)
        for host in run.failed + run.unseen:
            machine = named(host)
            where[same_host(host)] = replace(machine, failed=machine.failed | {run.commit})
        for host in run.maybe_switched:
            machine = named(host)
            where[same_host(host)] = replace(machine, maybe=machine.maybe | {release})
        for host in run.not_switched:
            machine = named(host)
            where[same_host(host)] = replace(machine, stopped=machine.stopped | {run.commit})
    return where


def _unique(tags: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(tags))
