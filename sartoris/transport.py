"""The asyncssh edge: connect to one host, run one command with a bound on time and output.

The only module that imports asyncssh. Every asyncssh or OS error is translated here into a
HostError with a short, stable message (so the summary can group hosts by identical error).
Connection options, keys and known_hosts are loaded once per run, not once per host.
"""

from __future__ import annotations

import asyncio
import gc
import os
import re
import resource
import socket
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sartoris.config import SshSettings
from sartoris.errors import ConfigError, HostError, RefusedError
from sartoris.inventory import Host
from sartoris.native_libs import loader_library_lookup
from sartoris.remote import NOTE_MARK, OWN_LINE_MARK, WAIT_MARK

with loader_library_lookup():  # asyncssh looks for optional C libraries as it is imported
    import asyncssh
    from asyncssh import gss
    from asyncssh.constants import OPEN_REQUEST_SESSION_FAILED

# A host that prints without end cannot exhaust the controller: keep this much of each stream.
OUTPUT_LIMIT = 64 * 1024
ERROR_LINE_LIMIT = 300  # one host's error in summaries, JSON and history
_CHUNK = 16 * 1024
_TAIL_KEPT = 1024  # characters of the end of stdout kept past OUTPUT_LIMIT
_CLOSE_TIMEOUT = 5.0  # seconds to wait for connections being closed to say goodbye
# Why the host's system refused a write, as git and coreutils say it. git's checkout names the file it could not
# write ("error: unable to write file big.txt") and says why only in a later line ("fatal: … write error. Out of
# diskspace"); the error line keeps the reason, which is what the operator acts on.
_SYSTEM_CAUSES = ("No space left on device", "Out of diskspace", "Disk quota exceeded", "Read-only file system")


class _CycleCollector:
    """asyncssh leaves every finished channel and connection behind as reference cycles, about 24 KB a host,
    which Python's own collector reaches late: the import-time objects delay its full passes. At 500 hosts that
    was 12 MB of peak memory. So the objects alive before the first connection are frozen (never scanned
    again), and the cycles are collected as commands finish: a pass walks every open connection, so passes
    come once per `max(64, open sessions)` commands, which keeps the total linear in the fleet (a `sync`
    holds every host's session from fetch to switch)."""

    def __init__(self, every: int = 64) -> None:
        self._every = every
        self._since = 0
        self._open = 0
        self._frozen = False

    def freeze_imports(self) -> None:
        """Freeze what is alive now. Only the young generations are collected first: a full pass here found
        nothing to free in a `status` or a `sync` and cost 20-30 ms, the set-up's garbage being young if any."""
        if not self._frozen:
            gc.collect(1)
            gc.freeze()
            self._frozen = True

    def session_opened(self) -> None:
        self._open += 1

    def session_closed(self) -> None:
        self._open -= 1

    def command_finished(self) -> None:
        self._since += 1
        if self._since >= max(self._every, self._open):
            self._since = 0
            gc.collect()


_cycles = _CycleCollector()


