"""The asking side of a peer exchange does its audit writes with fewer transactions and no
repeated checks, keeping every guarantee: the answerer's checkpoint it cosigned is stored in the
same commit as the mirror of the exchange's entry (or on its own when the exchange mirrors
nothing), and a cosignature header it already verified and stored is not checked again."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

from fiumatch.node.audit import H_COSIGNED
from fiumatch.store.audit_witness import AuditWitnessRepo
from tests.node.test_audit_sink import Node, exchange, login
from tests.node.test_audit_sink import pair as pair  # the two pinned nodes fixture, shared


def _witnessed_size(a: Node, b: Node) -> int:
    held = AuditWitnessRepo(a.store.db).latest_witnessed(f"{b.node_id}/audit")
    assert held is not None
    return int(held.note.split("\n")[1])


def test_the_cosigned_checkpoint_is_stored_in_the_mirrors_commit(
    pair: tuple[Node, Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = pair
    inside: list[bool] = []
    real = AuditWitnessRepo.add_witnessed

    def spy(self: AuditWitnessRepo, *args: Any) -> bool:
        if self._db is a.store.db:  # the asker's store only
            inside.append(self._db.connection().in_transaction)
        return real(self, *args)

    monkeypatch.setattr(AuditWitnessRepo, "add_witnessed", spy)
    sid = "ab" * 16
    exchange(a, b, sid, b"open")
    exchange(a, b, sid, b"frames", evaluate=3)
    assert inside == [True, True]  # each time within the transaction that wrote the mirror
    assert a.sink.size == 2 and _witnessed_size(a, b) == b.sink.size


def test_an_exchange_that_mirrors_nothing_still_stores_the_checkpoint(
    pair: tuple[Node, Node],
) -> None:
    a, b = pair
    sid = "cd" * 16
    exchange(a, b, sid, b"open")
    before = _witnessed_size(a, b)
    login(b.sink)  # B's log grows and it signs a newer checkpoint
    b.sink.checkpoint(fresh=True)
    body = b"nothing new"
    headers = a.sink.outgoing_headers(b.node_id)
    ex = b.sink.open_incoming(a.node_id, body, sid)
    b.sink.witness_incoming(ex, headers)
    reply = b.sink.answer(ex, 200, b"ok")  # a receipt for the session's last exchange only
    a.sink.after_response(b.node_id, sid, body, 200, b"ok", reply)
    assert a.sink.size == 1  # nothing mirrored again
    assert _witnessed_size(a, b) == b.sink.size > before


def test_a_cosignature_already_stored_is_not_checked_again(
    pair: tuple[Node, Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = pair
    reply = exchange(a, b, "ef" * 16, b"open")  # A keeps B's cosignature of its checkpoint
    checked: list[int] = []
    real = AuditWitnessRepo.add_cosignature

    def spy(self: AuditWitnessRepo, size: int, *args: Any) -> bool:
        if self._db is a.store.db:
            checked.append(size)
        return real(self, size, *args)

    monkeypatch.setattr(AuditWitnessRepo, "add_cosignature", spy)
    for _ in range(3):  # B returns the same cosigned note until A's checkpoint moves
        a.sink.after_response(b.node_id, None, b"", 200, b"", {H_COSIGNED: reply[H_COSIGNED]})
    assert checked == []
    # A note A has not seen is checked and stored.
    login(a.sink)
    a.sink.checkpoint(fresh=True)
    size = a.sink.size
    again = exchange(a, b, "ef" * 16, b"frames", evaluate=1)
    assert again[H_COSIGNED] != reply[H_COSIGNED]
    assert checked == [size]
    a.sink.after_response(b.node_id, None, b"", 200, b"", {H_COSIGNED: again[H_COSIGNED]})
    assert checked == [size]


def test_the_answerer_keeps_what_the_headers_gave_in_the_answers_commit(
    pair: tuple[Node, Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = pair
    sid = "12" * 16
    exchange(a, b, sid, b"open")  # A now holds B's checkpoint, cosigned, and sends it back
    login(a.sink)
    a.sink.checkpoint(fresh=True)  # and A has a newer checkpoint of its own for B to cosign
    inside: list[tuple[str, bool]] = []
    for name in ("add_cosignature", "add_witnessed"):
        real = getattr(AuditWitnessRepo, name)

        def spy(self: AuditWitnessRepo, *args: Any, _real: Any = real, _n: str = name) -> bool:
            if self._db is b.store.db:
                inside.append((_n, self._db.connection().in_transaction))
            result: bool = _real(self, *args)
            return result

        monkeypatch.setattr(AuditWitnessRepo, name, spy)
    body = b"frames"
    headers = a.sink.outgoing_headers(b.node_id)
    ex = b.sink.open_incoming(a.node_id, body, sid)
    b.sink.witness_incoming(ex, headers)
    assert inside == []  # nothing written yet: it waits for the answer
    b.sink.record(
        "evaluation", actor=b.node_id, peer=a.node_id, session=sid, agreement_id="agr-1",
        epoch=3, counts_in=1, counts_out=1, request_digest=hashlib.sha256(body).digest(),
        extra={"direction": "in", "mode": "filter"},
    )  # fmt: skip
    reply = b.sink.answer(ex, 200, b"out")
    assert sorted(inside) == [("add_cosignature", True), ("add_witnessed", True)]
    witnessed = AuditWitnessRepo(b.store.db).latest_witnessed(f"{a.node_id}/audit")
    assert witnessed is not None and int(witnessed.note.split("\n")[1]) == a.sink.size
    a.sink.after_response(b.node_id, sid, body, 200, b"out", reply)
    # An answer that logs nothing (no entry to share a commit with) still keeps them.
    inside.clear()
    login(a.sink)
    a.sink.checkpoint(fresh=True)
    headers = a.sink.outgoing_headers(b.node_id)
    ex = b.sink.open_incoming(a.node_id, b"again", sid)
    b.sink.witness_incoming(ex, headers)
    b.sink.answer(ex, 200, b"nothing new")
    assert ("add_witnessed", False) in inside
    witnessed = AuditWitnessRepo(b.store.db).latest_witnessed(f"{a.node_id}/audit")
    assert witnessed is not None and int(witnessed.note.split("\n")[1]) == a.sink.size


def test_a_peer_checkpoint_already_matched_is_not_verified_again(
    pair: tuple[Node, Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    from fiumatch.node import audit as node_audit

    a, b = pair
    sid = "34" * 16
    exchange(a, b, sid, b"open")  # B cosigned A's checkpoint
    opened: list[int] = []
    real = getattr(node_audit, "open_checkpoint")  # noqa: B009 - not in __all__

    def spy(note: bytes, log: Any) -> Any:
        if log.name == f"{a.node_id}/audit":
            opened.append(1)
        return real(note, log)

    monkeypatch.setattr(node_audit, "open_checkpoint", spy)
    cosigned: list[bytes | None] = []
    for body in (b"one", b"two", b"three"):  # A's checkpoint does not move meanwhile
        ex = b.sink.open_incoming(a.node_id, body, sid)
        b.sink.witness_incoming(ex, a.sink.outgoing_headers(b.node_id))
        cosigned.append(ex.cosigned)
        b.sink.answer(ex, 200, b"ok")
    assert opened == [1]  # checked the first time, recognised after
    assert cosigned[0] is not None and cosigned == [cosigned[0]] * 3
    # A's log grows: its new checkpoint is checked (and cosigned) again.
    login(a.sink)
    a.sink.checkpoint(fresh=True)
    ex = b.sink.open_incoming(a.node_id, b"four", sid)
    b.sink.witness_incoming(ex, a.sink.outgoing_headers(b.node_id))
    b.sink.answer(ex, 200, b"ok")
    assert opened == [1, 1] and ex.cosigned not in (None, cosigned[0])


def test_a_larger_checkpoint_without_a_valid_consistency_proof_is_a_split_view(
    pair: tuple[Node, Node],
) -> None:
    from fiumatch.auditlog import (
        Checkpoint,
        DictNodeStore,
        MerkleTree,
        NoteSigner,
        Receipt,
        sign_checkpoint,
    )
    from fiumatch.node.audit import H_PROOF, H_RECEIPTS, PeerLogError

    a, b = pair
    exchange(a, b, "56" * 16, b"first")  # A holds B's checkpoint of size 1
    other = MerkleTree(DictNodeStore())  # another history, two entries long, signed by B
    other.append(b"another first entry")
    leaf = other.append(b"another second entry")
    note = sign_checkpoint(
        Checkpoint(f"{b.node_id}/audit", 2, other.root()), NoteSigner(f"{b.node_id}/audit", b.key)
    )
    receipt = Receipt(1, leaf.leaf_hash, tuple(other.inclusion_proof(1, 2)), note)
    bogus = "1:2:" + base64.b64encode(b"\x00" * 32).decode()
    headers = {H_RECEIPTS: base64.b64encode(receipt.encode()).decode(), H_PROOF: bogus}
    with pytest.raises(PeerLogError) as info:
        a.sink.after_response(b.node_id, None, b"x", 200, b"y", headers)
    assert "split view" in info.value.reason
    (view,) = AuditWitnessRepo(a.store.db).split_views()
    assert view.second_note == note.decode()


def test_a_cosignature_of_a_note_we_did_not_sign_is_not_kept(
    pair: tuple[Node, Node],
) -> None:
    from fiumatch.auditlog import CosignatureSigner, add_cosignature
    from fiumatch.auditlog.checkpoint import SignedNote

    a, b = pair
    exchange(a, b, "78" * 16, b"first")
    mine = a.sink.checkpoint(fresh=True)
    assert mine is not None
    good = add_cosignature(mine, CosignatureSigner(b.node_id, b.key), 1)
    parsed = SignedNote.parse(good)
    # B's cosignature of A's checkpoint text, in a note without A's own signature line.
    bare = SignedNote(parsed.text, parsed.signatures[-1:]).encode()
    header = {H_COSIGNED: base64.b64encode(bare).decode()}
    before = AuditWitnessRepo(a.store.db).cosignatures(0, a.sink.size + 1)
    a.sink.after_response(b.node_id, None, b"", 200, b"", header)
    assert AuditWitnessRepo(a.store.db).cosignatures(0, a.sink.size + 1) == before
    # The same with A's signature is kept.
    a.sink.after_response(
        b.node_id, None, b"", 200, b"", {H_COSIGNED: base64.b64encode(good).decode()}
    )
    assert AuditWitnessRepo(a.store.db).cosignatures(0, a.sink.size + 1) != before
