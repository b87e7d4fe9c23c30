"""Tests for sartoris.config: reading sartoris.toml, its defaults and checks, and finding the file."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from sartoris.config import (
    Config,
    DepoolSettings,
    FanoutSettings,
    SshSettings,
    expand_command,
    find_config,
    load_config,
    parse_config,
)
from sartoris.errors import ConfigError
from sartoris.policy import FailureBudget

BASE = Path("/etc/sartoris")
CONFIG_PATH = BASE / "sartoris.toml"
MINIMAL = """
[deploy]
name = "mediawiki"
remote_root = "/srv/deployment/mediawiki"
publish_url = "/srv/git/mediawiki/php-slot{slot}.git"
"""


def parse(extra: str = "", deploy: str = "") -> Config:
    """Parse MINIMAL with extra [deploy] keys and extra sections appended."""
    return parse_config(MINIMAL + deploy + "\n" + extra, CONFIG_PATH)


def with_line(section: str, line: str) -> str:
    """MINIMAL with line added to section; a [deploy] line replaces the same key."""
    key = line.split("=")[0].strip()
    text = "\n".join(kept for kept in MINIMAL.splitlines() if not kept.startswith(f"{key} ="))
    return f"{text}\n{line}\n" if section == "deploy" else f"{text}\n[{section}]\n{line}\n"


def error_of(text: str) -> str:
    """The ConfigError message parsing text gives."""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, CONFIG_PATH)
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- defaults ---------------------------------------------------------------------------------------------


def test_deploy_defaults() -> None:
    """Only name, remote_root and publish_url are required; the rest of [deploy] has defaults."""
    deploy = parse().deploy
    assert deploy.name == "mediawiki"
    assert deploy.checkout_root == BASE
    assert deploy.slot_prefix == "php-slot"
    assert deploy.remote_root == "/srv/deployment/mediawiki"
    assert deploy.publish_url == "/srv/git/mediawiki/php-slot{slot}.git"
    assert deploy.fetch_url is None
    assert deploy.hosts == ()
    assert deploy.hooks_dir == BASE / "hooks"
    assert deploy.keep_releases == 3
    assert deploy.umask == "022"


def test_fanout_defaults() -> None:
    """[fanout] defaults to 100 hosts, 32 fetches, 10 s / 300 s, 5% failures and 2 retries."""
    fanout = parse().fanout
    assert fanout == FanoutSettings()
    assert fanout.concurrency == 100
    assert fanout.fetch_concurrency == 32
    assert fanout.connect_timeout == 10.0
    assert fanout.command_timeout == 300.0
    assert fanout.max_failures == FailureBudget(percent=5.0)
    assert fanout.retries == 2


def test_ssh_defaults() -> None:
    """[ssh] leaves user, port and keys to OpenSSH (~/.ssh/config), ~/.ssh/known_hosts, keepalive 15 s, strict keys."""
    ssh = parse().ssh
    assert ssh == SshSettings()
    assert ssh.user is None
    assert ssh.port is None
    assert ssh.jump_host is None and ssh.config_file is None
    assert ssh.identity_files == ()
    assert ssh.known_hosts == Path("~/.ssh/known_hosts").expanduser()
    assert ssh.keepalive_interval == 15.0
    assert ssh.accept_new_host_keys is False


def test_default_port_for_host_lines_without_one() -> None:
    """A host line without :port means [ssh] port, else 22 (for dropping duplicates like mw1 and mw1:22)."""
    assert parse().ssh.default_port == 22
    assert parse("[ssh]\nport = 2222\n").ssh.default_port == 2222


def test_for_slot_fills_slot_into_every_value_that_can_hold_it() -> None:
    """The contract: `{slot}` in a value is the slot number; paths stay absolute, other placeholders stay put."""
    config = parse(
        '[ssh]\nknown_hosts = "kh/slot{slot}"\nidentity_files = ["keys/{slot}.key"]\n'
        '[depool]\ncommand = "confctl {host} pool=php{slot}"\npool_command = "confctl {host} pool=php{slot} on"\n',
        deploy='hosts = ["app{slot}"]\ncanaries = ["canary{slot}"]\nhooks_dir = "hooks/{slot}"\n'
        'fetch_url = "git://deploy/php-slot{slot}.git"\n',
    ).for_slot(3)
    assert config.deploy.hosts == ("app3",) and config.deploy.canaries == ("canary3",)
    assert config.deploy.hooks_dir == BASE / "hooks" / "3"
    assert config.deploy.publish_url == "/srv/git/mediawiki/php-slot3.git"
    assert config.fetch_url(3) == "git://deploy/php-slot3.git"
    assert config.ssh.known_hosts == BASE / "kh" / "slot3" and config.ssh.identity_files == (BASE / "keys" / "3.key",)
    assert config.depool.command == ("confctl", "{host}", "pool=php3")
    assert config.depool.pool_command == ("confctl", "{host}", "pool=php3", "on")
    plain = parse()
    expected = replace(plain.deploy, publish_url="/srv/git/mediawiki/php-slot0.git")  # the one {slot} in it
    assert plain.for_slot(0) == replace(plain, deploy=expected)


def test_depool_defaults() -> None:
    """[depool] has no commands, a 30 s timeout and no cap on depooled hosts."""
    depool = parse().depool
    assert depool == DepoolSettings()
    assert depool.command is None
    assert depool.pool_command is None
    assert depool.timeout == 30.0
    assert depool.max_depooled is None


def test_derived_folders() -> None:
    """base_dir, hosts_dir and state_dir sit beside the config file."""
    config = parse()
    assert config.path == CONFIG_PATH
    assert config.base_dir == BASE
    assert config.hosts_dir == BASE / "hosts"
    assert config.state_dir == BASE / ".sartoris"


# --- a full file ------------------------------------------------------------------------------------------

FULL = """
[deploy]
name = "mediawiki"
checkout_root = "checkouts/{slot}"
slot_prefix = "slot-"
remote_root = "/srv/{slot}/mediawiki"
publish_url = "ssh://deploy.example/srv/git/php-slot{slot}.git"
fetch_url = "git://deploy.example/mediawiki/php-slot{slot}.git"
hosts = ["mediawiki-installation", "canaries"]
hooks_dir = "/opt/hooks"
keep_releases = 5
umask = "0027"

