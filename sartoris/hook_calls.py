"""Calling the operator's hooks at the points of a run: a failing pre hook stops the run before anything
changed (exit 4); a failing post, finish or abort hook is reported and the run's outcome stands."""

from __future__ import annotations

from typing import Any

import structlog

from sartoris.config import Config
from sartoris.errors import RefusedError
from sartoris.hooks import HookContext, HookPhase, HookResult, run_hook

log = structlog.get_logger("sartoris")


def _run(config: Config, context: HookContext) -> HookResult:
    result = run_hook(
        config.deploy.hooks_dir, context, timeout=config.deploy.hook_timeout, cwd=config.checkout_path(context.slot)
    )
    if result.ran:
        log.info("hook_ran", hook=context.phase.value, ok=result.ok, seconds=round(result.seconds, 3))
        if result.ok and result.output_tail:  # what it did ("purged 42 urls"): with -v, and always in --log-file
            log.debug("hook_output", hook=context.phase.value, tail=result.output_tail)
    return result


def _context(config: Config, phase: HookPhase, action: str, slot: int, tag: str | None, **extra: Any) -> HookContext:
    return HookContext(
        action=action, phase=phase, slot=slot, prefix=config.slot_name(slot), tag=tag, name=config.deploy.name, **extra
    )


def pre_hook(config: Config, phase: HookPhase, action: str, slot: int, tag: str | None, message: str = "") -> None:
    """Run a pre-* hook; its failure stops the run before anything changed (exit 4)."""
    result = _run(config, _context(config, phase, action, slot, tag, message=message))
    if not result.ok:
        raise RefusedError(f"{result.error}; nothing was changed")


def post_hook(
    config: Config,
    phase: HookPhase,
    action: str,
    slot: int,
    tag: str | None,
    outcome: str | None,
    failed: tuple[str, ...] = (),
    message: str = "",
    not_switched: tuple[str, ...] = (),
) -> str | None:
    """Run a post-* or finish/abort hook with the outcome, the hosts that failed and those the run stopped before
    their turn; a failure is reported (logged, and returned: why it failed, for the command's report), the outcome
    stands. None when it succeeded or there is none. An interrupt (Ctrl-C, SIGTERM, SIGHUP) stops the hook, says so,
    and goes on up: the caller reports what it did all the same."""
    context = _context(
        config, phase, action, slot, tag, outcome=outcome, failed_hosts=failed, not_switched_hosts=not_switched,
        message=message,
    )
    try:
        result = _run(config, context)
    except KeyboardInterrupt:  # run_hook has ended the hook's process group
        log.error("hook_failed", hook=phase.value, error=f"{phase} hook stopped: interrupted")
        raise
    if not result.ok:
        log.error("hook_failed", hook=phase.value, error=result.error)
        log.debug("hook_output", hook=phase.value, tail=result.output_tail)
        return result.error
    return None
