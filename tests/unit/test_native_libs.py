"""Finding asyncssh's optional C libraries from the loader's own listing: the answers CPython's lookup gives for
what the loader knows, without running gcc or ld for what it does not."""

from __future__ import annotations

import ctypes.util
import subprocess
import sys
from pathlib import Path

import pytest

from sartoris.native_libs import find_in_listing, loader_library_lookup

LISTING = """\
1234 libs found in cache `/etc/ld.so.cache'
\tlibnettle.so.8 (libc6,x86-64) => /lib/x86_64-linux-gnu/libnettle.so.8
\tlibnettle.so.8 (libc6) => /lib/i386-linux-gnu/libnettle.so.8
\tlibnettle.so (libc6,x86-64) => /lib/x86_64-linux-gnu/libnettle.so
\tlibc.so.6 (libc6,x86-64, OS ABI: Linux 3.2.0) => /lib/x86_64-linux-gnu/libc.so.6
"""


def test_a_library_in_the_listing_is_named_as_cpython_names_it() -> None:
    """A library in the listing is answered by its file name (libnettle.so.8), as CPython's ldconfig step answers."""
    assert find_in_listing("nettle", LISTING, "libc6,x86-64", []) == "libnettle.so.8"
    assert find_in_listing("c", LISTING, "libc6,x86-64", []) == "libc.so.6"


def test_only_the_interpreters_abi_counts() -> None:
    """A library listed only for another ABI (a 32-bit copy) is not found: it would fail to load in this interpreter."""
    only_32_bit = "\tliboqs.so.5 (libc6) => /lib/i386-linux-gnu/liboqs.so.5\n"
    assert find_in_listing("oqs", only_32_bit, "libc6,x86-64", []) is None


def test_a_name_is_matched_literally_not_as_a_pattern() -> None:
    """The name is matched literally (a dot is no wildcard), and `lib` is put before it as CPython does."""
    assert find_in_listing("nett.e", LISTING, "libc6,x86-64", []) is None
    assert find_in_listing("libnettle", LISTING, "libc6,x86-64", []) is None  # lib is added, as CPython does


def _shared_object_header(word_size_flipped: bool = False) -> bytes:
    """An ELF header like the interpreter's own, typed as a shared object (ET_DYN), optionally of the other size."""
    with open(sys.executable, "rb") as handle:
        own = handle.read(64)
    dyn = (3).to_bytes(2, "little" if own[5] == 1 else "big")
    word = bytes([3 - own[4]]) if word_size_flipped else own[4:5]
    return own[:4] + word + own[5:16] + dyn + own[18:]


NATIVE_ELF = _shared_object_header()
OTHER_ELF = _shared_object_header(word_size_flipped=True)


def test_folders_are_searched_after_the_listing_in_order(tmp_path: Path) -> None:
    """A library missing from the listing (installed without updating the cache) is the first found in the folders, in
    order; missing, empty and blank folders are skipped."""
    (tmp_path / "empty").mkdir()
    own = tmp_path / "own"
    own.mkdir()
    (own / "liboqs.so.5").write_bytes(NATIVE_ELF)
    folders = [str(tmp_path / "missing"), "", str(tmp_path / "empty"), str(own)]
    assert find_in_listing("oqs", LISTING, "libc6,x86-64", folders) == str(own / "liboqs.so.5")
    assert find_in_listing("oqs", LISTING, "libc6,x86-64", [str(tmp_path / "empty")]) is None


def test_only_a_shared_object_of_this_word_size_is_taken(tmp_path: Path) -> None:
    """asyncssh loads what it is given without a guard: a file that cannot load would fail every command."""
    wrong, right = tmp_path / "lib32", tmp_path / "lib64"
    wrong.mkdir()
    right.mkdir()
    (wrong / "liboqs.so.5").write_bytes(OTHER_ELF)  # a library of the other word size
    (wrong / "liboqs.so.6").write_bytes(NATIVE_ELF[:18] + bytes([NATIVE_ELF[18] ^ 0xFF]) + NATIVE_ELF[19:])  # machine
    (wrong / "liboqs.so.7").write_bytes(NATIVE_ELF[:16] + bytes([2]) + NATIVE_ELF[17:])  # not ET_DYN (little-endian)
    (wrong / "liboqs.so").write_text("/* GNU ld script */ INPUT(liboqs.so.5)\n")  # a linker script
    (wrong / "liboqs.so.5-gdb.py").write_bytes(NATIVE_ELF)  # not a library name
    (right / "liboqs.so.5.0.1").write_bytes(NATIVE_ELF)
    folders = [str(wrong), str(right)]
    assert find_in_listing("oqs", LISTING, "libc6,x86-64", folders) == str(right / "liboqs.so.5.0.1")
    assert find_in_listing("oqs", LISTING, "libc6,x86-64", [str(wrong)]) is None


@pytest.mark.skipif(not Path("/sbin/ldconfig").exists(), reason="needs glibc's ldconfig")
def test_the_lookup_agrees_with_cpython_and_runs_no_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """For libraries the loader knows, the same answer as CPython; a missing one runs no gcc or ld."""
    expected = {name: ctypes.util.find_library(name) for name in ("c", "m", "z")}
    original = ctypes.util.find_library
    with loader_library_lookup():  # the one ldconfig listing is read here
        started: list[object] = []
        monkeypatch.setattr(subprocess, "Popen", lambda *args, **kwargs: started.append(args))
        assert ctypes.util.find_library is not original
        found = {name: ctypes.util.find_library(name) for name in ("c", "m", "z")}
        assert ctypes.util.find_library("sartoris-no-such-library") is None
        assert started == []
    assert ctypes.util.find_library is original
    assert found == expected


@pytest.mark.skipif(not Path("/sbin/ldconfig").exists(), reason="needs glibc's ldconfig (else nothing is replaced)")
def test_the_original_lookup_comes_back_after_an_error() -> None:
    """An error inside loader_library_lookup still puts CPython's find_library back: the stand-in never outlives it."""
    original = ctypes.util.find_library
    with pytest.raises(RuntimeError), loader_library_lookup():
        assert ctypes.util.find_library is not original
        raise RuntimeError("boom")
    assert ctypes.util.find_library is original
