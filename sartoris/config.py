"""sartoris.toml -> frozen dataclasses; every check on the file happens here, with messages naming the key.

The file is found by find_config(), read by load_config() and turned into a Config by parse_config(), which is
pure so tests need no files. Paths in the file are relative to the file's folder; ``{slot}`` is left in place
and replaced by Config.for_slot once a command knows its slot (the path and URL accessors also replace it).
Every problem is a ConfigError with one line: ``<file>: [section] key must be ..., not ...``.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import re
import shlex
import stat
import subprocess
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from sartoris.errors import ConfigError, InventoryError, UsageError
from sartoris.inventory import Host, is_user_name, resolve_hosts
from sartoris.limits import MAX_KEEP_RELEASES, MAX_NAME, MAX_RETRIES, MAX_SECONDS, MAX_SLOT, MAX_USER_NAME
from sartoris.policy import FailureBudget

CONFIG_NAME = "sartoris.toml"
GIT_TIMEOUT = 5.0
DEFAULT_MAX_FAILURES = FailureBudget(percent=5.0)
DEFAULT_KNOWN_HOSTS = Path(os.path.expanduser("~/.ssh/known_hosts"))  # never raises (no home: left as is)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

KNOWN_KEYS: dict[str, tuple[str, ...]] = {
    "deploy": (
        "name",
        "checkout_root",
        "slot_prefix",
        "remote_root",
        "publish_url",
        "fetch_url",
        "hosts",
        "hooks_dir",
        "hook_timeout",
        "keep_releases",
        "canaries",
        "umask",
    ),
    "fanout": (
        "concurrency",
        "fetch_concurrency",
        "connect_timeout",
        "command_timeout",
        "max_failures",
        "retries",
    ),
    "ssh": (
        "user",
        "port",
        "identity_files",
        "known_hosts",
        "keepalive_interval",
        "accept_new_host_keys",
        "jump_host",
        "config_file",
    ),
    "depool": ("command", "pool_command", "timeout", "max_depooled"),
}


@dataclass(frozen=True, slots=True)
class DeploySettings:
    """[deploy]: what is deployed and where; path values are absolute, {slot} still in place."""

    name: str
    checkout_root: Path
    remote_root: str
    publish_url: str
    hooks_dir: Path
    slot_prefix: str = "php-slot"
    fetch_url: str | None = None
    hosts: tuple[str, ...] = ()
    keep_releases: int = 3
    hook_timeout: float = 120.0
    canaries: tuple[str, ...] = ()
    umask: str = "022"  # the hosts' scripts run with it: a login's own umask must not change the files deployed
    hooks_dir_set: bool = False  # written in the file: then a missing folder is a mistake, not "no hooks"


@dataclass(frozen=True, slots=True)
class FanoutSettings:
    """[fanout]: how many hosts at once, how long to wait, how many failures to tolerate."""

    concurrency: int = 100
    fetch_concurrency: int = 32
    connect_timeout: float = 10.0
    command_timeout: float = 300.0
    max_failures: FailureBudget = DEFAULT_MAX_FAILURES
    retries: int = 2


@dataclass(frozen=True, slots=True)
class SshSettings:
    """[ssh]: how to log in; None means leave it to ~/.ssh/config, the agent and OpenSSH's defaults."""

    user: str | None = None
    port: int | None = None  # None: ~/.ssh/config's Port for that host, else 22
    identity_files: tuple[Path, ...] = ()
    known_hosts: Path = DEFAULT_KNOWN_HOSTS
    keepalive_interval: float = 15.0
    accept_new_host_keys: bool = False
    jump_host: str | None = None  # [user@]host[:port] of a bastion every connection goes through
    config_file: Path | None = None  # an OpenSSH client config to honour instead of ~/.ssh/config

    @property
    def default_port(self) -> int:
        """The port a host line without :port is taken to mean when duplicates are dropped ([ssh] port, else 22)."""
        return self.port or 22


