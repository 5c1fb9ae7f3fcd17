"""Known answers from RFC 9421 (HTTP Message Signatures) and RFC 9530 (Digest Fields).

Sources (public test material, copied from the RFC text):

* RFC 9421 Appendix B.1.4: the ``test-key-ed25519`` key pair (JWK ``d`` and ``x``).
* RFC 9421 Appendix B.2: the example request (``POST /foo?param=Value&Pet=dog``).
* RFC 9421 Appendix B.2.6: "Signing a Request Using ed25519" - signature base, Signature-Input
  and Signature. Ed25519 is deterministic, so signing must reproduce the signature exactly.
* RFC 9421 Section 2.4: the request-response binding example (signature base only: that
  example is signed with ECDSA, which is randomised).
* RFC 9530: ``sha-256`` of ``{"hello": "world"}``; RFC 9421 B.2's ``sha-512`` Content-Digest.
"""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fiumatch.node.httpsig import (
    BadSignatureError,
    Component,
    HttpRequest,
    HttpResponse,
    UnknownKeyError,
    content_digest,
    signature_base,
    signature_params_value,
    verify_content_digest,
    verify_message,
)


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


RFC_ED25519_D = _b64url("n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU")
RFC_ED25519_X = _b64url("JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs")
RFC_KEY = Ed25519PrivateKey.from_private_bytes(RFC_ED25519_D)

RFC_BODY = b'{"hello": "world"}'
RFC_SHA512_DIGEST = (
    "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+Ab"
    "wAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:"
)
RFC_REQUEST_HEADERS = {
    "Host": "example.com",
    "Date": "Tue, 20 Apr 2021 02:07:55 GMT",
    "Content-Type": "application/json",
    "Content-Digest": RFC_SHA512_DIGEST,
    "Content-Length": "18",
}
RFC_REQUEST = HttpRequest(
    method="POST",
    target="/foo?param=Value&Pet=dog",
    authority="example.com",
    headers=RFC_REQUEST_HEADERS,
    body=RFC_BODY,
)

B26_COMPONENTS = [
    Component(name)
    for name in ("date", "@method", "@path", "@authority", "content-type", "content-length")
]
B26_PARAMS: list[tuple[str, int | str]] = [("created", 1618884473), ("keyid", "test-key-ed25519")]
B26_BASE = (
    '"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
    '"@method": POST\n'
    '"@path": /foo\n'
    '"@authority": example.com\n'
    '"content-type": application/json\n'
    '"content-length": 18\n'
    '"@signature-params": ("date" "@method" "@path" "@authority" "content-type" '
    '"content-length");created=1618884473;keyid="test-key-ed25519"'
)
B26_SIGNATURE_INPUT = (
    'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length")'
    ';created=1618884473;keyid="test-key-ed25519"'
)
B26_SIGNATURE = (
    "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1"
    "u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:"
)


def test_the_rfc_seed_yields_the_published_public_key() -> None:
    assert RFC_KEY.public_key().public_bytes_raw() == RFC_ED25519_X


def test_b26_signature_base_is_byte_exact() -> None:
    assert signature_base(RFC_REQUEST, B26_COMPONENTS, B26_PARAMS) == B26_BASE.encode()


def test_b26_signature_input_serialisation() -> None:
    assert "sig-b26=" + signature_params_value(B26_COMPONENTS, B26_PARAMS) == B26_SIGNATURE_INPUT


def test_b26_signing_reproduces_the_published_signature() -> None:
    signature = RFC_KEY.sign(signature_base(RFC_REQUEST, B26_COMPONENTS, B26_PARAMS))
    assert "sig-b26=:" + base64.b64encode(signature).decode() + ":" == B26_SIGNATURE


def test_b26_published_signature_verifies() -> None:
    headers = {**RFC_REQUEST_HEADERS, "Signature-Input": B26_SIGNATURE_INPUT}
    headers["Signature"] = B26_SIGNATURE
    message = HttpRequest(
        method="POST", target=RFC_REQUEST.target, authority="example.com", headers=headers
    )
    keys = {"test-key-ed25519": RFC_KEY.public_key()}
    verified = verify_message(message, label="sig-b26", resolve_key=keys.get)
    assert verified.keyid == "test-key-ed25519"
    assert verified.created == 1618884473
    assert verified.components == tuple(c.serialize() for c in B26_COMPONENTS)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("method", "PUT"),
        ("target", "/bar?param=Value&Pet=dog"),
        ("authority", "example.org"),
        ("Content-Type", "text/plain"),
        ("Date", "Tue, 20 Apr 2021 02:07:56 GMT"),
    ],
)
def test_b26_signature_fails_when_a_covered_component_changes(field: str, value: str) -> None:
    headers = {**RFC_REQUEST_HEADERS, "Signature-Input": B26_SIGNATURE_INPUT}
    headers["Signature"] = B26_SIGNATURE
    parts = {"method": "POST", "target": RFC_REQUEST.target, "authority": "example.com"}
    if field in parts:
        parts[field] = value
    else:
        headers[field] = value
    message = HttpRequest(
        method=parts["method"],
        target=parts["target"],
        authority=parts["authority"],
        headers=headers,
    )
    keys = {"test-key-ed25519": RFC_KEY.public_key()}
    with pytest.raises(BadSignatureError):
        verify_message(message, label="sig-b26", resolve_key=keys.get)


