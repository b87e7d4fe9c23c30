"""What the deploy host remembers: the per-slot deploy lock, deploy history and hosts' pool state.

The lock is a file created with O_EXCL (atomic on local filesystems) holding who took it and why; a
`start` lock lives until finish/abort, a run's own lock only while that process lives (so a lock whose
process is gone from this host is stale). History and pool state live in one sqlite3 database per deploy
config, under `<config folder>/.sartoris/`.
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

import structlog

from sartoris.errors import LockHeldError, RefusedError, StateError
from sartoris.results import CANARY_FAILED, CANARY_PHASE, SyncReport
from sartoris.shared_files import denied, explained, make_file, make_folder

log = structlog.get_logger("sartoris")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deploys (
    id INTEGER PRIMARY KEY,
    slot INTEGER,
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
CREATE INDEX IF NOT EXISTS deploys_by_slot ON deploys (slot, id);
CREATE TABLE IF NOT EXISTS pool (
    host TEXT PRIMARY KEY,
    depooled INTEGER NOT NULL,
    changed REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS pool_state (
    scope TEXT NOT NULL,
    host TEXT NOT NULL,
    depooled INTEGER NOT NULL,
    changed REAL NOT NULL,
    by_hand INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, host)
);
"""
# `pool` is where Sartoris kept pool state before it had scopes (schema version 0). The first open by a newer
# Sartoris copies its rows into the host-wide scope ('') once (version 1); the table itself is left as it was.
# Version 2 notes which depools were made by hand (`sartoris depool`), which `pool --caught-up` leaves alone; the
# rows kept before it read as made by a run, as `--caught-up` treated every depool then.
_SCHEMA_VERSION = 2
_FROM_VERSION_0 = "INSERT OR IGNORE INTO pool_state (scope, host, depooled, changed) SELECT '', * FROM pool"
UNFINISHED = "unfinished"  # a run's row from its first switch until it is written down: still running, or died
_SWITCHED = ("ok", "partial", UNFINISHED)  # outcomes after which hosts may run the release
_NEWEST = 2**63 - 1  # the largest row id sqlite gives
_FIRST_PAGE, _LARGEST_PAGE = 8, 64  # rows read at once by runs_back_from: the newest are most often enough, and
# a page of runs of 300 hosts each, parsed, is about 20 MB (512 rows were 150 MB)


