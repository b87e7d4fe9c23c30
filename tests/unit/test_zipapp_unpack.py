"""Where the zipapp unpacks its dependencies (scripts/zipapp_main.py, packed as the pyz's __main__.py): a folder
that works, and never a missing HOME created on the way."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
import threading
import time
import types
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import zipapp_main


@pytest.fixture
def tmpdir_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A TMPDIR of the test's own, and no XDG_CACHE_HOME or SHIV_ROOT from the environment running the tests."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("SHIV_ROOT", raising=False)
    return tmpdir


def test_a_missing_home_is_not_created_the_unpacking_goes_to_a_private_temp_folder(
    tmp_path: Path, tmpdir_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HOME=/nonexistent (a system user's, or root's under `env HOME=/nonexistent`): root could create it, and did;
    the dependencies go to $TMPDIR/sartoris-zipapp-<uid> instead, ours and mode 700, and HOME stays missing."""
    home = tmp_path / "nonexistent"
    monkeypatch.setenv("HOME", str(home))
    root = Path(zipapp_main.unpack_root())
    assert not home.exists()
    assert root == tmpdir_env / f"sartoris-zipapp-{os.getuid()}"
    info = root.stat()
    assert info.st_mode & 0o777 == 0o700 and info.st_uid == os.getuid()


