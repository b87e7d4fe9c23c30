"""The command line's surface without a fleet: help, version, errors, config/hosts listings, output modes."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sartoris.progress import LineProgress, LiveProgress

ROOT = Path(__file__).resolve().parents[2]


def sartoris(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "sartoris.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A minimal sartoris.toml with a hosts group whose one host refuses connections (127.0.0.1:1)."""
    (tmp_path / "hosts").mkdir()
    (tmp_path / "hosts" / "web").write_text("# web\n127.0.0.1:1\nweb[01-03].example:2222\n")
    (tmp_path / "sartoris.toml").write_text(
        '[deploy]\nname = "app"\nremote_root = "/srv/app"\npublish_url = "publish/php-slot{slot}.git"\n'
        'hosts = ["web"]\n\n[fanout]\nconnect_timeout = 2\n\n[ssh]\nknown_hosts = "known_hosts"\n'
    )
    (tmp_path / "known_hosts").write_text("")
    (tmp_path / "php-slot0").mkdir()
    return tmp_path


def test_version_names_the_commit() -> None:
    """--version prints the version and the commit it was built from."""
    done = sartoris("--version")
    assert done.returncode == 0
    assert done.stdout.startswith("sartoris 0.") and "(git " in done.stdout


def test_no_command_is_one_line_naming_the_commands_and_exits_2() -> None:
    """Bare `sartoris` is bad usage: exit 2 and the contract's one stderr line, which names the commands and
    points at --help (which lists them with what each does, on stdout, exit 0)."""
    done = sartoris()
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "sync" in done.stderr and "--help" in done.stderr
    helped = sartoris("--help")
    assert helped.returncode == 0
    assert all(c in helped.stdout for c in ("start", "sync", "finish", "abort", "rollback", "status", "log"))


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("sync", "--slot", "-1"), id="negative-slot"),
        pytest.param(("sync", "--concurrency", "0"), id="zero-concurrency"),
        pytest.param(("status", "--bogus"), id="unknown-option"),
        pytest.param(("--log-format", "xml", "status"), id="bad-log-format"),
        pytest.param(("--log-file", "/nonexistent/sartoris.log", "hosts"), id="unwritable-log-file"),
        pytest.param(("log", "--slot", "9" * 20), id="huge-slot"),  # once an SQLite overflow, exit 1
        pytest.param(("log", "-n", "9" * 20), id="huge-count"),
        pytest.param(("status", "--slot", "10000"), id="slot-past-9999"),
        pytest.param(("hosts", "--hosts", "a" * 300), id="group-name-too-long"),  # once ENAMETOOLONG, exit 1
        pytest.param(("--config", "c" * 300, "hosts"), id="config-name-too-long"),
    ],
)
def test_bad_usage_is_one_line_exit_2(args: tuple[str, ...], project: Path) -> None:
    """Bad options: exit 2 with exactly one line on stderr and no traceback."""
    done = sartoris(*args, cwd=project)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("sartoris: ")


@pytest.mark.parametrize(
    ("args", "said"),
    [
        pytest.param(("status", "--slot", "0", "--slot", "1"), "--slot given twice: 0 and 1", id="status"),
        pytest.param(("sync", "--slot", "0", "--slot", "1", "--dry-run"), "--slot given twice: 0 and 1", id="sync"),
        pytest.param(("rollback", "--slot", "1", "--slot", "0"), "--slot given twice: 1 and 0", id="rollback"),
        pytest.param(("start", "--slot", "0", "-m", "a b", "--message", "c"), "--message given twice: 'a b' and c",
                     id="start-short-and-long"),
        pytest.param(("log", "-n", "1", "-n", "2", "-n", "3"), "-n given 3 times: 1, 2 and 3", id="log-thrice"),
        pytest.param(("--config", "sartoris.toml", "--config", "other.toml", "status"),
                     "--config given twice: sartoris.toml and other.toml", id="global-option"),
    ],
)
def test_a_single_value_option_given_twice_is_refused_and_changes_nothing(
    args: tuple[str, ...], said: str, project: Path
) -> None:
    """click kept the last value: `status --slot 0 --slot 1` showed slot 1 only and `rollback --slot 1 --slot 0`
    rolled back slot 0. Now it is bad usage, exit 2 and one line naming both values, before anything runs."""
    (project / "php-slot1").mkdir()
    done = sartoris(*args, cwd=project)
    assert (done.returncode, done.stderr, done.stdout) == (2, f"sartoris: {said}\n", "")
    assert not (project / ".sartoris").exists()  # no lock taken, no history written


