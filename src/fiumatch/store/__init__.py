"""fiumatch.store: the node's SQLite database behind small repository classes.

A shell package: it owns the schema (:mod:`.migrations`), the connection and transaction rules
(:mod:`.db`) and one repository per concern. It knows nothing of HTTP, of the protocol's maths,
or of how identifiers are derived; it never logs a stored value.

Start here::

    store = Store.open(path)            # creates and migrates; refuses a newer schema
    with store.transaction():           # optional: group several repo calls atomically
        store.subjects.upsert_with_keys(subject, keys, now=now)
    store.close()

Repositories (attributes of :class:`Store`): ``subjects``, ``peers``, ``agreements``,
``budget``, ``epochs``, ``sessions``, ``queries``, ``disclosures``, ``users``, ``audit``,
``nonces``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fiumatch.store.audit import AuditCheckpoint, AuditLeaf, AuditNode, AuditRepo
from fiumatch.store.db import Database
from fiumatch.store.disclosures import (
    Disclosure,
    DisclosureDirection,
    DisclosureRepo,
    DisclosureStatus,
    OnwardStatus,
)
from fiumatch.store.epochs import Epoch, EpochBlob, EpochRepo, EpochSide, EpochState
from fiumatch.store.errors import (
    MigrationMismatchError,
    NotAFiumatchDatabaseError,
    RecordConflictError,
    RecordNotFoundError,
    SchemaTooNewError,
    StorageFullError,
    StoreBusyError,
    StoreError,
    StoreReadOnlyError,
)
from fiumatch.store.migrations import MIGRATIONS, Migration, latest_version
from fiumatch.store.nonces import SqliteNonceCache
from fiumatch.store.peers import Agreement, AgreementRepo, BudgetCharge, BudgetRepo, Peer, PeerRepo
from fiumatch.store.queries import (
    Hit,
    Query,
    QueryRepo,
    QueryResult,
    QueryResultStatus,
    QueryStatus,
)
from fiumatch.store.sessions import SessionRecord, SessionRepo, SessionRole
from fiumatch.store.subjects import MatchKey, Subject, SubjectRepo
from fiumatch.store.users import (
    ROLES,
    IssuedToken,
    Role,
    User,
    UserRepo,
    issue_token,
    parse_token,
)

__all__ = [
    "MIGRATIONS",
    "ROLES",
    "Agreement",
    "AgreementRepo",
    "AuditCheckpoint",
    "AuditLeaf",
    "AuditNode",
    "AuditRepo",
    "BudgetCharge",
    "BudgetRepo",
    "Database",
    "Disclosure",
    "DisclosureDirection",
    "DisclosureRepo",
    "DisclosureStatus",
    "Epoch",
    "EpochBlob",
    "EpochRepo",
    "EpochSide",
    "EpochState",
    "Hit",
    "IssuedToken",
    "MatchKey",
    "Migration",
    "MigrationMismatchError",
    "NotAFiumatchDatabaseError",
    "OnwardStatus",
    "Peer",
    "PeerRepo",
    "Query",
    "QueryRepo",
    "QueryResult",
    "QueryResultStatus",
    "QueryStatus",
    "RecordConflictError",
    "RecordNotFoundError",
    "Role",
    "SchemaTooNewError",
    "SessionRecord",
    "SessionRepo",
    "SessionRole",
    "SqliteNonceCache",
    "StorageFullError",
    "Store",
    "StoreBusyError",
    "StoreError",
    "StoreReadOnlyError",
    "Subject",
    "SubjectRepo",
    "User",
    "UserRepo",
    "issue_token",
    "latest_version",
    "parse_token",
]


@dataclass(frozen=True)
class Store:
    """One open database with a repository per concern."""

    db: Database
    subjects: SubjectRepo
    peers: PeerRepo
    agreements: AgreementRepo
    budget: BudgetRepo
    epochs: EpochRepo
    sessions: SessionRepo
    queries: QueryRepo
    disclosures: DisclosureRepo
    users: UserRepo
    audit: AuditRepo
    nonces: SqliteNonceCache

    @classmethod
    def open(
        cls,
        path: Path | str,
        *,
        busy_timeout_ms: int = 5000,
        migrations: tuple[Migration, ...] = MIGRATIONS,
        clock: Callable[[], float] = time.time,
    ) -> Store:
        """Open (creating and migrating) the database at ``path``."""
        db = Database.open(
            path, busy_timeout_ms=busy_timeout_ms, migrations=migrations, clock=clock
        )
        return cls.over(db)

    @classmethod
    def over(cls, db: Database) -> Store:
        """Repositories over an already open :class:`Database`."""
        return cls(
            db=db,
            subjects=SubjectRepo(db),
            peers=PeerRepo(db),
            agreements=AgreementRepo(db),
            budget=BudgetRepo(db),
            epochs=EpochRepo(db),
            sessions=SessionRepo(db),
            queries=QueryRepo(db),
            disclosures=DisclosureRepo(db),
            users=UserRepo(db),
            audit=AuditRepo(db),
            nonces=SqliteNonceCache(db),
        )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Group repository calls into one all-or-nothing transaction."""
        with self.db.transaction() as conn:
            yield conn

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
