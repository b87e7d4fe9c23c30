"""The git work run on an app server, built as argument lists and quoted into shell text here, and only here.

SSH always hands a command to the remote user's shell, so every value (paths, URLs, tags, submodule
names) passes through `shell_words`, which quotes each argument; nothing else in Sartoris builds remote
command text. Each script is one round trip, and runs under coreutils `timeout` so a host whose git hangs
stops by itself instead of finishing (and switching) after the controller gave up on it.

A slot on a host is a symbolic link to one of a few complete trees, switched with rename(2), so the web
server only ever sees the old tree or the new one:

    <remote_root>/php-slot0 -> .sartoris/php-slot0/trees/<commit>     the live tree (a git clone)
    <remote_root>/.sartoris/php-slot0/store.git                       objects: tags, submodule commits
    <remote_root>/.sartoris/php-slot0/trees/<commit>                  kept trees: instant rollback

A new tree starts as a hard-link copy of the live one (git replaces files rather than writing into them,
so the live tree is never touched) and only what changed is checked out; submodules whose commit did not
change are not touched at all. The switch script prints phase markers so a failure (or a timeout, whose
partial output we keep) is attributed to the step that was running.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from sartoris.results import Phase

PHASE_MARK = "sartoris-phase:"
ALREADY_PRESENT = "sartoris-fetch:present"
SUBMODULE_REF_PREFIX = "refs/sartoris/submodules/"
TIMEOUT_MARK = "sartoris:"  # stderr lines Sartoris's own host scripts write start with this
REMOTE_KILL_GRACE = 5  # seconds between the remote timeout's TERM and KILL
_REMOTE_MARGIN = 2.0  # the host gives up this much before the controller does

# Never prompt, never page, English messages (retry decisions read git's stderr).
_PREAMBLE = "export LC_ALL=C GIT_TERMINAL_PROMPT=0 GIT_SSH_COMMAND='ssh -o BatchMode=yes'"


@dataclass(frozen=True, slots=True)
class SubmoduleSpec:
    """A submodule recorded by the release: its .gitmodules name, path and the commit the tag pins."""

    name: str
    path: str
    commit: str


@dataclass(frozen=True, slots=True)
class RemoteRelease:
    """Everything an app server needs to fetch and switch one slot to one tag."""

    slot_path: str
    fetch_url: str
    tag: str
    commit: str
    submodules: tuple[SubmoduleSpec, ...] = ()
    keep_trees: int = 3

    @property
    def root(self) -> str:
        return posixpath.dirname(self.slot_path.rstrip("/"))

    @property
    def slot_name(self) -> str:
        return posixpath.basename(self.slot_path.rstrip("/"))

    @property
    def state_dir(self) -> str:
        """Where Sartoris keeps the slot's objects and trees on the host."""
        return posixpath.join(self.root, ".sartoris", self.slot_name)

    @property
    def store(self) -> str:
        return posixpath.join(self.state_dir, "store.git")

    @property
    def trees(self) -> str:
        return posixpath.join(self.state_dir, "trees")


def shell_words(*args: str) -> str:
    """One command line from an argument list, each argument quoted: the single quoting point."""
    return " ".join(shlex.quote(arg) for arg in args)


def submodule_ref(commit: str) -> str:
    """The ref under which a submodule commit is published beside the tag (so hosts never ask upstream)."""
    return f"{SUBMODULE_REF_PREFIX}{commit}"


def bounded(script: str, seconds: float) -> str:
    """Run `script` under the host's own deadline, a little before the controller's (see module docstring);
    when it fires, say so on stderr (timeout itself exits 124, or 137 after the KILL, silently)."""
    limit = max(seconds - _REMOTE_MARGIN, 1.0)
    said = shell_words("echo", f"{TIMEOUT_MARK} timed out after {limit:g}s (stopped on the host)")
    return (
        shell_words("timeout", "-k", str(REMOTE_KILL_GRACE), f"{limit:g}", "sh", "-c", script)
        + f"; rc=$?; if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then {said} >&2; fi; exit $rc"
    )


def _script(lines: Iterable[str]) -> str:
    return "\n".join([_PREAMBLE, *lines])


def _mark(phase: Phase) -> str:
    return shell_words("echo", f"{PHASE_MARK}{phase.value}")


def fetch_command(release: RemoteRelease) -> str:
    """Create the slot's object store if the host has none, then fetch the tag and submodule commits into it,
    unless every commit is already there (a rollback or a retry fetches nothing)."""
    store = release.store
    refspecs = [f"+refs/tags/{release.tag}:refs/tags/{release.tag}"]
    refspecs += [f"+{submodule_ref(s.commit)}:{submodule_ref(s.commit)}" for s in release.submodules]
    present = " && ".join(
        shell_words("git", "--git-dir", store, "cat-file", "-e", f"{commit}^{{commit}}") + " 2>/dev/null"
        for commit in (release.commit, *(s.commit for s in release.submodules))
    )
    fetch = shell_words(
        "git",
        "--git-dir",
        store,
        "fetch",
        "--quiet",
        "--no-tags",
        "--no-write-fetch-head",
        release.fetch_url,
        *refspecs,
    )
    return _script(
        [
            f"[ -d {shlex.quote(store)} ] || {shell_words('git', 'init', '--quiet', '--bare', store)} || exit",
            f"if {present}; then {shell_words('echo', ALREADY_PRESENT)}; else {fetch}; fi",
        ]
    )


