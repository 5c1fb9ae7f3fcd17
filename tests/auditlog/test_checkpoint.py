"""Signed notes, checkpoints, cosignatures, receipts and the split-view check.

Known answers: the signed note of golang.org/x/mod/sumdb/note (the PeterNeumann example:
Ed25519 is deterministic, so signing must reproduce it byte for byte), verifier keys of
types 0x01 and 0x04 from transparency-dev/formats note tests, and the C2SP tlog-checkpoint
example body.
"""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fiumatch.auditlog.checkpoint import (
    Checkpoint,
    CosignatureVerifier,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    Receipt,
    SignedNote,
    add_cosignature,
    check_split_view,
    make_receipt,
    open_checkpoint,
    open_cosignatures,
    open_note,
    peek_checkpoint,
    sign_checkpoint,
    verify_receipt,
    witness_cosign,
)
from fiumatch.auditlog.errors import (
    AuditLogError,
    BadSignatureError,
    InclusionProofError,
    NoteError,
    SignatureError,
    SplitViewError,
    UnknownSignerError,
)
from fiumatch.auditlog.merkle import EMPTY_ROOT
from fiumatch.auditlog.tree import DictNodeStore, MerkleTree
from tests.auditlog.factories import cosigner, ed25519_key, log_signer

GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgK"
    "vqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def _go_signer() -> NoteSigner:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    raw = base64.b64decode(GO_SKEY.split("+", 4)[4])
    assert raw[0] == 0x01
    return NoteSigner("PeterNeumann", Ed25519PrivateKey.from_private_bytes(raw[1:]))


def test_go_sumdb_note_known_answer() -> None:
    signer = _go_signer()
    assert signer.verifier.vkey() == GO_VKEY
    assert signer.verifier.key_id.hex() == "c74f20a3"
    assert SignedNote(GO_TEXT, (signer.sign(GO_TEXT),)).encode() == GO_NOTE.encode()
    verifier = NoteVerifier.from_vkey(GO_VKEY)
    assert open_note(GO_NOTE, verifier).text == GO_TEXT
    with pytest.raises(BadSignatureError):
        open_note(GO_NOTE.replace("cryptography", "cryptographY"), verifier)


