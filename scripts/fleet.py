#!/usr/bin/env python3
"""A local fleet of real OpenSSH servers on loopback addresses, each one standing in for an app server.

Why: sartoris fans out over SSH, and hundreds of real sshd processes catch what a mock never will (host key
checks, refused logins, connection limits, silent servers). Each sshd runs in its own mount namespace so every
host sees its own folder at the same remote_root path. Stdlib only; needs root (mount namespaces).

A fleet directory D holds:
    D/fleet.json                 everything about the fleet, including every PID started (read by Fleet.load)
    D/ssh/                       id_ed25519 (client key), authorized_keys, known_hosts, config (ssh -F)
    D/hosts/<addr>/              ssh_host_ed25519_key, sshd_config, root/ (the host's remote root on disk)
    D/hosts/fleet, fleet-faulty  dsh-style group files: good hosts, fault hosts
    D/remote-root                empty here; inside each host's namespace it is that host's root/
    D/home                       copy of /etc/skel mounted over the login user's home inside each host
    D/logs/<addr>.log            sshd stderr (tarpit.log for the tarpit)

Usage:
    fleet.py start --dir D --count N [--port 2200] [--net 127.10]
                   [--refused K] [--tarpit K] [--auth K] [--hostkey K] [--nostdin K]
    fleet.py stop --dir D
    fleet.py tarpit --listen ADDR:PORT [--listen ...]    (started by `start`; accepts TCP, never says a word)
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import ipaddress
import json
import os
import pwd
import re
import resource
import selectors
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

SSHD = "/usr/sbin/sshd"
DEFAULT_PORT = 2200
DEFAULT_NET = "127.10"
RESERVED_PORTS = frozenset({2024})  # this machine's own infrastructure listens on 0.0.0.0:2024
HOSTS_PER_OCTET = 250
FAULT_OCTET = 200  # fault hosts live at <net>.200.x and up, so they never collide with good hosts
MAX_HOSTS = FAULT_OCTET * HOSTS_PER_OCTET
MAX_FAULTS = (256 - FAULT_OCTET) * HOSTS_PER_OCTET
FAULT_KINDS = ("refused", "tarpit", "auth", "hostkey", "nostdin")
# A nostdin host runs every command through a forced command that gives it /dev/null for stdin, as a wrapper
# (a logging or restricting ForceCommand) or a login shell's startup file that reads stdin would.
NO_STDIN_COMMAND = 'ForceCommand exec sh -c "$SSH_ORIGINAL_COMMAND" </dev/null'
SERVER_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
UNSAFE_PATH_CHARS = re.compile(r"[\s\"'%\\#]")  # would need quoting in sshd_config or ssh_config
KEYGEN_WORKERS = 16


class FleetError(Exception):
    """The fleet could not be started, found or stopped; `message` is one line, `detail` is a log tail."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.message}\n{self.detail}" if self.detail else self.message


# --- addresses: pure ----------------------------------------------------------------------------------------


def parse_net(net: str) -> str:
    """Check a two-octet prefix inside 127.0.0.0/8 ("127.10"); loopback is the only network we ever use."""
    match = re.fullmatch(r"127\.(\d{1,3})", net)
    if match is None or int(match[1]) > 255:
        raise FleetError(f"--net must be two octets inside 127.0.0.0/8 like 127.10, not {net!r}")
    return f"127.{int(match[1])}"


def host_address(net: str, index: int, first_octet: int = 0) -> str:
    """The index-th (0-based) address of a block starting at <net>.<first_octet>.1, 250 hosts per octet."""
    return f"{net}.{first_octet + index // HOSTS_PER_OCTET}.{index % HOSTS_PER_OCTET + 1}"


def plan_addresses(net: str, count: int, faults: Mapping[str, int]) -> tuple[list[str], dict[str, list[str]]]:
    """Good hosts from <net>.0.1 on; fault hosts, kind after kind, from <net>.200.1 on."""
    hosts = [host_address(net, i) for i in range(count)]
    planned: dict[str, list[str]] = {}
    taken = 0
    for kind in FAULT_KINDS:
        planned[kind] = [host_address(net, taken + i, FAULT_OCTET) for i in range(faults.get(kind, 0))]
        taken += faults.get(kind, 0)
    return hosts, planned


