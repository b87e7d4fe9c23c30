"""Tests for what a sync or rollback notes of its targets (deploy.py), without a network."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from sartoris.config import Config, parse_config
from sartoris.deploy import SyncPlan, SyncRequest, _sets_the_slots_release
from sartoris.inventory import resolve_hosts
from sartoris.policy import FailureBudget
from sartoris.results import HostResult, Outcome, Phase, SyncReport
from sartoris.state import History


def _config_and_targets(tmp_path: Path, fleet: str | None, chosen: str | None) -> tuple[Config, SyncRequest]:
    """A config whose [deploy] hosts is the group `fleet` (none when None), and a rollback request of the hosts in
    `chosen` (a file given with --hosts), or of the config's own hosts when None."""
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
    return config, request


def _synced(config: Config, tag: str, *hosts: str) -> None:
    """Write down a sync of `tag` (commit: its last letter, 40 times) that put `hosts` on it."""
    done = tuple(HostResult(host, True, Phase.DONE) for host in hosts)
    History(config.state_dir).record("sync", SyncReport(0, tag, tag[-1] * 40, Outcome.OK, done), "", 0.0)


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
def test_a_rollback_sets_the_slots_release_when_its_hosts_cover_the_configs_fleet(
    tmp_path: Path, fleet: str | None, chosen: str | None, whole: bool
) -> None:
    """A rollback notes whether its targets cover every machine of [deploy] hosts (however each is spelt), so that
    a rollback of part of the fleet leaves the slot's release to the rest; a config with no fleet has none to leave
    part of. Here the slot's release reached the whole fleet."""
    config, request = _config_and_targets(tmp_path, fleet, chosen)
    _synced(config, "t8", "mw1", "mw2", "mw3", "mw2:2200")
    assert _sets_the_slots_release(config, request, History(config.state_dir), "rollback") is whole
    assert _sets_the_slots_release(config, request, History(config.state_dir), "sync") is True  # a sync always does


def test_a_rollback_of_every_host_a_sync_of_part_of_the_fleet_reached_undoes_it(tmp_path: Path) -> None:
    """`sync --hosts one` of a new release, then `rollback --hosts one`: the slot's release stayed the one rolled
    back from (no host ran it any more), so status called every host behind it and `--retry-failed` would have
    pushed it to the fleet. A rollback that covers every host the slot's runs left on its release sets the release
    again; one that leaves some of them on it does not."""
    config, one = _config_and_targets(tmp_path, "mw1\nmw2\nmw3\n", "mw1\n")
    history = History(config.state_dir)
    _synced(config, "t8", "mw1", "mw2", "mw3")
    _synced(config, "t9", "mw1:22")  # as the --hosts file spelt it
    assert _sets_the_slots_release(config, one, history, "rollback") is True
    _synced(config, "ta", "mw1", "mw2")
    assert _sets_the_slots_release(config, one, history, "rollback") is False
    history.begin("sync", 0, "tb", "b" * 40, "", 1.0, targets=["mw1"])  # died while switching: mw1 may run it
    assert _sets_the_slots_release(config, one, history, "rollback") is True


def test_the_last_group_of_a_rollback_done_group_by_group_sets_the_slots_release(tmp_path: Path) -> None:
    """abort's advice for a fleet that was mixed at `start` is a rollback per group (`--hosts ./back-to-R`): each
    is a rollback of part of the fleet, and the slot's release stayed the one the deploy synced though no host
    ran it any more. The rollback that takes the last hosts off it sets the slot's release."""
    config, first = _config_and_targets(tmp_path, "mw1\nmw2\nmw3\n", "mw1\n")
    history = History(config.state_dir)
    _synced(config, "t8", "mw1", "mw2", "mw3")
    _synced(config, "t9", "mw1", "mw2", "mw3")
    assert _sets_the_slots_release(config, first, history, "rollback") is False
    done = (HostResult("mw1", True, Phase.DONE),)
    history.record("rollback", SyncReport(0, "t8", "8" * 40, Outcome.OK, done, sets_release=False), "", 0.0)
    (tmp_path / "chosen").write_text("mw2\nmw3\n")
    rest = replace(first, targets=resolve_hosts([str(tmp_path / "chosen")], config.hosts_dir, tmp_path))
    assert _sets_the_slots_release(config, rest, history, "rollback") is True


