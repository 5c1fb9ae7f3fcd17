"""The fiumatch signature profile: what is covered, what is refused, and with which error."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from fiumatch.errors import FiumatchError
from fiumatch.node.errors import NodeAuthError, NodeError
from fiumatch.node.httpsig import (
    BadSignatureError,
    Component,
    DigestMismatchError,
    HttpRequest,
    HttpResponse,
    InMemoryNonceCache,
    InnerList,
    Item,
    MissingComponentError,
    ReplayedNonceError,
    StaleSignatureError,
    Token,
    UnknownKeyError,
    VerifiedSignature,
    VerifyPolicy,
    _ser_member,
    claimed_keyid,
    combine_headers,
    content_digest,
    parse_dictionary,
    sign_request,
    sign_response,
    signature_base,
    signature_params_value,
    verify_content_digest,
    verify_request,
    verify_response,
)
from fiumatch.store import Store
from tests.node.helpers import det_rng

NOW = 1_760_000_000
A_KEY = Ed25519PrivateKey.from_private_bytes(b"\x01" * 32)
B_KEY = Ed25519PrivateKey.from_private_bytes(b"\x02" * 32)
KEYS: dict[str, Ed25519PublicKey] = {"fiu-a": A_KEY.public_key(), "fiu-b": B_KEY.public_key()}
BODY = b'{"blinded": "AAAA"}'
BASE_HEADERS = {
    "Content-Type": "application/json",
    "Fiumatch-Session": "sess-42",
    "Fiumatch-Peer": "fiu-b",
    "Fiumatch-Epoch": "7",
}


@dataclass
class Signed:
    method: str = "POST"
    target: str = "/v1/psi/sess-42/blinded"
    authority: str = "fiu-b.example:8443"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = BODY

    def verify(self, **overrides: Any) -> VerifiedSignature:
        kwargs: dict[str, Any] = {
            "method": self.method,
            "target": self.target,
            "authority": self.authority,
            "headers": self.headers,
            "body": self.body,
            "resolve_key": KEYS.get,
            "nonces": InMemoryNonceCache(),
            "now": NOW,
            "expected_peer": "fiu-b",
        }
        kwargs.update(overrides)
        return verify_request(**kwargs)

    def as_request(self) -> HttpRequest:
        return HttpRequest(
            method=self.method,
            target=self.target,
            authority=self.authority,
            headers=self.headers,
            body=self.body,
        )


def signed(
    *,
    headers: dict[str, str] | None = None,
    target: str = "/v1/psi/sess-42/blinded",
    body: bytes = BODY,
    now: int = NOW,
    lifetime: int = 60,
    key: Ed25519PrivateKey = A_KEY,
    keyid: str = "fiu-a",
    rng: Callable[[int], bytes] | None = None,
) -> Signed:
    hdrs = dict(BASE_HEADERS if headers is None else headers)
    added = sign_request(
        method="POST",
        target=target,
        authority="fiu-b.example:8443",
        headers=hdrs,
        body=body,
        key=key,
        keyid=keyid,
        now=now,
        rng=rng or det_rng(),
        lifetime=lifetime,
    )
    return Signed(target=target, headers={**hdrs, **added}, body=body)


# --- the happy path and what is covered ------------------------------------------------


def test_a_signed_request_verifies_and_names_its_signer() -> None:
    result = signed().verify()
    assert result.keyid == "fiu-a"
    assert (result.created, result.expires) == (NOW, NOW + 60)
    assert result.tag == "fiumatch-request-v1"
    assert result.components == (
        '"@method"',
        '"@authority"',
        '"@path"',
        '"content-digest"',
        '"content-type"',
        '"fiumatch-session"',
        '"fiumatch-peer"',
        '"fiumatch-epoch"',
    )


def test_the_signature_input_carries_the_documented_parameters() -> None:
    s = signed()
    member = parse_dictionary(s.headers["Signature-Input"])["fiumatch"]
    assert isinstance(member, InnerList)
    params = dict(member.params)
    assert params["alg"] == "ed25519"
    assert params["keyid"] == "fiu-a"
    assert params["created"] == NOW and params["expires"] == NOW + 60
    assert params["tag"] == "fiumatch-request-v1"
    assert isinstance(params["nonce"], str) and len(params["nonce"]) == 22
    assert s.headers["Content-Digest"].startswith("sha-256=:")


def test_a_query_is_covered_when_present() -> None:
    s = signed(target="/v1/epochs?peer=fiu-a&from=3")
    assert '"@query"' in s.verify().components
    with pytest.raises(BadSignatureError):
        s.verify(target="/v1/epochs?peer=fiu-a&from=4")


def test_an_empty_body_is_signed_and_checked_too() -> None:
    s = signed(body=b"", headers={"Fiumatch-Peer": "fiu-b"})
    assert s.verify().keyid == "fiu-a"
    with pytest.raises(DigestMismatchError):
        s.verify(body=b"x")


@pytest.mark.parametrize(
    "change",
    [
        {"method": "PUT"},
        {"target": "/v1/psi/sess-43/blinded"},
        {"authority": "fiu-c.example:8443"},
    ],
)
def test_changing_a_derived_component_breaks_the_signature(change: dict[str, str]) -> None:
    with pytest.raises(BadSignatureError):
        signed().verify(**change)


@pytest.mark.parametrize(
    "header",
    ["Fiumatch-Session", "Fiumatch-Epoch", "Content-Type"],
)
def test_changing_a_bound_header_breaks_the_signature(header: str) -> None:
    s = signed()
    s.headers[header] = s.headers[header] + "x"
    with pytest.raises(BadSignatureError):
        s.verify()


def test_a_changed_body_is_a_digest_mismatch() -> None:
    with pytest.raises(DigestMismatchError):
        signed().verify(body=BODY + b" ")


def test_a_recomputed_digest_for_a_changed_body_breaks_the_signature() -> None:
    s = signed()
    other = BODY.replace(b"AAAA", b"BBBB")
    s.headers["Content-Digest"] = content_digest(other)
    with pytest.raises(BadSignatureError):
        s.verify(body=other)


@pytest.mark.parametrize(
    ("header", "value"),
    [("Fiumatch-Epoch", "8"), ("Fiumatch-Session", "other"), ("Content-Type", "text/plain")],
)
def test_an_uncovered_bound_header_is_refused(header: str, value: str) -> None:
    # Signed without the header, then the header appears in transit.
    base = {k: v for k, v in BASE_HEADERS.items() if k != header}
    s = signed(headers=base)
    s.headers[header] = value
    with pytest.raises(MissingComponentError) as info:
        s.verify()
    assert info.value.details == {"component": f'"{header.lower()}"'}


AUDIT_HEADERS = {
    "Fiumatch-Audit-Have": "12",
    "Fiumatch-Audit-Checkpoint": "RklVLUEvYXVkaXQK",
    "Fiumatch-Audit-Proof": "3:12:AAAA",
}


def test_every_fiumatch_header_present_is_signed_and_required() -> None:
    """Not only the session, peer and epoch headers: every fiumatch-* header present (the
    audit headers among them) is covered by the signer and required by the verifier."""
    s = signed(headers={**BASE_HEADERS, **AUDIT_HEADERS})
    covered = s.verify().components
    for name in AUDIT_HEADERS:
        assert f'"{name.lower()}"' in covered
    s.headers["Fiumatch-Audit-Have"] = "0"  # changed in transit
    with pytest.raises(BadSignatureError):
        s.verify()


@pytest.mark.parametrize("header", ["Fiumatch-Audit-Have", "fiumatch-audit-want", "Fiumatch-X"])
def test_an_uncovered_fiumatch_header_is_refused(header: str) -> None:
    s = signed()
    s.headers[header] = "1"  # added after signing
    with pytest.raises(MissingComponentError) as info:
        s.verify()
    assert info.value.details == {"component": f'"{header.lower()}"'}


def test_an_uncovered_fiumatch_header_on_a_response_is_refused() -> None:
    request = signed()
    response = _respond(request)
    _verify_response(request, response)
    response["Fiumatch-Audit-Receipts"] = "AAAA"
    with pytest.raises(MissingComponentError):
        _verify_response(request, response)
    headers = {"Fiumatch-Peer": "fiu-a", "Fiumatch-Audit-Receipts": "AAAA"}
    signed_too = {**headers, **sign_response(
        status=200, headers=headers, body=RESPONSE_BODY, request=request.as_request(),
        key=B_KEY, keyid="fiu-b", now=NOW + 1, rng=det_rng(b"resp"),
    )}  # fmt: skip
    assert '"fiumatch-audit-receipts"' in _verify_response(request, signed_too).components


def test_an_added_query_is_refused() -> None:
    s = signed()
    with pytest.raises(MissingComponentError):
        s.verify(target=s.target + "?limit=1000000")


def test_the_addressee_header_is_required_and_checked() -> None:
    s = signed(headers={"Content-Type": "application/json"})
    with pytest.raises(MissingComponentError):
        s.verify()
    with pytest.raises(BadSignatureError, match="addressed to another node"):
        signed().verify(expected_peer="fiu-c")


# --- keys, time, replay ----------------------------------------------------------------


def test_an_unknown_signer_is_refused() -> None:
    with pytest.raises(UnknownKeyError):
        signed(keyid="fiu-z").verify()


def test_a_valid_signature_under_the_wrong_key_is_refused() -> None:
    # fiu-b's key signs but claims to be fiu-a.
    with pytest.raises(BadSignatureError):
        signed(key=B_KEY, keyid="fiu-a").verify()


@pytest.mark.parametrize(
    ("now", "ok"),
    [
        (NOW - 30, True),  # created 30 s ahead of us: within skew
        (NOW - 31, False),  # too far in the future
        (NOW + 60 + 30, True),  # expired 30 s ago: within skew
        (NOW + 60 + 31, False),  # expired
    ],
)
def test_the_time_window(now: int, ok: bool) -> None:
    s = signed()
    if ok:
        assert s.verify(now=now).keyid == "fiu-a"
    else:
        with pytest.raises(StaleSignatureError):
            s.verify(now=now)


def test_a_lifetime_above_the_policy_is_refused() -> None:
    s = signed(lifetime=301)
    with pytest.raises(StaleSignatureError):
        s.verify()
    assert s.verify(policy=VerifyPolicy(max_lifetime=400)).keyid == "fiu-a"


def test_a_replayed_nonce_is_refused() -> None:
    s = signed()
    cache = InMemoryNonceCache()
    s.verify(nonces=cache)
    with pytest.raises(ReplayedNonceError):
        s.verify(nonces=cache)
    # The same nonce from another signer is another nonce.
    other = signed(key=B_KEY, keyid="fiu-b")
    assert other.verify(nonces=cache).keyid == "fiu-b"


def test_a_failed_verification_does_not_spend_the_nonce() -> None:
    s = signed()
    cache = InMemoryNonceCache()
    with pytest.raises(DigestMismatchError):
        s.verify(nonces=cache, body=b"tampered")
    with pytest.raises(BadSignatureError):
        s.verify(nonces=cache, expected_peer="fiu-c")
    assert len(cache) == 0
    assert s.verify(nonces=cache).keyid == "fiu-a"


def test_expired_nonces_are_forgotten() -> None:
    cache = InMemoryNonceCache()
    assert cache.check_and_store("k", "n", expires_at=NOW + 10, now=NOW)
    assert not cache.check_and_store("k", "n", expires_at=NOW + 10, now=NOW + 10)
    assert cache.check_and_store("k", "other", expires_at=NOW + 100, now=NOW + 11)
    assert len(cache) == 1


def test_the_persistent_store_cache_plugs_in(tmp_path: Path) -> None:
    s = signed()
    with Store.open(tmp_path / "db") as store:
        s.verify(nonces=store.nonces)
    with Store.open(tmp_path / "db") as store, pytest.raises(ReplayedNonceError):
        s.verify(nonces=store.nonces)


# --- malformed input -------------------------------------------------------------------


def test_an_unsigned_request_is_refused() -> None:
    s = signed()
    del s.headers["Signature"]
    with pytest.raises(BadSignatureError, match="not signed"):
        s.verify()


@pytest.mark.parametrize(
    ("field_name", "value"),
    [
        ("Signature-Input", "fiumatch=(unclosed"),
        ("Signature-Input", 'other=("@method");created=1'),
        ("Signature", "fiumatch=notbytes"),
        ("Signature", "fiumatch=:!!!:"),
        ("Signature-Input", "fiumatch=:AAAA:"),
    ],
)
def test_malformed_signature_fields_are_refused(field_name: str, value: str) -> None:
    s = signed()
    s.headers[field_name] = value
    with pytest.raises(BadSignatureError):
        s.verify()


def _resign(s: Signed, mutate: Callable[[list[Component], dict[str, Any]], None]) -> Signed:
    """Re-sign ``s`` by hand with changed components or parameters."""
    member = parse_dictionary(s.headers["Signature-Input"])["fiumatch"]
    assert isinstance(member, InnerList)
    components = [Component(str(i.value), i.params) for i in member.items]
    params = dict(member.params)
    mutate(components, params)
    param_list = list(params.items())
    base = signature_base(s.as_request(), components, param_list)
    sig = A_KEY.sign(base)
    headers = dict(s.headers)
    headers["Signature-Input"] = "fiumatch=" + signature_params_value(components, param_list)
    headers["Signature"] = "fiumatch=:" + base64.b64encode(sig).decode() + ":"
    return Signed(s.method, s.target, s.authority, headers, s.body)


def test_the_hand_signing_helper_reproduces_a_valid_signature() -> None:
    assert _resign(signed(), lambda c, p: None).verify().keyid == "fiu-a"


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda c, p: p.update(alg="rsa-pss-sha512"), BadSignatureError),
        (lambda c, p: p.pop("alg"), BadSignatureError),
        (lambda c, p: p.update(tag="fiumatch-response-v1"), BadSignatureError),
        (lambda c, p: p.pop("tag"), BadSignatureError),
        (lambda c, p: p.pop("nonce"), BadSignatureError),
        (lambda c, p: p.pop("expires"), StaleSignatureError),
        (lambda c, p: p.update(expires=p["created"]), StaleSignatureError),
        (lambda c, p: p.update(created="yesterday"), BadSignatureError),
        (lambda c, p: p.pop("keyid"), UnknownKeyError),
        (lambda c, p: c.remove(Component("@path")), MissingComponentError),
        (lambda c, p: c.remove(Component("content-digest")), MissingComponentError),
        (lambda c, p: c.remove(Component("fiumatch-session")), MissingComponentError),
    ],
)
def test_profile_rules_hold_even_for_a_correct_signature(
    mutate: Callable[[list[Component], dict[str, Any]], None], error: type[NodeAuthError]
) -> None:
    with pytest.raises(error):
        _resign(signed(), mutate).verify()


def test_a_component_covered_twice_is_refused() -> None:
    with pytest.raises(MissingComponentError):
        signature_base(signed().as_request(), [Component("@method"), Component("@method")], [])


def test_a_covered_but_absent_header_is_refused() -> None:
    def add(c: list[Component], p: dict[str, Any]) -> None:
        c.append(Component("x-absent"))

    s = signed()
    with pytest.raises(MissingComponentError):
        _resign(s, add)


def test_header_names_are_case_insensitive_but_not_ambiguous() -> None:
    s = signed()
    lowered = {k.lower(): v for k, v in s.headers.items()}
    assert s.verify(headers=lowered).keyid == "fiu-a"
    duplicated = {**s.headers, "fiumatch-epoch": "8"}
    with pytest.raises(BadSignatureError, match="twice"):
        s.verify(headers=duplicated)


def test_errors_are_typed_401_and_say_nothing_secret() -> None:
    s = signed()
    secrets = [s.headers["Signature"].split("=:", 1)[1][:20], "sess-42"]
    nonce = str(dict(parse_dictionary(s.headers["Signature-Input"])["fiumatch"].params)["nonce"])
    cache = InMemoryNonceCache()
    s.verify(nonces=cache)
    failures: list[NodeAuthError] = []
    for kwargs in ({"nonces": cache}, {"body": b"x"}, {"now": NOW + 999}, {"method": "GET"}):
        with pytest.raises(NodeAuthError) as info:
            s.verify(**kwargs)
        failures.append(info.value)
    codes = {type(e).__name__: e.code for e in failures}
    assert codes == {
        "ReplayedNonceError": "replayed_nonce",
        "DigestMismatchError": "digest_mismatch",
        "StaleSignatureError": "stale_signature",
        "BadSignatureError": "bad_signature",
    }
    for error in failures:
        assert isinstance(error, NodeError) and isinstance(error, FiumatchError)
        assert error.http_status == 401
        text = str(error) + repr(error.to_dict())
        for secret in [*secrets, nonce]:
            assert secret not in text


def test_signing_refuses_a_wrong_given_digest_and_a_duplicate_label() -> None:
    with pytest.raises(DigestMismatchError):
        sign_request(
            method="POST",
            target="/",
            authority="x",
            headers={"Content-Digest": "sha-256=:AAAA:"},
            body=b"body",
            key=A_KEY,
            keyid="fiu-a",
            now=NOW,
            rng=det_rng(),
        )
    s = signed()
    with pytest.raises(ValueError):
        sign_request(
            method="POST",
            target=s.target,
            authority=s.authority,
            headers=s.headers,
            body=s.body,
            key=A_KEY,
            keyid="fiu-a",
            now=NOW,
            rng=det_rng(),
        )


def test_a_second_signature_with_another_label_is_appended() -> None:
    s = signed()
    more = sign_request(
        method="POST",
        target=s.target,
        authority=s.authority,
        headers=s.headers,
        body=s.body,
        key=B_KEY,
        keyid="fiu-b",
        now=NOW,
        rng=det_rng(b"2"),
        label="proxy",
    )
    both = {**s.headers, **more}
    assert set(parse_dictionary(both["Signature"])) == {"fiumatch", "proxy"}
    assert s.verify(headers=both).keyid == "fiu-a"


def test_the_nonce_comes_from_the_rng() -> None:
    a, b = signed(rng=det_rng(b"x")), signed(rng=det_rng(b"y"))
    assert a.headers["Signature-Input"] != b.headers["Signature-Input"]
    assert signed(rng=det_rng(b"x")).headers == a.headers
    with pytest.raises(ValueError):
        signed(rng=lambda n: b"short")


# --- responses -------------------------------------------------------------------------

RESPONSE_BODY = b'{"evaluated": "BBBB"}'


def _respond(request: Signed, status: int = 200, body: bytes = RESPONSE_BODY) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "Fiumatch-Session": "sess-42",
        "Fiumatch-Peer": "fiu-a",
        "Fiumatch-Epoch": "7",
    }
    added = sign_response(
        status=status,
        headers=headers,
        body=body,
        request=request.as_request(),
        key=B_KEY,
        keyid="fiu-b",
        now=NOW + 1,
        rng=det_rng(b"resp"),
    )
    return {**headers, **added}


def _verify_response(request: Signed, headers: dict[str, str], **kw: Any) -> VerifiedSignature:
    kwargs: dict[str, Any] = {
        "status": 200,
        "headers": headers,
        "body": RESPONSE_BODY,
        "request": request.as_request(),
        "resolve_key": KEYS.get,
        "now": NOW + 1,
        "expected_peer": "fiu-a",
    }
    kwargs.update(kw)
    return verify_response(**kwargs)


def test_a_signed_response_verifies_and_is_bound_to_its_request() -> None:
    request = signed(target="/v1/psi?x=1")
    response = _respond(request)
    result = _verify_response(request, response)
    assert result.keyid == "fiu-b"
    assert result.tag == "fiumatch-response-v1"
    assert '"signature";req;key="fiumatch"' in result.components
    assert {'"@method";req', '"@authority";req', '"@path";req', '"@query";req'} <= set(
        result.components
    )


def test_a_response_does_not_verify_against_another_request() -> None:
    request = signed()
    other_request = signed(rng=det_rng(b"another nonce"))
    response = _respond(request)
    with pytest.raises(BadSignatureError):
        _verify_response(other_request, response)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"status": 500}, BadSignatureError),
        ({"body": b"{}"}, DigestMismatchError),
        ({"now": NOW + 1000}, StaleSignatureError),
        ({"resolve_key": {}.get}, UnknownKeyError),
    ],
)
def test_response_failures(change: dict[str, Any], error: type[NodeAuthError]) -> None:
    request = signed()
    with pytest.raises(error):
        _verify_response(request, _respond(request), **change)


def test_a_request_signature_is_not_accepted_as_a_response() -> None:
    request = signed()
    # Present the request's own signature fields as if they were a response's.
    fake = {k: v for k, v in request.headers.items()}
    with pytest.raises((BadSignatureError, MissingComponentError)):
        _verify_response(request, fake, body=request.body)


def test_a_response_replay_is_caught_when_a_cache_is_given() -> None:
    request = signed()
    response = _respond(request)
    cache = InMemoryNonceCache()
    _verify_response(request, response, nonces=cache)
    with pytest.raises(ReplayedNonceError):
        _verify_response(request, response, nonces=cache)


def test_a_response_must_cover_the_request_signature() -> None:
    request = signed()
    response = _respond(request)
    member = parse_dictionary(response["Signature-Input"])["fiumatch"]
    assert isinstance(member, InnerList)
    components = [Component(str(i.value), i.params) for i in member.items if i.value != "signature"]
    params = list(member.params)
    message = HttpResponse(status=200, headers=response, body=RESPONSE_BODY)
    base = signature_base(message, components, params, request=request.as_request())
    forged = dict(response)
    forged["Signature-Input"] = "fiumatch=" + signature_params_value(components, params)
    forged["Signature"] = "fiumatch=:" + base64.b64encode(B_KEY.sign(base)).decode() + ":"
    with pytest.raises(MissingComponentError):
        _verify_response(request, forged)


# --- structured fields ----------------------------------------------------------------

_keys = st.from_regex(r"[a-z*][a-z0-9_\-.*]{0,8}", fullmatch=True)
_bare = st.one_of(
    st.integers(-(10**15) + 1, 10**15 - 1),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12),
    st.from_regex(r"[A-Za-z*][A-Za-z0-9:/!#$%&'*+\-.^_`|~]{0,8}", fullmatch=True).map(Token),
    st.binary(max_size=16),
    st.booleans(),
)
_params = st.lists(st.tuples(_keys, _bare), max_size=3, unique_by=lambda kv: kv[0]).map(tuple)
_item = st.builds(Item, _bare, _params)
_member = st.one_of(_item, st.builds(InnerList, st.lists(_item, max_size=3).map(tuple), _params))


@settings(max_examples=200)
@given(st.dictionaries(_keys, _member, max_size=4))
def test_structured_dictionaries_round_trip(members: dict[str, Any]) -> None:
    text = ", ".join(
        f"{k}{_ser_member(v)[2:]}"
        if isinstance(v, Item) and v.value is True
        else f"{k}={_ser_member(v)}"
        for k, v in members.items()
    )
    parsed = parse_dictionary(text)
    assert list(parsed) == list(members)
    for key, value in members.items():
        got = parsed[key]
        assert got == value
        assert type(getattr(got, "value", None)) is type(getattr(value, "value", None))


@pytest.mark.parametrize(
    "text",
    ["a=1,", "a=(1 2", "a=1.2345", 'a="x', "A=1", "a=1;", "a=?2", "a=1 b=2", 'a="\\x"'],
)
def test_malformed_dictionaries_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_dictionary(text)


def test_component_identifiers_parse_and_serialise() -> None:
    c = Component.parse('"signature";req;key="fiumatch"')
    assert c == Component("signature", (("req", True), ("key", "fiumatch")))
    assert str(c) == '"signature";req;key="fiumatch"'
    with pytest.raises(ValueError):
        Component.parse("signature")


def test_combine_headers_joins_repeats_in_order() -> None:
    pairs = [("Accept", "a"), ("X-A", " 1 "), ("accept", "b")]
    assert combine_headers(pairs) == {"accept": "a, b", "x-a": "1"}


def test_digest_verification_requires_sha256() -> None:
    with pytest.raises(DigestMismatchError):
        verify_content_digest(None, b"")
    with pytest.raises(DigestMismatchError):
        verify_content_digest("sha-512=:AAAA:", b"")
    with pytest.raises(DigestMismatchError):
        verify_content_digest("sha-256=1", b"")
    with pytest.raises(DigestMismatchError):
        verify_content_digest("sha-256=:AAAA", b"")


def test_the_claimed_keyid_is_read_with_the_structured_field_parser() -> None:
    msg = signed(keyid='fiu-"a"')  # a quote inside the sf-string: string splitting would break
    assert claimed_keyid(msg.headers) == 'fiu-"a"'
    assert claimed_keyid(signed().headers) == "fiu-a"
    assert claimed_keyid({}) is None
    assert claimed_keyid({"Signature-Input": "fiumatch=(;keyid="}) is None  # malformed
    assert claimed_keyid({"Signature-Input": 'other=("@method");keyid="x"'}) is None
    assert claimed_keyid({"Signature-Input": "fiumatch=();keyid=tok"}) is None  # a token
    decoy = {"Signature-Input": 'fiumatch=("keyid=\\"evil\\"");alg="ed25519"'}
    assert claimed_keyid(decoy) is None


def _reference_sf_string(text: str) -> str | None:
    """RFC 8941 §4.2.5, character by character (None: refused); ``text`` starts at the quote."""
    out, i = [], 1
    while i < len(text):
        ch = text[i]
        i += 1
        if ch == "\\":
            if i >= len(text) or text[i] not in ('"', "\\"):
                return None
            out.append(text[i])
            i += 1
        elif ch == '"':
            return "".join(out)
        elif not (" " <= ch <= "~"):
            return None
        else:
            out.append(ch)
    return None


@given(st.text(alphabet=st.characters(max_codepoint=0x80), max_size=40))
@settings(max_examples=400, deadline=None)
def test_sf_strings_parse_and_serialize_as_rfc_8941_says(body: str) -> None:
    from fiumatch.node import httpsig

    parser = getattr(httpsig, "_Parser")  # noqa: B009 - private, tested for its fast path
    text = '"' + body
    expected = _reference_sf_string(text)
    try:
        p = parser(text)
        got: str | None = p.string()
    except ValueError:
        got = None
    assert got == expected
    printable = all(" " <= ch <= "~" for ch in body)
    serialize = getattr(httpsig, "_ser_bare")  # noqa: B009
    if printable:
        assert parser(serialize(body)).string() == body
    else:
        with pytest.raises(ValueError):
            serialize(body)
