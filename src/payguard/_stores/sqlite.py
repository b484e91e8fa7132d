"""A persistent store: histories, decisions and held payments in one SQLite file.

Each transaction is one ``BEGIN IMMEDIATE`` transaction, which takes the database's write lock before the
first read, or an optimistic one (``SQLiteStore.optimistic``, the guard's for deciding an event), which
reads without it and takes it to write, once it has checked that what it read still holds: the
read-modify-write of one event is serialised against every other connection to the file, so several
processes may share it and features stay exact. Threads sharing one ``SQLiteStore`` share its
connection and take turns on a lock. A row holds a history in the binary form of ``codec`` (the files
of earlier payguard versions hold ``AccountHistory.to_json()`` as JSON text, and read as well): JSON cost
a third of an event's time over this store.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import orjson

from .._decision import Decision
from .._errors import StoreError
from .codec import decode, encode
from .history import AccountHistory
from .interface import StaleReadError, Store, StoreTransaction

__all__ = ["SQLiteStore"]

# a write that changes nothing: it turns a read transaction into the write transaction (the lock)
_TAKE_LOCK = "DELETE FROM holds WHERE 0"
# waiting for the write lock another process holds: from 0.1 ms, doubling, to 2 ms between tries
_FIRST_WAIT = 0.0001
_MAX_WAIT = 0.002

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (key TEXT PRIMARY KEY, history TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS decisions (event_id TEXT PRIMARY KEY, decision TEXT NOT NULL, digest BLOB);
CREATE TABLE IF NOT EXISTS holds (decision_id TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS decision_ids (decision_id TEXT PRIMARY KEY, event_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS listed (name TEXT NOT NULL, entry TEXT NOT NULL, PRIMARY KEY (name, entry));
CREATE TABLE IF NOT EXISTS published_lists (name TEXT PRIMARY KEY, version INTEGER, entries TEXT);
CREATE TABLE IF NOT EXISTS published_ruleset (one INTEGER PRIMARY KEY, digest TEXT, path TEXT);
"""
# what every process on the file runs, as an event's transaction begins: the lists' epoch (the version of
# the list published last) and the rule set a reload published
_PUBLISHED = (
    "SELECT (SELECT max(version) FROM published_lists), (SELECT digest FROM published_ruleset),"
    " (SELECT path FROM published_ruleset)"
)


