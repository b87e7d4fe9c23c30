"""The local sshd fleet (scripts/fleet.py) behaves like the app servers the deploy tool's tests rely on.

Checked with the real OpenSSH client, so a broken fleet shows up here, not as a puzzling deploy failure.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

from fleet import FAULT_KINDS, Fleet, FleetError, is_alive  # noqa: E402

pytestmark = pytest.mark.integration

NET = "127.30"  # apart from `make fleet` (127.10), so both can run at once
SECOND_NET = "127.31"  # fleets this module starts and stops itself


def ssh(fleet: Fleet, address: str, command: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run a command on a fleet host with the stock OpenSSH client, host keys strictly checked."""
    return subprocess.run(
        [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            str(fleet.identity_file),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            f"UserKnownHostsFile={fleet.known_hosts}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            "-p",
            str(fleet.port),
            f"{fleet.user}@{address}",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Five good hosts and one host of every fault kind, stopped whatever happens."""
    started = Fleet.start(tmp_path_factory.mktemp("fleet"), 5, net=NET, faults=dict.fromkeys(FAULT_KINDS, 1))
    try:
        yield started
    finally:
        started.stop()


def test_good_hosts_run_commands(fleet: Fleet) -> None:
    """Every good host accepts the client key and runs a command as the login user."""
    for address in fleet.hosts:
        result = ssh(fleet, address, "echo hello from $(id -un)")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"hello from {fleet.user}"


def test_addresses_follow_the_net_prefix(fleet: Fleet) -> None:
    """Good hosts count up from <net>.0.1 and fault hosts from <net>.200.1, all inside 127/8."""
    assert fleet.hosts == [f"{NET}.0.{i}" for i in range(1, 6)]
    assert [fleet.faults[kind][0] for kind in FAULT_KINDS] == [f"{NET}.200.{i}" for i in range(1, len(FAULT_KINDS) + 1)]


def test_a_nostdin_host_runs_commands_but_gives_them_no_stdin(fleet: Fleet) -> None:
    """A nostdin fault host runs what it is asked (through a forced command), with /dev/null for stdin."""
    address = fleet.faults["nostdin"][0]
    done = subprocess.run(
        ["ssh", "-F", str(fleet.directory / "ssh" / "config"), address, "cat; echo ran"],
        input="what the client sent\n", capture_output=True, text=True, timeout=30, check=False,
    )
    assert (done.returncode, done.stdout) == (0, "ran\n"), done.stderr


def test_each_host_sees_its_own_folder_at_remote_root(fleet: Fleet) -> None:
    """A file written at remote_root on host A lands in host_root(A) only: not on B, not on the real path."""
    first, second = fleet.hosts[0], fleet.hosts[1]
    result = ssh(fleet, first, f"echo {first} > {fleet.remote_root}/whoami && ls {fleet.remote_root}")
    assert result.returncode == 0, result.stderr
    assert (fleet.host_root(first) / "whoami").read_text().strip() == first
    assert not (fleet.host_root(second) / "whoami").exists()
    assert ssh(fleet, second, f"test ! -e {fleet.remote_root}/whoami").returncode == 0
    assert list(fleet.remote_root.iterdir()) == []


def test_hosts_log_in_to_a_clean_home(fleet: Fleet) -> None:
    """The login user's home on a host is the copy of /etc/skel, not this machine's slow dotfiles."""
    result = ssh(fleet, fleet.hosts[0], "cat ~/.bashrc")
    assert result.returncode == 0, result.stderr
    assert result.stdout == Path("/etc/skel/.bashrc").read_text()


def test_group_files_list_good_and_fault_hosts(fleet: Fleet, tmp_path: Path) -> None:
    """hosts/fleet lists the good hosts, hosts/fleet-faulty the fault hosts, write_group any others."""

    def listed(path: Path) -> list[str]:
        return [line for line in path.read_text().splitlines() if line and not line.startswith("#")]

    assert listed(fleet.directory / "hosts" / "fleet") == fleet.hosts
    assert listed(fleet.directory / "hosts" / "fleet-faulty") == [
        a for k in FAULT_KINDS for a in fleet.faults[k]
    ]
    assert listed(fleet.write_group(tmp_path / "pair", fleet.hosts[:2])) == fleet.hosts[:2]


def test_auth_host_refuses_the_client_key(fleet: Fleet) -> None:
    """The auth fault host is a real sshd that rejects the fleet's client key."""
    result = ssh(fleet, fleet.faults["auth"][0], "true")
    assert result.returncode == 255
    assert "Permission denied" in result.stderr


def test_hostkey_host_fails_host_key_verification(fleet: Fleet) -> None:
    """The hostkey fault host presents a key other than the one known_hosts holds for it."""
    result = ssh(fleet, fleet.faults["hostkey"][0], "true")
    assert result.returncode == 255
    assert "Host key verification failed" in result.stderr


def test_refused_address_refuses_connections(fleet: Fleet) -> None:
    """Nothing listens at the refused fault address."""
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((fleet.faults["refused"][0], fleet.port), timeout=2).close()


def test_tarpit_accepts_tcp_but_never_sends_a_banner(fleet: Fleet) -> None:
    """The tarpit completes the TCP handshake, then stays silent for at least a second."""
    with socket.create_connection((fleet.faults["tarpit"][0], fleet.port), timeout=2) as conn:
        conn.sendall(b"SSH-2.0-probe\r\n")
        conn.settimeout(1.0)
        with pytest.raises(TimeoutError):
            conn.recv(1)


def test_load_reads_back_the_running_fleet(fleet: Fleet) -> None:
    """Fleet.load gives the same addresses, paths and live processes as the fleet that start returned."""
    loaded = Fleet.load(fleet.directory)
    assert (loaded.hosts, loaded.faults, loaded.port, loaded.remote_root) == (
        fleet.hosts,
        fleet.faults,
        fleet.port,
        fleet.remote_root,
    )
    assert {p.pid for p in loaded.running()} == {p.pid for p in fleet.processes}


def test_start_refuses_a_running_fleet_directory(fleet: Fleet) -> None:
    """Starting over a live fleet is refused and points at stop."""
    with pytest.raises(FleetError, match="stop"):
        Fleet.start(fleet.directory, 1, net=SECOND_NET)


def test_start_refuses_a_directory_under_the_home() -> None:
    """A fleet dir under the login user's home is refused, since every host mounts a clean home over it."""
    with pytest.raises(FleetError, match="must not be inside"):
        Fleet.start(Path.home() / "sartoris-fleet-test", 1, net=SECOND_NET)
    assert not (Path.home() / "sartoris-fleet-test").exists()


def test_kill_host_makes_that_address_refuse(tmp_path: Path) -> None:
    """kill_host stops one host's sshd, the others keep serving."""
    small = Fleet.start(tmp_path / "fleet", 2, net=SECOND_NET)
    try:
        small.kill_host(small.hosts[0])
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((small.hosts[0], small.port), timeout=2).close()
        assert ssh(small, small.hosts[1], "true").returncode == 0
    finally:
        small.stop()


def test_stop_from_another_process_ends_every_process_and_session(tmp_path: Path) -> None:
    """`fleet.py stop --dir` kills every recorded PID and drops open SSH sessions."""
    small = Fleet.start(tmp_path / "fleet", 2, net=SECOND_NET, faults={"tarpit": 1, "auth": 1})
    session = None
    try:
        session = subprocess.Popen(
            [
                "ssh",
                "-F",
                "/dev/null",
                "-i",
                str(small.identity_file),
                "-o",
                f"UserKnownHostsFile={small.known_hosts}",
                "-o",
                "BatchMode=yes",
                "-p",
                str(small.port),
                f"{small.user}@{small.hosts[0]}",
                "sleep 120",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)
        assert session.poll() is None, "the session should be open before stop"
        stopped = subprocess.run(
            [sys.executable, str(SCRIPTS / "fleet.py"), "stop", "--dir", str(small.directory)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert stopped.returncode == 0, stopped.stderr
        assert [p.pid for p in small.processes if is_alive(p.pid, p.starttime)] == []
        assert session.wait(timeout=10) == 255
    finally:
        small.stop()
        if session is not None and session.poll() is None:
            session.kill()
            session.wait()
