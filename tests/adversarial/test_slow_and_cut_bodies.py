"""Bodies that trickle in or stop halfway: the node keeps serving everyone else meanwhile, drops
the connection when the peer goes away (audited as a refusal, no traceback: it used to be an
unhandled ClientDisconnect, a 500) and stays up; nothing is stored."""

from __future__ import annotations

import socket
import ssl
import time

import pytest

from .conftest import Victim
from .hostile import audit_since, audit_size, data_digest

pytestmark = pytest.mark.slow


def _open_tls(v: Victim) -> ssl.SSLSocket:
    host, port = v.hostile.authority.rsplit(":", 1)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection((host, int(port)), timeout=5)
    return ctx.wrap_socket(raw, server_hostname=host)


def _head(v: Victim, length: int) -> bytes:
    return (
        f"POST /peer/v1/sessions HTTP/1.1\r\nHost: {v.hostile.authority}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def _served_quickly(v: Victim) -> float:
    t = time.monotonic()
    r = v.hostile.call("GET", "/peer/v1/disclosures/d-00000000000000aa")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    return time.monotonic() - t


def test_slow_bodies_do_not_hold_up_other_peers(victim: Victim) -> None:
    before = data_digest(victim.db)
    slow = [_open_tls(victim) for _ in range(8)]
    try:
        for s in slow:
            s.sendall(_head(victim, 4096) + b'{"session_id": ')
        for _ in range(3):
            for s in slow:
                s.sendall(b" ")  # a trickle: one byte per peer per round
            assert _served_quickly(victim) < 2.0
    finally:
        for s in slow:
            s.close()
    assert _served_quickly(victim) < 2.0
    assert data_digest(victim.db) == before


def test_a_body_cut_short_is_dropped_without_a_trace(victim: Victim) -> None:
    log = victim.node.process.log
    mark = log.stat().st_size
    before = data_digest(victim.db)
    size = audit_size(victim.node)
    s = _open_tls(victim)
    s.sendall(_head(victim, 1000) + b"x" * 100)
    s.close()  # the peer goes away with 900 bytes still promised
    time.sleep(0.3)
    assert any(e["event"] == "refusal" for e in audit_since(victim.node, size))
    assert _served_quickly(victim) < 2.0
    assert victim.node.process.proc is not None and victim.node.process.proc.poll() is None
    assert data_digest(victim.db) == before
    tail = log.read_bytes()[mark:].decode(errors="replace")
    assert "Traceback" not in tail, tail
