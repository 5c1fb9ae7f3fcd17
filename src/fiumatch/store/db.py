"""The SQLite database handle: connections, pragmas, transactions and error translation.

This module owns *how* fiumatch talks to SQLite; the repositories own *what* they say.

Connection settings (applied to every connection, because SQLite pragmas are per connection):

* ``journal_mode=WAL``: readers never block the writer and the writer never blocks readers.
* ``synchronous=FULL``: every commit is fsynced to the WAL before ``COMMIT`` returns. The audit
  log needs this (an entry that was acknowledged must survive a power cut, or the signed
  checkpoints would refer to leaves that no longer exist). SQLite sets ``synchronous`` per
  connection, not per table, so it is FULL for every table; the price is one fsync per write
  transaction, which is small next to the OPRF work a node does.
* ``foreign_keys=ON``, ``busy_timeout`` (default 5 s), ``secure_delete=ON`` (deleted subjects
  and keys are overwritten, not left in free pages; the WAL is truncated by
  :meth:`Database.checkpoint` after a purge), ``trusted_schema=OFF``.

Transactions: :meth:`Database.transaction` opens ``BEGIN IMMEDIATE`` (so a write transaction
takes the write lock up front and never fails half way with ``SQLITE_BUSY`` on upgrade), commits
on success and rolls back on *any* exception, leaving the database unchanged. Nested calls use
savepoints, so repository methods (each one a transaction) can be composed atomically::

    with store.transaction():
        store.queries.create(query)
        store.queries.record_result(result)

``sqlite3`` exceptions never escape: they become :mod:`fiumatch.store.errors` types.

Threads: each thread gets its own connection (``sqlite3`` connections must not be shared
between threads); :meth:`Database.close` closes them all.

This module never logs SQL parameters (they hold identifiers and keys).
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from fiumatch.store.errors import (
    RecordConflictError,
    StorageFullError,
    StoreBusyError,
    StoreError,
    StoreReadOnlyError,
)
from fiumatch.store.migrations import MIGRATIONS, Migration, apply_migrations

__all__ = ["MIN_SQLITE_VERSION", "Database", "translate_sqlite_error"]

MIN_SQLITE_VERSION = (3, 37, 0)  # STRICT tables


def translate_sqlite_error(exc: sqlite3.Error) -> StoreError:
    """Map an ``sqlite3`` exception to a store error whose reason holds no data values."""
    if isinstance(exc, sqlite3.IntegrityError):
        # SQLite's constraint messages name the constraint or the columns, never the values.
        return RecordConflictError("the write breaks a database constraint", constraint=str(exc))
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc).lower():
        return StoreBusyError("the database stayed locked for longer than the busy timeout")
    primary = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    if primary == sqlite3.SQLITE_FULL:
        return StorageFullError("the disk or the database is full; the write was not made")
    if primary == sqlite3.SQLITE_READONLY:
        return StoreReadOnlyError("the database is read-only; the write was not made")
    return StoreError(f"database error ({type(exc).__name__})")


class Database:
    """An SQLite database file with the node schema, migrated at open.

    Use :meth:`open`; the constructor does no I/O.
    """

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout_ms: int = 5000,
        migrations: tuple[Migration, ...] = MIGRATIONS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # The clock only stamps schema_version.applied_at; repositories take times as arguments.
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        self.migrations = migrations
        self._clock = clock
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._savepoints = itertools.count()
        self._closed = False

    @classmethod
    def open(
        cls,
        path: Path | str,
        *,
        busy_timeout_ms: int = 5000,
        migrations: tuple[Migration, ...] = MIGRATIONS,
        clock: Callable[[], float] = time.time,
    ) -> Database:
        """Open (creating if needed) the database at ``path`` and migrate it to the latest schema.

        Raises :class:`SchemaTooNewError` for a database written by a newer fiumatch, and
        :class:`StoreError` if SQLite is too old or WAL cannot be enabled.
        """
        if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
            raise StoreError(
                "SQLite "
                + ".".join(map(str, MIN_SQLITE_VERSION))
                + " or newer is required (found "
                + sqlite3.sqlite_version
                + ")"
            )
        db = cls(Path(path), busy_timeout_ms=busy_timeout_ms, migrations=migrations, clock=clock)
        try:
            conn = db.connection()
            apply_migrations(conn, int(clock()), migrations)
        except sqlite3.Error as exc:
            db.close()
            raise translate_sqlite_error(exc) from exc
        except BaseException:
            db.close()
            raise
        return db

    # --- connections -------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout_ms / 1000,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            # Each thread gets its own connection (see connection()); turning the check off
            # only lets close() release connections made by worker threads.
            check_same_thread=False,
        )
        conn.row_factory = sqlite3.Row
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError("the database could not be switched to WAL mode")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA secure_delete = ON")
            conn.execute("PRAGMA trusted_schema = OFF")
        except BaseException:
            conn.close()
            raise
        return conn

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        if self._closed:
            raise StoreError("the database is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def close(self) -> None:
        """Close every connection this handle opened (from any thread)."""
        self._closed = True
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transactions ------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (or a savepoint inside one): all or nothing."""
        conn = self.connection()
        if conn.in_transaction:
            name = f"sp{next(self._savepoints)}"
            conn.execute(f"SAVEPOINT {name}")
            try:
                yield conn
            except BaseException as exc:
                conn.execute(f"ROLLBACK TO {name}")
                conn.execute(f"RELEASE {name}")
                if isinstance(exc, sqlite3.Error):
                    raise translate_sqlite_error(exc) from exc
                raise
            conn.execute(f"RELEASE {name}")
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise translate_sqlite_error(exc) from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise translate_sqlite_error(exc) from exc
            raise

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: several SELECTs that see one consistent state.

        Inside an open transaction it simply reuses it.
        """
        conn = self.connection()
        if conn.in_transaction:
            yield conn
            return
        try:
            conn.execute("BEGIN DEFERRED")
        except sqlite3.Error as exc:
            raise translate_sqlite_error(exc) from exc
        try:
            yield conn
        except sqlite3.Error as exc:
            raise translate_sqlite_error(exc) from exc
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")

    # --- maintenance -------------------------------------------------------------------

    def schema_version(self) -> int:
        """The highest migration applied to this database."""
        row = self.connection().execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    def integrity_check(self) -> list[str]:
        """``PRAGMA integrity_check`` plus ``foreign_key_check``; ``["ok"]`` when healthy."""
        conn = self.connection()
        result = [str(row[0]) for row in conn.execute("PRAGMA integrity_check")]
        fk = conn.execute("PRAGMA foreign_key_check").fetchall()
        if fk:
            result = [r for r in result if r != "ok"] + [
                f"foreign key violation in {row[0]}" for row in fk
            ]
        return result

    def checkpoint(self) -> None:
        """Copy the WAL into the database file and truncate it (after purges, for erasure)."""
        try:
            self.connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            raise translate_sqlite_error(exc) from exc
