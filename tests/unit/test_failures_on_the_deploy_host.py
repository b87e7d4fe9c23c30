"""The deploy host's own trouble (its disk, its state files, a bug) ends in one line and an exit code, never a
traceback: the history database, the state folder, and the command line's last resort."""

from __future__ import annotations

from pathlib import Path

import pytest

from sartoris import cli
from sartoris.errors import StateError
from sartoris.state import History


def test_a_state_folder_that_cannot_be_made_is_a_state_error(tmp_path: Path) -> None:
    """A file where the state folder should be: StateError naming the folder (exit 1 through the CLI)."""
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
