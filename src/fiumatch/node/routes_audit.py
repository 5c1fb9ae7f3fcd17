"""Auditor routes (``/audit/v1``): read the Merkle audit log (entries and root). Bearer token,
role auditor (or admin). Entries hold no identifiers by construction."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from fiumatch.node.routes_api import user_dependency
from fiumatch.node.service import NodeService
from fiumatch.store import User

__all__ = ["router"]


def router(service: NodeService) -> APIRouter:
    r = APIRouter(prefix="/audit/v1")
    current = user_dependency(service)

    @r.get("/entries")
    def entries(start: int = 0, end: int | None = None, user: User = Depends(current)) -> Any:
        return service.audit_entries(user, start, end)

    return r
