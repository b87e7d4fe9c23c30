"""Fault injection for the integration suite: hooks that make one host's git hang or crawl, a private fleet
for tests that kill hosts or mount things, and readers of a host's slot straight from its disk.

git runs hooks from a repository's own hooks/ folder, so a fault is planted on one host without touching the
fleet script: a `post-checkout` hook in the live tree's .git is copied into the next tree the switch builds
(`cp -RlP`) and runs during its `git checkout`; a `reference-transaction` hook in the slot's store.git runs while
a fetch updates refs. A checkout that must fail however the switch builds its tree (it builds again from a fresh
clone, which has no hook, when a build from a copy fails) takes its hook from git config instead (checkout_hook).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shlex
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from conftest import ROOT, Deployment, fleet_on_a_free_net, write_config
from fleet import Fleet, Layout
from sample_repo import make_checkout

# Slots of the deployments on a private fleet (a fleet of its own, so any number is free; high to stand out).
_own_slots = itertools.count(100)


# --- a private fleet ------------------------------------------------------------------------------------------


def own_fleet(nets: Sequence[str], count: int = 8) -> AbstractContextManager[Fleet]:
    """A small fleet on the first free net of `nets`, for tests that kill sshd or mount over a deploy root;
    always stopped after (by PID) and its folder removed."""
    return fleet_on_a_free_net(nets, count, prefix="sartoris-faults-")


def deployment_on(fleet: Fleet, tmp_path: Path) -> Deployment:
    """The `deployment` fixture's setup, on another fleet: a sample app with two submodules, every host targeted."""
    slot = next(_own_slots)
    root = tmp_path / "deploy"
    make_checkout(root, slot, files=60, submodules=2, submodule_files=5)
    fleet.write_group(root / "hosts" / "fleet", fleet.hosts)
    pool_log = tmp_path / "pool.log"
    return Deployment(fleet, slot, root, write_config(root, fleet, pool_log), pool_log)


def sshd_pid(fleet: Fleet, address: str) -> int:
    """The PID of a host's sshd: its mount namespace is the host's view of the disk."""
    return next(p.pid for p in fleet.processes if p.kind == "sshd" and p.addresses == (address,))


def drop_connections(fleet: Fleet, address: str) -> list[int]:
    """SIGKILL the host's per-connection sshd processes, not its listener: the controller's connection drops while
    what its sessions started on the host goes on, as when the network between them fails. The PIDs killed."""
    listener, killed = sshd_pid(fleet, address), []
    for entry in Path("/proc").iterdir():
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) if entry.name.isdigit() else 0
        except (OSError, IndexError, ValueError):
            continue
        if parent == listener:
            os.kill(int(entry.name), signal.SIGKILL)
            killed.append(int(entry.name))
    return killed


def stall_connections(fleet: Fleet, address: str) -> list[int]:
    """SIGSTOP the host's per-connection sshd processes (every sshd under its listener, not the listener, nor what
    their sessions run): the controller's connection stalls, its replies held back, while the host's commands go
    on, as when the network between them stalls. A new connection is served as usual. The PIDs stopped, for
    SIGCONT."""
    listener, children = sshd_pid(fleet, address), _children()
    stopped, queue = [], list(children.get(listener, []))
    while queue:
        pid = queue.pop()
        try:
            is_sshd = (Path("/proc") / str(pid) / "comm").read_text().strip() == "sshd"
        except OSError:
            continue
        if is_sshd:
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)
            queue += children.get(pid, [])
    return stopped


@contextlib.contextmanager
def stalls(fleet: Fleet, address: str) -> Iterator[Callable[[], None]]:
    """A call that stalls the host's connections (stall_connections) when a test acts, mid-run; every process it
    stopped is resumed on leaving, pass or fail."""
    stopped: list[int] = []

    def stall() -> None:
        stopped.extend(stall_connections(fleet, address))
        assert stopped, "no sshd session of the host was found to stall"

    try:
        yield stall
    finally:
        signal_each(stopped, signal.SIGCONT)


def signal_each(pids: Iterable[int], sig: signal.Signals) -> None:
    """Send `sig` to each of `pids`, but those that ended meanwhile."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _children() -> dict[int, list[int]]:
    """Every process's children, by parent PID."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    return children


