"""The benchmark's world (a fleet, a deploy host, a publish folder, the local floor's folders) and its tools:
for each tool, the command line that does the job and the check that it really did it.

Census tools run `git -C <slot> rev-parse HEAD` on every host. Deploy tools publish a release and bring every
host's slot to it: Sartoris with `sartoris sync`; the peers publish the way Sartoris does (tag, push the tag and
every submodule commit under refs/sartoris/submodules/) and run, in a fetch pass then a switch pass, the naive
git commands an operator would script (fetch; checkout; `submodule update --init`) — or, with
--peer-commands sartoris, Sartoris's own host scripts; the local floor runs the naive commands in N local
folders, no SSH.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench_checks import check_ansible, check_lines, check_status, check_sync, check_worker
from bench_measure import ToolRun
from fleet import Fleet
from sample_repo import git, make_checkout

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "scripts"
BIN = Path(sys.executable).parent
SLOT_PREFIX = "php-slot"
CENSUS_SLOT = 0
CHANGED_FILE = "includes/dir07/file0007.php"  # the one file the incremental deploy changes (core, not a submodule)
CURVE25519 = "curve25519-sha256"
SUBMODULE_REF_PREFIX = "refs/sartoris/submodules/"  # where Sartoris publishes submodule commits

CENSUS_TOOLS = ("sartoris", "asyncssh", "parallel-ssh", "openssh-default", "openssh-curve25519", "ansible")
CENSUS_FLOOR = "asyncssh"
DEPLOY_TOOLS = ("sartoris", "parallel-ssh", "openssh-curve25519", "local-floor")
DEPLOY_FLOOR = "local-floor"
LABELS = {
    "sartoris": "Sartoris",
    "asyncssh": "bare asyncssh (floor)",
    "parallel-ssh": "parallel-ssh",
    "openssh-default": "OpenSSH + xargs, default kex",
    "openssh-curve25519": "OpenSSH + xargs, curve25519",
    "ansible": "Ansible raw",
    "local-floor": "local git, no SSH (floor)",
}
MULTI_PROCESS = {"openssh-default", "openssh-curve25519", "ansible", "local-floor"}


@dataclass(frozen=True)
class Spec:
    """How to run one tool once, and how to tell it did the whole job (None) or what went wrong."""

    argv: list[str]
    check: Callable[[ToolRun], str | None]
    env: dict[str, str] | None = None
    cwd: Path | None = None
    sample_tree: bool = False


@dataclass(frozen=True)
class Submodule:
    """A submodule the release pins: its .gitmodules name, its path, its commit."""

    name: str
    path: str
    commit: str


def submodule_ref(commit: str) -> str:
    return f"{SUBMODULE_REF_PREFIX}{commit}"


@dataclass(frozen=True)
class Release:
    """A release as the peers publish it: their own tag name, the commit and the submodule commits it pins."""

    tag: str
    commit: str
    submodules: tuple[Submodule, ...]


@dataclass
class World:
    """Everything the runs share: the fleet, the folders, the bounds."""

    fleet: Fleet
    work: Path
    source: Path  # a snapshot of the Sartoris sources (sartoris.py + sartoris/), taken when the run started
    concurrency: int
    timeout: float
    files: int
    submodule_files: int
    peer_commands: str = "naive"  # the host scripts the peers run: the naive ones the floor runs, or Sartoris's
    census_commit: str = ""
    _listeners: dict[str, int] = field(default_factory=dict)

    # Two deploy hosts: the census slot lives under its own remote root on the hosts ("census"), so after a
    # deploy everything else in a host's root can go, whatever layout Sartoris keeps there.
    deploy_root = property(lambda self: self.work / "deploy")
    census_root = property(lambda self: self.work / "census")
    floor_root = property(lambda self: self.work / "floor")
    template = property(lambda self: self.work / "template" / f"{SLOT_PREFIX}0")
    config = property(lambda self: self.deploy_root / "sartoris.toml")
    census_config = property(lambda self: self.census_root / "sartoris.toml")

    def hosts(self, n: int) -> list[str]:
        return self.fleet.hosts[:n]

    def hosts_file(self, n: int) -> Path:
        """A plain list of the first n addresses (xargs input), written once."""
        path = self.work / "lists" / f"hosts-{n}.txt"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(f"{host}\n" for host in self.hosts(n)))
        return path

    def group(self, n: int) -> str:
        """A Sartoris host group holding the first n addresses (beside both configs), written once."""
        name = f"bench-{n}"
        for root in (self.deploy_root, self.census_root):
            if not (root / "hosts" / name).exists():
                self.fleet.write_group(root / "hosts" / name, self.hosts(n))
        return name

    def listener_pids(self, n: int) -> list[int]:
        if not self._listeners:
            self._listeners = {p.addresses[0]: p.pid for p in self.fleet.processes if p.kind == "sshd"}
        return [self._listeners[host] for host in self.hosts(n)]

    def remote_slot(self, slot: int) -> str:
        return f"{self.fleet.remote_root}/{SLOT_PREFIX}{slot}"

    def census_slot(self) -> str:
        return f"{self.fleet.remote_root}/census/{SLOT_PREFIX}{CENSUS_SLOT}"

    def roots(self, tool: str, n: int) -> list[Path]:
        """The n folders a deploy writes into: the hosts' remote roots, or the local floor's folders."""
        if tool == DEPLOY_FLOOR:
            return [self.floor_root / str(index) for index in range(n)]
        return [self.fleet.host_root(host) for host in self.hosts(n)]

    def slot_dirs(self, tool: str, n: int, slot: int) -> list[Path]:
        """The n copies of a slot (for Sartoris a link to its live tree; followed when read)."""
        return [root / f"{SLOT_PREFIX}{slot}" for root in self.roots(tool, n)]

    def publish_url(self, slot: int) -> Path:
        """Where a deploy slot's releases are published (Sartoris's publish_url for the deploy config)."""
        return self.work / "deploy-publish" / f"{SLOT_PREFIX}{slot}.git"

    def checkout(self, slot: int) -> Path:
        return self.deploy_root / f"{SLOT_PREFIX}{slot}"


# --- setting the world up -------------------------------------------------------------------------------------


def prepare(world: World) -> None:
    """The deploy hosts (sartoris.toml each), the sample app's template, the census slot's small app."""
    world.deploy_root.mkdir(parents=True)
    world.census_root.mkdir(parents=True)
    write_sartoris_config(world, world.config, str(world.fleet.remote_root))
    write_sartoris_config(world, world.census_config, f"{world.fleet.remote_root}/census")
    make_checkout(world.template.parent, 0, files=world.files, submodules=3, submodule_files=world.submodule_files)
    make_checkout(world.census_root, CENSUS_SLOT, files=20, submodules=0)
    world.census_commit = git(world.census_root / f"{SLOT_PREFIX}{CENSUS_SLOT}", "rev-parse", "HEAD")
    (world.work / "ansible" / "tmp").mkdir(parents=True)
    (world.work / "ansible" / "ansible.cfg").write_text("[defaults]\n")


def write_sartoris_config(world: World, path: Path, remote_root: str) -> None:
    fleet = world.fleet
    path.write_text(f"""\