@dataclass(frozen=True, slots=True)
class DepoolSettings:
    """[depool]: argv templates ({host} substituted per argument) run on the deploy host, and their bounds."""

    command: tuple[str, ...] | None = None
    pool_command: tuple[str, ...] | None = None
    timeout: float = 30.0
    max_depooled: FailureBudget | None = None
    scope: str = ""  # whose pool the commands change: every slot's (""), or one slot's ("slot<N>", see for_slot)

    def names_slot(self, *keys: str) -> bool:
        """Whether the commands under `keys` ("command", "pool_command") hold a `{slot}` not yet filled in."""
        return any("{slot}" in argument for key in keys for argument in getattr(self, key) or ())


@dataclass(frozen=True, slots=True)
class Config:
    """A validated sartoris.toml and the per-slot names and locations derived from it."""

    path: Path
    deploy: DeploySettings
    fanout: FanoutSettings = FanoutSettings()
    ssh: SshSettings = SshSettings()
    depool: DepoolSettings = DepoolSettings()

    @property
    def base_dir(self) -> Path:
        """The config file's folder, against which relative paths in it are read."""
        return self.path.parent

    @property
    def hosts_dir(self) -> Path:
        """The folder of host group files beside the config file."""
        return self.base_dir / "hosts"

    @property
    def state_dir(self) -> Path:
        """The folder for the deploy lock and history beside the config file."""
        return self.base_dir / ".sartoris"

    def slot_name(self, slot: int) -> str:
        """The slot's folder name, e.g. php-slot0."""
        if slot < 0:
            raise ValueError(f"a slot is a number >= 0, not {slot}")
        return f"{self.deploy.slot_prefix}{slot}"

    def slot_of(self, folder_name: str) -> int | None:
        """The slot a folder name stands for (php-slot3 -> 3), or None if it is not a slot folder: only the name
        slot_name gives (php-slot03 is not slot 3's folder, whose working copy is php-slot3)."""
        number = self._slot_digits(folder_name)
        if number is not None and int(number) <= MAX_SLOT and str(int(number)) == number:
            return int(number)
        return None

    def looks_like_a_slot(self, name: str) -> bool:
        """Whether `name` is the slot prefix and digits only (php-slot3, and php-slot03 too): no name for anything
        else, such as a version link."""
        return self._slot_digits(name) is not None

    def _slot_digits(self, name: str) -> str | None:
        prefix = self.deploy.slot_prefix
        number = name[len(prefix) :]
        return number if name.startswith(prefix) and number.isascii() and number.isdigit() else None

    def checkout_path(self, slot: int) -> Path:
        """The deploy host's working copy of the slot."""
        root = str(self.deploy.checkout_root).replace("{slot}", str(slot))
        return Path(root) / self.slot_name(slot)

    def remote_slot_path(self, slot: int) -> str:
        """The slot's working copy on an app server, as a POSIX path string."""
        root = self.deploy.remote_root.replace("{slot}", str(slot))
        return str(PurePosixPath(root) / self.slot_name(slot))

    def publish_url(self, slot: int) -> str:
        """Where sync pushes the slot's release: a URL as written, or an absolute local path."""
        return self.url_as_used(self.deploy.publish_url.replace("{slot}", str(slot)))

    def fetch_url(self, slot: int) -> str:
        """What app servers fetch the slot's release from; publish_url when not set."""
        template = self.deploy.fetch_url if self.deploy.fetch_url is not None else self.deploy.publish_url
        return self.url_as_used(template.replace("{slot}", str(slot)))

    def url_as_used(self, written: str) -> str:
        """A publish or fetch location as runs use it: a URL as written, a local path absolute (from the config
        file's folder, ~ expanded)."""
        return _resolve_url(written, self.base_dir)

    def fleet(self) -> tuple[Host, ...]:
        """[deploy] hosts, the hosts a run targets without --hosts: the config file's own entries, so a path is read
        from the file's folder, like every relative path in it. UsageError when it names none, or still holds
        `{slot}` (a config not made for one slot), or a group cannot be read."""
        if not self.deploy.hosts:
            raise UsageError("no hosts to target: pass --hosts or set [deploy] hosts in sartoris.toml")
        if any("{slot}" in entry for entry in self.deploy.hosts):
            raise UsageError(f"{self.path}: [deploy] hosts uses {{slot}}: pass --slot N (or run it inside a slot)")
        return resolve_hosts(self.deploy.hosts, self.hosts_dir, Path.cwd(), self.ssh.default_port, base=self.base_dir)

    def listed_hosts(self) -> list[Host]:
        """Every host the hosts folder's files and the config's own groups list; a file that cannot be read or
        parsed lists none (what asks, a depool of a typo or a retry, is not held up by a broken group it does not
        need)."""
        groups: list[str] = []
        with contextlib.suppress(OSError):
            groups += sorted(path.name for path in self.hosts_dir.iterdir())
        groups += [entry for entry in (*self.deploy.hosts, *self.deploy.canaries) if "{slot}" not in entry]
        listed: list[Host] = []
        for group in groups:
            with contextlib.suppress(InventoryError):  # not a file, unreadable, a bad line, no host
                listed += resolve_hosts([group], self.hosts_dir, self.base_dir, self.ssh.default_port, self.base_dir)
        return listed

    def for_slot(self, slot: int) -> Config:
        """This configuration for one slot: `{slot}` replaced by its number in every value that can hold it
        (paths, URLs, host groups, hooks_dir, the ssh files, the depool commands), as the contract says."""

        def put(text: str) -> str:
            return text.replace("{slot}", str(slot))

        def put_path(path: Path) -> Path:
            return Path(put(str(path)))

        def put_argv(argv: tuple[str, ...] | None) -> tuple[str, ...] | None:
            return None if argv is None else tuple(put(argument) for argument in argv)

        deploy = replace(
            self.deploy,
            checkout_root=put_path(self.deploy.checkout_root),
            remote_root=put(self.deploy.remote_root),
            publish_url=put(self.deploy.publish_url),
            fetch_url=None if self.deploy.fetch_url is None else put(self.deploy.fetch_url),
            hooks_dir=put_path(self.deploy.hooks_dir),
            hosts=tuple(put(group) for group in self.deploy.hosts),
            canaries=tuple(put(group) for group in self.deploy.canaries),
        )
        ssh = replace(
            self.ssh,
            identity_files=tuple(put_path(path) for path in self.ssh.identity_files),
            known_hosts=put_path(self.ssh.known_hosts),
            config_file=None if self.ssh.config_file is None else put_path(self.ssh.config_file),
        )
        commands = self.depool
        by_slot = commands.names_slot("command", "pool_command")
        depool = replace(
            commands,
            command=put_argv(commands.command),
            pool_command=put_argv(commands.pool_command),
            scope=f"slot{slot}" if by_slot else commands.scope,  # a slot's own pool: its state is kept apart
        )
        return replace(self, deploy=deploy, ssh=ssh, depool=depool)


