"""The example files the project ships stay valid: hosts/ group files parse as the docs say."""

from __future__ import annotations

from pathlib import Path

import pytest

from sartoris.inventory import resolve_hosts

HOSTS = Path(__file__).resolve().parents[2] / "hosts"


@pytest.mark.parametrize(
    ("group", "count"),
    [
        pytest.param("mediawiki-installation", 61, id="mediawiki-installation"),
        pytest.param("canaries", 2, id="canaries"),
        pytest.param("local-fleet", 50, id="local-fleet"),
    ],
)
def test_shipped_group_files_parse(group: str, count: int) -> None:
    """Each shipped group file resolves to the documented number of hosts, ranges expanded."""
    hosts = resolve_hosts([group], HOSTS, HOSTS)
    assert len(hosts) == count
    assert len({h.key(22) for h in hosts}) == count