def test_verifier_keys_from_transparency_dev() -> None:
    # Type 0x01 whose base64 contains '+', and a native type 0x04 cosignature key.
    assert NoteVerifier.from_vkey("TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6")
    cv = CosignatureVerifier.from_vkey(
        "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
    )
    assert cv.key_id.hex() == "da77ade7"
    assert CosignatureVerifier.from_vkey(cv.vkey()).public_key == cv.public_key
    for bad in (
        "PeterNeumann+00000000+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3",
        "PeterNeumann+c74f20a3+BBpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ):
        with pytest.raises(NoteError):
            NoteVerifier.from_vkey(bad)
    with pytest.raises(NoteError):  # a type 0x01 key is not a cosignature key
        CosignatureVerifier.from_vkey(GO_VKEY)


def test_checkpoint_body_matches_c2sp_example() -> None:
    root = base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    cp = Checkpoint("example.com/behind-the-sofa", 20852163, root)
    assert cp.body() == (
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    )
    assert Checkpoint.parse_body(cp.body()) == cp
    note = cp.body() + (
        "\n— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5"
        "/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    )
    parsed = SignedNote.parse(note)
    assert parsed.signatures[0].key_id.hex() == "033de0ae"
    assert len(parsed.signatures[0].signature) == 64
    assert peek_checkpoint(note) == cp


def test_sign_and_open_checkpoint() -> None:
    signer = log_signer()
    cp = Checkpoint(signer.name, 5, b"\x07" * 32)
    note = sign_checkpoint(cp, signer)
    assert note.decode().startswith(f"{signer.name}\n5\n")
    assert open_checkpoint(note, signer.verifier) == cp
    other = log_signer("fiu-x.example/audit")
    with pytest.raises(UnknownSignerError):
        open_checkpoint(note, other.verifier)
    # Same name, another key: the key ID differs, so the line is not ours.
    impostor = NoteSigner(signer.name, ed25519_key("impostor"))
    with pytest.raises(UnknownSignerError):
        open_checkpoint(sign_checkpoint(cp, impostor), signer.verifier)
    with pytest.raises(NoteError, match="origin"):
        open_checkpoint(note, signer.verifier, origin="elsewhere")
    tampered = note.replace(b"\n5\n", b"\n6\n")
    with pytest.raises(BadSignatureError):
        open_checkpoint(tampered, signer.verifier)
    # A failing line from the known key rejects the note even next to a valid one.
    bad = NoteSignature(signer.name, signer.verifier.key_id, b"\x00" * 64)
    doubled = SignedNote(cp.body(), (signer.sign(cp.body()), bad)).encode()
    with pytest.raises(BadSignatureError):
        open_checkpoint(doubled, signer.verifier)
    # Lines from unknown keys are ignored.
    extra = SignedNote(cp.body(), (other.sign(cp.body()), signer.sign(cp.body()))).encode()
    assert open_checkpoint(extra, signer.verifier) == cp


@pytest.mark.parametrize(
    "note",
    [
        b"o\n1\nAAAA\n",
        b"o\n1\nAAAA\n\n",
        b"o\n1\n\n\xff\n",
        "o\n1\n\n— name\tAAAAAAA=\n".encode(),
        b"o\n1\n\n-- name AAAAAAA=\n",
        "o\n1\n\n— name AAAAAAA= extra\n".encode(),
        "o\n1\n\n— na+me AAAAAAA=\n".encode(),
        "o\n1\n\n— name AAAA\n".encode(),
        "o\n1\n\n— name AAAAAAA\n".encode(),
        "o\n1\n\n— name AAAAAAA=".encode(),
        b"x" * 70000,
        ("o\n1\n\n" + "— name AAAAAAA=\n" * 101).encode(),
    ],
)
def test_malformed_notes_are_refused(note: bytes) -> None:
    with pytest.raises(NoteError):
        SignedNote.parse(note)


@pytest.mark.parametrize(
    "body",
    [
        "o\n01\n" + base64.b64encode(b"\x00" * 32).decode() + "\n",
        "o\n1\n" + base64.b64encode(b"\x00" * 31).decode() + "\n",
        "o\n-1\n" + base64.b64encode(b"\x00" * 32).decode() + "\n",
        "\n1\n" + base64.b64encode(b"\x00" * 32).decode() + "\n",
        "o\n1\n",
        "o\n1\n" + base64.b64encode(b"\x00" * 32).decode(),
        "o\n0\n" + base64.b64encode(b"\x00" * 32).decode() + "\n",
        "o\n1\n" + base64.b64encode(b"\x00" * 32).decode()[:-2] + "B=\n",  # padding bits set
        "o\n1\n" + base64.b64encode(b"\x00" * 32).decode() + "\n\n",
    ],
)
def test_malformed_checkpoint_bodies_are_refused(body: str) -> None:
    with pytest.raises(NoteError):
        Checkpoint.parse_body(body)


def test_empty_tree_checkpoint() -> None:
    cp = Checkpoint("o", 0, EMPTY_ROOT)
    assert Checkpoint.parse_body(cp.body()) == cp


def test_cosignature_format_and_verification() -> None:
    signer = log_signer()
    witness = cosigner()
    cp = Checkpoint(signer.name, 9, b"\x01" * 32)
    note = sign_checkpoint(cp, signer)
    cosigned = add_cosignature(note, witness, 1_727_964_367)
    assert cosigned.startswith(note)  # the log's line stays first
    parsed = SignedNote.parse(cosigned)
    line = parsed.signatures[1]
    assert line.key_id == witness.verifier.key_id
    assert line.signature[:8] == (1_727_964_367).to_bytes(8, "big")
    # The signed message is exactly tlog-cosignature/v1's.
    message = b"cosignature/v1\ntime 1727964367\n" + cp.body().encode()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    Ed25519PublicKey.from_public_bytes(witness.verifier.public_key).verify(
        line.signature[8:], message
    )
    assert open_checkpoint(cosigned, signer.verifier) == cp
    got = open_cosignatures(cosigned, [witness.verifier])
    assert [(c.name, c.timestamp) for c in got] == [(witness.name, 1_727_964_367)]
    assert open_cosignatures(note, [witness.verifier]) == []
    # The same key as a plain note signer does not match a 0x04 line, and vice versa.
    as_plain = NoteVerifier(witness.name, witness.verifier.public_key)
    with pytest.raises(UnknownSignerError):
        open_note(add_cosignature(sign_checkpoint(cp, log_signer("other")), witness, 5),
                  as_plain)
    forged = SignedNote(parsed.text, (parsed.signatures[0], NoteSignature(
        witness.name, witness.verifier.key_id, (5).to_bytes(8, "big") + line.signature[8:]
    ))).encode()
    with pytest.raises(BadSignatureError):
        open_cosignatures(forged, [witness.verifier])
    with pytest.raises(NoteError):
        add_cosignature(note, witness, -1)


def _log(n: int, origin: str = "fiu-a.example/audit", prefix: bytes = b"e") -> MerkleTree:
    tree = MerkleTree(DictNodeStore())
    for i in range(n):
        tree.append(prefix + i.to_bytes(4, "big"))
    return tree


def test_witness_cosign_refuses_rollback_and_forks() -> None:
    signer = log_signer()
    witness = cosigner()
    tree = _log(20)
    old = sign_checkpoint(Checkpoint(signer.name, 12, tree.root_at(12)), signer)
    new = sign_checkpoint(Checkpoint(signer.name, 20, tree.root()), signer)
    out = witness_cosign(new, signer.verifier, witness, 100, previous=old,
                         proof=tree.consistency_proof(12, 20))
    assert open_cosignatures(out, [witness.verifier])[0].timestamp == 100
    with pytest.raises(NoteError, match="older"):
        witness_cosign(old, signer.verifier, witness, 100, previous=new)
    fork = _log(20, prefix=b"f")
    forked = sign_checkpoint(Checkpoint(signer.name, 20, fork.root()), signer)
    with pytest.raises(SplitViewError):
        witness_cosign(forked, signer.verifier, witness, 100, previous=old,
                       proof=fork.consistency_proof(12, 20))


def test_split_view_same_size() -> None:
    signer = log_signer()
    a = sign_checkpoint(Checkpoint(signer.name, 7, b"\x01" * 32), signer)
    b = sign_checkpoint(Checkpoint(signer.name, 7, b"\x02" * 32), signer)
    check_split_view(a, a, signer.verifier)
    with pytest.raises(SplitViewError) as info:
        check_split_view(a, b, signer.verifier)
    err = info.value
    assert err.evidence == "same_size_different_root"
    assert (err.first_root, err.second_root) == (b"\x01" * 32, b"\x02" * 32)
    assert err.details["first_root"] == (b"\x01" * 32).hex()
    forged = b.replace(b"\n7\n", b"\n8\n")
    with pytest.raises(SignatureError):
        check_split_view(a, forged, signer.verifier)


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 120), st.data())
def test_split_view_detected_for_any_fork_point(n: int, data: st.DataObject) -> None:
    signer = log_signer()
    honest = _log(n)
    fork_at = data.draw(st.integers(0, n - 1))
    size1 = data.draw(st.integers(1, n))
    fork = MerkleTree(DictNodeStore())
    for i in range(n):
        fork.append(b"e" + i.to_bytes(4, "big") if i < fork_at else b"forged")
    small = sign_checkpoint(Checkpoint(signer.name, size1, honest.root_at(size1)), signer)
    big_honest = sign_checkpoint(Checkpoint(signer.name, n, honest.root()), signer)
    big_forked = sign_checkpoint(Checkpoint(signer.name, n, fork.root()), signer)
    check_split_view(small, big_honest, signer.verifier, honest.consistency_proof(size1, n))
    check_split_view(big_honest, small, signer.verifier, honest.consistency_proof(size1, n))
    forked_prefix = fork_at < size1
    if size1 < n:
        proof = fork.consistency_proof(size1, n)
        if forked_prefix:
            with pytest.raises(SplitViewError) as info:
                check_split_view(small, big_forked, signer.verifier, proof)
            assert info.value.evidence == "consistency_proof_failed"
            assert info.value.first_size == size1 and info.value.second_size == n
        else:
            check_split_view(small, big_forked, signer.verifier, proof)
    if fork_at < n:
        with pytest.raises(SplitViewError):
            check_split_view(big_honest, big_forked, signer.verifier)