def expand_command(template: tuple[str, ...], host: str) -> tuple[str, ...]:
    """Put the host into each already-split argument; never re-split, so a host can never become a command."""
    return tuple(argument.replace("{host}", host) for argument in template)


def find_config(explicit: Path | None, cwd: Path, environ: Mapping[str, str]) -> Path:
    """Locate sartoris.toml: --config, $SARTORIS_CONFIG, git config sartoris.config, then cwd and up."""
    return locate_config(explicit, cwd, environ)[0]


def locate_config(explicit: Path | None, cwd: Path, environ: Mapping[str, str]) -> tuple[Path, str]:
    """find_config, also saying which rule found the file (for `sartoris config`)."""
    if explicit is not None:
        return _must_exist(_folded(cwd / explicit), "--config"), "--config"
    if environ.get("SARTORIS_CONFIG"):
        return _must_exist(_folded(cwd / environ["SARTORIS_CONFIG"]), "$SARTORIS_CONFIG"), "$SARTORIS_CONFIG"
    configured = _git_config_path(cwd, environ)
    if configured is not None:
        return _must_exist(configured, "git config sartoris.config"), "git config sartoris.config"
    nearest = _nearest_config(cwd, environ.get("PWD"))
    if nearest is not None:
        return nearest[0], f"nearest {CONFIG_NAME} from {nearest[1]}"
    raise ConfigError(
        f"no {CONFIG_NAME} found: no --config, no $SARTORIS_CONFIG, no git config sartoris.config, "
        f"and none in {cwd} or above"
    )


