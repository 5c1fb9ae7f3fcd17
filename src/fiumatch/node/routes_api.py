"""Analyst, supervisor and admin routes (``/api/v1``), bearer-token authenticated.

Thin: parse the JSON body into a pydantic model, call one service method, return its dict.
Roles are checked by the service (``NodeService.require_role``). Every route but one is a plain
``def``, so FastAPI runs it in its threadpool: the store and the peer calls block. The exception
is ``GET /queries/{id}?wait=S`` (a long-poll, at most ``MAX_WAIT_SECONDS``): it is ``async`` so a
waiting analyst holds no worker thread; it never reads the store on the event loop: it waits
for the service's notice that the query settled (``NodeService.on_settled``, fired right after
its status is set; no polling), and the thread that settles it reads the answer; a query not
running here is read through the threadpool.
"""

# No ``from __future__ import annotations`` here: FastAPI must evaluate the route signatures,
# whose ``Annotated[..., Depends(current)]`` refer to a closure variable.

import asyncio
import threading
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from fiumatch.node.errors import BadTokenError
from fiumatch.node.service import HITS_PAGE, QUERY_READERS, NodeService
from fiumatch.store import User

__all__ = ["MAX_WAIT_SECONDS", "router", "user_dependency"]

MAX_WAIT_SECONDS = 30.0
"""Longest ``?wait=`` a query read may hold the request open for."""
MAX_HITS_PAGE = 100_000


async def wait_until_settled(
    service: NodeService,
    query_id: str,
    seconds: float,
    fetch: Callable[[], Any] | None = None,
) -> tuple[Any] | None:
    """Return once the query is no longer running (``NodeService.on_settled``: at once if this
    process is not running it) or ``seconds`` have passed.

    ``fetch``: a blocking read of the query, made by the thread that settled it (a worker,
    never the event loop), right after it settled: returned as ``(result,)``, so the waiter
    needs no threadpool hop for it. None when it timed out, the query was not running here, or
    ``fetch`` failed (the caller reads the query itself)."""
    loop = asyncio.get_running_loop()
    settled: asyncio.Future[tuple[Any] | None] = loop.create_future()
    loop_thread = threading.get_ident()

    def wake() -> None:  # called from the thread that settled the query (or at once, here)
        made: tuple[Any] | None = None
        if fetch is not None and threading.get_ident() != loop_thread:
            try:
                made = (fetch(),)
            except Exception:  # the waiter reads it again, and gets the error there
                made = None
        loop.call_soon_threadsafe(_resolve, settled, made)

    unsubscribe = service.on_settled(query_id, wake)
    try:
        return await asyncio.wait_for(settled, seconds)
    except TimeoutError:
        return None
    finally:
        unsubscribe()


def _resolve(fut: "asyncio.Future[tuple[Any] | None]", made: tuple[Any] | None) -> None:
    if not fut.done():
        fut.set_result(made)


def user_dependency(service: NodeService) -> Callable[..., User]:
    def current(authorization: Annotated[str, Header()] = "") -> User:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise BadTokenError("a bearer token is required")
        return service.authenticate(token.strip())

    return current


class PeerIn(BaseModel):
    node_id: str
    url: str
    fingerprint: str


class AgreementIn(BaseModel):
    peer: str
    modes: list[str]
    purposes: list[str]
    identifier_types: list[str]
    budget_per_epoch: int = Field(ge=0)
    max_set_size: int = Field(ge=0)
    valid_from: int
    valid_until: int
    proofs: bool = True
    """Filter mode: VOPRF proofs on every evaluation (both nodes' agreements must say the same)."""


class UserIn(BaseModel):
    name: str
    role: str


class RotateIn(BaseModel):
    peer: str | None = None
    wait: bool = True


class PurgeIn(BaseModel):
    today: date | None = None


class QueryIn(BaseModel):
    purpose: str
    legal_basis: str
    case_ref: str
    mode: str = "filter"
    subject_ids: list[str] = []
    all_subjects: bool = False
    records: list[dict[str, Any]] = []
    peers: list[str] = []
    id_types: list[str] = []
    wait: bool = False


class DisclosureIn(BaseModel):
    hit_id: str | None = None
    hit_token: str | None = None  # older clients: the newest hit carrying this token
    purpose: str
    case_ref: str
    legal_basis: str = ""
    onward_recipient: str | None = None
    onward_purpose: str | None = None


class OnwardIn(BaseModel):
    recipient: str
    purpose: str


class OnwardDecisionIn(BaseModel):
    grant: bool
    reason: str


class DecisionIn(BaseModel):
    approve: bool
    reason: str
    fields: list[str] = ["name", "local_ref", "subject_type", "birth_date", "countries"]
    onward_consent: bool = False


