"""Fuzzing the audit log decoders: entries, bundles (and ``verify``), signed checkpoint notes,
cosignatures, receipts, Merkle proofs and verifier keys.

Everything a node or an auditor reads from elsewhere must decode or raise an
``AuditLogError`` subclass. Signed things (checkpoints, cosignatures, receipts, bundles) are
never accepted once mutated.
"""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from fiumatch.auditlog.entry import decode_entry, encode_entry
from fiumatch.auditlog.errors import EntryError
from fiumatch.auditlog.merkle import leaf_hash
from tests.auditlog import reference
from tests.auditlog.factories import entries
from tests.fuzz._support import Mutant, fuzz_settings, mutants
from tests.fuzz.checks import run_check, samples

_S = samples()


@st.composite
def entry_like(draw: st.DrawFn) -> bytes:
    """Entry-shaped bytes: a plausible header and fields with random tags, lengths, values."""
    fields = []
    for _ in range(draw(st.integers(0, 6))):
        tag = draw(st.integers(0, 30))
        value = draw(
            st.one_of(
                st.binary(max_size=40),
                st.from_regex(r"[a-z0-9:._/-]{1,20}", fullmatch=True).map(str.encode),
                st.sampled_from([b"in", b"out", b"ok", b"budget", b"approved", b"created"]),
                st.text(max_size=20).map(lambda t: t.encode("utf-8", "surrogatepass")),
            )
        )
        length = len(value) if draw(st.booleans()) else draw(st.integers(0, 0xFFFF))
        fields.append(struct.pack(">BH", tag, length) + value)
    count = len(fields) if draw(st.booleans()) else draw(st.integers(0, 255))
    header = struct.pack(
        ">BHQQB",
        draw(st.sampled_from([1, 1, 0, 2])),
        draw(st.integers(0, 18)),
        draw(st.integers(0, 2**64 - 1)),
        draw(st.integers(0, 2**64 - 1)),
        count,
    )
    return header + b"".join(fields)


@fuzz_settings(200)
@given(st.binary(max_size=120))
def test_entry_arbitrary_bytes(data: bytes) -> None:
    run_check("audit_entry", data)


@fuzz_settings(500)
@given(entry_like())
def test_entry_shaped_bytes(data: bytes) -> None:
    run_check("audit_entry", data)


@fuzz_settings(300)
@given(
    st.one_of(st.sampled_from(_S.entries), entries().map(encode_entry)).flatmap(
        lambda e: st.tuples(st.just(e), mutants(e))
    )
)
def test_entry_mutants(case: tuple[bytes, Mutant]) -> None:
    """A mutant is refused (EntryError) or is another schema-valid entry, e.g. a flip in
    ``seq``, ``time_ms``, a count or a digest. It then hashes to another leaf, so it fails
    against the signed checkpoint root; that is what test_bundle_mutants shows: no mutated
    bundle verifies."""
    original, mutant = case
    run_check("audit_entry", mutant.data)
    try:
        decode_entry(mutant.data)
    except EntryError:
        return
    assert leaf_hash(mutant.data) != leaf_hash(original)


@fuzz_settings(150)
@given(st.binary(max_size=200).map(lambda b: b"FIUAUDIT\x01" + b))
def test_bundle_arbitrary_records(data: bytes) -> None:
    run_check("audit_bundle", data)


@fuzz_settings(200)
@given(mutants(_S.bundle))
def test_bundle_mutants(mutant: Mutant) -> None:
    """Every mutant of a signed bundle fails ``verify`` with an AuditLogError (checked in
    check_audit_bundle): CRCs, the entry schema, signed roots and consistency proofs leave
    no byte unchecked."""
    run_check("audit_bundle", mutant.data)


@st.composite
def note_like(draw: st.DrawFn) -> bytes:
    origin = draw(st.sampled_from(["fiu-a.example/audit", "x", ""]))
    size = draw(st.sampled_from(["0", "7", "18446744073709551616", "-1", "07", "x"]))
    root = draw(
        st.sampled_from(
            [
                "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
                "AAAA",
                "not base64",
                "",
            ]
        )
    )
    ext = draw(st.lists(st.text(max_size=10), max_size=2))
    sigs = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["fiu-a.example/audit", "fiu-b.example/witness", "", "a b", "a+b"]),
                st.binary(max_size=80),
            ),
            max_size=3,
        )
    )
    body = "\n".join([origin, size, root, *ext]) + "\n"
    import base64

    lines = "".join(f"\u2014 {n} {base64.b64encode(b).decode()}\n" for n, b in sigs)
    return (body + "\n" + lines).encode("utf-8", "surrogatepass")


