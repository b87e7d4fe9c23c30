"""SSH as operators have it: host keys always verified, trust on first use only when asked for."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Deployment

pytestmark = pytest.mark.integration


def known_hosts_without(deployment: Deployment, address: str, path: Path) -> Path:
    """A copy of the fleet's known_hosts with no line for `address`."""
    lines = deployment.fleet.known_hosts.read_text().splitlines()
    path.write_text("".join(f"{line}\n" for line in lines if not line.startswith(f"[{address}]:")))
    return path


def test_unknown_host_key_fails_that_host(deployment: Deployment, tmp_path: Path) -> None:
    """A host missing from known_hosts fails to connect (no silent trust on first use); others switch."""
    stranger = deployment.fleet.hosts[0]
    known = known_hosts_without(deployment, stranger, tmp_path / "known_hosts")
    text = deployment.config.read_text().replace(str(deployment.fleet.known_hosts), str(known))
    deployment.config.write_text(text)
    deployment.group("two", deployment.fleet.hosts[:2])
    run = deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "two", "--max-failures", "1", "--json")
    assert run.code == 5, run.stderr
    failed = next(h for h in run.json()["hosts"] if h["host"] == stranger)
    assert failed["phase"] == "connect" and "host key not verifiable" in failed["error"]
    assert f"[{stranger}]:" not in known.read_text()


def test_accept_new_host_keys_trusts_first_use_but_never_a_changed_key(deployment: Deployment, tmp_path: Path) -> None:
    """With accept_new_host_keys, an unknown host is trusted and recorded; a changed key still fails."""
    stranger = deployment.fleet.hosts[0]
    changed = deployment.fleet.faults["hostkey"][0]
    known = known_hosts_without(deployment, stranger, tmp_path / "known_hosts")
    text = deployment.config.read_text().replace(str(deployment.fleet.known_hosts), str(known))
    deployment.config.write_text(text.replace("[ssh]\n", "[ssh]\naccept_new_host_keys = true\n"))
    deployment.group("mixed", [stranger, changed])
    run = deployment.sartoris(
        "sync", "--slot", str(deployment.slot), "--hosts", "mixed", "--max-failures", "1", "--json"
    )
    assert run.code == 5, run.stderr
    results = {h["host"]: h for h in run.json()["hosts"]}
    assert results[stranger]["ok"]
    assert "host key not verifiable" in results[changed]["error"]
    recorded = [line for line in known.read_text().splitlines() if line.startswith(f"[{stranger}]:")]
    assert len(recorded) == 1 and "ssh-ed25519" in recorded[0]
    assert known.read_text().count(f"[{changed}]:") == 1  # the changed key was not replaced or added again


def test_ssh_config_aliases_user_and_port_are_honoured(deployment: Deployment, tmp_path: Path) -> None:
    """A hosts file may name ssh_config aliases: HostName, Port and User come from the config file."""
    fleet = deployment.fleet
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text(
        "".join(
            f"Host web{n}\n  HostName {address}\n  Port {fleet.port}\n  User {fleet.user}\n\n"
            for n, address in enumerate(fleet.hosts[:3])
        )
    )
    text = deployment.config.read_text().replace(f"port = {fleet.port}\n", "").replace(f'user = "{fleet.user}"\n', "")
    deployment.config.write_text(text.replace("[ssh]\n", f'[ssh]\nconfig_file = "{ssh_config}"\n'))
    (deployment.root / "hosts" / "aliases").write_text("web0\nweb1\nweb2\n")
    run = deployment.sartoris("sync", "--slot", str(deployment.slot), "--hosts", "aliases", "--json")
    assert run.code == 0, run.stderr
    assert [h["host"] for h in run.json()["hosts"]] == ["web0", "web1", "web2"]
    assert all(deployment.host_head(address) == run.json()["commit"] for address in fleet.hosts[:3])


@pytest.mark.parametrize(
    ("bastion_kind", "expect_ok"),
    [pytest.param("good", True, id="through-a-bastion"), pytest.param("refused", False, id="bastion-down")],
)
def test_jump_host_carries_every_connection(deployment: Deployment, bastion_kind: str, expect_ok: bool) -> None:
    """[ssh] jump_host: every host is reached through the bastion (host keys still checked), the canary's roll-out
    and then the rest's (the run's one connector reopens the bastion); a dead bastion fails every host in the
    connect phase, naming the jump host."""
    fleet = deployment.fleet
    bastion = fleet.hosts[-1] if bastion_kind == "good" else fleet.faults["refused"][0]
    if expect_ok:
        deployment.group("canary", fleet.hosts[:1])
        deployment.configure(deploy={"canaries": ["canary"]})
    deployment.config.write_text(
        deployment.config.read_text().replace("[ssh]\n", f'[ssh]\njump_host = "{bastion}:{fleet.port}"\n')
    )
    deployment.group("three", fleet.hosts[:3])
    run = deployment.sartoris(
        "sync", "--slot", str(deployment.slot), "--hosts", "three", "--max-failures", "3", "--json"
    )
    report = run.json()
    if expect_ok:
        assert run.code == 0, run.stderr
        assert all(deployment.host_head(address) == report["commit"] for address in fleet.hosts[:3])
    else:
        assert run.code == 5
        assert {h["phase"] for h in report["hosts"]} == {"connect"}
        assert all(f"jump host {bastion}" in h["error"] for h in report["hosts"])
