"""The transport without a fleet: what a failed host's error line says (short and telling), and the options every
connection starts from."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from sartoris.transport import ERROR_LINE_LIMIT, OUTPUT_LIMIT, CommandResult, _Capture, _read_head


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        pytest.param(
            "fatal: unable to write loose object file: No space left on device\nfatal: unpack-objects failed\n",
            "fatal: unable to write loose object file: No space left on device",
            id="first-fatal-is-the-cause",
        ),
        pytest.param(
            "error: unable to create temporary file: Read-only file system\nfatal: index-pack failed\n",
            "error: unable to create temporary file: Read-only file system",
            id="error-before-fatal",
        ),
        pytest.param(
            "noise\nsartoris: timed out after 58s (stopped on the host)\n",
            "sartoris: timed out after 58s (stopped on the host)",
            id="our-own-word-first",
        ),
        pytest.param("warning: x\nsomething broke\n", "something broke", id="last-line-otherwise"),
        pytest.param(
            "sartoris-wait: another run is switching /s/php-slot0 on this host: waiting for it to end\n"
            "sartoris: timed out after 4s (stopped on the host)\n",
            "sartoris: timed out after 4s (stopped on the host); before that: another run is switching /s/php-slot0"
            " on this host: waiting for it to end",
            id="a-wait-for-the-switch-lock-is-said-after-the-cause",
        ),
        pytest.param(
            "sartoris-wait: another run is switching /s/php-slot0 on this host: waiting for it to end\n"
            "fatal: unable to write new index file\n",
            "fatal: unable to write new index file; before that: another run is switching /s/php-slot0 on this"
            " host: waiting for it to end",
            id="a-wait-never-hides-gits-cause",
        ),
        pytest.param(
            "error: unable to write file big.txt\n"
            "fatal: sha1 file '/srv/.sartoris/php-slot0/trees/1f.building/.git/index.lock' write error. Out of"
            " diskspace\n",
            "error: unable to write file big.txt (Out of diskspace)",
            id="a-full-disk-git-names-only-in-a-later-line-is-kept",
        ),
        pytest.param(
            "error: unable to write file r3.php\nfatal: cannot create directory at 'x': No space left on device\n",
            "error: unable to write file r3.php (No space left on device)",
            id="no-space-left-on-device-is-kept",
        ),
        pytest.param(
            "sartoris-wait: another run is switching /s/php-slot0 on this host: waiting for it to end\n"
            "error: unable to write file big.txt\nfatal: unable to write new index file: Disk quota exceeded\n",
            "error: unable to write file big.txt (Disk quota exceeded); before that: another run is switching"
            " /s/php-slot0 on this host: waiting for it to end",
            id="a-quota-is-kept-before-the-wait-note",
        ),
        pytest.param(
            "sartoris-wait: another run is switching /s/php-slot0 on this host: waiting for it to end\n"
            "sartoris-note: the release did not build from a copy of the live tree: built from a fresh clone\n"
            "error: post-checkout refused\n",
            "error: post-checkout refused; before that: the release did not build from a copy of the live tree: built"
            " from a fresh clone; before that: another run is switching /s/php-slot0 on this host: waiting for it to"
            " end",
            id="a-quicker-start-that-did-not-build-is-said-after-the-fresh-clones-cause",
        ),
        pytest.param("", "exit status 3", id="silent-failure"),
    ],
)
def test_error_line_picks_the_cause(stderr: str, expected: str) -> None:
    """The error line is Sartoris's own message, else git's first fatal/error line, else the last line; a full disk
    another line names is kept."""
    assert CommandResult(3, "", stderr).error_line() == expected


def test_error_line_is_bounded() -> None:
    """One endless stderr line cannot flood the summary, the JSON or the history."""
    line = CommandResult(1, "", "fatal: " + "x" * 100_000).error_line()
    assert len(line) == ERROR_LINE_LIMIT and line.endswith("…")


def test_a_bounded_error_line_still_says_which_quicker_start_did_not_build_first() -> None:
    """A long error of the fresh clone's build is cut to make room for the note that a copy of the live tree did
    not build before it: that first failure, often the real cause, was only in --log-file."""
    note = "the release did not build from a copy of the live tree: built from a fresh clone"
    stderr = f"sartoris-note: {note}\nerror: unable to write file {'x' * 1000}\nfatal: No space left on device\n"
    line = CommandResult(1, "", stderr).error_line()
    assert len(line) <= ERROR_LINE_LIMIT and line.endswith(f"… (No space left on device); before that: {note}")


def test_a_bounded_error_line_keeps_a_long_note_and_the_wait_note_whole() -> None:
    """A note naming the slot path (over half the limit with its prefix) left too little room: the final cut
    trimmed the note and dropped the wait note. Room is made for every note before the line is cut, down to a
    third of the limit for the cause; past that, the last note (the wait) is what is cut."""
    slot = "/srv/deployment/" + "a" * 20 + "/php-slot0"
    note = f"the live tree {slot} has no usable .git (its objects/info/alternates is gone), so it could not be copied"
    wait = f"another run is switching {slot} on this host: waiting for it to end"
    stderr = f"sartoris-wait: {wait}\nsartoris-note: {note}\nfatal: could not create work tree dir {'x' * 200}\n"
    line = CommandResult(128, "", stderr).error_line()
    assert len(line) == ERROR_LINE_LIMIT and line.startswith("fatal: could not create work tree dir")
    assert f"; before that: {note}; before that: another run is switching" in line


def test_a_bounded_error_line_still_says_the_disk_is_full() -> None:
    """An error line cut to its limit keeps why the system refused the write, said on a later line."""
    stderr = f"error: unable to write file {'x' * 1000}\nfatal: No space left on device\n"
    line = CommandResult(1, "", stderr).error_line()
    assert len(line) == ERROR_LINE_LIMIT and line.endswith("… (No space left on device)")


def test_a_remedy_is_kept_whole_at_the_end_of_a_bounded_error_line() -> None:
    """What to do about a failure (a damaged store on the host) ends the error line whole: git's line is cut for it."""
    remedy = "(remove /srv/.sartoris/php-slot0/store.git there)"
    line = CommandResult(128, "", f"error: object file /srv/{'x' * 1000} is empty\n").error_line(remedy)
    assert len(line) == ERROR_LINE_LIMIT and line.endswith(f"… {remedy}") and line.startswith("error: object file")
    assert CommandResult(128, "", "fatal: short\n").error_line(remedy) == f"fatal: short {remedy}"