def in_host_namespace(fleet: Fleet, address: str, *argv: str) -> None:
    """Run a command (mount, umount) inside a host's mount namespace."""
    subprocess.run(
        ["nsenter", "-t", str(sshd_pid(fleet, address)), "-m", "--", *argv],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )


# --- hooks ----------------------------------------------------------------------------------------------------


def write_script(path: Path, body: str) -> Path:
    """An executable /bin/sh script at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


REFUSED_CHECKOUT = "error: post-checkout refused"
_FAULTS = ".test-faults"  # on a host's disk, beside its slots: the git config that plants checkout hooks


def refuse_checkouts(deployment: Deployment, address: str) -> Path:
    """Every checkout in the slot's trees on the host fails, saying REFUSED_CHECKOUT: its next switch fails at
    checkout, and the old tree stays live. Unlink the returned file to fix the host."""
    return checkout_hook(deployment, address, f"echo '{REFUSED_CHECKOUT}' >&2\nexit 1\n")


def checkout_hook(deployment: Deployment, address: str, body: str) -> Path:
    """A post-checkout hook (a /bin/sh script) that every checkout in the slot's trees on one host runs, however
    the switch began the tree: a hard-link copy of the live tree, a recycled tree, or a fresh clone of the store,
    which has no hook of the live tree's (a switch whose build from a copy fails builds again from one). Planted
    through git config as the host reads it: the fleet's home, which its hosts share, includes a file under
    remote_root, which only this host's disk holds; that file points core.hooksPath at the hook for this slot's
    trees. The returned file is the link to the hook: unlink it to remove the hook."""
    slot, faults = f"php-slot{deployment.slot}", deployment.fleet.host_root(address) / _FAULTS
    write_script(faults / slot / "post-checkout", body)
    hooks = f"{deployment.fleet.remote_root}/{_FAULTS}/{slot}"
    return _trees_config(deployment, address, f'[core]\n\thooksPath = "{hooks}"\n')


def _trees_config(deployment: Deployment, address: str, text: str) -> Path:
    """Git config `text` that every git in the slot's trees on one host reads (not the store's: a fetch never reads
    it), as checkout_hook says; the file holding it, on the host's disk."""
    fleet, slot = deployment.fleet, f"php-slot{deployment.slot}"
    remote, faults = fleet.remote_root, fleet.host_root(address) / _FAULTS
    _add_once(Layout(fleet.directory).home / ".gitconfig", f'[include]\n\tpath = "{remote}/{_FAULTS}/gitconfig"\n')
    trees = f"{remote}/.sartoris/{slot}/trees/"
    _add_once(faults / "gitconfig", f'[includeIf "gitdir:{trees}"]\n\tpath = "{slot}.gitconfig"\n')
    config = faults / f"{slot}.gitconfig"
    config.write_text(text)
    return config


@contextmanager
def chatty_login(fleet: Fleet, address: str) -> Iterator[None]:
    """While inside, the account's shell on one host prints an xterm title sequence, with no newline, before every
    command it runs (bash reads ~/.bashrc for an ssh command; many .bashrc files set the title first thing). The
    fleet's hosts share one home: its .bashrc asks for a flag only this host's disk holds, and is put back as it
    was on the way out, pass or fail."""
    bashrc = Layout(fleet.directory).home / ".bashrc"
    flag = fleet.host_root(address) / _FAULTS / "chatty"
    original = bashrc.read_bytes()
    bashrc.write_bytes(
        f'[ -e "{fleet.remote_root}/{_FAULTS}/chatty" ] && printf \'\\033]0;%s\\007\' "$USER@chatty"\n'.encode()
        + original
    )
    flag.parent.mkdir(parents=True, exist_ok=True)
    flag.touch()
    try:
        yield
    finally:
        flag.unlink()
        bashrc.write_bytes(original)


