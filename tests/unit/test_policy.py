"""Tests for sartoris.policy: the failure budget, and the verdict of a run stopped early."""

from __future__ import annotations

import pytest

from sartoris.policy import (
    FailureBudget,
    decide_after_fetch,
    is_transient_fetch_error,
    outcome_of_stopped_run,
    rejected_on_top,
    rollback_target,
    switch_failures_tolerated,
)
from sartoris.results import HostResult, Outcome, Phase
from sartoris.state import DeployedRelease


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(0, FailureBudget(count=0), id="int-zero"),
        pytest.param(3, FailureBudget(count=3), id="int"),
        pytest.param("3", FailureBudget(count=3), id="str-int"),
        pytest.param(" 3 ", FailureBudget(count=3), id="str-int-spaces"),
        pytest.param("5%", FailureBudget(percent=5.0), id="percent"),
        pytest.param("0%", FailureBudget(percent=0.0), id="percent-zero"),
        pytest.param("100%", FailureBudget(percent=100.0), id="percent-hundred"),
        pytest.param("2.5%", FailureBudget(percent=2.5), id="percent-fraction"),
    ],
)
def test_parse_accepts(value: int | str, expected: FailureBudget) -> None:
    """Counts and percentages parse into the matching budget."""
    assert FailureBudget.parse(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(True, id="bool-true"),
        pytest.param(False, id="bool-false"),
        pytest.param(-1, id="negative-int"),
        pytest.param(10**9, id="int-past-the-bound-of-its-text-form"),  # "1000000000" was refused, the int was not
        pytest.param(99999999999999999999999, id="huge-int"),
        pytest.param("-1", id="negative-str"),
        pytest.param("x%", id="percent-garbage"),
        pytest.param("101%", id="over-hundred"),
        pytest.param("100.5%", id="just-over-hundred"),
        pytest.param("abc", id="garbage"),
        pytest.param("", id="empty"),
        pytest.param("5 %", id="space-before-percent"),
        pytest.param("%", id="percent-only"),
        pytest.param("1e2%", id="exponent"),
        pytest.param("nan%", id="nan"),
        pytest.param(2.5, id="float"),
    ],
)
def test_parse_rejects(value: object) -> None:
    """Booleans, negatives, over 100% and garbage are a ValueError whose message starts with 'must be'."""
    with pytest.raises(ValueError, match=r"^must be .*, not ") as caught:
        FailureBudget.parse(value)  # type: ignore[arg-type]
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("budget", "targeted", "allowed"),
    [
        pytest.param(FailureBudget(count=3), 100, 3, id="count"),
        pytest.param(FailureBudget(count=3), 0, 3, id="count-zero-targeted"),
        pytest.param(FailureBudget(count=0), 10, 0, id="count-zero"),
        pytest.param(FailureBudget(percent=5.0), 100, 5, id="percent-exact"),
        pytest.param(FailureBudget(percent=5.0), 39, 1, id="percent-floors"),
        pytest.param(FailureBudget(percent=5.0), 19, 0, id="percent-floors-to-zero"),
        pytest.param(FailureBudget(percent=5.0), 0, 0, id="percent-zero-targeted"),
        pytest.param(FailureBudget(percent=2.5), 40, 1, id="fractional-percent"),
        pytest.param(FailureBudget(percent=0.29), 10000, 29, id="no-float-rounding-loss"),
        pytest.param(FailureBudget(percent=0.0), 500, 0, id="zero-percent"),
        pytest.param(FailureBudget(percent=100.0), 7, 7, id="hundred-percent"),
    ],
)
def test_allowed(budget: FailureBudget, targeted: int, allowed: int) -> None:
    """allowed() is the count, or the percentage of targeted hosts rounded down."""
    assert budget.allowed(targeted) == allowed