def test_connections_skip_gss_unless_gssapi_is_installed(tmp_path: Path) -> None:
    """Without the gssapi package no GSS host is set (asyncssh would build and fail a GSS client per connection);
    with it, asyncssh's own default (the host being connected) stands."""
    from asyncssh import gss

    from sartoris.config import SshSettings
    from sartoris.transport import Connector

    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    connector = Connector(SshSettings(known_hosts=known_hosts, config_file=None), connect_timeout=5)
    options = connector._options  # the options every connection is built from
    assert options.gss_host == (() if gss.gss_available else None)


def test_a_known_hosts_file_that_cannot_be_created_is_a_config_error(tmp_path: Path) -> None:
    """With accept_new_host_keys, a missing known_hosts is created; when its folder cannot be (a file is in the
    way), that is a ConfigError naming the file (exit 2), not an unexpected error."""
    from sartoris.config import SshSettings
    from sartoris.errors import ConfigError
    from sartoris.transport import Connector

    (tmp_path / "ssh").write_text("a file, not a folder")
    known_hosts = tmp_path / "ssh" / "known_hosts"
    with pytest.raises(ConfigError) as caught:
        Connector(SshSettings(known_hosts=known_hosts, config_file=None, accept_new_host_keys=True), 5)
    assert str(caught.value) == f"cannot read known_hosts {known_hosts}: File exists"  # the path said once


def test_a_missing_known_hosts_names_its_path_once(tmp_path: Path) -> None:
    """A missing known_hosts said "cannot read known_hosts /x: [Errno 2] No such file or directory: '/x'", the
    system's text repeating the path; the line now ends with the reason alone, as an identity file's does."""
    from sartoris.config import SshSettings
    from sartoris.errors import ConfigError
    from sartoris.transport import Connector

    known_hosts = tmp_path / "known_hosts"
    with pytest.raises(ConfigError) as caught:
        Connector(SshSettings(known_hosts=known_hosts, config_file=None), 5)
    assert str(caught.value) == f"cannot read known_hosts {known_hosts}: No such file or directory"


