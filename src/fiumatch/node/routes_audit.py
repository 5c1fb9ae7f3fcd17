"""Auditor routes (``/audit/v1``): the audit log as an auditor reads it. Bearer token, role
auditor (or admin). Thin: check the role, call one :class:`~fiumatch.node.audit.AuditSink`
method, return its dict (or stream its bundle).

* ``GET /status``: size, latest checkpoint, counts;
* ``GET /entries?start=&end=&limit=``: entries as JSON (at most 10,000 per page);
* ``GET /checkpoint?fresh=``: the latest signed checkpoint (``fresh``: sign one now);
* ``GET /proof/inclusion?index=&size=``: an inclusion proof (default size: a signed checkpoint
  that includes the entry), with that checkpoint;
* ``GET /proof/consistency?first=&second=``: a consistency proof between two sizes;
* ``GET /export?start=&every=``: the bundle (``application/octet-stream``), streamed; ``every``
  thins the checkpoints (one at least every so many entries, each peer's newest cosigned one;
  0 keeps them all);
* ``GET /keys``: the log's and the peers' verifier keys and fingerprints (what to pin, and to
  compare out of band);
* ``GET /witness``: peers' checkpoints this node cosigned, and any split-view evidence.

Entries hold no identifiers by construction; these routes never show anything else.
"""

# No ``from __future__ import annotations`` here: FastAPI must evaluate the route signatures,
# whose ``Annotated[..., Depends(current)]`` refer to a closure variable.

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import JSONResponse, StreamingResponse

from fiumatch.node.audit import AuditSink
from fiumatch.node.errors import BadTokenError
from fiumatch.node.service import NodeService
from fiumatch.store import User

__all__ = ["BUNDLE_MEDIA_TYPE", "router"]

BUNDLE_MEDIA_TYPE = "application/octet-stream"


def router(service: NodeService) -> APIRouter:
    r = APIRouter(prefix="/audit/v1")
    sink: AuditSink = service.audit

    # The token check and the proof routes are ``async``: each is a few indexed SQLite reads
    # (well under a millisecond), cheaper on the event loop than a hop to the thread pool.
    # Entries and the export read more and stay plain ``def`` routes (thread pool).
    async def auditor(authorization: Annotated[str, Header()] = "") -> User:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise BadTokenError("a bearer token is required")
        user = service.authenticate(token.strip())
        service.require_role(user, "auditor")
        return user

    Auditor = Annotated[User, Depends(auditor)]

    @r.get("/status")
    async def status(user: Auditor) -> Any:
        return JSONResponse(sink.status())

    @r.get("/entries")
    def entries(
        user: Auditor,
        start: Annotated[int, Query(ge=0)] = 0,
        end: Annotated[int | None, Query(ge=0)] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> Any:
        return sink.entries(start, end, limit)

    @r.get("/checkpoint")
    async def checkpoint(user: Auditor, fresh: bool = False) -> Any:
        note = sink.checkpoint(fresh=fresh)
        return JSONResponse({"note": note.decode("utf-8") if note else None, "origin": sink.origin})

    @r.get("/proof/inclusion")
    async def inclusion(
        user: Auditor,
        index: Annotated[int, Query(ge=0)],
        size: Annotated[int | None, Query(ge=1)] = None,
    ) -> Any:
        return JSONResponse(sink.inclusion(index, size))

    @r.get("/proof/consistency")
    async def consistency(
        user: Auditor,
        first: Annotated[int, Query(ge=0)],
        second: Annotated[int | None, Query(ge=0)] = None,
    ) -> Any:
        return JSONResponse(sink.consistency(first, second))

    @r.get(
        "/export",
        response_class=StreamingResponse,
        responses={
            200: {
                "description": "the audit bundle (docs/AUDIT.md, section 8), streamed",
                "content": {BUNDLE_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
            }
        },
    )
    def export(
        user: Auditor,
        start: Annotated[int, Query(ge=0)] = 0,
        every: Annotated[int | None, Query(ge=0)] = None,
    ) -> StreamingResponse:
        chunks = sink.export(start, every=every)  # range errors are raised before streaming
        name = f"{service.node_id}-audit-{start}.fiuaudit"
        return StreamingResponse(
            chunks,
            media_type=BUNDLE_MEDIA_TYPE,
            headers={"content-disposition": f'attachment; filename="{name}"'},
        )

    @r.get("/keys")
    def keys(user: Auditor) -> Any:
        return sink.keys()

    @r.get("/witness")
    def witness(user: Auditor) -> Any:
        return sink.witness_report()

    return r
