"""Filters: sizing, membership, false-positive bound, deltas, and every rejection by class."""

from __future__ import annotations

import hashlib
import math
import struct
from array import array

import mmh3
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fiumatch.protocol import filters, oprf
from fiumatch.protocol.errors import (
    DecodeError,
    FilterError,
    LocalProtocolError,
    OversizedMessageError,
    TrailingDataError,
    TruncatedMessageError,
    UnknownVersionError,
)
from fiumatch.protocol.filters import (
    BloomFilter,
    FilterKind,
    FilterLedger,
    FilterObjectSplitter,
    FilterReplica,
    bloom_parameters,
    decode_filter_object,
    exact_truncation,
    set_bloom_positions,
)


def outputs(tag: str, n: int) -> list[bytes]:
    """Deterministic stand-ins for OPRF outputs (64 pseudorandom bytes each)."""
    return [hashlib.sha512(f"{tag}/{i}".encode()).digest() for i in range(n)]


def replica_from(ledger: FilterLedger, since: tuple[bytes, int] = (bytes(16), 0)) -> FilterReplica:
    r = FilterReplica(suite=ledger.suite, epoch=ledger.epoch)
    for obj in ledger.objects_since(*since):
        r.apply(obj)
    return r


def test_input_len_is_oprf_output_len() -> None:
    assert filters.INPUT_LEN == oprf.OUTPUT_LEN
    for name in filters.__all__:
        assert hasattr(filters, name), name


def test_murmur_known_answer_and_index_derivation() -> None:
    # The MurmurHash3_x64_128 known answer published with mmh3.
    assert mmh3.hash_bytes(b"foo", seed=0, x64arch=True).hex() == "6145f501578671e2877dba2be487af7e"
    out = bytes(range(64))
    m, k, seed = 1000, 5, 0xFFFFFFFF  # the seed wraps to 0 for j = 1
    words: list[int] = []
    for j in range(3):
        d = mmh3.hash_bytes(out, seed=(seed + j) % 2**32, x64arch=True)
        words += [int.from_bytes(d[:8], "little"), int.from_bytes(d[8:], "little")]
    assert filters.bloom_indices(out, m, k, seed) == [w % m for w in words[:k]]
    # The same words as hash64 gives them when signed=False is passed by keyword.
    a, b = mmh3.hash64(out, seed=7, x64arch=True, signed=False)
    assert filters.bloom_indices(out, 2**63, 2, 7) == [a % 2**63, b % 2**63]


