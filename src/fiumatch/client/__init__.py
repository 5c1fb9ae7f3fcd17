"""fiumatch.client: httpx clients for peers (signed node-to-node calls), analysts, supervisors,
admins and auditors (bearer tokens). The CLI and the node itself use them; they hold no state
beyond a connection pool and never log identifiers or tokens."""

from __future__ import annotations

from fiumatch.client.api import ApiClient, ApiError
from fiumatch.client.peer import PeerClient, PeerError, fetch_well_known

__all__ = ["ApiClient", "ApiError", "PeerClient", "PeerError", "fetch_well_known"]
