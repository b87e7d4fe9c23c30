"""What `sartoris --version` prints: the package version and the git commit this copy was built from.

A zipapp carries its commit in `sartoris/_build.py`, which scripts/build-zipapp.sh writes into the staged copy
it packs (never into the work tree). A checkout has no `_build.py`, so git is asked instead: bounded, quiet, and
only about the repository whose top folder holds this package, so a venv or a cache folder that happens to sit
inside some other repository (a dotfiles $HOME) never reports that repository's commit.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from sartoris import __version__

GIT_TIMEOUT = 2.0  # seconds per git call: --version must answer even when git hangs (a stuck mount, a lock)
UNKNOWN = "unknown"


def version_string() -> str:
    """`sartoris 0.1.0 (git 7e91d22)`; the commit may end in `-dirty` or be `unknown`."""
    return f"sartoris {__version__} (git {build_commit()})"


def build_commit() -> str:
    """The commit baked in at build time, else the checkout's, else "unknown"."""
    try:
        from sartoris._build import COMMIT  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return checkout_commit(Path(__file__).resolve().parent)
    return str(COMMIT)


def checkout_commit(package_dir: Path, timeout: float = GIT_TIMEOUT) -> str:
    """The short HEAD of the checkout whose top folder holds `package_dir`, `-dirty` if tracked files changed."""
    answer = _git(package_dir, ["rev-parse", "--show-toplevel", "--short", "HEAD"], timeout)
    if answer is None:
        return UNKNOWN
    lines = answer.splitlines()
    if len(lines) != 2 or not _same_folder(Path(lines[0]), package_dir.parent):
        return UNKNOWN
    head = lines[1]
    changes = _git(package_dir, ["--no-optional-locks", "status", "--porcelain", "--untracked-files=no"], timeout)
    return f"{head}-dirty" if changes else head


def _git(cwd: Path, args: list[str], timeout: float) -> str | None:
    """git's stdout, stripped; None when git is missing, fails, or takes longer than `timeout`."""
    # GIT_DIR and friends (set inside git hooks) would point git at another repository than this package's.
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)  # not a string compare: symlinks and bind mounts name one folder twice
    except OSError:
        return False
