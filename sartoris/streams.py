"""stdout and stderr whose reader may be gone: a deploy never stops over its own output.

`sartoris sync | head`, a log pipe whose reader died, a terminal hung up with its SSH session: the next write
fails (EPIPE, EIO), and an exception raised from a log call in the middle of a rollout would end the run with
hosts switched and nothing recorded. Every write Sartoris makes to its standard streams goes through `write`:
the first failure points the stream's descriptor at /dev/null, so later writes (ours, a hook's, the
interpreter's flush at exit) succeed into nothing, and the run goes on to its record and its exit code.
"""

from __future__ import annotations

import contextlib
import os
from typing import TextIO


def write(stream: TextIO, text: str) -> bool:
    """Write and flush `text`; False when the reader is gone (the stream then writes into /dev/null)."""
    try:
        stream.write(text)
        stream.flush()
        return True
    except OSError:  # EPIPE (BrokenPipeError), EIO from a hung-up terminal, ENOSPC for a redirected file
        _discard(stream)
        return False


def _discard(stream: TextIO) -> None:
    """Point the stream's descriptor at /dev/null and drop what its buffer still holds for the gone reader."""
    with contextlib.suppress(OSError, ValueError):  # no descriptor (an in-memory stream): nothing to point
        fd = stream.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, fd)
        finally:
            os.close(null)
    with contextlib.suppress(OSError, ValueError):
        stream.flush()  # the buffered rest now goes to /dev/null
