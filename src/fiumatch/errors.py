"""The root of fiumatch's typed errors.

Every error the project raises on purpose derives from :class:`FiumatchError` and carries a
stable, machine-readable ``code`` (never reused, never renamed) and the HTTP status a node
answers with when the error crosses the edge. The mapping to HTTP happens once, in
``fiumatch.node``; the core only raises.

Error messages never contain identifiers, match keys, blinded elements or OPRF outputs:
they may be sent to a peer or written to the audit log.

Tree::

    FiumatchError
    ├── ProtocolError            (fiumatch.protocol.errors; 400/409/422)
    ├── IdentifierError          (fiumatch.identifiers.errors; 422)
    ├── IngestError              (fiumatch.ingest)
    ├── AuditLogError            (fiumatch.auditlog.errors)
    └── NodeError                (fiumatch.node: auth 401, agreement 403, budget 429, ...)
"""

from __future__ import annotations


class FiumatchError(Exception):
    """Base class. Subclasses set ``code`` and ``http_status`` as class attributes."""

    code: str = "fiumatch_error"
    http_status: int = 500

    def __init__(self, reason: str = "", **details: object) -> None:
        self.reason = reason or self.__class__.__doc__ or self.code
        self.details = details
        super().__init__(f"{self.code}: {self.reason}")

    def to_dict(self) -> dict[str, object]:
        """The body a node sends for this error (safe to show a peer)."""
        body: dict[str, object] = {"error": self.code, "reason": self.reason}
        if self.details:
            body["details"] = {k: v for k, v in self.details.items()}
        return body
