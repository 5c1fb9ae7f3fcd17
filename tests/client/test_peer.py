"""The signed peer client against an in-process fake peer (httpx.MockTransport): what it signs,
and what it keeps from a refusal."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fiumatch.client.peer import PeerClient, PeerError
from fiumatch.node import httpsig
from fiumatch.node.keys import fingerprint
from fiumatch.store import Peer
from tests.node.helpers import det_rng

NOW = 1_760_000_000
OWN = Ed25519PrivateKey.from_private_bytes(b"\x01" * 32)
PEER = Ed25519PrivateKey.from_private_bytes(b"\x02" * 32)
Handler = Callable[[httpx.Request], httpx.Response]


def _raw(key: Ed25519PrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _client(url: str, handler: Handler) -> PeerClient:
    raw = _raw(PEER)
    peer = Peer(node_id="FIU-B", url=url, public_key=raw, fingerprint=fingerprint(raw), added_at=0)
    return PeerClient(
        own_id="FIU-A",
        key=OWN,
        peer=peer,
        clock=lambda: NOW,
        rng=det_rng(),
        transport=httpx.MockTransport(handler),
    )


def _as_peer(req: httpx.Request) -> httpx.Response:
    """What a real peer does: verify the request against the Host it received, sign the answer."""
    headers = httpsig.combine_headers(req.headers.multi_items())
    target = req.url.raw_path.decode("latin-1")
    try:
        httpsig.verify_request(
            method=req.method,
            target=target,
            authority=req.headers["host"],
            headers=headers,
            body=req.content,
            resolve_key=lambda kid: OWN.public_key() if kid == "FIU-A" else None,
            nonces=httpsig.InMemoryNonceCache(),
            now=NOW,
            expected_peer="FIU-B",
        )
    except httpsig.NodeAuthError as exc:
        return httpx.Response(401, json={"error": exc.code, "reason": exc.reason})
    body = json.dumps({"epoch": 1}).encode()
    out = {"content-type": "application/json", "fiumatch-peer": "FIU-A"}
    if "fiumatch-session" in headers:
        out["fiumatch-session"] = headers["fiumatch-session"]
    request = httpsig.HttpRequest(
        method=req.method, target=target, authority=req.headers["host"], headers=headers
    )
    out.update(
        httpsig.sign_response(
            status=200,
            headers=out,
            body=body,
            request=request,
            key=PEER,
            keyid="FIU-B",
            now=NOW,
            rng=det_rng(b"peer"),
        )
    )
    return httpx.Response(200, headers=out, content=body)


@pytest.mark.parametrize(
    "url", ["https://fiu-b.test:443", "http://fiu-b.test:80", "https://fiu-b.test:8443/"]
)
def test_the_signed_authority_is_the_host_header_httpx_sends(url: str) -> None:
    # httpx leaves a scheme's default port out of Host: the signature must cover that value.
    with _client(url, _as_peer) as client:
        assert client.disclosure_status("d-1") == {"epoch": 1}


def test_an_unsigned_rate_limit_keeps_its_retry_after() -> None:
    def limited(req: httpx.Request) -> httpx.Response:
        body = {"error": "rate_limited", "reason": "slow down", "details": {"retry_after": 7}}
        return httpx.Response(429, json=body, headers={"retry-after": "7"})

    with _client("https://fiu-b.test:8443", limited) as client, pytest.raises(PeerError) as caught:
        client.disclosure_status("d-1")
    assert caught.value.code == "rate_limited"
    assert caught.value.status == 429
    assert caught.value.retry_after == 7


@pytest.mark.parametrize("value", ["soon", "-3", "", "99999999999999999999"])
def test_a_malformed_or_absurd_retry_after_is_not_believed(value: str) -> None:
    def limited(req: httpx.Request) -> httpx.Response:
        body = {"error": "rate_limited", "reason": "slow down"}
        return httpx.Response(429, json=body, headers={"retry-after": value})

    with _client("https://fiu-b.test:8443", limited) as client, pytest.raises(PeerError) as caught:
        client.disclosure_status("d-1")
    assert caught.value.code == "rate_limited"
    assert caught.value.retry_after is None
