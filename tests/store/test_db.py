"""The database handle: migrations, pragmas, persistence, transactions, WAL concurrency."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from fiumatch.store import (
    MIGRATIONS,
    Database,
    Hit,
    Migration,
    MigrationMismatchError,
    NotAFiumatchDatabaseError,
    Query,
    QueryResult,
    RecordConflictError,
    SchemaTooNewError,
    Store,
    StoreBusyError,
    StoreError,
    latest_version,
)
from tests.store.factories import NOW, make_peer

EXPECTED_TABLES = {
    "schema_version",
    "subjects",
    "match_keys",
    "peers",
    "agreements",
    "budget_usage",
    "epochs",
    "epoch_blobs",
    "sessions",
    "queries",
    "query_results",
    "hits",
    "disclosures",
    "users",
    "audit_log",
    "audit_nodes",
    "audit_checkpoints",
    "audit_cosignatures",
    "audit_witnessed",
    "audit_receipts",
    "audit_split_views",
    "nonces",
}


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'").fetchall()
    conn.close()
    return {r[0] for r in rows}


def _versions(path: Path) -> list[int]:
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY 1")]
    finally:
        conn.close()


# --- migrations ---------------------------------------------------------------------------


def test_open_migrates_an_empty_file_to_the_latest_schema(db_path: Path) -> None:
    with Database.open(db_path, clock=lambda: NOW) as db:
        assert db.schema_version() == latest_version() == len(MIGRATIONS)
        rows = (
            db.connection()
            .execute("SELECT applied_at, checksum FROM schema_version ORDER BY version")
            .fetchall()
        )
        assert [r["applied_at"] for r in rows] == [NOW] * len(MIGRATIONS)
        assert [r["checksum"] for r in rows] == [m.checksum for m in MIGRATIONS]
    assert _tables(db_path) == EXPECTED_TABLES


def test_connections_use_wal_full_sync_foreign_keys_and_busy_timeout(db_path: Path) -> None:
    with Database.open(db_path, busy_timeout_ms=1234) as db:
        conn = db.connection()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 1234
        assert conn.execute("PRAGMA secure_delete").fetchone()[0] == 1


def test_reopening_keeps_data_and_does_not_reapply_migrations(db_path: Path) -> None:
    with Store.open(db_path) as store:
        store.peers.add(make_peer("fiu-b"))
    with Store.open(db_path) as store:
        peer = store.peers.get("fiu-b")
        assert peer == make_peer("fiu-b")
        assert store.db.schema_version() == latest_version()
    assert _versions(db_path) == [m.version for m in MIGRATIONS]


def test_a_database_newer_than_the_code_is_refused_and_left_untouched(db_path: Path) -> None:
    Database.open(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute(
        "INSERT INTO schema_version (version, description, checksum, applied_at) "
        "VALUES (99, 'from the future', 'x', 0)"
    )
    conn.commit()
    conn.close()
    before = _versions(db_path)

    with pytest.raises(SchemaTooNewError) as info:
        Database.open(db_path)

    assert info.value.details == {"found": 99, "supported": latest_version()}
    assert "upgrade fiumatch" in info.value.reason
    assert info.value.code == "schema_too_new"
    assert _versions(db_path) == before


_NEXT = Migration(
    version=len(MIGRATIONS) + 1,
    description="add a note to peers",
    statements=("ALTER TABLE peers ADD COLUMN note TEXT NOT NULL DEFAULT ''",),
)


def test_upgrading_applies_only_the_new_migration_and_keeps_data(db_path: Path) -> None:
    with Store.open(db_path) as store:
        store.peers.add(make_peer("fiu-b"))
    with Store.open(db_path, migrations=(*MIGRATIONS, _NEXT)) as store:
        assert store.db.schema_version() == len(MIGRATIONS) + 1
        assert store.peers.get("fiu-b") is not None
        cols = [r[1] for r in store.db.connection().execute("PRAGMA table_info(peers)")]
        assert "note" in cols
    # The old code now refuses the upgraded database.
    with pytest.raises(SchemaTooNewError):
        Store.open(db_path)


def test_a_failing_migration_leaves_the_database_as_it_was(db_path: Path) -> None:
    Database.open(db_path).close()
    broken = Migration(
        version=len(MIGRATIONS) + 1,
        description="half good",
        statements=(
            "CREATE TABLE extra (x INTEGER) STRICT",
            "ALTER TABLE no_such_table ADD COLUMN y TEXT",
        ),
    )
    with pytest.raises(StoreError):
        Database.open(db_path, migrations=(*MIGRATIONS, broken))
    assert _versions(db_path) == [m.version for m in MIGRATIONS]
    assert "extra" not in _tables(db_path)


def test_an_edited_migration_is_detected(db_path: Path) -> None:
    Database.open(db_path, migrations=MIGRATIONS[:1]).close()
    edited = Migration(
        version=1,
        description=MIGRATIONS[0].description,
        statements=(*MIGRATIONS[0].statements, "CREATE TABLE sneaky (x INTEGER)"),
    )
    with pytest.raises(MigrationMismatchError) as info:
        Database.open(db_path, migrations=(edited,))
    assert info.value.details == {"version": 1}


def test_migrations_must_be_numbered_without_gaps(db_path: Path) -> None:
    gap = Migration(version=len(MIGRATIONS) + 2, description="gap", statements=("SELECT 1",))
    with pytest.raises(ValueError, match="without gaps"):
        Database.open(db_path, migrations=(*MIGRATIONS, gap))


def test_the_shipped_migrations_are_numbered_from_one() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))


def test_a_foreign_sqlite_file_is_refused(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE something_else (x)")
    conn.commit()
    conn.close()
    with pytest.raises(NotAFiumatchDatabaseError):
        Database.open(db_path)
    assert _tables(db_path) == {"something_else"}


# --- transactions -----------------------------------------------------------------------


def test_an_exception_inside_a_transaction_rolls_everything_back(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.peers.add(make_peer("fiu-b"))
        store.peers.add(make_peer("fiu-c", key_byte=8))
        raise RuntimeError("boom")
    assert store.peers.list_all() == []


def test_a_constraint_failure_mid_transaction_leaves_nothing_behind(store: Store) -> None:
    with pytest.raises(RecordConflictError), store.transaction():
        store.peers.add(make_peer("fiu-b"))
        store.peers.add(make_peer("fiu-b"))  # duplicate id
    assert store.peers.list_all() == []


def test_a_failed_inner_call_rolls_back_only_its_savepoint(store: Store) -> None:
    with store.transaction():
        store.peers.add(make_peer("fiu-b"))
        with pytest.raises(RecordConflictError):
            store.peers.add(make_peer("fiu-b"))
        store.peers.add(make_peer("fiu-c", key_byte=8))
    assert [p.node_id for p in store.peers.list_all()] == ["fiu-b", "fiu-c"]


def test_constraint_errors_do_not_echo_stored_values(store: Store) -> None:
    store.peers.add(make_peer("fiu-secret-name"))
    with pytest.raises(RecordConflictError) as info:
        store.peers.add(make_peer("fiu-secret-name"))
    assert "fiu-secret-name" not in str(info.value)
    assert info.value.http_status == 409
    assert not isinstance(info.value, sqlite3.Error)


def test_integrity_check_is_ok_after_writes(store: Store) -> None:
    for i in range(20):
        store.peers.add(make_peer(f"fiu-{i}", key_byte=i))
    assert store.db.integrity_check() == ["ok"]


def test_integrity_check_reports_foreign_key_violations(store: Store) -> None:
    conn = store.db.connection()
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute(
        "INSERT INTO budget_usage (peer_id, epoch, used, updated_at) VALUES ('ghost', 1, 0, 0)"
    )
    conn.execute("PRAGMA foreign_keys = ON")
    assert store.db.integrity_check() == ["foreign key violation in budget_usage"]


# --- concurrency ------------------------------------------------------------------------


def test_a_reader_is_not_blocked_by_an_open_write_transaction(db_path: Path) -> None:
    writer = Store.open(db_path)
    reader = Store.open(db_path, busy_timeout_ms=100)
    try:
        writer.peers.add(make_peer("fiu-a", key_byte=1))
        with writer.transaction():
            writer.peers.add(make_peer("fiu-b", key_byte=2))
            # The write is uncommitted: the reader sees the last committed state at once.
            assert [p.node_id for p in reader.peers.list_all()] == ["fiu-a"]
        assert [p.node_id for p in reader.peers.list_all()] == ["fiu-a", "fiu-b"]
    finally:
        reader.close()
        writer.close()


def test_an_open_read_snapshot_does_not_block_a_commit(db_path: Path) -> None:
    # In rollback-journal mode the reader's shared lock would make this commit time out.
    writer = Store.open(db_path, busy_timeout_ms=100)
    reader = Store.open(db_path)
    try:
        writer.peers.add(make_peer("fiu-a", key_byte=1))
        with reader.db.snapshot() as conn:
            assert conn.execute("SELECT COUNT(*) FROM peers").fetchone()[0] == 1
            writer.peers.add(make_peer("fiu-b", key_byte=2))  # commits while the read is open
            assert conn.execute("SELECT COUNT(*) FROM peers").fetchone()[0] == 1
        assert len(reader.peers.list_all()) == 2
    finally:
        reader.close()
        writer.close()


def test_concurrent_reader_thread_during_writes_sees_only_committed_states(
    db_path: Path,
) -> None:
    store = Store.open(db_path)
    seen: list[int] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        try:
            while not done.is_set():
                with store.db.snapshot() as conn:
                    n = conn.execute("SELECT COUNT(*) FROM peers").fetchone()[0]
                    m = conn.execute("SELECT COUNT(*) FROM budget_usage").fetchone()[0]
                assert n == m  # each write adds one of each, atomically
                seen.append(n)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for i in range(15):
            with store.transaction():
                store.peers.add(make_peer(f"fiu-{i}", key_byte=i))
                store.budget.try_consume(f"fiu-{i}", 1, 1, limit=5, now=NOW)
    finally:
        done.set()
        thread.join(timeout=30)
        store.close()
    assert not errors
    assert seen == sorted(seen)  # never goes backwards
    assert seen


def test_a_second_writer_times_out_with_a_typed_error(db_path: Path) -> None:
    first = Store.open(db_path)
    second = Store.open(db_path, busy_timeout_ms=50)
    try:
        with first.transaction():
            first.peers.add(make_peer("fiu-a"))
            with pytest.raises(StoreBusyError) as info:
                second.peers.add(make_peer("fiu-b", key_byte=2))
            assert info.value.http_status == 503
        assert second.peers.get("fiu-b") is None
    finally:
        second.close()
        first.close()


def test_each_thread_gets_its_own_connection(store: Store) -> None:
    own = store.db.connection()
    other: list[sqlite3.Connection] = []
    thread = threading.Thread(target=lambda: other.append(store.db.connection()))
    thread.start()
    thread.join()
    assert other and other[0] is not own
    assert store.db.connection() is own


def test_a_closed_database_refuses_use(db_path: Path) -> None:
    db = Database.open(db_path)
    db.close()
    with pytest.raises(StoreError, match="closed"):
        db.connection()


def test_migration_2_gives_old_hits_ids_and_lets_a_token_repeat(db_path: Path) -> None:
    """A database written by schema 1 (hits keyed by token) upgrades with its hits kept."""
    with Store.open(db_path, migrations=MIGRATIONS[:1]) as old:
        old.peers.add(make_peer("fiu-b"))
        conn = old.db.connection()
        with old.transaction():
            conn.execute(
                "INSERT INTO subjects VALUES ('s1', 'r', 'person', '{}', '2030-01-01', 'csv', "
                "'1', 0, 0)"
            )
            conn.execute(
                "INSERT INTO queries VALUES ('q1', 'ana', 'ml', 'art', 'c', 'done', 0, NULL)"
            )
            conn.execute(
                "INSERT INTO hits VALUES (?, 'q1', 'fiu-b', 's1', '[1]', 3, 0)", (b"t" * 16,)
            )
            conn.execute(
                "INSERT INTO disclosures (id, direction, peer_id, hit_token, purpose, case_ref, "
                "onward_consent, status, decision_reason, created_at) "
                "VALUES ('d1', 'in', 'fiu-b', ?, 'ml', 'c', 0, 'pending', '', 0)",
                (b"t" * 16,),
            )
    with Store.open(db_path) as store:
        (hit,) = store.queries.hits("q1")
        assert hit.id.startswith("h-") and hit.hit_token == b"t" * 16
        d = store.disclosures.require("d1")
        assert (d.onward_status, d.subject_id, d.hit_id) == ("none", None, None)
        store.queries.create(
            Query(
                id="q2",
                analyst="ana",
                purpose="ml",
                legal_basis="art",
                case_ref="c",
                status="running",
                created_at=1,
            )
        )
        store.queries.record_result(
            QueryResult(
                query_id="q2", peer_id="fiu-b", status="ok", reason="", hit_count=1, recorded_at=1
            ),
            [
                Hit(
                    id="h-new",
                    hit_token=b"t" * 16,
                    query_id="q2",
                    peer_id="fiu-b",
                    subject_id="s1",
                    key_types=(1,),
                    strength=3,
                    created_at=1,
                )
            ],
        )
        assert len(store.queries.hits_by_token(b"t" * 16)) == 2
        assert store.db.integrity_check() == ["ok"]