[fanout]
concurrency = 50
fetch_concurrency = 8
connect_timeout = 2.5
command_timeout = 60
max_failures = 3
retries = 0

[ssh]
user = "deploy"
port = 2222
identity_files = ["~/.ssh/id_ed25519", "keys/deploy"]
known_hosts = "known_hosts"
keepalive_interval = 0
accept_new_host_keys = true

[depool]
command = "confctl select 'name={host}' set/pooled=no"
pool_command = "confctl select name={host} set/pooled=yes"
timeout = 5
max_depooled = "10%"
"""


def test_full_file() -> None:
    """Every key is read, ints are accepted where seconds are expected, and paths are made absolute."""
    config = parse_config(FULL, CONFIG_PATH)
    assert config.deploy.checkout_root == BASE / "checkouts" / "{slot}"
    assert config.deploy.hosts == ("mediawiki-installation", "canaries")
    assert config.deploy.hooks_dir == Path("/opt/hooks")
    assert config.deploy.keep_releases == 5
    assert config.deploy.umask == "0027"
    assert config.fanout == FanoutSettings(50, 8, 2.5, 60.0, FailureBudget(count=3), 0)
    assert isinstance(config.fanout.command_timeout, float)
    assert config.ssh == SshSettings(
        user="deploy",
        port=2222,
        identity_files=(Path("~/.ssh/id_ed25519").expanduser(), BASE / "keys" / "deploy"),
        known_hosts=BASE / "known_hosts",
        keepalive_interval=0.0,
        accept_new_host_keys=True,
    )
    assert config.depool == DepoolSettings(
        command=("confctl", "select", "name={host}", "set/pooled=no"),
        pool_command=("confctl", "select", "name={host}", "set/pooled=yes"),
        timeout=5.0,
        max_depooled=FailureBudget(percent=10.0),
    )


def test_slot_substitution() -> None:
    """{slot} is replaced in checkout_root, remote_root, publish_url and fetch_url."""
    config = parse_config(FULL, CONFIG_PATH)
    assert config.slot_name(1) == "slot-1"
    assert config.checkout_path(1) == BASE / "checkouts" / "1" / "slot-1"
    assert config.remote_slot_path(1) == "/srv/1/mediawiki/slot-1"
    assert config.publish_url(1) == "ssh://deploy.example/srv/git/php-slot1.git"
    assert config.fetch_url(1) == "git://deploy.example/mediawiki/php-slot1.git"


def test_slot_paths_with_defaults() -> None:
    """With defaults the slot folders are php-slotN in the config folder and under remote_root."""
    config = parse()
    assert config.checkout_path(0) == BASE / "php-slot0"
    assert config.remote_slot_path(0) == "/srv/deployment/mediawiki/php-slot0"


def test_absolute_checkout_root() -> None:
    """An absolute checkout_root is used as is."""
    config = parse_config(with_line("deploy", 'checkout_root = "/srv/mw"'), CONFIG_PATH)
    assert config.checkout_path(4) == Path("/srv/mw/php-slot4")


def test_remote_slot_path_normalises_trailing_slash() -> None:
    """A trailing slash on remote_root does not double up."""
    config = parse_config(MINIMAL.replace("/srv/deployment/mediawiki", "/srv/mw/"), CONFIG_PATH)
    assert config.remote_slot_path(2) == "/srv/mw/php-slot2"


def test_negative_slot_is_refused() -> None:
    """A slot is a number >= 0."""
    with pytest.raises(ValueError):
        parse().slot_name(-1)


@pytest.mark.parametrize(
    ("folder", "slot"),
    [
        pytest.param("php-slot0", 0, id="zero"),
        pytest.param("php-slot12", 12, id="two-digits"),
        pytest.param("php-slot", None, id="no-number"),
        pytest.param("php-slotx", None, id="not-a-number"),
        pytest.param("php-1.20wmf1", None, id="version-folder"),
        pytest.param("php-slot\u0661", None, id="non-ascii-digit"),
        pytest.param("php-slot9999", 9999, id="largest"),
        pytest.param("php-slot" + "9" * 20, None, id="past-9999"),  # once an SQLite overflow in `log`, exit 1
    ],
)
def test_slot_of(folder: str, slot: int | None) -> None:
    """slot_of() reads the slot number back from a slot folder name."""
    assert parse().slot_of(folder) == slot


# --- publish_url and fetch_url ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "resolved"),
    [
        pytest.param("ssh://deploy@host/srv/x{slot}.git", "ssh://deploy@host/srv/x3.git", id="ssh"),
        pytest.param("git://host/x{slot}.git", "git://host/x3.git", id="git"),
        pytest.param("https://host/x{slot}.git", "https://host/x3.git", id="https"),
        pytest.param("file:///srv/git/x{slot}.git", "file:///srv/git/x3.git", id="file-url"),
        pytest.param("deploy@host:srv/x{slot}.git", "deploy@host:srv/x3.git", id="scp-like"),
        pytest.param("host:/srv/x{slot}.git", "host:/srv/x3.git", id="scp-like-no-user"),
        pytest.param("/srv/git/x{slot}.git", "/srv/git/x3.git", id="absolute"),
        pytest.param("git/x{slot}.git", "/etc/sartoris/git/x3.git", id="relative"),
        pytest.param("./git/x{slot}.git", "/etc/sartoris/git/x3.git", id="dot-relative"),
        pytest.param("../git/x{slot}.git", "/etc/git/x3.git", id="parent-relative"),
        pytest.param("./a:b/x{slot}", "/etc/sartoris/a:b/x3", id="colon-after-slash-is-path"),
        pytest.param("~/git/x{slot}.git", str(Path("~/git/x3.git").expanduser()), id="home"),
    ],
)
def test_publish_and_fetch_urls(url: str, resolved: str) -> None:
    """URLs are kept as written; local paths are made absolute from the config folder; {slot} is replaced."""
    as_publish = parse_config(MINIMAL.replace("/srv/git/mediawiki/php-slot{slot}.git", url), CONFIG_PATH)
    assert as_publish.publish_url(3) == resolved
    assert as_publish.fetch_url(3) == resolved  # fetch_url defaults to publish_url
    as_fetch = parse(deploy=f'fetch_url = "{url}"\n')
    assert as_fetch.fetch_url(3) == resolved
    assert as_fetch.publish_url(3) == "/srv/git/mediawiki/php-slot3.git"


def test_relative_config_path_keeps_relative_base() -> None:
    """parse_config is pure: a relative config path gives paths relative to the same folder."""
    config = parse_config(MINIMAL.replace("/srv/git/mediawiki/", "git/"), Path("conf/sartoris.toml"))
    assert config.publish_url(0) == "conf/git/php-slot0.git"
    assert config.checkout_path(0) == Path("conf/php-slot0")


# --- errors -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        pytest.param("[fanout]\nconcurency = 3", "unknown key [fanout] concurency", id="key"),
        pytest.param('[fanout]\n"\\u001b[2Jx" = 3', "unknown key [fanout] '\\x1b[2Jx'", id="key-with-an-escape"),
        pytest.param('["\\u001b[2Jx"]\nx = 3', "unknown section ['\\x1b[2Jx']", id="section-with-an-escape"),
        pytest.param("[deploy.extra]\nx = 1", "unknown key [deploy] extra", id="subtable"),
        pytest.param("[fanot]\nconcurrency = 3", "unknown section [fanot]", id="section"),
        pytest.param("[ssh.options]\nx = 1", "unknown key [ssh] options", id="ssh-subtable"),
    ],
)
def test_unknown_names_are_errors(extra: str, message: str) -> None:
    """An unknown section or key is an error naming it."""
    assert error_of(MINIMAL + extra) == f"{CONFIG_PATH}: {message}"


def test_top_level_key_is_unknown() -> None:
    """A key outside any section is named as unknown."""
    assert error_of('name = "x"\n' + MINIMAL).startswith(f"{CONFIG_PATH}: unknown key name ")


def test_section_that_is_not_a_table() -> None:
    """A known section given as a plain value is a type error."""
    assert error_of("fanout = 3\n" + MINIMAL) == f"{CONFIG_PATH}: fanout must be a table ([fanout]), not an integer"


@pytest.mark.parametrize(
    ("section", "line", "message"),
    [
        pytest.param("fanout", "concurrency = true", "concurrency must be an integer, not a boolean", id="bool-int"),
        pytest.param("fanout", 'concurrency = "3"', "concurrency must be an integer, not a string", id="str-int"),
        pytest.param("fanout", "concurrency = 2.5", "concurrency must be an integer, not a float", id="float-int"),
        pytest.param("fanout", "retries = false", "retries must be an integer, not a boolean", id="bool-retries"),
        pytest.param(
            "fanout",
            "connect_timeout = true",
            "connect_timeout must be a number of seconds, not a boolean",
            id="bool-f",
        ),
        pytest.param(
            "fanout",
            'command_timeout = "5"',
            "command_timeout must be a number of seconds, not a string",
            id="str-f",
        ),
        pytest.param("ssh", "port = true", "port must be an integer, not a boolean", id="bool-port"),
        pytest.param("ssh", 'user = ["a"]', "user must be a string, not an array", id="list-str"),
        pytest.param("ssh", "user = 1979-05-27", "user must be a string, not a date/time", id="date-str"),
        pytest.param(
            "ssh",
            'identity_files = "~/.ssh/id"',
            "identity_files must be an array of strings, not a string",
            id="str-list",
        ),
        pytest.param(
            "ssh",
            "identity_files = [1]",
            "identity_files must be an array of non-empty strings, not one holding an integer",
            id="int-in-list",
        ),
        pytest.param(
            "ssh",
            "accept_new_host_keys = 1",
            "accept_new_host_keys must be true or false, not an integer",
            id="int-bool",
        ),
        pytest.param(
            "ssh",
            'accept_new_host_keys = "yes"',
            "accept_new_host_keys must be true or false, not a string",
            id="str-bool",
        ),
        pytest.param(
            "depool", "command = ['a', '{host}']", "command must be a string, not an array", id="list-command"
        ),
        pytest.param(
            "fanout",
            "max_failures = true",
            'max_failures must be a number of hosts or a percentage string like "5%", not a boolean',
            id="bool-budget",
        ),
        pytest.param(
            "fanout",
            "max_failures = 2.5",
            'max_failures must be a number of hosts or a percentage string like "5%", not a float',
            id="float-budget",
        ),
        pytest.param("depool", "timeout = {}", "timeout must be a number of seconds, not a table", id="table-float"),
    ],
)
def test_wrong_types(section: str, line: str, message: str) -> None:
    """A value of the wrong type is an error naming the key, the expected type and the given type."""
    assert error_of(with_line(section, line)) == f"{CONFIG_PATH}: [{section}] {message}"


def test_deploy_wrong_types() -> None:
    """[deploy] values are type-checked too (hosts must be an array, name a string)."""
    assert error_of(with_line("deploy", 'hosts = "app"')) == (
        f"{CONFIG_PATH}: [deploy] hosts must be an array of strings, not a string"
    )
    assert error_of(with_line("deploy", "name = 3")) == (
        f"{CONFIG_PATH}: [deploy] name must be a string, not an integer"
    )


@pytest.mark.parametrize("key", ["name", "remote_root", "publish_url"])
def test_missing_required_key(key: str) -> None:
    """Each required [deploy] key missing is an error naming it."""
    text = "\n".join(line for line in MINIMAL.splitlines() if not line.startswith(key))
    assert error_of(text) == f"{CONFIG_PATH}: missing required key [deploy] {key}"


def test_missing_deploy_section() -> None:
    """A file without [deploy] names the first required key."""
    assert error_of("[fanout]\nconcurrency = 3\n") == f"{CONFIG_PATH}: missing required key [deploy] name"


def test_toml_syntax_error() -> None:
    """A TOML syntax error names the file and carries tomllib's message on one line."""
    message = error_of("[deploy]\nname = \n")
    assert message.startswith(f"{CONFIG_PATH}: not valid TOML: ")
    assert "line 2" in message


