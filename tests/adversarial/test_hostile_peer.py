"""A hostile peer against a running node: every case gets its own 4xx with a stable error code
and a reason, is audited, and leaves the stored data (subjects, keys, peers, agreements,
budgets, epochs, queries, hits, disclosures, users) byte for byte as it was.

Each case is (prepare, attack, status, code): ``prepare`` does the legitimate part (open a
session, send a good HELLO) and returns what the attack needs; the data digest and the audit
size are taken between the two, so only the attack itself is judged.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fiumatch.protocol import group
from fiumatch.protocol.wire import Mode, MsgType, StreamEnd, Suite

from .conftest import Victim
from .hostile import (
    audit_since,
    audit_size,
    data_digest,
    frame,
    hello,
    query_chunk,
    query_end,
)

pytestmark = pytest.mark.slow

Ctx = dict[str, Any]


def element() -> bytes:
    return group.scalar_mult_base(group.random_scalar(os.urandom))


IDENTITY = bytes(32)
NON_CANONICAL = b"\xff" * 31 + b"\x7f"  # a field element >= p
NEGATIVE = b"\x01" + bytes(31)  # odd s: not a canonical ristretto255 encoding


def opened(v: Victim, **over: Any) -> Ctx:
    sid, r = v.hostile.open(**over)
    assert r.status_code == 200, r.text
    return {"sid": sid, "epoch": r.json()["epoch"]}


def after_hello(v: Victim, count: int = 4, **over: Any) -> Ctx:
    ctx = opened(v, set_size=4, **over)
    mode = Mode.MUTUAL if over.get("mode") == "mutual" else Mode.FILTER
    suite = (
        Suite.OPRF_RISTRETTO255_SHA512 if mode is Mode.MUTUAL else Suite.VOPRF_RISTRETTO255_SHA512
    )
    r = v.hostile.frames(
        ctx["sid"], ctx["epoch"], hello(ctx["sid"], ctx["epoch"], count, mode=mode, suite=suite)
    )
    assert r.status_code == 200, r.text
    return ctx


def send(v: Victim, ctx: Ctx, data: bytes) -> httpx.Response:
    return v.hostile.frames(ctx["sid"], ctx["epoch"], data)


def _bad_prefix(ctx: Ctx) -> bytes:
    good = hello(ctx["sid"], ctx["epoch"])
    return struct.pack(">I", 0xFFFFFFF0) + good[4:]


def _trailing(ctx: Ctx) -> bytes:
    good = hello(ctx["sid"], ctx["epoch"])
    return struct.pack(">I", len(good) - 4 + 1) + good[4:] + b"\x00"


def _bad_magic(ctx: Ctx) -> bytes:
    good = hello(ctx["sid"], ctx["epoch"])
    return good[:4] + b"XX" + good[6:]


def _short_chunk(ctx: Ctx) -> bytes:
    good = query_chunk(ctx["sid"], ctx["epoch"], [element(), element()])
    body = good[4:-32]  # count says 2, one element follows
    return struct.pack(">I", len(body)) + body


def _replayed(v: Victim) -> Ctx:
    path = "/peer/v1/disclosures/d-0000000000000000"
    headers = v.hostile.signed_headers("GET", path, b"")
    first = v.hostile.send("GET", path, b"", headers)
    assert first.status_code == 404
    return {"path": path, "headers": headers}


def _budget_spent(v: Victim) -> Ctx:
    _, r = v.broke.open(set_size=8)
    assert r.status_code == 200, r.text
    return {}


def _others_session(v: Victim) -> Ctx:
    sid, r = v.other.open()
    assert r.status_code == 200, r.text
    return {"sid": sid, "epoch": r.json()["epoch"]}


def _disclosure(v: Victim, **over: Any) -> httpx.Response:
    payload = {
        "request_id": "d-" + os.urandom(8).hex(),
        "hit_token": os.urandom(64).hex(),
        "epoch": over.pop("epoch"),
        "purpose": "money_laundering",
        "case_ref": "case-1",
    }
    payload.update(over)
    return v.hostile.call("POST", "/peer/v1/disclosures", json.dumps(payload).encode())


@dataclass(frozen=True)
class Case:
    name: str
    prepare: Callable[[Victim], Ctx]
    attack: Callable[[Victim, Ctx], httpx.Response]
    status: int
    code: str


def _tamper(v: Victim, ctx: Ctx) -> httpx.Response:
    body = json.dumps({"session_id": os.urandom(16).hex()}).encode()
    headers = v.hostile.signed_headers("POST", "/peer/v1/sessions", body)
    return v.hostile.send("POST", "/peer/v1/sessions", body + b" ", headers)


def _forged(v: Victim, ctx: Ctx) -> httpx.Response:
    return v.hostile.call(
        "GET", "/peer/v1/disclosures/d-0000000000000001", key=Ed25519PrivateKey.generate()
    )


def _unknown(v: Victim, ctx: Ctx) -> httpx.Response:
    return v.hostile.call(
        "GET",
        "/peer/v1/disclosures/d-0000000000000001",
        key=Ed25519PrivateKey.generate(),
        keyid="FIU-Q",
    )


CASES = [
    # -- elements and lengths
    Case(
        "identity point",
        after_hello,
        lambda v, c: send(v, c, query_chunk(c["sid"], c["epoch"], [IDENTITY])),
        400,
        "invalid_element",
    ),
    Case(
        "non-canonical point",
        after_hello,
        lambda v, c: send(v, c, query_chunk(c["sid"], c["epoch"], [NON_CANONICAL])),
        400,
        "invalid_element",
    ),
    Case(
        "negative point",
        after_hello,
        lambda v, c: send(v, c, query_chunk(c["sid"], c["epoch"], [NEGATIVE])),
        400,
        "invalid_element",
    ),
    Case(
        "chunk shorter than its count",
        after_hello,
        lambda v, c: send(v, c, _short_chunk(c)),
        400,
        "truncated_message",
    ),
    Case(
        "frame cut short",
        opened,
        lambda v, c: send(v, c, hello(c["sid"], c["epoch"])[:-5]),
        400,
        "truncated_message",
    ),
    Case(
        "trailing byte in a frame",
        opened,
        lambda v, c: send(v, c, _trailing(c)),
        400,
        "trailing_data",
    ),
    Case(
        "length prefix above max_frame_bytes",
        opened,
        lambda v, c: send(v, c, _bad_prefix(c)),
        413,
        "oversized_message",
    ),
    Case("unknown magic", opened, lambda v, c: send(v, c, _bad_magic(c)), 400, "unknown_version"),
    # -- sizes, limits, budgets
    Case(
        "HELLO above the opened set size",
        opened,
        lambda v, c: send(v, c, hello(c["sid"], c["epoch"], 5)),
        413,
        "oversized_message",
    ),
    Case(
        "QUERY stream above the announced count",
        lambda v: after_hello(v, 1),
        lambda v, c: send(v, c, query_chunk(c["sid"], c["epoch"], [element(), element()])),
        413,
        "oversized_message",
    ),
    Case(
        "set over the agreement's limit",
        lambda v: {},
        lambda v, c: v.hostile.open(set_size=51)[1],
        403,
        "agreement_refused",
    ),
    Case(
        "budget exhausted",
        _budget_spent,
        lambda v, c: v.broke.open(set_size=8)[1],
        429,
        "budget_exhausted",
    ),
    # -- order and binding
    Case(
        "duplicated frame",
        after_hello,
        lambda v, c: send(v, c, hello(c["sid"], c["epoch"])),
        409,
        "replay",
    ),
    Case(
        "sequence skips ahead",
        after_hello,
        lambda v, c: send(v, c, query_chunk(c["sid"], c["epoch"], [element()], seq=5)),
        409,
        "out_of_order",
    ),
    Case(
        "QUERY_END before HELLO",
        opened,
        lambda v, c: send(v, c, query_end(c["sid"], c["epoch"], 0, seq=0)),
        409,
        "out_of_order",
    ),
    Case(
        "frame of another session",
        opened,
        lambda v, c: send(v, c, hello(os.urandom(16).hex(), c["epoch"])),
        409,
        "wrong_session",
    ),
    Case(
        "frame bound to another epoch",
        opened,
        lambda v, c: send(v, c, hello(c["sid"], c["epoch"] + 1)),
        409,
        "wrong_epoch",
    ),
    Case(
        "frame bound to another mode",
        opened,
        lambda v, c: send(v, c, hello(c["sid"], c["epoch"], mode=Mode.CARDINALITY)),
        409,
        "wrong_mode",
    ),
    Case(
        "frame bound to another suite",
        opened,
        lambda v, c: send(v, c, hello(c["sid"], c["epoch"], suite=Suite.OPRF_RISTRETTO255_SHA512)),
        409,
        "wrong_suite",
    ),
    Case(
        "signed epoch header of another epoch",
        opened,
        lambda v, c: v.hostile.frames(c["sid"], c["epoch"] + 7, hello(c["sid"], c["epoch"])),
        409,
        "epoch_retired",
    ),
    Case(
        "frames for a session never opened",
        lambda v: {"sid": os.urandom(16).hex(), "epoch": 1},
        lambda v, c: send(v, c, hello(c["sid"], c["epoch"])),
        404,
        "not_found",
    ),
    Case(
        "frames into another peer's session",
        _others_session,
        lambda v, c: send(v, c, hello(c["sid"], c["epoch"])),
        404,
        "not_found",
    ),
    Case(
        "session id already taken",
        opened,
        lambda v, c: v.hostile.open(c["sid"])[1],
        409,
        "conflict",
    ),
    # -- signatures and keys
    Case("unknown key", lambda v: {}, _unknown, 401, "unknown_key"),
    Case("forged signature", lambda v: {}, _forged, 401, "bad_signature"),
    Case(
        "replayed request",
        _replayed,
        lambda v, c: v.hostile.send("GET", c["path"], b"", c["headers"]),
        401,
        "replayed_nonce",
    ),
    Case(
        "expired signature",
        lambda v: {},
        lambda v, c: v.hostile.call(
            "GET", "/peer/v1/disclosures/d-0000000000000002", now=1_000_000_000
        ),
        401,
        "stale_signature",
    ),
    Case(
        "valid key, addressed to another node",
        lambda v: {},
        lambda v, c: v.hostile.call(
            "GET", "/peer/v1/disclosures/d-0000000000000003", recipient="FIU-W"
        ),
        401,
        "bad_signature",
    ),
    Case("body changed after signing", lambda v: {}, _tamper, 401, "digest_mismatch"),
    Case(
        "unsigned request",
        lambda v: {},
        lambda v, c: v.hostile.send(
            "POST", "/peer/v1/sessions", b"{}", {"content-type": "application/json"}
        ),
        401,
        "bad_signature",
    ),
    Case(
        "session header differs from the body",
        lambda v: {},
        lambda v, c: v.hostile.open(header_session=os.urandom(16).hex())[1],
        401,
        "missing_component",
    ),
    Case(
        "body over max_body_bytes",
        lambda v: {},
        lambda v, c: v.hostile.call("POST", "/peer/v1/sessions", b" " * (256 * 1024 + 1)),
        413,
        "body_too_large",
    ),
    # -- disclosures
    Case(
        "disclosure for a hit it never had",
        opened,
        lambda v, c: _disclosure(v, epoch=c["epoch"]),
        404,
        "not_found",
    ),
    Case(
        "disclosure for an epoch that never was",
        lambda v: {},
        lambda v, c: _disclosure(v, epoch=999),
        409,
        "epoch_retired",
    ),
    Case(
        "disclosure with a malformed request id",
        lambda v: {},
        lambda v, c: _disclosure(v, epoch=1, request_id="../x"),
        409,
        "conflict",
    ),
    Case(
        "disclosure that is not JSON",
        lambda v: {},
        lambda v, c: v.hostile.call("POST", "/peer/v1/disclosures", b"\xff{"),
        400,
        "bad_request",
    ),
    Case(
        "status of a disclosure it never made",
        lambda v: {},
        lambda v, c: v.hostile.call("GET", "/peer/v1/disclosures/d-00000000000000ff"),
        404,
        "not_found",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_case_is_refused_audited_and_changes_nothing(victim: Victim, case: Case) -> None:
    ctx = case.prepare(victim)
    size = audit_size(victim.node)
    before = data_digest(victim.db)
    r = case.attack(victim, ctx)
    assert (r.status_code, r.json().get("error")) == (case.status, case.code), r.text
    assert r.json().get("reason"), "every refusal says why"
    if case.status == 429:
        assert int(r.headers["retry-after"]) > 0
    assert data_digest(victim.db) == before
    refusals = [e for e in audit_since(victim.node, size) if e["event"] == "refusal"]
    assert refusals, f"no refusal audited for {case.name}"
    assert victim.node.process.proc is not None and victim.node.process.proc.poll() is None


def test_the_other_peers_session_survives_the_intrusion(victim: Victim) -> None:
    ctx = _others_session(victim)
    assert send(victim, ctx, hello(ctx["sid"], ctx["epoch"])).status_code == 404
    ok = victim.other.frames(ctx["sid"], ctx["epoch"], hello(ctx["sid"], ctx["epoch"]))
    assert ok.status_code == 200 and ok.headers["content-type"] == "application/octet-stream"


def test_a_hello_naming_another_peers_filter_is_refused(victim: Victim) -> None:
    """Filters are per peer (the epoch key binds the querier's id): naming W's filter id in a
    HELLO is refused (403 ``filter_not_yours``), audited, and changes no stored data."""
    w = _others_session(victim)
    w_reply = victim.other.frames(w["sid"], w["epoch"], hello(w["sid"], w["epoch"]))
    assert w_reply.status_code == 200
    w_filter_id = w_reply.content[4 + 35 + 8 : 4 + 35 + 8 + 16]
    h = opened(victim)
    size = audit_size(victim.node)
    before = data_digest(victim.db)
    r = send(victim, h, hello(h["sid"], h["epoch"], filter_id=w_filter_id, gen=1))
    assert (r.status_code, r.json().get("error")) == (403, "filter_not_yours"), r.text
    assert r.json().get("reason"), "every refusal says why"
    assert w_filter_id.hex() not in r.text
    assert data_digest(victim.db) == before
    refusals = [e for e in audit_since(victim.node, size) if e["event"] == "refusal"]
    assert refusals, "no refusal audited for a foreign filter id"


def test_a_hello_naming_an_unknown_filter_gets_its_own_full_filter(victim: Victim) -> None:
    """An id the owner does not know (stale after a rotation) is the refresh path: answered
    with the asker's own full filter, not refused."""
    h = opened(victim)
    before = data_digest(victim.db)
    unknown = os.urandom(16)
    r = send(victim, h, hello(h["sid"], h["epoch"], filter_id=unknown, gen=1))
    assert r.status_code == 200, r.text
    assert r.content[4 + 35 + 8 : 4 + 35 + 8 + 16] not in (unknown, bytes(16))
    assert data_digest(victim.db) == before


def test_duplicated_elements_are_evaluated_as_sent_and_charged(victim: Victim) -> None:
    """Blinded duplicates are indistinguishable from distinct keys to the owner: they are
    evaluated (one evaluation each, within the announced count) and nothing is stored."""
    ctx = after_hello(victim, 2)
    e = element()
    r = send(victim, ctx, query_chunk(ctx["sid"], ctx["epoch"], [e, e]))
    assert r.status_code == 200
    out = r.content
    assert out[4 + 3] == MsgType.EVAL_CHUNK
    end = send(
        victim, ctx, frame(ctx["sid"], ctx["epoch"], MsgType.QUERY_END, StreamEnd(total=2), seq=2)
    )
    assert end.status_code == 200
