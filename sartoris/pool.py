"""Taking hosts out of the load balancer's pool and back: the operator's commands, run on the deploy host.

The command template was split like a shell at config load; `{host}` is substituted into single
arguments and the result is exec'd directly, so no shell ever sees a host name. Each change is
remembered (status shows `depooled`) and recorded in the history.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import structlog

from sartoris.closing import DeployRun
from sartoris.config import Config, expand_command
from sartoris.errors import ConfigError, InterruptedRun, InventoryError
from sartoris.fanout import fan_out
from sartoris.interrupts import despite_interrupt, run_stoppable_then
from sartoris.inventory import Host, dedupe, machine_of, pool_member, recorded_host, unlisted
from sartoris.output_tail import closing_words
from sartoris.results import HostState
from sartoris.state import History, written_after_the_change

log = structlog.get_logger("sartoris")

_POOL_CONCURRENCY = 16
_STDERR_TAIL = 4096  # bytes of a failed command's stderr read for its last line


async def run_pool_command(template: tuple[str, ...], host: str, timeout: float) -> str | None:
    """Run the command for `host`; None on success, else a one-line reason (a failure is data, not fatal).

    The command runs in its own session, so the operator's Ctrl-C (sent to the terminal's whole process group)
    does not kill a depool half-way: the run lets it end, bounded by `timeout`, and records it. Its stderr goes
    to a temporary file, not a pipe, so a child it left running can never hold the run past the timeout."""
    argv = expand_command(template, host)
    with tempfile.TemporaryFile() as stderr:
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        except OSError as exc:
            return f"{argv[0]}: {exc.strerror or exc}"
        try:
            async with asyncio.timeout(timeout):
                await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # the command and whatever it started in its group
            await process.wait()  # the command itself, killed: reaped at once
            return f"{argv[0]} timed out after {timeout:g}s"
        if process.returncode != 0:
            stderr.seek(max(0, os.fstat(stderr.fileno()).st_size - _STDERR_TAIL))
            words = closing_words(stderr.read().decode(errors="replace"))
            return f"{argv[0]} exited {process.returncode}" + (f": {words}" if words is not None else "")
    return None


def depooled_among(
    history: History, targets: Sequence[Host], scope: str, *, by_hand: bool = False
) -> frozenset[str]:
    """The labels of `targets` that are out of the pool `scope` (DepoolSettings.scope), however the depool spelled
    them (mw1, mw1:22, and mw1:2222 too: the command took out the name, see pool_member); with `by_hand`, only
    those an operator's `depool` took out."""
    out = {pool_member(stored) for stored in history.depooled_hosts(scope, by_hand=by_hand)}
    return frozenset(h.label for h in targets if pool_member(h.label) in out)


def remember_pool_state(
    history: History, hosts: Sequence[Host], depooled: bool, scope: str, *, by_hand: bool = False
) -> None:
    """Remember `hosts` as out of (or back in) the pool `scope`, under every spelling already remembered for the
    same pool member there too (see pool_member), so `pool mw1:22` after `depool mw1` leaves no stale row saying it
    is still out. `by_hand`: an operator's `depool`, which `pool --caught-up` leaves alone."""
    members = {pool_member(h.label) for h in hosts}
    spellings = {stored for stored in history.pool_hosts(scope) if pool_member(stored) in members}
    history.set_depooled(sorted(spellings | {h.label for h in hosts}), depooled, scope, by_hand=by_hand)