@dataclass(frozen=True, slots=True)
class DeployedRelease:
    """A release that reached hosts in a slot, by a sync or a rollback; `rejected` when a canary failed on it;
    `sets_release` false for a rollback of part of the fleet that left hosts on the slot's release then (see
    sets_the_release)."""

    tag: str
    commit: str
    action: str = "sync"
    rejected: bool = False
    sets_release: bool = True

    @property
    def sets_the_release(self) -> bool:
        """The run makes its release the slot's: a sync (a `--hosts` one ships the newest code, the others are
        behind it), or a rollback of the whole fleet, or of every host the slot's release had reached (a `sync
        --hosts` undone); a rollback of part of them moves those hosts off the release the rest still run, which
        stays the slot's (else `--retry-failed` spread the rollback to every host)."""
        return self.action != "rollback" or self.sets_release


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of history: a sync, rollback, abort, start, finish, or pool change."""

    id: int
    slot: int | None
    action: str
    tag: str
    commit: str
    outcome: str
    message: str
    user: str
    started: float
    seconds: float
    report: dict[str, Any]

    def as_json(self, with_hosts: bool = False) -> dict[str, Any]:
        document: dict[str, Any] = {
            "id": self.id,
            "slot": self.slot,
            "action": self.action,
            "tag": self.tag or None,
            "commit": self.commit or None,
            "outcome": self.outcome,
            "message": self.message,
            "user": self.user,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
            "seconds": round(self.seconds, 3),
            "counts": self.report.get("counts"),
        }
        if with_hosts:
            document["hosts"] = self.host_outcomes()
        return document

    def host_outcomes(self) -> list[dict[str, Any]]:
        """Per-host outcomes: a run's host records; for a depool or pool, each host it changed (ok) or could not
        (ok false, the command's error), so `log --json` answers "who depooled mw1017, and when"."""
        if "changed" not in self.report:
            return list(self.report.get("hosts", []))
        changed = [{"host": host, "ok": True, "error": None} for host in self.report.get("changed", [])]
        failed = [{"host": f["host"], "ok": False, "error": f["error"]} for f in self.report.get("failed", [])]
        return changed + failed


def current_user() -> str:
    """Who runs Sartoris, for the history, locks and default messages: $LOGNAME/$USER, else the password
    database, else "unknown" (a container's uid with no name) rather than an exception."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass(slots=True)
class HistoryWrite:
    """How a write in written_after_the_change went: None, or why the history did not take it."""

    error: str | None = None


@contextmanager
def written_after_the_change(what: str, **context: Any) -> Iterator[HistoryWrite]:
    """Around a history write made once hosts, the load balancer or a lock already changed: a history that cannot
    take it (full disk, broken database) is an error event, not an exception, so the command still reports what
    really happened (StateError's exit 4 promises that nothing changed); the yielded record says whether it did."""
    written = HistoryWrite()
    try:
        yield written
    except StateError as exc:
        written.error = str(exc)
        log.error("history_not_recorded", what=what, error=written.error, **context)


_HISTORY_FILE = "history.sqlite3"
_DENIED_BY_PERMISSIONS = ("SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_PERM")  # errors a permission may be behind


def existing_history(state_dir: Path) -> History | None:
    """The History in `state_dir` for a command that only reads it, or None where no run has been: opening one
    creates it, and reading must leave nothing behind."""
    path = state_dir / _HISTORY_FILE
    try:
        if state_dir.exists() and not state_dir.is_dir():  # "no history yet" would hide every run recorded elsewhere
            raise StateError(
                f"the state folder {state_dir} is not a folder: move it away to let Sartoris keep its history"
            )
        found = path.exists()
    except OSError as exc:  # another operator's private state folder (a umask of 077)
        raise StateError(f"history {path}: {explained(exc, path)}") from None
    return History(state_dir) if found else None


class History:
    """Deploy records and pool state in `<state_dir>/history.sqlite3`."""

    def __init__(self, state_dir: Path) -> None:
        self._path = state_dir / _HISTORY_FILE
        try:
            make_folder(state_dir)
        except OSError as exc:
            why = explained(exc, state_dir, write=True)
            raise StateError(f"cannot create the state folder {state_dir}: {why}") from None
        try:
            make_file(self._path)
        except OSError as exc:
            raise StateError(f"history {self._path}: {explained(exc, self._path, write=True)}") from None
        with self._connect() as db:
            if db.execute("PRAGMA user_version").fetchone()[0] < _SCHEMA_VERSION:  # else: read-only is enough
                _migrate(db)

    def ensure_sound(self) -> None:
        """Refuse (StateError) a damaged or unwritable history before a command changes anything: a run that went
        out to the fleet could not be recorded, rolled back or seen by `status` afterwards. quick_check reads every page
        (about 20 ms for 60 MB), where a damaged page would otherwise surface only when the run is written down."""
        with self._connect() as db:
            problems = [str(row[0]) for row in db.execute("PRAGMA quick_check(1)")]
        if problems != ["ok"]:
            raise StateError(
                f"history {self._path} is damaged ({problems[0] if problems else 'no answer'}): move it aside (a new"
                f" one is started) or recover it with `sqlite3 {self._path} .recover`"
            )
        try:  # and writable: a write, rolled back (a history this user may only read cannot record the run)
            with closing(sqlite3.connect(self._path, timeout=10)) as db:
                db.execute("BEGIN IMMEDIATE")
                db.execute(f"PRAGMA user_version = {int(db.execute('PRAGMA user_version').fetchone()[0])}")
                db.rollback()
        except sqlite3.Error as exc:
            why = self._denied(exc) or str(exc)
            raise StateError(f"history {self._path} cannot be written ({why}): the run could not be recorded") from None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            with closing(sqlite3.connect(self._path, timeout=10)) as db, db:
                yield db
        except sqlite3.Error as exc:
            raise StateError(f"history {self._path}: {self._denied(exc) or exc}") from None

    def _denied(self, exc: sqlite3.Error) -> str | None:
        """The permission in the way when sqlite could not open or write the history ("unable to open database
        file" says neither that nor whose the file is); None for any other error."""
        if not str(getattr(exc, "sqlite_errorname", "")).startswith(_DENIED_BY_PERMISSIONS):
            return None
        denial = denied(self._path) or denied(self._path, write=True)
        return None if denial is None else str(denial)

    def begin(
        self,
        action: str,
        slot: int,
        tag: str,
        commit: str,
        message: str,
        started: float,
        reason: str | None = None,
        targets: Iterable[str] = (),
        sets_release: bool = True,
    ) -> int:
        """Note, before its first host switches, a run that may put hosts on `tag`; its row id. Written down, the run
        replaces the note (record); a run that dies first (kill -9, a power cut) leaves it, so `rollback`, `status`
        and `--retry-failed` count its release as one that reached hosts, `log` shows it unfinished, and `abort`
        reads its `targets` (the hosts it may have switched) until later runs switched them elsewhere; `sets_release`:
        whether they cover the config's fleet (see DeployedRelease.sets_the_release)."""
        with self._connect() as db:
            cursor = db.execute(
                "INSERT INTO deploys (slot, action, tag, commit_sha, outcome, message, user, started, seconds, report)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
                (slot, action, tag, commit, UNFINISHED, message, current_user(), started,
                 json.dumps({"hosts": [], "reason": reason, "targets": list(targets), "sets_release": sets_release})),
            )
            return int(cursor.lastrowid or 0)

    def past_the_canaries(self, begun: int) -> None:
        """The run noted as `begun` in its canary phase now switches the rest: its note is no longer a rejection."""
        with self._connect() as db:
            db.execute(
                "UPDATE deploys SET report = json_set(report, '$.reason', NULL) WHERE id = ? AND outcome = ?",
                (begun, UNFINISHED),
            )

    def record(self, action: str, report: SyncReport, message: str, started: float, begun: int | None = None) -> None:
        """Keep one run: who, when, what, how it ended, and every host's result; in place of its `begun` note."""
        if begun is not None:
            with self._connect() as db:
                replaced = db.execute(
                    "UPDATE deploys SET outcome = ?, seconds = ?, report = ? WHERE id = ? AND outcome = ?",
                    (report.outcome.value, report.seconds, json.dumps(report.as_json()), begun, UNFINISHED),
                ).rowcount
            if replaced:
                return
        self._insert(
            report.slot,
            action,
            report.tag,
            report.commit,
            report.outcome.value,
            message,
            started,
            report.seconds,
            report.as_json(),
        )

    def record_event(
        self,
        action: str,
        slot: int | None,
        message: str,
        detail: dict[str, Any] | None = None,
        tag: str = "",
        commit: str = "",
        outcome: str = "ok",
    ) -> None:
        """Keep a lifecycle or pool event (start, finish, abort, depool, pool)."""
        self._insert(slot, action, tag, commit, outcome, message, time.time(), 0.0, detail or {})

    def _insert(
        self,
        slot: int | None,
        action: str,
        tag: str,
        commit: str,
        outcome: str,
        message: str,
        started: float,
        seconds: float,
        report: dict[str, Any],
    ) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO deploys (slot, action, tag, commit_sha, outcome, message, user, started, seconds, report)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (slot, action, tag, commit, outcome, message, current_user(), started, seconds, json.dumps(report)),
            )

    def deployed(self, slot: int, up_to: int | None = None) -> list[DeployedRelease]:
        """Releases that switched hosts in `slot`, newest first (syncs, rollbacks and retries): a partial run that
        stopped before any host got the release (its hosts failed, some depooled) is not one. With `up_to`, only
        those written down by row `up_to` (see newest_id). A row written before runs said whether they covered the
        fleet (no `sets_release`) covered it, as every run counted then."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT tag, commit_sha, action, json_extract(report, '$.reason'),"
                " json_extract(report, '$.sets_release') FROM deploys"
                f" WHERE slot = ? AND action IN ('sync', 'rollback') AND outcome IN {_SWITCHED}"
                # an ok run has every host on its release, an unfinished one may have any; only a partial one's hosts
                # are read
                f" AND (outcome IN ('ok', '{UNFINISHED}')"
                " OR EXISTS (SELECT 1 FROM json_each(report, '$.hosts') WHERE json_extract(value, '$.ok')))"
                " AND id <= ? ORDER BY id DESC",
                (slot, up_to if up_to is not None else _NEWEST),
            ).fetchall()
        return [
            DeployedRelease(row[0], row[1], row[2], row[3] in (CANARY_FAILED, CANARY_PHASE), row[4] != 0)
            for row in rows
        ]

    def last_deployed(self, slot: int, up_to: int | None = None) -> DeployedRelease | None:
        """The slot's current release (with `up_to`, as it was once row `up_to` was written): the newest that
        switched hosts (ok or partial), that no canary rejected, and that was not a rollback of part of the fleet
        (see DeployedRelease.sets_the_release); None before the first."""
        releases = self.deployed(slot, up_to)
        return next((release for release in releases if release.sets_the_release and not release.rejected), None)

    def newest_id(self) -> int:
        """The id of the newest row (0 in an empty history), which a started deploy notes: its runs are the rows
        after it (see runs_after)."""
        with self._connect() as db:
            row = db.execute("SELECT max(id) FROM deploys").fetchone()
        return int(row[0] or 0)

    def newest_start(self, slot: int) -> Entry | None:
        """The slot's newest `start` event: while a deploy's lock is held, that deploy's (no other start gets in),
        if its start was written down."""
        with self._connect() as db:
            row = db.execute(
                "SELECT * FROM deploys WHERE slot = ? AND action = 'start' ORDER BY id DESC LIMIT 1", (slot,)
            ).fetchone()
        return _entry(row) if row is not None else None

    def runs_after(self, slot: int, mark: int) -> list[Entry]:
        """The slot's syncs and rollbacks (unfinished ones too) written after row `mark`, oldest first: the runs
        of a deploy started when `mark` was the newest row."""
        return self._runs("slot = ? AND id > ? ORDER BY id", (slot, mark))

    def runs_back_from(self, slot: int, mark: int | None = None) -> Iterator[Entry]:
        """The slot's syncs and rollbacks (unfinished ones too) written by row `mark` (None: every one), newest first,
        read a page at a time as they are asked for (pages growing from a few rows): a reader that needs only the
        newest of years of runs reads only those, and holds no more of them than it keeps. A row written meanwhile
        is newer than the first page: never read."""
        below, size = (mark + 1 if mark is not None else _NEWEST), _FIRST_PAGE
        while True:
            page = self._runs("slot = ? AND id < ? ORDER BY id DESC LIMIT ?", (slot, below, size))
            yield from page
            if len(page) < size:
                return
            below, size = page[-1].id, min(size * 2, _LARGEST_PAGE)

    def runs_of(self, slot: int, commit: str) -> list[Entry]:
        """The slot's syncs and rollbacks of `commit` (unfinished ones too), oldest first."""
        return self._runs("slot = ? AND commit_sha = ? ORDER BY id", (slot, commit))

    def has_rows_of(self, slot: int) -> bool:
        """Whether any row is the slot's own (a run, a start, a finish...): a slot this deploy host knew once."""
        return bool(self.entries(slot, 1, own_only=True))

    def entries(self, slot: int | None = None, limit: int = 20, own_only: bool = False) -> list[Entry]:
        """History, newest first; every slot when `slot` is None, else that slot's and the fleet-wide pool
        changes (they belong to no slot and matter to every one), or, `own_only`, that slot's alone."""
        where = (" WHERE slot = ?" if own_only else " WHERE slot = ? OR slot IS NULL") if slot is not None else ""
        query = "SELECT * FROM deploys" + where + " ORDER BY id DESC LIMIT ?"
        args: tuple[Any, ...] = (slot, limit) if slot is not None else (limit,)
        with self._connect() as db:
            return [_entry(row) for row in db.execute(query, args).fetchall()]

    def entry_for_tag(self, tag: str) -> Entry | None:
        """The newest sync or rollback of `tag`."""
        runs = self.entries_for_tag(tag, 1)
        return runs[0] if runs else None

    def entries_for_tag(self, tag: str, limit: int = 20) -> list[Entry]:
        """The syncs and rollbacks of `tag`, newest first: a tag's first sync, its `--retry-failed` runs and the
        rollbacks to it each went to their own hosts."""
        return self._runs("tag = ? ORDER BY id DESC LIMIT ?", (tag, limit))

    def _runs(self, where: str, args: tuple[Any, ...]) -> list[Entry]:
        """The syncs and rollbacks that match `where` (a condition, then its order and limit)."""
        with self._connect() as db:
            rows = db.execute(f"SELECT * FROM deploys WHERE action IN ('sync', 'rollback') AND {where}", args)
            return [_entry(row) for row in rows.fetchall()]

    def set_depooled(self, hosts: Iterable[str], depooled: bool, scope: str, *, by_hand: bool = False) -> None:
        """Remember `hosts` as out of (or back in) the pool named `scope` ('' when the depool commands are the same
        for every slot, 'slot<N>' when they name the slot); `by_hand`: an operator's `depool`, not a run's. A run's
        depool of a host already out by hand leaves it out by hand."""
        now = time.time()
        with self._connect() as db:
            db.executemany(
                "INSERT INTO pool_state (scope, host, depooled, changed, by_hand) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(scope, host) DO UPDATE SET changed = excluded.changed, by_hand = CASE"
                " WHEN excluded.depooled = 1 AND pool_state.depooled = 1 AND pool_state.by_hand = 1 THEN 1"
                " ELSE excluded.by_hand END, depooled = excluded.depooled",
                [(scope, host, int(depooled), now, int(depooled and by_hand)) for host in hosts],
            )

    def depooled_hosts(self, scope: str, *, by_hand: bool = False) -> frozenset[str]:
        """Every host remembered as out of the pool `scope`, spelled as its depool named it (with `by_hand`, only
        those an operator's `depool` took out). A slot's pool also counts a host the host-wide pool has out and the
        slot's own has no word on (state kept before the commands named the slot, or before Sartoris kept pools
        apart): out until told otherwise."""
        hand = " AND by_hand = 1" if by_hand else ""
        with self._connect() as db:
            rows = db.execute(
                f"SELECT host FROM pool_state WHERE scope = ?1 AND depooled = 1{hand}"
                " UNION SELECT host FROM pool_state AS wide WHERE ?1 != '' AND wide.scope = '' AND wide.depooled = 1"
                f"{hand} AND NOT EXISTS"
                " (SELECT 1 FROM pool_state AS own WHERE own.scope = ?1 AND own.host = wide.host)",
                (scope,),
            )
            return frozenset(row[0] for row in rows)

    def pool_changes_by_runs(self) -> list[tuple[int | None, str, str]]:
        """Every host a sync or rollback depooled, with the run's slot, and every host a `pool` put back, oldest
        first, as (slot, action, host spelled as the run or the pool named it)."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT d.id, d.slot, d.action, json_extract(h.value, '$.host')"
                " FROM deploys AS d, json_each(d.report, '$.hosts') AS h"
                " WHERE d.action IN ('sync', 'rollback') AND json_extract(h.value, '$.depooled')"
                " UNION ALL SELECT d.id, d.slot, d.action, c.value"
                " FROM deploys AS d, json_each(d.report, '$.changed') AS c WHERE d.action = 'pool' ORDER BY 1"
            ).fetchall()
        return [(slot, action, host) for _, slot, action, host in rows if isinstance(host, str)]

    def pool_hosts(self, scope: str) -> frozenset[str]:
        """Every host with a remembered state that the pool `scope` reads (its own, and the host-wide pool's)."""
        with self._connect() as db:
            rows = db.execute("SELECT host FROM pool_state WHERE scope = ? OR scope = ''", (scope,))
            return frozenset(row[0] for row in rows)


def _migrate(db: sqlite3.Connection) -> None:
    """Bring the history to this schema, once: other processes opening it meanwhile wait for the write lock, then
    find it done. A history this user may only read (a monitoring account, a read-only mount) is read as it is:
    what readers use is there in every version, and a writer migrates it."""
    try:
        db.execute("BEGIN IMMEDIATE")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version >= _SCHEMA_VERSION:
            return  # another process migrated it while this one waited
        for statement in _SCHEMA.split(";"):  # not executescript, which would commit the transaction first
            if statement.strip():
                db.execute(statement)
        if version < 1:
            db.execute(_FROM_VERSION_0)
        if "by_hand" not in {row[1] for row in db.execute("PRAGMA table_info(pool_state)")}:
            db.execute("ALTER TABLE pool_state ADD COLUMN by_hand INTEGER NOT NULL DEFAULT 0")
        db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
    except sqlite3.OperationalError as exc:
        if "readonly" not in str(exc):
            raise
        db.rollback()


def _entry(row: tuple[Any, ...]) -> Entry:
    return Entry(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9], json.loads(row[10]))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _process_start(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot, /proc/PID/stat's 22nd field), to tell it from a later
    process given the same PID (after a reboot, or PIDs wrapping); None where /proc does not say."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


_UNREADABLE_AFTER = 10.0  # seconds: a lock file still unreadable this long after it was made is not being written
_UNREADABLE = "unreadable"  # true in the holder of a lock file that cannot be read (see _unreadable_holder)
_DAMAGED = "empty or damaged"  # why, for a lock file read but not a JSON object (a crash between create and write)


def shown(value: object) -> str:
    """A lock's field (or a hook's line of output) as text for a terminal: as it is when plain, else quoted with its
    control characters escaped (a lock written by hand or by an old version may hold an escape sequence, which
    would act on the reader's terminal, or a line break, which would pass for a line of Sartoris's own)."""
    text = str(value)
    return text if text.isprintable() else repr(text)


class SlotLock:
    """The slot's deploy lock: one holder at a time, created atomically, describing who holds it."""

    def __init__(self, state_dir: Path, slot: int, *, run: bool = False) -> None:
        """The slot's deploy lock; with `run`, the lock one sync or rollback holds inside a started deploy
        (start's lock lets this operator's runs in; this one still lets in only one at a time)."""
        self.slot = slot
        self.path = state_dir / "locks" / (f"slot{slot}.run.lock" if run else f"slot{slot}.lock")

    def holder(self) -> dict[str, Any] | None:
        """Who holds the lock (user, host, pid, since, command, message, ...), or None when it is free. A lock file
        that cannot be read names no holder: only why not, and its path (see unreadable); a locks folder this user
        may not look into is a StateError (free or held cannot be told)."""
        try:
            text = self.path.read_text()
        except (FileNotFoundError, NotADirectoryError):  # no lock file, or no locks folder for one to be in
            return None
        except OSError as exc:  # someone's lock this user may not read (a umask of 077): held, never breakable
            denial = denied(self.path) if isinstance(exc, PermissionError) else None
            if denial is not None and denial.on_a_folder:  # whether anyone holds it cannot be seen at all
                raise StateError(f"cannot look for the lock {self.path}: {denial}") from None
            return self._unreadable_holder(str(denial) if denial is not None else exc.strerror or str(exc))
        try:
            held = json.loads(text)
        except ValueError:
            held = None
        if not isinstance(held, dict):  # empty, cut short, or not an object
            return self._unreadable_holder(_DAMAGED)
        held.pop(_UNREADABLE, None)  # a lock is unreadable by this reading only, never by what its file says
        return held

    def holder_as_seen(self) -> dict[str, Any] | None:
        """holder(), for a report that must not be lost over it (status): a locks folder this user may not look into
        gives a holder that cannot be read, saying why, instead of a StateError."""
        try:
            return self.holder()
        except StateError as exc:
            return self._unreadable_holder(str(exc))

    def _unreadable_holder(self, why: str) -> dict[str, Any]:
        """The holder of a lock file that cannot be read: no one named (the holder's keys are there, null, as status
        --json has always had them), `unreadable` true, why not, and where the file is."""
        unknown = dict.fromkeys(("user", "host", "pid", "since", "command", "message"))
        return {**unknown, _UNREADABLE: True, "why": why, "path": str(self.path)}

    @staticmethod
    def unreadable(holder: dict[str, Any] | None) -> str | None:
        """Why the lock file `holder` was read from cannot be read (so whose lock it is is unknown): the system's
        word ("permission denied: owner …, mode 0600"), or "empty or damaged"; None for a lock that was read, or none
        at all."""
        if holder is None or holder.get(_UNREADABLE) is not True:
            return None
        return str(holder.get("why"))

    def is_stale(self, holder: dict[str, Any]) -> bool:
        """A run's lock (not a start's) taken on this host by a process that no longer exists (a later process
        with its PID is not it)."""
        pid, started = holder.get("pid"), holder.get("pid_start")
        return (
            holder.get("command") != "start"
            and holder.get("host") == socket.gethostname()
            and isinstance(pid, int)
            and (not _pid_alive(pid) or (isinstance(started, str) and _process_start(pid) not in (None, started)))
        )

    def may_be_broken(self, holder: dict[str, Any]) -> bool:
        """What `--force` breaks: a stale lock, or a lock file whose content cannot be read (empty or damaged: a
        crash between its creation and its write) and that has not been written for a while. Never broken without
        the operator's --force (see break_if_stale)."""
        why = self.unreadable(holder)
        if why is None:
            return self.is_stale(holder)
        if why != _DAMAGED:  # a lock this user may not read: someone holds it, and it is never broken
            return False
        try:
            return time.time() - self.path.stat().st_mtime > _UNREADABLE_AFTER
        except OSError:
            return False

    def is_ours(self, holder: dict[str, Any]) -> bool:
        """Taken by this user on this host (a start lock that this operator's sync may run under)."""
        return holder.get("user") == current_user() and holder.get("host") == socket.gethostname()

    def is_own_start(self, holder: dict[str, Any] | None) -> bool:
        """`holder` is this operator's started deploy (`sartoris start` by this user on this host): their runs go
        inside it, one at a time, under its run lock."""
        return holder is not None and holder.get("command") == "start" and self.is_ours(holder)

    def acquire(self, command: str, message: str = "", *, force: bool = False, **extra: Any) -> None:
        """Take the lock or raise LockHeldError naming the holder; `force` breaks only a stale lock. A lock folder
        or file that cannot be written (a file in its place, a full disk) is a StateError, and leaves no lock."""
        try:
            make_folder(self.path.parent)
        except OSError as exc:
            why = explained(exc, self.path.parent, write=True)
            raise StateError(f"cannot create the lock folder {self.path.parent}: {why}") from None
        record = {
            "user": current_user(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "pid_start": _process_start(os.getpid()),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": command,
            "message": message,
            **extra,
        }
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # as the umask says (shared_files)
            except FileExistsError:
                held = self.holder() or {}
                if force and self.may_be_broken(held):
                    self.path.unlink(missing_ok=True)
                    continue
                raise LockHeldError(self.describe(held)) from None
            except OSError as exc:
                raise StateError(f"cannot take the lock {self.path}: {explained(exc, self.path, write=True)}") from None
            try:
                with os.fdopen(fd, "w") as handle:
                    json.dump(record, handle)
            except OSError as exc:  # an empty lock file would read as held by someone unknown: leave none
                self.path.unlink(missing_ok=True)
                raise StateError(f"cannot write the lock {self.path}: {exc.strerror or exc}") from None
            return
        raise LockHeldError(f"slot {self.slot}: lock taken by another run while breaking a stale one")

    def break_if_stale(self) -> None:
        """Remove the lock when the run that took it is gone (see is_stale); a live holder's lock stays."""
        held = self.holder()
        if held is not None and self.is_stale(held):
            self.release()

    def describe(self, held: dict[str, Any]) -> str:
        """Who holds the lock and since when, for a refusal (its fields escaped where they are not plain text)."""
        why = self.unreadable(held)
        if why is not None:
            text = f"slot {self.slot} is locked, but the lock file {self.path} cannot be read ({why})"
            if why != _DAMAGED:
                return text + ", so who holds it since when is unknown: its owner (or root) can read it"
            breakable = self.may_be_broken(held)
            return text + ("; pass --force to break it" if breakable else "; it may be being written: retry")
        text = (
            f"slot {self.slot} is locked by {shown(held.get('user'))}@{shown(held.get('host'))}"
            f" (pid {shown(held.get('pid'))}) since {shown(held.get('since'))}: {shown(held.get('command'))}"
        )
        if held.get("message"):  # a -m message may have several lines: one, here
            text += f" ({shown(' '.join(str(held['message']).split()))})"
        if self.is_stale(held):
            text += "; that process is gone: the lock is stale, pass --force to break it"
        elif self.is_own_start(held):
            text += "; that is your own deploy: sync inside it, or end it with `sartoris finish` or `abort`"
        return text

    def update(self, **fields: Any) -> None:
        """Add fields to the held lock (e.g. the tag a started deploy synced), replacing the file atomically."""
        held = self.holder()
        if held is None:
            raise RefusedError(f"slot {self.slot} is not locked")
        if (why := self.unreadable(held)) is not None:  # writing it back would put a made-up holder in it
            raise RefusedError(f"slot {self.slot}: the lock file {self.path} cannot be read ({why})")
        held.update(fields)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(held))  # as acquire made it: as the umask says
        os.replace(temporary, self.path)

    def release(self) -> None:
        self.path.unlink(missing_ok=True)

    @contextmanager
    def held(self, command: str, message: str = "", *, force: bool = False) -> Iterator[None]:
        self.acquire(command, message, force=force)
        try:
            yield
        finally:
            self.release()
