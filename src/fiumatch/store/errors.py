"""Typed errors of the store, each with a stable ``code`` and an HTTP status.

The store translates ``sqlite3`` exceptions into these at the edge of a transaction, so callers
never catch ``sqlite3`` errors. Reasons never contain values from the database (identifiers,
keys, tokens): at most a table and column name, which are part of the schema.

Tree::

    StoreError                    store_error         500
    ├── SchemaTooNewError         schema_too_new      500  details: found, supported
    ├── NotAFiumatchDatabaseError not_fiumatch_db     500
    ├── MigrationMismatchError    migration_mismatch  500  details: version
    ├── RecordNotFoundError       store_not_found     404
    ├── RecordConflictError       store_conflict      409  (unique, foreign key, check, append-only)
    ├── StoreBusyError            store_busy          503  (another writer held the lock too long)
    ├── StorageFullError          storage_full        503  (disk full or the size limit reached)
    └── StoreReadOnlyError        store_read_only     503  (the database can only be read)

A full disk or a read-only database fails the write transaction, which is rolled back whole:
nothing is half written, and reads go on being served.
"""

from __future__ import annotations

from fiumatch.errors import FiumatchError

__all__ = [
    "MigrationMismatchError",
    "NotAFiumatchDatabaseError",
    "RecordConflictError",
    "RecordNotFoundError",
    "SchemaTooNewError",
    "StorageFullError",
    "StoreBusyError",
    "StoreError",
    "StoreReadOnlyError",
]


class StoreError(FiumatchError):
    """The database could not do what was asked."""

    code = "store_error"
    http_status = 500


class SchemaTooNewError(StoreError):
    """The database was written by a newer fiumatch; upgrade fiumatch, never downgrade a DB."""

    code = "schema_too_new"


class NotAFiumatchDatabaseError(StoreError):
    """The file is an SQLite database with tables, but not one fiumatch created."""

    code = "not_fiumatch_db"


class MigrationMismatchError(StoreError):
    """An applied migration differs from the one in this code (it was edited after release)."""

    code = "migration_mismatch"


class RecordNotFoundError(StoreError):
    """No such record."""

    code = "store_not_found"
    http_status = 404


class RecordConflictError(StoreError):
    """The write breaks a constraint: a duplicate, a missing parent, a bad value or state."""

    code = "store_conflict"
    http_status = 409


class StoreBusyError(StoreError):
    """The database stayed locked by another writer for longer than the busy timeout."""

    code = "store_busy"
    http_status = 503


class StorageFullError(StoreError):
    """The disk (or the database's size limit) is full: the write was rolled back whole."""

    code = "storage_full"
    http_status = 503


class StoreReadOnlyError(StoreError):
    """The database can only be read (a read-only file, directory or mount): the write was
    refused and nothing changed."""

    code = "store_read_only"
    http_status = 503
