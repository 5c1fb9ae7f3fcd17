"""Mutual mode (SPEC.md §8.2): both parties learn the same intersection and sign it.

Commutative blinding with ephemeral scalars (``a`` for the querier, ``b`` for the owner) under
a mutual-only hash-to-group DST, so nothing here can be confused with a filter-mode OPRF
output::

    Q → O  HELLO(|X|)                      O → Q  HELLO_ACK(|Y|, B = b·G)
    Q → O  QUERY   a·H(x)   (X in the querier's order)
    O → Q  EVAL    b·a·H(x) (same order, each chunk with a DLEQ proof for B)
    O → Q  SET     b·H(y)   (Y in a shuffled order)
    Q:     hits = {x : Tag(ab·H(x)) ∈ {Tag(a·b·H(y))}}
    Q → O  REVEAL  Tag(a·b·H(y)) (the owner's shuffled order), then FINISH(|I|, sig_Q)
    O:     hits = {y : Tag(ab·H(y)) ∈ {Tag(b·a·H(x))}}; checks |I| and sig_Q
    O → Q  FINISH_ACK(|I|, sig_O)

The DLEQ proofs stop an owner from answering the query with another scalar than the one it
uses on the REVEAL (it would learn the intersection while the querier learned nothing).
Both signatures are Ed25519 over one statement (``result_statement``) that binds the session,
both signing keys, the transcript hash of every frame up to REVEAL_END and ``|I|``.

This module must never reuse ``a`` or ``b`` across sessions, and never put elements, tags or
identifiers in an error or a ``repr``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fiumatch.protocol import group, oprf
from fiumatch.protocol.errors import DecodeError, LocalProtocolError, VerifyError
from fiumatch.protocol.sessions._base import (
    ChunkExecutor,
    ResultMismatchError,
    Rng,
    SessionMachine,
)
from fiumatch.protocol.sessions._ops import (
    MUTUAL_H2G_DST,
    MUTUAL_SIGNATURE_DST,
    MUTUAL_TAG_DST,
    check_composite,
    evaluate_part,
    hash_and_mult_chunk,
    mult_tag_part,
    proof_scalars,
    prove_composite,
    shuffle_permutation,
    validate_chunk,
    verify_tag_part,
)
from fiumatch.protocol.sessions._state import Role
from fiumatch.protocol.wire import (
    ELEMENT_WIDTH,
    TAG_LEN,
    ElementChunk,
    ElementStreamDecoder,
    Finish,
    Hello,
    HelloAck,
    Limits,
    Mode,
    MsgType,
    StreamEnd,
    Suite,
    iter_chunks,
    split_elements,
)

__all__ = ["MutualOwner", "MutualQuerier", "MutualResult", "result_statement"]


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def result_statement(
    *,
    session_id: bytes,
    suite: Suite,
    epoch: int,
    querier_key: bytes,
    owner_key: bytes,
    transcript_hash: bytes,
    intersection_count: int,
) -> bytes:
    """The bytes both parties sign (SPEC.md §8.2.4)."""
    return b"".join(
        [
            bytes((len(MUTUAL_SIGNATURE_DST),)),
            MUTUAL_SIGNATURE_DST,
            session_id,
            struct.pack(">BHQ", int(Mode.MUTUAL), int(suite), epoch),
            querier_key,
            owner_key,
            transcript_hash,
            struct.pack(">Q", intersection_count),
        ]
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class MutualResult:
    """The intersection (this side's own elements, in its input order) and the signed record:
    ``statement`` signed by both, so either side can prove the result to a third party."""

    intersection: tuple[bytes, ...] = field(repr=False)
    count: int
    own_count: int
    peer_count: int
    transcript_hash: bytes
    statement: bytes = field(repr=False)
    own_signature: bytes
    peer_signature: bytes


def _unique(elements: Sequence[bytes]) -> list[bytes]:
    return list(dict.fromkeys(bytes(e) for e in elements))


class _Mutual(SessionMachine):
    mode = Mode.MUTUAL

    def __init__(
        self,
        *,
        session_id: bytes,
        epoch: int,
        elements: Sequence[bytes],
        signing_key: Ed25519PrivateKey,
        peer_key: Ed25519PublicKey,
        rng: Rng,
        suite: Suite = Suite.OPRF_RISTRETTO255_SHA512,
        limits: Limits | None = None,
        executor: ChunkExecutor | None = None,
    ) -> None:
        super().__init__(
            session_id=session_id,
            epoch=epoch,
            suite=suite,
            rng=rng,
            limits=limits,
            executor=executor,
        )
        if self.suite is not Suite.OPRF_RISTRETTO255_SHA512:
            raise LocalProtocolError("mutual mode uses the OPRF suite")
        self._elements = _unique(elements)
        if len(self._elements) > self.limits.max_elements:
            raise LocalProtocolError("more elements than max_elements")
        self._signing_key = signing_key
        self._own_pub = _raw(signing_key.public_key())
        self._peer_key = peer_key
        self._peer_pub = _raw(peer_key)
        self._scalar = b""
        self._peer_count = 0
        self._hits: list[int] = []
        self._statement = b""
        self._transcript = b""
        self._own_sig = b""
        self.result: MutualResult | None = None
        self._setup()

    def _setup(self) -> None:
        """Role-specific initial state."""

    def _statement_for(self, count: int) -> bytes:
        q, o = (
            (self._own_pub, self._peer_pub)
            if self.role is Role.QUERIER
            else (self._peer_pub, self._own_pub)
        )
        self._transcript = self.transcript_hash()
        return result_statement(
            session_id=self.session_id,
            suite=self.suite,
            epoch=self.epoch,
            querier_key=q,
            owner_key=o,
            transcript_hash=self._transcript,
            intersection_count=count,
        )

    def _verify_peer(self, body: Finish) -> None:
        if body.intersection_count != len(self._hits):
            raise ResultMismatchError("the peer reports another intersection size")
        try:
            self._peer_key.verify(body.signature, self._statement)
        except InvalidSignature:
            raise VerifyError("transcript signature does not verify") from None

    def _finish(self, peer_sig: bytes) -> None:
        self.result = MutualResult(
            intersection=tuple(self._elements_in_hit_order()),
            count=len(self._hits),
            own_count=len(self._elements),
            peer_count=self._peer_count,
            transcript_hash=self._transcript,
            statement=self._statement,
            own_signature=self._own_sig,
            peer_signature=peer_sig,
        )
        self._scalar = b""

    def _elements_in_hit_order(self) -> list[bytes]:
        raise NotImplementedError

    def _hash_and_mult(self, elements: list[bytes]) -> bytes:
        """``scalar * H_m(e)`` for every element, concatenated, computed through the executor."""
        scalar = self._scalar
        return b"".join(
            self._executor.map(
                hash_and_mult_chunk,
                [
                    (scalar, elements[lo:hi], MUTUAL_H2G_DST)
                    for lo, hi in self._stream_ranges(len(elements))
                ],
            )
        )


class MutualQuerier(_Mutual):
    """The initiator (sends HELLO). ``peer_key``: the owner's Ed25519 key, from the agreement."""

    role = Role.QUERIER

    def _setup(self) -> None:
        self._own_tags: list[bytes] = []
        self._query = b""
        self._owner_pub = b""
        self._pos = 0
        self._reveal: list[bytes] = []
        self._eval_stream: ElementStreamDecoder | None = None
        self._set_stream: ElementStreamDecoder | None = None

    def start(self) -> list[bytes]:
        self._start()
        return [self._send(MsgType.HELLO, Hello(element_count=len(self._elements)))]

    def _on_hello_ack(self, body: HelloAck) -> list[bytes]:
        if len(body.public_key) != group.ELEMENT_LEN:
            raise DecodeError("mutual HELLO_ACK must carry the owner's ephemeral public key")
        self._owner_pub = group.decode_element(body.public_key)
        self._peer_count = body.element_count
        self._eval_stream = ElementStreamDecoder(
            max_elements=self.limits.max_elements, expected=len(self._elements)
        )
        self._set_stream = ElementStreamDecoder(
            max_elements=self.limits.max_elements, expected=body.element_count
        )
        self._scalar = group.random_scalar(self._rng)
        self._query = query = self._hash_and_mult(self._elements)
        chunks = iter_chunks(query, ELEMENT_WIDTH, self.limits.chunk_elements)
        return list(self._send_stream(MsgType.QUERY_CHUNK, MsgType.QUERY_END, chunks))

    def _on_eval_chunk(self, body: ElementChunk) -> list[bytes]:
        assert self._eval_stream is not None
        self._eval_stream.accept(body)
        if not body.proof:
            validate_chunk(body.elements)
            raise VerifyError("mutual evaluation without a proof")
        if body.count > oprf.MAX_BATCH:
            validate_chunk(body.elements)
            raise LocalProtocolError(f"proof batch size must be 1..{oprf.MAX_BATCH}")
        w, pos, pk, sid = ELEMENT_WIDTH, self._pos, self._owner_pub, self.session_id
        query, data = self._query, body.elements
        parts = self._executor.map(
            verify_tag_part,
            [
                (
                    pk,
                    query[(pos + a) * w : (pos + b) * w],
                    data[a * w : b * w],
                    a,
                    MUTUAL_TAG_DST,
                    sid,
                )
                for a, b in self._parts(body.count)
            ],
        )
        proof_scalars(body.proof)
        check_composite(
            pk, [p[0] for p in parts], [p[1] for p in parts], body.proof, oprf.MODE_VOPRF
        )
        self._pos += body.count
        for p in parts:
            self._own_tags += split_elements(p[2], TAG_LEN)
        return []

    def _on_eval_end(self, body: StreamEnd) -> list[bytes]:
        assert self._eval_stream is not None
        self._eval_stream.end(body)
        self._query = b""
        return []

    def _on_set_chunk(self, body: ElementChunk) -> list[bytes]:
        assert self._set_stream is not None
        self._set_stream.accept(body)
        scalar, sid, data, w = self._scalar, self.session_id, body.elements, ELEMENT_WIDTH
        tags = self._executor.map(
            mult_tag_part,
            [
                (scalar, data[a * w : b * w], MUTUAL_TAG_DST, sid)
                for a, b in self._parts(body.count)
            ],
        )
        self._reveal.append(b"".join(tags))
        return []

    def _on_set_end(self, body: StreamEnd) -> list[bytes]:
        assert self._set_stream is not None
        self._set_stream.end(body)
        peer_tags = set()
        for chunk in self._reveal:
            peer_tags.update(split_elements(chunk, TAG_LEN))
        self._hits = [i for i, t in enumerate(self._own_tags) if t in peer_tags]
        self._own_tags = []
        out = list(self._send_stream(MsgType.REVEAL_CHUNK, MsgType.REVEAL_END, self._reveal))
        self._reveal = []
        self._statement = self._statement_for(len(self._hits))
        self._own_sig = self._signing_key.sign(self._statement)
        out.append(
            self._send(
                MsgType.FINISH,
                Finish(intersection_count=len(self._hits), signature=self._own_sig),
            )
        )
        return out

    def _on_finish_ack(self, body: Finish) -> list[bytes]:
        self._verify_peer(body)
        self._finish(body.signature)
        return []

    def _elements_in_hit_order(self) -> list[bytes]:
        return [self._elements[i] for i in self._hits]


class MutualOwner(_Mutual):
    """The responder. ``peer_key``: the querier's Ed25519 key, from the agreement."""

    role = Role.OWNER

    def _setup(self) -> None:
        self._public = b""
        self._order: list[int] = []
        self._peer_tags: set[bytes] = set()
        self._pos = 0
        self._query_stream: ElementStreamDecoder | None = None
        self._reveal_stream = ElementStreamDecoder(
            max_elements=self.limits.max_elements, expected=len(self._elements)
        )

    def _on_hello(self, body: Hello) -> list[bytes]:
        self._peer_count = body.element_count
        self._query_stream = ElementStreamDecoder(
            max_elements=self.limits.max_elements, expected=body.element_count
        )
        self._scalar = group.random_scalar(self._rng)
        self._public = group.scalar_mult_base(self._scalar)
        self._order = shuffle_permutation(len(self._elements), self._rng)
        ack = HelloAck(element_count=len(self._elements), public_key=self._public)
        return [self._send(MsgType.HELLO_ACK, ack)]

    def _on_query_chunk(self, body: ElementChunk) -> list[bytes]:
        assert self._query_stream is not None
        self._query_stream.accept(body)
        nonce = group.random_scalar(self._rng)
        if body.count > oprf.MAX_BATCH:
            raise LocalProtocolError(f"proof batch size must be 1..{oprf.MAX_BATCH}")
        b, pk, data, w, sid = (
            self._scalar,
            self._public,
            body.elements,
            ELEMENT_WIDTH,
            self.session_id,
        )
        mode = oprf.MODE_VOPRF
        parts = self._executor.map(
            evaluate_part,
            [
                (b, pk, data[lo * w : hi * w], lo, mode, True, MUTUAL_TAG_DST, sid)
                for lo, hi in self._parts(body.count)
            ],
        )
        evaluated = b"".join(p[0] for p in parts)
        proof = prove_composite(b, pk, [p[1] for p in parts], nonce, mode)
        for p in parts:
            self._peer_tags.update(split_elements(p[2], TAG_LEN))
        chunk = ElementChunk(count=body.count, elements=evaluated, proof=proof)
        return [self._send(MsgType.EVAL_CHUNK, chunk)]

    def _on_query_end(self, body: StreamEnd) -> list[bytes]:
        assert self._query_stream is not None
        total = self._query_stream.end(body)
        out = [self._send(MsgType.EVAL_END, StreamEnd(total=total))]
        shuffled = self._hash_and_mult([self._elements[i] for i in self._order])
        chunks = iter_chunks(shuffled, ELEMENT_WIDTH, self.limits.chunk_elements)
        out += self._send_stream(MsgType.SET_CHUNK, MsgType.SET_END, chunks)
        return out

    def _on_reveal_chunk(self, body: ElementChunk) -> list[bytes]:
        self._reveal_stream.accept(body)
        peer_tags = self._peer_tags
        tags = split_elements(body.elements, TAG_LEN)
        self._hits += [self._order[self._pos + j] for j, t in enumerate(tags) if t in peer_tags]
        self._pos += body.count
        return []

    def _on_reveal_end(self, body: StreamEnd) -> list[bytes]:
        self._reveal_stream.end(body)
        self._peer_tags = set()
        self._hits.sort()
        self._statement = self._statement_for(len(self._hits))
        return []

    def _on_finish(self, body: Finish) -> list[bytes]:
        self._verify_peer(body)
        self._own_sig = self._signing_key.sign(self._statement)
        self._finish(body.signature)
        ack = Finish(intersection_count=len(self._hits), signature=self._own_sig)
        return [self._send(MsgType.FINISH_ACK, ack)]

    def _elements_in_hit_order(self) -> list[bytes]:
        return [self._elements[i] for i in self._hits]
