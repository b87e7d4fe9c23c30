"""Human summaries of reports, as text: counts first, then failed hosts grouped by identical error."""

from __future__ import annotations

from collections.abc import Sequence

from sartoris.results import HostState, StatusReport, SyncReport, group_by_error

_SHOWN_PER_GROUP = 12


def host_list(hosts: Sequence[str]) -> str:
    """A readable host list that stays short for a large group."""
    shown = ", ".join(hosts[:_SHOWN_PER_GROUP])
    more = len(hosts) - _SHOWN_PER_GROUP
    return f"{shown}, … and {more} more" if more > 0 else shown


def sync_summary(report: SyncReport, action: str = "sync") -> str:
    counts = report.counts
    lines = [
        f"{action} slot {report.slot}: {report.tag} ({report.commit[:12]}) {report.outcome.value}"
        f" in {report.seconds:.1f}s",
        f"  {counts['targeted']} targeted, {counts['ok']} ok, {counts['failed']} failed,"
        f" {counts['depooled']} depooled",
    ]
    if report.outcome.value == "aborted":
        lines.append("  aborted: too many hosts failed to fetch; no host was switched, nobody was depooled")
    for error, hosts in group_by_error(report.hosts):
        lines.append(f"  [{len(hosts)}] {error}")
        lines.append(f"      {host_list(hosts)}")
    return "\n".join(lines)


def status_summary(report: StatusReport) -> str:
    counts = report.counts
    tag = f"{report.tag} ({(report.commit or '')[:12]})" if report.tag else "nothing deployed from here yet"
    lines = [
        f"slot {report.slot}: {tag}",
        "  " + ", ".join(f"{counts[s.value]} {s.value}" for s in HostState) + f", {counts['depooled']} depooled",
    ]
    if report.lock:
        lines.append(f"  locked by {report.lock.get('user')}@{report.lock.get('host')} since {report.lock.get('since')}")
    for state in (HostState.BEHIND, HostState.MISSING, HostState.UNREACHABLE):
        groups: dict[str, list[str]] = {}
        for host in report.hosts:
            if host.state is state:
                detail = host.error or (host.commit[:12] if host.commit else "no checkout")
                groups.setdefault(detail, []).append(host.host)
        for detail, hosts in sorted(groups.items(), key=lambda item: -len(item[1])):
            lines.append(f"  [{len(hosts)}] {state.value}: {detail}")
            lines.append(f"      {host_list(hosts)}")
    return "\n".join(lines)
