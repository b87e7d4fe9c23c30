# Sartoris zipapp (scripts/build-zipapp.sh packs this file as the pyz's __main__.py): choose where shiv unpacks
# the dependencies, then run shiv. Standard library only: nothing is unpacked yet when it runs.
"""The zipapp's first frame: an unpack folder that works, this run's hold on its build's unpacked folder (and, on
the build's first run, the removal of the other builds' folders no run holds), then shiv's bootstrap (see
scripts/build-zipapp.sh)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import stat
import sys
import time
import zipfile
from typing import NoReturn

IN_USE = "_in_use"  # `.<pyz name>_<build id>_in_use`, beside shiv's `.<pyz name>_<build id>_lock`
_PRUNE_WAIT = 30.0  # seconds a run waits for a pruning of its build's folder, then goes on unprotected
_held: list[int] = []  # this run's shared lock on its build's in-use file: open until the process ends


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


def unpacked_folder(archive: zipfile.ZipFile, root: str) -> str:
    """Where shiv unpacks this build (its cache_path): `<root>/<pyz file name>_<build id>`."""
    build_id = json.loads(archive.read("environment.json"))["build_id"]
    name = os.path.basename(os.path.realpath(str(archive.filename)))
    return os.path.join(os.path.expanduser(root), f"{name}_{build_id}")


def hold_in_use(folder: str) -> int | None:
    """Take a shared lock on the build's in-use file and keep it while this process runs, so that no first run of
    another build prunes the folder under it; wait while one is pruning it (shiv then unpacks it again), at most
    _PRUNE_WAIT. None when the file cannot be opened (a SHIV_ROOT of someone else's), or the wait ran out: the run
    goes on, unprotected as before."""
    path = _in_use_path(folder)
    while True:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:
            return None
        if not _locked_within(fd, fcntl.LOCK_SH, _PRUNE_WAIT):  # a pruner stopped (Ctrl-Z, a hung disk)
            os.close(fd)
            return None
        if _still_named(fd, path):
            _held.append(fd)
            return fd
        os.close(fd)  # a pruner removed the file while we waited: lock the one that has the name now


def _locked_within(fd: int, kind: int, seconds: float) -> bool:
    """Take the lock `kind` on `fd`, waiting at most `seconds` (polled: flock itself waits without end)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(fd, kind | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


def prune_other_builds(folder: str) -> list[str]:
    """Remove the unpacked folders of the other builds of this zipapp (same file name) that no run is using: each
    run holds its build's in-use file (hold_in_use), so a free one is unused. Called by a build's first run only,
    before it unpacks (each build's ~42 MB stayed for good). A folder unpacked by a build older than this code has
    no in-use file and is left alone: a run of it holds nothing to tell. Returns the folders removed; any error
    leaves that folder be (pruning never fails a run)."""
    return [other for other in _other_builds(folder) if _prune(other)]


def _other_builds(folder: str) -> list[str]:
    """The unpacked folders of the other builds of this zipapp that have an in-use file (those of this code)."""
    root, own = os.path.split(folder)
    prefix = own[: own.rindex("_") + 1]  # "sartoris.pyz_"
    try:
        names = os.listdir(root)
    except OSError:
        return []
    found = []
    for name in names:
        other = name[1 : -len(IN_USE)]
        build_id = other[len(prefix) :]  # a sha256: not another zipapp whose name starts like ours
        if name.startswith("." + prefix) and name.endswith(IN_USE) and build_id.isalnum() and other != own:
            found.append(os.path.join(root, other))
    return found


def _prune(folder: str) -> bool:
    """Remove one build's unpacked folder when its in-use file can be locked exclusively, at once (no run holds
    it); the folder is renamed to shiv's staging name first, so a removal cut short never leaves a half folder
    that a run would take for an unpacked one. Whether it was removed."""
    path = _in_use_path(folder)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if not _still_named(fd, path):  # another first run pruned it meanwhile
            return False
        staging = folder + ".tmp"
        shutil.rmtree(staging, ignore_errors=True)  # an unpacking or a removal cut short: the same build's files
        with contextlib.suppress(FileNotFoundError):  # no folder: a first run stopped before unpacking, say
            os.rename(folder, staging)
            shutil.rmtree(staging)
        shiv_lock = os.path.join(os.path.dirname(folder), f".{os.path.basename(folder)}_lock")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(shiv_lock)
        os.unlink(path)  # last, under the lock: a run waiting for it finds the name gone and starts over
        return True
    except OSError:  # in use, or not ours to remove
        return False
    finally:
        os.close(fd)


def _in_use_path(folder: str) -> str:
    root, name = os.path.split(folder)
    return os.path.join(root, f".{name}{IN_USE}")


def _still_named(fd: int, path: str) -> bool:
    """Whether path still names the file open as fd (a pruner unlinks the in-use file it held)."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


def main() -> None:
    root = chosen_root()
    os.environ["SHIV_ROOT"] = root
    try:  # a Ctrl-C while the first run unpacks: the contract's one line and exit 130, not a traceback
        import _bootstrap  # shiv's runtime, packed beside this file

        with zipfile.ZipFile(sys.argv[0]) as archive:  # shiv opens it again: its internals are not ours to patch
            folder = unpacked_folder(archive, root)
        hold_in_use(folder)
        if not os.path.isdir(os.path.join(folder, "site-packages")):  # this build's first run: it will unpack
            prune_other_builds(folder)
        _bootstrap.bootstrap()
    except KeyboardInterrupt:
        _fail("interrupted", 130)


if __name__ == "__main__":
    main()