@pytest.mark.parametrize(
    ("budget", "failed", "targeted", "exceeded"),
    [
        pytest.param(FailureBudget(count=3), 3, 100, False, id="count-at-budget"),
        pytest.param(FailureBudget(count=3), 4, 100, True, id="count-one-more"),
        pytest.param(FailureBudget(count=0), 0, 10, False, id="zero-budget-no-failure"),
        pytest.param(FailureBudget(count=0), 1, 10, True, id="zero-budget-one-failure"),
        pytest.param(FailureBudget(percent=5.0), 5, 100, False, id="percent-at-budget"),
        pytest.param(FailureBudget(percent=5.0), 6, 100, True, id="percent-one-more"),
        pytest.param(FailureBudget(percent=5.0), 1, 19, True, id="percent-floor-makes-zero"),
        pytest.param(FailureBudget(percent=5.0), 0, 0, False, id="nothing-targeted"),
        pytest.param(FailureBudget(percent=100.0), 7, 7, False, id="all-failed-within-hundred"),
    ],
)
def test_exceeded(budget: FailureBudget, failed: int, targeted: int, exceeded: bool) -> None:
    """Only MORE failures than allowed exceed the budget; exactly at the budget goes on."""
    assert budget.exceeded(failed, targeted) is exceeded


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        pytest.param("3", "3", id="count"),
        pytest.param("5%", "5%", id="percent"),
        pytest.param("2.5%", "2.5%", id="fraction"),
        pytest.param("0%", "0%", id="zero-percent"),
        pytest.param("100.0%", "100%", id="trailing-zero"),
    ],
)
def test_str_round_trips(text: str, shown: str) -> None:
    """str() writes the budget as an operator would, and parses back to the same budget."""
    budget = FailureBudget.parse(text)
    assert str(budget) == shown
    assert FailureBudget.parse(str(budget)) == budget


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({}, id="neither"),
        pytest.param({"count": 1, "percent": 1.0}, id="both"),
        pytest.param({"count": -1}, id="negative-count"),
        pytest.param({"percent": 100.5}, id="over-hundred"),
        pytest.param({"percent": -0.5}, id="negative-percent"),
    ],
)
def test_construction_checks_invariants(kwargs: dict[str, float]) -> None:
    """A budget holds exactly one of count or percent, each within range."""
    with pytest.raises(ValueError):
        FailureBudget(**kwargs)  # type: ignore[arg-type]


def test_negative_targeted_is_refused() -> None:
    """A negative number of targeted hosts is a programming error, not a budget."""
    with pytest.raises(ValueError):
        FailureBudget(count=1).allowed(-1)


def test_str_of_integer_percent() -> None:
    """A percentage given as an int prints without a decimal point."""
    assert str(FailureBudget(percent=5)) == "5%"


# outcome_of_stopped_run: exit 3 (`aborted`) promises no host switched and nobody depooled.


def test_a_run_stopped_before_any_switch_or_depool_is_aborted() -> None:
    """Stopped with hosts only fetched, refused or skipped (none switched, none depooled), the run is aborted."""
    fetched = HostResult("c1", True, Phase.FETCH)
    refused = HostResult("c2", False, Phase.CONNECT, "connection refused")
    skipped = HostResult("h3", False, Phase.FETCH, "not attempted: a canary failed")
    assert outcome_of_stopped_run([fetched, refused, skipped]) is Outcome.ABORTED


def test_a_switched_host_makes_a_stopped_run_partial() -> None:
    """One host switched to the release makes a stopped run partial, not aborted: the fleet is no longer as it was."""
    switched = HostResult("c1", True, Phase.DONE)
    broken = HostResult("c2", False, Phase.CHECKOUT, "checkout failed", depooled=True)
    skipped = HostResult("h3", False, Phase.FETCH, "not attempted: a canary failed")
    assert outcome_of_stopped_run([switched, broken, skipped]) is Outcome.PARTIAL


def test_canaries_found_already_on_the_commit_leave_a_stopped_run_aborted() -> None:
    """A new tag of the commit the fleet runs: the canaries' switches found them already on it (`unchanged`), then
    the run stopped before the rest. Nothing switched and nobody was depooled, yet the run said `partial`, exit 5;
    it is `aborted` (exit 3), as the contract promises for a run that changed nothing."""
    canary = HostResult("c1", True, Phase.DONE, unchanged=True)
    skipped = HostResult("h2", False, Phase.FETCH, "not switched: the run aborted")
    assert outcome_of_stopped_run([canary, skipped]) is Outcome.ABORTED
    moved = HostResult("c2", True, Phase.DONE)
    assert outcome_of_stopped_run([canary, moved, skipped]) is Outcome.PARTIAL


