"""Human summaries of reports, as text: counts first, then failed hosts grouped by identical error."""

from __future__ import annotations

import time
from collections.abc import Sequence

from sartoris.results import HostState, StatusReport, SyncReport, group_by_error
from sartoris.slots import SlotInfo
from sartoris.state import Entry, SlotLock, shown

_SHOWN_PER_GROUP = 12


def host_list(hosts: Sequence[str]) -> str:
    """A readable host list that stays short for a large group."""
    shown = ", ".join(hosts[:_SHOWN_PER_GROUP])
    more = len(hosts) - _SHOWN_PER_GROUP
    return f"{shown}, … and {more} more" if more > 0 else shown


def grouped(groups: dict[str, list[str]]) -> list[str]:
    """`[count] what` then its hosts, biggest group first (as dshbak does)."""
    lines = []
    for what, hosts in sorted(groups.items(), key=lambda item: (-len(item[1]), item[0])):
        lines.append(f"  [{len(hosts)}] {what}")
        lines.append(f"      {host_list(hosts)}")
    return lines


_PART_OF_THE_FLEET = "part of the fleet: the slot's release is still the one the others run (status compares with it)"


def sync_summary(report: SyncReport, action: str = "sync") -> str:
    counts = report.counts
    lines = [
        f"{action} slot {report.slot}: {report.tag} ({report.commit[:12]}) {report.outcome.value}"
        f" in {report.seconds:.1f}s",
        f"  {counts['targeted']} targeted, {counts['ok']} ok, {counts['failed']} failed, {counts['depooled']} depooled"
        + (f", {counts['not_switched']} not switched (the run stopped first)" if counts["not_switched"] else ""),
    ]
    if action == "rollback" and not report.sets_release:  # else `status` calling the other hosts current surprises
        lines.append(f"  {_PART_OF_THE_FLEET}")
    if action == "rollback" and (unchanged := sum(r.unchanged for r in report.hosts)):  # an `ok` that moved nothing
        were, them = ("host was", "it") if unchanged == 1 else ("hosts were", "them")
        lines.append(f"  {unchanged} {were} already on {report.tag}: nothing changed on {them}")
    if report.outcome.value == "aborted" and not any(r.phase.value == "done" for r in report.hosts):
        why = f" ({report.reason})" if report.reason else ""
        lines.append(f"  aborted{why}: no host was switched, nobody was depooled")
    elif report.reason:  # a canary failed, interrupted, nothing to retry
        lines.append(f"  {report.reason}")
    lines += grouped(dict(group_by_error(report.hosts)))
    noted: dict[str, list[str]] = {}
    for result in report.hosts:  # on the release, though the run first could not see it (a reply that came late)
        if result.note:
            noted.setdefault(f"ok: {result.note}", []).append(result.host)
    lines += grouped(noted)
    not_out = {r.host: r.depool_error for r in report.hosts if r.depool_error}
    if not_out:  # a failed host still in the pool is what an operator must act on first
        lines.append(f"  depool command failed, still in the pool: {len(not_out)}")
        by_error: dict[str, list[str]] = {}
        for host, error in not_out.items():
            by_error.setdefault(f"depool: {error}", []).append(host)
        lines += grouped(by_error)
    pooled = [
        r.host for r in report.hosts if r.failed and not r.depooled and not r.depool_error and not r.depooled_before
    ]
    if pooled and counts["depooled"]:  # some failures were depooled, these were not (past max_failures or the cap)
        lines.append(f"  failed and still in the pool (on their old tree): {len(pooled)}")
        lines += grouped({"not depooled": pooled})
    out_before = [r.host for r in report.hosts if r.depooled_before]
    if out_before:  # not depooled by this run, but out of the pool all the same
        lines += grouped({"failed, out of the pool since before this run": out_before})
    if report.hook_error is not None:  # the hosts are as above; what the hook does (purge, announce) did not happen
        lines.append(f"  {report.hook_error}")
    return "\n".join(lines)


