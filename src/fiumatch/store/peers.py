"""Peers (pinned identities), agreements with them, and per-epoch budget usage.

Owns ``peers``, ``agreements`` and ``budget_usage``. A peer is never deleted (sessions, hits and
disclosures refer to it); it is revoked. Its Ed25519 key is *pinned*: changing it is the explicit
:meth:`PeerRepo.repin`, never a side effect of an update. Budget charges are atomic: two
concurrent sessions cannot both spend the last unit.

This module stores and retrieves; deciding whether an agreement allows a request is the node's
job.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fiumatch.store.db import Database
from fiumatch.store.errors import RecordNotFoundError

__all__ = [
    "Agreement",
    "AgreementRepo",
    "BudgetCharge",
    "BudgetRepo",
    "Peer",
    "PeerRepo",
]


@dataclass(frozen=True, kw_only=True)
class Peer:
    """A peer node: its id, base URL and pinned Ed25519 public key (32 raw bytes)."""

    node_id: str
    url: str
    public_key: bytes
    fingerprint: str
    added_at: int
    revoked_at: int | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _peer_from_row(row: Any) -> Peer:
    return Peer(
        node_id=row["node_id"],
        url=row["url"],
        public_key=bytes(row["public_key"]),
        fingerprint=row["fingerprint"],
        added_at=row["added_at"],
        revoked_at=row["revoked_at"],
    )


class PeerRepo:
    """Reads and writes ``peers``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, peer: Peer) -> None:
        """Add a new peer; :class:`RecordConflictError` if the id or fingerprint is taken."""
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO peers (node_id, url, public_key, fingerprint, added_at, revoked_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    peer.node_id,
                    peer.url,
                    peer.public_key,
                    peer.fingerprint,
                    peer.added_at,
                    peer.revoked_at,
                ),
            )

    def get(self, node_id: str) -> Peer | None:
        row = (
            self._db.connection()
            .execute("SELECT * FROM peers WHERE node_id = ?", (node_id,))
            .fetchone()
        )
        return None if row is None else _peer_from_row(row)

    def require(self, node_id: str) -> Peer:
        peer = self.get(node_id)
        if peer is None:
            raise RecordNotFoundError("no such peer")
        return peer

    def by_fingerprint(self, fingerprint: str) -> Peer | None:
        row = (
            self._db.connection()
            .execute("SELECT * FROM peers WHERE fingerprint = ?", (fingerprint,))
            .fetchone()
        )
        return None if row is None else _peer_from_row(row)

    def list_all(self, *, include_revoked: bool = False) -> list[Peer]:
        sql = "SELECT * FROM peers"
        if not include_revoked:
            sql += " WHERE revoked_at IS NULL"
        rows = self._db.connection().execute(sql + " ORDER BY node_id")
        return [_peer_from_row(r) for r in rows]

    def update_url(self, node_id: str, url: str) -> None:
        with self._db.transaction() as conn:
            cur = conn.execute("UPDATE peers SET url = ? WHERE node_id = ?", (url, node_id))
            if cur.rowcount == 0:
                raise RecordNotFoundError("no such peer")

    def repin(self, node_id: str, public_key: bytes, fingerprint: str) -> None:
        """Replace the pinned key (an operator decision after an out-of-band check)."""
        with self._db.transaction() as conn:
            cur = conn.execute(
                "UPDATE peers SET public_key = ?, fingerprint = ? WHERE node_id = ?",
                (public_key, fingerprint, node_id),
            )
            if cur.rowcount == 0:
                raise RecordNotFoundError("no such peer")

    def revoke(self, node_id: str, *, now: int) -> None:
        """Mark the peer revoked (idempotent: the first revocation time is kept)."""
        with self._db.transaction() as conn:
            cur = conn.execute(
                "UPDATE peers SET revoked_at = COALESCE(revoked_at, ?) WHERE node_id = ?",
                (now, node_id),
            )
            if cur.rowcount == 0:
                raise RecordNotFoundError("no such peer")


# --- agreements ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Agreement:
    """The terms under which we exchange with one peer.

    ``valid_from`` is inclusive and ``valid_until`` exclusive (Unix seconds). ``signed_json`` is
    the agreement document exactly as both parties signed it.
    """

    id: str
    peer_id: str
    modes: tuple[str, ...]
    purposes: tuple[str, ...]
    identifier_types: tuple[str, ...]
    budget_per_epoch: int
    max_set_size: int
    valid_from: int
    valid_until: int
    signed_json: str
    created_at: int
    revoked_at: int | None = None
    proofs: bool = True
    """Filter mode: every evaluation carries a VOPRF proof (SPEC §7.4)."""

    def in_force(self, now: int) -> bool:
        return self.revoked_at is None and self.valid_from <= now < self.valid_until


def _dump_list(values: Sequence[str]) -> str:
    return json.dumps(list(values), separators=(",", ":"))


