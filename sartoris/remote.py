"""The git work run on an app server, built as argument lists and quoted into shell text here, and only here.

SSH always hands a command to the remote user's shell, so every value (paths, URLs, tags, submodule
names) passes through `shell_words`, which quotes each argument; nothing else in Sartoris builds remote
command text. Each script is one round trip: a short command line runs `sh` under coreutils `timeout`, so a host
whose git hangs stops by itself instead of finishing (and switching) after the controller gave up on it, and the
script itself follows on that command's standard input, however many submodules it names.

A slot on a host is a symbolic link to one of a few complete trees, switched with rename(2), so the web
server only ever sees the old tree or the new one:

    <remote_root>/php-slot0 -> .sartoris/php-slot0/trees/<commit>     the live tree (a git clone)
    <remote_root>/.sartoris/php-slot0/store.git                       objects: tags, submodule commits
    <remote_root>/.sartoris/php-slot0/trees/<commit>                  kept trees: instant rollback (reused
                                                                      once git says they are their commit)

A new tree starts as a tree the prune would remove anyway (recycled), else as a hard-link copy of the live one (git
replaces files rather than writing into them, so no other tree is ever touched), and only what changed is checked
out; submodules whose commit did not change are not touched at all (a submodule the release dropped or moved has its
old work tree removed first). Those starts only save work: a build from one that fails (a tree whose `.git` someone
broke) is thrown away and made again from a fresh clone of the store, which the switch says in a note (NOTE_MARK),
and only that build's failure fails the host. The switch script prints phase markers so a failure (or a timeout,
whose partial output we keep) is attributed to the step that was running, and holds the slot's lock on the host
while it runs, so two switches of one slot never interleave.
"""

from __future__ import annotations

import hashlib
import posixpath
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sartoris.results import Phase

PHASE_MARK = "sartoris-phase:"
ALREADY_PRESENT = "sartoris-fetch:present"
NOT_A_CHECKOUT = "sartoris-status:not-a-checkout"
TREE_GONE = "sartoris-status:tree-gone "  # then the target of the slot's link, a tree of the slot's that is gone
NOT_OURS = "sartoris-status:not-ours "  # then why: a status line saying the slot path is not Sartoris's
SCRIPT_END = "sartoris-script:end"  # the last line of every bounded script: it ran, and to its end
# the first line of every script's output: what comes before it is the login shell's (see script_lines)
SCRIPT_START = "sartoris-script:start"
SUBMODULE_REF_PREFIX = "refs/sartoris/submodules/"
OWN_LINE_MARK = "sartoris:"  # stderr lines Sartoris's own host scripts write start with this
WAIT_MARK = "sartoris-wait:"  # a note, not an error: the switch waited for the slot's lock on the host
# a note, not an error: the switch built the release's tree from a fresh clone because a quicker start failed
NOTE_MARK = "sartoris-note:"
# a stdout line after the swap's marker: the slot was already linked to the release's tree, so nothing changed there
UNCHANGED_MARK = "sartoris-switch:unchanged"
# a stdout line of the look at a lost switch: the slot's switch record names the release (see _SWITCH_RECORD)
RECORDED_MARK = "sartoris-switch:recorded"
# a stdout line of the prune after the swap, then a tree's path: that old tree (or leftover build) could not be removed
UNPRUNED_MARK = "sartoris-switch:unpruned"
REMOTE_KILL_GRACE = 5  # seconds between the remote timeout's TERM and KILL
_REMOTE_MARGIN = 2.0  # the host gives up this much before the controller does

# Repositories made on hosts get no template (sample hooks, description): files nobody reads, written per tree.
_NO_TEMPLATE = "--template="

# Trees and submodules are clones of the slot's store sharing its objects, checked out by Sartoris, with no
# reflogs: a hard-link copy of a tree would share them with the tree it came from, and git appends in place.
_CLONE_OPTIONS = ("--quiet", "--shared", "--no-checkout", _NO_TEMPLATE, "--config", "core.logAllRefUpdates=false")

# Never prompt, never page, English messages (retry decisions read git's stderr). And none of the variables that
# point git at another repository, work tree, index or config, which a deploy account's login shell may set
# (`git rev-parse --local-env-vars`, plus the namespace and global config): with GIT_WORK_TREE set, the checkouts
# wrote into the live tree. `unset` is a shell builtin: no process.
_GIT_LOCATION_VARIABLES = (
    "GIT_ALTERNATE_OBJECT_DIRECTORIES GIT_CONFIG GIT_CONFIG_PARAMETERS GIT_CONFIG_COUNT GIT_OBJECT_DIRECTORY GIT_DIR"
    " GIT_WORK_TREE GIT_IMPLICIT_WORK_TREE GIT_GRAFT_FILE GIT_INDEX_FILE GIT_NO_REPLACE_OBJECTS GIT_REPLACE_REF_BASE"
    " GIT_PREFIX GIT_INTERNAL_SUPER_PREFIX GIT_SHALLOW_FILE GIT_COMMON_DIR GIT_NAMESPACE GIT_CEILING_DIRECTORIES"
)
_PREAMBLE = (
    f"unset {_GIT_LOCATION_VARIABLES}; export LC_ALL=C GIT_TERMINAL_PROMPT=0 GIT_SSH_COMMAND='ssh -o BatchMode=yes'"
)


@dataclass(frozen=True, slots=True)
class SubmoduleSpec:
    """A submodule recorded by the release: its .gitmodules name, path and the commit the tag pins."""

    name: str
    path: str  # from the slot's root, also for a submodule inside a submodule
    commit: str
    parent: str = ""  # the path of the submodule whose .gitmodules names this one; "" for the slot's own


@dataclass(frozen=True, slots=True)
class RemoteRelease:
    """Everything an app server needs to fetch and switch one slot to one tag."""

    slot_path: str
    fetch_url: str
    tag: str
    commit: str
    submodules: tuple[SubmoduleSpec, ...] = ()
    keep_trees: int = 3
    # Every file the scripts make gets it: the account's own umask (a `umask 077` in its shell startup files) made
    # the files a release changed unreadable to the web server, beside links to the older, readable ones.
    umask: str = "022"
    # this run's token (random, see deploy): its switch writes it in the slot's record (_SWITCH_RECORD), so that the
    # look at a lost switch reads that switch's record, not one an earlier run of the same commit left
    run: str = ""

    @property
    def run_word(self) -> str:
        """The run's token as one shell word of the record: `-` for none."""
        return self.run or "-"

    @property
    def root(self) -> str:
        return posixpath.dirname(self.slot_path.rstrip("/"))

    @property
    def slot_name(self) -> str:
        return posixpath.basename(self.slot_path.rstrip("/"))

    @property
    def state_dir(self) -> str:
        """Where Sartoris keeps the slot's objects and trees on the host."""
        return _state_dir(self.slot_path)

    @property
    def store(self) -> str:
        return posixpath.join(self.state_dir, "store.git")

    @property
    def trees(self) -> str:
        return posixpath.join(self.state_dir, "trees")


def _state_dir(slot_path: str) -> str:
    """Where Sartoris keeps the objects and trees of the slot at `slot_path` on a host."""
    root, name = posixpath.split(slot_path.rstrip("/"))
    return posixpath.join(root, ".sartoris", name)


def shell_words(*args: str) -> str:
    """One command line from an argument list, each argument quoted: the single quoting point."""
    return " ".join(shlex.quote(arg) for arg in args)


def submodule_ref(commit: str) -> str:
    """The ref under which a submodule commit is published beside the tag (so hosts never ask upstream)."""
    return f"{SUBMODULE_REF_PREFIX}{commit}"


@dataclass(frozen=True, slots=True)
class HostCommand:
    """A host script and the command line that runs it, the script on its standard input: Linux takes at most
    128 KiB in one argument (MAX_ARG_STRLEN), and a release with a hundred submodules needs a longer script."""

    command: str
    script: str


def bounded(script: str, seconds: float) -> HostCommand:
    """Run `script` under the host's own deadline, a little before the controller's (see module docstring);
    when it fires, say so on stderr (timeout itself exits 124 silently). Exit 137 is a KILL: the deadline's, for a
    script still running REMOTE_KILL_GRACE seconds after it, or anyone's (the kernel's out-of-memory killer), which
    timeout cannot tell apart, so neither is called a timeout."""
    timed_out = shell_words("echo", _timed_out(seconds))
    killed = shell_words("echo", _killed(seconds))
    command = (
        shell_words(*_host_timeout(seconds), "sh", "-s")
        + f"; rc=$?; if [ $rc -eq 124 ]; then {timed_out} >&2; elif [ $rc -eq 137 ]; then {killed} >&2; fi; exit $rc"
    )
    # One brace group: sh parses all of it before it runs any of it (a script cut short in transit runs nothing),
    # and what runs in it reads /dev/null, never the rest of the script. Its last line says it ran to its end:
    # with no script at all (stdin read by the account's shell startup files, or a forced command's /dev/null),
    # sh exits 0 having done nothing, which must not pass for a fetch or a switch.
    # (on a line of its own, whatever a login shell printed before without a newline)
    end = shell_words("printf", "\\n%s\\n", SCRIPT_END)
    return HostCommand(command, "{\n" + _START + "\n" + script + "\n" + end + "\n} </dev/null\n")


# On a line of its own (after a newline: a login shell's startup files may print without one), before anything else.
_START = shell_words("printf", "\\n%s\\n", SCRIPT_START)


