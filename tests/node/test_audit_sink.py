"""AuditSink in-process: durable appends over one in-memory frontier, monotonic times, missing
nodes as KeyError, checkpoints and receipts, exports that verify, and the receipt/cosigning
exchange between two sinks (mirrors, held receipts, cosignatures, split views)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from fiumatch.auditlog import (
    Checkpoint,
    CosignatureVerifier,
    DictNodeStore,
    MerkleTree,
    NoteSigner,
    NoteVerifier,
    Receipt,
    check_split_view,
    decode_bundle,
    open_cosignatures,
    reconcile,
    sign_checkpoint,
    verify,
    verify_inclusion,
)
from fiumatch.auditlog.errors import (
    IdentifierLikeValueError,
    RootMismatchError,
    SplitViewError,
)
from fiumatch.node import audit as audit_module
from fiumatch.node.audit import (
    H_RECEIPTS,
    AuditNestingError,
    AuditRangeError,
    AuditSink,
    PeerLogError,
    cosigner_verifier,
    log_verifier,
)
from fiumatch.node.keys import fingerprint, raw_public_key
from fiumatch.store import Peer, Store, StoreError
from fiumatch.store.audit_witness import AuditWitnessRepo

T0 = 1_700_000_000.0


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@dataclass
class Node:
    node_id: str
    key: Ed25519PrivateKey
    store: Store
    clock: Clock
    sink: AuditSink

    @property
    def public(self) -> bytes:
        return raw_public_key(self.key.public_key())

    def reopen(self, **kw: int) -> AuditSink:
        self.sink.close()
        self.sink = AuditSink(self.store, self.clock, node_id=self.node_id, key=self.key, **kw)
        return self.sink


def make_node(tmp: Path, node_id: str, seed: int, **kw: int) -> Node:
    key = Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)
    store = Store.open(tmp / f"{node_id}.db")
    clock = Clock()
    return Node(node_id, key, store, clock, AuditSink(store, clock, node_id=node_id, key=key, **kw))


def pin(a: Node, b: Node) -> None:
    a.store.peers.add(
        Peer(
            node_id=b.node_id,
            url="https://b.invalid",
            public_key=b.public,
            fingerprint=fingerprint(b.public),
            added_at=int(T0),
        )
    )


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    n = make_node(tmp_path, "FIU-A", 1)
    yield n
    n.sink.close()
    n.store.close()


def login(sink: AuditSink, i: int = 0) -> int:
    return sink.record("login", actor=f"analyst:a{i}", extra={"outcome": "ok", "role": "analyst"})


def pinned(node: Node) -> NoteVerifier:
    """What an auditor pins: the log's verifier key, from the node's public key."""
    return log_verifier(node.node_id, node.public)


def export(node: Node, start: int = 0) -> bytes:
    return b"".join(node.sink.export(start))


# --- appending -------------------------------------------------------------------------------


def test_record_is_on_disk_when_it_returns(node: Node, tmp_path: Path) -> None:
    seqs = [login(node.sink, i) for i in range(5)]
    assert seqs == [0, 1, 2, 3, 4]
    with Store.open(tmp_path / "FIU-A.db") as other:  # another connection sees them
        assert other.audit.size() == 5


def test_appends_do_not_read_the_tree_back_from_the_store(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(40):
        login(node.sink, i)
    node.reopen()  # resume reads O(log n) frontier nodes once
    reads: list[tuple[int, int]] = []
    original = node.store.audit.node

    def counting(level: int, index: int) -> bytes | None:
        reads.append((level, index))
        return original(level, index)

    monkeypatch.setattr(node.store.audit, "node", counting)
    for i in range(100):
        login(node.sink, i)
    assert reads == []
    assert verify(export(node), pinned(node)).size == 140


def test_times_never_go_backwards_even_when_the_clock_does(node: Node) -> None:
    login(node.sink)
    node.clock.t -= 3600
    login(node.sink)
    node.clock.t += 1
    login(node.sink)
    times = [e.time_ms for e in decode_bundle(export(node)).entries]
    assert times == sorted(times) and times[0] == times[1] == int(T0 * 1000)
    node.reopen()  # the last time is resumed from the store too
    node.clock.t = T0 - 7200
    login(node.sink)
    assert decode_bundle(export(node)).entries[-1].time_ms == int(T0 * 1000)


def test_get_node_raises_key_error_naming_the_node(node: Node) -> None:
    login(node.sink)
    assert len(node.sink.get_node(0, 0)) == 32
    with pytest.raises(KeyError) as info:
        node.sink.get_node(3, 9)
    assert info.value.args == ((3, 9),)


def test_concurrent_records_get_unique_numbers_and_a_log_that_verifies(node: Node) -> None:
    got: list[int] = []
    lock = threading.Lock()

    def worker(w: int) -> None:
        for i in range(40):
            s = login(node.sink, w * 100 + i)
            with lock:
                got.append(s)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(240))
    report = verify(export(node), pinned(node))
    assert report.size == 240


def test_a_refused_entry_is_not_appended_and_does_not_shift_numbers(node: Node) -> None:
    login(node.sink)
    with pytest.raises(IdentifierLikeValueError):
        node.sink.record(
            "query",
            actor="analyst:a",
            extra={
                "purpose": "money_laundering",
                "legal_basis": "AMLD art. 53",
                "case_ref": "ann@example.org",
            },
        )
    assert login(node.sink) == 1


def test_recording_inside_a_store_transaction_is_refused(node: Node) -> None:
    login(node.sink)
    with pytest.raises(AuditNestingError), node.store.transaction():
        login(node.sink)
    assert login(node.sink) == 1
    assert verify(export(node), pinned(node)).size == 2


def test_concurrent_appends_share_commits(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    transactions = 0
    db = node.store.db
    original = db.transaction

    @contextlib.contextmanager
    def slow() -> Iterator[object]:
        nonlocal transactions
        outer = not db.connection().in_transaction
        transactions += outer
        with original() as conn:
            yield conn
            if outer:
                time.sleep(0.02)  # a slow fsync: others queue up meanwhile

    monkeypatch.setattr(db, "transaction", slow)
    threads = [
        threading.Thread(target=lambda w=w: [login(node.sink, w) for _ in range(5)])
        for w in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    monkeypatch.undo()
    assert node.sink.size == 40
    assert transactions < 40  # one fsync acknowledged several entries
    assert verify(export(node), pinned(node)).size == 40


def test_a_failed_commit_fails_its_callers_and_the_log_stays_whole(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    login(node.sink)
    original = node.store.audit.append

    def broken(*args: object, **kw: object) -> None:
        raise StoreError("disk full")

    monkeypatch.setattr(node.store.audit, "append", broken)
    with pytest.raises(StoreError):
        login(node.sink)
    monkeypatch.setattr(node.store.audit, "append", original)
    assert login(node.sink) == 1  # the number of the lost entry is reused: nothing was written
    assert verify(export(node), pinned(node)).size == 2


def test_sessions_of_an_unsigned_sink_still_append(tmp_path: Path) -> None:
    with Store.open(tmp_path / "plain.db") as store:
        sink = AuditSink(store, Clock())
        assert login(sink) == 0 and sink.checkpoint() is None
        with pytest.raises(AuditRangeError):
            list(sink.export())


# --- checkpoints, proofs, export -------------------------------------------------------------


def test_checkpoints_every_n_entries(tmp_path: Path) -> None:
    n = make_node(tmp_path, "FIU-A", 1, checkpoint_every=10)
    for i in range(35):
        login(n.sink, i)
    sizes = [s for s, _ in AuditWitnessRepo(n.store.db).checkpoints(0, 100)]
    assert sizes == [10, 20, 30]
    bundle = export(n)
    report = verify(bundle, pinned(n))
    assert report.checkpoints == 4 and report.proofs == 3 and report.size == 35
    n.sink.close()


def test_the_timer_signs_a_quiet_tail(tmp_path: Path) -> None:
    n = make_node(tmp_path, "FIU-A", 1, checkpoint_every=1000)
    n.sink._seconds = 0.05
    login(n.sink)
    for _ in range(100):
        if n.sink.status()["checkpoint_size"] == 1:
            break
        threading.Event().wait(0.02)
    assert n.sink.status()["checkpoint_size"] == 1
    n.sink.close()


def test_receipts_and_inclusion_proofs_verify(node: Node) -> None:
    for i in range(13):
        login(node.sink, i)
    r = node.sink.receipt(7)
    cp = Checkpoint.parse_body(r.checkpoint.decode().split("\n\n")[0] + "\n")
    assert cp.size == 13
    verify_inclusion(7, cp.size, r.leaf_hash, r.proof, cp.root)
    proof = node.sink.inclusion(3)
    assert proof["size"] == 13 and proof["checkpoint"]
    verify_inclusion(
        3,
        13,
        bytes.fromhex(proof["leaf_hash"]),
        [bytes.fromhex(h) for h in proof["proof"]],
        cp.root,
    )
    with pytest.raises(AuditRangeError):
        node.sink.inclusion(13)
    with pytest.raises(AuditRangeError):
        node.sink.consistency(5, 99)


def test_export_from_a_checkpoint_and_after_restart(node: Node) -> None:
    for i in range(9):
        login(node.sink, i)
    node.sink.checkpoint(fresh=True)
    node.reopen()
    for i in range(4):
        login(node.sink, i)
    full = verify(export(node), pinned(node))
    tail = verify(export(node, 9), pinned(node))
    assert (full.size, tail.start, tail.size) == (13, 9, 13) and full.root == tail.root
    with pytest.raises(AuditRangeError):
        list(node.sink.export(5))


def test_exports_keep_fewer_checkpoints_and_still_check_every_receipt(tmp_path: Path) -> None:
    n = make_node(tmp_path, "FIU-A", 1, checkpoint_every=10)
    receipts = []
    for i in range(40):
        login(n.sink, i)
        receipts.append(n.sink.receipt(i))  # a checkpoint per "response", as a busy node signs
    every = decode_bundle(b"".join(n.sink.export(every=0)))
    lean = b"".join(n.sink.export())
    kept = decode_bundle(lean).checkpoints
    assert len(every.checkpoints) == 40 and 4 <= len(kept) <= 5
    report = verify(lean, pinned(n), issued_receipts=receipts)
    assert report.issued_receipts == 40 and report.checkpoints == len(kept)
    n.sink.close()


def test_a_tampered_stored_entry_fails_verification(node: Node) -> None:
    for i in range(6):
        login(node.sink, i)
    bundle = bytearray(export(node))
    at = bundle.find(b"analyst:a3")
    bundle[at + len("analyst:a")] = ord("9")
    with pytest.raises(RootMismatchError) as info:
        verify(_fix_crcs(bytes(bundle)), pinned(node))
    assert info.value.location == "checkpoint 0"


def _fix_crcs(bundle: bytes) -> bytes:
    """Recompute the record checksums (a forger would): only the signatures catch it."""
    import struct
    import zlib

    out = bytearray(bundle[:9])
    pos = 9
    while pos < len(bundle):
        _, length = struct.unpack_from(">BI", bundle, pos)
        head = bundle[pos : pos + 5]
        payload = bundle[pos + 5 : pos + 5 + length]
        out += head + payload + struct.pack(">I", zlib.crc32(payload, zlib.crc32(head)))
        pos += 9 + length
    return bytes(out)


# --- the peer exchange: receipts, mirrors, cosignatures ------------------------------------


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Node, Node]]:
    a, b = make_node(tmp_path, "FIU-A", 1), make_node(tmp_path, "FIU-B", 2)
    pin(a, b)
    pin(b, a)
    yield a, b
    for n in (a, b):
        n.sink.close()
        n.store.close()


def exchange(
    a: Node, b: Node, sid: str, body: bytes, *, status: int = 200, evaluate: int | None = None
) -> dict[str, str]:
    """A asks B; B's service logs its side; B answers; A takes the receipt."""
    headers = a.sink.outgoing_headers(b.node_id)
    ex = b.sink.open_incoming(a.node_id, body, sid)
    b.sink.witness_incoming(ex, headers)
    digest = hashlib.sha256(body).digest()
    if status >= 400:
        response = json.dumps({"error": "budget", "details": {"clause": "budget"}}).encode()
    elif evaluate is None:
        assert (
            b.sink.record(
                "session_opened",
                actor=b.node_id,
                peer=a.node_id,
                session=sid,
                agreement_id="agr-1",
                epoch=3,
                counts_in=5,
                request_digest=digest,
                extra={"direction": "in", "mode": "filter"},
            )
            == -1
        )
        response = b'{"epoch": 3}'
    else:
        b.sink.record(
            "evaluation",
            actor=b.node_id,
            peer=a.node_id,
            session=sid,
            agreement_id="agr-1",
            epoch=3,
            counts_in=evaluate,
            counts_out=evaluate,
            request_digest=digest,
            extra={"direction": "in", "mode": "filter"},
        )
        b.sink.record(
            "session_closed",
            actor=b.node_id,
            peer=a.node_id,
            session=sid,
            extra={"direction": "in", "mode": "filter", "outcome": "ok"},
        )
        response = b"frames" + body
    reply = b.sink.answer(ex, status, response)
    a.sink.after_response(b.node_id, sid, body, status, response, reply)
    return reply


