"""The command line: parse, load config and inventory, call one use case, render, map to an exit code.

The only module that imports Typer/click. Heavy modules (asyncssh, GitPython) are imported inside the
commands that need them, so `--help` and `--version` stay fast. Every error is one line on stderr.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from sartoris import __version__
from sartoris.errors import SartorisError, UsageError

EXIT_OK, EXIT_USAGE, EXIT_ABORTED, EXIT_PARTIAL, EXIT_INTERRUPTED = 0, 2, 3, 5, 130

app = typer.Typer(
    name="sartoris",
    help="Git-based deploys to large fleets over SSH: tag, publish, fetch everywhere, switch, depool the failures.",
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@dataclass(frozen=True, slots=True)
class _Globals:
    config: Path | None
    verbosity: int


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sartoris {__version__}")
        raise typer.Exit(0)


@app.callback(invoke_without_command=True)
def _main(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Option("--config", help="sartoris.toml to use (else $SARTORIS_CONFIG, "
                                                "git config sartoris.config, or the nearest sartoris.toml).")] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More events on stderr.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors on stderr.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    from sartoris import log

    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(EXIT_USAGE)
    verbosity = -1 if quiet else verbose
    log.configure(verbosity)
    ctx.obj = _Globals(config=config, verbosity=verbosity)


SlotOption = Annotated[int | None, typer.Option("--slot", min=0, help="Slot number (default: the slot of the current folder).")]
HostsOption = Annotated[list[str] | None, typer.Option("--hosts", help="Host group name or file; repeatable.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


@app.command()
def sync(
    ctx: typer.Context,
    slot: SlotOption = None,
    message: Annotated[str, typer.Option("--message", "-m", help="Why this deploy (goes into the tag).")] = "",
    hosts: HostsOption = None,
    concurrency: Annotated[int | None, typer.Option("--concurrency", min=1, help="Hosts worked on at once.")] = None,
    max_failures: Annotated[str | None, typer.Option("--max-failures", help="N hosts or N% that may fail.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan; change nothing.")] = False,
    json_output: JsonOption = False,
) -> int:
    """Tag the slot's working copy, publish it, fetch it on every host, then switch them (or abort)."""
    from sartoris import deploy, policy, render

    config = _load_config(ctx)
    slot_number = _slot(config, slot)
    targets = _targets(config, hosts)
    budget = config.fanout.max_failures
    if max_failures is not None:
        try:
            budget = policy.FailureBudget.parse(max_failures)
        except ValueError as exc:
            raise UsageError(f"--max-failures: {exc}") from None
    request = deploy.SyncRequest(
        slot=slot_number,
        targets=targets,
        message=message or f"sync by {os.environ.get('USER', 'unknown')}",
        concurrency=concurrency or config.fanout.concurrency,
        budget=budget,
    )
    if dry_run:
        plan = deploy.plan_sync(config, request)
        _emit(plan.as_json(), plan.describe(), json_output)
        return EXIT_OK
    report = deploy.sync(config, request)
    _emit(report.as_json(), render.sync_summary(report), json_output)
    return {"ok": EXIT_OK, "partial": EXIT_PARTIAL, "aborted": EXIT_ABORTED}[report.outcome.value]


@app.command()
def status(
    ctx: typer.Context,
    slot: SlotOption = None,
    hosts: HostsOption = None,
    json_output: JsonOption = False,
) -> int:
    """Ask every host which commit its slot is on and compare with the last deploy from here."""
    from sartoris import deploy, render

    config = _load_config(ctx)
    report = deploy.status(config, _slot(config, slot), _targets(config, hosts), config.fanout.concurrency)
    _emit(report.as_json(), render.status_summary(report), json_output)
    return EXIT_OK if report.all_current else EXIT_PARTIAL


def _load_config(ctx: typer.Context) -> Any:
    from sartoris.config import find_config, load_config

    globals_: _Globals = ctx.obj
    return load_config(find_config(globals_.config, Path.cwd(), os.environ))


def _slot(config: Any, slot: int | None) -> int:
    from sartoris.slots import infer_slot

    return slot if slot is not None else infer_slot(config, Path.cwd())


def _targets(config: Any, hosts: list[str] | None) -> Any:
    from sartoris.inventory import resolve_hosts

    selectors = hosts or list(config.deploy.hosts)
    if not selectors:
        raise UsageError("no hosts to target: pass --hosts or set [deploy] hosts in sartoris.toml")
    return resolve_hosts(selectors, config.hosts_dir, Path.cwd())


def _emit(document: dict[str, Any], text: str, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(document) + "\n")
    else:
        sys.stdout.write(text + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the command, print any error as one line, return the contract's exit code."""
    try:
        result = app(args=argv, prog_name="sartoris", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:  # click's usage errors, vendored by Typer
        print(f"sartoris: {exc.format_message()}", file=sys.stderr)
        return EXIT_USAGE
    except (KeyboardInterrupt, typer.Abort):
        print("sartoris: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SartorisError as exc:
        print(f"sartoris: {exc}", file=sys.stderr)
        return exc.exit_code
    return result if isinstance(result, int) else EXIT_OK


def run() -> None:
    sys.exit(main())
