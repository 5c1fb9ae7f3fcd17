"""Peer routes (``/peer/v1``): signed node-to-node requests and signed responses.

Every request must carry a valid RFC 9421 signature by a pinned peer, addressed to this node,
with a fresh nonce; otherwise 401 with the reason, audited. Protocol frames are
``application/octet-stream``; opening a session and disclosure requests are JSON. Thin: verify,
call the service, sign the answer.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from fiumatch.errors import FiumatchError
from fiumatch.node import httpsig
from fiumatch.node.keys import public_key_from_raw
from fiumatch.node.service import NodeService, _digest

__all__ = ["router", "signed_error"]


def _target(request: Request) -> str:
    q = request.url.query
    return request.url.path + (f"?{q}" if q else "")


async def _verify(request: Request, service: NodeService) -> tuple[str, bytes]:
    body = await request.body()
    headers = httpsig.combine_headers(request.headers.items())

    def resolve(keyid: str) -> Any:
        peer = service.store.peers.get(keyid)
        return public_key_from_raw(peer.public_key) if peer and peer.active else None

    def check() -> str:
        try:
            verified = httpsig.verify_request(
                method=request.method,
                target=_target(request),
                authority=headers.get("host", ""),
                headers=headers,
                body=body,
                resolve_key=resolve,
                nonces=service.store.nonces,
                now=service.now(),
                expected_peer=service.node_id,
            )
        except FiumatchError as exc:
            sig_input = headers.get("signature-input", "")
            claimed = (
                sig_input.split('keyid="', 1)[-1].split('"', 1)[0]
                if "keyid" in sig_input
                else "unknown"
            )
            service.audit.record(
                "refusal",
                actor=service.node_id,
                peer=claimed or "unknown",
                session=headers.get("fiumatch-session", "")
                if len(headers.get("fiumatch-session", "")) == 32
                else "00" * 16,
                request_digest=_digest(body),
                extra={"direction": "in", "clause": "auth"},
            )
            raise exc
        return verified.keyid

    peer_id = await run_in_threadpool(check)
    request.state.peer_id = peer_id
    return peer_id, body


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
    req = httpsig.HttpRequest(
        method=request.method,
        target=_target(request),
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
    headers.update(extra or {})
    return Response(content=body, status_code=status, headers=headers, media_type=content_type)


async def signed_error(
    request: Request, service: NodeService, status: int, body: dict[str, Any], extra: dict[str, str]
) -> Response:
    data = json.dumps(body, sort_keys=True).encode()
    if getattr(request.state, "peer_id", None):
        try:
            return _sign(request, service, status, data, "application/json", extra)
        except (FiumatchError, ValueError):
            pass
    return Response(content=data, status_code=status, headers=extra, media_type="application/json")


def router(service: NodeService) -> APIRouter:
    r = APIRouter(prefix="/peer/v1")

    @r.post("/sessions")
    async def open_session(request: Request) -> Response:
        peer_id, body = await _verify(request, service)
        meta = json.loads(body or b"{}")
        if meta.get("session_id") != request.headers.get("fiumatch-session"):
            from fiumatch.node.errors import MissingComponentError

            raise MissingComponentError("the signed session header does not match the body")
        result = await run_in_threadpool(service.open_session, peer_id, body, meta)
        return _sign(
            request, service, 200, json.dumps(result, sort_keys=True).encode(), "application/json"
        )

    @r.post("/sessions/{session_id}/frames")
    async def frames(session_id: str, request: Request) -> Response:
        peer_id, body = await _verify(request, service)
        from fiumatch.node.errors import MissingComponentError

        if request.headers.get("fiumatch-session") != session_id:
            raise MissingComponentError("the signed session header does not match the path")
        try:
            epoch = int(request.headers.get("fiumatch-epoch", ""))
        except ValueError:
            raise MissingComponentError("the signed epoch header is missing") from None
        out = await run_in_threadpool(service.session_frames, peer_id, session_id, epoch, body)
        return _sign(request, service, 200, out, "application/octet-stream")

    @r.post("/disclosures")
    async def disclosure(request: Request) -> Response:
        peer_id, body = await _verify(request, service)
        result = await run_in_threadpool(
            service.receive_disclosure, peer_id, body, json.loads(body or b"{}")
        )
        return _sign(request, service, 200, json.dumps(result).encode(), "application/json")

    @r.get("/disclosures/{disclosure_id}")
    async def disclosure_status(disclosure_id: str, request: Request) -> Response:
        peer_id, _ = await _verify(request, service)
        result = await run_in_threadpool(service.disclosure_for_peer, peer_id, disclosure_id)
        return _sign(request, service, 200, json.dumps(result).encode(), "application/json")

    return r
