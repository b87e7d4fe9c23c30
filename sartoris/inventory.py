"""hosts/ group files -> Host records: dsh-style lines, numeric ranges, user@ and :port.

A group file holds one host per line as ``[user@]name[:port]``; ``#`` starts a comment; blank lines are
ignored; ``mw[1001-1003]`` and ``web[01-10]`` expand (zero padding kept, several ranges multiply). IPv6
addresses are written in brackets: ``[::1]`` or ``deploy@[2001:db8::5]:2222``. Anything else is refused
with the file and line, because a host name ends up as an argument on a remote connection: a line that
is not strictly a host (spaces, quotes, ``;``, a leading ``-``) must never get through. Nor does a name of
numbers that is not a dotted-quad IPv4 address (``0x7f.1``, ``127.1``): the resolver reads it as an address.

Parsing is pure; only resolve_hosts() reads files.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import itertools
import os
import re
import socket
import stat
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sartoris.errors import InventoryError
from sartoris.limits import MAX_USER_NAME

MAX_EXPANSION = 100_000

_RANGE = re.compile(r"\[(?P<low>[0-9]{1,18})-(?P<high>[0-9]{1,18})\]")
_SPEC = re.compile(
    r"(?:(?P<user>[^@]+)@)?"
    r"(?:\[(?P<ipv6>[^\[\]]+)\]|(?P<name>[^:@\[\]]+))"
    r"(?::(?P<port>[0-9]{1,5}))?"
)
# re.ASCII: with IGNORECASE alone, [a-z] would also match the Kelvin sign and the long s.
_USER = re.compile(rf"[a-z_][a-z0-9._-]{{0,{MAX_USER_NAME - 1}}}", re.IGNORECASE | re.ASCII)
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?", re.IGNORECASE | re.ASCII)
# A name whose every label is a number, decimal or hex: the C library's resolver reads 127.1, 2130706433, 0177.0.0.1
# and 0x7f.1 as IPv4 addresses (inet_aton's shorthands) before any DNS, so such a name is never a host's name.
_NUMERIC = re.compile(r"(?:[0-9]+|0x[0-9a-f]+)(?:\.(?:[0-9]+|0x[0-9a-f]+))*\.?", re.IGNORECASE | re.ASCII)
_IPV6 = re.compile(r"[0-9a-f:.]+(?:%[a-z0-9_.-]+)?", re.IGNORECASE | re.ASCII)


@dataclass(frozen=True, slots=True)
class Host:
    """One target host: the label an operator wrote (used in JSON and logs) and what to connect to."""

    label: str
    name: str
    user: str | None = None
    port: int | None = None

    def __post_init__(self) -> None:
        """Refuse a record that could not have come from a valid hosts line."""
        if not self.name or not self.label:
            raise ValueError("a host needs a name and a label")
        if self.port is not None and not 1 <= self.port <= 65535:
            raise ValueError(f"a host port must be 1..65535, not {self.port}")

    def key(self, default_port: int) -> tuple[str, int]:
        """What makes two lines the same machine: name (case-insensitive) and port, a line without :port read as
        `default_port`, so `mw1` and `mw1:22` are one host. The user is not part of it: `deploy@mw1` and `mw1`
        would both deploy into the same remote_root at once. An address is compared as an address, so
        `127.0.0.2` and `[::ffff:127.0.0.2]` (or two spellings of one IPv6 address) are one host too. (Two DNS
        names of one machine, and ~/.ssh/config's per-host Port, are not seen here.)"""
        return (_canonical_name(self.name), self.port or default_port)

    def __str__(self) -> str:
        """The label, as written in the group file."""
        return self.label


def _canonical_name(name: str) -> str:
    """A host name lowercased, without the trailing dot of an absolute name (`mw1.eqiad.wmnet.` is
    `mw1.eqiad.wmnet`); an IP address in one spelling (an IPv4-mapped IPv6 address as its IPv4)."""
    try:
        address = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return name.lower().removesuffix(".")
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address)


def is_user_name(text: str) -> bool:
    """True for a plausible login name (letters, digits, '.', '_', '-'; not starting with a digit or '-')."""
    return _USER.fullmatch(text) is not None


def is_host_name(text: str) -> bool:
    """True for an RFC 1123 host name (underscores allowed; absolute, with its trailing dot, too) or IPv4 address;
    a name of numbers (hex ones too) must be an IPv4 address written as a dotted quad."""
    if _NUMERIC.fullmatch(text):
        return _why_not_a_dotted_quad(text) is None
    relative = text.removesuffix(".")
    return len(relative) <= 253 and all(_LABEL.fullmatch(label) for label in relative.split("."))


def _why_not_a_dotted_quad(text: str) -> str | None:
    """None for an IPv4 address written as four decimal numbers; else what is wrong with a name made of numbers
    (the resolver would read 0x7f.1 or 127.1 as 127.0.0.1, which the operator did not write)."""
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        pass
    else:
        return None
    try:
        read_as = socket.inet_ntoa(socket.inet_aton(text))
    except OSError:
        return "a name made only of numbers must be an IPv4 address: four decimal numbers 0 to 255, like 10.64.0.1"
    return f"the resolver reads it as the address {read_as}, not as a name: write an address as four decimal numbers"


