"""Fuzzing the protocol decoders: wire frames, the frame reader, element streams, filter
objects and replicas, group elements and scalars, DLEQ proofs.

Arbitrary bytes must decode (and re-encode to the same bytes) or raise the protocol's typed
``DecodeError``/``FilterError``/``VerifyError`` subclasses; mutants of valid messages are
rejected or, where a flipped bit lands inside a field value and the mutant is still a
well-formed message, are caught by the session's later checks (stated per test).
"""

from __future__ import annotations

import array
import hashlib
import struct
import sys
import tracemalloc
from collections.abc import Callable
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fiumatch.protocol import group, wire
from fiumatch.protocol.errors import DecodeError, FilterError
from fiumatch.protocol.filters import (
    FilterKind,
    FilterObject,
    FilterReplica,
    decode_filter_object,
)
from tests.fuzz._support import Mutant, fuzz_settings, mutants
from tests.fuzz.checks import SMALL_LIMITS, run_check, samples

_S = samples()
_MSG_TYPES = [int(t) for t in wire.MsgType]


@st.composite
def frame_like(draw: st.DrawFn) -> bytes:
    """Bytes that pass the length and magic checks, so the body decoders get exercised."""
    msg_type = draw(st.sampled_from([*_MSG_TYPES, 0, 0x12, 0xFF]))
    mode = draw(st.sampled_from([1, 2, 3, 0, 4]))
    suite = draw(st.sampled_from([1, 2, 0, 3]))
    header = struct.pack(
        ">2sBBBHQ16sI",
        b"FM",
        1,
        msg_type,
        mode,
        suite,
        draw(st.integers(0, 2**64 - 1)),
        draw(st.binary(min_size=16, max_size=16)),
        draw(st.integers(0, 2**32 - 1)),
    )
    body = draw(
        st.one_of(
            st.binary(max_size=120),
            st.builds(
                lambda n, rest: struct.pack(">I", n) + rest,
                st.integers(0, 20),
                st.binary(max_size=700),
            ),
            st.builds(
                lambda n, rest: struct.pack(">Q", n) + rest,
                st.integers(0, 2**64 - 1),
                st.binary(max_size=60),
            ),
        )
    )
    payload = header + body
    length = len(payload) if draw(st.booleans()) else draw(st.integers(0, 2**32 - 1))
    return struct.pack(">I", length) + payload


@fuzz_settings(300)
@given(st.binary(max_size=256))
def test_wire_frame_arbitrary_bytes(data: bytes) -> None:
    run_check("wire_frame", data)


@fuzz_settings(400)
@given(frame_like())
def test_wire_frame_header_shaped_bytes(data: bytes) -> None:
    run_check("wire_frame", data)


@fuzz_settings(400)
@given(st.sampled_from(_S.frames).flatmap(lambda f: st.tuples(st.just(f), mutants(f))))
def test_wire_frame_mutants(case: tuple[bytes, Mutant]) -> None:
    """A mutant is refused with a DecodeError subclass, or is another canonical frame: a
    flip inside a field value (epoch, session id, seq, a count's low bits, an element, a
    proof or signature byte). Those the session refuses later: binding (§6.1 step 2),
    sequence (step 3), ``decode_element``, the DLEQ proof, the Ed25519 signature, and the
    transcript hash both sides sign. A mutant that changes the length is always refused."""
    original, mutant = case
    run_check("wire_frame", mutant.data)
    try:
        frame = wire.decode_frame(mutant.data)
    except DecodeError:
        return
    assert len(mutant.data) == len(original), mutant.steps
    assert frame != wire.decode_frame(original)


@fuzz_settings(200)
@given(st.lists(st.one_of(st.sampled_from(_S.frames), st.binary(max_size=40)), max_size=6))
def test_frame_reader_streams(pieces: list[bytes]) -> None:
    run_check("wire_reader", b"".join(pieces))


