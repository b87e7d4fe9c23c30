"""The command line: parse, load config and inventory, call one use case, render, map to an exit code.

The only module that imports Typer. Heavy modules (asyncssh, GitPython) are imported inside the commands
that need them, so `--help` and `--version` stay fast. Every error is one line on stderr.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

# Typer and structlog use rich when it is importable; Sartoris prints plain text and never needs it, and the
# import costs every run ~0.1 s of CPU and ~3.5 MiB (BENCHMARKS.md). None in sys.modules reads as "not installed".
sys.modules.setdefault("rich", None)  # type: ignore[arg-type]

import typer  # noqa: E402
import typer.core  # noqa: E402
from typer._completion_classes import completion_init  # noqa: E402

from sartoris import completion, streams  # noqa: E402
from sartoris.errors import Interrupted, InterruptedRun, SartorisError, UsageError  # noqa: E402
from sartoris.launch import help_asked, json_asked  # noqa: E402
from sartoris.limits import MAX_ENTRIES, MAX_SLOT  # noqa: E402

EXIT_OK, EXIT_USAGE, EXIT_ABORTED, EXIT_PARTIAL, EXIT_INTERRUPTED = 0, 2, 3, 5, 130
_OUTCOME_EXIT = {"ok": EXIT_OK, "partial": EXIT_PARTIAL, "aborted": EXIT_ABORTED}

class _Commands(typer.core.TyperGroup):
    """Typer's command group, except that a Ctrl-C escaping a command (a census, a listing: no run to report)
    leaves as Interrupted, so main() says it in the contract's one line (and JSON object); Typer itself would
    turn it into a silent exit 130; and an option of one value given twice, to the group or to its command, is
    bad usage rather than "the last one wins"."""

    def invoke(self, ctx: Any) -> Any:  # a click.Context, vendored by Typer
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Interrupted from None

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if ctx.parent is None:  # the top level's options: --install-completion and --show-completion are there
            valued = {
                name
                for param in self.get_params(ctx)
                if param.param_type_name == "option" and not getattr(param, "is_flag", False)
                and not getattr(param, "count", False)
                for name in param.opts
            }
            args = completion.shell_optional(args, valued)
        _refuse_a_repeated_option(self, ctx, args)  # the group's own options; its commands' in resolve_command
        return super().parse_args(ctx, args)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None and not isinstance(command, _Commands):  # a group checks its own, as above
            unparsed = command.context_class(command, parent=ctx, info_name=name, **command.context_settings)
            _refuse_a_repeated_option(command, unparsed, rest)
        return name, command, rest


def _refuse_a_repeated_option(command: Any, ctx: Any, args: list[str]) -> None:
    """Bad usage when an option that takes one value is given more than once: click keeps the last one, so
    `rollback --slot 1 --slot 0` rolled back slot 0. Checked before the command (or the group's callback) runs;
    options meant to repeat (--hosts) and flags are left alone, and --help still answers."""
    if ctx.resilient_parsing:  # shell completion: it parses what is typed so far, and must not fail
        return
    parser = command.make_parser(ctx)  # click's own parser, so values are read exactly as the real parse reads them
    options = (*parser._long_opt.values(), *parser._short_opt.values())
    single = {option for option in options if option.action == "store"}
    for option in single:
        option.action = "append"  # keeps every value given, not only the last
    try:
        given, _, _ = parser.parse_args(list(args))
    except typer.TyperException:  # a mistake of another kind: the real parse says it, in click's words
        return
    helper = command.get_help_option(ctx)
    if helper is not None and helper.name in given:
        return
    names = {option.dest: max(option.obj.opts, key=len) for option in single}  # --message for -m too
    for dest, values in given.items():  # in the order they were first given
        if dest in names and len(values) > 1:
            times = "twice" if len(values) == 2 else f"{len(values)} times"
            quoted = [shlex.quote(value) for value in values]
            raise UsageError(f"{names[dest]} given {times}: {', '.join(quoted[:-1])} and {quoted[-1]}")


def _install_completion(value: str | None) -> None:
    """--install-completion [SHELL]: write the completion script and the line of the shell's rc file that loads it."""
    if value is None:
        return
    from typer._completion_shared import install  # what Typer's own option calls

    shell = completion.shell_for("--install-completion", value)
    try:
        _, path = install(shell=shell, prog_name="sartoris", complete_var="_SARTORIS_COMPLETE")
    except OSError as exc:
        raise SartorisError(f"--install-completion: cannot install the {shell} completion: {exc}") from None
    _emit({}, f"{shell} completion installed in {path}; it takes effect in a new {shell}", as_json=False)
    raise typer.Exit(0)


def _show_completion(value: str | None) -> None:
    """--show-completion [SHELL]: print the completion script, to copy it or install it by hand."""
    if value is None:
        return
    from typer._completion_shared import get_completion_script

    shell = completion.shell_for("--show-completion", value)
    script = get_completion_script(prog_name="sartoris", complete_var="_SARTORIS_COMPLETE", shell=shell)
    _emit({}, script, as_json=False)
    raise typer.Exit(0)


app = typer.Typer(
    cls=_Commands,
    name="sartoris",
    help="Git-based deploys to large fleets over SSH: tag, publish, fetch everywhere, switch, depool the failures.",
    add_completion=False,  # its --install-completion took any word for the shell it detected: see _main's own
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
slots_app = typer.Typer(
    cls=_Commands, help="Slots, their deployed tags and version links.", rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(slots_app, name="slots")
completion_init()  # the completion scripts ask Sartoris through Typer's completion classes (its option set them up)


@dataclass(frozen=True, slots=True)
class _Globals:
    config: Path | None
    verbosity: int
    json_lines: bool = False

    def progress(self) -> Any:
        """Live progress on a terminal, plain lines otherwise, events under --log-format json, none with -q."""
        from sartoris.progress import for_terminal

        return for_terminal(quiet=self.verbosity < 0, as_events=self.json_lines)


def _version(value: bool) -> None:
    if value:
        from sartoris.version import version_string

        _emit({}, version_string(), as_json=False)  # a full disk is said, like a lost report
        raise typer.Exit(0)


@app.callback(invoke_without_command=True)
def _main(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="sartoris.toml to use (else $SARTORIS_CONFIG, "
            "git config sartoris.config, or the nearest sartoris.toml).",
        ),
    ] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More events on stderr.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors on stderr.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and the commit it was built from."
        ),
    ] = False,
    log_format: Annotated[
        str, typer.Option("--log-format", help="Events on stderr as 'console' (readable) or 'json' (one per line).")
    ] = "console",
    log_file: Annotated[
        Path | None, typer.Option("--log-file", help="Also write every event (per host, with stderr tails) here.")
    ] = None,
    install_completion: Annotated[
        str | None,
        typer.Option(
            "--install-completion",
            metavar="[SHELL]",
            callback=_install_completion,
            is_eager=True,
            help=f"Install shell completion for SHELL ({', '.join(completion.SHELLS)}; default: the shell this"
            " runs in).",
        ),
    ] = None,
    show_completion: Annotated[
        str | None,
        typer.Option(
            "--show-completion",
            metavar="[SHELL]",
            callback=_show_completion,
            is_eager=True,
            help="Print the completion script for SHELL (default: the shell this runs in), to install it by hand.",
        ),
    ] = None,
) -> None:
    if ctx.invoked_subcommand is None:  # bad usage: the contract's one line, naming what would do
        commands = ", ".join(ctx.command.list_commands(ctx))  # type: ignore[attr-defined]
        raise UsageError(f"no command given: one of {commands} (sartoris --help says what each does)")
    from sartoris import log

    if log_format not in ("console", "json"):
        raise UsageError(f"--log-format must be console or json, not {log_format!r}")
    verbosity = -1 if quiet else verbose
    log.configure(verbosity, json_lines=log_format == "json", log_file=log_file)
    ctx.obj = _Globals(config=config, verbosity=verbosity, json_lines=log_format == "json")


