"""Auditor routes (``/audit/v1``): read the Merkle audit log (entries and root). Bearer token,
role auditor (or admin). Entries hold no identifiers by construction."""

# No ``from __future__ import annotations`` here: FastAPI must evaluate the route signatures,
# whose ``Annotated[..., Depends(current)]`` refer to a closure variable.

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from fiumatch.node.routes_api import user_dependency
from fiumatch.node.service import NodeService
from fiumatch.store import User

__all__ = ["router"]


def router(service: NodeService) -> APIRouter:
    r = APIRouter(prefix="/audit/v1")
    current = user_dependency(service)

    @r.get("/entries")
    def entries(
        user: Annotated[User, Depends(current)], start: int = 0, end: int | None = None
    ) -> Any:
        return service.audit_entries(user, start, end)

    return r
