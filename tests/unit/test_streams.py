"""Writes to a stream that fails: a reader gone (EPIPE) told from text lost (ENOSPC), and the stream then writes into
nothing."""

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


def test_a_gone_reader_is_told_as_gone(orphaned_pipe: io.TextIOWrapper) -> None:
    """`sartoris status | head -1`: the pipe's reader left (EPIPE); nothing anyone wanted is lost, and the caller is
    told so, to go on as before."""
    assert streams.deliver(orphaned_pipe, "a report\n") == streams.Undelivered("Broken pipe", reader_gone=True)


def test_a_write_that_cannot_be_stored_is_a_lost_report_not_a_gone_reader() -> None:
    """`sartoris status > /dev/full` (a full disk, a quota): ENOSPC says the text is lost while the file that was to
    hold it is still there, so it is not taken for a reader that went away; later writes still go into nothing."""
    with open("/dev/full", "w", encoding="utf-8") as full:
        undelivered = streams.deliver(full, "a report\n")
        assert undelivered == streams.Undelivered("No space left on device", reader_gone=False)
        assert streams.write(full, "more\n") is True  # now into /dev/null, as for a gone reader


@pytest.mark.parametrize(
    ("error", "gone"),
    [
        pytest.param(OSError(5, "Input/output error"), True, id="eio-without-a-file-is-a-hung-up-terminal"),
        pytest.param(ConnectionResetError(104, "Connection reset by peer"), True, id="socket-reset"),
        pytest.param(OSError(122, "Disk quota exceeded"), False, id="quota"),
        pytest.param(OSError(27, "File too large"), False, id="file-size-limit"),
    ],
)
def test_which_failures_mean_the_reader_is_gone(error: OSError, gone: bool) -> None:
    """Only a closed pipe or socket and a terminal's EIO mean the reader left; a write refused for space or size
    lost the text."""

    class Failing(io.StringIO):
        def write(self, text: str) -> int:
            raise error

    undelivered = streams.deliver(Failing(), "line\n")
    assert undelivered is not None and undelivered.reader_gone is gone


def test_eio_on_a_regular_file_is_lost_text(tmp_path: Path) -> None:
    """EIO writing a regular file is the disk failing, not a terminal hung up: the report is lost, not unread."""
    with (tmp_path / "report").open("w", encoding="utf-8") as file:

        class FailingDisk(io.StringIO):
            def write(self, text: str) -> int:
                raise OSError(5, "Input/output error")

            def fileno(self) -> int:
                return file.fileno()

        undelivered = streams.deliver(FailingDisk(), "a report\n")
    assert undelivered == streams.Undelivered("Input/output error", reader_gone=False)