def test_a_depooled_host_alone_makes_a_stopped_run_partial() -> None:
    """A depooled host makes a stopped run partial even though no host switched: the pool was changed."""
    depooled = HostResult("h1", False, Phase.CONNECT, "connection refused", depooled=True)
    unswitched = HostResult("h2", False, Phase.CHECKOUT, "interrupted before this host was switched")
    assert outcome_of_stopped_run([depooled, unswitched]) is Outcome.PARTIAL


def test_a_failed_switch_left_in_the_pool_changes_nothing_so_the_run_is_aborted() -> None:
    """max_depooled (or no depool command) kept the failed host in the pool, and nothing switched."""
    assert outcome_of_stopped_run([HostResult("c1", False, Phase.CHECKOUT, "checkout failed")]) is Outcome.ABORTED


def test_an_interrupted_run_whose_every_host_switched_is_ok() -> None:
    """Ctrl-C while the last canaries switched, with no other host: every host is on the release."""
    assert outcome_of_stopped_run([HostResult("c1", True, Phase.DONE), HostResult("c2", True, Phase.DONE)]) is (
        Outcome.OK
    )


def _fetched(ok: tuple[str, ...], failed: tuple[str, ...] = ()) -> list[HostResult]:
    fetched = [HostResult(h, True, Phase.FETCH) for h in ok]
    return fetched + [HostResult(h, False, Phase.FETCH, "refused") for h in failed]


@pytest.mark.parametrize(
    ("results", "already_out", "cap", "abort"),
    [
        pytest.param(_fetched(("a", "b", "c")), {"d"}, "0", False, id="no-failure-host-already-out"),
        pytest.param(_fetched(("a", "b"), ("d",)), {"d"}, "0", False, id="the-failed-host-is-the-one-out"),
        pytest.param(_fetched(("a", "b"), ("c",)), {"d"}, "1", True, id="one-more-would-pass-the-cap"),
        pytest.param(_fetched(("a", "b"), ("c",)), set(), "1", False, id="one-out-is-within-the-cap"),
    ],
)
def test_max_depooled_stops_only_a_run_that_would_take_more_hosts_out(
    results: list[HostResult], already_out: set[str], cap: str, abort: bool
) -> None:
    """The cap on hosts out of the pool aborts a run only when depooling its new failures would pass it; hosts
    already out (one depooled yesterday, or the failed host itself) never block a deploy that takes no one else
    out, such as the hotfix for them."""
    targets = results + ([HostResult("d", True, Phase.FETCH)] if "d" not in {r.host for r in results} else [])
    cap_budget, out = FailureBudget.parse(cap), frozenset(already_out)
    decision = decide_after_fetch(targets, FailureBudget.parse("50%"), depool_cap=cap_budget, already_depooled=out)
    assert decision.abort is abort, decision.reason


def _runs(*written: str) -> list[DeployedRelease]:
    """History entries oldest first as 'sync A', 'rollback B', 'rejected C' (a sync a canary failed), 'part D' (a
    rollback of part of the fleet); newest first out, as History.deployed gives them. A tag's commit is its letter
    (A2 is another tag of A's commit)."""
    runs = []
    for entry in written:
        kind, tag = entry.split()
        action = "rollback" if kind in ("rollback", "part") else "sync"
        runs.append(DeployedRelease(tag, tag[0], action, kind == "rejected", sets_release=kind != "part"))
    return runs[::-1]