def router(service: NodeService) -> APIRouter:
    r = APIRouter(prefix="/api/v1")
    current = user_dependency(service)

    @r.get("/me")
    def me(user: Annotated[User, Depends(current)]) -> Any:
        return {"name": user.name, "role": user.role, "node_id": service.node_id}

    @r.post("/users")
    def add_user(body: UserIn, user: Annotated[User, Depends(current)]) -> Any:
        return {
            "name": body.name,
            "role": body.role,
            "token": service.add_user(user, body.name, body.role),
        }

    @r.post("/peers")
    def add_peer(body: PeerIn, user: Annotated[User, Depends(current)]) -> Any:
        p = service.add_peer(user, body.node_id, body.url, body.fingerprint)
        return {"node_id": p.node_id, "url": p.url, "fingerprint": p.fingerprint}

    @r.get("/peers")
    def peers(user: Annotated[User, Depends(current)]) -> Any:
        service.require_role(user, "analyst", "supervisor", "auditor")
        return [
            {
                "node_id": p.node_id,
                "url": p.url,
                "fingerprint": p.fingerprint,
                "added_at": p.added_at,
            }
            for p in service.list_peers()
        ]

    @r.post("/agreements")
    def add_agreement(body: AgreementIn, user: Annotated[User, Depends(current)]) -> Any:
        a = service.add_agreement(
            user,
            peer_id=body.peer,
            modes=body.modes,
            purposes=body.purposes,
            identifier_types=body.identifier_types,
            budget_per_epoch=body.budget_per_epoch,
            max_set_size=body.max_set_size,
            valid_from=body.valid_from,
            valid_until=body.valid_until,
            proofs=body.proofs,
        )
        return {"id": a.id, "peer": a.peer_id}

    @r.post("/agreements/{agreement_id}/revoke")
    def revoke_agreement(agreement_id: str, user: Annotated[User, Depends(current)]) -> Any:
        a = service.revoke_agreement(user, agreement_id)
        return {"id": a.id, "peer": a.peer_id, "revoked_at": a.revoked_at}

    @r.get("/agreements")
    def agreements(user: Annotated[User, Depends(current)]) -> Any:
        service.require_role(user, "analyst", "supervisor", "auditor")
        return [
            {
                "id": a.id,
                "peer": a.peer_id,
                "modes": a.modes,
                "purposes": a.purposes,
                "identifier_types": a.identifier_types,
                "budget_per_epoch": a.budget_per_epoch,
                "max_set_size": a.max_set_size,
                "valid_from": a.valid_from,
                "valid_until": a.valid_until,
                "revoked_at": a.revoked_at,
                "proofs": a.proofs,
            }
            for a in service.list_agreements()
        ]

    @r.post("/epochs/rotate")
    def rotate(body: RotateIn, user: Annotated[User, Depends(current)]) -> Any:
        service.require_role(user, "admin")
        return service.rotate(user.name, body.peer, wait=body.wait)

    @r.get("/epochs")
    def epochs(user: Annotated[User, Depends(current)]) -> Any:
        service.require_role(user, "admin", "auditor")
        return service.epochs()

    @r.post("/purge")
    def purge(body: PurgeIn, user: Annotated[User, Depends(current)]) -> Any:
        service.require_role(user, "admin")
        return {"purged": service.purge_expired(user.name, body.today)}

    @r.post("/queries")
    def create_query(body: QueryIn, user: Annotated[User, Depends(current)]) -> Any:
        return service.create_query(user, **body.model_dump())

    @r.get("/queries")
    def queries(user: Annotated[User, Depends(current)]) -> Any:
        return service.list_queries(user)

    @r.get("/queries/{query_id}")
    async def query(
        query_id: str,
        user: Annotated[User, Depends(current)],
        wait: Annotated[float, Query(ge=0, le=MAX_WAIT_SECONDS)] = 0,
        hits_offset: Annotated[int, Query(ge=0)] = 0,
        hits_limit: Annotated[int, Query(ge=0, le=MAX_HITS_PAGE)] = HITS_PAGE,
    ) -> Any:
        """The query with one page of its hits (``hits_limit`` from ``hits_offset``;
        ``hit_total`` counts them all); with ``wait`` > 0, answered as soon as it is no longer
        running (or after ``wait`` seconds, still running)."""

        def get() -> Any:
            return service.get_query(user, query_id, hits_offset=hits_offset, hits_limit=hits_limit)

        if wait > 0:
            # Waiting needs no read first: a query this process runs is waited for (the role
            # is checked now), its answer read by the thread that settles it; any other is
            # answered at once.
            service.require_role(user, *QUERY_READERS)
            made = await wait_until_settled(service, query_id, wait, fetch=get)
            if made is not None:
                return made[0]
        return await run_in_threadpool(get)

    @r.get("/sessions")
    def sessions(user: Annotated[User, Depends(current)]) -> Any:
        return service.sessions(user)

    @r.post("/disclosures")
    def request_disclosure(body: DisclosureIn, user: Annotated[User, Depends(current)]) -> Any:
        return service.request_disclosure(user, **body.model_dump())

    @r.get("/disclosures")
    def disclosures(user: Annotated[User, Depends(current)], direction: str | None = None) -> Any:
        return service.list_disclosures(user, direction)

    @r.post("/disclosures/{disclosure_id}/decision")
    def decide(
        disclosure_id: str, body: DecisionIn, user: Annotated[User, Depends(current)]
    ) -> Any:
        return service.decide_disclosure(user, disclosure_id, **body.model_dump())

    @r.post("/disclosures/{disclosure_id}/refresh")
    def refresh(disclosure_id: str, user: Annotated[User, Depends(current)]) -> Any:
        return service.refresh_disclosure(user, disclosure_id)

    @r.post("/disclosures/{disclosure_id}/onward")
    def request_onward(
        disclosure_id: str, body: OnwardIn, user: Annotated[User, Depends(current)]
    ) -> Any:
        return service.request_onward(
            user, disclosure_id, recipient=body.recipient, purpose=body.purpose
        )

    @r.post("/disclosures/{disclosure_id}/onward/decision")
    def decide_onward(
        disclosure_id: str, body: OnwardDecisionIn, user: Annotated[User, Depends(current)]
    ) -> Any:
        return service.decide_onward(user, disclosure_id, grant=body.grant, reason=body.reason)

    return r
