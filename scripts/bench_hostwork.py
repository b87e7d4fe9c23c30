#!/usr/bin/env python3
"""The git work of one deploy on one host, no SSH: Sartoris's host scripts (sartoris.remote) against the naive
commands the benchmark's peers and floor run, each in N local folders one after another, for a first deploy
and a run of one-file incremental deploys (the fifth is the first to recycle a retired tree).

Prints a Markdown table of wall and CPU milliseconds per folder (children's rusage) for `BENCHMARKS.md`'s
hand-written section. Standard library, git and the sources in this checkout only.

    python3 scripts/bench_hostwork.py [--folders 20] [--files 1700] [--submodules 3]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from bench_tools import (  # noqa: E402
    CHANGED_FILE,
    Release,
    checkout_release,
    naive_fetch,
    naive_switch,
    publish_script,
)
from sample_repo import commit_change, make_checkout  # noqa: E402

from sartoris.remote import (  # noqa: E402
    HostCommand,
    RemoteRelease,
    SubmoduleSpec,
    bounded,
    fetch_command,
    switch_command,
)

PHASES = ("first", "incremental 1", "incremental 2", "incremental 3", "incremental 4 (recycles)")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folders", type=int, default=20, help="hosts simulated, one after another (%(default)s)")
    parser.add_argument("--files", type=int, default=1700, help="files in the app's core (%(default)s)")
    parser.add_argument("--submodules", type=int, default=3, help="submodules of 100 files each (%(default)s)")
    return parser.parse_args(argv)


def publish(checkout: Path, url: Path, tag: str) -> Release:
    """Tag HEAD and publish it like Sartoris; the release as the scripts need it."""
    subprocess.run(["sh", "-c", publish_script(checkout, url, tag)], check=True, timeout=300)
    return checkout_release(checkout, tag)


def timed(scripts: Sequence[HostCommand | str]) -> tuple[float, float]:
    """Run each script with sh, in order (a HostCommand as a host runs it: its line, the script on stdin); wall
    and children's CPU milliseconds per script."""
    before, began = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    for script in scripts:
        line, stdin = (script.command, script.script) if isinstance(script, HostCommand) else (script, None)
        done = subprocess.run(["sh", "-c", line], input=stdin, capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0:
            raise SystemExit(f"a host script failed: {done.stderr.strip()[-500:]}")
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall * 1000 / len(scripts), cpu * 1000 / len(scripts)


def main() -> None:
    args = parse_args()
    work = Path(tempfile.mkdtemp(prefix="sartoris-hostwork-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    try:
        checkout = make_checkout(work / "deploy", 0, files=args.files, submodules=args.submodules, submodule_files=100)
        url = work / "publish.git"
        print(f"| deploy | tool | fetch wall ms | fetch CPU ms | switch wall ms | switch CPU ms |  ({args.folders} "
              f"folders, {args.files} files + {args.submodules} submodules x 100)")
        print("|---|---|---|---|---|---|")
        for number, phase in enumerate(PHASES):
            if number:
                commit_change(checkout, CHANGED_FILE, f"<?php // {phase}\n", phase)
            release = publish(checkout, url, f"hostwork-{number}")
            modules = tuple(SubmoduleSpec(m.name, m.path, m.commit) for m in release.submodules)
            ours, naive = [], []
            for index in range(args.folders):
                slot = work / "sartoris" / str(index) / "php-slot0"
                slot.parent.mkdir(parents=True, exist_ok=True)
                remote = RemoteRelease(str(slot), str(url), release.tag, release.commit, modules)
                ours.append((bounded(fetch_command(remote), 600), bounded(switch_command(remote), 600)))
                plain = work / "naive" / str(index) / "php-slot0"
                plain.parent.mkdir(parents=True, exist_ok=True)
                naive.append((naive_fetch(plain, url, release), naive_switch(plain, release)))
            for tool, scripts in (("Sartoris", ours), ("naive", naive)):
                fetch, switch = timed([f for f, _ in scripts]), timed([s for _, s in scripts])
                print(f"| {phase} | {tool} | {fetch[0]:.1f} | {fetch[1]:.1f} | {switch[0]:.1f} | {switch[1]:.1f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
