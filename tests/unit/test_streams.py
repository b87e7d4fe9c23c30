"""Writes to a stream whose reader is gone: reported as False, and the stream then writes into nothing."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sartoris import streams


@pytest.fixture
def orphaned_pipe() -> Iterator[io.TextIOWrapper]:
    """A text stream on the write end of a pipe whose read end is already closed (`sartoris ... | head`, done)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    with open(write_end, "w", encoding="utf-8") as stream:
        yield stream


def test_a_write_to_a_gone_reader_says_false_and_later_writes_succeed_into_nothing(
    orphaned_pipe: io.TextIOWrapper,
) -> None:
    """The first write fails (EPIPE) without raising; the descriptor now points at /dev/null, so the next write,
    a plain flush and the close at exit all succeed instead of raising BrokenPipeError mid-run."""
    assert streams.write(orphaned_pipe, "host_switched host=a\n") is False
    assert os.path.samefile(f"/proc/self/fd/{orphaned_pipe.fileno()}", os.devnull)
    assert streams.write(orphaned_pipe, "host_switched host=b\n") is True
    orphaned_pipe.write("buffered\n")
    orphaned_pipe.flush()


def test_a_write_to_a_live_stream_passes_the_text_through(tmp_path: Path) -> None:
    """A reader that is there gets every line, flushed at once (a progress line must show before the host ends)."""
    path = tmp_path / "out"
    with path.open("w", encoding="utf-8") as stream:
        assert streams.write(stream, "one\n") and streams.write(stream, "two\n")
        assert path.read_text(encoding="utf-8") == "one\ntwo\n"


def test_a_stream_without_a_descriptor_is_left_as_it_is() -> None:
    """An in-memory stream (a test's capture) that fails to write is reported, not turned into a crash."""

    class Refusing(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    assert streams.write(Refusing(), "line\n") is False