def _single_value_options() -> list[Any]:
    """Every option of every command (and of the top level) that takes one value, with the words naming its
    command: ((), "--config"), (("sync",), "--slot"), ..."""
    from typer.main import get_command

    from sartoris.cli import app

    found = []
    groups: list[tuple[tuple[str, ...], Any]] = [((), get_command(app))]
    while groups:
        words, command = groups.pop()
        for param in command.params:
            if param.param_type_name == "option" and not (param.is_flag or param.count or param.multiple):
                name = max(param.opts, key=len)
                found.append(pytest.param(words, name, id=" ".join([*words, name])))
        groups += [((*words, name), sub) for name, sub in getattr(command, "commands", {}).items()]
    return found


@pytest.mark.parametrize(("words", "option"), _single_value_options())
def test_every_single_value_option_given_twice_is_refused(
    words: tuple[str, ...], option: str, cli_main: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check is general, not a list kept by hand: each option of one value, of each command, given twice."""
    monkeypatch.chdir(tmp_path)  # where a --log-file named 8 would go, were the check missing
    needed = {("depool",): ["mw1"], ("slots", "link"): ["0", "php-1"]}.get(words, [])
    command = [option, "7", option, "8", "status"] if not words else [*words, option, "7", option, "8", *needed]
    assert cli_main(command) == 2
    assert capsys.readouterr().err == f"sartoris: {option} given twice: 7 and 8\n"


def test_options_meant_to_repeat_still_repeat(project: Path) -> None:
    """--hosts G may be given many times (the contract), -v counts, and a flag given twice is that flag: none is
    refused as given twice."""
    (project / "hosts" / "db").write_text("db1.example\n")
    done = sartoris("-v", "-v", "hosts", "--hosts", "web", "--hosts", "db", "--json", "--json", cwd=project)
    assert done.returncode == 0, done.stderr
    assert [h["host"] for h in json.loads(done.stdout)["hosts"]][-1] == "db1.example"


def test_help_answers_even_with_an_option_given_twice() -> None:
    """--help wins, as it does over other mistakes on the line."""
    done = sartoris("status", "--slot", "0", "--slot", "1", "--help")
    assert done.returncode == 0 and "Usage: sartoris status" in done.stdout


@pytest.mark.parametrize("command", ["start", "sync", "rollback", "status", "hosts", "config", "pool"])
def test_every_main_command_has_help(command: str) -> None:
    """Each command answers --help; the deploy ones carry an example."""
    done = sartoris(command, "--help")
    assert done.returncode == 0 and "Usage:" in done.stdout
    if command in ("start", "sync", "rollback", "hosts", "config"):
        assert "Example" in done.stdout


@pytest.mark.parametrize(
    ("command", "said"),
    [
        pytest.param("start", "kept in the lock", id="start"),
        pytest.param("sync", "the release tag's message", id="sync"),
        pytest.param("rollback", "a rollback makes no tag", id="rollback"),
        pytest.param("depool", "the depool in the history", id="depool"),
        pytest.param("pool", "the pool change in the history", id="pool"),
    ],
)
def test_each_commands_message_option_says_what_it_does_there(command: str, said: str) -> None:
    """-m's help said "kept with the run in the history (and a sync's tag)" on start, rollback, depool and pool too,
    which make no tag (and the last two no run): each command's -m help says where the message goes there."""
    from typer.main import get_command

    from sartoris.cli import app

    group = get_command(app)
    option = next(p for p in group.commands[command].params if "--message" in p.opts)  # type: ignore[attr-defined]
    assert said in str(option.help) and "a sync's tag" not in str(option.help)


def test_hosts_prints_the_resolved_inventory(project: Path) -> None:
    """`hosts` expands ranges and keeps labels as written."""
    done = sartoris("hosts", "--json", cwd=project)
    assert done.returncode == 0, done.stderr
    labels = [h["host"] for h in json.loads(done.stdout)["hosts"]]
    assert labels == ["127.0.0.1:1", "web01.example:2222", "web02.example:2222", "web03.example:2222"]