def test_toml_syntax_error_multiline_string() -> None:
    """An unterminated multi-line string still gives a one-line message."""
    assert error_of('[deploy]\nname = """abc\n\n').startswith(f"{CONFIG_PATH}: not valid TOML: ")


@pytest.mark.parametrize(
    ("section", "line", "fragment"),
    [
        pytest.param("deploy", 'name = "my app"', "name must be letters, digits", id="name-space"),
        pytest.param("deploy", 'name = "-x"', "name must be letters, digits", id="name-dash"),
        pytest.param("deploy", 'name = ""', "name must be letters, digits", id="name-empty"),
        pytest.param("deploy", 'name = "a/b"', "name must be letters, digits", id="name-slash"),
        pytest.param("deploy", 'name = "a..b"', "name must not contain '..'", id="name-dotdot"),
        pytest.param("deploy", f'name = "{"a" * 201}"', "name must be at most 200 characters", id="name-too-long"),
        pytest.param("deploy", 'name = "a.lock"', "name must not contain '..' or end with", id="name-lock"),
        pytest.param("deploy", 'name = "a\\nb"', "name must not contain control characters", id="name-newline"),
        pytest.param("deploy", 'slot_prefix = "php slot"', "slot_prefix must be letters", id="prefix-space"),
        pytest.param("deploy", 'slot_prefix = "../x"', "slot_prefix must be letters", id="prefix-dots"),
        pytest.param("deploy", 'remote_root = "srv/x"', "remote_root must be an absolute path", id="remote-relative"),
        pytest.param(
            "deploy",
            'remote_root = "/srv/{slt}"',
            "remote_root must use no placeholder but {slot}",
            id="typo",
        ),
        pytest.param("deploy", 'publish_url = "-oProxyCommand=x:y"', "publish_url must not start with '-'", id="dash"),
        pytest.param("deploy", 'publish_url = ""', "publish_url must not be empty", id="publish-empty"),
        pytest.param("deploy", 'fetch_url = "-u"', "fetch_url must not start with '-'", id="fetch-dash"),
        pytest.param("deploy", 'checkout_root = ""', "checkout_root must not be empty", id="checkout-empty"),
        pytest.param("deploy", 'hooks_dir = ""', "hooks_dir must not be empty", id="hooks-empty"),
        pytest.param("deploy", "keep_releases = 0", "keep_releases must be from 1 to 100, not 0", id="keep-zero"),
        pytest.param("deploy", "keep_releases = 101", "keep_releases must be from 1 to 100, not 101", id="keep-big"),
        pytest.param("deploy", 'umask = "22"', 'umask must be a umask in octal, like "022"', id="umask-short"),
        pytest.param("deploy", 'umask = "0o22"', 'umask must be a umask in octal, like "022"', id="umask-python"),
        pytest.param("deploy", 'umask = "089"', 'umask must be a umask in octal, like "022"', id="umask-digits"),
        pytest.param("deploy", "umask = 18", "umask must be a string", id="umask-int"),
        pytest.param("deploy", 'hosts = ["app", ""]', "hosts must be an array of non-empty strings", id="hosts-empty"),
        pytest.param("fanout", "concurrency = 0", "concurrency must be at least 1, not 0", id="concurrency-zero"),
        pytest.param("fanout", "fetch_concurrency = -1", "fetch_concurrency must be at least 1", id="fetch-neg"),
        pytest.param("fanout", "connect_timeout = 0", "connect_timeout must be a number of seconds > 0", id="t-zero"),
        pytest.param("fanout", "command_timeout = -1.5", "command_timeout must be a number of seconds > 0", id="t-neg"),
        pytest.param("fanout", "command_timeout = inf", "command_timeout must be at most 604800 seconds", id="inf"),
        pytest.param("fanout", "command_timeout = 1e10", "command_timeout must be at most 604800 seconds", id="1e10"),
        pytest.param("fanout", "connect_timeout = " + "9" * 400, "connect_timeout must be at most 604800", id="huge"),
        pytest.param("deploy", "hook_timeout = 604801", "hook_timeout must be at most 604800 seconds", id="hook-week"),
        pytest.param("fanout", "command_timeout = nan", "command_timeout must be a number of seconds > 0", id="nan"),
        pytest.param("fanout", "retries = -1", "retries must be from 0 to 10, not -1", id="retries-neg"),
        pytest.param("fanout", "retries = 1024", "retries must be from 0 to 10, not 1024", id="retries-big"),
        pytest.param("fanout", 'max_failures = "101%"', "max_failures must be a number of hosts", id="budget-101"),
        pytest.param("fanout", 'max_failures = "abc"', "max_failures must be a number of hosts", id="budget-abc"),
        pytest.param("fanout", "max_failures = -1", "max_failures must be a number of hosts", id="budget-neg"),
        pytest.param("ssh", "port = 0", "port must be from 1 to 65535, not 0", id="port-zero"),
        pytest.param("ssh", "port = 65536", "port must be from 1 to 65535, not 65536", id="port-big"),
        pytest.param("ssh", 'user = "de ploy"', "user must be a login name", id="user-space"),
        pytest.param("ssh", 'user = "-oProxyCommand=x"', "user must be a login name", id="user-dash"),
        pytest.param(
            "ssh", f'user = "{"d" * 33}"', "user must be a login name of at most 32 characters", id="user-too-long"
        ),
        pytest.param("ssh", "keepalive_interval = -1", "keepalive_interval must be a number of seconds >= 0", id="ka"),
        pytest.param("ssh", 'known_hosts = ""', "known_hosts must not be empty", id="known-hosts-empty"),
        pytest.param("depool", "timeout = 0", "timeout must be a number of seconds > 0", id="depool-timeout"),
        pytest.param("depool", 'command = "confctl \'name={host}"', "command cannot be split", id="unbalanced-quote"),
        pytest.param("depool", 'command = "   "', "command must not be empty", id="blank-command"),
        pytest.param("depool", 'command = "confctl depool"', "command must contain {host}", id="no-host"),
        pytest.param("depool", 'pool_command = "x"', "pool_command must contain {host}", id="pool-no-host"),
        pytest.param("depool", 'max_depooled = "x%"', "max_depooled must be a number of hosts", id="cap-bad"),
    ],
)
def test_bad_values(section: str, line: str, fragment: str) -> None:
    """A value of the right type but out of range or unsafe is an error naming section and key."""
    assert error_of(with_line(section, line)).startswith(f"{CONFIG_PATH}: [{section}] {fragment}")