def is_ipv6_address(text: str) -> bool:
    """True for an IPv6 address (as written inside brackets), with at most a plain zone id like %eth0."""
    if _IPV6.fullmatch(text) is None:  # ipaddress accepts any characters in a zone id
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def expand_ranges(pattern: str) -> list[str]:
    """Expand each ``[low-high]`` in pattern (zero padding kept, several as a product); ValueError if bad."""
    matches = list(_RANGE.finditer(pattern))
    if not matches:
        return [pattern]
    choices: list[list[str]] = []
    total = 1
    for match in matches:
        low_text, high_text = match["low"], match["high"]
        low, high = int(low_text), int(high_text)
        if low > high:
            raise ValueError(f"reversed range [{low_text}-{high_text}]")
        width = len(low_text) if low_text.startswith("0") and len(low_text) > 1 else 0
        total *= high - low + 1
        if total > MAX_EXPANSION:
            raise ValueError(f"expands to more than {MAX_EXPANSION} hosts")
        choices.append([str(number).zfill(width) for number in range(low, high + 1)])
    literals = _RANGE.split(pattern)[::3]  # split() interleaves the two captured groups of each range
    hosts = []
    for combination in itertools.product(*choices):
        parts = [literals[0]]
        for value, literal in zip(combination, literals[1:], strict=True):
            parts += [value, literal]
        hosts.append("".join(parts))
    return hosts


class NotAHost(ValueError):
    """A `[user@]name[:port]` that is not one; `why` names the part at fault when the rest is a host."""

    def __init__(self, spec: str, why: str = "") -> None:
        super().__init__(f"not a host: {spec!r}" + (f" ({why})" if why else ""))
        self.why = why


def parse_host(spec: str) -> Host:
    """Parse one ``[user@]name[:port]`` (no ranges, no comment); ValueError if it is not strictly a host."""
    match = _SPEC.fullmatch(spec)
    name = match["name"] if match is not None else None
    if name is not None and _NUMERIC.fullmatch(name) and (why := _why_not_a_dotted_quad(name)) is not None:
        raise NotAHost(spec, why)  # a number, not a name: say which address it would reach
    if match is None or not (
        (match["ipv6"] is None or is_ipv6_address(match["ipv6"]))
        and (match["name"] is None or is_host_name(match["name"]))
    ):
        if is_ipv6_address(spec.rpartition("@")[2]):  # `::1`: the colons would read as a port
            raise NotAHost(spec, "an IPv6 address is written in brackets, like [::1] or [::1]:2222")
        raise NotAHost(spec)
    if match["user"] is not None and not is_user_name(match["user"]):
        raise NotAHost(spec, _why_not_a_user(match["user"]))
    if match["port"] is not None and not 1 <= int(match["port"]) <= 65535:
        raise NotAHost(spec, "a port is 1 to 65535")
    port = int(match["port"]) if match["port"] is not None else None
    return Host(label=spec, name=match["ipv6"] or match["name"], user=match["user"], port=port)


def _why_not_a_user(user: str) -> str:
    """What is wrong with a `user@` that is not a login name, for the error that names the line."""
    if len(user) > MAX_USER_NAME:
        return f"a user name is at most {MAX_USER_NAME} characters"
    return "a user name is letters, digits, '.', '_' and '-', not starting with a digit, '.' or '-'"


def parse_hosts(text: str, source: str) -> tuple[Host, ...]:
    """Parse a group file's text; raise InventoryError naming ``source:line`` for the first bad line."""
    hosts: list[Host] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            specs = expand_ranges(line)
        except ValueError as exc:
            raise InventoryError(f"{source}:{number}: {exc}: {line!r}") from None
        try:
            hosts += [parse_host(spec) for spec in specs]
        except NotAHost as exc:
            why = f" ({exc.why})" if exc.why else ""
            raise InventoryError(f"{source}:{number}: not a host: {line!r}{why}") from None
    return tuple(hosts)


def recorded_host(label: str) -> Host | None:
    """A host as a run or a depool recorded it; None for text no hosts line could have written (a hand-edited or
    damaged record is skipped, never a traceback)."""
    try:
        return parse_host(label)
    except ValueError:
        return None


def machine_of(label: str, default_port: int) -> tuple[str, int] | None:
    """The machine a host as written (a hosts line, or a label a run or a depool recorded) names, as Host.key reads
    it (`mw1`, `mw1:22` and `deploy@mw1` are one); None for text no hosts line could have written."""
    host = recorded_host(label)
    return host.key(default_port) if host is not None else None


def pool_member(label: str) -> str | None:
    """What a depool command acts on for a host as written (a hosts line, or a label a run or a depool recorded):
    its name, as Host.key reads names. `{host}` carries neither user nor port, so `mw1` and `mw1:2222` are one
    member of the load balancer's pool, even where they are two machines to deploy to. None for text no hosts line
    could have written."""
    host = recorded_host(label)
    return _canonical_name(host.name) if host is not None else None