# written by scripts/bench.py: concurrency {world.concurrency} like every peer; fetch_concurrency too, so the
# fetch pass runs as many fetches at once as the peers' fetch passes do.
[deploy]
name = "bench"
checkout_root = "."
remote_root = "{remote_root}"
publish_url = "{world.work}/{path.parent.name}-publish/{SLOT_PREFIX}{{slot}}.git"

[fanout]
concurrency = {world.concurrency}
fetch_concurrency = {world.concurrency}
connect_timeout = 60
command_timeout = {int(world.timeout)}
max_failures = 0

[ssh]
user = "{fleet.user}"
port = {fleet.port}
identity_files = ["{fleet.identity_file}"]
known_hosts = "{fleet.known_hosts}"
""")


def new_deploy_checkout(world: World, slot: int) -> Path:
    """A copy of the template app as the slot's working copy (same commits for every tool)."""
    checkout = world.checkout(slot)
    shutil.copytree(world.template, checkout, symlinks=True)
    return checkout


def peer_release(world: World, slot: int, phase: str) -> Release:
    """The release the peers publish for a slot's phase: their tag on the slot checkout's HEAD."""
    return checkout_release(world.checkout(slot), f"bench-s{slot}-{phase}")


def checkout_release(checkout: Path, tag: str) -> Release:
    """`tag` on the checkout's HEAD with the submodule commits it pins (read with plain git: GitPython would
    leave `git cat-file` processes running in the work folder)."""
    commit = git(checkout, "rev-parse", "HEAD")
    gitlinks = {}
    for entry in git(checkout, "ls-tree", "-r", "-z", commit).split("\0"):
        if entry.startswith("160000 "):
            meta, path = entry.split("\t", 1)
            gitlinks[path] = meta.split()[2]
    names = {}
    listing = git(checkout, "config", "--null", "--blob", f"{commit}:.gitmodules", "--get-regexp",
                  r"^submodule\..*\.path$") if gitlinks else ""
    for record in filter(None, listing.split("\0")):
        key, _, path = record.partition("\n")
        names[path] = key[len("submodule.") : -len(".path")]
    modules = tuple(Submodule(names.get(path, path), path, sha) for path, sha in sorted(gitlinks.items()))
    return Release(tag, commit, modules)