@pytest.mark.parametrize(
    ("value", "budget"),
    [
        pytest.param("0", FailureBudget(count=0), id="zero"),
        pytest.param("3", FailureBudget(count=3), id="int"),
        pytest.param('"3"', FailureBudget(count=3), id="str-int"),
        pytest.param('"2.5%"', FailureBudget(percent=2.5), id="fraction"),
        pytest.param('"100%"', FailureBudget(percent=100.0), id="all"),
    ],
)
def test_budgets(value: str, budget: FailureBudget) -> None:
    """max_failures and max_depooled accept a host count or a percentage."""
    config = parse(f"[fanout]\nmax_failures = {value}\n[depool]\nmax_depooled = {value}\n")
    assert config.fanout.max_failures == budget
    assert config.depool.max_depooled == budget


# --- depool commands --------------------------------------------------------------------------------------


def test_expand_command_substitutes_single_arguments() -> None:
    """{host} goes into the already split arguments, also inside a longer argument."""
    template = ("confctl", "select", "name={host}", "set/pooled=no")
    assert expand_command(template, "mw1001.eqiad.wmnet") == (
        "confctl",
        "select",
        "name=mw1001.eqiad.wmnet",
        "set/pooled=no",
    )


@pytest.mark.parametrize(
    "host",
    [
        pytest.param("a b", id="space"),
        pytest.param("x; reboot", id="semicolon"),
        pytest.param("$(reboot)", id="substitution"),
        pytest.param("'quoted' \"both\"", id="quotes"),
        pytest.param("{host}", id="placeholder-itself"),
    ],
)
def test_expand_command_never_splits_a_host(host: str) -> None:
    """Whatever the host string holds, it stays inside the one argument it was put in."""
    template = parse(extra='[depool]\ncommand = "depool --host {host} now"\n').depool.command
    assert template is not None
    assert expand_command(template, host) == ("depool", "--host", host, "now")


