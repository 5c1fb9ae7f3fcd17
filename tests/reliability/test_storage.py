"""A full disk and a read-only database: every write is refused with 503 and a typed code
(``storage_full``, ``store_read_only``), nothing is half written (``PRAGMA integrity_check``,
the audit log still verifies, every acknowledged write is there), reads go on being served, and
once the space (or write access) is back the node writes again.

Disk full is SQLite's own limit: ``PRAGMA max_page_count`` at the database's current size on
every connection of an in-process node (the same error path as ENOSPC: SQLITE_FULL). Read-only
is every connection reopened with ``mode=ro``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fiumatch.auditlog import decode_bundle, verify
from fiumatch.demo.run import DemoNode, make_node
from fiumatch.node.app import build_service, create_app
from fiumatch.node.audit import log_verifier
from fiumatch.node.service import NodeService
from fiumatch.store import Database

from .conftest import integrity

MAX_WRITES = 300


class Client:
    """Synchronous calls into the app in process (httpx's ASGI transport on its own loop)."""

    def __init__(self, service: NodeService) -> None:
        self._loop = asyncio.new_event_loop()
        transport = httpx.ASGITransport(app=create_app(service, scheduler=False))
        self._http = httpx.AsyncClient(transport=transport, base_url="https://node.test")

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self._loop.run_until_complete(self._http.get(path, **kw))

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self._loop.run_until_complete(self._http.post(path, **kw))

    def close(self) -> None:
        self._loop.run_until_complete(self._http.aclose())
        self._loop.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[DemoNode, NodeService, Client]]:
    node = make_node(tmp_path, "FIU-S", scrypt_log2_n=10)
    service = build_service(node.root)
    client = Client(service)
    try:
        yield node, service, client
    finally:
        client.close()
        service.close()
        service.store.close()


def _auth(node: DemoNode, role: str = "admin") -> dict[str, str]:
    return {"authorization": f"Bearer {getattr(node, role)}"}


def _reconnect(db: Database, configure: Any) -> None:
    """Close every connection of ``db``; new ones (one per thread) go through ``configure``."""
    original = type(db)._connect

    def connect(self: Database = db) -> sqlite3.Connection:
        return configure(original(self)) if configure else original(self)

    db.close()
    db._closed = False
    db._connect = connect  # type: ignore[method-assign]


def _audit_verifies(node: DemoNode, client: Client) -> list[str]:
    r = client.get("/audit/v1/export", headers=_auth(node, "auditor"))
    assert r.status_code == 200
    key = log_verifier(node.node_id, node.dir.keys().public_key_raw)
    report = verify(r.content, key)
    targets = [e.target or "" for e in decode_bundle(r.content).entries]
    assert report.size == len(targets)
    return targets


def _add_users(node: DemoNode, client: Client, prefix: str) -> tuple[list[str], Any]:
    acknowledged: list[str] = []
    for i in range(MAX_WRITES):
        name = f"{prefix}-{i}"
        r = client.post(
            "/api/v1/users", json={"name": name, "role": "analyst"}, headers=_auth(node)
        )
        if r.status_code != 200:
            return acknowledged, r
        acknowledged.append(name)
    raise AssertionError(f"{MAX_WRITES} writes went through")


def test_disk_full_is_a_clear_503_and_corrupts_nothing(
    served: tuple[DemoNode, NodeService, Client],
) -> None:
    node, service, client = served
    db = service.store.db
    pages = int(db.connection().execute("PRAGMA page_count").fetchone()[0])

    def full(conn: sqlite3.Connection) -> sqlite3.Connection:
        conn.execute(f"PRAGMA max_page_count = {pages + 2}")
        return conn

    _reconnect(db, full)
    acknowledged, refused = _add_users(node, client, "full")
    assert refused.status_code == 503
    assert refused.json()["error"] == "storage_full"
    assert "full" in refused.json()["reason"]

    # Reads go on.
    assert client.get("/healthz").status_code == 200
    assert client.get("/api/v1/peers", headers=_auth(node)).status_code == 200
    targets = _audit_verifies(node, client)
    assert set(acknowledged) <= set(targets)
    assert integrity(db.path) == ["ok"]
    names = {r[0] for r in db.connection().execute("SELECT name FROM users")}
    assert set(acknowledged) <= names

    _reconnect(db, None)  # space again: writes go through and the log goes on verifying
    r = client.post("/api/v1/users", json={"name": "after", "role": "analyst"}, headers=_auth(node))
    assert r.status_code == 200
    assert _audit_verifies(node, client)[-1] == "after"
    assert integrity(db.path) == ["ok"]


def test_read_only_database_is_a_clear_503_and_reads_go_on(
    served: tuple[DemoNode, NodeService, Client],
) -> None:
    node, service, client = served
    db = service.store.db
    keep = sqlite3.connect(db.path)  # keeps the WAL index alive for read-only connections
    try:

        def read_only(conn: sqlite3.Connection) -> sqlite3.Connection:
            conn.close()
            ro = sqlite3.connect(
                f"file:{db.path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
            )
            ro.row_factory = sqlite3.Row
            ro.execute("PRAGMA busy_timeout = 5000")
            return ro

        before = _audit_verifies(node, client)
        _reconnect(db, read_only)
        r = client.post(
            "/api/v1/users", json={"name": "ro", "role": "analyst"}, headers=_auth(node)
        )
        assert r.status_code == 503
        assert r.json()["error"] == "store_read_only"
        assert client.get("/api/v1/peers", headers=_auth(node)).status_code == 200
        assert client.get("/api/v1/queries", headers=_auth(node, "analyst")).status_code == 200
        assert _audit_verifies(node, client) == before  # nothing was appended half way
        assert integrity(db.path) == ["ok"]

        _reconnect(db, None)
        r = client.post(
            "/api/v1/users", json={"name": "rw", "role": "analyst"}, headers=_auth(node)
        )
        assert r.status_code == 200
        assert _audit_verifies(node, client)[-1] == "rw"
    finally:
        keep.close()