def test_a_host_file_path_in_the_config_is_read_from_the_config_files_folder(project: Path) -> None:
    """`hosts = ["inventory/web"]` names the file beside sartoris.toml from any folder, as every relative path in
    the file does; a file of that name under the current folder is not it. A path typed with --hosts is the
    operator's, from the current folder. A `{slot}` in `hosts` with no slot known asks for --slot."""
    (project / "inventory").mkdir()
    (project / "inventory" / "web").write_text("web7.example\n")
    toml = project / "sartoris.toml"
    toml.write_text(toml.read_text().replace('hosts = ["web"]', 'hosts = ["inventory/web"]'))
    inside = project / "php-slot0" / "inventory"
    inside.mkdir()
    (inside / "web").write_text("wrong.example\n")
    for folder in (project, project / "php-slot0", inside):
        done = sartoris("hosts", cwd=folder)
        assert (done.returncode, done.stdout) == (0, "web7.example\n"), (folder, done.stderr)
    typed = sartoris("hosts", "--hosts", "inventory/web", cwd=project / "php-slot0")
    assert (typed.returncode, typed.stdout) == (0, "wrong.example\n"), typed.stderr
    toml.write_text(toml.read_text().replace('hosts = ["inventory/web"]', 'hosts = ["web{slot}"]'))
    (project / "php-slot1").mkdir()  # two slots: none is inferred outside them
    done = sartoris("hosts", cwd=project)
    assert done.returncode == 2 and "[deploy] hosts uses {slot}: pass --slot N" in done.stderr, done.stderr


def test_config_says_an_unset_fetch_url_means_publish_url_and_reads_a_file_with_a_bom(project: Path) -> None:
    """`fetch_url = (unset)` did not say what the hosts fetch from; a config with a byte-order mark, which every
    other command reads, made `config` fail."""
    config = project / "sartoris.toml"
    config.write_text("\ufeff" + config.read_text())
    done = sartoris("config", cwd=project)
    assert done.returncode == 0, done.stderr
    assert "fetch_url = (unset)  # default: the hosts fetch from publish_url" in done.stdout


def test_config_shows_values_and_where_they_came_from(project: Path) -> None:
    """`config --json` lists every key with its effective value and whether the file or the default set it."""
    done = sartoris("config", "--json", cwd=project)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    settings = {(s["section"], s["key"]): s for s in document["settings"]}
    assert settings[("deploy", "name")]["value"] == "app"
    assert settings[("deploy", "name")]["source"].endswith("sartoris.toml")
    assert settings[("fanout", "concurrency")] == {
        "section": "fanout",
        "key": "concurrency",
        "value": 100,
        "source": "default",
    }
    assert settings[("fanout", "max_failures")]["value"] == "5%"
    assert document["found_by"].startswith("nearest sartoris.toml")
    # a relative publish path as runs use it (from the config's folder), as the other paths are shown, not as written
    assert settings[("deploy", "publish_url")]["value"] == str(project / "publish" / "php-slot{slot}.git")


def test_completion_script_generates() -> None:
    """Typer's shell completion script is available for bash."""
    done = sartoris("--show-completion", "bash")
    assert done.returncode == 0 and "_sartoris_completion" in done.stdout