@pytest.mark.parametrize(
    ("history", "target"),
    [
        pytest.param(("sync A", "sync B", "sync C"), "B", id="the-deploy-before"),
        pytest.param(("sync A", "sync B", "sync C", "rollback B"), "A", id="a-second-rollback-goes-further-back"),
        pytest.param(("sync A", "sync B", "sync C", "rollback B", "sync D"), "B", id="not-to-a-release-rolled-back"),
        pytest.param(("sync A", "sync B", "sync C", "rollback A"), None, id="nothing-before-the-first"),
        pytest.param(("sync A", "rejected B"), "A", id="canaries-back-from-a-rejected-release"),
        pytest.param(("sync A", "rejected B", "sync C"), "A", id="never-to-a-rejected-release"),
        pytest.param(("sync Z", "sync A", "sync A2"), "Z", id="a-re-sync-of-the-same-commit"),
        pytest.param(("sync Z", "sync A", "rejected A2", "sync B"), "A", id="a-rejected-re-sync-drops-alone"),
        pytest.param(("sync A", "sync B", "rollback X"), "B", id="rollback-to-a-tag-never-synced-here"),
        pytest.param(
            ("sync A", "sync B", "rollback A", "sync C", "rollback B"), "A", id="never-back-to-what-a-rollback-left"
        ),
        pytest.param(("sync A", "sync B", "rollback A", "rollback B"), "A", id="rolled-forward-then-back"),
        pytest.param(
            ("sync A", "sync B", "rollback A", "sync C", "sync D", "rollback B"), "A", id="past-all-synced-after-it"
        ),
        pytest.param((), None, id="no-history"),
        pytest.param(("sync A", "sync B", "part A"), "A", id="back-from-what-the-rest-run-after-a-part-rollback"),
        pytest.param(("sync A", "sync B", "part A", "rollback A"), None, id="a-fleet-rollback-after-a-part-one"),
        pytest.param(("sync A", "sync B", "part A", "sync C"), "B", id="a-part-rollback-is-no-step"),
    ],
)
def test_rollback_goes_back_through_the_deploys_as_a_stack_unwinds(
    history: tuple[str, ...], target: str | None
) -> None:
    """`rollback` without --to returns to what ran before the current release: twice in a row goes further back,
    never to a release rolled back from (also after a `rollback --to` an earlier rollback had popped: sync A, B,
    rollback to A, sync C, rollback --to B then went back to C), nor to one its canaries rejected; a rollback of
    part of the fleet leaves the current release to the rest, so a rollback still goes back from that."""
    assert rollback_target(_runs(*history)) == target


@pytest.mark.parametrize(
    ("history", "rejected"),
    [
        pytest.param(("sync A", "rejected B"), "B", id="a-rejected-release-on-top"),
        pytest.param(("sync A", "rejected B", "part A"), "B", id="under-a-rollback-of-part-of-the-fleet"),
        pytest.param(("sync A", "rejected B", "rollback A"), None, id="rolled-back-from"),
        pytest.param(("sync A", "rejected B", "sync C"), None, id="synced-over"),
        pytest.param(("sync A", "part B"), None, id="no-rejection"),
        pytest.param((), None, id="no-history"),
    ],
)
def test_a_retry_is_refused_while_a_rejected_release_is_the_newest_even_under_a_part_rollback(
    history: tuple[str, ...], rejected: str | None
) -> None:
    """`sync --retry-failed` refuses while the slot's newest release is one its canaries rejected; a rollback of
    part of the fleet after it (one canary put back) hid it, as the refusal read the newest row of any kind."""
    found = rejected_on_top(_runs(*history))
    assert (found.tag if found is not None else None) == rejected


def test_max_depooled_counts_over_the_whole_run_also_in_its_canary_phase() -> None:
    """The canaries fetch first, as a run of their own; the cap still counts the whole run's hosts: a host of the
    rest already out plus a failed canary is two out of four, past a cap of one."""
    canaries = _fetched(("a",), ("b",))
    cap, out = FailureBudget.parse("1"), frozenset({"c"})
    whole = decide_after_fetch(canaries, FailureBudget.parse("50%"), depool_cap=cap, already_depooled=out,
                               pool=["a", "b", "c", "d"])
    assert whole.abort and "2 of 4 hosts out of the pool" in str(whole.reason)