def check_request(count: int, port: int, faults: Mapping[str, int]) -> dict[str, int]:
    """Validate the size and port of a fleet; return the fault counts with every kind present."""
    unknown = sorted(set(faults) - set(FAULT_KINDS))
    if unknown:
        raise FleetError(f"unknown fault kind {unknown[0]!r}; kinds are {', '.join(FAULT_KINDS)}")
    counts = {kind: int(faults.get(kind, 0)) for kind in FAULT_KINDS}
    if not 0 <= count <= MAX_HOSTS:
        raise FleetError(f"--count must be between 0 and {MAX_HOSTS}, not {count}")
    if any(n < 0 for n in counts.values()) or sum(counts.values()) > MAX_FAULTS:
        raise FleetError(f"fault counts must be >= 0 and at most {MAX_FAULTS} in total")
    if not 1 <= port <= 65535 or port in RESERVED_PORTS:
        raise FleetError(f"--port {port} is not usable (1-65535, and never {sorted(RESERVED_PORTS)})")
    return counts


def known_hosts_name(address: str, port: int) -> str:
    """How OpenSSH names a host in known_hosts: bare on port 22, [addr]:port otherwise."""
    return address if port == 22 else f"[{address}]:{port}"


# --- where things live --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """The paths inside one fleet directory, named once so start, load and stop agree."""

    directory: Path

    @property
    def fleet_file(self) -> Path:
        return self.directory / "fleet.json"

    @property
    def ssh_dir(self) -> Path:
        return self.directory / "ssh"

    @property
    def identity_file(self) -> Path:
        return self.ssh_dir / "id_ed25519"

    @property
    def wrong_identity_file(self) -> Path:
        return self.ssh_dir / "wrong_id_ed25519"

    @property
    def authorized_keys(self) -> Path:
        return self.ssh_dir / "authorized_keys"

    @property
    def wrong_authorized_keys(self) -> Path:
        return self.ssh_dir / "wrong_authorized_keys"

    @property
    def known_hosts(self) -> Path:
        return self.ssh_dir / "known_hosts"

    @property
    def ssh_config(self) -> Path:
        return self.ssh_dir / "config"

    @property
    def remote_root(self) -> Path:
        return self.directory / "remote-root"

    @property
    def home(self) -> Path:
        return self.directory / "home"

    @property
    def logs(self) -> Path:
        return self.directory / "logs"

    def group(self, name: str) -> Path:
        return self.directory / "hosts" / name

    def host_dir(self, address: str) -> Path:
        return self.directory / "hosts" / address

    def host_key(self, address: str) -> Path:
        return self.host_dir(address) / "ssh_host_ed25519_key"

    def wrong_host_key(self, address: str) -> Path:
        return self.host_dir(address) / "wrong_host_ed25519_key"

    def sshd_config(self, address: str) -> Path:
        return self.host_dir(address) / "sshd_config"

    def host_root(self, address: str) -> Path:
        return self.host_dir(address) / "root"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"


def check_directory(directory: Path, user_home: Path) -> Path:
    """Resolve a fleet directory and refuse places the per-host mounts would hide or clobber."""
    resolved = directory.expanduser().resolve()
    home = user_home.resolve()
    if resolved == home or home in resolved.parents or resolved in home.parents:
        raise FleetError(
            f"fleet dir {resolved} must not be inside (or contain) {home}: each host mounts a clean "
            f"home over {home}; use e.g. /tmp/sartoris-fleet"
        )
    if resolved == Path("/run") or Path("/run") in resolved.parents:
        raise FleetError(f"fleet dir {resolved} must not be under /run: each host mounts a tmpfs over /run")
    if UNSAFE_PATH_CHARS.search(str(resolved)):
        raise FleetError(f"fleet dir {resolved} must not contain whitespace, quotes, '%', '#' or backslashes")
    if resolved.exists() and any(resolved.iterdir()) and not Layout(resolved).fleet_file.exists():
        raise FleetError(f"fleet dir {resolved} is not empty and holds no fleet.json; pick an empty folder")
    return resolved


