"""The words a failed local command (a hook, a depool command) ended its output with, fit for one error line."""

from __future__ import annotations

from sartoris.state import shown

LINE_LIMIT = 300  # characters of that line kept in the error


def closing_words(tail: str) -> str | None:
    """The last line of `tail` that starts a message (not an indented continuation: a traceback's or a usage text's
    "  second" says nothing alone), else its last non-blank line; cut to LINE_LIMIT and escaped when it holds control
    characters (an escape sequence in it would act on the terminal of the error that quotes it). None: no output."""
    lines = [line.rstrip() for line in tail.splitlines() if line.strip()]
    if not lines:
        return None
    flush = [line for line in lines if not line[:1].isspace()]
    last = (flush or lines)[-1].strip()
    if len(last) > LINE_LIMIT:
        last = last[: LINE_LIMIT - 1] + "…"
    return shown(last)