def script_lines(stdout: str) -> list[str]:
    """The lines a host script printed: those after its SCRIPT_START line. What the account's shell startup files
    printed before the script ran (an xterm title sequence, a banner, with or without a newline) is not the
    script's: read as its answer, it hid the commit on the first line, or a slot path that is not Sartoris's, and a
    host was called current. Output without SCRIPT_START (none of the script ran, or an older one) is read whole."""
    lines = stdout.splitlines()
    return lines[lines.index(SCRIPT_START) + 1 :] if SCRIPT_START in lines else lines


def _host_timeout(seconds: float) -> tuple[str, ...]:
    """coreutils `timeout` with the host's own deadline for a command the controller gives `seconds`, and its KILL
    REMOTE_KILL_GRACE seconds after that: the words before the command it runs."""
    return ("timeout", "-k", str(REMOTE_KILL_GRACE), f"{host_deadline(seconds):g}")


def _timed_out(seconds: float) -> str:
    """The timeout's line: the host's deadline, and the timeout it stands in for (an operator who set
    command_timeout = 8 would not recognise a bare "6s")."""
    deadline, limit = _said(host_deadline(seconds)), _said(seconds)
    return f"{OWN_LINE_MARK} timed out on the host after {deadline}s (stopped ahead of the {limit}s timeout)"


def _said(seconds: float) -> str:
    """Seconds as a line says them: as configured (8, 1.5), or to a tenth for a computed wait (23.4719 -> 23.5)."""
    return f"{seconds:g}" if round(seconds, 1) == seconds else f"{seconds:.1f}"


def _killed(seconds: float) -> str:
    return (
        f"{OWN_LINE_MARK} killed on the host (SIGKILL: out of memory, or still running {REMOTE_KILL_GRACE}s after"
        f" its deadline of {_said(host_deadline(seconds))}s)"
    )


def deadline_error(exit_status: int, seconds: float) -> str | None:
    """What a command run under the host's own deadline (_host_timeout) that exited `exit_status` says about it,
    as `bounded`'s wrapper says it on stderr: a timeout (124), a KILL (137, see bounded); None for any other status.
    For a command whose shell `timeout` replaced (status_command): nothing is left on the host to say it."""
    return {124: _timed_out(seconds), 137: _killed(seconds)}.get(exit_status)


def stopped_on_the_host(exit_status: int) -> bool:
    """A command run under the host's own deadline (_host_timeout) was stopped by it: timed out (124) or killed (137,
    see deadline_error). Its processes' last words (git's "early EOF" of an upload-pack the kill ended) are not the
    reason it failed, and a retry has no time left to succeed. (A 137 may also be the out-of-memory killer's: not
    retried either.)"""
    return deadline_error(exit_status, 0.0) is not None


def host_deadline(seconds: float) -> float:
    """The host's own deadline for a command the controller gives `seconds`: the margin less, or half the time when
    that is too short for one, so the host never outlives the controller."""
    return seconds - _REMOTE_MARGIN if seconds > 2 * _REMOTE_MARGIN else seconds / 2


def gone_from_the_host(seconds: float) -> float:
    """Seconds after the controller sent a command `bounded` by `seconds` by which it has ended on the host, however
    it ran: the host's deadline, the KILL REMOTE_KILL_GRACE seconds after it, and the margin again for the command's
    way to the host (it starts there after it was sent, by about a round trip)."""
    return host_deadline(seconds) + REMOTE_KILL_GRACE + _REMOTE_MARGIN


def ran_to_its_end(stdout: str) -> bool:
    """Whether a bounded script printed its last line (see bounded)."""
    return SCRIPT_END in script_lines(stdout)


NOT_RUN = "the host ran none of the script (its standard input was empty: does the account's shell read it?)"


def _script(lines: Iterable[str]) -> str:
    return "\n".join([_PREAMBLE, *lines])


def _mark(phase: Phase) -> str:
    return shell_words("echo", f"{PHASE_MARK}{phase.value}")


def fetch_command(release: RemoteRelease) -> str:
    """Create the slot's object store if the host has none, then fetch the tag and the submodule commits it has
    not fetched before into it, unless every commit is already there (a rollback or a retry fetches nothing)."""
    store = release.store
    modules = [s.commit for s in release.submodules]
    commits = [release.commit, *modules]
    # one process asks the store about every commit at once, however many submodules the release pins
    check = shell_words("git", "--git-dir", store, "cat-file", "--batch-check=%(objecttype)")
    names = shell_words("printf", r"%s^{commit}\n", *commits)
    present = f'[ "$({names} | {check} 2>/dev/null | grep -cx commit)" = {len(commits)} ]'
    # Each submodule commit under its own ref (its objects must not be pruned), asked for only when the store
    # has not fetched it before: a fetch naming 150 refs the store already has costs 20 ms more in git than one
    # naming the tag alone. An empty file per fetched commit says so (a shell test reads it; git ignores it).
    ref, fetched = submodule_ref("$c"), shlex.quote(posixpath.join(store, _FETCHED_DIR))
    wanted = (
        f'for c in {shell_words(*modules)}; do {{ [ -z "$again" ] && [ -f {fetched}/"$c" ]; }} ||'
        f' set -- "$@" "+{ref}:{ref}"; done; '
        if modules
        else ""
    )
    fetch = wanted + 'sartoris_drop_stale "$@"; ' + shell_words(
        "git",
        "--git-dir",
        store,
        "-c",
        "maintenance.auto=false",  # asked for below, only when due
        "fetch",
        "--quiet",
        "--no-tags",
        "--no-write-fetch-head",
        release.fetch_url,
        f"+refs/tags/{release.tag}:refs/tags/{release.tag}",
    ) + ' "$@"'
    # only once the fetch succeeded; a mark that cannot be written costs the next fetch a refspec, nothing else
    # (written with `true`: a failed redirection of the special builtin `:` ends dash, `2>/dev/null` or not)
    remember = (
        f' if [ $# -gt 0 ]; then {{ [ -d {fetched} ] || mkdir {fetched}; }} 2>/dev/null &&'
        f' for r; do true > {fetched}/"${{r##*/}}"; done 2>/dev/null; fi;'
        if modules
        else ""
    )
    # A new release's tag is not on the host yet, so a shell test (no process) sends it straight to the fetch;
    # only a known tag (rollback, retry) is checked object by object (a packed ref just fetches, harmlessly).
    tag_ref = posixpath.join(store, "refs", "tags", release.tag)
    object_format = "sha256" if len(release.commit) == 64 else "sha1"  # the store must hash like the release
    # Made under a name of its own and renamed into place: two first fetches at once (a host listed under two
    # names, two deploy hosts) both ran `git init` on the store, and one failed ("cannot mkdir … File exists",
    # or the other's half-written config). The rename is atomic; the one that loses it uses the other's store.
    made, quoted = shlex.quote(f"{store}.init-") + "$$", shlex.quote(store)  # $$: this shell's pid, digits only
    # An init that fails (a full disk) removes what it made: left there, each first deploy's try kept its own.
    # a new store gets its fetch mark, empty (a builtin): nothing was left in it to look for
    new_mark = f"{made}/{shlex.quote(_FETCH_MARK)}"
    init = (
        f"{{ {shell_words('git', 'init', '--quiet', '--bare', _NO_TEMPLATE, f'--object-format={object_format}')}"
        f" {made} && {{ {{ true > {new_mark}; }} 2>/dev/null; mv -T {made} {quoted}; }}; }}"
        f" || {{ rm -rf {made}; [ -d {quoted} ]; }}"
    )
    # The fetch holds the store open while it runs; before its git, it removes the lock files and stores made aside
    # that fetches killed on the host left (see _stale_files_removal), and when it ends, the store's partial files (see
    # _partial_files_removal): after its own failure, having let go of the store first, so that of two fetches
    # failing at once the last one sees no other; after a success too, only when a shell glob finds some. A fetch
    # killed on the host runs neither: the store's fetch mark (_fetch_mark) tells the next one to.
    held, let_go = f"command exec {_HELD_FD}<{quoted}", f"command exec {_HELD_FD}<&-"
    failed = f"{{ rc=$?; {let_go}; sartoris_drop_partial loose || dirty=1; sartoris_unmark; exit $rc; }}"
    return _script(
        [
            _umask_line(release),
            f"[ -d {quoted} ] || {{ {init}; }} || exit",
            _alone_with_the_store(store),
            _partial_files_removal(store),
            _stale_files_removal(release),
            *_fetch_mark(store),
            # a known tag with a commit missing (a store someone pruned) asks for every commit again, marks or not
            f"again=; if [ -f {shlex.quote(tag_ref)} ] && {{ again=1; {present}; }};"
            f" then {shell_words('echo', ALREADY_PRESENT)};"
            f" else set --; {held}; sartoris_mark; {fetch} {_HELD_FD}<&- || {failed};{remember}"
            f" sartoris_drop_partial; {_housekeeping_when_due(store)}; fi; sartoris_unmark",
        ]
    )


def _keep_existing(words: str) -> str:
    """Shell that appends to the positional parameters each of `words` (shell words, a glob among them) that
    exists: a glob that matches nothing stays itself, and a path that is not there would fail a command given it.
    Shell tests only: no process."""
    return f'for w in {words}; do [ ! -e "$w" ] || set -- "$@" "$w"; done'


