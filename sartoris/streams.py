"""stdout and stderr whose reader may be gone: a deploy never stops over its own output.

`sartoris sync | head`, a log pipe whose reader died, a terminal hung up with its SSH session: the next write
fails (EPIPE, EIO), and an exception raised from a log call in the middle of a rollout would end the run with
hosts switched and nothing recorded. Every write Sartoris makes to its standard streams goes through `write` (or
`deliver`, which says why a write failed): the first failure points the stream's descriptor at /dev/null, so
later writes (ours, a hook's, the interpreter's flush at exit) succeed into nothing, and the run goes on to its
record and its exit code.

A reader that went away is not the only cause. `> /dev/full`, a full disk or quota, a disk's EIO: the reader (a
file, someone who will read it) is still there and the text is lost. `deliver` tells the two apart, so the caller
can say that a report was lost instead of taking it for a reader that no longer wanted it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from dataclasses import dataclass
from typing import TextIO

_READER_GONE = frozenset({errno.EPIPE, errno.ECONNRESET})


@dataclass(frozen=True, slots=True)
class Undelivered:
    """Why text did not get written: `reason` is the OS's word for it (`No space left on device`)."""

    reason: str
    reader_gone: bool  # EPIPE, a hung-up terminal: nobody reads any more, so nothing anyone wanted is lost


def write(stream: TextIO, text: str) -> bool:
    """Write and flush `text`; False when it could not be (the stream then writes into /dev/null)."""
    return deliver(stream, text) is None


def deliver(stream: TextIO, text: str) -> Undelivered | None:
    """Write and flush `text`; None when it was, else why not (the stream then writes into /dev/null)."""
    try:
        stream.write(text)
        stream.flush()
        return None
    except OSError as exc:  # EPIPE (BrokenPipeError), EIO from a hung-up terminal, ENOSPC for a redirected file
        gone = _reader_gone(stream, exc)
        _discard(stream)
        return Undelivered(exc.strerror or type(exc).__name__, gone)


def _reader_gone(stream: TextIO, exc: OSError) -> bool:
    """Whether `exc` says the stream's reader went away (a closed pipe or socket, a terminal hung up: EIO on
    anything but a regular file) rather than that the text could not be stored (ENOSPC, EDQUOT, EFBIG, a disk's
    EIO). Without a descriptor to look at, EIO is taken for a hung-up terminal."""
    if exc.errno in _READER_GONE:
        return True
    if exc.errno != errno.EIO:
        return False
    try:
        return not stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError):  # no descriptor (an in-memory stream), or a closed one
        return True


def _discard(stream: TextIO) -> None:
    """Point the stream's descriptor at /dev/null and drop what its buffer still holds (unread, or unstorable)."""
    with contextlib.suppress(OSError, ValueError):  # no descriptor (an in-memory stream): nothing to point
        fd = stream.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, fd)
        finally:
            os.close(null)
    with contextlib.suppress(OSError, ValueError):
        stream.flush()  # the buffered rest now goes to /dev/null