def test_b26_with_an_unknown_key() -> None:
    headers = {**RFC_REQUEST_HEADERS, "Signature-Input": B26_SIGNATURE_INPUT}
    headers["Signature"] = B26_SIGNATURE
    message = HttpRequest(method="POST", target="/foo", authority="example.com", headers=headers)
    with pytest.raises(UnknownKeyError):
        verify_message(message, label="sig-b26", resolve_key=lambda keyid: None)


# --- RFC 9421 section 2.4: request-response binding --------------------------------------

S24_REQUEST_SIGNATURE = (
    "sig1=:LAH8BjcfcOcLojiuOBFWn0P5keD3xAOuJRGziCLuD8r5MW9S0RoXXLzLSRfGY/3SF8kVIkHjE13SEFdTo4Af"
    "/fJ/Pu9wheqoLVdwXyY/UkBIS1M8Brc8IODsn5DFIrG0IrburbLi0uCc+E2ZIIb6HbUJ+o+jP58JelMTe0QE3IpW"
    "INTEzpxjqDf5/Df+InHCAkQCTuKsamjWXUpyOT1Wkxi7YPVNOjW4MfNuTZ9HdbD2Tr65+BXeTG9ZS/9SWuXAc+BZ"
    "8WyPz0QRz//ec3uWXd7bYYODSjRAxHqX+S1ag3LZElYyUKaAIjZ8MGOt4gXEwCSLDv/zqxZeWLj/PDkn6w==:"
)
S24_BASE = (
    '"@status": 503\n'
    '"content-length": 62\n'
    '"content-type": application/json\n'
    '"signature";req;key="sig1": :LAH8BjcfcOcLojiuOBFWn0P5keD3xAOuJRGziCLuD8r5MW9S0RoXXLzLSRfGY'
    "/3SF8kVIkHjE13SEFdTo4Af/fJ/Pu9wheqoLVdwXyY/UkBIS1M8Brc8IODsn5DFIrG0IrburbLi0uCc+E2ZIIb6HbU"
    "J+o+jP58JelMTe0QE3IpWINTEzpxjqDf5/Df+InHCAkQCTuKsamjWXUpyOT1Wkxi7YPVNOjW4MfNuTZ9HdbD2Tr65+"
    "BXeTG9ZS/9SWuXAc+BZ8WyPz0QRz//ec3uWXd7bYYODSjRAxHqX+S1ag3LZElYyUKaAIjZ8MGOt4gXEwCSLDv/zqxZ"
    "eWLj/PDkn6w==:\n"
    '"@authority";req: example.com\n'
    '"@method";req: POST\n'
    '"@signature-params": ("@status" "content-length" "content-type" '
    '"signature";req;key="sig1" "@authority";req "@method";req)'
    ';created=1618884479;keyid="test-key-ecc-p256"'
)


def test_section_2_4_response_signature_base_with_req_components() -> None:
    request = HttpRequest(
        method="POST",
        target="/foo?param=Value&Pet=dog",
        authority="example.com",
        headers={**RFC_REQUEST_HEADERS, "Signature": S24_REQUEST_SIGNATURE},
    )
    response = HttpResponse(
        status=503,
        headers={
            "Date": "Tue, 20 Apr 2021 02:07:56 GMT",
            "Content-Type": "application/json",
            "Content-Length": "62",
        },
    )
    components = [
        Component.parse('"@status"'),
        Component.parse('"content-length"'),
        Component.parse('"content-type"'),
        Component.parse('"signature";req;key="sig1"'),
        Component.parse('"@authority";req'),
        Component.parse('"@method";req'),
    ]
    params: list[tuple[str, int | str]] = [
        ("created", 1618884479),
        ("keyid", "test-key-ecc-p256"),
    ]
    assert signature_base(response, components, params, request=request) == S24_BASE.encode()


# --- Content-Digest ------------------------------------------------------------------------


def test_content_digest_known_answers() -> None:
    assert content_digest(RFC_BODY) == "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
    assert content_digest(RFC_BODY, "sha-512") == RFC_SHA512_DIGEST
    assert content_digest(b"") == "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"
    with pytest.raises(ValueError):
        content_digest(b"", "md5")


def test_verify_content_digest_checks_every_known_member() -> None:
    both = f"{content_digest(RFC_BODY)}, {RFC_SHA512_DIGEST}"
    verify_content_digest(both, RFC_BODY)
    verify_content_digest(content_digest(RFC_BODY) + ", unknown=:AAAA:", RFC_BODY)