def test_a_rollback_of_part_of_the_fleet_to_the_slots_own_release_leaves_a_rejected_release_behind(
    tmp_path: Path,
) -> None:
    """sync t8, t9, then t10 whose canary mw2 failed (rejected), then `rollback --hosts canaries` to t9: marked as not
    setting the slot's release, it left the rejected t10 on top of the rollback stack, and the next bare rollback
    went to t9, where the hosts already were. A rollback to the slot's release itself sets it."""
    config, canaries = _config_and_targets(tmp_path, "mw1\nmw2\nmw3\n", "mw1\nmw2\n")
    history = History(config.state_dir)
    _synced(config, "t8", "mw1", "mw2", "mw3")
    _synced(config, "t9", "mw1", "mw2", "mw3")
    assert _sets_the_slots_release(config, canaries, history, "rollback", to="9" * 40) is True
    assert _sets_the_slots_release(config, canaries, history, "rollback", to="8" * 40) is False


def test_a_host_no_hosts_file_lists_any_more_does_not_hold_the_slots_release(tmp_path: Path) -> None:
    """`sync --hosts` of t9 reached mw1 and mw9; mw9 was decommissioned (in no hosts file now). A rollback of mw1
    was taken for one of part of the hosts on t9, so the slot's release stayed t9, which no live host ran."""
    config, one = _config_and_targets(tmp_path, "mw1\nmw2\nmw3\n", "mw1\n")
    history = History(config.state_dir)
    _synced(config, "t8", "mw1", "mw2", "mw3")
    _synced(config, "t9", "mw1", "mw9")
    assert _sets_the_slots_release(config, one, history, "rollback", to="8" * 40) is True


def test_a_rollback_of_the_fleet_takes_the_release_off_only_the_hosts_beyond_it_that_may_run_it(
    tmp_path: Path,
) -> None:
    """After `sync --hosts fleet --hosts ./new` where one new server failed its fetch, a plain rollback took the
    release off the new servers too, the failed one included: it never ran it, and would only fail again (a dead
    server could abort the rollback at its fetch threshold). Only the new servers that may run it are added."""
    from sartoris.deploy import _with_the_hosts_beyond_the_fleet

    config, _ = _config_and_targets(tmp_path, "mw1\nmw2\n", None)
    history = History(config.state_dir)
    new = tmp_path / "new"
    new.write_text("mw3\nmw4\n")
    done = (
        HostResult("mw1", True, Phase.DONE), HostResult("mw2", True, Phase.DONE), HostResult("mw3", True, Phase.DONE),
        HostResult("mw4", False, Phase.FETCH, "could not fetch"),
    )
    files = (str(tmp_path / "hosts" / "fleet"), str(new))
    report = SyncReport(0, "t9", "9" * 40, Outcome.PARTIAL, done, hosts_from=files)
    history.record("sync", report, "", 0.0)
    fleet = config.fleet()
    back = SyncRequest(0, fleet, "", 4, FailureBudget.parse(0), action="rollback")
    retry = replace(back, action="sync")
    assert [h.label for h in _with_the_hosts_beyond_the_fleet(config, back, history).targets] == ["mw1", "mw2", "mw3"]
    assert [h.label for h in _with_the_hosts_beyond_the_fleet(config, retry, history).targets] == [
        "mw1", "mw2", "mw3", "mw4"
    ]


def test_a_rollback_whose_hosts_name_the_whole_fleet_also_takes_the_release_off_the_new_servers(
    tmp_path: Path,
) -> None:
    """After `sync --hosts fleet --hosts ./new`, `rollback --hosts fleet` made its release the slot's (it covers the
    fleet) but left the new servers on the release rolled back from, and `status` no longer asked them. A rollback
    whose --hosts name every host of the fleet adds them as a plain rollback does; one of part of the fleet, or
    with no fleet configured, goes to the hosts named only."""
    from sartoris.deploy import _with_the_hosts_beyond_the_fleet

    config, whole = _config_and_targets(tmp_path, "mw1\nmw2\n", "mw2:22\nmw1\n")
    history = History(config.state_dir)
    new = tmp_path / "new"
    new.write_text("mw3\n")
    done = tuple(HostResult(host, True, Phase.DONE) for host in ("mw1", "mw2", "mw3"))
    files = (str(tmp_path / "hosts" / "fleet"), str(new))
    history.record("sync", SyncReport(0, "t9", "9" * 40, Outcome.OK, done, hosts_from=files), "", 0.0)
    extended = _with_the_hosts_beyond_the_fleet(config, whole, history)
    assert [h.label for h in extended.targets] == ["mw2:22", "mw1", "mw3"] and str(new) in extended.hosts_from
    part = replace(whole, targets=whole.targets[:1])
    assert _with_the_hosts_beyond_the_fleet(config, part, history) == part
    unconfigured = replace(config, deploy=replace(config.deploy, hosts=()))
    assert _with_the_hosts_beyond_the_fleet(unconfigured, part, history) == part