class _SQLiteTransaction(StoreTransaction):
    """One event's reads and writes. Given ``begin``, it is optimistic: it reads in a deferred transaction,
    without the write lock, remembering each row it read, until ``settle`` (or its first write) takes the
    lock."""

    def __init__(
        self, connection: sqlite3.Connection, path: str, begin: Callable[[], None] | None = None
    ) -> None:
        self._db = connection
        self.path = path
        self._accounts: dict[str, AccountHistory] = {}
        # the decisions row of an event id, read once for ``decision`` and ``event_digest``
        self._decisions: dict[str, tuple[Any, Any] | None] = {}
        self._begin = begin
        # each query read before the lock was taken, with the row it returned: the same row at ``settle``
        # means what was computed from it holds
        self._reads: dict[tuple[str, tuple[Any, ...]], Any] = {}
        self._what_runs: tuple[Any, Any, Any] | None = None  # read once: see ``_PUBLISHED``
        self._stale = False  # settle found a row changed: nothing may be written

    @property
    def settled(self) -> bool:
        """Whether this transaction holds the write lock (always, unless it is optimistic)."""
        return self._begin is None

    def settle(self) -> None:
        """Take the write lock; ``StaleReadError`` if a row read before it has changed since (the caller
        then decides again; this transaction refuses every write from then on). When no other connection
        wrote since the first read, the read transaction itself becomes the write transaction, and nothing
        needs checking; when one did, SQLite refuses that at once (``SQLITE_BUSY_SNAPSHOT``), and the rows
        read are read again under a lock of its own."""
        begin = self._begin
        if begin is None:
            return
        # nothing read leaves no snapshot to upgrade (SQLite would wait for the lock with its coarse sleeps)
        if not self._stale and not (self._reads and _took_lock(self._db, _TAKE_LOCK)):
            self._db.execute("ROLLBACK")
            begin()
            reads, db = self._reads.items(), self._db
            self._stale = any(db.execute(sql, params).fetchone() != row for (sql, params), row in reads)
        if self._stale:
            raise StaleReadError(f"SQLite store {self.path!r}: a row this transaction read has changed")
        self._begin = None

    def _one(self, sql: str, params: tuple[Any, ...]) -> Any:
        row = self._db.execute(sql, params).fetchone()
        if self._begin is not None:
            self._reads.setdefault((sql, params), row)
        return row

    def account(self, key: str) -> AccountHistory:
        found = self._accounts.get(key)
        if found is None:
            row = self._one("SELECT rowid, history FROM accounts WHERE key = ?", (key,))
            found = self._accounts[key] = AccountHistory() if row is None else self._load(key, *row)
        return found

    def _load(self, key: str, rowid: int, stored: Any) -> AccountHistory:
        try:
            if isinstance(stored, bytes):
                return decode(stored)
            return AccountHistory.from_json(orjson.loads(stored))  # JSON text: an earlier payguard wrote it
        except (StoreError, ValueError, TypeError) as exc:
            # the key is masked as in the audit trail, where this message lands as the hold's reason
            shown = f"…{key[-4:]}" if len(key) > 8 else "#"
            raise StoreError(
                f"SQLite store {self.path!r}: the history of account {shown} (accounts row {rowid}) cannot "
                f"be read: {exc}"
            ) from exc

    def save(self, key: str, history: AccountHistory) -> None:
        self.settle()
        self._db.execute(
            "INSERT INTO accounts (key, history) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET history = excluded.history",
            (key, encode(history)),
        )

    def _decision_row(self, event_id: str) -> tuple[Any, Any] | None:
        if event_id not in self._decisions:
            self._decisions[event_id] = self._one(
                "SELECT decision, digest FROM decisions WHERE event_id = ?", (event_id,)
            )
        return self._decisions[event_id]

    def decision(self, event_id: str) -> Decision | None:
        row = self._decision_row(event_id)
        return Decision.from_dict(orjson.loads(row[0])) if row else None

    def event_digest(self, event_id: str) -> bytes | None:
        row = self._decision_row(event_id)
        return bytes(row[1]) if row and row[1] is not None else None

    def put_decision(self, event_id: str, decision: Decision, digest: bytes) -> None:
        self.settle()
        self._decisions.pop(event_id, None)
        self._db.execute(
            "INSERT OR REPLACE INTO decisions (event_id, decision, digest) VALUES (?, ?, ?)",
            (event_id, orjson.dumps(decision.to_dict()).decode(), digest),
        )
        self._db.execute(
            "INSERT OR REPLACE INTO decision_ids (decision_id, event_id) VALUES (?, ?)",
            (decision.decision_id, event_id),
        )

    def decision_by_id(self, decision_id: str) -> Decision | None:
        row = self._one(
            "SELECT d.decision FROM decision_ids i JOIN decisions d ON d.event_id = i.event_id"
            " WHERE i.decision_id = ?",
            (decision_id,),
        )
        return Decision.from_dict(orjson.loads(row[0])) if row else None

    def listed_version(self) -> int:
        # rows are only ever added: the largest rowid grows with each, and is one index step away
        row = self._one("SELECT max(rowid) FROM listed", ())
        return int(row[0] or 0)

    def listed(self) -> dict[str, frozenset[str]]:
        self.listed_version()  # rows are only ever added: the same version at ``settle``, the same entries
        found: dict[str, set[str]] = {}
        for name, entry in self._db.execute("SELECT name, entry FROM listed"):
            found.setdefault(name, set()).add(entry)
        return {name: frozenset(entries) for name, entries in found.items()}

    def add_listed(self, name: str, entry: str) -> None:
        self.settle()
        self._db.execute("INSERT OR IGNORE INTO listed (name, entry) VALUES (?, ?)", (name, entry))

    def lists_epoch(self) -> int:
        """The version of the list ``SQLiteStore.publish_list`` published last (0: none was)."""
        return int(self._published()[0] or 0)

    def ruleset_in_force(self) -> tuple[str, str] | None:
        """The digest and path of the rule set the last ``reload`` published (None: none was)."""
        _, digest, path = self._published()
        return None if digest is None else (digest, path)

    def _published(self) -> tuple[Any, Any, Any]:
        if self._what_runs is None:
            self._what_runs = self._one(_PUBLISHED, ())
        return self._what_runs

    def held(self, decision_id: str) -> dict[str, Any] | None:
        row = self._one("SELECT record FROM holds WHERE decision_id = ?", (decision_id,))
        return orjson.loads(row[0]) if row else None

    def put_held(self, decision_id: str, record: dict[str, Any] | None) -> None:
        self.settle()
        if record is None:
            self._db.execute("DELETE FROM holds WHERE decision_id = ?", (decision_id,))
        else:
            self._db.execute(
                "INSERT OR REPLACE INTO holds (decision_id, record) VALUES (?, ?)",
                (decision_id, orjson.dumps(record).decode()),
            )