def keys_of(n: Node) -> tuple[NoteVerifier, CosignatureVerifier]:
    return log_verifier(n.node_id, n.public), cosigner_verifier(n.node_id, n.public)


def test_two_nodes_that_talked_reconcile_and_hold_each_others_receipts(
    pair: tuple[Node, Node],
) -> None:
    a, b = pair
    sid = "ab" * 16
    exchange(a, b, sid, b'{"session_id": "' + sid.encode() + b'"}')
    exchange(a, b, sid, b"query frames", evaluate=5)
    # the service's own record of the exchange is not logged twice on the asking side
    mirrored = a.sink.record(
        "session_opened",
        actor="analyst:ann",
        peer=b.node_id,
        session=sid,
        agreement_id="agr-mine",
        epoch=3,
        counts_out=5,
        request_digest=hashlib.sha256(sid.encode()).digest(),
        extra={"direction": "out", "mode": "filter"},
    )
    assert mirrored == 0
    a_log, a_cos = keys_of(a)
    b_log, b_cos = keys_of(b)
    bundle_a, bundle_b = export(a), export(b)
    ra = verify(bundle_a, a_log, peer_keys=[b_log], cosigners=[b_cos])
    rb = verify(bundle_b, b_log, peer_keys=[a_log], cosigners=[a_cos])
    assert ra.receipts == 2 and rb.receipts == 0
    assert ra.cosignatures >= 1 and rb.cosignatures >= 1
    report = reconcile(
        decode_bundle(bundle_a), decode_bundle(bundle_b), a_name="FIU-A", b_name="FIU-B"
    )
    assert report.ok and report.matched == 2 and report.receipts_checked == 2
    da = decode_bundle(bundle_a)
    events = [
        (e.event.name, e.direction and e.direction.value, e.count_in, e.count_out)
        for e in da.entries
    ]
    assert events == [("SESSION_OPENED", "out", None, 5), ("EVALUATION", "out", 5, 5)]
    db = decode_bundle(bundle_b)
    assert [e.event.name for e in db.entries] == ["SESSION_OPENED", "EVALUATION", "SESSION_CLOSED"]
    assert db.entries[1].response_sha256 == hashlib.sha256(b"frames" + b"query frames").digest()


