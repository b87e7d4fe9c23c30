"""The deploy host's own trouble (its disk, its state files, a bug) ends in one line and an exit code, never a
traceback: the history database, the state folder, and the command line's last resort."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from sartoris import cli, launch
from sartoris.errors import StateError
from sartoris.state import History, SlotLock


def test_a_state_folder_that_cannot_be_made_is_a_state_error(tmp_path: Path) -> None:
    """A file where the state folder should be: StateError naming the folder (exit 4 through the CLI: a
    precondition of every run failed, nothing changed)."""
    blocker = tmp_path / "state"
    blocker.write_text("not a folder")
    with pytest.raises(StateError, match="cannot create the state folder"):
        History(blocker / "inner")


def test_an_unusable_history_database_is_a_state_error(tmp_path: Path) -> None:
    """A folder where the database file should be (as good as a corrupt or unwritable file): StateError, not
    sqlite3's exception."""
    (tmp_path / "history.sqlite3").mkdir()
    with pytest.raises(StateError, match="history"):
        History(tmp_path)


def test_an_unexpected_exception_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Anything no layer translated still ends as one stderr line naming it; SARTORIS_DEBUG=1 lets it through."""

    def broken(**_: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(cli, "app", broken)
    monkeypatch.delenv("SARTORIS_DEBUG", raising=False)
    assert cli.main(["status"]) == 1
    err = capsys.readouterr().err
    assert err == "sartoris: unexpected RuntimeError: disk on fire (SARTORIS_DEBUG=1 shows where)\n"
    monkeypatch.setenv("SARTORIS_DEBUG", "1")
    with pytest.raises(RuntimeError):
        cli.main(["status"])


def test_a_lock_folder_that_cannot_be_made_is_a_state_error_and_leaves_no_lock(tmp_path: Path) -> None:
    """A file where the locks folder should be: StateError (exit 4, a precondition failed) naming the folder,
    instead of an unexpected NotADirectoryError."""
    (tmp_path / "locks").write_text("not a folder")
    lock = SlotLock(tmp_path, 0)
    with pytest.raises(StateError, match="cannot create the lock folder"):
        lock.acquire("start")
    assert StateError.exit_code == 4
    assert lock.holder() is None


def test_a_ctrl_c_while_python_imports_sartoris_is_the_one_line_and_exit_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C in the first fraction of a second (the imports): one stderr line and, under --json, the one JSON
    object on stdout, exit 130; not a traceback out of the import machinery."""

    class ImportingWhenCtrlCComes:
        def __getattr__(self, name: str) -> object:
            raise KeyboardInterrupt

    monkeypatch.setitem(sys.modules, "sartoris.cli", ImportingWhenCtrlCComes())
    monkeypatch.setattr(sys, "argv", ["sartoris", "log", "--json"])
    with pytest.raises(SystemExit) as exited:
        launch.run()
    assert exited.value.code == 130
    assert capsys.readouterr() == ('{"error": "interrupted", "exit": 130}\n', "sartoris: interrupted\n")
