"""Tests for the shipped hooks in scripts/hooks/, run as subprocesses against tiny servers on 127.0.0.1."""

from __future__ import annotations

import contextlib
import http.server
import importlib.machinery
import importlib.util
import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

HOOKS = Path(__file__).resolve().parents[2] / "scripts" / "hooks"
SCRIPTS = ("purge-varnish", "notify-webhook", "notify-irc")
TAG = "mediawiki/php-slot0/2024-05-01T10.00.00"
RUN = {
    "SARTORIS_NAME": "mediawiki",
    "SARTORIS_ACTION": "sync",
    "SARTORIS_PHASE": "post-sync",
    "SARTORIS_SLOT": "0",
    "SARTORIS_PREFIX": "php-slot0",
    "SARTORIS_TAG": TAG,
    "SARTORIS_OUTCOME": "ok",
    "SARTORIS_FAILED_HOSTS": "",
    "SARTORIS_MESSAGE": "",
}


@dataclass
class Recorded:
    """One HTTP request a test server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class RecordingServer(http.server.ThreadingHTTPServer):
    """An HTTP server that records every request and answers with a status the test chooses."""

    status = 200
    requests: list[Recorded]

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.server_address[1]}/"


class RecordingHandler(http.server.BaseHTTPRequestHandler):
    """Record the request, answer with the server's status."""

    server: RecordingServer

    def _record(self) -> None:
        """Store method, path, headers and body, then answer."""
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.server.requests.append(Recorded(self.command, self.path, dict(self.headers.items()), body))
        self.send_response(self.server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_BAN = do_POST = _record

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""


@dataclass
class FakeIrc:
    """What the fake IRC server saw, and how it should answer a PRIVMSG."""

    port: int
    lines: list[str] = field(default_factory=list)
    privmsg_reply: str | None = None


class IrcHandler(socketserver.StreamRequestHandler):
    """Speak just enough IRC: PING then 001 after USER, an optional reply to PRIVMSG, close after QUIT."""

    def handle(self) -> None:
        """Record each line the client sends and answer like a server would."""
        state: FakeIrc = self.server.state  # type: ignore[attr-defined]
        self.connection.settimeout(10)
        for raw in self.rfile:
            line = raw.decode().rstrip("\r\n")
            state.lines.append(line)
            if line.startswith("USER "):
                self.wfile.write(b"PING :check\r\n:srv 001 sartoris :welcome\r\n")
            elif line.startswith("PRIVMSG ") and state.privmsg_reply:
                self.wfile.write(state.privmsg_reply.encode() + b"\r\n")
            elif line.startswith("QUIT"):
                self.wfile.write(b"ERROR :Closing link\r\n")
                return


@contextlib.contextmanager
def serving(server: socketserver.BaseServer) -> Iterator[None]:
    """Run `server` in a thread while the block runs; always shut it down and close its socket."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def http_server() -> Iterator[RecordingServer]:
    """A recording HTTP server on 127.0.0.1, a free port."""
    server = RecordingServer(("127.0.0.1", 0), RecordingHandler)
    server.requests = []
    with serving(server):
        yield server


@pytest.fixture
def second_http_server() -> Iterator[RecordingServer]:
    """Another recording HTTP server, for several caches."""
    server = RecordingServer(("127.0.0.1", 0), RecordingHandler)
    server.requests = []
    with serving(server):
        yield server


@pytest.fixture
def irc_server() -> Iterator[FakeIrc]:
    """A fake IRC server on 127.0.0.1, a free port."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), IrcHandler)
    server.daemon_threads = True
    state = FakeIrc(port=server.server_address[1])
    server.state = state  # type: ignore[attr-defined]
    with serving(server):
        yield state


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections but never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield int(listener.getsockname()[1])


def run_script(name: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run a hook script with only PATH and `env` in its environment (no proxies from the test runner)."""
    return subprocess.run(
        [sys.executable, str(HOOKS / name), *args],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def load(name: str) -> ModuleType:
    """Import a hook script (no .py suffix) as a module."""
    loader = importlib.machinery.SourceFileLoader(name.replace("-", "_"), str(HOOKS / name))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_is_executable_with_help(name: str) -> None:
    """Each script is executable, starts with the python3 shebang, and prints its usage on --help."""
    path = HOOKS / name
    assert os.access(path, os.X_OK)
    assert path.read_text().startswith("#!/usr/bin/env python3\n")
    result = subprocess.run([str(path), "--help"], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0
    assert "usage" in result.stdout.lower()


def test_purge_sends_ban_to_every_cache(http_server: RecordingServer, second_http_server: RecordingServer) -> None:
    """purge-varnish sends BAN with X-Ban-Url and X-Ban-Host to each space-separated cache URL."""
    env = {
        **RUN,
        "SARTORIS_PURGE_URL": f"{http_server.url} {second_http_server.url}",
        "SARTORIS_PURGE_PATTERN": "^/wiki/",
        "SARTORIS_PURGE_HOST": "en.wikipedia.org",
        "SARTORIS_PURGE_TIMEOUT": "5",
    }
    result = run_script("purge-varnish", env)
    assert result.returncode == 0, result.stderr
    for server in (http_server, second_http_server):
        [request] = server.requests
        assert (request.method, request.path) == ("BAN", "/")
        assert request.headers["X-Ban-Url"] == "^/wiki/"
        assert request.headers["X-Ban-Host"] == "en.wikipedia.org"


def test_purge_defaults_from_argument(http_server: RecordingServer) -> None:
    """A URL given as argument is used, the pattern defaults to "." and no X-Ban-Host is sent."""
    result = run_script("purge-varnish", {"SARTORIS_OUTCOME": ""}, http_server.url + "varnish")
    assert result.returncode == 0, result.stderr
    [request] = http_server.requests
    assert (request.method, request.path, request.headers["X-Ban-Url"]) == ("BAN", "/varnish", ".")
    assert "X-Ban-Host" not in request.headers


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        pytest.param(500, "rejected: 500 Internal Server Error", id="500"),
        pytest.param(405, "rejected: 405 Method Not Allowed", id="405"),
    ],
)
def test_purge_fails_when_cache_rejects(http_server: RecordingServer, status: int, expected: str) -> None:
    """A cache answering >= 400 makes purge-varnish exit 1 with one line naming the cache and status."""
    http_server.status = status
    result = run_script("purge-varnish", {"SARTORIS_PURGE_URL": http_server.url})
    assert result.returncode == 1
    assert result.stderr == f"purge-varnish: 1 of 1 caches failed: {http_server.url}: {expected}\n"


def test_purge_fails_when_cache_unreachable(http_server: RecordingServer, closed_port: int) -> None:
    """A closed port fails the purge with one line, even when another cache accepted the ban."""
    dead = f"http://127.0.0.1:{closed_port}/"
    result = run_script("purge-varnish", {"SARTORIS_PURGE_URL": f"{http_server.url} {dead}"})
    assert result.returncode == 1
    assert result.stderr == f"purge-varnish: 1 of 2 caches failed: {dead}: cannot connect: Connection refused\n"
    assert len(http_server.requests) == 1


def test_purge_skipped_when_sync_aborted(http_server: RecordingServer) -> None:
    """After an aborted sync nothing changed, so purge-varnish sends nothing and succeeds."""
    result = run_script("purge-varnish", {**RUN, "SARTORIS_OUTCOME": "aborted", "SARTORIS_PURGE_URL": http_server.url})
    assert result.returncode == 0
    assert http_server.requests == []
    assert "not purging" in result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["ftp://cache/"], "purge-varnish: not an http(s) URL: ftp://cache/\n", id="scheme"),
        pytest.param(
            ["--timeout", "0", "http://cache/"],
            "purge-varnish: the timeout must be a positive number of seconds\n",
            id="timeout",
        ),
    ],
)
def test_purge_bad_usage_is_one_line(args: list[str], expected: str) -> None:
    """Bad arguments exit 2 with one line, not argparse's usage block."""
    result = run_script("purge-varnish", {}, *args)
    assert (result.returncode, result.stderr) == (2, expected)


def test_purge_without_url_is_usage_error() -> None:
    """Without any cache URL purge-varnish exits 2 and says what is missing."""
    result = run_script("purge-varnish", {})
    assert result.returncode == 2
    assert "SARTORIS_PURGE_URL" in result.stderr


@pytest.mark.parametrize(
    ("run", "text"),
    [
        pytest.param({}, f"mediawiki: sync of php-slot0 to {TAG} finished: ok", id="ok"),
        pytest.param(
            {"SARTORIS_OUTCOME": "partial", "SARTORIS_FAILED_HOSTS": "mw1001 mw1002"},
            f"mediawiki: sync of php-slot0 to {TAG} finished: partial, failed (2): mw1001 mw1002",
            id="partial",
        ),
        pytest.param(
            {"SARTORIS_OUTCOME": "partial", "SARTORIS_FAILED_HOSTS": "mw1001", "SARTORIS_NOT_SWITCHED_HOSTS": "a b c"},
            f"mediawiki: sync of php-slot0 to {TAG} finished: partial, 3 host(s) not switched"
            " (still on the old release), failed (1): mw1001",
            id="partial-with-hosts-not-switched",
        ),
        pytest.param(
            {"SARTORIS_OUTCOME": "partial", "SARTORIS_FAILED_HOSTS": "mw1001 mw1002", "SARTORIS_FAILED_COUNT": "5",
             "SARTORIS_NOT_SWITCHED_HOSTS": "a b", "SARTORIS_NOT_SWITCHED_COUNT": "4000"},
            f"mediawiki: sync of php-slot0 to {TAG} finished: partial, 4000 host(s) not switched (still on the old"
            " release), failed (5): mw1001 mw1002 (+3 more)",
            id="lists-cut-for-a-large-fleet",
        ),
        pytest.param(
            {"SARTORIS_OUTCOME": "aborted", "SARTORIS_FAILED_HOSTS": "mw1001"},
            f"mediawiki: sync of php-slot0 to {TAG} ABORTED, failed (1): mw1001",
            id="aborted",
        ),
        pytest.param(
            {"SARTORIS_PHASE": "pre-sync", "SARTORIS_OUTCOME": ""},
            f"mediawiki: sync of php-slot0 to {TAG} starting",
            id="pre-sync",
        ),
        pytest.param(
            {"SARTORIS_ACTION": "rollback", "SARTORIS_PHASE": "post-rollback", "SARTORIS_MESSAGE": "bad config"},
            f"mediawiki: rollback of php-slot0 to {TAG} finished: ok (bad config)",
            id="rollback-with-message",
        ),
        pytest.param(
            {"SARTORIS_ACTION": "abort", "SARTORIS_PHASE": "abort", "SARTORIS_OUTCOME": "", "SARTORIS_TAG": ""},
            "mediawiki: deploy of php-slot0 ABORTED",
            id="abort-command",
        ),
    ],
)
def test_webhook_posts_text(http_server: RecordingServer, run: dict[str, str], text: str) -> None:
    """notify-webhook POSTs {"text": ...} plus the run's fields; an aborted run is never "finished: ok"."""
    env = {**RUN, **run, "SARTORIS_WEBHOOK_URL": http_server.url + "hooks/T0K3N"}
    result = run_script("notify-webhook", env)
    assert result.returncode == 0, result.stderr
    [request] = http_server.requests
    assert (request.method, request.path) == ("POST", "/hooks/T0K3N")
    assert request.headers["Content-Type"] == "application/json"
    body = json.loads(request.body)
    assert body["text"] == text
    assert body["sartoris"]["not_switched_hosts"] == run.get("SARTORIS_NOT_SWITCHED_HOSTS", "").split()
    listed = len(run.get("SARTORIS_NOT_SWITCHED_HOSTS", "").split())
    assert body["sartoris"]["not_switched_count"] == int(run.get("SARTORIS_NOT_SWITCHED_COUNT") or listed)
    assert body["sartoris"]["outcome"] == (env["SARTORIS_OUTCOME"] or None)
    assert body["sartoris"]["failed_hosts"] == env["SARTORIS_FAILED_HOSTS"].split()
    if env["SARTORIS_OUTCOME"] == "aborted":
        assert "finished: ok" not in body["text"]


def test_webhook_failure_hides_token(http_server: RecordingServer) -> None:
    """A rejected webhook exits 1 with one line that does not print the URL's secret path."""
    http_server.status = 404
    result = run_script("notify-webhook", {**RUN, "SARTORIS_WEBHOOK_URL": http_server.url + "hooks/T0K3N"})
    assert result.returncode == 1
    assert result.stderr == f"notify-webhook: {http_server.url.rstrip('/')}: rejected: 404 Not Found\n"


def test_webhook_unreachable_fails(closed_port: int) -> None:
    """A webhook nobody listens on exits 1 with one line."""
    result = run_script("notify-webhook", {**RUN, "SARTORIS_WEBHOOK_URL": f"http://127.0.0.1:{closed_port}/x"})
    assert result.returncode == 1
    assert result.stderr == f"notify-webhook: http://127.0.0.1:{closed_port}: cannot reach: Connection refused\n"


@pytest.mark.parametrize(
    ("name", "env", "expected"),
    [
        pytest.param(
            "purge-varnish",
            {"SARTORIS_PURGE_URL": "http://127.0.0.1:{port}/", "SARTORIS_PURGE_TIMEOUT": "1"},
            "purge-varnish: 1 of 1 caches failed: http://127.0.0.1:{port}/: no answer within 1s",
            id="purge-varnish",
        ),
        pytest.param(
            "notify-webhook",
            {"SARTORIS_WEBHOOK_URL": "http://127.0.0.1:{port}/T0K3N", "SARTORIS_WEBHOOK_TIMEOUT": "1"},
            "notify-webhook: http://127.0.0.1:{port}: no answer within 1s",
            id="notify-webhook",
        ),
        pytest.param(
            "notify-irc",
            {"SARTORIS_IRC_SERVER": "127.0.0.1:{port}", "SARTORIS_IRC_CHANNEL": "#ops", "SARTORIS_IRC_TIMEOUT": "1"},
            "notify-irc: 127.0.0.1:{port}: timed out waiting for the server's welcome (001)",
            id="notify-irc",
        ),
    ],
)
def test_silent_server_times_out(silent_port: int, name: str, env: dict[str, str], expected: str) -> None:
    """A server that accepts but never answers fails the script with one line once its timeout passes."""
    filled = {key: value.format(port=silent_port) for key, value in env.items()}
    started = time.monotonic()
    result = run_script(name, {**RUN, **filled})
    assert result.returncode == 1
    assert result.stderr == expected.format(port=silent_port) + "\n"
    assert time.monotonic() - started < 10


def test_irc_joins_and_sends_privmsg(irc_server: FakeIrc) -> None:
    """notify-irc registers, answers PING, waits for 001, then JOINs, sends one PRIVMSG and QUITs."""
    env = {
        **RUN,
        "SARTORIS_OUTCOME": "aborted",
        "SARTORIS_IRC_SERVER": f"127.0.0.1:{irc_server.port}",
        "SARTORIS_IRC_CHANNEL": "wikimedia-operations",
        "SARTORIS_IRC_TIMEOUT": "5",
    }
    result = run_script("notify-irc", env)
    assert result.returncode == 0, result.stderr
    assert irc_server.lines == [
        "NICK sartoris",
        "USER sartoris 0 * :Sartoris deploy notifier",
        "PONG :check",
        "JOIN #wikimedia-operations",
        f"PRIVMSG #wikimedia-operations :mediawiki: sync of php-slot0 to {TAG} ABORTED",
        "QUIT :done",
    ]


def test_irc_refusal_fails(irc_server: FakeIrc) -> None:
    """A server refusing the PRIVMSG makes notify-irc exit 1 with one line naming the channel."""
    irc_server.privmsg_reply = ":srv 404 sartoris #ops :Cannot send to channel"
    env = {**RUN, "SARTORIS_IRC_SERVER": f"127.0.0.1:{irc_server.port}", "SARTORIS_IRC_CHANNEL": "#ops"}
    result = run_script("notify-irc", env)
    assert result.returncode == 1
    assert result.stderr == f"notify-irc: 127.0.0.1:{irc_server.port}: #ops: 404 Cannot send to channel\n"


def test_irc_unreachable_fails(closed_port: int) -> None:
    """An IRC server nobody listens on makes notify-irc exit 1 with one line."""
    env = {**RUN, "SARTORIS_IRC_SERVER": f"127.0.0.1:{closed_port}", "SARTORIS_IRC_CHANNEL": "#ops"}
    result = run_script("notify-irc", env)
    assert result.returncode == 1
    assert result.stderr == f"notify-irc: 127.0.0.1:{closed_port}: cannot connect: Connection refused\n"


@pytest.mark.parametrize(
    "run",
    [
        pytest.param({}, id="ok"),
        pytest.param({"SARTORIS_OUTCOME": "partial", "SARTORIS_FAILED_HOSTS": "a b"}, id="partial"),
        pytest.param({"SARTORIS_OUTCOME": "partial", "SARTORIS_NOT_SWITCHED_HOSTS": "c d"}, id="not-switched"),
        pytest.param({"SARTORIS_OUTCOME": "aborted", "SARTORIS_FAILED_HOSTS": "a", "SARTORIS_FAILED_COUNT": "9"},
                     id="failed-cut"),
        pytest.param({"SARTORIS_OUTCOME": "aborted"}, id="aborted"),
        pytest.param({"SARTORIS_ACTION": "finish", "SARTORIS_PHASE": "finish"}, id="finish"),
        pytest.param({"SARTORIS_ACTION": "abort", "SARTORIS_OUTCOME": ""}, id="abort"),
        pytest.param({"SARTORIS_OUTCOME": ""}, id="post-without-outcome"),
    ],
)
def test_notifiers_word_runs_alike(run: dict[str, str]) -> None:
    """The webhook and IRC notifiers (which each carry a copy of the wording) announce a run identically."""
    env = {**RUN, **run}
    assert load("notify-webhook").describe(env) == load("notify-irc").describe(env)


def test_irc_line_cannot_inject_commands() -> None:
    """Control characters in a run's fields cannot end the PRIVMSG line and smuggle in IRC commands."""
    irc = load("notify-irc")
    line = irc.one_line(irc.describe({**RUN, "SARTORIS_MESSAGE": "x\r\nQUIT :owned", "SARTORIS_TAG": "t\nJOIN #x"}))
    assert "\r" not in line
    assert "\n" not in line
    assert len(line.encode()) <= irc.MAX_TEXT_BYTES
