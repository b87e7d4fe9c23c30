#!/usr/bin/env python3
"""`make demo`: start a local fleet of real sshd hosts, build a sample app with submodules, deploy it twice
with `sartoris sync`, show `sartoris status`, and stop the fleet whatever happens."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fleet import Fleet  # noqa: E402
from sample_repo import commit_change, make_checkout  # noqa: E402

SARTORIS = [sys.executable, str(HERE.parent / "sartoris.py")]


def write_config(deploy_root: Path, fleet: Fleet, publish_root: Path, pool_log: Path) -> Path:
    """A sartoris.toml for the sample app targeting the local fleet."""
    config = deploy_root / "sartoris.toml"
    confctl = HERE / "fake-confctl"
    config.write_text(f"""\
[deploy]
name = "demo"
checkout_root = "."
remote_root = "{fleet.remote_root}"
publish_url = "{publish_root}/php-slot{{slot}}.git"
hosts = ["fleet"]

[fanout]
concurrency = 100
connect_timeout = 10
command_timeout = 120
max_failures = "5%"

[ssh]
user = "{fleet.user}"
port = {fleet.port}
identity_files = ["{fleet.identity_file}"]
known_hosts = "{fleet.known_hosts}"

[depool]
command = "{confctl} {pool_log} depool {{host}}"
pool_command = "{confctl} {pool_log} pool {{host}}"
""")
    hosts_dir = deploy_root / "hosts"
    hosts_dir.mkdir(exist_ok=True)
    fleet.write_group(hosts_dir / "fleet", fleet.hosts)
    return config


def sartoris(config: Path, *args: str) -> int:
    command = [*SARTORIS, "--config", str(config), *args]
    print(f"\n$ sartoris {' '.join(args)}", flush=True)
    began = time.monotonic()
    code = subprocess.run(command, check=False).returncode
    print(f"(exit {code}, {time.monotonic() - began:.1f}s)", flush=True)
    return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/sartoris-demo"))
    parser.add_argument("--net", default="127.11")
    args = parser.parse_args()
    work: Path = args.dir
    if (work / "fleet" / "fleet.json").exists():
        Fleet.load(work / "fleet").stop()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    print(f"starting {args.hosts} sshd hosts on {args.net}.x.y ...", flush=True)
    fleet = Fleet.start(work / "fleet", args.hosts, net=args.net)
    try:
        deploy_root = work / "deploy"
        make_checkout(deploy_root, 0, files=200, submodules=2)
        config = write_config(deploy_root, fleet, work / "publish", work / "pool.log")
        codes = [sartoris(config, "sync", "--slot", "0", "-m", "demo: first release")]
        commit_change(deploy_root / "php-slot0", "extensions/Ext0/hooks.php", "<?php // hotfix\n", "hotfix")
        codes.append(sartoris(config, "sync", "--slot", "0", "-m", "demo: hotfix in an extension"))
        codes.append(sartoris(config, "status", "--slot", "0"))
        print(f"\ndemo finished: hosts' deploy roots are under {work / 'fleet' / 'hosts'}", flush=True)
        return 0 if codes == [0, 0, 0] else 1
    finally:
        fleet.stop()
        print("fleet stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
