"""The optional C libraries asyncssh looks for when it is imported (liboqs, nettle), found without a compiler.

CPython's `ctypes.util.find_library` asks ldconfig first and, for a library it does not find there, runs gcc
and then ld: four more processes per miss. asyncssh asks for liboqs under two names on every start, so each
Sartoris command paid about 25 ms and a dozen processes for a library that is seldom installed. While asyncssh
is imported, lookups are answered where the dynamic loader itself finds a library: one `ldconfig -p` listing,
then LD_LIBRARY_PATH and the loader's default folders (for a library installed without updating the cache), taking
only shared objects of this interpreter's word size. Without a usable ldconfig (musl, another OS), CPython's lookup
runs unchanged.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import functools
import os
import re
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence

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
    """Within the block, `ctypes.util.find_library` answers from one ldconfig listing, LD_LIBRARY_PATH and the
    loader's default folders."""
    listing = _ldconfig_listing() if sys.platform.startswith("linux") else None
    if listing is None:
        yield
        return
    original = ctypes.util.find_library
    abi = _abi_type()

    list_folder = functools.cache(_list_folder)  # a folder is read once, however many names are asked for
    folders = [*os.environ.get("LD_LIBRARY_PATH", "").split(":"), *_default_folders()]  # once, not per name

    def find_library(name: str) -> str | None:
        return find_in_listing(name, listing, abi, folders, list_folder)

    ctypes.util.find_library = find_library
    try:
        yield
    finally:
        ctypes.util.find_library = original


def find_in_listing(
    name: str, listing: str, abi: str, folders: Sequence[str], list_folder: Callable[[str], list[str]] | None = None
) -> str | None:
    """The library `lib<name>` as CPython's ldconfig step finds it in `listing` (`ldconfig -p` output): its
    file name, for this ABI; else the path of the first `lib<name>.so[.N...]` in `folders` that is a shared
    object of this interpreter's word size (a 32-bit copy or a linker script beside it would fail to load, and
    asyncssh loads what it is given without a guard); else None."""
    found = re.search(rf"\s+(lib{re.escape(name)}\.[^\s]+)\s+\({re.escape(abi)}", listing)
    if found:
        return found.group(1)
    pattern = re.compile(rf"lib{re.escape(name)}\.so(\.[0-9]+)*")
    for folder in filter(None, folders):
        for entry in (list_folder or _list_folder)(folder):
            if not pattern.fullmatch(entry):
                continue
            if _loadable(os.path.join(folder, entry)):
                return os.path.join(folder, entry)
    return None


def _list_folder(folder: str) -> list[str]:
    try:
        return sorted(os.listdir(folder))
    except OSError:
        return []


def _loadable(path: str) -> bool:
    """An ELF shared object (type ET_DYN) for the interpreter's own word size, byte order and machine."""
    header = _elf_header(path)
    own = _own_elf_header()
    if header is None or own is None:
        return False
    dyn = (3).to_bytes(2, "little" if header[5] == 1 else "big")
    return header[:4] == b"\x7fELF" and header[4:6] == own[4:6] and header[16:18] == dyn and header[18:20] == own[18:20]


@functools.cache
def _own_elf_header() -> bytes | None:
    """The interpreter's own ELF header, read once: what a loadable library must match."""
    return _elf_header(sys.executable)


def _elf_header(path: str) -> bytes | None:
    """The first 20 bytes of an ELF file: magic, class, byte order, ..., type (16-17), machine (18-19)."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(20)
    except OSError:
        return None
    return header if len(header) == 20 and header[:4] == b"\x7fELF" else None


def _default_folders() -> list[str]:
    """The loader's own folders: /lib and /usr/lib (lib64 on 64-bit systems), with Debian's multiarch ones."""
    folders = ["/lib", "/usr/lib", "/lib64", "/usr/lib64"]
    multiarch = getattr(sys.implementation, "_multiarch", "")
    if multiarch:
        folders[:0] = [f"/lib/{multiarch}", f"/usr/lib/{multiarch}"]
    unique: dict[str, str] = {}  # with a merged /usr, /lib and /usr/lib are one folder: read it once
    for folder in folders:
        unique.setdefault(os.path.realpath(folder), folder)
    return list(unique.values())


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
