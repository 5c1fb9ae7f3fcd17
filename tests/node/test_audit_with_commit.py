"""``AuditSink.record(..., with_commit=...)``: the store writes that belong with an event are
made in the transaction that writes it (one commit for both, never one without the other): in
the entry's own commit, in the commit of a peer answer's entries for an event that waits for
the response, and on their own for an event the log does not append again (a mirror)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from fiumatch.auditlog.errors import IdentifierLikeValueError
from fiumatch.store import Store
from tests.node.test_audit_sink import Node
from tests.node.test_audit_sink import pair as pair  # the two pinned nodes fixture, shared


def _marker(n: Node, name: str) -> None:
    """A store write the test can see afterwards (a row of the nonce table)."""
    assert n.store.nonces.check_and_store("test", name, expires_at=2**40, now=0)


def _has(store: Store, name: str) -> bool:
    row = (
        store.db.connection()
        .execute("SELECT 1 FROM nonces WHERE keyid = 'test' AND nonce = ?", (name,))
        .fetchone()
    )
    return row is not None


QUERY = {"purpose": "money_laundering", "legal_basis": "AMLD art. 53", "case_ref": "C-1"}


def test_the_write_is_in_the_entrys_commit(pair: tuple[Node, Node], tmp_path: Path) -> None:
    a, _ = pair
    inside: list[bool] = []

    def write() -> None:
        inside.append(a.store.db.connection().in_transaction)
        _marker(a, "query-row")

    seq = a.sink.record("query", actor="analyst:x", extra=QUERY, with_commit=write)
    assert seq == 0 and inside == [True]
    with Store.open(tmp_path / "FIU-A.db") as other:  # on disk with the entry
        assert _has(other, "query-row") and other.audit.size() == 1


def test_a_refused_entry_makes_no_write(pair: tuple[Node, Node]) -> None:
    a, _ = pair
    with pytest.raises(IdentifierLikeValueError):
        a.sink.record(
            "query",
            actor="analyst:x",
            extra={**QUERY, "case_ref": "ann@example.org"},
            with_commit=lambda: _marker(a, "never"),
        )
    assert not _has(a.store, "never") and a.sink.size == 0


def test_a_failing_write_rolls_the_entry_back(pair: tuple[Node, Node]) -> None:
    a, _ = pair

    def fail() -> None:
        _marker(a, "rolled-back")
        raise RuntimeError("the write fails")

    with pytest.raises(RuntimeError):
        a.sink.record("query", actor="analyst:x", extra=QUERY, with_commit=fail)
    assert a.sink.size == 0 and not _has(a.store, "rolled-back")
    assert a.sink.record("query", actor="analyst:x", extra=QUERY) == 0  # the log goes on


def test_an_answered_event_writes_in_the_answers_commit(pair: tuple[Node, Node]) -> None:
    a, b = pair
    sid, body = "ab" * 16, b"frames"
    ex = b.sink.open_incoming(a.node_id, body, sid)
    b.sink.witness_incoming(ex, a.sink.outgoing_headers(b.node_id))
    inside: list[bool] = []

    def write() -> None:
        inside.append(b.store.db.connection().in_transaction)
        _marker(b, "session-closed")

    seq = b.sink.record(
        "evaluation", actor=b.node_id, peer=a.node_id, session=sid, agreement_id="agr-1",
        epoch=3, counts_in=4, counts_out=4, request_digest=hashlib.sha256(body).digest(),
        extra={"direction": "in", "mode": "filter"}, with_commit=write,
    )  # fmt: skip
    assert seq == -1 and not _has(b.store, "session-closed")  # waits for the response
    b.sink.answer(ex, 200, b"reply")
    assert inside == [True] and _has(b.store, "session-closed") and b.sink.size == 1
