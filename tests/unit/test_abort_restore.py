"""What `abort` puts back in the slot's checkout on the deploy host, and what it keeps: commits no ref reaches once
the checkout is back, and the work trees of submodules the deploy added, however they were added and left."""

from __future__ import annotations

from pathlib import Path

import pytest
from sample_repo import add_nested_submodules, git, make_checkout

from sartoris.config import Config, parse_config
from sartoris.lifecycle import abort, start

_KEPT = ("for-each-ref", "--format=%(objectname)", "refs/sartoris/aborted/")


@pytest.fixture
def config(tmp_path: Path) -> Config:
    text = '[deploy]\nname = "mw"\nremote_root = "/srv/mw"\npublish_url = "/srv/git/php-slot{slot}.git"\n'
    return parse_config(text, tmp_path / "sartoris.toml")


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