@fuzz_settings(150)
@given(st.sampled_from(_S.frames).flatmap(lambda f: mutants(f * 3)))
def test_frame_reader_mutated_streams(mutant: Mutant) -> None:
    run_check("wire_reader", mutant.data)


@st.composite
def element_streams(draw: st.DrawFn) -> bytes:
    """A QUERY stream as encoded frames: an optional HELLO, chunks of 1..9 elements (the
    receiver allows 8), an END with a total near the true one."""
    sid = bytes(16)
    mode = wire.Mode.MUTUAL
    suite = wire.Suite.OPRF_RISTRETTO255_SHA512

    def frame(msg_type: wire.MsgType, body: wire.Body, seq: int) -> bytes:
        h = wire.Header(msg_type=msg_type, mode=mode, suite=suite, epoch=1, session_id=sid, seq=seq)
        return wire.encode_frame(h, body)

    out = []
    seq = 0
    if draw(st.booleans()):
        out.append(
            frame(wire.MsgType.HELLO, wire.Hello(element_count=draw(st.integers(0, 70))), seq)
        )
        seq += 1
    total = 0
    for count in draw(st.lists(st.integers(1, 9), max_size=12)):
        out.append(
            frame(
                wire.MsgType.QUERY_CHUNK,
                wire.ElementChunk(count=count, elements=bytes(32 * count)),
                seq,
            )
        )
        seq += 1
        total += count
    end = max(0, total + draw(st.integers(-3, 3)))
    out.append(frame(wire.MsgType.QUERY_END, wire.StreamEnd(total=end), seq))
    return b"".join(out)


@fuzz_settings(300)
@given(element_streams())
def test_element_streams_follow_the_spec_model(data: bytes) -> None:
    run_check("element_stream", data)


@fuzz_settings(100)
@given(element_streams().flatmap(mutants))
def test_element_streams_mutated(mutant: Mutant) -> None:
    run_check("element_stream", mutant.data)


def test_small_limits_are_the_ones_the_checks_use() -> None:
    assert SMALL_LIMITS.max_chunk_elements == 8 and SMALL_LIMITS.max_elements == 64


# --- filters -----------------------------------------------------------------------------------


@st.composite
def filter_object_like(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from([1, 2, 3, 4, 5, 0, 6]))
    m = draw(st.sampled_from([0, 8, 16, 512, 7, 2**32, 2**32 + 8, 2**64 - 8]))
    k = draw(st.integers(0, 70))
    payload = draw(st.binary(max_size=80))
    plen = len(payload) if draw(st.booleans()) else draw(st.integers(0, 2**64 - 1))
    header = struct.pack(
        ">3sBBHQ16sQQQQBIQ",
        b"FMF",
        1,
        kind,
        draw(st.integers(0, 3)),
        4,
        draw(st.binary(min_size=16, max_size=16)),
        draw(st.integers(0, 3)),
        draw(st.integers(0, 50)),
        draw(st.integers(0, 50)),
        m,
        k,
        draw(st.integers(0, 2**32 - 1)),
        plen,
    )
    return header + payload


@fuzz_settings(200)
@given(st.binary(max_size=200))
def test_filter_object_arbitrary_bytes(data: bytes) -> None:
    run_check("filter_object", data)


@fuzz_settings(400)
@given(filter_object_like())
def test_filter_object_header_shaped_bytes(data: bytes) -> None:
    run_check("filter_object", data)


@fuzz_settings(300)
@given(st.sampled_from(_S.filter_objects).flatmap(lambda o: st.tuples(st.just(o), mutants(o))))
def test_filter_object_mutants(case: tuple[bytes, Mutant]) -> None:
    """A mutated base never decodes as a base: its filter id commits to every header field
    and payload byte. A mutant may decode as a *delta* (deltas carry no such commitment):
    the replica then refuses it unless it extends the held filter consistently, and the
    FILTER stream's integrity rests on the signed HTTP body (Content-Digest)."""
    original, mutant = case
    run_check("filter_object", mutant.data)
    try:
        obj = decode_filter_object(mutant.data)
    except (FilterError, DecodeError):
        return
    if decode_filter_object(original).kind.is_base:
        assert not obj.kind.is_base, mutant.steps