@dataclass(frozen=True, slots=True)
class PoolReport:
    """Which hosts a depool/pool changed, and why the others were not."""

    action: str
    changed: tuple[str, ...]
    failed: tuple[tuple[str, str], ...]
    interrupted: bool = False
    not_recorded: str | None = None  # why the history did not take the change, when it did not
    state_recorded: bool = True  # whether the pool state (what `status` reads) took it, even if the log did not
    logged: bool = True  # whether the history's log (what `log` lists) took it; False too when nothing was written
    left_out: tuple[str, ...] = ()  # `pool --caught-up`: hosts it leaves out, as an operator depooled them by hand
    behind_elsewhere: tuple[tuple[str, int], ...] = ()  # `pool --caught-up`: hosts left out, behind on another slot
    # `pool --caught-up`: hosts left out though caught up, as another depooled host of their name is not (the
    # command puts back the name), with those hosts
    held_by_name: tuple[tuple[str, tuple[str, ...]], ...] = ()
    still_behind: tuple[str, ...] = ()  # `pool --caught-up`: hosts left out, not on the release they owe here

    def outcome(self) -> str:
        """The history's word for the change: `failed` when no host changed (`log` said `partial` for a depool that
        failed on every host, as if some were out), `partial` when some did, else `ok`."""
        if not self.failed:
            return "ok"
        return "partial" if self.changed else "failed"

    def as_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "changed": list(self.changed),
            "failed": [{"host": host, "error": error} for host, error in self.failed],
            "interrupted": self.interrupted,
            "recorded": self.not_recorded is None and self.logged,
            "left_out": list(self.left_out),
            "behind_in_other_slots": [{"host": host, "slot": slot} for host, slot in self.behind_elsewhere],
            "held_back_by_name": [{"host": host, "behind": list(behind)} for host, behind in self.held_by_name],
            "still_behind": list(self.still_behind),
        }

    def describe(self) -> str:
        lines = [f"{self.action}: {len(self.changed)} changed, {len(self.failed)} failed"]
        lines += [f"  {host}: {error}" for host, error in self.failed]
        if self.changed:
            lines.append("  " + ", ".join(self.changed))
        if self.left_out:
            why = "left out, depooled by hand (`sartoris pool HOST` puts one back): "
            lines.append("  " + why + ", ".join(self.left_out))
        for host, slot in self.behind_elsewhere:
            lines.append(f"  left out, not on slot {slot}'s current release (the slot whose run depooled it): {host}")
        if self.still_behind:
            lines.append("  left out, not on the release they owe yet: " + ", ".join(self.still_behind))
        for host, behind in self.held_by_name:
            lines.append(
                f"  left out, caught up, but {', '.join(behind)} of the same name is not, or was not asked (the pool"
                f" command puts back the name): {host}"
            )
        return "\n".join(lines)


def _refuse_unlisted(config: Config, history: History, hosts: Sequence[Host], action: str) -> None:
    """Refuse (exit 2, nothing run) a host that no hosts file lists and no pool state remembers: a typo, most
    likely, which a load balancer's `select name=...` would match nothing with and still succeed on."""
    remembered = history.pool_hosts(config.depool.scope)
    known = config.listed_hosts() + [host for stored in remembered if (host := recorded_host(stored))]
    strangers = unlisted(hosts, known, config.ssh.default_port)
    if strangers:
        where = f"{config.hosts_dir}/ or [deploy] hosts"
        named = {host.name.lower(): host.label for host in known}  # the same name on another port: say how it is listed
        hints = [
            f"{host.label} is listed as {named[host.name.lower()]}"
            for host in hosts
            if host.label in strangers and host.name.lower() in named
        ]
        hint = f" ({'; '.join(hints)})" if hints else ""
        raise InventoryError(
            f"{action}: {', '.join(strangers)}: in no hosts file ({where}) and never depooled{hint}: check the name"
        )


def change_pool(
    config: Config, hosts: Sequence[Host], *, depool: bool, message: str = "", listed_only: bool = False
) -> PoolReport:
    """`sartoris depool|pool HOST...`: run the command per host, remember and record the change. `listed_only`
    (hosts an operator typed): refuse, before any command, a host no hosts file lists and no pool state remembers."""
    action = "depool" if depool else "pool"
    if (config.depool.command if depool else config.depool.pool_command) is None:
        key = "command" if depool else "pool_command"
        raise ConfigError(f"{config.path}: [depool] {key} is not set, so Sartoris cannot {action} hosts")
    history = History(config.state_dir)
    history.ensure_sound()  # before any command runs: the change could not be remembered
    if listed_only:
        _refuse_unlisted(config, history, hosts, action)

    def record(ran: tuple[PoolReport, bool]) -> PoolReport:
        """Remember the change in the history (Ctrl-C is held meanwhile)."""
        report = replace(ran[0], interrupted=ran[1])
        with written_after_the_change(action) as written:
            history.record_event(action, None, message, report.as_json(), outcome=report.outcome())
        if written.error is not None:
            report = replace(report, not_recorded=report.not_recorded or written.error, logged=False)
        return report

    changing = _change_until_interrupted(config, history, hosts, depool, by_hand=depool)
    report, pressed_while_recording = run_stoppable_then(changing, record)
    if report.interrupted or pressed_while_recording:
        raise InterruptedRun(report)
    return report


async def _change_until_interrupted(
    config: Config, history: History, hosts: Sequence[Host], depool: bool, *, by_hand: bool
) -> tuple[PoolReport, bool]:
    """apply_pool_change, where Ctrl-C starts no further command but lets the running ones end (bounded by the
    depool timeout) and remembers them, so the pool state says what the load balancer was told."""
    stop = asyncio.Event()
    change = apply_pool_change(config, history, hosts, depool=depool, stop=stop, by_hand=by_hand)
    return await despite_interrupt(change, stop.set)