def _umask_line(release: RemoteRelease) -> str:
    """The release's umask for what the script makes (a builtin: no process), whatever the account's login set."""
    return shell_words("umask", release.umask)


# The file descriptor on which every fetch's shell holds its slot's store open while it runs (a builtin: no process).
# Not its git fetch: what that leaves running a moment after it failed (an upload-pack, an ssh) would look like
# another fetch to its own shell. Its `git gc --auto` has it, a gc git detaches too: that one writes packs as well.
_HELD_FD = 7


def _alone_with_the_store(store: str) -> str:
    """`sartoris_alone`: whether no other process holds the store open (another fetch of the slot holds it on
    _HELD_FD while it runs; /proc says who does). False without /proc, where another fetch cannot be seen. Shell
    tests only: no process."""
    # every descriptor, not only _HELD_FD: dash moves that one aside while a command that closes it runs
    return (
        "sartoris_alone() { [ -d /proc/$$/fd ] || return 1; for h in /proc/[0-9]*/fd/*; do"
        f' case "$h" in /proc/$$/*) ;; *) [ ! "$h" -ef {shlex.quote(store)} ] || return 1;; esac; done; }}'
    )


def _partial_files_removal(store: str) -> str:
    """A shell function that removes the partial files git's object writers leave in the store when they fail
    (`objects/pack/tmp_*` of a pack, `objects/??/tmp_obj_*` of a loose object, `objects/tmp_obj_*` of one over
    core.bigFileThreshold, which git streams: a full disk left 3 MB a try, kept by git for two weeks), unless another
    fetch holds the store open (sartoris_alone): those may be its files, being written; it fails then (the files are
    left), else succeeds. With an argument (after a failure, or when the fetch mark says a fetch was killed: see
    _fetch_mark) loose objects' too; without (after a success: what a fetch that found another running left) only
    packs'. No process but the `rm`, and that only when a shell glob finds such a file."""
    objects = shlex.quote(posixpath.join(store, "objects"))
    return (
        "sartoris_drop_partial() {"
        f" loose=$1; set --; {_keep_existing(objects + '/pack/tmp_*')};"
        # looking for a loose object's costs a read of up to 256 folders: only when one may have been left
        f" if [ -n \"$loose\" ]; then {_keep_existing(objects + '/??/tmp_obj_* ' + objects + '/tmp_obj_*')}; fi;"
        ' [ $# -gt 0 ] || return 0; sartoris_alone || return 1; rm -f -- "$@" 2>/dev/null; }'
    )


# In a slot's store on a host: the pid of the fetch whose git is running (or was, when it was killed), else empty.
_FETCH_MARK = "sartoris-fetching"


def _fetch_mark(store: str) -> list[str]:
    """The store's fetch mark, read at the start of a fetch and written around its git (`sartoris_mark`, then
    `sartoris_unmark` once the fetch ended, as it succeeded or failed), with shell builtins only (`read`, `echo`,
    `true`: no process, no `rm`). A fetch killed on the host (its deadline's KILL takes the whole script: no failure
    handler runs) left partial loose objects, tens of MB for a big file, that a successful fetch does not look for
    (see _partial_files_removal); it also left its pid in the mark, so the next fetch, finding the mark not empty,
    looks for them and removes them (sartoris_drop_partial loose), then empties it. So does the first fetch into a
    store with no mark (made before Sartoris kept one: what fetches killed then left). A fetch leaves the mark as it
    is (`dirty`) when its removal was put off by another fetch holding the store, or when it found the mark full as
    it marked it (another fetch of the slot, from another deploy host, running: it may yet be killed), and empties
    it only while it holds its own pid; the next fetch looks again then. A full mark found while another fetch holds
    the store (sartoris_alone: a /proc scan, only then) may be that fetch's, in progress: neither it nor any partial
    file is touched. A store with no mark gets an empty one once looked at. Only two fetches marking the store at
    the same instant, the one whose pid is overwritten then killed, leave their files to the next failed or killed
    fetch."""
    mark = shlex.quote(posixpath.join(store, _FETCH_MARK))
    return [
        f'sartoris_mark() {{ mine=$$; {{ m=; read -r m < {mark}; [ -z "$m" ] || dirty=1; echo $$ > {mark}; }}'
        " 2>/dev/null; }",
        'sartoris_unmark() { [ -n "$dirty" ] || [ -z "$mine" ] ||'
        f' {{ m=; read -r m < {mark}; [ "$m" != "$mine" ] || true > {mark}; }} 2>/dev/null; }}',
        # a mark that cannot be read (none yet) says as much as one left full; `mine`: what this fetch may empty
        f"mine=unmarked dirty=; {{ [ ! -f {mark} ] || read -r mine < {mark}; }} 2>/dev/null;"
        ' if [ -z "$mine" ]; then true;'
        # another fetch holding the store (from another deploy host) may have marked it: its mark and files are its own
        # (a /proc scan: only for a full mark, after a killed fetch or beside a running one)
        ' elif [ "$mine" != unmarked ] && ! sartoris_alone; then dirty=1;'
        " elif ! sartoris_drop_partial loose; then dirty=1;"
        # a store from before the mark gets one, empty: its next fetches do not look again
        f' elif [ "$mine" = unmarked ]; then {{ true > {mark}; }} 2>/dev/null;'
        " else sartoris_unmark; fi",
    ]


def _stale_files_removal(release: RemoteRelease) -> str:
    """`sartoris_drop_stale`, run before the fetch with the submodule refspecs it asks for: removes what a fetch
    killed on the host (the KILL after its deadline, the out-of-memory killer, a reboot) left in the slot's state
    folder. The lock files of the refs it updates (the tag's, each submodule ref's) and of the store's packed refs,
    shallow file and config, on which git says "cannot lock ref … File exists" again at each retry, unless another
    fetch holds the store open (sartoris_alone): those may be its own, held. And the stores a first fetch was making
    aside (`store.git.init-<pid>`, see fetch_command), kept for good, whose shell is gone from /proc: one a running
    shell is making is its own. No process but the `rm`, and that only when a shell test or glob finds such a file."""
    q, store = shlex.quote, release.store
    # a glob that matches nothing leaves a word that is no pid; without /proc, a running shell cannot be seen
    made_aside = (
        f"for d in {q(store + '.init-')}*; do p=${{d##*.init-}};"
        ' case $p in ""|*[!0-9]*) ;; *) [ ! -d /proc/$$ ] || [ -d /proc/$p ] || rm -rf -- "$d" 2>/dev/null;; esac; done'
    )
    fixed = [posixpath.join(store, "refs", "tags", f"{release.tag}.lock")]
    fixed += [posixpath.join(store, f"{name}.lock") for name in ("packed-refs", "shallow", "config")]
    return (
        f"sartoris_drop_stale() {{ {made_aside};"
        # each refspec (+<ref>:<ref>) for the lock of the ref it updates, if there is one
        f' for r; do shift; r={q(store)}/"${{r##*:}}".lock; [ ! -e "$r" ] || set -- "$@" "$r"; done;'
        f" {_keep_existing(shell_words(*fixed))};"
        ' [ $# -gt 0 ] && sartoris_alone || return 0; rm -f -- "$@" 2>/dev/null; }'
    )


_FETCHED_DIR = "sartoris-fetched"  # in a slot's store: an empty file per submodule commit fetched into it


def damaged_store_remedy(stderr: str, release: RemoteRelease, *, switch: bool = False) -> str | None:
    """What to do about a fetch (or, with `switch`, a switch) that failed because the slot's object store on the
    host is damaged, as git's words on its `stderr` show (a pack deleted: a ref of the store names an object it
    lacks, or the deltas the server sent have no base; a loose object emptied; the store folder emptied, its HEAD or
    objects gone; at the switch, a tree or file the checkout reads gone, which the fetch does not see when the
    store has every commit, as for a rollback or a retry), or None. Every later fetch or switch there fails alike
    until the store is removed, and Sartoris does not remove it itself: every tree of the slot on the host shares
    its objects, the live one too. Removing it is safe: the live tree's files stay, and the next sync fetches the
    release into a new store and builds the tree from a fresh clone of it (a copy of a tree whose objects are gone
    does not build)."""
    store = release.store
    objects = f"{store}/objects/"
    lines = stderr.splitlines()
    damaged = (
        "unresolved deltas left after unpacking" in stderr
        or any(line.startswith("fatal: bad object refs/") for line in lines)  # git's check of the store's refs
        or f"not a git repository: '{store}'" in stderr
        or any(objects in line and line.rstrip().endswith(("is empty", "is corrupt")) for line in lines)
        or (switch and any(line.startswith(_UNREADABLE_OBJECT) for line in lines))
    )
    if not damaged:
        return None
    return f"(the slot's object store on the host is damaged: remove {store} there, and the next sync fetches it anew)"


# git's words for an object it lacks, naming no repository. At the switch, the build's every object is the store's
# (its clones share them: --shared); at the fetch, they may be the publish repository's, whose git (a local path)
# writes to the same stderr.
_UNREADABLE_OBJECT = ("error: unable to read sha1 file of ", "fatal: unable to read tree ")


# git's own `gc --auto` thresholds (gc.auto 6700 loose objects, sampled as 27 in objects/17; gc.autoPackLimit 50)
_LOOSE_IN_SAMPLE_DIR = 27
_PACKS = 50


