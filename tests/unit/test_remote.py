"""The host-side scripts (sartoris.remote): quoting, and their behaviour run locally with sh and real git.

Running the exact text Sartoris sends over SSH, in a temporary folder, checks the tree-and-link layout
without a fleet: first deploy, incremental deploy, rollback to a kept tree, pruning, refusals.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sample_repo import add_nested_submodules, commit_change, git, make_checkout

from sartoris.census import host_status
from sartoris.remote import (
    _SWITCH_FUNCTIONS,
    ALREADY_PRESENT,
    NOTE_MARK,
    SCRIPT_END,
    SCRIPT_START,
    SUBMODULE_REF_PREFIX,
    UNCHANGED_MARK,
    HostCommand,
    RemoteRelease,
    SubmoduleSpec,
    _alone_with_the_store,
    _fetch_mark,
    bounded,
    damaged_store_remedy,
    deadline_error,
    fetch_command,
    found_recorded,
    found_unchanged,
    gone_from_the_host,
    last_phase,
    not_ours,
    parse_head,
    ran_to_its_end,
    script_lines,
    shell_words,
    status_command,
    submodule_ref,
    switch_command,
    switch_outcome_command,
    unpruned_trees,
)
from sartoris.results import HostState, HostStatus, Phase
from sartoris.transport import CommandResult


def run_sh(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60, check=False)


def run_on_host(command: HostCommand) -> subprocess.CompletedProcess[str]:
    """What a host's login shell does with a command Sartoris sends: run its line, the script on its stdin."""
    return subprocess.run(
        ["sh", "-c", command.command], input=command.script, capture_output=True, text=True, timeout=120, check=False
    )


def census_answer(done: subprocess.CompletedProcess[str], expected: str | None, seconds: float = 60.0) -> HostStatus:
    """What the census makes of a status script's run (given `seconds`) on a host."""
    return host_status("mw1", CommandResult(done.returncode, done.stdout, done.stderr), expected, False, seconds)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("$(touch {mark})", id="command-substitution"),
        pytest.param("`touch {mark}`", id="backticks"),
        pytest.param("x; touch {mark}", id="semicolon"),
        pytest.param("x' ; touch {mark} ; '", id="quote-break"),
        pytest.param("x\ntouch {mark}", id="newline"),
    ],
)
def test_hostile_values_never_run(tmp_path: Path, value: str) -> None:
    """A hostile tag, path, URL or submodule name reaches git as data: the payload's mark never appears."""
    mark = tmp_path / "pwned"
    payload = value.format(mark=mark)
    release = RemoteRelease(
        slot_path=str(tmp_path / "root" / payload),
        fetch_url=payload,
        tag=payload,
        commit="a" * 40,
        submodules=(SubmoduleSpec(payload, payload, "b" * 40),),
    )
    status = status_command(release.slot_path, payload, 60.0)
    for script in (fetch_command(release), switch_command(release), status):
        run_sh(script)
    run_sh(shell_words("echo", payload))
    assert not mark.exists()


def test_what_a_login_shell_prints_before_a_script_is_not_read_as_its_answer(host: Host, tmp_path: Path) -> None:
    """An account's shell startup files may print (an xterm title) before the command, with no newline: it was
    glued to the script's first line, so status read no commit there (a host on the release was `missing`), a slot
    path that is not Sartoris's passed for a checkout at its commit (its refusal line unseen). The scripts start
    their output on a line of their own, after SCRIPT_START."""
    junk = "printf '\\033]0;deploy@app1\\007'; "
    release = host.release()
    assert host.deploy(release).returncode == 0
    on_it = run_sh(junk + status_command(str(host.slot), release.commit, 60.0))
    assert parse_head(on_it.stdout) == release.commit
    assert census_answer(on_it, release.commit).state is HostState.CURRENT
    live = host.slot.resolve()
    host.slot.unlink()
    shutil.copytree(live, host.slot, symlinks=True)
    hand_made = run_sh(junk + status_command(str(host.slot), release.commit, 60.0))
    answer = census_answer(hand_made, release.commit)
    assert answer.state is HostState.MISSING and answer.error is not None and "not managed by sartoris" in answer.error


def test_a_mark_the_switch_cannot_write_fails_its_build_not_the_whole_script() -> None:
    """dash ends the whole script when a redirection on `:` (a special builtin) fails, `|| return` or not: a layout
    mark that could not be written (a full disk) ended the switch there, leaving its build and trying no fresh
    clone. The switch's functions write with `true >`, whose failure is the step's; none uses `: >`."""
    script = "\n".join(_SWITCH_FUNCTIONS) + '\nsartoris_record_layout /nonexistent/.git 0123; echo "after $?"'
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.stdout.startswith("after ") and done.stdout != "after 0\n", done.stderr
    release = RemoteRelease("/srv/app/php-slot0", "/srv/pub.git", "t1", "a" * 40, (SubmoduleSpec("m", "m", "b" * 40),))
    assert ": >" not in switch_command(release) and ": >" not in status_command(release.slot_path, None, 60.0)


def test_bounded_runs_the_script_under_the_hosts_own_deadline() -> None:
    """bounded() wraps a script in coreutils timeout, ending before the controller's own deadline: 2 s before it,
    or at half of it when it is too short for that (a 1 s limit gave the host 1 s, the controller's whole time)."""
    done = run_on_host(bounded("sleep 5; echo late", 3.0))
    assert done.returncode == 124 and "late" not in done.stdout
    assert "sartoris: timed out on the host after 1.5s (stopped ahead of the 3s timeout)" in done.stderr
    assert run_on_host(bounded("echo on time", 10.0)).stdout == f"\n{SCRIPT_START}\non time\n\n{SCRIPT_END}\n"
    for controller, host in ((0.5, "0.25"), (1.0, "0.5"), (4.0, "2"), (5.0, "3"), (300.0, "298")):
        assert f"timeout -k 5 {host} sh -s" in bounded("true", controller).command


def test_the_build_from_a_fresh_clone_says_checkout_before_its_clone() -> None:
    """The last build, from a fresh clone, ran `git clone` before its first phase marker: a clone that failed (a
    full disk) after a quiet build from a copy had reached the submodules was reported at phase submodules."""
    from sartoris.remote import RemoteRelease, SubmoduleSpec, switch_command

    release = RemoteRelease("/srv/app/php-slot0", "/srv/pub.git", "t1", "a" * 40, (SubmoduleSpec("m", "m", "b" * 40),))
    script = switch_command(release)
    clone_line = next(line for line in script.splitlines() if "git clone" in line and "sartoris_build" in line)
    assert clone_line.index("echo sartoris-phase:checkout") < clone_line.index("git clone")


def test_a_bounded_script_is_gone_from_the_host_before_a_look_at_how_it_ended() -> None:
    """A switch whose outcome is unknown (its reply late past the controller's timeout) is looked at once
    gone_from_the_host has passed: by then the host's own `timeout` has sent its KILL (deadline plus grace), with a
    margin for the command's way to the host, so the look cannot race a switch still running there."""
    for controller in (0.5, 1.0, 4.0, 5.0, 15.0, 300.0):
        words = bounded("true", controller).command.split()
        at = words.index("timeout")
        assert words[at + 1] == "-k"
        killed_by = float(words[at + 2]) + float(words[at + 3])  # the KILL's grace after the deadline
        assert gone_from_the_host(controller) >= killed_by + 0.25, controller
        assert gone_from_the_host(controller) > controller  # never before the controller gave up on the reply


def test_a_script_killed_on_the_host_is_not_called_a_timeout() -> None:
    """timeout exits 137 for any KILL, the out-of-memory killer's too, seconds before any deadline: that was
    reported as "timed out after 298s". It is now called a kill, naming both of the causes it can have."""
    done = run_on_host(bounded("kill -KILL $$", 300.0))
    assert done.returncode == 137
    assert "timed out" not in done.stderr
    assert "sartoris: killed on the host (SIGKILL: out of memory, or still running 5s after its deadline" in done.stderr


def test_a_script_longer_than_one_argument_may_be_still_runs_whole() -> None:
    """The script goes on the command's stdin: Linux refuses one argument over 128 KiB ("Argument list too long"),
    which a switch for a hundred submodules used to exceed. What the script runs reads nothing of it (`cat` gets
    /dev/null), and the exit status is the script's."""
    filler = "\n".join(f": {'x' * 70} {n}" for n in range(4000))  # about 300 KB
    command = bounded(f"{filler}\ncat; echo reached the end; exit 3", 60.0)
    assert len(command.script) > 2 * 128 * 1024 and len(command.command) < 1000
    done = run_on_host(command)
    assert (done.returncode, done.stdout, done.stderr) == (3, f"\n{SCRIPT_START}\nreached the end\n", "")


@pytest.mark.parametrize("script", ["", "{\n"], ids=["empty", "first-line-only"])
def test_a_script_that_never_arrived_does_not_pass_for_one_that_ran(tmp_path: Path, script: str) -> None:
    """With nothing on stdin (the account's shell startup files read it, or a forced command gave the command
    /dev/null), sh runs nothing and exits 0: the missing last line tells that apart from a script that ran."""
    command = bounded("true", 60.0)
    done = subprocess.run(["sh", "-c", command.command], input=script, capture_output=True, text=True, timeout=60)
    assert not ran_to_its_end(done.stdout)
    assert ran_to_its_end(run_on_host(command).stdout)


def test_a_login_banner_without_a_newline_does_not_hide_the_last_line() -> None:
    """A deploy account's startup file that prints a word with no newline (bash reads .bashrc for ssh commands)
    must not glue itself to the marker and fail a script that ran."""
    command = bounded("true", 60.0)
    done = subprocess.run(["sh", "-c", f"printf Welcome; {command.command}"], input=command.script,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and ran_to_its_end(done.stdout)


def test_a_script_cut_short_in_transit_runs_nothing(tmp_path: Path) -> None:
    """sh parses the whole script before it runs any of it: a script whose end never arrived does nothing."""
    mark = tmp_path / "ran"
    command = bounded(f"touch {mark}\necho more", 60.0)
    cut = command.script[: command.script.rindex("}")]
    done = subprocess.run(["sh", "-c", command.command], input=cut, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and not mark.exists()


def test_last_phase_and_parse_head() -> None:
    """The last phase marker wins; a status answer is a 40-hex commit or nothing."""
    assert last_phase("sartoris-phase:checkout\nnoise\nsartoris-phase:submodules\n", Phase.CHECKOUT) is Phase.SUBMODULES
    assert last_phase("", Phase.CHECKOUT) is Phase.CHECKOUT
    # a marker cut short where output past the kept 64 KiB was dropped is no marker (it raised ValueError)
    assert last_phase("sartoris-phase:submodules\nsartoris-phase:subm", Phase.CHECKOUT) is Phase.SUBMODULES
    assert parse_head("c" * 40 + "\n") == "c" * 40
    assert parse_head("fatal: nope") is None
    assert parse_head("e" * 64 + "\n") == "e" * 64  # a SHA-256 repository
    assert parse_head("c" * 41) is None


class Host:
    """One app server's remote_root on local disk, driven with the exact scripts sent over SSH."""

    def __init__(self, root: Path, publish: Path, checkout: Path, keep: int = 2) -> None:
        self.root, self.publish, self.checkout, self.keep = root, publish, checkout, keep
        self.slot = root / "php-slot0"

    def release(self) -> RemoteRelease:
        commit = git(self.checkout, "rev-parse", "HEAD")
        tag = f"t-{commit[:8]}"
        if not git(self.checkout, "tag", "--list", tag):
            git(self.checkout, "tag", tag)
        git(self.checkout, "push", "--quiet", str(self.publish), f"refs/tags/{tag}:refs/tags/{tag}")
        modules = _gitlinks(self.checkout)
        for module in modules:
            sha = module.commit
            git(self.checkout / module.path, "push", "--quiet", str(self.publish), f"{sha}:{submodule_ref(sha)}")
        return RemoteRelease(str(self.slot), str(self.publish), tag, commit, tuple(modules), keep_trees=self.keep)

    def deploy(self, release: RemoteRelease) -> subprocess.CompletedProcess[str]:
        fetched = run_on_host(bounded(fetch_command(release), 120.0))
        assert fetched.returncode == 0, fetched.stderr
        return run_on_host(bounded(switch_command(release), 120.0))

    def head(self) -> str:
        return "\n".join(script_lines(run_sh(status_command(str(self.slot), None, 60.0)).stdout)).strip()


def _gitlinks(checkout: Path, parent: str = "") -> list[SubmoduleSpec]:
    """Each submodule HEAD pins, names from .gitmodules, then the submodules inside it (parents first)."""
    repo = checkout / parent if parent else checkout
    links = [line.split(None, 3) for line in git(repo, "ls-tree", "-r", "HEAD").splitlines()]
    paths = {path: sha for mode, _, sha, path in links if mode == "160000"}
    names = {}
    if paths:
        for line in git(repo, "config", "-f", ".gitmodules", "--get-regexp", r"\.path$").splitlines():
            key, path = line.split(" ", 1)
            names[path] = key[len("submodule.") : -len(".path")]
    modules = []
    for path, sha in sorted(paths.items()):
        full = f"{parent}/{path}" if parent else path
        inside = _gitlinks(checkout, full) if (checkout / full / ".git").exists() else []  # initialised here
        modules += [SubmoduleSpec(names[path], full, sha, parent), *inside]
    return modules


@pytest.fixture
def host(tmp_path: Path) -> Host:
    checkout = make_checkout(tmp_path / "deploy", 0, files=20, submodules=2, submodule_files=3)
    publish = tmp_path / "publish.git"
    git(tmp_path, "init", "--quiet", "--bare", str(publish))
    (tmp_path / "host").mkdir()
    return Host(tmp_path / "host", publish, checkout)


def test_first_deploy_links_the_slot_to_a_complete_tree(host: Host) -> None:
    """A host with nothing gets a store, a tree at the commit with submodules, and the slot as a link to it."""
    release = host.release()
    done = host.deploy(release)
    assert done.returncode == 0, done.stderr
    assert host.slot.is_symlink()
    assert host.head() == release.commit
    for module in release.submodules:
        assert git(host.slot / module.path, "rev-parse", "HEAD") == module.commit
    assert last_phase(done.stdout, Phase.CHECKOUT) is Phase.DONE


def test_incremental_deploy_leaves_the_old_tree_untouched(host: Host) -> None:
    """A second release is built beside the live tree; the old tree keeps its content (hard links not written)."""
    first = host.release()
    assert host.deploy(first).returncode == 0
    old_tree = host.slot.resolve()
    commit_change(host.checkout, "extensions/Ext1/fix.php", "<?php // new\n", "fix")
    commit_change(host.checkout, "index.php", "<?php echo 'two';\n", "two")
    second = host.release()
    done = host.deploy(second)
    assert done.returncode == 0, done.stderr
    assert host.head() == second.commit
    assert (host.slot / "index.php").read_text() == "<?php echo 'two';\n"
    assert (old_tree / "index.php").read_text() == "<?php\necho 'release 1';\n"
    assert not (old_tree / "extensions/Ext1/fix.php").exists()
    assert git(old_tree, "rev-parse", "HEAD") == first.commit
    assert git(host.slot / "extensions/Ext1", "rev-parse", "HEAD") == second.submodules[1].commit


def test_rollback_reuses_the_kept_tree_and_fetches_nothing(host: Host) -> None:
    """Going back to a kept release finds its objects present (no fetch) and just swaps the link."""
    first = host.release()
    host.deploy(first)
    first_tree = host.slot.resolve()
    commit_change(host.checkout, "index.php", "<?php echo 'two';\n")
    host.deploy(host.release())
    fetched = run_sh(fetch_command(first))
    assert ALREADY_PRESENT in fetched.stdout
    done = run_sh(switch_command(first))
    assert done.returncode == 0, done.stderr
    assert host.slot.resolve() == first_tree and host.head() == first.commit
    assert "sartoris-phase:submodules" not in done.stdout


def test_a_switch_says_when_it_found_the_slot_already_on_the_release(host: Host) -> None:
    """A switch printed the same for a host already on the release as for one it moved, so a rollback run again
    read as one that switched its hosts: it now says so, after its swap's marker, and only then (not for a first
    deploy, nor for a rollback to a kept tree)."""
    first = host.release()
    assert not found_unchanged(host.deploy(first).stdout)
    again = host.deploy(first)
    assert again.returncode == 0 and found_unchanged(again.stdout), again.stderr
    assert again.stdout.index("sartoris-phase:done") < again.stdout.index(UNCHANGED_MARK)
    # in one write with the swap's marker: a reply cut between two writes read as switched, not unchanged
    assert f"printf '%s\\n%s\\n' sartoris-phase:done {UNCHANGED_MARK}" in switch_command(first)
    commit_change(host.checkout, "index.php", "<?php echo 'two';\n")
    assert not found_unchanged(host.deploy(host.release()).stdout)
    back = host.deploy(first)
    assert back.returncode == 0 and not found_unchanged(back.stdout) and host.head() == first.commit, back.stderr


def _edit_a_file(tree: Path) -> None:
    (tree / "index.php").write_text("<?php echo 'patched on the host';\n")


def _delete_a_file(tree: Path) -> None:
    (tree / "includes" / "dir01" / "file0001.php").unlink()


def _edit_a_submodule_file(tree: Path) -> None:
    module_file = tree / "extensions" / "Ext0" / "includes" / "dir00" / "file0000.php"
    module_file.unlink()  # a new file, not a write into the one other trees may share (a hard link)
    module_file.write_text("<?php // patched on the host\n")


def _edit_a_shared_submodule_file_in_place(tree: Path) -> None:
    """A write into a file the live tree shares (the second release copied the first's tree, Ext1 unchanged)."""
    with (tree / "extensions" / "Ext1" / "includes" / "dir00" / "file0000.php").open("a") as shared:
        shared.write("// patched in place on the host\n")


def _move_a_submodule_on(tree: Path) -> None:
    git(tree / "extensions" / "Ext1", "commit", "--quiet", "--allow-empty", "--message", "made on the host")


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(_edit_a_file, id="file-edited"),
        pytest.param(_delete_a_file, id="file-deleted"),
        pytest.param(_edit_a_submodule_file, id="submodule-file-edited"),
        pytest.param(_edit_a_shared_submodule_file_in_place, id="submodule-file-shared-with-the-live-tree-edited"),
        pytest.param(_move_a_submodule_on, id="submodule-at-another-commit"),
    ],
)
def test_a_kept_tree_changed_on_the_host_is_built_again_not_reused(host: Host, change: Callable[[Path], None]) -> None:
    """A rollback reused a kept tree as it was when its HEAD was the release's commit: one whose tracked files
    (or a submodule's files or commit) were changed on the host was served as the release. Such a tree is built
    again (it is not live), from a fresh clone: a file edited in place may be the live tree's too, which a build
    from its copy would carry over in a submodule the release does not move. The host is on the release exactly."""
    first = host.release()
    assert host.deploy(first).returncode == 0
    commit_change(host.checkout, "index.php", "<?php echo 'two';\n")
    assert host.deploy(host.release()).returncode == 0
    kept = host.slot.resolve().parent / first.commit
    change(kept)
    done = host.deploy(first)
    assert done.returncode == 0, done.stderr
    said = f"the kept tree {kept} was changed on the host: built again from a fresh clone"
    assert CommandResult(0, done.stdout, done.stderr).notes() == [said]
    assert host.slot.resolve() == kept
    _assert_is_the_release(kept, first)
    assert (kept / "index.php").read_text() == "<?php\necho 'release 1';\n"


