"""Storage for the Merkle audit log: leaves, tree nodes and signed checkpoints.

Owns ``audit_log``, ``audit_nodes`` and ``audit_checkpoints``. The hashing, proofs and
checkpoint signing belong to ``fiumatch.auditlog`` (pure); this module only stores their bytes.

All three tables are append-only: SQLite triggers refuse UPDATE and DELETE, and a leaf must
carry the next sequence number (0, 1, 2, ...). A leaf and the tree nodes it completes are
written in one transaction (:meth:`AuditRepo.append`), so the stored tree never lags its leaves.
The connection runs with ``synchronous=FULL``: an append that returned is on disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fiumatch.store.db import Database
from fiumatch.store.errors import RecordConflictError

__all__ = ["AuditCheckpoint", "AuditLeaf", "AuditNode", "AuditRepo"]


@dataclass(frozen=True, kw_only=True)
class AuditLeaf:
    seq: int
    time: int
    entry: bytes
    leaf_hash: bytes


@dataclass(frozen=True, kw_only=True)
class AuditNode:
    """The hash of the complete subtree at ``level`` (0 = leaves) and position ``index``."""

    level: int
    index: int
    hash: bytes


@dataclass(frozen=True, kw_only=True)
class AuditCheckpoint:
    size: int
    note: str
    created_at: int


def _leaf_from_row(row: Any) -> AuditLeaf:
    return AuditLeaf(
        seq=row["seq"],
        time=row["time"],
        entry=bytes(row["entry"]),
        leaf_hash=bytes(row["leaf_hash"]),
    )


class AuditRepo:
    """Reads and appends to the audit tables."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def size(self) -> int:
        row = self._db.connection().execute("SELECT MAX(seq) FROM audit_log").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def append(self, leaf: AuditLeaf, nodes: Sequence[AuditNode] = ()) -> None:
        """Append one leaf (its ``seq`` must equal the current size) with the tree nodes it
        completes. :class:`RecordConflictError` on a wrong ``seq`` or a conflicting node."""
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO audit_log (seq, time, entry, leaf_hash) VALUES (?, ?, ?, ?)",
                (leaf.seq, leaf.time, leaf.entry, leaf.leaf_hash),
            )
            self.put_nodes(nodes)

    def put_nodes(self, nodes: Sequence[AuditNode]) -> None:
        """Store tree nodes; storing an identical node again is a no-op, a different hash for
        an existing position is a :class:`RecordConflictError`."""
        with self._db.transaction() as conn:
            for node in nodes:
                existing = conn.execute(
                    "SELECT hash FROM audit_nodes WHERE level = ? AND idx = ?",
                    (node.level, node.index),
                ).fetchone()
                if existing is None:
                    conn.execute(
                        "INSERT INTO audit_nodes (level, idx, hash) VALUES (?, ?, ?)",
                        (node.level, node.index, node.hash),
                    )
                elif bytes(existing[0]) != node.hash:
                    raise RecordConflictError("an audit tree node already has another hash")

    def leaf(self, seq: int) -> AuditLeaf | None:
        row = (
            self._db.connection()
            .execute("SELECT * FROM audit_log WHERE seq = ?", (seq,))
            .fetchone()
        )
        return None if row is None else _leaf_from_row(row)

    def leaves(self, start: int, end: int) -> list[AuditLeaf]:
        """Leaves with ``start <= seq < end``, in order."""
        rows = self._db.connection().execute(
            "SELECT * FROM audit_log WHERE seq >= ? AND seq < ? ORDER BY seq", (start, end)
        )
        return [_leaf_from_row(r) for r in rows]

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        rows = self._db.connection().execute(
            "SELECT leaf_hash FROM audit_log WHERE seq >= ? AND seq < ? ORDER BY seq",
            (start, end),
        )
        return [bytes(r[0]) for r in rows]

    def node(self, level: int, index: int) -> bytes | None:
        row = (
            self._db.connection()
            .execute("SELECT hash FROM audit_nodes WHERE level = ? AND idx = ?", (level, index))
            .fetchone()
        )
        return None if row is None else bytes(row[0])

    def add_checkpoint(self, checkpoint: AuditCheckpoint) -> None:
        """Store a signed checkpoint note for tree ``size`` (which must not exceed the log)."""
        with self._db.transaction() as conn:
            if checkpoint.size > self.size():
                raise RecordConflictError("a checkpoint cannot be larger than the log")
            conn.execute(
                "INSERT INTO audit_checkpoints (size, note, created_at) VALUES (?, ?, ?)",
                (checkpoint.size, checkpoint.note, checkpoint.created_at),
            )

    def checkpoint(self, size: int) -> AuditCheckpoint | None:
        row = (
            self._db.connection()
            .execute("SELECT * FROM audit_checkpoints WHERE size = ?", (size,))
            .fetchone()
        )
        if row is None:
            return None
        return AuditCheckpoint(size=row["size"], note=row["note"], created_at=row["created_at"])

    def latest_checkpoint(self) -> AuditCheckpoint | None:
        row = (
            self._db.connection()
            .execute("SELECT * FROM audit_checkpoints ORDER BY size DESC LIMIT 1")
            .fetchone()
        )
        if row is None:
            return None
        return AuditCheckpoint(size=row["size"], note=row["note"], created_at=row["created_at"])
