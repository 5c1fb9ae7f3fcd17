"""Storage for what the audit log exchanges with peers, and batched reads of the audit tree.

Owns ``audit_cosignatures`` (peers' cosignature lines on *our* checkpoints),
``audit_witnessed`` (peers' checkpoints we checked and cosigned), ``audit_receipts`` (receipts
peers gave us, each held against our own entry for the same exchange) and
``audit_split_views`` (two checkpoints of one peer's log that cannot both be honest), all
created by migration 3 and append-only (SQLite triggers refuse UPDATE and DELETE). It also
reads ``audit_nodes`` and ``audit_checkpoints`` in bulk (one query per proof, every checkpoint
of a range), which :class:`~fiumatch.store.audit.AuditRepo` reads one at a time.

Checking signatures, proofs and split views belongs to ``fiumatch.auditlog`` and
``fiumatch.node.audit``; this module stores their bytes and never judges them. It never logs
values: notes, receipts and hashes are evidence, not identifiers, but they are not log lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fiumatch.store.db import Database

__all__ = ["AuditWitnessRepo", "HeldReceiptRow", "SplitViewRow", "WitnessedRow"]


@dataclass(frozen=True, kw_only=True)
class WitnessedRow:
    """A peer log's checkpoint (``origin``, ``size``) as we cosigned it (``note``)."""

    origin: str
    size: int
    note: str
    seen_at: int


@dataclass(frozen=True, kw_only=True)
class HeldReceiptRow:
    """A receipt from the log ``origin`` for its leaf ``leaf_index``, held against our entry
    ``entry_index`` (the same exchange, logged on our side)."""

    entry_index: int
    origin: str
    leaf_index: int
    receipt: bytes
    received_at: int


@dataclass(frozen=True, kw_only=True)
class SplitViewRow:
    id: int
    origin: str
    first_note: str
    second_note: str
    detected_at: int