def hold_tree_git(deployment: Deployment, address: str) -> Path:
    """Every git in the slot's trees on one host (the switch's, never the fetch's) blocks while it reads its config,
    until `let_go`: that config (see _trees_config) includes a FIFO nobody writes. The FIFO, for let_go."""
    held = deployment.fleet.host_root(address) / _FAULTS / f"php-slot{deployment.slot}.held"
    held.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(held)
    _trees_config(deployment, address, f'[include]\n\tpath = "{deployment.fleet.remote_root}/{_FAULTS}/{held.name}"\n')
    return held


def let_go(held: Path) -> None:
    """Let the gits `hold_tree_git` holds go on (they read an empty file) and the later ones pass (the FIFO gone: a
    missing include is ignored). Never blocks: with no git waiting, the FIFO is only removed."""
    try:
        writer = os.open(held, os.O_WRONLY | os.O_NONBLOCK)  # opens the waiting reader's end too
    except OSError:  # ENXIO: no git is waiting on it
        writer = None
    held.unlink()
    if writer is not None:
        os.close(writer)  # the reader sees the end of an empty file


def hang_git(deployment: Deployment, address: str) -> Path:
    """Every git on one host blocks while it reads its config, as on a stuck NFS mount: the host's git config (see
    checkout_hook) includes a FIFO nobody writes. Unlink the returned FIFO to fix the host (a missing include is
    ignored); a git already blocked on it stays blocked until it is killed."""
    fleet = deployment.fleet
    remote, faults = fleet.remote_root, fleet.host_root(address) / _FAULTS
    _add_once(Layout(fleet.directory).home / ".gitconfig", f'[include]\n\tpath = "{remote}/{_FAULTS}/gitconfig"\n')
    _add_once(faults / "gitconfig", f'[include]\n\tpath = "{remote}/{_FAULTS}/stuck"\n')
    os.mkfifo(faults / "stuck")
    return faults / "stuck"


def _add_once(path: Path, text: str) -> None:
    """Append `text` to the file at `path` (made when missing) unless it holds it already."""
    path.parent.mkdir(parents=True, exist_ok=True)
    held = path.read_text() if path.exists() else ""
    if text not in held:
        path.write_text(held + text)


def store(deployment: Deployment, address: str) -> Path:
    """A host's object store for the slot (bare), on disk."""
    return deployment.fleet.host_root(address) / ".sartoris" / f"php-slot{deployment.slot}" / "store.git"


def trees(deployment: Deployment, address: str) -> Path:
    return deployment.fleet.host_root(address) / ".sartoris" / f"php-slot{deployment.slot}" / "trees"


def live_tree(deployment: Deployment, address: str) -> Path:
    """The tree the host's slot link points at, on disk."""
    return deployment.host_slot(address).resolve()


def hang_switch(deployment: Deployment, address: str, seconds: float, marker: Path | None = None) -> Path:
    """A post-checkout hook in the host's live tree: the next switch's `git checkout` runs it, touching `marker`
    (when given) and then sleeping."""
    touch = f"touch {shlex.quote(str(marker))}\n" if marker else ""
    return write_script(
        live_tree(deployment, address) / ".git" / "hooks" / "post-checkout", f"{touch}sleep {seconds}\n"
    )


def remove_switch_hooks(deployment: Deployment, address: str) -> None:
    """Remove the post-checkout hook from every tree of the host's slot (a switch copies it into the new tree)."""
    for hook in trees(deployment, address).glob("*/.git/hooks/post-checkout"):
        hook.unlink()


def slow_fetch(deployment: Deployment, address: str, seconds: float, marker: Path | None = None) -> Path:
    """A reference-transaction hook in the host's store: each ref update of a fetch touches `marker` (when given)
    and waits `seconds` once."""
    touch = f"touch {shlex.quote(str(marker))}; " if marker else ""
    return write_script(
        store(deployment, address) / "hooks" / "reference-transaction",
        f'cat >/dev/null\n[ "$1" = prepared ] && {{ {touch}sleep {seconds}; }}\nexit 0\n',
    )


