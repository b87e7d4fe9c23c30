"""The deploy host's own trouble (its disk, its state files, a bug) ends in one line and an exit code, never a
traceback: the history database, the state folder, and the command line's last resort."""

from __future__ import annotations

import sys
from collections.abc import Callable
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


def _damaged_history(state_dir: Path) -> Path:
    """A history whose header is sound but whose later pages are overwritten (a disk fault, a bad copy): its first
    read of those pages fails, not its opening."""
    history = History(state_dir)
    for n in range(200):
        history.record_event("depool", None, f"event {n}", {"hosts": [f"mw{n}"] * 20})
    path = state_dir / "history.sqlite3"
    with path.open("r+b") as database:
        database.seek(4096)
        database.write(bytes((n * 97 + 13) % 256 for n in range(12000)))
    return path


def test_a_damaged_history_is_refused_before_a_command_changes_anything(tmp_path: Path) -> None:
    """quick_check finds the damaged pages that opening the history does not read."""
    state = tmp_path / ".sartoris"
    _damaged_history(state)
    history = History(state)  # opens: only the header is read
    with pytest.raises(StateError, match="is damaged"):
        history.ensure_sound()


def test_a_history_this_user_may_only_read_is_refused_before_a_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A history the user may not write passed the check, and a sync switched every host it then could not record:
    the check now makes a write, rolled back."""
    import sqlite3

    History(tmp_path / ".sartoris")
    connect = sqlite3.connect
    monkeypatch.setattr(
        sqlite3, "connect", lambda path, **options: connect(f"file:{path}?mode=ro", uri=True, **options)
    )
    with pytest.raises(StateError, match="cannot be written"):
        History(tmp_path / ".sartoris").ensure_sound()


@pytest.mark.parametrize("command", [["sync", "--slot", "0"], ["start", "--slot", "0"], ["depool", "mw1"]])
def test_sync_start_and_depool_refuse_a_damaged_history_with_nothing_changed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str], cli_main: Callable[[list[str]], int]
) -> None:
    """The audit's case: `status` refused the damaged history, but `sync` tagged, published and switched every
    host, then could neither record nor roll the release back. Now sync, start and depool refuse it (exit 4) before
    a tag, a lock or a depool command."""
    import subprocess

    checkout = tmp_path / "php-slot0"
    checkout.mkdir()
    identity = ["-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "-C", str(checkout), "init", "-q"], check=True)
    subprocess.run(["git", "-C", str(checkout), *identity, "commit", "-q", "--allow-empty", "-m", "one"], check=True)
    (tmp_path / "hosts").mkdir()
    (tmp_path / "hosts" / "web").write_text("127.0.0.1:1\n")
    (tmp_path / "known_hosts").write_text("")
    ran = tmp_path / "depool-ran"
    (tmp_path / "sartoris.toml").write_text(
        '[deploy]\nname = "app"\nremote_root = "/srv/app"\npublish_url = "publish/php-slot{slot}.git"\n'
        'hosts = ["web"]\n[ssh]\nknown_hosts = "known_hosts"\n'
        f'[depool]\ncommand = "touch {ran}.{{host}}"\n'
    )
    _damaged_history(tmp_path / ".sartoris")
    code = cli_main(["--config", str(tmp_path / "sartoris.toml"), *command])
    err = capsys.readouterr().err
    assert code == 4 and "is damaged" in err and err.count("\n") == 1, err
    tags = subprocess.run(["git", "-C", str(checkout), "tag"], capture_output=True, text=True, check=True).stdout
    assert tags == "" and not (tmp_path / "publish").exists() and not list(tmp_path.glob("depool-ran*"))
    assert not list((tmp_path / ".sartoris").glob("locks/*.lock"))