@fuzz_settings(150)
@given(st.lists(st.one_of(st.sampled_from(_S.filter_objects), st.binary(max_size=90)), max_size=5))
def test_filter_replica_arbitrary_streams(parts: list[bytes]) -> None:
    run_check("filter_replica", b"".join(parts))


@fuzz_settings(250)
@given(
    st.sampled_from([_S.bloom_stream, _S.exact_stream]).flatmap(
        lambda s: st.tuples(st.just(s), mutants(s))
    )
)
def test_filter_replica_mutated_streams(case: tuple[bytes, Mutant]) -> None:
    """Whatever a mutant does, a replica that accepts a base holds the genuine base (its id
    is the original's): only unauthenticated deltas can differ, see above."""
    original, mutant = case
    run_check("filter_replica", mutant.data)
    first = decode_filter_object(original[: _object_len(original)])
    replica = FilterReplica(suite=first.suite, epoch=first.epoch)
    pos = 0
    while pos + 76 <= len(mutant.data):
        end = pos + _object_len(mutant.data[pos:])
        try:
            obj = replica.apply(mutant.data[pos:end])
        except (FilterError, DecodeError):
            return
        if obj.kind.is_base:
            assert obj.filter_id == first.filter_id
            assert obj.kind in (FilterKind.BLOOM_BASE, FilterKind.EXACT_BASE)
        pos = end


def _object_len(data: bytes) -> int:
    return 76 + int.from_bytes(data[68:76], "big")


# --- group and proofs --------------------------------------------------------------------------


@fuzz_settings(300)
@given(
    st.one_of(
        st.binary(min_size=32, max_size=32),
        st.binary(max_size=40),
        st.integers(0, 2**256 - 1).map(lambda n: n.to_bytes(32, "little")),
        st.integers(0, 64).map(lambda n: ((2**255 - 19) + n - 32).to_bytes(32, "little")),
    )
)
def test_group_element_arbitrary(data: bytes) -> None:
    run_check("group_element", data)


@fuzz_settings(300)
@given(st.sampled_from(_S.evaluated + _S.blinded).flatmap(mutants))
def test_group_element_mutants(mutant: Mutant) -> None:
    """A mutant is refused or is another valid element (roughly one flip in eight of the low
    bits): the DLEQ proof over the chunk then fails (see test_dleq_elements_mutants)."""
    run_check("group_element", mutant.data)


@fuzz_settings(200)
@given(
    st.one_of(
        st.binary(max_size=40),
        st.integers(0, 2**256 - 1).map(lambda n: n.to_bytes(32, "little")),
        st.integers(-3, 3).map(lambda d: ((group.ORDER + d) % 2**256).to_bytes(32, "little")),
    )
)
def test_group_scalar_arbitrary(data: bytes) -> None:
    run_check("group_scalar", data)


@fuzz_settings(100)
@given(st.one_of(st.binary(max_size=70), st.binary(min_size=64, max_size=64), mutants(_S.proof)))
def test_dleq_proof_arbitrary_and_mutated(data: bytes | Mutant) -> None:
    run_check("dleq_proof", data.data if isinstance(data, Mutant) else data)


@fuzz_settings(100)
@given(mutants(b"".join(_S.evaluated)))
def test_dleq_elements_mutants(mutant: Mutant) -> None:
    run_check("dleq_elements", mutant.data)


def test_samples_are_accepted() -> None:
    """The mutation tests start from messages the decoders accept."""
    for f in _S.frames:
        assert wire.encode_frame(*_unpack(wire.decode_frame(f))) == f
    replica = FilterReplica(suite=1, epoch=4)
    for obj in _S.filter_objects[:3]:
        replica.apply(obj)
    assert replica.generation == 3
    for e in _S.evaluated:
        assert group.decode_element(e) == e


