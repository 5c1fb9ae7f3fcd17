"""A scripted hostile peer: signs whatever it is told to (with its own valid key, another key,
a stale clock, for another recipient) and sends it raw, so the victim's answer is seen as is.

Also the two things every case checks after the answer: a digest of the victim's stored data
(everything but sessions, nonces and the audit log itself, which a refusal may rightly touch)
and the audit entries written since a given size.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fiumatch.client.audit import AuditClient
from fiumatch.demo.run import DemoNode
from fiumatch.node import httpsig
from fiumatch.protocol.wire import (
    NO_FILTER_ID,
    ElementChunk,
    Header,
    Hello,
    Mode,
    MsgType,
    StreamEnd,
    Suite,
    encode_frame,
)

# Tables a refused request may rightly touch: the session records, the nonces it used, the
# audit log that records it. Every other table must be left byte for byte as it was.
MUTABLE = ("sessions", "nonces", "schema_version")


def data_digest(db: Path) -> str:
    """SHA-256 over every row of every table but ``MUTABLE`` and ``audit_*`` (read-only
    connection, rows sorted: some tables are WITHOUT ROWID)."""
    h = hashlib.sha256()
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        names = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        tables = [n for (n,) in names if n not in MUTABLE and not n.startswith("audit_")]
        assert "subjects" in tables and "budget_usage" in tables
        for table in tables:
            h.update(table.encode())
            rows = sorted(repr(r) for r in conn.execute(f"SELECT * FROM {table}"))
            for row in rows:
                h.update(row.encode())
    finally:
        conn.close()
    return h.hexdigest()


def audit_size(node: DemoNode) -> int:
    with node.client("auditor") as api:
        return int(AuditClient.over(api).status()["size"])


def audit_since(node: DemoNode, start: int) -> list[dict[str, Any]]:
    with node.client("auditor") as api:
        entries: list[dict[str, Any]] = AuditClient.over(api).entries(start)["entries"]
    return entries


@dataclass
class HostilePeer:
    node_id: str
    key: Ed25519PrivateKey
    base: str
    authority: str
    http: httpx.Client = field(default_factory=lambda: httpx.Client(verify=False, timeout=20))

    def signed_headers(
        self,
        method: str,
        path: str,
        body: bytes,
        *,
        content_type: str = "application/json",
        session: str | None = None,
        epoch: int | None = None,
        recipient: str = "FIU-V",
        key: Ed25519PrivateKey | None = None,
        keyid: str | None = None,
        now: int | None = None,
    ) -> dict[str, str]:
        headers = {"content-type": content_type, "fiumatch-peer": recipient}
        if session is not None:
            headers["fiumatch-session"] = session
        if epoch is not None:
            headers["fiumatch-epoch"] = str(epoch)
        headers.update(
            httpsig.sign_request(
                method=method,
                target=path,
                authority=self.authority,
                headers=headers,
                body=body,
                key=key or self.key,
                keyid=keyid or self.node_id,
                now=int(time.time()) if now is None else now,
                rng=os.urandom,
            )
        )
        return headers

    def send(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return self.http.request(method, self.base + path, content=body, headers=headers)

    def call(self, method: str, path: str, body: bytes = b"", **kw: Any) -> httpx.Response:
        return self.send(method, path, body, self.signed_headers(method, path, body, **kw))

    def open(self, sid: str | None = None, **over: Any) -> tuple[str, httpx.Response]:
        sid = sid or os.urandom(16).hex()
        meta = {
            "session_id": sid,
            "mode": "filter",
            "purpose": "money_laundering",
            "id_types": ["passport", "email"],
            "set_size": 4,
        }
        header_session = over.pop("header_session", sid)
        meta.update(over)
        body = json.dumps(meta).encode()
        return sid, self.call("POST", "/peer/v1/sessions", body, session=header_session)

    def frames(self, sid: str, epoch: int, body: bytes, **kw: Any) -> httpx.Response:
        path = f"/peer/v1/sessions/{sid}/frames"
        kw.setdefault("session", sid)
        kw.setdefault("epoch", epoch)
        return self.call("POST", path, body, content_type="application/octet-stream", **kw)


def frame(
    sid: str,
    epoch: int,
    msg_type: MsgType,
    body: Hello | ElementChunk | StreamEnd,
    *,
    seq: int = 0,
    mode: Mode = Mode.FILTER,
    suite: Suite = Suite.VOPRF_RISTRETTO255_SHA512,
) -> bytes:
    header = Header(
        msg_type=msg_type,
        mode=mode,
        suite=suite,
        epoch=epoch,
        session_id=bytes.fromhex(sid),
        seq=seq,
    )
    return encode_frame(header, body)


def hello(sid: str, epoch: int, count: int = 4, **kw: Any) -> bytes:
    filter_id = kw.pop("filter_id", NO_FILTER_ID)
    body = Hello(element_count=count, filter_id=filter_id, filter_generation=kw.pop("gen", 0))
    return frame(sid, epoch, MsgType.HELLO, body, **kw)


def query_chunk(sid: str, epoch: int, elements: list[bytes], *, seq: int = 1, **kw: Any) -> bytes:
    chunk = ElementChunk(count=len(elements), elements=b"".join(elements))
    return frame(sid, epoch, MsgType.QUERY_CHUNK, chunk, seq=seq, **kw)


def query_end(sid: str, epoch: int, total: int, *, seq: int = 2, **kw: Any) -> bytes:
    return frame(sid, epoch, MsgType.QUERY_END, StreamEnd(total=total), seq=seq, **kw)