# --- processes we start, and /proc --------------------------------------------------------------------------


def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, starttime) of a process from /proc, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # the command name may contain spaces and parentheses
    return fields[0], int(fields[1]), int(fields[19])


def is_alive(pid: int, starttime: int | None = None) -> bool:
    """A process exists and is not a zombie (and, given a starttime, is still the same process)."""
    stat = proc_stat(pid)
    return stat is not None and stat[0] not in "ZXx" and (starttime is None or stat[2] == starttime)


@dataclass(frozen=True)
class Process:
    """One process the fleet started: enough to recognise it later, even from another process."""

    pid: int
    kind: str  # "sshd" or "tarpit"
    addresses: tuple[str, ...]
    marker: str  # must appear in /proc/<pid>/cmdline, guarding against PID reuse
    starttime: int  # /proc/<pid>/stat field 22: a PID plus its start time names one process for good

    def is_running(self) -> bool:
        """Still alive, still the process we started (same start time, cmdline still names our config)."""
        if not is_alive(self.pid, self.starttime):
            return False
        try:
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            return False
        return self.marker in cmdline.decode(errors="replace")

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "kind": self.kind,
            "addresses": list(self.addresses),
            "marker": self.marker,
            "starttime": self.starttime,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Process:
        return cls(
            int(data["pid"]),
            str(data["kind"]),
            tuple(data["addresses"]),
            str(data["marker"]),
            int(data["starttime"]),
        )


def children_by_parent() -> dict[int, list[int]]:
    """One snapshot of the process tree, parent PID -> child PIDs."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := proc_stat(int(entry))) is not None:
            tree.setdefault(stat[1], []).append(int(entry))
    return tree


def descendants(pid: int, tree: Mapping[int, list[int]]) -> Iterator[int]:
    """Every process below pid: sshd's per-connection children and the commands they run."""
    stack = list(tree.get(pid, ()))
    while stack:
        child = stack.pop()
        yield child
        stack.extend(tree.get(child, ()))


def terminate(
    processes: Iterable[Process], popens: Mapping[int, subprocess.Popen[bytes]], timeout: float
) -> None:
    """SIGTERM our live processes and their descendants, wait (bounded), SIGKILL what is left."""
    roots = [process for process in processes if process.is_running()]
    tree = children_by_parent() if roots else {}
    targets: dict[int, int] = {}
    for process in roots:
        targets[process.pid] = process.starttime
        for pid in descendants(process.pid, tree):
            if (stat := proc_stat(pid)) is not None:
                targets[pid] = stat[2]
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 2.0)):
        for pid in targets:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        targets = wait_gone(targets, popens, wait)
        if not targets:
            break
    for popen in popens.values():
        popen.poll()


def wait_gone(
    targets: Mapping[int, int], popens: Mapping[int, subprocess.Popen[bytes]], timeout: float
) -> dict[int, int]:
    """Wait until the (pid, starttime) processes are gone; reap our own children; return the survivors."""
    deadline = time.monotonic() + timeout
    left = dict(targets)
    while True:
        for pid in left:
            if pid in popens:
                popens[pid].poll()
        left = {pid: start for pid, start in left.items() if is_alive(pid, start)}
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.02)


def listening_addresses(port: int) -> set[str]:
    """IPv4 addresses listening on port, from /proc/net/tcp: no probe connection, so no sshd fork."""
    found = set()
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            local, state = fields[1], fields[3]
            hex_ip, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(socket.inet_ntoa(int(hex_ip, 16).to_bytes(4, sys.byteorder)))
    return found


def log_tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log, for error messages."""
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def raise_open_files_limit() -> None:
    """Soft RLIMIT_NOFILE up to the hard limit: hundreds of servers and their connections need descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --- generated files ----------------------------------------------------------------------------------------


