"""Disclosure requests: asking a peer for (``out``), or being asked for (``in``), the data
behind a hit.

Owns ``disclosures``. Status moves only forward::

    pending --> approved --> released
        \\-----> denied
        \\-----> withdrawn

Each step is compare-and-set, so a request decided twice (two supervisors clicking at once)
raises :class:`RecordConflictError` for the second. ``released`` holds, for ``out`` requests,
what the peer sent us and, for ``in`` requests, exactly what we sent.

Onward dissemination (passing released data on to a third party) needs the owner's prior
consent; its own compare-and-set track is ``onward_status``::

    none --> requested --> granted
      ^           \\-----> refused --(asked again)--> requested

``onward_consent`` is true exactly when the status is ``granted``. An incoming request keeps
``subject_id``: the subject its hit token named when it arrived (NULL once purged).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from fiumatch.store.db import Database
from fiumatch.store.errors import RecordConflictError, RecordNotFoundError

__all__ = [
    "Disclosure",
    "DisclosureDirection",
    "DisclosureRepo",
    "DisclosureStatus",
    "OnwardStatus",
]

DisclosureDirection = Literal["in", "out"]
DisclosureStatus = Literal["pending", "approved", "denied", "released", "withdrawn"]
OnwardStatus = Literal["none", "requested", "granted", "refused"]


@dataclass(frozen=True, kw_only=True)
class Disclosure:
    id: str
    direction: DisclosureDirection
    peer_id: str
    hit_token: bytes
    purpose: str
    case_ref: str
    onward_consent: bool
    status: DisclosureStatus
    created_at: int
    decision_reason: str = ""
    released: Mapping[str, Any] | None = field(default=None, hash=False)
    decided_at: int | None = None
    subject_id: str | None = None
    hit_id: str | None = None
    onward_status: OnwardStatus = "none"
    onward_recipient: str | None = None
    onward_purpose: str | None = None
    onward_reason: str = ""
    onward_requested_at: int | None = None
    onward_decided_at: int | None = None


def _from_row(row: Any) -> Disclosure:
    released = row["released_json"]
    return Disclosure(
        id=row["id"],
        direction=row["direction"],
        peer_id=row["peer_id"],
        hit_token=bytes(row["hit_token"]),
        purpose=row["purpose"],
        case_ref=row["case_ref"],
        onward_consent=bool(row["onward_consent"]),
        status=row["status"],
        created_at=row["created_at"],
        decision_reason=row["decision_reason"],
        released=None if released is None else json.loads(released),
        decided_at=row["decided_at"],
        subject_id=row["subject_id"],
        hit_id=row["hit_id"],
        onward_status=row["onward_status"],
        onward_recipient=row["onward_recipient"],
        onward_purpose=row["onward_purpose"],
        onward_reason=row["onward_reason"],
        onward_requested_at=row["onward_requested_at"],
        onward_decided_at=row["onward_decided_at"],
    )


class DisclosureRepo:
    """Reads and writes ``disclosures``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, request: Disclosure) -> None:
        d = request
        with self._db.transaction() as conn:
            conn.execute(
                """INSERT INTO disclosures (id, direction, peer_id, hit_token, purpose, case_ref,
                       onward_consent, status, decision_reason, released_json, created_at,
                       decided_at, subject_id, hit_id, onward_status, onward_recipient,
                       onward_purpose, onward_reason, onward_requested_at, onward_decided_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    d.id,
                    d.direction,
                    d.peer_id,
                    d.hit_token,
                    d.purpose,
                    d.case_ref,
                    int(d.onward_consent),
                    d.status,
                    d.decision_reason,
                    None if d.released is None else _dump(d.released),
                    d.created_at,
                    d.decided_at,
                    d.subject_id,
                    d.hit_id,
                    d.onward_status,
                    d.onward_recipient,
                    d.onward_purpose,
                    d.onward_reason,
                    d.onward_requested_at,
                    d.onward_decided_at,
                ),
            )

    def get(self, disclosure_id: str) -> Disclosure | None:
        row = (
            self._db.connection()
            .execute("SELECT * FROM disclosures WHERE id = ?", (disclosure_id,))
            .fetchone()
        )
        return None if row is None else _from_row(row)

    def require(self, disclosure_id: str) -> Disclosure:
        found = self.get(disclosure_id)
        if found is None:
            raise RecordNotFoundError("no such disclosure request")
        return found

    def list_requests(
        self,
        *,
        direction: DisclosureDirection | None = None,
        status: DisclosureStatus | None = None,
        limit: int = 100,
    ) -> list[Disclosure]:
        clauses: list[str] = []
        params: list[object] = []
        if direction is not None:
            clauses.append("direction = ?")
            params.append(direction)
        if status is not None:
            clauses.append("status = ?")
            params.append(status)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._db.connection().execute(
            f"SELECT * FROM disclosures{where} ORDER BY created_at, id LIMIT ?",
            (*params, limit),
        )
        return [_from_row(r) for r in rows]

    def decide(
        self,
        disclosure_id: str,
        status: Literal["approved", "denied", "withdrawn"],
        *,
        reason: str,
        now: int,
    ) -> Disclosure:
        """Decide a pending request. :class:`RecordConflictError` if it is no longer pending."""
        if status not in ("approved", "denied", "withdrawn"):
            raise ValueError("a decision is approved, denied or withdrawn")
        return self._step(
            disclosure_id,
            from_status="pending",
            sql="status = ?, decision_reason = ?, decided_at = ?",
            params=(status, reason, now),
        )

    def mark_released(
        self, disclosure_id: str, released: Mapping[str, Any], *, now: int
    ) -> Disclosure:
        """Record what was released for an approved request (and mark it released)."""
        return self._step(
            disclosure_id,
            from_status="approved",
            sql="status = 'released', released_json = ?, decided_at = COALESCE(decided_at, ?)",
            params=(_dump(released), now),
        )

    def request_onward(
        self, disclosure_id: str, *, recipient: str, purpose: str, now: int
    ) -> Disclosure:
        """Record that consent to pass the data on to ``recipient`` is asked for (from ``none``
        or after a refusal). :class:`RecordConflictError` if it is pending or granted already."""
        return self._step(
            disclosure_id,
            from_status=("none", "refused"),
            column="onward_status",
            sql="onward_status = 'requested', onward_recipient = ?, onward_purpose = ?, "
            "onward_reason = '', onward_requested_at = ?, onward_decided_at = NULL, "
            "onward_consent = 0",
            params=(recipient, purpose, now),
        )

    def decide_onward(
        self, disclosure_id: str, *, grant: bool, reason: str, now: int
    ) -> Disclosure:
        """Grant or refuse a requested onward dissemination (compare-and-set from
        ``requested``)."""
        return self._step(
            disclosure_id,
            from_status=("requested",),
            column="onward_status",
            sql="onward_status = ?, onward_reason = ?, onward_decided_at = ?, onward_consent = ?",
            params=("granted" if grant else "refused", reason, now, int(grant)),
        )

    def _step(
        self,
        disclosure_id: str,
        *,
        from_status: str | tuple[str, ...],
        sql: str,
        params: tuple[object, ...],
        column: str = "status",
    ) -> Disclosure:
        allowed = (from_status,) if isinstance(from_status, str) else from_status
        marks = ", ".join("?" * len(allowed))
        with self._db.transaction() as conn:
            cur = conn.execute(
                f"UPDATE disclosures SET {sql} WHERE id = ? AND {column} IN ({marks})",
                (*params, disclosure_id, *allowed),
            )
            if cur.rowcount == 0:
                self.require(disclosure_id)
                raise RecordConflictError(
                    f"the disclosure request's {column} is not {' or '.join(allowed)}"
                )
            return self.require(disclosure_id)


def _dump(value: Mapping[str, Any]) -> str:
    return json.dumps(dict(value), sort_keys=True, separators=(",", ":"))
