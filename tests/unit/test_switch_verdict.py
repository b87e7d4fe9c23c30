"""What a host's switch result says, from what its script printed (rollout._switch_host), with a stand-in session:
the link swap is the switch, so a host whose script got past it is on the release whatever happened after."""

from __future__ import annotations

import structlog

from sartoris.inventory import Host
from sartoris.remote import NOT_RUN, HostCommand
from sartoris.results import HostResult, Phase
from sartoris.rollout import _Fetched, _switch_host
from sartoris.transport import CommandResult, CommandTimeout, HostError

SWAPPED = "sartoris-phase:checkout\nsartoris-phase:done\n"  # the marker the switch prints right after the swap


class _Script:
    """A session whose one command ends as given: a result, or an exception (a timeout, a dropped connection)."""

    def __init__(self, end: CommandResult | Exception) -> None:
        self._end = end

    async def run(self, command: str, timeout: float, stdin: str = "") -> CommandResult:
        if isinstance(self._end, Exception):
            raise self._end
        return self._end


async def _unseen(item: _Fetched, lost: HostError, began: float) -> HostResult:
    """A lost connection's outcome as the check on a new connection would give it when the host stayed behind."""
    return HostResult(item.host.label, False, Phase.CHECKOUT, f"{lost}; not on the release", 1.0)


async def _switched(end: CommandResult | Exception) -> HostResult:
    fetched = _Fetched(Host("web1", "web1"), HostResult("web1", True, Phase.FETCH, seconds=1.0), _Script(end))  # type: ignore[arg-type]
    return await _switch_host(fetched, HostCommand("sh -s", "switch"), 10.0, _unseen)


async def test_a_deadline_that_strikes_the_prune_after_the_swap_leaves_the_host_on_the_release() -> None:
    """The prune of old trees runs after the swap; when the host's deadline ended it there, the host was reported
    failed at checkout (and depooled) though it ran the release."""
    result = await _switched(CommandTimeout("timed out after 8s", SWAPPED))
    assert result.ok and result.phase is Phase.DONE and result.error is None


async def test_a_failure_after_the_swap_leaves_the_host_on_the_release() -> None:
    """A non-zero exit after the swap marker (the prune's rm failing) is not a failed switch either."""
    assert (await _switched(CommandResult(1, SWAPPED, "rm: cannot remove ...\n"))).ok


async def test_a_failure_or_deadline_before_the_swap_is_a_failed_checkout() -> None:
    """Before the marker, the host kept its old tree: failed, at the phase it reached."""
    timed_out = await _switched(CommandTimeout("timed out after 8s", "sartoris-phase:checkout\n"))
    assert not timed_out.ok and timed_out.phase is Phase.CHECKOUT and timed_out.error == "timed out after 8s"
    failed = await _switched(CommandResult(1, "sartoris-phase:checkout\nsartoris-phase:submodules\n", "fatal: x\n"))
    assert not failed.ok and failed.phase is Phase.SUBMODULES
    dropped = await _switched(HostError("disconnected"))  # settled by a look on a new connection (integration)
    assert not dropped.ok and dropped.phase is Phase.CHECKOUT and dropped.error == "disconnected; not on the release"


async def test_a_switch_script_that_never_ran_is_not_a_switch() -> None:
    """Exit 0 with no output at all: the host's shell got no script (see remote.bounded), nothing was swapped."""
    result = await _switched(CommandResult(0, "", ""))
    assert (result.ok, result.phase, result.error) == (False, Phase.CHECKOUT, NOT_RUN)


async def test_a_switch_that_waited_for_another_run_on_its_host_says_so_though_it_switched() -> None:
    """Two runs switching one slot on one host at once is worth knowing even when both succeed: the second waited
    for the host's switch lock (see remote._switch_lock), and the run now warns about it, naming the host."""
    note = "sartoris-wait: another run is switching /srv/php-slot0 on this host: waiting for it to end\n"
    with structlog.testing.capture_logs() as events:
        result = await _switched(CommandResult(0, SWAPPED, note))
    assert result.ok
    waited = [e for e in events if e["event"] == "waited_for_another_switch"]
    assert waited and waited[0]["host"] == "web1" and waited[0]["log_level"] == "warning"
    assert waited[0]["note"] == "another run is switching /srv/php-slot0 on this host: waiting for it to end"