SlotOption = Annotated[
    int | None,
    typer.Option("--slot", min=0, max=MAX_SLOT, help="Slot number (default: the slot of the current folder)."),
]
HostsOption = Annotated[list[str] | None, typer.Option("--hosts", help="Host group name or file; repeatable.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


def _plain_message(message: str) -> str:
    """A -m message of UTF-8 text without control characters but line breaks and tabs (a tag's message may have
    several lines): it is shown in other operators' lock refusals, `status` and `log`, where an escape sequence
    would act on their terminal, and git and the history store it as UTF-8."""
    if any((ord(c) < 32 and c not in "\n\t") or 127 <= ord(c) < 160 for c in message):  # C0, DEL and C1
        raise UsageError("-m: a message cannot hold control characters (an escape sequence, a carriage return)")
    if _not_utf8(message):
        raise UsageError("-m: a message must be UTF-8 text; it holds bytes that are not (another encoding?)")
    return message


def _not_utf8(text: str) -> bool:
    """Whether an argument holds bytes that are not UTF-8: they come in as lone surrogates (surrogateescape), which
    no tag, git message or history row can hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _message_option(kept: str) -> Any:
    """-m as one command uses it: `kept` says where the message goes there (only a sync makes a tag)."""
    return typer.Option("--message", "-m", callback=_plain_message, help=f"Why: {kept}.")


ForceOption = Annotated[bool, typer.Option("--force", help="Break a stale lock (its process is gone).")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Show the plan; change nothing.")]
ConcurrencyOption = Annotated[int | None, typer.Option("--concurrency", min=1, help="Hosts worked on at once.")]
MaxFailuresOption = Annotated[
    str | None,
    typer.Option("--max-failures", help="N hosts or N% (of the run's) that may fail, fetch and switch together."),
]


@app.command()
def start(
    ctx: typer.Context,
    slot: SlotOption = None,
    no_remote: Annotated[
        bool, typer.Option("--no-remote", help="Skip fetching upstream (emergency live hack).")
    ] = False,
    message: Annotated[
        str,
        _message_option(
            "kept in the lock (named to anyone it refuses) and the history, given to the finish or abort hook, and"
            " the default -m of your syncs and rollbacks in this deploy"
        ),
    ] = "",
    force: ForceOption = False,
    json_output: JsonOption = False,
) -> int:
    """Take the slot's deploy lock and record where the checkout is (abort returns there).

    Example: sartoris start --slot 0 -m "security fix"
    """
    from sartoris import lifecycle

    config, slot_number = _slot_config(ctx, slot)
    report = lifecycle.start(config, slot_number, message, no_remote=no_remote, force=force)
    _emit(report.as_json(), report.detail, json_output)
    return EXIT_OK


@app.command()
def sync(
    ctx: typer.Context,
    slot: SlotOption = None,
    message: Annotated[
        str,
        _message_option(
            "the release tag's message, kept with the run in the history and given to the hooks (default: the"
            " started deploy's -m, else 'sync by USER')"
        ),
    ] = "",
    hosts: HostsOption = None,
    concurrency: ConcurrencyOption = None,
    max_failures: MaxFailuresOption = None,
    dry_run: DryRunOption = False,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Re-deploy the current tag to hosts not on it.")
    ] = False,
    force: ForceOption = False,
    json_output: JsonOption = False,
) -> int:
    """Tag the slot's working copy, publish it, fetch it on every host, then switch them (or abort).

    Example: sartoris sync --slot 0 -m "1.20wmf1 branch cut" --max-failures 2%
    """
    from sartoris import deploy, render

    config, slot_number = _slot_config(ctx, slot)
    request = _request(config, slot_number, hosts, message, concurrency, max_failures, force, "sync")
    if dry_run:
        if retry_failed:
            raise UsageError(
                "--dry-run with --retry-failed: a retry's hosts come from asking every host; `sartoris status`"
                " lists the hosts not on the current tag, which a retry would target"
            )
        plan = deploy.plan_sync(config, request)
        _emit(plan.as_json(), plan.describe(), json_output)
        return EXIT_OK
    progress = ctx.find_root().obj.progress()
    return _run_report(
        lambda: deploy.sync(config, request, retry_failed=retry_failed, progress=progress),
        "sync",
        json_output,
        render.sync_summary,
    )


@app.command()
def finish(
    ctx: typer.Context,
    slot: SlotOption = None,
    force: Annotated[bool, typer.Option("--force", help="Finish a deploy someone else started.")] = False,
    json_output: JsonOption = False,
) -> int:
    """Release the slot's deploy lock and run the finish hook (announce)."""
    return _bracket(ctx, "finish", slot, force, json_output)


@app.command()
def abort(
    ctx: typer.Context,
    slot: SlotOption = None,
    force: Annotated[bool, typer.Option("--force", help="Abort a deploy someone else started.")] = False,
    json_output: JsonOption = False,
) -> int:
    """Abandon a started deploy: put the checkout and submodules back where start found them and release the lock
    (refused, saying what to run first, while hosts may run a release this deploy synced)."""
    return _bracket(ctx, "abort", slot, force, json_output)


def _bracket(ctx: typer.Context, action: str, slot: int | None, force: bool, json_output: bool) -> int:
    """finish or abort a started deploy."""
    from sartoris import lifecycle

    config, slot_number = _slot_config(ctx, slot)
    close = lifecycle.finish if action == "finish" else lifecycle.abort
    try:
        report = close(config, slot_number, force=force)
    except InterruptedRun as exc:  # during its hook: the finish or abort is done, and says so
        _emit(exc.report.as_json(), exc.report.detail, json_output)  # type: ignore[attr-defined]
        raise
    _emit(report.as_json(), report.detail, json_output)
    if report.partly_removed:  # the checkout is back and the lock released, but a folder is left half removed
        from sartoris.state import shown

        _stdout.error = _one_line(
            f"the checkout is restored and the lock released, but abort could not remove all of"
            f" {', '.join(shown(path) for path in report.partly_removed)}: its report says what is left"
        )
        _say(_stdout.error)
        return EXIT_PARTIAL
    return EXIT_OK


@app.command()
def rollback(
    ctx: typer.Context,
    slot: SlotOption = None,
    to: Annotated[str | None, typer.Option("--to", help="Tag to switch to (default: the previous deploy).")] = None,
    hosts: HostsOption = None,
    concurrency: ConcurrencyOption = None,
    max_failures: MaxFailuresOption = None,
    message: Annotated[
        str,
        _message_option(
            "kept with the run in the history and given to the hooks (default: the started deploy's -m, else"
            " 'rollback by USER'); a rollback makes no tag"
        ),
    ] = "",
    dry_run: DryRunOption = False,
    force: ForceOption = False,
    json_output: JsonOption = False,
) -> int:
    """Switch the hosts back to the previous (or given) deployed tag; nothing is fetched where it is present.

    Example: sartoris rollback --slot 0 --to mediawiki-slot0-20261126-101500
    """
    from sartoris import deploy, render

    config, slot_number = _slot_config(ctx, slot)
    request = _request(config, slot_number, hosts, message, concurrency, max_failures, force, "rollback")
    if dry_run:
        plan = deploy.plan_rollback(config, request, to)
        _emit(plan.as_json(), plan.describe(), json_output)
        return EXIT_OK
    progress = ctx.find_root().obj.progress()
    return _run_report(
        lambda: deploy.rollback(config, request, to, progress), "rollback", json_output, render.sync_summary
    )


@app.command()
def status(
    ctx: typer.Context,
    slot: SlotOption = None,
    hosts: HostsOption = None,
    json_output: JsonOption = False,
) -> int:
    """Ask every host which commit its slot is on and compare with the last deploy from here."""
    from sartoris import census, render

    config, slot_number = _slot_config(ctx, slot)
    progress = ctx.find_root().obj.progress()
    targets = _targets(config, hosts)
    report = census.status(config, slot_number, targets, config.fanout.concurrency, progress, beyond=not hosts)
    _emit(report.as_json(), render.status_summary(report), json_output)
    return EXIT_OK if report.all_current else EXIT_PARTIAL


@app.command()
def depool(
    ctx: typer.Context,
    hosts: Annotated[list[str], typer.Argument(help="Hosts as written in the hosts files.")],
    slot: SlotOption = None,
    message: Annotated[
        str,
        _message_option("kept with the depool in the history (`sartoris log`)"),
    ] = "",
    json_output: JsonOption = False,
) -> int:
    """Run the configured depool command for each host and remember it is out of the pool."""
    return _pool(ctx, hosts, slot, True, message, json_output)


@app.command()
def pool(
    ctx: typer.Context,
    hosts: Annotated[list[str] | None, typer.Argument(help="Hosts as written in the hosts files.")] = None,
    caught_up: Annotated[
        bool, typer.Option("--caught-up", help="Re-pool every depooled host now on the slot's current tag.")
    ] = False,
    among: Annotated[
        list[str] | None,
        typer.Option("--hosts", help="With --caught-up: only hosts of this group or file (repeatable)."),
    ] = None,
    slot: SlotOption = None,
    message: Annotated[
        str,
        _message_option(
            "kept with the pool change in the history (`sartoris log`); with --caught-up the history notes the tag"
            " the hosts caught up with instead"
        ),
    ] = "",
    json_output: JsonOption = False,
) -> int:
    """Run the configured pool command for each host and remember it is back in the pool."""
    if caught_up and hosts:  # it would look at every depooled host, not at these
        raise UsageError("pool: --caught-up takes no HOST; narrow it with --hosts G (a group or a file)")
    if caught_up:
        from sartoris import pool as pooling

        base = _load_config(ctx)
        caught_up_slot = _slot(base, slot)
        targets = _targets(base.for_slot(caught_up_slot), among) if among else None  # else every host depooled
        return _pool_report(lambda: pooling.pool_caught_up(base, caught_up_slot, targets), json_output)
    if among:
        raise UsageError("pool: --hosts goes with --caught-up; name the hosts to pool as arguments")
    if not hosts:
        raise UsageError("pool: name the hosts, or pass --caught-up")
    return _pool(ctx, hosts, slot, False, message, json_output)


def _pool(
    ctx: typer.Context, hosts: list[str], slot: int | None, depool: bool, message: str, json_output: bool
) -> int:
    """depool/pool HOST...: the slot (--slot, else the current folder's, else none) fills a `{slot}` in the
    command; with none, such a command is refused rather than run with the placeholder."""
    from sartoris import pool as pooling
    from sartoris.inventory import dedupe, parse_host

    config = _load_config(ctx)
    slot = _slot_if_known(config, slot)
    key = "command" if depool else "pool_command"
    if slot is not None:
        config = config.for_slot(slot)
    elif config.depool.names_slot(key):
        raise UsageError(f"{config.path}: [depool] {key} uses {{slot}}: pass --slot N (or run it inside a slot)")
    parsed = []
    for spec in hosts:
        try:
            parsed.append(parse_host(spec))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    unique = dedupe(parsed, config.ssh.default_port)
    return _pool_report(
        lambda: pooling.change_pool(config, unique, depool=depool, message=message, listed_only=True), json_output
    )


def _pool_report(change: Any, json_output: bool) -> int:
    """Run a pool change and print its report, also when Ctrl-C interrupted it (what ran is remembered)."""
    try:
        report = change()
    except InterruptedRun as exc:
        _emit(exc.report.as_json(), exc.report.describe(), json_output)  # type: ignore[attr-defined]
        _say_pool_not_recorded(exc.report)
        raise
    _emit(report.as_json(), report.describe(), json_output)
    if _say_pool_not_recorded(report):  # the load balancer was told, the deploy host does not know it
        return EXIT_PARTIAL
    return EXIT_OK if not report.failed else EXIT_PARTIAL


def _say_pool_not_recorded(report: Any) -> bool:
    """Say on stderr that a depool/pool's change is not in the history, if so (whether it is not)."""
    why = getattr(report, "not_recorded", None)
    if why is None:
        return False
    hosts = ", ".join(report.changed) or "no host"
    unaware = "`status`, `log` and `pool --caught-up` do not know it"
    if report.state_recorded:
        unaware = "`log` does not list it (the pool state that `status` reads has it)"
    elif report.logged:
        unaware = "`status` and `pool --caught-up` do not know it (`log` lists it)"
    _stdout.error = _one_line(f"the {report.action} of {hosts} was not written to the history ({why}): {unaware}")
    _say(_stdout.error)
    return True


@app.command("log")
def history_log(
    ctx: typer.Context,
    tag: Annotated[
        str | None, typer.Argument(help="Show the per-host outcomes of each run of this tag (newest first).")
    ] = None,
    slot: Annotated[
        int | None,
        typer.Option(
            "--slot",
            min=0,
            max=MAX_SLOT,
            help="Slot number (default: the slot of the current folder, else every slot).",
        ),
    ] = None,
    count: Annotated[int, typer.Option("-n", min=1, max=MAX_ENTRIES, help="How many entries.")] = 20,
    json_output: JsonOption = False,
) -> int:
    """Deploy history: who, when, tag, outcome, duration; with TAG, the per-host results of its runs."""
    from sartoris import render
    from sartoris.slots import refuse_an_unknown_slot, slot_at
    from sartoris.state import existing_history

    config = _load_config(ctx)
    given = slot is not None
    if slot is None:
        slot = slot_at(config, _cwd(), os.environ.get("PWD"))
    history = existing_history(config.state_dir)
    if given and slot is not None:  # a typo of the slot is said, not answered with an empty history
        refuse_an_unknown_slot(config, slot, history is not None and history.has_rows_of(slot))
    if tag is not None:
        if _not_utf8(tag):
            raise UsageError(f"no deploy of tag {tag!r} in the history (it holds bytes that are not UTF-8)")
        runs = history.entries_for_tag(tag, count) if history else []
        if not runs:
            raise UsageError(f"no deploy of tag {tag!r} in the history")
        if given and all(run.slot != slot for run in runs):
            raise UsageError(f"tag {tag!r} was deployed in slot {runs[0].slot}, not slot {slot}")
        shown = runs[0].as_json(with_hosts=True)  # the newest run, as before; the ones before it beside it
        shown["earlier_runs"] = [run.as_json(with_hosts=True) for run in runs[1:]]
        _emit(shown, "\n\n".join(render.log_entry(run) for run in runs), json_output)
        return EXIT_OK
    entries = history.entries(slot, count) if history else []
    _emit({"entries": [e.as_json(with_hosts=True) for e in entries]}, render.log_table(entries), json_output)
    return EXIT_OK


@app.command()
def hosts(
    ctx: typer.Context,
    hosts: HostsOption = None,
    slot: Annotated[
        int | None,
        typer.Option("--slot", min=0, max=MAX_SLOT, help="The slot a `{slot}` in [deploy] hosts means."),
    ] = None,
    json_output: JsonOption = False,
) -> int:
    """Print the resolved inventory: ranges expanded, duplicates dropped, one host per line.

    Example: sartoris hosts --hosts mediawiki-installation --hosts canaries
    """
    config = _load_config(ctx)
    here = _slot_if_known(config, slot)
    targets = _targets(config if here is None else config.for_slot(here), hosts)
    document = {"hosts": [{"host": h.label, "name": h.name, "user": h.user, "port": h.port} for h in targets]}
    _emit(document, "\n".join(h.label for h in targets), json_output)
    return EXIT_OK


@app.command("config")
def show_config(ctx: typer.Context, json_output: JsonOption = False) -> int:
    """Print the effective configuration and where each value came from (the file, or the default).

    Example: sartoris --config /srv/deploy/sartoris.toml config
    """
    from sartoris import effective
    from sartoris.config import load_config, locate_config

    path, found_by = locate_config(ctx.find_root().obj.config, _cwd(), os.environ)
    settings = effective.effective_settings(load_config(path))
    document = {"path": str(path), "found_by": found_by, "settings": [s.as_json() for s in settings]}
    _emit(document, effective.render(settings, f"{found_by}: {path}"), json_output)
    return EXIT_OK


@slots_app.callback(invoke_without_command=True)
def slots(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """List slots: working copy, last deployed tag, and the version links pointing at each."""
    if ctx.invoked_subcommand is not None:
        return
    from sartoris import render
    from sartoris.slots import list_slots
    from sartoris.state import existing_history

    config = _load_config(ctx)
    infos = list_slots(config, {})
    last = {}
    if (history := existing_history(config.state_dir)) is not None:
        last = {info.slot: release.tag for info in infos if (release := history.last_deployed(info.slot))}
    infos = list_slots(config, last)
    _emit({"slots": [i.as_json() for i in infos]}, render.slots_table(infos), json_output)
    raise typer.Exit(EXIT_OK)


@slots_app.command("link")
def slots_link(
    ctx: typer.Context,
    slot: Annotated[int, typer.Argument(min=0, max=MAX_SLOT, metavar="N", help="Slot number.")],
    name: Annotated[str, typer.Argument(metavar="NAME", help="Version link name, e.g. php-1.20wmf1.")],
    json_output: JsonOption = False,
) -> int:
    """Create or move the version link NAME -> <slot_prefix>N atomically.

    Example: sartoris slots link 0 php-1.20wmf1
    """
    from sartoris.slots import link_slot

    config = _load_config(ctx).for_slot(slot)
    made = link_slot(config, slot, name)
    as_json = json_output or bool(ctx.parent is not None and ctx.parent.params.get("json_output"))  # slots --json link
    before = None if made.moved_from is None else config.slot_name(made.moved_from)
    document = {"link": made.path.name, "slot": slot, "target": config.slot_name(slot), "moved_from": before}
    moved = f" (moved from {before})" if before else ""
    _emit(document, f"{made.path.name} -> {config.slot_name(slot)}{moved}", as_json)
    return EXIT_OK


def _request(
    config: Any,
    slot: int | None,
    hosts: list[str] | None,
    message: str,
    concurrency: int | None,
    max_failures: str | None,
    force: bool,
    action: str,
) -> Any:
    from sartoris import deploy, policy

    budget = config.fanout.max_failures
    if max_failures is not None:
        try:
            budget = policy.FailureBudget.parse(max_failures)
        except ValueError as exc:
            raise UsageError(f"--max-failures {exc}") from None
    slot_number = _slot(config, slot)
    return deploy.SyncRequest(
        slot=slot_number,
        targets=_targets(config, hosts),
        message=message or _default_message(config, slot_number, action),
        concurrency=concurrency or config.fanout.concurrency,
        budget=budget,
        force=force,
        action=action,
        hosts_chosen=bool(hosts),
        hosts_from=_target_files(config, hosts),
    )


def _default_message(config: Any, slot: int, action: str) -> str:
    """A run's message when -m is not given: the message of this operator's started deploy of the slot (`start
    -m "1.20wmf2 train"`), else who ran it, named as the history's user column names them."""
    from sartoris.state import SlotLock, current_user

    lock = SlotLock(config.state_dir, slot)
    held = lock.holder()
    if held is not None and lock.is_own_start(held) and held.get("message"):
        return str(held["message"])
    return f"{action} by {current_user()}"


def _run_report(run: Any, action: str, as_json: bool, summary: Any) -> int:
    """Run a sync/rollback, print its report (also when interrupted), return the contract's exit code."""
    try:
        report = run()
    except InterruptedRun as exc:
        _emit(exc.report.as_json(), summary(exc.report, action), as_json)  # type: ignore[attr-defined]
        _say_not_recorded(exc.report, action)
        raise
    _emit(report.as_json(), summary(report, action), as_json)
    code = _OUTCOME_EXIT[report.outcome.value]
    if _say_not_recorded(report, action):  # the hosts changed, the deploy host does not know it: never "all done"
        return EXIT_PARTIAL if code == EXIT_OK else code
    return code


def _say_not_recorded(report: Any, action: str) -> bool:
    """Say on stderr that the run, or the depools it made, are not in the history, if so (whether they are not)."""
    why = getattr(report, "not_recorded", None)
    forgotten = getattr(report, "depools_not_recorded", ())
    if why is None and not forgotten:
        return False
    out = f"{', '.join(forgotten)} {'is' if len(forgotten) == 1 else 'are'} out of the pool"
    if why is None:
        said = f"the {action} depooled {', '.join(forgotten)}, but the history did not take it: `status` and"
        said += f" `pool --caught-up` do not know that {out}"
    else:
        said = f"the {action} was not written to the history ({why}): `status`, `log` and `rollback` do not know how"
        said += " it ended"
        said += f", nor that {out}" if forgotten else ""
    _stdout.error = _one_line(said)
    _say(_stdout.error)
    return True


def _cwd() -> Path:
    """The current folder; one deleted under the shell (`rmdir` from another) is bad input, said in words."""
    try:
        return Path.cwd()
    except FileNotFoundError:
        raise UsageError("the current folder no longer exists (deleted?): cd to another") from None


def _load_config(ctx: typer.Context) -> Any:
    from sartoris.config import find_config, load_config

    root = ctx.find_root()
    globals_: _Globals = root.obj
    return load_config(find_config(globals_.config, _cwd(), os.environ))


def _slot_config(ctx: typer.Context, slot: int | None) -> tuple[Any, int]:
    """The configuration for the command's slot (`{slot}` replaced everywhere) and that slot: --slot, else the
    slot of the current folder."""
    config = _load_config(ctx)
    number = _slot(config, slot)
    return config.for_slot(number), number


def _slot_if_known(config: Any, slot: int | None) -> int | None:
    """--slot, else the slot of the current folder, else None (for commands that can run for no slot)."""
    from sartoris.slots import slot_at

    return slot if slot is not None else slot_at(config, _cwd(), os.environ.get("PWD"))


def _slot(config: Any, slot: int | None) -> int:
    from sartoris.slots import infer_slot

    return slot if slot is not None else infer_slot(config, _cwd(), os.environ.get("PWD"))


def _target_files(config: Any, hosts: list[str] | None) -> tuple[str, ...]:
    """The hosts files _targets read, as absolute paths (a run notes them: see slot_hosts)."""
    from sartoris.inventory import group_files

    if hosts:
        return group_files(hosts, config.hosts_dir, _cwd())
    return group_files(config.deploy.hosts, config.hosts_dir, config.base_dir)


def _targets(config: Any, hosts: list[str] | None) -> Any:
    from sartoris.inventory import resolve_hosts

    if hosts:  # typed by the operator: a path is from the current folder
        return resolve_hosts(hosts, config.hosts_dir, _cwd(), config.ssh.default_port)
    return config.fleet()


@dataclass(slots=True)
class _Stdout:
    """Whether this invocation has printed its one JSON object (so a failure after it prints no second one)."""

    json_printed: bool = False
    error: str | None = None  # the one line a failed command said
    lost: str | None = None  # why the report could not be written, its reader still there (a full disk)


_stdout = _Stdout()


def _emit(document: dict[str, Any], text: str, as_json: bool) -> None:
    _stdout.json_printed = _stdout.json_printed or as_json  # before writing: never a second, after half of one
    undelivered = streams.deliver(sys.stdout, (json.dumps(document) if as_json else text) + "\n")
    if undelivered is not None and not undelivered.reader_gone:
        _stdout.lost = undelivered.reason
    elif undelivered is not None:
        import structlog  # only here: --help and --version stay fast

        structlog.get_logger("sartoris").warning(
            "report_not_printed", reason="stdout's reader is gone; the exit code and the history hold"
        )


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the command, print any error as one line, return the contract's exit code."""
    args = sys.argv[1:] if argv is None else argv
    _stdout.json_printed, _stdout.error, _stdout.lost = False, None, None  # one invocation's (tests call main again)
    code = _run(argv, args)
    if _stdout.lost is not None and _stdout.error is None:  # a report lost on a full disk is no success
        code = _fail(f"the report was not printed: stdout: {_stdout.lost}", code or 1, [])
    log = sys.modules.get("sartoris.log")  # loaded once the command's logging was set up (not for --help)
    if log is not None:
        log.command_ended(code, _stdout.error)  # how it ended, also in --log-file
    return code


def _run(argv: list[str] | None, args: list[str]) -> int:
    try:
        result = app(args=argv, prog_name="sartoris", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:  # click's usage errors, vendored by Typer
        return _fail(exc.format_message(), EXIT_USAGE, args)
    except (KeyboardInterrupt, typer.Abort):
        return _fail("interrupted", EXIT_INTERRUPTED, args)
    except SartorisError as exc:
        return _fail(str(exc), exc.exit_code, args)
    except Exception as exc:  # a bug or an unforeseen OS condition: still one line; SARTORIS_DEBUG=1 re-raises
        if isinstance(exc, OSError) and help_asked(args):  # click wrote the help itself: the failure is stdout's
            undelivered = streams.deliver(sys.stdout, "")  # flushes what is left (failing again), then discards it
            if undelivered is not None and not undelivered.reader_gone:
                _stdout.lost = undelivered.reason  # said by main, as for a lost report
            return EXIT_OK
        if os.environ.get("SARTORIS_DEBUG"):
            raise
        return _fail(f"unexpected {type(exc).__name__}: {exc} (SARTORIS_DEBUG=1 shows where)", 1, args)
    return result if isinstance(result, int) else EXIT_OK


def _fail(message: str, code: int, args: list[str]) -> int:
    """Say why the command failed (one stderr line); under --json also keep stdout one JSON object, as the
    contract promises, when the command did not get to print its report."""
    line = _one_line(message)
    _stdout.error = line
    _say(line)
    if json_asked(args) and not _stdout.json_printed:
        _emit({"error": line, "exit": code}, "", as_json=True)
    return code


def _one_line(message: str) -> str:
    """A message folded to one line, however many lines its source (git) wrote."""
    return " ".join(message.split())


def _say(message: str) -> None:
    """An error as the one line on stderr the contract promises."""
    streams.write(sys.stderr, "sartoris: " + _one_line(message) + "\n")


def run() -> None:
    """The `sartoris` command (console script, launcher and zipapp): SIGTERM and SIGHUP stop it like Ctrl-C."""
    from sartoris.interrupts import stop_on_sigterm_or_hangup

    stop_on_sigterm_or_hangup()
    sys.exit(main())
