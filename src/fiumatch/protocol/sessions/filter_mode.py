"""Filter mode (SPEC.md §8.1): the owner publishes a filter of its OPRF outputs, the querier
obtains the OPRF outputs of its own keys obliviously and tests them against the filter.

The querier learns which of its keys hit (up to the filter's false positives); the owner learns
only how many evaluations were asked for. With the VOPRF suite every EVAL_CHUNK carries a
batched DLEQ proof that it was computed with the key whose public key the owner announced.

This module must never see the owner's match keys (only a ``FilterLedger`` of outputs) and
never put keys, blinds or outputs in an error or a ``repr``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from fiumatch.protocol import group, oprf
from fiumatch.protocol.errors import (
    DecodeError,
    FilterError,
    LocalProtocolError,
    TrailingDataError,
    TruncatedMessageError,
    VerifyError,
)
from fiumatch.protocol.filters import FilterLedger, FilterObjectSplitter, FilterReplica
from fiumatch.protocol.sessions._base import SERIAL, ChunkExecutor, Deferred, Rng, SessionMachine
from fiumatch.protocol.sessions._ops import (
    blind_part,
    check_composite,
    evaluate_part,
    finalize_part,
    proof_scalars,
    prove_composite,
)
from fiumatch.protocol.sessions._state import Role
from fiumatch.protocol.wire import (
    ELEMENT_WIDTH,
    ElementChunk,
    ElementStreamDecoder,
    FilterChunk,
    FilterEnd,
    Hello,
    HelloAck,
    Limits,
    Mode,
    MsgType,
    StreamEnd,
    Suite,
    iter_chunks,
)

__all__ = [
    "FilterOwner",
    "FilterOwnerResult",
    "FilterQuerier",
    "FilterResult",
    "add_to_ledger",
    "build_ledger",
    "evaluate_outputs",
    "oprf_mode",
]


def oprf_mode(suite: Suite) -> int:
    """The RFC 9497 mode of a suite: 0 (OPRF) or 1 (VOPRF)."""
    return oprf.MODE_VOPRF if suite is Suite.VOPRF_RISTRETTO255_SHA512 else oprf.MODE_OPRF


@dataclass(frozen=True, kw_only=True, slots=True)
class FilterResult:
    """What the querier learns. ``hits``: its match keys found in the filter (in input order);
    each may be a false positive with probability at most ``false_positive_rate``."""

    hits: tuple[bytes, ...] = field(repr=False)
    hit_indices: tuple[int, ...]
    hit_outputs: tuple[bytes, ...] = field(repr=False)
    """The OPRF output ``F(k, x)`` of each hit (same order): a token the owner can map back to
    its own key for that output, e.g. to answer a disclosure request about exactly that hit."""
    queried: int
    owner_count: int
    filter_id: bytes
    filter_generation: int
    false_positive_rate: float


@dataclass(frozen=True, kw_only=True, slots=True)
class FilterOwnerResult:
    """What the owner learns: how many evaluations the querier asked for."""

    evaluated: int


def _filter_chunks(objects: Sequence[bytes], size: int) -> Iterator[bytes]:
    """Concatenate ``objects`` and cut the result into pieces of ``size`` bytes (last shorter)."""
    pending: list[bytes] = []
    have = 0
    for obj in objects:
        view = memoryview(obj)
        while len(view):
            take = min(size - have, len(view))
            pending.append(bytes(view[:take]))
            have += take
            view = view[take:]
            if have == size:
                yield b"".join(pending)
                pending, have = [], 0
    if have:
        yield b"".join(pending)


class FilterOwner(SessionMachine):
    """The owner's side: answers HELLO with the filter objects the querier lacks, then
    evaluates each QUERY_CHUNK with ``key_pair`` as it arrives.

    ``proofs`` (VOPRF suite only): attach a batched DLEQ proof to every EVAL_CHUNK. Off, the
    evaluations are the same (same suite, same outputs, same filter) and carry no proof: the
    agreement between the two nodes decides (SPEC §7.4)."""

    mode = Mode.FILTER
    role = Role.OWNER
    _deferrable = frozenset({MsgType.QUERY_CHUNK})

    def __init__(
        self,
        *,
        session_id: bytes,
        epoch: int,
        suite: Suite,
        key_pair: oprf.KeyPair,
        ledger: FilterLedger,
        rng: Rng,
        limits: Limits | None = None,
        executor: ChunkExecutor | None = None,
        proofs: bool = True,
    ) -> None:
        super().__init__(
            session_id=session_id,
            epoch=epoch,
            suite=suite,
            rng=rng,
            limits=limits,
            executor=executor,
        )
        if ledger.suite != self.suite or ledger.epoch != epoch:
            raise LocalProtocolError("the filter ledger is for another suite or epoch")
        self._key = key_pair
        self._ledger = ledger
        self._oprf_mode = oprf_mode(self.suite)
        self._prove = proofs and self._oprf_mode == oprf.MODE_VOPRF
        self._stream: ElementStreamDecoder | None = None
        self.result: FilterOwnerResult | None = None
        self.announced_count: int | None = None

    def _on_hello(self, body: Hello) -> list[bytes]:
        self.announced_count = body.element_count
        self._stream = ElementStreamDecoder(
            max_elements=self.limits.max_elements, expected=body.element_count
        )
        ledger = self._ledger
        public_key = self._key.pk if self._oprf_mode == oprf.MODE_VOPRF else b""
        out = [
            self._send(
                MsgType.HELLO_ACK,
                HelloAck(
                    element_count=ledger.count,
                    filter_id=ledger.filter_id,
                    filter_generation=ledger.generation,
                    public_key=public_key,
                ),
            )
        ]
        objects = ledger.objects_since(body.filter_id, body.filter_generation)
        for piece in _filter_chunks(objects, self.limits.filter_chunk_bytes):
            out.append(self._send(MsgType.FILTER_CHUNK, FilterChunk(data=piece)))
        total = sum(len(o) for o in objects)
        out.append(
            self._send(MsgType.FILTER_END, FilterEnd(object_count=len(objects), total_bytes=total))
        )
        return out

    def _defer_query_chunk(self, body: ElementChunk) -> Deferred:
        assert self._stream is not None
        self._stream.accept(body)
        prove = self._prove
        nonce = group.random_scalar(self._rng) if prove else b""
        if prove and body.count > oprf.MAX_BATCH:
            raise LocalProtocolError(f"proof batch size must be 1..{oprf.MAX_BATCH}")
        sk, pk, mode = self._key.sk, self._key.pk, self._oprf_mode
        data, w, count = body.elements, ELEMENT_WIDTH, body.count

        def finish(parts: list[tuple[bytes, bytes, bytes]]) -> list[bytes]:
            evaluated = b"".join(p[0] for p in parts)
            proof = prove_composite(sk, pk, [p[1] for p in parts], nonce, mode) if prove else b""
            chunk = ElementChunk(count=count, elements=evaluated, proof=proof)
            return [self._send(MsgType.EVAL_CHUNK, chunk)]

        return Deferred(
            evaluate_part,
            [(sk, pk, data[a * w : b * w], a, mode, prove) for a, b in self._parts(count)],
            finish,
        )

    def _on_query_end(self, body: StreamEnd) -> list[bytes]:
        assert self._stream is not None
        total = self._stream.end(body)
        self.result = FilterOwnerResult(evaluated=total)
        return [self._send(MsgType.EVAL_END, StreamEnd(total=total))]


class FilterQuerier(SessionMachine):
    """The querier's side: brings ``replica`` up to date, then learns which of ``match_keys``
    are in the owner's filter. ``owner_public_key``: the owner's epoch public key, pinned out of
    band (VOPRF suite; if None, the key announced in HELLO_ACK is used). ``proofs`` (VOPRF suite
    only): every EVAL_CHUNK must carry a valid proof; off, none may (SPEC §7.4)."""

    mode = Mode.FILTER
    role = Role.QUERIER
    _deferrable = frozenset({MsgType.EVAL_CHUNK})

    def __init__(
        self,
        *,
        session_id: bytes,
        epoch: int,
        suite: Suite,
        match_keys: Sequence[bytes],
        replica: FilterReplica,
        rng: Rng,
        limits: Limits | None = None,
        owner_public_key: bytes | None = None,
        executor: ChunkExecutor | None = None,
        proofs: bool = True,
    ) -> None:
        super().__init__(
            session_id=session_id,
            epoch=epoch,
            suite=suite,
            rng=rng,
            limits=limits,
            executor=executor,
        )
        if replica.suite != self.suite or replica.epoch != epoch:
            raise LocalProtocolError("the filter replica is for another suite or epoch")
        self._keys = list(match_keys)
        if len(self._keys) > self.limits.max_elements:
            raise LocalProtocolError("more match keys than max_elements")
        self._replica = replica
        self._oprf_mode = oprf_mode(self.suite)
        self._verify = proofs and self._oprf_mode == oprf.MODE_VOPRF
        self._pinned_pk = owner_public_key
        self._pk = b""
        self._ack: HelloAck | None = None
        self._splitter = FilterObjectSplitter(max_bytes=self.limits.max_filter_bytes)
        self._blinds: list[bytes] = []
        self._blinded = b""
        """VOPRF: the QUERY stream as sent (concatenated), to verify the proofs against."""
        self._stream = ElementStreamDecoder(
            max_elements=self.limits.max_elements, expected=len(self._keys)
        )
        self._pos = 0
        self._hits: list[int] = []
        self._hit_outputs: list[bytes] = []
        self._untested: list[tuple[int, list[bytes]]] = []
        """Finalized outputs (with the index of their first key) not yet tested against the
        filter: tested while the workers finalize the next chunk, or after the last one."""
        self.result: FilterResult | None = None

    def start(self) -> list[bytes]:
        """The HELLO frame that opens the session."""
        self._start()
        hello = Hello(
            element_count=len(self._keys),
            filter_id=self._replica.filter_id,
            filter_generation=self._replica.generation,
        )
        return [self._send(MsgType.HELLO, hello)]

    def _on_hello_ack(self, body: HelloAck) -> list[bytes]:
        if self._oprf_mode == oprf.MODE_VOPRF:
            if len(body.public_key) != group.ELEMENT_LEN:
                raise DecodeError("VOPRF owner must announce its public key")
            group.decode_element(body.public_key)
            if self._pinned_pk is not None and body.public_key != self._pinned_pk:
                raise VerifyError("owner public key differs from the pinned key")
            self._pk = body.public_key
        elif body.public_key:
            raise DecodeError("OPRF owner must not announce a public key")
        self._ack = body
        return []

    def _on_filter_chunk(self, body: FilterChunk) -> list[bytes]:
        for obj in self._splitter.feed(body.data):
            self._replica.apply(obj, max_bytes=self.limits.max_filter_bytes)
        return []

    def _on_filter_end(self, body: FilterEnd) -> list[bytes]:
        splitter, ack, replica = self._splitter, self._ack, self._replica
        assert ack is not None
        splitter.close()
        if body.total_bytes > splitter.total_bytes or body.object_count > splitter.objects:
            raise TruncatedMessageError("filter stream ended early")
        if body.total_bytes < splitter.total_bytes or body.object_count < splitter.objects:
            raise TrailingDataError("filter stream carried more than its end says")
        if (replica.filter_id, replica.generation, replica.count) != (
            ack.filter_id,
            ack.filter_generation,
            ack.element_count,
        ):
            raise FilterError("filter after the update does not match the owner's announcement")
        # Blind every key (one fresh scalar per key, drawn in key order); the QUERY stream goes
        # out in chunks. Each range's scalars are drawn just before its call is handed over,
        # so a pool's workers start on the first range while the later ones are drawn.
        keys, rng, mode = self._keys, self._rng, self._oprf_mode
        self._blinds = blinds = []
        random_scalar = group.random_scalar

        def calls() -> Iterator[tuple[list[bytes], list[bytes], int]]:
            for lo, hi in self._stream_ranges(len(keys)):
                drawn = [random_scalar(rng) for _ in range(hi - lo)]
                blinds.extend(drawn)
                yield keys[lo:hi], drawn, mode

        blinded = b"".join(self._executor.map(blind_part, calls()))
        if self._verify:
            self._blinded = blinded
        chunks = iter_chunks(blinded, ELEMENT_WIDTH, self.limits.chunk_elements)
        return list(self._send_stream(MsgType.QUERY_CHUNK, MsgType.QUERY_END, chunks))

    def _defer_eval_chunk(self, body: ElementChunk) -> Deferred:
        self._stream.accept(body)
        lo, hi = self._pos, self._pos + body.count
        self._pos = hi
        mode, pk, w = self._oprf_mode, b"", ELEMENT_WIDTH
        if self._verify:
            if not body.proof:
                raise VerifyError("VOPRF evaluation without a proof")
            if body.count > oprf.MAX_BATCH:
                raise LocalProtocolError(f"proof batch size must be 1..{oprf.MAX_BATCH}")
            proof_scalars(body.proof)
            pk = self._pk
        elif body.proof:
            raise DecodeError("an evaluation without proofs must not carry a proof")
        keys, blinds, blinded, data, proof = (
            self._keys,
            self._blinds,
            self._blinded,
            body.elements,
            body.proof,
        )

        def finish(parts: list[tuple[list[bytes], bytes, bytes]]) -> list[bytes]:
            if pk:  # the proof covers the whole chunk: check it before any output is used
                check_composite(pk, [p[1] for p in parts], [p[2] for p in parts], proof, mode)
            self._untested.append((lo, [o for p in parts for o in p[0]]))
            return []

        return Deferred(
            finalize_part,
            [
                (
                    keys[lo + a : lo + b],
                    blinds[lo + a : lo + b],
                    data[a * w : b * w],
                    mode,
                    pk,
                    blinded[(lo + a) * w : (lo + b) * w],
                    a,
                )
                for a, b in self._parts(body.count)
            ],
            finish,
        )

    def _between_chunks(self) -> None:
        """Test the finalized outputs not tested yet against the filter (in key order): while
        the workers finalize the next chunk."""
        untested, self._untested = self._untested, []
        replica, hits, hit_outputs = self._replica, self._hits, self._hit_outputs
        for lo, outputs in untested:
            for i, o in enumerate(outputs):
                if o in replica:
                    hits.append(lo + i)
                    hit_outputs.append(o)

    def _after_chunks(self) -> list[bytes]:
        if self._stream.received == len(self._keys):  # the last chunk: nothing to overlap with
            self._between_chunks()
        return []

    def _on_eval_end(self, body: StreamEnd) -> list[bytes]:
        self._stream.end(body)
        ack = self._ack
        assert ack is not None
        self.result = FilterResult(
            hits=tuple(self._keys[i] for i in self._hits),
            hit_indices=tuple(self._hits),
            hit_outputs=tuple(self._hit_outputs),
            queried=len(self._keys),
            owner_count=ack.element_count,
            filter_id=self._replica.filter_id,
            filter_generation=self._replica.generation,
            false_positive_rate=self._replica.false_positive_rate(),
        )
        self._blinds = []
        self._blinded = b""
        return []


def evaluate_outputs(
    key_pair: oprf.KeyPair,
    match_keys: Sequence[bytes],
    suite: Suite,
    chunk: int = 4096,
    *,
    executor: ChunkExecutor | None = None,
) -> list[bytes]:
    """The owner's OPRF outputs ``F(k, y)`` of ``match_keys`` (``oprf.evaluate_many``), in
    ``chunk``-key calls through ``executor``. Only ``sk`` goes to the executor."""
    mode = oprf_mode(suite)
    ex = executor if executor is not None else SERIAL
    sk = key_pair.sk
    args = [(sk, match_keys[i : i + chunk], mode) for i in range(0, len(match_keys), chunk)]
    return [o for part in ex.map(oprf.evaluate_many, args) for o in part]


def build_ledger(
    key_pair: oprf.KeyPair,
    match_keys: Sequence[bytes],
    *,
    suite: Suite,
    epoch: int,
    fp_rate: float,
    capacity: int | None = None,
    exact: bool = False,
    seed: int = 0,
    executor: ChunkExecutor | None = None,
) -> FilterLedger:
    """The owner's filter ledger for one (peer, epoch): OPRF outputs of ``match_keys`` under
    ``key_pair`` in a Bloom filter (or an exact one), sized for ``capacity`` (default: the
    number of keys, at least 1). The outputs are computed through ``executor``."""
    keys = list(dict.fromkeys(match_keys))
    outputs = evaluate_outputs(key_pair, keys, suite, executor=executor)
    cap = capacity if capacity is not None else max(1, len(keys))
    if exact:
        return FilterLedger.exact(outputs, suite=suite, epoch=epoch, fp_rate=fp_rate, capacity=cap)
    return FilterLedger.bloom(
        outputs, suite=suite, epoch=epoch, fp_rate=fp_rate, capacity=cap, seed=seed
    )


def add_to_ledger(
    ledger: FilterLedger,
    key_pair: oprf.KeyPair,
    match_keys: Sequence[bytes],
    *,
    executor: ChunkExecutor | None = None,
) -> bytes:
    """Add keys within the epoch: returns the encoded delta object of the new generation."""
    outputs = evaluate_outputs(key_pair, list(match_keys), Suite(ledger.suite), executor=executor)
    return ledger.add(outputs)