def _housekeeping_when_due(store: str) -> str:
    """`git gc --auto` on the store, started only when git's own thresholds say it has work: the same counts it
    makes, done with shell globs. After every fetch, git would start a process just to find it has none.
    A failed housekeeping leaves the fetch good, as in git."""
    sample, packs = posixpath.join(store, "objects", "17"), posixpath.join(store, "objects", "pack")
    gc = shell_words("git", "--git-dir", store, "gc", "--auto", "--quiet")
    return (
        f"set -- {shlex.quote(sample)}/*; n=$#; set -- {shlex.quote(packs)}/*.pack;"
        f" if [ $n -gt {_LOOSE_IN_SAMPLE_DIR} ] || [ $# -gt {_PACKS} ]; then {gc} || true; fi"
    )


def switch_command(release: RemoteRelease) -> str:
    """Build (or reuse) the tree for the release beside the live one, then swap the slot link to it.

    The new tree starts from a tree the prune would delete anyway (only what changed since is checked out, and the
    submodules whose files were changed on the host: _edited_since_built), else from a hard-link copy of the live
    tree (the same), else from an empty clone of the store. The first two are only ways to write
    less: a build from them that fails (a live tree whose `.git` someone broke is copied broken into every build) is
    thrown away and the tree built again from the next, a fresh clone last, with a note saying why
    (_fresh_clone_note); only the last one's failure fails the host, with its own error. Every step that has nothing
    to do is skipped by a shell test, not a process: a host pays for the git work and little else. A kept tree at
    the release (a rollback) is reused once git says its tracked files are its commit's (_matches_its_commit), else
    built again from a fresh clone. A slot already on the release says so (UNCHANGED_MARK): a run that moved none
    of its hosts does not read like one that switched them. Just before its swap it records the release on the host
    (_SWITCH_RECORD, with `unchanged` when it found it so) for a look at a switch whose reply was lost.
    """
    q = shlex.quote
    tree = posixpath.join(release.trees, release.commit)
    link_target = posixpath.relpath(tree, release.root)
    record = q(posixpath.join(release.state_dir, _SWITCH_RECORD))
    building = f"{tree}.building"
    clone = shell_words("git", "clone", *_CLONE_OPTIONS, release.store, building)
    done_and_unchanged = shell_words("printf", r"%s\n%s\n", f"{PHASE_MARK}{Phase.DONE.value}", UNCHANGED_MARK)
    lines = [
        _umask_line(release),
        shell_words("cd", release.root) + " || exit",
        # the tree being built, the store, and the store as a git config value: named once, used by the functions
        f"B={q(building)} S={q(release.store)} SE={q(_config_escape(release.store))}",
        *_SWITCH_FUNCTIONS,
        _leftovers_function(release),
        _build_function(release, building),
        _mark(Phase.CHECKOUT),
        _switch_lock(release),
        "{",
        # under the lock: a switch running meanwhile swaps the link and prunes the tree it pointed at
        f"[ -d {q(release.trees)} ] || mkdir -p {q(release.trees)} || exit",
        _refuse_a_slot_not_ours(release),
        _leftover_builds(release),
        # this switch's record (see _SWITCH_RECORD) starts empty: a shell test, no write, unless the last left one
        f"kept_changed= unchanged= fresh= edited=; [ ! -s {record} ] || {{ true > {record}; }} 2>/dev/null",
        # `-ef` (same file, links followed) instead of comparing `readlink` output: one process fewer
        f"if [ {q(release.slot_name)} -ef {q(tree)} ]; then",
        # the live tree is the release's: unless someone changed it on the host (its HEAD, or its files), which is
        # said, not hidden, nor mended in place (not atomic: the web server reads it meanwhile)
        f"  {_read_first_line(posixpath.join(tree, '.git', 'HEAD'))} if [ \"$h\" != {q(release.commit)} ]; then"
        f' echo {q(f"{OWN_LINE_MARK} the live tree {tree} is at")} "$h," {q(f"not {release.commit}: {_CHANGED}")} >&2;'
        " exit 1; fi",
        f"  {_matches_its_commit(tree)} || {{ {_say_what_changed(tree)}; exit 1; }}",
        f"  touch -c {q(tree)}; unchanged=1",
        # A kept tree of the release (a rollback) is reused as it is, unless someone changed it on the host: then it
        # is built again, here (not live, it can be replaced), from a fresh clone. Trees share unchanged files (hard
        # links): a file edited in place is edited in every tree holding it, the live one too, and a build from a
        # copy checks out no submodule whose commit the release keeps, so it would carry such an edit over.
        f"elif {_tree_ready(release, tree)} && {{ {_matches_its_commit(tree)} || {{ kept_changed=1; false; }}; }}; then"
        f" touch -c {q(tree)}",
        "else",
        "  tried=",  # the quicker starts that failed to build, said when the fresh clone is built instead
        "  " + _retired_tree(release),
        f'  if [ -z "$kept_changed" ] && [ -n "$retired" ] && {{ tried="a retired tree ($retired)";'
        f' mv {q(release.trees)}/"$retired" {q(building)} && {_edited_since_built(release, building, building)}'
        " && sartoris_leftovers && sartoris_build; } 2>/dev/null;"
        " then :;",
        # a live tree of ours shares the store's objects; a hand-made clone at the link would lack them
        f"  elif [ -z \"$kept_changed\" ] && [ -f {q(_objects_link(release.slot_name))} ]"
        f" && {_removed(building)}"
        ' && { tried="${tried:+$tried, then }a copy of the live tree";'
        f" {_hard_link_copy(release.slot_name + '/.', building)}"
        f" && {_edited_since_built(release, release.slot_name, building)}"
        " && sartoris_leftovers && sartoris_build; }"
        " 2>/dev/null; then :;",
        # its marker before the clone: a clone that fails is the checkout's, not the phase a quiet build reached
        f"  else {_fresh_clone_note(release, tree)} {_mark(Phase.CHECKOUT)}; {_removed(building)} && {clone}"
        " && fresh=1 edited= && sartoris_build || sartoris_give_up $?",
        "  fi",
        f"  [ ! -e {q(tree)} ] || rm -rf {q(tree)} || sartoris_give_up $?",
        f"  mv {q(building)} {q(tree)} || sartoris_give_up $?",
        "fi",
        # the record the look reads (see _SWITCH_RECORD): written before the swap, so that a swap that fails leaves
        # the record with the old tree live, never the new tree live without the record
        f'{{ {shell_words("echo", release.commit, release.run_word)}${{unchanged:+ {UNCHANGED_WORD}}} > {record}; }}'
        " 2>/dev/null",
        # The swap: a new link renamed over the old one is atomic; `ln -sfn` is not. One that fails (a read-only or
        # immutable deploy root) is the checkout's failure, not the submodules': its marker is printed then, not
        # before (a switch whose connection dropped dies at its next line of output; none comes before the swap).
        f"ln -sfn {q(link_target)} {q(release.slot_name + '.sartoris-new')}"
        f" && mv -T {q(release.slot_name + '.sartoris-new')} {q(release.slot_name)}"
        f" || {{ rc=$?; {_mark(Phase.CHECKOUT)}; exit $rc; }}",
        # switched: whatever happens to the prune below (a slow disk, the deadline), the host is on the release
        # said after the swap, as its marker is (a line of output before the swap could stop it: see above), and in
        # the same write: a reply cut between the two lines read as switched, not unchanged
        f'if [ -n "$unchanged" ]; then {done_and_unchanged}; else {_mark(Phase.DONE)}; fi',
        _prune_lines(release),
        "} 9>&-",
    ]
    return _script(lines)


def _fresh_clone_note(release: RemoteRelease, tree: str) -> str:
    """Shell that says, on a stderr note line, why the tree `tree` is built from a fresh clone when that is not
    simply the slot's first tree: its kept tree was changed on the host, or the quicker starts `tried` did not
    build (a `.git` someone broke is copied into every build), or the live tree's `.git` lost the link to the
    store's objects (its objects, or all of it, deleted), so it could not be copied. Shell tests only: no process."""
    q = shlex.quote
    kept = f"{NOTE_MARK} the kept tree {tree} was changed on the host: built again from a fresh clone"
    tried = f"{NOTE_MARK} the release did not build from "
    broken = (
        f"{NOTE_MARK} the live tree {release.slot_path} has no usable .git (its objects/info/alternates is gone),"
        " so it could not be copied: built from a fresh clone"
    )
    alternates = q(_objects_link(release.slot_name))
    return (
        f'if [ -n "$kept_changed" ]; then echo {q(kept)} >&2;'
        f' elif [ -n "$tried" ]; then echo {q(tried)}"$tried: built from a fresh clone" >&2;'
        f" elif [ -d {q(release.slot_name)} ] && [ ! -f {alternates} ]; then echo {q(broken)} >&2; fi;"
    )


def _objects_link(tree: str) -> str:
    """The file that links the slot tree `tree` to the store's objects (git's alternates): a tree of Sartoris's that
    lacks it has no usable `.git` (its objects, or all of it, deleted), so it is neither copied nor called current."""
    return posixpath.join(tree, ".git", "objects", "info", "alternates")


