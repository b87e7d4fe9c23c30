"""Did a tool do the whole job? Checks on a run's output, and reads of the hosts' disks (never through the tool)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from bench_measure import ToolRun

SUBMODULE_PROBE = "extensions/Ext2/includes/dir00/file0000.php"  # present once the last submodule is checked out


def _json(run: ToolRun) -> dict[str, object] | None:
    try:
        document = json.loads(run.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    return document if isinstance(document, dict) else None


def check_status(run: ToolRun, n: int) -> str | None:
    document = _json(run)
    counts = document.get("counts") if document else None
    if not isinstance(counts, dict) or counts.get("current") != n:
        return f"status: {counts or run.tail()}"
    return None


def check_sync(run: ToolRun, n: int) -> str | None:
    document = _json(run)
    if document is None:
        return f"sync: exit {run.returncode}: {run.tail()}"
    counts = document.get("counts")
    if document.get("outcome") == "ok" and isinstance(counts, dict) and counts.get("ok") == n:
        return None
    hosts = document.get("hosts")
    failed = [h for h in hosts if isinstance(h, dict) and not h.get("ok")] if isinstance(hosts, list) else []
    first = f"; first failure: {failed[0].get('host')} in {failed[0].get('phase')}: {failed[0].get('error')}"
    return f"sync {document.get('outcome')}: {counts}" + (first if failed else "")


def check_worker(run: ToolRun, n: int, head: str | None) -> str | None:
    document = _json(run)
    if not document or document.get("ok") != n:
        return f"{document.get('ok') if document else '?'}/{n} ok: {document.get('errors') if document else run.tail()}"
    if head is not None and document.get("heads") != {head: n}:
        return f"unexpected output: {document.get('heads')}"
    return None


def check_lines(run: ToolRun, n: int, head: str) -> str | None:
    lines = run.stdout.split()
    if run.returncode != 0 or lines.count(head) != n:
        return f"exit {run.returncode}, {lines.count(head)}/{n} heads: {run.tail()}"
    return None


def check_ansible(run: ToolRun, n: int, head: str) -> str | None:
    if run.returncode != 0 or run.stdout.count(head) != n:
        return f"exit {run.returncode}, {run.stdout.count(head)}/{n} heads: {run.tail()}"
    return None


def verify_slots(paths: Sequence[Path], commit: str) -> str | None:
    """Read every copy's HEAD from disk (not through the tool): all at the commit, submodules checked out."""
    wrong = 0
    for path in paths:
        try:
            head = (path / ".git" / "HEAD").read_text().strip()
        except OSError:
            head = ""
        if head != commit or not (path / SUBMODULE_PROBE).exists():
            wrong += 1
    return f"{wrong}/{len(paths)} copies not at {commit[:12]} with submodules" if wrong else None


def objects_bytes(root: Path) -> int:
    """Bytes of git objects under a host's root (census folder aside): every file below a folder named `objects`,
    each inode once (Sartoris's trees share files by hard links)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for folder, dirs, names in os.walk(root):
        if Path(folder) == root and "census" in dirs:
            dirs.remove("census")
        if "objects" not in Path(folder).parts[len(root.parts):]:
            continue
        for name in names:
            info = os.lstat(os.path.join(folder, name))
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_size
    return total