@dataclass(frozen=True, slots=True)
class CommandResult:
    """A remote command that ran to its end."""

    exit_status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    def error_line(self, remedy: str | None = None) -> str:
        """The most telling line of a failure, at most ERROR_LINE_LIMIT characters: Sartoris's own word
        (`sartoris: timed out …`), else git's first `fatal:`/`error:` line (the cause; later ones are
        consequences like `unpack-objects failed`), else the last stderr line; then, when that line does not say
        it and another does, why the system refused a write (a full disk: see _SYSTEM_CAUSES), in parentheses;
        then, each after "before that:", what the switch noted on the way (a quicker start of the tree that did not
        build: the first failure, often the real cause, which the fresh clone's error alone hid; a kept tree changed
        on the host) and that it waited for another run, if it did (a timeout then is that run's doing more likely
        than this host's), room made for them by cutting the line before them (to a third of the limit at most:
        past that, the last of them is cut); then `remedy`, what to do about it, kept whole (the rest is cut for
        it)."""
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        lines = [line for line in lines if not line.startswith((WAIT_MARK, NOTE_MARK))]
        chosen = next((line for line in lines if line.startswith(OWN_LINE_MARK)), None)
        chosen = chosen or next((line for line in lines if line.startswith(("fatal:", "error:"))), None)
        chosen = chosen or (lines[-1] if lines else f"exit status {self.exit_status}")
        waited = self.wait_note()
        before = "".join(f"; before that: {note}" for note in [*self.notes(), *([waited] if waited else [])])
        after = f" {remedy}" if remedy is not None else ""
        room = max(ERROR_LINE_LIMIT - len(before) - len(after), ERROR_LINE_LIMIT // 3)
        cause = next((cause for line in lines for cause in _SYSTEM_CAUSES if cause in line), None)
        if cause is not None and cause not in chosen:
            chosen = _cut(chosen, room - len(cause) - 3) + f" ({cause})"
        chosen = _cut(chosen, room) + before
        if after:
            chosen = _cut(chosen, max(ERROR_LINE_LIMIT - len(after), 1)) + after
        return _cut(chosen, ERROR_LINE_LIMIT)

    def wait_note(self) -> str | None:
        """What the switch said when it had to wait for another run's hold on the slot's host lock, or None."""
        if WAIT_MARK not in self.stderr:
            return None
        return self.stderr.partition(WAIT_MARK)[2].partition("\n")[0].strip()

    def notes(self) -> list[str]:
        """What the host script noted on the way without failing (a tree built from a fresh clone, and why)."""
        return [line[len(NOTE_MARK) :].strip() for line in self.stderr.splitlines() if line.startswith(NOTE_MARK)]


def _cut(text: str, limit: int) -> str:
    """`text`, cut to at most `limit` characters, the last one an ellipsis when it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(slots=True)
class _Capture:
    """Output gathered so far; survives a timeout so the caller still sees how far the command got."""

    stdout: list[str] = field(default_factory=list)
    stdout_size: int = 0
    stdout_tail: str = ""  # the last lines, also past OUTPUT_LIMIT: a script's final marker is there
    stderr: deque[str] = field(default_factory=lambda: deque(maxlen=OUTPUT_LIMIT // _CHUNK + 1))

    def stdout_text(self) -> str:
        """The first OUTPUT_LIMIT characters of stdout; past that, its last whole lines too, after a gap line."""
        head = "".join(self.stdout)
        if self.stdout_size <= OUTPUT_LIMIT:
            return head
        return head + "\n[...]\n" + self.stdout_tail.partition("\n")[2]


class CommandTimeout(HostError):
    """The remote command outlived command_timeout; `stdout` holds what it printed before. `sent`: False when the
    time ran out while the host had not even opened the session (a frozen connection), so the command was never
    sent: nothing it would do has begun there."""

    def __init__(self, message: str, stdout: str, *, sent: bool = True) -> None:
        super().__init__(message)
        self.stdout = stdout
        self.sent = sent


class NotStarted(HostError):
    """The command never reached the host: no session could be opened on the connection (it was found closed, or
    the host refused the channel), so the command was never sent and nothing it would do has begun there."""


def never_sent(exc: asyncssh.ChannelOpenError) -> bool:
    """Whether create_process failed before sending the command: every ChannelOpenError but the one it raises when
    the exec request got no yes (the host refused it, or the connection closed while that request was in flight and
    the host may have started the command)."""
    return exc.code != OPEN_REQUEST_SESSION_FAILED


class _Opened:
    """The session factory of one command: asyncssh calls it once the host confirmed the channel, then sends the
    command (after a pty, X11 or agent-forwarding request, when an honoured ssh config asks for one). So while
    `process` is None, the command was certainly never sent; once it is set, it may have been, and a timeout then
    is looked at as before (asyncssh's create_process, which is create_session with SSHClientProcess as the
    factory, does not tell the two apart)."""

    def __init__(self) -> None:
        self.process: asyncssh.SSHClientProcess[str] | None = None

    def __call__(self) -> asyncssh.SSHClientProcess[str]:
        self.process = asyncssh.SSHClientProcess()
        return self.process


class ConnectError(HostError):
    """Connecting or authenticating failed, after `seconds`."""

    def __init__(self, message: str, seconds: float) -> None:
        super().__init__(message)
        self.seconds = seconds


class Session:
    """One authenticated SSH connection to one host, reused for every phase of a run."""

    def __init__(self, host: Host, connection: asyncssh.SSHClientConnection, connect_seconds: float) -> None:
        self.host = host
        self.connect_seconds = connect_seconds  # how long connecting took (a host's time includes it)
        self._connection = connection
        self._closed = False
        _cycles.session_opened()

    async def run(self, command: str, timeout: float, stdin: str = "") -> CommandResult:
        """Run `command` to its end within `timeout` seconds, `stdin` its whole input (none when empty); output
        beyond OUTPUT_LIMIT is dropped. NotStarted when it provably never reached the host, CommandTimeout past
        `timeout`, HostError when the connection failed (the command may then have started)."""
        capture, opened = _Capture(), _Opened()
        try:
            async with asyncio.timeout(timeout):
                # errors="replace": a byte that is not UTF-8 (a hook's output) must not end the connection
                try:
                    channel, _ = await self._connection.create_session(opened, command, errors="replace")
                except asyncssh.ChannelOpenError as exc:
                    if never_sent(exc):
                        raise NotStarted(_describe(exc)) from exc
                    raise
                process = opened.process
                assert process is not None  # the session is open: asyncssh made it
                if stdin:  # what create_process does with `input` (and with no input, stdin=DEVNULL): send, then EOF
                    channel.write(stdin)
                channel.write_eof()
                try:
                    await asyncio.gather(_read_head(process.stdout, capture), _read_tail(process.stderr, capture))
                    await process.wait_closed()
                finally:
                    process.close()
        except TimeoutError:
            timed_out = f"timed out after {round(timeout, 1):g}s"
            if opened.process is None:
                message = f"{timed_out} opening a session (the command was never sent)"
                raise CommandTimeout(message, "", sent=False) from None
            raise CommandTimeout(timed_out, capture.stdout_text()) from None
        except (asyncssh.Error, OSError) as exc:
            raise HostError(_describe(exc)) from exc
        finally:
            _cycles.command_finished()
        status = process.exit_status
        if status is None:
            signal = process.exit_signal[0] if process.exit_signal else "unknown"
            status = 255
            capture.stderr.append(f"\nkilled by signal {signal}")
        return CommandResult(status, capture.stdout_text(), "".join(capture.stderr))

    def is_closed(self) -> bool:
        """Closed by us, or by the host or the network (an idle connection dropped)."""
        return self._closed or self._connection.is_closed()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _cycles.session_closed()
        self._connection.close()

    async def wait_closed(self) -> None:
        await self._connection.wait_closed()


async def _read_head(stream: asyncssh.SSHReader[str], capture: _Capture) -> None:
    while chunk := await stream.read(_CHUNK):
        if capture.stdout_size < OUTPUT_LIMIT:
            capture.stdout.append(chunk[: OUTPUT_LIMIT - capture.stdout_size])
        capture.stdout_size += len(chunk)
        capture.stdout_tail = (capture.stdout_tail + chunk[-_TAIL_KEPT:])[-_TAIL_KEPT:]


async def _read_tail(stream: asyncssh.SSHReader[str], capture: _Capture) -> None:
    while chunk := await stream.read(_CHUNK):
        capture.stderr.append(chunk)


class _FirstUse(asyncssh.SSHClient):
    """accept_new_host_keys: asyncssh asks this about a host key known_hosts does not trust. It is taken only when
    known_hosts has nothing for the host under any name asyncssh matched it by (its name or HostKeyAlias, its
    address, its port): a host seen for the first time. A key that differs from one listed, even under the host's
    address only, is refused, as without the option. The name and port a taken key was matched under are noted in
    `first_seen`: they are what the key must be saved under, so that the next run matches it."""

    def __init__(
        self, known_hosts: asyncssh.SSHKnownHosts, revoked_keys: frozenset[str], first_seen: list[tuple[str, int]]
    ) -> None:
        self._known_hosts, self._revoked_keys, self._first_seen = known_hosts, revoked_keys, first_seen

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        host_keys, ca_keys, revoked, *_ = self._known_hosts.match(host, addr, port)
        if host_keys or ca_keys or revoked or _key_text(key) in self._revoked_keys:
            return False
        self._first_seen.append((host, port))
        return True


def _key_text(key: asyncssh.SSHKey) -> str:
    """A public key as `type base64`, the way known_hosts writes it (no comment)."""
    return " ".join(key.export_public_key().decode().split()[:2])


def _revoked_keys(path: Path) -> frozenset[str]:
    """Every key an `@revoked` line of known_hosts names, whatever its host pattern: asyncssh does not match such a
    line written for a port (`@revoked [mw1]:2200 …`), and trust on first use must never take a revoked key."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return frozenset()
    revoked = (line.split() for line in lines if line.startswith("@revoked"))
    return frozenset(" ".join(fields[2:4]) for fields in revoked if len(fields) >= 4)


class Connector:
    """Opens sessions to hosts with the run's SSH settings; keys and known_hosts are read once.

    Host keys are always verified. With `accept_new_host_keys`, a host that known_hosts does not
    mention at all is trusted on first use and its key appended; a host whose key changed still fails.
    """

    def __init__(self, settings: SshSettings, connect_timeout: float) -> None:
        self._settings = settings
        self._connect_timeout = connect_timeout
        self._known_hosts = _read_known_hosts(settings)
        self._revoked = _revoked_keys(settings.known_hosts) if settings.accept_new_host_keys else frozenset()
        self._options = _client_options(settings, self._known_hosts, connect_timeout)
        self._jump: asyncio.Task[asyncssh.SSHClientConnection] | None = None
        self._early: dict[Host, asyncio.Task[Session]] = {}
        self._ssh_config = _ssh_config_files(settings)
        _check_ssh_config(self._ssh_config, named=settings.config_file is not None)
        _cycles.freeze_imports()

    def open_early(self, hosts: Iterable[Host]) -> None:
        """Start connecting to `hosts` now, in the background, for the `connect` that will ask for each (a run
        opens its first hosts' connections while the release is still being published)."""
        for host in hosts:
            if host not in self._early:
                self._early[host] = asyncio.ensure_future(self._open(host))

    async def connect(self, host: Host) -> Session:
        """An authenticated session to `host` (the one opened early, if any, unless it was dropped meanwhile),
        or ConnectError saying why not (bounded by connect_timeout)."""
        early = self._early.pop(host, None)
        if early is not None:
            session = await early
            if not session.is_closed():
                return session
            session.close()
        return await self._open(host)

    async def _open(self, host: Host) -> Session:
        began = time.monotonic()
        try:
            connection = await self._handshake(host)
        except HostError as exc:
            raise ConnectError(str(exc), time.monotonic() - began) from exc
        return Session(host, connection, time.monotonic() - began)

    async def _handshake(self, host: Host) -> asyncssh.SSHClientConnection:
        port = host.port or self._settings.port
        first_seen: list[tuple[str, int]] = []  # set by _FirstUse when it took the host's key as new
        kwargs: dict[str, Any] = {"options": self._options, "config": self._ssh_config}
        if port is not None:
            kwargs["port"] = port
        user = host.user or self._settings.user
        if user is not None:
            kwargs["username"] = user
        if self._settings.accept_new_host_keys:
            kwargs["client_factory"] = lambda: _FirstUse(self._known_hosts, self._revoked, first_seen)
        try:
            async with asyncio.timeout(self._connect_timeout):
                if self._settings.jump_host is not None:
                    kwargs["tunnel"] = await self._jump_connection()
                connection = await asyncssh.connect(host.name, **kwargs)
        except TimeoutError:
            raise HostError(f"connect timed out after {self._connect_timeout:g}s") from None
        except (asyncssh.Error, OSError, ValueError) as exc:  # ValueError: an ssh_config value for this host
            raise HostError(self._why_not(exc, host.name, port or 22)) from exc
        if first_seen:
            self._remember(*first_seen[-1], connection)
        return connection

    async def _jump_connection(self) -> asyncssh.SSHClientConnection:
        """One connection to the bastion, opened on first use and shared by every host (one channel each); opened
        again when the last attempt failed or the bastion dropped it (a host connecting again after its connection
        was lost mid-switch must not be handed the dead one)."""
        if self._jump is None or (
            self._jump.done() and (self._jump.exception() is not None or self._jump.result().is_closed())
        ):
            self._jump = asyncio.ensure_future(self._open_jump())
        try:
            return await asyncio.shield(self._jump)
        except HostError as exc:
            raise HostError(f"jump host {self._settings.jump_host}: {exc}") from exc

    async def _open_jump(self) -> asyncssh.SSHClientConnection:
        from sartoris.inventory import parse_host

        assert self._settings.jump_host is not None
        bastion = parse_host(self._settings.jump_host)
        kwargs: dict[str, Any] = {"options": self._options, "config": self._ssh_config}
        if bastion.port or self._settings.port:
            kwargs["port"] = bastion.port or self._settings.port
        if bastion.user or self._settings.user:
            kwargs["username"] = bastion.user or self._settings.user
        try:
            return await asyncssh.connect(bastion.name, **kwargs)
        except (asyncssh.Error, OSError) as exc:
            raise HostError(_describe(exc)) from exc

    async def close(self) -> None:
        """Close the connections opened early that no `connect` took, and the shared bastion connection, if one
        was opened (a later connect opens a new one)."""
        early, self._early = list(self._early.values()), {}
        for task in early:
            task.cancel()
        outcomes = await asyncio.gather(*early, return_exceptions=True)  # a session, or why there is none
        await close_sessions([s for s in outcomes if not isinstance(s, BaseException)])
        if self._jump is not None and not self._jump.done():
            self._jump.cancel()
        elif self._jump is not None and not self._jump.cancelled() and self._jump.exception() is None:
            self._jump.result().close()
        self._jump = None

    def _why_not(self, exc: BaseException, name: str, port: int) -> str:
        """Why connecting to `name` failed, in words that do not name it: a summary groups hosts by identical
        error, and asyncssh's own text (`Host key is not trusted for host mw1001`) would make one group a host."""
        if isinstance(exc, asyncssh.HostKeyNotVerifiable) and exc.reason.startswith("Host key is not trusted"):
            if self._is_known(name, port):
                return "host key not verifiable: the host's key differs from the one known_hosts has for it"
            # known_hosts may hold its key under an address or a HostKeyAlias that this name lookup does not try
            return "host key not verifiable: known_hosts has no key for this host, or a different one"
        return _describe(exc, name)

    def _is_known(self, name: str, port: int) -> bool:
        host_keys, ca_keys, revoked, *_ = self._known_hosts.match(name, "", port)
        return bool(host_keys or ca_keys or revoked)

    def _remember(self, name: str, port: int, connection: asyncssh.SSHClientConnection) -> None:
        """Append a first-seen host's key to known_hosts (the opt-in trust on first use), under the name and port
        asyncssh matched it by: an ssh config alias's HostName (or its HostKeyAlias) and Port, not the alias. Saved
        under the alias, the key was never matched again, so every run took whatever key the host showed as new."""
        key = connection.get_server_host_key()
        if key is None:
            return
        pattern = name if port == 22 else f"[{name}]:{port}"
        line = f"{pattern} {key.export_public_key().decode().split(chr(10))[0].strip()}\n"
        with open(self._settings.known_hosts, "a", encoding="ascii") as handle:
            handle.write(line)
        self._known_hosts.load(line)


async def close_sessions(sessions: Sequence[Session]) -> None:
    """Close `sessions` and wait (at most _CLOSE_TIMEOUT) for each host to see its connection end."""
    for session in sessions:
        session.close()
    if sessions:
        await asyncio.wait([asyncio.ensure_future(s.wait_closed()) for s in sessions], timeout=_CLOSE_TIMEOUT)


def ensure_open_files(connections: int) -> None:
    """Raise the soft open-files limit to what `connections` sockets need, or refuse with how to fix it."""
    needed = connections + 256  # pipes for subprocesses, sqlite, logs, the interpreter's own files
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise RefusedError(
            f"this run may hold {connections} SSH connections but the open-files limit is {hard};"
            f" raise it (ulimit -Hn {needed}) or target fewer hosts"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed if hard == resource.RLIM_INFINITY else hard, hard))


