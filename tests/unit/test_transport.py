"""The transport without a fleet: what a failed host's error line says (short and telling), and the options every
connection starts from."""

from __future__ import annotations

from pathlib import Path

import pytest

from sartoris.transport import ERROR_LINE_LIMIT, CommandResult


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
        pytest.param("", "exit status 3", id="silent-failure"),
    ],
)
def test_error_line_picks_the_cause(stderr: str, expected: str) -> None:
    """The error line is Sartoris's own message, else git's first fatal/error line, else the last line."""
    assert CommandResult(3, "", stderr).error_line() == expected


def test_error_line_is_bounded() -> None:
    """One endless stderr line cannot flood the summary, the JSON or the history."""
    line = CommandResult(1, "", "fatal: " + "x" * 100_000).error_line()
    assert len(line) == ERROR_LINE_LIMIT and line.endswith("…")


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
