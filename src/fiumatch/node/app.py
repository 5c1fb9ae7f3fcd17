"""The FastAPI app factory of a node, and the one place typed errors become HTTP responses.

``create_app(service)`` mounts the peer routes (``/peer/v1``, signed wire frames), the analyst
and admin routes (``/api/v1``, bearer tokens), the auditor routes (``/audit/v1``) and
``/.well-known/fiumatch``. Routes are thin; every :class:`FiumatchError` is mapped once here,
with ``http_status`` and ``to_dict()``; a 429 carries ``Retry-After``. Errors on peer routes are
signed like any other peer response. ``build_service`` opens the node directory (settings
validated by ``fiumatch.node.settings.load_settings``, which refuses unsafe starts), unseals the
keys and opens the store; clock and rng are injected, so tests can be deterministic. The
lifespan runs the :class:`~fiumatch.node.scheduler.Scheduler` (epoch rotation, retention purge,
idle sessions). Every JSON API request first spends a token of its client's bucket
(:class:`~fiumatch.node.ratelimit.RateLimiter`, ``limits.*``): per bearer token on ``/api`` and
``/audit``, per claimed peer key id and address on ``/peer``; over it, 429 ``rate_limited``.

Never logs request bodies, identifiers or tokens.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from fiumatch.errors import FiumatchError
from fiumatch.node import httpsig
from fiumatch.node.directory import open_node_dir
from fiumatch.node.ratelimit import RateLimiter
from fiumatch.node.scheduler import Scheduler
from fiumatch.node.service import NodeService

__all__ = ["ErrorBody", "build_service", "create_app"]


class ErrorBody(BaseModel):
    """Every error answer: a stable ``error`` code, a ``reason``, optional ``details``."""

    error: str
    reason: str
    details: dict[str, Any] = {}


def _documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": ErrorBody, "description": HTTPStatus(s).phrase} for s in statuses}


# Every status a route of each group can answer (the OpenAPI documents them; schemathesis
# checks that nothing else comes back). 500 is never documented: it is always a bug.
PEER_ERRORS = _documented(400, 401, 403, 404, 409, 413, 422, 429, 502, 503)
API_ERRORS = _documented(400, 401, 403, 404, 409, 422, 429, 502, 503)
AUDIT_ERRORS = _documented(400, 401, 403, 404, 409, 422, 503)


def build_service(
    node_dir: Path,
    *,
    clock: Callable[[], float] = time.time,
    rng: Callable[[int], bytes] = os.urandom,
    env: Mapping[str, str] | None = None,
) -> NodeService:
    """Load and validate settings, unseal the keys, open the store: a ready service."""
    opened = open_node_dir(node_dir, env, now=int(clock()))
    return NodeService(
        settings=opened.settings,
        keys=opened.keys(),
        store=opened.open_store(),
        clock=clock,
        rng=rng,
    )


def create_app(
    service: NodeService, *, scheduler: bool = True, poll_seconds: float | None = None
) -> FastAPI:
    from fiumatch.node import routes_api, routes_audit, routes_peer, web

    duties = Scheduler(service, poll_seconds=poll_seconds)
    limiter = RateLimiter(service.settings.rate_per_second, service.settings.rate_burst)

    async def rate_limit(request: Request) -> None:
        if request.url.path.startswith("/peer/"):
            claimed = httpsig.claimed_keyid(httpsig.combine_headers(request.headers.items()))
            host = request.client.host if request.client else ""
            limiter.take(limiter.key("peer", f"{claimed or ''}@{host}"))
            return
        auth = request.headers.get("authorization")
        if auth:
            limiter.take(limiter.key("token", auth))
        else:
            limiter.take(limiter.key("anonymous", request.client.host if request.client else ""))

    limited = [Depends(rate_limit)]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if scheduler:
            duties.start()
        try:
            yield
        finally:
            duties.stop()
            service.close()

    app = FastAPI(
        title=f"fiumatch node {service.node_id}", lifespan=lifespan, docs_url=None, redoc_url=None
    )
    app.state.service = service
    app.state.scheduler = duties
    app.state.rate_limiter = limiter

    @app.exception_handler(FiumatchError)
    async def fiumatch_error(request: Request, exc: FiumatchError) -> Response:
        body = exc.to_dict()
        headers: dict[str, str] = {}
        retry = getattr(exc, "retry_after", None)
        if exc.http_status == 429 and retry is not None:
            headers["retry-after"] = str(retry)
        if request.url.path.startswith("/peer/"):
            return await routes_peer.signed_error(request, service, exc.http_status, body, headers)
        return JSONResponse(body, status_code=exc.http_status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        fields = sorted({".".join(str(p) for p in e.get("loc", ())) for e in exc.errors()})
        body = {"error": "invalid_request", "reason": "the request does not match its schema"}
        return JSONResponse({**body, "details": {"fields": fields}}, status_code=422)

    @app.exception_handler(HTTPException)
    async def framework_error(request: Request, exc: HTTPException) -> Response:
        # Starlette's own refusals (a body that is not JSON, an unknown route, a method not
        # allowed) in the node's error shape on the JSON APIs; the web pages keep their own.
        if not request.url.path.startswith(("/api/", "/peer/", "/audit/")):
            return await http_exception_handler(request, exc)
        code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
        body = {"error": code, "reason": str(exc.detail)}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.get("/.well-known/fiumatch")
    def well_known() -> dict[str, Any]:
        return service.well_known()

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "node_id": service.node_id}

    app.include_router(routes_peer.router(service), responses=PEER_ERRORS, dependencies=limited)
    app.include_router(routes_api.router(service), responses=API_ERRORS, dependencies=limited)
    app.include_router(routes_audit.router(service), responses=AUDIT_ERRORS, dependencies=limited)
    web.install(app, service)  # the /ui pages, their static files and security headers
    return app