def test_a_kept_tree_with_only_untracked_files_is_reused_as_it_is(host: Host) -> None:
    """Files a tree's tracked files do not name (an app's caches, in the tree or a submodule) do not make a kept
    tree changed: a rollback reuses it as it is, caches and all, and builds nothing."""
    first = host.release()
    assert host.deploy(first).returncode == 0
    commit_change(host.checkout, "index.php", "<?php echo 'two';\n")
    assert host.deploy(host.release()).returncode == 0
    kept = host.slot.resolve().parent / first.commit
    caches = [kept / "cache" / "l10n.cdb", kept / "extensions" / "Ext0" / "cache.json"]
    for cache in caches:
        cache.parent.mkdir(exist_ok=True)
        cache.write_text("cached\n")
    inode = kept.stat().st_ino
    done = host.deploy(first)
    assert done.returncode == 0, done.stderr
    assert host.slot.resolve() == kept and kept.stat().st_ino == inode
    assert all(cache.read_text() == "cached\n" for cache in caches)
    assert "sartoris-phase:submodules" not in done.stdout


def test_a_known_tag_missing_one_submodule_commit_is_fetched_again(host: Host) -> None:
    """A retry after a fetch cut short, or a store someone pruned: the tag is there but one submodule's commit is
    not, so the host fetches (one missing commit among the release's is enough) and the switch succeeds."""
    release = host.release()
    assert run_sh(fetch_command(release)).returncode == 0
    store = host.root / ".sartoris" / "php-slot0" / "store.git"
    missing = release.submodules[1].commit
    git(store, "update-ref", "-d", submodule_ref(missing))
    git(store, "-c", "gc.reflogExpire=now", "-c", "gc.packRefs=false", "gc", "--quiet", "--prune=now")
    assert (store / "refs" / "tags" / release.tag).is_file()  # the tag as a fetch leaves it
    assert subprocess.run(["git", "--git-dir", str(store), "cat-file", "-e", missing], check=False).returncode != 0
    fetched = run_on_host(bounded(fetch_command(release), 60.0))
    assert fetched.returncode == 0 and ALREADY_PRESENT not in fetched.stdout, fetched.stderr
    assert git(store, "cat-file", "-t", missing) == "commit"
    done = run_on_host(bounded(switch_command(release), 60.0))
    assert done.returncode == 0, done.stderr
    _assert_is_the_release(host.slot.resolve(), release)


def test_a_fetch_asks_only_for_submodule_commits_the_store_has_not_fetched(host: Host) -> None:
    """Naming every pinned submodule commit in every fetch costs git about 20 ms at 150 submodules, even when the
    store has them all. A store that fetched a commit once does not ask for it again: here the publish repository
    no longer even has the unchanged submodules' refs, and the next release still fetches and switches; a
    submodule that moved on is fetched."""
    assert host.deploy(host.release()).returncode == 0
    commit_change(host.checkout, "index.php", "<?php echo 'core only';\n")
    core_only = host.release()
    for line in git(host.publish, "for-each-ref", "--format=%(refname)", SUBMODULE_REF_PREFIX).splitlines():
        git(host.publish, "update-ref", "-d", line)
    done = host.deploy(core_only)
    assert done.returncode == 0, done.stderr
    _assert_is_the_release(host.slot.resolve(), core_only)
    commit_change(host.checkout, "extensions/Ext0/new.php", "<?php // new\n")
    moved_on = host.release()  # publishes the new Ext0 commit (and Ext1's again)
    done = host.deploy(moved_on)
    assert done.returncode == 0, done.stderr
    _assert_is_the_release(host.slot.resolve(), moved_on)


def test_a_mark_that_cannot_be_written_does_not_fail_a_fetch_that_succeeded(host: Host) -> None:
    """The marks of fetched submodule commits were written with `: >`, and in dash a failed redirection of that
    special builtin ends the whole script, `2>/dev/null` or not: a fetch that succeeded failed with no end line.
    Here a folder sits where the new commit's mark goes (as a mark the disk has no room for would fail)."""
    assert run_sh(fetch_command(host.release())).returncode == 0
    commit_change(host.checkout, "extensions/Ext0/new.php", "<?php // new\n")
    moved_on = host.release()
    store = host.root / ".sartoris" / "php-slot0" / "store.git"
    (store / "sartoris-fetched" / moved_on.submodules[0].commit).mkdir()
    fetched = run_on_host(bounded(fetch_command(moved_on), 60.0))
    assert fetched.returncode == 0 and ran_to_its_end(fetched.stdout), fetched.stderr
    assert git(store, "rev-parse", f"{moved_on.tag}^{{commit}}") == moved_on.commit


def test_a_store_pruned_behind_its_marks_fails_that_host_once_then_heals(host: Host) -> None:
    """Someone deleted a submodule ref in a host's store and pruned its objects: the store's marks still say it
    fetched that commit, so the next release does not ask for it and the host's switch fails (reported, never a
    half-built tree). The failed switch drops the marks, so the retry asks for every commit and succeeds."""
    first = host.release()
    assert host.deploy(first).returncode == 0
    store = host.root / ".sartoris" / "php-slot0" / "store.git"
    pruned = first.submodules[0].commit
    git(store, "update-ref", "-d", submodule_ref(pruned))
    git(store, "-c", "gc.reflogExpire=now", "gc", "--quiet", "--prune=now")  # packs the refs too
    shutil.rmtree(host.slot.resolve())  # the trees held the objects (alternates): gone as well
    host.slot.unlink()
    commit_change(host.checkout, "index.php", "<?php echo 'after the prune';\n")
    second = host.release()
    failed = host.deploy(second)
    assert failed.returncode != 0 and not host.slot.exists()
    git(store, "pack-refs", "--all")  # as the store's housekeeping does: the tag is no loose file to test for
    retried = host.deploy(second)
    assert retried.returncode == 0, retried.stderr
    _assert_is_the_release(host.slot.resolve(), second)


def test_old_trees_are_pruned_to_keep(host: Host) -> None:
    """With keep_trees=2, only the live tree and the two newest others remain, and no switch says a tree stayed."""
    for n in range(5):
        commit_change(host.checkout, "index.php", f"<?php echo {n};\n")
        done = host.deploy(host.release())
        assert done.returncode == 0 and unpruned_trees(done.stdout) == [], done
    trees = sorted(p.name for p in (host.root / ".sartoris" / "php-slot0" / "trees").iterdir())
    assert len(trees) == 3
    assert host.slot.resolve().name in trees


def test_an_old_tree_the_prune_cannot_remove_is_named_and_the_switch_still_succeeds(host: Host) -> None:
    """A tree past keep_trees that `rm` cannot remove (here immutable: `chattr +i`, as a read-only mount would be)
    stayed with no word, the trees folder growing past keep_releases; the switch still ends on the release, exit 0,
    and names that tree on an UNPRUNED_MARK line (rm's own per-file lines are not sent)."""
    host.keep = 1
    for n in range(2):
        commit_change(host.checkout, "index.php", f"<?php echo {n};\n")
        assert host.deploy(host.release()).returncode == 0
    trees = host.root / ".sartoris" / "php-slot0" / "trees"
    oldest = min((t for t in trees.iterdir() if not host.slot.samefile(t)), key=lambda t: t.stat().st_mtime)
    if subprocess.run(["chattr", "+i", str(oldest)], capture_output=True, check=False).returncode != 0:
        pytest.skip("chattr +i is not possible here (not root, or a filesystem without it)")
    try:
        commit_change(host.checkout, "index.php", "<?php echo 2;\n")
        release = host.release()
        done = host.deploy(release)
        assert done.returncode == 0 and last_phase(done.stdout, Phase.CHECKOUT) is Phase.DONE, done
        assert host.head() == release.commit
        assert unpruned_trees(done.stdout) == [str(oldest)] and oldest.is_dir()
        assert "rm:" not in done.stderr, done.stderr
    finally:
        subprocess.run(["chattr", "-i", str(oldest)], check=True)


