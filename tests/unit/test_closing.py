"""Tests for the pure decisions on ending a started deploy: what abort may do after the deploy's runs, and what
finish announces of its release."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sample_repo import git, make_checkout

from sartoris.closing import (
    DeployRun,
    abort_refusal,
    announcement,
    left_on,
    left_on_reading_back,
    on_commit,
    since_each_was_switched,
)
from sartoris.config import Config, parse_config
from sartoris.errors import RefusedError
from sartoris.inventory import machine_of
from sartoris.lifecycle import abort, start
from sartoris.results import HostResult, Outcome, Phase, SyncReport
from sartoris.state import History

LIVE = ("mw-slot0-live", "a" * 40)  # the slot's release when the deploy started
X = ("mw-slot0-x", "b" * 40)  # a release the deploy made
OLDER = ("mw-slot0-older", "c" * 40)  # the release before LIVE


def run(release: tuple[str, str], outcome: str, action: str = "sync", **hosts: tuple[str, ...]) -> DeployRun:
    """A run of `release` with the hosts it switched, those that failed and those it stopped before."""
    return DeployRun(action, release[0], release[1], outcome, **hosts)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "runs",
    [
        pytest.param([], id="no-run"),
        pytest.param([run(X, "aborted", failed=("mw1",), not_switched=("mw2",))], id="aborted"),
        pytest.param([run(X, "partial", failed=("mw8",))], id="partial-with-no-host-switched"),
        pytest.param([run(LIVE, "ok", switched=("mw8",))], id="retry-that-finished-the-live-release"),
        pytest.param(
            [run(X, "ok", switched=("mw1", "mw2")), run(LIVE, "ok", "rollback", switched=("mw1", "mw2"))],
            id="synced-then-rolled-back-to-the-live-release",
        ),
    ],
)
def test_abort_may_go_on_while_no_host_runs_another_release_than_the_live_one(runs: list[DeployRun]) -> None:
    """A started deploy whose runs left every host on the release live at start (a retry of it, a run that
    switched no host, a rollback to it) was refused as "already synced"; abort now goes on."""
    assert abort_refusal(0, LIVE, runs, [r.tag for r in runs[-1:]]) is None


@pytest.mark.parametrize(
    "runs",
    [
        pytest.param([run(X, "ok", switched=("mw1", "mw2"))], id="synced"),
        pytest.param([run(X, "partial", switched=("mw1",), failed=("mw2",))], id="partial"),
        pytest.param([run(OLDER, "ok", "rollback", switched=("mw1", "mw2"))], id="rolled-back-inside-the-deploy"),
        pytest.param(
            [run(X, "ok", switched=("mw1", "mw2")), run(LIVE, "ok", "rollback", switched=("mw1",))],
            id="rolled-back-on-some-hosts-only",
        ),
        pytest.param(
            [DeployRun("sync", X[0], X[1], "partial", rejected=True, switched=("mw1",), failed=("mw2",))],
            id="canary-rejected-after-one-switched",
        ),
    ],
)
def test_abort_refused_after_hosts_moved_names_the_release_live_at_start(runs: list[DeployRun]) -> None:
    """Hosts left on another release than the live one: abort refuses, and its advice is a rollback to the release
    live at start (a bare `sartoris rollback` went one release further back after a rollback inside the deploy)."""
    refusal = abort_refusal(0, LIVE, runs, [runs[-1].tag])
    assert refusal is not None and f"`sartoris rollback --to {LIVE[0]}`" in refusal


def test_abort_refused_when_a_run_died_while_switching() -> None:
    """A run that died while switching (unfinished in the history, or only the lock's note) may have put any host
    on its release: refused, naming it, with the rollback to the live release."""
    for runs, switching in (([run(X, "unfinished")], None), ([], X[0])):
        refusal = abort_refusal(0, LIVE, runs, [], switching)
        assert refusal is not None and f"died while switching hosts to {X[0]}" in refusal
        assert f"--to {LIVE[0]}" in refusal


def test_abort_refused_after_the_slots_first_release_offers_no_rollback() -> None:
    """With no release live before the deploy there is nothing to roll back to: the advice is finish."""
    refusal = abort_refusal(0, None, [run(X, "ok", switched=("mw1",))], [X[0]])
    assert refusal is not None and "none to roll back to" in refusal and "--to" not in refusal


def test_abort_refused_when_the_history_lacks_a_run_the_lock_noted() -> None:
    """The lock says the deploy ran X, the history has no such run (it could not take it): where hosts are is
    unknown, so abort refuses."""
    refusal = abort_refusal(0, LIVE, [], [X[0]])
    assert refusal is not None and "not in the history" in refusal


@pytest.mark.parametrize(
    ("runs", "outcome", "failed", "not_switched"),
    [
        pytest.param(
            [run(X, "partial", switched=("mw1",), failed=("mw2", "mw3")), run(X, "ok", switched=("mw2",))],
            "partial", ("mw3",), (), id="a-retry-of-one-fixed-host-leaves-the-other-failed",
        ),
        pytest.param(
            [run(X, "partial", switched=("mw1",), failed=("mw2", "mw3")), run(X, "ok", switched=("mw2", "mw3"))],
            "ok", (), (), id="a-retry-that-fixed-every-host",
        ),
        pytest.param(
            [
                run(X, "partial", switched=("mw1",), failed=("mw2",), not_switched=("mw3",)),
                run(X, "ok", switched=("mw2",)),
            ],
            "partial", (), ("mw3",), id="a-host-the-run-stopped-before-stays-not-switched",
        ),
        pytest.param(
            [run(X, "ok", switched=("mw1", "mw2")), run(OLDER, "ok", switched=("mw1", "mw2")),
             run(X, "ok", "rollback", switched=("mw1",))],
            "partial", (), ("mw2",), id="a-host-a-later-run-moved-off-the-release",
        ),
        pytest.param(
            [run(X, "aborted", failed=("mw2",), not_switched=("mw1",))], "aborted", ("mw2",), ("mw1",), id="aborted"
        ),
    ],
)
def test_finish_announces_the_release_over_all_the_deploys_runs_of_it(
    runs: list[DeployRun], outcome: str, failed: tuple[str, ...], not_switched: tuple[str, ...]
) -> None:
    """finish took the outcome and failed hosts from the newest run of the release only, so a `--retry-failed
    --hosts` of one fixed host announced `ok` while another never got the release: a host failed in any of the
    deploy's runs stays failed until a later run puts it on the release."""
    said = announcement(runs, X[0])
    assert (said.tag, said.outcome, said.failed, said.not_switched) == (X[0], outcome, failed, not_switched)


def test_finish_announces_a_release_a_canary_rejected_as_aborted_and_not_deployed() -> None:
    """A canary switched, another failed: the release is announced aborted, with the canary still on it."""
    rejected = DeployRun("sync", X[0], X[1], "partial", True, ("mw1",), ("mw2",), ("mw3",))
    said = announcement([rejected], X[0])
    assert (said.outcome, said.running, said.failed, said.not_switched) == ("aborted", ("mw1",), ("mw2",), ("mw3",))
    assert "rejected by a canary and not deployed; still on 1 canary host(s)" in said.detail(0)


def test_finish_of_a_sync_of_part_of_the_fleet_says_so_and_is_partial() -> None:
    """`start; sync --hosts ./one; finish` announced "deployed X", ok, while 7 of the 8 hosts of [deploy] hosts were
    never targeted and ran the older release (`status`: 7 behind). It is now partial, naming how many were not
    targeted; a sync that named every host of the fleet, however spelt, stays ok, and a fleet unknown says nothing."""
    fleet = frozenset(machine_of(f"mw{n}", 22) for n in range(1, 9))
    one = [run(X, "ok", switched=("mw1",))]
    said = announcement(one, X[0], same_host=lambda h: machine_of(h, 22), fleet=fleet)
    assert (said.outcome, said.not_targeted) == ("partial", 7)
    assert said.detail(0) == (
        "slot 0 released; deployed mw-slot0-x to 1 host(s), part of the fleet: 7 host(s) of [deploy] hosts were not"
        " targeted and do not run it (see `sartoris status`)"
    )
    every = [run(X, "ok", switched=tuple(f"mw{n}:22" for n in range(1, 9)))]
    said = announcement(every, X[0], same_host=lambda h: machine_of(h, 22), fleet=fleet)
    assert (said.outcome, said.not_targeted, said.detail(0)) == ("ok", 0, "slot 0 released; deployed mw-slot0-x")
    assert announcement(one, X[0], same_host=lambda h: machine_of(h, 22)).outcome == "ok"


def test_a_host_a_sync_did_not_target_that_may_run_its_commit_is_neither_on_it_nor_left_out() -> None:
    """Before the deploy, X0 (X's commit) went to the whole fleet, mw3's switch not seen to end; mw4 was then seen on
    X0 but a rollback's switch of it to OLDER was not seen to end; mw5 may run OLDER only. The deploy synced X, a
    new tag of that commit, to mw8. mw3 and mw4 were counted as on the commit (ok, "deployed X"): whether they run
    it is unknown, so the release is partial, naming them; mw5 is not targeted and does not run it."""
    x0 = ("mw-slot0-x0", X[1])
    before = [
        run(x0, "partial", switched=tuple(h for h in FLEET if h != "mw3"), failed=("mw3",), unseen=("mw3",)),
        run(OLDER, "partial", "rollback", failed=("mw4", "mw5"), unseen=("mw4", "mw5")),
        run(OLDER, "ok", "rollback", switched=("mw5",)),
        run(LIVE, "partial", "rollback", failed=("mw5",), unseen=("mw5",)),
    ]
    runs = [run(X, "ok", switched=("mw8",))]
    held = on_commit([*before, *runs], X[1])
    assert (held.on, dict(held.maybe)) == ({"mw1", "mw2", "mw6", "mw7", "mw8"}, {"mw3": "mw3", "mw4": "mw4"})
    said = announcement(runs, X[0], fleet=frozenset(FLEET) - held.on, maybe_on=held.maybe)
    assert (said.outcome, said.not_targeted, said.state_unknown) == ("partial", 1, ("mw3", "mw4"))
    assert said.detail(0) == (
        "slot 0 released; deployed mw-slot0-x to 1 host(s), part of the fleet: 1 host(s) of [deploy] hosts were not"
        " targeted and do not run it; whether mw3, mw4 (2 host(s) of [deploy] hosts it did not target) run it is"
        " unknown: a switch of theirs was not seen to end (see `sartoris status`)"
    )


def test_finish_of_a_deploy_whose_only_run_rolled_back_part_of_the_fleet_does_not_announce_the_slots_rollback() -> None:
    """`start; rollback --hosts g12; finish` said "rolled back to LIVE", ok (the hook told SARTORIS_OUTCOME=ok), while
    the slot's release, and 6 of 8 hosts, stayed on X: a rollback of part of the fleet is announced as that, partial,
    saying the slot's release did not change."""
    part = DeployRun("rollback", LIVE[0], LIVE[1], "ok", switched=("mw1", "mw2"), sets_release=False)
    said = announcement([part], LIVE[0])
    assert (said.tag, said.outcome, said.running, said.part_of_the_fleet) == (LIVE[0], "partial", ("mw1", "mw2"), True)
    assert "rolled back 2 host(s) to mw-slot0-live, part of the fleet: the slot's release is still" in said.detail(0)
    failing = DeployRun("rollback", LIVE[0], LIVE[1], "partial", switched=("mw1",), failed=("mw2",), sets_release=False)
    assert said.detail(0).endswith("(see `sartoris status`)")  # none failed: nothing more to say
    assert announcement([failing], LIVE[0]).detail(0).endswith("(partial: 1 host(s) failed, 0 not switched: see"
                                                                " `sartoris status`)")
    whole = announcement([DeployRun("rollback", LIVE[0], LIVE[1], "ok", switched=("mw1", "mw2"))], LIVE[0])
    assert (whole.outcome, whole.part_of_the_fleet) == ("ok", False)
    assert DeployRun.from_record("rollback", *LIVE, "ok", {"hosts": [], "sets_release": False}).sets_release is False
    assert DeployRun.from_record("rollback", *LIVE, "ok", {"hosts": []}).sets_release is True  # an older record


def test_finish_after_rolling_back_a_few_hosts_says_the_rest_still_run_the_synced_release() -> None:
    """A deploy that synced X everywhere, then rolled back mw1 alone (`rollback --to LIVE --hosts ./mw1`), was
    announced as "rolled back to LIVE", ok, no host failed or left out, while mw2 and mw3 still ran X, which the
    deploy put there: the hosts a run put on another release, that no run of the announced one moved, are not on
    it."""
    runs = [run(X, "ok", switched=("mw1", "mw2", "mw3")), run(LIVE, "ok", "rollback", switched=("mw1",))]
    said = announcement(runs, LIVE[0])
    assert (said.outcome, said.running, said.not_switched) == ("partial", ("mw1",), ("mw2", "mw3"))
    assert said.detail(0) == (
        f"slot 0 released; rolled back to {LIVE[0]} (partial: 0 host(s) failed, 2 not switched: see `sartoris status`)"
    )


def _machine(label: str) -> object:
    """A host as targeting reads it, with a config whose [ssh] port is 2200."""
    return machine_of(label, 2200) or label


def test_abort_and_finish_take_one_host_spelt_two_ways_as_one() -> None:
    """`127.0.0.8` and `root@127.0.0.8:2200` (the config's port) are one host: a rollback of one spelling after a
    sync of the other left every host on the live release, yet abort refused (following its advice looped), and
    a retry under the other spelling left finish announcing that host failed."""
    rolled_back = [
        run(X, "ok", switched=("127.0.0.8",)), run(LIVE, "ok", "rollback", switched=("root@127.0.0.8:2200",))
    ]
    assert abort_refusal(0, LIVE, rolled_back, [LIVE[0]], same_host=_machine) is None
    retried = [
        run(X, "partial", switched=("127.0.0.1",), failed=("127.0.0.8",)),
        run(X, "ok", switched=("root@127.0.0.8:2200",)),
    ]
    said = announcement(retried, X[0], same_host=_machine)
    assert (said.outcome, said.failed, said.not_switched) == ("ok", (), ())
    assert "partial" not in said.detail(0)


LOST = "connection lost; could not connect again to see how it ended: connect timed out after 5s"


def test_a_host_whose_switch_was_not_seen_to_end_may_run_the_release() -> None:
    """A switch whose connection was lost, with no new connection to look (filed as failed, depooled), may have
    swapped the link: abort went on (restoring the checkout, releasing the lock) while the host ran the abandoned
    release, and finish said no host got it. abort now refuses until a rollback puts the host back; finish says
    the release may run there (outcome unknown), never "switched no host"."""
    record = {"hosts": [{"host": "mw8", "ok": False, "phase": "checkout", "error": LOST, "depooled": True}]}
    lost = DeployRun.from_record("sync", X[0], X[1], "partial", record)
    assert (lost.failed, lost.unseen) == (("mw8",), ("mw8",))
    refusal = abort_refusal(0, LIVE, [lost], [X[0]])
    assert refusal is not None and f"this deploy put hosts on {X[0]}; `sartoris rollback --to {LIVE[0]}`" in refusal
    assert abort_refusal(0, LIVE, [lost, run(LIVE, "ok", "rollback", switched=("mw8",))], [LIVE[0]]) is None
    said = announcement([lost], X[0])
    assert (said.outcome, said.failed, said.unseen, said.running) == ("unknown", ("mw8",), ("mw8",), ())
    assert "switched no host" not in said.detail(0) and "may run on 1 host(s)" in said.detail(0)
    beside = DeployRun("sync", X[0], X[1], "partial", switched=("mw1",), failed=("mw8",), unseen=("mw8",))
    assert announcement([beside], X[0]).detail(0).endswith(
        "(partial: 1 host(s) failed (1 may run it: not seen to end), 0 not switched: see `sartoris status`)"
    )


def test_only_a_switch_whose_end_is_unknown_is_read_as_maybe_on_the_release() -> None:
    """The look's own words (rollout.seen_again): "could not see how it ended" may run the release; "not on the
    release (seen on a new connection)" and an ordinary failure do not."""
    from sartoris.remote import SCRIPT_END
    from sartoris.rollout import seen_again
    from sartoris.transport import CommandResult

    unknown = seen_again("mw1", "timed out after 15s", CommandResult(124, "", "sartoris: timed out\n"), X[1], 1.0)
    old = seen_again("mw2", "timed out after 15s", CommandResult(0, f"{OLDER[1]}\n\n{SCRIPT_END}\n", ""), X[1], 1.0)
    assert not unknown.ok and not old.ok and "not on the release" in (old.error or "")
    hosts = [r.as_json() for r in (unknown, old)] + [{"host": "mw3", "ok": False, "error": "exit 1: refused"}]
    assert DeployRun.from_record("sync", X[0], X[1], "partial", {"hosts": hosts}).unseen == ("mw1",)


def test_a_run_that_died_while_switching_is_superseded_on_the_targets_a_later_run_switched() -> None:
    """A run killed while switching stays `unfinished` in the history: abort refused for good, even once a rollback
    to the live release put every host back (its advice looped). Its note now names its targets: each may run its
    release until a later run switched it; a rollback of only some of them still leaves abort refused."""
    record = {"hosts": [], "reason": None, "targets": ["mw1", "mw2"]}
    died = DeployRun.from_record("sync", X[0], X[1], "unfinished", record)
    assert died.targets == ("mw1", "mw2")
    refusal = abort_refusal(0, LIVE, [died], [])
    assert refusal is not None and f"`sartoris rollback --to {LIVE[0]}`" in refusal and "died" in refusal
    some = run(LIVE, "ok", "rollback", switched=("mw1",))
    assert abort_refusal(0, LIVE, [died, some], [LIVE[0]]) is not None
    every = run(LIVE, "ok", "rollback", switched=("mw2", "mw1"))
    assert abort_refusal(0, LIVE, [died, every], [LIVE[0]]) is None
    retried = run(X, "ok", switched=("mw1",))
    said = announcement([died, retried], X[0])
    assert (said.outcome, said.running, said.unseen) == ("partial", ("mw1",), ("mw2",))


def test_a_run_that_died_with_no_targets_noted_leaves_abort_refused_and_advises_finish() -> None:
    """The note of a run by an earlier Sartoris names no targets: any host may run its release and no later run can
    show every host back, so abort stays refused, and its advice ends in `finish` (not a loop back to abort)."""
    died = DeployRun.from_record("sync", X[0], X[1], "unfinished", {"hosts": [], "reason": None})
    assert died.targets is None
    every = run(LIVE, "ok", "rollback", switched=("mw1", "mw2"))
    refusal = abort_refusal(0, LIVE, [died, every], [LIVE[0]])
    assert refusal is not None and "does not name the hosts it targeted" in refusal
    assert "`sartoris finish`" in refusal and "then `sartoris abort`" not in refusal


FLEET = tuple(f"mw{n}" for n in range(1, 9))


def test_abort_after_a_mixed_fleet_at_start_puts_back_only_the_hosts_it_moved_each_to_its_own_release() -> None:
    """An interrupted run before the deploy left mw1-mw2 on LIVE and mw3-mw8 on OLDER; the deploy synced mw1-mw3.
    abort advised a fleet-wide `rollback --to LIVE`, which moved mw4-mw8, never touched, onto LIVE. It now names
    each group of moved hosts with the release it ran at start, in a --hosts file; followed, abort goes on."""
    before = [
        run(OLDER, "ok", switched=FLEET),
        run(LIVE, "partial", switched=("mw1", "mw2"), not_switched=FLEET[2:]),
    ]
    runs = [run(X, "ok", switched=("mw1", "mw2", "mw3"))]
    refusal = abort_refusal(0, LIVE, runs, [X[0]], before=before)
    assert refusal is not None and f"this deploy put hosts on {X[0]};" in refusal
    for (tag, _), hosts in ((LIVE, "mw1, mw2 "), (OLDER, "mw3 ")):
        assert f"`sartoris rollback --to {tag} --hosts ./back-to-{tag}`, ./back-to-{tag} listing {hosts}" in refusal
    assert f"`sartoris rollback --to {LIVE[0]}` (the release live" not in refusal
    # the group of the slot's release at start last: the rollback that takes the last hosts off the deploy's
    # release makes its own the slot's (followed in another order, OLDER became the slot's release)
    assert "in this order" in refusal
    assert refusal.index(f"--to {OLDER[0]} --hosts") < refusal.index(f"--to {LIVE[0]} --hosts")
    followed = [
        *runs, run(LIVE, "ok", "rollback", switched=("mw1", "mw2")), run(OLDER, "ok", "rollback", switched=("mw3",))
    ]
    assert abort_refusal(0, LIVE, followed, [OLDER[0]], before=before) is None


def test_abort_after_moving_only_hosts_that_ran_the_live_release_beside_others_names_them() -> None:
    """The hosts the deploy moved all ran LIVE at start, but others ran OLDER: a fleet-wide rollback to LIVE would
    move those too, so the advice names the moved hosts; on a uniform fleet it stays the fleet-wide rollback."""
    before = [run(OLDER, "ok", switched=FLEET), run(LIVE, "partial", switched=("mw1",), failed=FLEET[1:])]
    refusal = abort_refusal(0, LIVE, [run(X, "ok", switched=("mw1",))], [X[0]], before=before)
    assert refusal is not None and f"--hosts ./back-to-{LIVE[0]}`, ./back-to-{LIVE[0]} listing mw1 " in refusal
    uniform = [run(LIVE, "ok", switched=FLEET)]
    refusal = abort_refusal(0, LIVE, [run(X, "ok", switched=("mw1",))], [X[0]], before=uniform)
    assert refusal is not None and f"`sartoris rollback --to {LIVE[0]}` (the release live at `start`)" in refusal


def test_a_host_only_the_history_names_does_not_make_the_fleet_mixed() -> None:
    """A host decommissioned while it ran OLDER is still in the history; abort took it for a host of the fleet
    running another release, and advised a rollback per host (hundreds listed on one line) instead of the fleet's.
    Only the hosts a rollback of the whole fleet would switch (the config's) count."""
    before = [run(OLDER, "ok", switched=("mw1", "mw2", "gone1")), run(LIVE, "ok", switched=("mw1", "mw2"))]
    runs = [run(X, "ok", switched=("mw1", "mw2"))]
    mixed = abort_refusal(0, LIVE, runs, [X[0]], before=before)
    assert mixed is not None and "--hosts ./back-to-" in mixed  # every host the history names counts
    fleet = abort_refusal(0, LIVE, runs, [X[0]], before=before, fleet={"mw1", "mw2"})
    whole = f"`sartoris rollback --to {LIVE[0]}` (the release live at `start`) puts them back"
    assert fleet is not None and whole in fleet


def test_a_host_that_may_run_the_release_still_may_after_a_later_run_failed_on_it() -> None:
    """A switch to X not seen to end, then a retry that failed on that host before switching (unreachable): finish
    said "switched no host to X" while abort, rightly, refused because the host may run X. It still may: finish
    says so."""
    lost = run(X, "partial", failed=("mw8",), unseen=("mw8",))
    retried = run(X, "partial", failed=("mw8",))
    assert abort_refusal(0, LIVE, [lost, retried], [X[0]]) is not None
    said = announcement([lost, retried], X[0])
    assert (said.outcome, said.failed, said.unseen) == ("unknown", ("mw8",), ("mw8",))
    assert "may run on 1 host(s)" in said.detail(0)


@pytest.mark.parametrize(
    "moving",
    [
        pytest.param(run(LIVE, "partial", "rollback", failed=("mw1",), unseen=("mw1",)), id="switch-not-seen-to-end"),
        pytest.param(DeployRun("rollback", LIVE[0], LIVE[1], "unfinished", targets=("mw1",)), id="run-died-switching"),
    ],
)
def test_a_host_on_the_release_that_a_later_run_may_have_moved_off_is_not_announced_on_it(moving: DeployRun) -> None:
    """X synced everywhere, then a rollback of mw1 to LIVE that may have switched it unseen, then a run of X on mw3:
    abort, rightly, counts mw1 as maybe on LIVE, but finish announced X "deployed" with mw1 running it. mw1 now may
    run X (not seen there since), as a host whose switch to X was not seen to end, also after a run of X failed on it
    (which does not move it)."""
    runs = [run(X, "ok", switched=("mw1", "mw2")), moving, run(X, "ok", "rollback", switched=("mw3",))]
    assert abort_refusal(0, LIVE, runs, [X[0]]) is not None
    said = announcement(runs, X[0])
    assert (said.outcome, said.running, said.unseen) == ("partial", ("mw2", "mw3"), ("mw1",))
    assert "(1 may run it: not seen to end)" in said.detail(0)
    refailed = [runs[0], run(X, "partial", "rollback", failed=("mw1",)), *runs[1:]]  # a failure leaves mw1 on X
    assert announcement(refailed, X[0]).unseen == ("mw1",)


X_AGAIN = ("mw-slot0-x-again", X[1])  # a new tag of X's commit (a sync with nothing new to deploy)


@pytest.mark.parametrize(
    ("first", "state"),
    [
        pytest.param(run(X, "ok", switched=("mw1",)), "running", id="switched"),
        pytest.param(run(X, "partial", failed=("mw1",), unseen=("mw1",)), "unseen", id="switch-not-seen-to-end"),
        pytest.param(run(X, "partial", failed=("mw1",)), "failed", id="failed"),
        pytest.param(run(X, "partial", not_switched=("mw1",)), "not_switched", id="stopped-before-its-turn"),
    ],
)
def test_finish_reads_a_host_by_the_commit_it_runs_whatever_tag_of_it_took_it_there(
    first: DeployRun, state: str
) -> None:
    """A run of X that named mw1, then a run of another tag of X's commit that switched mw2: finish compared tags,
    so mw1 was "not switched" to the second tag whatever the first did, though a switch to X put it on the same
    commit (or may have, or failed to). mw1 is now read by that commit: on it, maybe on it, failed, stopped."""
    said = announcement([first, run(X_AGAIN, "ok", switched=("mw2",))], X_AGAIN[0])
    hosts = {"running": said.running, "unseen": said.unseen, "failed": said.failed, "not_switched": said.not_switched}
    assert {name for name, labels in hosts.items() if "mw1" in labels} == {state} | (
        {"failed"} if state == "unseen" else set()  # a switch not seen to end failed: the hook is told so
    )
    assert "mw2" in said.running


def _random_run(rng: random.Random, machines: tuple[str, ...]) -> DeployRun:
    """A sync or rollback of a random release: each host it names switched, failed, not seen to end or stopped
    before its turn, spelt one of three ways; or a run that died while switching, naming its targets."""
    action, (tag, commit) = rng.choice(("sync", "rollback")), rng.choice((LIVE, X, OLDER))
    named = [rng.choice((h, f"{h}:22", f"deploy@{h}")) for h in machines if rng.random() < 0.6]
    if rng.random() < 0.15:
        return DeployRun(action, tag, commit, "unfinished", targets=tuple(named))
    fates: dict[str, list[str]] = {"switched": [], "failed": [], "unseen": [], "not_switched": []}
    for host in named:
        fate = rng.choice(("switched", "switched", "failed", "unseen", "not_switched"))
        fates[fate].append(host)
    failed = (*fates["failed"], *fates["unseen"])
    outcome = "ok" if not failed and not fates["not_switched"] else "partial"
    return DeployRun(
        action, tag, commit, outcome, switched=tuple(fates["switched"]), failed=failed,
        not_switched=tuple(fates["not_switched"]), unseen=tuple(fates["unseen"]), sets_release=rng.random() < 0.8,
    )


def test_the_runs_back_to_each_machines_last_switch_say_what_the_whole_history_says() -> None:
    """finish and abort read the slot's whole history before the deploy (years of runs, every host's record); they
    now read it newest first back to the run that was seen to switch each machine they ask about. Over random
    histories (three spellings of a host, unseen switches, runs that died switching), abort's refusal and finish's
    hosts on the release's commit are those the whole history gives, and fewer runs are read."""
    from sartoris.lifecycle import _and_their_hosts, _not_yet_on_it

    rng = random.Random(18)
    same_host = lambda host: machine_of(host, 22)  # noqa: E731
    machines = FLEET[:5]
    saved = refused = 0
    for _ in range(400):
        before = [_random_run(rng, machines) for _ in range(rng.randint(0, 10))]
        runs = [_random_run(rng, machines[:3]) for _ in range(rng.randint(1, 3))]
        fleet = None if rng.random() < 0.2 else frozenset(same_host(h) for h in machines if rng.random() < 0.8)
        to_abort = since_each_was_switched(before[::-1], _and_their_hosts(fleet, runs, same_host), same_host)
        to_finish = since_each_was_switched(before[::-1], fleet or frozenset(), same_host)
        assert before[len(before) - len(to_abort):] == to_abort and before[len(before) - len(to_finish):] == to_finish
        refusal = abort_refusal(0, LIVE, runs, [r.tag for r in runs], None, same_host, before, fleet)
        assert abort_refusal(0, LIVE, runs, [r.tag for r in runs], None, same_host, to_abort, fleet) == refusal
        tag = runs[-1].tag
        whole = _not_yet_on_it(fleet, before, runs, tag, same_host)
        assert _not_yet_on_it(fleet, to_finish, runs, tag, same_host) == whole
        saved += len(before) - len(to_finish)
        refused += refusal is not None
    assert saved > 400 and 100 < refused < 400  # the histories were cut, and abort went both ways


def test_the_runs_before_a_deploy_are_read_no_further_than_the_newest_switch_of_each_machine_asked_about() -> None:
    """Read newest first, the runs are read up to the newest that was seen to switch each machine asked about (mw2,
    spelt mw2:22 there) and not one more; no machine asked about reads none, and every machine (None) reads all."""
    newest_first = [
        run(X, "ok", switched=("mw1",)),
        run(LIVE, "partial", switched=("mw2:22",), failed=("mw1",), unseen=("mw1",)),
        run(OLDER, "ok", switched=("mw1", "mw2", "mw3")),
        run(LIVE, "ok", switched=("mw1", "mw2", "mw3")),
    ]
    read: list[DeployRun] = []

    def reading() -> Iterator[DeployRun]:
        for each in newest_first:
            read.append(each)
            yield each

    same_host = lambda host: machine_of(host, 22)  # noqa: E731
    kept = since_each_was_switched(reading(), {machine_of("mw1", 22), machine_of("mw2", 22)}, same_host)
    assert kept == newest_first[1::-1] and read == newest_first[:2]
    read.clear()
    assert since_each_was_switched(reading(), frozenset(), same_host) == [] and read == []
    assert since_each_was_switched(reading(), {machine_of("mw9", 22)}, same_host) == newest_first[::-1]
    assert since_each_was_switched(newest_first, None, same_host) == newest_first[::-1]


def test_the_runs_back_to_what_settles_each_host_that_ran_a_commit_say_which_hosts_may_run_it() -> None:
    """rollback asks which hosts the slot's runs left on its release (left_on) and read the slot's whole history for
    it. It now reads the runs newest first back to what settles each host a run of that commit named (a seen
    switch, or a switch to that commit not seen to end). Over random histories (three spellings of a host, unseen
    switches, runs that died switching), the hosts are those the whole history gives, and fewer runs are read."""
    rng = random.Random(19)
    same_host = lambda host: machine_of(host, 22)  # noqa: E731
    saved = named = 0
    for _ in range(400):
        runs = [_random_run(rng, FLEET[:5]) for _ in range(rng.randint(0, 12))]
        for _, commit in (LIVE, X, OLDER):
            newest_first = iter(runs[::-1])
            runs_of_it = [each for each in runs if each.commit == commit]
            hosts = left_on_reading_back(newest_first, runs_of_it, commit, same_host)
            assert sorted(hosts) == sorted(left_on(runs, commit, same_host))
            saved += len(list(newest_first))  # the runs it left unread
            named += len(hosts)
    assert saved > 1000 and named > 1000  # the histories were cut, and hosts were on each commit


def test_abort_after_moving_a_host_the_hosts_files_no_longer_list_names_it_instead_of_a_fleet_wide_rollback() -> None:
    """A host the deploy moved, then taken out of the hosts files (or renamed there): the advice was the fleet-wide
    rollback to LIVE, which no longer reaches it, so abort refused with the same advice after every such rollback.
    It now names that host, to be put back by name; the fleet-wide advice stays while every moved host is listed."""
    runs = [run(X, "ok", switched=("mw1", "mw2")), run(LIVE, "ok", "rollback", switched=("mw1",))]
    refusal = abort_refusal(0, LIVE, runs, [LIVE[0]], fleet={"mw1"})
    assert refusal is not None and "mw2 is no longer in the hosts files" in refusal, refusal
    by_name = f"`sartoris rollback --to {LIVE[0]} --hosts ./back-to-{LIVE[0]}`, ./back-to-{LIVE[0]} listing mw2 "
    assert by_name in refusal
    assert "(the release live at `start`) puts them back" not in refusal
    back = [*runs, run(LIVE, "ok", "rollback", switched=("mw2",))]  # the advice followed: abort goes on
    assert abort_refusal(0, LIVE, back, [LIVE[0]], fleet={"mw1"}) is None
    listed = abort_refusal(0, LIVE, runs[:1], [X[0]], fleet={"mw1", "mw2"})
    assert listed is not None and f"`sartoris rollback --to {LIVE[0]}` (the release live at `start`)" in listed


def _deploy_with_history(tmp_path: Path, before: list[str]) -> tuple[Config, History]:
    """A slot whose fleet is mw1-mw3 and whose history holds, before the deploy, the runs `before` describes
    (see _write_run), then started: its config and history."""
    (tmp_path / "hosts").mkdir()
    (tmp_path / "hosts" / "fleet").write_text("mw1\nmw2\nmw3\n")
    text = '[deploy]\nname = "mw"\nremote_root = "/srv/mw"\npublish_url = "/srv/git/p{slot}.git"\nhosts = ["fleet"]\n'
    config = parse_config(text, tmp_path / "sartoris.toml")
    make_checkout(tmp_path, 0, files=2, submodules=0)
    history = History(config.state_dir)
    for tag in before:
        _write_run(history, tag)
    start(config, 0, "train", no_remote=True, force=False)
    return config, history


def _write_run(history: History, tag: str, action: str = "sync") -> None:
    """Write down a run of `tag` (commit: its last letter, 40 times) that switched every host of the fleet; one of
    "tag~" died while switching them, and so did one of "tag!", whose note names no targets, as a Sartoris before
    notes named them wrote it."""
    name, fleet = tag.rstrip("!~"), ("mw1", "mw2", "mw3")
    if name != tag:
        begun = history.begin(action, 0, name, name[-1] * 40, "", 0.0, targets=fleet)
        if tag.endswith("!"):
            with history._connect() as db:
                db.execute("UPDATE deploys SET report = ? WHERE id = ?", ('{"hosts": [], "reason": null}', begun))
        return
    done = tuple(HostResult(host, True, Phase.DONE) for host in fleet)
    history.record(action, SyncReport(0, name, name[-1] * 40, Outcome.OK, done), "", 0.0)


@pytest.mark.parametrize("crashed", ["t2!", "t2~"], ids=["noted-by-an-earlier-sartoris", "noted-with-its-targets"])
def test_a_run_that_died_long_before_the_deploy_does_not_keep_abort_refused(tmp_path: Path, crashed: str) -> None:
    """A run that died while switching long ago, the fleet synced since: abort of a deploy that moved no host goes
    on, and so does one after a sync and the rollback its refusal names."""
    config, history = _deploy_with_history(tmp_path, ["t1", crashed, "t3", "t4"])
    _write_run(history, "t5")
    refused = "this deploy put hosts on t5; `sartoris rollback --to t4` (the release live at `start`) puts them back"
    with pytest.raises(RefusedError, match=re.escape(refused)):
        abort(config, 0, force=False)
    _write_run(history, "t4", "rollback")
    assert abort(config, 0, force=False).detail.startswith("slot 0 restored to ")


def test_abort_counts_every_host_as_maybe_on_the_release_of_a_run_that_died_before_the_deploy_naming_none(
    tmp_path: Path,
) -> None:
    """The slot's newest run before the deploy died while switching to t2, noted by an earlier Sartoris (no
    targets): t2 was the slot's release at `start`, and any host may have run it. abort read the note as naming no
    host, took every host for one still on t1, and advised rolling the whole fleet back to t1 host by host, which
    makes t1 the slot's release. Such a note now counts for every host, as one naming its targets does: abort
    advises the rollback to t2, after which it goes on."""
    config, history = _deploy_with_history(tmp_path, ["t1", "t2!"])
    _write_run(history, "t5")
    with pytest.raises(RefusedError) as refused:
        abort(config, 0, force=False)
    assert "`sartoris rollback --to t2` (the release live at `start`) puts them back" in str(refused.value)
    assert "--to t1" not in str(refused.value)
    _write_run(history, "t2", "rollback")
    assert abort(config, 0, force=False).detail.startswith("slot 0 restored to ")


def test_abort_refused_for_good_names_the_commit_to_put_the_checkout_back_at(tmp_path: Path) -> None:
    """A run of the deploy itself died while switching, noted by an earlier Sartoris (no targets): no later run can
    show every host back, so abort stays refused after the rollback to the live release. Its advice told the
    operator to reset the checkout "to the commit `start` found (`sartoris log` shows it)"; it now names that
    commit and the commands, so the one line says all there is to do."""
    config, history = _deploy_with_history(tmp_path, ["t1"])
    found = git(tmp_path / "php-slot0", "rev-parse", "HEAD")
    _write_run(history, "t5!")
    _write_run(history, "t1", "rollback")
    with pytest.raises(RefusedError) as refused:
        abort(config, 0, force=False)
    said = str(refused.value)
    assert "then end the deploy with `sartoris finish`" in said and "\n" not in said
    assert f"`git reset --hard {found} && git submodule update --init --recursive` in the checkout" in said
