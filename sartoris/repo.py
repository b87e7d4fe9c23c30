"""The deploy host's side of git: the slot's working copy, its release tags, and the publish target.

The only module that imports GitPython. A release is tagged here, then pushed with every submodule
commit it pins (under refs/sartoris/submodules/), so app servers fetch everything from the publish
target and never contact a submodule's upstream.
"""

from __future__ import annotations

import contextlib
import math
import os
import posixpath
import re
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import git
import structlog

from sartoris.errors import DirtyCheckoutError, PublishError, RefusedError, UsageError
from sartoris.process_groups import end_process_group, kill_with_children
from sartoris.remote import SubmoduleSpec, submodule_ref
from sartoris.shared_files import explained, is_group_writable, make_folder
from sartoris.untracked import named, overwritten_by

log = structlog.get_logger("sartoris")

KEPT_REF_PREFIX = "refs/sartoris/aborted/"  # where abort keeps a commit that putting the checkout back left unreached
_GITLINK_MODE = "160000"
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
_PORCELAIN_V2_FIELDS = {"1": 7, "2": 8, "u": 9}  # `git status --porcelain=v2`: fields before the path, by kind
_STOP_POLL = 0.1  # seconds between looks at the stop event while a push runs
_KILL_GRACE = 2.0  # seconds a stopped push gets to end after SIGTERM (then SIGKILL)
_KILL_WAIT = 5.0  # seconds to see a SIGKILLed push's group gone before giving up on it
_LEFT_NAMED = 5  # files named of what is left of a folder abort could not remove


@dataclass(frozen=True, slots=True)
class Release:
    """A tagged commit of a slot and the submodule commits it pins."""

    tag: str
    commit: str
    submodules: tuple[SubmoduleSpec, ...]


@dataclass(frozen=True, slots=True)
class Leftover:
    """The work tree of a submodule the deploy added, which putting the checkout back left as an untracked folder:
    removed, or kept (`kept` says why); or, `replaced`, removed before, for the files `start` found there."""

    path: str
    kept: str | None = None
    replaced: bool = False  # it stood where `start` found files (a tracked folder), which the restore put back
    # its removal failed part-way (`kept` says why): what is left of it
    partly: PartlyRemoved | None = None


@dataclass(frozen=True, slots=True)
class PartlyRemoved:
    """What is left of a folder whose removal failed part-way: abort says it exactly, and does not end as a success."""

    error: str  # why rmtree stopped, and at which path in the checkout
    had: int  # files (symlinks too) in it before its removal began
    left: tuple[str, ...]  # those still there, as paths in the checkout
    folders: int  # folders still there, itself included

    def describe(self) -> str:
        """How much of it is left, naming the first files left, for a line of abort's."""
        if not self.left:
            return f"all {self.had} of its files were removed, {self.folders} empty folder(s) are left"
        shown_files = ", ".join(self.left[:_LEFT_NAMED]) + (
            f" and {len(self.left) - _LEFT_NAMED} more" if len(self.left) > _LEFT_NAMED else ""
        )
        return f"{len(self.left)} of its {self.had} files are left, in {self.folders} folder(s): {shown_files}"


@dataclass(frozen=True, slots=True)
class KeptCommit:
    """A repository's HEAD from before a restore, which no ref reached once it was put back (commits made during
    the deploy and never pushed, tagged or branched): kept under `ref` there, so abort loses no commit."""

    path: str  # the repository: "." for the checkout, else a submodule's path in it
    commit: str
    ref: str
    git_dir: str | None = None  # where git finds the repository when its work tree is gone (relative to the checkout)

    def describe(self) -> str:
        """Which repository's commit was kept where, for a line of abort's."""
        where = "the checkout" if self.path == "." else f"submodule {self.path}"
        return f"{where}'s commit {self.commit[:12]}, which no branch or tag holds, as {self.ref}"


@dataclass(frozen=True, slots=True)
class Restored:
    """What putting the checkout back left: work trees of added submodules, and commits kept under a ref."""

    leftovers: tuple[Leftover, ...] = ()
    kept: tuple[KeptCommit, ...] = ()

    @property
    def partly_removed(self) -> tuple[str, ...]:
        """The leftovers abort meant to remove and could remove only part of (or none of): not a clean abort."""
        return tuple(left.path for left in self.leftovers if left.partly is not None)


