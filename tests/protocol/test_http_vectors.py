"""Replay protocol/vectors/http.json (SPEC.md §14) through fiumatch.node.httpsig, and check that
protocol/vectors/generate_http.py still produces the checked-in file."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fiumatch.errors import FiumatchError
from fiumatch.node import errors, httpsig
from fiumatch.node.keys import fingerprint, raw_public_key

VECTORS = Path(__file__).resolve().parents[2] / "protocol" / "vectors"


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "fiumatch_vectors_generate_http", VECTORS / "generate_http.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


GEN = _load_generator()
DOC: dict[str, Any] = json.loads((VECTORS / "http.json").read_text())
KEYS = {k["node_id"]: bytes.fromhex(k["public_key_hex"]) for k in DOC["keys"]}
EXCHANGES = {e["name"]: e for e in DOC["exchanges"]}
NEGATIVES = {n["name"]: n for n in DOC["negative"]}
CODES = {
    cls.code: cls
    for cls in (
        errors.UnknownKeyError,
        errors.BadSignatureError,
        errors.StaleSignatureError,
        errors.ReplayedNonceError,
        errors.DigestMismatchError,
        errors.MissingComponentError,
    )
}


def test_generator_reproduces_the_checked_in_file() -> None:
    generated = GEN.generate()
    assert sorted(generated) == ["http.json"]
    assert (VECTORS / "http.json").read_text() == generated["http.json"], (
        "http.json is stale: run .venv/bin/python protocol/vectors/generate_http.py"
    )


def test_profile_constants_match_the_code() -> None:
    p = DOC["profile"]
    assert p["label"] == httpsig.REQUEST_LABEL == httpsig.RESPONSE_LABEL
    assert (p["request_tag"], p["response_tag"]) == (httpsig.REQUEST_TAG, httpsig.RESPONSE_TAG)
    assert p["alg"] == httpsig.ALG
    assert p["nonce_bytes"] == httpsig.NONCE_BYTES
    assert p["lifetime"] == httpsig.DEFAULT_LIFETIME
    default = httpsig.VerifyPolicy()
    assert (p["skew"], p["max_lifetime"]) == (default.skew, default.max_lifetime)


@pytest.mark.parametrize("key", DOC["keys"], ids=lambda k: str(k["node_id"]))
def test_keys_and_fingerprints(key: dict[str, Any]) -> None:
    seed = bytes.fromhex(key["ed25519_seed_hex"])
    assert seed == GEN.Drbg(key["drbg_seed"].encode())(32)
    public = raw_public_key(Ed25519PrivateKey.from_private_bytes(seed).public_key())
    assert public.hex() == key["public_key_hex"]
    # SPEC §14.2: "SHA256:" + unpadded standard base64 of SHA-256(raw public key).
    expected = "SHA256:" + base64.b64encode(hashlib.sha256(public).digest()).decode().rstrip("=")
    assert key["fingerprint"] == expected == fingerprint(public)
    assert key["well_known"]["public_key"] == key["public_key_hex"]
    assert key["well_known"]["fingerprint"] == key["fingerprint"]


def _request(doc: dict[str, Any]) -> httpsig.HttpRequest:
    return httpsig.HttpRequest(
        method=doc["method"],
        target=doc["target"],
        authority=doc["authority"],
        headers=dict(doc["headers"]),
        body=bytes.fromhex(doc["body_hex"]),
    )


def _response(doc: dict[str, Any]) -> httpsig.HttpResponse:
    return httpsig.HttpResponse(
        status=doc["status"], headers=dict(doc["headers"]), body=bytes.fromhex(doc["body_hex"])
    )


def _resolve(kid: str) -> Any:
    from fiumatch.node.keys import public_key_from_raw

    return public_key_from_raw(KEYS[kid]) if kid in KEYS else None


def _covered(headers: dict[str, str]) -> tuple[list[httpsig.Component], Any]:
    member = httpsig.parse_dictionary(headers["signature-input"])["fiumatch"]
    assert isinstance(member, httpsig.InnerList)
    return [httpsig.Component(str(i.value), i.params) for i in member.items], member.params


@pytest.mark.parametrize("name", sorted(EXCHANGES))
def test_request_verifies_and_its_base_is_exact(name: str) -> None:
    ex = EXCHANGES[name]
    req = _request(ex["request"])
    body = req.body
    assert ex["request"]["content_digest"] == httpsig.content_digest(body)
    assert req.headers["content-digest"] == ex["request"]["content_digest"]
    components, params = _covered(dict(req.headers))
    assert [c.serialize() for c in components] == ex["request"]["covered_components"]
    base = httpsig.signature_base(req, components, params)
    assert base.decode("ascii") == ex["request"]["signature_base"]
    # Every fiumatch-* header present is covered (SPEC §14.5.3).
    covered = {c.name for c in components}
    assert {h for h in req.headers if h.startswith("fiumatch-")} <= covered
    cache = httpsig.InMemoryNonceCache()
    verified = httpsig.verify_request(
        method=req.method,
        target=req.target,
        authority=req.authority,
        headers=req.headers,
        body=body,
        resolve_key=_resolve,
        nonces=cache,
        now=ex["verify"]["now"],
        expected_peer=ex["verify"]["expected_peer"],
    )
    assert verified.keyid == "FIU-A"
    assert verified.tag == httpsig.REQUEST_TAG
    assert verified.components == tuple(ex["request"]["covered_components"])
    assert len(cache) == 1  # the nonce is spent only by a request that verified


@pytest.mark.parametrize("name", sorted(EXCHANGES))
def test_response_verifies_and_its_base_is_exact(name: str) -> None:
    ex = EXCHANGES[name]
    req, resp = _request(ex["request"]), _response(ex["response"])
    assert ex["response"]["content_digest"] == httpsig.content_digest(resp.body)
    components, params = _covered(dict(resp.headers))
    assert [c.serialize() for c in components] == ex["response"]["covered_components"]
    base = httpsig.signature_base(resp, components, params, request=req)
    assert base.decode("ascii") == ex["response"]["signature_base"]
    verified = httpsig.verify_response(
        status=resp.status,
        headers=resp.headers,
        body=resp.body,
        request=req,
        resolve_key=_resolve,
        now=ex["response_verify"]["now"],
        expected_peer=ex["response_verify"]["expected_peer"],
    )
    assert verified.keyid == "FIU-B"
    assert verified.tag == httpsig.RESPONSE_TAG


@pytest.mark.parametrize("name", sorted(EXCHANGES))
def test_signatures_are_reproduced_from_the_seeds(name: str) -> None:
    """Ed25519 is deterministic: re-signing the recorded base gives the recorded signature."""
    ex = EXCHANGES[name]
    seeds = {k["node_id"]: bytes.fromhex(k["ed25519_seed_hex"]) for k in DOC["keys"]}
    for part, signer in (("request", "FIU-A"), ("response", "FIU-B")):
        key = Ed25519PrivateKey.from_private_bytes(seeds[signer])
        sig = key.sign(ex[part]["signature_base"].encode("ascii"))
        assert ex[part]["signature"] == f"fiumatch=:{base64.b64encode(sig).decode()}:"


def test_every_required_negative_is_present() -> None:
    wanted = {
        "tampered_body": "digest_mismatch",
        "tampered_covered_header": "bad_signature",
        "expired": "stale_signature",
        "replayed_nonce": "replayed_nonce",
        "unknown_keyid": "unknown_key",
        "missing_session_coverage": "missing_component",
    }
    assert {n: NEGATIVES[n]["error"] for n in wanted} == wanted


@pytest.mark.parametrize("name", sorted(NEGATIVES))
def test_negative_is_refused_with_its_code(name: str) -> None:
    neg = NEGATIVES[name]
    v = neg["verify"]
    req = _request(neg["request"])
    cls = CODES[neg["error"]]
    with pytest.raises(FiumatchError) as caught:
        if neg["kind"] == "request":
            cache = httpsig.InMemoryNonceCache()
            for keyid, nonce in v.get("seen_nonces", []):
                assert cache.check_and_store(keyid, nonce, expires_at=v["now"] + 300, now=v["now"])
            httpsig.verify_request(
                method=req.method,
                target=req.target,
                authority=req.authority,
                headers=req.headers,
                body=req.body,
                resolve_key=_resolve,
                nonces=cache,
                now=v["now"],
                expected_peer=v["expected_peer"],
            )
        else:
            resp = _response(neg["response"])
            httpsig.verify_response(
                status=resp.status,
                headers=resp.headers,
                body=resp.body,
                request=req,
                resolve_key=_resolve,
                now=v["now"],
                expected_peer=v["expected_peer"],
            )
    assert type(caught.value) is cls, caught.value.code
    assert caught.value.http_status == 401