def test_a_home_that_exists_holds_the_cache(tmp_path: Path, tmpdir_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An existing HOME, even an empty one (a fresh account), gets ~/.cache/sartoris/zipapp, made on the way."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    assert zipapp_main.unpack_root() == str(home / ".cache" / "sartoris" / "zipapp")
    assert (home / ".cache" / "sartoris" / "zipapp").is_dir()


def test_xdg_cache_home_comes_first(tmp_path: Path, tmpdir_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$XDG_CACHE_HOME, when set to an absolute path, is used before HOME's .cache."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert zipapp_main.unpack_root() == str(tmp_path / "xdg" / "sartoris" / "zipapp")


@pytest.mark.parametrize("kind", ["a-file", "under-a-file"])
def test_a_shiv_root_that_cannot_be_used_is_one_line_and_exit_2(
    tmp_path: Path, tmpdir_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    """SHIV_ROOT naming a file (or a folder under one) went to shiv unchecked, which ended in a Python traceback
    and exit 1, with no JSON under --json; it is now the contract's one line, exit 2, and the error object."""
    (tmp_path / "f").write_text("")
    named = tmp_path / "f" if kind == "a-file" else tmp_path / "f" / "root"
    monkeypatch.setenv("SHIV_ROOT", str(named))
    monkeypatch.setattr("sys.argv", ["sartoris.pyz", "status", "--json"])
    with pytest.raises(SystemExit) as leaving:
        zipapp_main.chosen_root()
    out, err = capsys.readouterr()
    assert leaving.value.code == 2 and err.count("\n") == 1 and f"SHIV_ROOT={named} is not a folder" in err
    assert json.loads(out) == {"error": err.removeprefix("sartoris: ").strip(), "exit": 2}


def test_a_shiv_root_that_can_be_used_is_used_and_made(
    tmp_path: Path, tmpdir_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator's SHIV_ROOT wins over every default, made when it does not exist yet."""
    monkeypatch.setenv("SHIV_ROOT", str(tmp_path / "mine"))
    assert zipapp_main.chosen_root() == str(tmp_path / "mine") and (tmp_path / "mine").is_dir()


# --- pruning the folders other builds unpacked ------------------------------------------------------------

OWN, OLD, RUNNING = ("sartoris.pyz_" + c * 64 for c in "cab")


@pytest.fixture
def held_locks() -> Iterator[None]:
    """The in-use locks a test took through zipapp_main are let go after it (a run holds its own till it ends)."""
    yield
    while zipapp_main._held:
        os.close(zipapp_main._held.pop())


def unpacked(root: Path, name: str, in_use_file: bool = True) -> Path:
    """A build's unpacked folder as shiv leaves it, with shiv's lock file and (from builds of this code on) the
    in-use file."""
    (root / name / "site-packages" / "pkg").mkdir(parents=True)
    (root / name / "site-packages" / "pkg" / "__init__.py").write_text("")
    (root / f".{name}_lock").write_text("")
    if in_use_file:
        (root / f".{name}_in_use").write_text("")
    return root / name


def locked_by_another(path: Path) -> bool:
    """Whether some open file holds a lock on path (an exclusive one cannot be taken at once)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def test_other_builds_no_run_uses_are_pruned_and_the_rest_kept(tmp_path: Path, held_locks: None) -> None:
    """Every build left its ~42 MB unpacked for good. The first run of a build removes the other builds' folders
    of the same zipapp whose in-use file no run holds (with shiv's leftovers); it keeps the one a running
    sartoris holds, a folder of a build older than this code (no in-use file: a run of it holds nothing), and
    another zipapp's."""
    root = tmp_path / "zipapp"
    old = unpacked(root, OLD)
    (root / f"{OLD}.tmp").mkdir()  # an unpacking of that build cut short
    never_unpacked = root / ("sartoris.pyz_" + "f" * 64)  # its first run stopped before it unpacked
    (root / f".{never_unpacked.name}_in_use").write_text("")
    running = unpacked(root, RUNNING)
    assert zipapp_main.hold_in_use(str(running)) is not None
    legacy = unpacked(root, "sartoris.pyz_" + "d" * 64, in_use_file=False)
    another = unpacked(root, "sartoris.pyz_v2.pyz_" + "e" * 64)  # another zipapp, whose name starts like ours
    assert sorted(zipapp_main.prune_other_builds(str(root / OWN))) == [str(old), str(never_unpacked)]
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [p.name for p in (running, legacy, another)] + [f".{p.name}_{kind}" for p in (running, another)
                                                        for kind in ("lock", "in_use")] + [f".{legacy.name}_lock"]
    )


def test_a_run_waiting_while_its_build_is_pruned_holds_the_new_in_use_file(tmp_path: Path, held_locks: None) -> None:
    """A run of a build being pruned waits for the pruning, then holds the in-use file that has the name now (not
    the removed one, which no later pruning would see), so shiv's unpacking it again is protected."""
    folder = unpacked(tmp_path, OLD)
    in_use = tmp_path / f".{OLD}_in_use"
    pruning = os.open(in_use, os.O_RDONLY)
    fcntl.flock(pruning, fcntl.LOCK_EX)
    held: list[int | None] = []
    waiting = threading.Thread(target=lambda: held.append(zipapp_main.hold_in_use(str(folder))))
    waiting.start()
    time.sleep(0.2)
    assert waiting.is_alive()  # it waits for the pruning
    in_use.unlink()
    os.close(pruning)
    waiting.join(timeout=10)
    fd = held[0]
    assert fd is not None and os.path.samestat(os.fstat(fd), in_use.stat())
    assert locked_by_another(in_use)


def test_a_run_waits_for_a_stopped_pruning_only_so_long(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, held_locks: None
) -> None:
    """A pruning stopped half-way (Ctrl-Z, a disk that hangs) held every run of that build waiting without end
    (review); a run now waits for it at most _PRUNE_WAIT, then goes on unprotected, as when the file cannot be
    opened."""
    monkeypatch.setattr(zipapp_main, "_PRUNE_WAIT", 0.3)
    folder = unpacked(tmp_path, OLD)
    pruning = os.open(tmp_path / f".{OLD}_in_use", os.O_RDONLY)
    fcntl.flock(pruning, fcntl.LOCK_EX)  # and never let go
    try:
        began = time.monotonic()
        assert zipapp_main.hold_in_use(str(folder)) is None
        assert time.monotonic() - began < 5
    finally:
        os.close(pruning)


def fake_shiv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """A pyz holding shiv's environment.json, run as sys.argv[0], and a stand-in for shiv's _bootstrap that
    unpacks (makes site-packages) when the build's folder has none, as shiv does. Returns the calls made."""
    pyz = tmp_path / "sartoris.pyz"
    with zipfile.ZipFile(pyz, "w") as archive:
        archive.writestr("environment.json", json.dumps({"build_id": OWN.removeprefix("sartoris.pyz_")}))
    calls: list[str] = []

    def bootstrap() -> None:
        site = Path(os.environ["SHIV_ROOT"]) / OWN / "site-packages"
        calls.append("ran" if site.is_dir() else "unpacked")
        site.mkdir(parents=True, exist_ok=True)

    stub = types.ModuleType("_bootstrap")
    stub.bootstrap = bootstrap  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "_bootstrap", stub)
    monkeypatch.setattr("sys.argv", [str(pyz), "--version"])
    monkeypatch.setenv("SHIV_ROOT", str(tmp_path / "zipapp"))
    return calls


def test_only_a_builds_first_run_prunes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, held_locks: None) -> None:
    """The cost stays at start-up's first run of a build: a run of an unpacked build leaves the other builds be;
    the run that unpacks it prunes them. Each run holds its own build's in-use file while it runs."""
    calls = fake_shiv(monkeypatch, tmp_path)
    root = tmp_path / "zipapp"
    old = unpacked(root, OLD)
    unpacked(root, OWN)
    zipapp_main.main()
    assert calls == ["ran"] and old.is_dir()
    assert locked_by_another(root / f".{OWN}_in_use")
    shutil.rmtree(root / OWN)
    zipapp_main.main()
    assert calls == ["ran", "unpacked"] and not old.exists()
