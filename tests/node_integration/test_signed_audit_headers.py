"""The audit receipt and cosigning headers travel signed, on real nodes: the asking node signs
the ``fiumatch-audit-*`` headers it adds to a request, the answering node signs the receipts
it adds to its response, and a ``fiumatch-audit-*`` header added after signing is refused
(401) instead of being read unsigned."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx
import pytest

from fiumatch.client.peer import PeerError
from fiumatch.node import httpsig
from fiumatch.node.audit import H_HAVE, H_RECEIPTS

from .conftest import Trio, peer_client

pytestmark = pytest.mark.slow


class _Asker:
    """What an asking node's AuditSink adds: here only the size of our checkpoint of the
    peer's log (none yet)."""

    def outgoing_headers(self, peer_id: str) -> dict[str, str]:
        return {H_HAVE: "0"}

    def after_response(self, *args: Any) -> None:
        return None


def _covered(headers: Mapping[str, str]) -> set[str]:
    inputs = httpsig.parse_dictionary(httpsig.combine_headers(headers.items())["signature-input"])
    member = inputs["fiumatch"]
    assert isinstance(member, httpsig.InnerList)
    return {str(item.value) for item in member.items}


def _capture(client: Any, tamper: Callable[[dict[str, str]], None] | None = None) -> list[Any]:
    seen: list[Any] = []
    send = client._send

    def spy(method: str, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        if tamper is not None:
            tamper(headers)
        seen.append(headers)
        response: httpx.Response = send(method, path, body, headers)
        seen.append(response)
        return response

    client._send = spy
    return seen


def test_audit_headers_are_signed_on_the_request_and_on_the_response(trio: Trio) -> None:
    client, _ = peer_client(trio.x, trio.y)
    client._audit = _Asker()  # type: ignore[assignment]  # a stand-in sink
    seen = _capture(client)
    with client, pytest.raises(PeerError) as err:
        client.signed_request("GET", "/peer/v1/disclosures/d-0", b"", content_type="text/plain")
    # Authenticated both ways (a refused request is still answered with a receipt).
    assert (err.value.status, err.value.code) == (404, "not_found")
    sent, response = seen
    assert H_HAVE in _covered(sent)
    assert H_RECEIPTS in response.headers
    covered = _covered(dict(response.headers))
    assert {h for h in response.headers if h.startswith("fiumatch-")} <= covered
    assert H_RECEIPTS in covered


def test_an_audit_header_added_after_signing_is_refused(trio: Trio) -> None:
    client, _ = peer_client(trio.x, trio.y)
    seen = _capture(client, tamper=lambda headers: headers.update({H_HAVE: "7"}))
    with client, pytest.raises(PeerError) as err:
        client.signed_request("GET", "/peer/v1/disclosures/d-0", b"", content_type="text/plain")
    assert err.value.status == 401
    assert seen[1].json()["error"] == "missing_component"