def status_summary(report: StatusReport) -> str:
    counts = report.counts
    tag = f"{report.tag} ({(report.commit or '')[:12]})" if report.tag else "nothing deployed from here yet"
    lines = [
        f"slot {report.slot}: {tag}",
        "  " + ", ".join(f"{counts[s.value]} {s.value}" for s in HostState) + f", {counts['depooled']} depooled",
    ]
    if report.lock and (why := SlotLock.unreadable(report.lock)) is not None:  # held, by whom is unknown
        lines.append(f"  locked, but the lock file {report.lock.get('path')} cannot be read ({why})")
    elif report.lock:
        held = {key: shown(report.lock.get(key)) for key in ("user", "host", "since")}
        gone = "; that run is gone: the lock is stale, and --force on the next sync or start breaks it"
        stale = gone if report.lock.get("stale") else ""
        lines.append(f"  locked by {held['user']}@{held['host']} since {held['since']}{stale}")
    groups: dict[str, list[str]] = {}
    for host in report.hosts:
        if host.state is not HostState.CURRENT:
            detail = host.error or (host.commit[:12] if host.commit else "no checkout")
            groups.setdefault(f"{host.state.value}: {detail}", []).append(host.host)
    lines += grouped(groups)
    out = [host.host for host in report.hosts if host.depooled]
    if out:  # which hosts are out of the pool, not only how many (`pool --caught-up` puts the current ones back)
        lines += grouped({"depooled": out})
    return "\n".join(lines)


def log_table(entries: Sequence[Entry]) -> str:
    """History, newest first, one line per entry."""
    if not entries:
        return "no history yet"
    lines = []
    for e in entries:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e.started))
        counts = e.report.get("counts") or {}
        hosts = f" {counts.get('ok', 0)}/{counts.get('targeted', 0)} ok" if counts else ""
        if "changed" in e.report:  # a depool or pool: which hosts it changed, and which it failed for
            outcomes = e.host_outcomes()
            names = host_list([h["host"] for h in outcomes if h["ok"]])
            failed = host_list([h["host"] for h in outcomes if not h["ok"]])
            hosts = (f" {names}" if names else "") + (f"{';' if names else ''} failed: {failed}" if failed else "")
        slot = f"slot {e.slot}" if e.slot is not None else ""  # none for a pool change: it is every slot's
        what = e.tag or e.commit[:12] or ""
        row = f"{when}Z {e.user:<10} {slot:<9} {e.action:<8} {e.outcome:<8} {what}{hosts}"
        lines.append(row.rstrip() + _one_line(e.message))
    return "\n".join(lines)


def _one_line(message: str) -> str:
    """A -m message in a table row: its first line, then ` …` when it has more (a later line would read as a row
    of its own, and could pass for one). A history written by an old version, or a message taken from a lock written
    by hand, may hold an escape sequence: such a line is shown quoted and escaped, never acted on by the terminal."""
    lines = message.strip().splitlines()
    if not lines:
        return ""
    return f"  {shown(lines[0].strip())}" + (" …" if len(lines) > 1 else "")


def log_entry(entry: Entry) -> str:
    """One deploy with its per-host outcomes grouped as in the sync summary."""
    lines = [log_table([entry]), f"  {entry.seconds:.1f}s, commit {entry.commit}"]
    groups: dict[str, list[str]] = {}
    for host in entry.report.get("hosts", []):
        what = "ok" if host.get("ok") else f"{host.get('phase')}: {host.get('error')}"
        groups.setdefault(what, []).append(host["host"])
    lines += grouped(groups)
    return "\n".join(lines)


def slots_table(infos: Sequence[SlotInfo]) -> str:
    if not infos:
        return "no slots under checkout_root"
    return "\n".join(
        f"slot {i.slot}  {i.path}  {i.tag or '(never deployed)'}" + (f"  <- {', '.join(i.links)}" if i.links else "")
        for i in infos
    )