def test_no_home_directory_leaves_the_default_paths_unexpanded(monkeypatch: pytest.MonkeyPatch) -> None:
    """HOME unset and no passwd entry (a container's arbitrary uid): `~` stays as written, so the file is just not
    found, instead of pathlib's RuntimeError making every command an unexpected error."""
    import pwd

    from sartoris.config import SshSettings, _local_path
    from sartoris.transport import _ssh_config_files

    def no_entry(uid: int) -> pwd.struct_passwd:
        raise KeyError(uid)

    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    assert _local_path("~/.ssh/known_hosts", Path("/base")) == Path("/base/~/.ssh/known_hosts")
    assert _ssh_config_files(SshSettings(config_file=None)) == []


class _StandInSession:
    """What the connector hands out, standing in for an authenticated connection."""

    def __init__(self, name: str, dropped: bool = False) -> None:
        self.name, self.dropped, self.closed = name, dropped, False

    def is_closed(self) -> bool:
        return self.dropped or self.closed

    def close(self) -> None:
        self.closed = True

    async def wait_closed(self) -> None:
        pass


async def test_connections_opened_early_are_handed_out_reopened_if_dropped_and_closed_if_unused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`connect` takes the connection `open_early` opened; one the host dropped meanwhile is opened again; `close`
    closes the ones nobody took and cancels those still connecting."""
    import asyncio

    from sartoris.config import SshSettings
    from sartoris.inventory import parse_host
    from sartoris.transport import Connector

    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    connector = Connector(SshSettings(known_hosts=known_hosts, config_file=None), connect_timeout=5)
    opened: list[_StandInSession] = []
    slow = asyncio.Event()

    async def open_session(host: object) -> _StandInSession:
        name = str(host)
        if name == "slow":
            await slow.wait()  # never set: still connecting when the run ends
        session = _StandInSession(name, dropped=name == "dropped" and not any(s.name == name for s in opened))
        opened.append(session)
        return session

    monkeypatch.setattr(connector, "_open", open_session)
    kept, dropped, unused, slow_host = (parse_host(n) for n in ("kept", "dropped", "unused", "slow"))
    connector.open_early([kept, dropped, unused, slow_host])
    await asyncio.sleep(0)
    first = await connector.connect(kept)
    assert first is opened[0] and not first.closed
    again = await connector.connect(dropped)
    assert [s.name for s in opened].count("dropped") == 2 and again is opened[-1] and opened[1].closed
    await connector.close()
    assert next(s for s in opened if s.name == "unused").closed
    assert not first.closed and not again.closed  # those belong to the run, which closes them itself
    assert "slow" not in [s.name for s in opened]  # cancelled while connecting


def test_stdout_past_the_limit_keeps_its_last_lines() -> None:
    """A script's closing marker is its last line: output past OUTPUT_LIMIT (a chatty git hook) drops the middle,
    never the end."""
    capture = _Capture()
    stdout = _TextStream(("x" * 99 + "\n") * 2000 + "sartoris-phase:done\nsartoris-script:end\n")  # 200 KB
    asyncio.run(_read_head(stdout, capture))  # type: ignore[arg-type]
    text = capture.stdout_text()
    assert text.startswith("x" * 99 + "\n") and len(text) < OUTPUT_LIMIT + 2048
    assert text.splitlines()[-2:] == ["sartoris-phase:done", "sartoris-script:end"]
    markers = ("[...]", "sartoris-phase:done", "sartoris-script:end")
    assert all(set(line) == {"x"} or line in markers for line in text.splitlines())


class _TextStream:
    """A channel's stdout as asyncssh gives it to _read_head: text, read in chunks of at most n characters."""

    def __init__(self, text: str) -> None:
        self._text = text

    async def read(self, n: int) -> str:
        chunk, self._text = self._text[:n], self._text[n:]
        return chunk