def test_command_template_keeps_quoted_arguments_whole() -> None:
    """A quoted argument in the template stays one argument, split like a shell would."""
    config = parse(extra="[depool]\ncommand = \"notify 'depooled {host} for deploy'\"\n")
    assert config.depool.command == ("notify", "depooled {host} for deploy")


# --- find_config and load_config --------------------------------------------------------------------------


def write_config(folder: Path) -> Path:
    """Write a minimal sartoris.toml into folder and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sartoris.toml"
    path.write_text(MINIMAL)
    return path


def no_git_environ() -> dict[str, str]:
    """An environment in which no git config from the test machine leaks in."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/nonexistent",
        "GIT_CONFIG_NOSYSTEM": "1",
    }


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A tree with sartoris.toml at the top and a nested work folder without one."""
    write_config(tmp_path)
    (tmp_path / "a" / "b").mkdir(parents=True)
    return tmp_path


def test_find_explicit_wins(tree: Path) -> None:
    """--config is used before everything else, relative to cwd."""
    other = write_config(tree / "other")
    environ = no_git_environ() | {"SARTORIS_CONFIG": str(tree / "sartoris.toml")}
    assert find_config(Path("other/sartoris.toml"), tree, environ) == other


def test_find_environment_before_git_and_walk(tree: Path) -> None:
    """$SARTORIS_CONFIG is used when there is no --config."""
    other = write_config(tree / "other")
    environ = no_git_environ() | {"SARTORIS_CONFIG": str(other)}
    assert find_config(None, tree / "a" / "b", environ) == other


def test_find_empty_environment_is_ignored(tree: Path) -> None:
    """An empty $SARTORIS_CONFIG counts as unset."""
    environ = no_git_environ() | {"SARTORIS_CONFIG": ""}
    assert find_config(None, tree / "a", environ) == tree / "sartoris.toml"


def test_find_walks_up_from_a_working_copy_linked_from_elsewhere(
    tree: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A slot's working copy may be a link to a folder elsewhere: from inside it the config above the link was not
    found (only the folder it points at was walked up). The shell's $PWD, when it is that same folder, is walked
    first; a $PWD that is another folder (a stale one) is not."""
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "php-slot1"
    elsewhere.mkdir()
    (tree / "php-slot1").symlink_to(elsewhere)
    environ = no_git_environ()
    assert find_config(None, elsewhere, environ | {"PWD": str(tree / "php-slot1")}) == tree / "sartoris.toml"
    with pytest.raises(ConfigError, match=r"no sartoris\.toml found"):
        find_config(None, elsewhere, environ | {"PWD": str(tree / "a")})


