"""Tests for what a sync or rollback notes of its targets (deploy.py), without a network."""

from __future__ import annotations

from pathlib import Path

import pytest

from sartoris.config import parse_config
from sartoris.deploy import SyncRequest, _covers_the_fleet
from sartoris.inventory import resolve_hosts
from sartoris.policy import FailureBudget


@pytest.mark.parametrize(
    ("fleet", "chosen", "whole"),
    [
        pytest.param("mw1\nmw2\nmw3\n", None, True, id="the-configs-own-hosts"),
        pytest.param("mw1\nmw2\nmw3\n", "mw1\nmw2\n", False, id="two-of-three"),
        pytest.param("mw1\nmw2\nmw3\n", "deploy@mw3:22\nmw2\nmw1:22\n", True, id="every-machine-spelt-otherwise"),
        pytest.param("mw1\nmw2\n", "mw1\nmw2\nmw9\n", True, id="more-than-the-fleet"),
        pytest.param("mw1\nmw2:2200\n", "mw1\nmw2\n", False, id="another-port-is-another-machine"),
        pytest.param(None, "mw1\n", True, id="no-fleet-configured"),
    ],
)
def test_a_run_notes_whether_its_hosts_cover_the_configs_fleet(
    tmp_path: Path, fleet: str | None, chosen: str | None, whole: bool
) -> None:
    """A run notes whether its targets cover every machine of [deploy] hosts (however each is spelt), so that a
    rollback of part of the fleet leaves the slot's release; a config with no fleet has none to leave part of."""
    (tmp_path / "hosts").mkdir()
    hosts = ""
    if fleet is not None:
        (tmp_path / "hosts" / "fleet").write_text(fleet)
        hosts = 'hosts = ["fleet"]\n'
    text = f'[deploy]\nname = "mw"\nremote_root = "/srv/mw"\npublish_url = "/srv/git/php-slot{{slot}}.git"\n{hosts}'
    config = parse_config(text, tmp_path / "sartoris.toml")
    if chosen is None:
        targets = config.fleet()
    else:
        (tmp_path / "chosen").write_text(chosen)
        targets = resolve_hosts([str(tmp_path / "chosen")], config.hosts_dir, tmp_path, config.ssh.default_port)
    request = SyncRequest(0, targets, "", 4, FailureBudget.parse(0), action="rollback", hosts_chosen=chosen is not None)
    assert _covers_the_fleet(config, request) is whole