def generate_keys(paths: Sequence[Path]) -> None:
    """ed25519 key pairs without passphrase, in parallel; existing pairs are kept (a restart reuses them)."""
    missing = [path for path in paths if not (path.exists() and path.with_suffix(".pub").exists())]

    def keygen(path: Path) -> subprocess.CompletedProcess[bytes]:
        path.unlink(missing_ok=True)
        comment = f"fleet-{path.parent.name}"
        argv = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)]
        return subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, check=False)

    with ThreadPoolExecutor(max_workers=KEYGEN_WORKERS) as pool:
        for path, done in zip(missing, pool.map(keygen, missing), strict=True):
            if done.returncode != 0:
                raise FleetError(
                    f"ssh-keygen failed for {path}: {done.stderr.decode(errors='replace').strip()}"
                )


def public_key(private_key: Path) -> str:
    """'ssh-ed25519 AAAA...' of a key pair, without its comment."""
    return " ".join(private_key.with_suffix(".pub").read_text().split()[:2])


def sshd_version(output: str) -> tuple[int, int] | None:
    """(major, minor) from `sshd -V`'s "OpenSSH_9.2, OpenSSL ..." (or a usage text naming it); None if absent."""
    found = re.search(r"OpenSSH_(\d+)\.(\d+)", output)
    return (int(found[1]), int(found[2])) if found else None


def installed_sshd_version() -> tuple[int, int] | None:
    """The version of the sshd the fleet runs."""
    done = subprocess.run([SSHD, "-V"], capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    return sshd_version(done.stdout + done.stderr)


def sshd_config(
    address: str, port: int, host_key: Path, authorized_keys: Path, version: tuple[int, int] | None = None
) -> str:
    """One host's sshd_config: key-only root login, no PAM or DNS, errors-only logging. From OpenSSH 9.8 on,
    sshd by default refuses a source address for a while after failed logins or handshakes it gave up on
    (PerSourcePenalties); every client here is 127.0.0.1 and the fault hosts fail logins on purpose, so the
    penalties would turn "authentication failed" into refused connections at random: they are off."""
    penalties = ["PerSourcePenalties no"] if version is not None and version >= (9, 8) else []
    return "\n".join(
        [
            *penalties,
            f"ListenAddress {address}:{port}",
            f"Port {port}",
            f"HostKey {host_key}",
            "PidFile none",
            "UsePAM no",
            "StrictModes no",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "PermitRootLogin prohibit-password",
            f"AuthorizedKeysFile {authorized_keys}",
            "MaxStartups 200:30:400",
            "MaxSessions 100",
            "UseDNS no",
            "LogLevel ERROR",
            "Subsystem sftp internal-sftp",
            "",
        ]
    )


def client_config(layout: Layout, port: int, user: str) -> str:
    """An ssh_config for humans: `ssh -F D/ssh/config 127.10.0.1`."""
    return "\n".join(
        [
            "# written by scripts/fleet.py",
            "Host *",
            f"    User {user}",
            f"    Port {port}",
            f"    IdentityFile {layout.identity_file}",
            "    IdentitiesOnly yes",
            f"    UserKnownHostsFile {layout.known_hosts}",
            "    StrictHostKeyChecking yes",
            "    BatchMode yes",
            "    ConnectTimeout 5",
            "",
        ]
    )


def group_text(addresses: Iterable[str], title: str) -> str:
    """A dsh-style group file: a comment, then one address per line."""
    return "".join([f"# {title}\n", *(f"{address}\n" for address in addresses)])


def write_files(
    layout: Layout, hosts: Sequence[str], faults: Mapping[str, Sequence[str]], port: int, user: str
) -> None:
    """Keys, authorized_keys, known_hosts, per-host sshd_config and root, group files, a clean home."""
    servers = [*hosts, *faults["auth"], *faults["hostkey"], *faults["nostdin"]]
    everyone = [*hosts, *(address for kind in FAULT_KINDS for address in faults[kind])]
    for path in (
        layout.ssh_dir,
        layout.logs,
        layout.remote_root,
        *map(layout.host_dir, everyone),
        *map(layout.host_root, servers),
    ):
        path.mkdir(parents=True, exist_ok=True)
    layout.ssh_dir.chmod(0o700)
    if not layout.home.exists():
        if Path("/etc/skel").is_dir():
            shutil.copytree("/etc/skel", layout.home, symlinks=True)
        else:
            layout.home.mkdir()
    generate_keys(
        [
            layout.identity_file,
            *([layout.wrong_identity_file] if faults["auth"] else []),
            *map(layout.host_key, everyone),
            *map(layout.wrong_host_key, faults["hostkey"]),
        ]
    )
    layout.authorized_keys.write_text(public_key(layout.identity_file) + " fleet\n")
    if faults["auth"]:
        layout.wrong_authorized_keys.write_text(
            public_key(layout.wrong_identity_file) + " not-the-fleet-key\n"
        )
    host_keys = {address: layout.host_key(address) for address in everyone}
    host_keys.update({address: layout.wrong_host_key(address) for address in faults["hostkey"]})
    layout.known_hosts.write_text(
        "".join(
            f"{known_hosts_name(address, port)} {public_key(host_keys[address])}\n" for address in everyone
        )
    )
    refused_login = set(faults["auth"])
    version = installed_sshd_version()
    for address in servers:
        keys = layout.wrong_authorized_keys if address in refused_login else layout.authorized_keys
        config = sshd_config(address, port, layout.host_key(address), keys, version)
        if address in faults["nostdin"]:
            config += NO_STDIN_COMMAND + "\n"
        layout.sshd_config(address).write_text(config)
    layout.ssh_config.write_text(client_config(layout, port, user))
    layout.group("fleet").write_text(group_text(hosts, f"good hosts of the fleet in {layout.directory}"))
    layout.group("fleet-faulty").write_text(
        group_text(
            [address for kind in FAULT_KINDS for address in faults[kind]],
            "fault hosts: " + ", ".join(f"{kind} {' '.join(faults[kind]) or '-'}" for kind in FAULT_KINDS),
        )
    )


# --- launching ----------------------------------------------------------------------------------------------


def launch_sshd(layout: Layout, address: str, user_home: Path) -> tuple[Process, subprocess.Popen[bytes]]:
    """Start one sshd in its own mount namespace, where <remote_root> is its root/ and the home is clean.

    unshare without --fork execs, and sh execs sshd, so the PID we get is sshd's.
    """
    config = layout.sshd_config(address)

    def quote(path: Path) -> str:
        return shlex.quote(str(path))

    script = " && ".join(
        [
            # /run/sshd is sshd's privsep dir: a private tmpfs holds it without touching the real /run
            "mount -t tmpfs -o mode=0755,size=1m fleet-run /run",
            "mkdir -m 0755 /run/sshd",
            f"mount --bind {quote(layout.host_root(address))} {quote(layout.remote_root)}",
            # a clean home: this machine's own dotfiles (pyenv init) cost >100 ms of CPU per SSH command
            f"mount --bind {quote(layout.home)} {quote(user_home)}",
            f"exec {SSHD} -D -e -f {quote(config)}",
        ]
    )
    argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]
    with open(layout.log(address), "wb") as log:
        popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=SERVER_ENV, start_new_session=True
        )
    return Process(popen.pid, "sshd", (address,), str(config), started_at(popen.pid)), popen