class SlotCheckout:
    """The slot's working copy on the deploy host (`<checkout_root>/<slot_prefix>N`)."""

    def __init__(self, path: Path, git_timeout: float) -> None:
        try:
            self._repo = git.Repo(path)
        except git.NoSuchPathError:  # a slot number nobody made: bad input, like a misspelt group
            raise UsageError(f"{path}: no such slot (no checkout there; `sartoris slots` lists them)") from None
        except git.InvalidGitRepositoryError:
            raise RefusedError(f"{path}: not a git working copy (the slot has no checkout)") from None
        self.path = path
        self._timeout = git_timeout
        self._ensure_trusted()
        self._submodules: dict[str, tuple[SubmoduleSpec, ...]] = {}  # submodules_at's answers, by commit

    def _ensure_trusted(self) -> None:
        """Refuse a working copy git will not work in because another user owns it (a shared deploy host's second
        operator, without it in `safe.directory`): every git command failed, and the first failure was misread ("no
        commit yet", an unexpected error). Only a working copy owned by someone else costs a git process."""
        with contextlib.suppress(OSError, git.GitCommandError):  # the commands that need it say what else is wrong
            if self.path.stat().st_uid != os.geteuid():
                _run_git(self._repo, self._timeout, "rev-parse", "--git-dir")  # refuses an untrusted repository

    def head_commit(self) -> str:
        return _head_commit(self._repo, self._timeout) or _no_commit(self.path)

    def object_format(self) -> str:
        """How the working copy names objects: "sha1", or "sha256" (its publish target must hash the same)."""
        return str(self._repo.config_reader("repository").get_value("extensions", "objectformat", "sha1")).lower()

    def ensure_clean(self, before: str = "a sync") -> None:
        """Refuse a working copy with uncommitted changes (submodules included): tagging it would hide them.
        `before` names what was refused, for the message."""
        if self._repo.is_dirty(index=True, working_tree=True, untracked_files=False, submodules=True):
            raise DirtyCheckoutError(f"{self.path}: uncommitted changes; commit or stash them before {before}")

    def ensure_submodules_initialised(self, commit: str) -> None:
        """Refuse (exit 4) a release whose submodules are not all here to publish, before anything is tagged or
        created: a clone made without --recurse-submodules has empty folders where they go."""
        listed = self.submodules_at(commit)
        for module in listed:
            if _open_submodule(self._repo, module, listed) is None:
                raise RefusedError(
                    f"submodule {module.path} is not initialised in {self.path}: run `git submodule update --init"
                    " --recursive` there first"
                )

    def ensure_no_uncommitted_edits(self, before: str) -> None:
        """Refuse when a tracked file has edits not committed, here or inside a submodule at any depth (restoring
        the checkout would throw them away). A submodule merely at another commit is no edit: its commits stay
        in it. A status git cannot give is a refusal too."""
        try:
            edited = self._uncommitted_edit(".")
        except git.GitCommandError as exc:
            why = _git_error(exc)
            raise RefusedError(f"{self.path}: cannot tell whether it has uncommitted edits: {why}") from None
        if edited is not None:
            raise DirtyCheckoutError(f"{self.path}: uncommitted edits ({edited}); commit or stash them before {before}")

    def _uncommitted_edit(self, folder: str) -> str | None:
        """The first tracked path under `folder` (a repository in the checkout) with uncommitted edits, or None.
        git marks a submodule `S.M.` for any change inside it, a nested submodule's new commit included, so such
        a submodule is looked into rather than taken at its word."""
        for kind, fields, path in self._tracked_changes(folder):
            submodule = fields[1]
            if kind == "u" or submodule == "N...":
                return path
            if submodule[2] == "M" and (inner := self._uncommitted_edit(path)) is not None:
                return inner
        return None

    def _staged_repositories(self, folder: str) -> list[str]:
        """The repositories under `folder` (the checkout, or a submodule in it) that were `git add`ed to the index
        of the repository they lie in, which its HEAD does not have (a gitlink only the index holds, never
        committed), at any depth: a restore drops them from the index and leaves their work trees as untracked
        folders, like those of the submodules the deploy's commits added."""
        staged = []
        for kind, fields, path in self._tracked_changes(folder):
            if kind == "1" and fields[2] == "000000" and fields[3] == _GITLINK_MODE:  # mode at HEAD, in the index
                staged.append(path)
            elif fields[1][2] == "M":  # a submodule with changes inside: what it staged is looked for there
                staged += self._staged_repositories(path)
        return staged

    def _tracked_changes(self, folder: str) -> Iterator[tuple[str, list[str], str]]:
        """`git status --porcelain=v2` of the repository at `folder` in the checkout, untracked files left out: each
        changed tracked path's kind ("1" changed, "2" renamed, "u" unmerged), fields before its path, and path from
        the checkout's root."""
        # -z: paths as they are (without it git quotes non-ASCII ones); a rename's original path is the next record
        records = iter(self._git("-C", folder, "status", "--porcelain=v2", "-z", "--untracked-files=no").split("\0"))
        for line in records:
            kind, _, rest = line.partition(" ")
            before_path = _PORCELAIN_V2_FIELDS.get(kind)
            if before_path is None:  # a header, an ignored line, the end: no tracked path
                continue
            if kind == "2":
                next(records, None)
            fields = rest.split(" ", before_path)
            yield kind, fields, posixpath.normpath(posixpath.join(folder, fields[-1]))

    def next_tag(self, name: str, slot: int, now: datetime) -> str:
        """A unique, sortable tag name: `<name>-slot<N>-<YYYYMMDD>-<HHMMSS>[-k]` (UTC)."""
        base = f"{name}-slot{slot}-{now:%Y%m%d-%H%M%S}"
        existing = {t.name for t in self._repo.tags}
        candidate, k = base, 1
        while candidate in existing:
            k += 1
            candidate = f"{base}-{k}"
        return candidate

    def tag_release(self, tag: str, message: str) -> Release:
        """Create the annotated tag at HEAD and describe what it pins (read first: a failure leaves no tag)."""
        commit = self.head_commit()
        submodules = self.submodules_at(commit)
        try:
            with self._repo.git.custom_environment(**_tagger_env(self._repo)):
                self._git("tag", "--annotate", "--message", message, tag, commit)
        except git.GitCommandError as exc:  # a full or read-only disk on the deploy host, a locked ref
            raise RefusedError(f"{self.path}: could not tag {tag}: {_git_error(exc)}") from None
        return Release(tag=tag, commit=commit, submodules=submodules)

    def tag_commit(self, tag: str) -> str:
        """The commit a release tag points at; RefusedError when the working copy has no such tag."""
        commit = self._commit_of_tag(tag)
        if commit is None:
            raise RefusedError(f"{self.path}: no tag {tag!r}")
        return commit

    def has_tag(self, tag: str) -> bool:
        """Whether the working copy has release tag `tag`; RefusedError when git cannot tell (a broken repository)."""
        return self._commit_of_tag(tag) is not None

    def _commit_of_tag(self, tag: str) -> str | None:
        """The commit `tag` points at, None when there is no such tag; RefusedError when git cannot tell."""
        try:
            return self._git("rev-parse", "--verify", "--quiet", f"refs/tags/{tag}^{{commit}}").strip()
        except git.GitCommandError as exc:
            if exc.status == 1:  # --verify --quiet: not found, and nothing else went wrong
                return None
            raise RefusedError(f"{self.path}: cannot read tag {tag!r}: {_git_error(exc)}") from None

    def release_of(self, tag: str) -> Release:
        """The release an existing tag describes (for rollback and retries)."""
        commit = self.tag_commit(tag)
        return Release(tag=tag, commit=commit, submodules=self.submodules_at(commit))

    def branch(self) -> str | None:
        """The checked-out branch, or None on a detached HEAD."""
        try:
            return self._repo.active_branch.name
        except TypeError:
            return None

    def fetch_upstream(self) -> None:
        """`git fetch` the slot's upstream (and submodules' on demand) before a deploy starts."""
        try:
            self._git("fetch", "--quiet", "--recurse-submodules=on-demand")
        except git.GitCommandError as exc:
            raise RefusedError(f"{self.path}: git fetch failed: {_git_error(exc)}") from None

    def restore(
        self, commit: str, keep_under: str, *, detach: bool = False, since: float | None = None
    ) -> Restored:
        """Put HEAD (and the branch, when on one), the tree and the submodules back at `commit`; with `detach`,
        HEAD is detached at `commit` and no branch moves (the checkout was found detached). git leaves the work
        tree of each submodule the deploy added and `commit` does not pin as an untracked folder: each is removed
        where that loses nothing (see _why_kept; `since`: when start ran, None if unknown), else kept; both are
        returned. One standing where `commit` has files (it replaced a tracked folder) goes first, so that they
        come back as they were; RefusedError, before anything changes, when that would lose work, and when an
        untracked or ignored file stands where `commit` puts one (git would write over it; see
        _refuse_untracked_in_the_way).
        A repository whose HEAD no ref reaches once put back (a commit made in a submodule, never pushed) keeps it
        under a ref `<keep_under>-<commit>` (see _keep_unreachable): else only its reflog had it."""
        heads = self._repository_heads()
        listed = self.submodules_at(heads["."]) if len(heads) > 1 else ()  # read (and cached) for the heads
        added = self._added_submodules(commit)
        self._refuse_untracked_in_the_way(commit, added)
        in_the_way = self._standing_on_tracked_files(commit, added)
        cleared = self._clear_the_way(in_the_way)
        self._submodules.clear()  # nested submodules initialised below become readable
        try:
            if detach:
                self._git("checkout", "--quiet", "--force", "--detach", commit)
            else:
                self._git("reset", "--quiet", "--hard", commit)
            if self.submodules_at(commit):
                self._git(
                    "-c", "protocol.file.allow=always", "submodule", "--quiet", "update", "--init", "--force",
                    "--recursive",
                )
        except git.GitCommandError as exc:
            kept = self._keep_unreachable(heads, listed, keep_under, commit)  # what did move must lose no commit
            said = "".join(f"; kept {k.describe()}" for k in kept)
            raise RefusedError(f"{self.path}: could not restore {commit[:12]}: {_git_error(exc)}{said}") from None
        kept = self._keep_unreachable(heads, listed, keep_under, commit)
        left = [path for path in added if path not in in_the_way and (self.path / path).is_dir()]
        return Restored(cleared + tuple(self._clear(path, since) for path in left), kept)

    def _repository_heads(self) -> dict[str, str]:
        """HEAD's commit in the checkout (".") and in each initialised submodule HEAD pins, nested ones too, by
        path (none that cannot be read: what cannot be read cannot be kept either)."""
        heads: dict[str, str] = {}
        with contextlib.suppress(RefusedError):  # no commit yet, or submodules that cannot be listed
            heads["."] = self.head_commit()
            heads |= self.submodule_heads()
        return heads

    def _keep_unreachable(
        self, heads: dict[str, str], listed: Sequence[SubmoduleSpec], prefix: str, started_at: str
    ) -> tuple[KeptCommit, ...]:
        """Put a ref `<prefix>-<commit>` on each of `heads` (path -> HEAD before the restore, whose HEAD pinned the
        submodules `listed`) that no ref or HEAD of its repository reaches any more (`rev-list --not --all`: the
        reflog does not count, and gc empties it in time), then on each submodule commit that a commit so kept
        pins and no ref reaches (one an intermediate commit pinned, off the submodule HEAD's line), nested ones
        too: each kept commit can still be checked out with its submodules. The commit in the name keeps two
        aborts of one second apart, and the ref is only ever created, never moved (a second abort that moved it
        lost the commit the first kept). The checkout's own commits since `started_at` (where start found it) count
        whether a ref reaches them or not: the sync tagged the deploy's last one, which kept none of what they
        pinned before it."""
        kept = []
        # the heads first: a pinned commit one of them reaches needs no ref of its own
        to_keep: deque[tuple[str, git.Repo | None, str]] = deque((path, None, head) for path, head in heads.items())
        while to_keep:
            path, repo, commit = to_keep.popleft()
            ref = f"{prefix}-{commit[:12]}"
            try:
                repo = repo or self._repository_at(path, listed)
                # read before the ref is made: then its commits are no longer the ones only the abort keeps
                since = (started_at,) if path == "." else ("--all",)
                unreached = _run_git(repo, self._timeout, "rev-list", "-n", "1", commit, "--not", "--all").strip()
                pinned = self._pinned_by_new_commits(repo, path, commit, since) if unreached or path == "." else []
                if not unreached:
                    to_keep.extend(pinned)
                    continue
                _run_git(repo, self._timeout, "update-ref", "-m", "sartoris abort: kept", ref, commit, "")
            except (git.GitCommandError, git.NoSuchPathError, git.InvalidGitRepositoryError) as exc:
                # the folder is gone (a removed work tree), the commit is not in it, or git failed
                why = _git_error(exc) if isinstance(exc, git.GitCommandError) else f"no repository at {exc}"
                log.warning("commit_not_kept", path=path, commit=commit, error=why)
                continue
            log.warning("commit_kept", path=path, commit=commit, ref=ref)
            git_dir = os.path.relpath(repo.git_dir, self.path) if _is_kept_git_dir(repo) else None
            kept.append(KeptCommit(path, commit, ref, git_dir))
            to_keep.extend(pinned)
        return tuple(kept)

    def _repository_at(self, path: str, listed: Sequence[SubmoduleSpec]) -> git.Repo:
        """The repository at `path` in the checkout; for a submodule whose work tree is gone (removed for the files
        `start` found there), the git dir git keeps for it, found through `listed`. NoSuchPathError when neither."""
        with contextlib.suppress(git.NoSuchPathError, git.InvalidGitRepositoryError):
            return git.Repo(self.path / path)
        module = next((m for m in listed if m.path == path), None)
        repo = None if module is None else _open_submodule(self._repo, module, listed)
        if repo is None:
            raise git.NoSuchPathError(self.path / path)
        return repo

    def _pinned_by_new_commits(
        self, repo: git.Repo, path: str, commit: str, since: Sequence[str]
    ) -> list[tuple[str, git.Repo, str]]:
        """The submodule commits set by the commits of `repo` (at `path` in the checkout) that reach `commit` and
        not `since` (rev-list arguments: `--all`, the commits no ref reaches; or where start found the checkout),
        each with its path and repository: only those commits are read, never the whole history. A submodule with
        no repository here is passed over (there is nothing to keep); what git cannot list is said, and the commit
        itself is kept all the same."""
        pinned = []
        names: dict[str, dict[str, str]] = {}
        try:
            for setter, inner, sha in _gitlinks_set_by(repo, self._timeout, commit, "--not", *since):
                if setter not in names:
                    names[setter] = _submodule_names(repo, setter, self._timeout)
                module = _submodule_repo(repo, inner, names[setter].get(inner, inner))
                if module is not None:
                    pinned.append((inner if path == "." else f"{path}/{inner}", module, sha))
        except (git.GitCommandError, RefusedError) as exc:
            why = _git_error(exc) if isinstance(exc, git.GitCommandError) else str(exc)
            log.warning("pinned_commits_not_kept", path=path, commit=commit, error=why)
        return pinned

    def _added_submodules(self, commit: str) -> list[str]:
        """The outermost of the submodules that `commit` does not pin and HEAD does, nested ones included, or that a
        commit since `commit` set and HEAD has no files at (one untracked again with `git rm --cached`, whose work
        tree stays), or that only an index holds (a repository `git add`ed and never committed): none when they
        cannot be listed (the restore goes on as before)."""
        try:
            staged = self._staged_repositories(".")
            at_commit = {m.path for m in self.submodules_at(commit)}
            head = self.head_commit()
            pinned = [m.path for m in self.submodules_at(head)]
            since = _gitlinks_set_by(self._repo, self._timeout, head, "--not", commit)
            set_since = [path for path in dict.fromkeys(path for _, path, _ in since) if path not in pinned]
            if set_since:  # one that HEAD tracks as files is no submodule's work tree any more: the reset sees to it
                tracked = self._git("ls-tree", "-z", "--name-only", head, "--", *set_since).split("\0")
                set_since = [path for path in set_since if path not in tracked]
        except (RefusedError, git.GitCommandError):
            return []
        added = [path for path in dict.fromkeys(pinned + set_since + staged) if path not in at_commit]
        return [path for path in added if not any(path.startswith(f"{outer}/") for outer in added)]

    def _standing_on_tracked_files(self, commit: str, added: list[str]) -> list[str]:
        """Those of `added` with a folder here where `commit` has files, in the checkout or, for one nested in a
        submodule `commit` pins, in that submodule's commit (a submodule that replaced a tracked folder): the
        restore would write the files into its work tree, mixed with its own. None that git cannot tell."""
        try:
            listed = self.submodules_at(commit)
        except RefusedError:
            return []
        standing = []
        for path in added:
            if not (self.path / path).is_dir():
                continue
            within = max((m for m in listed if path.startswith(f"{m.path}/")), key=lambda m: len(m.path), default=None)
            repo = self._repo if within is None else _open_submodule(self._repo, within, listed)
            tree, inner = (commit, path) if within is None else (within.commit, path[len(within.path) + 1 :])
            if repo is None:
                continue
            with contextlib.suppress(git.GitCommandError):
                if _run_git(repo, self._timeout, "ls-tree", "--name-only", tree, "--", inner):
                    standing.append(path)
        return standing

    def _refuse_untracked_in_the_way(self, commit: str, added: Sequence[str]) -> None:
        """DirtyCheckoutError (exit 4), before anything changes, naming the untracked or ignored files and folders
        that putting the checkout back at `commit` would overwrite or remove, in it or in a submodule `commit` pins
        at another commit than the one checked out: the reset and the submodules' forced checkout write over them
        without a word. The work trees of submodules the deploy added (`added`) are _why_kept's to judge. What git
        cannot list is a refusal too."""
        try:
            found = self._untracked_in_the_way(self._repo, "", self.head_commit(), commit, added)
            for module in self.submodules_at(commit):
                if any(module.path == path or module.path.startswith(f"{path}/") for path in added):
                    continue
                try:
                    repo = git.Repo(self.path / module.path)
                except (git.NoSuchPathError, git.InvalidGitRepositoryError):
                    continue  # the submodule update makes its work tree: nothing stands in it
                head = _head_commit(repo, self._timeout)
                if head is not None and head != module.commit:
                    inside = [path[len(module.path) + 1 :] for path in added if path.startswith(f"{module.path}/")]
                    found += self._untracked_in_the_way(repo, module.path, head, module.commit, inside)
        except git.GitCommandError as exc:
            why = _git_error(exc)
            raise RefusedError(f"{self.path}: cannot tell whether untracked files are in abort's way: {why}") from None
        if found:
            raise DirtyCheckoutError(
                f"{self.path}: untracked or ignored files where `start` found tracked ones, which abort would overwrite"
                f" or remove: {named(found)}; move them away or commit them, then abort again"
            )

    def _untracked_in_the_way(
        self, repo: git.Repo, where: str, head: str, commit: str, skipped: Sequence[str]
    ) -> list[str]:
        """The untracked or ignored paths in `repo` (at `where` in the checkout, "" for itself) that putting it back
        from `head` at `commit` would overwrite or remove, by their path in the checkout; those at or in `skipped`
        are passed over. The work tree is listed only when `commit` has paths that `head` lacks."""
        root = Path(repo.working_tree_dir or self.path)
        changes = _run_git(repo, self._timeout, "diff-tree", "-r", "-z", "--diff-filter=A", head, commit)
        records = iter(changes.split("\0"))  # ":<old mode> <new mode> <old> <new> A", then the path
        added = []
        for meta in records:
            path = next(records, "")
            # a submodule's work tree standing there: the caller looks into it as a submodule
            if meta.startswith(":") and not (meta[8:14] == _GITLINK_MODE and os.path.lexists(root / path / ".git")):
                added.append(path)
        if not added:
            return []
        listing = _run_git(repo, self._timeout, "ls-files", "-z", "--others", "--directory", "--no-empty-directory")
        untracked = [
            entry for entry in listing.split("\0")
            if entry and not any(entry.rstrip("/") == path or entry.startswith(f"{path}/") for path in skipped)
        ]
        return [posixpath.join(where, path) for path in overwritten_by(root, added, untracked)]

    def _clear_the_way(self, paths: list[str]) -> tuple[Leftover, ...]:
        """Remove the work trees at `paths` (submodules standing where the restore puts tracked files back) before
        the restore, once it is known that none holds work; RefusedError naming what one holds, before any goes.
        An empty folder (a submodule never initialised) holds none; whatever else stands there came after
        `start`, which found the files there (so the time of its .git file tells nothing)."""
        for path in paths:
            folder = self.path / path
            why = self._why_kept(folder, since=0.0) if any(folder.iterdir()) else None
            if why is not None:
                raise self._not_put_back(path, f"{why}; move what is needed out of it or remove it")
        for path in paths:
            partly = self._remove(path)
            if partly is not None:
                why = f"holding nothing its commits do not, it could not be removed whole ({partly.error}):"
                raise self._not_put_back(path, f"{why} {partly.describe()}; remove what is left")
            log.info("added_submodule_removed", path=path, replaced=True)
        return tuple(Leftover(path, replaced=True) for path in paths)

    def _not_put_back(self, path: str, why: str) -> RefusedError:
        """The refusal of an abort that cannot put back the files `start` found at `path` (see _clear_the_way)."""
        return RefusedError(
            f"{self.path}: cannot put back {path}, files `start` found, where the work tree of a submodule this"
            f" deploy added stands: {why}, then abort again"
        )

    def _clear(self, path: str, since: float | None) -> Leftover:
        """Remove the work tree a restore left at `path`, unless _why_kept finds a reason to keep it."""
        why = self._why_kept(self.path / path, since)
        if why is not None:
            log.warning("added_submodule_left", path=path, why=why)
            return Leftover(path, why)
        partly = self._remove(path)
        if partly is not None:
            log.warning("added_submodule_partly_removed", path=path, error=partly.error, left=len(partly.left))
            return Leftover(path, f"it could not be removed whole ({partly.error})", partly=partly)
        log.info("added_submodule_removed", path=path)
        return Leftover(path)

    def _remove(self, path: str) -> PartlyRemoved | None:
        """Remove the folder at `path` in the checkout; None when it is gone, else why not and what is left of it
        (rmtree stops at the first file it cannot remove, having removed those before it)."""
        folder = self.path / path
        had = sum(len(files) for _, _, files in _walk(folder))
        failed_at: list[str] = []
        try:
            _rmtree(folder, failed_at)
        except OSError as exc:
            where = f": {os.path.relpath(failed_at[-1], self.path)}" if failed_at else ""
            left, folders = [], 0
            for root, _, files in _walk(folder):
                folders += 1
                left += [(Path(root) / name).relative_to(self.path).as_posix() for name in files]
            return PartlyRemoved(f"{exc.strerror or exc}{where}", had, tuple(sorted(left)), folders)
        return None

    def _why_kept(self, folder: Path, since: float | None) -> str | None:
        """Why the work tree at `folder` stays, or None when removing it loses nothing: git made it after `start`
        (its .git file is newer), and it and each repository in it keeps its git dir under this checkout's
        .git/modules (where its commits, branches and stashes stay) and holds no file its HEAD does not (no edit,
        no untracked or ignored file)."""
        gitfile = folder / ".git"
        if not gitfile.is_file():
            return "it has no .git file pointing to a git dir of this checkout's, so it is not one git made"
        if since is None:
            return "when `start` ran is unknown, so whether it was there before is too"
        if gitfile.stat().st_mtime < since:
            return "it was there before `start`"
        modules = (Path(self._repo.git_dir) / "modules").resolve()
        for repo in _repositories_in(folder):
            where = repo.relative_to(self.path).as_posix()
            if not _git_dir_of(repo).is_relative_to(modules):
                return f"{where} keeps its own repository (not under .git/modules), which would go with it"
            try:
                status = self._git(
                    "-C", str(repo), "status", "--porcelain", "-z", "--untracked-files=all", "--ignored",
                    "--ignore-submodules=none",
                )
            except git.GitCommandError as exc:
                return f"git cannot tell whether {where} holds work: {_git_error(exc)}"
            if status:
                held = status.split("\0")[0][3:]
                return f"{where} holds work its commits do not ({held}: edited, untracked or ignored)"
        return None

    def submodule_heads(self) -> dict[str, str]:
        """Each initialised submodule's checked-out commit, by path."""
        heads = {}
        for module in self.submodules_at(self.head_commit()):
            try:
                head = _head_commit(git.Repo(self.path / module.path), self._timeout)
            except (git.NoSuchPathError, git.InvalidGitRepositoryError):
                continue
            if head:
                heads[module.path] = head
        return heads

    def delete_tag(self, tag: str) -> str | None:
        """Undo tag_release when publishing failed, so a failed sync leaves nothing behind: None when done, else
        why the tag could not be deleted (the caller reports the publish's own failure first)."""
        try:
            self._git("tag", "--delete", tag)
        except git.GitCommandError as exc:
            return _git_error(exc)
        return None

    def submodules_at(self, commit: str) -> tuple[SubmoduleSpec, ...]:
        """The submodules recorded by `commit`: gitlinks in its tree, named by its .gitmodules, then, after each,
        the submodules its own commit records (read from its repository here; an uninitialised one has none).
        Read once per commit for this command (about 10 ms: a sync checks them, then publishes them)."""
        if commit not in self._submodules:
            self._submodules[commit] = tuple(_submodules_of(self._repo, commit, within="", timeout=self._timeout))
        return self._submodules[commit]

    def publish(
        self, release: Release, url: str, stop: threading.Event | None = None, connect_timeout: float | None = None
    ) -> None:
        """Push every pinned submodule commit, then the tag, to `url` (a missing local path becomes a bare repo):
        the publish target never holds a tag whose submodule commits it lacks, whatever stops the pushes. Once
        `stop` is set (the run was interrupted), the push in flight is ended and no further one starts:
        PublishError. Over ssh, a server that does not answer fails within `connect_timeout`."""
        _ensure_local_bare_repo(url, self.object_format())
        env = _ssh_connect_bound(self.path, url, connect_timeout)
        for module in release.submodules:
            _stop_if_set(stop, url)
            self._push_submodule(module, release.submodules, url, stop, env)
        _stop_if_set(stop, url)
        _push(self.path, url, f"refs/tags/{release.tag}:refs/tags/{release.tag}", self._timeout, stop, env)

    def _push_submodule(
        self, module: SubmoduleSpec, listed: Sequence[SubmoduleSpec], url: str, stop: threading.Event | None,
        env: dict[str, str],
    ) -> None:
        submodule = _open_submodule(self._repo, module, listed)
        if submodule is None:
            raise PublishError(
                f"submodule {module.path} is not initialised in {self.path}, and git keeps no repository for it"
                f" (.git/modules/{module.name}): moved or removed since with its own .git folder? `git submodule"
                " absorbgitdirs` before such a change keeps it where a rollback finds it"
            )
        self._keep(submodule, module)
        refspec = f"{module.commit}:{submodule_ref(module.commit)}"
        where = Path(submodule.git.working_dir or submodule.git_dir)
        _push(where, url, refspec, self._timeout, stop, {**env, **submodule.git.environment()})

    def _keep(self, submodule: git.Repo, module: SubmoduleSpec) -> None:
        """Give the published commit a ref in the submodule's repository here, as the tag does for the slot's:
        git's gc does not follow gitlinks, so a commit made on this host only (a live hack) and later left behind
        would be pruned, and a rollback to its release could not publish it again. Made once: the ref's file (or
        packed line) is looked for first, so later syncs start no process."""
        ref = submodule_ref(module.commit)
        gitdir = Path(submodule.git_dir)
        if (gitdir / ref).is_file():
            return
        try:
            if f"{module.commit} {ref}\n" in (gitdir / "packed-refs").read_text(errors="replace"):
                return
        except OSError:
            pass
        try:
            _run_git(submodule, self._timeout, "update-ref", ref, module.commit)
        except git.GitCommandError as exc:  # the push decides: the publish target may hold the commit already
            log.warning("submodule_commit_not_kept", submodule=module.path, commit=module.commit, error=_git_error(exc))

    def _git(self, *args: str) -> str:
        return _run_git(self._repo, self._timeout, *args)


