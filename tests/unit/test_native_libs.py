"""Finding asyncssh's optional C libraries from the loader's own listing: the answers CPython's lookup gives for
what the loader knows, without running gcc or ld for what it does not."""

from __future__ import annotations

import ctypes.util
import subprocess
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
    assert find_in_listing("nettle", LISTING, "libc6,x86-64", "") == "libnettle.so.8"
    assert find_in_listing("c", LISTING, "libc6,x86-64", "") == "libc.so.6"


def test_only_the_interpreters_abi_counts() -> None:
    only_32_bit = "\tliboqs.so.5 (libc6) => /lib/i386-linux-gnu/liboqs.so.5\n"
    assert find_in_listing("oqs", only_32_bit, "libc6,x86-64", "") is None


def test_a_name_is_matched_literally_not_as_a_pattern() -> None:
    assert find_in_listing("nett.e", LISTING, "libc6,x86-64", "") is None
    assert find_in_listing("libnettle", LISTING, "libc6,x86-64", "") is None  # lib is added, as CPython does


def test_ld_library_path_is_searched_after_the_listing(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    own = tmp_path / "own"
    own.mkdir()
    (own / "liboqs.so.5").write_bytes(b"")
    path = f"{tmp_path / 'missing'}::{tmp_path / 'empty'}:{own}"
    assert find_in_listing("oqs", LISTING, "libc6,x86-64", path) == str(own / "liboqs.so.5")
    assert find_in_listing("oqs", LISTING, "libc6,x86-64", str(tmp_path / "empty")) is None


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


def test_the_original_lookup_comes_back_after_an_error() -> None:
    original = ctypes.util.find_library
    with pytest.raises(RuntimeError), loader_library_lookup():
        raise RuntimeError("boom")
    assert ctypes.util.find_library is original