def test_find_walks_up(tree: Path) -> None:
    """Without --config, $SARTORIS_CONFIG or git config, the nearest sartoris.toml in cwd or above is used."""
    assert find_config(None, tree / "a" / "b", no_git_environ()) == tree / "sartoris.toml"
    nearer = write_config(tree / "a")
    assert find_config(None, tree / "a" / "b", no_git_environ()) == nearer


@pytest.mark.parametrize(
    ("explicit", "variable", "origin"),
    [
        pytest.param(Path("missing.toml"), None, "--config", id="explicit"),
        pytest.param(None, "missing.toml", "$SARTORIS_CONFIG", id="environment"),
    ],
)
def test_find_named_but_missing(tmp_path: Path, explicit: Path | None, variable: str | None, origin: str) -> None:
    """A config named explicitly that does not exist is an error saying where the name came from."""
    environ = no_git_environ() | ({"SARTORIS_CONFIG": variable} if variable else {})
    with pytest.raises(ConfigError) as caught:
        find_config(explicit, tmp_path, environ)
    assert str(caught.value) == f"{tmp_path / 'missing.toml'}: no such config file (from {origin})"


@pytest.mark.parametrize(
    ("name", "what"),
    [
        pytest.param(".", "is a directory, not a config file", id="directory"),
        pytest.param("/dev/null", "not a regular file, so not a config file", id="device"),
    ],
)
def test_a_named_config_that_is_not_a_file_says_what_it_is(tmp_path: Path, name: str, what: str) -> None:
    """`--config /some/dir` or `--config /dev/null` exists: the line says it is a folder or not a regular file,
    never "no such config file", which sends the operator looking for a typo."""
    with pytest.raises(ConfigError) as caught:
        find_config(Path(name), tmp_path, no_git_environ())
    assert str(caught.value) == f"{tmp_path / name}: {what} (from --config)"