def folder_configs(cwd: Path, environ: Mapping[str, str]) -> list[Path]:
    """The configs the folder `cwd` names by itself: its repository's own git config sartoris.config (not the
    user's or the system's, which name a default, not a folder's project), and the nearest sartoris.toml up."""
    configured = _git_config_path(cwd, environ, scope="--local")
    # the nearest from each way to the folder: through the shell's links, and the real path (a link into another
    # project's slot is that project's folder, whatever config sits above the link)
    starts = _where_the_operator_is(cwd, environ.get("PWD"))
    nearest = [found[0] for start in starts if (found := _nearest_config(start, None))]
    return list(dict.fromkeys(path for path in (configured, *nearest) if path is not None))


def _nearest_config(cwd: Path, pwd: str | None) -> tuple[Path, Path] | None:
    """The nearest sartoris.toml up from the operator's folder, and the folder looked up from."""
    for start in _where_the_operator_is(cwd, pwd):
        for folder in (start, *start.parents):
            if (folder / CONFIG_NAME).is_file():
                return folder / CONFIG_NAME, start
    return None


def logical_folder(cwd: Path, pwd: str | None) -> Path | None:
    """The shell's $PWD (`..` folded), which keeps the names of the links the operator `cd`ed through, when it is
    really the folder `cwd`; None when it is not (a script may start Sartoris elsewhere with a stale $PWD)."""
    if pwd and os.path.isabs(pwd):
        try:
            if os.path.samefile(pwd, cwd):
                return Path(os.path.normpath(pwd))
        except OSError:
            pass
    return None


def _where_the_operator_is(cwd: Path, pwd: str | None) -> list[Path]:
    """The folders to look up from: the shell's $PWD first when it is this same folder reached through a link (a
    slot's working copy linked from elsewhere: its config is above the link, not above the folder it points at),
    then the folder itself."""
    logical = logical_folder(cwd, pwd)
    return [logical, cwd] if logical is not None and logical != cwd else [cwd]