def _ssh_config_files(settings: SshSettings) -> list[str]:
    """The OpenSSH client config to honour: [ssh] config_file, else ~/.ssh/config when readable."""
    if settings.config_file is not None:
        return [str(settings.config_file)]
    default = os.path.expanduser("~/.ssh/config")  # left as is where there is no home: then unreadable
    return [default] if os.access(default, os.R_OK) else []


def _check_ssh_config(files: list[str], named: bool) -> None:
    """Parse the OpenSSH client config once up front, so a malformed file is a config error, not N failures;
    `named`: the file is [ssh] config_file (else ~/.ssh/config), which the error says."""
    for file in files:
        which = "[ssh] config_file" if named else "ssh config"
        try:
            asyncssh.SSHClientConnectionOptions(config=[file], host="sartoris-config-check.invalid")
        except OSError as exc:
            raise ConfigError(f"{which} {file}: cannot read: {exc.strerror or exc}") from None
        except (ValueError, asyncssh.Error) as exc:
            raise ConfigError(f"{which} {file}: {exc}") from None


def _read_known_hosts(settings: SshSettings) -> asyncssh.SSHKnownHosts:
    path = settings.known_hosts
    try:
        if settings.accept_new_host_keys and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o644)
        return asyncssh.read_known_hosts(str(path))
    except OSError as exc:  # its strerror alone: str() repeats the path the line already names
        raise ConfigError(f"cannot read known_hosts {path}: {exc.strerror or exc}") from exc
    except (asyncssh.Error, ValueError) as exc:
        raise ConfigError(f"cannot read known_hosts {path}: {exc}") from exc


