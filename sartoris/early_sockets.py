"""TCP connections to a run's first hosts, opened before the SSH library is imported.

Importing asyncssh and its cryptography takes ~0.15 s of one core before the first handshake can start, while a
host's sshd, once it accepts a connection, forks, re-executes itself and loads its host keys (~5 ms of CPU) before
it says a word. Opening the first hosts' TCP connections first lets the hosts do that on the other cores meanwhile.
Only where the address is sure: no jump host, and no ssh config that could send a host elsewhere or through a
proxy. Standard library only, so that opening them costs no import.
"""

from __future__ import annotations

import os
import re
import resource
import socket
import threading
from collections.abc import Sequence

from sartoris.config import SshSettings
from sartoris.inventory import Host

# ssh_config keywords that can change where a host's connection goes, or make it go through something else
_ROUTING_KEYWORDS = re.compile(
    r"^[ \t]*(hostname|port|proxyjump|proxycommand|match|include|canonicalizehostname|addressfamily|bindaddress"
    r"|bindinterface|hostkeyalias)\b",
    re.IGNORECASE | re.MULTILINE,
)
_FILES_KEPT_FREE = 512  # open files left to the imports, sqlite and git when the limit is low
_JOIN_TIMEOUT = 2.0  # seconds close() waits for the opener thread (one name resolution at most)


def ssh_config_files(settings: SshSettings) -> list[str]:
    """The OpenSSH client config to honour: [ssh] config_file, else ~/.ssh/config when readable."""
    if settings.config_file is not None:
        return [str(settings.config_file)]
    default = os.path.expanduser("~/.ssh/config")  # left as is where there is no home: then unreadable
    return [default] if os.access(default, os.R_OK) else []


def routes_by_name_and_port(config_texts: Sequence[str]) -> bool:
    """Whether a connection to `name:port` surely goes to that name and port: no ssh config text sets a routing
    keyword (HostName, Port, ProxyJump, Match, Include...) anywhere, for any host."""
    return not any(_ROUTING_KEYWORDS.search(text) for text in config_texts)


class EarlySockets:
    """Non-blocking TCP connections to `hosts` (with their ports), opened by a background thread so that a name's
    resolution never holds the run up; a host's socket is taken once, or closed by close()."""

    def __init__(self, hosts: Sequence[tuple[Host, int]]) -> None:
        self._lock = threading.Lock()
        self._sockets: dict[Host, socket.socket] = {}
        self._taken: set[Host] = set()
        self._closed = False
        self._thread = threading.Thread(target=self._open_all, args=(hosts,), name="early-sockets", daemon=True)
        self._thread.start()

    def _open_all(self, hosts: Sequence[tuple[Host, int]]) -> None:
        for host, port in hosts:
            with self._lock:
                if self._closed or host in self._taken:  # asked for before its turn: it connects as usual
                    continue
            try:
                family, kind, proto, _, address = socket.getaddrinfo(host.name, port, type=socket.SOCK_STREAM)[0]
                sock = socket.socket(family, kind, proto)
            except OSError:  # unresolvable: the usual connect says why
                continue
            sock.setblocking(False)
            sock.connect_ex(address)  # in progress; its outcome is read when the host's turn comes
            with self._lock:
                if self._closed or host in self._taken:
                    sock.close()
                else:
                    self._sockets[host] = sock

    def take(self, host: Host) -> socket.socket | None:
        """The connection opened for `host` (maybe still connecting), or None: none was, or not yet."""
        with self._lock:
            self._taken.add(host)
            return self._sockets.pop(host, None)

    def close(self) -> None:
        """Close every connection nobody took (the hosts' sshd end their sessions) and stop the opener."""
        with self._lock:
            self._closed = True
            left, self._sockets = list(self._sockets.values()), {}
        for sock in left:
            sock.close()
        self._thread.join(_JOIN_TIMEOUT)


def open_early(settings: SshSettings, hosts: Sequence[Host]) -> EarlySockets | None:
    """Start connecting to `hosts` where their address is sure (see the module's doc), else None."""
    if not hosts or settings.jump_host is not None:
        return None
    texts = []
    for path in ssh_config_files(settings):
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                texts.append(handle.read())
        except OSError:
            return None  # the connect will say what is wrong with it
    if not routes_by_name_and_port(texts):
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)  # raised for the run only later: leave imports their files
    if soft != resource.RLIM_INFINITY:
        hosts = hosts[: max(0, soft - _FILES_KEPT_FREE)]
    return EarlySockets([(host, host.port or settings.port or 22) for host in hosts]) if hosts else None