def machine_identity(default_port: int) -> Callable[[str], Hashable]:
    """Hosts as written -> the machines they name, as targeting dedupes them (machine_of; text no hosts line could
    have written is its own machine). Each label is parsed once: a long history names the same hosts in every run."""

    @functools.cache
    def machine(label: str) -> Hashable:
        return machine_of(label, default_port) or label

    return machine


def dedupe(hosts: Sequence[Host], default_port: int) -> tuple[Host, ...]:
    """Drop repeated hosts (same name and port), keeping the first occurrence and the order."""
    seen: set[tuple[str, int]] = set()
    unique: list[Host] = []
    for host in hosts:
        key = host.key(default_port)
        if key not in seen:
            seen.add(key)
            unique.append(host)
    return tuple(unique)


def unlisted(hosts: Sequence[Host], known: Sequence[Host], default_port: int) -> tuple[str, ...]:
    """The labels of `hosts` that name no machine among `known` (same name and port, however spelled)."""
    machines = {host.key(default_port) for host in known}
    return tuple(host.label for host in hosts if host.key(default_port) not in machines)


def resolve_hosts(
    selectors: Sequence[str], hosts_dir: Path, cwd: Path, default_port: int = 22, base: Path | None = None
) -> tuple[Host, ...]:
    """Read each selector as a group in hosts_dir, else as a path from `base` (the config file's folder for its
    own entries; the current folder `cwd`, by default, for what the operator typed); dedupe; refuse an empty
    result. Files are named in errors as seen from cwd."""
    hosts: list[Host] = []
    for selector in selectors:
        path = _find_group(selector, hosts_dir, cwd if base is None else base)
        source = _display(path, cwd)
        try:
            text = path.read_text(encoding="utf-8-sig")  # -sig: a leading BOM (a Windows editor) is no host
        except UnicodeDecodeError:
            raise InventoryError(f"{source}: not a UTF-8 text file") from None
        except OSError as exc:
            raise InventoryError(f"{source}: cannot read: {exc.strerror or exc}") from None
        hosts += parse_hosts(text, source)
    unique = dedupe(hosts, default_port)
    if not selectors:
        raise InventoryError("no hosts to target (no groups given)")
    if not unique:  # every file read holds no host: say so, not that they are missing
        named = ", ".join(repr(selector) for selector in selectors)
        are = "is" if len(selectors) == 1 else "are"
        raise InventoryError(f"no hosts to target: {named} {are} empty (no host line, only blanks or comments)")
    return unique


def group_files(selectors: Sequence[str], hosts_dir: Path, base: Path) -> tuple[str, ...]:
    """The hosts files `selectors` name (as resolve_hosts reads them, from `base`), as absolute paths: a run notes
    them, so what targets it asked can be read again later (slot_hosts)."""
    return tuple(str(_find_group(selector, hosts_dir, base).absolute()) for selector in selectors)


def _find_group(selector: str, hosts_dir: Path, base: Path) -> Path:
    """The file a selector names: hosts_dir/<selector> if it exists, else the path from `base`; a selector written
    as a path (`./fleet`, `../x`, `/srv/x`) is only ever that path, never the group of the same name."""
    as_path = selector.startswith(("/", "./", "../"))
    candidates = (base / selector,) if as_path else (hosts_dir / selector, base / selector)
    if selector.strip():
        for candidate in candidates:
            try:
                if candidate.is_file():
                    return candidate
            except OSError:  # a name too long for a file name: no such group
                continue
    for candidate in candidates:
        if (why := _not_a_file(candidate)) is not None:  # there, but not a file: say what it is instead
            raise InventoryError(f"{selector!r}: {candidate} {why}, not a hosts file")
    if as_path:
        raise InventoryError(f"no hosts file {selector!r} (from {base})")
    raise InventoryError(f"no host group or file named {selector!r} (looked in {hosts_dir} and {base})")


_KINDS = ((stat.S_ISCHR, "is a device"), (stat.S_ISBLK, "is a device"), (stat.S_ISFIFO, "is a pipe"))


def _not_a_file(path: Path) -> str | None:
    """What is at `path` when it is not a regular file (a folder, a device, a pipe, a dangling or looping link), or
    None when nothing is there (or it is a file)."""
    try:
        if path.is_dir():
            return "is a folder"
        if path.exists():
            mode = path.stat().st_mode
            kind = next((said for is_kind, said in _KINDS if is_kind(mode)), "is not a regular file")
            return None if stat.S_ISREG(mode) else kind
        if not path.is_symlink():
            return None
    except OSError:  # a name too long for a file name: nothing can be there
        return None
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return "is a link to nothing"
        return f"is a link that cannot be followed ({exc.strerror})"
    return None


def _display(path: Path, cwd: Path) -> str:
    """The path as an operator would type it: relative to cwd when below it, else as is."""
    try:
        return str(path.relative_to(cwd))
    except ValueError:
        return str(path)
