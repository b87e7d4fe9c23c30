"""Which untracked or ignored paths putting a repository back at a commit would overwrite or remove.

`git reset --hard` and `git checkout --force` (which `git submodule update --force` runs) write the commit's files
over whatever untracked or ignored file stands at their paths, and remove an untracked folder (with all it holds)
where a file goes, or an untracked file where a folder goes, without a word. Pure over two listings and a look at
the work tree; repo.py runs git for them.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Sequence
from pathlib import Path

from sartoris.state import shown

_NAMED = 5  # paths a refusal names before "and N more"


def overwritten_by(root: Path, added: Iterable[str], untracked: Iterable[str]) -> list[str]:
    """The paths of `untracked` (`git ls-files --others --directory`: a wholly untracked folder ends in "/") that
    writing `added` (the commit's paths the work tree's HEAD lacks: only there can an untracked path stand) would
    overwrite or remove, sorted. A wholly untracked folder in the way of a path inside it counts only when
    something stands on that path's way in it."""
    files: set[str] = set()
    folders: set[str] = set()
    for entry in untracked:
        (folders if entry.endswith("/") else files).add(entry.rstrip("/"))
    added = set(added)
    found = {path for path in files | folders if any(p in added for p in _parents(path))}  # a file goes above it
    for path in added:
        found.update(_blocking(root, [*_parents(path), path], files, folders))
    return sorted(found)


def _blocking(root: Path, way: Sequence[str], files: set[str], folders: set[str]) -> list[str]:
    """What stands on `way` (a path's folders, outermost first, then the path itself) that writing the path would
    overwrite or remove: an untracked file there, an untracked folder where the file goes, or inside an untracked
    folder whatever already stands where a folder or the file goes."""
    for depth, step in enumerate(way):
        if step in files or (step in folders and step == way[-1]):
            return [step]
        if step in folders:
            for inner in way[depth + 1 :]:
                at = root / inner
                if not os.path.lexists(at):
                    return []
                if inner == way[-1] or at.is_symlink() or not at.is_dir():
                    return [inner]
            return []
    return []


def _parents(path: str) -> list[str]:
    """The folders `path` lies in, outermost first (none for a path at the top)."""
    parents = []
    folder = posixpath.dirname(path)
    while folder:
        parents.append(folder)
        folder = posixpath.dirname(folder)
    return parents[::-1]


def named(paths: Sequence[str]) -> str:
    """The first few of `paths` for a one-line message, then how many more."""
    said = ", ".join(shown(path) for path in paths[:_NAMED])
    more = len(paths) - _NAMED
    return f"{said} and {more} more" if more > 0 else said
