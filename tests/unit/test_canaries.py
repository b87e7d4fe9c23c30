"""Tests for the verdict of a run whose canaries failed: exit 3 (`aborted`) promises no host switched and
nobody depooled, so it is given only while that is true."""

from __future__ import annotations

from sartoris.deploy import outcome_after_failed_canaries
from sartoris.results import HostResult, Outcome, Phase
from sartoris.rollout import RolloutResult


def canaries(outcome: Outcome, *hosts: HostResult) -> RolloutResult:
    return RolloutResult(outcome, hosts, "budget")


def test_canaries_stopped_in_their_fetch_phase_abort_the_run() -> None:
    fetched = HostResult("c1", True, Phase.FETCH)
    refused = HostResult("c2", False, Phase.CONNECT, "connection refused")
    assert outcome_after_failed_canaries(canaries(Outcome.ABORTED, fetched, refused)) is Outcome.ABORTED


def test_a_switched_canary_makes_the_run_partial() -> None:
    switched = HostResult("c1", True, Phase.DONE)
    broken = HostResult("c2", False, Phase.CHECKOUT, "checkout failed", depooled=True)
    assert outcome_after_failed_canaries(canaries(Outcome.PARTIAL, switched, broken)) is Outcome.PARTIAL


def test_a_depooled_canary_alone_makes_the_run_partial() -> None:
    broken = HostResult("c1", False, Phase.CHECKOUT, "checkout failed", depooled=True)
    interrupted = HostResult("c2", False, Phase.CHECKOUT, "interrupted")
    assert outcome_after_failed_canaries(canaries(Outcome.PARTIAL, broken, interrupted)) is Outcome.PARTIAL


def test_canaries_that_failed_to_switch_without_a_depool_leave_the_run_aborted() -> None:
    """max_depooled kept the failed canary in the pool and nothing switched: nothing changed on any host."""
    broken = HostResult("c1", False, Phase.CHECKOUT, "checkout failed")
    assert outcome_after_failed_canaries(canaries(Outcome.PARTIAL, broken)) is Outcome.ABORTED