def launch_tarpit(
    layout: Layout, addresses: Sequence[str], port: int
) -> tuple[Process, subprocess.Popen[bytes]]:
    """Start the one process that holds every tarpit address: accepts TCP, never sends a banner."""
    listens = [f"{address}:{port}" for address in addresses]
    argv = [
        sys.executable,
        "-I",
        str(Path(__file__).resolve()),
        "tarpit",
        *(arg for listen in listens for arg in ("--listen", listen)),
    ]
    with open(layout.log("tarpit"), "wb") as log:
        popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=SERVER_ENV, start_new_session=True
        )
    return Process(
        popen.pid, "tarpit", tuple(addresses), f"tarpit --listen {listens[0]}", started_at(popen.pid)
    ), popen


def started_at(pid: int) -> int:
    """Start time of a child we just forked (readable until we reap it, even as a zombie)."""
    stat = proc_stat(pid)
    if stat is None:
        raise FleetError(f"process {pid} vanished right after it was started")
    return stat[2]


def wait_listening(
    expected: Mapping[str, Process],
    port: int,
    popens: Mapping[int, subprocess.Popen[bytes]],
    layout: Layout,
    timeout: float,
) -> None:
    """Return once every address has a listening socket; fail fast if a server dies, or at the deadline."""
    deadline = time.monotonic() + timeout
    pending = set(expected)
    while pending:
        pending -= listening_addresses(port)
        for address in sorted(pending):
            process = expected[address]
            code = popens[process.pid].poll() if process.pid in popens else None
            if code is not None:
                log = layout.log(address if process.kind == "sshd" else "tarpit")
                tail = log_tail(log)
                last = tail.splitlines()[-1] if tail else "no output"
                raise FleetError(
                    f"{process.kind} for {address} exited with status {code} before listening: "
                    f"{last} (log: {log})",
                    tail,
                )
        if pending and time.monotonic() >= deadline:
            first = sorted(pending, key=lambda a: tuple(map(int, a.split("."))))[0]
            log = layout.log(first if expected[first].kind == "sshd" else "tarpit")
            raise FleetError(
                f"{len(pending)} of {len(expected)} servers not listening on port {port} after "
                f"{timeout:g}s, e.g. {first} (log: {log})",
                log_tail(log),
            )
        if pending:
            time.sleep(0.02)


