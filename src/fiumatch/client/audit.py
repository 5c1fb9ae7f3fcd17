"""The auditor's client of a node's ``/audit/v1`` API (bearer token, role auditor).

It fetches what the offline checks need: the bundle (streamed to a file, never held in memory
whole), the keys to pin (to compare with fingerprints obtained out of band), the peers'
checkpoints the node cosigned, proofs and entries. It judges nothing: verification is
``fiumatch.auditlog.verify`` on the auditor's machine, with keys the auditor pinned.

Errors come back as :class:`~fiumatch.client.api.ApiError` (``status`` 0: unreachable).
"""

from __future__ import annotations

from typing import IO, Any

import httpx

from fiumatch.client.api import ApiClient, ApiError

__all__ = ["AuditClient"]


class AuditClient(ApiClient):
    """``ApiClient`` plus the auditor's calls."""

    @classmethod
    def over(cls, api: ApiClient) -> AuditClient:
        """The auditor's calls on ``api``'s connection (the CLI resolves connections once,
        for every command, in ``client._cli.client_from``)."""
        client = cls.__new__(cls)
        client.__dict__.update(vars(api))
        return client

    def status(self) -> dict[str, Any]:
        return dict(self.call("GET", "/audit/v1/status"))

    def entries(self, start: int = 0, end: int | None = None, limit: int = 1000) -> Any:
        params: dict[str, int] = {"start": start, "limit": limit}
        if end is not None:
            params["end"] = end
        return self.call("GET", "/audit/v1/entries", params=params)

    def all_entries(self, page: int = 5000) -> list[dict[str, Any]]:
        """Every entry, page by page."""
        out: list[dict[str, Any]] = []
        while True:
            got = self.entries(len(out), limit=page)
            out.extend(got["entries"])
            if len(out) >= int(got["size"]) or not got["entries"]:
                return out

    def checkpoint(self, fresh: bool = False) -> str | None:
        note = self.call("GET", "/audit/v1/checkpoint", params={"fresh": fresh})["note"]
        return None if note is None else str(note)

    def inclusion(self, index: int, size: int | None = None) -> dict[str, Any]:
        params = {"index": index} | ({"size": size} if size is not None else {})
        return dict(self.call("GET", "/audit/v1/proof/inclusion", params=params))

    def consistency(self, first: int, second: int | None = None) -> dict[str, Any]:
        params = {"first": first} | ({"second": second} if second is not None else {})
        return dict(self.call("GET", "/audit/v1/proof/consistency", params=params))

    def keys(self) -> dict[str, Any]:
        return dict(self.call("GET", "/audit/v1/keys"))

    def witness(self) -> dict[str, Any]:
        return dict(self.call("GET", "/audit/v1/witness"))

    def export_to(self, out: IO[bytes], start: int = 0, every: int | None = None) -> int:
        """Stream the bundle into ``out``; returns the bytes written. ``every``: keep one
        checkpoint at least every so many entries (0: all; default: the node's)."""
        written = 0
        params = {"start": start} | ({"every": every} if every is not None else {})
        try:
            with self._http.stream("GET", "/audit/v1/export", params=params) as r:
                if r.status_code >= 400:
                    r.read()
                    self._raise(r)
                for chunk in r.iter_bytes():
                    out.write(chunk)
                    written += len(chunk)
        except httpx.HTTPError as exc:
            raise ApiError(
                f"the node could not be reached ({type(exc).__name__})",
                status=0,
                error_code="unreachable",
            ) from exc
        return written

    @staticmethod
    def _raise(r: httpx.Response) -> None:
        try:
            data = r.json()
        except ValueError:
            data = {}
        d = data if isinstance(data, dict) else {}
        raise ApiError(
            str(d.get("reason", r.reason_phrase)),
            status=r.status_code,
            error_code=str(d.get("error", "error")),
            details=d.get("details"),
        )
