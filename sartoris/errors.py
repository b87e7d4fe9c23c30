"""Sartoris's exceptions: one root, each class carrying the exit code the CLI maps it to.

    SartorisError                 exit 1  something unexpected on the deploy host
    ├── UsageError                exit 2  bad command-line value; nothing was run
    │   ├── ConfigError           exit 2  sartoris.toml missing, malformed, unknown key, wrong type
    │   └── InventoryError        exit 2  a hosts file line that is not a host
    ├── RefusedError              exit 4  a precondition failed; nothing was changed
    │   ├── LockHeldError         exit 4  another run holds the slot's deploy lock
    │   ├── DirtyCheckoutError    exit 4  the slot's working copy has uncommitted changes
    │   ├── PublishError          exit 4  the tag could not be pushed to publish_url; no host was touched
    │   └── StateError            exit 4  the deploy host's lock or history cannot be used (disk, permissions)
    ├── HostError                 —       one host failed; caught per host, becomes a HostResult
    ├── InterruptedRun            exit 130 Ctrl-C; carries the report of what finished
    └── Interrupted               exit 130 Ctrl-C in a command with no run to report (a census, a listing)

A host that fails is never an exception: it is a HostResult with ok=False (see sartoris.results).
Third-party exceptions (asyncssh, git) are translated at the module that imports the library.
"""

from __future__ import annotations


class SartorisError(Exception):
    """Root of every error Sartoris raises on purpose; the message is one line for the operator."""

    exit_code = 1


class UsageError(SartorisError):
    """A command-line value is wrong; nothing was run."""

    exit_code = 2


class ConfigError(UsageError):
    """sartoris.toml cannot be found or read, or a key is unknown or has the wrong type."""


class InventoryError(UsageError):
    """A hosts file (or --hosts selector) names something that is not a host."""


class RefusedError(SartorisError):
    """A precondition failed before anything changed."""

    exit_code = 4


class LockHeldError(RefusedError):
    """Another run holds the slot's deploy lock."""


class DirtyCheckoutError(RefusedError):
    """The slot's working copy has uncommitted changes; tagging it would deploy something unreviewed."""


class PublishError(RefusedError):
    """Pushing the release to publish_url failed, so no host was asked to fetch."""


class StateError(RefusedError):
    """The deploy host's own state (history database, lock folder) cannot be read or written: full or read-only
    disk, permissions. Raised before anything changes (a history that fails after a run is logged instead)."""


class HostError(SartorisError):
    """One host failed (connect, command, timeout): caught per host, turned into a HostResult, never escapes."""


class InterruptedRun(SartorisError):
    """Ctrl-C: what finished was recorded and no host is between trees; carries the partial report (or, stopped
    in its hook, the report of a finish or abort that is done), and `said`, the line that says so."""

    exit_code = 130

    def __init__(self, report: object, said: str = "") -> None:
        super().__init__(said or "interrupted: the hosts that finished are recorded; none is left half switched")
        self.report = report


class Interrupted(SartorisError):
    """Ctrl-C in a command with no run to report (a census, before a run began): the contract's one line."""

    exit_code = 130

    def __init__(self) -> None:
        super().__init__("interrupted")
