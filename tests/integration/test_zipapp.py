"""The zipapp: scripts/build-zipapp.sh's sartoris.pyz run by the system Python in an empty environment.

Built once for the module (the build resolves dependencies from the package index); every run below starts from
`env -i` with only PATH and an empty HOME of its own, as on a fresh app-server or in CI.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT, Deployment, Run

from sartoris import __version__

pytestmark = pytest.mark.integration

BUILD_SCRIPT = ROOT / "scripts" / "build-zipapp.sh"
SYSTEM_PATH = "/usr/bin:/bin"


def system_python() -> str:
    """`python3` on the plain system PATH when it is 3.11 or newer, else the Python running the tests."""
    found = shutil.which("python3", path=SYSTEM_PATH)
    if found:
        check = subprocess.run([found, "-c", "import sys; sys.exit(sys.version_info < (3, 11))"], check=False)
        if check.returncode == 0:
            return found
    return sys.executable


PYTHON = system_python()
# The pyz's shebang is `/usr/bin/env python3`: that must find PYTHON first.
PYTHON_DIR = str(Path(PYTHON).parent)
PATH = SYSTEM_PATH if PYTHON_DIR in SYSTEM_PATH.split(":") else f"{PYTHON_DIR}:{SYSTEM_PATH}"


@dataclass(frozen=True)
class Zipapp:
    """A built sartoris.pyz and the commits HEAD was at around its build (a commit may land meanwhile)."""

    path: Path
    heads: frozenset[str]


def short_head() -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture(scope="module")
def zipapp(tmp_path_factory: pytest.TempPathFactory) -> Zipapp:
    """sartoris.pyz built from this work tree by the same Python that runs it."""
    out = tmp_path_factory.mktemp("zipapp") / "sartoris.pyz"
    before = short_head()
    done = subprocess.run(
        [str(BUILD_SCRIPT), "-o", str(out)], env={**os.environ, "PYTHON": PYTHON},
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr
    return Zipapp(out, frozenset({before, short_head()}))


@pytest.fixture
def pyz(zipapp: Zipapp) -> Path:
    """The built sartoris.pyz."""
    return zipapp.path


def run_pyz(
    *argv: str, home: Path, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300,
) -> Run:
    """Run a command in an empty environment: only PATH, HOME (made, empty, unless there is something there) and
    what `env` adds."""
    if not home.exists() and not home.is_symlink():
        home.mkdir(parents=True)
    done = subprocess.run(
        list(argv), env={"PATH": PATH, "HOME": str(home), **(env or {})}, cwd=cwd,
        capture_output=True, text=True, timeout=timeout, check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def test_build_leaves_no_generated_module_in_the_work_tree(pyz: Path) -> None:
    """The commit is stamped into the staged copy only: no sartoris/_build.py appears in the checkout."""
    assert pyz.is_file()
    assert not (ROOT / "sartoris" / "_build.py").exists()


def test_version_prints_package_version_and_commit(zipapp: Zipapp, tmp_path: Path) -> None:
    """--version names the package version and the commit the pyz was built from."""
    run = run_pyz(PYTHON, str(zipapp.path), "--version", home=tmp_path / "home")
    assert run.code == 0, run.stderr
    found = re.fullmatch(rf"sartoris {re.escape(__version__)} \(git ([0-9a-f]{{7,}})(-dirty)?\)\n", run.stdout)
    assert found, run.stdout
    assert found[1] in zipapp.heads


@pytest.mark.parametrize("via_python", [
    pytest.param(False, id="./sartoris.pyz"),
    pytest.param(True, id="python3 sartoris.pyz"),
])
def test_help_works_in_an_empty_environment_with_a_clean_home(pyz: Path, tmp_path: Path, via_python: bool) -> None:
    """--help answers with only PATH and an empty HOME (a fresh account); the dependencies unpack under it."""
    home = tmp_path / "home"
    launch = [PYTHON, str(pyz)] if via_python else [str(pyz)]
    run = run_pyz(*launch, "--help", home=home)
    assert run.code == 0, run.stderr
    assert "Usage: sartoris" in run.stdout and "sync" in run.stdout
    assert run.stderr == ""
    assert any((home / ".cache" / "sartoris" / "zipapp").glob("sartoris.pyz_*/site-packages"))


def test_unpacking_compiles_the_bytecode_even_where_python_writes_none(pyz: Path, tmp_path: Path) -> None:
    """Under PYTHONDONTWRITEBYTECODE (set in many container images) Python caches no bytecode, so uncompiled
    unpacked sources would be compiled again at every start (about 0.3 s of CPU): the unpacking compiles them."""
    home = tmp_path / "home"
    run = run_pyz(PYTHON, str(pyz), "--help", home=home, env={"PYTHONDONTWRITEBYTECODE": "1"})
    assert run.code == 0, run.stderr
    site = next((home / ".cache" / "sartoris" / "zipapp").glob("sartoris.pyz_*/site-packages"))
    for module in ("sartoris/transport.py", "sartoris/cli.py", "asyncssh/connection.py"):
        source = site / module
        assert list((source.parent / "__pycache__").glob(f"{source.stem}.*.pyc")), f"no bytecode for {module}"


def test_help_works_when_home_cannot_be_written(pyz: Path, tmp_path: Path) -> None:
    """A HOME nothing can be created under sends the unpacking to a private folder in TMPDIR."""
    home = tmp_path / "home-is-a-file"
    home.write_text("")
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    run = run_pyz(str(pyz), "--help", home=home, env={"TMPDIR": str(tmpdir)})
    assert run.code == 0, run.stderr
    private = tmpdir / f"sartoris-zipapp-{os.getuid()}"
    assert private.stat().st_mode & 0o777 == 0o700
    assert any(private.glob("sartoris.pyz_*/site-packages"))


def test_a_missing_home_is_not_created(pyz: Path, tmp_path: Path) -> None:
    """HOME=/nonexistent (a system user's, or root's in a service): the unpacking goes to a private folder in TMPDIR
    and the missing HOME is not created, not even by root."""
    home, tmpdir = tmp_path / "nonexistent", tmp_path / "tmp"
    tmpdir.mkdir()
    done = subprocess.run(
        [str(pyz), "--help"], env={"PATH": PATH, "HOME": str(home), "TMPDIR": str(tmpdir)},
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert not home.exists()
    assert any((tmpdir / f"sartoris-zipapp-{os.getuid()}").glob("sartoris.pyz_*/site-packages"))


def test_a_builds_first_run_prunes_what_other_builds_unpacked_unless_a_run_uses_it(pyz: Path, tmp_path: Path) -> None:
    """Each build's first run left ~42 MB unpacked for good. The first run of a build (the one that unpacks it)
    removes the other builds' folders that no running sartoris holds; a held one stays, and so does a build's
    first run's own folder, which later runs use and do not prune again."""
    home = tmp_path / "home"
    cache = home / ".cache" / "sartoris" / "zipapp"

    def other_build(build_id: str) -> Path:
        (cache / f"sartoris.pyz_{build_id}" / "site-packages").mkdir(parents=True)
        (cache / f".sartoris.pyz_{build_id}_in_use").write_text("")
        return cache / f"sartoris.pyz_{build_id}"

    unused, running = other_build("a" * 64), other_build("b" * 64)
    held = os.open(cache / f".{running.name}_in_use", os.O_RDONLY)  # as a run of that build holds it
    try:
        fcntl.flock(held, fcntl.LOCK_SH)
        first = run_pyz(str(pyz), "--version", home=home)
        assert first.code == 0, first.stderr
        assert not unused.exists() and running.is_dir()
        assert len(list(cache.glob("sartoris.pyz_*/site-packages"))) == 2  # its own, and the held one
        later = other_build("c" * 64)
        again = run_pyz(str(pyz), "--version", home=home)
        assert again.code == 0, again.stderr
        assert later.is_dir()  # not the build's first run: no pruning
    finally:
        os.close(held)


def test_pyz_syncs_the_fleet_and_reports_it_current(pyz: Path, deployment: Deployment, tmp_path: Path) -> None:
    """sync from the pyz in an empty environment puts every host on the commit; status then says all current."""
    home = tmp_path / "home"
    slot = str(deployment.slot)
    hosts = deployment.fleet.hosts

    def sartoris(*args: str) -> Run:
        return run_pyz(str(pyz), "--config", str(deployment.config), *args, home=home, cwd=deployment.root)

    sync = sartoris("sync", "--slot", slot, "--json")
    assert sync.code == 0, sync.stderr
    report = sync.json()
    assert report["outcome"] == "ok"
    assert report["commit"] == deployment.head()
    assert report["counts"]["ok"] == report["counts"]["targeted"] == len(hosts)
    assert {host: deployment.host_head(host) for host in hosts} == dict.fromkeys(hosts, report["commit"])

    status = sartoris("status", "--slot", slot, "--json")
    assert status.code == 0, status.stderr
    assert status.json()["counts"]["current"] == len(hosts)
    assert {host["state"] for host in status.json()["hosts"]} == {"current"}
