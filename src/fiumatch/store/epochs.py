"""OPRF key epochs per peer, and the encoded sets and filters that belong to them.

Owns ``epochs`` and ``epoch_blobs``. Each row is keyed by (peer, side, epoch number):

* ``side='local'``: *our* epoch key used when serving that peer (its public key is what we
  publish; the secret is re-derived from the sealed master secret, never stored here);
* ``side='remote'``: the peer's published epoch key.

Life cycle: ``preparing`` -> ``active`` -> ``retired``. At most one epoch per (peer, side) is
active (a partial unique index enforces it); :meth:`EpochRepo.activate` retires the previous one
in the same transaction. Retiring an epoch deletes its blobs: an encoded set of an old epoch has
no use left and is not kept.

The blobs are opaque bytes (the protocol package encodes them); ``kind`` names what they are,
e.g. ``"filter"`` or ``"encoded-set"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from fiumatch.store.db import Database
from fiumatch.store.errors import RecordConflictError, RecordNotFoundError

__all__ = ["Epoch", "EpochBlob", "EpochRepo", "EpochSide", "EpochState"]

EpochState = Literal["preparing", "active", "retired"]
EpochSide = Literal["local", "remote"]


@dataclass(frozen=True, kw_only=True)
class Epoch:
    peer_id: str
    side: EpochSide
    epoch: int
    public_key: bytes
    state: EpochState
    created_at: int
    activated_at: int | None = None
    retired_at: int | None = None


@dataclass(frozen=True, kw_only=True)
class EpochBlob:
    peer_id: str
    side: EpochSide
    epoch: int
    kind: str
    data: bytes
    created_at: int


def _epoch_from_row(row: Any) -> Epoch:
    return Epoch(
        peer_id=row["peer_id"],
        side=row["side"],
        epoch=row["epoch"],
        public_key=bytes(row["public_key"]),
        state=row["state"],
        created_at=row["created_at"],
        activated_at=row["activated_at"],
        retired_at=row["retired_at"],
    )


class EpochRepo:
    """Reads and writes ``epochs`` and ``epoch_blobs``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, epoch: Epoch) -> None:
        """Record a new epoch (normally in state ``preparing``)."""
        e = epoch
        with self._db.transaction() as conn:
            conn.execute(
                """INSERT INTO epochs (peer_id, side, epoch, public_key, state, created_at,
                       activated_at, retired_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    e.peer_id,
                    e.side,
                    e.epoch,
                    e.public_key,
                    e.state,
                    e.created_at,
                    e.activated_at,
                    e.retired_at,
                ),
            )

    def get(self, peer_id: str, side: EpochSide, epoch: int) -> Epoch | None:
        row = (
            self._db.connection()
            .execute(
                "SELECT * FROM epochs WHERE peer_id = ? AND side = ? AND epoch = ?",
                (peer_id, side, epoch),
            )
            .fetchone()
        )
        return None if row is None else _epoch_from_row(row)

    def require(self, peer_id: str, side: EpochSide, epoch: int) -> Epoch:
        found = self.get(peer_id, side, epoch)
        if found is None:
            raise RecordNotFoundError("no such epoch")
        return found

    def active(self, peer_id: str, side: EpochSide) -> Epoch | None:
        row = (
            self._db.connection()
            .execute(
                "SELECT * FROM epochs WHERE peer_id = ? AND side = ? AND state = 'active'",
                (peer_id, side),
            )
            .fetchone()
        )
        return None if row is None else _epoch_from_row(row)

    def list_all(self, peer_id: str, side: EpochSide) -> list[Epoch]:
        rows = self._db.connection().execute(
            "SELECT * FROM epochs WHERE peer_id = ? AND side = ? ORDER BY epoch",
            (peer_id, side),
        )
        return [_epoch_from_row(r) for r in rows]

    def latest_number(self, peer_id: str, side: EpochSide) -> int | None:
        row = (
            self._db.connection()
            .execute(
                "SELECT MAX(epoch) FROM epochs WHERE peer_id = ? AND side = ?", (peer_id, side)
            )
            .fetchone()
        )
        return None if row[0] is None else int(row[0])

    def activate(self, peer_id: str, side: EpochSide, epoch: int, *, now: int) -> Epoch | None:
        """Make a ``preparing`` epoch active, retiring (and dropping the blobs of) the previous
        active one in the same transaction. Returns the epoch that was retired, if any."""
        with self._db.transaction() as conn:
            target = self.require(peer_id, side, epoch)
            if target.state != "preparing":
                raise RecordConflictError("only a preparing epoch can be activated")
            previous = self.active(peer_id, side)
            if previous is not None:
                self._retire(conn, previous, now)
            conn.execute(
                "UPDATE epochs SET state = 'active', activated_at = ? "
                "WHERE peer_id = ? AND side = ? AND epoch = ?",
                (now, peer_id, side, epoch),
            )
            return previous

    def retire(self, peer_id: str, side: EpochSide, epoch: int, *, now: int) -> None:
        """Retire an epoch and delete its blobs (idempotent for an already retired epoch)."""
        with self._db.transaction() as conn:
            target = self.require(peer_id, side, epoch)
            if target.state != "retired":
                self._retire(conn, target, now)

    @staticmethod
    def _retire(conn: Any, e: Epoch, now: int) -> None:
        conn.execute(
            "UPDATE epochs SET state = 'retired', retired_at = ? "
            "WHERE peer_id = ? AND side = ? AND epoch = ?",
            (now, e.peer_id, e.side, e.epoch),
        )
        conn.execute(
            "DELETE FROM epoch_blobs WHERE peer_id = ? AND side = ? AND epoch = ?",
            (e.peer_id, e.side, e.epoch),
        )

    # --- blobs -------------------------------------------------------------------------

    def put_blob(self, blob: EpochBlob) -> None:
        """Store (or replace) a blob of a preparing or active epoch."""
        b = blob
        with self._db.transaction() as conn:
            target = self.require(b.peer_id, b.side, b.epoch)
            if target.state == "retired":
                raise RecordConflictError("a retired epoch takes no new blobs")
            conn.execute(
                """INSERT INTO epoch_blobs (peer_id, side, epoch, kind, data, created_at)
                   VALUES (?, ?, ?, ?, ?, ?)
                   ON CONFLICT (peer_id, side, epoch, kind) DO UPDATE SET
                       data = excluded.data, created_at = excluded.created_at""",
                (b.peer_id, b.side, b.epoch, b.kind, b.data, b.created_at),
            )

    def get_blob(self, peer_id: str, side: EpochSide, epoch: int, kind: str) -> EpochBlob | None:
        row = (
            self._db.connection()
            .execute(
                "SELECT * FROM epoch_blobs "
                "WHERE peer_id = ? AND side = ? AND epoch = ? AND kind = ?",
                (peer_id, side, epoch, kind),
            )
            .fetchone()
        )
        if row is None:
            return None
        return EpochBlob(
            peer_id=row["peer_id"],
            side=row["side"],
            epoch=row["epoch"],
            kind=row["kind"],
            data=bytes(row["data"]),
            created_at=row["created_at"],
        )

    def blob_kinds(self, peer_id: str, side: EpochSide, epoch: int) -> list[str]:
        rows = self._db.connection().execute(
            "SELECT kind FROM epoch_blobs WHERE peer_id = ? AND side = ? AND epoch = ? "
            "ORDER BY kind",
            (peer_id, side, epoch),
        )
        return [str(r[0]) for r in rows]
