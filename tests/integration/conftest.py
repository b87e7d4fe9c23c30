"""The integration suite's world: one real sshd fleet for the session, and a fresh deploy setup per test.

Each test deploys to its own slot number, so tests share the fleet without seeing each other's trees.
The fleet is stopped (by PID) when the session ends, whether tests passed or not.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fleet import Fleet, FleetError
from sample_repo import git, make_checkout

ROOT = Path(__file__).resolve().parents[2]
# Apart from `make fleet` (127.10), the demo (127.11), test_fleet (127.30/31) and the benchmark (127.40);
# a second test session on this machine moves up to the next free net instead of failing.
FLEET_NETS = [f"127.{n}" for n in range(20, 30)]
FLEET_SIZE = 50
FAULTS = {"refused": 1, "tarpit": 1, "auth": 1, "hostkey": 1, "nostdin": 1}
UNREACHABLE_KINDS = ("refused", "tarpit", "auth", "hostkey")  # no session at all (nostdin hosts run commands)


def unreachable_faults(fleet: Fleet) -> list[str]:
    """The fault hosts a client cannot get a session on, one per kind."""
    return [host for kind in UNREACHABLE_KINDS for host in fleet.faults[kind]]
_slots = itertools.count(1)


def fresh_slot() -> int:
    """A slot number no other test of the session uses (the fleet's hosts are shared)."""
    return next(_slots)


@pytest.fixture(scope="session")
def fleet() -> Iterator[Fleet]:
    """50 healthy sshd hosts plus one host of each connect-phase fault."""
    if os.geteuid() != 0:
        pytest.fail("the integration suite starts sshd in mount namespaces and needs root")
    with fleet_on_a_free_net(FLEET_NETS, FLEET_SIZE, faults=FAULTS) as started:
        yield started


@contextmanager
def fleet_on_a_free_net(
    nets: Sequence[str], count: int, *, faults: Mapping[str, int] | None = None, prefix: str = "sartoris-it-"
) -> Iterator[Fleet]:
    """A fleet on the first free net of `nets` (another session may hold one), in a /tmp folder (not under
    $HOME: the fleet covers it); always stopped by PID afterwards and its folder removed, pass or fail."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        started = _start_on_a_free_net(workdir / "fleet", nets, count, faults or {})
        try:
            yield started
        finally:
            started.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _start_on_a_free_net(directory: Path, nets: Sequence[str], count: int, faults: Mapping[str, int]) -> Fleet:
    for net in nets:
        try:
            return Fleet.start(directory, count, net=net, faults=faults)
        except FleetError as exc:
            if "already in use" not in str(exc):
                raise
    raise RuntimeError(f"every fleet net ({', '.join(nets)}) is taken")


@dataclass
class Run:
    """A finished `sartoris` command."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class Deployment:
    """One test's deploy host: a slot working copy with submodules, its sartoris.toml, and the fleet."""

    fleet: Fleet
    slot: int
    root: Path
    config: Path
    pool_log: Path

    @property
    def checkout(self) -> Path:
        return self.root / f"php-slot{self.slot}"

    def sartoris(self, *args: str, timeout: float = 300, cwd: Path | None = None, with_config: bool = False) -> Run:
        """Run the real command line, as an operator would: from `cwd` without --config when given (unless
        `with_config`, for a run that must find its config yet work in another folder)."""
        config = [] if cwd is not None and not with_config else ["--config", str(self.config)]
        env = {**os.environ, "PWD": str(cwd)} if cwd is not None else None
        done = subprocess.run(
            [sys.executable, str(ROOT / "sartoris.py"), *config, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=cwd,
            env=env,
        )
        return Run(done.returncode, done.stdout, done.stderr)

    def configure(self, **settings: object) -> None:
        """Rewrite sartoris.toml with other settings (deploy=..., depool=..., fanout keys)."""
        write_config(self.root, self.fleet, self.pool_log, **settings)

    def group(self, name: str, hosts: list[str]) -> str:
        self.fleet.write_group(self.root / "hosts" / name, hosts)
        return name

    def host_slot(self, address: str) -> Path:
        return self.fleet.host_root(address) / f"php-slot{self.slot}"

    def host_head(self, address: str) -> str | None:
        """The commit a host's slot has checked out, read from its disk (not through sartoris)."""
        slot = self.host_slot(address)
        if not (slot / ".git").exists():
            return None
        done = subprocess.run(
            ["git", "-C", str(slot), "rev-parse", "--verify", "-q", "HEAD"], capture_output=True, text=True, check=False
        )
        return done.stdout.strip() or None

    def head(self) -> str:
        return git(self.checkout, "rev-parse", "HEAD")

    def pool_changes(self) -> list[str]:
        return self.pool_log.read_text().splitlines() if self.pool_log.exists() else []


def _toml_lines(settings: dict[str, object]) -> str:
    return "\n".join(f"{key} = {json.dumps(value)}" for key, value in settings.items())


def write_config(
    root: Path,
    fleet: Fleet,
    pool_log: Path,
    *,
    deploy: dict[str, object] | None = None,
    depool: dict[str, object] | None = None,
    **fanout: object,
) -> Path:
    """The test deploy host's sartoris.toml: the fleet, a fake pool controller logging to pool_log."""
    confctl = ROOT / "scripts" / "fake-confctl"
    sections = {
        "deploy": {
            "name": "it",
            "checkout_root": ".",
            "remote_root": str(fleet.remote_root),
            "publish_url": "publish/php-slot{slot}.git",
            "hosts": ["fleet"],
            **(deploy or {}),
        },
        "fanout": {"concurrency": 100, "connect_timeout": 4, "command_timeout": 60, "max_failures": 0, **fanout},
        "ssh": {
            "user": fleet.user,
            "port": fleet.port,
            "identity_files": [str(fleet.identity_file)],
            "known_hosts": str(fleet.known_hosts),
        },
        "depool": {
            "command": f"{confctl} {pool_log} depool {{host}}",
            "pool_command": f"{confctl} {pool_log} pool {{host}}",
            "timeout": 10,
            **(depool or {}),
        },
    }
    config = root / "sartoris.toml"
    config.write_text("\n\n".join(f"[{name}]\n{_toml_lines(values)}" for name, values in sections.items()) + "\n")
    return config


@pytest.fixture
def deployment(fleet: Fleet, tmp_path: Path) -> Deployment:
    """A deploy host with a fresh slot (its own number) holding a sample app with two submodules."""
    slot = next(_slots)
    root = tmp_path / "deploy"
    make_checkout(root, slot, files=60, submodules=2, submodule_files=5)
    (root / "hosts").mkdir()
    fleet.write_group(root / "hosts" / "fleet", fleet.hosts)
    pool_log = tmp_path / "pool.log"
    return Deployment(fleet, slot, root, write_config(root, fleet, pool_log), pool_log)
