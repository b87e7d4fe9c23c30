"""What Sartoris makes on a deploy host its operators share (`.sartoris/`, its locks and history, a publish
repository), and why one of them is out of an operator's reach.

The usual shared deploy host has a `deployers` group, a umask of 002 and a setgid group-writable deploy root: what
one operator makes there, the next must be able to read and write. So nothing made here is ever chmod-ed: a folder
gets 0777 and a file 0666 less the umask, and a folder made inside a setgid folder keeps its group and its setgid
bit (Linux gives them both), so every file made in it later belongs to the group too. A umask of 077 keeps them
private, as its operator asked; another operator is then told "permission denied", with who owns what, rather
than sqlite's "unable to open database file".
"""

from __future__ import annotations

import contextlib
import grp
import itertools
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path


def make_folder(folder: Path) -> None:
    """`folder` and its missing parents, as the umask and the parent's setgid bit make them (never chmod-ed)."""
    folder.mkdir(parents=True, exist_ok=True)


def make_file(path: Path) -> None:
    """`path` empty when it is missing, 0666 less the umask: sqlite3 would make its database 0644 less the umask,
    which no umask makes writable by the group (an empty file is an empty database to sqlite)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))


def is_group_writable(folder: Path) -> bool:
    """`folder` was made writable by its group: the umask that made it gives the group write."""
    return bool(folder.stat().st_mode & stat.S_IWGRP)


@dataclass(frozen=True, slots=True)
class Denial:
    """A permission in the way of `path`: `blocking` is the path itself or a folder above it; owner and mode are
    None when even they cannot be read."""

    path: Path
    blocking: Path
    owner: str | None
    mode: int | None

    @property
    def on_a_folder(self) -> bool:
        """A folder is in the way: whether `path` exists at all cannot be seen (or it could not be made there)."""
        return self.blocking != self.path

    def __str__(self) -> str:
        where = f" on the folder {self.blocking}" if self.on_a_folder else ""
        if self.owner is None or self.mode is None:
            return f"permission denied{where}"
        return f"permission denied{where}: owner {self.owner}, mode {self.mode:04o}"


def denied(path: Path, *, write: bool = False) -> Denial | None:
    """What keeps this user from reading `path` (with `write`: from changing it, or making or removing a file beside
    it), which str() says as "permission denied: owner root:deployers, mode 0644", or "permission denied on the
    folder …: owner …"; None when no permission is in the way (root, a missing file this user may make)."""
    path = Path(os.path.abspath(path))
    chain = [*reversed(path.parents), path]
    for above, step in itertools.pairwise(chain):
        if not _allows(above, os.X_OK):
            return _denial(path, above)
        if not os.path.lexists(step):  # made here: only the last folder there is matters
            return _denial(path, above) if write and not _allows(above, os.W_OK) else None
    if write and not _allows(path.parent, os.W_OK):  # sqlite's journal, a lock's replacement, its removal
        return _denial(path, path.parent)
    return None if _allows(path, os.R_OK | (os.W_OK if write else 0)) else _denial(path, path)


def explained(exc: OSError, path: Path, *, write: bool = False) -> str:
    """An OSError met at `path`, in the words of `denied` when it is a permission error, else its own."""
    denial = denied(path, write=write) if isinstance(exc, PermissionError) else None
    return str(denial) if denial is not None else exc.strerror or str(exc)


def _allows(path: Path, mode: int) -> bool:
    return os.access(path, mode, effective_ids=os.access in os.supports_effective_ids)


def _denial(path: Path, blocking: Path) -> Denial:
    try:
        info = blocking.stat()
    except OSError:
        return Denial(path, blocking, None, None)
    return Denial(path, blocking, _owner(info), stat.S_IMODE(info.st_mode))


def _owner(info: os.stat_result) -> str:
    """user:group of a file, by name where the system has one, else by number."""
    try:
        user = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        user = str(info.st_uid)
    try:
        group = grp.getgrgid(info.st_gid).gr_name
    except KeyError:
        group = str(info.st_gid)
    return f"{user}:{group}"
