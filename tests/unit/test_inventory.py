"""Tests for sartoris.inventory: dsh-style group files, ranges, and group-or-path resolution."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sartoris.errors import InventoryError
from sartoris.inventory import MAX_EXPANSION, Host, expand_ranges, parse_host, parse_hosts, resolve_hosts


def labels(hosts: tuple[Host, ...]) -> list[str]:
    """The labels of hosts, in order."""
    return [host.label for host in hosts]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        pytest.param("mw1001", ["mw1001"], id="no-range"),
        pytest.param(
            "mw[1001-1003].eqiad.wmnet",
            ["mw1001.eqiad.wmnet", "mw1002.eqiad.wmnet", "mw1003.eqiad.wmnet"],
            id="middle",
        ),
        pytest.param("127.0.1.[1-3]", ["127.0.1.1", "127.0.1.2", "127.0.1.3"], id="ipv4-tail"),
        pytest.param("web[08-11]", ["web08", "web09", "web10", "web11"], id="zero-padding"),
        pytest.param("web[001-002]", ["web001", "web002"], id="wide-padding"),
        pytest.param("web[8-10]", ["web8", "web9", "web10"], id="no-padding"),
        pytest.param("web[5-5]", ["web5"], id="single"),
        pytest.param("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"], id="product"),
        pytest.param("[1-2]a", ["1a", "2a"], id="leading-range"),
        pytest.param("[::1]", ["[::1]"], id="ipv6-brackets-untouched"),
    ],
)
def test_expand_ranges(pattern: str, expected: list[str]) -> None:
    """Numeric ranges expand in order, keep zero padding, and multiply when there are several."""
    assert expand_ranges(pattern) == expected


def test_expand_reversed_range_is_refused() -> None:
    """A range whose low end is above its high end is an error rather than nothing."""
    with pytest.raises(ValueError, match=r"reversed range \[10-1\]"):
        expand_ranges("web[10-1]")


@pytest.mark.parametrize(
    "pattern",
    [
        pytest.param("h[1-100001]", id="single-range"),
        pytest.param("h[1-1000]x[1-1000]", id="product"),
        pytest.param("h[0-999999999999999999]", id="enormous"),
    ],
)
def test_expand_huge_is_refused(pattern: str) -> None:
    """An expansion over the limit is refused before any host is generated."""
    with pytest.raises(ValueError, match=f"more than {MAX_EXPANSION}"):
        expand_ranges(pattern)


def test_expand_exactly_the_limit_is_allowed() -> None:
    """An expansion of exactly the limit is fine."""
    assert len(expand_ranges(f"h[1-{MAX_EXPANSION}]")) == MAX_EXPANSION


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param("mw1001", Host("mw1001", "mw1001"), id="name"),
        pytest.param("mw1001.eqiad.wmnet", Host("mw1001.eqiad.wmnet", "mw1001.eqiad.wmnet"), id="fqdn"),
        pytest.param("deploy@mw1", Host("deploy@mw1", "mw1", user="deploy"), id="user"),
        pytest.param("mw1:2222", Host("mw1:2222", "mw1", port=2222), id="port"),
        pytest.param(
            "deploy@mw1:2222", Host("deploy@mw1:2222", "mw1", user="deploy", port=2222), id="user-port"
        ),
        pytest.param("10.0.0.1", Host("10.0.0.1", "10.0.0.1"), id="ipv4"),
        pytest.param("a@10.0.0.1:22", Host("a@10.0.0.1:22", "10.0.0.1", user="a", port=22), id="ipv4-all"),
        pytest.param("[::1]", Host("[::1]", "::1"), id="ipv6"),
        pytest.param("[::1]:2222", Host("[::1]:2222", "::1", port=2222), id="ipv6-port"),
        pytest.param(
            "u@[2001:db8::5]:22", Host("u@[2001:db8::5]:22", "2001:db8::5", user="u", port=22), id="ipv6-all"
        ),
        pytest.param("[fe80::1%eth0]", Host("[fe80::1%eth0]", "fe80::1%eth0"), id="ipv6-zone"),
        pytest.param("_srv.example", Host("_srv.example", "_srv.example"), id="underscore"),
        pytest.param("Web-01.Example", Host("Web-01.Example", "Web-01.Example"), id="mixed-case"),
        pytest.param("host:65535", Host("host:65535", "host", port=65535), id="max-port"),
        pytest.param("Deploy_1.x-y@h", Host("Deploy_1.x-y@h", "h", user="Deploy_1.x-y"), id="user-charset"),
        pytest.param("10-64-0-1.example", Host("10-64-0-1.example", "10-64-0-1.example"), id="digits-and-dashes"),
        pytest.param("0x7f.example", Host("0x7f.example", "0x7f.example"), id="hex-looking-label-in-a-name"),
    ],
)
def test_parse_host(spec: str, expected: Host) -> None:
    """A [user@]name[:port] spec splits into label, name, user and port."""
    assert parse_host(spec) == expected


BAD_SPECS = [
    pytest.param("host; rm -rf /", id="semicolon"),
    pytest.param("-oProxyCommand=x", id="leading-dash"),
    pytest.param("a b", id="space"),
    pytest.param("$(reboot)", id="command-substitution"),
    pytest.param("`reboot`", id="backticks"),
    pytest.param("host:0", id="port-zero"),
    pytest.param("host:70000", id="port-too-big"),
    pytest.param("host:", id="port-empty"),
    pytest.param("host:22x", id="port-garbage"),
    pytest.param("us er@h", id="space-in-user"),
    pytest.param("@h", id="empty-user"),
    pytest.param("-u@h", id="user-leading-dash"),
    pytest.param("1user@h", id="user-leading-digit"),
    pytest.param("a@b@c", id="two-ats"),
    pytest.param("'host'", id="single-quotes"),
    pytest.param('"host"', id="double-quotes"),
    pytest.param("host|cat", id="pipe"),
    pytest.param("host&", id="ampersand"),
    pytest.param("host>x", id="redirect"),
    pytest.param("h\\x", id="backslash"),
    pytest.param("web-", id="label-trailing-dash"),
    pytest.param("a..b", id="empty-label"),
    pytest.param(".a", id="leading-dot"),
    pytest.param("a" * 64, id="label-too-long"),
    pytest.param("999.1.1.1", id="bad-ipv4"),
    pytest.param("1234", id="all-digits"),
    pytest.param("::1", id="ipv6-unbracketed"),
    pytest.param("[::1", id="ipv6-unclosed"),
    pytest.param("[nothost]", id="bracketed-name"),
    pytest.param("[::1%eth0 x]", id="ipv6-zone-space"),
    pytest.param("[::1%$(x)]", id="ipv6-zone-shell"),
    pytest.param("h\u212a", id="kelvin-sign"),
    pytest.param("h\u00e9", id="non-ascii"),
    pytest.param(":22", id="empty-name"),
    pytest.param("web[1-3]", id="unexpanded-range"),
]


def test_an_absolute_name_with_its_trailing_dot_is_a_host() -> None:
    """`mw1001.eqiad.wmnet.` (a fully qualified name, as DNS writes it) was refused as not a host; SSH takes it."""
    host = parse_host("deploy@mw1001.eqiad.wmnet.:2222")
    assert (host.name, host.user, host.port) == ("mw1001.eqiad.wmnet.", "deploy", 2222)
    with pytest.raises(ValueError, match="not a host"):
        parse_host("mw1001..")
    # the same machine as the name without its dot: targeted once, one depool, one switch at a time
    assert host.key(22) == parse_host("deploy@MW1001.eqiad.wmnet:2222").key(22)


@pytest.mark.parametrize("spec", BAD_SPECS)
def test_parse_host_refuses(spec: str) -> None:
    """Anything that is not strictly a host, user or port is refused."""
    with pytest.raises(ValueError, match="not a host"):
        parse_host(spec)


@pytest.mark.parametrize("spec", [p for p in BAD_SPECS if p.id != "unexpanded-range"])
def test_bad_line_names_file_and_line(spec: str) -> None:
    """A bad line is an InventoryError naming file:line and quoting the line."""
    text = f"# mediawiki\nmw1\n{spec}\nmw2\n"
    with pytest.raises(InventoryError) as caught:
        parse_hosts(text, "hosts/app")
    assert str(caught.value).startswith(f"hosts/app:3: not a host: {spec!r}")


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("deploy-" + "x" * 30 + "@mw1", "(a user name is at most 32 characters)"),
        ("-deploy@mw1", "(a user name is letters, digits, '.', '_' and '-', not starting with a digit, '.' or '-')"),
        ("mw1:70000", "(a port is 1 to 65535)"),
        ("mw1;x", ""),
        ("::1", "(an IPv6 address is written in brackets, like [::1] or [::1]:2222)"),
        ("deploy@fe80::1%eth0", "(an IPv6 address is written in brackets, like [::1] or [::1]:2222)"),
    ],
)
def test_a_bad_line_says_which_part_is_not_a_host(spec: str, why: str) -> None:
    """`deploy-automation-account-for-mw@mw1` was "not a host", though the host was fine and the user name one
    character too long: the operator looked for the fault in the wrong place. The part at fault is now named; an
    IPv6 address without its brackets is told how to write it."""
    with pytest.raises(InventoryError) as caught:
        parse_hosts(f"{spec}\n", "hosts/app")
    assert str(caught.value) == f"hosts/app:1: not a host: {spec!r}" + (f" {why}" if why else "")


@pytest.mark.parametrize(
    ("spec", "read_as"),
    [
        pytest.param("0x7f.1", "127.0.0.1", id="hex"),
        pytest.param("0X7F.0.0.1", "127.0.0.1", id="hex-upper-case"),
        pytest.param("127.0.0.0x1", "127.0.0.1", id="hex-last-part"),
        pytest.param("0x7f000001", "127.0.0.1", id="hex-whole"),
        pytest.param("0xdead", "0.0.222.173", id="hex-word"),
        pytest.param("127.1", "127.0.0.1", id="two-parts"),
        pytest.param("2130706433", "127.0.0.1", id="one-number"),
        pytest.param("0177.0.0.1", "127.0.0.1", id="octal"),
        pytest.param("deploy@0x7f.1:2222", "127.0.0.1", id="with-user-and-port"),
    ],
)
def test_a_number_the_resolver_reads_as_an_address_is_refused_saying_which(spec: str, read_as: str) -> None:
    """`0x7f.1` passed for a host name, and the C library's resolver took it for 127.0.0.1 (inet_aton's shorthand),
    which the operator had not written; `127.1` and the like were refused without saying why. Each is refused
    with its file and line, naming the address it would have reached."""
    with pytest.raises(InventoryError) as caught:
        parse_hosts(f"mw1\n{spec}\n", "hosts/app")
    assert str(caught.value) == (
        f"hosts/app:2: not a host: {spec!r} (the resolver reads it as the address {read_as}, not as a name: write an"
        " address as four decimal numbers)"
    )


def test_parse_hosts_comments_and_blanks() -> None:
    """Comments (whole-line or trailing) and blank lines are skipped; order is kept."""
    text = "# app servers\n\n   \nmw1  # the first\n\tmw2\n#mw3\nmw4#tight\n"
    assert labels(parse_hosts(text, "hosts/app")) == ["mw1", "mw2", "mw4"]


def test_parse_hosts_expands_ranges_with_user_and_port() -> None:
    """A range inside a user@name:port line expands into one host per number."""
    hosts = parse_hosts("deploy@web[01-02]:2222\n", "hosts/app")
    assert hosts == (
        Host("deploy@web01:2222", "web01", user="deploy", port=2222),
        Host("deploy@web02:2222", "web02", user="deploy", port=2222),
    )


def test_parse_hosts_empty_text() -> None:
    """A file with only comments holds no hosts (resolve_hosts decides whether that is an error)."""
    assert parse_hosts("# nothing yet\n\n", "hosts/empty") == ()


def test_parse_hosts_crlf() -> None:
    """Windows line endings are read as ordinary line ends."""
    assert labels(parse_hosts("mw1\r\nmw2\r\n", "hosts/app")) == ["mw1", "mw2"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        pytest.param("web[10-1]", "hosts/app:2: reversed range [10-1]: 'web[10-1]'", id="reversed"),
        pytest.param(
            "h[1-1000]x[1-1000]",
            f"hosts/app:2: expands to more than {MAX_EXPANSION} hosts: 'h[1-1000]x[1-1000]'",
            id="huge",
        ),
        pytest.param("web[1-3];x", "hosts/app:2: not a host: 'web[1-3];x'", id="bad-after-expansion"),
        pytest.param("mw1 mw2", "hosts/app:2: not a host: 'mw1 mw2'", id="two-on-a-line"),
    ],
)
def test_range_errors_name_file_and_line(line: str, message: str) -> None:
    """Range problems are InventoryErrors with file:line, on one line."""
    with pytest.raises(InventoryError) as caught:
        parse_hosts(f"mw1\n{line}\n", "hosts/app")
    assert str(caught.value) == message


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    """A config folder with hosts/app, hosts/db and a loose file elsewhere."""
    hosts_dir = tmp_path / "deploy" / "hosts"
    hosts_dir.mkdir(parents=True)
    (hosts_dir / "app").write_text("mw[1-3]\n")
    (hosts_dir / "db").write_text("db1\nmw2  # also a db\ndeploy@mw2\nmw2:22\nMW1\n")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "canary").write_text("canary1\n")
    return tmp_path


def test_resolve_group(fleet: Path) -> None:
    """A selector naming a file in hosts_dir reads that group."""
    hosts = resolve_hosts(["app"], fleet / "deploy" / "hosts", fleet)
    assert labels(hosts) == ["mw1", "mw2", "mw3"]


def test_a_group_file_saved_with_a_byte_order_mark_reads_its_first_host(fleet: Path) -> None:
    """A file saved by a Windows editor starts with U+FEFF; its first line was refused as "not a host"."""
    (fleet / "deploy" / "hosts" / "bom").write_text("\ufeffmw9\nmw10\n", encoding="utf-8")
    assert labels(resolve_hosts(["bom"], fleet / "deploy" / "hosts", fleet)) == ["mw9", "mw10"]


def test_resolve_path_relative_to_cwd(fleet: Path) -> None:
    """A selector that is not a group is read as a file path from cwd."""
    hosts = resolve_hosts(["elsewhere/canary"], fleet / "deploy" / "hosts", fleet)
    assert labels(hosts) == ["canary1"]


def test_resolve_absolute_path(fleet: Path) -> None:
    """An absolute path works whatever cwd is."""
    hosts = resolve_hosts([str(fleet / "elsewhere" / "canary")], fleet / "deploy" / "hosts", Path("/"))
    assert labels(hosts) == ["canary1"]


def test_resolve_group_wins_over_path(fleet: Path) -> None:
    """When both a group and a file in cwd carry the name, the group is used."""
    (fleet / "app").write_text("not-the-group\n")
    hosts = resolve_hosts(["app"], fleet / "deploy" / "hosts", fleet)
    assert labels(hosts) == ["mw1", "mw2", "mw3"]


def test_resolve_dedupes_across_and_within_files(fleet: Path) -> None:
    """Repeated hosts are dropped, first wins: another user on the same machine (deploy@mw2) and the default
    port written out (mw2:22) are the same host, whose slot both would deploy into at once."""
    hosts = resolve_hosts(["app", "db", "app"], fleet / "deploy" / "hosts", fleet)
    assert labels(hosts) == ["mw1", "mw2", "mw3", "db1"]


def test_resolve_dedupes_with_the_configured_port(fleet: Path) -> None:
    """A line without :port means the configured port: with [ssh] port 2222, mw2:22 is another sshd."""
    hosts = resolve_hosts(["app", "db"], fleet / "deploy" / "hosts", fleet, default_port=2222)
    assert labels(hosts) == ["mw1", "mw2", "mw3", "db1", "mw2:22"]


def test_resolve_dedupes_one_address_written_two_ways(tmp_path: Path) -> None:
    """An IPv4 address and its IPv4-mapped IPv6 spelling, or two spellings of one IPv6 address, are one machine:
    both lines once raced on the same tree (and one machine was reported both ok and depooled)."""
    (tmp_path / "app").write_text("127.0.0.2\n[::ffff:127.0.0.2]\n[2001:db8::1]\n[2001:0db8:0:0::1]:22\nMW1\nmw1\n")
    assert labels(resolve_hosts(["app"], tmp_path, tmp_path)) == ["127.0.0.2", "[2001:db8::1]", "MW1"]


def test_resolve_unknown_group(fleet: Path) -> None:
    """A selector that is neither a group nor a file says where it looked."""
    hosts_dir = fleet / "deploy" / "hosts"
    with pytest.raises(InventoryError) as caught:
        resolve_hosts(["nope"], hosts_dir, fleet)
    assert str(caught.value) == f"no host group or file named 'nope' (looked in {hosts_dir} and {fleet})"


def test_a_selector_written_as_a_path_is_that_file_never_the_group_of_its_name(tmp_path: Path) -> None:
    """`--hosts ./fleet` read hosts/fleet (every host) instead of the one-host file in the current folder: a path
    (`./x`, `../x`, `/x`) now names only that file, and a missing one says so; a bare name is still a group first."""
    hosts_dir = tmp_path / "deploy" / "hosts"
    hosts_dir.mkdir(parents=True)
    (hosts_dir / "fleet").write_text("mw[1-8]\n")
    (tmp_path / "fleet").write_text("mw1\n")
    assert labels(resolve_hosts(["./fleet"], hosts_dir, tmp_path)) == ["mw1"]
    assert labels(resolve_hosts([str(tmp_path / "fleet")], hosts_dir, tmp_path)) == ["mw1"]
    assert len(resolve_hosts(["fleet"], hosts_dir, tmp_path)) == 8
    (tmp_path / "fleet").unlink()
    with pytest.raises(InventoryError) as caught:
        resolve_hosts(["./fleet"], hosts_dir, tmp_path)
    assert str(caught.value) == f"no hosts file './fleet' (from {tmp_path})"


def test_resolve_directory_is_not_a_group(fleet: Path) -> None:
    """A folder is not a hosts file, and the error says it is a folder (it said "no host group or file named")."""
    with pytest.raises(InventoryError) as caught:
        resolve_hosts(["elsewhere"], fleet / "deploy" / "hosts", fleet)
    assert str(caught.value) == f"'elsewhere': {fleet / 'elsewhere'} is a folder, not a hosts file"


@pytest.mark.parametrize(
    ("target", "why"),
    [
        pytest.param("nowhere", "is a link to nothing", id="dangling"),
        pytest.param("loop", "is a link that cannot be followed (Too many levels of symbolic links)", id="loop"),
    ],
)
def test_a_group_that_is_a_broken_link_says_so(fleet: Path, target: str, why: str) -> None:
    """A group that is a dangling link or a loop of links was "no host group or file named …", sending the
    operator to look for a missing file: the error now says what is there."""
    hosts_dir = fleet / "deploy" / "hosts"
    (hosts_dir / "loop").symlink_to(hosts_dir / "loop")
    (hosts_dir / "broken").symlink_to(hosts_dir / target)
    with pytest.raises(InventoryError) as caught:
        resolve_hosts(["broken"], hosts_dir, fleet)
    assert str(caught.value) == f"'broken': {hosts_dir / 'broken'} {why}, not a hosts file"


@pytest.mark.parametrize(
    ("selector", "why"),
    [
        pytest.param("/dev/null", "/dev/null is a device", id="device"),
        pytest.param("./elsewhere/", "{fleet}/elsewhere is a folder", id="folder"),
        pytest.param("./pipe", "{fleet}/pipe is a pipe", id="pipe"),
        pytest.param("pipe", "{fleet}/pipe is a pipe", id="pipe-as-a-group"),
    ],
)
def test_a_hosts_path_that_is_not_a_file_says_what_it_is(fleet: Path, selector: str, why: str) -> None:
    """`--hosts /dev/null` and `--hosts ./folder/` said "no hosts file", sending the operator to look for a missing
    file: the error says what is there instead (a device, a folder, a pipe), as for a group."""
    os.mkfifo(fleet / "pipe")
    with pytest.raises(InventoryError) as caught:
        resolve_hosts([selector], fleet / "deploy" / "hosts", fleet)
    assert str(caught.value) == f"{selector!r}: {why.format(fleet=fleet)}, not a hosts file"


def test_resolve_empty_result(fleet: Path) -> None:
    """Selecting only empty groups or files is an error, not a deploy to nobody, and says they are empty (it said
    "no hosts to target ('./empty')", as if the file were not there)."""
    (fleet / "deploy" / "hosts" / "empty").write_text("# nobody yet\n")
    (fleet / "empty").write_text("")
    with pytest.raises(InventoryError) as caught:
        resolve_hosts(["empty", "./empty"], fleet / "deploy" / "hosts", fleet)
    assert str(caught.value) == (
        "no hosts to target: 'empty', './empty' are empty (no host line, only blanks or comments)"
    )


def test_resolve_no_selectors(fleet: Path) -> None:
    """No selectors at all is an error too."""
    with pytest.raises(InventoryError, match="no hosts to target"):
        resolve_hosts([], fleet / "deploy" / "hosts", fleet)


def test_resolve_error_names_file_relative_to_cwd(fleet: Path) -> None:
    """A bad line in a group is reported with the path as seen from cwd."""
    (fleet / "deploy" / "hosts" / "bad").write_text("mw1\nhost; rm -rf /\n")
    with pytest.raises(InventoryError) as caught:
        resolve_hosts(["bad"], fleet / "deploy" / "hosts", fleet / "deploy")
    assert str(caught.value) == "hosts/bad:2: not a host: 'host; rm -rf /'"


def test_resolve_binary_file(fleet: Path) -> None:
    """A file that is not UTF-8 text is an InventoryError, not a traceback."""
    (fleet / "deploy" / "hosts" / "bin").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InventoryError, match="not a UTF-8 text file"):
        resolve_hosts(["bin"], fleet / "deploy" / "hosts", fleet)


def test_host_invariants() -> None:
    """A Host cannot be built with an empty name or a port out of range."""
    with pytest.raises(ValueError):
        Host("x", "")
    with pytest.raises(ValueError):
        Host("x:0", "x", port=0)


def test_host_str_is_label() -> None:
    """str(host) is the label as written in the group file."""
    assert str(parse_host("deploy@mw1:2222")) == "deploy@mw1:2222"
