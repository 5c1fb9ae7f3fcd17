"""The HTTP-signature replay cache, persisted so a restart does not reopen the replay window.

Owns ``nonces``. :class:`SqliteNonceCache` has the same shape as
``fiumatch.node.httpsig.NonceCache`` (a structural protocol, so this module does not import the
node). Nonces are scoped per signing key id and kept until their signature's acceptance window
has passed; expired rows are pruned on the way.
"""

from __future__ import annotations

from fiumatch.store.db import Database

__all__ = ["SqliteNonceCache"]


class SqliteNonceCache:
    """A persistent nonce cache backed by the ``nonces`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def check_and_store(self, keyid: str, nonce: str, *, expires_at: int, now: int) -> bool:
        """Record ``nonce`` for ``keyid`` until ``expires_at``; False if it is already there
        (a replay). The check and the insert are one atomic statement."""
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM nonces WHERE expires_at < ?", (now,))
            cur = conn.execute(
                "INSERT INTO nonces (keyid, nonce, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (keyid, nonce) DO NOTHING",
                (keyid, nonce, expires_at),
            )
            return cur.rowcount == 1

    def purge(self, *, now: int) -> int:
        """Delete expired nonces; returns how many."""
        with self._db.transaction() as conn:
            return conn.execute("DELETE FROM nonces WHERE expires_at < ?", (now,)).rowcount

    def __len__(self) -> int:
        return int(self._db.connection().execute("SELECT COUNT(*) FROM nonces").fetchone()[0])