def _build_function(release: RemoteRelease, building: str) -> str:
    """`sartoris_build`: bring the tree being built, started one way or another (see switch_command), to the
    release: its checkout, its submodules, its layout mark, its dates. Returns the status of the first step that
    failed, so a build from a copy can be thrown away and made again; each build says its phases from the start."""
    q = shlex.quote
    steps = [_mark(Phase.CHECKOUT), _checkout_command(building, release.commit) + " || return"]
    if release.submodules:
        steps.append(_mark(Phase.SUBMODULES))
        steps += _submodule_lines(release, building)
    own_layout = _layout_id(_modules_in(release, ""))
    steps.append(f"{shell_words('sartoris_record_layout', posixpath.join(building, '.git'), own_layout)} || return")
    index = posixpath.join(building, ".git", "index")
    # git re-reads every file whose mtime is not older (in whole seconds) than the index's, so dating the fresh
    # index a second ahead saves the next deploy from hashing the whole tree again; the tree's own mtime orders the
    # prune (newest kept).
    stamp = q(posixpath.join(building, _BUILT_STAMP))
    steps.append(f"{{ [ -d {stamp} ] || mkdir {stamp}; }} && touch -c -d '1 second' {q(building)} {q(index)}")
    return "sartoris_build() {\n" + "\n".join("  " + step for step in steps) + "\n}"


# When a slot tree's files were last known to be its release's: a folder in its `.git` (a hard-link copy makes a
# folder anew, where it would link a file, so each tree has its own). A fresh clone's is made at the end of its
# build (no other tree shares its files yet); a copy's and a recycled tree's are dated when the files they share
# are checked (_edited_since_built). A file of the tree newer than it may have been changed on the host since (or
# was written by the build after: that submodule is checked again next time, where git writes nothing).
_BUILT_STAMP = posixpath.join(".git", "sartoris-built")


def _edited_since_built(release: RemoteRelease, source: str, building: str) -> str:
    """Shell that sets `edited` to the paths in the submodules of the slot tree `source` (the live tree the tree
    `building` was copied from, or the retired tree it recycles: then both are one) changed since that tree's
    files were last known to be its release's (_BUILT_STAMP): files edited or replaced, and folders whose entries
    changed (a file deleted, or an app's cache written). Trees share unchanged files as hard links, and a build
    checks out only the submodules whose commit the release moves; so without this, a file of an unchanged
    submodule edited in place on the host was carried into every later tree (sartoris_module checks out again each
    one listed here). The stamp of `building` is dated before the search (a copy: any later change to a file it
    shares is newer than it), or just after it when it is the tree searched (a change in between is missed, as is
    one within the same clock tick as the stamp: file times are kept to the kernel's tick, a few milliseconds).
    Every submodule is listed (`/`) when the tree has no stamp (an older Sartoris built it) or `find` fails (none,
    or one without GNU `-printf`): checked out again rather than trusted. A change that keeps a file's mtime
    (`cp -p`, `touch -r`) is not seen, as git with core.trustctime off does not see it either.
    One `find` (no git) over the submodules' files and one `touch`, only for a tree started from another.
    Succeeds always."""
    paths = [posixpath.join(".", path) for _, path in _modules_in(release, "")]
    if not paths:
        return "edited="
    q = shlex.quote
    # only the paths the tree has (a release may add a submodule): find fails on a missing one
    search = (
        f"set -- && {_keep_existing(shell_words(*paths))} &&"
        f' {{ [ $# -eq 0 ] || find "$@" -newer {q(_BUILT_STAMP)} -printf {q("|%p/")} 2>/dev/null; }}'
    )
    stamp = q(posixpath.join(source, _BUILT_STAMP))
    date = f"touch -c {q(posixpath.join(building, _BUILT_STAMP))} 2>/dev/null;"
    before, after = ("", f" {date}") if source == building else (f"{date} ", "")
    return (
        f"{{ {before}if [ -d {stamp} ]; then edited=$(cd {q(source)} && {search}) || edited=/;{after}"
        " else edited=/; fi; true; }"
    )


def _removed(path: str) -> str:
    """Shell that succeeds when nothing is at `path` (any there is removed first): a test, no process, when none is."""
    return f"{{ [ ! -e {shlex.quote(path)} ] || rm -rf {shlex.quote(path)}; }}"


# What the operator can do about a live tree changed on the host (never remove it: the slot would link nothing). The
# next release's tree starts as a copy of it, and its checkout writes again each file whose stat differs from the
# index (the edited and deleted ones), in the submodules too where files changed since the build
# (_edited_since_built).
_ANOTHER_RELEASE = "deploy another release; its tree, copied from this one, is checked out clean"
_CHANGED = f"it was changed on the host: {_ANOTHER_RELEASE}"


def _switch_lock(release: RemoteRelease) -> str:
    """Hold the slot's switch lock on this host until the script ends: a second switch of the slot (two deploy
    hosts at once, a host listed under two names) waits for the first instead of racing it, where one run's
    `rm -rf` of a tree could empty the tree the other links live. The lock is an open file: it goes when the script
    and every process it started are gone, however they end (the deadline's KILL too), so it is never stale.
    Only the script's shell holds it: the work after it runs in a group with the descriptor closed (sh keeps its
    own copy, close-on-exec, while the group runs), so a process a git hook leaves running does not keep it.
    One `flock` per switch (two when it waits). Any exit but 1 (held elsewhere) switches unlocked, as before the
    lock: util-linux's flock missing (127), or a filesystem without locks (71)."""
    lock = shlex.quote(posixpath.join(release.state_dir, _SWITCH_LOCK))
    waiting = shell_words(
        "echo", f"{WAIT_MARK} another run is switching {release.slot_path} on this host: waiting for it to end"
    )
    return f"exec 9>>{lock} || exit; flock -n 9 2>/dev/null; if [ $? -eq 1 ]; then {waiting} >&2; flock 9 || exit; fi"


_SWITCH_LOCK = "switch.lock"  # in a slot's state folder on a host: held (flock) by the switch running there
# In a slot's state folder on a host: the commit the slot's last switch swapped the link to and its run's token
# (RemoteRelease.run), followed by UNCHANGED_WORD when it found the slot already on it (its UNCHANGED_MARK); the
# token tells this run's switch from an earlier one of the same commit (which the lost one may be queued behind, the
# record not yet emptied, when the look gets the lock first); emptied when a switch begins, under the lock, and
# written just before its swap. The look at a switch whose reply was lost (switch_outcome_command) reads it,
# as the marks printed after the swap are lost with the reply: the live tree at the release's commit is not enough,
# since a switch that refused a live tree of the release changed on the host leaves it live (at that commit).
# Written with shell builtins (`true`, `echo`: a failed redirection of `:` would end dash): no process.
_SWITCH_RECORD = "switch.last"
UNCHANGED_WORD = "unchanged"


def _refuse_a_slot_not_ours(release: RemoteRelease) -> str:
    """Fail the switch (exit 2, the slot path untouched) unless the slot path is missing or Sartoris's own link (see
    _unless_ours): renaming a link over someone's folder or link would throw it away unseen. Run from the deploy
    root, with the trees folder made."""
    return _unless_ours(release.slot_name, release.slot_path, lambda why: f"printf '%s\\n' {why} >&2; exit 2")


def _unless_ours(slot: str, slot_path: str, say: Callable[[str], str]) -> str:
    """Shell that runs `say(why)`, `why` a shell word saying how, when the slot path `slot_path` (`slot` from the
    deploy root, where the shell runs) is not Sartoris's: anything but missing or Sartoris's own link, one into the
    slot's trees folder, to a tree there or, dangling, to one removed since. A plain directory, or a link Sartoris
    did not make (to /etc, to a clone made by hand elsewhere, dangling elsewhere), is someone's. Shell tests: a link
    to a folder has its parent as `<link>/..`, so `-ef` tells one into the trees folder from the rest without
    reading it; only a link that is dangling or not ours is read (`readlink`), to say where it points. The shell
    variable `t` is left holding the target of a dangling link of Sartoris's (status_command says it)."""
    q, trees = shlex.quote, posixpath.join(_state_dir(slot_path), "trees")
    directory = q(f"{OWN_LINE_MARK} {slot_path} is not managed by sartoris (a directory, not a link); move it away")
    not_ours = (
        q(f"{OWN_LINE_MARK} {slot_path} is not managed by sartoris: a link sartoris did not make, to ")
        + '"$t"'
        + q(f" (not into {trees}); look at what it points to, then move the link away")
    )
    # a dangling link is Sartoris's when its folder is the trees folder, also with that folder gone (as Sartoris
    # writes it, relative: the switch makes the folder before it looks, and status makes nothing)
    written = q(posixpath.relpath(trees, posixpath.dirname(slot_path.rstrip("/"))))
    link, trees = q(slot), q(trees)
    in_trees = f'{{ [ "${{t%/*}}" -ef {trees} ] || [ "${{t%/*}}" = {written} ]; }}'
    dangling_into_trees = f"{{ [ ! -e {link} ] && t=$(readlink {link}) && {in_trees}; }}"
    return (
        f"if [ -L {link} ]; then [ {link}/.. -ef {trees} ] || {dangling_into_trees} ||"
        f" {{ t=$(readlink {link}); {say(not_ours)}; }};"
        f" elif [ -e {link} ]; then {say(directory)}; fi"
    )


def _leftover_builds(release: RemoteRelease) -> str:
    """Remove every tree a switch of the slot left half built (`<commit>.building`, of any release): a switch whose
    build fails removes it itself (sartoris_give_up), but one stopped by the KILL at its deadline (or an older
    Sartoris, or a removal that failed) leaves it behind, and only the next switch of the slot comes back to it.
    Left there, a build that filled the disk failed every later release of the slot, retries too. No other run is
    building one: the deploy host holds the slot's lock, the host its switch lock. A shell glob: no process unless
    there is one."""
    return f'for b in {shlex.quote(release.trees)}/*.building; do [ ! -e "$b" ] || rm -rf "$b" || exit; done'


