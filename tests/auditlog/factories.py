"""Valid audit entries for tests: one sample per event type, and Hypothesis strategies."""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import strategies as st

from fiumatch.auditlog.checkpoint import CosignatureSigner, NoteSigner
from fiumatch.auditlog.entry import (
    EVENT_SCHEMAS,
    Change,
    Decision,
    Direction,
    Entry,
    EventType,
    Outcome,
    RefusalClause,
    identifier_like,
)

_SAMPLE: dict[str, Any] = {
    "actor": "node:fiu-a",
    "peer": "fiu-b",
    "session": "9f86d081884c7d659a2feaa0c55ad015",
    "agreement": "agr-ab-1",
    "epoch": 3,
    "mode": "filter",
    "direction": Direction.OUT,
    "count_in": 1000,
    "count_out": 1000,
    "hits": 4,
    "records": 120,
    "request_sha256": hashlib.sha256(b"request").digest(),
    "response_sha256": hashlib.sha256(b"response").digest(),
    "object_sha256": hashlib.sha256(b"object").digest(),
    "epoch_public_key": bytes(range(32)),
    "clause": RefusalClause.BUDGET,
    "decision": Decision.APPROVED,
    "change": Change.UPDATED,
    "outcome": Outcome.OK,
    "role": "supervisor",
    "target": "analyst:bob",
    "scope": "sessions-older-than-retention",
    "id_type": "iban",
    "purpose": "Suspected layering via shell companies",
    "legal_basis": "AMLD art. 53",
    "case_ref": "CASE-2024-0117",
}


def sample_entry(event: EventType, seq: int = 0, time_ms: int = 1_700_000_000_000,
                 **overrides: Any) -> Entry:
    """An entry of ``event`` with every allowed field set (overrides win; None removes)."""
    schema = EVENT_SCHEMAS[event]
    values = {k: v for k, v in _SAMPLE.items() if k in schema.allowed}
    values.update(overrides)
    values = {k: v for k, v in values.items() if v is not None}
    return Entry(seq=seq, time_ms=time_ms, event=event, **values)


def minimal_entry(event: EventType, seq: int = 0, time_ms: int = 1_700_000_000_000) -> Entry:
    """An entry of ``event`` with only its required fields."""
    schema = EVENT_SCHEMAS[event]
    values = {k: v for k, v in _SAMPLE.items() if k in schema.required}
    return Entry(seq=seq, time_ms=time_ms, event=event, **values)


# Valid values only: the identifier screen may (rarely) flag random strings, by design.
TOKENS = st.from_regex(r"[a-z][a-z0-9._:/-]{0,20}", fullmatch=True).filter(
    lambda t: identifier_like(t, free_text=False) is None
)
TEXTS = st.from_regex(r"[A-Za-z][A-Za-z .,()éß-]{0,40}[A-Za-z.]", fullmatch=True).filter(
    lambda t: identifier_like(t) is None
)


@st.composite
def entries(draw: st.DrawFn, seq: int | None = None) -> Entry:
    event = draw(st.sampled_from(list(EventType)))
    schema = EVENT_SCHEMAS[event]
    values: dict[str, Any] = {}
    for name in sorted(schema.allowed):
        if name not in schema.required and not draw(st.booleans()):
            continue
        sample = _SAMPLE[name]
        if isinstance(sample, Direction | Decision | Change | Outcome | RefusalClause):
            values[name] = draw(st.sampled_from(list(type(sample))))
        elif isinstance(sample, bool):  # pragma: no cover
            raise AssertionError
        elif isinstance(sample, int):
            values[name] = draw(st.integers(0, 2**64 - 1))
        elif isinstance(sample, bytes):
            values[name] = draw(st.binary(min_size=32, max_size=32))
        elif name in ("purpose", "legal_basis", "case_ref"):
            values[name] = draw(TEXTS)
        else:
            values[name] = draw(TOKENS)
    return Entry(
        seq=draw(st.integers(0, 2**64 - 1)) if seq is None else seq,
        time_ms=draw(st.integers(0, 2**64 - 1)),
        event=event,
        **values,
    )


def ed25519_key(seed: str) -> Ed25519PrivateKey:
    """A deterministic test key (never use seeded keys outside tests)."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed.encode()).digest())


def log_signer(origin: str = "fiu-a.example/audit") -> NoteSigner:
    return NoteSigner(origin, ed25519_key("log:" + origin))


def cosigner(name: str = "fiu-b.example/witness") -> CosignatureSigner:
    return CosignatureSigner(name, ed25519_key("cosigner:" + name))