async def test_a_bastion_connection_that_dropped_is_opened_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection to the jump host is shared; once the bastion dropped it (every host's connection through it
    lost at once), the next host to connect, a look after a lost switch included, gets a new one, not the dead."""
    from sartoris.config import SshSettings
    from sartoris.transport import Connector

    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    settings = SshSettings(known_hosts=known_hosts, config_file=None, jump_host="bastion")
    connector = Connector(settings, connect_timeout=5)
    opened: list[_StandInSession] = []

    async def open_jump() -> _StandInSession:
        opened.append(_StandInSession(f"bastion{len(opened)}"))
        return opened[-1]

    monkeypatch.setattr(connector, "_open_jump", open_jump)
    first = await connector._jump_connection()
    assert await connector._jump_connection() is first and len(opened) == 1  # shared while it lives
    first.dropped = True
    second = await connector._jump_connection()
    assert second is not first and [s.name for s in opened] == ["bastion0", "bastion1"]


async def _host_key_failures(
    tmp_path: Path, known: str, names: tuple[str, ...], accept_new: bool = False
) -> list[str]:
    """The connect error of each of `names` against one real SSH server on a loopback port, its key unknown to a
    known_hosts holding `known` (`{port}` filled in)."""
    import asyncssh

    from sartoris.config import SshSettings
    from sartoris.inventory import parse_host
    from sartoris.transport import ConnectError, Connector

    server = await asyncssh.create_server(
        asyncssh.SSHServer, "127.0.0.1", 0, server_host_keys=[asyncssh.generate_private_key("ssh-ed25519")]
    )
    try:
        port = server.sockets[0].getsockname()[1]
        known_hosts = tmp_path / "known_hosts"
        known_hosts.write_text(known.format(port=port))
        settings = SshSettings(known_hosts=known_hosts, config_file=None, accept_new_host_keys=accept_new)
        connector = Connector(settings, connect_timeout=5)
        errors = []
        for name in names:
            with pytest.raises(ConnectError) as failed:
                await connector.connect(parse_host(f"{name}:{port}"))
            errors.append(str(failed.value))
        return errors
    finally:
        server.close()
        await server.wait_closed()


async def test_hosts_whose_key_is_unknown_share_one_error_line(tmp_path: Path) -> None:
    """asyncssh names the host in its host-key error; the error line does not, so a fleet missing from known_hosts
    is one group in the summary, not one group a host, and the line says what is wrong."""
    errors = await _host_key_failures(tmp_path, "", ("127.0.0.1", "localhost"))
    assert errors == ["host key not verifiable: known_hosts has no key for this host, or a different one"] * 2


async def test_a_host_whose_key_changed_is_told_from_one_never_seen(tmp_path: Path) -> None:
    """A host known_hosts has a different key for fails with a line saying so (a reinstalled server, or a man in
    the middle), not the line of a host it has never seen."""
    import asyncssh

    other_key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    errors = await _host_key_failures(tmp_path, f"[127.0.0.1]:{{port}} {other_key}\n", ("127.0.0.1",))
    assert errors == ["host key not verifiable: the host's key differs from the one known_hosts has for it"]


async def test_trust_on_first_use_refuses_a_host_whose_address_known_hosts_lists_with_another_key(
    tmp_path: Path,
) -> None:
    """accept_new_host_keys took a host as first seen when known_hosts did not list the name it was reached by, and
    accepted any key, though known_hosts listed its address with another: a man in the middle got through. Only a
    host known_hosts has nothing for, under its name or its address, is new now."""
    import asyncssh

    other_key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    errors = await _host_key_failures(tmp_path, f"[127.0.0.1]:{{port}} {other_key}\n", ("localhost",), accept_new=True)
    assert errors and errors[0].startswith("host key not verifiable")
    assert "localhost" not in (tmp_path / "known_hosts").read_text()  # nothing was learnt


async def test_trust_on_first_use_never_takes_a_key_known_hosts_revokes(tmp_path: Path) -> None:
    """`@revoked [host]:port key` is a line asyncssh does not match, so a host under it looked never seen, and its
    revoked key was taken and saved as trusted (OpenSSH's accept-new refuses it)."""
    import asyncssh

    from sartoris.config import SshSettings
    from sartoris.inventory import parse_host
    from sartoris.transport import ConnectError, Connector

    key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.create_server(asyncssh.SSHServer, "127.0.0.1", 0, server_host_keys=[key])
    try:
        port = server.sockets[0].getsockname()[1]
        known_hosts = tmp_path / "known_hosts"
        known_hosts.write_text(f"@revoked [127.0.0.1]:{port} {key.export_public_key().decode().strip()}\n")
        settings = SshSettings(known_hosts=known_hosts, config_file=None, accept_new_host_keys=True)
        with pytest.raises(ConnectError, match="host key not verifiable"):
            await Connector(settings, connect_timeout=5).connect(parse_host(f"127.0.0.1:{port}"))
        assert known_hosts.read_text().count("\n") == 1  # nothing learnt
    finally:
        server.close()
        await server.wait_closed()


async def test_trust_on_first_use_pins_a_host_reached_through_an_ssh_config_alias(tmp_path: Path) -> None:
    """A host reached by an ssh config alias had its first-seen key saved under the alias, while asyncssh matches
    known_hosts by the alias's HostName and Port: the key never matched again, so every run took whatever key the
    host showed as new, a changed one too. The key is saved under what asyncssh matched, and a changed key fails."""
    import asyncssh

    from sartoris.config import SshSettings
    from sartoris.inventory import parse_host
    from sartoris.transport import ConnectError, Connector, close_sessions

    class _Open(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return False  # no authentication: the host key is what is under test

    first, second = (asyncssh.generate_private_key("ssh-ed25519") for _ in range(2))
    server = await asyncssh.create_server(_Open, "127.0.0.1", 0, server_host_keys=[first])
    port = server.sockets[0].getsockname()[1]
    ssh_config, known_hosts = tmp_path / "ssh_config", tmp_path / "known_hosts"
    ssh_config.write_text(f"Host web1\n  HostName 127.0.0.1\n  Port {port}\n")
    settings = SshSettings(known_hosts=known_hosts, config_file=ssh_config, accept_new_host_keys=True)
    try:
        for _ in range(2):  # two runs: the second matches what the first saved, and saves nothing more
            await close_sessions([await Connector(settings, connect_timeout=5).connect(parse_host("web1"))])
        assert known_hosts.read_text() == f"[127.0.0.1]:{port} {_key_text(first)}\n"
    finally:
        server.close()
        await server.wait_closed()
    server = await asyncssh.create_server(_Open, "127.0.0.1", port, server_host_keys=[second])
    try:
        with pytest.raises(ConnectError, match="host key not verifiable"):
            await Connector(settings, connect_timeout=5).connect(parse_host("web1"))
        assert known_hosts.read_text().count("\n") == 1
    finally:
        server.close()
        await server.wait_closed()


def _key_text(key: object) -> str:
    """A private key's public half as known_hosts writes it: `type base64`."""
    return " ".join(key.export_public_key().decode().split()[:2])  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        pytest.param(
            OSError(113, "Connect call failed ('10.64.0.7', 22)"), "No route to host", id="asyncio-names-the-address"
        ),
        pytest.param(
            OSError(
                "Multiple exceptions: [Errno 111] Connect call failed ('::1', 22, 0, 0), "
                "[Errno 101] Connect call failed ('10.64.0.7', 22)"
            ),
            "Multiple exceptions: Connection refused, Network is unreachable",
            id="every-address-failed-differently",
        ),
        pytest.param(
            OSError('Unable to canonicalize hostname "mw1007.eqiad.wmnet"'),
            "Unable to canonicalize hostname <host>",
            id="asyncssh-quotes-the-name",
        ),
        pytest.param(
            socket.gaierror(-2, "Name or service not known"),
            "cannot resolve the host name: Name or service not known",
            id="resolver",
        ),
        pytest.param(
            ConnectionRefusedError(111, "Connect call failed ('10.64.0.7', 22)"), "connection refused", id="refused"
        ),
    ],
)
def test_a_connect_error_does_not_name_the_host(error: Exception, expected: str) -> None:
    """Whatever names the host's name or address in an OS or asyncio error is left out of the line, so hosts
    failing for one cause group together."""
    from sartoris.transport import _describe

    assert _describe(error, "mw1007.eqiad.wmnet") == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(None, "No such file or directory", id="missing"),
        pytest.param("Host *\n  Port abc\n", "Invalid Port integer value: abc", id="port-abc"),
    ],
)
def test_an_ssh_config_file_that_cannot_be_used_is_a_config_error_before_any_host(
    tmp_path: Path, text: str | None, message: str
) -> None:
    """[ssh] config_file missing or unparsable is one ConfigError naming the file when the run's connector is built,
    before any host is contacted (docs/sartoris.toml.md says exit 2 before anything is tagged), not a failure of
    every host at connect nor a traceback."""
    from sartoris.config import SshSettings
    from sartoris.errors import ConfigError
    from sartoris.transport import Connector

    known_hosts, ssh_config = tmp_path / "known_hosts", tmp_path / "ssh_config"
    known_hosts.write_text("")
    if text is not None:
        ssh_config.write_text(text)
    with pytest.raises(ConfigError, match=rf"^\[ssh\] config_file {ssh_config}: .*{message}"):
        Connector(SshSettings(known_hosts=known_hosts, config_file=ssh_config), connect_timeout=5)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        pytest.param("encrypted", "Passphrase must be specified", id="encrypted"),
        pytest.param("public", "Invalid private key (a public key: name the private key, without .pub)", id="pub"),
        pytest.param("missing", "No such file or directory", id="missing"),
    ],
)
def test_an_identity_file_that_cannot_be_used_is_named(tmp_path: Path, make: str, reason: str) -> None:
    """Of several identity files, the one that cannot be used is named in the ConfigError with why (asyncssh's
    `Invalid private key` alone left the operator to guess which file, and that a .pub is the wrong half)."""
    import asyncssh

    from sartoris.config import SshSettings
    from sartoris.errors import ConfigError
    from sartoris.transport import Connector

    key = asyncssh.generate_private_key("ssh-ed25519")
    good, bad = tmp_path / "id_good", tmp_path / "id_bad"
    key.write_private_key(good)
    if make == "encrypted":
        key.write_private_key(bad, format_name="pkcs8-pem", passphrase="secret")  # (openssh format needs bcrypt)
    elif make == "public":
        bad = tmp_path / "id_bad.pub"
        key.write_public_key(bad)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    settings = SshSettings(known_hosts=known_hosts, config_file=None, identity_files=(good, bad))
    with pytest.raises(ConfigError) as caught:
        Connector(settings, connect_timeout=5)
    assert str(caught.value).startswith(f"cannot read identity file {bad}: {reason}")


