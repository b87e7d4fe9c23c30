#!/usr/bin/env python3
"""`make bench`: Sartoris against the tools an operator would otherwise use, on one local fleet of real sshd
hosts, in the same run; writes BENCHMARKS.md (issue 5).

Census (one read-only command per host): `sartoris status` vs a bare asyncssh script (the floor for our stack),
parallel-ssh, OpenSSH via `xargs -P` (default kex and curve25519) and Ansible `raw`. Deploy (first and one-file
incremental, about 2,000 files and 3 submodules): `sartoris sync` vs the same git work driven by parallel-ssh
and by OpenSSH + xargs, and vs the floor: the naive git commands in N local folders, no SSH. Every figure is a
median over --runs repetitions with the tools in round-robin order; the fleet (on 127.40.x.y) is always stopped.

    .venv-bench/bin/python scripts/bench.py [--sizes 100,200,500] [--runs 3] [--concurrency 100] [--quick]
    .venv-bench/bin/python scripts/bench.py --report-only RESULTS.json     (re-render BENCHMARKS.md)
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import json
import os
import platform
import py_compile
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import FrameType

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_checks import objects_bytes, verify_slots  # noqa: E402
from bench_measure import HostMeter, kill_running, run_tool  # noqa: E402
from bench_report import Profile, Sample, render, summarise_profile  # noqa: E402
from bench_tools import (  # noqa: E402
    BIN,
    CENSUS_SLOT,
    CENSUS_TOOLS,
    CHANGED_FILE,
    DEPLOY_TOOLS,
    ROOT,
    Spec,
    World,
    census_spec,
    clear_roots,
    deploy_spec,
    new_deploy_checkout,
    prepare,
    remove_trees,
    sartoris_argv,
)
from fleet import Fleet  # noqa: E402
from sample_repo import commit_change, git  # noqa: E402

NET = "127.40"  # the benchmark's own addresses: apart from make fleet, the demo and the test suites
PROFILE_RATE = 250
TMPFS_INODES = "32m"  # links included; a few GB of kernel memory at most, only if used


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,200,500", help="fleet sizes, comma separated (%(default)s)")
    parser.add_argument("--runs", type=int, default=3, help="repetitions per figure; the median is kept (%(default)s)")
    parser.add_argument("--concurrency", type=int, default=100, help="hosts at once, every tool (%(default)s)")
    parser.add_argument("--quick", action="store_true", help="smoke check: 50 hosts, 1 run, small profile")
    parser.add_argument("--census-tools", default=",".join(CENSUS_TOOLS))
    parser.add_argument("--deploy-tools", default=",".join(DEPLOY_TOOLS))
    parser.add_argument("--all-deploy-tools-upto", type=int, default=0, metavar="N",
                        help="above N hosts, deploy only with Sartoris, the best peer of the smaller sizes and the "
                             "floor "
                             "(0: every tool at every size)")
    parser.add_argument("--peer-commands", choices=("naive", "sartoris"), default="naive",
                        help="host scripts the deploy peers run: the naive ones the floor runs (the default: fetch; "
                             "checkout; submodule update --init, what the issue's peers do) or Sartoris's own "
                             "(sartoris.remote: the peers then differ from Sartoris only in transport)")
    parser.add_argument("--no-steady", dest="steady", action="store_false",
                        help="skip the steady-state deploy (two unmeasured deploys, then a measured 5th)")
    parser.add_argument("--files", type=int, default=1700, help="files in the app's core (%(default)s)")
    parser.add_argument("--submodule-files", type=int, default=100, help="files per submodule, 3 of them")
    parser.add_argument("--profile-size", type=int, default=200, help="hosts for the py-spy profile (0: none)")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds allowed per tool run")
    parser.add_argument("--output", type=Path, help="default BENCHMARKS.md (quick: /tmp/sartoris-bench-quick.md)")
    parser.add_argument("--results", type=Path, help="where the raw samples go (JSON; default beside --output "
                                                    "in /tmp)")
    parser.add_argument("--report-only", type=Path, metavar="RESULTS", help="only re-render from saved samples")
    parser.add_argument("--profiles-from", type=Path, metavar="RESULTS",
                        help="with --report-only: take the profiles from another saved run")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (the fleet is stopped anyway)")
    parser.add_argument("--tmpfs", default="16g", metavar="SIZE",
                        help="the work folder (hosts' disks, deploy host, floor) is a tmpfs of this size cap, so the "
                             "figures measure the tools and git, not this VM's disk ('' or 0: plain /tmp)")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.runs, args.profile_size = "50", 1, min(args.profile_size, 50)
    args.sizes = sorted({int(size) for size in str(args.sizes).split(",")})
    args.census_tools = [t for t in args.census_tools.split(",") if t]
    args.deploy_tools = [t for t in args.deploy_tools.split(",") if t]
    unknown = set(args.census_tools) - set(CENSUS_TOOLS) | set(args.deploy_tools) - set(DEPLOY_TOOLS)
    if unknown or args.runs < 1 or args.concurrency < 1 or min(args.sizes) < 1:
        parser.error(f"bad tools {sorted(unknown)} or runs/concurrency/sizes below 1")
    args.output = args.output or (Path("/tmp/sartoris-bench-quick.md") if args.quick else ROOT / "BENCHMARKS.md")
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    args.results = args.results or Path(f"/tmp/sartoris-bench-results-{stamp}.json")
    return args


def say(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through every finally: tool runs killed, fleet stopped


def rotate(items: Sequence[str], by: int) -> list[str]:
    """Round-robin order: repetition r starts with the r-th tool."""
    return [items[(by + i) % len(items)] for i in range(len(items))] if items else []


# --- one measured run ----------------------------------------------------------------------------------------


def measure(world: World, spec: Spec, bench: str, tool: str, n: int, rep: int, run_dir: Path) -> Sample:
    with HostMeter(world.listener_pids(n), [(host, world.fleet.port) for host in world.hosts(n)]) as meter:
        run = run_tool(spec.argv, timeout=world.timeout, out_dir=run_dir, env=spec.env, cwd=spec.cwd,
                       sample_tree=spec.sample_tree)
    side = meter.result
    assert side is not None
    error = f"timed out after {world.timeout:g}s" if run.timed_out else spec.check(run)
    if not side.quiet and error is None:
        error = "sessions still open 15 s after the run: host-side CPU incomplete"
    sample = Sample(bench, tool, n, rep, run.wall, run.cpu, run.maxrss_kb, run.tree_pss_kb, side.host_cpu,
                    side.machine_cpu, side.connections, error)
    say(f"  {bench:<11} {n:>4} hosts  {tool:<19} {run.wall:7.2f}s wall  {run.cpu * 1000 / n:6.1f} ms CPU/host  "
        f"{sample.memory_kb / 1024:6.1f} MiB  host {side.host_cpu:6.1f}s" + (f"  FAILED: {error}" if error else ""))
    return sample


def census_round(world: World, tools: Sequence[str], n: int, rep: int) -> list[Sample]:
    out = []
    for tool in tools:
        run_dir = world.work / "runs" / f"census-{n}-{rep}-{tool}"
        out.append(measure(world, census_spec(tool, world, n, run_dir), "census", tool, n, rep, run_dir))
    return out


# A slot's deploys, in order: (bench name, measured). Sartoris builds a new tree as a hard-link copy until the
# slot holds more trees than keep_releases (3) keeps; from the 5th deploy on it recycles a retired one, which is
# every deploy after the first few, so the 5th is measured as the steady state.
SERIES = (("first", True), ("incremental", True))
STEADY_SERIES = (("warm-up-3", False), ("warm-up-4", False), ("steady", True))


def deploy_series(world: World, tool: str, n: int, rep: int, slot: int, steady: bool) -> list[Sample]:
    """A first deploy to a fresh slot, then one-file incremental deploys (see SERIES); then the slot is removed."""
    checkout = new_deploy_checkout(world, slot)
    copies = world.slot_dirs(tool, n, slot)
    roots = world.roots(tool, n)
    probes = roots[:3]
    out: list[Sample] = []
    try:
        for phase, measured in SERIES + (STEADY_SERIES if steady else ()):
            if phase != "first":
                commit_change(checkout, CHANGED_FILE, f"<?php\n// changed for slot {slot}, {phase}\n", "bench")
            commit = git(checkout, "rev-parse", "HEAD")
            run_dir = world.work / "runs" / f"{phase}-{n}-{rep}-{tool}"
            spec = deploy_spec(tool, world, n, slot, phase, run_dir)
            if measured:
                before = [objects_bytes(p) for p in probes]
                sample = measure(world, spec, phase, tool, n, rep, run_dir)
                sample.error = sample.error or verify_slots(copies, commit)
                after = [objects_bytes(p) for p in probes]
                grown = [a - b for a, b in zip(after, before, strict=True)]
                sample.objects_bytes = int(statistics.median(after if phase == "first" else grown))
                out.append(sample)
                error = sample.error
            else:
                run = run_tool(spec.argv, timeout=world.timeout, out_dir=run_dir, env=spec.env, cwd=spec.cwd)
                error = spec.check(run) or verify_slots(copies, commit)
            if error:
                say(f"  {tool} {phase}: {error}")
                break
    finally:
        clear_roots(roots)
        remove_trees([checkout, world.publish_url(slot)])
    return out


# --- the whole run -------------------------------------------------------------------------------------------


def deploy_tools_for(args: argparse.Namespace, samples: list[Sample], n: int) -> list[str]:
    """Every deploy tool, or above --all-deploy-tools-upto Sartoris, the best peer so far and the floor only."""
    if not args.all_deploy_tools_upto or n <= args.all_deploy_tools_upto:
        return list(args.deploy_tools)
    # the peer whose median over every deploy of the smaller sizes is lowest: one lucky sample once picked the
    # peer that was slower on the incremental deploys (session 14's run)
    per_tool: dict[str, list[float]] = {}
    for s in samples:
        if s.bench != "census" and s.tool in ("parallel-ssh", "openssh-curve25519") and s.error is None:
            per_tool.setdefault(s.tool, []).append(s.wall / s.hosts)
    best = min(per_tool, key=lambda tool: statistics.median(per_tool[tool])) if per_tool else "openssh-curve25519"
    return [t for t in args.deploy_tools if t in ("sartoris", best, "local-floor")]


def benchmark(args: argparse.Namespace, work: Path, meta: dict[str, object]) -> tuple[list[Sample], list[Profile]]:
    size = max(args.sizes)
    say(f"starting {size} sshd hosts on {NET}.x.y in {work}")
    fleet = Fleet.start(work / "fleet", size, net=NET, ready_timeout=max(60.0, size * 0.3))
    try:
        world = World(fleet, work, snapshot_sources(work / "src"), args.concurrency, args.timeout, args.files,
                      args.submodule_files, peer_commands=args.peer_commands)
        prepare(world)
        say(f"deploying the census slot to {size} hosts")
        setup = run_tool(sartoris_argv(world, "sync", "--slot", str(CENSUS_SLOT), "--hosts", world.group(size),
                                       "--json", "-m", "bench census", config=world.census_config),
                         timeout=args.timeout, out_dir=work / "runs" / "census-setup", cwd=world.census_root)
        if setup.returncode != 0:
            raise SystemExit(f"bench: the census slot could not be deployed: {setup.tail()}")
        samples: list[Sample] = []
        slot = CENSUS_SLOT
        for n in args.sizes:
            meta.setdefault("load_by_size", {})[n] = os.getloadavg()[0]  # type: ignore[index]
            deploy_tools = deploy_tools_for(args, samples, n)
            if deploy_tools != list(args.deploy_tools):
                meta.setdefault("notes", []).append(  # type: ignore[union-attr]
                    f"at {n} hosts the deploy ran only {', '.join(deploy_tools)} (--all-deploy-tools-upto)")
            for rep in range(args.runs):
                say(f"{n} hosts, run {rep + 1}/{args.runs}")
                samples += census_round(world, rotate(args.census_tools, rep), n, rep)
                for tool in rotate(deploy_tools, rep):
                    slot += 1
                    samples += deploy_series(world, tool, n, rep, slot, args.steady)
                args.results.write_text(json.dumps({"meta": meta, "samples": [asdict(s) for s in samples]}))
        profiles = profile(world, min(args.profile_size, size), slot + 1) if args.profile_size else []
        return samples, profiles
    finally:
        kill_running()
        fleet.stop()
        say("fleet stopped")


def snapshot_sources(folder: Path) -> Path:
    """Copy sartoris.py and sartoris/ as they are now, and run (and import the host scripts from) the copy only:
    others edit the sources while the benchmark runs, and every figure must measure the same code."""
    shutil.copytree(ROOT / "sartoris", folder / "sartoris", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "sartoris.py", folder / "sartoris.py")
    # Bytecode, as an install has it (pip compiles at install, the zipapp when it unpacks). Without it, under
    # PYTHONDONTWRITEBYTECODE (set on this machine) every run compiled Sartoris's modules anew: ~30 ms of start-up
    # that the peers, installed with their bytecode, never pay.
    timestamped = py_compile.PycInvalidationMode.TIMESTAMP  # not hash-checked (SOURCE_DATE_EPOCH would ask that)
    if not compileall.compile_dir(folder / "sartoris", quiet=1, invalidation_mode=timestamped):
        raise RuntimeError("could not compile the snapshot of the Sartoris sources")
    if "sartoris" in sys.modules:
        raise RuntimeError("sartoris was imported before its snapshot was taken")
    sys.path.insert(0, str(folder))
    return folder


def profile(world: World, n: int, slot: int) -> list[Profile]:
    """One `sartoris status`, one first `sync` and one incremental `sync` at n hosts: each run once plainly (its
    wall time and user/system CPU) and once under `py-spy --gil` (where its Python time goes), on twin slots."""
    say(f"profiling sartoris at {n} hosts with py-spy")
    folder = world.work / "profile"
    folder.mkdir()
    slots = {"plain": slot, "py-spy": slot + 1}
    checkouts = [new_deploy_checkout(world, number) for number in slots.values()]
    profiles = []
    try:
        for name in ("status", "sync-first", "sync-incremental"):
            if name == "sync-incremental":
                for checkout in checkouts:
                    commit_change(checkout, CHANGED_FILE, "<?php\n// profiled change\n", "profile: one file")
            runs = {}
            for kind, number in slots.items():
                args = (["status", "--slot", str(CENSUS_SLOT)] if name == "status" else ["sync", "--slot", str(number)])
                argv = sartoris_argv(world, *args, "--hosts", world.group(n), "--json",
                                     config=world.census_config if name == "status" else world.config)
                collapsed = folder / f"{name}.txt"
                if kind == "py-spy":
                    argv = [str(BIN / "py-spy"), "record", "--gil", "--nonblocking", "--rate", str(PROFILE_RATE),
                            "--format", "raw", "--output", str(collapsed), "--", *argv]
                runs[kind] = run_tool(argv, timeout=world.timeout, out_dir=folder / f"{name}-{kind}",
                                      cwd=world.deploy_root)
            if any(run.returncode != 0 for run in runs.values()) or not collapsed.exists():
                say(f"  {name} failed: {' / '.join(run.tail() for run in runs.values())}")
                continue
            command = f"`sartoris {name.split('-')[0]}` ({name.replace('-', ', ')}, {n} hosts)"
            profiles.append(summarise_profile(name, command, collapsed, PROFILE_RATE, runs["plain"]))
            say(f"  {name}: {profiles[-1].samples} samples; plain run {runs['plain'].wall:.2f}s, "
                f"{runs['plain'].user:.2f}s user + {runs['plain'].system:.2f}s system")
    finally:
        clear_roots(world.roots("sartoris", n))
        remove_trees([*checkouts, *(world.publish_url(number) for number in slots.values())])
    return profiles


# --- what the report says about this machine -----------------------------------------------------------------


def version_of(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return "missing"
    return (done.stdout.strip() or done.stderr.strip()).splitlines()[0]


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "missing"


def sartoris_fingerprint(root: Path = ROOT) -> str:
    """A hash of the Sartoris sources (others edit them while the benchmark runs: it measures a snapshot)."""
    digest = hashlib.sha256()
    for path in sorted((root / "sartoris").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def describe_machine(args: argparse.Namespace, argv: Sequence[str]) -> dict[str, object]:
    meminfo = Path("/proc/meminfo").read_text().split()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    status = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "sartoris"],
                            capture_output=True, text=True, timeout=30, check=False).stdout
    commit = version_of(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    return {
        "command": " ".join([".venv-bench/bin/python", "scripts/bench.py", *argv]) if argv else "make bench",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs ({cpu}), {int(meminfo[1]) // 1024 ** 2} GiB memory, "
                   f"Linux {platform.release()}",
        "versions": ", ".join([
            f"Python {platform.python_version()}", f"asyncssh {package_version('asyncssh')}",
            f"cryptography {package_version('cryptography')}", version_of(["ssh", "-V"]).split(",")[0],
            version_of(["git", "--version"]), f"parallel-ssh {package_version('parallel-ssh')} "
            f"(ssh2-python {package_version('ssh2-python')})", f"ansible-core {package_version('ansible-core')}",
            f"py-spy {package_version('py-spy')}", version_of(["xargs", "--version"]),
        ]),
        "tree": f"commit {commit}" + (" with uncommitted changes under sartoris/" if status.strip() else "")
                + f" (sources {sartoris_fingerprint()})",
        "fingerprint": sartoris_fingerprint(),
        "settings": f"sizes {', '.join(map(str, args.sizes))}; {args.runs} run(s) each, median; concurrency "
                    f"{args.concurrency} for every tool (Sartoris's fetch_concurrency too); app {args.files} core "
                    f"files + 3 submodules x {args.submodule_files} files; deploy peers run "
                    f"{'Sartoris' if args.peer_commands == 'sartoris' else 'the naive'} host scripts; "
                    "hosts' disks, deploy host and floor "
                    + (f"on a tmpfs ({args.tmpfs})" if args.tmpfs not in ("", "0") else "on /tmp (disk)"),
        "load": f"{os.getloadavg()[0]:.2f} (1-minute average)",
        "method": METHOD,
        "profile_note": "Each command runs twice on twin slots: plainly (wall time, user and system CPU) and under "
                        "`py-spy record --gil --nonblocking`, which samples only while the main thread holds the "
                        "GIL, so the shares are of the Python CPU; time inside system calls (socket sends and "
                        "receives, epoll, fork/exec of local git) is the system CPU figure instead. Without "
                        "`--gil`, py-spy also counts the moments a writer waits runnable after its send woke a "
                        "local sshd (2 cores), which made `_SelectorSocketTransport.write` look like half the "
                        "time.",
    }


METHOD = [
    "- Each tool runs as its own process (own session); wall time is from spawn to exit. Controller CPU and "
    "peak RSS come from `wait4` on that process: the rusage of the tool plus every descendant it reaped (xargs's "
    "ssh, Ansible's forks, Sartoris's `git push`). RSS is the largest single process (ru_maxrss); for tools made "
    "of many processes (marked †) memory is the peak of the summed PSS of the whole process tree, sampled every "
    "second (a scan of /proc each time, so not more often). Every Python tool runs with its bytecode compiled, as "
    "installed: the peers from their venv, Sartoris from a compiled snapshot of its sources taken at the start "
    "(this machine sets PYTHONDONTWRITEBYTECODE, so uncompiled sources would be compiled again on every run).",
    "- Host-side CPU: each fleet host is one sshd listener that outlives every connection and reaps the "
    "per-connection sshd, which reaps the shell and git it ran; so the listeners' utime+stime+cutime+cstime "
    "(/proc/PID/stat), read when no session is left, grow by everything the hosts did for the tool — including "
    "`git upload-pack` serving the fetch from the local publish repository. The local floor's git work is "
    "controller CPU instead (no hosts).",
    "- conns/host: distinct TCP connections to the measured hosts' sshd during the run, per host, from "
    "/proc/net/tcp sampled every second (a closed connection stays listed in TIME_WAIT for 60 s, so none is "
    "missed).",
    "- Census: every tool runs `git -C <slot> rev-parse HEAD` (Sartoris runs its own status script: on a host whose "
    "slot links to its tree of the release, as every census host's does, shell tests and a read of the tree's HEAD "
    "file, no git; on any other, the same git). The bare asyncssh floor reads key and known_hosts once and disables "
    "compression, like Sartoris; parallel-ssh (libssh2) does not check host keys at all; OpenSSH and Ansible "
    "check them against the fleet's known_hosts (`StrictHostKeyChecking=yes`, `ANSIBLE_HOST_KEY_CHECKING` on). "
    "Ansible runs with its default `-C` but ControlMaster off: with its default ControlPersist every run after "
    "the first would reuse the previous run's connections.",
    "- Deploy: every tool gets a fresh slot number (the hosts' copies are deleted after each tool's series of "
    "deploys), so each first deploy is really first and each incremental deploy (the slot's 2nd) follows exactly "
    "one first deploy of the same tool. The steady-state deploy is the slot's 5th, after two more unmeasured "
    "one-file deploys: Sartoris keeps the live tree plus 3 (`keep_releases`) for instant rollback and builds a "
    "new tree as a hard-link copy until it holds that many, then recycles the oldest, which is what every later "
    "deploy does; for the peers and the floor (checkout in place) the 5th deploy is like the 2nd. "
    "Peers publish like Sartoris (annotated tag; push the tag and each submodule commit under "
    "refs/sartoris/submodules/<sha> to a bare repository) and, in a fetch pass over every host then a switch "
    "pass, run the git work an operator would script and the floor runs: init if needed and fetch the tag + "
    "submodule refs; checkout in place; `submodule update --init` (with `--peer-commands sartoris` they run "
    "Sartoris's own host scripts instead, and differ from it only in transport). The OpenSSH pipeline uses "
    "curve25519 (its faster key exchange in the census). The floor runs the same naive commands in N local "
    "folders through `xargs -P`, no SSH; publishing is included in every tool's time.",
    "- Objects per host: bytes of `.git/objects` plus each submodule's objects in a host's slot after the first "
    "deploy; fetched per host: how much they grew during the incremental or steady-state deploy (median of 3 "
    "hosts).",
    "- Ratios: `÷ best peer` and `÷ floor` divide a tool's median wall time by the best peer's (the fastest "
    "tool that is neither Sartoris nor the floor) or by the floor's; below 1 is faster.",
]


def other_cpu(samples: Sequence[Sample]) -> str:
    """How much of the machine's busy CPU during the measurements went to neither the tool nor the fleet, by size:
    the bench's own sampling, kernel threads, and anything else running (a contended run shows here)."""
    parts = []
    for hosts in sorted({s.hosts for s in samples}):
        group = [s for s in samples if s.hosts == hosts]
        machine = sum(s.machine_cpu for s in group)
        other = max(machine - sum(s.cpu + s.host_cpu for s in group), 0.0)
        if machine > 0:
            parts.append(f"{hosts} hosts {other:.0f} s of {machine:.0f} s ({other / machine:.0%})")
    return "; ".join(parts) or "-"


