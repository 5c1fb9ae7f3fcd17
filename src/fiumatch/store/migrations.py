"""The numbered schema migrations of the node database, and the code that applies them.

This module owns the schema. Rules:

* Migrations are numbered 1, 2, 3, ... with no gaps. A released migration is never edited:
  its SHA-256 is recorded in ``schema_version`` and checked at every open, so an edit is
  caught (:class:`MigrationMismatchError`). Change the schema by appending a migration.
* Each migration is a tuple of single SQL statements, run with ``execute`` inside one
  ``BEGIN IMMEDIATE`` transaction together with the ``schema_version`` row. (Never
  ``executescript``: it commits first, so a failing migration would leave half a schema.)
* A database whose version is newer than the code is refused (:class:`SchemaTooNewError`);
  it is never touched.

The schema in migration 1, by concern:

* ``subjects`` / ``match_keys``: the FIU's own subjects and their derived match keys.
* ``peers`` / ``agreements`` / ``budget_usage``: who we talk to, under which terms.
* ``epochs`` / ``epoch_blobs``: OPRF key epochs per peer and side (``local`` = our key when
  serving that peer, ``remote`` = the peer's key), and their encoded sets and filters.
* ``sessions``: PSI sessions (state is the protocol package's state name).
* ``queries`` / ``query_results`` / ``hits``: analyst queries, per-peer outcome, and hits.
* ``disclosures``: requests to disclose the data behind a hit, both directions.
* ``users``: analysts, supervisors, auditors and admins, with hashed bearer tokens.
* ``audit_log`` / ``audit_nodes`` / ``audit_checkpoints``: storage for the Merkle audit log
  (the hashing is ``fiumatch.auditlog``'s). Append-only, enforced by triggers.
* ``nonces``: the HTTP-signature replay cache.

Migration 2 (why: one hit token can come back in several queries, and a disclosure must stay
answerable after the epoch that produced its token is retired):

* ``hits`` gets its own ``id`` primary key; ``hit_token`` keeps a non-unique index.
* ``disclosures`` gets ``subject_id`` (an incoming request linked to the subject its token
  named, resolved once at arrival; NULL once the subject is purged), ``hit_id`` (an outgoing
  request's hit) and the onward-dissemination consent: ``onward_status``
  (none/requested/granted/refused), its recipient, purpose, reason and times.

Migration 3 (why: peers cosign each other's audit checkpoints and keep each other's receipts,
so a node that shows two histories is caught; see ``fiumatch.store.audit_witness``):
``audit_cosignatures``, ``audit_witnessed``, ``audit_receipts``, ``audit_split_views``, all
append-only.

Times are Unix seconds (INTEGER); dates (retention) are ISO ``YYYY-MM-DD`` text, which sorts.
Tables are STRICT, so SQLite refuses a value of the wrong type.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass

from fiumatch.store.errors import (
    MigrationMismatchError,
    NotAFiumatchDatabaseError,
    SchemaTooNewError,
)

__all__ = ["MIGRATIONS", "Migration", "apply_migrations", "latest_version"]


@dataclass(frozen=True, kw_only=True)
class Migration:
    """One schema step: ``version`` N takes the schema from N-1 to N."""

    version: int
    description: str
    statements: tuple[str, ...]

    @property
    def checksum(self) -> str:
        """SHA-256 over the statements, recorded when applied and checked at every open."""
        digest = hashlib.sha256()
        for statement in self.statements:
            data = statement.strip().encode("utf-8")
            digest.update(len(data).to_bytes(8, "big"))
            digest.update(data)
        return digest.hexdigest()


def _append_only(table: str) -> tuple[str, str]:
    return (
        f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END",
        f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END",
    )


_V1: tuple[str, ...] = (
    # --- subjects and match keys ---------------------------------------------------------
    """CREATE TABLE subjects (
        id            TEXT PRIMARY KEY,
        local_ref     TEXT NOT NULL,
        subject_type  TEXT NOT NULL,
        display_json  TEXT NOT NULL,
        retain_until  TEXT NOT NULL
                      CHECK (retain_until GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'),
        source        TEXT NOT NULL,
        source_record TEXT NOT NULL,
        created_at    INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL
    ) STRICT""",
    "CREATE INDEX subjects_by_retention ON subjects(retain_until)",
    "CREATE INDEX subjects_by_local_ref ON subjects(local_ref)",
    """CREATE TABLE match_keys (
        subject_id TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
        key_type   INTEGER NOT NULL CHECK (key_type BETWEEN 0 AND 65535),
        key        BLOB NOT NULL CHECK (length(key) BETWEEN 1 AND 4096),
        strength   INTEGER NOT NULL CHECK (strength BETWEEN 0 AND 255),
        PRIMARY KEY (subject_id, key_type, key)
    ) STRICT, WITHOUT ROWID""",
    "CREATE INDEX match_keys_by_key ON match_keys(key)",
    # --- peers, agreements, budgets ------------------------------------------------------
    """CREATE TABLE peers (
        node_id     TEXT PRIMARY KEY,
        url         TEXT NOT NULL,
        public_key  BLOB NOT NULL CHECK (length(public_key) = 32),
        fingerprint TEXT NOT NULL UNIQUE,
        added_at    INTEGER NOT NULL,
        revoked_at  INTEGER
    ) STRICT""",
    """CREATE TABLE agreements (
        id               TEXT PRIMARY KEY,
        peer_id          TEXT NOT NULL REFERENCES peers(node_id),
        modes_json       TEXT NOT NULL,
        purposes_json    TEXT NOT NULL,
        id_types_json    TEXT NOT NULL,
        budget_per_epoch INTEGER NOT NULL CHECK (budget_per_epoch >= 0),
        max_set_size     INTEGER NOT NULL CHECK (max_set_size >= 0),
        valid_from       INTEGER NOT NULL,
        valid_until      INTEGER NOT NULL CHECK (valid_until > valid_from),
        signed_json      TEXT NOT NULL,
        created_at       INTEGER NOT NULL,
        revoked_at       INTEGER
    ) STRICT""",
    "CREATE INDEX agreements_by_peer ON agreements(peer_id, valid_until)",
    """CREATE TABLE budget_usage (
        peer_id    TEXT NOT NULL REFERENCES peers(node_id),
        epoch      INTEGER NOT NULL CHECK (epoch >= 0),
        used       INTEGER NOT NULL CHECK (used >= 0),
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (peer_id, epoch)
    ) STRICT, WITHOUT ROWID""",
    # --- key epochs and their encoded sets ------------------------------------------------
    """CREATE TABLE epochs (
        peer_id      TEXT NOT NULL REFERENCES peers(node_id),
        side         TEXT NOT NULL CHECK (side IN ('local', 'remote')),
        epoch        INTEGER NOT NULL CHECK (epoch >= 0),
        public_key   BLOB NOT NULL,
        state        TEXT NOT NULL CHECK (state IN ('preparing', 'active', 'retired')),
        created_at   INTEGER NOT NULL,
        activated_at INTEGER,
        retired_at   INTEGER,
        PRIMARY KEY (peer_id, side, epoch)
    ) STRICT""",
    "CREATE UNIQUE INDEX epochs_one_active ON epochs(peer_id, side) WHERE state = 'active'",
    """CREATE TABLE epoch_blobs (
        peer_id    TEXT NOT NULL,
        side       TEXT NOT NULL,
        epoch      INTEGER NOT NULL,
        kind       TEXT NOT NULL,
        data       BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (peer_id, side, epoch, kind),
        FOREIGN KEY (peer_id, side, epoch)
            REFERENCES epochs(peer_id, side, epoch) ON DELETE CASCADE
    ) STRICT""",
    # --- PSI sessions -------------------------------------------------------------------
    """CREATE TABLE sessions (
        id             TEXT PRIMARY KEY,
        peer_id        TEXT NOT NULL REFERENCES peers(node_id),
        role           TEXT NOT NULL CHECK (role IN ('initiator', 'responder')),
        mode           TEXT NOT NULL,
        state          TEXT NOT NULL,
        epoch          INTEGER NOT NULL CHECK (epoch >= 0),
        items_sent     INTEGER NOT NULL DEFAULT 0 CHECK (items_sent >= 0),
        items_received INTEGER NOT NULL DEFAULT 0 CHECK (items_received >= 0),
        matches        INTEGER NOT NULL DEFAULT 0 CHECK (matches >= 0),
        created_at     INTEGER NOT NULL,
        updated_at     INTEGER NOT NULL,
        closed_at      INTEGER
    ) STRICT""",
    "CREATE INDEX sessions_open_by_peer ON sessions(peer_id) WHERE closed_at IS NULL",
    # --- analyst queries, per-peer results, hits --------------------------------------------
    """CREATE TABLE queries (
        id          TEXT PRIMARY KEY,
        analyst     TEXT NOT NULL,
        purpose     TEXT NOT NULL,
        legal_basis TEXT NOT NULL,
        case_ref    TEXT NOT NULL,
        status      TEXT NOT NULL
                    CHECK (status IN ('pending', 'running', 'done', 'failed', 'cancelled')),
        created_at  INTEGER NOT NULL,
        finished_at INTEGER
    ) STRICT""",
    "CREATE INDEX queries_by_analyst ON queries(analyst, created_at)",
    """CREATE TABLE query_results (
        query_id    TEXT NOT NULL REFERENCES queries(id) ON DELETE CASCADE,
        peer_id     TEXT NOT NULL REFERENCES peers(node_id),
        status      TEXT NOT NULL CHECK (status IN ('ok', 'partial', 'refused', 'unreachable')),
        reason      TEXT NOT NULL,
        session_id  TEXT,
        hit_count   INTEGER NOT NULL CHECK (hit_count >= 0),
        recorded_at INTEGER NOT NULL,
        PRIMARY KEY (query_id, peer_id)
    ) STRICT, WITHOUT ROWID""",
    """CREATE TABLE hits (
        hit_token      BLOB PRIMARY KEY CHECK (length(hit_token) BETWEEN 16 AND 256),
        query_id       TEXT NOT NULL REFERENCES queries(id) ON DELETE CASCADE,
        peer_id        TEXT NOT NULL REFERENCES peers(node_id),
        subject_id     TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
        key_types_json TEXT NOT NULL,
        strength       INTEGER NOT NULL CHECK (strength BETWEEN 0 AND 255),
        created_at     INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID""",
    "CREATE INDEX hits_by_query ON hits(query_id, peer_id)",
    "CREATE INDEX hits_by_subject ON hits(subject_id)",
    # --- disclosure requests ------------------------------------------------------------
    """CREATE TABLE disclosures (
        id              TEXT PRIMARY KEY,
        direction       TEXT NOT NULL CHECK (direction IN ('in', 'out')),
        peer_id         TEXT NOT NULL REFERENCES peers(node_id),
        hit_token       BLOB NOT NULL,
        purpose         TEXT NOT NULL,
        case_ref        TEXT NOT NULL,
        onward_consent  INTEGER NOT NULL CHECK (onward_consent IN (0, 1)),
        status          TEXT NOT NULL
                        CHECK (status IN ('pending', 'approved', 'denied', 'released',
                                          'withdrawn')),
        decision_reason TEXT NOT NULL,
        released_json   TEXT,
        created_at      INTEGER NOT NULL,
        decided_at      INTEGER
    ) STRICT""",
    "CREATE INDEX disclosures_by_status ON disclosures(direction, status, created_at)",
    # --- users --------------------------------------------------------------------------
    """CREATE TABLE users (
        name        TEXT PRIMARY KEY,
        role        TEXT NOT NULL CHECK (role IN ('analyst', 'supervisor', 'auditor', 'admin')),
        token_id    TEXT NOT NULL UNIQUE,
        token_hash  BLOB NOT NULL CHECK (length(token_hash) = 32),
        created_at  INTEGER NOT NULL,
        disabled_at INTEGER
    ) STRICT""",
    # --- audit log storage (append-only) --------------------------------------------------
    """CREATE TABLE audit_log (
        seq       INTEGER PRIMARY KEY CHECK (seq >= 0),
        time      INTEGER NOT NULL,
        entry     BLOB NOT NULL,
        leaf_hash BLOB NOT NULL CHECK (length(leaf_hash) = 32)
    ) STRICT""",
    """CREATE TRIGGER audit_log_contiguous BEFORE INSERT ON audit_log
        WHEN NEW.seq != (SELECT COALESCE(MAX(seq) + 1, 0) FROM audit_log)
        BEGIN SELECT RAISE(ABORT, 'audit_log seq must be contiguous'); END""",
    *_append_only("audit_log"),
    """CREATE TABLE audit_nodes (
        level INTEGER NOT NULL CHECK (level >= 0),
        idx   INTEGER NOT NULL CHECK (idx >= 0),
        hash  BLOB NOT NULL CHECK (length(hash) = 32),
        PRIMARY KEY (level, idx)
    ) STRICT, WITHOUT ROWID""",
    *_append_only("audit_nodes"),
    """CREATE TABLE audit_checkpoints (
        size       INTEGER PRIMARY KEY CHECK (size >= 0),
        note       TEXT NOT NULL,
        created_at INTEGER NOT NULL
    ) STRICT""",
    *_append_only("audit_checkpoints"),
    # --- HTTP signature replay cache ----------------------------------------------------
    """CREATE TABLE nonces (
        keyid      TEXT NOT NULL,
        nonce      TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (keyid, nonce)
    ) STRICT, WITHOUT ROWID""",
    "CREATE INDEX nonces_by_expiry ON nonces(expires_at)",
)

_V2: tuple[str, ...] = (
    """CREATE TABLE hits_v2 (
        id             TEXT PRIMARY KEY,
        hit_token      BLOB NOT NULL CHECK (length(hit_token) BETWEEN 16 AND 256),
        query_id       TEXT NOT NULL REFERENCES queries(id) ON DELETE CASCADE,
        peer_id        TEXT NOT NULL REFERENCES peers(node_id),
        subject_id     TEXT NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
        key_types_json TEXT NOT NULL,
        strength       INTEGER NOT NULL CHECK (strength BETWEEN 0 AND 255),
        created_at     INTEGER NOT NULL
    ) STRICT""",
    """INSERT INTO hits_v2 (id, hit_token, query_id, peer_id, subject_id, key_types_json,
           strength, created_at)
       SELECT 'h-' || lower(hex(randomblob(8))), hit_token, query_id, peer_id, subject_id,
           key_types_json, strength, created_at FROM hits""",
    "DROP TABLE hits",
    "ALTER TABLE hits_v2 RENAME TO hits",
    "CREATE INDEX hits_by_query ON hits(query_id, peer_id)",
    "CREATE INDEX hits_by_subject ON hits(subject_id)",
    "CREATE INDEX hits_by_token ON hits(hit_token)",
    "ALTER TABLE disclosures ADD COLUMN subject_id TEXT REFERENCES subjects(id) ON DELETE SET NULL",
    "ALTER TABLE disclosures ADD COLUMN hit_id TEXT",
    "ALTER TABLE disclosures ADD COLUMN onward_status TEXT NOT NULL DEFAULT 'none' "
    "CHECK (onward_status IN ('none', 'requested', 'granted', 'refused'))",
    "ALTER TABLE disclosures ADD COLUMN onward_recipient TEXT",
    "ALTER TABLE disclosures ADD COLUMN onward_purpose TEXT",
    "ALTER TABLE disclosures ADD COLUMN onward_reason TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE disclosures ADD COLUMN onward_requested_at INTEGER",
    "ALTER TABLE disclosures ADD COLUMN onward_decided_at INTEGER",
    "CREATE INDEX disclosures_by_subject ON disclosures(subject_id)",
)

_V3: tuple[str, ...] = (
    """CREATE TABLE audit_cosignatures (
        size        INTEGER NOT NULL CHECK (size >= 0),
        cosigner    TEXT NOT NULL,
        line        TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        PRIMARY KEY (size, cosigner)
    ) STRICT, WITHOUT ROWID""",
    *_append_only("audit_cosignatures"),
    """CREATE TABLE audit_witnessed (
        origin  TEXT NOT NULL,
        size    INTEGER NOT NULL CHECK (size >= 0),
        note    TEXT NOT NULL,
        seen_at INTEGER NOT NULL,
        PRIMARY KEY (origin, size)
    ) STRICT, WITHOUT ROWID""",
    *_append_only("audit_witnessed"),
    """CREATE TABLE audit_receipts (
        entry_index INTEGER PRIMARY KEY REFERENCES audit_log(seq),
        origin      TEXT NOT NULL,
        leaf_index  INTEGER NOT NULL CHECK (leaf_index >= 0),
        receipt     BLOB NOT NULL,
        received_at INTEGER NOT NULL
    ) STRICT""",
    "CREATE UNIQUE INDEX audit_receipts_by_leaf ON audit_receipts(origin, leaf_index)",
    *_append_only("audit_receipts"),
    """CREATE TABLE audit_split_views (
        id          INTEGER PRIMARY KEY,
        origin      TEXT NOT NULL,
        first_note  TEXT NOT NULL,
        second_note TEXT NOT NULL,
        detected_at INTEGER NOT NULL
    ) STRICT""",
    *_append_only("audit_split_views"),
)

_V4: tuple[str, ...] = (
    "ALTER TABLE agreements ADD COLUMN proofs INTEGER NOT NULL DEFAULT 1 CHECK (proofs IN (0, 1))",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(version=1, description="initial node schema", statements=_V1),
    Migration(
        version=2,
        description="hits get their own id; disclosures link subjects and onward consent",
        statements=_V2,
    ),
    Migration(
        version=3,
        description="audit witnessing: cosignatures, peer checkpoints, held receipts, split views",
        statements=_V3,
    ),
    Migration(
        version=4,
        description="agreements say whether filter-mode evaluations carry VOPRF proofs",
        statements=_V4,
    ),
)

_BOOTSTRAP = """CREATE TABLE IF NOT EXISTS schema_version (
    version     INTEGER PRIMARY KEY CHECK (version >= 1),
    description TEXT NOT NULL,
    checksum    TEXT NOT NULL,
    applied_at  INTEGER NOT NULL
) STRICT"""


def latest_version(migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    """The schema version this code writes."""
    return migrations[-1].version if migrations else 0


def _check_numbering(migrations: tuple[Migration, ...]) -> None:
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise ValueError("migrations must be numbered 1, 2, 3, ... without gaps")


def apply_migrations(
    conn: sqlite3.Connection, now: int, migrations: tuple[Migration, ...] = MIGRATIONS
) -> int:
    """Bring the schema up to date in one transaction; return the resulting version.

    ``conn`` must be in autocommit mode (``isolation_level=None``) and not in a transaction.
    Refuses, without writing anything, a database newer than ``migrations`` or one whose
    applied migrations differ from the code.
    """
    _check_numbering(migrations)
    conn.execute("BEGIN IMMEDIATE")
    try:
        has_version_table = conn.execute(
            "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
        if not has_version_table:
            other = conn.execute(
                "SELECT COUNT(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'"
            ).fetchone()[0]
            if other:
                raise NotAFiumatchDatabaseError(
                    "the file has tables but no schema_version table; refusing to touch it"
                )
            conn.execute(_BOOTSTRAP)
        applied = {
            int(row[0]): str(row[1])
            for row in conn.execute("SELECT version, checksum FROM schema_version")
        }
        found = max(applied, default=0)
        supported = latest_version(migrations)
        if found > supported:
            raise SchemaTooNewError(
                f"the database has schema version {found} but this fiumatch supports up to "
                f"{supported}; upgrade fiumatch (a database is never downgraded)",
                found=found,
                supported=supported,
            )
        if set(applied) != set(range(1, found + 1)):
            raise MigrationMismatchError(
                "the database's schema_version rows have gaps", version=found
            )
        for migration in migrations:
            recorded = applied.get(migration.version)
            if recorded is not None:
                if recorded != migration.checksum:
                    raise MigrationMismatchError(
                        f"migration {migration.version} differs from the one applied to this "
                        "database; migrations must never be edited once released",
                        version=migration.version,
                    )
                continue
            for statement in migration.statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, description, checksum, applied_at) "
                "VALUES (?, ?, ?, ?)",
                (migration.version, migration.description, migration.checksum, now),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return supported