def _with_home(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Sartoris run with `home` as $HOME (where completion is installed) and `env` added."""
    return subprocess.run(
        [sys.executable, str(ROOT / "sartoris.py"), *args],
        capture_output=True, text=True, timeout=60, check=False, env={**os.environ, "HOME": str(home), **env},
    )


@pytest.mark.parametrize("shell", ["nosuchshell", "Bash", "sync"])
def test_completion_for_a_shell_it_has_none_for_is_refused_and_writes_nothing(tmp_path: Path, shell: str) -> None:
    """`--install-completion nosuchshell` took the word for nothing and installed the completion of the shell it
    ran in, writing ~/.bashrc; `--show-completion zsh` printed bash's script. An unknown shell is refused: one
    line, exit 2, nothing written."""
    for option in ("--install-completion", "--show-completion"):
        done = _with_home(tmp_path, option, shell)
        assert done.returncode == 2 and done.stdout == "", done
        assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"sartoris: {option}: ") and shell in done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "read_as"),
    [
        pytest.param(["--install-completion"], ["--install-completion="], id="bare-last"),
        pytest.param(["--show-completion", "-v", "log"], ["--show-completion=", "-v", "log"], id="bare-then-option"),
        pytest.param(["--install-completion", "fish"], ["--install-completion", "fish"], id="shell-named"),
        pytest.param(["--config", "--show-completion", "log"], ["--config", "--show-completion", "log"], id="a-value"),
        pytest.param(["log", "--install-completion"], ["log", "--install-completion"], id="after-the-command"),
    ],
)
def test_a_completion_option_given_no_shell_means_the_shell_this_runs_in(args: list[str], read_as: list[str]) -> None:
    """A bare --install-completion or --show-completion among the top level's options gets an empty shell name (the
    shell this runs in); a word after it is its shell, and what is another option's value or the command's is left
    alone."""
    from sartoris.completion import shell_optional

    assert shell_optional(args, {"--config", "--install-completion", "--show-completion"}) == read_as


def test_completion_is_for_the_shell_named(tmp_path: Path) -> None:
    """A shell named is the one completion is shown or installed for, not the shell Sartoris runs in; and the
    script, once loaded, gets its answers (Typer's completion classes still serve it)."""
    shown = _with_home(tmp_path, "--show-completion", "zsh")
    assert shown.returncode == 0 and shown.stdout.startswith("#compdef sartoris")
    installed = _with_home(tmp_path, "--install-completion", "fish")
    assert installed.returncode == 0 and "fish completion installed" in installed.stdout
    assert [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()] == [
        ".config/fish/completions/sartoris.fish"
    ]
    asked = _with_home(tmp_path, _SARTORIS_COMPLETE="complete_bash", COMP_WORDS="sartoris sy", COMP_CWORD="1")
    assert asked.returncode == 0 and asked.stdout.split() == ["sync"]


def test_piped_output_has_no_control_characters_and_json_logs_parse(project: Path) -> None:
    """Without a terminal, stderr carries plain lines (no ANSI); with --log-format json every line parses, the
    progress included."""
    (project / "hosts" / "one").write_text("127.0.0.1:1\n")
    plain = sartoris("status", "--slot", "0", "--hosts", "one", cwd=project)
    assert plain.returncode == 5
    assert "\x1b[" not in plain.stderr and "\r" not in plain.stderr
    assert "status: 1/1 done" in plain.stderr
    logged = sartoris("--log-format", "json", "-v", "status", "--slot", "0", "--hosts", "one", "--json", cwd=project)
    events = [json.loads(line) for line in logged.stderr.splitlines()]  # every line: progress comes as events
    assert events and all("event" in e and "level" in e for e in events)
    assert {(e["phase"], e["done"], e["total"]) for e in events if e["event"] == "progress"} >= {("status", 1, 1)}
    assert json.loads(logged.stdout)["hosts"][0]["state"] == "unreachable"


def test_log_file_keeps_every_event(project: Path, tmp_path: Path) -> None:
    """--log-file gets debug events (per host) as JSON lines even when stderr is quiet, and, last, how the command
    ended (its exit code, and the error line of a refused one)."""
    (project / "hosts" / "one").write_text("127.0.0.1:1\n")
    log_file = tmp_path / "run.log"
    done = sartoris("--log-file", str(log_file), "-q", "status", "--slot", "0", "--hosts", "one", cwd=project)
    assert done.returncode == 5
    assert done.stderr == ""
    events = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert events[-1]["event"] == "command_ended" and events[-1]["exit"] == 5
    refused = sartoris("--log-file", str(log_file), "-q", "sync", "--slot", "7", "--hosts", "one", cwd=project)
    assert refused.returncode == 2
    last = json.loads(log_file.read_text().splitlines()[-1])
    assert (last["event"], last["exit"]) == ("command_ended", 2) and "no such slot" in last["error"]


def test_line_progress_writes_a_line_per_tenth_without_escapes(tmp_path: Path) -> None:
    """LineProgress prints about ten plain lines for a phase, whatever its size."""
    out = (tmp_path / "progress").open("w+")
    progress = LineProgress(out)
    progress.phase("fetch", 1000)
    for n in range(1000):
        progress.started(f"h{n}")
        progress.finished(f"h{n}", ok=n % 100 != 0)
    progress.end()
    out.seek(0)
    lines = out.read().splitlines()
    assert 9 <= len(lines) <= 12
    assert lines[-1].startswith("fetch: 1000/1000 done (10 failed), 0 running")
    assert not any("\x1b" in line or "\r" in line for line in lines)


def test_hosts_a_stopped_phase_passed_over_are_neither_done_nor_failed(tmp_path: Path) -> None:
    """An interrupted switch phase read "12/12 done, 7 failed" while the report said 0 failed, 7 not switched; then
    "3/3 done, 1 failed, 1 not run": a host passed over is not done either, so done, not run and running add up to
    the phase's hosts, and the failed are shown as part of the done."""
    out = (tmp_path / "progress").open("w+")
    progress = LineProgress(out)
    progress.phase("switch", 3)
    progress.finished("a", ok=True)
    progress.finished("b", ok=False, not_run=True)
    progress.finished("c", ok=False)
    progress.end()
    out.seek(0)
    assert out.read().splitlines()[-1].startswith("switch: 2/3 done (1 failed), 1 not run, 0 running")


def test_a_phase_stopped_without_waiting_counts_its_unfinished_hosts_as_not_run(tmp_path: Path) -> None:
    """A fetch cut short by Ctrl-C cancels the hosts in flight and never starts the rest: its last line said
    "1/4 done, 0 failed, 2 running" though nothing ran any more, and left the fourth host out; they are not run."""
    out = (tmp_path / "progress").open("w+")
    progress = LineProgress(out)
    progress.phase("fetch", 4)
    for host in ("a", "b", "c"):
        progress.started(host)
    progress.finished("a", ok=True)
    progress.end(stopped=True)
    out.seek(0)
    assert out.read().splitlines()[-1].startswith("fetch: 1/4 done (0 failed), 3 not run, 0 running")


def test_live_progress_redraws_in_place(tmp_path: Path) -> None:
    """LiveProgress redraws one line with carriage return + erase and ends the phase with a newline."""
    out = (tmp_path / "progress").open("w+", newline="")
    progress = LiveProgress(out)
    progress.phase("switch", 2)
    progress.started("a")
    progress.finished("a", ok=True)
    progress.end()
    out.seek(0)
    text = out.read()
    assert text.startswith("\r\x1b[K") and text.endswith("\n")
    assert "switch: 1/2 done" in text


def test_a_failing_json_command_still_prints_one_json_object(project: Path) -> None:
    """Under --json stdout stays one JSON object even when the command fails before its report."""
    done = sartoris("status", "--json", "--slot", "0", "--hosts", "nosuch", cwd=project)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("sartoris: ")
    document = json.loads(done.stdout)
    assert document == {"error": done.stderr[len("sartoris: ") :].strip(), "exit": 2}
    plain = sartoris("status", "--slot", "0", "--hosts", "nosuch", cwd=project)
    assert plain.returncode == 2 and plain.stdout == ""


def test_an_error_of_several_lines_is_said_in_one(capsys: pytest.CaptureFixture[str]) -> None:
    """git's multi-line stderr inside an error still reaches the operator as one stderr line."""
    from sartoris.cli import _say

    _say("cannot push:\n  fatal: 'x' does not appear to be a git repository\n")
    err = capsys.readouterr().err
    assert err == "sartoris: cannot push: fatal: 'x' does not appear to be a git repository\n"


def test_slot_in_any_value_is_the_commands_slot(project: Path) -> None:
    """`{slot}` in [deploy] hosts names the slot's own group (status --slot 1 reads hosts/web1), and `hosts`
    run inside a slot's working copy uses that slot."""
    config = project / "sartoris.toml"
    config.write_text(config.read_text().replace('hosts = ["web"]', 'hosts = ["web{slot}"]'))
    (project / "hosts" / "web1").write_text("127.0.0.1:1\n")
    (project / "hosts" / "web0").write_text("127.0.0.2:1\n127.0.0.3:1\n")
    (project / "php-slot1").mkdir()
    done = sartoris("status", "--slot", "1", "--json", cwd=project)
    assert done.returncode == 5, done.stderr  # the one host refuses connections
    assert [h["host"] for h in json.loads(done.stdout)["hosts"]] == ["127.0.0.1:1"]
    listed = sartoris("hosts", "--json", cwd=project / "php-slot0")
    assert listed.returncode == 0, listed.stderr
    assert [h["host"] for h in json.loads(listed.stdout)["hosts"]] == ["127.0.0.2:1", "127.0.0.3:1"]


def test_status_of_a_slot_unknown_here_is_bad_input_not_a_census(project: Path) -> None:
    """`status --slot 7`, a slot with no working copy on this deploy host and no deploy of it in the history, asked
    every host and reported them all missing (or unreachable), exit 5. It is bad input: one line, exit 2, no host
    asked. A slot whose working copy is gone but whose deploys are in the history is still asked about."""
    from sartoris.results import HostResult, Outcome, Phase, SyncReport
    from sartoris.state import History

    (project / "hosts" / "one").write_text("127.0.0.1:1\n")
    done = sartoris("status", "--slot", "7", "--hosts", "one", "--json", cwd=project)
    assert done.returncode == 2, done
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("sartoris: slot 7 is unknown here: ")
    assert json.loads(done.stdout)["exit"] == 2
    report = SyncReport(7, "t7", "a" * 40, Outcome.OK, (HostResult("127.0.0.1:1", True, Phase.DONE),))
    History(project / ".sartoris").record("sync", report, "", 0.0)
    asked = sartoris("status", "--slot", "7", "--hosts", "one", "--json", cwd=project)
    assert asked.returncode == 5 and json.loads(asked.stdout)["tag"] == "t7", asked  # the host refuses connections


@pytest.mark.parametrize("command", ["finish", "abort"])
def test_finish_or_abort_of_a_slot_unknown_here_is_bad_input(project: Path, command: str) -> None:
    """`finish --slot 42` and `abort --slot 42`, a slot with no working copy, lock or history here, said "no deploy
    in progress" (exit 4) and made a history; like start and status, they say the slot is unknown: exit 2, one
    line, nothing made. A slot whose working copy is gone but whose lock is held still gets to its lock."""
    done = sartoris(command, "--slot", "42", cwd=project)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("sartoris: slot 42 is unknown here: ")
    assert not (project / ".sartoris").exists()
    (project / ".sartoris" / "locks").mkdir(parents=True)
    (project / ".sartoris" / "locks" / "slot42.lock").write_text('{"command": "sync", "user": "someone"}')
    held = sartoris(command, "--slot", "42", cwd=project)
    assert held.returncode == 4 and "no deploy in progress" in held.stderr, held.stderr


def test_a_depool_command_naming_the_slot_is_refused_for_a_standalone_depool(project: Path) -> None:
    """`depool HOST...` runs for no slot, so a command template with `{slot}` cannot be filled: exit 2, one line."""
    config = project / "sartoris.toml"
    config.write_text(config.read_text() + '\n[depool]\ncommand = "confctl {host} pool=php{slot}"\n')
    done = sartoris("depool", "web01.example", cwd=project)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "[depool] command uses {slot}: pass --slot N" in done.stderr


def test_a_depool_command_naming_the_slot_gets_the_slot_given(project: Path) -> None:
    """With --slot (or inside a slot's working copy) `{slot}` is filled: the command runs with the number."""
    seen = project / "seen"
    config = project / "sartoris.toml"
    command = f"sh -c 'echo $0 >> {seen}' {{host}}:php{{slot}}"
    config.write_text(config.read_text() + f'\n[depool]\ncommand = "{command}"\n')
    done = sartoris("depool", "--slot", "2", "web01.example:2222", cwd=project)
    assert done.returncode == 0, done.stderr
    inside = sartoris("depool", "web02.example:2222", cwd=project / "php-slot0")
    assert inside.returncode == 0, inside.stderr
    assert seen.read_text().split() == ["web01.example:php2", "web02.example:php0"]


def test_log_of_an_unknown_slot_or_of_a_tag_from_another_slot_is_bad_input(project: Path) -> None:
    """`log --slot 7` (no such slot here) listed the pool changes and exited 0, as if slot 7 had a history of none,
    and `log TAG --slot 1` showed slot 0's runs of TAG; both are now exit 2, one line saying why, as `status
    --slot 7` is. The slot of the current folder narrows nothing it was not asked to."""
    from sartoris.state import History

    (project / "php-slot1").mkdir()
    History(project / ".sartoris").record_event("sync", 0, "", {"hosts": []}, tag="app-slot0-t1", commit="c" * 40)
    unknown = sartoris("log", "--slot", "7", cwd=project)
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1, unknown.stderr
    assert "slot 7 is unknown here" in unknown.stderr
    elsewhere = sartoris("log", "app-slot0-t1", "--slot", "1", cwd=project)
    assert elsewhere.returncode == 2 and "was deployed in slot 0, not slot 1" in elsewhere.stderr, elsewhere.stderr
    for known in (("--slot", "0"), ("--slot", "1"), ("app-slot0-t1", "--slot", "0")):
        assert sartoris("log", *known, cwd=project).returncode == 0, known
    assert sartoris("log", "app-slot0-t1", cwd=project / "php-slot1").returncode == 0


def test_reading_commands_create_no_state_on_the_deploy_host(project: Path) -> None:
    """`log`, `log TAG` and `slots` in a folder no run has used yet answer from no history, and leave none."""
    assert sartoris("log", "--json", cwd=project).stdout.strip() == '{"entries": []}'
    missing = sartoris("log", "no-such-tag", cwd=project)
    assert missing.returncode == 2 and "no deploy of tag 'no-such-tag'" in missing.stderr
    assert sartoris("slots", cwd=project).returncode == 0
    assert not (project / ".sartoris").exists()


@pytest.mark.parametrize("command", ["hosts", "--version", "--help", "sync --help"])
def test_a_report_lost_on_a_full_disk_is_said_and_is_no_success(project: Path, command: str) -> None:
    """stdout on a full disk (ENOSPC) lost the report, and the command exited 0 saying "stdout's reader is gone":
    `sartoris sync --json > report.json` left an empty file behind a success. Now one stderr line and exit 1 (a run's
    own non-zero code is kept); a reader that left (`| head -1`) still costs nothing. `--version` and `--help` said
    "unexpected OSError"."""
    with open("/dev/full", "w") as full:
        lost = subprocess.run(
            [sys.executable, str(ROOT / "sartoris.py"), *command.split()], stdout=full, stderr=subprocess.PIPE,
            text=True, cwd=project, timeout=60, check=False,
        )
    said = "sartoris: the report was not printed: stdout: No space left on device\n"
    assert lost.returncode == 1 and lost.stderr == said
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(ROOT / 'sartoris.py'))} {command}"
    left = subprocess.run(
        f"{command} | head -c 1; exit ${{PIPESTATUS[0]}}",
        shell=True, executable="/bin/bash", capture_output=True, text=True, cwd=project, timeout=60, check=False,
    )
    assert left.returncode == 0, left.stderr