# AES-GCM runs in hardware (AES-NI) at both ends; asyncssh's first choice, chacha20-poly1305, is partly computed
# in Python and cost about a fifth of a status run's controller CPU. The server still picks from its own list.
_PREFERRED_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


def _cipher_preference() -> list[str]:
    """asyncssh's default ciphers, AES-GCM first."""
    defaults = [alg.decode() for alg in asyncssh.encryption.get_default_encryption_algs()]
    preferred = [alg for alg in _PREFERRED_CIPHERS if alg in defaults]
    return preferred + [alg for alg in defaults if alg not in preferred]


def _client_options(
    settings: SshSettings, known_hosts: asyncssh.SSHKnownHosts, connect_timeout: float
) -> asyncssh.SSHClientConnectionOptions:
    kwargs: dict[str, Any] = {}
    if settings.identity_files:
        kwargs["client_keys"] = [key for path in settings.identity_files for key in _load_identity(path)]
    if not gss.gss_available:
        # Without the optional gssapi package asyncssh cannot use GSS, yet it would build (and fail) a GSS client
        # for every connection: about 4% of a status run's Python time. No GSS host says so once.
        kwargs["gss_host"] = None
    return asyncssh.SSHClientConnectionOptions(
        config=[],  # loaded per host in Connector (Host blocks match the host being connected)
        known_hosts=known_hosts,
        connect_timeout=connect_timeout,
        login_timeout=connect_timeout,
        keepalive_interval=settings.keepalive_interval,
        keepalive_count_max=3,
        compression_algs=None,
        encryption_algs=_cipher_preference(),
        **kwargs,
    )


