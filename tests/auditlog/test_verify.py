"""verify(): a valid bundle passes; every mutation is caught, at its location.

Two kinds of attack are simulated. Raw damage (a flipped byte anywhere, a cut anywhere)
is pinned by the record checksums to the record it hit. A forger who re-frames the file
(valid checksums and counts) is caught by the signed checkpoints: the error names the first
bad entry, or the first checkpoint that covers a changed entry, or the proof or receipt.
Hypothesis draws the log sizes, checkpoint positions and mutation positions.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fiumatch.auditlog.bundle import RecordKind, iter_records
from fiumatch.auditlog.checkpoint import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    Receipt,
    add_cosignature,
    make_receipt,
    sign_checkpoint,
)
from fiumatch.auditlog.entry import EventType, body_digest, decode_entry, encode_entry
from fiumatch.auditlog.errors import (
    BadEntryError,
    BundleFormatError,
    BundleTruncatedError,
    CheckpointError,
    CheckpointSignatureError,
    ConsistencyError,
    ForkError,
    ReceiptError,
    RootMismatchError,
    SequenceGapError,
    TimeRegressionError,
    UnsignedTailError,
    VerificationError,
)
from fiumatch.auditlog.merkle import leaf_hash
from fiumatch.auditlog.verify import verify
from tests.auditlog.factories import cosigner, ed25519_key, log_signer
from tests.auditlog.scenario import (
    T0,
    Node,
    join_records,
    peek_size,
    recount,
    simple_node,
    split_records,
    two_nodes,
)

E, C, P, R = RecordKind.ENTRY, RecordKind.CHECKPOINT, RecordKind.CONSISTENCY, RecordKind.RECEIPT


@st.composite
def logs(draw: st.DrawFn, max_size: int = 40) -> Node:
    n = draw(st.integers(1, max_size))
    marks = draw(st.sets(st.integers(1, n), max_size=6))
    return simple_node(n, checkpoint_at=marks)


def caught(cls: type[VerificationError], bundle: bytes, key: NoteVerifier,
           **kwargs: Any) -> VerificationError:
    """verify() must raise ``cls``; return the error."""
    with pytest.raises(cls) as info:
        verify(bundle, key, **kwargs)
    return info.value


def names(records: list[tuple[int, bytes]], start: int = 0) -> list[str]:
    """The location verify() uses for each record (header and end included)."""
    out, e, c, r = [], start, 0, 0
    for kind, _ in records:
        if kind == E:
            out.append(f"entry {e}")
            e += 1
        elif kind == C:
            out.append(f"checkpoint {c}")
            c += 1
        elif kind == P:
            out.append(f"proof {c - 1}")
        elif kind == R:
            out.append(f"receipt {r}")
            r += 1
        else:
            out.append("bundle header" if kind == RecordKind.HEADER else "bundle end")
    return out


def covering_checkpoint(records: list[tuple[int, bytes]], entry_index: int) -> str:
    c = 0
    for kind, payload in records:
        if kind == C:
            if peek_size(payload) > entry_index:
                return f"checkpoint {c}"
            c += 1
    raise AssertionError("no checkpoint covers the entry")


def test_valid_bundles_verify() -> None:
    world = two_nodes(3)
    report = verify(world.a.export(), world.a.signer.verifier, peer_keys=[world.b.signer.verifier])
    assert (report.origin, report.start, report.size) == (world.a.origin, 0, 9)
    assert report.root == world.a.tree.root()
    assert report.receipts == 6 and report.checkpoints == 1
    assert report.first_time_ms == T0 + 1000
    rb = verify(world.b.export(), world.b.signer.verifier)
    assert rb.checkpoints == 7 and rb.proofs == 6 and rb.receipts == 0


@settings(max_examples=40, deadline=None)
@given(logs(), st.data())
def test_partial_bundles_verify_from_any_checkpoint(node: Node, data: st.DataObject) -> None:
    starts = [peek_size(c) for c in node.checkpoints]
    start = data.draw(st.sampled_from(starts))
    report = verify(node.export(start=start), node.signer.verifier)
    assert (report.start, report.size, report.root) == (start, node.tree.size, node.tree.root())


@settings(max_examples=150, deadline=None)
@given(logs(), st.data())
def test_any_flipped_byte_is_caught_in_its_record(node: Node, data: st.DataObject) -> None:
    bundle = bytearray(node.export())
    pos = data.draw(st.integers(0, len(bundle) - 1))
    bundle[pos] ^= 1 << data.draw(st.integers(0, 7))
    err = caught(VerificationError, bytes(bundle), node.signer.verifier)
    if pos < 9:
        assert err.location == "bundle header"
    else:
        ordinal = max(r.ordinal for r in iter_records(node.export()) if r.offset <= pos)
        assert err.location == f"record {ordinal}"


@settings(max_examples=80, deadline=None)
@given(logs(), st.data())
def test_any_truncation_is_caught(node: Node, data: st.DataObject) -> None:
    full = node.export()
    cut = data.draw(st.integers(0, len(full) - 1))
    err = caught(BundleFormatError, full[:cut], node.signer.verifier)  # truncated is a subclass
    boundaries = {r.offset: r.ordinal for r in iter_records(full)}
    if cut < 9:
        assert err.location == "bundle header"
    elif cut in boundaries:
        assert err.location == "bundle end"
    else:
        ordinal = max(o for off, o in boundaries.items() if off < cut)
        assert err.location == f"record {ordinal}"


@settings(max_examples=120, deadline=None)
@given(logs(), st.data())
def test_reframed_byte_flips_are_caught_at_the_entry_checkpoint_or_proof(
    node: Node, data: st.DataObject
) -> None:
    records = split_records(node.export())
    where = names(records)
    i = data.draw(st.integers(1, len(records) - 2))  # not header or end
    kind, payload = records[i]
    pos = data.draw(st.integers(0, len(payload) - 1))
    flipped = bytearray(payload)
    flipped[pos] ^= 1 << data.draw(st.integers(0, 7))
    records[i] = (kind, bytes(flipped))
    err = caught(VerificationError, join_records(records), node.signer.verifier)
    if kind == E:
        index = int(where[i].split()[1])
        if isinstance(err, BadEntryError | SequenceGapError):
            assert err.location == where[i]
        elif isinstance(err, TimeRegressionError):
            # A time pushed forward is only visible at the next entry, which then goes back.
            assert err.location in (where[i], f"entry {index + 1}")
        else:
            assert isinstance(err, RootMismatchError)
            assert err.location == covering_checkpoint(records, index)
            first, last = err.details["first_entry"], err.details["last_entry"]
            assert isinstance(first, int) and isinstance(last, int)
            assert first <= index <= last
    elif kind == C:
        assert isinstance(err, CheckpointError)
        assert err.location == where[i]
    else:
        assert isinstance(err, ConsistencyError | BundleFormatError)
        assert err.location == where[i]


@settings(max_examples=60, deadline=None)
@given(logs(), st.data())
def test_dropped_duplicated_and_swapped_entries(node: Node, data: st.DataObject) -> None:
    records = split_records(node.export())
    entry_pos = [i for i, (k, _) in enumerate(records) if k == E]
    k = data.draw(st.integers(0, len(entry_pos) - 1))
    i = entry_pos[k]
    op = data.draw(st.sampled_from(["drop", "duplicate", "swap", "insert"]))
    if op == "insert":
        # A forged entry at k, later entries renumbered: the checkpoints stay where they were
        # signed, so the first one after k is misplaced (or, if it is at k, has the old root).
        forged = replace(decode_entry(records[i][1]), actor="forger")
        shifted = [(E, encode_entry(replace(decode_entry(p), seq=decode_entry(p).seq + 1)))
                   if kind == E else (kind, p) for kind, p in records[i:]]
        mutated = [*records[:i], (E, encode_entry(forged)), *shifted]
        err = caught(VerificationError, join_records(recount(mutated)), node.signer.verifier)
        assert isinstance(err, CheckpointError | RootMismatchError)
        assert err.location == covering_checkpoint(records, k)
        return
    if op == "drop":
        mutated = records[:i] + records[i + 1 :]
        nxt = records[i + 1][0]
        expected = f"entry {k}" if nxt == E else None  # else the checkpoint is misplaced
    elif op == "duplicate":
        mutated = [*records[: i + 1], records[i], *records[i + 1 :]]
        expected = f"entry {k + 1}"
    else:
        if records[i + 1][0] != E:
            return
        mutated = [*records[:i], records[i + 1], records[i], *records[i + 2 :]]
        expected = f"entry {k}"
    err = caught(VerificationError, join_records(recount(mutated)), node.signer.verifier)
    if expected is not None:
        assert isinstance(err, SequenceGapError)
        assert err.location == expected
    else:
        assert isinstance(err, CheckpointError)
        assert err.location == names(records)[i + 1]
        assert (err.expected, err.found) == (k, k + 1)


@settings(max_examples=40, deadline=None)
@given(logs(), st.data())
def test_a_forger_renumbering_entries_is_caught_at_the_covering_checkpoint(
    node: Node, data: st.DataObject
) -> None:
    entries = [decode_entry(x) for x in node.entries]
    k = data.draw(st.integers(0, len(entries) - 1))
    forged = replace(entries[k], actor="forger")
    records = split_records(node.export())
    pos = [i for i, (kind, _) in enumerate(records) if kind == E][k]
    records[pos] = (E, encode_entry(forged))
    err = caught(RootMismatchError, join_records(records), node.signer.verifier)
    assert err.location == covering_checkpoint(records, k)
    assert err.expected != err.found


def test_inserted_entry_with_renumbering_is_caught() -> None:
    node = simple_node(6, checkpoint_at=[3])
    entries = [decode_entry(x) for x in node.entries]
    fake = replace(entries[1], seq=2, actor="forger")
    renumbered = [*entries[:2], fake, *(replace(e, seq=e.seq + 1) for e in entries[2:])]
    forged = Node(node.name, node.signer)
    forged.entries = [encode_entry(e) for e in renumbered]
    records = split_records(node.export())
    body = [r for r in records if r[0] == E]
    assert len(body) == 6
    others = [r for r in records if r[0] != E][1:]
    new = [records[0], *((E, x) for x in forged.entries[:3]), *others]
    err = caught(RootMismatchError, join_records(recount(new)), node.signer.verifier)
    assert err.location == "checkpoint 0"


def test_checkpoint_attacks() -> None:
    node = simple_node(12, checkpoint_at=[4, 8])
    records = split_records(node.export())
    cps = [i for i, (k, _) in enumerate(records) if k == C]
    # Swapped roots, re-signed by an insider: the entries disagree with the signed root.
    cp1 = Checkpoint(node.origin, 8, node.tree.root_at(4))
    swapped = list(records)
    swapped[cps[1]] = (C, sign_checkpoint(cp1, node.signer))
    err = caught(RootMismatchError, join_records(swapped), node.signer.verifier)
    assert err.location == "checkpoint 1"
    assert err.expected == node.tree.root_at(4).hex()
    assert err.found == node.tree.root_at(8).hex()
    # Swapped roots without the key: the signature fails.
    note1, note0 = records[cps[1]][1], records[cps[0]][1]
    forged = list(records)
    forged[cps[1]] = (C, note1.replace(note1.split(b"\n")[2], note0.split(b"\n")[2]))
    err = caught(CheckpointSignatureError, join_records(forged), node.signer.verifier)
    assert err.location == "checkpoint 1"
    # Signed by another key.
    other = list(records)
    impostor = NoteSigner(node.origin, ed25519_key("not the log"))
    other[cps[2]] = (C, sign_checkpoint(Checkpoint(node.origin, 12, node.tree.root()), impostor))
    err = caught(CheckpointSignatureError, join_records(other), node.signer.verifier)
    assert err.location == "checkpoint 2"
    assert err.details["key"] == node.origin
    # The right bundle under the wrong pinned key.
    err = caught(CheckpointSignatureError, node.export(),
                 log_signer("fiu-x.example/audit").verifier)
    assert err.location == "checkpoint 0"
    # Swapped checkpoint records.
    reordered = list(records)
    reordered[cps[0]], reordered[cps[1]] = reordered[cps[1]], reordered[cps[0]]
    err = caught(CheckpointError, join_records(reordered), node.signer.verifier)
    assert err.location == "checkpoint 0"
    assert (err.expected, err.found) == (4, 8)


def test_consistency_proof_attacks() -> None:
    node = simple_node(12, checkpoint_at=[5, 9])
    records = split_records(node.export())
    proofs = [i for i, (k, _) in enumerate(records) if k == P]
    dropped = records[: proofs[0]] + records[proofs[0] + 1 :]
    err = caught(ConsistencyError, join_records(recount(dropped)), node.signer.verifier)
    assert "no consistency proof" in err.reason
    assert err.location == "proof 1"
    swapped = list(records)
    swapped[proofs[0]], swapped[proofs[1]] = swapped[proofs[1]], swapped[proofs[0]]
    err = caught(ConsistencyError, join_records(swapped), node.signer.verifier)
    assert "other sizes" in err.reason
    assert err.location == "proof 1"
    payload = bytearray(records[proofs[1]][1])
    payload[-1] ^= 1
    bad = list(records)
    bad[proofs[1]] = (P, bytes(payload))
    err = caught(ConsistencyError, join_records(bad), node.signer.verifier)
    assert err.location == "proof 2"
    assert err.details["first_root"] == node.tree.root_at(9).hex()
    assert err.details["second_root"] == node.tree.root().hex()
    assert err.expected in (err.details["first_root"], err.details["second_root"])
    assert err.found is not None and err.found != err.expected
    extra = [*records[:2], (P, records[proofs[0]][1]), *records[2:]]
    err = caught(ConsistencyError, join_records(recount(extra)), node.signer.verifier)
    assert err.location == "record 2"


def test_time_regression_unsigned_tail_and_end_counts() -> None:
    node = Node("fiu-a", log_signer())
    node.log_event(EventType.LOGIN, T0 + 10)
    node.log_event(EventType.LOGIN, T0 + 5)
    node.checkpoint()
    err = caught(TimeRegressionError, node.export(), node.signer.verifier)
    assert (err.location, err.found) == ("entry 1", T0 + 5)
    good = simple_node(6, checkpoint_at=[3])
    records = split_records(good.export())
    tail = [r for r in records if r not in (records[-2], records[-3])]  # last checkpoint+proof
    err = caught(UnsignedTailError, join_records(recount(tail)), good.signer.verifier)
    assert err.location == "entry 3"
    err = caught(BundleTruncatedError, join_records([*records[:-4], records[-1]]),
                 good.signer.verifier)
    assert err.location == "bundle end"
    no_cp = [r for r in records if r[0] not in (C, P)]
    err = caught(UnsignedTailError, join_records(recount(no_cp)), good.signer.verifier)
    assert err.location == "entry 0"


def test_receipt_attacks() -> None:
    world = two_nodes(2)
    a, b = world.a, world.b
    keys = [b.signer.verifier]
    records = split_records(a.export())
    receipts = [i for i, (k, _) in enumerate(records) if k == R]
    err = caught(ReceiptError, a.export(), a.signer.verifier)
    assert "no pinned key" in err.reason
    assert err.location == "receipt 0"
    flipped = bytearray(records[receipts[2]][1])
    flipped[30] ^= 1  # inside the leaf hash
    bad = list(records)
    bad[receipts[2]] = (R, bytes(flipped))
    err = caught(ReceiptError, join_records(bad), a.signer.verifier, peer_keys=keys)
    assert err.location == "receipt 2"
    assert err.details["expected_root"] is not None
    misattached = list(records)
    misattached[receipts[1]] = (R, (0).to_bytes(8, "big") + records[receipts[1]][1][8:])
    err = caught(ReceiptError, join_records(misattached), a.signer.verifier, peer_keys=keys)
    assert "outgoing" in err.reason
    assert (err.location, err.found) == ("receipt 1", 0)
    dropped = records[: receipts[3]] + records[receipts[3] + 1 :]
    err = caught(BundleFormatError, join_records(dropped), a.signer.verifier, peer_keys=keys)
    assert err.location == "bundle end"


def test_cosignatures_are_checked_when_the_cosigner_is_known() -> None:
    node = simple_node(6, checkpoint_at=[3])
    witness = cosigner()
    records = split_records(node.export())
    cps = [i for i, (k, _) in enumerate(records) if k == C]
    cosigned = list(records)
    cosigned[cps[1]] = (C, add_cosignature(records[cps[1]][1], witness, 1_700_000_000))
    report = verify(join_records(cosigned), node.signer.verifier, cosigners=[witness.verifier])
    assert report.cosignatures == 1
    assert verify(join_records(cosigned), node.signer.verifier).cosignatures == 0
    payload = bytearray(cosigned[cps[1]][1])
    payload[-10] ^= 1  # inside the cosignature
    cosigned[cps[1]] = (C, bytes(payload))
    err = caught(CheckpointSignatureError, join_records(cosigned), node.signer.verifier,
                 cosigners=[witness.verifier])
    assert err.location == "checkpoint 1"


def test_known_checkpoints_and_issued_receipts_catch_forks_and_truncation() -> None:
    node = simple_node(20, checkpoint_at=[7, 12])
    signer = node.signer
    known = sign_checkpoint(Checkpoint(node.origin, 10, node.tree.root_at(10)), signer)
    report = verify(node.export(), signer.verifier, known_checkpoints=[known])
    assert report.known_checkpoints == 1
    # The log showed someone else a different tree at size 10: a split view.
    fork = simple_node(20, salt="fork")
    assert fork.tree.root_at(10) != node.tree.root_at(10)
    forked = sign_checkpoint(Checkpoint(node.origin, 10, fork.tree.root_at(10)), signer)
    err = caught(ForkError, node.export(), signer.verifier, known_checkpoints=[known, forked])
    assert err.location == "known checkpoint 1"
    assert err.expected == fork.tree.root_at(10).hex()
    # A bundle that stops before a checkpoint the auditor has seen is truncated.
    short = simple_node(12, checkpoint_at=[7])
    later = sign_checkpoint(Checkpoint(node.origin, 15, node.tree.root_at(15)), signer)
    err = caught(BundleTruncatedError, short.export(), signer.verifier, known_checkpoints=[later])
    assert err.location == "known checkpoint 0"
    with pytest.raises(BundleTruncatedError, match="starts after"):
        verify(node.export(start=12), signer.verifier, known_checkpoints=[known])
    with pytest.raises(CheckpointSignatureError):
        verify(node.export(), signer.verifier,
               known_checkpoints=[sign_checkpoint(Checkpoint(node.origin, 3, b"\x00" * 32),
                                                  log_signer("someone.else"))])
    # Receipts peers hold from this log must match the bundle's leaves and roots.
    note = node.checkpoints[1]
    good = make_receipt(9, leaf_hash(node.entries[9]), note, node.store.get_node)
    assert verify(node.export(), signer.verifier, issued_receipts=[good]).issued_receipts == 1
    fake_leaf = leaf_hash(b"something the log told only one peer")
    fork_store = _tree_with_leaf(node, 9, fake_leaf)
    fork_note = sign_checkpoint(Checkpoint(node.origin, 12, fork_store[1]), signer)
    lying = Receipt(9, fake_leaf, tuple(fork_store[0]), fork_note)
    err = caught(ForkError, node.export(), signer.verifier, issued_receipts=[good, lying])
    assert err.location == "issued receipt 1"
    with pytest.raises(ReceiptError):
        verify(node.export(), signer.verifier,
               issued_receipts=[Receipt(9, fake_leaf, good.proof, good.checkpoint)])


def _tree_with_leaf(node: Node, index: int, leaf: bytes) -> tuple[list[bytes], bytes]:
    from fiumatch.auditlog.merkle import CompactRange
    from fiumatch.auditlog.proofs import inclusion_proof

    store: dict[tuple[int, int], bytes] = {}
    cr = CompactRange()
    for i, data in enumerate(node.entries[:12]):
        for n in cr.append(leaf if i == index else leaf_hash(data)):
            store[(n.level, n.index)] = n.hash
    return inclusion_proof(index, 12, lambda lv, ix: store[(lv, ix)]), cr.root()


def test_wrong_frontier_in_a_partial_bundle_is_caught_at_the_base_checkpoint() -> None:
    node = simple_node(20, checkpoint_at=[12])
    records = split_records(node.export(start=12))
    header = bytearray(records[0][1])
    header[-1] ^= 1
    records[0] = (RecordKind.HEADER, bytes(header))
    err = caught(RootMismatchError, join_records(records), node.signer.verifier)
    assert err.location == "checkpoint 0"


def test_tampered_header_origin_is_caught_at_the_first_checkpoint() -> None:
    node = simple_node(4, checkpoint_at=[2])
    records = split_records(node.export())
    records[0] = (RecordKind.HEADER, records[0][1].replace(b"fiu-a", b"fiu-z"))
    err = caught(CheckpointError, join_records(records), node.signer.verifier)
    assert "another origin" in err.reason
    assert err.location == "checkpoint 0"


def test_request_digest_helper_is_sha256() -> None:
    assert body_digest(b"x") == hashlib.sha256(b"x").digest()