def test_a_named_config_that_is_a_link_loop_says_so(tmp_path: Path) -> None:
    """`--config` naming a symbolic link that leads back to itself said "no such config file", sending the operator
    looking for a typo in a name that is there."""
    (tmp_path / "sartoris.toml").symlink_to("sartoris.toml")
    with pytest.raises(ConfigError) as caught:
        find_config(Path("sartoris.toml"), tmp_path, no_git_environ())
    assert str(caught.value) == f"{tmp_path / 'sartoris.toml'}: a symbolic link loop, not a config file (from --config)"


def test_find_nothing(tmp_path: Path) -> None:
    """No config anywhere is an error that lists where it looked."""
    with pytest.raises(ConfigError) as caught:
        find_config(None, tmp_path, no_git_environ())
    message = str(caught.value)
    assert message.startswith("no sartoris.toml found: no --config, no $SARTORIS_CONFIG, no git config")
    assert str(tmp_path) in message
    assert "\n" not in message


def test_find_without_git_on_path(tree: Path) -> None:
    """A missing git binary skips the git step."""
    environ = no_git_environ() | {"PATH": str(tree / "no-bin-here")}
    assert find_config(None, tree / "a", environ) == tree / "sartoris.toml"


needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git_repo(folder: Path, value: str | None) -> Path:
    """Make folder a git repository, with sartoris.config set to value unless None."""
    folder.mkdir(parents=True, exist_ok=True)
    environ = no_git_environ()
    subprocess.run(["git", "init", "-q", str(folder)], check=True, env=environ)
    if value is not None:
        subprocess.run(["git", "-C", str(folder), "config", "sartoris.config", value], check=True, env=environ)
    return folder


@needs_git
def test_find_git_config_absolute(tree: Path) -> None:
    """git config sartoris.config is used before the walk up."""
    other = write_config(tree / "elsewhere")
    repo = git_repo(tree / "a" / "repo", str(other))
    assert find_config(None, repo, no_git_environ()) == other


@needs_git
def test_find_git_config_relative_to_work_tree(tree: Path) -> None:
    """A relative sartoris.config is read from the work tree's top, even from a subfolder."""
    repo = git_repo(tree / "repo", "deploy/sartoris.toml")
    target = write_config(repo / "deploy")
    (repo / "src" / "deep").mkdir(parents=True)
    assert find_config(None, repo / "src" / "deep", no_git_environ()) == target


@needs_git
def test_find_git_config_with_dotdot_is_folded(tree: Path) -> None:
    """A relative sartoris.config with `..` names the file without it, as --config does."""
    repo = git_repo(tree / "repo", "src/../deploy/sartoris.toml")
    target = write_config(repo / "deploy")
    (repo / "src").mkdir()
    assert str(find_config(None, repo / "src", no_git_environ())) == str(target)


@needs_git
def test_find_git_config_after_environment(tree: Path) -> None:
    """$SARTORIS_CONFIG still wins over git config."""
    repo = git_repo(tree / "repo", str(write_config(tree / "from-git")))
    chosen = write_config(tree / "from-env")
    environ = no_git_environ() | {"SARTORIS_CONFIG": str(chosen)}
    assert find_config(None, repo, environ) == chosen