async def apply_pool_change(
    config: Config,
    history: History,
    hosts: Sequence[Host],
    *,
    depool: bool,
    stop: asyncio.Event | None = None,
    by_hand: bool = False,
) -> PoolReport:
    """Run the configured depool/pool command once per host (bounded), remember the hosts it worked for (`by_hand`:
    an operator's depool, not a run's). Without a configured command nothing runs and the hosts are reported as not
    changed; once `stop` is set, no further command starts and the hosts left are reported as not run."""
    action = "depool" if depool else "pool"
    template = config.depool.command if depool else config.depool.pool_command
    if not hosts:
        return PoolReport(action, (), ())
    if template is None:
        log.warning(f"{action}_not_configured", hosts=[h.label for h in hosts])
        return PoolReport(action, (), tuple((h.label, "no [depool] command configured") for h in hosts))

    async def one(host: Host) -> tuple[str, str | None]:
        if stop is not None and stop.is_set():
            return host.label, f"not run: interrupted before its {action} command started"
        return host.label, await run_pool_command(template, host.name, config.depool.timeout)

    outcomes = await fan_out(hosts, one, limit=_POOL_CONCURRENCY)
    changed = tuple(label for label, error in outcomes if error is None)
    failed = tuple((label, error) for label, error in outcomes if error is not None)
    with written_after_the_change(f"{action} state", hosts=list(changed)) as written:  # the load balancer was told
        remember_pool_state(
            history, [h for h in hosts if h.label in changed], depool, config.depool.scope,
            by_hand=by_hand,
        )
    for label in changed:
        log.info(f"host_{action}ed", host=label)
    for label, error in failed:
        log.error(f"{action}_failed", host=label, error=error)
    not_recorded = written.error if changed else None
    return PoolReport(action, changed, failed, not_recorded=not_recorded, state_recorded=not_recorded is None)


def pool_caught_up(base: Config, slot: int, targets: Sequence[Host] | None) -> PoolReport:
    """Re-pool every depooled host whose slot is now on the slot's current release: among `targets`, or, when
    None, among every host remembered as out of this pool (however it was targeted when it was depooled). Where
    one pool serves every slot, a host a run of another slot took out must be on that slot's release too.
    `base`: the configuration before `{slot}` is filled in (each slot asked gets its own)."""
    config = base.for_slot(slot)
    history = History(config.state_dir)
    port, scope = config.ssh.default_port, config.depool.scope
    remembered_out = [host for stored in sorted(history.depooled_hosts(scope)) if (host := recorded_host(stored))]
    if targets is None:
        targets = dedupe(remembered_out, port)
    depooled = depooled_among(history, targets, scope)
    by_hand = depooled_among(history, targets, scope, by_hand=True)  # maintenance: not the deploy's to undo
    last = history.last_deployed(slot)
    candidates = [h for h in targets if h.label in depooled and h.label not in by_hand]
    left_out = tuple(h.label for h in targets if h.label in by_hand)
    if last is None or not candidates:
        return PoolReport("pool", (), (), left_out=left_out, logged=False)
    caught_up, owed = _on_the_releases_owed(config, history, slot, candidates, last.commit, depooled)
    current = [h for h in candidates if h.label in caught_up]
    still_behind = tuple(h.label for h in candidates if h.label not in caught_up)
    behind_elsewhere: tuple[tuple[str, int], ...] = ()
    if scope == "":  # one pool for every slot
        current, behind_elsewhere = _caught_up_on_the_slots_that_depooled_them(base, history, slot, current)
    # depooled hosts `--hosts` left out are not asked: a name they share with a host caught up stays out for them
    asked = {h.key(port) for h in candidates}
    unasked = [host for host in remembered_out if host.key(port) not in asked]
    current, held_by_name = _whole_pool_members(current, [*candidates, *unasked])
    log.info("caught_up", current=len(current), still_behind=len(candidates) - len(current), left_out=len(left_out))
    if not current:  # nothing to pool: no command, and no history row (a cron'd caught-up would fill `log`)
        return PoolReport(
            "pool", (), (), left_out=left_out, behind_elsewhere=behind_elsewhere, held_by_name=held_by_name,
            still_behind=still_behind, logged=False,
        )
    message = f"caught up with {last.tag}"
    if any(owed[h.label] != last.commit for h in current):
        message += " (or with the release a rollback of part of the fleet took them to)"
    report = change_pool(config, current, depool=False, message=message)
    return replace(
        report, left_out=left_out, behind_elsewhere=behind_elsewhere, held_by_name=held_by_name,
        still_behind=still_behind,
    )