# --- the fleet ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fleet:
    """A running (or recorded) fleet: its addresses, client credentials and the processes it started."""

    directory: Path
    port: int
    user: str
    net: str
    hosts: list[str]
    faults: dict[str, list[str]]
    remote_root: Path
    identity_file: Path
    known_hosts: Path
    processes: tuple[Process, ...] = ()
    _popens: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def start(
        cls,
        directory: Path,
        count: int,
        *,
        port: int = DEFAULT_PORT,
        net: str = DEFAULT_NET,
        faults: Mapping[str, int] | None = None,
        ready_timeout: float = 30.0,
    ) -> Fleet:
        """Start count good hosts plus the fault hosts; return once every server listens."""
        net = parse_net(net)
        fault_counts = check_request(count, port, faults or {})
        account = pwd.getpwuid(os.getuid())
        layout = Layout(check_directory(Path(directory), Path(account.pw_dir)))
        if os.geteuid() != 0:
            raise FleetError("the fleet needs root (each sshd runs in its own mount namespace)")
        for tool in (SSHD, "unshare", "ssh-keygen", "mount"):
            if shutil.which(tool) is None:
                raise FleetError(f"{tool} not found; install openssh-server, openssh-client and util-linux")
        if layout.fleet_file.exists() and (running := cls.load(layout.directory).running()):
            raise FleetError(
                f"a fleet is already running in {layout.directory} ({len(running)} processes); "
                f"run `fleet.py stop --dir {layout.directory}` first"
            )
        raise_open_files_limit()
        hosts, fault_hosts = plan_addresses(net, count, fault_counts)
        everyone = [*hosts, *(address for kind in FAULT_KINDS for address in fault_hosts[kind])]
        listening = listening_addresses(port)
        taken = sorted(listening & set(everyone)) + (["0.0.0.0"] if "0.0.0.0" in listening else [])
        if taken:
            raise FleetError(
                f"{taken[0]}:{port} is already in use ({len(taken)} taken); another fleet on "
                f"--net {net}, or pick another --net or --port"
            )
        layout.directory.mkdir(parents=True, exist_ok=True)
        write_files(layout, hosts, fault_hosts, port, account.pw_name)
        fleet = cls(
            layout.directory,
            port,
            account.pw_name,
            net,
            hosts,
            fault_hosts,
            layout.remote_root,
            layout.identity_file,
            layout.known_hosts,
        )
        started: list[Process] = []
        try:
            if fault_hosts["tarpit"]:
                process, popen = launch_tarpit(layout, fault_hosts["tarpit"], port)
                started.append(process)
                fleet._popens[process.pid] = popen
            for address in [*hosts, *fault_hosts["auth"], *fault_hosts["hostkey"], *fault_hosts["nostdin"]]:
                process, popen = launch_sshd(layout, address, Path(account.pw_dir))
                started.append(process)
                fleet._popens[process.pid] = popen
            object.__setattr__(fleet, "processes", tuple(started))
            fleet.save()
            expected = {address: process for process in started for address in process.addresses}
            wait_listening(expected, port, fleet._popens, layout, ready_timeout)
        except BaseException:
            terminate(started, fleet._popens, timeout=5.0)
            raise
        return fleet

    @classmethod
    def load(cls, directory: Path) -> Fleet:
        """The fleet recorded in <directory>/fleet.json (possibly started by another process)."""
        path = Layout(Path(directory).expanduser().resolve()).fleet_file
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise FleetError(f"no fleet in {path.parent} ({path.name} not found)") from None
        except (OSError, ValueError) as exc:
            raise FleetError(f"cannot read {path}: {exc}") from exc
        return cls(
            Path(data["directory"]),
            int(data["port"]),
            str(data["user"]),
            str(data["net"]),
            list(data["hosts"]),
            {kind: list(data["faults"].get(kind, [])) for kind in FAULT_KINDS},
            Path(data["remote_root"]),
            Path(data["identity_file"]),
            Path(data["known_hosts"]),
            tuple(Process.from_json(p) for p in data["processes"]),
        )

    def save(self) -> None:
        """Write fleet.json atomically, so `stop` from another process always finds a whole record."""
        layout = Layout(self.directory)
        data = {
            "version": 1,
            "directory": str(self.directory),
            "port": self.port,
            "user": self.user,
            "net": self.net,
            "remote_root": str(self.remote_root),
            "identity_file": str(self.identity_file),
            "known_hosts": str(self.known_hosts),
            "ssh_config": str(layout.ssh_config),
            "groups": {
                "fleet": str(layout.group("fleet")),
                "fleet-faulty": str(layout.group("fleet-faulty")),
            },
            "hosts": self.hosts,
            "faults": self.faults,
            "processes": [process.to_json() for process in self.processes],
        }
        temporary = layout.fleet_file.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(data, indent=1) + "\n")
        os.replace(temporary, layout.fleet_file)

    def running(self) -> list[Process]:
        """The recorded processes that are still alive and still ours."""
        return [process for process in self.processes if process.is_running()]

    def host_root(self, address: str) -> Path:
        """Where the folder a host sees at remote_root really lives on disk."""
        sshd_hosts = [*self.hosts, *self.faults["auth"], *self.faults["hostkey"], *self.faults["nostdin"]]
        if address not in sshd_hosts:
            raise FleetError(f"{address} is not an sshd host of the fleet in {self.directory}")
        return Layout(self.directory).host_root(address)

    def write_group(self, path: Path, addresses: Iterable[str]) -> Path:
        """Write a dsh-style group file (one address per line) and return its path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(group_text(addresses, f"hosts of the fleet in {self.directory}"))
        return path

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM each recorded process still ours and its sessions, wait up to timeout, SIGKILL the rest."""
        terminate(self.processes, self._popens, timeout)

    def kill_host(self, address: str) -> None:
        """Stop one host's sshd and its open sessions: from now on that address refuses connections."""
        matches = [p for p in self.processes if p.kind == "sshd" and p.addresses == (address,)]
        if not matches:
            raise FleetError(f"{address} is not an sshd host of the fleet in {self.directory}")
        terminate(matches, self._popens, timeout=5.0)