class AuditWitnessRepo:
    """Reads and appends to the witness tables; bulk reads of the tree and checkpoints."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # --- cosignatures on our own checkpoints ---------------------------------------------

    def add_cosignature(self, size: int, cosigner: str, line: str, now: int) -> bool:
        """Keep ``cosigner``'s signature line on our checkpoint of ``size`` (the first one a
        cosigner gave for a size is kept). Returns whether it was new."""
        with self._db.transaction() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO audit_cosignatures (size, cosigner, line, received_at) "
                "VALUES (?, ?, ?, ?)",
                (size, cosigner, line, now),
            )
            return cur.rowcount == 1

    def cosignatures(self, start: int, end: int) -> dict[int, list[str]]:
        """Cosignature lines of our checkpoints with ``start <= size <= end``, by size."""
        out: dict[int, list[str]] = {}
        rows = self._db.connection().execute(
            "SELECT size, line FROM audit_cosignatures WHERE size BETWEEN ? AND ? "
            "ORDER BY size, cosigner",
            (start, end),
        )
        for size, line in rows:
            out.setdefault(int(size), []).append(str(line))
        return out

    def latest_cosigned(self, cosigner: str) -> int | None:
        """The largest of our checkpoint sizes ``cosigner`` has cosigned."""
        row = (
            self._db.connection()
            .execute("SELECT MAX(size) FROM audit_cosignatures WHERE cosigner = ?", (cosigner,))
            .fetchone()
        )
        return None if row[0] is None else int(row[0])

    # --- peers' checkpoints we witnessed ---------------------------------------------------

    def add_witnessed(self, origin: str, size: int, note: str, now: int) -> bool:
        with self._db.transaction() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO audit_witnessed (origin, size, note, seen_at) "
                "VALUES (?, ?, ?, ?)",
                (origin, size, note, now),
            )
            return cur.rowcount == 1

    def latest_witnessed(self, origin: str) -> WitnessedRow | None:
        row = (
            self._db.connection()
            .execute(
                "SELECT * FROM audit_witnessed WHERE origin = ? ORDER BY size DESC LIMIT 1",
                (origin,),
            )
            .fetchone()
        )
        return None if row is None else _witnessed(row)

    def witnessed(self, origin: str | None = None) -> list[WitnessedRow]:
        """Every witnessed checkpoint (of one origin, or all), by origin and size."""
        conn = self._db.connection()
        if origin is None:
            rows = conn.execute("SELECT * FROM audit_witnessed ORDER BY origin, size")
        else:
            rows = conn.execute(
                "SELECT * FROM audit_witnessed WHERE origin = ? ORDER BY size", (origin,)
            )
        return [_witnessed(r) for r in rows]

    # --- receipts held from peers ------------------------------------------------------------

    def add_receipt(self, row: HeldReceiptRow) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO audit_receipts (entry_index, origin, leaf_index, receipt, "
                "received_at) VALUES (?, ?, ?, ?, ?)",
                (row.entry_index, row.origin, row.leaf_index, row.receipt, row.received_at),
            )

    def receipts(self, start: int, end: int) -> list[HeldReceiptRow]:
        """Receipts held against our entries ``start <= entry_index < end``, in entry order."""
        rows = self._db.connection().execute(
            "SELECT * FROM audit_receipts WHERE entry_index >= ? AND entry_index < ? "
            "ORDER BY entry_index",
            (start, end),
        )
        return [_receipt(r) for r in rows]

    def mirrored(self, origin: str, leaf_index: int) -> int | None:
        """Our entry that holds the receipt for ``origin``'s leaf ``leaf_index``, if any."""
        row = (
            self._db.connection()
            .execute(
                "SELECT entry_index FROM audit_receipts WHERE origin = ? AND leaf_index = ?",
                (origin, leaf_index),
            )
            .fetchone()
        )
        return None if row is None else int(row[0])

    # --- split-view evidence -------------------------------------------------------------------

    def add_split_view(self, origin: str, first_note: str, second_note: str, now: int) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO audit_split_views (origin, first_note, second_note, detected_at) "
                "VALUES (?, ?, ?, ?)",
                (origin, first_note, second_note, now),
            )

    def split_views(self) -> list[SplitViewRow]:
        rows = self._db.connection().execute("SELECT * FROM audit_split_views ORDER BY id")
        return [
            SplitViewRow(
                id=int(r["id"]),
                origin=str(r["origin"]),
                first_note=str(r["first_note"]),
                second_note=str(r["second_note"]),
                detected_at=int(r["detected_at"]),
            )
            for r in rows
        ]

    # --- bulk reads of the log's own tables ------------------------------------------------

    def nodes(self, coords: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """The stored tree nodes at ``coords`` (missing ones are simply absent), one query."""
        if not coords:
            return {}
        out: dict[tuple[int, int], bytes] = {}
        conn = self._db.connection()
        for i in range(0, len(coords), 100):
            chunk = coords[i : i + 100]
            # OR of primary-key equalities: SQLite answers it with one index search per pair
            # (a row-value IN (VALUES ...) would scan the whole table).
            where = " OR ".join("(level = ? AND idx = ?)" for _ in chunk)
            params = [v for c in chunk for v in c]
            rows = conn.execute(f"SELECT level, idx, hash FROM audit_nodes WHERE {where}", params)
            for level, idx, h in rows:
                out[(int(level), int(idx))] = bytes(h)
        return out

    def checkpoints(self, start: int, end: int) -> list[tuple[int, str]]:
        """Our signed checkpoints with ``start <= size <= end``: (size, note), by size."""
        rows = self._db.connection().execute(
            "SELECT size, note FROM audit_checkpoints WHERE size BETWEEN ? AND ? ORDER BY size",
            (start, end),
        )
        return [(int(s), str(n)) for s, n in rows]

    def checkpoint_count(self) -> int:
        row = self._db.connection().execute("SELECT COUNT(*) FROM audit_checkpoints").fetchone()
        return int(row[0])


def _witnessed(row: Any) -> WitnessedRow:
    return WitnessedRow(
        origin=str(row["origin"]),
        size=int(row["size"]),
        note=str(row["note"]),
        seen_at=int(row["seen_at"]),
    )


def _receipt(row: Any) -> HeldReceiptRow:
    return HeldReceiptRow(
        entry_index=int(row["entry_index"]),
        origin=str(row["origin"]),
        leaf_index=int(row["leaf_index"]),
        receipt=bytes(row["receipt"]),
        received_at=int(row["received_at"]),
    )
