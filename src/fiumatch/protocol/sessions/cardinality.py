"""Cardinality mode (SPEC.md §8.3): the querier learns only ``|X ∩ Y|`` (and ``|Y|``).

One blinding scalar ``r`` for the whole query, an ephemeral owner key ``k`` per session, a
cardinality-only hash-to-group DST, and an owner-side shuffle::

    Q → O  HELLO(|X|)                          O → Q  HELLO_ACK(|Y|)
    Q → O  QUERY  r·H(x)            (all with the same r)
    O → Q  EVAL   k·r·H(x)          shuffled with the owner's rng (after the whole query)
    O → Q  SET    Tag(k·H(y))       sorted
    Q:     count = |{Tag(r⁻¹·E) : E ∈ EVAL} ∩ SET|

Because EVAL is shuffled, the querier can unblind it (one ``r⁻¹`` for all) but cannot tell
which of its elements an unblinded value belongs to: it learns the count, not the members.

This module must never emit EVAL before the whole QUERY stream has arrived (a partial shuffle
would let position leak membership) and never reuse ``k`` across sessions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fiumatch.protocol import group
from fiumatch.protocol.errors import DecodeError, LocalProtocolError
from fiumatch.protocol.sessions._base import ChunkExecutor, Rng, SessionMachine
from fiumatch.protocol.sessions._ops import (
    CARDINALITY_H2G_DST,
    CARDINALITY_TAG_DST,
    hash_and_mult_chunk,
    hash_mult_tag_part,
    mult_chunk,
    mult_tag_part,
    shuffle_permutation,
)
from fiumatch.protocol.sessions._state import Role
from fiumatch.protocol.wire import (
    ELEMENT_WIDTH,
    TAG_LEN,
    ElementChunk,
    ElementStreamDecoder,
    Hello,
    HelloAck,
    Limits,
    Mode,
    MsgType,
    StreamEnd,
    Suite,
    iter_chunks,
)

__all__ = ["CardinalityOwner", "CardinalityOwnerResult", "CardinalityQuerier", "CardinalityResult"]


@dataclass(frozen=True, kw_only=True, slots=True)
class CardinalityResult:
    """What the querier learns."""

    count: int
    own_count: int
    peer_count: int


@dataclass(frozen=True, kw_only=True, slots=True)
class CardinalityOwnerResult:
    """What the owner learns: the size of the querier's set."""

    peer_count: int