class _RefusedChannel:
    """An asyncssh connection whose every new channel fails as given."""

    def __init__(self, error: Exception) -> None:
        self._error = error

    async def create_session(self, *args: object, **kwargs: object) -> None:
        raise self._error

    def is_closed(self) -> bool:
        return False

    def close(self) -> None:
        """Nothing to close."""


@pytest.mark.parametrize(
    ("code", "reason", "never_started"),
    [
        pytest.param(2, "SSH connection closed", True, id="connection-found-closed"),
        pytest.param(1, "open failed", True, id="channel-refused-by-the-host"),
        pytest.param(0xFFFFFFFF, "Session request failed", False, id="lost-once-the-command-was-sent"),
    ],
)
async def test_a_command_that_never_reached_the_host_is_told_from_one_that_may_have_started(
    code: int, reason: str, never_started: bool
) -> None:
    """A session that could not be opened (the connection found closed, the channel refused) raises NotStarted: the
    command was never sent. A failed exec request (refused, or the connection lost while it was in flight, when the
    host may have started the command) stays a plain HostError."""
    import asyncssh

    from sartoris.inventory import Host
    from sartoris.transport import HostError, NotStarted, Session

    refused = _RefusedChannel(asyncssh.ChannelOpenError(code, reason))
    session = Session(Host("mw1", "mw1"), refused, 0.0)  # type: ignore[arg-type]
    with pytest.raises(HostError) as raised:
        await session.run("true", timeout=5)
    assert isinstance(raised.value, NotStarted) is never_started
    assert str(raised.value) == f"could not open a session: {reason}"


