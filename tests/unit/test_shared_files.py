"""Tests for what Sartoris makes on a deploy host its operators share: the state folder, its locks and history and
the publish repository follow the operator's umask and the setgid group of the folder they are made in, so a
second operator of the group can deploy; one who may not is told "permission denied" and whose the file is."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sample_repo import git, make_checkout

from sartoris.errors import StateError
from sartoris.repo import SlotCheckout
from sartoris.state import History, SlotLock, existing_history

OTHER_UID, SHARED_GID = 64_201, 64_202  # another operator, and the deployers group (no account needed)
IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="becoming another operator needs root")


@pytest.fixture
def shared_root() -> Iterator[Path]:
    """A deploy root as a shared host has it: setgid, group-writable, owned by the deployers group (where the
    tests may give it one), in a folder every user may pass through (pytest's tmp_path is root's own)."""
    root = Path(tempfile.mkdtemp(prefix="sartoris-shared-", dir="/tmp"))
    try:
        if IS_ROOT:
            os.chown(root, 0, SHARED_GID)
        root.chmod(0o2775)
        yield root
    finally:
        shutil.rmtree(root)


@contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def as_another_operator(action: Callable[[], str]) -> str:
    """What `action` returns (or the error it raises, as text) when run by another member of the deployers group,
    umask 002, in a child process: root may read and write any file, so a permission is only seen by someone else."""
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe and never returns into pytest
        answer = "child failed"
        try:
            os.setgroups([SHARED_GID])
            os.setgid(OTHER_UID)
            os.setuid(OTHER_UID)
            os.umask(0o002)
            answer = action()
        except BaseException as exc:  # every outcome goes back to the test as text
            answer = f"{type(exc).__name__}: {exc}"
        finally:
            os.write(write, answer.encode())
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        text = answer.read()
    os.waitpid(child, 0)
    return text


def modes(*paths: Path) -> list[str]:
    return [f"{stat.S_IMODE(path.stat().st_mode):04o} {path.stat().st_gid}" for path in paths]


@pytest.mark.parametrize(
    ("mask", "folder", "file"),
    [
        pytest.param(0o002, "2775", "0664", id="umask-002-the-group-writes"),
        pytest.param(0o022, "2755", "0644", id="umask-022-the-group-reads"),
        pytest.param(0o077, "2700", "0600", id="umask-077-private"),
    ],
)
def test_the_state_folder_follows_the_umask_and_keeps_the_setgid_group(
    shared_root: Path, mask: int, folder: str, file: str
) -> None:
    """`.sartoris/` and `locks/` were chmod-ed 0755 (dropping the setgid bit and the group's write), the lock files
    0644, and sqlite made the history 0644 less the umask: under umask 002 no other operator could take a lock
    or write the history. Now every one is made as the umask says, in the setgid parent's group."""
    state = shared_root / ".sartoris"
    with umask(mask):
        History(state)
        lock = SlotLock(state, 5)
        lock.acquire("sync")
        lock.update(tag="t1")
    group = shared_root.stat().st_gid
    assert modes(state, state / "locks") == [f"{folder} {group}"] * 2
    assert modes(state / "history.sqlite3", lock.path) == [f"{file} {group}"] * 2


@pytest.mark.parametrize(
    ("mask", "folder", "shared"),
    [
        pytest.param(0o002, "2775", "1", id="umask-002-shared-with-the-group"),
        pytest.param(0o022, "2755", "", id="umask-022-not-shared"),
    ],
)
def test_the_publish_repository_is_shared_with_the_group_when_the_umask_allows(
    shared_root: Path, tmp_path: Path, mask: int, folder: str, shared: str
) -> None:
    """A missing publish repository was made 0755 by GitPython (2755 in a setgid folder): under umask 002 the next
    operator could not push to it. Its folder now follows the umask, and when the umask gives the group write it is
    made as `git init --shared=group` makes it, so every push keeps it group-writable whatever the pusher's umask."""
    checkout = SlotCheckout(make_checkout(tmp_path, 0, files=3, submodules=1), 60)
    url = shared_root / "git" / "php-slot0.git"
    with umask(mask):
        checkout.publish(checkout.tag_release("t1", "release"), str(url))
    assert modes(url.parent, url, url / "objects")[:2] == [f"{folder} {shared_root.stat().st_gid}"] * 2
    configured = subprocess.run(
        ["git", "-C", str(url), "config", "core.sharedRepository"], capture_output=True, text=True, check=False
    )
    assert configured.stdout.strip() == shared


@needs_root
def test_another_operator_of_the_group_takes_the_lock_and_writes_the_history(shared_root: Path) -> None:
    """The audit's deploy host: root ran a sync under umask 002 in the setgid deploy root, then the next operator's
    sync was refused with "cannot take the lock …: Permission denied". Now the group's members share the state."""
    state = shared_root / ".sartoris"
    with umask(0o002):
        History(state).record_event("depool", 5, "by root")
        SlotLock(state, 5).acquire("sync")
        SlotLock(state, 5).release()

    def deploy_as_well() -> str:
        history = History(state)
        history.ensure_sound()
        history.record_event("depool", 5, "by the other operator")
        SlotLock(state, 5).acquire("sync")
        return "ok"

    assert as_another_operator(deploy_as_well) == "ok"
    assert SlotLock(state, 5).path.stat().st_uid == OTHER_UID


@needs_root
def test_another_operator_pushes_to_the_publish_repository_root_made(shared_root: Path) -> None:
    """Root's first sync made the publish repository under umask 002; a later sync of root's under umask 022 (sudo
    gives that) made the folders of its new objects closed to the group, and the next operator's push needing one
    failed. Shared with the group (core.sharedRepository), every folder stays group-writable whoever pushes."""
    work = shared_root / "php-slot0"
    url = shared_root / "git" / "php-slot0.git"
    with umask(0o002):
        checkout = SlotCheckout(make_checkout(shared_root, 0, files=3, submodules=0), 60)
        checkout.publish(checkout.tag_release("t1", "release"), str(url))
    for index in range(20):  # new objects, in new folders of objects/
        (work / f"file{index}.php").write_text(f"<?php // {index}\n")
    git(work, "add", "--all")
    git(work, "commit", "--quiet", "--message", "two")
    with umask(0o022):
        checkout.publish(checkout.tag_release("t2", "release"), str(url))
    closed = [str(path) for path in url.rglob("*") if path.is_dir() and not path.stat().st_mode & stat.S_IWGRP]
    assert closed == []
    git(work, "commit", "--quiet", "--allow-empty", "--message", "three")
    git(work, "tag", "t3")
    home = shared_root / "home"  # safe.directory from the pusher's own config: git drops `-c` for receive-pack
    home.mkdir()
    (home / ".gitconfig").write_text("[safe]\n\tdirectory = *\n")

    def push() -> str:
        pushed = subprocess.run(
            ["git", "-C", str(work), "push", "--quiet", str(url), "refs/tags/t3:refs/tags/t3"],
            capture_output=True, text=True, env={"HOME": str(home), "PATH": os.environ["PATH"]}, check=False,
            timeout=60,
        )
        return pushed.stderr.strip() or "ok"

    assert as_another_operator(push) == "ok"
    assert git(url, "rev-parse", "t3") == git(work, "rev-parse", "t3")


@needs_root
@pytest.mark.parametrize(
    ("mask", "private", "why"),
    [
        pytest.param(0o077, "", "history {history}: permission denied on the folder {state}: owner root:{gid},"
                     " mode 2700", id="folder-private"),
        pytest.param(0o002, "history.sqlite3", "history {history}: permission denied: owner root:{gid}, mode 0600",
                     id="file-private"),
    ],
)
def test_a_history_another_operator_may_not_read_says_permission_denied_and_whose(
    shared_root: Path, mask: int, private: str, why: str
) -> None:
    """`status`, `log` and `slots` of another operator on a history made under umask 077 failed with "history …:
    unable to open database file" (or a traceback, for a private state folder), which does not say it is a
    permission. They now say "permission denied", what is in the way, its owner and mode."""
    state = shared_root / ".sartoris"
    with umask(mask):
        History(state)
    if private:
        (state / private).chmod(0o600)

    def read() -> str:
        return "no error" if existing_history(state) is None else "read"

    history = state / "history.sqlite3"
    expected = why.format(history=history, state=state, gid=SHARED_GID)
    assert as_another_operator(read) == f"{StateError.__name__}: {expected}"


@needs_root
def test_a_lock_and_history_another_operator_may_not_write_say_permission_denied_and_whose(shared_root: Path) -> None:
    """Under root's umask 022 the group may read the state but not write it: the next operator's sync is refused
    naming the folder in the way and its owner, not "attempt to write a readonly database"."""
    state = shared_root / ".sartoris"
    with umask(0o022):
        History(state)
        SlotLock(state, 5).acquire("sync")
        SlotLock(state, 5).release()

    def write_history() -> str:
        History(state).ensure_sound()
        return "no error"

    def take_lock() -> str:
        SlotLock(state, 5).acquire("sync")
        return "no error"

    owner = f"owner root:{SHARED_GID}, mode 2755"
    assert as_another_operator(write_history) == (
        f"StateError: history {state / 'history.sqlite3'} cannot be written (permission denied on the folder {state}:"
        f" {owner}): the run could not be recorded"
    )
    assert as_another_operator(take_lock) == (
        f"StateError: cannot take the lock {state / 'locks' / 'slot5.lock'}: permission denied on the folder"
        f" {state / 'locks'}: {owner}"
    )


@needs_root
def test_a_lock_another_operator_may_not_read_names_its_owner(shared_root: Path) -> None:
    """A lock file made under umask 077 in a folder the group may read is held by someone this operator cannot
    name: the refusal says "permission denied" with the file's owner and mode (it said "Permission denied")."""
    state = shared_root / ".sartoris"
    with umask(0o002):
        SlotLock(state, 5).acquire("sync")
        SlotLock(state, 5).release()
    with umask(0o077):
        SlotLock(state, 5).acquire("sync")

    def sync() -> str:
        SlotLock(state, 5).acquire("sync", force=True)
        return "no error"

    assert as_another_operator(sync) == (
        f"LockHeldError: slot 5 is locked, but the lock file {state / 'locks' / 'slot5.lock'} cannot be read"
        f" (permission denied: owner root:{SHARED_GID}, mode 0600), so who holds it since when is unknown: its owner"
        " (or root) can read it"
    )


@needs_root
def test_a_locks_folder_another_operator_may_not_look_into_is_not_called_locked(shared_root: Path) -> None:
    """A locks folder made under umask 077 hides whether there is a lock at all: every look from another operator
    said the slot was locked by someone unknown, though nobody held it. It now says what is in the way; `status`,
    which reads the lock after its census of the fleet, shows the lock as unreadable, saying why, not an error."""
    state = shared_root / ".sartoris"
    with umask(0o002):
        History(state)  # the state folder the group may use
    with umask(0o077):
        SlotLock(state, 5).acquire("sync")
        SlotLock(state, 5).release()

    def look() -> str:
        return str(SlotLock(state, 5).holder())

    assert as_another_operator(look) == (
        f"StateError: cannot look for the lock {state / 'locks' / 'slot5.lock'}: permission denied on the folder"
        f" {state / 'locks'}: owner root:{SHARED_GID}, mode 2700"
    )

    def as_status_sees_it() -> str:  # a census of the fleet is not thrown away over it (review)
        held = SlotLock(state, 5).holder_as_seen() or {}
        return f"{held.get('unreadable')} {held.get('why')}"

    assert as_another_operator(as_status_sees_it) == (
        f"True cannot look for the lock {state / 'locks' / 'slot5.lock'}: permission denied on the folder"
        f" {state / 'locks'}: owner root:{SHARED_GID}, mode 2700"
    )


@needs_root
def test_a_working_copy_git_does_not_trust_is_refused_naming_safe_directory(shared_root: Path) -> None:
    """git works in no repository another user owns until safe.directory lists it: the next operator's sync ended in
    "unexpected GitCommandError" (exit 1), their start in "the working copy has no commit yet". Both now refuse
    (exit 4) saying so, and how to list it."""
    with umask(0o002):
        work = make_checkout(shared_root, 0, files=3, submodules=0)
    home = shared_root / "home"  # a git configuration of the operator's own, without safe.directory
    home.mkdir()

    def open_checkout() -> str:
        os.environ["HOME"] = str(home)
        SlotCheckout(work, 60).head_commit()
        return "no error"

    answer = as_another_operator(open_checkout)
    assert answer.startswith(f"RefusedError: {work}: git refuses a repository another user owns")
    assert f"git config --global --add safe.directory {work}" in answer
    assert SlotCheckout(work, 60).head_commit() == git(work, "rev-parse", "HEAD")  # its owner's git works as ever


@needs_root
def test_a_submodule_or_publish_repository_git_does_not_trust_is_named_with_safe_directory(shared_root: Path) -> None:
    """With only the working copy in safe.directory, the next operator's sync failed on its submodule with "its
    commit … is not in … (fetch it there)", and on the publish repository with git's bare "dubious ownership": each
    is now named as a repository git refuses, with the safe.directory line to add."""
    url = shared_root / "git" / "php-slot0.git"
    with umask(0o002):
        checkout = SlotCheckout(make_checkout(shared_root, 0, files=3, submodules=1), 60)
        checkout.publish(checkout.tag_release("t1", "release"), str(url))
    work, module = checkout.path, checkout.path / "extensions" / "Ext0"
    home = shared_root / "home"
    home.mkdir()

    def sync_trusting(trusted: Path) -> str:
        (home / ".gitconfig").write_text(f"[safe]\n\tdirectory = {work}\n\tdirectory = {trusted}\n")

        def sync() -> str:
            os.environ["HOME"] = str(home)
            mine = SlotCheckout(work, 60)
            mine.ensure_submodules_initialised(mine.head_commit())
            mine.publish(mine.tag_release("t2", "release"), str(url))
            return "no error"

        return as_another_operator(sync)

    advice = "git refuses a repository another user owns (\"detected dubious ownership\"): list it in safe.directory"
    assert sync_trusting(url).startswith(f"RefusedError: {module}: {advice}")
    assert sync_trusting(module).startswith(f"PublishError: push to {url} failed: {url}: {advice}")