class _Cardinality(SessionMachine):
    mode = Mode.CARDINALITY

    def __init__(
        self,
        *,
        session_id: bytes,
        epoch: int,
        elements: Sequence[bytes],
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
            raise LocalProtocolError("cardinality mode uses the OPRF suite")
        self._elements = list(dict.fromkeys(bytes(e) for e in elements))
        if len(self._elements) > self.limits.max_elements:
            raise LocalProtocolError("more elements than max_elements")
        self._scalar = b""
        self._setup()

    def _setup(self) -> None:
        """Role-specific initial state."""


class CardinalityQuerier(_Cardinality):
    role = Role.QUERIER

    def _setup(self) -> None:
        self._unblind = b""
        self._own_tags: set[bytes] = set()
        self._peer_count = 0
        self._count = 0
        self._last_tag = b""
        self._eval_stream = ElementStreamDecoder(
            max_elements=self.limits.max_elements, expected=len(self._elements)
        )
        self._set_stream: ElementStreamDecoder | None = None
        self.result: CardinalityResult | None = None

    def start(self) -> list[bytes]:
        self._start()
        return [self._send(MsgType.HELLO, Hello(element_count=len(self._elements)))]

    def _on_hello_ack(self, body: HelloAck) -> list[bytes]:
        if body.public_key:
            raise DecodeError("cardinality HELLO_ACK must not carry a public key")
        self._peer_count = body.element_count
        self._set_stream = ElementStreamDecoder(
            max_elements=self.limits.max_elements, expected=body.element_count
        )
        r = group.random_scalar(self._rng)
        self._unblind = group.scalar_invert(r)
        elements = self._elements
        query = self._executor.map(
            hash_and_mult_chunk,
            [
                (r, elements[lo:hi], CARDINALITY_H2G_DST)
                for lo, hi in self._stream_ranges(len(elements))
            ],
        )
        chunks = iter_chunks(b"".join(query), ELEMENT_WIDTH, self.limits.chunk_elements)
        return list(self._send_stream(MsgType.QUERY_CHUNK, MsgType.QUERY_END, chunks))

    def _on_eval_chunk(self, body: ElementChunk) -> list[bytes]:
        self._eval_stream.accept(body)
        u, sid, data, w = self._unblind, self.session_id, body.elements, ELEMENT_WIDTH
        tags = b"".join(
            self._executor.map(
                mult_tag_part,
                [
                    (u, data[a * w : b * w], CARDINALITY_TAG_DST, sid)
                    for a, b in self._parts(body.count)
                ],
            )
        )
        self._own_tags.update(tags[i : i + TAG_LEN] for i in range(0, len(tags), TAG_LEN))
        return []

    def _on_eval_end(self, body: StreamEnd) -> list[bytes]:
        self._eval_stream.end(body)
        self._unblind = b""
        return []

    def _on_set_chunk(self, body: ElementChunk) -> list[bytes]:
        assert self._set_stream is not None
        self._set_stream.accept(body)
        own, data, last = self._own_tags, body.elements, self._last_tag
        for i in range(0, len(data), TAG_LEN):
            tag = data[i : i + TAG_LEN]
            if tag <= last:
                raise DecodeError("cardinality SET tags must be sorted and distinct")
            last = tag
            if tag in own:
                self._count += 1
        self._last_tag = last
        return []

    def _on_set_end(self, body: StreamEnd) -> list[bytes]:
        assert self._set_stream is not None
        self._set_stream.end(body)
        self.result = CardinalityResult(
            count=self._count, own_count=len(self._elements), peer_count=self._peer_count
        )
        self._own_tags = set()
        return []


class CardinalityOwner(_Cardinality):
    role = Role.OWNER

    def _setup(self) -> None:
        self._evaluated = bytearray()
        self._query_stream: ElementStreamDecoder | None = None
        self.result: CardinalityOwnerResult | None = None

    def _on_hello(self, body: Hello) -> list[bytes]:
        self._query_stream = ElementStreamDecoder(
            max_elements=self.limits.max_elements, expected=body.element_count
        )
        self._scalar = group.random_scalar(self._rng)
        return [self._send(MsgType.HELLO_ACK, HelloAck(element_count=len(self._elements)))]

    def _on_query_chunk(self, body: ElementChunk) -> list[bytes]:
        assert self._query_stream is not None
        self._query_stream.accept(body)
        k, data, w = self._scalar, body.elements, ELEMENT_WIDTH
        for part in self._executor.map(
            mult_chunk, [(k, data[a * w : b * w]) for a, b in self._parts(body.count)]
        ):
            self._evaluated += part
        return []

    def _on_query_end(self, body: StreamEnd) -> list[bytes]:
        assert self._query_stream is not None
        total = self._query_stream.end(body)
        evaluated, w = memoryview(self._evaluated), ELEMENT_WIDTH
        perm = shuffle_permutation(total, self._rng)
        shuffled = b"".join([evaluated[p * w : (p + 1) * w] for p in perm])
        evaluated.release()
        self._evaluated = bytearray()
        size = self.limits.chunk_elements
        out = list(
            self._send_stream(MsgType.EVAL_CHUNK, MsgType.EVAL_END, iter_chunks(shuffled, w, size))
        )
        del shuffled
        tags: list[bytes] = []
        k, sid, elements = self._scalar, self.session_id, self._elements
        for t in self._executor.map(
            hash_mult_tag_part,
            [
                (k, elements[lo:hi], CARDINALITY_H2G_DST, CARDINALITY_TAG_DST, sid)
                for lo, hi in self._stream_ranges(len(elements))
            ],
        ):
            tags += [t[j : j + TAG_LEN] for j in range(0, len(t), TAG_LEN)]
        # Distinct elements give distinct tags except with probability ~|Y|^2 / 2^129.
        tags = sorted(set(tags))
        out += self._send_stream(
            MsgType.SET_CHUNK, MsgType.SET_END, iter_chunks(b"".join(tags), TAG_LEN, size)
        )
        self._scalar = b""
        self.result = CardinalityOwnerResult(peer_count=total)
        return out