def _agreement_from_row(row: Any) -> Agreement:
    return Agreement(
        id=row["id"],
        peer_id=row["peer_id"],
        modes=tuple(json.loads(row["modes_json"])),
        purposes=tuple(json.loads(row["purposes_json"])),
        identifier_types=tuple(json.loads(row["id_types_json"])),
        budget_per_epoch=row["budget_per_epoch"],
        max_set_size=row["max_set_size"],
        valid_from=row["valid_from"],
        valid_until=row["valid_until"],
        signed_json=row["signed_json"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        proofs=bool(row["proofs"]),
    )


class AgreementRepo:
    """Reads and writes ``agreements``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, agreement: Agreement) -> None:
        a = agreement
        with self._db.transaction() as conn:
            conn.execute(
                """INSERT INTO agreements (id, peer_id, modes_json, purposes_json, id_types_json,
                       budget_per_epoch, max_set_size, valid_from, valid_until, signed_json,
                       created_at, revoked_at, proofs)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    a.id,
                    a.peer_id,
                    _dump_list(a.modes),
                    _dump_list(a.purposes),
                    _dump_list(a.identifier_types),
                    a.budget_per_epoch,
                    a.max_set_size,
                    a.valid_from,
                    a.valid_until,
                    a.signed_json,
                    a.created_at,
                    a.revoked_at,
                    int(a.proofs),
                ),
            )

    def get(self, agreement_id: str) -> Agreement | None:
        row = (
            self._db.connection()
            .execute("SELECT * FROM agreements WHERE id = ?", (agreement_id,))
            .fetchone()
        )
        return None if row is None else _agreement_from_row(row)

    def require(self, agreement_id: str) -> Agreement:
        agreement = self.get(agreement_id)
        if agreement is None:
            raise RecordNotFoundError("no such agreement")
        return agreement

    def list_for_peer(self, peer_id: str) -> list[Agreement]:
        rows = self._db.connection().execute(
            "SELECT * FROM agreements WHERE peer_id = ? ORDER BY valid_from, id", (peer_id,)
        )
        return [_agreement_from_row(r) for r in rows]

    def in_force(self, peer_id: str, now: int) -> list[Agreement]:
        """The peer's agreements valid at ``now`` and not revoked, oldest first."""
        rows = self._db.connection().execute(
            """SELECT * FROM agreements
               WHERE peer_id = ? AND revoked_at IS NULL AND valid_from <= ? AND ? < valid_until
               ORDER BY valid_from, id""",
            (peer_id, now, now),
        )
        return [_agreement_from_row(r) for r in rows]

    def revoke(self, agreement_id: str, *, now: int) -> None:
        with self._db.transaction() as conn:
            cur = conn.execute(
                "UPDATE agreements SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?",
                (now, agreement_id),
            )
            if cur.rowcount == 0:
                raise RecordNotFoundError("no such agreement")


# --- budget ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class BudgetCharge:
    """The outcome of :meth:`BudgetRepo.try_consume`: ``granted`` or not, and the balance after."""

    granted: bool
    used: int
    remaining: int


class BudgetRepo:
    """Reads and writes ``budget_usage`` (units spent per peer and epoch)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def used(self, peer_id: str, epoch: int) -> int:
        row = (
            self._db.connection()
            .execute(
                "SELECT used FROM budget_usage WHERE peer_id = ? AND epoch = ?", (peer_id, epoch)
            )
            .fetchone()
        )
        return 0 if row is None else int(row[0])

    def try_consume(
        self, peer_id: str, epoch: int, amount: int, *, limit: int, now: int
    ) -> BudgetCharge:
        """Spend ``amount`` units if that keeps usage within ``limit``; all or nothing.

        A refused charge writes nothing. Runs under the write lock, so concurrent charges are
        serialised and cannot overspend.
        """
        if amount < 0:
            raise ValueError("amount must not be negative")
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT used FROM budget_usage WHERE peer_id = ? AND epoch = ?",
                (peer_id, epoch),
            ).fetchone()
            used = 0 if row is None else int(row[0])
            if used + amount > limit:
                return BudgetCharge(granted=False, used=used, remaining=max(0, limit - used))
            conn.execute(
                """INSERT INTO budget_usage (peer_id, epoch, used, updated_at) VALUES (?, ?, ?, ?)
                   ON CONFLICT (peer_id, epoch) DO UPDATE SET
                       used = excluded.used, updated_at = excluded.updated_at""",
                (peer_id, epoch, used + amount, now),
            )
            return BudgetCharge(granted=True, used=used + amount, remaining=limit - used - amount)

    def prune_before(self, epoch: int) -> int:
        """Forget usage of epochs older than ``epoch``; returns rows deleted."""
        with self._db.transaction() as conn:
            return conn.execute("DELETE FROM budget_usage WHERE epoch < ?", (epoch,)).rowcount