def load_config(path: Path) -> Config:
    """Read and validate the config file at path; relative paths in it are taken from its folder."""
    path = _folded(path.absolute())
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a leading BOM is not TOML
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> Config:
    """Turn the file's text into a Config; path names the file in errors and anchors relative paths."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = " ".join(str(exc).split())
        raise ConfigError(f"{path}: not valid TOML: {message}") from None
    for section, table in data.items():
        if section not in KNOWN_KEYS:
            if isinstance(table, dict):
                raise ConfigError(f"{path}: unknown section [{_shown(section)}]")
            raise ConfigError(
                f"{path}: unknown key {_shown(section)} (keys go in [deploy], [fanout], [ssh], [depool])"
            )
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: {section} must be a table ([{section}]), not {_kind(table)}")
        for key in table:
            if key not in KNOWN_KEYS[section]:
                raise ConfigError(f"{path}: unknown key [{section}] {_shown(key)}")
    base = path.parent
    return Config(
        path=path,
        deploy=_deploy(_Section(path, "deploy", data.get("deploy", {})), base),
        fanout=_fanout(_Section(path, "fanout", data.get("fanout", {}))),
        ssh=_ssh(_Section(path, "ssh", data.get("ssh", {})), base),
        depool=_depool(_Section(path, "depool", data.get("depool", {}))),
    )


def _deploy(section: _Section, base: Path) -> DeploySettings:
    """Read [deploy]."""
    return DeploySettings(
        name=section.string("name", check=_tag_safe),
        checkout_root=_local_path(section.string("checkout_root", ".", check=_slot_template), base),
        slot_prefix=section.string("slot_prefix", "php-slot", check=_tag_safe),
        remote_root=section.string("remote_root", check=_remote_root),
        publish_url=section.string("publish_url", check=_url),
        fetch_url=section.optional_string("fetch_url", check=_url),
        hosts=section.strings("hosts"),
        hooks_dir=_local_path(section.string("hooks_dir", "hooks", check=_non_empty), base),
        keep_releases=section.integer("keep_releases", 3, minimum=1, maximum=MAX_KEEP_RELEASES),
        hook_timeout=section.seconds("hook_timeout", 120.0),
        canaries=section.strings("canaries"),
        umask=section.string("umask", "022", check=_octal_umask),
        hooks_dir_set="hooks_dir" in section.table,
    )


def _fanout(section: _Section) -> FanoutSettings:
    """Read [fanout]."""
    return FanoutSettings(
        concurrency=section.integer("concurrency", 100, minimum=1),
        fetch_concurrency=section.integer("fetch_concurrency", 32, minimum=1),
        connect_timeout=section.seconds("connect_timeout", 10.0),
        command_timeout=section.seconds("command_timeout", 300.0),
        max_failures=section.budget("max_failures", "5%"),
        retries=section.integer("retries", 2, minimum=0, maximum=MAX_RETRIES),
    )


def _ssh(section: _Section, base: Path) -> SshSettings:
    """Read [ssh]."""
    return SshSettings(
        user=section.optional_string("user", check=_user),
        port=None if section.value("port", None) is None else section.integer("port", 22, minimum=1, maximum=65535),
        identity_files=tuple(_local_path(file, base) for file in section.strings("identity_files")),
        known_hosts=_local_path(section.string("known_hosts", "~/.ssh/known_hosts", check=_non_empty), base),
        keepalive_interval=section.seconds("keepalive_interval", 15.0, zero_ok=True),
        accept_new_host_keys=section.boolean("accept_new_host_keys", False),
        jump_host=section.optional_string("jump_host", check=_jump_host),
        config_file=_optional_path(section.optional_string("config_file"), base),
    )


def _depool(section: _Section) -> DepoolSettings:
    """Read [depool]."""
    return DepoolSettings(
        command=section.command("command"),
        pool_command=section.command("pool_command"),
        timeout=section.seconds("timeout", 30.0),
        max_depooled=section.optional_budget("max_depooled"),
    )


_REQUIRED = object()
_Check = Callable[[str], str | None]  # returns what is wrong with a value ("must ..."), or None


@dataclass(frozen=True, slots=True)
class _Section:
    """One table of the file, read key by key with type checks and messages naming the key."""

    path: Path
    name: str
    table: Mapping[str, object]

    def fail(self, key: str, problem: str) -> ConfigError:
        """The one-line error for a key of this section."""
        return ConfigError(f"{self.path}: [{self.name}] {key} {problem}")

    def wrong_type(self, key: str, expected: str, value: object) -> ConfigError:
        """The error for a value of the wrong TOML type."""
        return self.fail(key, f"must be {expected}, not {_kind(value)}")

    def value(self, key: str, default: object = _REQUIRED) -> object:
        """The key's value, else its default; a missing key without a default is an error."""
        if key in self.table:
            return self.table[key]
        if default is _REQUIRED:
            raise ConfigError(f"{self.path}: missing required key [{self.name}] {key}")
        return default

    def string(self, key: str, default: object = _REQUIRED, check: _Check | None = None) -> str:
        """A string without control characters that passes check."""
        value = self.value(key, default)
        if not isinstance(value, str):
            raise self.wrong_type(key, "a string", value)
        problem = "must not contain control characters" if _CONTROL.search(value) else None
        problem = problem or (check(value) if check is not None else None)
        if problem is not None:
            raise self.fail(key, f"{problem}, not {value!r}")
        return value

    def optional_string(self, key: str, check: _Check | None = None) -> str | None:
        """A string as string() checks it, or None when the key is absent."""
        return self.string(key, check=check) if key in self.table else None

    def strings(self, key: str) -> tuple[str, ...]:
        """An array of non-empty strings; empty when absent."""
        values = self.value(key, [])
        if not isinstance(values, list):
            raise self.wrong_type(key, "an array of strings", values)
        for value in values:
            if not isinstance(value, str) or not value.strip() or _CONTROL.search(value):
                shown = repr(value) if isinstance(value, str) else _kind(value)
                raise self.fail(key, f"must be an array of non-empty strings, not one holding {shown}")
        return tuple(values)

    def integer(self, key: str, default: int, minimum: int, maximum: int | None = None) -> int:
        """An integer (never a boolean) within [minimum, maximum]."""
        value = self.value(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.wrong_type(key, "an integer", value)
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
            raise self.fail(key, f"must be {bound}, not {value}")
        return value

    def seconds(self, key: str, default: float, zero_ok: bool = False) -> float:
        """A number of seconds, > 0 (or >= 0 when zero_ok) and at most a week (past that, timers and deadlines
        overflow, and no deploy step waits that long on purpose); integers are accepted, booleans are not."""
        value = self.value(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.wrong_type(key, "a number of seconds", value)
        if (isinstance(value, float) and math.isnan(value)) or value < 0 or (value == 0 and not zero_ok):
            raise self.fail(key, f"must be a number of seconds {'>= 0' if zero_ok else '> 0'}, not {value}")
        if value > MAX_SECONDS:
            raise self.fail(key, f"must be at most {MAX_SECONDS} seconds (a week)")
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        """true or false."""
        value = self.value(key, default)
        if not isinstance(value, bool):
            raise self.wrong_type(key, "true or false", value)
        return value

    def budget(self, key: str, default: object = _REQUIRED) -> FailureBudget:
        """A host count (3) or a percentage ("5%"), read by FailureBudget.parse."""
        value = self.value(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise self.wrong_type(key, 'a number of hosts or a percentage string like "5%"', value)
        try:
            return FailureBudget.parse(value)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None

    def optional_budget(self, key: str) -> FailureBudget | None:
        """A budget as budget() reads it, or None when the key is absent."""
        return self.budget(key) if key in self.table else None

    def command(self, key: str) -> tuple[str, ...] | None:
        """A command line split like a shell would (no shell runs it), or None when absent."""
        text = self.optional_string(key)
        if text is None:
            return None
        try:
            argv = tuple(shlex.split(text))
        except ValueError as exc:
            raise self.fail(key, f"cannot be split into arguments ({exc}): {text!r}") from None
        if not argv:
            raise self.fail(key, f"must not be empty, not {text!r}")
        if not any("{host}" in argument for argument in argv):
            raise self.fail(key, f"must contain {{host}}, not {text!r}")
        return argv


def _kind(value: object) -> str:
    """The TOML name of a value's type, for 'must be X, not Y' messages."""
    kinds: tuple[tuple[type, str], ...] = (
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a float"),
        (str, "a string"),
        (list, "an array"),
        (dict, "a table"),
    )
    return next((name for kind, name in kinds if isinstance(value, kind)), "a date/time")


def _shown(key: str) -> str:
    """A key as an error names it: quoted, escapes and all, when it is not plain text (a quoted TOML key may hold
    anything, an escape sequence that would clear the operator's screen included)."""
    return key if key.isprintable() and key.strip() == key and key else repr(key)


def _tag_safe(value: str) -> str | None:
    """Why value cannot go into a git tag or folder name, if it cannot."""
    if len(value) > MAX_NAME:
        return f"must be at most {MAX_NAME} characters (a tag's name is one file name, with the slot and time)"
    if not _NAME.fullmatch(value):
        return "must be letters, digits, '.', '_' or '-', starting with a letter or digit"
    if ".." in value or value.endswith((".", ".lock")):
        return "must not contain '..' or end with '.' or '.lock' (git refuses such tag names)"
    return None


def _octal_umask(value: str) -> str | None:
    """Why value is not a umask in octal ("022", "0027"), if it is not."""
    return None if re.fullmatch(r"0?[0-7]{3}", value) else 'must be a umask in octal, like "022" or "027"'


def _non_empty(value: str) -> str | None:
    """Why value is empty, if it is."""
    return "must not be empty" if not value.strip() else None


def _slot_template(value: str) -> str | None:
    """Why value is empty or has a placeholder other than {slot}, if it does."""
    if not value.strip():
        return "must not be empty"
    unknown = [found for found in _PLACEHOLDER.findall(value) if found != "{slot}"]
    return f"must use no placeholder but {{slot}} (found {unknown[0]})" if unknown else None


def _remote_root(value: str) -> str | None:
    """Why value is not an absolute POSIX path template, if it is not."""
    if not value.startswith("/"):
        return "must be an absolute path (starting with '/')"
    return _slot_template(value)


def _url(value: str) -> str | None:
    """Why value cannot be given to git as a repository location, if it cannot."""
    if value.startswith("-"):
        return "must not start with '-' (git would read it as an option)"
    return _slot_template(value)


def _jump_host(value: str) -> str | None:
    """A bastion as [user@]host[:port], the same shape as a hosts file line."""
    from sartoris.inventory import parse_host

    try:
        parse_host(value)
    except ValueError:
        return "must be [user@]host[:port]"
    return None


def _optional_path(value: str | None, base: Path) -> Path | None:
    return None if value is None else _local_path(value, base)


def _user(value: str) -> str | None:
    """Why value is not a login name, if it is not."""
    if is_user_name(value):
        return None
    if len(value) > MAX_USER_NAME:
        return f"must be a login name of at most {MAX_USER_NAME} characters ({len(value)} given)"
    return f"must be a login name (letters, digits, '.', '_', '-'; at most {MAX_USER_NAME} characters)"


def _is_url(location: str) -> bool:
    """True for what git reads as a URL: scheme://... or scp-like [user@]host:path (a ':' before any '/')."""
    if _URL_SCHEME.match(location):
        return True
    colon, slash = location.find(":"), location.find("/")
    return colon > 0 and (slash < 0 or colon < slash)


def _resolve_url(location: str, base: Path) -> str:
    """A URL as written; a local path with ~ expanded and made absolute against base."""
    return location if _is_url(location) else str(_local_path(location, base))


def _local_path(value: str, base: Path) -> Path:
    """A deploy-host path with ~ expanded, relative to base when not absolute."""
    return _folded(base / os.path.expanduser(value))  # not Path.expanduser, which raises where there is no home


def _folded(path: Path) -> Path:
    """An absolute path with each `name/..` folded away, as the operator thinks of it (`--config ../sartoris.toml`
    from php-slot1 is .../sartoris.toml, not .../php-slot1/../sartoris.toml), naming the same file: no link is
    resolved (a version link stays), and a `..` after a symbolic link stays, since it is the parent of the link's
    target there."""
    if not path.is_absolute():
        return path
    kept: list[str] = []
    for part in path.parts:
        if part != "..":
            kept.append(part)
        elif len(kept) == 1:
            continue  # the root's parent is the root
        elif kept[-1] == ".." or _names_a_link(Path(*kept)):
            kept.append(part)
        else:
            kept.pop()
    return Path(*kept)


def _names_a_link(path: Path) -> bool:
    """Whether path is a symbolic link, or may be one once `{slot}` is replaced."""
    return "{slot}" in path.name or os.path.islink(path)


def _must_exist(path: Path, origin: str) -> Path:
    """The path when it is a regular file, else a ConfigError saying what is there instead (nothing, a folder,
    a device such as /dev/null) and where the name came from."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a link that leads back to itself: there is a name, but no file behind it
            raise ConfigError(f"{path}: a symbolic link loop, not a config file (from {origin})") from None
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise ConfigError(f"{path}: no such config file (from {origin})") from None
        raise ConfigError(f"{path}: {exc.strerror or exc} (from {origin})") from None  # a name too long, say
    if stat.S_ISDIR(mode):
        raise ConfigError(f"{path}: is a directory, not a config file (from {origin})")
    if not stat.S_ISREG(mode):
        raise ConfigError(f"{path}: not a regular file, so not a config file (from {origin})")
    return path


def _git_config_path(cwd: Path, environ: Mapping[str, str], scope: str | None = None) -> Path | None:
    """sartoris.config from git config in cwd (of one `scope`, such as --local, when given), relative to the work
    tree's top; None when git has none."""
    value = _git(["config", *([scope] if scope else []), "--get", "sartoris.config"], cwd, environ)
    if not value:
        return None
    configured = Path(os.path.expanduser(value))
    if configured.is_absolute():
        return _folded(configured)
    top = _git(["rev-parse", "--show-toplevel"], cwd, environ)
    return _folded((Path(top) if top else cwd) / configured)


def _git(args: list[str], cwd: Path, environ: Mapping[str, str]) -> str | None:
    """One line of output from a git command in cwd, or None if git is missing, fails or hangs."""
    try:
        completed = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=dict(environ),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            encoding="utf-8",
            errors="replace",
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    output = completed.stdout.strip()
    return output if completed.returncode == 0 and output else None