# --- the tarpit ---------------------------------------------------------------------------------------------


def parse_listen(value: str) -> tuple[str, int]:
    """ADDR:PORT with ADDR in 127.0.0.0/8 (the fleet never listens anywhere else)."""
    host, _, port = value.rpartition(":")
    try:
        if ipaddress.IPv4Address(host) not in ipaddress.IPv4Network("127.0.0.0/8"):
            raise ValueError(host)
        return host, int(port)
    except ValueError:
        raise FleetError(f"--listen wants ADDR:PORT with ADDR inside 127.0.0.0/8, not {value!r}") from None


def serve_tarpit(listens: Sequence[tuple[str, int]]) -> NoReturn:
    """Accept TCP on every address and hold each connection open, reading and dropping, never writing."""
    raise_open_files_limit()
    selector = selectors.DefaultSelector()
    listeners = set()
    for host, port in listens:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            server.bind((host, port))
        except OSError as exc:
            raise FleetError(f"tarpit cannot listen on {host}:{port}: {exc.strerror}") from exc
        server.listen(4096)
        server.setblocking(False)
        selector.register(server, selectors.EVENT_READ, server)
        listeners.add(server)
    while True:
        for key, _ in selector.select():
            sock: socket.socket = key.data
            if sock in listeners:
                accept_all(selector, sock)
            else:
                drain(selector, sock)


