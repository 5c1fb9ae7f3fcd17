"""Peer routes (``/peer/v1``): signed node-to-node requests and signed responses.

Every request must carry a valid RFC 9421 signature by a pinned peer, addressed to this node,
with a fresh nonce; otherwise 401 with the reason, audited. Protocol frames are
``application/octet-stream``; opening a session and disclosure requests are JSON. Thin: the body
is read on the event loop, then one threadpool call verifies the request (and opens the audit
exchange), calls the service and signs the answer (the store, the protocol maths, signing and
the audit commit of the answer block; a hop to the threadpool costs a thread switch, so there is
one per request); never on the event loop.

The signed ``@path``/``@query`` are the request target *as sent* (ASGI ``raw_path`` and the raw
query string), never Starlette's percent-decoded ``url.path``: a signer and a verifier must see
the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from fiumatch.errors import FiumatchError
from fiumatch.node import audit, httpsig
from fiumatch.node.errors import BadRequestError, BodyTooLargeError, MissingComponentError
from fiumatch.node.keys import public_key_from_raw
from fiumatch.node.service import NodeService

__all__ = ["request_target", "router", "signed_error"]


def request_target(request: Request) -> str:
    """The origin-form request target exactly as the client sent it (path and query)."""
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) and raw else request.url.path
    query = request.scope.get("query_string", b"")
    if isinstance(query, bytes) and query:
        return f"{path}?{query.decode('latin-1')}"
    return path


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError(max_body_bytes=limit)
    body = await request.body()
    if len(body) > limit:
        raise BodyTooLargeError(max_body_bytes=limit)
    return body


async def _read(request: Request, service: NodeService) -> tuple[dict[str, str], bytes]:
    """The request's headers and body (read on the event loop). A body over the limit, or a
    peer that leaves mid-body, is refused and audited (claimed sender) before any check."""
    headers = httpsig.combine_headers(request.headers.items())
    try:
        body = await _body(request, service.settings.max_body_bytes)
    except (BodyTooLargeError, ClientDisconnect) as exc:
        claimed = httpsig.claimed_keyid(headers)
        session = headers.get("fiumatch-session", "")
        await run_in_threadpool(service.refuse_unauthenticated, claimed, session, b"", "protocol")
        if isinstance(exc, ClientDisconnect):  # the peer left mid-body: nobody gets an answer
            raise BadRequestError("the connection closed before the body was complete") from None
        raise
    return headers, body


def _check(request: Request, service: NodeService, headers: dict[str, str], body: bytes) -> str:
    """Verify the request's signature (pinned active peer, addressed to us, fresh nonce) and
    open its audit exchange; the verified peer id. A failure is audited as a refusal."""
    target = request_target(request)

    def resolve(keyid: str) -> Any:
        peer = service.store.peers.get(keyid)
        return public_key_from_raw(peer.public_key) if peer and peer.active else None

    try:
        verified = httpsig.verify_request(
            method=request.method,
            target=target,
            authority=headers.get("host", ""),
            headers=headers,
            body=body,
            resolve_key=resolve,
            nonces=service.store.nonces,
            now=service.now(),
            policy=service.verify_policy,
            expected_peer=service.node_id,
        )
    except FiumatchError:
        service.refuse_unauthenticated(
            httpsig.claimed_keyid(headers), headers.get("fiumatch-session", ""), body
        )
        raise
    # Set before the audit exchange opens: a split view it finds is answered signed.
    request.state.peer_id = verified.keyid
    audit.begin_incoming(service, request, verified.keyid, body)
    return verified.keyid


def _sign(
    request: Request,
    service: NodeService,
    status: int,
    body: bytes,
    content_type: str,
    extra: dict[str, str] | None = None,
) -> Response:
    headers = {"content-type": content_type, "fiumatch-peer": request.state.peer_id}
    for name in ("fiumatch-session", "fiumatch-epoch"):
        if name in request.headers:
            headers[name] = request.headers[name]
    headers.update(extra or {})
    # The receipts and cosignature go in before signing: every fiumatch-* header is covered.
    headers.update(audit.answer_headers(service, request, status, body))
    req = httpsig.HttpRequest(
        method=request.method,
        target=request_target(request),
        authority=request.headers.get("host", ""),
        headers=httpsig.combine_headers(request.headers.items()),
    )
    headers.update(
        httpsig.sign_response(
            status=status,
            headers=headers,
            body=body,
            request=req,
            key=service.keys.identity,
            keyid=service.node_id,
            now=service.now(),
            rng=service.rng,
        )
    )
    return Response(content=body, status_code=status, headers=headers, media_type=content_type)


async def _signed(
    request: Request,
    service: NodeService,
    status: int,
    body: bytes,
    content_type: str,
    extra: dict[str, str] | None = None,
) -> Response:
    """:func:`_sign` in the threadpool: signing and the audit commit (SQLite) block."""
    return await run_in_threadpool(_sign, request, service, status, body, content_type, extra)


async def _answered(
    request: Request,
    service: NodeService,
    content_type: str,
    call: Callable[[str, bytes], Any],
) -> Response:
    """Read the body, then in one threadpool call: verify the request and open its audit
    exchange (:func:`_check`), call the service with the verified peer id and the body, and
    sign its answer (JSON unless ``content_type`` is octets). An error propagates unsigned to
    ``signed_error`` (which signs it once the peer is verified)."""
    headers, body = await _read(request, service)

    def run() -> Response:
        peer_id = _check(request, service, headers, body)
        result = call(peer_id, body)
        if content_type == "application/json":
            result = json.dumps(result, sort_keys=True).encode()
        return _sign(request, service, 200, result, content_type)

    return await run_in_threadpool(run)


def _json_body(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        raise BadRequestError("the body is not JSON") from None
    if not isinstance(data, dict):
        raise BadRequestError("the body is not a JSON object")
    return data


async def signed_error(
    request: Request, service: NodeService, status: int, body: dict[str, Any], extra: dict[str, str]
) -> Response:
    data = json.dumps(body, sort_keys=True).encode()
    if getattr(request.state, "peer_id", None):
        try:
            return await _signed(request, service, status, data, "application/json", extra)
        except (FiumatchError, ValueError):
            pass
    return Response(content=data, status_code=status, headers=extra, media_type="application/json")


def router(service: NodeService) -> APIRouter:
    r = APIRouter(prefix="/peer/v1")
    json_type = "application/json"

    @r.post("/sessions")
    async def open_session(request: Request) -> Response:
        def call(peer_id: str, body: bytes) -> Any:
            meta = _json_body(body)
            if meta.get("session_id") != request.headers.get("fiumatch-session"):
                raise MissingComponentError("the signed session header does not match the body")
            return service.open_session(peer_id, body, meta)

        return await _answered(request, service, json_type, call)

    @r.post("/sessions/{session_id}/frames")
    async def frames(session_id: str, request: Request) -> Response:
        def call(peer_id: str, body: bytes) -> Any:
            if request.headers.get("fiumatch-session") != session_id:
                raise MissingComponentError("the signed session header does not match the path")
            raw_epoch = request.headers.get("fiumatch-epoch")
            if raw_epoch is None:
                raise MissingComponentError("the signed epoch header is missing")
            # decimal digits only: int() would also take "+1", " 1", "1_0" and non-ASCII digits
            if not (raw_epoch.isascii() and raw_epoch.isdigit()) or len(raw_epoch) > 19:
                raise BadRequestError("the fiumatch-epoch header is not a decimal epoch number")
            return service.session_frames(peer_id, session_id, int(raw_epoch), body)

        return await _answered(request, service, "application/octet-stream", call)

    @r.post("/disclosures")
    async def disclosure(request: Request) -> Response:
        def call(peer_id: str, body: bytes) -> Any:
            return service.receive_disclosure(peer_id, body, _json_body(body))

        return await _answered(request, service, json_type, call)

    @r.get("/disclosures/{disclosure_id}")
    async def disclosure_status(disclosure_id: str, request: Request) -> Response:
        def call(peer_id: str, body: bytes) -> Any:
            return service.disclosure_for_peer(peer_id, disclosure_id)

        return await _answered(request, service, json_type, call)

    @r.post("/disclosures/{disclosure_id}/onward")
    async def onward(disclosure_id: str, request: Request) -> Response:
        def call(peer_id: str, body: bytes) -> Any:
            return service.receive_onward(peer_id, disclosure_id, body, _json_body(body))

        return await _answered(request, service, json_type, call)

    return r