def _rmtree(folder: Path, failed_at: list[str]) -> None:
    """shutil.rmtree, noting in `failed_at` the full path of what it could not remove before it raises (its error
    names only the entry, relative to the folder it had open)."""

    def stop(_function: object, failed: str, _error: object) -> None:
        failed_at.append(failed)
        raise  # rmtree calls this from its `except`: the error it caught goes on

    if sys.version_info >= (3, 12):
        shutil.rmtree(folder, onexc=stop)
    else:
        shutil.rmtree(folder, onerror=stop)


def _walk(folder: Path) -> Iterator[tuple[str, list[str], list[str]]]:
    """os.walk of `folder`, symlinks not followed (a link to a folder is listed with the files, as rmtree removes
    it, never what it points to)."""
    for root, dirs, files in os.walk(folder):
        links = [name for name in dirs if os.path.islink(os.path.join(root, name))]
        dirs[:] = [name for name in dirs if name not in links]
        yield root, dirs, files + links


def _repositories_in(folder: Path) -> Iterator[Path]:
    """`folder` and every folder in it with a .git of its own (a nested submodule, a repository cloned there)."""
    for root, dirs, files in os.walk(folder):
        if ".git" in dirs or ".git" in files:
            yield Path(root)
        dirs[:] = [name for name in dirs if name != ".git"]


