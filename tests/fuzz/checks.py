"""One property per decoder: what must hold for ANY input bytes.

Each ``check_<decoder>(data)`` feeds ``data`` to one decoder of the project and asserts:

* the decoder either accepts it or raises that module's typed error (a
  :class:`~fiumatch.errors.FiumatchError` subclass, or the documented ``ValueError`` of the
  structured-field parser); any other exception propagates and fails the test;
* where the format is canonical, an accepted input re-encodes to the same bytes;
* where the input carries a signature, MAC or proof made by a fixed test key, acceptance
  implies the input is (equivalent to) the one that key signed: a mutant is never accepted.

``CHECKS`` maps decoder names (the directories of ``seeds/``) to these functions. The valid
samples (:func:`samples`) are built once from fixed test keys; they are both the starting
points of the mutation tests and seeds of the corpus.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any
from unittest import mock

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fiumatch.auditlog import errors as audit_errors
from fiumatch.auditlog.bundle import decode_bundle
from fiumatch.auditlog.checkpoint import (
    Checkpoint,
    CosignatureVerifier,
    NoteVerifier,
    Receipt,
    SignedNote,
    add_cosignature,
    check_split_view,
    open_checkpoint,
    open_cosignatures,
    peek_checkpoint,
    verify_receipt,
    witness_cosign,
)
from fiumatch.auditlog.entry import (
    Entry,
    decode_entry,
    encode_entry,
    entry_from_dict,
    entry_to_dict,
)
from fiumatch.auditlog.merkle import EMPTY_ROOT, leaf_hash
from fiumatch.auditlog.proofs import verify_consistency, verify_inclusion
from fiumatch.auditlog.verify import verify
from fiumatch.identifiers.errors import KeyEncodingError
from fiumatch.identifiers.keys import KeyType, MatchKey, decode_key
from fiumatch.node import httpsig, sealing
from fiumatch.node.errors import NodeAuthError, SealingError
from fiumatch.protocol import group, oprf, wire
from fiumatch.protocol.errors import (
    DecodeError,
    FilterError,
    InvalidElementError,
    InvalidScalarError,
    OversizedMessageError,
    TrailingDataError,
    TruncatedMessageError,
    VerifyError,
)
from fiumatch.protocol.filters import (
    OBJECT_HEADER_LEN,
    BloomFilter,
    FilterLedger,
    FilterObjectSplitter,
    FilterReplica,
    decode_filter_object,
)
from tests.auditlog import reference
from tests.auditlog.factories import cosigner, log_signer
from tests.auditlog.scenario import Node, simple_node, two_nodes
from tests.fuzz._support import record_seed

__all__ = ["CHECKS", "SMALL_LIMITS", "Samples", "run_check", "samples"]

AuditLogError = audit_errors.AuditLogError

SMALL_LIMITS = wire.Limits(
    max_elements=64,
    max_chunk_elements=8,
    chunk_elements=4,
    max_frame_bytes=1024,
    filter_chunk_bytes=256,
)
_LIMITS = (wire.Limits(), SMALL_LIMITS)


def _text(data: bytes) -> str:
    """Bytes as a str decoder sees them; invalid UTF-8 becomes lone surrogates, which a str
    decoder must survive too (JSON and HTTP stacks can hand them over)."""
    return data.decode("utf-8", "surrogateescape")


# =============================================================================================
# Samples: valid messages made with fixed test keys


def _rng(label: str) -> Callable[[int], bytes]:
    counter = 0

    def rng(n: int) -> bytes:
        nonlocal counter
        counter += 1
        return hashlib.shake_256(f"{label}:{counter}".encode()).digest(n)

    return rng


@dataclass(frozen=True)
class Samples:
    frames: tuple[bytes, ...]
    filter_objects: tuple[bytes, ...]
    bloom_stream: bytes
    exact_stream: bytes
    oprf_pk: bytes
    blinded: tuple[bytes, ...]
    evaluated: tuple[bytes, ...]
    proof: bytes
    entries: tuple[bytes, ...]
    bundle: bytes
    log_key: NoteVerifier
    peer_key: NoteVerifier
    checkpoint: bytes
    cosigned: bytes
    cosigner_key: CosignatureVerifier
    receipt: bytes
    peer_leaves: tuple[bytes, ...]
    merkle_leaves: tuple[bytes, ...]
    http_request: bytes
    http_key: Ed25519PublicKey
    content_digest_body: bytes
    sealed: bytes
    match_keys: tuple[bytes, ...]


def _sample_frames() -> tuple[bytes, ...]:
    sid = bytes(range(16))
    suite = wire.Suite.OPRF_RISTRETTO255_SHA512
    el = group.scalar_mult_base(group.random_scalar(_rng("frames")))
    out = []
    cases: list[tuple[wire.MsgType, wire.Mode, wire.Body]] = [
        (
            wire.MsgType.HELLO,
            wire.Mode.FILTER,
            wire.Hello(element_count=3, filter_id=b"F" * 16, filter_generation=2),
        ),
        (wire.MsgType.HELLO_ACK, wire.Mode.MUTUAL, wire.HelloAck(element_count=5, public_key=el)),
        (wire.MsgType.FILTER_CHUNK, wire.Mode.FILTER, wire.FilterChunk(data=b"FMF\x01" * 5)),
        (
            wire.MsgType.FILTER_END,
            wire.Mode.FILTER,
            wire.FilterEnd(object_count=2, total_bytes=300),
        ),
        (
            wire.MsgType.QUERY_CHUNK,
            wire.Mode.CARDINALITY,
            wire.ElementChunk(count=2, elements=el * 2),
        ),
        (
            wire.MsgType.EVAL_CHUNK,
            wire.Mode.FILTER,
            wire.ElementChunk(count=1, elements=el, proof=bytes(range(64))),
        ),
        (
            wire.MsgType.REVEAL_CHUNK,
            wire.Mode.MUTUAL,
            wire.ElementChunk(count=2, elements=bytes(range(32))),
        ),
        (wire.MsgType.SET_END, wire.Mode.MUTUAL, wire.StreamEnd(total=7)),
        (
            wire.MsgType.FINISH,
            wire.Mode.MUTUAL,
            wire.Finish(intersection_count=1, signature=bytes(64)),
        ),
    ]
    for seq, (msg_type, mode, body) in enumerate(cases):
        header = wire.Header(
            msg_type=msg_type, mode=mode, suite=suite, epoch=9, session_id=sid, seq=seq
        )
        out.append(wire.encode_frame(header, body))
    return tuple(out)


def _outputs(label: str, n: int) -> list[bytes]:
    return [hashlib.sha512(f"{label}{i}".encode()).digest() for i in range(n)]


def _sample_filters() -> tuple[tuple[bytes, ...], bytes, bytes]:
    bloom = FilterLedger.bloom(_outputs("b", 20), suite=1, epoch=4, fp_rate=0.01, capacity=40)
    bloom.add(_outputs("b+", 3))  # positions delta
    bloom.add(_outputs("b++", 15))  # bits delta
    exact = FilterLedger.exact(_outputs("e", 10), suite=1, epoch=4, fp_rate=0.01, capacity=20)
    exact.add(_outputs("e+", 4))
    objects = (*bloom.objects(), *exact.objects())
    return objects, b"".join(bloom.objects()), b"".join(exact.objects())


def _http_sample() -> tuple[bytes, Ed25519PublicKey]:
    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"fuzz http key").digest())
    body = b'{"hello": "peer"}'
    headers = {
        "Content-Type": "application/json",
        "Fiumatch-Peer": "FIU-B",
        "Fiumatch-Session": "00112233445566778899aabbccddeeff",
        "Fiumatch-Epoch": "3",
    }
    signed = httpsig.sign_request(
        method="POST",
        target="/peer/v1/sessions?x=1",
        authority="fiu-b.example:8443",
        headers=headers,
        body=body,
        key=key,
        keyid="FIU-A",
        now=HTTP_NOW,
        rng=_rng("http"),
    )
    lines = ["POST", "/peer/v1/sessions?x=1", "fiu-b.example:8443"]
    lines += [f"{k}: {v}" for k, v in {**headers, **signed}.items()]
    return "\n".join(lines).encode() + b"\n\n" + body, key.public_key()


HTTP_NOW = 1_700_000_000
SEAL_PASSPHRASE = "correct horse battery staple"
SEAL_PURPOSE = "node-identity-ed25519"
SEAL_SECRET = b"\x42" * 32


@cache
def samples() -> Samples:
    """Valid messages of every format, made once from fixed keys."""
    objects, bloom_stream, exact_stream = _sample_filters()
    kp = oprf.derive_key_pair(b"\x07" * 32, b"fuzz", oprf.MODE_VOPRF)
    rng = _rng("oprf")
    blinded = [oprf.blind(f"in{i}".encode(), rng, oprf.MODE_VOPRF)[1] for i in range(3)]
    evaluated = oprf.blind_evaluate_many(kp.sk, blinded)
    proof = oprf.generate_proof(kp.sk, kp.pk, blinded, evaluated, rng)

    world = two_nodes(sessions=2)
    bundle = world.a.export()
    signer = log_signer("fiu-a.example/audit")
    note = world.a.checkpoint()
    witness = cosigner()
    cosigned = add_cosignature(note, witness, 1_700_000_123)
    receipt = world.a.held[0].receipt

    http_request, http_key = _http_sample()
    sealed = sealing.seal(SEAL_SECRET, SEAL_PASSPHRASE, SEAL_PURPOSE, _rng("seal"), log2_n=10)
    keys = (
        MatchKey(KeyType.IBAN, ("DE89370400440532013000",)),
        MatchKey(KeyType.PERSON_SURNAME_INITIAL_DOB, ("müller", "j", "1980-01-02")),
        MatchKey(KeyType.ORG_NAME_COUNTRY, ("", "DE")),
    )
    return Samples(
        frames=_sample_frames(),
        filter_objects=objects,
        bloom_stream=bloom_stream,
        exact_stream=exact_stream,
        oprf_pk=kp.pk,
        blinded=tuple(blinded),
        evaluated=tuple(evaluated),
        proof=proof,
        entries=tuple(world.a.entries) + tuple(world.b.entries),
        bundle=bundle,
        log_key=signer.verifier,
        peer_key=world.b.signer.verifier,
        checkpoint=note,
        cosigned=cosigned,
        cosigner_key=witness.verifier,
        receipt=receipt.encode(),
        peer_leaves=tuple(leaf_hash(e) for e in world.b.entries),
        merkle_leaves=tuple(_merkle_node().entries),
        http_request=http_request,
        http_key=http_key,
        content_digest_body=b"fiumatch content",
        sealed=sealed,
        match_keys=tuple(k.encode() for k in keys),
    )


@cache
def _merkle_node() -> Node:
    return simple_node(13)


# =============================================================================================
# Protocol: wire


def check_wire_frame(data: bytes) -> None:
    """decode_frame: a DecodeError subclass, or a frame that re-encodes to ``data``."""
    for limits in _LIMITS:
        try:
            frame = wire.decode_frame(data, limits)
        except DecodeError:
            continue
        assert wire.encode_frame(frame.header, frame.body) == data


def _feed(data: bytes, piece: int, limits: wire.Limits) -> tuple[list[bytes], bool, int]:
    reader = wire.FrameReader(limits)
    frames: list[bytes] = []
    for i in range(0, len(data), piece):
        try:
            frames += reader.feed(data[i : i + piece])
        except OversizedMessageError:
            return frames, True, -1
    return frames, False, reader.buffered


def check_wire_reader(data: bytes) -> None:
    """FrameReader: however the stream is cut, the same frames come out, each exactly its
    length prefix long, followed by what is still buffered; an oversized prefix is refused
    (OversizedMessageError) and a partial frame at close is TruncatedMessageError."""
    for limits in _LIMITS:
        whole, whole_err, whole_left = _feed(data, max(1, len(data)), limits)
        for piece in (1, 5, 39, 4096):
            frames, err, left = _feed(data, piece, limits)
            assert err == whole_err
            if not err:
                assert frames == whole and left == whole_left
                assert b"".join(frames) + data[len(data) - left :] == data
            else:
                assert frames[: len(whole)] == whole
            for f in frames:
                assert len(f) == 4 + int.from_bytes(f[:4], "big") <= 4 + limits.max_frame_bytes
        if not whole_err:
            reader = wire.FrameReader(limits)
            reader.feed(data)
            try:
                reader.close()
                assert reader.buffered == 0
            except TruncatedMessageError:
                assert reader.buffered > 0
        for f in whole:
            check_wire_frame(f)


def check_element_stream(data: bytes) -> None:
    """FrameReader -> decode_frame -> ElementStreamDecoder, as a session reads a stream:
    chunks are counted against the limit and the count a leading HELLO announced, the END
    total against what arrived, with the SPEC §5.5 error for each case (checked by a model)."""
    limits = SMALL_LIMITS
    reader = wire.FrameReader(limits)
    try:
        raw_frames = reader.feed(data)
    except OversizedMessageError:
        return
    decoder: wire.ElementStreamDecoder | None = None
    expected: int | None = None
    received = 0
    for raw in raw_frames:
        try:
            frame = wire.decode_frame(raw, limits)
        except DecodeError:
            return
        body = frame.body
        if decoder is None:
            if isinstance(body, wire.Hello):
                expected = body.element_count
            decoder = wire.ElementStreamDecoder(max_elements=limits.max_elements, expected=expected)
            if isinstance(body, wire.Hello):
                continue
        cap = limits.max_elements if expected is None else min(limits.max_elements, expected)
        if isinstance(body, wire.ElementChunk):
            try:
                decoder.accept(body)
            except OversizedMessageError:
                assert received + body.count > cap
                return
            received += body.count
            assert received <= cap and decoder.received == received
        elif isinstance(body, wire.StreamEnd):
            try:
                total = decoder.end(body)
            except TruncatedMessageError:
                assert body.total > received or (expected is not None and body.total != expected)
                return
            except TrailingDataError:
                assert body.total < received
                return
            assert total == received == body.total
            assert expected is None or total == expected
            return


# =============================================================================================
# Protocol: filters


def check_filter_object(data: bytes) -> None:
    """decode_filter_object: FilterError or a framing DecodeError, or an object that
    re-encodes to ``data``."""
    try:
        obj = decode_filter_object(data)
    except (FilterError, DecodeError):
        return
    assert obj.encode() == data


def _replica_state(replica: FilterReplica) -> tuple[object, ...]:
    live = replica._live
    bits = bytes(live.bits) if isinstance(live, BloomFilter) else getattr(live, "data", None)
    return replica.filter_id, replica.generation, replica.count, replica.kind, bits


def check_filter_replica(data: bytes) -> None:
    """A FILTER stream as a querier receives it: FilterObjectSplitter, then
    FilterReplica.apply per object. Only FilterError / DecodeError subclasses; a refused
    object leaves the replica exactly as it was; an accepted one keeps count <= capacity and
    a Bloom filter no fuller than k·count bits."""
    if len(data) >= OBJECT_HEADER_LEN:
        suite, epoch = struct.unpack_from(">HQ", data, 5)
    else:
        suite, epoch = 1, 0
    replica = FilterReplica(suite=suite, epoch=epoch)
    splitter = FilterObjectSplitter(max_bytes=1 << 20)
    try:
        objects = splitter.feed(data)
    except DecodeError:
        return
    for obj in objects:
        before = _replica_state(replica)
        try:
            applied = replica.apply(obj)
        except (FilterError, DecodeError):
            assert _replica_state(replica) == before
            return
        assert applied.encode() == obj
        assert replica.count == applied.count <= applied.capacity
        live = replica._live
        if isinstance(live, BloomFilter):
            assert live.ones() <= live.k * replica.count
    try:
        splitter.close()
    except TruncatedMessageError:
        assert splitter.total_bytes > sum(len(o) for o in objects)


# =============================================================================================
# Protocol: group and DLEQ proofs

_P = 2**255 - 19
_D = (-121665 * pow(121666, -1, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _negative(x: int) -> bool:
    return x % _P % 2 == 1


def _sqrt_ratio_m1(u: int, v: int) -> tuple[bool, int]:
    r = (u * pow(v, 3, _P)) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P) % _P
    check = v * r * r % _P
    correct = check == u % _P
    flipped = check == -u % _P
    flipped_i = check == (-u * _SQRT_M1) % _P
    if flipped or flipped_i:
        r = _SQRT_M1 * r % _P
    if _negative(r):
        r = -r % _P
    return correct or flipped, r


def ristretto255_decodes(data: bytes) -> bool:
    """RFC 9496 section 4.3.1 Decode, transcribed in pure Python: an oracle independent of
    libsodium. True for every canonical encoding, the identity included."""
    if len(data) != 32:
        return False
    s = int.from_bytes(data, "little")
    if s >= _P or _negative(s):
        return False
    ss = s * s % _P
    u1 = (1 - ss) % _P
    u2 = (1 + ss) % _P
    u2_sqr = u2 * u2 % _P
    v = (-(_D * u1 * u1) - u2_sqr) % _P
    was_square, invsqrt = _sqrt_ratio_m1(1, v * u2_sqr % _P)
    den_x = invsqrt * u2 % _P
    den_y = invsqrt * den_x * v % _P
    x = 2 * s * den_x % _P
    if _negative(x):
        x = -x % _P
    y = u1 * den_y % _P
    t = x * y % _P
    return was_square and not _negative(t) and y != 0


def check_group_element(data: bytes) -> None:
    """decode_element: InvalidElementError, or ``data`` itself, exactly when the pure-Python
    RFC 9496 decoder accepts it and it is not the identity."""
    try:
        out = group.decode_element(data)
    except InvalidElementError:
        assert not ristretto255_decodes(data) or data == group.IDENTITY
        return
    assert out == data
    assert ristretto255_decodes(data) and data != group.IDENTITY


def check_group_scalar(data: bytes) -> None:
    """decode_scalar: InvalidScalarError, or ``data`` exactly when it is 32 bytes encoding
    0 < n < ORDER little-endian."""
    ok = len(data) == 32 and 0 < int.from_bytes(data, "little") < group.ORDER
    try:
        out = group.decode_scalar(data)
    except InvalidScalarError:
        assert not ok
        return
    assert ok and out == data


def check_dleq_proof(data: bytes) -> None:
    """verify_proof over a fixed valid batch: VerifyError for every proof but the one the key
    holder made (another valid proof needs the secret key)."""
    s = samples()
    try:
        oprf.verify_proof(s.oprf_pk, s.blinded, s.evaluated, data)
    except VerifyError:
        assert data != s.proof
        return
    assert data == s.proof


def check_dleq_elements(data: bytes) -> None:
    """verify_proof with ``data`` as the evaluated elements (32-byte pieces) of a fixed valid
    proof: VerifyError or InvalidElementError unless they are the evaluated elements."""
    s = samples()
    evaluated = [data[i : i + 32] for i in range(0, len(data), 32)]
    try:
        oprf.verify_proof(s.oprf_pk, s.blinded, evaluated, s.proof)
    except (VerifyError, InvalidElementError):
        assert tuple(evaluated) != s.evaluated
        return
    assert tuple(evaluated) == s.evaluated


# =============================================================================================
# Audit log


def check_audit_entry(data: bytes) -> None:
    """decode_entry: EntryError, or an entry whose encoding, rebuilt from its fields and from
    its JSON view, is ``data``."""
    try:
        entry = decode_entry(data)
    except audit_errors.EntryError:
        return
    assert encode_entry(entry) == data
    present: dict[str, Any] = entry.present()
    rebuilt = Entry(seq=entry.seq, time_ms=entry.time_ms, event=entry.event, **present)
    assert encode_entry(rebuilt) == data
    view = json.loads(json.dumps(entry_to_dict(entry)))
    assert encode_entry(entry_from_dict(view)) == data


def check_audit_bundle(data: bytes) -> None:
    """decode_bundle and verify (pinned log key, the peer's key for receipts): AuditLogError
    for anything but the bundle the log signed."""
    s = samples()
    try:
        decoded = decode_bundle(data)
    except AuditLogError:
        decoded = None
    try:
        report = verify(data, s.log_key, peer_keys=[s.peer_key])
    except AuditLogError:
        assert data != s.bundle
        return
    assert data == s.bundle and decoded is not None and report.size == decoded.size


def check_checkpoint_note(data: bytes) -> None:
    """SignedNote.parse / peek_checkpoint / open_checkpoint: NoteError or SignatureError; a
    parsed note and checkpoint body re-encode to the same text; a note that opens under the
    log's key carries the text the log signed."""
    s = samples()
    for raw in (data, _text(data)):
        try:
            note = SignedNote.parse(raw)
        except audit_errors.NoteError:
            continue
        assert note.encode() == (raw if isinstance(raw, bytes) else raw.encode())
        try:
            cp = peek_checkpoint(raw)
        except audit_errors.NoteError:
            pass
        else:
            assert cp.body() == note.text
            assert Checkpoint.parse_body(cp.body()) == cp
    with contextlib.suppress(AuditLogError):
        check_split_view(data, s.checkpoint, s.log_key)
    with contextlib.suppress(AuditLogError):
        witness_cosign(data, s.log_key, _WITNESS, 1_700_000_999)
    try:
        opened = open_checkpoint(data, s.log_key)
    except (audit_errors.NoteError, audit_errors.SignatureError):
        return
    signed_text = SignedNote.parse(s.checkpoint).text
    assert opened.body() == signed_text
    # What a witness does with a peer's checkpoint: only the genuine one gets cosigned, and
    # it is consistent with itself (no split view).
    cosigned = witness_cosign(data, s.log_key, _WITNESS, 1_700_000_999)
    assert SignedNote.parse(cosigned).text == signed_text
    check_split_view(s.checkpoint, data, s.log_key)


_WITNESS = cosigner("fiu-c.example/witness")


def check_cosignature(data: bytes) -> None:
    """open_cosignatures with a pinned cosigner: NoteError or BadSignatureError; a cosignature
    is only ever returned for the checkpoint text the cosigner signed."""
    s = samples()
    try:
        found = open_cosignatures(data, [s.cosigner_key])
    except (audit_errors.NoteError, audit_errors.SignatureError):
        return
    if found:
        assert SignedNote.parse(data).text == SignedNote.parse(s.cosigned).text
        assert [c.timestamp for c in found] == [1_700_000_123] * len(found)


def check_receipt(data: bytes) -> None:
    """Receipt.decode and verify_receipt (the peer log's key): NoteError or another
    AuditLogError; a decoded receipt re-encodes to ``data``; a verified one names a leaf the
    peer really logged."""
    s = samples()
    try:
        receipt = Receipt.decode(data)
    except audit_errors.NoteError:
        return
    assert receipt.encode() == data
    with contextlib.suppress(audit_errors.NoteError):
        receipt.origin()  # unverified, to pick the key: NoteError at worst
    try:
        cp = verify_receipt(receipt, s.peer_key)
    except AuditLogError:
        return
    assert receipt.leaf_index < cp.size <= len(s.peer_leaves)
    assert receipt.leaf_hash == s.peer_leaves[receipt.leaf_index]


def check_merkle_proof(data: bytes) -> None:
    """verify_inclusion / verify_consistency over a 13-leaf sample log.

    ``data`` = u8 kind (even: inclusion, odd: consistency) || u8 a || u8 b || 32-byte proof
    hashes (a short last piece is kept: a malformed hash). Inclusion of leaf ``a`` in the tree
    of size ``b``; consistency from size ``a`` to ``b``; leaf hashes and roots are the true
    ones (a size beyond the log gets a made-up root). Only ProofError / ProofRangeError; it
    passes exactly when the proof is the RFC 9162 reference proof (tests/auditlog/reference).
    """
    if len(data) < 3:
        return
    kind, a, b = data[0] % 2, data[1], data[2]
    proof = [data[i : i + 32] for i in range(3, len(data), 32)]
    leaves = samples().merkle_leaves

    def root(size: int) -> bytes:
        if size <= len(leaves):
            return reference.mth(leaves[:size])
        return hashlib.sha256(b"no such tree %d" % size).digest()

    if kind == 0:
        leaf = leaf_hash(leaves[a]) if a < len(leaves) else hashlib.sha256(b"absent").digest()
        truth = a < b <= len(leaves) and proof == reference.path(a, leaves[:b])
        try:
            verify_inclusion(a, b, leaf, proof, root(b))
        except (audit_errors.ProofError, audit_errors.ProofRangeError):
            assert not truth
            return
        assert truth
    else:
        if a > b:
            truth = False
        elif a in (0, b):  # the empty tree, or a tree with itself: always consistent
            truth = proof == []
        elif b > len(leaves):
            truth = False
        else:
            truth = proof == reference.proof(a, leaves[:b])
        try:
            verify_consistency(a, b, root(a) if a else EMPTY_ROOT, root(b), proof)
        except (audit_errors.ProofError, audit_errors.ProofRangeError):
            assert not truth
            return
        assert truth


def check_vkey(data: bytes) -> None:
    """NoteVerifier / CosignatureVerifier.from_vkey: NoteError, or a verifier whose vkey is
    the input (the text format is canonical)."""
    text = _text(data)
    for cls in (NoteVerifier, CosignatureVerifier):
        try:
            verifier = cls.from_vkey(text)
        except audit_errors.NoteError:
            continue
        assert verifier.vkey() == text


# =============================================================================================
# Node: HTTP message signatures and sealed secrets


def _sf_equal(a: object, b: object) -> bool:
    """Structured values compared with their kind (a Token is not a String)."""
    if isinstance(a, httpsig.InnerList) and isinstance(b, httpsig.InnerList):
        return (
            len(a.items) == len(b.items)
            and all(_sf_equal(x, y) for x, y in zip(a.items, b.items, strict=True))
            and _sf_equal(a.params, b.params)
        )
    if isinstance(a, httpsig.Item) and isinstance(b, httpsig.Item):
        return _sf_equal(a.value, b.value) and _sf_equal(a.params, b.params)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_sf_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def check_sf_dictionary(data: bytes) -> None:
    """parse_dictionary / parse_item (RFC 8941): only their documented ValueError; what
    parses serialises canonically and parses back to the same values and kinds."""
    text = _text(data)
    try:
        members = httpsig.parse_dictionary(text)
    except ValueError:
        pass
    else:
        canonical = ", ".join(
            f"{k}={httpsig._ser_member(v)}"
            if not (isinstance(v, httpsig.Item) and v.value is True)
            else f"{k}{httpsig._ser_params(v.params)}"
            for k, v in members.items()
        )
        again = httpsig.parse_dictionary(canonical)
        assert list(again) == list(members)
        assert all(_sf_equal(again[k], members[k]) for k in members)
    try:
        item = httpsig.parse_item(text)
    except ValueError:
        return
    assert _sf_equal(httpsig.parse_item(httpsig._ser_item(item)), item)


def check_content_digest(data: bytes) -> None:
    """verify_content_digest: DigestMismatchError, or a field whose sha-256 member is the
    body's digest."""
    body = samples().content_digest_body
    text = _text(data)
    try:
        httpsig.verify_content_digest(text, body)
    except NodeAuthError:
        return
    member = httpsig.parse_dictionary(text)["sha-256"]
    assert isinstance(member, httpsig.Item)
    assert member.value == hashlib.sha256(body).digest()


@dataclass(frozen=True)
class _Request:
    method: str
    target: str
    authority: str
    headers: dict[str, str]
    body: bytes


def parse_http_request(data: bytes) -> _Request | None:
    """The fuzz format of a request: method, target and authority lines, ``name: value``
    header lines, an empty line, the body. None if ``data`` does not have that shape."""
    head, sep, body = data.partition(b"\n\n")
    lines = _text(head).split("\n")
    if not sep or len(lines) < 3:
        return None
    headers: dict[str, str] = {}
    for line in lines[3:]:
        name, colon, value = line.partition(": ")
        if not colon:
            return None
        headers[name] = value
    return _Request(lines[0], lines[1], lines[2], headers, body)


def _keys(keyid: str) -> Ed25519PublicKey | None:
    return samples().http_key if keyid == "FIU-A" else None


def _signed_base(req: _Request) -> bytes:
    norm = {k.lower(): v.strip(" \t") for k, v in req.headers.items()}
    member = httpsig.parse_dictionary(norm["signature-input"])["fiumatch"]
    assert isinstance(member, httpsig.InnerList)
    components = [httpsig.Component(str(i.value), i.params) for i in member.items]
    message = httpsig.HttpRequest(
        method=req.method, target=req.target, authority=req.authority, headers=norm, body=req.body
    )
    return httpsig.signature_base(message, components, member.params)


def check_http_request(data: bytes) -> None:
    """verify_request (profile, window, nonce cache, addressee): only NodeAuthError; a request
    that verifies has the signature base and body of the request the key holder signed
    (headers it does not cover, letter case and a second label may differ)."""
    req = parse_http_request(data)
    if req is None:
        return
    claimed = httpsig.claimed_keyid(req.headers)  # never raises, whatever the headers
    assert claimed is None or isinstance(claimed, str)
    try:
        httpsig.verify_request(
            method=req.method,
            target=req.target,
            authority=req.authority,
            headers=req.headers,
            body=req.body,
            resolve_key=_keys,
            nonces=httpsig.InMemoryNonceCache(),
            now=HTTP_NOW + 5,
            expected_peer="FIU-B",
        )
    except NodeAuthError:
        assert data != samples().http_request
        return
    original = parse_http_request(samples().http_request)
    assert original is not None
    assert req.body == original.body
    assert _signed_base(req) == _signed_base(original)


def check_sealed(data: bytes) -> None:
    """unseal: a SealingError, or the sealed secret, and then ``data`` is the sealed blob
    (AES-GCM authenticates every byte: the header as associated data, the rest as
    ciphertext and tag). The scrypt memory cap is lowered to 16 MiB for the fuzzer, so a
    mutated cost parameter is refused (SealedFormatError) instead of allocating 256 MiB."""
    s = samples()
    with mock.patch.object(sealing, "MAX_SCRYPT_MEMORY", 16 * 1024 * 1024):
        try:
            secret = sealing.unseal(data, SEAL_PASSPHRASE, SEAL_PURPOSE)
        except SealingError:
            assert data != s.sealed
            return
    assert secret == SEAL_SECRET and data == s.sealed
    assert sealing.sealed_purpose(data) == SEAL_PURPOSE


# =============================================================================================
# Identifiers


def check_match_key(data: bytes) -> None:
    """decode_key: KeyEncodingError, or a key that encodes back to ``data``."""
    try:
        key = decode_key(data)
    except KeyEncodingError:
        return
    assert key.encode() == data


# =============================================================================================

CHECKS: dict[str, Callable[[bytes], None]] = {
    "wire_frame": check_wire_frame,
    "wire_reader": check_wire_reader,
    "element_stream": check_element_stream,
    "filter_object": check_filter_object,
    "filter_replica": check_filter_replica,
    "group_element": check_group_element,
    "group_scalar": check_group_scalar,
    "dleq_proof": check_dleq_proof,
    "dleq_elements": check_dleq_elements,
    "audit_entry": check_audit_entry,
    "audit_bundle": check_audit_bundle,
    "checkpoint_note": check_checkpoint_note,
    "cosignature": check_cosignature,
    "receipt": check_receipt,
    "merkle_proof": check_merkle_proof,
    "vkey": check_vkey,
    "sf_dictionary": check_sf_dictionary,
    "content_digest": check_content_digest,
    "http_request": check_http_request,
    "sealed": check_sealed,
    "match_key": check_match_key,
}


def run_check(decoder: str, data: bytes) -> None:
    """Run ``decoder``'s check; an unexpected exception is recorded as a seed (when
    ``FIUMATCH_FUZZ_RECORD`` is set) before it fails the test."""
    try:
        CHECKS[decoder](data)
    except Exception:
        record_seed(decoder, data)
        raise