@needs_git
def test_find_git_config_missing_file(tree: Path) -> None:
    """A git config naming a file that does not exist is an error, not a silent fallback."""
    repo = git_repo(tree / "repo", "/nonexistent/sartoris.toml")
    with pytest.raises(ConfigError, match=r"no such config file \(from git config sartoris.config\)"):
        find_config(None, repo, no_git_environ())


@needs_git
def test_find_git_repo_without_setting_walks_up(tree: Path) -> None:
    """A repository without sartoris.config falls through to the walk up."""
    repo = git_repo(tree / "a" / "repo", None)
    assert find_config(None, repo, no_git_environ()) == tree / "sartoris.toml"


def test_load_config_reads_file(tree: Path) -> None:
    """load_config reads the file and anchors relative paths at its folder."""
    config = load_config(tree / "sartoris.toml")
    assert config.path == tree / "sartoris.toml"
    assert config.deploy.checkout_root == tree
    assert config.hosts_dir == tree / "hosts"


def test_a_config_saved_with_a_byte_order_mark_loads(tree: Path) -> None:
    """A leading U+FEFF made the whole file "not valid TOML: Invalid statement (line 1, column 1)"."""
    path = tree / "sartoris.toml"
    path.write_text("\ufeff" + path.read_text())
    assert load_config(path).deploy.checkout_root == tree


def test_load_config_relative_path(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative path is made absolute first, so base_dir is absolute."""
    monkeypatch.chdir(tree / "a")
    config = load_config(Path("../sartoris.toml"))
    assert config.base_dir.is_absolute()
    assert config.checkout_path(0).resolve() == (tree / "php-slot0").resolve()


@pytest.mark.parametrize("given_by", ["--config", "$SARTORIS_CONFIG", "load_config"])
def test_a_config_path_with_dotdot_is_shown_folded(tree: Path, monkeypatch: pytest.MonkeyPatch, given_by: str) -> None:
    """`--config ../sartoris.toml` from inside php-slot1 showed .../php-slot1/../.sartoris/locks/slot1.lock and
    `checkout_root = ".../php-slot1/.."`: the config's path, and every path read from it, has `name/..` folded."""
    inside = tree / "php-slot1"
    inside.mkdir()
    monkeypatch.chdir(inside)
    if given_by == "load_config":
        path = Path("../sartoris.toml")
    else:
        explicit = Path("../sartoris.toml") if given_by == "--config" else None
        path = find_config(explicit, inside, no_git_environ() | {"SARTORIS_CONFIG": "../sartoris.toml"})
        assert str(path) == str(tree / "sartoris.toml")
    config = load_config(path)
    assert str(config.path) == str(tree / "sartoris.toml")
    assert str(config.state_dir) == str(tree / ".sartoris")
    assert str(config.deploy.checkout_root) == str(tree)
    assert str(config.checkout_path(1)) == str(inside)


def test_paths_in_the_config_are_folded_but_no_link_is_resolved(tree: Path) -> None:
    """`..` after a real folder goes; a link stays a link (a version link names what it points at now), and a `..`
    right after a link stays, since there it is the parent of the link's target, not of the link."""
    (tree / "releases" / "php-slot0").mkdir(parents=True)
    (tree / "other" / "hooks").mkdir(parents=True)
    (tree / "current").symlink_to(tree / "other" / "hooks")
    (tree / "live").symlink_to(tree / "releases")
    path = tree / "sartoris.toml"
    path.write_text(
        MINIMAL.replace("/srv/git/mediawiki/", "deploy/../../git/")
        + 'checkout_root = "./releases/../live"\nhooks_dir = "current/../hooks"\n'
    )
    (tree / "deploy").mkdir()
    config = load_config(path)
    assert str(config.deploy.checkout_root) == str(tree / "live")
    assert str(config.deploy.hooks_dir) == str(tree / "current" / ".." / "hooks")
    assert config.deploy.hooks_dir.resolve() == tree / "other" / "hooks"  # what the OS reads it as, unchanged
    assert config.publish_url(3) == str(tree.parent / "git" / "php-slot3.git")


def test_load_config_unreadable(tmp_path: Path) -> None:
    """A file that cannot be read is a ConfigError naming it."""
    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read: No such file or directory"):
        load_config(tmp_path / "missing.toml")


def test_load_config_not_utf8(tmp_path: Path) -> None:
    """A file that is not UTF-8 is a ConfigError, not a traceback."""
    path = tmp_path / "sartoris.toml"
    path.write_bytes(b"\xff\xfe[deploy]")
    with pytest.raises(ConfigError, match="not a UTF-8 text file"):
        load_config(path)


def test_load_config_errors_name_the_file(tmp_path: Path) -> None:
    """Validation errors from a loaded file carry its path."""
    path = tmp_path / "sartoris.toml"
    path.write_text(MINIMAL + "[fanout]\nconcurency = 1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: unknown key [fanout] concurency"