def test_a_refusal_is_logged_receipted_and_mirrored(pair: tuple[Node, Node]) -> None:
    a, b = pair
    reply = exchange(a, b, "cd" * 16, b"too many", status=429)
    assert H_RECEIPTS in reply
    (ea,) = decode_bundle(export(a)).entries
    (eb,) = decode_bundle(export(b)).entries
    assert ea.event.name == eb.event.name == "REFUSAL"
    assert ea.clause is not None and ea.clause.value == "budget"
    assert ea.response_sha256 == eb.response_sha256


def test_each_node_holds_its_checkpoint_cosigned_by_the_other(pair: tuple[Node, Node]) -> None:
    a, b = pair
    sid = "ef" * 16
    exchange(a, b, sid, b"open")
    exchange(a, b, sid, b"frames", evaluate=2)
    for me, other in ((a, b), (b, a)):
        notes = [c.decode() for c in decode_bundle(export(me)).checkpoints]
        _, cos = keys_of(other)
        assert any(open_cosignatures(n, [cos]) for n in notes)
        witnessed = AuditWitnessRepo(other.store.db).witnessed(f"{me.node_id}/audit")
        assert witnessed


def test_a_split_view_is_caught_and_its_evidence_kept(pair: tuple[Node, Node]) -> None:
    a, b = pair
    exchange(a, b, "01" * 16, b"first")
    held = AuditWitnessRepo(a.store.db).latest_witnessed("FIU-B/audit")
    assert held is not None and int(held.note.split("\n")[1]) == 1
    # B shows A another history of the same size: one different leaf, signed with B's key
    other = MerkleTree(DictNodeStore())
    forged_leaf = other.append(b"another first entry")
    forged_note = sign_checkpoint(
        Checkpoint("FIU-B/audit", 1, other.root()), NoteSigner("FIU-B/audit", b.key)
    )
    b_log, _ = keys_of(b)
    with pytest.raises(SplitViewError):
        check_split_view(held.note, forged_note, b_log)
    forged = Receipt(0, forged_leaf.leaf_hash, (), forged_note)
    with pytest.raises(PeerLogError) as info:
        a.sink.after_response("FIU-B", None, b"x", 200, b"y", {H_RECEIPTS: _b64(forged.encode())})
    assert "split view" in info.value.reason
    (view,) = AuditWitnessRepo(a.store.db).split_views()
    assert view.origin == "FIU-B/audit" and view.first_note == held.note
    assert view.second_note == forged_note.decode()


def test_a_receipt_that_does_not_verify_fails_the_exchange(pair: tuple[Node, Node]) -> None:
    a, b = pair
    exchange(a, b, "02" * 16, b"first")
    good = b.sink.receipt(0)
    bad = Receipt(0, b"\x22" * 32, good.proof, good.checkpoint)
    with pytest.raises(PeerLogError):
        a.sink.after_response("FIU-B", None, b"x", 200, b"y", {H_RECEIPTS: _b64(bad.encode())})


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


@given(st.text(max_size=40))
def test_audit_header_numbers_from_a_peer_never_raise(value: str) -> None:
    number = audit_module._int(value)
    assert number is None or (value.isascii() and value.isdigit() and number == int(value))
    proof = audit_module._decode_proof(value)
    assert proof is None or (proof[0] >= 0 and proof[1] >= 0)


@pytest.mark.parametrize("value", ["\u00b2", "1:\u00b3:", "\u00b9\u00b2:3:", "-1", " 7", "1" * 20])
def test_non_ascii_or_out_of_range_sizes_are_ignored(value: str) -> None:
    assert audit_module._int(value) is None
    assert audit_module._decode_proof(value) is None