def _git_dir_of(repo: Path) -> Path:
    """Where the repository at `repo` keeps its objects: its .git folder, or where its .git file points."""
    dot_git = repo / ".git"
    if dot_git.is_file():
        pointer = dot_git.read_text(errors="replace").strip()
        if pointer.startswith("gitdir: "):
            return (repo / pointer[len("gitdir: ") :]).resolve()
    return dot_git.resolve()


def _stop_if_set(stop: threading.Event | None, url: str) -> None:
    if stop is not None and stop.is_set():
        raise PublishError(f"push to {url} stopped: interrupted")


def _push(
    cwd: Path, url: str, refspec: str, timeout: float, stop: threading.Event | None, env: dict[str, str]
) -> None:
    """`git push` from `cwd`, ended as soon as `stop` is set or `timeout` passes: a run stopped by a signal sent
    to Sartoris alone (`kill PID`) does not wait for the push in flight. A push to a local path runs in a
    process group of its own, ended with the receive-pack and hooks it started; a push over ssh stays in the
    terminal's group, where ssh can still ask about a host key or a passphrase. PublishError if it fails or
    is stopped."""
    own_group = _is_local(url)
    with tempfile.TemporaryFile() as stderr:
        try:
            process = subprocess.Popen(
                ["git", "push", "--quiet", url, refspec],
                cwd=cwd,
                env={**os.environ, **_GIT_ENV, **env},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=own_group,
            )
        except OSError as exc:
            raise PublishError(f"push to {url} failed: git: {exc.strerror or exc}") from None
        try:
            status = _wait_unless_stopped(process, time.monotonic() + timeout, stop)
        except BaseException:  # Ctrl-C in this thread, or a bug: never leave the push running
            _end_push(process, own_group)
            raise
        if status is None:
            _end_push(process, own_group)
            why = "stopped: interrupted" if stop is not None and stop.is_set() else f"timed out after {timeout:g}s"
            raise PublishError(f"push to {url} {why}")
        if status != 0:
            stderr.seek(0)
            raise PublishError(f"push to {url} failed: {_push_error(stderr.read().decode(errors='replace'))}")


