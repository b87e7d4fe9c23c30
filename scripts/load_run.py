#!/usr/bin/env python3
"""`make load`: one sync against a large local fleet with about 5% faulty hosts (refused, tarpit,
authentication failure, changed host key, a checkout that hangs), checking that exactly the faulty hosts
are depooled, that the wall time stays bounded by the timeouts, and recording the controller's peak
memory in BENCHMARKS.md (a block below bench.py's marker, which bench.py keeps)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from demo import write_config  # noqa: E402
from fleet import Fleet  # noqa: E402
from sample_repo import commit_change, make_checkout  # noqa: E402

BEGIN, END = "<!-- load:begin -->", "<!-- load:end -->"
CONNECT_TIMEOUT, COMMAND_TIMEOUT = 5, 30


def run_sync(config: Path, *args: str) -> tuple[int, dict[str, object], float, int]:
    """The real CLI as a child: exit code, JSON report, wall seconds, peak RSS in KiB (from wait4)."""
    began = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, str(ROOT / "sartoris.py"), "--config", str(config), "-q", "sync", "--slot", "0", "--json",
         *args],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    out = child.stdout.read() if child.stdout else ""
    _, status, usage = os.wait4(child.pid, 0)
    return os.waitstatus_to_exitcode(status), json.loads(out), time.monotonic() - began, usage.ru_maxrss


def hang_checkout(tree: Path) -> None:
    """Plant a post-checkout hook that never returns: the next switch on that host hangs until the timeout."""
    hook = tree / ".git" / "hooks" / "post-checkout"
    hook.parent.mkdir(parents=True, exist_ok=True)
    hook.write_text("#!/bin/sh\nsleep 600\n")
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)


def record(section: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{BEGIN}\n{section.rstrip()}\n{END}"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=500, help="fleet size, faulty hosts included")
    parser.add_argument("--net", default="127.60")
    args = parser.parse_args()
    faulty_each = max(1, args.hosts * 5 // 100 // 5)
    faults = {"refused": faulty_each, "tarpit": faulty_each, "auth": faulty_each, "hostkey": faulty_each}
    good = args.hosts - sum(faults.values())
    work = Path(tempfile.mkdtemp(prefix="sartoris-load-", dir="/tmp"))
    fleet = Fleet.start(work / "fleet", good, net=args.net, faults=faults)
    try:
        deploy = work / "deploy"
        checkout = make_checkout(deploy, 0, files=500, submodules=2)
        config = write_config(deploy, fleet, work / "publish", work / "pool.log")
        text = config.read_text().replace("connect_timeout = 10", f"connect_timeout = {CONNECT_TIMEOUT}")
        config.write_text(text.replace("command_timeout = 120", f"command_timeout = {COMMAND_TIMEOUT}")
                          .replace('max_failures = "5%"', 'max_failures = "6%"'))
        faulty = [h for hosts in fleet.faults.values() for h in hosts]
        fleet.write_group(deploy / "hosts" / "fleet", [*fleet.hosts, *faulty])
        code, _, _, _ = run_sync(config)  # the first deploy: every good host gets a tree
        assert code == 5, f"first sync exited {code}"
        hung = fleet.hosts[:faulty_each]  # a fifth kind of fault: the switch hangs on these
        for host in hung:
            hang_checkout(fleet.host_root(host) / "php-slot0")
        (work / "pool.log").unlink()
        commit_change(checkout, "index.php", "<?php echo 'load';\n")
        code, report, wall, rss_kib = run_sync(config)
        depooled = sorted((work / "pool.log").read_text().split("\n")[:-1])
        expected = sorted(f"depool {h}" for h in [*faulty, *hung])
        counts = report["counts"]
        bound = CONNECT_TIMEOUT + 2 * COMMAND_TIMEOUT + 30
        ok = code == 5 and depooled == expected and wall < bound
        lines = [
            "## Load: one sync, 5% of the fleet faulty (`make load`)",
            "",
            f"Command: `{' '.join(['make', 'load'])}` (scripts/load_run.py --hosts {args.hosts}), "
            f"{time.strftime('%Y-%m-%d', time.gmtime())}, {os.cpu_count()} cores, Python {platform.python_version()}.",
            "",
            f"- Fleet: {args.hosts} real sshd hosts; faulty: {faulty_each} refused, {faulty_each} tarpit (never "
            f"speaks), {faulty_each} authentication failure, {faulty_each} changed host key, {faulty_each} whose "
            f"checkout hangs ({len(expected)} in all).",
            f"- connect_timeout {CONNECT_TIMEOUT}s, command_timeout {COMMAND_TIMEOUT}s, concurrency 100, "
            f"max_failures 6%.",
            f"- Result: exit {code}, {counts}; depooled exactly the faulty hosts: {depooled == expected}.",
            f"- Wall time {wall:.1f}s (bound by the timeouts: < {bound}s);"
            f" controller peak RSS {rss_kib / 1024:.1f} MiB "
            f"({rss_kib / args.hosts:.0f} KiB per host).",
            f"- Verdict: {'PASS' if ok else 'FAIL'}.",
        ]
        record("\n".join(lines))
        print("\n".join(lines))
        return 0 if ok else 1
    finally:
        fleet.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
