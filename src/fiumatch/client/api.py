"""The bearer-token client of a node's own API (analysts, supervisors, admins, auditors).

The client verifies the node's TLS certificate against a certificate file (``cacert``, from
the node directory): the self-signed one ``node init`` made, or the operator's own certificate
(trusted as an anchor even when a CA issued it), so a CLI talking to its own node has a
verified TLS channel. Without ``cacert`` it does not verify (for ``--url`` use only).
Errors come back as :class:`ApiError` with the node's error code and details.
"""

from __future__ import annotations

import ssl
import time
from pathlib import Path
from typing import Any

import httpx

from fiumatch.errors import FiumatchError

__all__ = ["MAX_WAIT", "ApiClient", "ApiError"]

MAX_WAIT = 30.0
"""The longest ``wait`` a node accepts on a query read (``routes_api.MAX_WAIT_SECONDS``)."""


class ApiError(FiumatchError):
    """The node answered with an error (``status``, ``error_code``, ``details``), or could not
    be reached (``status`` 0)."""

    code = "api_error"

    def __init__(self, reason: str, *, status: int, error_code: str, details: Any = None) -> None:
        super().__init__(reason)
        self.status = status
        self.error_code = error_code
        self.error_details = details or {}


class ApiClient:
    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        cacert: Path | str | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        verify: Any = False
        if cacert:
            verify = ssl.create_default_context(cafile=str(cacert))
            # The node's own certificate is the trust anchor, whether self-signed or issued by
            # the operator's CA (then it is not self-signed: allow a partial chain).
            verify.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            headers=headers,
            verify=verify,
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(
        self,
        method: str,
        path: str,
        json: Any = None,
        params: Any = None,
        *,
        timeout: float | None = None,
    ) -> Any:
        """One request; ``timeout`` (seconds) replaces the client's for this request only."""
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        try:
            r = self._http.request(method, path, json=json, params=params, **extra)
        except httpx.HTTPError as exc:
            raise ApiError(
                f"the node could not be reached ({type(exc).__name__})",
                status=0,
                error_code="unreachable",
            ) from exc
        data: Any
        try:
            data = r.json()
        except ValueError:
            data = {}
        if r.status_code >= 400:
            d = data if isinstance(data, dict) else {}
            raise ApiError(
                str(d.get("reason", r.reason_phrase)),
                status=r.status_code,
                error_code=str(d.get("error", "error")),
                details=d.get("details"),
            )
        return data

    # identity
    def well_known(self) -> dict[str, Any]:
        return dict(self.call("GET", "/.well-known/fiumatch"))

    # admin
    def add_peer(self, node_id: str, url: str, fingerprint: str) -> Any:
        return self.call(
            "POST", "/api/v1/peers", {"node_id": node_id, "url": url, "fingerprint": fingerprint}
        )

    def peers(self) -> Any:
        return self.call("GET", "/api/v1/peers")

    def add_agreement(self, **terms: Any) -> Any:
        return self.call("POST", "/api/v1/agreements", terms)

    def agreements(self) -> Any:
        return self.call("GET", "/api/v1/agreements")

    def revoke_agreement(self, agreement_id: str) -> Any:
        return self.call("POST", f"/api/v1/agreements/{agreement_id}/revoke")

    def add_user(self, name: str, role: str) -> Any:
        return self.call("POST", "/api/v1/users", {"name": name, "role": role})

    def rotate(self, peer: str | None = None, wait: bool = True) -> Any:
        return self.call("POST", "/api/v1/epochs/rotate", {"peer": peer, "wait": wait})

    def epochs(self) -> Any:
        return self.call("GET", "/api/v1/epochs")

    def purge(self, today: str | None = None) -> Any:
        return self.call("POST", "/api/v1/purge", {"today": today})

    # analyst
    def create_query(self, **spec: Any) -> Any:
        return self.call("POST", "/api/v1/queries", spec)

    def query(self, query_id: str, wait: float | None = None) -> Any:
        """The query. With ``wait`` (seconds, at most the node's limit, 30), the node holds the
        request until the query is no longer running or ``wait`` has passed (a long-poll), so a
        caller learns it finished at once instead of at its next poll."""
        if not wait:
            return self.call("GET", f"/api/v1/queries/{query_id}")
        timeout = max(self._http.timeout.read or 0.0, wait + 10.0)
        return self.call(
            "GET", f"/api/v1/queries/{query_id}", params={"wait": wait}, timeout=timeout
        )

    def wait_query(self, query: dict[str, Any], timeout: float = 60.0) -> Any:
        """Long-poll ``query`` (a dict with ``id`` and ``status``) until it is no longer running
        or ``timeout`` seconds have passed; the last state read."""
        deadline = time.monotonic() + timeout
        while query["status"] == "running":
            left = deadline - time.monotonic()
            if left <= 0:
                break
            query = self.query(query["id"], wait=min(left, MAX_WAIT))
        return query

    def queries(self) -> Any:
        return self.call("GET", "/api/v1/queries")

    def sessions(self) -> Any:
        return self.call("GET", "/api/v1/sessions")

    def request_disclosure(self, **spec: Any) -> Any:
        return self.call("POST", "/api/v1/disclosures", spec)

    def disclosures(self, direction: str | None = None) -> Any:
        return self.call(
            "GET", "/api/v1/disclosures", params={"direction": direction} if direction else None
        )

    def decide_disclosure(self, disclosure_id: str, **decision: Any) -> Any:
        return self.call("POST", f"/api/v1/disclosures/{disclosure_id}/decision", decision)

    def refresh_disclosure(self, disclosure_id: str) -> Any:
        return self.call("POST", f"/api/v1/disclosures/{disclosure_id}/refresh")

    def request_onward(self, disclosure_id: str, *, recipient: str, purpose: str) -> Any:
        return self.call(
            "POST",
            f"/api/v1/disclosures/{disclosure_id}/onward",
            {"recipient": recipient, "purpose": purpose},
        )

    def decide_onward(self, disclosure_id: str, *, grant: bool, reason: str) -> Any:
        return self.call(
            "POST",
            f"/api/v1/disclosures/{disclosure_id}/onward/decision",
            {"grant": grant, "reason": reason},
        )

    # auditor
    def audit_entries(self, start: int = 0, end: int | None = None) -> Any:
        params = {"start": start} | ({"end": end} if end is not None else {})
        return self.call("GET", "/audit/v1/entries", params=params)