def write_report(output: Path, meta: dict[str, object], samples: list[Sample], profiles: list[Profile]) -> None:
    meta["other_cpu"] = other_cpu(samples)
    previous = output.read_text() if output.exists() else ""
    output.write_text(render(meta, samples, profiles, previous))
    say(f"wrote {output}")


def holders(folder: Path) -> list[str]:
    """Processes whose working folder, root or an open file is inside folder (why an unmount is refused)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        links = [f"/proc/{pid}/cwd", f"/proc/{pid}/root"]
        try:
            links += [f"/proc/{pid}/fd/{fd}" for fd in os.listdir(f"/proc/{pid}/fd")]
            if any(os.readlink(link).startswith(str(folder)) for link in links if os.path.lexists(link)):
                found.append(f"{pid} {Path(f'/proc/{pid}/cmdline').read_bytes()[:80]!r}")
        except OSError:
            continue
    return found


def unmount(folder: Path) -> None:
    """Unmount the work tmpfs; the fleet's last processes may take a moment to let go of it."""
    for attempt in range(10):
        if subprocess.run(["umount", str(folder)], capture_output=True, timeout=60, check=False).returncode == 0:
            return
        if attempt == 0:
            say(f"work tmpfs busy: held by {holders(folder) or 'no process found'}")
        time.sleep(1)
    subprocess.run(["umount", "--lazy", str(folder)], timeout=60, check=False)


