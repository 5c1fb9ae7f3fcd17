"""Analyst queries, their per-peer results, and the hits they produced.

Owns ``queries``, ``query_results`` and ``hits``. A query records who asked, why (purpose,
legal basis, case reference) and its status; each peer asked gets one result row
(``ok``/``partial``/``refused``/``unreachable`` with a reason safe to show); each hit names our
subject, the peer, which key types matched, a strength, its own ``id`` (the handle an analyst
uses) and an opaque *hit token* (what a disclosure request carries to the owner; it reveals
nothing by itself). The same token can come back in several queries, so it is indexed, not
unique.

Hits are written with the result in one transaction (:meth:`QueryRepo.record_result`), so a
result never claims hits that are not stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from fiumatch.store.db import Database
from fiumatch.store.errors import RecordConflictError, RecordNotFoundError

__all__ = [
    "Hit",
    "Query",
    "QueryRepo",
    "QueryResult",
    "QueryResultStatus",
    "QueryStatus",
]

QueryStatus = Literal["pending", "running", "done", "failed", "cancelled"]
QueryResultStatus = Literal["ok", "partial", "refused", "unreachable"]
_TERMINAL: frozenset[str] = frozenset({"done", "failed", "cancelled"})


@dataclass(frozen=True, kw_only=True)
class Query:
    id: str
    analyst: str
    purpose: str
    legal_basis: str
    case_ref: str
    status: QueryStatus
    created_at: int
    finished_at: int | None = None


@dataclass(frozen=True, kw_only=True)
class QueryResult:
    query_id: str
    peer_id: str
    status: QueryResultStatus
    reason: str
    hit_count: int
    recorded_at: int
    session_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class Hit:
    id: str
    hit_token: bytes
    query_id: str
    peer_id: str
    subject_id: str
    key_types: tuple[int, ...]
    strength: int
    created_at: int


def _query_from_row(row: Any) -> Query:
    return Query(
        id=row["id"],
        analyst=row["analyst"],
        purpose=row["purpose"],
        legal_basis=row["legal_basis"],
        case_ref=row["case_ref"],
        status=row["status"],
        created_at=row["created_at"],
        finished_at=row["finished_at"],
    )


def _result_from_row(row: Any) -> QueryResult:
    return QueryResult(
        query_id=row["query_id"],
        peer_id=row["peer_id"],
        status=row["status"],
        reason=row["reason"],
        hit_count=row["hit_count"],
        recorded_at=row["recorded_at"],
        session_id=row["session_id"],
    )


def _hit_from_row(row: Any) -> Hit:
    return Hit(
        id=row["id"],
        hit_token=bytes(row["hit_token"]),
        query_id=row["query_id"],
        peer_id=row["peer_id"],
        subject_id=row["subject_id"],
        key_types=tuple(json.loads(row["key_types_json"])),
        strength=row["strength"],
        created_at=row["created_at"],
    )


class QueryRepo:
    """Reads and writes ``queries``, ``query_results`` and ``hits``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, query: Query) -> None:
        q = query
        with self._db.transaction() as conn:
            conn.execute(
                """INSERT INTO queries (id, analyst, purpose, legal_basis, case_ref, status,
                       created_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    q.id,
                    q.analyst,
                    q.purpose,
                    q.legal_basis,
                    q.case_ref,
                    q.status,
                    q.created_at,
                    q.finished_at,
                ),
            )

    def get(self, query_id: str) -> Query | None:
        row = (
            self._db.connection()
            .execute("SELECT * FROM queries WHERE id = ?", (query_id,))
            .fetchone()
        )
        return None if row is None else _query_from_row(row)

    def require(self, query_id: str) -> Query:
        found = self.get(query_id)
        if found is None:
            raise RecordNotFoundError("no such query")
        return found

    def list_by_analyst(self, analyst: str, *, limit: int = 100) -> list[Query]:
        rows = self._db.connection().execute(
            "SELECT * FROM queries WHERE analyst = ? ORDER BY created_at DESC, id LIMIT ?",
            (analyst, limit),
        )
        return [_query_from_row(r) for r in rows]

    def list_recent(self, *, limit: int = 100) -> list[Query]:
        rows = self._db.connection().execute(
            "SELECT * FROM queries ORDER BY created_at DESC, id LIMIT ?", (limit,)
        )
        return [_query_from_row(r) for r in rows]

    def unfinished(self) -> list[Query]:
        """Every query still ``pending`` or ``running`` (at startup: left by a crash)."""
        rows = self._db.connection().execute(
            "SELECT * FROM queries WHERE status IN ('pending', 'running') ORDER BY created_at, id"
        )
        return [_query_from_row(r) for r in rows]

    def set_status(self, query_id: str, status: QueryStatus, *, now: int) -> None:
        """Change the status; a terminal status (done/failed/cancelled) is final and stamps
        ``finished_at``. :class:`RecordConflictError` when the query already finished."""
        with self._db.transaction() as conn:
            current = self.require(query_id)
            if current.status in _TERMINAL:
                raise RecordConflictError("the query has already finished")
            conn.execute(
                "UPDATE queries SET status = ?, finished_at = ? WHERE id = ?",
                (status, now if status in _TERMINAL else None, query_id),
            )

    def record_result(self, result: QueryResult, hits: Sequence[Hit] = ()) -> None:
        """Store one peer's result for a query together with its hits (all or nothing).

        A second result for the same (query, peer) is a :class:`RecordConflictError`.
        ``result.hit_count`` must equal ``len(hits)``.
        """
        if result.hit_count != len(hits):
            raise ValueError("hit_count must equal the number of hits")
        if any(h.query_id != result.query_id or h.peer_id != result.peer_id for h in hits):
            raise ValueError("every hit must belong to the result's query and peer")
        r = result
        with self._db.transaction() as conn:
            conn.execute(
                """INSERT INTO query_results (query_id, peer_id, status, reason, session_id,
                       hit_count, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)""",
                (
                    r.query_id,
                    r.peer_id,
                    r.status,
                    r.reason,
                    r.session_id,
                    r.hit_count,
                    r.recorded_at,
                ),
            )
            conn.executemany(
                """INSERT INTO hits (id, hit_token, query_id, peer_id, subject_id,
                       key_types_json, strength, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                [
                    (
                        h.id,
                        h.hit_token,
                        h.query_id,
                        h.peer_id,
                        h.subject_id,
                        json.dumps(sorted(h.key_types), separators=(",", ":")),
                        h.strength,
                        h.created_at,
                    )
                    for h in hits
                ],
            )

    def record_result_stream(self, result: QueryResult, hits: Iterable[Hit]) -> int:
        """:meth:`record_result` for a stream of hits (all or nothing), never holding them all:
        ``result.hit_count`` is ignored and set to the number of hits stored, returned."""
        r = result
        count = 0

        types_json: dict[tuple[int, ...], str] = {}  # a handful of combinations, many hits

        def rows() -> Iterator[tuple[object, ...]]:
            nonlocal count
            for h in hits:
                if h.query_id != r.query_id or h.peer_id != r.peer_id:
                    raise ValueError("every hit must belong to the result's query and peer")
                count += 1
                tj = types_json.get(h.key_types)
                if tj is None:
                    tj = types_json[h.key_types] = json.dumps(
                        sorted(h.key_types), separators=(",", ":")
                    )
                yield (
                    h.id,
                    h.hit_token,
                    h.query_id,
                    h.peer_id,
                    h.subject_id,
                    tj,
                    h.strength,
                    h.created_at,
                )

        with self._db.transaction() as conn:
            conn.execute(
                """INSERT INTO query_results (query_id, peer_id, status, reason, session_id,
                       hit_count, recorded_at) VALUES (?, ?, ?, ?, ?, 0, ?)""",
                (r.query_id, r.peer_id, r.status, r.reason, r.session_id, r.recorded_at),
            )
            conn.executemany(
                """INSERT INTO hits (id, hit_token, query_id, peer_id, subject_id,
                       key_types_json, strength, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                rows(),
            )
            conn.execute(
                "UPDATE query_results SET hit_count = ? WHERE query_id = ? AND peer_id = ?",
                (count, r.query_id, r.peer_id),
            )
        return count

    def results(self, query_id: str) -> list[QueryResult]:
        rows = self._db.connection().execute(
            "SELECT * FROM query_results WHERE query_id = ? ORDER BY peer_id", (query_id,)
        )
        return [_result_from_row(r) for r in rows]

    def hits(
        self,
        query_id: str,
        peer_id: str | None = None,
        *,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[Hit]:
        """A query's hits (of one peer), ordered by peer then subject; ``limit`` of them
        (None: all) from ``offset``."""
        conn = self._db.connection()
        page = " LIMIT ? OFFSET ?"
        window = (-1 if limit is None else max(0, limit), max(0, offset))
        if peer_id is None:
            rows = conn.execute(
                "SELECT * FROM hits WHERE query_id = ? ORDER BY peer_id, subject_id, id" + page,
                (query_id, *window),
            )
        else:
            rows = conn.execute(
                "SELECT * FROM hits WHERE query_id = ? AND peer_id = ? ORDER BY subject_id, id"
                + page,
                (query_id, peer_id, *window),
            )
        return [_hit_from_row(r) for r in rows]

    def hit_total(self, query_id: str) -> int:
        """How many hits a query has (every peer)."""
        row = self._db.connection().execute(
            "SELECT COUNT(*) FROM hits WHERE query_id = ?", (query_id,)
        ).fetchone()
        return int(row[0])

    def hit(self, hit_id: str) -> Hit | None:
        row = self._db.connection().execute("SELECT * FROM hits WHERE id = ?", (hit_id,)).fetchone()
        return None if row is None else _hit_from_row(row)

    def hits_by_token(self, hit_token: bytes, *, peer_id: str | None = None) -> list[Hit]:
        """Every hit carrying ``hit_token`` (optionally from one peer), newest first."""
        conn = self._db.connection()
        if peer_id is None:
            rows = conn.execute(
                "SELECT * FROM hits WHERE hit_token = ? ORDER BY created_at DESC, id",
                (hit_token,),
            )
        else:
            rows = conn.execute(
                "SELECT * FROM hits WHERE hit_token = ? AND peer_id = ? "
                "ORDER BY created_at DESC, id",
                (hit_token, peer_id),
            )
        return [_hit_from_row(r) for r in rows]
