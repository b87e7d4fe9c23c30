"""The git work run on an app server, built as argument lists and quoted into shell text here, and only here.

SSH always hands a command to the remote user's shell, so every value (paths, URLs, tags, submodule
names) passes through `shell_words`, which quotes each argument; nothing else in Sartoris builds remote
command text. Each script is one round trip: the switch script prints phase markers on stdout so a
failure (or a timeout, whose partial output we keep) is attributed to the step that was running.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from sartoris.results import Phase

PHASE_MARK = "sartoris-phase:"
ALREADY_PRESENT = "sartoris-fetch:present"
SUBMODULE_REF_PREFIX = "refs/sartoris/submodules/"

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


def shell_words(*args: str) -> str:
    """One command line from an argument list, each argument quoted: the single quoting point."""
    return " ".join(shlex.quote(arg) for arg in args)


def submodule_ref(commit: str) -> str:
    """The ref under which a submodule commit is published beside the tag (so hosts never ask upstream)."""
    return f"{SUBMODULE_REF_PREFIX}{commit}"


def _script(lines: Iterable[str]) -> str:
    return "\n".join([_PREAMBLE, *lines])


def _mark(phase: Phase) -> str:
    return shell_words("echo", f"{PHASE_MARK}{phase.value}")


def fetch_command(release: RemoteRelease) -> str:
    """Create the slot's repository if the host has none (no checkout), then fetch the tag and submodule
    commits, unless every commit is already there (a rollback or a retry fetches nothing)."""
    slot = release.slot_path
    refspecs = [f"+refs/tags/{release.tag}:refs/tags/{release.tag}"]
    refspecs += [f"+{submodule_ref(s.commit)}:{submodule_ref(s.commit)}" for s in release.submodules]
    present = " && ".join(
        shell_words("git", "-C", slot, "cat-file", "-e", f"{commit}^{{commit}}") + " 2>/dev/null"
        for commit in (release.commit, *(s.commit for s in release.submodules))
    )
    fetch = shell_words(
        "git", "-C", slot, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", release.fetch_url, *refspecs
    )
    return _script(
        [
            f"[ -d {shlex.quote(slot + '/.git')} ] || {shell_words('git', 'init', '--quiet', slot)} || exit",
            f"if {present}; then {shell_words('echo', ALREADY_PRESENT)}; else {fetch}; fi",
        ]
    )


def switch_command(release: RemoteRelease) -> str:
    """Check the fetched tag out in the slot and bring submodules to the pinned commits from the slot's own objects."""
    slot = release.slot_path
    lines = [
        shell_words("cd", slot) + " || exit",
        _mark(Phase.CHECKOUT),
        shell_words(
            "git", "-c", "advice.detachedHead=false", "checkout", "--quiet", "--force", "--detach", release.commit,
        ) + " || exit",
    ]
    if release.submodules:
        # Submodule commits were fetched into the slot's own repository, so each submodule clones
        # from there: no host ever contacts a submodule's upstream. The URL is written to the slot's
        # config (not passed with -c) so `git submodule status` on the host tells the truth too.
        lines.append(_mark(Phase.SUBMODULES))
        lines += [
            shell_words("git", "config", f"submodule.{s.name}.url", f"{slot}/.git") + " || exit"
            for s in release.submodules
        ]
        lines.append(
            shell_words(
                "git", "-c", "protocol.file.allow=always", "submodule", "--quiet", "update", "--init", "--force",
                "--", *(s.path for s in release.submodules),
            ) + " || exit"
        )
    lines.append(_mark(Phase.DONE))
    return _script(lines)


def status_command(slot_path: str) -> str:
    """Print the commit checked out in the slot, or nothing when the slot has no repository or no checkout."""
    head = shell_words("git", "-C", slot_path, "rev-parse", "--quiet", "--verify", "HEAD^{commit}")
    return _script([f"if [ -d {shlex.quote(slot_path + '/.git')} ]; then {head} || true; fi"])


def last_phase(stdout: str, default: Phase) -> Phase:
    """The last phase marker a switch script printed: where it was when it stopped."""
    phase = default
    for line in stdout.splitlines():
        if line.startswith(PHASE_MARK):
            phase = Phase(line[len(PHASE_MARK):].strip())
    return phase


def parse_head(stdout: str) -> str | None:
    """The 40-hex commit a status script printed, or None."""
    for line in stdout.split():
        word = line.strip()
        if len(word) == 40 and all(c in "0123456789abcdef" for c in word):
            return word
    return None
