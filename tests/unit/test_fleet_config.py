"""The test fleet's sshd_config (scripts/fleet.py), without starting any sshd: what each OpenSSH version gets."""

from __future__ import annotations

from pathlib import Path

import pytest
from fleet import sshd_config, sshd_version


@pytest.mark.parametrize(
    ("output", "version"),
    [
        pytest.param("OpenSSH_9.2, OpenSSL 3.0.19 27 Jan 2026\n", (9, 2), id="debian-12"),
        pytest.param("OpenSSH_10.0p2 Debian-7, OpenSSL 3.5.1 1 Jul 2025\n", (10, 0), id="debian-13"),
        pytest.param("unknown option -- V\nOpenSSH_8.4p1, OpenSSL 1.1.1\nusage: sshd [-46Dd]\n", (8, 4), id="usage"),
        pytest.param("sshd: command not found\n", None, id="none"),
    ],
)
def test_sshd_version_is_read_from_its_banner(output: str, version: tuple[int, int] | None) -> None:
    """`sshd -V` names the version on stdout or, in a usage text, on stderr; anything else reads as unknown."""
    assert sshd_version(output) == version


@pytest.mark.parametrize(
    ("version", "penalties"),
    [((9, 2), False), ((9, 7), False), ((9, 8), True), ((10, 0), True), (None, False)],
    ids=["9.2", "9.7", "9.8", "10.0", "unknown"],
)
def test_per_source_penalties_are_off_where_sshd_has_them(version: tuple[int, int] | None, penalties: bool) -> None:
    """From OpenSSH 9.8 sshd penalises a source address after failed logins, and every test client is 127.0.0.1
    while the fault hosts fail logins on purpose: the option is turned off there, and never written for an sshd
    that would reject it as unknown."""
    config = sshd_config("127.10.0.1", 22, Path("/k"), Path("/a"), version).splitlines()
    assert ("PerSourcePenalties no" in config) is penalties
    assert "ListenAddress 127.10.0.1:22" in config and "UsePAM no" in config