@pytest.mark.parametrize(
    ("command", "closed", "code"),
    [
        pytest.param("hosts", ">&-", 0, id="stdout-closed"),
        pytest.param("hosts --json", "2>&-", 0, id="stderr-closed"),
        pytest.param("sync --slot 99 --json", ">&-", 2, id="stdout-closed-bad-input"),
        pytest.param("sync --slot 99", "2>&- <&-", 2, id="stderr-and-stdin-closed-bad-input"),
    ],
)
def test_a_closed_standard_stream_costs_only_its_output(project: Path, command: str, closed: str, code: int) -> None:
    """With stdout or stderr closed by the caller (`>&-`), every command exited 1 ("unexpected AttributeError", or
    a traceback): a successful deploy looked failed to the cron job that ran it. The closed stream's output is
    dropped; the exit code and the other stream are as usual."""
    launcher = f"{shlex.quote(sys.executable)} {shlex.quote(str(ROOT / 'sartoris.py'))}"
    done = subprocess.run(
        f"{launcher} {command} {closed}", shell=True, executable="/bin/bash", capture_output=True, text=True,
        cwd=project, timeout=60, check=False,
    )
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr and "unexpected" not in done.stderr
    if closed.startswith(">&-") and code == 2:
        assert done.stderr.count("\n") == 1 and "no such slot" in done.stderr
    if command == "hosts --json":
        assert json.loads(done.stdout)["hosts"]


