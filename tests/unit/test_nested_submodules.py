"""Submodules inside submodules, end to end without a fleet: the deploy host's SlotCheckout finds and publishes
them, and the exact host scripts (run locally with sh and real git) check them out from the slot's own store."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sample_repo import add_nested_submodules, add_submodule, git, make_checkout, make_upstream

from sartoris.errors import DirtyCheckoutError, RefusedError
from sartoris.remote import RemoteRelease, fetch_command, parse_head, status_command, switch_command
from sartoris.repo import SlotCheckout


def run_sh(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60, check=False)


def _nested_app(tmp_path: Path) -> Path:
    """The app with extensions/Skin, which itself has lib/Icons."""
    checkout = make_checkout(tmp_path / "deploy", 0, files=10, submodules=0)
    add_nested_submodules(checkout, tmp_path / "upstream")
    return checkout


def _deploy(checkout: Path, publish: Path, slot: Path, tag: str) -> RemoteRelease:
    """Tag and publish like `sartoris sync`, then run the fetch and switch scripts for the host at `slot`."""
    local = SlotCheckout(checkout, 60)
    release = local.tag_release(tag, "release")
    local.publish(release, str(publish))
    remote = RemoteRelease(str(slot), str(publish), release.tag, release.commit, release.submodules)
    for script in (fetch_command(remote), switch_command(remote)):
        done = run_sh(script)
        assert done.returncode == 0, done.stderr
    return remote


def test_a_submodule_inside_a_submodule_is_published_and_checked_out(tmp_path: Path) -> None:
    """The release lists Icons after Skin, with Skin as its parent; the host gets both at their pinned commits from
    the slot's store (their upstreams are unreachable), and a later release that moves only Icons updates it
    without touching the kept tree."""
    checkout = _nested_app(tmp_path)
    publish, slot = tmp_path / "publish.git", tmp_path / "host" / "php-slot0"
    slot.parent.mkdir()
    first = _deploy(checkout, publish, slot, "t1")
    assert [(m.path, m.parent) for m in first.submodules] == [
        ("extensions/Skin", ""),
        ("extensions/Skin/lib/Icons", "extensions/Skin"),
    ]
    for module in first.submodules:
        assert git(slot / module.path, "rev-parse", "HEAD") == module.commit
    assert (slot / "extensions/Skin/lib/Icons/includes/dir00/file0000.php").exists()
    first_tree = slot.resolve()

    icons = checkout / "extensions/Skin/lib/Icons"
    (icons / "new.svg").write_text("<svg/>\n")
    git(icons, "add", "new.svg")
    git(icons, "commit", "--quiet", "--message", "new icon")
    git(checkout / "extensions/Skin", "commit", "--quiet", "--all", "--message", "bump Icons")
    git(checkout, "commit", "--quiet", "--all", "--message", "bump Skin")
    second = _deploy(checkout, publish, slot, "t2")
    assert parse_head(run_sh(status_command(str(slot), None, 60.0)).stdout) == second.commit
    assert (slot / "extensions/Skin/lib/Icons/new.svg").read_text() == "<svg/>\n"
    assert not (first_tree / "extensions/Skin/lib/Icons/new.svg").exists()
    for module in second.submodules:
        assert git(slot / module.path, "rev-parse", "HEAD") == module.commit
    assert git(slot, "status", "--porcelain", "--ignore-submodules=none") == ""


def test_abort_looks_into_a_submodule_git_calls_modified_before_refusing(tmp_path: Path) -> None:
    """git marks Skin modified when its nested Icons only moved to another commit: nothing would be lost, so the
    abort check lets it through; an uncommitted edit inside Icons is refused, naming the file."""
    checkout = _nested_app(tmp_path)
    icons = checkout / "extensions/Skin/lib/Icons"
    (icons / "new.svg").write_text("<svg/>\n")
    git(icons, "add", "new.svg")
    git(icons, "commit", "--quiet", "--message", "new icon")  # Icons moved; Skin now shows `S.M.` to the app
    local = SlotCheckout(checkout, 60)
    local.ensure_no_uncommitted_edits(before="an abort")
    (icons / "new.svg").write_text("<svg>edited</svg>\n")
    with pytest.raises(DirtyCheckoutError, match=r"extensions/Skin/lib/Icons/new\.svg"):
        local.ensure_no_uncommitted_edits(before="an abort")


def test_an_uncommitted_edit_is_named_as_it_is_spelt(tmp_path: Path) -> None:
    """A file whose name git would quote (non-ASCII, a space) is found and named as it is, not as git's quoted,
    escaped form."""
    checkout = make_checkout(tmp_path / "deploy", 0, files=1, submodules=0)
    (checkout / "résumé v2.php").write_text("<?php\n")
    git(checkout, "add", "résumé v2.php")
    git(checkout, "commit", "--quiet", "--message", "a name git quotes")
    (checkout / "résumé v2.php").write_text("<?php // edited\n")
    with pytest.raises(DirtyCheckoutError, match=r"\(résumé v2\.php\)"):
        SlotCheckout(checkout, 60).ensure_no_uncommitted_edits(before="an abort")


def test_a_release_whose_nested_commit_is_gone_here_is_refused_not_read_without_it(tmp_path: Path) -> None:
    """Skin's commit of a release was made on the deploy host only, then dropped (reset) and pruned by gc, as it
    could be before publishing gave such commits a ref there. Reading that release again (a rollback, a retry)
    listed Skin with no lib/Icons, and since the publish target already held the commit, no push failed: hosts
    switched without Icons. Now it is refused, saying where."""
    checkout = _nested_app(tmp_path)
    skin = checkout / "extensions/Skin"
    (skin / "local.txt").write_text("a deploy-host-only change\n")
    git(skin, "add", "local.txt")
    git(skin, "commit", "--quiet", "--message", "local only")
    git(checkout, "commit", "--quiet", "--all", "--message", "pin the local Skin commit")
    local = SlotCheckout(checkout, 60)
    release = local.tag_release("t1", "release")
    assert [m.path for m in release.submodules] == ["extensions/Skin", "extensions/Skin/lib/Icons"]
    local.publish(release, str(tmp_path / "publish.git"))
    kept = git(skin, "for-each-ref", "--format=%(refname)", "refs/sartoris/")
    git(skin, "update-ref", "-d", kept)  # as a publish by an older Sartoris left it: no ref of its own here
    git(skin, "reset", "--quiet", "--hard", "HEAD~1")
    git(checkout, "commit", "--quiet", "--all", "--message", "back to the upstream Skin")
    git(skin, "reflog", "expire", "--expire=now", "--all")
    git(skin, "gc", "--quiet", "--prune=now")
    with pytest.raises(RefusedError, match=r"submodule extensions/Skin: its commit \w+ is not in .* deploy host"):
        SlotCheckout(checkout, 60).release_of("t1")


def test_a_release_whose_submodules_left_the_working_copy_is_rolled_back_to(tmp_path: Path) -> None:
    """After releases that remove one submodule (`git rm`, here the one holding a nested submodule) and move
    another (`git mv`), a rollback to the release before them lists every submodule it pins, nested ones too, and
    publishes each commit from the git dir git keeps for it; the hosts' switch brings them all back."""
    checkout = make_checkout(tmp_path / "deploy", 0, files=10, submodules=1)
    add_nested_submodules(checkout, tmp_path / "upstream")  # committed
    slot = tmp_path / "host" / "php-slot0"
    before = _deploy(checkout, tmp_path / "publish.git", slot, "r1")
    git(checkout, "rm", "--quiet", "extensions/Skin")
    (checkout / "lib").mkdir()
    git(checkout, "mv", "extensions/Ext0", "lib/Ext0")
    git(checkout, "commit", "--quiet", "--message", "drop Skin, move Ext0")
    _deploy(checkout, tmp_path / "publish.git", slot, "r2")
    assert not (slot / "extensions" / "Skin").exists()
    local = SlotCheckout(checkout, 60)
    release = local.release_of("r1")
    assert release.submodules == before.submodules
    assert {m.path for m in release.submodules} == {"extensions/Ext0", "extensions/Skin", "extensions/Skin/lib/Icons"}
    elsewhere = tmp_path / "fresh-publish.git"  # nothing there yet: every commit is pushed from this working copy
    local.publish(release, str(elsewhere))
    remote = RemoteRelease(str(slot), str(elsewhere), release.tag, release.commit, release.submodules)
    for script in (fetch_command(remote), switch_command(remote)):
        done = run_sh(script)
        assert done.returncode == 0, done.stderr
    for module in release.submodules:
        assert git(slot / module.path, "rev-parse", "HEAD") == module.commit
    assert not (slot / "lib" / "Ext0").exists()


def test_another_repository_at_a_moved_submodules_old_path_is_not_taken_for_it(tmp_path: Path) -> None:
    """Ext0 moved away and another repository added where it was: a rollback to the release before reads Ext0's
    commit from the git dir git keeps for Ext0, not from the repository now standing at its old path."""
    checkout = make_checkout(tmp_path / "deploy", 0, files=5, submodules=1)
    local = SlotCheckout(checkout, 60)
    before = local.tag_release("r1", "release")
    (checkout / "lib").mkdir()
    git(checkout, "mv", "extensions/Ext0", "lib/Ext0")
    git(checkout, "commit", "--quiet", "--message", "move Ext0")
    add_submodule(checkout, make_upstream(tmp_path / "other", 2, "Other"), "Other", "extensions/Ext0")
    again = local.release_of("r1")
    assert again.submodules == before.submodules
    published = tmp_path / "publish.git"
    local.publish(again, str(published))
    module = before.submodules[0]
    assert git(published, "rev-parse", f"refs/sartoris/submodules/{module.commit}") == module.commit