def _wait_unless_stopped(process: subprocess.Popen[bytes], deadline: float, stop: threading.Event | None) -> int | None:
    """The process's exit status, or None once `stop` is set or the deadline passes first (a push that ended
    meanwhile still counts: its ref is on the target). The exit is seen at once through a pidfd where Linux
    has one; Popen.wait(timeout) would sleep up to 50 ms between looks, ~12 ms more per push on average."""
    pidfd = _pidfd(process.pid)
    try:
        while not (stop is not None and stop.is_set()) and time.monotonic() < deadline:
            if pidfd is None:
                try:
                    return process.wait(timeout=_STOP_POLL)
                except subprocess.TimeoutExpired:
                    continue
            select.select([pidfd], [], [], _STOP_POLL)  # readable once the process has exited
            status = process.poll()
            if status is not None:
                return status
        return process.poll()
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _pidfd(pid: int) -> int | None:
    """A file descriptor that becomes readable when `pid` exits (Linux 5.3+), or None where there is none."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _end_push(process: subprocess.Popen[bytes], own_group: bool) -> None:
    """Stop a push: its whole group when it has one, else git itself (its ssh ends when the pipes close)."""
    if own_group:
        end_process_group(process, _KILL_GRACE, _KILL_WAIT)
        return
    process.terminate()
    try:
        process.wait(timeout=_KILL_GRACE)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _ssh_connect_bound(cwd: Path, url: str, seconds: float | None) -> dict[str, str]:
    """The environment that makes a push over ssh give up on a server that never answers after `seconds` (ssh's
    ConnectTimeout, which covers the banner too), not after the whole push's timeout; nothing when the operator
    chose the ssh command (GIT_SSH_COMMAND, GIT_SSH, core.sshCommand: theirs is kept) or git needs no ssh."""
    if seconds is None or _is_local(url) or (_URL_SCHEME.match(url) and not url.startswith(("ssh://", "git+ssh://"))):
        return {}
    if "GIT_SSH_COMMAND" in os.environ or "GIT_SSH" in os.environ:
        return {}
    configured = subprocess.run(
        ["git", "config", "--get", "core.sshCommand"], cwd=cwd, capture_output=True, timeout=30, check=False
    )
    if configured.stdout.strip():
        return {}
    return {"GIT_SSH_COMMAND": f"ssh -o ConnectTimeout={max(1, math.ceil(seconds))}"}


def _is_local(url: str) -> bool:
    """Whether git reaches `url` on this machine (a path or file://), not over the network."""
    if _URL_SCHEME.match(url):
        return url.startswith("file://")
    return ":" not in url.split("/", 1)[0]  # not scp-like user@host:path


def _run_git(repo: git.Repo, timeout: float, *args: str) -> str:
    """`git ARGS` in `repo` (its output, less one trailing newline): never prompting, English messages, killed with
    what it started after `timeout` seconds, or at once when an interrupt (Ctrl-C, SIGTERM) stops the wait, which
    only the main thread sees (start, abort, a run's checks of the working copy; the publish, in a thread of its
    own, is stopped by its pushes' stop event instead). Not GitPython's kill_after_timeout: its watchdog thread
    outlived an interrupt, and the interpreter waited for it to fire, up to `timeout`, before it would exit."""
    command = ["git", *args]
    # GitPython's Popen (its cwd and environment); the wrapper is kept to the end: dropping it terminates git
    running = repo.git.execute(command, env=_GIT_ENV, as_process=True)
    process = running.proc
    if process is None:  # the wrapper holds the process it started until it terminates it
        raise git.GitCommandError(command, "not started")
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_with_children(process, _KILL_WAIT)
        raise git.GitCommandError(command, "timed out", f"timed out after {timeout:g}s (killed)") from None
    except BaseException:
        kill_with_children(process, _KILL_WAIT)
        raise
    if process.returncode != 0:
        if untrusted := _UNTRUSTED.search(_text(err)):
            raise _untrusted(untrusted.group(1))
        raise git.GitCommandError(command, process.returncode, _text(err), _text(out))
    return _text(out).removesuffix("\n")


_UNTRUSTED = re.compile(r"detected dubious ownership in repository at '([^'\n]*)'")


def _untrusted(path: str) -> RefusedError:
    """git works in no repository another user owns until safe.directory lists it (a shared deploy host's second
    operator): every git command there fails, and the first failure read as anything else misled ("no commit yet",
    "its commit is not in", an unexpected error)."""
    return RefusedError(
        f"{path}: git refuses a repository another user owns (\"detected dubious ownership\"): list it in"
        f" safe.directory (`git config --global --add safe.directory {path}`, or in /etc/gitconfig for every operator)"
    )


def _text(output: bytes | None) -> str:
    """git's output as text; bytes that are not UTF-8 (a file name) kept as surrogates, as GitPython does."""
    return (output or b"").decode("utf-8", "surrogateescape")


def _open_submodule(slot: git.Repo, module: SubmoduleSpec, listed: Sequence[SubmoduleSpec]) -> git.Repo | None:
    """The repository of a listed submodule, opened through the submodules it lies in (`listed` holds them)."""
    by_path = {m.path: m for m in listed}
    chain = [module]
    while chain[0].parent in by_path:
        chain.insert(0, by_path[chain[0].parent])
    repo: git.Repo | None = slot
    for outer in chain:
        if repo is None:
            return None
        inner_path = outer.path[len(outer.parent) + 1 :] if outer.parent else outer.path
        repo = _submodule_repo(repo, inner_path, outer.name)
    return repo


def _submodule_repo(parent: git.Repo, path: str, name: str) -> git.Repo | None:
    """The repository of the submodule `name` at `path` in `parent`: its work tree when initialised, else the git
    dir git keeps for it (`<parent's git dir>/modules/<name>`), which outlives a `git rm` or `git mv` of the
    submodule, so a rollback to a release that had it there still publishes its commit. A work tree at `path`
    whose git dir is not that one (another repository now stands at the submodule's old path) gives way to it.
    None when neither is there."""
    here: git.Repo | None = None
    if not _is_kept_git_dir(parent):
        with contextlib.suppress(git.NoSuchPathError, git.InvalidGitRepositoryError):
            here = git.Repo(Path(parent.working_tree_dir or parent.git_dir) / path)
    kept = Path(parent.git_dir) / "modules" / name
    if ".." in Path(name).parts or Path(name).is_absolute() or not kept.is_dir():  # a name is not a way out
        return here
    if here is not None and Path(here.git_dir).resolve() == kept.resolve():
        return here
    try:
        repo = git.Repo(kept)
    except (git.NoSuchPathError, git.InvalidGitRepositoryError):
        return here
    # Its core.worktree names the folder the submodule left; git would fail to enter it. Commands run in the git
    # dir itself, which stands in as the work tree (none of them reads or writes one).
    repo.git = git.Git(str(kept))
    repo.git.update_environment(GIT_WORK_TREE=str(kept))
    return repo


def _location(repo: git.Repo) -> str:
    """Where a repository is, for an error: its work tree, or its git dir when its work tree is gone."""
    return str(repo.git_dir if _is_kept_git_dir(repo) else repo.working_tree_dir or repo.git_dir)


def _is_kept_git_dir(repo: git.Repo) -> bool:
    """Whether `repo` was opened by _submodule_repo on a git dir whose work tree is gone."""
    return Path(repo.git.working_dir or "") == Path(repo.git_dir)


def _submodules_of(repo: git.Repo, commit: str, within: str, timeout: float) -> list[SubmoduleSpec]:
    """The gitlinks of `commit` in `repo` as specs whose paths start at the slot's root (`within` is the path of
    `repo` there), each followed by its own submodules, depth first."""
    try:
        listing = _run_git(repo, timeout, "ls-tree", "-r", "-z", commit)
    except git.GitCommandError as exc:
        # Never read as "no submodules": a release whose nested submodules went missing would switch hosts without
        # them (a rollback's publish target may already hold the commit, so no push would fail either).
        if within:
            raise RefusedError(
                f"submodule {within}: its commit {commit[:12]} is not in {_location(repo)} on this deploy host"
                f" (fetch it there), so the submodules it pins cannot be listed: {_git_error(exc)}"
            ) from None
        where = _location(repo)
        raise RefusedError(f"{where}: cannot list the files of {commit[:12]}: {_git_error(exc)}") from None
    gitlinks: dict[str, str] = {}
    for entry in listing.split("\0"):
        if entry.startswith(_GITLINK_MODE + " "):
            meta, path = entry.split("\t", 1)
            gitlinks[path] = meta.split()[2]
    if not gitlinks:
        return []
    names = _submodule_names(repo, commit, timeout)
    specs: list[SubmoduleSpec] = []
    for path, sha in sorted(gitlinks.items()):
        full = f"{within}/{path}" if within else path
        specs.append(SubmoduleSpec(name=names.get(path, path), path=full, commit=sha, parent=within))
        nested = _submodule_repo(repo, path, names.get(path, path))
        if nested is not None:
            specs += _submodules_of(nested, sha, within=full, timeout=timeout)
    return specs


def _gitlinks_set_by(repo: git.Repo, timeout: float, *revisions: str) -> list[tuple[str, str, str]]:
    """The gitlinks set by the commits that `revisions` lists (rev-list arguments: `C --not --all`), each as
    (commit, path, pinned commit), read by one `git log` of those commits only; a merge's against each of its
    parents, a root commit's against nothing."""
    listing = _run_git(
        repo, timeout, "log", "-z", "--raw", "--no-abbrev", "--no-renames", "--no-color", "-m", "--root",
        "--format=%x01%H", *revisions, "--",
    )
    gitlinks, setter = [], ""
    records = iter(listing.split("\0"))
    for record in records:
        record = record.lstrip("\n")
        if record.startswith("\x01"):  # a commit's header: the changes that follow are its
            setter = record[1:]
        elif record.startswith(":"):  # ":old_mode new_mode old_sha new_sha status", then the path
            path = next(records, "")
            _, new_mode, _, pinned, _ = record[1:].split(" ", 4)
            if new_mode == _GITLINK_MODE:
                gitlinks.append((setter, path, pinned))
    return gitlinks


def _submodule_names(repo: git.Repo, commit: str, timeout: float) -> dict[str, str]:
    """Path -> name from the .gitmodules of `commit`."""
    try:
        listing = _run_git(
            repo, timeout, "config", "--null", "--blob", f"{commit}:.gitmodules",
            "--get-regexp", r"^submodule\..*\.path$",
        )
    except git.GitCommandError as exc:  # no .gitmodules (or no path in it): names default to paths
        if isinstance(exc.status, int) and exc.status > 0:
            return {}
        where = _location(repo)
        raise RefusedError(f"{where}: cannot read .gitmodules of {commit[:12]}: {_git_error(exc)}") from None
    names: dict[str, str] = {}
    for record in filter(None, listing.split("\0")):
        key, _, path = record.partition("\n")
        names[path] = key[len("submodule.") : -len(".path")]
    return names


def _head_commit(repo: git.Repo, timeout: float) -> str | None:
    """HEAD's commit, None before the first commit. GitPython reads it without a process, but only for SHA-1
    repositories; git itself answers for the others."""
    try:
        return repo.head.commit.hexsha
    except ValueError:
        pass
    try:
        return _run_git(repo, timeout, "rev-parse", "--verify", "--quiet", "HEAD^{commit}").strip() or None
    except git.GitCommandError:
        return None


def _no_commit(path: Path) -> NoReturn:
    raise RefusedError(f"{path}: the working copy has no commit yet")


def _ensure_local_bare_repo(url: str, object_format: str) -> None:
    """A publish target at a local path that does not exist yet becomes a bare repository hashing like the
    working copy (a SHA-256 tag cannot be pushed into a SHA-1 repository). Its folder is made as the umask and a
    setgid parent say (GitPython's mkdir made it 0755), and when the umask gives the group write, the repository is
    shared with the group (`git init --shared=group`), so another operator of the deploy host can push to it."""
    if not _is_local(url):
        return
    path = Path(url.removeprefix("file://"))
    made = False
    try:
        if path.exists():
            return
        make_folder(path)
        made = True
        options: dict[str, Any] = {"shared": "group"} if is_group_writable(path) else {}
        if object_format != "sha1":  # named only when it must be: git before 2.29 has no --object-format
            options["object_format"] = object_format
        git.Repo.init(path, bare=True, mkdir=False, **options)
    except (OSError, git.GitCommandError) as exc:
        if made:  # a half-made repository would stay in the way of every later push
            shutil.rmtree(path, ignore_errors=True)
        why = _git_error(exc) if isinstance(exc, git.GitCommandError) else explained(exc, path, write=True)
        raise PublishError(f"cannot create the publish repository {path}: {why}") from None


def _tagger_env(repo: git.Repo) -> dict[str, str]:
    """Who tags: git's own identity when configured, else the local user at this host."""
    reader = repo.config_reader()
    if reader.has_option("user", "name") and reader.has_option("user", "email"):
        return {}
    user = os.environ.get("USER") or "sartoris"
    host = os.uname().nodename
    return {"GIT_COMMITTER_NAME": user, "GIT_COMMITTER_EMAIL": f"{user}@{host}"}


def _git_error(exc: git.GitCommandError) -> str:
    return _error_line(str(exc.stderr or exc))


def _push_error(output: str) -> str:
    """Why a push failed: its fatal: line (a bad object; for a publish repository another user owns, what to do),
    else the refs the server rejected with their reasons ("! [rejected] t -> t (already exists)", "(shallow update
    not allowed)"), else git's own error line, which alone says only "failed to push some refs"."""
    if untrusted := _UNTRUSTED.search(output):
        return str(_untrusted(untrusted.group(1)))
    lines = [line.strip() for line in output.splitlines()]
    fatal = next((line for line in lines if line.startswith("fatal:")), None)
    rejected = [line.removeprefix("! ").strip() for line in lines if line.startswith("! [")]
    return fatal or "; ".join(rejected) or _error_line(output)


def _error_line(output: str) -> str:
    """The line of git's output that says what went wrong (its last fatal: or error:, else its last line)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if "fatal:" in line or "error:" in line:
            return line.split("stderr: ")[-1].strip("' ")
    return lines[-1] if lines else "git failed"
