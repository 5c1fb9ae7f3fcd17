"""Small builders for store tests."""

from __future__ import annotations

from datetime import date

from fiumatch.store import Peer, Subject

NOW = 1_760_000_000


def make_peer(node_id: str = "fiu-b", *, key_byte: int = 7) -> Peer:
    return Peer(
        node_id=node_id,
        url=f"https://{node_id}.example:8443",
        public_key=bytes([key_byte]) * 32,
        fingerprint=f"SHA256:fp-{node_id}",
        added_at=NOW,
    )


def make_subject(subject_id: str = "s1", *, retain_until: date = date(2030, 1, 1)) -> Subject:
    return Subject(
        id=subject_id,
        local_ref=f"ref-{subject_id}",
        subject_type="person",
        display={"name": f"Name {subject_id}", "dob": "1970-01-01"},
        retain_until=retain_until,
        source="csv",
        source_record=f"row-{subject_id}",
    )