def _checkout_command(tree: str, commit: str) -> str:
    """`git checkout` of `commit` in the slot tree `tree`, detached, quiet. It names the tree's git dir, as a
    submodule's checkout does: with `-C` alone, a copy whose `.git` git no longer takes for a repository (its HEAD
    gone) would send git up the folders above, to check out in whatever repository holds the deploy root.
    The hard-link copy changed every file's ctime (link(2) does); mtime, size and inode still match the index,
    so trusting ctime would make git re-read every file of the tree."""
    return shell_words(*_git_in(tree), *_CHECKOUT_OPTIONS, commit)


def _git_in(tree: str) -> tuple[str, ...]:
    """`git` for the slot tree `tree`, its git dir named (never found by walking up from a folder: see
    _checkout_command)."""
    return ("git", "--git-dir", posixpath.join(tree, ".git"), "--work-tree", tree)


# A host's own git config must not change the files deployed (CRLF from a global core.autocrlf) nor start programs
# (a core.fsmonitor hook); the release's own .gitattributes still apply.
_EXACT_CHECKOUT = ("-c", "core.autocrlf=false", "-c", "core.fsmonitor=false")
_CHECKOUT_OPTIONS = (
    "-c", "core.trustctime=false", "-c", "advice.detachedHead=false", *_EXACT_CHECKOUT,
    "checkout", "--quiet", "--force", "--detach",
)


def _hard_link_copy(source: str, target: str) -> str:
    """Copy the tree `source` as hard links (symbolic links linked as they are, never followed). Not `cp -al`:
    git made the tree's directories under the same umask, so `-a`'s per-directory ownership, timestamp, ACL and
    xattr copying (a fifth of the copy's system calls) would only restore what they already are."""
    return shell_words("cp", "-RlP", source, target)


def _read_first_line(path: str, names: str = "h") -> str:
    """Shell that sets `h` (or the variables `names`, split as `read` splits) to the first line of the file `path` (a
    HEAD file, or the switch's record), empty when there is none: no process."""
    empty = "".join(f"{name}= " for name in names.split())
    return f"{empty.rstrip()}; [ -f {shlex.quote(path)} ] && read -r {names} < {shlex.quote(path)};"


def _retired_tree(release: RemoteRelease) -> str:
    """Set `retired` to the oldest tree when more than `keep_trees` trees besides the target's are kept (the one
    `_prune_lines` would remove first after this switch), never the live one; else to nothing. Shell tests only
    (`-ot` compares modification times, which each switch refreshes on its tree): no process."""
    q = shlex.quote
    trees = q(release.trees)
    return (
        f'retired=; n=0; for t in {trees}/*; do case "${{t##*/}}" in *[!0-9a-f]*|{q(release.commit)}) continue;;'
        f' esac; n=$((n+1)); if [ -z "$retired" ] || [ "$t" -ot {trees}/"$retired" ]; then retired=${{t##*/}}; fi;'
        f' done; if [ $n -le {release.keep_trees} ] || [ {trees}/"$retired" -ef {q(release.slot_path)} ];'
        " then retired=; fi"
    )


def _tree_ready(release: RemoteRelease, tree: str) -> str:
    """A kept tree already at the release (rollback), built by a Sartoris that marks its submodule layout: reused
    as it is when its files are its commit's too (_matches_its_commit). Shell tests only."""
    head = posixpath.join(tree, ".git", "HEAD")
    mark = _layout_mark(posixpath.join(tree, ".git"), _modules_in(release, ""))
    return f'{{ {_read_first_line(head)} [ "$h" = {shlex.quote(release.commit)} ] && [ -f {shlex.quote(mark)} ]; }}'


def _matches_its_commit(tree: str) -> str:
    """Shell that succeeds when the slot tree `tree` holds what its HEAD commit does: its tracked files, and its
    submodules' checked-out commits and tracked files (`diff-index` asks each submodule, a process each). Untracked
    files do not count: apps write caches there. The index is refreshed first, so a file whose dates changed but
    not its content is no change; git writes the refreshed index as a new file renamed over the old one, and no
    file of the tree is written. Run only for a tree about to be the release as it is (a kept tree, or the live one
    deployed again), never for a new release's build: two processes, plus one per submodule."""
    refresh = shell_words(*_git_in(tree), *_COMPARE_OPTIONS, "update-index", "-q", "--refresh")
    compare = shell_words(*_git_in(tree), *_COMPARE_OPTIONS, "diff-index", "--quiet", *_AGAINST_HEAD)
    return f"{{ {refresh} >/dev/null 2>&1; {compare} 2>/dev/null; }}"


def _say_what_changed(tree: str) -> str:
    """Shell that says, on one stderr line, that the live tree `tree` was changed on the host, the first few paths
    that differ from its commit (git quotes unusual names, so each is one line of its output; git's own error
    instead, when it cannot compare), and what to do. Only for a host that fails: three processes."""
    listing = shell_words(*_git_in(tree), *_COMPARE_OPTIONS, "diff-index", "--name-only", *_AGAINST_HEAD)
    first_few = shlex.quote(
        f'NR <= {_PATHS_SAID} {{ s = s (NR > 1 ? ", " : "") $0 }}'
        f' END {{ if (NR > {_PATHS_SAID}) s = s " and " (NR - {_PATHS_SAID}) " more"; print s }}'
    )
    said = shlex.quote(f"{OWN_LINE_MARK} the live tree {tree} was changed on the host (") + '"$c"'
    said += shlex.quote(f"): {_ANOTHER_RELEASE}")
    return f"c=$({listing} 2>&1 | awk {first_few}); printf '%s\\n' {said} >&2"


_PATHS_SAID = 3  # of a live tree changed on the host


# Files are compared as the checkout wrote them (see _checkout_command for ctime, _EXACT_CHECKOUT for the rest).
_COMPARE_OPTIONS = ("-c", "core.trustctime=false", *_EXACT_CHECKOUT)
_AGAINST_HEAD = ("--ignore-submodules=untracked", "HEAD", "--")  # diff-index: tracked files and submodules


def _submodule_lines(release: RemoteRelease, building: str) -> list[str]:
    """Bring each submodule whose pinned commit changed to it (or whose files were changed on the host: see
    _edited_since_built), from the slot's own object store: one call of
    `sartoris_module` (see _SWITCH_FUNCTIONS) per submodule, so a hundred submodules make a few KB of script."""
    lines = []
    gitdirs = _module_gitdirs(release)
    for module in release.submodules:
        if not _is_safe_module_name(module.name):
            refused = _refused_module_line(module) if module.parent else None
            head = posixpath.join(building, gitdirs[module.path], "HEAD")
            lines.append(refused or _submodule_update_line(release, building, module, head))
            continue
        gitdir = gitdirs[module.path]
        children = _modules_in(release, module.path)
        lines.append(
            shell_words(
                "sartoris_module",
                module.name,
                module.path,
                module.commit,
                gitdir,
                "gitdir: " + posixpath.relpath(gitdir, module.path),
                gitdirs[module.parent],
                _layout_id(children),
                _config_escape(module.name),
                *(path for _, path in children),
            )
            + " || return"
        )
    return lines


_LAYOUT_MARK = "sartoris-module-layout-"


def _layout_id(modules: list[tuple[str, str]]) -> str:
    """A short name for a set of submodules (name and path): a work tree marked with the id of the layout a
    release wants (an empty file `_LAYOUT_MARK<id>` in its git dir) holds no submodule work tree it does not."""
    layout = "\n".join(sorted(f"{name}\t{path}" for name, path in modules))
    return hashlib.sha256(layout.encode()).hexdigest()[:16]


def _layout_mark(gitdir: str, modules: list[tuple[str, str]]) -> str:
    """The layout mark file of `modules` in the git dir `gitdir`."""
    return posixpath.join(gitdir, _LAYOUT_MARK + _layout_id(modules))


def _leftovers_function(release: RemoteRelease) -> str:
    """`sartoris_leftovers`: clear, in a copied or recycled tree, what it must not keep from where it came from.
    Reflogs (a tree built before trees were cloned without them shares them with the live tree and every kept
    one, and git appends to a reflog in place), index locks a crashed git left (the build is this run's own, so
    any lock in it is stale, and would fail every build), and the work trees of submodules the release does not
    have at that path. Shell tests only, when there is nothing to clear."""
    gitdirs = list(_module_gitdirs(release).values())  # the slot's own first
    own = _modules_in(release, "")
    clean = shell_words("sartoris_clean_copied", *gitdirs)
    drop = shell_words("sartoris_drop_unlisted", ".git", "", _layout_id(own), *(path for _, path in own))
    return f"sartoris_leftovers() {{ {clean} && {drop}; }}"


# a submodule's checkout (see _checkout_command) inside `sartoris_module`
_MODULE_CHECKOUT = f'git --git-dir "$md" --work-tree "$mw" {shell_words(*_CHECKOUT_OPTIONS)} "$mc"'


_FULL_DISK_KB = 1024  # a deploy root's disk with less free than this after a failed build is called full


