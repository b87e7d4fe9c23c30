"""The optional C libraries asyncssh looks for when it is imported (liboqs, nettle), found without a compiler.

CPython's `ctypes.util.find_library` asks ldconfig first and, for a library it does not find there, runs gcc
and then ld: four more processes per miss. asyncssh asks for liboqs under two names on every start, so each
Sartoris command paid about 25 ms and a dozen processes for a library that is seldom installed. While asyncssh
is imported, lookups are answered from one `ldconfig -p` listing and LD_LIBRARY_PATH, where the dynamic loader
itself would find a library. Without a usable ldconfig (musl, another OS), CPython's lookup runs unchanged.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import os
import re
import struct
import subprocess
import sys
from collections.abc import Iterator

_LDCONFIG = "/sbin/ldconfig"  # the path CPython's own lookup runs
_LISTING_TIMEOUT = 5.0

# ldconfig's name for the ABI of this interpreter's word size, as CPython maps it; "libc6" for the rest.
_ABI_TYPES = {
    "x86_64-64": "libc6,x86-64",
    "ppc64-64": "libc6,64bit",
    "sparc64-64": "libc6,64bit",
    "s390x-64": "libc6,64bit",
    "ia64-64": "libc6,IA-64",
}


@contextlib.contextmanager
def loader_library_lookup() -> Iterator[None]:
    """Within the block, `ctypes.util.find_library` answers from one ldconfig listing and LD_LIBRARY_PATH."""
    listing = _ldconfig_listing() if sys.platform.startswith("linux") else None
    if listing is None:
        yield
        return
    original = ctypes.util.find_library
    abi = _abi_type()

    def find_library(name: str) -> str | None:
        return find_in_listing(name, listing, abi, os.environ.get("LD_LIBRARY_PATH", ""))

    ctypes.util.find_library = find_library
    try:
        yield
    finally:
        ctypes.util.find_library = original


def find_in_listing(name: str, listing: str, abi: str, library_path: str) -> str | None:
    """The library `lib<name>` as CPython's ldconfig step finds it in `listing` (`ldconfig -p` output): its
    file name, for this ABI; else the first `lib<name>.so*` file in a LD_LIBRARY_PATH folder; else None."""
    found = re.search(rf"\s+(lib{re.escape(name)}\.[^\s]+)\s+\({re.escape(abi)}", listing)
    if found:
        return found.group(1)
    for folder in filter(None, library_path.split(":")):
        try:
            candidates = sorted(entry for entry in os.listdir(folder) if entry.startswith(f"lib{name}.so"))
        except OSError:
            continue
        if candidates:
            return os.path.join(folder, candidates[0])
    return None


def _abi_type() -> str:
    machine = os.uname().machine + ("-32" if struct.calcsize("l") == 4 else "-64")
    return _ABI_TYPES.get(machine, "libc6")


def _ldconfig_listing() -> str | None:
    try:
        done = subprocess.run(
            [_LDCONFIG, "-p"], stdin=subprocess.DEVNULL, capture_output=True, timeout=_LISTING_TIMEOUT,
            env={"LC_ALL": "C", "LANG": "C"}, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0 or not done.stdout:
        return None
    return done.stdout.decode(errors="replace")