def test_the_failure_budget_is_a_share_of_the_whole_run_not_of_the_rest_after_the_canaries() -> None:
    """20 targeted hosts, 1 of them a canary that switched: "5%" of the targeted hosts is 1 failure allowed, as the
    contract says; counted over the 19 left it allowed none, and the run aborted on "1 of 19"."""
    rest = _fetched(tuple(f"h{n}" for n in range(18)), ("h18",))
    whole = ["canary", *(f"h{n}" for n in range(19))]
    assert not decide_after_fetch(rest, FailureBudget.parse("5%"), pool=whole).abort
    past = decide_after_fetch(_fetched(tuple(f"h{n}" for n in range(17)), ("h17", "h18")), FailureBudget.parse("5%"),
                              pool=whole)
    assert past.reason == "2 of 19 hosts failed to fetch, more than max_failures (5% of the run's 20 hosts: 1)"


def test_a_canary_phase_abort_counts_the_canaries_that_fetched_not_the_whole_run() -> None:
    """One canary of three failed to fetch in a run of eleven hosts: the reason says 1 of 3, not "1 of 11 hosts",
    which read as if the whole fleet had been asked."""
    canaries = _fetched(("c1", "c2"), ("c3",))
    whole = ["c1", "c2", "c3", *(f"h{n}" for n in range(8))]
    decision = decide_after_fetch(canaries, FailureBudget(count=0, name="the canaries' budget"), pool=whole)
    assert decision.reason == "1 of 3 hosts failed to fetch, more than the canaries' budget (0)"


@pytest.mark.parametrize(
    ("stderr", "transient"),
    [
        pytest.param("fatal: the remote end hung up unexpectedly\n", True, id="hung-up"),
        pytest.param("ssh: connect to host pub port 22: Connection refused\nfatal: Could not read from remote"
                     " repository.\n", True, id="ssh-refused"),
        pytest.param("kex_exchange_identification: Connection closed by remote host\nConnection closed by 10.0.0.1"
                     " port 22\nfatal: Could not read from remote repository.\n", True, id="ssh-closed"),
        pytest.param("fatal: unable to access 'https://pub/x.git/': Could not resolve host: pub\n", True, id="dns"),
        pytest.param("fatal: unable to access 'https://pub/x.git/': The requested URL returned error: 503\n", True,
                     id="http-503"),
        pytest.param("fatal: '/srv/git/x.git' does not appear to be a git repository\nfatal: Could not read from"
                     " remote repository.\n\nPlease make sure you have the correct access rights\n", False,
                     id="no-such-repository"),
        pytest.param("deploy@pub: Permission denied (publickey).\nfatal: Could not read from remote repository.\n",
                     False, id="ssh-login-refused"),
        pytest.param("Host key verification failed.\nfatal: Could not read from remote repository.\n", False,
                     id="host-key"),
        pytest.param("fatal: couldn't find remote ref refs/tags/t1\n", False, id="no-such-tag"),
        pytest.param("fatal: unable to access 'https://pub/x.git/': The requested URL returned error: 404\n", False,
                     id="http-404"),
    ],
)
def test_a_fetch_is_retried_for_a_broken_transport_never_for_a_request_no_retry_fixes(
    stderr: str, transient: bool
) -> None:
    """git says "could not read from remote repository" after a dropped connection and after a missing
    repository or a refused login alike: only the first is retried (the others waited out every retry)."""
    assert is_transient_fetch_error(stderr) is transient


def test_switch_failures_are_tolerated_as_far_as_the_fetch_left_the_budget() -> None:
    """Fetch and switch failures count against one max_failures: 5% of 200 hosts is 10; 4 failed fetches leave 6
    switch failures; a budget the fetch used up (or more) leaves none, never a negative count."""
    budget = FailureBudget.parse("5%")
    assert switch_failures_tolerated(budget, 200, 0) == 10
    assert switch_failures_tolerated(budget, 200, 4) == 6
    assert switch_failures_tolerated(budget, 200, 10) == 0
    assert switch_failures_tolerated(FailureBudget.parse(3), 200, 5) == 0