def test_a_message_with_control_characters_is_refused(project: Path) -> None:
    """An escape sequence in -m was echoed raw in other operators' lock refusals, `status` and `log`."""
    for message in ("train \x1b[2J", "train \u009b2J"):  # ESC [, and its one-character C1 form (CSI)
        done = sartoris("start", "-m", message, cwd=project)
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and "control characters" in done.stderr


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["start", "--no-remote"], id="start"),
        pytest.param(["sync", "--json"], id="sync"),
        pytest.param(["rollback"], id="rollback"),
        pytest.param(["depool", "web01.example:2222"], id="depool"),
        pytest.param(["pool", "web01.example:2222"], id="pool"),
    ],
)
def test_a_message_that_is_not_utf8_is_refused_before_anything(project: Path, command: list[str]) -> None:
    """-m bytes that are not UTF-8 (bash `$'caf\\xe9'`) crashed with "unexpected UnicodeEncodeError" (exit 1) after
    start took the lock, or after a sync tagged, pushed and fetched; they are refused up front like control
    characters: exit 2, one line, no lock, no history."""
    done = sartoris(*command, "--slot", "0", "-m", os.fsdecode(b"caf\xe9"), cwd=project)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "-m: a message must be UTF-8 text" in done.stderr
    assert not (project / ".sartoris").exists()