def main(argv: Sequence[str] | None = None) -> int:
    raw_argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw_argv)
    if args.report_only:
        saved = json.loads(args.report_only.read_text())
        profile_source = json.loads(args.profiles_from.read_text()) if args.profiles_from else saved
        profiles = [Profile(**p) for p in profile_source.get("profiles", [])]
        if args.profiles_from:
            saved["meta"]["profile_note"] = profile_source["meta"].get("profile_note", "") + (
                f" Profiled by `{profile_source['meta']['command']}` on {profile_source['meta']['date']}.")
        write_report(args.output, saved["meta"], [Sample(**s) for s in saved["samples"]], profiles)
        return 0
    for name in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(name, on_signal)
    meta = describe_machine(args, raw_argv)
    began = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="sartoris-bench-", dir="/tmp"))  # not under $HOME: the fleet covers it
    mounted = False
    try:
        if args.tmpfs not in ("", "0"):
            # tmpfs charges every hard link against its inode count (each pins a dentry), and the default count
            # (half the RAM pages) ran out at 500 hosts once each held a few hard-link copies of a tree
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={args.tmpfs},nr_inodes={TMPFS_INODES},mode=0755",
                            "sartoris-bench", str(work)], check=True, timeout=30)
            mounted = True
        samples, profiles = benchmark(args, work, meta)
    finally:
        if not args.keep:
            if mounted:
                unmount(work)
            shutil.rmtree(work, ignore_errors=True)
        elif mounted:
            say(f"kept {work} (a tmpfs: `umount {work}` when done)")
    meta["duration_min"] = (time.monotonic() - began) / 60
    if sartoris_fingerprint() != meta["fingerprint"]:
        meta.setdefault("notes", []).append(  # type: ignore[union-attr]
            f"sartoris/ changed while the benchmark ran (now {sartoris_fingerprint()}); every figure measured "
            f"the snapshot taken at the start ({meta['fingerprint']})")
    args.results.write_text(json.dumps(
        {"meta": meta, "samples": [asdict(s) for s in samples], "profiles": [p.to_json() for p in profiles]}))
    say(f"raw samples in {args.results}")
    write_report(args.output, meta, samples, profiles)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("bench: interrupted; the fleet was stopped", file=sys.stderr)
        sys.exit(130)