def _load_identity(path: Path) -> Sequence[asyncssh.SSHKeyPair]:
    """The key pair(s) in one identity file, or a ConfigError naming the file and why it cannot be used (asyncssh's
    own words, `Invalid private key`, name neither the file nor, for a `.pub`, the likely mistake)."""
    try:
        return asyncssh.load_keypairs([str(path)])
    except OSError as exc:
        raise ConfigError(f"cannot read identity file {path}: {exc.strerror or exc}") from exc
    except (asyncssh.Error, ValueError) as exc:
        hint = " (a public key: name the private key, without .pub)" if path.suffix == ".pub" else ""
        raise ConfigError(f"cannot read identity file {path}: {exc}{hint}") from exc


def _describe(exc: BaseException, host: str | None = None) -> str:
    """A short, stable description of a connection failure (stable so hosts group by identical error): the name
    or address of the `host` it happened to is left out, asyncssh and asyncio quoting either in their text."""
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return f"host key not verifiable: {_without_host(exc.reason.partition(' for host ')[0], host)}"
    if isinstance(exc, asyncssh.PermissionDenied):
        return "authentication failed: permission denied"
    if isinstance(exc, asyncssh.ConnectionLost):
        return f"connection lost: {_without_host(exc.reason, host)}"
    if isinstance(exc, asyncssh.DisconnectError):
        return f"disconnected: {_without_host(exc.reason, host)}"
    if isinstance(exc, asyncssh.ChannelOpenError):
        return f"could not open a session: {_without_host(exc.reason, host)}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):  # the resolver's own words alone do not say what was looked up
        return f"cannot resolve the host name: {exc.strerror or exc}"
    if isinstance(exc, OSError) and exc.errno is not None and exc.errno > 0:  # (a resolver's errno is negative)
        return os.strerror(exc.errno)  # its strerror is asyncio's `Connect call failed ('10.0.0.1', 22)`
    if isinstance(exc, OSError) and exc.strerror:
        return _without_host(exc.strerror, host)
    return _without_host(str(exc), host) or type(exc).__name__


# asyncio's word for one address it could not connect to, as it is listed in "Multiple exceptions: …"
_CONNECT_CALL_FAILED = re.compile(r"\[Errno (\d+)\] Connect call failed \([^)]*\)")


def _without_host(text: str, host: str | None) -> str:
    """`text` without the addresses asyncio names and without `host` where it is quoted."""
    text = _CONNECT_CALL_FAILED.sub(lambda match: os.strerror(int(match[1])), text)
    if host:
        text = text.replace(f'"{host}"', "<host>").replace(f"'{host}'", "<host>")
    return text