def processes_with(text: str) -> list[int]:
    """PIDs of processes on this machine whose command line contains `text` (hosts' processes run here too)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found.append(int(entry.name))
    return found


def host_processes_with(fleet: Fleet, address: str, text: str) -> list[int]:
    """processes_with(text), of one host: those in its mount namespace."""
    namespace = os.readlink(f"/proc/{sshd_pid(fleet, address)}/ns/mnt")
    found = []
    for pid in processes_with(text):
        with contextlib.suppress(OSError):  # it ended meanwhile
            if os.readlink(f"/proc/{pid}/ns/mnt") == namespace:
                found.append(pid)
    return found


def slot_processes(deployment: Deployment) -> list[int]:
    """Processes still working on this deployment's slot on any host of the fleet (the hosts run on this machine):
    remote scripts name the slot's state folder on their command lines."""
    return processes_with(f"{deployment.fleet.remote_root}/.sartoris/php-slot{deployment.slot}/")


# --- reading a host's slot from its disk ----------------------------------------------------------------------


def link_target(deployment: Deployment, address: str) -> str | None:
    """Where the slot link points (relative, as the host wrote it), or None when the slot is not a link."""
    slot = deployment.host_slot(address)
    return os.readlink(slot) if slot.is_symlink() else None


def tree_commit(deployment: Deployment, commit: str) -> str:
    """The link target a host's slot has when it is on `commit`."""
    return f".sartoris/php-slot{deployment.slot}/trees/{commit}"


def is_clean(deployment: Deployment, address: str) -> bool:
    """The host's slot is a tree with nothing modified, added or deleted (untracked files and submodules included).

    Asked as the host sees its disk (a tree borrows its objects from the store by its path on the host): in a
    mount namespace of our own where remote_root is that host's root, so it works for a dead host too.
    """
    fleet = deployment.fleet
    root, on_disk = shlex.quote(str(fleet.remote_root)), shlex.quote(str(fleet.host_root(address)))
    slot = shlex.quote(f"{fleet.remote_root}/php-slot{deployment.slot}")
    script = f"mount --bind {on_disk} {root} && git -C {slot} status --porcelain --ignore-submodules=none"
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return done.returncode == 0 and done.stdout == ""


def store_tags(deployment: Deployment, address: str) -> set[str]:
    """The tags a host's store holds (empty when it has no store)."""
    if not store(deployment, address).is_dir():
        return set()
    done = subprocess.run(
        ["git", "--git-dir", str(store(deployment, address)), "for-each-ref", "--format=%(refname)", "refs/tags"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return set(done.stdout.split())


# --- running the controller in the background -----------------------------------------------------------------


def start_sartoris(deployment: Deployment, *args: str, **popen: object) -> subprocess.Popen[str]:
    """The real command line as a background process (stdout/stderr piped unless given). SIGINT is restored to
    its default in the child: a shell without job control starts background jobs (`make test &` under nohup)
    with SIGINT ignored, and Python then installs no Ctrl-C handler, so every Ctrl-C test would fail."""
    options: dict[str, object] = {
        "stdout": subprocess.PIPE,
        "stderr": subprocess.PIPE,
        "text": True,
        "preexec_fn": _default_sigint,
        **popen,
    }
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, str(ROOT / "sartoris.py"), "--config", str(deployment.config), *args], **options
    )


def _default_sigint() -> None:
    """Also SIGHUP: under `nohup make test` it would be ignored, and the hang-up test would see no stop."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> float:
    """Poll until `condition()` holds; the seconds it took. Fails the test with `what` at the deadline."""
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > timeout:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - began


def act_mid_run(
    process: subprocess.Popen[str],
    ready: Callable[[], bool],
    what: str,
    act: Callable[[], object],
    timeout: float = 60,
) -> tuple[str, str, float]:
    """While the background controller `process` runs: wait (up to 60 s) until `ready()`, call `act()` (a signal,
    a killed host, a full disk), then collect its output within `timeout` seconds. Returns stdout, stderr and the
    seconds from `act` to the end. The process is stopped whatever happens, so a failing test leaves none."""
    try:
        wait_for(ready, 60, what)
        acted = time.monotonic()
        act()
        stdout, stderr = process.communicate(timeout=timeout)
        return stdout, stderr, time.monotonic() - acted
    finally:
        stop(process)


def stop(process: subprocess.Popen[str]) -> None:
    """Kill a background controller that is still running (a failed test must not leave it behind)."""
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