# Shell functions every switch script defines once: the work per submodule, written once, called with each
# submodule's values (paths relative to the tree being built, `$B`; the store `$S`, and `$SE` for git config).
# Their variables are their own (md, mw, dd, ...); a failure returns its status (the build, `sartoris_build`,
# returns it in turn, and the switch may build again from a fresh clone).
# Files are made with `true >`, never `: >`: a redirection that fails (a full disk) on `:`, a special builtin, ends
# the whole script in dash, `|| return` or not, which left the build in place and skipped the fresh clone.
_SWITCH_FUNCTIONS = (
    # the exit status of the build's step that failed: remove the tree being built, then exit with that status. A
    # build that filled the disk frees it now, not at the slot's next switch (_leftover_builds is for the builds a
    # KILL at the deadline leaves); a removal that fails leaves it to that switch, and says nothing over the error.
    # Before, a full disk is said (sartoris_say_if_full): git's "failed to write new configuration file" does not.
    'sartoris_give_up() { sartoris_say_if_full; rm -rf "$B" 2>/dev/null; exit "$1"; }',
    # On a failed build only (a process, `df`): when the disk of the trees' folder (the deploy root's, unless the
    # state folder is a mount of its own) has less than _FULL_DISK_KB left, a line saying so in the words a full
    # disk's write error uses, which the error line then adds as the cause (CommandResult.error_line): where git
    # failed on a full disk without saying why, the operator learns it.
    "sartoris_say_if_full() {"
    ' df -Pk "${B%/*}" 2>/dev/null | { read -r _ && read -r _ _ _ a _ &&'
    f' [ "$a" -lt {_FULL_DISK_KB} ] 2>/dev/null && echo "${{B%/*}}: No space left on device ($a KB free)" >&2; }}; }}',

    # git dir, work tree (from $B), layout id, then the paths its submodules keep. Before the checkout of a work
    # tree that held another commit (a copied or recycled slot tree, a submodule moving on), remove the work tree
    # of each submodule in it that the new commit no longer has at that path (dropped, or moved: its git dir
    # stays, for a release that brings it back); git's checkout leaves them behind ("unable to rmdir"). A work
    # tree marked with the wanted layout has none to remove: one shell test, no process, unless the layout changes.
    # grep passes the few gitlinks to the shell, whose `read` takes a pipe a byte at a time.
    "sartoris_drop_unlisted() {"
    ' dd=$B/$1 dw=$B${2:+/$2} dm=$3; shift 3;'
    f' [ -f "$dd/{_LAYOUT_MARK}$dm" ] ||'
    ' git --git-dir "$dd" --work-tree "$dw" -c core.quotePath=false ls-files --stage | grep \'^160000 \' |'
    ' while read -r mode sha stage path; do for k; do [ "$path" = "$k" ] && continue 2; done;'
    ' rm -rf "$dw/$path" || exit 1; done; }',
    # git dir, layout id: mark a built work tree with its layout, dropping the mark of the layout it held before
    "sartoris_record_layout() {"
    f' [ -f "$1/{_LAYOUT_MARK}$2" ] || {{ rd=$1 ri=$2; set -- "$1"/{_LAYOUT_MARK}*; [ ! -e "$1" ] || rm -f "$@";'
    f' true > "$rd/{_LAYOUT_MARK}$ri"; }}; }}',
    # the tree's git dirs, the slot's own first: see _leftovers_function
    "sartoris_clean_copied() {"
    ' if [ -d "$B/$1/logs" ]; then for cd_; do rm -rf "$B/$cd_/logs" || return; done; fi;'
    ' for cd_; do [ ! -e "$B/$cd_/index.lock" ] || rm -f "$B/$cd_/index.lock" || return; done; }',
    # a submodule's path: whether the tree the build started from had it changed on the host (_edited_since_built)
    'sartoris_edited() { case "$edited" in /|*"|./$1/"*) return 0;; esac; return 1; }',
    # name, path, commit, git dir, the line of its `.git` file, its parent's git dir, the layout id of its own
    # submodules, its name escaped for git config; then its own submodules' paths (from it).
    #
    # A submodule's HEAD file and `.git` file are read with the shell's `read` (no process), so an unchanged submodule
    # costs nothing (but for one `find` over all of them, _edited_since_built). A changed one, or an unchanged one whose
    # files were changed on the host since the tree it is built from was built, is a plain checkout in its repository
    # under `.git/modules/`; a new one is first cloned from the store with `--shared` (no object copied), its `.git`
    # file relative so the tree can move, and registered in its parent's config (so `git submodule` in the tree sees it
    # initialised): in a fresh tree that config is the tree's own file, appended to; in a copied or recycled one it may
    # be a hard link shared with other trees, so git rewrites it (a lock file renamed over). Where the `.git` file is
    # missing or names another repository (the module moved here, or another moved away), whatever is at the path goes
    # and the module is checked out there in full. A repository `git submodule update` made (an older Sartoris) names
    # its old work tree in core.worktree: unset on the file, as git would not even start in it. A module cloned by an
    # older Sartoris holds its own objects: the commit is fetched from the store. That is what `git submodule update
    # --init` does, without its dozen helper processes per submodule.
    "sartoris_module() {"
    ' mp=$2 mg=$4 mw=$B/$2 md=$B/$4 mc=$3 mi=$7;'
    ' h=; [ -f "$md/HEAD" ] && read -r h < "$md/HEAD"; g=; [ -f "$mw/.git" ] && read -r g < "$mw/.git";'
    ' if [ "$g" != "$5" ]; then [ ! -e "$mw/.git" ] || rm -rf "$mw" || return;'
    ' if [ ! -d "$md" ]; then { [ -d "${md%/*}" ] || mkdir -p "${md%/*}"; } &&'
    f' git clone {shell_words(*_CLONE_OPTIONS)} --separate-git-dir="$md" -- "$S" "$mw" || return;'
    ' if [ "$fresh" = 1 ]; then printf \'[submodule "%s"]\\n\\turl = "%s"\\n\' "$8" "$SE" >> "$B/$6/config";'
    ' else git config --file "$B/$6/config" "submodule.$1.url" "$S"; fi || return;'
    f' true > "$md/{_LAYOUT_MARK}$mi" || return;'  # a fresh clone holds no module of another layout
    ' else { [ -d "$mw" ] || mkdir -p "$mw"; } || return; h=;'
    ' git config --file "$md/config" --unset core.worktree 2>/dev/null; fi;'
    ' printf \'%s\\n\' "$5" > "$mw/.git" || return; fi;'
    ' shift 8; if [ "$h" != "$mc" ] || sartoris_edited "$mp"; then'
    ' sartoris_drop_unlisted "$mg" "$mp" "$mi" "$@" || return;'
    f" {_MODULE_CHECKOUT} 2>/dev/null ||"
    # (no automatic gc after it: git may detach one, which would outlive the switch and its deadline)
    ' { git --git-dir "$md" -c gc.auto=0 -c maintenance.auto=false fetch --quiet --no-tags --no-write-fetch-head "$S"'
    f' "+{submodule_ref("$mc")}:{submodule_ref("$mc")}" && {_MODULE_CHECKOUT}; }} ||'
    # the store lacks a commit its marks say it fetched (someone pruned it): the next fetch asks for all again
    f' {{ rc=$?; rm -rf "$S/{_FETCHED_DIR}"; return $rc; }};'
    ' fi; sartoris_record_layout "$md" "$mi" || return; }',
)


def _module_gitdirs(release: RemoteRelease) -> dict[str, str]:
    """Each repository's git dir from the tree's root, by its path there ("" for the slot's own `.git`, first): a
    submodule's lives under its parent's `modules/<name>`, as `git submodule` lays them out."""
    gitdirs = {"": ".git"}
    for module in release.submodules:  # parents come before the submodules inside them
        gitdirs[module.path] = posixpath.join(gitdirs[module.parent], "modules", module.name)
    return gitdirs


def _modules_in(release: RemoteRelease, parent: str) -> list[tuple[str, str]]:
    """(name, path relative to the parent's work tree) of the submodules directly inside `parent` ("" for the
    slot's own repository)."""
    prefix = f"{parent}/" if parent else ""
    return [(m.name, m.path[len(prefix) :]) for m in release.submodules if m.parent == parent]


def _is_safe_module_name(name: str) -> bool:
    """Git's own rule for submodule names (no empty name, no `..` component): `.git/modules/<name>` stays put.
    Names that break it are left to `git submodule update`, which refuses them."""
    return bool(name) and ".." not in name.replace("\\", "/").split("/") and "\n" not in name


def _refused_module_line(module: SubmoduleSpec) -> str:
    """A submodule inside a submodule whose name git would refuse: the host fails, saying which."""
    refusal = shell_words("echo", f"{OWN_LINE_MARK} submodule {module.path}: unsafe name {module.name!r}")
    return refusal + " >&2; return 1"


