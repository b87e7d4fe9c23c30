"""What the deploy host remembers: the per-slot deploy lock, deploy history and hosts' pool state.

The lock is a file created with O_EXCL (atomic on local filesystems); history and pool state live in one
sqlite3 database per deploy config, under `<config folder>/.sartoris/`.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sartoris.errors import LockHeldError
from sartoris.results import SyncReport

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deploys (
    id INTEGER PRIMARY KEY,
    slot INTEGER NOT NULL,
    action TEXT NOT NULL,
    tag TEXT NOT NULL,
    commit_sha TEXT NOT NULL,
    outcome TEXT NOT NULL,
    message TEXT NOT NULL,
    user TEXT NOT NULL,
    started REAL NOT NULL,
    seconds REAL NOT NULL,
    report TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pool (
    host TEXT PRIMARY KEY,
    depooled INTEGER NOT NULL,
    changed REAL NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class DeployedRelease:
    """The last release that reached hosts in a slot."""

    tag: str
    commit: str


class History:
    """Deploy records and pool state in `<state_dir>/history.sqlite3`."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self._path = state_dir / "history.sqlite3"
        with self._connect() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self._path, timeout=10)) as db, db:
            yield db

    def record(self, action: str, report: SyncReport, message: str, started: float) -> None:
        """Keep one run: who, when, what, how it ended, and every host's result."""
        with self._connect() as db:
            db.execute(
                "INSERT INTO deploys (slot, action, tag, commit_sha, outcome, message, user, started, seconds, report)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    report.slot, action, report.tag, report.commit, report.outcome.value, message,
                    getpass.getuser(), started, report.seconds, json.dumps(report.as_json()),
                ),
            )

    def last_deployed(self, slot: int) -> DeployedRelease | None:
        """The newest release of `slot` that switched hosts (ok or partial), or None."""
        with self._connect() as db:
            row = db.execute(
                "SELECT tag, commit_sha FROM deploys WHERE slot = ? AND outcome IN ('ok', 'partial')"
                " ORDER BY id DESC LIMIT 1",
                (slot,),
            ).fetchone()
        return DeployedRelease(tag=row[0], commit=row[1]) if row else None

    def set_depooled(self, hosts: Iterable[str], depooled: bool) -> None:
        now = time.time()
        with self._connect() as db:
            db.executemany(
                "INSERT INTO pool (host, depooled, changed) VALUES (?, ?, ?)"
                " ON CONFLICT(host) DO UPDATE SET depooled = excluded.depooled, changed = excluded.changed",
                [(host, int(depooled), now) for host in hosts],
            )

    def depooled_hosts(self) -> frozenset[str]:
        with self._connect() as db:
            return frozenset(row[0] for row in db.execute("SELECT host FROM pool WHERE depooled = 1"))


class SlotLock:
    """The slot's deploy lock: one holder at a time, created atomically, describing who holds it."""

    def __init__(self, state_dir: Path, slot: int) -> None:
        self.slot = slot
        self.path = state_dir / "locks" / f"slot{slot}.lock"

    def holder(self) -> dict[str, Any] | None:
        """Who holds the lock (user, host, pid, since, command, message), or None when it is free."""
        try:
            return dict(json.loads(self.path.read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {"user": "?", "host": "?", "pid": None, "since": None, "command": "?", "message": "unreadable lock"}

    def acquire(self, command: str, message: str = "") -> None:
        """Take the lock or raise LockHeldError naming the holder; never waits."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "user": getpass.getuser(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": command,
            "message": message,
        }
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            held = self.holder() or {}
            raise LockHeldError(
                f"slot {self.slot} is locked by {held.get('user')}@{held.get('host')} (pid {held.get('pid')})"
                f" since {held.get('since')}: {held.get('command')}"
            ) from None
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle)

    def release(self) -> None:
        self.path.unlink(missing_ok=True)

    @contextmanager
    def held(self, command: str, message: str = "") -> Iterator[None]:
        self.acquire(command, message)
        try:
            yield
        finally:
            self.release()