def accept_all(selector: selectors.BaseSelector, server: socket.socket) -> None:
    """Accept every queued connection; out of descriptors, leave them in the kernel's backlog."""
    while True:
        try:
            conn, _ = server.accept()
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                time.sleep(0.05)
                return
            raise
        conn.setblocking(False)
        selector.register(conn, selectors.EVENT_READ, conn)


def drain(selector: selectors.BaseSelector, conn: socket.socket) -> None:
    """Read and drop what a client sends (its SSH banner); close once it hangs up."""
    try:
        data = conn.recv(4096)
    except BlockingIOError:
        return
    except OSError:
        data = b""
    if not data:
        selector.unregister(conn)
        conn.close()


# --- command line -------------------------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit 2 like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"fleet: error: {message}\n")


def build_parser() -> Parser:
    parser = Parser(prog="fleet.py", description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    start = commands.add_parser("start", help="start a fleet and wait until every server listens")
    start.add_argument("--dir", type=Path, required=True)
    start.add_argument("--count", type=int, required=True)
    start.add_argument("--port", type=int, default=DEFAULT_PORT)
    start.add_argument("--net", default=DEFAULT_NET, help="two octets inside 127/8 (default %(default)s)")
    start.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for every server to listen"
    )
    for kind in FAULT_KINDS:
        start.add_argument(f"--{kind}", type=int, default=0, metavar="K", help=f"{kind} fault hosts")
    stop = commands.add_parser("stop", help="stop every process a fleet started")
    stop.add_argument("--dir", type=Path, required=True)
    tarpit = commands.add_parser("tarpit", help="accept TCP and never answer (used by start)")
    tarpit.add_argument("--listen", action="append", required=True, metavar="ADDR:PORT")
    return parser


def summary(fleet: Fleet, seconds: float) -> str:
    """What a person needs after `start`: what runs where, how to get in, how to stop it."""
    layout = Layout(fleet.directory)
    span = f"{fleet.hosts[0]} .. {fleet.hosts[-1]}" if fleet.hosts else "none"
    lines = [f"fleet: {len(fleet.hosts)} hosts ({span}) on port {fleet.port}, started in {seconds:.1f}s"]
    lines += [f"  {kind}: {' '.join(addresses)}" for kind, addresses in fleet.faults.items() if addresses]
    lines.append(f"  dir {fleet.directory}: fleet.json, groups hosts/fleet and hosts/fleet-faulty")
    if fleet.hosts:
        lines.append(f"  ssh -F {layout.ssh_config} {fleet.hosts[0]} hostname")
        lines.append(
            f"  ssh -i {fleet.identity_file} -o UserKnownHostsFile={fleet.known_hosts} "
            f"-p {fleet.port} {fleet.user}@{fleet.hosts[0]}"
        )
    lines.append(f"  stop: python3 {Path(__file__).resolve()} stop --dir {fleet.directory}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "start":
            began = time.monotonic()
            faults = {kind: getattr(args, kind) for kind in FAULT_KINDS}
            fleet = Fleet.start(
                args.dir, args.count, port=args.port, net=args.net, faults=faults, ready_timeout=args.timeout
            )
            print(summary(fleet, time.monotonic() - began))
        elif args.command == "stop":
            fleet = Fleet.load(args.dir)
            count = len(fleet.running())
            fleet.stop()
            left = len(fleet.running())
            print(f"fleet: stopped {count - left} processes in {fleet.directory}")
            if left:
                raise FleetError(f"{left} processes of the fleet in {fleet.directory} survived SIGKILL")
        else:
            serve_tarpit([parse_listen(value) for value in args.listen])
    except FleetError as exc:
        print(f"fleet: error: {exc.message}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"fleet: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