def _config_escape(value: str) -> str:
    """A value as a double-quoted git config string (also right for a subsection name)."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _submodule_update_line(release: RemoteRelease, building: str, module: SubmoduleSpec, head: str) -> str:
    """`git submodule update` for one submodule whose HEAD (file `head`) moved (git then judges the module's
    name itself)."""
    set_url = shell_words("git", "-C", building, "config", f"submodule.{module.name}.url", release.store)
    update = shell_words(
        "git", "-C", building, "-c", "protocol.file.allow=always", "-c", "core.trustctime=false",
        "submodule", "--quiet", "update", "--init", "--force", "--", module.path,
    )
    return f'{_read_first_line(head)} [ "$h" = {shlex.quote(module.commit)} ] || {{ {set_url} && {update}; }} || return'


def _prune_lines(release: RemoteRelease) -> str:
    """Keep the live tree and the `keep_trees` newest others; remove older ones and abandoned builds.
    Counting the trees is a shell glob, so `ls` runs only when there is something to remove. Tree names are
    commit ids, so `ls` output splits safely; the subshell keeps the cwd. A tree `rm` cannot remove (a read-only
    mount, an immutable file) is said on an UNPRUNED_MARK line (`echo`, a builtin: no process), not rm's line per
    file, as the host is on the release all the same; it would otherwise stay past keep_trees with no word."""
    trees = shlex.quote(release.trees)
    unpruned = f"echo {shlex.quote(f'{UNPRUNED_MARK} {release.trees}/')}\"$t\""
    return (
        f"set -- {trees}/*; if [ $# -gt {release.keep_trees + 1} ]; then"
        f" (cd {trees} && n=0 && for t in $(ls -1t); do"
        f' case "$t" in *.building) rm -rf "$t" 2>/dev/null || {unpruned}; continue;; esac;'
        f' [ "$t" = {shlex.quote(release.commit)} ] && continue;'
        # HEAD goes first: a tree whose removal is cut short (the deadline) is never taken for a kept release
        f' n=$((n+1)); [ $n -le {release.keep_trees} ] || rm -rf "$t/.git/HEAD" "$t" 2>/dev/null || {unpruned};'
        " done); fi; true"
    )


def unpruned_trees(stdout: str) -> list[str]:
    """The trees a switch's prune could not remove (its UNPRUNED_MARK lines): kept beyond keep_releases."""
    marked = (line.partition(" ")[2].strip() for line in script_lines(stdout) if line.startswith(UNPRUNED_MARK))
    return [tree for tree in marked if tree]


def status_command(slot_path: str, expected: str | None, seconds: float) -> str:
    """Print the commit the slot's live tree has checked out, with no process when it is Sartoris's tree of the
    `expected` commit at that commit (the slot links to it, its HEAD file says so: shell tests and a `read`), the
    common case. Otherwise git says which (`rev-parse`; `exec`: the login shell replaced, not forked), under the
    host's own deadline (`timeout`, one process more, as the other scripts run: a hung git is not left behind when
    the controller gives up; deadline_error names the exit). A slot path Sartoris did not make (see _unless_ours)
    prints NOT_OURS and why, then the commit its checkout has, if any: the next switch refuses it, so it is not
    current. Nothing when there is no slot at all, NOT_A_CHECKOUT for a tree with no `.git` (git there would walk
    up and report whatever repository holds it), and TREE_GONE then the link's target for a link of Sartoris's
    whose tree is gone (see _tree_gone). A slot that cannot be read otherwise (a link through a folder the user may
    not enter, a corrupt repository) fails, with git's reason."""
    q = shlex.quote
    root, name = posixpath.split(slot_path.rstrip("/"))
    slot = q(name)
    head = ("git", "-C", slot_path, "rev-parse", "--verify")
    git = "exec " + shell_words(*_host_timeout(seconds), *head, "HEAD^{commit}")
    quiet_git = "exec " + shell_words(*_host_timeout(seconds), *head, "--quiet", "HEAD^{commit}") + " 2>/dev/null"
    checkout = q(posixpath.join(name, ".git"))
    lines = [_START, shell_words("cd", root) + " 2>/dev/null || exit 0"]  # no deploy root: no slot
    if expected is not None:
        tree = posixpath.join(_state_dir(slot_path), "trees", expected)
        tree_head = q(posixpath.join(tree, ".git", "HEAD"))
        alternates = q(_objects_link(tree))
        lines += [
            # its objects' link too, as the switch's copy asks: a tree whose objects were deleted is not current
            f"h=; if [ -L {slot} ] && [ {slot} -ef {q(tree)} ] && [ -f {tree_head} ] && [ -f {alternates} ]; then"
            f" read -r h < {tree_head}; fi",
            f'if [ "$h" = {q(expected)} ]; then {shell_words("echo", expected)}; exit 0; fi',
        ]
    its_commit = f"[ -e {checkout} ] && {quiet_git}; exit 0"
    lines += [
        _unless_ours(name, slot_path, lambda why: f"printf '%s\\n' {q(NOT_OURS)}{why}; {its_commit}"),
        f"if [ -L {slot} ] && [ ! -e {slot} ] && {_tree_gone()};"
        f" then printf '%s%s\\n' {q(TREE_GONE)} \"$t\"; exit 0; fi",
        f"if [ -e {checkout} ] || {{ [ -L {slot} ] && [ ! -e {slot} ]; }} || {{ [ -d {slot} ] && [ ! -x {slot} ]; }};"
        f" then {git}; elif [ -e {slot} ]; then {shell_words('echo', NOT_A_CHECKOUT)}; fi",
    ]
    return _script(lines)


def _tree_gone() -> str:
    """Shell that succeeds when the path `$t` (a dangling link's target, from the deploy root where the shell runs)
    does not exist: the nearest of its folders that does (or the deploy root) can be searched, so `-e` failed for
    want of the next one, not of a permission or a loop of links. Shell tests: no process."""
    return (
        '{ p=$t; while [ ! -e "$p" ] && [ ! -L "$p" ] && [ -n "${p%/*}" ] && [ "${p%/*}" != "$p" ]; do p=${p%/*};'
        ' done; { [ ! -e "$p" ] && [ ! -L "$p" ]; } || { [ "$p" != "$t" ] && [ -d "$p" ] && [ -x "$p" ]; }; }'
    )


def switch_outcome_command(release: RemoteRelease) -> str:
    """After the connection a switch ran on was lost (its script may go on without it): wait for that switch to
    end on the host, as its script holds the slot's switch lock until it ends (bounded by its own deadline), then
    print the commit the slot's live tree has checked out, if any, and RECORDED_MARK when the slot's switch record
    (_SWITCH_RECORD) names the release: both, and the host ended on the release; UNCHANGED_MARK too when that switch
    found the slot already there. With no lock file (the switch never began) or no `flock`, it looks at once. Run
    under `bounded`, whose last line says the look was made (nothing printed before it: no live tree)."""
    q = shlex.quote
    lock = q(posixpath.join(release.state_dir, _SWITCH_LOCK))
    # `command exec`: a redirection of the special builtin `exec` that fails (a lock the account cannot open, a
    # read-only disk) ends dash's whole script, and the look would say nothing of how the switch ended
    wait = f"[ -f {lock} ] && {{ command exec 9>>{lock} && flock 9; command exec 9>&-; }} 2>/dev/null"
    head = shell_words("git", "-C", release.slot_path, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    recorded = (
        f"{_read_first_line(posixpath.join(release.state_dir, _SWITCH_RECORD), 'h r w')}"
        f' if [ "$h" = {q(release.commit)} ] && [ "$r" = {q(release.run_word)} ]; then'
        f' {shell_words("echo", RECORDED_MARK)};'
        f' [ "$w" != {UNCHANGED_WORD} ] || {shell_words("echo", UNCHANGED_MARK)}; fi'
    )
    return _script([wait, f"[ -e {q(posixpath.join(release.slot_path, '.git'))} ] && {head} 2>/dev/null", recorded])


def last_phase(stdout: str, default: Phase) -> Phase:
    """The last phase marker a switch script printed: where it was when it stopped."""
    phase = default
    for line in script_lines(stdout):
        value = line[len(PHASE_MARK) :].strip()
        if line.startswith(PHASE_MARK) and value in _PHASES:  # not a marker cut short where output was dropped
            phase = Phase(value)
    return phase


_PHASES = {phase.value for phase in Phase}


def found_recorded(stdout: str) -> bool:
    """The look at a lost switch found the slot's switch record naming the release (its RECORDED_MARK line)."""
    return _has_line(stdout, RECORDED_MARK)


def found_unchanged(stdout: str) -> bool:
    """The switch found the slot already on the release (its UNCHANGED_MARK line): it changed nothing there."""
    return _has_line(stdout, UNCHANGED_MARK)


def _has_line(stdout: str, mark: str) -> bool:
    """Whether a script printed the line `mark`, alone."""
    return any(line.strip() == mark for line in script_lines(stdout))


def parse_head(stdout: str) -> str | None:
    """The commit a status script printed (40 hex digits, or 64 in a SHA-256 repository), or None."""
    for line in script_lines(stdout):
        if line.startswith((NOT_OURS, TREE_GONE)):  # a link's target may be named like a commit
            continue
        for word in line.split():
            if len(word) in (40, 64) and all(c in "0123456789abcdef" for c in word):
                return word
    return None


def not_ours(stdout: str) -> str | None:
    """Why a status script found the slot path not Sartoris's (its NOT_OURS line), or None."""
    why = _after_mark(stdout, NOT_OURS)
    return None if why is None else why.strip()


def gone_tree(stdout: str) -> str | None:
    """The target of the slot's link, when a status script found it a tree of the slot's that is gone (its TREE_GONE
    line), or None."""
    return _after_mark(stdout, TREE_GONE)


def _after_mark(stdout: str, mark: str) -> str | None:
    """What follows `mark` on the first line a script printed starting with it, or None when it printed none."""
    return next((line[len(mark) :] for line in script_lines(stdout) if line.startswith(mark)), None)
