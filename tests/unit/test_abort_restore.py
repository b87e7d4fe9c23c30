"""What `abort` puts back in the slot's checkout on the deploy host, and what it keeps: commits no ref reaches once
the checkout is back, and the work trees of submodules the deploy added, however they were added and left."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import structlog
from sample_repo import add_nested_submodules, add_submodule, git, make_checkout, make_upstream

from sartoris.config import Config, parse_config
from sartoris.errors import RefusedError
from sartoris.lifecycle import abort, start
from sartoris.state import SlotLock

_KEPT = ("for-each-ref", "--format=%(objectname)", "refs/sartoris/aborted/")


_CONFIG = '[deploy]\nname = "mw"\nremote_root = "/srv/mw"\npublish_url = "/srv/git/php-slot{slot}.git"\n'


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return parse_config(_CONFIG, tmp_path / "sartoris.toml")


def _commit_on_another_line(module: Path, base: str, name: str) -> str:
    """Detach `module` at `base`, commit a new file `name` there (as an operator's hack), and return the commit."""
    git(module, "checkout", "-q", "--detach", base)
    (module / name).write_text(f"{name}\n")
    git(module, "add", name)
    git(module, "commit", "-q", "-m", name)
    return git(module, "rev-parse", "HEAD")


def _pinned_on_two_lines(module: Path, pinning: tuple[Path, ...]) -> tuple[str, str]:
    """From `module`'s HEAD, a commit pinned by a new commit of each of `pinning` (innermost first), then one on
    another line from that HEAD, pinned the same way: the first is pinned by intermediate commits only."""
    base = git(module, "rev-parse", "HEAD")
    first = _commit_on_another_line(module, base, "first.txt")
    for repo in pinning:
        git(repo, "commit", "-q", "-am", "pins the first")
    second = _commit_on_another_line(module, base, "second.txt")
    for repo in pinning:
        git(repo, "commit", "-q", "-am", "pins the second")
    return first, second


def test_abort_keeps_a_submodule_commit_only_an_intermediate_commit_pinned(config: Config, tmp_path: Path) -> None:
    """After `start`, the checkout commits C1 pinning Ext0 at S1, then Ext0 moves to S2 on another line and C2 pins
    it. abort kept C2 (C1 with it) and S2, but S1 was reachable from nothing in Ext0's repository: the kept C1
    could not be checked out with its submodule once gc ran. S1 is now kept and named like the other commits."""
    checkout = make_checkout(tmp_path, 0, files=2, submodules=1, submodule_files=2)
    start(config, 0, "train", no_remote=True, force=False)
    module = checkout / "extensions/Ext0"
    at_start = git(module, "rev-parse", "HEAD")
    first, second = _pinned_on_two_lines(module, (checkout,))
    c2 = git(checkout, "rev-parse", "HEAD")
    report = abort(config, 0, force=False)
    assert sorted(git(module, *_KEPT).split()) == sorted([first, second])
    assert git(checkout, *_KEPT) == c2
    assert f"; kept submodule extensions/Ext0's commit {first[:12]}, which no branch or tag holds" in report.detail
    assert git(checkout, "submodule", "status").split()[0].lstrip(" +-") == at_start


def test_abort_keeps_what_the_deploys_commits_pinned_though_a_tag_reaches_them(config: Config, tmp_path: Path) -> None:
    """The usual order: commit, sync (which tags the checkout's last commit), then abort. The tag reaches C2 (and
    C1), so abort needed no ref for them and read nothing they pinned: S1, which only C1 pinned, was left to Ext0's
    reflog. The checkout's commits since start are read whether a ref reaches them or not."""
    checkout = make_checkout(tmp_path, 0, files=2, submodules=1, submodule_files=2)
    start(config, 0, "train", no_remote=True, force=False)
    module = checkout / "extensions/Ext0"
    first, second = _pinned_on_two_lines(module, (checkout,))
    git(checkout, "tag", "-a", "-m", "the sync's tag", "mediawiki-slot0-release")
    report = abort(config, 0, force=False)
    assert sorted(git(module, *_KEPT).split()) == sorted([first, second])
    assert git(checkout, *_KEPT) == ""  # the tag holds C2
    assert f"; kept submodule extensions/Ext0's commit {first[:12]}, which no branch or tag holds" in report.detail


def test_abort_keeps_a_nested_submodule_commit_only_an_intermediate_commit_pinned(
    config: Config, tmp_path: Path
) -> None:
    """The same one level down: Skin's intermediate commit K1 pins Icons at I1, then Icons moves to I2 on another
    line and K2 pins it. I1, reached by no ref of Icons, is kept there; K1 is reached from the kept K2."""
    checkout = make_checkout(tmp_path, 0, files=2, submodules=0)
    skin_path, icons_path = add_nested_submodules(checkout, tmp_path / "upstream")
    skin, icons = checkout / skin_path, checkout / icons_path
    start(config, 0, "train", no_remote=True, force=False)
    git(skin, "checkout", "-q", "--detach")
    first, second = _pinned_on_two_lines(icons, (skin, checkout))
    skin_head = git(skin, "rev-parse", "HEAD")
    report = abort(config, 0, force=False)
    assert sorted(git(icons, *_KEPT).split()) == sorted([first, second])
    assert git(skin, *_KEPT) == skin_head
    assert f"; kept submodule {icons_path}'s commit {first[:12]}" in report.detail


def _folder_replaced_by_a_submodule(config: Config, tmp_path: Path, *, same_files: bool) -> tuple[Path, dict[str, str]]:
    """A slot whose commit tracks the folder extensions/Old, started; then the operator replaced the folder by a
    submodule (committed): one holding the same files (a vendored library becoming a submodule), or others. The
    checkout, and the folder's files at start by name."""
    checkout = make_checkout(tmp_path, 0, files=2, submodules=0)
    old = checkout / "extensions/Old"
    old.mkdir(parents=True)
    files = {"a.php": "<?php // a\n", "b.php": "<?php // b\n"}
    for name, text in files.items():
        (old / name).write_text(text)
    git(checkout, "add", "extensions/Old")
    git(checkout, "commit", "-q", "-m", "vendor Old")
    start(config, 0, "train", no_remote=True, force=False)
    upstream = tmp_path / "upstream" / "Old"
    if same_files:
        upstream.mkdir(parents=True)
        for name, text in files.items():
            (upstream / name).write_text(text)
        git(upstream, "init", "-q", "-b", "main")
        git(upstream, "add", "--all")
        git(upstream, "commit", "-q", "-m", "Old upstream")
    else:
        make_upstream(upstream, 2, "Old")
    git(checkout, "rm", "-rq", "extensions/Old")
    add_submodule(checkout, upstream, "Old", "extensions/Old")
    return checkout, files


@pytest.mark.parametrize("same_files", [True, False], ids=["same-files", "other-files"])
def test_abort_puts_back_a_tracked_folder_a_submodule_replaced(
    config: Config, tmp_path: Path, same_files: bool
) -> None:
    """A folder tracked at `start` became a submodule. abort reset the checkout, which wrote the folder's files
    into the submodule's work tree, then removed that work tree as a submodule the deploy added: with the same
    files, the tracked folder was deleted; with others, its files were mixed with the submodule's and its .git
    file. The work tree now goes before the reset, which puts the folder back as it was, and abort says so."""
    checkout, files = _folder_replaced_by_a_submodule(config, tmp_path, same_files=same_files)
    report = abort(config, 0, force=False)
    old = checkout / "extensions/Old"
    assert {p.relative_to(old).as_posix(): p.read_text() for p in old.rglob("*") if p.is_file()} == files
    assert git(checkout, "status", "--porcelain", "--untracked-files=all", "--ignored") == ""
    assert (checkout / ".git/modules/Old").is_dir()
    assert "; put back extensions/Old as `start` found it, in place of the work tree of a submodule" in report.detail


def test_abort_keeps_the_commits_made_in_a_submodule_that_replaced_a_tracked_folder(
    config: Config, tmp_path: Path
) -> None:
    """Commits made in the submodule that replaced a tracked folder, whose work tree now goes before the reset (the
    folder is a plain one again): they are looked for in its repository under .git/modules, where its HEAD still
    holds the last and the one an intermediate commit pinned is kept under a ref, which abort names for `git -C`
    there (it named the folder, where no repository is any more)."""
    checkout, files = _folder_replaced_by_a_submodule(config, tmp_path, same_files=False)
    module, kept_in = checkout / "extensions/Old", checkout / ".git/modules/Old"
    first, second = _pinned_on_two_lines(module, (checkout,))
    with structlog.testing.capture_logs() as events:
        report = abort(config, 0, force=False)
    assert [e for e in events if e["event"] == "commit_not_kept"] == []
    assert git(kept_in, *_KEPT) == first and git(kept_in, "rev-parse", "HEAD") == second
    assert f"; kept submodule extensions/Old's commit {first[:12]}" in report.detail
    assert "(`git -C .git/modules/Old log refs/sartoris/aborted/slot0-" in report.detail  # the folder is no repository
    assert {p.relative_to(module).as_posix(): p.read_text() for p in module.rglob("*") if p.is_file()} == files


def test_abort_refuses_to_put_a_tracked_folder_back_over_a_submodule_holding_work(
    config: Config, tmp_path: Path
) -> None:
    """The submodule that replaced a tracked folder holds a file its commits do not: the reset overwrote it when
    it had the name of one of the folder's files, and mixed it with them otherwise. abort now refuses (exit 4)
    before anything changes, naming the file, and keeps the deploy started."""
    checkout, _ = _folder_replaced_by_a_submodule(config, tmp_path, same_files=False)
    old = checkout / "extensions/Old"
    (old / "a.php").write_text("the operator's own a.php\n")
    head = git(checkout, "rev-parse", "HEAD")
    with pytest.raises(RefusedError, match=r"extensions/Old .*holds work its commits do not \(a\.php"):
        abort(config, 0, force=False)
    assert (old / "a.php").read_text() == "the operator's own a.php\n" and (old / ".git").is_file()
    assert git(checkout, "rev-parse", "HEAD") == head
    assert (SlotLock(config.state_dir, 0).holder() or {}).get("command") == "start"


@pytest.mark.parametrize("committed", [True, False], ids=["untracked-in-a-commit", "untracked-in-the-index"])
def test_abort_removes_an_added_submodule_untracked_again_with_rm_cached(
    config: Config, tmp_path: Path, committed: bool
) -> None:
    """A submodule added after `start`, then `git rm --cached`: committed, HEAD no longer pinned it and abort left
    its work tree as an untracked folder without a word. The submodules the deploy's commits added count too: it
    is removed as the others are (it holds nothing its commits do not), and abort says so."""
    checkout = make_checkout(tmp_path, 0, files=2, submodules=1, submodule_files=2)
    start(config, 0, "train", no_remote=True, force=False)
    add_submodule(checkout, make_upstream(tmp_path / "upstream" / "New", 2, "New"), "New", "extensions/New")
    git(checkout, "rm", "-q", "--cached", "extensions/New")
    if committed:
        git(checkout, "commit", "-q", "-m", "untrack New")
    report = abort(config, 0, force=False)
    assert not (checkout / "extensions/New").exists() and (checkout / ".git/modules/New").is_dir()
    assert git(checkout, "status", "--porcelain", "--untracked-files=all", "--ignored") == ""
    assert "; removed extensions/New (the work tree of a submodule this deploy added" in report.detail


def test_abort_leaves_to_the_reset_a_folder_that_was_a_submodule_only_in_between(
    config: Config, tmp_path: Path
) -> None:
    """A tracked folder made a submodule by one commit and a folder again by the next: a submodule a commit of the
    deploy's set, but HEAD tracks the folder's files, so no work tree of it stands there. The reset puts the folder
    back, and abort neither removes nor refuses anything for it."""
    checkout, files = _folder_replaced_by_a_submodule(config, tmp_path, same_files=False)
    at_start = git(checkout, "rev-parse", "HEAD~1")
    git(checkout, "rm", "-q", "extensions/Old")
    git(checkout, "checkout", at_start, "--", "extensions/Old")
    git(checkout, "commit", "-q", "-m", "Old is a folder again")
    report = abort(config, 0, force=False)
    old = checkout / "extensions/Old"
    assert {p.relative_to(old).as_posix(): p.read_text() for p in old.rglob("*") if p.is_file()} == files
    assert git(checkout, "status", "--porcelain", "--untracked-files=all", "--ignored") == ""
    assert "extensions/Old" not in report.detail


@pytest.mark.parametrize("within", ["", "extensions/Ext0/"], ids=["in-the-checkout", "in-a-submodule"])
def test_abort_names_a_repository_added_to_the_index_and_never_committed(
    config: Config, tmp_path: Path, within: str
) -> None:
    """A repository cloned into the checkout (or into a submodule of it) during the deploy and `git add`ed, never
    committed: a gitlink only the index held. The restore dropped it from the index and left its work tree as an
    untracked folder without a word. It is now named as left, as when a commit added it, with every file in it
    kept (its repository is its own .git folder, which removing it would take)."""
    checkout = make_checkout(tmp_path, 0, files=2, submodules=1, submodule_files=2)
    start(config, 0, "train", no_remote=True, force=False)
    upstream = make_upstream(tmp_path / "upstream" / "Lib", 2, "Lib")
    parent = checkout / within
    git(parent, "clone", "-q", str(upstream), "vendor/Lib")
    (parent / "vendor/Lib/mine.txt").write_text("the operator's own file\n")
    git(parent, "add", "vendor/Lib")
    report = abort(config, 0, force=False)
    assert (parent / "vendor/Lib/mine.txt").read_text() == "the operator's own file\n"
    assert git(parent / "vendor/Lib", "status", "--porcelain") == "?? mine.txt"
    assert git(parent, "diff", "--cached", "--name-only") == ""  # out of the index, as `start` found it
    assert f"; left {within}vendor/Lib, the work tree of a submodule this deploy added, as an untracked folder" in (
        report.detail
    )


def _unlink_failing_at(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make every removal of a file called `name` fail as a file on a read-only or immutable folder does, the
    others going on: rmtree then stops part-way, having removed what it reached before it."""
    unlink = os.unlink

    def failing(path: Any, *args: Any, **kwargs: Any) -> None:
        if os.path.basename(path) == name:
            raise PermissionError(13, "Permission denied", path)
        unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", failing)


def test_abort_that_removes_an_added_submodule_only_in_part_says_what_is_left_and_exits_5(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    cli_main: Callable[[list[str]], int],
) -> None:
    """The work tree of a submodule the deploy added, whose removal after the restore stopped part-way (a file it
    could not delete): abort said it had left the folder "as an untracked folder" (half of it was gone, its .git
    file with it), named no file, and exited 0. It now says which file stopped it and what is left of the folder,
    and exits 5 (done, with a failure) with one line on stderr; the checkout is back and the lock released."""
    checkout = make_checkout(tmp_path, 0, files=2, submodules=1, submodule_files=2)
    start(config, 0, "train", no_remote=True, force=False)
    add_submodule(checkout, make_upstream(tmp_path / "upstream" / "New", 4, "New"), "New", "extensions/New")
    _unlink_failing_at(monkeypatch, "file0002.php")
    config.path.write_text(_CONFIG)  # the command reads the file the fixture's config was parsed as
    code = cli_main(["--config", str(config.path), "abort", "--slot", "0", "--json"])
    out, err = capsys.readouterr()
    report = json.loads(out)
    left = sorted(p.relative_to(checkout).as_posix() for p in (checkout / "extensions/New").rglob("*") if p.is_file())
    assert code == 5 and report["partly_removed"] == ["extensions/New"]
    assert "extensions/New/includes/dir02/file0002.php" in left and len(left) < 5  # .git and four files at first
    said = report["detail"]
    assert said.startswith("slot 0 restored to ") and " and released; could not remove all of extensions/New" in said
    assert "Permission denied: extensions/New/includes/dir02/file0002.php" in said
    assert f"{len(left)} of its 5 files are left, in " in said and all(path in said for path in left)
    errors = [line for line in err.splitlines() if line.startswith("sartoris: ")]  # not the log's events
    assert len(errors) == 1 and "could not remove all of extensions/New: its report says what is left" in errors[0]
    assert SlotLock(config.state_dir, 0).holder() is None


def test_abort_that_removes_a_submodule_standing_on_tracked_files_only_in_part_says_what_is_left(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same for the work tree removed before the restore (a submodule standing where `start` found a tracked
    folder): the refusal said "it could not be removed (Permission denied); remove it", though part of it was
    gone. It now names the file that stopped it and what is left, and the deploy stays started (exit 4)."""
    checkout, _ = _folder_replaced_by_a_submodule(config, tmp_path, same_files=False)
    _unlink_failing_at(monkeypatch, "file0001.php")
    with pytest.raises(RefusedError) as refused:
        abort(config, 0, force=False)
    left = sorted(p.relative_to(checkout).as_posix() for p in (checkout / "extensions/Old").rglob("*") if p.is_file())
    said = str(refused.value)
    assert "(Permission denied: extensions/Old/includes/dir01/file0001.php)" in said
    assert f"{len(left)} of its 3 files are left, in " in said and all(path in said for path in left)
    assert (SlotLock(config.state_dir, 0).holder() or {}).get("command") == "start"


def _refused_unchanged(config: Config, checkout: Path, named: str, kept: dict[str, str]) -> None:
    """abort refuses (exit 4) naming `named`, and nothing changed: HEAD, the files `kept` (path -> text), the lock."""
    head = git(checkout, "rev-parse", "HEAD")
    with pytest.raises(RefusedError, match="untracked or ignored") as refused:
        abort(config, 0, force=False)
    assert refused.value.exit_code == 4
    assert named in str(refused.value) and "move them away or commit them, then abort again" in str(refused.value)
    assert {path: (checkout / path).read_text() for path in kept} == kept
    assert git(checkout, "rev-parse", "HEAD") == head
    assert (SlotLock(config.state_dir, 0).holder() or {}).get("command") == "start"


@pytest.mark.parametrize(
    ("ignored", "as_folder"),
    [
        pytest.param(False, False, id="untracked-file"),
        pytest.param(True, False, id="ignored-file"),
        pytest.param(False, True, id="untracked-folder-where-a-file-goes"),
    ],
)
def test_abort_refuses_to_overwrite_an_untracked_file_where_start_tracked_one(
    config: Config, tmp_path: Path, ignored: bool, as_folder: bool
) -> None:
    """A file the deploy removed (committed), then the operator's own file (untracked, or ignored) at its path, or a
    folder of theirs: `git reset --hard` wrote the old file over it and abort said nothing. abort now refuses
    (exit 4) before anything changes, naming the path, and keeps the deploy started."""
    checkout = make_checkout(tmp_path, 0, files=4, submodules=1, submodule_files=2)
    start(config, 0, "train", no_remote=True, force=False)
    git(checkout, "rm", "-q", "includes/dir00/file0000.php")
    if ignored:
        (checkout / ".gitignore").write_text("*.php\n")
        git(checkout, "add", ".gitignore")
    git(checkout, "commit", "-q", "-m", "remove file0000")
    target = "includes/dir00/file0000.php"
    work = f"{target}/notes.txt" if as_folder else target
    (checkout / work).parent.mkdir(parents=True, exist_ok=True)
    (checkout / work).write_text("OPERATOR WORK NOT YET ADDED\n")
    _refused_unchanged(config, checkout, target, {work: "OPERATOR WORK NOT YET ADDED\n"})


def test_abort_refuses_to_remove_an_untracked_file_where_start_tracked_a_folder(config: Config, tmp_path: Path) -> None:
    """The deploy removed a folder's files (committed), and the operator made a file with the folder's name: the
    reset removed it to put the folder back. abort refuses, naming it."""
    checkout = make_checkout(tmp_path, 0, files=60, submodules=0)
    start(config, 0, "train", no_remote=True, force=False)
    git(checkout, "rm", "-rq", "includes")
    git(checkout, "commit", "-q", "-m", "remove includes")
    (checkout / "includes").write_text("a file now\n")
    _refused_unchanged(config, checkout, "includes", {"includes": "a file now\n"})


def test_abort_names_a_few_of_many_untracked_files_in_the_way(config: Config, tmp_path: Path) -> None:
    """Many untracked files where `start`'s commit has files: abort names the first few and says how many more."""
    checkout = make_checkout(tmp_path, 0, files=60, submodules=0)
    start(config, 0, "train", no_remote=True, force=False)
    git(checkout, "rm", "-rq", "includes")
    git(checkout, "commit", "-q", "-m", "remove includes")
    kept = {f"includes/dir{n % 20:02d}/file{n:04d}.php": "mine\n" for n in range(8)}
    for path, text in kept.items():
        (checkout / path).parent.mkdir(parents=True)
        (checkout / path).write_text(text)
    named = ", ".join(sorted(kept)[:5]) + " and 3 more"
    _refused_unchanged(config, checkout, named, kept)


def test_abort_refuses_to_lose_an_untracked_file_in_a_folder_start_had_as_a_file(
    config: Config, tmp_path: Path
) -> None:
    """The deploy replaced the file index.php by a folder of that name (committed); the operator added a file of
    their own in it: the reset removed the folder, their file with it. abort refuses, naming their file."""
    checkout = make_checkout(tmp_path, 0, files=2, submodules=0)
    start(config, 0, "train", no_remote=True, force=False)
    git(checkout, "rm", "-q", "index.php")
    (checkout / "index.php").mkdir()
    (checkout / "index.php/main.php").write_text("<?php\n")
    git(checkout, "add", "index.php")
    git(checkout, "commit", "-q", "-m", "index.php becomes a folder")
    (checkout / "index.php/mine.txt").write_text("mine\n")
    _refused_unchanged(config, checkout, "index.php/mine.txt", {"index.php/mine.txt": "mine\n"})


def _moved_without_file0000(checkout: Path) -> Path:
    """Commit, in submodule Ext0 (detached), the removal of its file0000 (the checkout's commit is the caller's)."""
    module = checkout / "extensions/Ext0"
    git(module, "checkout", "-q", "--detach")
    git(module, "rm", "-q", "includes/dir00/file0000.php")
    git(module, "commit", "-q", "-m", "remove file0000")
    return module


def test_abort_refuses_to_overwrite_an_untracked_file_in_a_submodule(config: Config, tmp_path: Path) -> None:
    """In a submodule the deploy moved to a commit without one of its files, the operator's untracked file at that
    path: `git submodule update --force` wrote the old file over it. abort refuses, naming it by its path in the
    checkout, before anything changes."""
    checkout = make_checkout(tmp_path, 0, files=2, submodules=1, submodule_files=2)
    start(config, 0, "train", no_remote=True, force=False)
    module = _moved_without_file0000(checkout)
    git(checkout, "commit", "-qam", "move Ext0")
    (module / "includes/dir00").mkdir()
    (module / "includes/dir00/file0000.php").write_text("OPERATOR WORK\n")
    work = "extensions/Ext0/includes/dir00/file0000.php"
    _refused_unchanged(config, checkout, work, {work: "OPERATOR WORK\n"})


def test_abort_goes_on_with_untracked_files_nothing_puts_back(config: Config, tmp_path: Path) -> None:
    """Untracked and ignored files, and folders, at paths `start`'s commit does not track (in the checkout and in a
    submodule the deploy moved) are no reason to refuse: the restore leaves them as they are."""
    checkout = make_checkout(tmp_path, 0, files=4, submodules=1, submodule_files=2)
    start(config, 0, "train", no_remote=True, force=False)
    module = _moved_without_file0000(checkout)
    git(checkout, "rm", "-q", "includes/dir01/file0001.php")
    git(checkout, "commit", "-qam", "move Ext0, remove file0001")
    kept = {
        "notes.txt": "mine\n", "includes/dir00/mine.php": "mine\n", "cache/page.html": "cached\n",
        "extensions/Ext0/mine.txt": "mine\n", "extensions/Ext0/includes/dir00/other.php": "mine\n",
    }
    for path, text in kept.items():
        (checkout / path).parent.mkdir(parents=True, exist_ok=True)
        (checkout / path).write_text(text)
    abort(config, 0, force=False)
    assert {path: (checkout / path).read_text() for path in kept} == kept
    assert (checkout / "includes/dir01/file0001.php").is_file() and (module / "includes/dir00/file0000.php").is_file()


def test_abort_refuses_a_folder_of_the_operators_where_start_pinned_a_submodule(config: Config, tmp_path: Path) -> None:
    """The deploy removed a submodule (committed), and the operator put a folder of their own at its path: the
    submodule update checked the submodule's files out into it. abort refuses, naming the folder."""
    checkout = make_checkout(tmp_path, 0, files=2, submodules=1, submodule_files=2)
    start(config, 0, "train", no_remote=True, force=False)
    git(checkout, "rm", "-q", "extensions/Ext0")
    git(checkout, "commit", "-q", "-m", "remove Ext0")
    work = "extensions/Ext0/includes/dir00/file0000.php"
    (checkout / work).parent.mkdir(parents=True)
    (checkout / work).write_text("OPERATOR WORK\n")
    _refused_unchanged(config, checkout, "extensions/Ext0", {work: "OPERATOR WORK\n"})


def test_abort_puts_back_a_submodule_untracked_with_rm_cached(config: Config, tmp_path: Path) -> None:
    """A submodule `start` found, untracked by the deploy with `git rm --cached` (committed): its work tree stands
    as an untracked folder where `start`'s commit pins it. That is the submodule itself, no operator's folder in the
    way: abort goes on and the submodule is back at its commit."""
    checkout = make_checkout(tmp_path, 0, files=2, submodules=1, submodule_files=2)
    start(config, 0, "train", no_remote=True, force=False)
    at_start = git(checkout / "extensions/Ext0", "rev-parse", "HEAD")
    git(checkout, "rm", "-q", "--cached", "extensions/Ext0")
    git(checkout, "commit", "-q", "-m", "untrack Ext0")
    abort(config, 0, force=False)
    assert git(checkout / "extensions/Ext0", "rev-parse", "HEAD") == at_start
    assert git(checkout, "status", "--porcelain", "--untracked-files=all", "--ignored") == ""