def _on_the_releases_owed(
    config: Config, history: History, slot: int, hosts: Sequence[Host], slots_release: str, depooled: frozenset[str]
) -> tuple[set[str], dict[str, str]]:
    """The labels of `hosts` on the release each owes in `slot` (releases_owed), asked by one census per release
    owed (most often only the slot's), and what each owes."""
    from sartoris.census import census

    newest_first = (DeployRun.from_entry(entry) for entry in history.runs_back_from(slot))
    owed = releases_owed(newest_first, hosts, slots_release, config.ssh.default_port)
    on_it: set[str] = set()
    for commit in sorted(set(owed.values())):
        asked = [h for h in hosts if owed[h.label] == commit]
        statuses = asyncio.run(census(config, slot, asked, commit, depooled, config.fanout.concurrency))
        on_it |= {h.label for h, s in zip(asked, statuses, strict=True) if s.state is HostState.CURRENT}
    return on_it, owed


def _whole_pool_members(
    current: Sequence[Host], depooled: Sequence[Host]
) -> tuple[list[Host], tuple[tuple[str, tuple[str, ...]], ...]]:
    """One host of each pool member (see pool_member) whose every depooled host (`depooled`: those asked, and
    those not asked) is caught up: the pool command puts a name back, so `mw1:2201` current and `mw1:2202` behind
    or not asked keep `mw1` out (else the load balancer served the one behind). Also the hosts caught up but held
    back so, each with the hosts of its name not caught up."""
    caught_up = {h.label for h in current}
    behind: dict[str | None, list[str]] = {}
    for host in depooled:
        if host.label not in caught_up:
            behind.setdefault(pool_member(host.label), []).append(host.label)
    chosen, seen, held = [], set(), []
    for host in current:
        member = pool_member(host.label)
        if member in behind:
            held.append((host.label, tuple(behind[member])))
        elif member not in seen:
            seen.add(member)
            chosen.append(host)
    return chosen, tuple(held)


def releases_owed(
    newest_first: Iterable[DeployRun], hosts: Sequence[Host], slots_release: str, port: int
) -> dict[str, str]:
    """The commit each of `hosts` must run to be caught up (by label), from the slot's runs read newest first, no
    further back than the newest that named each (a host none named reads them all): the slot's release, unless
    that run was a rollback of part of the fleet. That run meant to take the host off the slot's release: one whose
    rollback failed there (depooled, still on the slot's release) was put back in the pool on it, and one it did
    roll back was never caught up, though on the release meant for it."""
    wanted = {h.key(port) for h in hosts}
    newest_part_rollback: dict[tuple[str, int], str | None] = {}
    runs = iter(newest_first)
    while wanted and (run := next(runs, None)) is not None:  # not one run more than needed, none of them kept
        partial_rollback = run.commit if run.action == "rollback" and not run.sets_release else None
        for named in (*run.switched, *run.failed, *run.not_switched):
            if (machine := machine_of(named, port)) is not None and machine not in newest_part_rollback:
                newest_part_rollback[machine] = partial_rollback
                wanted.discard(machine)
    return {h.label: newest_part_rollback.get(h.key(port)) or slots_release for h in hosts}


def slots_owed(changes: Sequence[tuple[int | None, str, str]]) -> dict[str, set[int]]:
    """For each pool member (see pool_member), the slots whose runs took it out of the pool since a `pool` last put
    it back (from History.pool_changes_by_runs, oldest first)."""
    owed: dict[str, set[int]] = {}
    for slot, action, stored in changes:
        member = pool_member(stored)
        if member is None:
            continue
        if action == "pool":
            owed.pop(member, None)
        elif slot is not None:
            owed.setdefault(member, set()).add(slot)
    return owed


def _caught_up_on_the_slots_that_depooled_them(
    base: Config, history: History, slot: int, hosts: Sequence[Host]
) -> tuple[list[Host], tuple[tuple[str, int], ...]]:
    """`hosts` (current on `slot`) that are also on the current release of every other slot whose run depooled
    them, and the rest with the slot each is behind on: the pool serves every slot, so a host still serving an
    old release of slot 10 must stay out whatever slot 11 says. A slot with no release yet (its first sync failed
    there, or a canary rejected it) has none for them to be on: they stay out for it."""
    owed = slots_owed(history.pool_changes_by_runs())
    member = {h.label: pool_member(h.label) or h.label for h in hosts}
    kept, behind = list(hosts), []
    for other in sorted({owed_slot for h in hosts for owed_slot in owed.get(member[h.label], ())} - {slot}):
        asked = [h for h in kept if other in owed.get(member[h.label], ())]
        last = history.last_deployed(other)
        if not asked:
            continue
        on_it: set[str] = set()
        if last is not None:
            on_it, _ = _on_the_releases_owed(base.for_slot(other), history, other, asked, last.commit, frozenset())
        lagging = {h.label for h in asked if h.label not in on_it}
        kept = [h for h in kept if h.label not in lagging]
        behind += [(label, other) for label in sorted(lagging)]
    return kept, tuple(behind)