def _unpack(frame: wire.Frame) -> tuple[wire.Header, wire.Body]:
    return frame.header, frame.body


# --- resource use --------------------------------------------------------------------------------


def _traced_peak(fn: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _bloom_with_delta(positions: int) -> tuple[bytes, bytes]:
    m = 1 << 23  # 1 MiB of bits
    base = FilterObject(
        kind=FilterKind.BLOOM_BASE, suite=2, epoch=1, filter_id=bytes(16), generation=1,
        count=0, capacity=2**40, m=m, k=1, seed=0, payload=bytes(m // 8),
    )  # fmt: skip
    base = FilterObject(**{**_fields(base), "filter_id": _filter_id(base)})
    steps = array.array("I", range(0, 16 * positions, 16))
    if sys.byteorder == "little":
        steps.byteswap()
    delta = FilterObject(
        kind=FilterKind.BLOOM_DELTA, suite=2, epoch=1, filter_id=base.filter_id, generation=2,
        count=2 * positions, capacity=2**40, m=m, k=1, seed=0, payload=steps.tobytes(),
    )  # fmt: skip
    return base.encode(), delta.encode()


def _fields(obj: FilterObject) -> dict[str, Any]:
    return {f: getattr(obj, f) for f in FilterObject.__dataclass_fields__}


def _filter_id(base: FilterObject) -> bytes:
    unbound = FilterObject(**{**_fields(base), "filter_id": bytes(16)}).encode()
    return hashlib.sha256(b"fiumatch-v1-filter-id" + unbound).digest()[:16]


def test_bloom_delta_costs_memory_linear_in_its_size() -> None:
    """A peer's Bloom delta of 1 MiB (262 144 positions) must not cost the querier ten times
    that: positions are read lazily (a list of ints made a 30 MiB delta cost 350 MiB)."""
    base, delta = _bloom_with_delta(1 << 18)
    replica = FilterReplica(suite=2, epoch=1)
    replica.apply(base)
    peak = _traced_peak(lambda: replica.apply(delta))
    assert replica.generation == 2
    # The decoded payload and the fill check's copy of the bits, plus a margin.
    bound = len(delta) + (1 << 20) + (1 << 19)
    assert peak < bound, f"{peak} bytes traced for a {len(delta)}-byte delta"


def test_exact_delta_costs_memory_linear_in_the_filter() -> None:
    """Merging a peer's exact delta into the held filter builds one buffer, not a list of
    entries (which made a 30 MiB delta cost 2.1 GiB)."""
    n = 1 << 16
    entries = array.array("I", range(0, 4 * n, 2))
    if sys.byteorder == "little":
        entries.byteswap()
    raw = entries.tobytes()
    base = FilterObject(
        kind=FilterKind.EXACT_BASE, suite=2, epoch=1, filter_id=bytes(16), generation=1,
        count=n, capacity=2**40, m=0, k=4, seed=0, payload=raw[: 4 * n],
    )  # fmt: skip
    base = FilterObject(**{**_fields(base), "filter_id": _filter_id(base)})
    delta = FilterObject(
        kind=FilterKind.EXACT_DELTA, suite=2, epoch=1, filter_id=base.filter_id, generation=2,
        count=2 * n, capacity=2**40, m=0, k=4, seed=0, payload=raw[4 * n :],
    ).encode()  # fmt: skip
    replica = FilterReplica(suite=2, epoch=1)
    replica.apply(base.encode())
    peak = _traced_peak(lambda: replica.apply(delta))
    assert replica.count == 2 * n
    bound = 4 * len(raw)  # the merged filter, its copy, the decoded payload, a margin
    assert peak < bound, f"{peak} bytes traced to merge {len(raw)} bytes of entries"