class _FrozenChannel:
    """An asyncssh connection that stops answering while a command's session opens: before the host confirmed the
    channel (`confirmed` False), or once it did, when asyncssh has sent the command (it made the session)."""

    def __init__(self, confirmed: bool) -> None:
        self._confirmed = confirmed

    async def create_session(self, factory: Callable[[], object], *args: object, **kwargs: object) -> None:
        if self._confirmed:
            factory()
        await asyncio.Event().wait()  # no answer, ever

    def is_closed(self) -> bool:
        return False

    def close(self) -> None:
        """Nothing to close."""


@pytest.mark.parametrize("confirmed", [False, True], ids=["frozen-before-the-channel-opened", "frozen-after"])
async def test_a_timeout_says_whether_the_command_was_ever_sent(confirmed: bool) -> None:
    """A connection that froze while a command's session opened timed out like one whose command ran on the host,
    and a switch was then looked at on a new connection though it never ran. A timeout now says whether the command
    was sent: never, while the host had not opened the session (certain: asyncssh sends it once it made the
    session); maybe, once it had."""
    from sartoris.inventory import Host
    from sartoris.transport import CommandTimeout, Session

    session = Session(Host("mw1", "mw1"), _FrozenChannel(confirmed), 0.0)  # type: ignore[arg-type]
    with pytest.raises(CommandTimeout) as raised:
        await session.run("true", timeout=0.2, stdin="script")
    assert raised.value.sent is confirmed
    never = "timed out after 0.2s opening a session (the command was never sent)"
    assert str(raised.value) == ("timed out after 0.2s" if confirmed else never)