def clear_roots(roots: Sequence[Path]) -> None:
    """Empty each root but for the census's folder: every deploy's slot, store, trees, whatever the layout."""
    remove_trees([entry for root in roots if root.is_dir() for entry in root.iterdir() if entry.name != "census"])


def remove_trees(paths: Sequence[Path]) -> None:
    """rm -rf, in batches (a 500-host slot is a million files; Python's rmtree is several times slower)."""
    batch = [str(path) for path in paths]
    for start in range(0, len(batch), 200):
        subprocess.run(["rm", "-rf", "--", *batch[start : start + 200]], timeout=900, check=False)


# --- census --------------------------------------------------------------------------------------------------


def census_command(world: World) -> str:
    return f"git -C {shlex.quote(world.census_slot())} rev-parse HEAD"


def census_spec(tool: str, world: World, n: int, run_dir: Path) -> Spec:
    if tool == "sartoris":
        argv = sartoris_argv(world, "status", "--slot", str(CENSUS_SLOT), "--hosts", world.group(n), "--json",
                             config=world.census_config)
        return Spec(argv, lambda run: check_status(run, n), cwd=world.census_root)
    if tool in ("asyncssh", "parallel-ssh"):
        worker = "asyncssh-census" if tool == "asyncssh" else "pssh-census"
        params = worker_params(world, n) | {"command": census_command(world)}
        return worker_spec(worker, params, run_dir, lambda run: check_worker(run, n, world.census_commit))
    if tool.startswith("openssh-"):
        kex = CURVE25519 if tool == "openssh-curve25519" else None
        argv = [*xargs_argv(world, n), *ssh_argv(world, kex), "{}", census_command(world)]
        return Spec(argv, lambda run: check_lines(run, n, world.census_commit), sample_tree=True)
    if tool == "ansible":
        return ansible_spec(world, n)
    raise ValueError(f"unknown census tool {tool}")


def sartoris_argv(world: World, *args: str, config: Path | None = None) -> list[str]:
    return [sys.executable, str(world.source / "sartoris.py"), "--config", str(config or world.config), *args]


def worker_params(world: World, n: int) -> dict[str, object]:
    fleet = world.fleet
    return {
        "hosts": world.hosts(n), "user": fleet.user, "port": fleet.port, "identity_file": str(fleet.identity_file),
        "known_hosts": str(fleet.known_hosts), "concurrency": world.concurrency, "timeout": world.timeout,
    }


def worker_spec(worker: str, params: dict[str, object], run_dir: Path, check: Callable[[ToolRun], str | None]) -> Spec:
    run_dir.mkdir(parents=True, exist_ok=True)
    params_file = run_dir / "params.json"
    params_file.write_text(json.dumps(params))
    return Spec([sys.executable, str(HERE / "bench_workers.py"), worker, str(params_file)], check)


def xargs_argv(world: World, n: int) -> list[str]:
    return ["xargs", "-a", str(world.hosts_file(n)), "-d", "\\n", "-P", str(world.concurrency), "-I{}"]


def ssh_argv(world: World, kex: str | None) -> list[str]:
    """OpenSSH with no config file, only the fleet's key and known_hosts; strict host key checking."""
    fleet = world.fleet
    argv = [
        "ssh", "-F", "none", "-n", "-T", "-i", str(fleet.identity_file), "-p", str(fleet.port), "-l", fleet.user,
        "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={fleet.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "ConnectTimeout=60",
    ]
    return [*argv, "-o", f"KexAlgorithms={kex}"] if kex else argv


