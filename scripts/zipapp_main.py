# Sartoris zipapp (scripts/build-zipapp.sh packs this file as the pyz's __main__.py): choose where shiv unpacks
# the dependencies, then run shiv. Standard library only: nothing is unpacked yet when it runs.
"""The zipapp's first frame: an unpack folder that works, then shiv's bootstrap (see scripts/build-zipapp.sh)."""

from __future__ import annotations

import json
import os
import stat
import sys
from typing import NoReturn


def _usable(folder: str, private: bool) -> bool:
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        if private:  # a shared temp dir: refuse a folder (or symlink) that someone else made or can write
            info = os.lstat(folder)
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
                return False
        return os.access(folder, os.W_OK | os.X_OK)
    except OSError:
        return False


def unpack_root() -> str:
    """$XDG_CACHE_HOME/sartoris/zipapp, else ~/.cache/sartoris/zipapp when HOME is a folder that exists, else a
    private (ours, mode 700) $TMPDIR/sartoris-zipapp-<uid>; exit 2 with one line when none can be used. A HOME
    that does not exist is never created: a system user's /nonexistent (root's, under `env HOME=/nonexistent`
    or a service unit) is a promise that the account has no home."""
    candidates = []
    xdg_cache = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg_cache):
        candidates.append(os.path.join(xdg_cache, "sartoris", "zipapp"))
    home = os.path.expanduser("~")  # $HOME, else the password database
    if os.path.isabs(home) and os.path.isdir(home):
        candidates.append(os.path.join(home, ".cache", "sartoris", "zipapp"))
    for folder in candidates:
        if _usable(folder, private=False):
            return folder
    folder = os.path.join(os.environ.get("TMPDIR") or "/tmp", f"sartoris-zipapp-{os.getuid()}")
    if _usable(folder, private=True):
        return folder
    tried = ", ".join([*candidates, folder + " (must be ours, mode 700)"])
    _fail(f"no folder to unpack the zipapp into (tried {tried}); set SHIV_ROOT", 2)


def chosen_root() -> str:
    """$SHIV_ROOT when the operator set it, once it is a folder Sartoris can write (made when missing), else
    unpack_root(); exit 2 with one line when it cannot be used (shiv itself would end in a traceback)."""
    named = os.environ.get("SHIV_ROOT")
    if not named:
        return unpack_root()
    if not _usable(named, private=False):
        _fail(f"SHIV_ROOT={named} is not a folder the zipapp can unpack into (not a folder, or not writable)", 2)
    return named


def _fail(message: str, code: int) -> NoReturn:
    """The contract's failure: one line on stderr, the `{"error", "exit"}` object on stdout under --json, `code`
    (2: a bad environment; 130: interrupted), as sartoris/launch.py does once Sartoris's own code runs."""
    sys.stderr.write(f"sartoris: {message}\n")
    args = sys.argv[1:]
    if "--json" in (args[: args.index("--")] if "--" in args else args):
        sys.stdout.write(json.dumps({"error": message, "exit": code}) + "\n")
    sys.exit(code)


def main() -> None:
    os.environ["SHIV_ROOT"] = chosen_root()
    try:  # a Ctrl-C while the first run unpacks: the contract's one line and exit 130, not a traceback
        import _bootstrap  # shiv's runtime, packed beside this file

        _bootstrap.bootstrap()
    except KeyboardInterrupt:
        _fail("interrupted", 130)


if __name__ == "__main__":
    main()