@settings(max_examples=40)
@given(
    m_bytes=st.integers(1, 40),
    k=st.integers(1, 9),
    n=st.integers(0, 60),
    preset=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_bulk_bit_setting_equals_adding_one_output_at_a_time(
    m_bytes: int, k: int, n: int, preset: int, data: st.DataObject
) -> None:
    # Tiny filters, so repeats within an output, outputs whose bits earlier outputs of the same
    # batch already set, and bits set before the batch all happen often.
    m = 8 * m_bytes
    seed = data.draw(st.integers(0, 2**32 - 1))
    outs = outputs(f"bulk/{seed}", n)
    if n > 1:  # an exact duplicate inside the batch must not count twice
        outs.append(outs[data.draw(st.integers(0, n - 1))])
    before = bytes((preset >> (8 * (i % 4))) & 0xFF for i in range(m_bytes))
    one_by_one = BloomFilter(m=m, k=k, seed=seed, bits=before)
    expected = sum(1 for o in outs if one_by_one.add(o))
    packed = array("I", [j for o in outs for j in filters.bloom_indices(o, m, k, seed)])
    bits = bytearray(before)
    assert set_bloom_positions(bits, packed.tobytes(), k) == expected
    assert bytes(bits) == bytes(one_by_one.bits)


def _set_one_by_one(bits: bytearray, positions: list[int], k: int) -> int:
    fresh = 0
    for i in range(0, len(positions), k):
        new = False
        for j in positions[i : i + k]:
            if not bits[j >> 3] >> (j & 7) & 1:
                bits[j >> 3] |= 1 << (j & 7)
                new = True
        fresh += new
    return fresh


@settings(max_examples=40)
@given(
    k=st.integers(1, 4),
    picks=st.lists(st.tuples(st.integers(0, 7), st.integers(0, 3)), min_size=1, max_size=64),
)
def test_bulk_bit_setting_is_exact_when_distinct_positions_share_a_hash_bucket(
    k: int, picks: list[tuple[int, int]]
) -> None:
    # Positions 2^16 apart land in the same bucket of the count table (65,536 buckets for a
    # batch this small), so "alone in its bucket" fails and the exact check decides.
    m = 1 << 20
    pool = [5 + (i << 16) for i in range(8)]
    positions = [pool[a] + 8 * b for a, b in picks]
    positions += [positions[-1]] * (-len(positions) % k)
    bits = bytearray(m // 8)
    bits[5 >> 3] |= 1 << 5  # one position set before the batch
    expected_bits = bytearray(bits)
    expected = _set_one_by_one(expected_bits, positions, k)
    packed = array("I", positions).tobytes()
    assert set_bloom_positions(bits, packed, k) == expected
    assert bits == expected_bits


def test_bulk_bit_setting_refuses_ragged_or_out_of_range_positions() -> None:
    bits = bytearray(8)
    with pytest.raises(LocalProtocolError):
        set_bloom_positions(bits, array("I", [1, 2, 3]).tobytes(), 2)
    with pytest.raises(LocalProtocolError):
        set_bloom_positions(bits, array("I", [1, 64]).tobytes(), 2)
    assert bits == bytearray(8)  # nothing set by a refused batch
    assert set_bloom_positions(bits, b"", 3) == 0


def test_bloom_sizing_formula() -> None:
    # m = -n ln p / (ln 2)^2 = 9585.06 -> 9586 -> 9592 (multiple of 8); k = m/n ln 2 = 6.65 -> 7
    assert bloom_parameters(1000, 0.01) == (9592, 7)
    m, k = bloom_parameters(1 << 20, 1e-6)
    assert m == -(-math.ceil(-(1 << 20) * math.log(1e-6) / math.log(2) ** 2) // 8) * 8
    assert k == 20
    with pytest.raises(LocalProtocolError):
        bloom_parameters(0, 0.01)
    with pytest.raises(LocalProtocolError):
        bloom_parameters(10, 1.0)


def test_exact_truncation() -> None:
    # log2(1000 / 1e-6) = 29.9 bits -> 4 bytes
    assert exact_truncation(1000, 1e-6) == 4
    assert exact_truncation(1 << 20, 1e-9) == 7  # 20 + 29.9 = 49.9 bits
    assert exact_truncation(1, 0.5) == 4


def test_bloom_refuses_non_outputs() -> None:
    bf = BloomFilter(m=64, k=3)
    with pytest.raises(LocalProtocolError):
        bf.add(b"raw identifier")
    assert (b"x" * 10) not in bf


@settings(max_examples=25)
@given(
    n=st.integers(1, 300),
    p=st.sampled_from([0.1, 0.01, 1e-4]),
    seed=st.integers(0, 2**32 - 1),
    exact=st.booleans(),
)
@example(n=200, p=1e-4, seed=66, exact=False)  # one output's bits were all set already
def test_every_member_is_found(n: int, p: float, seed: int, exact: bool) -> None:
    outs = outputs(f"members-{seed}", n)
    if exact:
        ledger = FilterLedger.exact(outs, suite=1, epoch=2, fp_rate=p, capacity=n)
    else:
        ledger = FilterLedger.bloom(outs, suite=1, epoch=2, fp_rate=p, capacity=n, seed=seed)
    replica = replica_from(ledger)
    assert all(o in replica for o in outs)
    # An output whose bits were all set already does not count (it left the filter unchanged).
    assert 0 < replica.count <= n
    if exact:
        assert replica.count == n
    else:
        # How many outputs set a new bit is a matter of chance even at p = 1e-4 (about 1% of
        # 200-output filters have one that does not), so it is compared with adding the same
        # outputs to a reference filter one by one, not with n.
        base = filters.decode_filter_object(ledger.objects_since(bytes(16), 0)[0])
        reference = filters.BloomFilter(m=base.m, k=base.k, seed=seed)
        for o in outs:
            reference.add(o)
        assert replica.count == reference.count


@pytest.mark.parametrize("p", [0.05, 0.01])
def test_bloom_false_positives_stay_within_bound(p: float) -> None:
    n, trials = 2000, 20000
    ledger = FilterLedger.bloom(outputs("owner", n), suite=1, epoch=1, fp_rate=p, capacity=n)
    replica = replica_from(ledger)
    bound = replica.false_positive_rate()
    assert bound <= p * 1.05  # the sizing formula meets the configured rate
    hits = sum(o in replica for o in outputs("non-member", trials))
    # Binomial(trials, p): allow 5 standard deviations above the configured rate.
    assert hits <= trials * p + 5 * math.sqrt(trials * p * (1 - p))
    assert hits > 0  # and the filter is not trivially empty


def test_exact_false_positives_stay_within_bound() -> None:
    n, p = 3000, 0.01
    ledger = FilterLedger.exact(outputs("owner", n), suite=1, epoch=1, fp_rate=p, capacity=n)
    replica = replica_from(ledger)
    assert replica.false_positive_rate() <= p
    assert sum(o in replica for o in outputs("non-member", 5000)) <= 5000 * p + 5 * math.sqrt(
        5000 * p
    )


@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize("base_n", [200, 3000])
def test_deltas_equal_a_rebuild_and_download_only_what_is_new(exact: bool, base_n: int) -> None:
    outs = outputs("delta", base_n + 100)
    make = FilterLedger.exact if exact else FilterLedger.bloom
    ledger = make(outs[:base_n], suite=1, epoch=5, fp_rate=0.001, capacity=base_n + 200)
    replica = replica_from(ledger)
    base_size = len(ledger.objects_since(bytes(16), 0)[0])
    d1 = ledger.add(outs[base_n : base_n + 50])
    d2 = ledger.add(outs[base_n + 50 :] + outs[:10])  # re-adding known outputs is harmless
    assert ledger.generation == 3
    # Exact: every new prefix counts. Bloom: an output whose bits were all set (a false
    # positive, probability ~0.001 each here) does not change the filter and is not counted.
    expected = base_n + 100
    assert ledger.count == expected if exact else expected - 3 <= ledger.count <= expected
    # A delta is never bigger than the base; for a small delta on a big filter, much smaller.
    assert len(d1) <= base_size and len(d2) <= base_size
    if base_n == 3000:
        assert 4 * len(d1) < base_size
    needed = ledger.objects_since(replica.filter_id, replica.generation)
    assert needed == [d1, d2]
    for obj in needed:
        replica.apply(obj)
    assert (replica.generation, replica.count) == (3, ledger.count)
    assert all(o in replica for o in outs)
    fresh = replica_from(ledger)
    probes = outputs("probe", 2000)
    assert [o in fresh for o in probes] == [o in replica for o in probes]
    # A querier that is up to date downloads nothing; one with an unknown filter, everything.
    assert ledger.objects_since(ledger.filter_id, 3) == []
    assert len(ledger.objects_since(b"\x01" * 16, 2)) == 3


@pytest.mark.parametrize("exact", [False, True])
def test_ledger_restores_from_its_objects(exact: bool) -> None:
    make = FilterLedger.exact if exact else FilterLedger.bloom
    ledger = make(outputs("r", 100), suite=1, epoch=3, fp_rate=0.01, capacity=300)
    ledger.add(outputs("r2", 20))
    restored = FilterLedger.from_objects(ledger.objects())
    assert (restored.filter_id, restored.generation, restored.count) == (
        ledger.filter_id,
        ledger.generation,
        ledger.count,
    )
    d_original = ledger.add(outputs("r3", 10))
    d_restored = restored.add(outputs("r3", 10))
    assert d_original == d_restored  # the restored ledger continues identically
    with pytest.raises(FilterError):
        FilterLedger.from_objects(ledger.objects()[1:])  # a delta without its base


def test_capacity_is_enforced_by_the_owner() -> None:
    ledger = FilterLedger.bloom(outputs("cap", 10), suite=1, epoch=1, fp_rate=0.01, capacity=12)
    with pytest.raises(LocalProtocolError):
        ledger.add(outputs("more", 3))


def _bloom_objects() -> tuple[FilterLedger, bytes, bytes, bytes]:
    ledger = FilterLedger.bloom(outputs("neg", 100), suite=1, epoch=9, fp_rate=0.01, capacity=200)
    base = ledger.objects_since(bytes(16), 0)[0]
    d1 = ledger.add(outputs("neg2", 10))
    d2 = ledger.add(outputs("neg3", 10))
    return ledger, base, d1, d2


def test_replica_rejects_out_of_order_and_foreign_deltas() -> None:
    _, base, d1, d2 = _bloom_objects()
    r = FilterReplica(suite=1, epoch=9)
    with pytest.raises(FilterError):
        r.apply(d1)  # no base yet
    r.apply(base)
    with pytest.raises(FilterError):
        r.apply(d2)  # skips generation 2
    foreign = FilterLedger.bloom(outputs("x", 5), suite=1, epoch=9, fp_rate=0.01, capacity=200)
    foreign_delta = foreign.add(outputs("y", 2))  # generation 2, but of another filter
    with pytest.raises(FilterError):
        r.apply(foreign_delta)
    r2 = FilterReplica(suite=1, epoch=9)
    r2.apply(base)
    r2.apply(d1)
    with pytest.raises(FilterError):
        r2.apply(d1)  # the same generation twice


def test_replica_rejects_other_epoch_or_suite() -> None:
    _, base, _, _ = _bloom_objects()
    with pytest.raises(FilterError):
        FilterReplica(suite=1, epoch=10).apply(base)
    with pytest.raises(FilterError):
        FilterReplica(suite=2, epoch=9).apply(base)


def _patched(obj: bytes, offset: int, value: bytes) -> bytes:
    return obj[:offset] + value + obj[offset + len(value) :]


def test_filter_id_must_match_the_base() -> None:
    _, base, _, _ = _bloom_objects()
    with pytest.raises(FilterError):
        FilterReplica(suite=1, epoch=9).apply(_patched(base, 15, b"\xff" * 16))
    # Flipping a filter bit changes the derived id too.
    flipped = bytearray(base)
    flipped[filters.OBJECT_HEADER_LEN] ^= 1
    with pytest.raises(FilterError):
        decode_filter_object(bytes(flipped))


def _base_object(payload: bytes, *, m: int, k: int, count: int, capacity: int) -> bytes:
    obj = filters.FilterObject(
        kind=FilterKind.BLOOM_BASE,
        suite=1,
        epoch=9,
        filter_id=bytes(16),
        generation=1,
        count=count,
        capacity=capacity,
        m=m,
        k=k,
        seed=0,
        payload=payload,
    )
    fid = filters._derive_filter_id(obj)
    return filters._replace_id(obj, fid).encode()


def test_an_overfull_bloom_filter_is_refused() -> None:
    # All ones would make every query a hit.
    with pytest.raises(FilterError):
        FilterReplica(suite=1, epoch=9).apply(
            _base_object(b"\xff" * 128, m=1024, k=7, count=10, capacity=100)
        )
    ok = _base_object(bytes(128), m=1024, k=7, count=10, capacity=100)
    FilterReplica(suite=1, epoch=9).apply(ok)


def test_inconsistent_headers_are_filter_errors() -> None:
    _, base, d1, _ = _bloom_objects()
    with pytest.raises(FilterError):  # count above capacity
        decode_filter_object(_patched(base, 39, struct.pack(">Q", 10**6)))
    with pytest.raises(FilterError):  # m does not match the bits
        decode_filter_object(_patched(base, 55, struct.pack(">Q", 8)))
    with pytest.raises(FilterError):  # k = 0
        decode_filter_object(_patched(base, 63, b"\x00"))
    with pytest.raises(FilterError):  # base with generation 2
        decode_filter_object(_patched(base, 31, struct.pack(">Q", 2)))
    payload = d1[filters.OBJECT_HEADER_LEN :]
    if len(payload) >= 8:
        swapped = d1[: filters.OBJECT_HEADER_LEN] + payload[4:8] + payload[:4] + payload[8:]
        with pytest.raises(FilterError):  # positions not sorted
            decode_filter_object(swapped)
    beyond = d1[: filters.OBJECT_HEADER_LEN] + payload[:-4] + struct.pack(">I", 2**32 - 1)
    with pytest.raises(FilterError):  # position beyond m
        decode_filter_object(beyond)


def test_framing_errors_have_their_classes() -> None:
    _, base, _, _ = _bloom_objects()
    with pytest.raises(TruncatedMessageError):
        decode_filter_object(base[:50])
    with pytest.raises(TruncatedMessageError):
        decode_filter_object(base[:-1])
    with pytest.raises(TrailingDataError):
        decode_filter_object(base + b"\x00")
    with pytest.raises(UnknownVersionError):
        decode_filter_object(_patched(base, 3, b"\x02"))
    with pytest.raises(UnknownVersionError):
        decode_filter_object(_patched(base, 4, b"\x09"))
    with pytest.raises(OversizedMessageError):
        decode_filter_object(base, max_bytes=10)


def test_splitter_cuts_objects_across_chunks() -> None:
    _, base, d1, d2 = _bloom_objects()
    stream = base + d1 + d2
    splitter = FilterObjectSplitter()
    got: list[bytes] = []
    for i in range(0, len(stream), 37):
        got += splitter.feed(stream[i : i + 37])
    splitter.close()
    assert got == [base, d1, d2]
    assert splitter.objects == 3 and splitter.total_bytes == len(stream)
    partial = FilterObjectSplitter()
    partial.feed(base[:100])
    with pytest.raises(TruncatedMessageError):
        partial.close()
    with pytest.raises(OversizedMessageError):
        FilterObjectSplitter(max_bytes=100).feed(base)
    with pytest.raises(UnknownVersionError):
        FilterObjectSplitter().feed(b"XXX" + bytes(100))


@settings(max_examples=200)
@given(data=st.binary(max_size=300))
def test_fuzz_filter_objects(data: bytes) -> None:
    try:
        obj = decode_filter_object(data, max_bytes=1000)
    except (DecodeError, FilterError) as exc:
        assert exc.code
        return
    assert obj.encode() == data


@settings(max_examples=100)
@given(pos=st.integers(0, 10_000), value=st.integers(0, 255))
def test_fuzz_mutated_objects_never_crash_a_replica(pos: int, value: int) -> None:
    _, base, d1, _ = _bloom_objects()
    r = FilterReplica(suite=1, epoch=9)
    for obj in (base, d1):
        mutated = bytearray(obj)
        mutated[pos % len(mutated)] = value
        try:
            r.apply(bytes(mutated))
        except (DecodeError, FilterError) as exc:
            assert exc.code