def test_a_log_tag_that_is_not_utf8_is_no_tag_of_the_history(project: Path) -> None:
    """`sartoris log $'t\\xff'` crashed with "unexpected UnicodeEncodeError" (exit 1): no tag holds such bytes,
    so it is bad input, said in one line (exit 2)."""
    done = sartoris("log", "--slot", "0", os.fsdecode(b"t\xff"), cwd=project)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "no deploy of tag 't\\udcff' in the history (it holds bytes that are not UTF-8)" in done.stderr


def test_a_deleted_current_folder_is_said_in_words_and_help_still_works(project: Path) -> None:
    """Run from a folder deleted under the shell, every command said "unexpected FileNotFoundError" (exit 1); it
    says the folder is gone (exit 2, one line), and --version and --help, which need no folder, still work."""
    launcher = f"{shlex.quote(sys.executable)} {shlex.quote(str(ROOT / 'sartoris.py'))}"
    config = shlex.quote(str(project / "sartoris.toml"))
    for args, code in (
        (f"--config {config} status --slot 0", 2), (f"--config {config} config", 2), ("--version", 0),
        ("--help", 0), ("status --help", 0),
    ):
        done = subprocess.run(
            f"mkdir gone && cd gone && rmdir ../gone && {launcher} {args}", shell=True, executable="/bin/bash",
            capture_output=True, text=True, cwd=project, timeout=60, check=False,
        )
        assert done.returncode == code, (args, done.stderr)
        if code == 2:
            assert done.stderr == "sartoris: the current folder no longer exists (deleted?): cd to another\n"


