"""The hosts a slot's release went to beyond [deploy] hosts (slot_hosts), from a real history, without a network."""

from __future__ import annotations

from pathlib import Path

from sartoris.config import parse_config
from sartoris.results import HostResult, Outcome, Phase, SyncReport
from sartoris.slot_hosts import beyond_the_fleet
from sartoris.state import History


def test_the_hosts_beyond_the_fleet_are_read_again_from_the_files_a_run_noted_or_else_from_its_record(
    tmp_path: Path,
) -> None:
    """A run that noted its hosts files is read through them as they are now (a host taken out since is gone, one
    added since is there); a run from before runs noted them counts the hosts it named that a hosts file lists.
    Hosts of the fleet, however spelt, runs of another release and a run that aborted (it switched nobody) are
    left out."""
    (tmp_path / "hosts").mkdir()
    (tmp_path / "hosts" / "fleet").write_text("mw1\nmw2\n")
    (tmp_path / "hosts" / "old-new").write_text("mw7\n")
    new_servers = tmp_path / "new-servers"
    new_servers.write_text("mw3\nmw4\n")
    text = '[deploy]\nname = "mw"\nremote_root = "/srv/mw"\npublish_url = "/srv/p{slot}.git"\nhosts = ["fleet"]\n'
    config = parse_config(text, tmp_path / "sartoris.toml")
    history = History(config.state_dir)

    def ran(commit: str, hosts: tuple[str, ...], files: tuple[str, ...] = (), outcome: Outcome = Outcome.OK) -> None:
        ok = outcome is Outcome.OK
        phase, error = (Phase.DONE, None) if ok else (Phase.FETCH, "no fetch")
        done = tuple(HostResult(host, ok, phase, error) for host in hosts)
        report = SyncReport(0, f"t{commit}", commit * 40, outcome, done, hosts_from=files)
        history.record("sync", report, "", 0.0)

    ran("a", ("mw1", "mw2:22", "mw3", "mw4"), (str(tmp_path / "hosts" / "fleet"), str(new_servers)))
    ran("a", ("mw7", "mw9"))  # an older record: mw9 is in no hosts file (decommissioned)
    ran("b", ("mw8",), (str(tmp_path / "elsewhere"),))
    aborted = tmp_path / "aborted-servers"  # the release never went to them: their run aborted at the fetch
    aborted.write_text("mw6\n")
    ran("a", ("mw1", "mw6"), (str(tmp_path / "hosts" / "fleet"), str(aborted)), Outcome.ABORTED)
    new_servers.write_text("mw4\nmw5\n")  # mw3 taken out since, mw5 added
    beyond = beyond_the_fleet(config, history, 0, "a" * 40, config.fleet())
    assert [host.label for host in beyond.hosts] == ["mw4", "mw5", "mw7"]
    assert beyond.files == (str(new_servers),)
