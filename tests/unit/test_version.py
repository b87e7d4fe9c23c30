"""Tests for sartoris.version: the version string and where its commit comes from."""

from __future__ import annotations

import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from sartoris import __version__, version


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.invalid", *args],
        cwd=cwd, capture_output=True, text=True, check=True,
    )
    return done.stdout.strip()


def make_checkout(top: Path) -> Path:
    """A git repository at `top` holding a `sartoris/` package with one commit; returns the package folder."""
    package = top / "sartoris"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('__version__ = "0.0.0"\n')
    git(top, "init", "--quiet")
    git(top, "add", ".")
    git(top, "commit", "--quiet", "-m", "first")
    return package


@pytest.fixture
def no_build_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `import sartoris._build` fail, as in a checkout."""
    monkeypatch.setitem(sys.modules, "sartoris._build", None)


def test_version_string_names_package_version_and_baked_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A build's _build.COMMIT appears beside the package version."""
    monkeypatch.setitem(sys.modules, "sartoris._build", types.SimpleNamespace(COMMIT="7e91d22"))
    assert version.version_string() == f"sartoris {__version__} (git 7e91d22)"


def test_baked_commit_wins_over_git(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a _build module present, git is never asked."""
    monkeypatch.setitem(sys.modules, "sartoris._build", types.SimpleNamespace(COMMIT="abc1234-dirty"))
    monkeypatch.setattr(version, "checkout_commit", lambda *_: pytest.fail("asked git"))
    assert version.build_commit() == "abc1234-dirty"


@pytest.mark.usefixtures("no_build_module")
def test_without_build_module_the_checkout_is_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without _build, the commit comes from the checkout holding the sartoris package."""
    asked: list[Path] = []

    def checkout_commit(folder: Path) -> str:
        asked.append(folder)
        return "1234567"

    monkeypatch.setattr(version, "checkout_commit", checkout_commit)
    assert version.build_commit() == "1234567"
    assert asked == [Path(version.__file__).resolve().parent]


def test_clean_checkout_gives_short_head(tmp_path: Path) -> None:
    """A clean checkout gives its short HEAD, no suffix."""
    package = make_checkout(tmp_path)
    assert version.checkout_commit(package) == git(tmp_path, "rev-parse", "--short", "HEAD")


def test_changed_tracked_file_marks_dirty(tmp_path: Path) -> None:
    """A modified tracked file adds -dirty."""
    package = make_checkout(tmp_path)
    (package / "__init__.py").write_text('__version__ = "0.0.1"\n')
    assert version.checkout_commit(package) == git(tmp_path, "rev-parse", "--short", "HEAD") + "-dirty"


def test_untracked_file_does_not_mark_dirty(tmp_path: Path) -> None:
    """An untracked file (a scratch note, a build output) is not a change to the commit."""
    package = make_checkout(tmp_path)
    (tmp_path / "notes.txt").write_text("scratch\n")
    assert version.checkout_commit(package) == git(tmp_path, "rev-parse", "--short", "HEAD")


def test_package_inside_another_repository_is_unknown(tmp_path: Path) -> None:
    """A package whose parent is not the repository's top (a venv inside some project) reports unknown."""
    make_checkout(tmp_path)
    nested = tmp_path / "venv" / "site-packages" / "sartoris"
    nested.mkdir(parents=True)
    assert version.checkout_commit(nested) == version.UNKNOWN


def test_folder_outside_any_repository_is_unknown(tmp_path: Path) -> None:
    """No repository around the package: unknown."""
    package = tmp_path / "sartoris"
    package.mkdir()
    assert version.checkout_commit(package) == version.UNKNOWN


def test_git_environment_of_a_hook_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GIT_DIR set by a surrounding git hook does not redirect the question to another repository."""
    package = make_checkout(tmp_path / "ours")
    make_checkout(tmp_path / "theirs")
    git(tmp_path / "theirs", "commit", "--quiet", "--allow-empty", "-m", "second")
    expected = git(tmp_path / "ours", "rev-parse", "--short", "HEAD")
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "theirs" / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(tmp_path / "theirs"))
    assert version.checkout_commit(package) == expected


def test_missing_git_is_unknown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No git on PATH: unknown, no exception."""
    package = make_checkout(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert version.checkout_commit(package) == version.UNKNOWN


def test_hanging_git_is_cut_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A git that never answers is abandoned at the timeout and gives unknown."""
    package = make_checkout(tmp_path / "checkout")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_git = bin_dir / "git"
    fake_git.write_text("#!/bin/sh\nexec /bin/sleep 30\n")
    fake_git.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    started = time.monotonic()
    assert version.checkout_commit(package, timeout=0.3) == version.UNKNOWN
    assert time.monotonic() - started < 5