@fuzz_settings(200)
@given(
    st.one_of(
        st.binary(max_size=150),
        st.text(max_size=80).map(lambda t: t.encode("utf-8", "surrogatepass")),
    )
)
def test_checkpoint_note_arbitrary(data: bytes) -> None:
    run_check("checkpoint_note", data)


@fuzz_settings(300)
@given(note_like())
def test_checkpoint_note_shaped(data: bytes) -> None:
    run_check("checkpoint_note", data)
    run_check("cosignature", data)


@fuzz_settings(200)
@given(mutants(_S.checkpoint))
def test_checkpoint_note_mutants(mutant: Mutant) -> None:
    """No mutant of a signed checkpoint opens under the log's key with another text."""
    run_check("checkpoint_note", mutant.data)


@fuzz_settings(150)
@given(mutants(_S.cosigned))
def test_cosignature_mutants(mutant: Mutant) -> None:
    """A mutant either fails, or the witness's line no longer matches (its name or key ID
    changed: ignored, as c2sp.org/signed-note requires), or it is the original text."""
    run_check("cosignature", mutant.data)
    run_check("checkpoint_note", mutant.data)


@fuzz_settings(150)
@given(st.binary(max_size=200).map(lambda b: b"\x01" + b))
def test_receipt_arbitrary(data: bytes) -> None:
    run_check("receipt", data)


@fuzz_settings(200)
@given(mutants(_S.receipt))
def test_receipt_mutants(mutant: Mutant) -> None:
    run_check("receipt", mutant.data)


@st.composite
def merkle_cases(draw: st.DrawFn) -> bytes:
    """The check's format: kind, a, b, then proof hashes: the true RFC 9162 proof (maybe
    damaged: a hash changed, dropped, added, or cut short) or random hashes."""
    leaves = _S.merkle_leaves
    kind = draw(st.integers(0, 1))
    a = draw(st.integers(0, len(leaves) + 2))
    b = draw(st.integers(0, len(leaves) + 2))
    if kind == 0:
        true = reference.path(a, leaves[:b]) if a < b <= len(leaves) else []
    else:
        true = reference.proof(a, leaves[:b]) if a <= b <= len(leaves) else []
    proof = list(true)
    action = draw(st.sampled_from(["keep", "change", "drop", "add", "short", "random"]))
    if action == "change" and proof:
        i = draw(st.integers(0, len(proof) - 1))
        proof[i] = draw(st.binary(min_size=32, max_size=32))
    elif action == "drop" and proof:
        del proof[draw(st.integers(0, len(proof) - 1))]
    elif action == "add":
        proof.insert(draw(st.integers(0, len(proof))), draw(st.binary(min_size=32, max_size=32)))
    elif action == "short" and proof:
        proof[-1] = proof[-1][: draw(st.integers(0, 31))]
    elif action == "random":
        proof = draw(st.lists(st.binary(min_size=32, max_size=32), max_size=6))
    return bytes([kind, a, b]) + b"".join(proof)


@fuzz_settings(400)
@given(merkle_cases())
def test_merkle_proofs_pass_exactly_when_true(data: bytes) -> None:
    run_check("merkle_proof", data)


@fuzz_settings(100)
@given(st.binary(max_size=100))
def test_merkle_proofs_arbitrary(data: bytes) -> None:
    run_check("merkle_proof", data)


@fuzz_settings(200)
@given(
    st.one_of(
        st.text(max_size=80).map(lambda t: t.encode("utf-8", "surrogatepass")),
        mutants(_S.log_key.vkey().encode()),
        mutants(_S.cosigner_key.vkey().encode()),
    )
)
def test_vkeys(data: bytes | Mutant) -> None:
    run_check("vkey", data.data if isinstance(data, Mutant) else data)


def test_samples_are_accepted() -> None:
    """The mutation tests start from messages the decoders accept."""
    from fiumatch.auditlog.checkpoint import Receipt, open_checkpoint, open_cosignatures
    from fiumatch.auditlog.verify import verify

    assert verify(_S.bundle, _S.log_key, peer_keys=[_S.peer_key]).receipts > 0
    assert open_checkpoint(_S.checkpoint, _S.log_key).size > 0
    assert len(open_cosignatures(_S.cosigned, [_S.cosigner_key])) == 1
    assert Receipt.decode(_S.receipt).encode() == _S.receipt
    for e in _S.entries:
        assert encode_entry(decode_entry(e)) == e