def ansible_spec(world: World, n: int) -> Spec:
    """`ansible -m raw` with host key checking on against the fleet's known_hosts, forks = concurrency.

    ControlMaster is off: with Ansible's default ControlPersist=60s every run after the first would reuse the
    previous run's connections (and leave ssh masters running after the measurement).
    """
    fleet, folder = world.fleet, world.work / "ansible"
    inventory = folder / f"inventory-{n}.ini"
    if not inventory.exists():
        inventory.write_text(
            "[fleet]\n" + "".join(f"{host}\n" for host in world.hosts(n))
            + f"[fleet:vars]\nansible_port={fleet.port}\nansible_user={fleet.user}\n"
            + f"ansible_ssh_private_key_file={fleet.identity_file}\n"
        )
    ssh_args = (
        f"-C -o ControlMaster=no -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes "
        f"-o UserKnownHostsFile={fleet.known_hosts} -o GlobalKnownHostsFile=/dev/null"
    )
    env = {
        **os.environ, "ANSIBLE_CONFIG": str(folder / "ansible.cfg"), "ANSIBLE_HOME": str(folder),
        "ANSIBLE_LOCAL_TEMP": str(folder / "tmp"), "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_SSH_ARGS": ssh_args, "ANSIBLE_TIMEOUT": "60", "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_DEPRECATION_WARNINGS": "False", "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8",
    }
    argv = [
        sys.executable, str(BIN / "ansible"), "fleet", "-i", str(inventory), "-m", "raw", "-a",
        census_command(world), "-f", str(world.concurrency),
    ]
    return Spec(argv, lambda run: check_ansible(run, n, world.census_commit), env=env, cwd=folder, sample_tree=True)


# --- deploy --------------------------------------------------------------------------------------------------


def deploy_spec(tool: str, world: World, n: int, slot: int, phase: str, run_dir: Path) -> Spec:
    """One deploy of the slot's checkout HEAD to n hosts (or n local folders) by one tool."""
    if tool == "sartoris":
        argv = sartoris_argv(
            world, "sync", "--slot", str(slot), "--hosts", world.group(n), "--json", "-m", f"bench {phase}"
        )
        return Spec(argv, lambda run: check_sync(run, n), cwd=world.deploy_root)
    release = peer_release(world, slot, phase)
    run_dir.mkdir(parents=True, exist_ok=True)
    publish = run_dir / "publish.sh"
    publish.write_text(publish_script(world.checkout(slot), world.publish_url(slot), release.tag))
    from sartoris.remote import RemoteRelease, SubmoduleSpec, fetch_command, switch_command  # the snapshot's

    remote = RemoteRelease(
        slot_path=world.remote_slot(slot), fetch_url=str(world.publish_url(slot)), tag=release.tag,
        commit=release.commit, submodules=tuple(SubmoduleSpec(s.name, s.path, s.commit) for s in release.submodules),
    )
    fetch, switch = fetch_command(remote), switch_command(remote)
    if world.peer_commands == "naive":
        slot_path = Path(world.remote_slot(slot))
        fetch, switch = naive_fetch(slot_path, world.publish_url(slot), release), naive_switch(slot_path, release)
    if tool == "parallel-ssh":
        params = worker_params(world, n) | {
            "publish_script": str(publish), "fetch": fetch, "switch": switch,
        }
        return worker_spec("pssh-deploy", params, run_dir, lambda run: check_worker(run, n, None))
    if tool == "openssh-curve25519":
        ssh = [*xargs_argv(world, n), *ssh_argv(world, CURVE25519), "{}"]
        script = run_dir / "deploy.sh"
        script.write_text("\n".join([
            "set -eu", f". {shlex.quote(str(publish))}",
            f"FETCH={shlex.quote(fetch)}", f"SWITCH={shlex.quote(switch)}",
            f"{shell(ssh)} \"$FETCH\" >/dev/null", f"{shell(ssh)} \"$SWITCH\" >/dev/null", "",
        ]))
        return Spec(["sh", str(script)], lambda run: None if run.returncode == 0 else run.tail(), sample_tree=True)
    if tool == DEPLOY_FLOOR:
        return floor_spec(world, n, slot, release, publish, run_dir)
    raise ValueError(f"unknown deploy tool {tool}")