def switch_command(release: RemoteRelease) -> str:
    """Build (or reuse) the tree for the release beside the live one, then swap the slot link to it."""
    q = shlex.quote
    tree = posixpath.join(release.trees, release.commit)
    link_target = posixpath.relpath(tree, release.root)
    building = f"{tree}.building"
    lines = [
        shell_words("cd", release.root) + " || exit",
        _mark(Phase.CHECKOUT),
        f"if [ -e {q(release.slot_name)} ] && [ ! -L {q(release.slot_name)} ]; then"
        f" echo {q(f'{release.slot_path} is not managed by sartoris (a directory, not a link); move it away')} >&2;"
        " exit 2; fi",
        f"live=$(readlink {q(release.slot_name)})",
        f'if [ "$live" != {q(link_target)} ] && ! {_tree_ready(tree, release.commit)}; then',
        f"  rm -rf {q(building)} || exit",
        f"  mkdir -p {q(release.trees)} || exit",
        f'  if [ -n "$live" ] && [ -d "$live/.git" ]; then cp -al "$live" {q(building)} || exit;'
        f" else {shell_words('git', 'clone', '--quiet', '--shared', '--no-checkout', release.store, building)}"
        " || exit; fi",
        "  "
        + shell_words(
            "git",
            "-C",
            building,
            # cp -al changed every file's ctime (link(2) does); mtime, size and inode still match the index,
            # so trusting ctime would make git re-read every file of the tree.
            "-c",
            "core.trustctime=false",
            "-c",
            "advice.detachedHead=false",
            "checkout",
            "--quiet",
            "--force",
            "--detach",
            release.commit,
        )
        + " || exit",
    ]
    if release.submodules:
        lines.append("  " + _mark(Phase.SUBMODULES))
        lines += ["  " + line for line in _submodule_lines(release, building)]
    lines += [
        f"  rm -rf {q(tree)} && mv {q(building)} {q(tree)} || exit",
        "fi",
        # The swap: a new link renamed over the old one is atomic; `ln -sfn` is not.
        f"ln -sfn {q(link_target)} {q(release.slot_name + '.sartoris-new')}"
        f" && mv -T {q(release.slot_name + '.sartoris-new')} {q(release.slot_name)} || exit",
        f"touch {q(tree)}",
        _prune_lines(release),
        _mark(Phase.DONE),
    ]
    return _script(lines)


def _tree_ready(tree: str, commit: str) -> str:
    """A kept tree already at `commit` (rollback): reuse it as is."""
    head = posixpath.join(tree, ".git", "HEAD")
    return f'{{ [ -f {shlex.quote(head)} ] && read -r h < {shlex.quote(head)} && [ "$h" = {shlex.quote(commit)} ]; }}'


def _submodule_lines(release: RemoteRelease, building: str) -> list[str]:
    """Bring each submodule whose pinned commit changed to it, from the slot's own object store.

    A submodule's HEAD file is read with the shell's `read` (no process), so an unchanged submodule
    costs nothing; changed ones are updated in one `git submodule update`.
    """
    q = shlex.quote
    lines = ["changed="]
    for module in release.submodules:
        head = posixpath.join(building, ".git", "modules", module.name, "HEAD")
        set_url = shell_words("git", "-C", building, "config", f"submodule.{module.name}.url", release.store)
        lines.append(
            f'h=; [ -f {q(head)} ] && read -r h < {q(head)}; [ "$h" = {q(module.commit)} ] ||'
            f" {{ changed=1; {set_url} || exit; }}"
        )
    paths = [module.path for module in release.submodules]
    lines.append(
        '[ -z "$changed" ] || '
        + shell_words(
            "git",
            "-C",
            building,
            "-c",
            "protocol.file.allow=always",
            "-c",
            "core.trustctime=false",
            "submodule",
            "--quiet",
            "update",
            "--init",
            "--force",
            "--",
            *paths,
        )
        + " || exit"
    )
    return lines


def _prune_lines(release: RemoteRelease) -> str:
    """Keep the live tree and the `keep_trees` newest others; remove older ones and abandoned builds.
    Tree names are commit ids, so `ls` output splits safely; the subshell keeps the cwd."""
    return (
        f"(cd {shlex.quote(release.trees)} && n=0 && for t in $(ls -1t); do"
        ' case "$t" in *.building) rm -rf "$t"; continue;; esac;'
        f' [ "$t" = {shlex.quote(release.commit)} ] && continue;'
        f' n=$((n+1)); [ $n -gt {release.keep_trees} ] && rm -rf "$t"; done); true'
    )


def status_command(slot_path: str) -> str:
    """Print the commit the slot's live tree has checked out; nothing when there is no slot at all. A slot
    that exists but cannot be read (a dangling link, a corrupt repository) fails, with git's reason."""
    q = shlex.quote(slot_path)
    head = shell_words("git", "-C", slot_path, "rev-parse", "--verify", "HEAD^{commit}")
    return _script([f"if [ -e {q} ] || [ -L {q} ]; then {head}; fi"])


def last_phase(stdout: str, default: Phase) -> Phase:
    """The last phase marker a switch script printed: where it was when it stopped."""
    phase = default
    for line in stdout.splitlines():
        if line.startswith(PHASE_MARK):
            phase = Phase(line[len(PHASE_MARK) :].strip())
    return phase


def parse_head(stdout: str) -> str | None:
    """The 40-hex commit a status script printed, or None."""
    for line in stdout.split():
        word = line.strip()
        if len(word) == 40 and all(c in "0123456789abcdef" for c in word):
            return word
    return None
