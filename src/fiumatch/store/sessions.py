"""PSI session records.

Owns ``sessions``. The store keeps the session's bookkeeping (peer, role, mode, epoch, state
name, counts, times); the state machine itself lives in the protocol package, which decides
which transitions are legal. State changes here are compare-and-set
(:meth:`SessionRepo.transition`), so two requests racing on one session cannot both move it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from fiumatch.store.db import Database
from fiumatch.store.errors import RecordConflictError, RecordNotFoundError

__all__ = ["SessionRecord", "SessionRepo", "SessionRole"]

SessionRole = Literal["initiator", "responder"]


@dataclass(frozen=True, kw_only=True)
class SessionRecord:
    id: str
    peer_id: str
    role: SessionRole
    mode: str
    state: str
    epoch: int
    created_at: int
    updated_at: int
    items_sent: int = 0
    items_received: int = 0
    matches: int = 0
    closed_at: int | None = None

    @property
    def open(self) -> bool:
        return self.closed_at is None


def _from_row(row: Any) -> SessionRecord:
    return SessionRecord(
        id=row["id"],
        peer_id=row["peer_id"],
        role=row["role"],
        mode=row["mode"],
        state=row["state"],
        epoch=row["epoch"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        items_sent=row["items_sent"],
        items_received=row["items_received"],
        matches=row["matches"],
        closed_at=row["closed_at"],
    )


class SessionRepo:
    """Reads and writes ``sessions``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, session: SessionRecord) -> None:
        s = session
        with self._db.transaction() as conn:
            conn.execute(
                """INSERT INTO sessions (id, peer_id, role, mode, state, epoch, items_sent,
                       items_received, matches, created_at, updated_at, closed_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    s.id,
                    s.peer_id,
                    s.role,
                    s.mode,
                    s.state,
                    s.epoch,
                    s.items_sent,
                    s.items_received,
                    s.matches,
                    s.created_at,
                    s.updated_at,
                    s.closed_at,
                ),
            )

    def create_if_below_limit(self, session: SessionRecord, *, max_open: int) -> bool:
        """Create the session only if the peer has fewer than ``max_open`` open sessions.

        Count and insert happen under the write lock, so the limit holds under concurrency.
        """
        with self._db.transaction():
            if self.count_open(session.peer_id) >= max_open:
                return False
            self.create(session)
            return True

    def get(self, session_id: str) -> SessionRecord | None:
        row = (
            self._db.connection()
            .execute("SELECT * FROM sessions WHERE id = ?", (session_id,))
            .fetchone()
        )
        return None if row is None else _from_row(row)

    def require(self, session_id: str) -> SessionRecord:
        found = self.get(session_id)
        if found is None:
            raise RecordNotFoundError("no such session")
        return found

    def transition(
        self,
        session_id: str,
        *,
        from_state: str,
        to_state: str,
        now: int,
        add_sent: int = 0,
        add_received: int = 0,
        add_matches: int = 0,
        close: bool = False,
    ) -> SessionRecord:
        """Move an open session from ``from_state`` to ``to_state`` (compare-and-set), adding
        to its counts and optionally closing it. :class:`RecordConflictError` if the session is
        closed or not in ``from_state``; :class:`RecordNotFoundError` if it does not exist."""
        if min(add_sent, add_received, add_matches) < 0:
            raise ValueError("counts only grow")
        with self._db.transaction() as conn:
            cur = conn.execute(
                """UPDATE sessions SET state = ?, updated_at = ?,
                       items_sent = items_sent + ?, items_received = items_received + ?,
                       matches = matches + ?,
                       closed_at = CASE WHEN ? THEN ? ELSE closed_at END
                   WHERE id = ? AND state = ? AND closed_at IS NULL""",
                (
                    to_state,
                    now,
                    add_sent,
                    add_received,
                    add_matches,
                    close,
                    now,
                    session_id,
                    from_state,
                ),
            )
            if cur.rowcount == 0:
                self.require(session_id)
                raise RecordConflictError("the session is closed or not in the expected state")
            return self.require(session_id)

    def count_open(self, peer_id: str) -> int:
        row = (
            self._db.connection()
            .execute(
                "SELECT COUNT(*) FROM sessions WHERE peer_id = ? AND closed_at IS NULL", (peer_id,)
            )
            .fetchone()
        )
        return int(row[0])

    def list_open(self, peer_id: str | None = None) -> list[SessionRecord]:
        conn = self._db.connection()
        if peer_id is None:
            rows = conn.execute(
                "SELECT * FROM sessions WHERE closed_at IS NULL ORDER BY created_at, id"
            )
        else:
            rows = conn.execute(
                "SELECT * FROM sessions WHERE peer_id = ? AND closed_at IS NULL "
                "ORDER BY created_at, id",
                (peer_id,),
            )
        return [_from_row(r) for r in rows]

    def list_recent(self, *, limit: int = 200) -> list[SessionRecord]:
        """The most recently created sessions, newest first."""
        rows = self._db.connection().execute(
            "SELECT * FROM sessions ORDER BY created_at DESC, id LIMIT ?", (limit,)
        )
        return [_from_row(r) for r in rows]

    def expire_idle(self, *, idle_since: int, state: str, now: int) -> int:
        """Close every open session not updated since ``idle_since``, setting ``state``."""
        with self._db.transaction() as conn:
            return conn.execute(
                "UPDATE sessions SET state = ?, closed_at = ?, updated_at = ? "
                "WHERE closed_at IS NULL AND updated_at < ?",
                (state, now, now, idle_since),
            ).rowcount
