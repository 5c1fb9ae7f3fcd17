"""Subjects (the FIU's own records) and their match keys.

Owns the ``subjects`` and ``match_keys`` tables. A subject is upserted by its stable id (the
identifiers package derives it); its match keys are replaced as a whole whenever the subject is
re-ingested, so a key that no longer derives from the record disappears. Purging a subject past
its retention date deletes its keys and hits with it (foreign-key cascade), and SQLite's
``secure_delete`` overwrites the freed pages.

Never logs or puts into an error message a subject field, a reference or a key.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from fiumatch.store.db import Database
from fiumatch.store.errors import RecordNotFoundError

__all__ = ["MatchKey", "Subject", "SubjectRepo"]


@dataclass(frozen=True, kw_only=True)
class Subject:
    """One subject as the FIU holds it.

    ``display`` is the JSON object shown to an analyst about our own subject (and released only
    through an approved disclosure); ``source``/``source_record`` say where it was ingested from.
    """

    id: str
    local_ref: str
    subject_type: str
    display: Mapping[str, Any] = field(default_factory=dict, hash=False)
    retain_until: date
    source: str
    source_record: str


@dataclass(frozen=True, kw_only=True)
class MatchKey:
    """A derived match key: ``key_type`` is the identifiers package's numeric code, ``strength``
    its 0..255 strength (higher is stronger)."""

    subject_id: str
    key_type: int
    key: bytes
    strength: int


_UPSERT_SUBJECT = """INSERT INTO subjects (id, local_ref, subject_type, display_json,
        retain_until, source, source_record, created_at, updated_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (id) DO UPDATE SET
        local_ref = excluded.local_ref,
        subject_type = excluded.subject_type,
        display_json = excluded.display_json,
        retain_until = excluded.retain_until,
        source = excluded.source,
        source_record = excluded.source_record,
        updated_at = excluded.updated_at"""


def _subject_row(subject: Subject, now: int) -> tuple[object, ...]:
    return (
        subject.id,
        subject.local_ref,
        subject.subject_type,
        json.dumps(dict(subject.display), sort_keys=True, separators=(",", ":")),
        subject.retain_until.isoformat(),
        subject.source,
        subject.source_record,
        now,
        now,
    )


def _subject_from_row(row: Any) -> Subject:
    return Subject(
        id=row["id"],
        local_ref=row["local_ref"],
        subject_type=row["subject_type"],
        display=json.loads(row["display_json"]),
        retain_until=date.fromisoformat(row["retain_until"]),
        source=row["source"],
        source_record=row["source_record"],
    )


def _key_from_row(row: Any) -> MatchKey:
    return MatchKey(
        subject_id=row["subject_id"],
        key_type=row["key_type"],
        key=bytes(row["key"]),
        strength=row["strength"],
    )


class SubjectRepo:
    """Reads and writes ``subjects`` and ``match_keys``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def upsert(self, subject: Subject, *, now: int) -> bool:
        """Insert or update ``subject`` by id; return True if it was new."""
        with self._db.transaction() as conn:
            existed = conn.execute("SELECT 1 FROM subjects WHERE id = ?", (subject.id,)).fetchone()
            conn.execute(_UPSERT_SUBJECT, _subject_row(subject, now))
            return existed is None

    def replace_keys(self, subject_id: str, keys: Sequence[MatchKey]) -> None:
        """Make ``keys`` the subject's complete set of match keys (all or nothing)."""
        if any(k.subject_id != subject_id for k in keys):
            raise ValueError("every key must belong to the subject whose keys are replaced")
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM match_keys WHERE subject_id = ?", (subject_id,))
            conn.executemany(
                "INSERT INTO match_keys (subject_id, key_type, key, strength) VALUES (?, ?, ?, ?)",
                [(k.subject_id, k.key_type, k.key, k.strength) for k in keys],
            )

    def upsert_with_keys(self, subject: Subject, keys: Sequence[MatchKey], *, now: int) -> bool:
        """Upsert the subject and replace its keys in one transaction; True if it was new."""
        with self._db.transaction():
            created = self.upsert(subject, now=now)
            self.replace_keys(subject.id, keys)
            return created

    def upsert_many(
        self, items: Iterable[tuple[Subject, Sequence[MatchKey]]], *, now: int, batch: int = 1000
    ) -> int:
        """:meth:`upsert_with_keys` for many subjects in one transaction (all or nothing), a
        ``batch`` at a time through ``executemany``; returns how many subjects were new.
        The same subject twice: the later one wins, as with repeated upserts."""
        created = 0
        with self._db.transaction() as conn:
            pending: dict[str, tuple[Subject, Sequence[MatchKey]]] = {}

            def flush() -> int:
                ids = list(pending)
                marks = ",".join("?" * len(ids))
                known = {
                    str(r[0])
                    for r in conn.execute(f"SELECT id FROM subjects WHERE id IN ({marks})", ids)
                }
                conn.executemany(
                    _UPSERT_SUBJECT, [_subject_row(sub, now) for sub, _ in pending.values()]
                )
                conn.executemany(
                    "DELETE FROM match_keys WHERE subject_id = ?", [(i,) for i in known]
                )
                conn.executemany(
                    "INSERT INTO match_keys (subject_id, key_type, key, strength) "
                    "VALUES (?, ?, ?, ?)",
                    [
                        (k.subject_id, k.key_type, k.key, k.strength)
                        for _, keys in pending.values()
                        for k in keys
                    ],
                )
                new = len(ids) - len(known)
                pending.clear()
                return new

            for subject, keys in items:
                if any(k.subject_id != subject.id for k in keys):
                    raise ValueError("every key must belong to the subject it is stored with")
                if subject.id in pending:
                    created += flush()  # the earlier one first, so the later one wins
                pending[subject.id] = (subject, keys)
                if len(pending) >= batch:
                    created += flush()
            if pending:
                created += flush()
        return created

    def get(self, subject_id: str) -> Subject | None:
        row = (
            self._db.connection()
            .execute("SELECT * FROM subjects WHERE id = ?", (subject_id,))
            .fetchone()
        )
        return None if row is None else _subject_from_row(row)

    def require(self, subject_id: str) -> Subject:
        """Like :meth:`get` but raises :class:`RecordNotFoundError`."""
        subject = self.get(subject_id)
        if subject is None:
            raise RecordNotFoundError("no such subject")
        return subject

    def count(self) -> int:
        return int(self._db.connection().execute("SELECT COUNT(*) FROM subjects").fetchone()[0])

    def count_except(self, source: str) -> int:
        """How many subjects come from any source but ``source``."""
        row = self._db.connection().execute(
            "SELECT COUNT(*) FROM subjects WHERE source != ?", (source,)
        ).fetchone()
        return int(row[0])

    def keys_of(self, subject_id: str) -> list[MatchKey]:
        rows = self._db.connection().execute(
            "SELECT * FROM match_keys WHERE subject_id = ? ORDER BY key_type, key",
            (subject_id,),
        )
        return [_key_from_row(r) for r in rows]

    def find_by_key(self, key: bytes, key_type: int | None = None) -> list[MatchKey]:
        """Every stored match key equal to ``key`` (optionally of one type)."""
        conn = self._db.connection()
        if key_type is None:
            rows = conn.execute(
                "SELECT * FROM match_keys WHERE key = ? ORDER BY subject_id, key_type", (key,)
            )
        else:
            rows = conn.execute(
                "SELECT * FROM match_keys WHERE key = ? AND key_type = ? ORDER BY subject_id",
                (key, key_type),
            )
        return [_key_from_row(r) for r in rows]

    def iter_keys(
        self, key_types: Collection[int] | None = None, *, page_size: int = 5000
    ) -> Iterator[MatchKey]:
        """Every match key (optionally of some types), ordered by (key, type, subject), in pages.

        Each page is a short read, so a long export never holds a read transaction open.
        """
        if page_size < 1:
            raise ValueError("page_size must be positive")
        types = None if key_types is None else sorted(set(key_types))
        if types is not None and not types:
            return
        type_filter = "" if types is None else f" AND key_type IN ({','.join('?' * len(types))})"
        after: tuple[bytes, int, str] | None = None
        while True:
            if after is None:
                sql = f"SELECT * FROM match_keys WHERE 1{type_filter}"
                params: list[object] = list(types or [])
            else:
                sql = (
                    "SELECT * FROM match_keys WHERE (key, key_type, subject_id) > (?, ?, ?)"
                    + type_filter
                )
                params = [*after, *(types or [])]
            sql += " ORDER BY key, key_type, subject_id LIMIT ?"
            params.append(page_size)
            rows = self._db.connection().execute(sql, params).fetchall()
            for row in rows:
                yield _key_from_row(row)
            if len(rows) < page_size:
                return
            last = rows[-1]
            after = (bytes(last["key"]), last["key_type"], last["subject_id"])

    def ids(self, *, exclude_source: str | None = None) -> list[str]:
        """Every subject id (optionally leaving out one source), sorted."""
        conn = self._db.connection()
        if exclude_source is None:
            rows = conn.execute("SELECT id FROM subjects ORDER BY id")
        else:
            rows = conn.execute(
                "SELECT id FROM subjects WHERE source != ? ORDER BY id", (exclude_source,)
            )
        return [str(r[0]) for r in rows]

    def search(
        self, text: str, *, exclude_source: str, limit: int = 50
    ) -> tuple[list[Subject], int]:
        """Subjects (not of ``exclude_source``) whose reference or display data contains
        ``text`` (a literal substring, case-insensitive for ASCII), at most ``limit`` of them
        by reference; and how many subjects there are in all, leaving out that source."""
        conn = self._db.connection()
        total = int(
            conn.execute(
                "SELECT COUNT(*) FROM subjects WHERE source != ?", (exclude_source,)
            ).fetchone()[0]
        )
        like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = conn.execute(
            """SELECT * FROM subjects WHERE source != ?
                 AND (local_ref LIKE ? ESCAPE '\\' OR display_json LIKE ? ESCAPE '\\')
               ORDER BY local_ref LIMIT ?""",
            (exclude_source, like, like, max(0, limit)),
        )
        return [_subject_from_row(r) for r in rows], total

    def existing(self, subject_ids: Collection[str]) -> set[str]:
        """The ids among ``subject_ids`` that are still stored."""
        found: set[str] = set()
        ids = sorted(set(subject_ids))
        conn = self._db.connection()
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            rows = conn.execute(
                f"SELECT id FROM subjects WHERE id IN ({','.join('?' * len(part))})", part
            )
            found.update(str(r[0]) for r in rows)
        return found

    def keys_of_types(
        self, key_types: Collection[int], *, exclude_source: str | None = None
    ) -> list[MatchKey]:
        """Every match key of the given types (optionally leaving out subjects of one
        source), ordered by (key, type, subject)."""
        types = sorted(set(key_types))
        if not types:
            return []
        marks = ",".join("?" * len(types))
        sql = (
            "SELECT k.* FROM match_keys k JOIN subjects s ON s.id = k.subject_id "
            f"WHERE k.key_type IN ({marks})"
        )
        params: list[object] = list(types)
        if exclude_source is not None:
            sql += " AND s.source != ?"
            params.append(exclude_source)
        sql += " ORDER BY k.key, k.key_type, k.subject_id"
        return [_key_from_row(r) for r in self._db.connection().execute(sql, params)]

    def select_keys(
        self,
        key_types: Collection[int],
        *,
        subject_ids: Collection[str] | None = None,
        exclude_source: str | None = None,
    ) -> KeySelection:
        """The match keys of ``key_types`` of ``subject_ids`` (None: every subject), leaving
        out subjects of ``exclude_source``, as a :class:`KeySelection` (close it after use)."""
        return KeySelection(
            self._db, key_types, subject_ids=subject_ids, exclude_source=exclude_source
        )

    def key_rows(
        self, key_types: Collection[int], *, exclude_source: str | None = None
    ) -> list[tuple[bytes, str, int, int]]:
        """``keys_of_types`` as plain ``(key, subject id, key type, strength)`` tuples, ordered
        by (key, subject id, key type): no object per key beyond the tuple (an epoch over 10^6
        keys). The table is scanned in its own order and sorted here, which is several times
        faster than an ORDER BY through the key index and a join per row."""
        types = sorted(set(key_types))
        if not types:
            return []
        cur = self._db.connection().cursor()
        cur.row_factory = None  # plain tuples
        sql = (
            "SELECT key, subject_id, key_type, strength FROM match_keys "
            f"WHERE key_type IN ({','.join('?' * len(types))})"
        )
        params: list[object] = list(types)
        if exclude_source is not None and self._any_from(exclude_source):
            sql += " AND subject_id NOT IN (SELECT id FROM subjects WHERE source = ?)"
            params.append(exclude_source)
        rows: list[tuple[bytes, str, int, int]] = cur.execute(sql, params).fetchall()
        rows.sort(key=lambda r: (r[0], r[1], r[2]))
        return rows

    def _any_from(self, source: str) -> bool:
        row = self._db.connection().execute(
            "SELECT EXISTS (SELECT 1 FROM subjects WHERE source = ?)", (source,)
        ).fetchone()
        return bool(row[0])

    def expired_ids(self, today: date) -> list[str]:
        """The ids of subjects whose retention date is before ``today``."""
        rows = self._db.connection().execute(
            "SELECT id FROM subjects WHERE retain_until < ? ORDER BY id", (today.isoformat(),)
        )
        return [str(r[0]) for r in rows]

    def delete(self, subject_id: str) -> bool:
        """Delete one subject with its keys and hits; True if it existed."""
        with self._db.transaction() as conn:
            cur = conn.execute("DELETE FROM subjects WHERE id = ?", (subject_id,))
            return cur.rowcount > 0

    def purge_expired(self, today: date) -> int:
        """Delete every subject whose retention date is before ``today`` (with keys and hits).

        Returns the number of subjects deleted. Call :meth:`Database.checkpoint` afterwards to
        truncate the WAL so the deleted data leaves the disk as well.
        """
        with self._db.transaction() as conn:
            cur = conn.execute("DELETE FROM subjects WHERE retain_until < ?", (today.isoformat(),))
            return cur.rowcount


class KeySelection:
    """A query's match keys, selected inside SQLite rather than held in Python objects, so a
    query over 10^6 subjects costs one list of distinct keys in memory (not a dict of refs).

    Made by :meth:`SubjectRepo.select_keys` on this thread's connection, as TEMP tables that
    only this connection sees; :meth:`close` (or leaving the ``with``) drops them. Use it from
    the thread that made it.
    """

    _counter = iter(range(1, 1 << 62))

    def __init__(
        self,
        db: Database,
        key_types: Collection[int],
        *,
        subject_ids: Collection[str] | None,
        exclude_source: str | None,
    ) -> None:
        self._conn = db.connection()
        n = next(KeySelection._counter)
        self._subjects = f"temp.sel_subjects_{n}"
        self._hits = f"temp.sel_hits_{n}"
        types = sorted(set(key_types))
        conn = self._conn
        conn.execute(f"CREATE TABLE {self._subjects} (id TEXT PRIMARY KEY) WITHOUT ROWID")
        conn.execute(f"CREATE TABLE {self._hits} (key BLOB PRIMARY KEY, token BLOB NOT NULL)")
        where = [f"k.key_type IN ({','.join('?' * len(types))})" if types else "0"]
        self._params: list[object] = list(types)
        if subject_ids is not None:
            conn.executemany(
                f"INSERT OR IGNORE INTO {self._subjects} (id) VALUES (?)",
                ((s,) for s in subject_ids),
            )
            where.append(f"k.subject_id IN (SELECT id FROM {self._subjects})")
        if exclude_source is not None:
            where.append("k.subject_id NOT IN (SELECT id FROM subjects WHERE source = ?)")
            self._params.append(exclude_source)
        self._where = " AND ".join(where)
        self._types: list[int] | None = None

    def keys(self) -> list[bytes]:
        """The distinct selected keys, in byte order (one scan; it also finds the types)."""
        cur = self._conn.cursor()
        cur.row_factory = None
        rows = cur.execute(f"SELECT k.key, k.key_type FROM match_keys k WHERE {self._where}",
                           self._params).fetchall()  # fmt: skip
        self._types = sorted({t for _, t in rows})
        keys = sorted({k for k, _ in rows})
        return keys

    def key_types(self) -> list[int]:
        """The distinct key types of the selected keys."""
        if self._types is None:
            self.keys()
        assert self._types is not None
        return list(self._types)

    def group_hits(
        self, matched: Iterable[tuple[bytes, bytes]]
    ) -> Iterator[tuple[str, tuple[int, ...], int, bytes]]:
        """``matched``: (key, token) of each selected key that hit. Yields one tuple per subject,
        in subject-id order: (subject id, the key types matched, the strongest strength, the
        token of its strongest key; ties go to the lowest key type, then the lowest key)."""
        self._conn.execute(f"DELETE FROM {self._hits}")
        self._conn.executemany(
            f"INSERT OR IGNORE INTO {self._hits} (key, token) VALUES (?, ?)", matched
        )
        cur = self._conn.cursor()
        cur.row_factory = None
        rows = cur.execute(
            f"SELECT k.subject_id, k.key_type, k.strength, h.token FROM {self._hits} h "
            f"JOIN match_keys k ON k.key = h.key WHERE {self._where} "
            "ORDER BY k.subject_id, k.strength DESC, k.key_type, k.key",
            self._params,
        )
        current: str | None = None
        types: set[int] = set()
        best, token = -1, b""
        for subject_id, key_type, strength, tok in rows:
            if subject_id != current:
                if current is not None:
                    yield current, tuple(sorted(types)), best, token
                current, types, best, token = str(subject_id), set(), int(strength), bytes(tok)
            types.add(int(key_type))
        if current is not None:
            yield current, tuple(sorted(types)), best, token

    def close(self) -> None:
        for table in (self._subjects, self._hits):
            self._conn.execute(f"DROP TABLE IF EXISTS {table}")

    def __enter__(self) -> KeySelection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
