"""Users of a node (analysts, supervisors, auditors, admins) and their bearer tokens.

Owns ``users`` and the token format. A token is shown once, when issued, and never stored:

    fmu_<token id: 16 hex digits>_<secret: 43 base64url characters (32 random bytes)>

The database keeps the token id (not secret: it selects the row) and SHA-256 of the secret.
:meth:`UserRepo.authenticate` looks the row up by id and compares hashes in constant time, so
checking a token never scans the table and never leaks, by timing, how much of it matched.
A 256-bit random secret needs no slow hash: there is nothing to brute-force.

Never logs a token or a token hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from fiumatch.store.db import Database
from fiumatch.store.errors import RecordNotFoundError

__all__ = [
    "ROLES",
    "IssuedToken",
    "Role",
    "User",
    "UserRepo",
    "hash_token_secret",
    "issue_token",
    "parse_token",
]

Role = Literal["analyst", "supervisor", "auditor", "admin"]
ROLES: tuple[Role, ...] = ("analyst", "supervisor", "auditor", "admin")

TOKEN_PREFIX = "fmu"
_TOKEN_RE = re.compile(r"^fmu_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True, kw_only=True)
class IssuedToken:
    """A fresh token: give ``token`` to the user once; store ``token_id`` and ``token_hash``."""

    token: str = field(repr=False)
    token_id: str
    token_hash: bytes = field(repr=False)


def hash_token_secret(secret: bytes) -> bytes:
    return hashlib.sha256(b"fiumatch-user-token-v1\x00" + secret).digest()


def issue_token(rng: Callable[[int], bytes]) -> IssuedToken:
    """Make a new token from 8 + 32 random bytes drawn from ``rng``."""
    token_id = rng(8).hex()
    secret = rng(32)
    if len(token_id) != 16 or len(secret) != 32:
        raise ValueError("rng returned the wrong number of bytes")
    encoded = base64.urlsafe_b64encode(secret).rstrip(b"=").decode("ascii")
    return IssuedToken(
        token=f"{TOKEN_PREFIX}_{token_id}_{encoded}",
        token_id=token_id,
        token_hash=hash_token_secret(secret),
    )


def parse_token(token: str) -> tuple[str, bytes] | None:
    """Split a token into (token id, secret); None if it is not a well-formed token."""
    match = _TOKEN_RE.fullmatch(token)
    if match is None:
        return None
    try:
        secret = base64.urlsafe_b64decode(match.group(2) + "=")
    except ValueError:
        return None
    if len(secret) != 32:
        return None
    return match.group(1), secret


@dataclass(frozen=True, kw_only=True)
class User:
    name: str
    role: Role
    token_id: str
    token_hash: bytes = field(repr=False)
    created_at: int
    disabled_at: int | None = None

    @property
    def active(self) -> bool:
        return self.disabled_at is None


def _from_row(row: Any) -> User:
    return User(
        name=row["name"],
        role=row["role"],
        token_id=row["token_id"],
        token_hash=bytes(row["token_hash"]),
        created_at=row["created_at"],
        disabled_at=row["disabled_at"],
    )


class UserRepo:
    """Reads and writes ``users``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, user: User) -> None:
        u = user
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO users (name, role, token_id, token_hash, created_at, disabled_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (u.name, u.role, u.token_id, u.token_hash, u.created_at, u.disabled_at),
            )

    def get(self, name: str) -> User | None:
        row = (
            self._db.connection().execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()
        )
        return None if row is None else _from_row(row)

    def require(self, name: str) -> User:
        found = self.get(name)
        if found is None:
            raise RecordNotFoundError("no such user")
        return found

    def list_all(self) -> list[User]:
        rows = self._db.connection().execute("SELECT * FROM users ORDER BY name")
        return [_from_row(r) for r in rows]

    def set_role(self, name: str, role: Role) -> None:
        self._update(name, "role = ?", (role,))

    def rotate_token(self, name: str, token: IssuedToken) -> None:
        """Replace the user's token (the old one stops working at once)."""
        self._update(name, "token_id = ?, token_hash = ?", (token.token_id, token.token_hash))

    def disable(self, name: str, *, now: int) -> None:
        self._update(name, "disabled_at = COALESCE(disabled_at, ?)", (now,))

    def enable(self, name: str) -> None:
        self._update(name, "disabled_at = NULL", ())

    def _update(self, name: str, sql: str, params: tuple[object, ...]) -> None:
        with self._db.transaction() as conn:
            cur = conn.execute(f"UPDATE users SET {sql} WHERE name = ?", (*params, name))
            if cur.rowcount == 0:
                raise RecordNotFoundError("no such user")

    def authenticate(self, token: str) -> User | None:
        """The active user holding ``token``, or None (malformed, unknown, wrong, disabled)."""
        parsed = parse_token(token)
        if parsed is None:
            return None
        token_id, secret = parsed
        row = (
            self._db.connection()
            .execute("SELECT * FROM users WHERE token_id = ?", (token_id,))
            .fetchone()
        )
        if row is None:
            return None
        user = _from_row(row)
        if not hmac.compare_digest(hash_token_secret(secret), user.token_hash):
            return None
        return user if user.active else None