def _refuse_every_checkout(host: Host, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Every checkout in the host's trees fails from now on, saying "post-checkout: refused", however a switch began
    its tree (a copy, a recycled tree, a fresh clone): a hook named by the deploy account's git config, for the
    trees folder alone. Unlink the returned hook to let checkouts through again."""
    hook = tmp_path / "refusing-hooks" / "post-checkout"
    hook.parent.mkdir()
    hook.write_text("#!/bin/sh\necho 'post-checkout: refused' >&2\nexit 1\n")
    hook.chmod(0o755)
    home = tmp_path / "home-refusing-checkouts"
    home.mkdir()
    (home / "hooks.gitconfig").write_text(f'[core]\n\thooksPath = "{hook.parent}"\n')
    trees = host.root / ".sartoris" / "php-slot0" / "trees"
    (home / ".gitconfig").write_text(f'[includeIf "gitdir:{trees}/"]\n\tpath = hooks.gitconfig\n')
    monkeypatch.setenv("HOME", str(home))
    return hook


def test_a_failed_switch_leaves_the_live_tree_and_link_alone(
    host: Host, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A checkout that fails (the host refuses every checkout in its trees) reports the checkout phase and the
    checkout's own error; the slot still shows the old release."""
    first = host.release()
    host.deploy(first)
    _refuse_every_checkout(host, monkeypatch, tmp_path)
    commit_change(host.checkout, "index.php", "<?php echo 'two';\n")
    done = host.deploy(host.release())
    assert done.returncode != 0
    assert "post-checkout: refused" in done.stderr
    assert last_phase(done.stdout, Phase.CHECKOUT) is Phase.CHECKOUT
    assert host.head() == first.commit


def test_a_build_that_fails_is_removed_before_the_switch_exits(
    host: Host, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A switch whose build failed (here the host refuses every checkout) left its tree half built
    (`<commit>.building`) until the slot's next switch, so a build that filled the disk kept it full until the
    next deploy. It is removed before the switch exits, which it does with the failed step's status and error."""
    first = host.release()
    assert host.deploy(first).returncode == 0
    _refuse_every_checkout(host, monkeypatch, tmp_path)
    commit_change(host.checkout, "index.php", "<?php echo 'two';\n")
    done = host.deploy(host.release())
    assert done.returncode == 1 and "post-checkout: refused" in done.stderr, done.stderr
    assert last_phase(done.stdout, Phase.FETCH) is Phase.CHECKOUT
    assert sorted(p.name for p in (host.root / ".sartoris" / "php-slot0" / "trees").iterdir()) == [first.commit]
    assert host.head() == first.commit


def test_a_host_whose_copy_and_fresh_clone_both_fail_says_the_copy_failed_first(
    host: Host, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The live tree's `.git` is broken, so the build from its copy fails, and the build from a fresh clone then
    fails too (the host refuses every checkout): the host's error was the fresh clone's alone, that the copy had
    failed first (often the real cause) only in --log-file. Its error line now says both, the fresh clone's first."""
    assert host.deploy(host.release()).returncode == 0
    _garbage_index(host.slot.resolve() / ".git")
    _refuse_every_checkout(host, monkeypatch, tmp_path)
    commit_change(host.checkout, "index.php", "<?php echo 'two';\n")
    done = host.deploy(host.release())
    assert done.returncode == 1, done
    assert CommandResult(done.returncode, done.stdout, done.stderr).error_line() == (
        "post-checkout: refused; before that: the release did not build from a copy of the live tree: built from a"
        " fresh clone"
    )


def test_builds_failed_switches_left_are_removed_by_the_next_switch(host: Host) -> None:
    """A tree a failed switch left half built (`<commit>.building`, of another release or of this one) is removed
    by the slot's next switch, which succeeds: left there, one that filled the disk failed every later release."""
    first = host.release()
    assert host.deploy(first).returncode == 0
    trees = host.root / ".sartoris" / "php-slot0" / "trees"
    commit_change(host.checkout, "index.php", "<?php echo 'two';\n")
    second = host.release()
    leftovers = [trees / f"{'e' * 40}.building", trees / f"{second.commit}.building"]
    for leftover in leftovers:
        (leftover / "big").mkdir(parents=True)
        (leftover / "big" / "file.bin").write_bytes(b"\0" * 65536)
    done = host.deploy(second)
    assert done.returncode == 0, done.stderr
    assert host.head() == second.commit
    assert sorted(p.name for p in trees.iterdir()) == sorted([first.commit, second.commit])


def test_a_switch_to_the_live_release_still_removes_builds_failed_switches_left(host: Host) -> None:
    """A switch that finds the host already on the release (a retry) removes what failed switches left too."""
    release = host.release()
    assert host.deploy(release).returncode == 0
    leftover = host.root / ".sartoris" / "php-slot0" / "trees" / f"{'e' * 40}.building"
    leftover.mkdir()
    (leftover / "file.bin").write_bytes(b"\0" * 65536)
    done = run_on_host(bounded(switch_command(release), 60.0))
    assert done.returncode == 0, done.stderr
    assert not leftover.exists() and host.head() == release.commit


def _start_switch(release: RemoteRelease, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """A switch running in the background, as a host runs it (its line, the script on stdin)."""
    command = bounded(switch_command(release), 120.0)
    with tempfile.TemporaryFile("w+") as script:
        script.write(command.script)
        script.seek(0)
        return subprocess.Popen(
            ["sh", "-c", command.command], stdin=script, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env,
        )


def _fetched_second_release(host: Host) -> tuple[RemoteRelease, RemoteRelease]:
    """A first release deployed, and a one-file second one fetched but not switched to."""
    first = host.release()
    assert host.deploy(first).returncode == 0
    commit_change(host.checkout, "index.php", "<?php echo 'two';\n")
    second = host.release()
    assert run_on_host(bounded(fetch_command(second), 120.0)).returncode == 0
    return first, second


@pytest.mark.skipif(shutil.which("flock") is None, reason="util-linux flock is not installed")
def test_a_second_switch_of_the_slot_waits_for_the_one_running(host: Host) -> None:
    """Two switches of one slot at once (two deploy hosts, a host listed under two names) raced: one run's rm -rf
    of a tree could empty the tree the other was about to link live. The second now waits, says so, and switches
    once the first has ended."""
    first, second = _fetched_second_release(host)
    lock_file = host.root / ".sartoris" / "php-slot0" / "switch.lock"
    with lock_file.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # a switch running on the host
        process = _start_switch(second)
        assert process.stderr is not None
        ready, _, _ = select.select([process.stderr], [], [], 60)
        assert ready, "the second switch neither waited nor said so"
        assert "another run is switching" in process.stderr.readline()
        time.sleep(1.5)  # some 30 times what this switch takes unhindered
        assert process.poll() is None and host.head() == first.commit  # still waiting, the slot untouched
    stdout, stderr = process.communicate(timeout=60)
    assert ran_to_its_end(stdout), stderr
    assert process.returncode == 0, stderr
    assert host.head() == second.commit
    _assert_is_the_release(host.slot.resolve(), second)


def test_a_host_without_flock_switches_unlocked(host: Host, tmp_path: Path) -> None:
    """flock is util-linux's; a host without it switches as before rather than failing every deploy."""
    _, second = _fetched_second_release(host)
    no_flock = tmp_path / "bin-without-flock"
    no_flock.mkdir()
    for directory in ("/usr/local/bin", "/usr/bin", "/bin"):
        for program in Path(directory).iterdir() if Path(directory).is_dir() else ():
            target = no_flock / program.name
            if program.name != "flock" and not target.exists():
                target.symlink_to(program)
    env = {**os.environ, "PATH": str(no_flock)}
    assert subprocess.run(["sh", "-c", "command -v flock"], env=env, check=False).returncode != 0
    lock_file = host.root / ".sartoris" / "php-slot0" / "switch.lock"
    with lock_file.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # not seen without flock: the switch goes ahead
        process = _start_switch(second, env)
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0 and ran_to_its_end(stdout), stderr
    assert host.head() == second.commit


@pytest.mark.skipif(shutil.which("flock") is None, reason="util-linux flock is not installed")
def test_the_switch_holds_the_lock_to_its_end_and_no_process_it_leaves_keeps_it(host: Host, tmp_path: Path) -> None:
    """A post-checkout hook in the live tree (copied into the build, so it runs there) sees the lock held mid-switch
    and leaves a process running, detached from the output: the lock is free once the switch has ended all the
    same (that process inherited no descriptor of it), or every later switch of the slot would wait for it."""
    first = host.release()
    assert host.deploy(first).returncode == 0
    lock_file = host.root / ".sartoris" / "php-slot0" / "switch.lock"
    seen, pid_file = tmp_path / "lock-seen-by-hook", tmp_path / "left-running.pid"
    hook = host.slot / ".git" / "hooks" / "post-checkout"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text(
        "#!/bin/sh\n"
        f"if flock -n {lock_file} true; then echo free; else echo held; fi > {seen}\n"
        f"sleep 60 </dev/null >/dev/null 2>&1 & echo $! > {pid_file}\n"
    )
    hook.chmod(0o755)
    commit_change(host.checkout, "index.php", "<?php echo 'two';\n")
    second = host.release()
    try:
        done = host.deploy(second)
        assert done.returncode == 0, done.stderr
        assert host.head() == second.commit
        assert seen.read_text().strip() == "held"
        with lock_file.open("a") as probe:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises BlockingIOError while anything holds it
    finally:
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGTERM)


def test_two_first_fetches_at_once_into_a_new_store_both_succeed(host: Host, tmp_path: Path) -> None:
    """A host listed under two names (or two deploy hosts) fetches twice at once; on a host with no store yet both
    ran `git init` on it and one failed ("cannot mkdir … File exists", or a half-written config) in most rounds.
    The store is now made under a name of its own and renamed into place."""
    release = host.release()
    for attempt in range(10):
        root = tmp_path / f"fresh-{attempt}"
        root.mkdir()
        fresh = RemoteRelease(
            str(root / "php-slot0"), release.fetch_url, release.tag, release.commit, release.submodules
        )
        command = bounded(fetch_command(fresh), 60.0)
        both = [
            subprocess.Popen(
                ["sh", "-c", command.command], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        for process in both:  # started first, then given the script together: both test for the store at once
            assert process.stdin is not None
            process.stdin.write(command.script)
        for process in both:
            assert process.stdin is not None
            process.stdin.close()
        for process in both:
            assert process.stdout is not None and process.stderr is not None
            stdout, stderr = process.stdout.read(), process.stderr.read()
            assert process.wait(timeout=60) == 0 and ran_to_its_end(stdout), f"round {attempt}: {stderr}"
        store = root / ".sartoris" / "php-slot0"
        assert sorted(p.name for p in store.iterdir()) == ["store.git"]  # no half-made store left beside it
        assert git(store / "store.git", "rev-parse", f"{release.tag}^{{commit}}") == release.commit


def _fetch_on_a_full_disk(
    command: HostCommand, blocks: int, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A fetch as a host runs it, with room for `blocks` 512-byte blocks a file: the shell's file size limit, its
    signal ignored, fails git's writes past it (EFBIG) as a full disk fails them (ENOSPC)."""
    return subprocess.run(
        ["sh", "-c", f"trap '' XFSZ; ulimit -f {blocks}; {command.command}"], input=command.script,
        capture_output=True, text=True, timeout=120, check=False, env=env,
    )


def _partial_files(state: Path) -> list[str]:
    """What failed fetches left under a slot's state folder on a host: git's partial objects and packs, and stores
    made aside (`store.git.init-<pid>`)."""
    found = (p for p in state.rglob("*") if p.name.startswith("tmp_") or ".init-" in p.name)
    return sorted(str(p.relative_to(state)) for p in found)


def _big_release(host: Host) -> RemoteRelease:
    """A release adding a 1 MB file (incompressible) that needs no other object the store lacks."""
    commit_change(host.checkout, "big.txt", os.urandom(512 * 1024).hex())
    return host.release()


@pytest.mark.parametrize("writer", ["init", "loose", "pack"])
def test_a_fetch_that_fails_on_a_full_disk_leaves_none_of_its_partial_files(host: Host, writer: str) -> None:
    """A fetch that failed on a full disk left what it had written on the host: a store it was making aside (a
    first deploy), a partial pack or loose object (git keeps those two weeks), one more each retry, so the disk
    stayed full after the operator freed what they could. The failed fetch now removes them; the retry on a disk
    with room fetches and switches."""
    state = host.root / ".sartoris" / "php-slot0"
    if writer == "init":
        release = host.release()
    else:
        assert host.deploy(host.release()).returncode == 0
        if writer == "pack":  # git indexes a pack of even one object, instead of writing loose objects
            git(state / "store.git", "config", "fetch.unpackLimit", "1")
        release = _big_release(host)
    command = bounded(fetch_command(release), 60.0)
    for _ in range(2):  # and a retry on the same full disk
        failed = _fetch_on_a_full_disk(command, 0 if writer == "init" else 256)
        assert failed.returncode != 0 and "File too large" in failed.stderr, failed.stderr
        assert _partial_files(state) == []
    done = host.deploy(release)
    assert done.returncode == 0, done.stderr
    _assert_is_the_release(host.slot.resolve(), release)


def test_a_failed_fetch_leaves_the_partial_pack_of_a_fetch_running_meanwhile_to_it(host: Host, tmp_path: Path) -> None:
    """Two deploy hosts may fetch one slot on a host at once, unserialised. A fetch that fails must not remove the
    partial pack the other is writing (that one would fail too): it leaves the store's partial files alone while
    another fetch holds the store; the last fetch to end, even one that succeeds, removes what is left."""
    assert host.deploy(host.release()).returncode == 0
    store = host.root / ".sartoris" / "php-slot0" / "store.git"
    git(store, "config", "fetch.unpackLimit", "1")
    release = _big_release(host)
    # the other fetch's pack comes 64 KiB at first, the rest once `go` exists
    go = tmp_path / "go"
    hook = tmp_path / "held-pack"
    rest = f"while [ ! -e {go} ]; do sleep 0.05; done; cat"
    hook.write_text(f'#!/bin/sh\n"$@" | {{ dd bs=4096 count=16 iflag=fullblock 2>/dev/null; {rest}; }}\n')
    hook.chmod(0o755)
    (tmp_path / "gitconfig").write_text(f"[uploadpack]\n\tpackObjectsHook = {hook}\n")
    command = bounded(fetch_command(release), 60.0)
    (tmp_path / "script").write_text(command.script)
    with (tmp_path / "script").open() as script:
        other = subprocess.Popen(
            ["sh", "-c", command.command], stdin=script, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "GIT_CONFIG_GLOBAL": str(tmp_path / "gitconfig")},
        )
    try:
        pack = store / "objects" / "pack"
        deadline = time.monotonic() + 30
        while not [p for p in pack.glob("tmp_pack_*") if p.stat().st_size > 0] and time.monotonic() < deadline:
            time.sleep(0.02)
        theirs = set(pack.glob("tmp_pack_*"))
        assert theirs, "the other fetch never began its pack"
        failed = _fetch_on_a_full_disk(command, 64)
        assert failed.returncode != 0 and "File too large" in failed.stderr, failed.stderr
        assert theirs <= set(pack.glob("tmp_pack_*"))  # still there, and this fetch's own beside them
        go.touch()
        stdout, stderr = other.communicate(timeout=60)
    finally:
        go.touch()
        other.kill()
    assert other.returncode == 0 and ran_to_its_end(stdout), stderr
    assert _partial_files(store.parent) == []
    assert git(store, "rev-parse", f"{release.tag}^{{commit}}") == release.commit


def _killed_once_waiting(
    command: HostCommand, waiting: Path | Callable[[], bool], env: dict[str, str] | None = None
) -> None:
    """Run `command` as a host does until `waiting` exists (made by a stand-in that then waits) or says so, then KILL
    the host's `timeout` and everything under it, as the KILL after the host's deadline or the out-of-memory killer
    does."""
    ready = waiting.exists if isinstance(waiting, Path) else waiting
    run = subprocess.Popen(
        ["sh", "-c", command.command], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        text=True, env=env,
    )
    try:
        assert run.stdin is not None
        run.stdin.write(command.script)
        run.stdin.close()
        deadline = time.monotonic() + 30
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ready(), "the script never came to the point it was to be killed at"
        timeout = int(subprocess.run(["pgrep", "-P", str(run.pid)], capture_output=True, text=True).stdout)
        os.killpg(timeout, signal.SIGKILL)  # `timeout` leads a process group of its own: all the script runs
    finally:
        run.kill()
        run.wait(timeout=30)


def _killed_holding_a_ref_lock(release: RemoteRelease, ref: str, tmp_path: Path) -> list[str]:
    """Fetch `release` until its git holds the lock of `ref` (git updates each ref in a transaction of its own; a
    reference-transaction hook of the store waits at that one's), then KILL it (on a TERM git removes its locks
    itself); the lock files it left in the store."""
    store, waiting = Path(release.store), tmp_path / "waiting"
    hook = store / "hooks" / "reference-transaction"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text(
        f'#!/bin/sh\nupdates=$(cat)\ncase "$1 $updates" in "prepared "*" {ref}"*) touch {waiting}; sleep 60;; esac\n'
    )
    hook.chmod(0o755)
    _killed_once_waiting(bounded(fetch_command(release), 60.0), waiting)
    hook.unlink()
    return sorted(str(lock.relative_to(store)) for lock in store.rglob("*.lock"))


@pytest.mark.parametrize("at", ["tag", "submodule-ref"])
def test_a_fetch_killed_while_it_updated_a_ref_does_not_fail_every_later_one(
    host: Host, tmp_path: Path, at: str
) -> None:
    """A fetch killed while git held the lock of a ref it was updating left the lock in the store, and every later
    fetch of that ref on that host failed ("cannot lock ref … File exists"): each retry of the release for the
    tag's, each release pinning that submodule commit for its ref's. A fetch now removes such locks before its own,
    when no other fetch holds the store; it fetches, and the host switches."""
    assert host.deploy(host.release()).returncode == 0
    commit_change(host.checkout, "extensions/Ext0/new.php", "<?php // two\n")
    release = host.release()
    ref = f"refs/tags/{release.tag}" if at == "tag" else submodule_ref(release.submodules[0].commit)
    assert _killed_holding_a_ref_lock(release, ref, tmp_path) == [f"{ref}.lock"]
    done = host.deploy(release)
    assert done.returncode == 0, done.stderr
    _assert_is_the_release(host.slot.resolve(), release)
    commit_change(host.checkout, "index.php", "<?php echo 'three';\n")  # the same submodule commits
    after = host.release()
    done = host.deploy(after)
    assert done.returncode == 0, done.stderr
    _assert_is_the_release(host.slot.resolve(), after)
    assert list(Path(release.store).rglob("*.lock")) == []


def test_the_lock_files_of_a_store_another_fetch_holds_are_left_to_it(host: Host) -> None:
    """A lock file in the store may be another fetch's, running (from another deploy host): with the store held open
    by another process, a fetch removes none, and fails on the tag's as git would; once nobody holds it, the next
    fetch removes them all (the refs', the packed refs', the shallow file's, the config's) and succeeds."""
    assert host.deploy(host.release()).returncode == 0
    commit_change(host.checkout, "index.php", "<?php echo 'two';\n")
    release = host.release()
    store = Path(release.store)
    locks = [store / "refs" / "tags" / f"{release.tag}.lock"]
    locks += [store / name for name in ("packed-refs.lock", "shallow.lock", "config.lock")]
    for lock in locks:
        lock.write_text("")
    other = os.open(store, os.O_RDONLY)  # as another fetch's shell holds it (see remote._HELD_FD)
    try:
        held = run_on_host(bounded(fetch_command(release), 60.0))
    finally:
        os.close(other)
    assert held.returncode != 0 and "cannot lock ref" in held.stderr, held.stderr
    assert all(lock.exists() for lock in locks)
    done = host.deploy(release)
    assert done.returncode == 0, done.stderr
    assert [lock for lock in locks if lock.exists()] == []


def test_the_store_a_first_fetch_killed_in_its_init_made_aside_is_removed(host: Host, tmp_path: Path) -> None:
    """A first fetch killed during its `git init` left the store it was making aside (`store.git.init-<pid>`) for
    good. A fetch now removes those whose shell is gone from /proc, and leaves one a running shell is making."""
    release = host.release()
    waiting, real = tmp_path / "waiting", shutil.which("git")
    bin_dir = _stand_in(
        tmp_path / "bin", "git", f'if [ "$1" = init ]; then {real} "$@" && touch {waiting} && sleep 60; exit; fi\n'
        f'exec {real} "$@"\n'
    )
    _killed_once_waiting(
        bounded(fetch_command(release), 60.0), waiting, {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    )
    [killed] = Path(release.store).parent.glob("store.git.init-*")
    shell = Path("/proc", killed.name.rpartition("-")[2])  # gone once the killed shell is reaped
    deadline = time.monotonic() + 30
    while shell.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not shell.exists(), (shell / "status").read_text()
    running = Path(f"{release.store}.init-{os.getpid()}")  # a first fetch making it now
    git(host.root, "init", "--quiet", "--bare", str(running))
    done = host.deploy(release)
    assert done.returncode == 0, done.stderr
    assert not killed.exists() and running.is_dir()


def _partial_objects(store: Path) -> list[Path]:
    """The partial loose objects in a store: git's `objects/??/tmp_obj_*`, and `objects/tmp_obj_*` of one it streams
    (over core.bigFileThreshold)."""
    return sorted([*store.glob("objects/??/tmp_obj_*"), *store.glob("objects/tmp_obj_*")])


def _killed_writing_a_big_object(release: RemoteRelease, tmp_path: Path) -> None:
    """Fetch `release` (a 1 MB file: see _big_release) until git has written part of it into a partial loose object
    (git streams an object over core.bigFileThreshold into one as it comes, here past 64 KiB; the publish repository
    sends 256 KiB, then waits), then KILL the fetch, as its deadline's KILL does, its failure handler never run."""
    store = Path(release.store)
    hook = tmp_path / "slow-pack"
    hook.write_text('#!/bin/sh\n"$@" | { dd bs=4096 count=64 iflag=fullblock 2>/dev/null; sleep 60; cat; }\n')
    hook.chmod(0o755)
    config = tmp_path / "gitconfig"
    config.write_text(f"[uploadpack]\n\tpackObjectsHook = {hook}\n[core]\n\tbigFileThreshold = 64k\n")
    env = {**os.environ, "GIT_CONFIG_GLOBAL": str(config)}

    def partly_written() -> bool:
        return any(p.stat().st_size > 0 for p in store.glob("objects/tmp_obj_*"))

    _killed_once_waiting(bounded(fetch_command(release), 60.0), partly_written, env)


def test_the_partial_objects_a_fetch_killed_on_the_host_left_are_removed_by_the_next_one(
    host: Host, tmp_path: Path
) -> None:
    """A fetch killed at its host deadline (the KILL takes its whole script: its failure handler never runs) left its
    partial loose objects, tens of MB for a big file, and the next fetch, succeeding, removed only partial packs: 28
    hosts kept 650 MB after a retry. The killed fetch's mark in the store now tells the next fetch to remove them
    (here the one git was streaming, and one in an object folder, as a smaller object leaves), and that one empties
    the mark."""
    assert host.deploy(host.release()).returncode == 0
    release = _big_release(host)
    store = Path(release.store)
    (store / "objects" / "5e").mkdir(exist_ok=True)
    (store / "objects" / "5e" / "tmp_obj_AbC123").write_bytes(b"x" * 4096)
    _killed_writing_a_big_object(release, tmp_path)
    left = _partial_objects(store)
    assert [p.parent.name for p in left] == ["5e", "objects"], left
    done = host.deploy(release)
    assert done.returncode == 0, done.stderr
    assert _partial_objects(store) == []
    assert (store / "sartoris-fetching").read_text() == ""
    _assert_is_the_release(host.slot.resolve(), release)


def test_partial_objects_in_a_store_fetched_before_the_fetch_mark_are_removed_once(host: Host) -> None:
    """A store whose fetches were killed before Sartoris marked them has no mark: its first fetch looks for their
    partial loose objects and removes them, then keeps the mark, empty once it succeeded."""
    assert host.deploy(host.release()).returncode == 0
    store = Path(host.release().store)
    (store / "sartoris-fetching").unlink()
    (store / "objects" / "tmp_obj_Xy9876").write_bytes(b"x" * 4096)
    commit_change(host.checkout, "index.php", "<?php echo 'two';\n")
    done = host.deploy(host.release())
    assert done.returncode == 0, done.stderr
    assert _partial_objects(store) == [] and (store / "sartoris-fetching").read_text() == ""


def test_a_killed_fetchs_partial_objects_are_left_while_another_fetch_holds_the_store_then_removed(host: Host) -> None:
    """The partial objects a killed fetch left may be another running fetch's, being written: a fetch that finds the
    mark full while another holds the store open removes none, and leaves the mark full (as do the fetches meanwhile);
    the next fetch alone with the store removes them, also one that fetches nothing (the release already there)."""
    assert host.deploy(host.release()).returncode == 0
    commit_change(host.checkout, "index.php", "<?php echo 'two';\n")
    release = host.release()
    store = Path(release.store)
    (store / "sartoris-fetching").write_text("999999999\n")  # a fetch's, killed: no such process
    partial = store / "objects" / "5e" / "tmp_obj_AbC123"
    partial.parent.mkdir(exist_ok=True)
    partial.write_bytes(b"x" * 4096)
    other = os.open(store, os.O_RDONLY)  # as another fetch's shell holds it (see remote._HELD_FD)
    try:
        held = run_on_host(bounded(fetch_command(release), 60.0))
    finally:
        os.close(other)
    assert held.returncode == 0 and ran_to_its_end(held.stdout), held.stderr
    assert partial.exists() and (store / "sartoris-fetching").read_text().strip()
    again = run_on_host(bounded(fetch_command(release), 60.0))
    assert again.returncode == 0 and ALREADY_PRESENT in again.stdout, again.stderr
    assert not partial.exists() and (store / "sartoris-fetching").read_text() == ""


def test_a_fetch_that_marked_the_store_while_another_ran_leaves_the_mark_full(tmp_path: Path) -> None:
    """Two fetches of a slot may run on a host at once (two deploy hosts). One that found the mark empty at its start
    and full as it marked it (the other marked it meanwhile) emptied it at its end: had the other been killed after,
    its partial objects were left for good. It now leaves the mark full, for the next fetch to look."""
    store = tmp_path / "store.git"
    store.mkdir()
    mark = store / "sartoris-fetching"
    mark.write_text("")
    looked = tmp_path / "looked"
    script = [
        _alone_with_the_store(str(store)),
        f"sartoris_drop_partial() {{ touch {looked}; }}",
        *_fetch_mark(str(store)),
        f"echo 4242 > {mark}",  # the other fetch marks the store, after this one read the mark
        "sartoris_mark; sartoris_unmark",
    ]
    done = run_sh("\n".join(script))
    assert done.returncode == 0, done.stderr
    assert not looked.exists() and mark.read_text().strip().isdigit()
    alone = run_sh("\n".join([*script[:-2], "sartoris_mark; sartoris_unmark"]))  # the fetch after: it looks
    assert alone.returncode == 0 and looked.exists() and mark.read_text() == "", alone.stderr


def test_a_fetch_leaves_the_mark_of_a_fetch_still_running_and_marks_a_store_that_had_none(tmp_path: Path) -> None:
    """A fetch that found no partial file emptied the mark at its start whatever it held, also the pid of another
    fetch of the slot still running (from another deploy host), whose files, should it be killed, were then left for
    good (review). A full mark found while another fetch holds the store is now left whole, and no file is looked at.
    A store with no mark (made before Sartoris kept one) gets an empty one once looked at, so that its next fetches
    do not look again."""
    store = tmp_path / "store.git"
    store.mkdir()
    mark = store / "sartoris-fetching"
    looked = tmp_path / "looked"
    drop = f"sartoris_drop_partial() {{ touch {looked}; }}"
    script = "\n".join([_alone_with_the_store(str(store)), drop, *_fetch_mark(str(store))])
    mark.write_text("4242\n")  # as another fetch's shell marked it, and holds the store while it runs
    other = os.open(store, os.O_RDONLY)
    try:
        assert run_sh(script).returncode == 0
    finally:
        os.close(other)
    assert not looked.exists() and mark.read_text() == "4242\n"
    assert run_sh(script).returncode == 0 and looked.exists() and mark.read_text() == ""  # alone: it looks
    looked.unlink()
    mark.unlink()
    assert run_sh(script).returncode == 0
    assert looked.exists() and mark.exists() and mark.read_text() == ""


# what a fetch's shell might start to look at, remove, or mark files (each a builtin of dash where one exists)
_PROGRAMS_A_FETCH_NEEDS_NOT = (
    "rm", "mv", "cp", "ln", "mkdir", "touch", "truncate", "cat", "ls", "find", "stat", "readlink", "flock", "echo",
    "printf", "true", "test", "[",
)


def test_a_fetch_with_nothing_left_over_runs_no_removal(host: Host, tmp_path: Path) -> None:
    """The looks for what failed and killed fetches leave (partial files, lock files, stores made aside) are shell
    tests and globs, and the fetch mark is read and written with builtins: a fetch with nothing to remove starts no
    `rm`, nor any other program for them (the fetch runs on every host of every deploy)."""
    assert host.deploy(host.release()).returncode == 0
    calls = tmp_path / "calls"
    for program in _PROGRAMS_A_FETCH_NEEDS_NOT:
        real = shutil.which(program)
        assert real is not None, program
        bin_dir = _stand_in(tmp_path / "bin", program, f'printf "%s\\n" "$0 $*" >> {calls}\nexec {real} "$@"\n')
    commit_change(host.checkout, "extensions/Ext0/new.php", "<?php // two\n")
    command = bounded(fetch_command(host.release()), 60.0)
    path = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    for _ in range(2):  # a new release, then one already present
        done = subprocess.run(
            ["sh", "-c", command.command], input=command.script, capture_output=True, text=True, timeout=60,
            check=False, env=path,
        )
        assert done.returncode == 0 and ran_to_its_end(done.stdout), done.stderr
    assert not calls.exists(), calls.read_text()


_STORE = "/srv/app/.sartoris/php-slot0/store.git"


@pytest.mark.parametrize(
    ("stderr", "damaged"),
    [
        pytest.param("fatal: unresolved deltas left after unpacking\nfatal: index-pack failed\n", True, id="pack-gone"),
        pytest.param(
            f"error: object file {_STORE}/objects/10/979c3f is empty\nfatal: loose object 10979c3f (stored in"
            f" {_STORE}/objects/10/979c3f) is corrupt\n", True, id="loose-object-emptied",
        ),
        pytest.param(
            "fatal: bad object refs/sartoris/submodules/5ee19ef9\nerror: /srv/git/php-slot0.git did not send all"
            " necessary objects\n", True, id="pack-gone-under-a-ref",
        ),
        pytest.param(f"fatal: not a git repository: '{_STORE}'\n", True, id="store-folder-emptied"),
        pytest.param("remote: fatal: bad object 5ee19ef9\n", False, id="publish-repo-lacks-an-object"),
        pytest.param(
            "error: object file /srv/git/php-slot0.git/objects/10/979c3f is empty\n", False, id="publish-repo-damaged"
        ),
        pytest.param("fatal: not a git repository: '/srv/git/php-slot0.git'\n", False, id="publish-repo-missing"),
        pytest.param("fatal: write error: No space left on device\n", False, id="full-disk"),
        pytest.param("fatal: the remote end hung up unexpectedly\n", False, id="network"),
    ],
)
def test_a_failed_fetch_says_how_to_mend_the_store_only_when_gits_words_show_it_damaged(
    stderr: str, damaged: bool
) -> None:
    """A store missing objects fails every later fetch on its host with git's words and nothing said how to mend it.
    Git's words that show the slot's store itself damaged get the remedy, naming the store; others none (the
    publish repository's damage, served over a local path, is reported by the same git, naming its own path)."""
    release = RemoteRelease("/srv/app/php-slot0", "/srv/git/php-slot0.git", "t1", "a" * 40)
    remedy = damaged_store_remedy(stderr, release)
    assert (remedy is not None) is damaged
    if remedy is not None:
        assert remedy.startswith("(the slot's object store on the host is damaged: remove ") and _STORE in remedy


def _objects_emptied(store: Path) -> None:
    for loose in store.glob("objects/??/*"):
        loose.write_bytes(b"")


def _packs_deleted(store: Path) -> None:
    git(store, "repack", "-a", "-d", "--quiet")
    for pack in store.glob("objects/pack/pack-*"):
        pack.unlink()


def _folder_emptied(store: Path) -> None:
    shutil.rmtree(store)
    store.mkdir()


def _head_garbled(store: Path) -> None:
    (store / "HEAD").write_text("this is not a ref\n")


@pytest.mark.parametrize("damage", [_objects_emptied, _packs_deleted, _folder_emptied, _head_garbled])
def test_the_remedy_a_damaged_store_is_given_mends_the_host(host: Host, damage: Callable[[Path], None]) -> None:
    """A host whose store was damaged fails the next fetch, with the remedy; done as said (the store removed, every
    tree of the slot sharing its objects, the live one too), the next release fetches and switches, status calls the
    host current, and a rollback to the release before builds its tree again."""
    first = host.release()
    assert host.deploy(first).returncode == 0
    store = host.root / ".sartoris" / "php-slot0" / "store.git"
    damage(store)
    commit_change(host.checkout, "index.php", "<?php echo 'after the damage';\n")
    second = host.release()
    failed = run_on_host(bounded(fetch_command(second), 60.0))
    assert failed.returncode != 0
    remedy = damaged_store_remedy(failed.stderr, second)
    assert remedy is not None and f"remove {store} there" in remedy, failed.stderr
    shutil.rmtree(store)
    done = host.deploy(second)
    assert done.returncode == 0, done.stderr
    _assert_is_the_release(host.slot.resolve(), second)
    assert census_answer(run_sh(status_command(str(host.slot), second.commit, 60.0)), second.commit).state is (
        HostState.CURRENT
    )
    back = host.deploy(first)
    assert back.returncode == 0, back.stderr
    _assert_is_the_release(host.slot.resolve(), first)


@pytest.mark.parametrize(
    ("stderr", "at_the_switch"),
    [
        pytest.param(
            "error: unable to read sha1 file of dir9/new.php (8d002d9630c9003140443642530d0816686541c9)\n"
            "error: invalid object 100644 8d002d9630c9003140443642530d0816686541c9 for 'dir9/new.php'\n",
            True, id="file-gone",
        ),
        pytest.param("fatal: unable to read tree 56a5d2402c54bb3807103200ac1e759a02b6c57e\n", True, id="tree-gone"),
        pytest.param(
            "fatal: unable to read tree 56a5d2402c54bb3807103200ac1e759a02b6c57e\n", False, id="at-the-fetch",
        ),
        pytest.param(
            f"error: object file {_STORE}/objects/8d/002d9630c9003140443642530d0816686541c9 is empty\n"
            f"fatal: loose object 8d002d9630c9003140443642530d0816686541c9 (stored in"
            f" {_STORE}/objects/8d/002d9630c9003140443642530d0816686541c9) is corrupt\n",
            True, id="file-emptied",
        ),
    ],
)
def test_git_s_words_for_an_object_it_lacks_show_the_store_damaged_at_the_switch_only(
    stderr: str, at_the_switch: bool
) -> None:
    """At the switch, every object git reads is the store's (the build's clones share its objects), so its words
    for an object it lacks (real git 2.39 lines from a host whose store lost a file's or a folder's object) show the
    store damaged. At the fetch they may be the publish repository's, whose git writes to the same stderr."""
    release = RemoteRelease("/srv/app/php-slot0", "/srv/git/php-slot0.git", "t1", "a" * 40)
    remedy = damaged_store_remedy(stderr, release, switch=at_the_switch)
    assert remedy is not None and _STORE in remedy if at_the_switch else remedy is None


def _loose_object(store: Path, checkout: Path, name: str) -> Path:
    """The store's loose object of `name` (`HEAD:<path>`) in the deploy host's checkout."""
    sha = git(checkout, "rev-parse", name)
    return store / "objects" / sha[:2] / sha[2:]


def _file_object_deleted(store: Path, checkout: Path) -> None:
    _loose_object(store, checkout, "HEAD:dir9/new.php").unlink()


def _folder_object_deleted(store: Path, checkout: Path) -> None:
    _loose_object(store, checkout, "HEAD:dir9").unlink()


def _file_object_emptied(store: Path, checkout: Path) -> None:
    blob = _loose_object(store, checkout, "HEAD:dir9/new.php")
    blob.chmod(0o644)
    blob.write_bytes(b"")


@pytest.mark.parametrize("damage", [_file_object_deleted, _folder_object_deleted, _file_object_emptied])
def test_a_switch_that_fails_on_a_damaged_store_is_given_the_remedy_and_that_mends_the_host(
    host: Host, damage: Callable[[Path, Path], None]
) -> None:
    """A store that lost an object of the release after its fetch (here just after; a rollback or a retry finds
    every commit there and fetches nothing) fails the switch, on the host's every later try: its error now says how
    to mend the store, as a fetch's does, and done as said, the release fetches and switches."""
    assert host.deploy(host.release()).returncode == 0
    commit_change(host.checkout, "dir9/new.php", "<?php echo 'new';\n")
    release = host.release()
    assert run_on_host(bounded(fetch_command(release), 60.0)).returncode == 0
    store = Path(release.store)
    damage(store, host.checkout)
    failed = run_on_host(bounded(switch_command(release), 60.0))
    assert failed.returncode != 0
    remedy = damaged_store_remedy(failed.stderr, release, switch=True)
    assert remedy is not None and f"remove {store} there" in remedy, failed.stderr
    shutil.rmtree(store)
    done = host.deploy(release)
    assert done.returncode == 0, done.stderr
    _assert_is_the_release(host.slot.resolve(), release)


def test_a_stale_index_lock_in_the_live_tree_does_not_block_every_release(host: Host) -> None:
    """A git that crashed in the live tree left index.lock: the copy carried it into every build, and every release
    failed on it. The build's copy is dropped (the live tree's own is left alone); submodules' too."""
    host.deploy(host.release())
    for gitdir in (host.slot / ".git", host.slot / ".git" / "modules" / "Ext0"):
        (gitdir / "index.lock").write_text("")
    commit_change(host.checkout, "extensions/Ext0/fix.php", "<?php // fix\n", "fix")
    release = host.release()
    done = host.deploy(release)
    assert done.returncode == 0, done.stderr
    assert host.head() == release.commit
    assert not (host.slot / ".git" / "index.lock").exists()


def _truncated_index(gitdir: Path) -> None:
    (gitdir / "index").write_bytes((gitdir / "index").read_bytes()[:10])


def _garbage_index(gitdir: Path) -> None:
    (gitdir / "index").write_bytes(b"garbage " * 20)


def _no_head(gitdir: Path) -> None:
    (gitdir / "HEAD").unlink()


def _garbage_head(gitdir: Path) -> None:
    (gitdir / "HEAD").write_text("garbage\n")


@pytest.mark.parametrize(
    ("keep", "broken", "damage"),
    [
        pytest.param(2, ".git", _truncated_index, id="copy-index-truncated"),
        pytest.param(2, ".git", _garbage_index, id="copy-index-garbage"),
        pytest.param(2, ".git", _no_head, id="copy-HEAD-removed"),
        pytest.param(2, ".git", _garbage_head, id="copy-HEAD-garbage"),
        pytest.param(2, ".git/modules/Ext0", _garbage_index, id="copy-submodule-index-garbage"),
        pytest.param(1, ".git/modules/Ext0", _garbage_index, id="recycled-submodule-index-garbage"),
    ],
)
def test_a_tree_whose_git_is_broken_does_not_block_the_next_releases(
    host: Host, keep: int, broken: str, damage: Callable[[Path], None]
) -> None:
    """A build starts from a copy of the live tree (or from the tree the prune would remove), `.git` and all: one
    whose git is broken (its index cut short or garbage, its HEAD gone; a submodule's index) failed every later
    switch of the slot, each copying it again. A build from a copy that fails is thrown away and the tree built
    again from a fresh clone of the store, so the host switches, saying so in a note (the operator learns that the
    host's tree was broken); the next release builds from a copy of the healthy tree again, and notes nothing."""
    _two_releases(host, keep)
    tree_to_break = host.slot.resolve() if keep > 1 else min(_trees(host), key=lambda t: t.stat().st_mtime)
    damage(tree_to_break / broken)
    commit_change(host.checkout, "extensions/Ext0/fix.php", "<?php // fix\n", "fix")
    commit_change(host.checkout, "index.php", "<?php echo 'after the damage';\n", "three")
    start = "a copy of the live tree" if keep > 1 else "a retired tree"
    for release, said in ((host.release(), start), (_another(host), None)):
        done = host.deploy(release)
        assert done.returncode == 0, done.stderr
        notes = CommandResult(0, done.stdout, done.stderr).notes()
        if said is None:
            assert notes == []
        else:
            [note] = notes
            assert note.startswith(f"the release did not build from {said}"), note
            assert note.endswith(": built from a fresh clone"), note
        assert [line for line in done.stderr.splitlines() if not line.startswith(NOTE_MARK)] == []
        _assert_is_the_release(host.slot.resolve(), release)


def _trees(host: Host) -> list[Path]:
    """The slot's trees on the host (kept and live)."""
    return list((host.root / ".sartoris" / "php-slot0" / "trees").iterdir())


def _another(host: Host) -> RemoteRelease:
    """One more one-file release."""
    commit_change(host.checkout, "index.php", "<?php echo 'another';\n", "another")
    return host.release()


def test_a_copy_whose_git_is_broken_never_checks_out_a_repository_around_the_deploy_root(
    host: Host, tmp_path: Path
) -> None:
    """A deploy root inside another git repository (one that has the release's commits): the build's checkout in a
    copy whose HEAD is gone went up the folders to that repository and checked the release out there, over its
    work tree. The checkout names the tree's git dir; the outer repository keeps its commit and files."""
    first = host.release()
    assert host.deploy(first).returncode == 0
    commit_change(host.checkout, "index.php", "<?php echo 'two';\n")
    second = host.release()
    git(tmp_path, "init", "--quiet", str(host.root))
    git(host.root, "fetch", "--quiet", str(host.publish), f"refs/tags/{second.tag}:refs/tags/{second.tag}")
    (host.root / "precious.txt").write_text("the outer repository's own file\n")
    git(host.root, "add", "precious.txt")
    git(host.root, "commit", "--quiet", "--message", "the repository around the deploy root")
    outer = git(host.root, "rev-parse", "HEAD")
    (host.slot / ".git" / "HEAD").unlink()
    done = host.deploy(second)
    assert git(host.root, "rev-parse", "HEAD") == outer
    assert (host.root / "precious.txt").read_text() == "the outer repository's own file\n"
    assert not (host.root / "index.php").exists()
    assert done.returncode == 0, done.stderr
    _assert_is_the_release(host.slot.resolve(), second)


def test_git_variables_and_global_config_of_the_deploy_account_change_nothing(
    host: Host, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A login shell exporting GIT_WORK_TREE / GIT_DIR / GIT_INDEX_FILE made the checkouts write into the live tree
    (served while written) and switch to a tree with old files; a global core.autocrlf deployed CRLF files."""
    first = host.release()
    assert host.deploy(first).returncode == 0
    live = host.slot.resolve()
    before = {f: f.read_bytes() for f in live.rglob("*") if f.is_file() and not f.is_symlink()}
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[core]\n\tautocrlf = true\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_WORK_TREE", str(live))
    monkeypatch.setenv("GIT_DIR", str(live / ".git"))
    monkeypatch.setenv("GIT_INDEX_FILE", str(live / ".git" / "index"))
    commit_change(host.checkout, "index.php", "<?php echo 'two';\n")
    second = host.release()
    done = host.deploy(second)
    assert done.returncode == 0, done.stderr
    for name in ("GIT_WORK_TREE", "GIT_DIR", "GIT_INDEX_FILE"):
        monkeypatch.delenv(name)
    _assert_is_the_release(host.slot.resolve(), second)
    assert (host.slot / "index.php").read_bytes() == b"<?php echo 'two';\n"
    assert {f: f.read_bytes() for f in before} == before


def test_a_slot_that_is_a_plain_directory_is_refused(host: Host) -> None:
    """A slot path that is a real directory (not Sartoris's link) is never replaced: the switch fails clearly."""
    host.slot.mkdir()
    (host.slot / "precious").write_text("keep me")
    done = host.deploy(host.release())
    assert done.returncode != 0 and "not managed by sartoris" in done.stderr
    assert (host.slot / "precious").read_text() == "keep me"


_LINKS_NOT_OURS = pytest.mark.parametrize(
    "target",
    [
        pytest.param("{elsewhere}", id="a-folder-elsewhere"),
        pytest.param("hand-made/php-slot0", id="a-clone-made-by-hand"),
        pytest.param("{elsewhere}/gone", id="dangling-elsewhere"),
        pytest.param(".sartoris/php-slot9/trees/{commit}", id="another-slots-tree"),
        pytest.param(".sartoris/php-slot0/trees/{commit}/sub", id="inside-a-tree"),
        pytest.param(".sartoris/php-slot0/trees/{commit}/index.php", id="a-file-in-a-tree"),
    ],
)


def _link_not_ours(host: Host, tmp_path: Path, target: str) -> tuple[RemoteRelease, str, Path]:
    """The slot made a link `target` Sartoris did not make (to a clone made by hand, a folder like /etc, ...),
    with a checkout of the release's commit in this slot's trees and another's; the release, the link, the
    hand-made clone."""
    first = host.release()
    elsewhere = tmp_path / "etc"
    elsewhere.mkdir()
    (elsewhere / "passwd").write_text("root:x:0:0\n")
    hand_made = host.root / "hand-made" / "php-slot0"
    shutil.copytree(host.checkout, hand_made, symlinks=True)
    for folder in ("php-slot0", "php-slot9"):  # a tree at the commit, in this slot's trees and another slot's
        tree = host.root / ".sartoris" / folder / "trees" / first.commit
        shutil.copytree(host.checkout, tree, symlinks=True)
        (tree / "sub").mkdir()
    link = target.format(elsewhere=elsewhere, commit=first.commit)
    host.slot.symlink_to(link)
    return first, link, hand_made


@_LINKS_NOT_OURS
def test_a_slot_link_sartoris_did_not_make_is_refused_and_left_alone(host: Host, tmp_path: Path, target: str) -> None:
    """A slot path that is a link not into the slot's own trees folder (dangling or not) is never replaced: the
    switch fails, saying the link is not sartoris's and where it points, and the link and what it points at stay."""
    first, link, hand_made = _link_not_ours(host, tmp_path, target)
    done = host.deploy(first)
    assert done.returncode == 2, done.stderr
    assert "not managed by sartoris: a link sartoris did not make" in done.stderr and link in done.stderr
    assert os.readlink(host.slot) == link
    assert (tmp_path / "etc" / "passwd").read_text() == "root:x:0:0\n"
    assert git(hand_made, "status", "--porcelain") == ""


@_LINKS_NOT_OURS
def test_status_of_a_slot_link_sartoris_did_not_make_is_never_current(host: Host, tmp_path: Path, target: str) -> None:
    """A slot link the switch would refuse is reported by status in the switch's words, and the census calls the
    host missing with that error, even when the link leads to a checkout of the expected commit (status called a
    link to a hand-made clone `current`, and the next sync failed and depooled the host). The commit of what it
    links to is named when it is a checkout."""
    first, link, _ = _link_not_ours(host, tmp_path, target)
    done = run_sh(status_command(str(host.slot), first.commit, 60.0))
    why = not_ours(done.stdout)
    assert done.returncode == 0 and why is not None, (done.stdout, done.stderr)
    assert why.startswith(f"sartoris: {host.slot} is not managed by sartoris: a link sartoris did not make, to {link} ")
    answer = census_answer(done, first.commit)
    assert (answer.state, answer.error) == (HostState.MISSING, why)
    checkouts = {"hand-made/php-slot0", ".sartoris/php-slot9/trees/{commit}"}
    assert answer.commit == (first.commit if target in checkouts else None)


@pytest.mark.parametrize("trees_too", [False, True], ids=["its-tree-gone", "the-trees-folder-gone"])
def test_a_dangling_slot_link_into_the_slots_trees_folder_is_replaced(host: Host, trees_too: bool) -> None:
    """A slot link sartoris made whose tree (or whole trees folder) someone removed is still sartoris's: the
    switch replaces it with the release's tree."""
    first = host.release()
    assert host.deploy(first).returncode == 0
    commit_change(host.checkout, "index.php", "<?php echo 'two';\n")
    second = host.release()
    shutil.rmtree(host.slot.resolve().parent if trees_too else host.slot.resolve())
    assert host.slot.is_symlink() and not host.slot.exists()
    done = host.deploy(second)
    assert done.returncode == 0, done.stderr
    _assert_is_the_release(host.slot.resolve(), second)


def test_status_on_a_host_without_the_slot_prints_nothing(host: Host) -> None:
    """No slot (nor deploy root): the status script succeeds and prints no commit (the census calls that `missing`)."""
    for expected in (None, "a" * 40):
        done = run_sh(status_command(str(host.slot), expected, 60.0))
        assert done.returncode == 0 and script_lines(done.stdout) == []
        assert script_lines(run_sh(status_command(str(host.root / "gone" / "php-slot0"), expected, 60.0)).stdout) == []
    assert not os.path.exists(host.slot)


@pytest.mark.parametrize("inside_a_repository", [False, True], ids=["plain", "inside-another-repository"])
def test_status_of_a_plain_directory_says_it_is_not_sartoris(host: Host, inside_a_repository: bool) -> None:
    """A slot that is a directory with no `.git` is said not to be sartoris's, in the switch's words (the census
    calls it `missing`, saying why), with no commit, even when the remote root sits inside some other git
    repository, whose HEAD git would report if it were asked there."""
    if inside_a_repository:
        subprocess.run(["git", "init", "--quiet", str(host.root)], check=True)
        subprocess.run(
            ["git", "-C", str(host.root), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet",
             "--allow-empty", "-m", "the repository around remote_root"],
            check=True,
        )
    host.slot.mkdir(parents=True)
    (host.slot / "index.php").write_text("<?php // copied by hand\n")
    done = run_sh(status_command(str(host.slot), None, 60.0))
    assert done.returncode == 0
    said = f"sartoris: {host.slot} is not managed by sartoris (a directory, not a link); move it away"
    assert not_ours(done.stdout) == said
    assert parse_head(done.stdout) is None


def test_status_of_a_checkout_made_by_hand_at_the_slot_is_never_current(host: Host) -> None:
    """A slot path that is a folder holding a git checkout of the expected commit (made by hand: the switch refuses
    it) is missing, not current, saying why; its commit is named."""
    release = host.release()
    shutil.copytree(host.checkout, host.slot, symlinks=True)
    done = run_sh(status_command(str(host.slot), release.commit, 60.0))
    answer = census_answer(done, release.commit)
    assert answer.state is HostState.MISSING and answer.commit == release.commit
    assert answer.error is not None and "is not managed by sartoris (a directory, not a link)" in answer.error


def test_status_of_the_expected_release_runs_no_process(host: Host) -> None:
    """A host whose slot links to Sartoris's tree of the expected commit, at that commit, is told apart with shell
    builtins (here no program can be found at all); any other answer asks git: a tree of another commit, a live
    tree whose HEAD someone moved on the host, or no expected commit."""
    first = host.release()
    assert host.deploy(first).returncode == 0
    no_programs = {"PATH": "/nonexistent", "HOME": str(host.root)}

    def status(expected: str | None) -> subprocess.CompletedProcess[str]:
        command = ["/bin/sh", "-c", status_command(str(host.slot), expected, 60.0)]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False, env=no_programs)

    done = status(first.commit)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"\n{SCRIPT_START}\n{first.commit}\n", "")
    assert status(None).returncode == 127 and status("f" * 40).returncode == 127  # git was needed, and not found
    assert parse_head(run_sh(status_command(str(host.slot), "f" * 40, 60.0)).stdout) == first.commit  # behind
    commit_change(host.checkout, "index.php", "<?php echo 'two';\n")
    git(host.checkout, "push", "--quiet", str(host.publish), "HEAD:refs/heads/moved")
    git(host.slot, "fetch", "--quiet", str(host.publish), "refs/heads/moved")
    git(host.slot, "checkout", "--quiet", "--detach", "FETCH_HEAD")
    moved = git(host.slot, "rev-parse", "HEAD")
    assert status(first.commit).returncode == 127
    done = run_sh(status_command(str(host.slot), first.commit, 60.0))
    assert parse_head(done.stdout) == moved != first.commit and not_ours(done.stdout) is None


@pytest.mark.parametrize("lost", [".git/objects", ".git"], ids=["objects-deleted", "git-deleted"])
def test_status_of_a_tree_whose_repository_was_deleted_is_never_current_and_a_sync_says_so(
    host: Host, lost: str
) -> None:
    """Deleting the live tree's `.git/objects` (or its whole `.git`) on the host left its HEAD file, or the slot
    link, as they were: status read them and said `current`, and the next sync built the tree from a fresh clone
    without a word. Status now asks git there (whose error it reports), and the switch notes why it cloned."""
    first = host.release()
    assert host.deploy(first).returncode == 0
    shutil.rmtree(host.slot.resolve() / lost)
    done = run_sh(status_command(str(host.slot), first.commit, 60.0))
    assert parse_head(done.stdout) is None, done.stdout
    commit_change(host.checkout, "index.php", "<?php echo 'after the loss';\n")
    second = host.release()
    switched = host.deploy(second)
    assert switched.returncode == 0, switched.stderr
    [note] = CommandResult(0, switched.stdout, switched.stderr).notes()
    assert "has no usable .git" in note and note.endswith("built from a fresh clone"), note
    _assert_is_the_release(host.slot.resolve(), second)


@pytest.mark.parametrize("gone", ["tree", "trees-folder", "state-folder"])
def test_status_of_a_slot_linking_to_a_tree_that_is_gone_is_missing_and_says_so(host: Host, gone: str) -> None:
    """A slot link into the slot's trees folder whose tree is gone (`ln -sfn .sartoris/php-slot0/trees/<gone>`) is
    Sartoris's, and the next sync replaces it; status called the host unreachable, with git's bare "cannot change to
    …: No such file or directory". It is `missing` now, saying where the link points."""
    target = ".sartoris/php-slot0/trees/" + "d" * 40
    release = host.release()
    if gone != "state-folder":
        assert host.deploy(release).returncode == 0
        host.slot.unlink()
    if gone == "trees-folder":
        shutil.rmtree(host.root / ".sartoris" / "php-slot0" / "trees")
    host.slot.symlink_to(target)
    said = f"the slot link points to {target}, which does not exist (the next sync links the slot anew)"
    for expected in (release.commit, None):
        done = run_sh(status_command(str(host.slot), expected, 60.0))
        assert (done.returncode, done.stderr) == (0, ""), done.stderr
        assert census_answer(done, expected) == HostStatus("mw1", HostState.MISSING, error=said)


def test_a_computed_wait_is_said_to_a_tenth_of_a_second() -> None:
    """The look at a host after a lost connection waits what is left of the command's time plus a margin, which
    the timeout line said as "stopped ahead of the 23.4719s timeout"; such a wait is said to a tenth."""
    said = "sartoris: timed out on the host after 21.5s (stopped ahead of the 23.5s timeout)"
    assert deadline_error(124, 23.4719) == said
    assert "deadline of 21.5s" in str(deadline_error(137, 23.4719))


def test_status_asks_git_under_the_hosts_own_deadline() -> None:
    """The status script's git runs under coreutils timeout with the host's deadline and KILL grace, as bounded()
    scripts do, `exec`ed (the login shell replaced: one process more than git alone); its exits 124 and 137 are
    named as bounded() names them."""
    for controller, host in ((1.0, "0.5"), (5.0, "3"), (30.0, "28"), (300.0, "298")):
        script = status_command("/srv/app/php-slot0", "a" * 40, controller)
        assert script.count(f"exec timeout -k 5 {host} git -C /srv/app/php-slot0 rev-parse --verify") == 3
        assert script.count(" git ") == 3  # every git the script may run
        said = f"sartoris: timed out on the host after {host}s (stopped ahead of the {controller:g}s timeout)"
        assert deadline_error(124, controller) == said
        assert bounded("true", controller).command.count(shell_words("echo", str(deadline_error(124, controller))))
        assert bounded("true", controller).command.count(shell_words("echo", str(deadline_error(137, controller))))
    assert deadline_error(128, 30.0) is None and deadline_error(1, 30.0) is None


def test_a_status_whose_git_hangs_ends_at_the_hosts_deadline_and_leaves_no_git(host: Host, tmp_path: Path) -> None:
    """A host whose git hangs (here reading a config file that never comes, as on a stuck NFS mount) answers at the
    host's own deadline, the hung git killed there: it ran on after the controller gave up on it, and a cron'd
    status piled them up. The census calls the host unreachable, saying it timed out on the host."""
    first = host.release()
    assert host.deploy(first).returncode == 0
    home = tmp_path / "home"
    home.mkdir()
    os.mkfifo(home / "stuck")
    (home / ".gitconfig").write_text(f"[include]\n\tpath = {home / 'stuck'}\n")
    script = status_command(str(host.slot), "f" * 40, 3.0)  # behind: git is asked; the host gives up after 1.5 s
    began = time.monotonic()
    shell = subprocess.Popen(
        ["sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home)}, start_new_session=True,
    )
    try:
        stdout, stderr = shell.communicate(timeout=30)
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)
    seconds = time.monotonic() - began
    hung = _pids_in_group(shell.pid)
    for pid in hung:  # only a status with no deadline of its own leaves one: ours, ended by its PID
        os.kill(pid, signal.SIGKILL)
    assert shell.returncode == 124 and 1.5 <= seconds < 1.5 + 3, (shell.returncode, seconds, stderr)
    assert hung == []
    answer = census_answer(subprocess.CompletedProcess([], 124, stdout, stderr), "f" * 40, 3.0)
    said = "sartoris: timed out on the host after 1.5s (stopped ahead of the 3s timeout)"
    assert answer == HostStatus("mw1", HostState.UNREACHABLE, error=said)


def _pids_in_group(group: int) -> list[int]:
    """The processes of the process group `group` still running (zombies are ended)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == group and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def test_a_retired_tree_is_recycled_and_every_kept_tree_keeps_its_own_content(host: Host) -> None:
    """Past keep_trees, the next tree is built in the tree the prune would delete (same directory, renamed), and
    no kept tree, live or not, sees a byte of another release: each is clean at its own commit, submodules too."""
    trees = host.root / ".sartoris" / "php-slot0" / "trees"
    releases, inodes = [], {}
    for n in range(4):
        commit_change(host.checkout, "index.php", f"<?php echo {n};\n")
        if n == 2:
            commit_change(host.checkout, "extensions/Ext1/fix.php", "<?php // fix\n", "fix")
        release = host.release()
        done = host.deploy(release)
        assert done.returncode == 0, done.stderr
        releases.append(release)
        inodes[release.commit] = (trees / release.commit).stat().st_ino
    assert inodes[releases[3].commit] == inodes[releases[0].commit]  # release 0's tree, recycled
    assert sorted(p.name for p in trees.iterdir()) == sorted(r.commit for r in releases[1:])
    for n, release in enumerate(releases[1:], start=1):
        tree = trees / release.commit
        assert (tree / "index.php").read_text() == f"<?php echo {n};\n"
        assert git(tree, "status", "--porcelain", "--ignore-submodules=none") == ""
        for module in release.submodules:
            assert git(tree / module.path, "rev-parse", "HEAD") == module.commit
    assert host.head() == releases[3].commit


def _assert_is_the_release(tree: Path, release: RemoteRelease) -> None:
    """The tree holds exactly the release: its commit, each submodule at its commit, nothing else (not even
    ignored or untracked files) in the tree or any submodule."""
    assert git(tree, "rev-parse", "HEAD") == release.commit
    assert git(tree, "status", "--porcelain", "--ignored", "--ignore-submodules=none") == ""
    for module in release.submodules:
        assert git(tree / module.path, "rev-parse", "--show-toplevel") == str(tree / module.path)
        assert git(tree / module.path, "rev-parse", "HEAD") == module.commit


def _two_releases(host: Host, keep: int) -> None:
    """Set the host's keep_trees and deploy two one-file releases: the next deploy builds its tree as a hard-link
    copy of the live one (keep 2 or more) or in a recycled tree (keep 1)."""
    host.keep = keep
    for n in range(2):
        commit_change(host.checkout, "index.php", f"<?php echo {n};\n")
        assert host.deploy(host.release()).returncode == 0


@pytest.mark.parametrize("keep", [2, 1], ids=["hard-link-copy", "recycled-tree"])
def test_a_moved_submodule_is_whole_at_its_new_path_and_gone_from_the_old(host: Host, keep: int) -> None:
    """`git mv` of a submodule keeps its name: the new path was left an empty folder (the module's HEAD matched),
    the old one kept its files, and once the moved module's commit changed too, its checkout ran in the slot's own
    repository (no .git file to stop git going up) and put the live tree at the submodule's commit. Now the new
    path holds the module, the old path is gone, and the tree it was built from is untouched."""
    _two_releases(host, keep)
    before = host.slot.resolve()
    git(host.checkout, "mv", "extensions/Ext1", "extensions/Moved")
    git(host.checkout, "commit", "--quiet", "--message", "move Ext1")
    moved = host.release()
    done = host.deploy(moved)
    assert done.returncode == 0, done.stderr
    assert not (host.slot / "extensions" / "Ext1").exists()
    _assert_is_the_release(host.slot.resolve(), moved)
    if keep == 2:  # the live tree the copy came from is as it was
        assert (before / "extensions" / "Ext1" / ".git").is_file() and not (before / "extensions" / "Moved").exists()
    commit_change(host.checkout, "extensions/Moved/new.php", "<?php // changed where it moved\n", "change")
    changed = host.release()
    done = host.deploy(changed)
    assert done.returncode == 0, done.stderr
    _assert_is_the_release(host.slot.resolve(), changed)
    assert host.head() == changed.commit


@pytest.mark.parametrize("keep", [2, 1], ids=["hard-link-copy", "recycled-tree"])
def test_a_dropped_submodule_leaves_nothing_behind_and_can_come_back(host: Host, keep: int) -> None:
    """A release without a submodule gets a tree without its files (git's checkout leaves them: "unable to
    rmdir"); the release that brings it back checks it out again from the git dir the tree kept."""
    _two_releases(host, keep)
    git(host.checkout, "rm", "--quiet", "extensions/Ext1")
    git(host.checkout, "commit", "--quiet", "--message", "drop Ext1")
    dropped = host.release()
    done = host.deploy(dropped)
    assert done.returncode == 0, done.stderr
    assert not (host.slot / "extensions" / "Ext1").exists()
    _assert_is_the_release(host.slot.resolve(), dropped)
    git(host.checkout, "revert", "--no-edit", "HEAD")
    back = host.release()
    for release in (back, dropped, back):  # and a rollback-style return, through kept and recycled trees
        done = host.deploy(release)
        assert done.returncode == 0, done.stderr
        _assert_is_the_release(host.slot.resolve(), release)


@pytest.mark.parametrize("keep", [2, 1], ids=["hard-link-copy", "recycled-tree"])
@pytest.mark.parametrize("change", [False, True], ids=["same-commits", "one-changed"])
def test_two_submodules_that_swap_paths_each_end_up_whole_at_their_new_one(host: Host, keep: int, change: bool) -> None:
    """Ext0 and Ext1 trade places: the same set of paths, so each path's `.git` file names the other module's
    repository, which a check of paths alone misses (each path held the other module, swapped HEADs)."""
    _two_releases(host, keep)
    git(host.checkout, "mv", "extensions/Ext0", "extensions/tmp")
    git(host.checkout, "mv", "extensions/Ext1", "extensions/Ext0")
    git(host.checkout, "mv", "extensions/tmp", "extensions/Ext1")
    git(host.checkout, "commit", "--quiet", "--message", "swap")
    if change:
        commit_change(host.checkout, "extensions/Ext0/new.php", "<?php // in the swapped module\n", "change")
    swapped = host.release()
    done = host.deploy(swapped)
    assert done.returncode == 0, done.stderr
    _assert_is_the_release(host.slot.resolve(), swapped)


@pytest.mark.parametrize("keep", [2, 1], ids=["hard-link-copy", "recycled-tree"])
def test_a_submodule_renamed_at_the_same_path_replaces_the_old_one(host: Host, keep: int) -> None:
    """A module given a new name where another (the same repository under its old name) was: the new one is
    cloned there. The old files were in the way of the clone, so every deploy failed from then on."""
    _two_releases(host, keep)
    git(host.checkout, "config", "-f", ".gitmodules", "--rename-section", "submodule.Ext1", "submodule.extensions/Ext1")
    git(host.checkout, "commit", "--quiet", "--all", "--message", "name == path, as git submodule add does")
    renamed = host.release()
    assert [m.name for m in renamed.submodules] == ["Ext0", "extensions/Ext1"]
    for release in (renamed, renamed):  # and once more, from the tree the first built
        done = host.deploy(release)
        assert done.returncode == 0, done.stderr
        _assert_is_the_release(host.slot.resolve(), release)


@pytest.mark.parametrize("keep", [2, 1], ids=["hard-link-copy", "recycled-tree"])
def test_a_nested_submodule_dropped_or_moved_leaves_nothing_behind(host: Host, tmp_path: Path, keep: int) -> None:
    """extensions/Skin/lib/Icons moves to lib/Icons2, then goes: Skin's work tree holds exactly its commit."""
    host.keep = keep
    skin, _ = add_nested_submodules(host.checkout, tmp_path / "upstreams")
    assert host.deploy(host.release()).returncode == 0
    commit_change(host.checkout, "index.php", "<?php echo 1;\n")
    assert host.deploy(host.release()).returncode == 0
    nested = host.checkout / skin
    git(nested, "mv", "lib/Icons", "lib/Icons2")
    git(nested, "commit", "--quiet", "--message", "move Icons")
    git(host.checkout, "commit", "--quiet", "--all", "--message", "Skin with Icons moved")
    moved = host.release()
    done = host.deploy(moved)
    assert done.returncode == 0, done.stderr
    _assert_is_the_release(host.slot.resolve(), moved)
    git(nested, "rm", "--quiet", "lib/Icons2")
    git(nested, "commit", "--quiet", "--message", "drop Icons")
    git(host.checkout, "commit", "--quiet", "--all", "--message", "Skin without Icons")
    dropped = host.release()
    done = host.deploy(dropped)
    assert done.returncode == 0, done.stderr
    _assert_is_the_release(host.slot.resolve(), dropped)
    assert not (host.slot / skin / "lib").exists()  # Skin's only folder held Icons


def test_adding_a_submodule_writes_nothing_into_the_live_tree(host: Host, tmp_path: Path) -> None:
    """The new tree is a hard-link copy of the live one: registering a new module in its config, and git's own
    logs, must not write into files the live tree shares. Every file of the live tree keeps its bytes."""
    commit_change(host.checkout, "index.php", "<?php echo 1;\n")
    assert host.deploy(host.release()).returncode == 0
    live = host.slot.resolve()
    before = {f: f.read_bytes() for f in live.rglob("*") if f.is_file() and not f.is_symlink()}
    add_nested_submodules(host.checkout, tmp_path / "upstreams")
    added = host.release()
    done = host.deploy(added)
    assert done.returncode == 0, done.stderr
    _assert_is_the_release(host.slot.resolve(), added)
    assert {f: f.read_bytes() for f in before} == before
    assert not list(live.rglob("logs"))  # no reflogs to share: trees and modules are cloned without them


@pytest.mark.parametrize("keep", [3, 1], ids=["hard-link-copy", "recycled-tree"])
def test_trees_built_before_this_version_share_no_reflog_and_forget_their_old_work_tree_path(
    host: Host, keep: int
) -> None:
    """Trees an older Sartoris built carry reflogs (hard links shared by every copy, which git appends to in place)
    and, for modules `git submodule update` made, a core.worktree naming the module's path. A copy or a recycled
    tree drops the reflogs before any git write, and a moved module forgets the old path: the live tree keeps
    every byte, and the moved module's git works at its new path."""
    _two_releases(host, keep)
    for tree in host.slot.resolve().parent.iterdir():  # as an older Sartoris left them
        for gitdir in (tree / ".git", tree / ".git" / "modules" / "Ext1"):
            (gitdir / "logs").mkdir(exist_ok=True)
            (gitdir / "logs" / "HEAD").write_text("old reflog\n")
        module_config = str(tree / ".git/modules/Ext1/config")
        git(tree, "config", "--file", module_config, "core.worktree", "../../../extensions/Ext1")
    live = host.slot.resolve()
    before = {f: f.read_bytes() for f in live.rglob("*") if f.is_file() and not f.is_symlink()}
    git(host.checkout, "mv", "extensions/Ext1", "extensions/Moved")
    git(host.checkout, "commit", "--quiet", "--message", "move Ext1")
    commit_change(host.checkout, "extensions/Moved/new.php", "<?php // moved and changed\n", "change")
    moved = host.release()
    done = host.deploy(moved)
    assert done.returncode == 0, done.stderr
    _assert_is_the_release(host.slot.resolve(), moved)
    assert {f: f.read_bytes() for f in before if f.exists()} == {f: b for f, b in before.items() if f.exists()}
    if keep == 3:  # the copy's source is the live tree, still kept
        assert all(f.exists() for f in before)
    assert not list(host.slot.resolve().rglob("logs"))


def test_a_live_tree_changed_on_the_host_is_reported_not_left_as_is(host: Host) -> None:
    """Someone checked another commit out in the live tree: deploying its own release again fails, saying so,
    instead of reporting the host on the release."""
    release = host.release()
    assert host.deploy(release).returncode == 0
    commit_change(host.checkout, "index.php", "<?php echo 'other';\n")
    other = host.release()
    assert host.deploy(other).returncode == 0
    git(host.slot, "checkout", "--quiet", "--detach", release.commit)
    done = host.deploy(other)
    assert done.returncode == 1
    assert f"is at {release.commit}, not {other.commit}: it was changed on the host" in done.stderr
    assert "deploy another release" in done.stderr and "remove" not in done.stderr  # never the tree the slot links


def test_a_live_tree_whose_files_were_changed_on_the_host_fails_a_redeploy_and_is_left_as_it_is(host: Host) -> None:
    """Deploying the live release again checked the live tree's HEAD only: files edited or deleted there were
    reported as the release. The switch now fails (exit 1) with one line naming the tree, the first paths changed,
    and what to do, and leaves the tree as it is (mending it in place would not be atomic). Untracked files (an
    app's caches) are no change."""
    release = host.release()
    assert host.deploy(release).returncode == 0
    live = host.slot.resolve()
    (live / "cache").mkdir()
    (live / "cache" / "l10n.cdb").write_text("cached\n")
    assert host.deploy(release).returncode == 0
    (live / "index.php").write_text("<?php echo 'patched on the host';\n")
    (live / "includes" / "dir01" / "file0001.php").unlink()
    (live / "includes" / "dir02" / "file0002.php").write_text("<?php // patched\n")
    (live / "extensions" / "Ext0" / "includes" / "dir00" / "file0000.php").write_text("<?php // patched\n")
    done = host.deploy(release)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"sartoris: the live tree {live} was changed on the host (extensions/Ext0, includes/dir01/file0001.php,"
        " includes/dir02/file0002.php and 1 more): deploy another release; its tree, copied from this one, is checked"
        " out clean"
    ]
    assert host.slot.resolve() == live
    assert (live / "index.php").read_text() == "<?php echo 'patched on the host';\n"
    assert not (live / "includes" / "dir01" / "file0001.php").exists()


def test_files_edited_on_the_host_are_the_releases_again_in_the_next_tree_and_stay_so_in_the_old(host: Host) -> None:
    """The next release's tree starts as a hard-link copy of a live tree whose files were edited in place or deleted
    on the host, files that release does not change: its checkout --force writes them again as the release has
    them (a new file, so the live tree's link is not written through), and the old tree keeps the edits."""
    first = host.release()
    assert host.deploy(first).returncode == 0
    old = host.slot.resolve()
    edited, deleted = old / "includes" / "dir02" / "file0002.php", old / "includes" / "dir01" / "file0001.php"
    original = edited.read_text()
    with edited.open("a") as in_place:
        in_place.write("// patched in place on the host\n")
    deleted.unlink()
    commit_change(host.checkout, "index.php", "<?php echo 'two';\n")
    second = host.release()
    done = host.deploy(second)
    assert done.returncode == 0, done.stderr
    _assert_is_the_release(host.slot.resolve(), second)
    assert (host.slot / "includes" / "dir02" / "file0002.php").read_text() == original
    assert edited.read_text() == original + "// patched in place on the host\n" and not deleted.exists()


@pytest.mark.parametrize(
    ("keep", "change"),
    [
        pytest.param(2, "edited", id="hard-link-copy-edited"),
        pytest.param(2, "deleted", id="hard-link-copy-deleted"),
        # a retired tree shares the live tree's files (an edit there is its too), not its folders (nor deletions)
        pytest.param(1, "edited", id="recycled-tree-edited"),
    ],
)
def test_files_of_an_unchanged_submodule_changed_on_the_host_are_the_releases_again_in_the_next_tree(
    host: Host, keep: int, change: str
) -> None:
    """A build checks out only the submodules whose commit the release moves, and its tree starts as hard links of
    the live (or a retired) tree: a file of an unchanged submodule edited in place on the host, or deleted there,
    was carried into every later tree, which status then called current. Such a submodule is checked out again;
    the live tree keeps its edit (the checkout writes a new file); a submodule nobody changed is not checked out
    (its files stay links of the live tree's)."""
    _two_releases(host, keep)
    live = host.slot.resolve()
    target = live / "extensions" / "Ext0" / "includes" / "dir00" / "file0000.php"
    original = target.read_text()
    if change == "edited":  # right after the deploy: a tree's stamp is not dated ahead
        with target.open("a") as in_place:
            in_place.write("// patched in place on the host\n")
    else:
        target.unlink()
    untouched = live / "extensions" / "Ext1" / "includes" / "dir00" / "file0000.php"
    commit_change(host.checkout, "index.php", "<?php echo 'three';\n")
    third = host.release()
    done = host.deploy(third)
    assert done.returncode == 0, done.stderr
    new = host.slot.resolve()
    assert new != live
    _assert_is_the_release(new, third)
    assert (new / target.relative_to(live)).read_text() == original
    assert (new / untouched.relative_to(live)).stat().st_ino == untouched.stat().st_ino
    if change == "edited":
        assert target.read_text() == original + "// patched in place on the host\n"


def _stand_in(bin_dir: Path, program: str, body: str) -> Path:
    """A /bin/sh script named `program` in `bin_dir` (made if missing), to put first in PATH; `bin_dir`."""
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / program).write_text("#!/bin/sh\n" + body)
    (bin_dir / program).chmod(0o755)
    return bin_dir


def _switch_with(release: RemoteRelease, bin_dir: Path) -> subprocess.CompletedProcess[str]:
    """Fetch, then switch with `bin_dir` first in PATH (a stand-in for one of the host's programs)."""
    assert run_on_host(bounded(fetch_command(release), 120.0)).returncode == 0
    switch = bounded(switch_command(release), 120.0)
    return subprocess.run(
        ["sh", "-c", switch.command], input=switch.script, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
    )


def test_a_file_edited_on_the_host_while_the_next_tree_is_built_is_caught_by_the_one_after(
    host: Host, tmp_path: Path
) -> None:
    """An edit to a live file of an unchanged submodule made while the next tree is built (after that build looked
    for changes) lands in the new tree too, a hard link; the new tree's stamp is dated before its build, not at its
    end, so the deploy after it checks that submodule out again. (The edit waits 50 ms: file times are kept to
    the kernel's clock tick, so a change in the same few milliseconds as the stamp cannot be told apart.)"""
    _two_releases(host, 5)
    live = host.slot.resolve()
    edited = Path("extensions") / "Ext0" / "includes" / "dir00" / "file0000.php"
    original = (live / edited).read_text()
    once = tmp_path / "edited-once"
    bin_dir = _stand_in(  # a git that edits the live file as the build's first checkout starts
        tmp_path / "bin",
        "git",
        f'case "$*" in *checkout*) [ -e {once} ] || {{ : > {once}; sleep 0.05; echo "// meanwhile" >> {live / edited};'
        f' }};; esac\nexec {shutil.which("git")} "$@"\n',
    )
    commit_change(host.checkout, "index.php", "<?php echo 'three';\n")
    done = _switch_with(host.release(), bin_dir)
    assert done.returncode == 0 and once.exists(), done.stderr
    assert (host.slot / edited).read_text() == original + "// meanwhile\n"  # carried into this tree, for now
    commit_change(host.checkout, "index.php", "<?php echo 'four';\n")
    fourth = host.release()
    assert host.deploy(fourth).returncode == 0
    _assert_is_the_release(host.slot.resolve(), fourth)
    assert (host.slot / edited).read_text() == original


@pytest.mark.parametrize("keep", [2, 1], ids=["hard-link-copy", "recycled-tree"])
def test_a_one_file_release_checks_out_no_submodule_nobody_changed(host: Host, tmp_path: Path, keep: int) -> None:
    """The check for files changed on the host costs no git process where none was: a one-file release of the
    superproject, built from a copy or a recycled tree that was itself built so, runs one checkout (a copy's own
    folders, made after its stamp, once passed for changes: every submodule was checked out again each time)."""
    _two_releases(host, keep)
    commit_change(host.checkout, "index.php", "<?php echo 'three';\n")
    assert host.deploy(host.release()).returncode == 0
    calls = tmp_path / "git-calls"
    bin_dir = _stand_in(tmp_path / "bin", "git", f'echo "$*" >> {calls}\nexec {shutil.which("git")} "$@"\n')
    commit_change(host.checkout, "index.php", "<?php echo 'four';\n")
    fourth = host.release()
    done = _switch_with(fourth, bin_dir)
    assert done.returncode == 0, done.stderr
    _assert_is_the_release(host.slot.resolve(), fourth)
    assert len([line for line in calls.read_text().splitlines() if " checkout " in f" {line} "]) == 1


def test_a_host_whose_find_cannot_list_changes_checks_every_submodule_out_again(host: Host, tmp_path: Path) -> None:
    """A host with no GNU find (BusyBox's has no -printf) could not list what changed: the check said nothing
    changed, and an edit was carried. Now a find that fails means every unchanged submodule is checked out again."""
    _two_releases(host, 2)
    live = host.slot.resolve()
    edited = Path("extensions") / "Ext0" / "includes" / "dir00" / "file0000.php"
    original = (live / edited).read_text()
    with (live / edited).open("a") as in_place:
        in_place.write("// patched in place on the host\n")
    bin_dir = _stand_in(tmp_path / "bin", "find", "echo 'find: unrecognized: -printf' >&2\nexit 1\n")
    commit_change(host.checkout, "index.php", "<?php echo 'three';\n")
    third = host.release()
    done = _switch_with(third, bin_dir)
    assert done.returncode == 0, done.stderr
    _assert_is_the_release(host.slot.resolve(), third)
    assert (host.slot / edited).read_text() == original


def test_a_tree_without_a_build_time_has_its_unchanged_submodules_checked_out_again(host: Host) -> None:
    """A live tree an older Sartoris built has no build time to tell what changed on the host since: the next tree
    checks out every submodule again (git writes only the files that differ), so an edit made there at any time is
    not carried, and has a build time itself."""
    _two_releases(host, 2)
    live = host.slot.resolve()
    (live / ".git" / "sartoris-built").rmdir()
    edited = Path("extensions") / "Ext1" / "includes" / "dir00" / "file0000.php"
    original = (live / edited).read_text()
    with (live / edited).open("a") as in_place:
        in_place.write("// patched in place on the host\n")
    commit_change(host.checkout, "index.php", "<?php echo 'three';\n")
    third = host.release()
    done = host.deploy(third)
    assert done.returncode == 0, done.stderr
    _assert_is_the_release(host.slot.resolve(), third)
    assert (host.slot / edited).read_text() == original
    assert (host.slot.resolve() / ".git" / "sartoris-built").is_dir()


def test_a_first_deploy_registers_its_submodules_without_a_git_process(host: Host, tmp_path: Path) -> None:
    """A fresh tree's config is its own file, so a first deploy appends each new submodule's registration to it
    (printf, a builtin) instead of running `git config` for each: the flag that said so had been lost, which cost
    a git process per submodule on every first deploy. The tree is registered all the same."""
    calls = tmp_path / "git-calls"
    bin_dir = _stand_in(tmp_path / "bin", "git", f'printf "%s\\n" "$*" >> {calls}\nexec {shutil.which("git")} "$@"\n')
    release = host.release()
    done = _switch_with(release, bin_dir)
    assert done.returncode == 0, done.stderr
    assert [line for line in calls.read_text().splitlines() if line.startswith("config")] == []
    _assert_is_the_release(host.slot.resolve(), release)


@pytest.mark.parametrize(("umask", "mode"), [("022", 0o644), ("027", 0o640)])
def test_the_files_deployed_get_the_configured_umask_whatever_the_login_sets(host: Host, umask: str, mode: int) -> None:
    """An account whose shell startup sets `umask 077` made every file a release changed or added unreadable to the
    web server (beside hard links to the older, readable ones), and a first deploy the whole tree, without a word.
    The scripts set `[deploy] umask` (022 unless configured) themselves."""

    def deploy_under_umask_077(release: RemoteRelease) -> None:
        for command in (bounded(fetch_command(release), 120.0), bounded(switch_command(release), 120.0)):
            done = subprocess.run(
                ["sh", "-c", "umask 077; " + command.command], input=command.script, capture_output=True, text=True,
                timeout=120, check=False,
            )
            assert done.returncode == 0, done.stderr

    deploy_under_umask_077(dataclasses.replace(host.release(), umask=umask))
    commit_change(host.checkout, "includes/added.php", "<?php // added\n")
    deploy_under_umask_077(dataclasses.replace(host.release(), umask=umask))
    tree = host.slot.resolve()
    for path in ("index.php", "includes/added.php", "extensions/Ext0/includes/dir00/file0000.php"):
        assert (tree / path).stat().st_mode & 0o777 == mode, path


def test_submodules_point_at_their_repository_relatively_so_a_tree_can_move(host: Host) -> None:
    """A submodule's `.git` file and registration are what `git submodule` would write: `git submodule status`
    in the tree lists each module at its pinned commit, and still does after the tree is renamed."""
    release = host.release()
    assert host.deploy(release).returncode == 0
    tree = host.slot.resolve()
    moved = tree.with_name("moved")
    tree.rename(moved)
    for module in release.submodules:
        assert (moved / module.path / ".git").read_text().startswith("gitdir: ../../.git/modules/")
        assert git(moved / module.path, "rev-parse", "HEAD") == module.commit
    listed = {line.split()[1]: line.split()[0] for line in git(moved, "submodule", "status").splitlines()}
    # `-<sha>` would be an uninitialised module, `+<sha>` one at another commit
    assert listed == {module.path: module.commit for module in release.submodules}


def test_a_sha256_repository_deploys_and_reports_its_commit(tmp_path: Path) -> None:
    """A release from a SHA-256 repository gets a SHA-256 store on the host; status reads its 64-hex commit."""
    checkout = tmp_path / "app"
    git(tmp_path, "init", "--quiet", "--object-format=sha256", str(checkout))
    (checkout / "index.php").write_text("<?php echo 'sha256';\n")
    git(checkout, "add", "index.php")
    git(checkout, "commit", "--quiet", "--message", "one")
    git(checkout, "tag", "t1")
    publish = tmp_path / "publish.git"
    git(tmp_path, "init", "--quiet", "--bare", "--object-format=sha256", str(publish))
    git(checkout, "push", "--quiet", str(publish), "refs/tags/t1:refs/tags/t1")
    commit = git(checkout, "rev-parse", "HEAD")
    assert len(commit) == 64
    slot = tmp_path / "host" / "php-slot0"
    slot.parent.mkdir()
    release = RemoteRelease(str(slot), str(publish), "t1", commit)
    fetched = run_sh(fetch_command(release))
    assert fetched.returncode == 0, fetched.stderr
    switched = run_sh(switch_command(release))
    assert switched.returncode == 0, switched.stderr
    assert parse_head(run_sh(status_command(str(slot), None, 60.0)).stdout) == commit
    assert parse_head(run_sh(status_command(str(slot), commit, 60.0)).stdout) == commit  # no git: see the fast path
    assert (slot / "index.php").read_text() == "<?php echo 'sha256';\n"


def _loose_objects_named_17(store: Path, count: int) -> None:
    """Write `count` reachable blobs whose ids start with 17 (git's sample directory for `gc --auto`)."""
    import hashlib

    contents: list[bytes] = []
    n = 0
    while len(contents) < count:
        data = f"sample {n}\n".encode()
        if hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest().startswith("17"):
            contents.append(data)
        n += 1
    entries = []
    for index, data in enumerate(contents):
        blob = subprocess.run(
            ["git", "--git-dir", str(store), "hash-object", "-w", "--stdin"],
            input=data, capture_output=True, check=True, timeout=30,
        ).stdout.decode().strip()
        entries.append(f"100644 blob {blob}\tf{index}\n")
    tree = subprocess.run(
        ["git", "--git-dir", str(store), "mktree"], input="".join(entries).encode(), capture_output=True, check=True,
        timeout=30,
    ).stdout.decode().strip()
    git(store, "update-ref", "refs/heads/samples", git(store, "commit-tree", "-m", "samples", tree))


@pytest.mark.parametrize(("loose", "packed"), [(27, False), (28, True)])
def test_a_fetch_asks_for_housekeeping_only_past_gits_own_threshold(host: Host, loose: int, packed: bool) -> None:
    """git's `gc --auto` rule (more than 27 loose objects in objects/17) starts the store's housekeeping after a
    fetch; at 27 the fetch starts no gc at all and the loose objects stay as they are."""
    first = host.release()
    assert host.deploy(first).returncode == 0
    store = Path(first.store)
    git(store, "config", "gc.autoDetach", "false")  # so the test sees the result when the script returns
    _loose_objects_named_17(store, loose)
    sample = store / "objects" / "17"
    present, before = len(list(sample.glob("*"))), _all_objects(store)
    commit_change(host.checkout, "index.php", "<?php echo 'two';\n")
    fetched = run_sh(fetch_command(host.release()))
    assert fetched.returncode == 0, fetched.stderr
    # The samples' own tree and commit, and the fetch's objects (tag, commit, trees, blob), are named 17… now and
    # then (about one run in 50): git counts them too, and so does the expectation.
    brought = sum(1 for name in _all_objects(store) - before if name.startswith("17"))
    counted = present + brought
    assert (len(list(sample.glob("*"))) < counted) is (counted > 27)
    assert counted > 27 if packed else counted >= 27


def _all_objects(store: Path) -> set[str]:
    """Every object id in a repository, loose or packed."""
    listing = git(store, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)")
    return set(listing.split())


def test_the_live_tree_is_never_recycled_even_when_it_is_the_oldest(host: Host) -> None:
    """Recycling picks the oldest tree by modification time; a live tree dated back (by hand, a restore) is
    skipped, so the slot never points at a tree that is being rebuilt: the new tree is a fresh copy."""
    trees = host.root / ".sartoris" / "php-slot0" / "trees"
    for n in range(3):
        commit_change(host.checkout, "index.php", f"<?php echo {n};\n")
        assert host.deploy(host.release()).returncode == 0
    live = host.slot.resolve()
    os.utime(live, (1_000_000_000, 1_000_000_000))
    live_inode = live.stat().st_ino
    commit_change(host.checkout, "index.php", "<?php echo 'next';\n")
    release = host.release()
    done = host.deploy(release)
    assert done.returncode == 0, done.stderr
    assert (trees / release.commit).stat().st_ino != live_inode
    assert (host.slot / "index.php").read_text() == "<?php echo 'next';\n"


def test_a_release_with_150_submodules_deploys_and_moves_one_on(tmp_path: Path) -> None:
    """MediaWiki's core pins well over a hundred extensions and skins: a release with 150 submodules deploys whole,
    and the next one, which moves one of them on, checks out that one and leaves the others as they are."""
    checkout = make_checkout(tmp_path / "deploy", 0, files=3, submodules=150, submodule_files=1)
    publish = tmp_path / "publish.git"
    git(tmp_path, "init", "--quiet", "--bare", str(publish))
    (tmp_path / "host").mkdir()
    host = Host(tmp_path / "host", publish, checkout)
    first = host.release()
    assert len(first.submodules) == 150
    done = host.deploy(first)
    assert done.returncode == 0, done.stderr
    _assert_is_the_release(host.slot.resolve(), first)
    commit_change(checkout, "extensions/Ext77/moved-on.txt", "on\n")
    second = host.release()
    done = host.deploy(second)
    assert done.returncode == 0, done.stderr
    _assert_is_the_release(host.slot.resolve(), second)
    assert host.head() == second.commit


def test_a_swap_that_fails_is_the_checkouts_failure_and_leaves_the_old_tree(host: Host) -> None:
    """The link swap is the last step of the checkout phase: when it fails (here a directory stands where the new
    link is made, so `mv -T` cannot rename it over the slot), the phase reported is checkout, after the submodules
    were brought up; the slot still links the old tree."""
    first = host.release()
    assert host.deploy(first).returncode == 0
    commit_change(host.checkout, "extensions/Ext0/fix.php", "<?php // fix\n", "fix")
    (host.root / "php-slot0.sartoris-new" / "in-the-way").mkdir(parents=True)
    done = host.deploy(host.release())
    assert done.returncode != 0
    assert last_phase(done.stdout, Phase.FETCH) is Phase.CHECKOUT and "sartoris-phase:submodules" in done.stdout
    assert host.head() == first.commit


@pytest.mark.skipif(shutil.which("flock") is None, reason="util-linux flock is not installed")
def test_the_look_after_a_lost_switch_waits_for_it_and_says_where_the_host_is(host: Host) -> None:
    """What runs on a new connection after a switch's connection dropped: it waits while the slot's switch lock is
    held (the lost switch still running), within its own deadline, which says it was not a look (exit 124); once
    the lock is free it prints the live tree's commit, and with no live tree nothing, each time to its end."""
    release = host.release()
    look = switch_outcome_command(release)
    nothing = run_on_host(bounded(look, 30.0))
    assert nothing.returncode == 0 and ran_to_its_end(nothing.stdout) and parse_head(nothing.stdout) is None
    assert host.deploy(release).returncode == 0
    with open(host.root / ".sartoris" / "php-slot0" / "switch.lock", "a") as lock:  # as a running switch holds it
        fcntl.flock(lock, fcntl.LOCK_EX)
        held = run_on_host(bounded(look, 3.0))  # the host gives up after 1.5 s
        assert held.returncode == 124 and parse_head(held.stdout) is None
    seen = run_on_host(bounded(look, 30.0))
    assert seen.returncode == 0 and ran_to_its_end(seen.stdout) and parse_head(seen.stdout) == release.commit


def test_the_look_after_a_lost_switch_answers_when_the_lock_cannot_be_opened(host: Host) -> None:
    """dash ends the whole script when a redirection of the special builtin `exec` fails: a switch lock the
    account could not open (another account's, a read-only disk; here a link to a read-only sysfs file, which
    root cannot open for writing either) left the look with no answer, so a host on the release stayed unknown.
    The look goes on without the lock and says where it is."""
    read_only = Path("/sys/kernel/uevent_seqnum")
    if not read_only.is_file():
        pytest.skip("no sysfs file to stand for a lock that cannot be opened")
    try:
        read_only.open("a").close()
    except OSError:
        pass  # as wanted: it cannot be opened for appending
    else:
        pytest.skip("no read-only sysfs file to stand for a lock that cannot be opened")
    release = host.release()
    assert host.deploy(release).returncode == 0
    lock = Path(release.state_dir) / "switch.lock"
    lock.unlink()
    lock.symlink_to(read_only)
    seen = run_on_host(bounded(switch_outcome_command(release), 30.0))
    assert seen.returncode == 0 and ran_to_its_end(seen.stdout) and parse_head(seen.stdout) == release.commit


def test_the_look_after_a_lost_switch_that_refused_an_edited_live_tree_does_not_find_it_switched(host: Host) -> None:
    """A redeploy of the release whose live tree was changed on the host fails, and leaves that tree live, at the
    release's commit: the look at such a switch whose reply was lost read the commit alone and called the host
    switched. The switch's record, emptied when it began and written only before its swap, says it was not; a swap
    that fails leaves the old tree live, whatever the record says."""
    release = host.release()
    assert host.deploy(release).returncode == 0
    look = bounded(switch_outcome_command(release), 30.0)
    assert found_recorded(run_on_host(look).stdout)
    (host.slot / "index.php").write_text("<?php // live hack\n")
    refused = host.deploy(release)
    assert refused.returncode != 0 and "index.php" in refused.stderr, refused.stderr
    seen = run_on_host(look)
    assert seen.returncode == 0 and parse_head(seen.stdout) == release.commit and not found_recorded(seen.stdout)
    (host.slot / "index.php").write_text(git(host.checkout, "show", "HEAD:index.php"))
    commit_change(host.checkout, "index.php", "<?php echo 'two';\n")
    second = host.release()
    (host.root / "php-slot0.sartoris-new" / "in-the-way").mkdir(parents=True)  # the swap of `second` fails
    assert host.deploy(second).returncode != 0
    after = run_on_host(bounded(switch_outcome_command(second), 30.0))
    assert parse_head(after.stdout) == release.commit and found_recorded(after.stdout)  # the verdict: not on it


def test_the_look_after_a_lost_switch_reads_that_runs_record_not_an_earlier_runs_of_the_same_commit(
    host: Host,
) -> None:
    """The switch's record named a commit alone: a switch lost while queued behind another (its record not yet
    emptied), or that never ran, was read as switched by the record an earlier run of the same commit left, though a
    live tree changed since stayed live (review). The record carries the run's token, and the look wants its own."""
    earlier = dataclasses.replace(host.release(), run="0123456789abcdef")
    assert host.deploy(earlier).returncode == 0
    this_run = dataclasses.replace(earlier, run="fedcba9876543210")
    seen = run_on_host(bounded(switch_outcome_command(this_run), 30.0))
    assert parse_head(seen.stdout) == earlier.commit and not found_recorded(seen.stdout), seen.stdout
    assert found_recorded(run_on_host(bounded(switch_outcome_command(earlier), 30.0)).stdout)


def test_the_look_after_a_lost_switch_says_whether_that_switch_found_the_slot_already_on_the_release(
    host: Host,
) -> None:
    """The switch's line saying it found the slot already on the release comes after its swap, so a lost reply lost
    it, and a host settled by the look said `"unchanged": false` though nothing moved (a rollback run again). The
    look now says it, from the switch's record on the host, for that switch alone: not after one that moved the slot
    (also back to a release an earlier switch found unchanged), nor for another release."""

    def looked_unchanged(release: RemoteRelease) -> bool:
        seen = run_on_host(bounded(switch_outcome_command(release), 30.0))
        assert seen.returncode == 0 and parse_head(seen.stdout) == release.commit, seen.stderr
        assert found_recorded(seen.stdout)
        return found_unchanged(seen.stdout)

    first = host.release()
    assert host.deploy(first).returncode == 0 and not looked_unchanged(first)
    assert found_unchanged(host.deploy(first).stdout) and looked_unchanged(first)
    commit_change(host.checkout, "index.php", "<?php echo 'two';\n")
    second = host.release()
    assert host.deploy(second).returncode == 0 and not looked_unchanged(second)
    back = host.deploy(first)  # to its kept tree: moved, though the last switch of `first` found it unchanged
    assert back.returncode == 0 and not found_unchanged(back.stdout) and not looked_unchanged(first), back.stderr
    assert found_unchanged(host.deploy(first).stdout) and looked_unchanged(first)
