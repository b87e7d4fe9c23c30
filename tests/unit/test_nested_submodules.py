"""Submodules inside submodules, end to end without a fleet: the deploy host's SlotCheckout finds and publishes
them, and the exact host scripts (run locally with sh and real git) check them out from the slot's own store."""

from __future__ import annotations

import subprocess
from pathlib import Path

from sample_repo import UNREACHABLE_UPSTREAM, git, make_checkout, make_upstream

from sartoris.remote import RemoteRelease, fetch_command, status_command, switch_command
from sartoris.repo import SlotCheckout


def run_sh(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60, check=False)


def _add(repo: Path, upstream: Path, name: str, path: str) -> None:
    """Add `upstream` as a submodule of `repo` whose recorded URL no host can reach."""
    git(repo, "submodule", "--quiet", "add", "--name", name, str(upstream), path)
    git(repo, "config", "--file", ".gitmodules", f"submodule.{name}.url", f"{UNREACHABLE_UPSTREAM}/{name}.git")
    git(repo, "add", ".gitmodules")
    git(repo, "commit", "--quiet", "--message", f"add {name}")


def _nested_app(tmp_path: Path) -> Path:
    """The app with extensions/Skin, which itself has lib/Icons."""
    checkout = make_checkout(tmp_path / "deploy", 0, files=10, submodules=0)
    icons = make_upstream(tmp_path / "upstream" / "Icons", 3, "Icons")
    skin = make_upstream(tmp_path / "upstream" / "Skin", 3, "Skin")
    _add(skin, icons, "Icons", "lib/Icons")
    _add(checkout, skin, "Skin", "extensions/Skin")
    nested = checkout / "extensions/Skin"  # the deploy host can reach the upstreams: point Icons at its own
    git(nested, "submodule", "--quiet", "init")
    git(nested, "config", "submodule.Icons.url", str(icons))
    git(nested, "submodule", "--quiet", "update")
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
    assert run_sh(status_command(str(slot))).stdout.strip() == second.commit
    assert (slot / "extensions/Skin/lib/Icons/new.svg").read_text() == "<svg/>\n"
    assert not (first_tree / "extensions/Skin/lib/Icons/new.svg").exists()
    for module in second.submodules:
        assert git(slot / module.path, "rev-parse", "HEAD") == module.commit
    assert git(slot, "status", "--porcelain", "--ignore-submodules=none") == ""
