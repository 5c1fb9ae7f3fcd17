"""Fuzzing the node's decoders of peer input: HTTP message signatures (the RFC 8941
structured fields of Signature-Input, Signature and Content-Digest, then ``verify_request``
on whole requests) and sealed secrets (``unseal``); and match keys (``decode_key``).

The structured-field parser's contract is ``ValueError`` (``parse_dictionary``'s docstring);
``verify_request`` turns every failure into a ``NodeAuthError`` (401), which is what a peer
sees. A signed request or sealed blob is never accepted once mutated, except in ways that
leave what was signed unchanged (header-name case, uncovered headers, a second label).
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fiumatch.identifiers.keys import KeyType, MatchKey
from tests.fuzz._support import Mutant, fuzz_settings, mutants
from tests.fuzz.checks import parse_http_request, run_check, samples

_S = samples()
_GOOD_DIGEST = (
    "sha-256=:" + base64.b64encode(hashlib.sha256(_S.content_digest_body).digest()).decode() + ":"
)

# Pieces of RFC 8941 syntax, so that generated fields get deep into the parser.
_SF_PIECES = st.sampled_from(
    [
        "a",
        "sig1",
        "sha-256",
        "*k",
        "=",
        "(",
        ")",
        ";",
        ",",
        " ",
        "\t",
        '"',
        "\\",
        ":",
        "?1",
        "?0",
        "?",
        "1",
        "-",
        "12.5",
        "1.2345",
        "999999999999999",
        "9999999999999999",
        "1.",
        "YWJj",
        "YWJj:",
        ":YWJj:",
        ":",
        "=:",
        "tok/en",
        "@method",
        '"@path"',
        ";req",
        ';key="x"',
        "é",
        "\x00",
        "\udc80",
        "A",
        "Z9",
    ]
)


@fuzz_settings(400)
@given(
    st.one_of(
        st.lists(_SF_PIECES, max_size=16).map("".join),
        st.text(max_size=40),
    ).map(lambda t: t.encode("utf-8", "surrogateescape"))
)
def test_structured_fields(data: bytes) -> None:
    run_check("sf_dictionary", data)


@fuzz_settings(200)
@given(
    st.one_of(
        st.lists(_SF_PIECES, max_size=12).map(lambda p: "sha-256=" + "".join(p)),
        st.just(_GOOD_DIGEST),
        st.just(_GOOD_DIGEST + ", sha-512=:" + base64.b64encode(bytes(64)).decode() + ":"),
    )
    .map(lambda t: t.encode("utf-8", "surrogateescape"))
    .flatmap(lambda d: st.one_of(st.just(d), mutants(d).map(lambda m: m.data)))
)
def test_content_digest(data: bytes) -> None:
    run_check("content_digest", data)


@fuzz_settings(300)
@given(mutants(_S.http_request))
def test_signed_request_mutants(mutant: Mutant) -> None:
    """No mutant verifies unless its signature base and body are the signed ones."""
    run_check("http_request", mutant.data)


def _replace_header(name: str, value: str) -> bytes:
    req = parse_http_request(_S.http_request)
    assert req is not None
    headers = dict(req.headers)
    headers[name] = value
    head = "\n".join(
        [req.method, req.target, req.authority, *[f"{k}: {v}" for k, v in headers.items()]]
    )
    return head.encode("utf-8", "surrogateescape") + b"\n\n" + req.body


@fuzz_settings(300)
@given(
    st.sampled_from(
        [
            "Signature-Input",
            "Signature",
            "Content-Digest",
            "Fiumatch-Peer",
            "content-type",
            "signature-input",
        ]
    ),
    st.one_of(st.lists(_SF_PIECES, max_size=20).map("".join), st.text(max_size=60)),
)
def test_garbage_signature_headers(name: str, value: str) -> None:
    """The signed request with one header replaced by garbage (or a second spelling of a
    header name added): only NodeAuthError."""
    run_check("http_request", _replace_header(name, value))


@fuzz_settings(100)
@given(st.binary(max_size=200))
def test_arbitrary_requests(data: bytes) -> None:
    run_check("http_request", b"POST\n/\nh\n" + data)


@fuzz_settings(60)
@given(
    st.one_of(
        st.binary(max_size=120), st.binary(max_size=90).map(lambda b: b"FMSEAL\x01\x0a\x08\x01" + b)
    )
)
def test_sealed_arbitrary(data: bytes) -> None:
    run_check("sealed", data)


@fuzz_settings(60)
@given(mutants(_S.sealed))
def test_sealed_mutants(mutant: Mutant) -> None:
    """Every mutant of a sealed secret is refused with a SealingError (checked in
    check_sealed: the only blob that opens is the one that was sealed)."""
    run_check("sealed", mutant.data)


# --- identifiers -------------------------------------------------------------------------------

_KEYS = st.sampled_from(list(KeyType)).flatmap(
    lambda kt: st.lists(st.text(max_size=12), min_size=len(kt.fields), max_size=len(kt.fields)).map(
        lambda fs: MatchKey(kt, tuple(f.encode("utf-8", "replace").decode() for f in fs))
    )
)


@fuzz_settings(200)
@given(
    st.one_of(st.binary(max_size=60), st.binary(max_size=40).map(lambda b: b"fiumatch-mk\x01" + b))
)
def test_match_key_arbitrary(data: bytes) -> None:
    run_check("match_key", data)


@fuzz_settings(200)
@given(st.one_of(st.sampled_from(_S.match_keys), _KEYS.map(MatchKey.encode)).flatmap(mutants))
def test_match_key_mutants(mutant: Mutant) -> None:
    """A mutant is refused or is another well-formed key: match keys carry no integrity check
    by design. They never leave the node; only their OPRF outputs do, inside signed bodies."""
    run_check("match_key", mutant.data)


def test_samples_are_accepted() -> None:
    from fiumatch.identifiers.keys import decode_key
    from fiumatch.node import sealing

    for k in _S.match_keys:
        assert decode_key(k).encode() == k
    assert sealing.sealed_purpose(_S.sealed) == "node-identity-ed25519"
    run_check("http_request", _S.http_request)  # asserts it verifies


@pytest.mark.parametrize("value", ["\u00b2", "1:\u00b3:", "\u00b9\u00b2:3:"])
def test_audit_headers_from_a_peer_never_raise(value: str) -> None:
    """node/audit.py read the unsigned fiumatch-audit-have/-want/-proof headers with
    str.isdigit() then int(): '²' (U+00B2, a latin-1 byte any header can carry) passed the
    first and made the second raise ValueError (fixed in 3e83280 after this test found it)."""
    from fiumatch.node import audit

    assert audit._decode_proof(value) is None
    assert audit._int(value) is None


@fuzz_settings(300)
@given(
    st.one_of(
        st.text(max_size=30),
        st.lists(
            st.sampled_from(["1", "0", "²", "١", ":", "-", "+", " ", "AAAA", "=", "9" * 19]),
            max_size=8,
        ).map("".join),
    )
)
def test_audit_header_values_decode_or_are_ignored(value: str) -> None:
    """Whatever a peer puts in the size and proof headers: a value or None, never an error."""
    from fiumatch.node import audit

    n = audit._int(value)
    assert n is None or (value.isascii() and value.isdigit() and int(value) == n < 10**19)
    proof = audit._decode_proof(value)
    assert proof is None or all(len(h) == 32 for h in proof[2])