def test_receipt_round_trip_and_verification() -> None:
    signer = log_signer()
    store = DictNodeStore()
    tree = MerkleTree(store)
    results = [tree.append(f"entry {i}".encode()) for i in range(11)]
    note = sign_checkpoint(Checkpoint(signer.name, tree.size, tree.root()), signer)
    receipt = make_receipt(4, results[4].leaf_hash, note, store.get_node)
    assert Receipt.decode(receipt.encode()) == receipt
    assert receipt.origin() == signer.name
    assert verify_receipt(receipt, signer.verifier).size == 11
    wrong = Receipt(4, results[5].leaf_hash, receipt.proof, receipt.checkpoint)
    with pytest.raises(InclusionProofError) as info:
        verify_receipt(wrong, signer.verifier)
    assert info.value.expected_root == tree.root()
    assert info.value.computed_root not in (None, tree.root())
    with pytest.raises(UnknownSignerError):
        verify_receipt(receipt, log_signer("other").verifier)
    with pytest.raises(NoteError):
        Receipt.decode(receipt.encode()[:-1])
    with pytest.raises(NoteError):
        Receipt.decode(b"\x02" + receipt.encode()[1:])
    with pytest.raises(NoteError):
        Receipt.decode(b"\x01")


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_flipped_receipt_byte_is_refused(data: st.DataObject) -> None:
    signer = log_signer()
    store = DictNodeStore()
    tree = MerkleTree(store)
    results = [tree.append(f"entry {i}".encode()) for i in range(13)]
    note = sign_checkpoint(Checkpoint(signer.name, tree.size, tree.root()), signer)
    raw = bytearray(make_receipt(6, results[6].leaf_hash, note, store.get_node).encode())
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= data.draw(st.integers(1, 255))
    with pytest.raises(AuditLogError):
        verify_receipt(Receipt.decode(bytes(raw)), signer.verifier)