def shell(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(arg) for arg in argv)


def publish_script(checkout: Path, publish: Path, tag: str) -> str:
    """Publish like Sartoris: annotated tag, push it, push each submodule's pinned commit under its own ref."""
    q = shlex.quote
    return "\n".join([
        "set -eu",
        "export LC_ALL=C GIT_TERMINAL_PROMPT=0 GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@localhost",
        f"cd {q(str(checkout))}",
        f"git tag --annotate --message 'bench release' {q(tag)} HEAD",
        f"[ -d {q(str(publish))} ] || git init --quiet --bare {q(str(publish))}",
        f"git push --quiet {q(str(publish))} {q(f'refs/tags/{tag}:refs/tags/{tag}')}",
        f"export PUBLISH={q(str(publish))}",
        # `submodule foreach` forbids the file transport to the commands it runs unless told otherwise
        "git submodule --quiet foreach 'git -c protocol.file.allow=always push --quiet \"$PUBLISH\" "
        + '\"$sha1:' + submodule_ref("$sha1") + '\"\'',
        "",
    ])


def naive_fetch(slot: Path, url: Path, release: Release) -> str:
    """The naive fetch the issue names as the floor: create the repository if need be, fetch tag + submodules."""
    refspecs = [f"+refs/tags/{release.tag}:refs/tags/{release.tag}"]
    refspecs += [f"+{submodule_ref(s.commit)}:{submodule_ref(s.commit)}" for s in release.submodules]
    return "\n".join([
        "export LC_ALL=C GIT_TERMINAL_PROMPT=0",
        f"[ -d {shlex.quote(str(slot / '.git'))} ] || git init --quiet {shlex.quote(str(slot))} || exit",
        shell(["git", "-C", str(slot), "fetch", "--quiet", "--no-tags", str(url), *refspecs]),
    ])


def naive_switch(slot: Path, release: Release) -> str:
    """The naive switch the issue names: checkout, then `submodule update --init` (no --force: a submodule
    already at its commit is left alone) from the slot's own objects."""
    lines = [
        "export LC_ALL=C GIT_TERMINAL_PROMPT=0",
        shell(["cd", str(slot)]) + " || exit",
        shell(["git", "-c", "advice.detachedHead=false", "checkout", "--quiet", "--force", "--detach",
               f"refs/tags/{release.tag}"]) + " || exit",
    ]
    lines += [shell(["git", "config", f"submodule.{s.name}.url", f"{slot}/.git"]) + " || exit"
              for s in release.submodules]
    lines.append(shell(["git", "-c", "protocol.file.allow=always", "submodule", "--quiet", "update", "--init",
                        "--", *(s.path for s in release.submodules)]) + " || exit")
    return "\n".join(lines)


def floor_spec(world: World, n: int, slot: int, release: Release, publish: Path, run_dir: Path) -> Spec:
    """The same git work in n local folders at the same parallelism, one `sh` per folder and phase."""
    url = world.publish_url(slot)
    lists: dict[str, list[str]] = {"fetch": [], "switch": []}
    for index, slot_dir in enumerate(world.slot_dirs(DEPLOY_FLOOR, n, slot)):
        slot_dir.parent.mkdir(parents=True, exist_ok=True)
        scripts = {"fetch": naive_fetch(slot_dir, url, release), "switch": naive_switch(slot_dir, release)}
        for phase, text in scripts.items():
            path = run_dir / f"{phase}-{index}.sh"
            path.write_text(text + "\n")
            lists[phase].append(str(path))
    for phase, paths in lists.items():
        (run_dir / f"{phase}.list").write_text("".join(f"{p}\n" for p in paths))
    xargs = f"xargs -d '\\n' -P {world.concurrency} -n 1 sh"
    script = run_dir / "deploy.sh"
    script.write_text("\n".join([
        "set -eu", f". {shlex.quote(str(publish))}",
        f"{xargs} < {shlex.quote(str(run_dir / 'fetch.list'))}",
        f"{xargs} < {shlex.quote(str(run_dir / 'switch.list'))} >/dev/null", "",
    ]))
    return Spec(["sh", str(script)], lambda run: None if run.returncode == 0 else run.tail(), sample_tree=True)
