"""Where the zipapp unpacks its dependencies (scripts/zipapp_main.py, packed as the pyz's __main__.py): a folder
that works, and never a missing HOME created on the way."""

from __future__ import annotations

import json
import os
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