def test_a_retry_is_refused_over_a_rejected_release_also_after_one_canary_was_rolled_back(tmp_path: Path) -> None:
    """t9's canaries mw1 and mw2 switched, then a canary check failed (t9 rejected); `rollback --hosts` of mw1 alone
    is a rollback of part of the fleet. The retry's refusal read that newest row, found it not rejected, and let a
    `--retry-failed` through over the rejected release; it now reads past it."""
    from sartoris.deploy import _retry_plan
    from sartoris.errors import RefusedError
    from sartoris.results import CANARY_FAILED

    config, one = _config_and_targets(tmp_path, "mw1\nmw2\nmw3\n", "mw1\n")
    history = History(config.state_dir)
    _synced(config, "t8", "mw1", "mw2", "mw3")
    canaries = (HostResult("mw1", True, Phase.DONE), HostResult("mw2", True, Phase.DONE))
    canaries += (HostResult("mw3", False, Phase.CONNECT, "not attempted: a canary failed", stopped=True),)
    history.record("sync", SyncReport(0, "t9", "9" * 40, Outcome.PARTIAL, canaries, reason=CANARY_FAILED), "", 0.0)
    back = (HostResult("mw1", True, Phase.DONE),)
    history.record("rollback", SyncReport(0, "t8", "8" * 40, Outcome.OK, back, sets_release=False), "", 0.0)
    retry = replace(one, action="sync", targets=config.fleet(), hosts_chosen=False)
    with pytest.raises(RefusedError, match="stopped in its canary phase"):
        _retry_plan(config, retry, None, history, None)  # type: ignore[arg-type]  # refused before any checkout


def _plan(action: str, sets_release: bool = True) -> SyncPlan:
    """A dry run's plan of tag t8 to mw1 and mw2."""
    return SyncPlan(
        0, "t8", "8" * 40, "/srv/git/php-slot0.git", ("mw1", "mw2"), (), "fetch", "switch", "0", action, sets_release
    )


@pytest.mark.parametrize(
    ("plan", "line"),
    [
        pytest.param(_plan("rollback"), "  the slot's release would be t8 (status compares with it)", id="whole"),
        pytest.param(
            _plan("rollback", sets_release=False),
            "  part of the fleet: the slot's release would stay the one the others run (status compares with it)",
            id="part-of-the-fleet",
        ),
        pytest.param(_plan("sync"), None, id="a-sync"),
    ],
)
def test_a_rollback_dry_run_says_whether_it_would_change_the_slots_release(plan: SyncPlan, line: str | None) -> None:
    """`rollback --dry-run` did not say whether the rollback would move the slot's release (one of part of the fleet
    does not): its text says so in one line, its JSON in `sets_release`; a sync's plan always sets it."""
    said = plan.describe().splitlines()
    assert (line in said) if line is not None else not any("the slot's release" in text for text in said)
    assert plan.as_json()["sets_release"] is plan.sets_release


def test_a_rollback_reads_the_runs_back_to_the_hosts_of_its_release_not_the_slots_whole_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rollback asks which hosts the slot's runs left on the release it takes off (whether it covers them all, which
    hosts beyond the fleet to add): it read every run the slot ever had, every host's record of each (2,000 syncs of
    300 hosts: 2 s and 355 MB, twice per rollback). It now reads the runs of that release and those back to the
    newest that settled each of their hosts (a page of rows), and answers as before."""
    from sartoris import state
    from sartoris.deploy import _with_the_hosts_beyond_the_fleet

    config, one = _config_and_targets(tmp_path, "mw1\nmw2\nmw3\n", "mw1\n")
    history = History(config.state_dir)
    every = tuple(HostResult(host, True, Phase.DONE) for host in ("mw1", "mw2", "mw3"))
    for n in range(100):
        history.record("sync", SyncReport(0, f"t{n}", f"{n:040x}", Outcome.OK, every), "", 0.0)
    history.record("sync", SyncReport(0, "new", "f" * 40, Outcome.OK, every[:2]), "", 0.0)  # --hosts mw1 --hosts mw2
    parsed: list[object] = []
    entry = state._entry
    monkeypatch.setattr(state, "_entry", lambda row: parsed.append(row) or entry(row))
    assert _sets_the_slots_release(config, one, history, "rollback") is False  # mw2 stays on `new`
    assert len(parsed) < 20, len(parsed)
    both = replace(one, targets=(*one.targets, *config.fleet()[1:2]))
    assert _sets_the_slots_release(config, both, history, "rollback") is True
    parsed.clear()
    back = SyncRequest(0, config.fleet(), "", 4, FailureBudget.parse(0), action="rollback")
    assert _with_the_hosts_beyond_the_fleet(config, back, history) == back
    assert len(parsed) < 20, len(parsed)