@pytest.mark.parametrize(
    "where",
    [["slots", "link", "0", "php-x", "--json"], ["slots", "--json", "link", "0", "php-x"]],
    ids=["after", "before"],
)
def test_slots_link_prints_json_when_asked(project: Path, where: list[str]) -> None:
    """`slots link` printed its text line under --json, given before or after `link`."""
    done = sartoris(*where, cwd=project)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"link": "php-x", "slot": 0, "target": "php-slot0", "moved_from": None}
    assert (project / "php-x").resolve() == (project / "php-slot0").resolve()


def test_dash_h_is_help() -> None:
    """`sartoris -h` said "No such option: -h"; it is --help, as in most tools."""
    done = sartoris("-h")
    assert done.returncode == 0 and done.stdout.startswith("Usage: sartoris")


def test_a_hooks_dir_written_in_the_config_that_does_not_exist_is_refused(project: Path) -> None:
    """A misspelt hooks_dir meant "no hooks", the pre-sync gate included, without a word. Written in the file, a
    missing folder is a mistake (exit 2, before anything); left to its default, it still means no hooks."""
    config = project / "sartoris.toml"
    config.write_text(config.read_text().replace('hosts = ["web"]', 'hosts = ["web"]\nhooks_dir = "hookz"'))
    done = sartoris("sync", "--slot", "0", "--dry-run", cwd=project)
    assert done.returncode == 2 and "hooks_dir" in done.stderr and "does not exist" in done.stderr, done.stderr


def test_canaries_none_of_which_is_targeted_are_refused_not_skipped(project: Path) -> None:
    """A canary group whose hosts are spelt otherwise than in the targeted groups (`web01.example` for
    `web01.example:2222`) skipped the canary phase without a word, the whole fleet switching at once. For the
    config's own hosts it is refused (exit 2, before anything); for hosts chosen with --hosts it is said."""
    config = project / "sartoris.toml"
    config.write_text(config.read_text().replace('hosts = ["web"]', 'hosts = ["web"]\ncanaries = ["canary"]'))
    (project / "hosts" / "canary").write_text("web01.example\n")
    refused = sartoris("sync", "--slot", "0", "--dry-run", cwd=project)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "[deploy] canaries (canary): none of their hosts is among [deploy] hosts" in refused.stderr
    chosen = sartoris("sync", "--slot", "0", "--dry-run", "--hosts", "web", cwd=project)
    assert "no_canary_targeted" in chosen.stderr and "[deploy] canaries" not in chosen.stderr, chosen.stderr
    (project / "hosts" / "canary").write_text("web01.example:2222\n")
    spelt_alike = sartoris("sync", "--slot", "0", "--dry-run", cwd=project)
    assert "[deploy] canaries" not in spelt_alike.stderr and "no_canary" not in spelt_alike.stderr


def test_pool_caught_up_with_a_host_named_is_refused(project: Path) -> None:
    """`pool --caught-up mw4` ignored mw4 and looked at every depooled host: the operator meant to narrow it."""
    done = sartoris("pool", "--caught-up", "web01.example:2222", "--slot", "0", cwd=project)
    assert done.returncode == 2 and "--caught-up takes no HOST" in done.stderr and "--hosts" in done.stderr


def test_a_missing_ssh_config_file_is_named_as_the_setting_it_is(project: Path) -> None:
    """`[ssh] config_file` naming no file said "/x: [Errno 2] No such file or directory: '/x'", naming neither the
    setting nor what was wrong in words: now the key, the file and why."""
    config = project / "sartoris.toml"
    config.write_text(config.read_text().replace("[ssh]\n", '[ssh]\nconfig_file = "/nonexistent/ssh_config"\n'))
    done = sartoris("status", "--slot", "0", cwd=project)
    assert done.returncode == 2, done.stderr
    said = "sartoris: [ssh] config_file /nonexistent/ssh_config: cannot read: No such file or directory\n"
    assert done.stderr == said


def test_a_state_folder_that_is_a_file_is_refused_not_read_as_no_history(project: Path) -> None:
    """With `.sartoris` a plain file, `log` said "no history yet" (exit 0) and `status` compared the fleet with no
    release, while `sync` refused it: every reader now refuses it too, saying what to do (exit 4)."""
    (project / ".sartoris").write_text("")
    for command in (("log",), ("slots",)):
        done = sartoris(*command, cwd=project)
        assert done.returncode == 4 and "is not a folder" in done.stderr, (command, done.stderr)