def _took_lock(db: sqlite3.Connection, sql: str) -> bool:
    """Whether ``sql`` (``BEGIN IMMEDIATE``, or a write in a read transaction) took the write lock; False
    when another connection holds it, or wrote since the read transaction's snapshot."""
    try:
        db.execute(sql)
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):  # SQLITE_BUSY and SQLITE_BUSY_SNAPSHOT read "database is locked"
            return False
        raise
    return True


class _Checkpointer:
    """Copies the write-ahead log into the database file every ``interval`` seconds, on a thread and a
    connection of its own: SQLite's automatic checkpoint runs inside the commit that fills the log, and
    its fsyncs stalled one event in a few hundred by 25 ms."""

    def __init__(self, path: str, interval: float) -> None:
        self._path, self._interval = path, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="payguard-sqlite-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        db = sqlite3.connect(self._path, timeout=0, isolation_level=None)
        try:
            while not self._stop.wait(self._interval):
                # PASSIVE waits for no one; a busy or failed pass is tried again at the next interval
                with suppress(sqlite3.Error):
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            db.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class SQLiteStore(Store):
    """A persistent store in one SQLite file, so history survives a restart.

    Each event is one ``BEGIN IMMEDIATE`` transaction: a crash between two events loses nothing already
    decided. The database runs in WAL mode; ``synchronous="FULL"`` also survives power loss, at some cost in
    speed (the default ``NORMAL`` survives process crashes). Several processes may share the file;
    ``timeout`` is how long a transaction waits for the others' before it fails with ``StoreError``.
    ``checkpoint_interval`` is how often a background thread copies the write-ahead log into the file
    (``None``: SQLite's automatic checkpoint, inside the commit that fills the log).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "NORMAL",
        timeout: float = 30.0,
        checkpoint_interval: float | None = 1.0,
    ) -> None:
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise StoreError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
        if checkpoint_interval is not None and checkpoint_interval <= 0:
            raise StoreError(f"checkpoint_interval must be more than 0 seconds, not {checkpoint_interval!r}")
        self.path = str(path)
        self._interval = checkpoint_interval
        self._checkpointer: _Checkpointer | None = None
        self._checkpointer_pid = 0
        self.timeout = timeout
        self._busy = f"PRAGMA busy_timeout = {max(0, round(timeout * 1000))}"
        try:
            self._db = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            if checkpoint_interval is not None:  # the background thread does it instead
                self._db.execute("PRAGMA wal_autocheckpoint = 0")
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(decisions)")}
            if "digest" not in columns:  # a file an earlier payguard wrote: its decisions have none
                with suppress(sqlite3.OperationalError):  # another process may have just added it
                    self._db.execute("ALTER TABLE decisions ADD COLUMN digest BLOB")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite store {self.path!r}: {exc}") from exc
        self._lock = threading.RLock()
        self.stale_reads = 0

    @contextmanager
    def transaction(self) -> Iterator[StoreTransaction]:
        with self._lock:
            self._start()
            self._begin()
            yield from self._run(_SQLiteTransaction(self._db, self.path))

    @contextmanager
    def optimistic(self) -> Iterator[_SQLiteTransaction]:
        """A transaction that reads without the write lock, so that other processes' events run while
        this one computes: its first write, or ``settle()``, takes the lock, raising ``StaleReadError``
        (after a rollback) when a row it read has changed since. A block that only reads never takes the
        lock. ``stale_reads`` counts the transactions that found a change."""
        with self._lock:
            self._start()
            try:
                self._db.execute("BEGIN")  # deferred: a snapshot from the first read, and no lock
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite store {self.path!r}: {exc}") from exc
            try:
                yield from self._run(_SQLiteTransaction(self._db, self.path, begin=self._begin))
            except StaleReadError:
                self.stale_reads += 1
                raise

    def _start(self) -> None:
        if self._interval is not None and self._checkpointer_pid != os.getpid():
            # started by the first transaction of each process: a forked child has no thread of its parent
            self._checkpointer = _Checkpointer(self.path, self._interval)
            self._checkpointer_pid = os.getpid()

    def _run(self, txn: _SQLiteTransaction) -> Iterator[_SQLiteTransaction]:
        """Yield ``txn`` to the block, then commit what it wrote, or roll it back if the block raised."""
        try:
            yield txn
        except BaseException as exc:
            self._rollback()
            if isinstance(exc, sqlite3.Error):  # a read or write of the block: the file is unreadable
                raise StoreError(f"SQLite store {self.path!r}: {exc}") from exc
            raise
        try:
            self._db.execute("COMMIT")  # what it wrote; or the end of a transaction that only read
        except sqlite3.Error as exc:
            self._rollback()  # else the connection stays inside the failed transaction
            raise StoreError(f"SQLite store {self.path!r}: commit failed: {exc}") from exc

    def _begin(self) -> None:
        """``BEGIN IMMEDIATE``, waiting for another process's transaction in steps of 0.1 ms to 2 ms: SQLite's
        own busy handler sleeps 1 ms, then 2, 5, 10..., while an event holds the lock for well under one."""
        db, delay, deadline = self._db, _FIRST_WAIT, 0.0
        try:
            db.execute("PRAGMA busy_timeout = 0")
            while not _took_lock(db, "BEGIN IMMEDIATE"):
                now = time.monotonic()
                deadline = deadline or now + self.timeout
                if now >= deadline:
                    raise StoreError(
                        f"SQLite store {self.path!r}: another connection held it for {self.timeout:g} s"
                    )
                time.sleep(min(delay, deadline - now))
                delay = min(delay * 2, _MAX_WAIT)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite store {self.path!r}: {exc}") from exc
        finally:
            with suppress(sqlite3.Error):  # inside the transaction, SQLite's own wait (it rarely has to)
                db.execute(self._busy)

    def _rollback(self) -> None:
        # the cause of the rollback is the error to report; if ROLLBACK failed, the next BEGIN says so
        with suppress(sqlite3.Error):
            self._db.execute("ROLLBACK")

    # -- what every process on the file runs: lists set and rule sets reloaded at run time -------------
    def publish_list(self, name: str, entries: Iterable[str]) -> int:
        """Make ``entries`` the named list of every process on this file from its next event; its version
        (the lists' new epoch)."""
        data = orjson.dumps(sorted(entries)).decode()
        with self.transaction():
            db = self._db
            version = int(
                db.execute("SELECT coalesce(max(version), 0) + 1 FROM published_lists").fetchone()[0]
            )
            db.execute("INSERT OR REPLACE INTO published_lists VALUES (?, ?, ?)", (name, version, data))
        return version

    def publish_ruleset(self, digest: str, path: str) -> None:
        """Make the rule set of ``digest`` (loaded from ``path``) the one every process on this file runs."""
        with self.transaction():
            self._db.execute("INSERT OR REPLACE INTO published_ruleset VALUES (1, ?, ?)", (digest, path))

    def published_lists(self) -> dict[str, tuple[int, frozenset[str]]]:
        """The lists ``publish_list`` stored, by name: (version, entries). Inside an event's transaction
        (the guard reads them there when the epoch moved) it reads that transaction's snapshot."""
        with self._lock:
            try:
                rows = self._db.execute("SELECT name, version, entries FROM published_lists").fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite store {self.path!r}: {exc}") from exc
        return {name: (int(version), frozenset(orjson.loads(entries))) for name, version, entries in rows}

    def close(self) -> None:
        with self._lock:
            if self._checkpointer is not None and self._checkpointer_pid == os.getpid():
                self._checkpointer.stop()
            self._checkpointer = None
            with suppress(sqlite3.Error):  # what the log still holds goes into the file now
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            self._db.close()
