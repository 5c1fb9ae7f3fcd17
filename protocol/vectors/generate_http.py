#!/usr/bin/env python3
"""Generate ``http.json``: the HTTP binding's vectors (SPEC.md §14): signed peer requests and
responses, byte for byte, and messages a verifier must refuse with a named error code.

Writes, next to this file, ``http.json`` with:

* ``keys``: two nodes' Ed25519 identity keys (``FIU-A`` asks, ``FIU-B`` answers), each derived
  from a SHA-256 counter DRBG (the ``Drbg`` of ``generate.py``), with the raw public key, the
  fingerprint (§14.2) and the ``/.well-known/fiumatch`` body;
* ``exchanges``: a request and its response for opening a session (JSON), driving it (wire
  frames, with audit headers covered by the signature) and polling a disclosure (GET, empty
  body). Each message gives the headers as the verifier sees them (lower-case names, combined
  values), the body in hex, the Content-Digest, the exact signature base, Signature-Input and
  Signature, and the ``verify`` inputs (time, addressee) under which it MUST verify;
* ``negative``: messages that MUST be refused, each with the verifier's inputs and the
  ``error`` code it MUST raise (a parent code such as ``auth_failed`` does not satisfy it).

Everything is deterministic: keys and nonces from the DRBG, Ed25519 signatures (RFC 8032) are
deterministic, times are fixed. The generator uses only ``fiumatch.node.httpsig``,
``fiumatch.node.keys``, ``fiumatch.protocol.wire`` and ``fiumatch.auditlog.checkpoint``; every
positive vector is verified and every negative one checked to fail as stated before the file
is written. ``tests/protocol/test_http_vectors.py`` replays them and checks this generator
reproduces the checked-in file.

Run from the repository root: ``.venv/bin/python protocol/vectors/generate_http.py``
(``--check`` exits 1 if ``http.json`` differs from what this code generates).
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fiumatch.auditlog.checkpoint import Checkpoint, NoteSigner, sign_checkpoint
from fiumatch.errors import FiumatchError
from fiumatch.node import httpsig
from fiumatch.node.keys import fingerprint, raw_public_key
from fiumatch.protocol.wire import Header, Hello, HelloAck, Mode, MsgType, Suite, encode_frame

HERE = Path(__file__).resolve().parent
OUT = HERE / "http.json"
Json = dict[str, Any]

NOW = 1767225600
"""2026-01-01T00:00:00Z: ``created`` of every request; a response is signed one second later."""
SKEW = 30
MAX_LIFETIME = 300
AUTHORITY = "fiu-b.example:8443"
SESSION_ID = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
EPOCH = 3
DISCLOSURE_ID = "d-00112233445566aa"


class Drbg:
    """SHA-256 counter DRBG, as in ``generate.py`` (SPEC.md §11): ``rng(n)`` is the first ``n``
    bytes of ``SHA-256(seed || I2OSP(c, 8)) || SHA-256(seed || I2OSP(c+1, 8)) || ...`` and the
    counter moves past every block used."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._counter = 0

    def __call__(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            out += hashlib.sha256(self._seed + self._counter.to_bytes(8, "big")).digest()
            self._counter += 1
        return bytes(out[:n])


@dataclass(frozen=True)
class Node:
    node_id: str
    seed: bytes
    key: Ed25519PrivateKey
    nonces: Callable[[int], bytes]

    @property
    def public_key(self) -> bytes:
        return raw_public_key(self.key.public_key())


def make_node(node_id: str) -> Node:
    """A node's identity key: the first 32 bytes of ``Drbg("fiumatch-http-v1/<id>/identity")``
    as the RFC 8032 seed; its nonces come from ``Drbg("fiumatch-http-v1/<id>/nonces")``."""
    seed = Drbg(f"fiumatch-http-v1/{node_id}/identity".encode())(32)
    return Node(
        node_id,
        seed,
        Ed25519PrivateKey.from_private_bytes(seed),
        Drbg(f"fiumatch-http-v1/{node_id}/nonces".encode()),
    )


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _parsed(headers: Mapping[str, str]) -> tuple[list[httpsig.Component], list[Any]]:
    """Covered components and parameters of the ``fiumatch`` signature of ``headers``."""
    member = httpsig.parse_dictionary(headers["signature-input"])[httpsig.REQUEST_LABEL]
    assert isinstance(member, httpsig.InnerList)
    components = [httpsig.Component(str(i.value), i.params) for i in member.items]
    return components, list(member.params)


def _message(req: httpsig.HttpRequest) -> Json:
    return {
        "method": req.method,
        "target": req.target,
        "authority": req.authority,
        "headers": dict(req.headers),
        "body_hex": req.body.hex(),
    }


def _response_message(resp: httpsig.HttpResponse) -> Json:
    return {"status": resp.status, "headers": dict(resp.headers), "body_hex": resp.body.hex()}


def _request_of(doc: Mapping[str, Any]) -> httpsig.HttpRequest:
    return httpsig.HttpRequest(
        method=doc["method"],
        target=doc["target"],
        authority=doc["authority"],
        headers=dict(doc["headers"]),
        body=bytes.fromhex(doc["body_hex"]),
    )


def _response_of(doc: Mapping[str, Any]) -> httpsig.HttpResponse:
    return httpsig.HttpResponse(
        status=doc["status"], headers=dict(doc["headers"]), body=bytes.fromhex(doc["body_hex"])
    )


def sign_request(
    sender: Node, method: str, target: str, headers: Mapping[str, str], body: bytes, now: int
) -> httpsig.HttpRequest:
    """A request signed exactly as ``fiumatch.client.peer`` signs it."""
    signed = dict(headers)
    signed.update(
        httpsig.sign_request(
            method=method,
            target=target,
            authority=AUTHORITY,
            headers=headers,
            body=body,
            key=sender.key,
            keyid=sender.node_id,
            now=now,
            rng=sender.nonces,
        )
    )
    return httpsig.HttpRequest(
        method=method, target=target, authority=AUTHORITY, headers=_lower(signed), body=body
    )


def sign_response(
    sender: Node,
    request: httpsig.HttpRequest,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    now: int,
) -> httpsig.HttpResponse:
    """A response signed exactly as ``fiumatch.node.routes_peer`` signs it."""
    signed = dict(headers)
    signed.update(
        httpsig.sign_response(
            status=status,
            headers=headers,
            body=body,
            request=request,
            key=sender.key,
            keyid=sender.node_id,
            now=now,
            rng=sender.nonces,
        )
    )
    return httpsig.HttpResponse(status=status, headers=_lower(signed), body=body)


def manual_request(
    sender: Node,
    base: httpsig.HttpRequest,
    *,
    components: Sequence[httpsig.Component],
    params: Sequence[tuple[str, Any]],
    headers: Mapping[str, str] | None = None,
) -> httpsig.HttpRequest:
    """A request with a valid Ed25519 signature over a chosen component list and parameters
    (for negative vectors whose only fault is the profile, not the cryptography)."""
    h = {k: v for k, v in base.headers.items() if k not in ("signature-input", "signature")}
    h.update(headers or {})
    msg = httpsig.HttpRequest(
        method=base.method, target=base.target, authority=base.authority, headers=h, body=base.body
    )
    signature = sender.key.sign(httpsig.signature_base(msg, components, params))
    label = httpsig.REQUEST_LABEL
    h["signature-input"] = f"{label}={httpsig.signature_params_value(components, params)}"
    h["signature"] = f"{label}=:{base64.b64encode(signature).decode('ascii')}:"
    return httpsig.HttpRequest(
        method=base.method, target=base.target, authority=base.authority, headers=h, body=base.body
    )


def _params(
    now: int, nonce: str, keyid: str, *, tag: str = httpsig.REQUEST_TAG, lifetime: int = 60
) -> list[tuple[str, Any]]:
    return [
        ("created", now),
        ("expires", now + lifetime),
        ("nonce", nonce),
        ("alg", httpsig.ALG),
        ("keyid", keyid),
        ("tag", tag),
    ]


def _nonce(node: Node) -> str:
    return base64.urlsafe_b64encode(node.nonces(16)).rstrip(b"=").decode("ascii")


# ---------------------------------------------------------------------------------------------
# Verification (what a receiving node does); the test replays through the same calls


def resolver(keys: Mapping[str, bytes]) -> httpsig.KeyResolver:
    from fiumatch.node.keys import public_key_from_raw

    return lambda kid: public_key_from_raw(keys[kid]) if kid in keys else None


def verify_request_doc(
    doc: Mapping[str, Any], keys: Mapping[str, bytes]
) -> httpsig.VerifiedSignature:
    """Verify a request vector under its ``verify`` inputs (raises the profile's errors)."""
    req = _request_of(doc["request"])
    v = doc["verify"]
    cache = httpsig.InMemoryNonceCache()
    for keyid, nonce in v.get("seen_nonces", []):
        cache.check_and_store(keyid, nonce, expires_at=v["now"] + MAX_LIFETIME, now=v["now"])
    return httpsig.verify_request(
        method=req.method,
        target=req.target,
        authority=req.authority,
        headers=req.headers,
        body=req.body,
        resolve_key=resolver(keys),
        nonces=cache,
        now=v["now"],
        policy=httpsig.VerifyPolicy(skew=SKEW, max_lifetime=MAX_LIFETIME),
        expected_peer=v["expected_peer"],
    )


def verify_response_doc(
    doc: Mapping[str, Any], keys: Mapping[str, bytes]
) -> httpsig.VerifiedSignature:
    """Verify a response vector against the request it answers."""
    resp = _response_of(doc["response"])
    v = doc["response_verify"] if "response_verify" in doc else doc["verify"]
    return httpsig.verify_response(
        status=resp.status,
        headers=resp.headers,
        body=resp.body,
        request=_request_of(doc["request"]),
        resolve_key=resolver(keys),
        now=v["now"],
        nonces=httpsig.InMemoryNonceCache(),
        policy=httpsig.VerifyPolicy(skew=SKEW, max_lifetime=MAX_LIFETIME),
        expected_peer=v["expected_peer"],
    )


def error_of(doc: Mapping[str, Any], keys: Mapping[str, bytes]) -> str:
    """The code a negative vector raises ('' if it verifies)."""
    try:
        if doc["kind"] == "request":
            verify_request_doc(doc, keys)
        else:
            verify_response_doc(doc, keys)
    except FiumatchError as exc:
        return exc.code
    return ""


# ---------------------------------------------------------------------------------------------
# Building the vectors


def _signed_parts(msg: httpsig.HttpRequest | httpsig.HttpResponse, request: Any = None) -> Json:
    components, params = _parsed(msg.headers)
    base = httpsig.signature_base(msg, components, params, request=request)
    return {
        "covered_components": [c.serialize() for c in components],
        "signature_base": base.decode("ascii"),
        "content_digest": msg.headers["content-digest"],
        "signature_input": msg.headers["signature-input"],
        "signature": msg.headers["signature"],
    }


def _exchange(
    name: str,
    description: str,
    asker: Node,
    answerer: Node,
    method: str,
    target: str,
    req_headers: Mapping[str, str],
    req_body: bytes,
    status: int,
    resp_headers: Mapping[str, str],
    resp_body: bytes,
) -> tuple[Json, httpsig.HttpRequest, httpsig.HttpResponse]:
    req = sign_request(asker, method, target, req_headers, req_body, NOW)
    resp = sign_response(answerer, req, status, resp_headers, resp_body, NOW + 1)
    doc: Json = {
        "name": name,
        "description": description,
        "request": _message(req) | _signed_parts(req),
        "verify": {"now": NOW, "expected_peer": answerer.node_id},
        "response": _response_message(resp) | _signed_parts(resp, req),
        "response_verify": {"now": NOW + 1, "expected_peer": asker.node_id},
    }
    return doc, req, resp


def build() -> Json:
    a, b = make_node("FIU-A"), make_node("FIU-B")
    keys = {n.node_id: n.public_key for n in (a, b)}
    sid = bytes.fromhex(SESSION_ID)

    # 1. Open a cardinality session (JSON both ways).
    open_body = {
        "session_id": SESSION_ID,
        "mode": "cardinality",
        "purpose": "money_laundering",
        "id_types": ["iban"],
        "set_size": 2,
    }
    opened = {
        "session_id": SESSION_ID,
        "epoch": EPOCH,
        "mode": "cardinality",
        "agreement": "mou-a-b-2026",
        "public_key": "",
        "budget_remaining": 99998,
    }
    ex_open, _, _ = _exchange(
        "open_session",
        "POST /peer/v1/sessions: FIU-A opens a cardinality session with FIU-B (§14.4.1).",
        a,
        b,
        "POST",
        "/peer/v1/sessions",
        {
            "content-type": "application/json",
            "fiumatch-peer": b.node_id,
            "fiumatch-session": SESSION_ID,
        },
        json.dumps(open_body, sort_keys=True).encode(),
        200,
        {
            "content-type": "application/json",
            "fiumatch-peer": a.node_id,
            "fiumatch-session": SESSION_ID,
        },
        json.dumps(opened, sort_keys=True).encode(),
    )

    # 2. Drive it: HELLO in, HELLO_ACK out; the asker's audit headers are covered.
    card, suite = Mode.CARDINALITY, Suite.OPRF_RISTRETTO255_SHA512
    hello = encode_frame(
        Header(msg_type=MsgType.HELLO, mode=card, suite=suite, epoch=EPOCH, session_id=sid, seq=0),
        Hello(element_count=2),
    )
    ack = encode_frame(
        Header(
            msg_type=MsgType.HELLO_ACK, mode=card, suite=suite, epoch=EPOCH, session_id=sid, seq=0
        ),
        HelloAck(element_count=3),
    )
    origin = f"{a.node_id}/audit"
    note = sign_checkpoint(
        Checkpoint(origin, 0, hashlib.sha256(b"").digest()), NoteSigner(origin, a.key)
    )
    frames_target = f"/peer/v1/sessions/{SESSION_ID}/frames"
    ex_frames, req_frames, _ = _exchange(
        "session_frames",
        "POST /peer/v1/sessions/{id}/frames: a HELLO frame in, the HELLO_ACK out (§14.4.2). "
        "The request carries the audit headers of an asker whose log is empty "
        "(fiumatch-audit-have 0, its checkpoint of size 0), covered after the bound headers "
        "in name order.",
        a,
        b,
        "POST",
        frames_target,
        {
            "content-type": "application/octet-stream",
            "fiumatch-peer": b.node_id,
            "fiumatch-session": SESSION_ID,
            "fiumatch-epoch": str(EPOCH),
            "fiumatch-audit-have": "0",
            "fiumatch-audit-checkpoint": base64.b64encode(note).decode("ascii"),
        },
        hello,
        200,
        {
            "content-type": "application/octet-stream",
            "fiumatch-peer": a.node_id,
            "fiumatch-session": SESSION_ID,
            "fiumatch-epoch": str(EPOCH),
        },
        ack,
    )

    # 3. Poll a disclosure: GET, empty body (its Content-Digest is SHA-256 of nothing).
    status_body = {
        "id": DISCLOSURE_ID,
        "status": "pending",
        "reason": None,
        "onward": {"status": "none", "reason": None},
    }
    ex_poll, _, _ = _exchange(
        "disclosure_status",
        "GET /peer/v1/disclosures/{id}: an empty request body and a JSON answer (§14.4.4).",
        a,
        b,
        "GET",
        f"/peer/v1/disclosures/{DISCLOSURE_ID}",
        {"content-type": "application/json", "fiumatch-peer": b.node_id},
        b"",
        200,
        {"content-type": "application/json", "fiumatch-peer": a.node_id},
        json.dumps(status_body, sort_keys=True).encode(),
    )

    negatives = _negatives(a, ex_frames, req_frames, ex_open)
    exchanges = [ex_open, ex_frames, ex_poll]
    for ex in exchanges:  # a vector that does not verify is a generator bug
        verify_request_doc(ex, keys)
        verify_response_doc(ex, keys)
    for neg in negatives:
        got = error_of(neg, keys)
        if got != neg["error"]:
            raise RuntimeError(f"negative vector {neg['name']}: raised {got!r}")

    return {
        "description": "HTTP binding vectors (SPEC.md §14): RFC 9421 signatures (Ed25519) with "
        "RFC 9530 Content-Digest on peer requests and responses. Headers are as the verifier "
        "sees them: lower-case names, one combined value each. A positive message MUST verify "
        "under its `verify` inputs and reproduce `signature_base` byte for byte; a negative "
        "one MUST be refused with `error` (the verifier's nonce cache already holding "
        "`seen_nonces`).",
        "generator": "protocol/vectors/generate_http.py",
        "spec": "protocol/SPEC.md §14",
        "profile": {
            "label": httpsig.REQUEST_LABEL,
            "request_tag": httpsig.REQUEST_TAG,
            "response_tag": httpsig.RESPONSE_TAG,
            "alg": httpsig.ALG,
            "nonce_bytes": httpsig.NONCE_BYTES,
            "lifetime": httpsig.DEFAULT_LIFETIME,
            "skew": SKEW,
            "max_lifetime": MAX_LIFETIME,
        },
        "keys": [
            {
                "node_id": n.node_id,
                "drbg_seed": f"fiumatch-http-v1/{n.node_id}/identity",
                "ed25519_seed_hex": n.seed.hex(),
                "public_key_hex": n.public_key.hex(),
                "fingerprint": fingerprint(n.public_key),
                "well_known": {
                    "node_id": n.node_id,
                    "url": f"https://{n.node_id.lower()}.example:8443",
                    "public_key": n.public_key.hex(),
                    "fingerprint": fingerprint(n.public_key),
                    "protocol_version": 1,
                    "modes": ["filter", "mutual", "cardinality"],
                },
            }
            for n in (a, b)
        ],
        "exchanges": exchanges,
        "negative": negatives,
    }


def _neg(
    name: str, why: str, request: httpsig.HttpRequest, error: str, *, now: int = NOW, **v: Any
) -> Json:
    return {
        "name": name,
        "kind": "request",
        "why": why,
        "request": _message(request),
        "verify": {"now": now, "expected_peer": v.pop("expected_peer", "FIU-B"), **v},
        "error": error,
    }


def _negatives(
    a: Node,
    ex_frames: Json,
    req: httpsig.HttpRequest,
    ex_open: Json,
) -> list[Json]:
    components, params = _parsed(req.headers)
    p = dict(params)
    created, expires, nonce = int(p["created"]), int(p["expires"]), str(p["nonce"])
    out: list[Json] = []

    def with_headers(base: httpsig.HttpRequest, **changes: str) -> httpsig.HttpRequest:
        h = dict(base.headers)
        h.update({k.replace("_", "-"): v for k, v in changes.items()})
        return httpsig.HttpRequest(
            method=base.method,
            target=base.target,
            authority=base.authority,
            headers=h,
            body=base.body,
        )

    def with_body(base: httpsig.HttpRequest, body: bytes) -> httpsig.HttpRequest:
        return httpsig.HttpRequest(
            method=base.method,
            target=base.target,
            authority=base.authority,
            headers=dict(base.headers),
            body=body,
        )

    tampered = bytearray(req.body)
    tampered[-1] ^= 0x01  # HELLO's element_count 2 -> 3
    out.append(
        _neg(
            "tampered_body",
            "The body differs from the signed Content-Digest (the signature itself is intact).",
            with_body(req, bytes(tampered)),
            "digest_mismatch",
        )
    )
    out.append(
        _neg(
            "tampered_covered_header",
            "fiumatch-epoch, a covered header, was changed after signing.",
            with_headers(req, fiumatch_epoch=str(EPOCH + 1)),
            "bad_signature",
        )
    )
    out.append(
        _neg(
            "tampered_audit_header",
            "fiumatch-audit-have, covered like every fiumatch-* header, was changed after signing.",
            with_headers(req, **{"fiumatch-audit-have": "1"}),
            "bad_signature",
        )
    )
    out.append(
        _neg(
            "tampered_path",
            "The same signed request presented on another session's path.",
            httpsig.HttpRequest(
                method=req.method,
                target=f"/peer/v1/sessions/{'ab' * 16}/frames",
                authority=req.authority,
                headers=dict(req.headers),
                body=req.body,
            ),
            "bad_signature",
        )
    )
    out.append(
        _neg(
            "expired",
            f"Verified at expires + skew + 1 ({expires} + {SKEW} + 1).",
            req,
            "stale_signature",
            now=expires + SKEW + 1,
        )
    )
    out.append(
        _neg(
            "created_in_the_future",
            f"Verified at created - skew - 1 ({created} - {SKEW} - 1).",
            req,
            "stale_signature",
            now=created - SKEW - 1,
        )
    )
    out.append(
        _neg(
            "lifetime_too_long",
            f"expires = created + {MAX_LIFETIME + 1}: longer than max_lifetime ({MAX_LIFETIME}).",
            manual_request(
                a,
                req,
                components=components,
                params=_params(NOW, _nonce(a), a.node_id, lifetime=MAX_LIFETIME + 1),
            ),
            "stale_signature",
        )
    )
    out.append(
        _neg(
            "replayed_nonce",
            "The exchange's request again: its (keyid, nonce) is already in the nonce cache.",
            req,
            "replayed_nonce",
            seen_nonces=[[a.node_id, nonce]],
        )
    )
    out.append(
        _neg(
            "unknown_keyid",
            "Validly signed with FIU-A's key but under keyid FIU-Z, which the verifier has not "
            "pinned.",
            manual_request(a, req, components=components, params=_params(NOW, _nonce(a), "FIU-Z")),
            "unknown_key",
        )
    )
    out.append(
        _neg(
            "missing_session_coverage",
            "fiumatch-session is present but the signature does not cover it (validly signed "
            "otherwise).",
            manual_request(
                a,
                req,
                components=[c for c in components if c.name != "fiumatch-session"],
                params=_params(NOW, _nonce(a), a.node_id),
            ),
            "missing_component",
        )
    )
    out.append(
        _neg(
            "uncovered_audit_header",
            "A fiumatch-audit-want header added after signing: every fiumatch-* header present "
            "must be covered.",
            with_headers(req, **{"fiumatch-audit-want": "0"}),
            "missing_component",
        )
    )
    out.append(
        _neg(
            "missing_content_digest_coverage",
            "content-digest is not covered (validly signed otherwise).",
            manual_request(
                a,
                req,
                components=[c for c in components if c.name != "content-digest"],
                params=_params(NOW, _nonce(a), a.node_id),
            ),
            "missing_component",
        )
    )
    out.append(
        _neg(
            "addressed_to_another_node",
            "A valid request to FIU-B presented to FIU-C (fiumatch-peer is not the verifier).",
            req,
            "bad_signature",
            expected_peer="FIU-C",
        )
    )
    out.append(
        _neg(
            "response_tag_on_a_request",
            "Signed with tag fiumatch-response-v1 instead of fiumatch-request-v1.",
            manual_request(
                a,
                req,
                components=components,
                params=_params(NOW, _nonce(a), a.node_id, tag=httpsig.RESPONSE_TAG),
            ),
            "bad_signature",
        )
    )
    # Responses.
    resp_doc = ex_frames["response"]
    resp_fields = {k: resp_doc[k] for k in ("status", "headers", "body_hex")}
    out.append(
        {
            "name": "response_tampered_status",
            "kind": "response",
            "why": "The exchange's response with @status changed from 200 to 202.",
            "request": ex_frames["request"],
            "response": resp_fields | {"status": 202},
            "verify": ex_frames["response_verify"],
            "error": "bad_signature",
        }
    )
    out.append(
        {
            "name": "response_to_another_request",
            "kind": "response",
            "why": "The session_frames response presented as the answer to the open_session "
            'request: it covers another request\'s signature ("signature";req).',
            "request": ex_open["request"],
            "response": resp_fields,
            "verify": ex_frames["response_verify"],
            "error": "bad_signature",
        }
    )
    return out


def generate() -> dict[str, str]:
    """File name -> contents."""
    return {"http.json": json.dumps(build(), indent=1) + "\n"}


def main(argv: list[str]) -> int:
    files = generate()
    if "--check" in argv:
        stale = [n for n, text in files.items() if (HERE / n).read_text() != text]
        for n in stale:
            print(f"stale: {n}", file=sys.stderr)
        return 1 if stale else 0
    for name, text in files.items():
        (HERE / name).write_text(text)
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
