"""Published filters over OPRF outputs: Bloom and exact, base and delta (SPEC.md §7).

This module owns the filter data structures of filter mode and their binary encoding:

* :class:`BloomFilter`: ``m`` bits, ``k`` indices per output from MurmurHash3 x64-128,
  one 64-bit MurmurHash3 word per index (no double hashing: it degenerates when ``m`` is
  small or shares factors with the step), sized by ``m = -n ln p / (ln 2)^2``, ``k = m/n ln 2``;
* :class:`ExactFilter`: the sorted, truncated outputs themselves (false positives only from
  truncation);
* :class:`FilterLedger` (the owner): a base object and one delta object per generation, so a
  querier that holds generation ``g`` downloads only what was added since;
* :class:`FilterReplica` (the querier): applies objects, checks each against its header, and
  answers membership.

Its inputs are always 64-byte OPRF outputs ``F(k, y)``, never raw identifiers or match keys:
the functions refuse anything of another length. It must never do I/O, use randomness or
compute OPRF outputs itself (that is ``oprf.evaluate_many``, called by the sessions).

Every malformed or inconsistent object from a peer raises ``FilterError`` (a header that does
not add up, a delta for another filter or out of generation order, a filter fuller than its
count allows) or, for framing, ``TruncatedMessageError`` / ``TrailingDataError`` /
``OversizedMessageError`` / ``UnknownVersionError``.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import math
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

import mmh3
import numpy as np

from fiumatch.protocol.errors import (
    FilterError,
    LocalProtocolError,
    OversizedMessageError,
    TrailingDataError,
    TruncatedMessageError,
    UnknownVersionError,
)

__all__ = [
    "FILTER_ID_DST",
    "FILTER_MAGIC",
    "FILTER_VERSION",
    "INPUT_LEN",
    "OBJECT_HEADER_LEN",
    "BloomFilter",
    "ExactFilter",
    "FilterKind",
    "FilterLedger",
    "FilterObject",
    "FilterObjectSplitter",
    "FilterReplica",
    "bloom_indices",
    "bloom_parameters",
    "decode_filter_object",
    "exact_truncation",
    "set_bloom_positions",
]

INPUT_LEN: Final = 64
"""Every filter input is one RFC 9497 ristretto255-SHA512 OPRF output (Nh = 64 bytes)."""
FILTER_MAGIC: Final = b"FMF"
FILTER_VERSION: Final = 1
FILTER_ID_DST: Final = b"fiumatch-v1-filter-id"
FILTER_ID_LEN: Final = 16
MAX_K: Final = 64
MIN_M_BITS: Final = 512
"""Smallest Bloom filter built: below this the textbook bound underestimates the real rate."""
MAX_M_BITS: Final = 1 << 32
"""Bloom delta positions are u32, so ``m`` is at most 2^32 bits (512 MiB)."""

_OBJ = struct.Struct(">3sBBHQ16sQQQQBIQ")
OBJECT_HEADER_LEN: Final = _OBJ.size
assert OBJECT_HEADER_LEN == 76
_U32 = struct.Struct(">I")
_LN2: Final = math.log(2)


class FilterKind(IntEnum):
    """Byte 4 of a filter object."""

    BLOOM_BASE = 1
    BLOOM_DELTA = 2
    """Newly set bit positions as sorted u32s."""
    EXACT_BASE = 3
    EXACT_DELTA = 4
    BLOOM_DELTA_BITS = 5
    """Newly set bits as an ``m``-bit mask (used when positions would take more bytes)."""

    @property
    def is_bloom(self) -> bool:
        return self in (FilterKind.BLOOM_BASE, FilterKind.BLOOM_DELTA, FilterKind.BLOOM_DELTA_BITS)

    @property
    def is_base(self) -> bool:
        return self in (FilterKind.BLOOM_BASE, FilterKind.EXACT_BASE)


# ---------------------------------------------------------------------------------------------
# Sizing and hashing


def bloom_parameters(capacity: int, fp_rate: float) -> tuple[int, int]:
    """``(m, k)`` for ``capacity`` outputs at false-positive rate ``fp_rate``.

    ``m = ceil(-n ln p / (ln 2)^2)`` rounded up to a multiple of 8, at least ``MIN_M_BITS``;
    ``k = round(m/n ln 2)`` clamped to 1..64.
    """
    if capacity < 1:
        raise LocalProtocolError("filter capacity must be at least 1")
    if not 0.0 < fp_rate < 1.0:
        raise LocalProtocolError("false-positive rate must be in (0, 1)")
    m = math.ceil(-capacity * math.log(fp_rate) / (_LN2 * _LN2))
    m = max(MIN_M_BITS, -(-m // 8) * 8)
    if m > MAX_M_BITS:
        raise LocalProtocolError("Bloom filter would exceed 2^32 bits")
    k = max(1, min(MAX_K, round(m / capacity * _LN2)))
    return m, k


def exact_truncation(capacity: int, fp_rate: float) -> int:
    """Bytes kept of each output in an exact filter: ``ceil(log2(capacity / p) / 8)``, 4..64.

    A non-member then matches with probability at most ``capacity / 2^(8 L)`` ≤ ``p``.
    """
    if capacity < 1:
        raise LocalProtocolError("filter capacity must be at least 1")
    if not 0.0 < fp_rate < 1.0:
        raise LocalProtocolError("false-positive rate must be in (0, 1)")
    bits = math.log2(capacity) - math.log2(fp_rate)
    return max(4, min(INPUT_LEN, math.ceil(bits / 8)))


def _check_output(output: bytes) -> None:
    if len(output) != INPUT_LEN:
        raise LocalProtocolError("filter inputs must be 64-byte OPRF outputs")


def bloom_indices(output: bytes, m: int, k: int, seed: int) -> list[int]:
    """The ``k`` bit positions of ``output``.

    For ``j = 0, 1, ...``: ``(a, b)`` are the two halves of the 16-byte MurmurHash3_x64_128
    digest of ``output`` with seed ``(seed + j) mod 2^32``, each read as an unsigned 64-bit
    little-endian integer; positions ``2j`` and ``2j+1`` are ``a mod m`` and ``b mod m``. The
    first ``k`` positions are used. (Repeats are allowed; the bias of ``mod m`` is below
    ``m/2^64``.) The two words come straight from ``mmh3.mmh3_x64_128_utupledigest``, which
    returns exactly those halves (the test pins it against ``mmh3.hash_bytes``) without a
    bytes object and an unpack per call: this runs 15 times per key at fpr 1e-9.
    """
    _check_output(output)
    out: list[int] = []
    append = out.append
    words = _mmh3_words
    for j in range((k + 1) // 2):
        a, b = words(output, (seed + j) & 0xFFFFFFFF)
        append(a % m)
        append(b % m)
    if k & 1:
        out.pop()
    return out


_mmh3_words: Final[Callable[[bytes, int], tuple[int, int]]] = mmh3.mmh3_x64_128_utupledigest
"""The MurmurHash3_x64_128 digest of ``data`` with ``seed`` as two unsigned little-endian u64s."""


def set_bloom_positions(bits: bytearray, packed: bytes, k: int) -> int:
    """Set, in order, the bits of a batch of outputs given as their positions; return how many
    of those outputs set at least one new bit (what ``BloomFilter.add`` counts).

    ``packed`` holds ``k`` native-endian u32 positions per output, outputs in order (as
    ``bloom_indices`` gives them, each below ``8 * len(bits)``). The result equals calling
    ``BloomFilter.add`` on each output in turn: an output counts when one of its positions was
    clear before the batch and no earlier output of the batch has that position. NumPy does it
    at a fraction of a Python loop's cost per position (this is the one serial step of building
    an epoch's filter while the workers compute the outputs): a position whose bucket in a
    hash table of counts (8 buckets per position or more) holds it alone is touched by no other
    output, so its output counts; the rare output left in doubt is checked exactly.
    """
    positions = np.frombuffer(packed, dtype=np.uint32)
    if positions.size % k:
        raise LocalProtocolError("Bloom positions do not come k per output")
    if positions.size == 0:
        return 0
    if int(positions.max()) >= 8 * len(bits):
        raise LocalProtocolError("Bloom position beyond the filter")
    n = positions.size // k
    view = np.frombuffer(bits, dtype=np.uint8)
    byte = positions >> 3
    mask = np.left_shift(np.uint8(1), (positions & 7).astype(np.uint8))
    clear = (view[byte] & mask) == 0
    buckets = max(1 << 16, 1 << (8 * positions.size - 1).bit_length())
    hashed = positions & np.uint32(buckets - 1)
    counts = np.bincount(hashed[clear], minlength=buckets)
    alone = clear & (counts[hashed] == 1)
    fresh = alone.reshape(n, k).any(axis=1)
    for i in np.flatnonzero(~fresh & clear.reshape(n, k).any(axis=1)).tolist():
        earlier = positions[: i * k]
        own = positions[i * k : (i + 1) * k][clear[i * k : (i + 1) * k]]
        fresh[i] = bool(np.isin(own, earlier, invert=True).any())
    np.bitwise_or.at(view, byte, mask)
    return int(np.count_nonzero(fresh))


def _false_positive_rate(m: int, k: int, count: int) -> float:
    if count == 0:
        return 0.0
    return float((1.0 - math.exp(-k * count / m)) ** k)


# ---------------------------------------------------------------------------------------------
# Filters


class BloomFilter:
    """A Bloom filter of ``m`` bits (bit ``j`` is ``bits[j >> 3] >> (j & 7) & 1``)."""

    __slots__ = ("bits", "count", "k", "m", "seed")

    def __init__(self, *, m: int, k: int, seed: int = 0, bits: bytes | None = None) -> None:
        if m < 8 or m % 8 or m > MAX_M_BITS:
            raise LocalProtocolError("m must be a positive multiple of 8 up to 2^32")
        if not 1 <= k <= MAX_K:
            raise LocalProtocolError("k must be in 1..64")
        if not 0 <= seed <= 0xFFFFFFFF:
            raise LocalProtocolError("seed must fit in u32")
        self.m = m
        self.k = k
        self.seed = seed
        self.bits = bytearray(m // 8) if bits is None else bytearray(bits)
        if len(self.bits) != m // 8:
            raise LocalProtocolError("bits must be m/8 bytes")
        self.count = 0

    def add(self, output: bytes) -> list[int]:
        """Set the bits of ``output``; return the positions that were newly set.

        ``count`` grows only when some bit was new: an output whose bits were all set already
        (a duplicate, or a false positive) leaves the filter, and so its bound, unchanged.
        """
        new: list[int] = []
        bits = self.bits
        for j in bloom_indices(output, self.m, self.k, self.seed):
            mask = 1 << (j & 7)
            if not bits[j >> 3] & mask:
                bits[j >> 3] |= mask
                new.append(j)
        if new:
            self.count += 1
        return new

    def set_positions(self, positions: Iterable[int]) -> None:
        bits = self.bits
        for j in positions:
            bits[j >> 3] |= 1 << (j & 7)

    def __contains__(self, output: object) -> bool:
        if not isinstance(output, bytes) or len(output) != INPUT_LEN:
            return False
        bits, m, k, seed = self.bits, self.m, self.k, self.seed
        words = _mmh3_words
        for j in range((k + 1) // 2):  # bloom_indices, stopping at the first clear bit
            a, b = words(output, (seed + j) & 0xFFFFFFFF)
            a %= m
            if not bits[a >> 3] >> (a & 7) & 1:
                return False
            if 2 * j + 1 < k:
                b %= m
                if not bits[b >> 3] >> (b & 7) & 1:
                    return False
        return True

    def ones(self) -> int:
        """Number of set bits."""
        return int.from_bytes(self.bits, "little").bit_count()

    def false_positive_rate(self, count: int | None = None) -> float:
        """``(1 - e^{-k n / m})^k`` for ``n = count`` (default: outputs added)."""
        return _false_positive_rate(self.m, self.k, self.count if count is None else count)


class _Fixed:
    """A read-only sequence view of concatenated fixed-width records (for ``bisect``)."""

    __slots__ = ("_data", "_width")

    def __init__(self, data: bytes, width: int) -> None:
        self._data = data
        self._width = width

    def __len__(self) -> int:
        return len(self._data) // self._width

    def __getitem__(self, i: int) -> bytes:
        if not 0 <= i < len(self):
            raise IndexError(i)
        w = self._width
        return self._data[i * w : (i + 1) * w]

    def __iter__(self) -> Iterator[bytes]:
        w = self._width
        data = self._data
        for start in range(0, len(data), w):
            yield data[start : start + w]


class ExactFilter:
    """The sorted, distinct ``trunc``-byte prefixes of the outputs, concatenated."""

    __slots__ = ("data", "trunc")

    def __init__(self, *, trunc: int, data: bytes = b"") -> None:
        if not 1 <= trunc <= INPUT_LEN:
            raise LocalProtocolError("truncation must be 1..64 bytes")
        self.trunc = trunc
        self.data = data

    @property
    def count(self) -> int:
        return len(self.data) // self.trunc

    def __contains__(self, output: object) -> bool:
        if not isinstance(output, bytes) or len(output) != INPUT_LEN:
            return False
        return self.has_prefix(output[: self.trunc])

    def has_prefix(self, prefix: bytes) -> bool:
        seq = _Fixed(self.data, self.trunc)
        i = bisect.bisect_left(seq, prefix)
        return i < len(seq) and seq[i] == prefix

    def merged(self, sorted_entries: bytes) -> bytes:
        """The filter's entries merged with sorted distinct ``sorted_entries`` (deduplicated)."""
        merged = heapq.merge(_Fixed(self.data, self.trunc), _Fixed(sorted_entries, self.trunc))
        # One buffer, not a list of entries: a list costs ~45 bytes per (say 4-byte) entry,
        # so a peer's 30 MiB exact delta raised the querier's peak RSS by 2.1 GiB.
        out = bytearray()
        last = None
        for entry in merged:
            if entry != last:
                out += entry
                last = entry
        return bytes(out)

    def false_positive_rate(self, count: int | None = None) -> float:
        """Upper bound ``n / 2^(8 trunc)`` on the chance a non-member matches."""
        n = self.count if count is None else count
        return min(1.0, n / float(1 << (8 * self.trunc)))


def _sorted_prefixes(outputs: Iterable[bytes], trunc: int, exclude: ExactFilter | None) -> bytes:
    prefixes = set()
    for o in outputs:
        _check_output(o)
        p = o[:trunc]
        if exclude is None or not exclude.has_prefix(p):
            prefixes.add(p)
    return b"".join(sorted(prefixes))


# ---------------------------------------------------------------------------------------------
# Objects (the encoding)


@dataclass(frozen=True, kw_only=True, slots=True)
class FilterObject:
    """One decoded filter object (SPEC.md §7.4).

    ``count``: outputs in the filter once this object is applied (cumulative). ``m``, ``k``,
    ``seed``: Bloom parameters (exact: ``m = 0``, ``k`` = truncation bytes, ``seed = 0``).
    ``payload``: Bloom base: the ``m/8`` bit bytes; Bloom delta: sorted distinct u32 positions
    newly set; exact: sorted distinct ``k``-byte prefixes (base: all; delta: the new ones).
    """

    kind: FilterKind
    suite: int
    epoch: int
    filter_id: bytes
    generation: int
    count: int
    capacity: int
    m: int
    k: int
    seed: int
    payload: bytes

    def encode(self) -> bytes:
        return encode_filter_object(self)


def encode_filter_object(obj: FilterObject) -> bytes:
    header = _OBJ.pack(
        FILTER_MAGIC,
        FILTER_VERSION,
        int(obj.kind),
        obj.suite,
        obj.epoch,
        obj.filter_id,
        obj.generation,
        obj.count,
        obj.capacity,
        obj.m,
        obj.k,
        obj.seed,
        len(obj.payload),
    )
    return header + obj.payload


def _derive_filter_id(base: FilterObject) -> bytes:
    unbound = encode_filter_object(_replace_id(base, bytes(FILTER_ID_LEN)))
    digest = hashlib.sha256(FILTER_ID_DST + unbound).digest()
    return digest[:FILTER_ID_LEN]


def _replace_id(obj: FilterObject, filter_id: bytes) -> FilterObject:
    return FilterObject(
        kind=obj.kind,
        suite=obj.suite,
        epoch=obj.epoch,
        filter_id=filter_id,
        generation=obj.generation,
        count=obj.count,
        capacity=obj.capacity,
        m=obj.m,
        k=obj.k,
        seed=obj.seed,
        payload=obj.payload,
    )


def _strictly_increasing(data: bytes, width: int) -> bool:
    prev = None
    for i in range(0, len(data), width):
        cur = data[i : i + width]
        if prev is not None and cur <= prev:
            return False
        prev = cur
    return True


def decode_filter_object(data: bytes, *, max_bytes: int = 1 << 28) -> FilterObject:
    """Decode one filter object and check it is self-consistent (not yet against a replica)."""
    if len(data) < OBJECT_HEADER_LEN:
        raise TruncatedMessageError("filter object shorter than its header")
    (
        magic,
        version,
        kind,
        suite,
        epoch,
        filter_id,
        generation,
        count,
        capacity,
        m,
        k,
        seed,
        payload_len,
    ) = _OBJ.unpack_from(data)
    if magic != FILTER_MAGIC or version != FILTER_VERSION:
        raise UnknownVersionError("unknown filter magic or version")
    try:
        fkind = FilterKind(kind)
    except ValueError:
        raise UnknownVersionError("unknown filter kind") from None
    if payload_len > max_bytes:
        raise OversizedMessageError("filter object larger than allowed")
    if len(data) < OBJECT_HEADER_LEN + payload_len:
        raise TruncatedMessageError("filter object shorter than its payload length")
    if len(data) > OBJECT_HEADER_LEN + payload_len:
        raise TrailingDataError("bytes remain after the filter object")
    payload = bytes(data[OBJECT_HEADER_LEN:])
    if generation < 1 or (fkind.is_base and generation != 1):
        raise FilterError("bad generation")
    if count > capacity:
        raise FilterError("filter holds more outputs than its capacity")
    if fkind.is_bloom:
        if m < 8 or m % 8 or m > MAX_M_BITS or not 1 <= k <= MAX_K:
            raise FilterError("bad Bloom parameters")
        if fkind is FilterKind.BLOOM_BASE or fkind is FilterKind.BLOOM_DELTA_BITS:
            if payload_len != m // 8:
                raise FilterError("Bloom bits do not match m")
        else:
            if payload_len % 4 or not _strictly_increasing(payload, 4):
                raise FilterError("Bloom delta positions not sorted u32s")
            if payload and _U32.unpack_from(payload, payload_len - 4)[0] >= m:
                raise FilterError("Bloom delta position beyond m")
    else:
        if m != 0 or seed != 0 or not 1 <= k <= INPUT_LEN:
            raise FilterError("bad exact-filter parameters")
        if payload_len % k or not _strictly_increasing(payload, k):
            raise FilterError("exact filter entries not sorted and distinct")
        if fkind is FilterKind.EXACT_BASE and payload_len // k != count:
            raise FilterError("exact filter entries do not match its count")
    obj = FilterObject(
        kind=fkind,
        suite=suite,
        epoch=epoch,
        filter_id=filter_id,
        generation=generation,
        count=count,
        capacity=capacity,
        m=m,
        k=k,
        seed=seed,
        payload=payload,
    )
    if fkind.is_base and _derive_filter_id(obj) != filter_id:
        raise FilterError("filter id does not match the base filter")
    return obj


class FilterObjectSplitter:
    """Cut a byte stream of concatenated filter objects into whole objects as bytes arrive."""

    def __init__(self, *, max_bytes: int = 1 << 28) -> None:
        self._buf = bytearray()
        self._max = max_bytes
        self.total_bytes = 0
        self.objects = 0

    def feed(self, data: bytes) -> list[bytes]:
        self.total_bytes += len(data)
        if self.total_bytes > self._max:
            raise OversizedMessageError("filter stream larger than allowed")
        self._buf += data
        out: list[bytes] = []
        buf = self._buf
        pos = 0
        while len(buf) - pos >= OBJECT_HEADER_LEN:
            if bytes(buf[pos : pos + 3]) != FILTER_MAGIC:
                raise UnknownVersionError("unknown filter magic")
            (payload_len,) = struct.unpack_from(">Q", buf, pos + OBJECT_HEADER_LEN - 8)
            if payload_len > self._max:
                raise OversizedMessageError("filter object larger than allowed")
            end = pos + OBJECT_HEADER_LEN + payload_len
            if end > len(buf):
                break
            out.append(bytes(buf[pos:end]))
            pos = end
        if pos:
            del buf[:pos]
        self.objects += len(out)
        return out

    def close(self) -> None:
        if self._buf:
            raise TruncatedMessageError("filter stream ended inside an object")


# ---------------------------------------------------------------------------------------------
# Owner side


class FilterLedger:
    """The owner's filter for one (peer, epoch, suite): a base and its deltas, by generation.

    Build with :meth:`bloom` or :meth:`exact` from OPRF outputs; :meth:`add` records the
    outputs of keys added later in the epoch as a new generation. :meth:`objects_since` is what
    a querier holding ``(filter_id, generation)`` must download.
    """

    def __init__(self, base: FilterObject, live: BloomFilter | ExactFilter) -> None:
        self._objects: list[bytes] = [base.encode()]
        self._base = base
        self._live = live
        self.count = base.count

    @property
    def filter_id(self) -> bytes:
        return self._base.filter_id

    @property
    def generation(self) -> int:
        return len(self._objects)

    @property
    def capacity(self) -> int:
        return self._base.capacity

    @property
    def suite(self) -> int:
        return self._base.suite

    @property
    def epoch(self) -> int:
        return self._base.epoch

    @property
    def kind(self) -> FilterKind:
        return self._base.kind

    @classmethod
    def bloom(
        cls,
        outputs: Iterable[bytes],
        *,
        suite: int,
        epoch: int,
        fp_rate: float,
        capacity: int,
        seed: int = 0,
    ) -> FilterLedger:
        """A Bloom ledger sized for ``capacity`` outputs at ``fp_rate``."""
        m, k = bloom_parameters(capacity, fp_rate)
        bf = BloomFilter(m=m, k=k, seed=seed)
        for o in outputs:
            bf.add(o)
        if bf.count > capacity:
            raise LocalProtocolError("more outputs than the filter capacity")
        base = FilterObject(
            kind=FilterKind.BLOOM_BASE,
            suite=suite,
            epoch=epoch,
            filter_id=bytes(FILTER_ID_LEN),
            generation=1,
            count=bf.count,
            capacity=capacity,
            m=m,
            k=k,
            seed=seed,
            payload=bytes(bf.bits),
        )
        return cls(_replace_id(base, _derive_filter_id(base)), bf)

    @classmethod
    def exact(
        cls, outputs: Iterable[bytes], *, suite: int, epoch: int, fp_rate: float, capacity: int
    ) -> FilterLedger:
        """An exact ledger whose truncation keeps false positives below ``fp_rate``."""
        trunc = exact_truncation(capacity, fp_rate)
        data = _sorted_prefixes(outputs, trunc, None)
        ef = ExactFilter(trunc=trunc, data=data)
        if ef.count > capacity:
            raise LocalProtocolError("more outputs than the filter capacity")
        base = FilterObject(
            kind=FilterKind.EXACT_BASE,
            suite=suite,
            epoch=epoch,
            filter_id=bytes(FILTER_ID_LEN),
            generation=1,
            count=ef.count,
            capacity=capacity,
            m=0,
            k=trunc,
            seed=0,
            payload=data,
        )
        return cls(_replace_id(base, _derive_filter_id(base)), ef)

    @classmethod
    def from_objects(cls, objects: Sequence[bytes]) -> FilterLedger:
        """Restore a ledger from its encoded objects (base first), e.g. after a restart.

        Every object is checked as a querier would check it (``FilterError`` and framing
        errors); the restored ledger has the same ``filter_id``, generation and count.
        """
        if not objects:
            raise LocalProtocolError("a ledger needs at least its base object")
        first = decode_filter_object(objects[0])
        replica = FilterReplica(suite=first.suite, epoch=first.epoch)
        for obj in objects:
            replica.apply(obj)
        assert replica._base is not None and replica._live is not None
        ledger = cls(replica._base, replica._live)
        ledger._objects = [bytes(o) for o in objects]
        ledger.count = replica.count
        if isinstance(replica._live, BloomFilter):
            replica._live.count = replica.count
        return ledger

    def objects(self) -> list[bytes]:
        """Every encoded object, base first (what to persist)."""
        return list(self._objects)

    def add(self, outputs: Iterable[bytes]) -> bytes:
        """Add outputs as the next generation; return its encoded delta object.

        Raises ``LocalProtocolError`` if the filter would exceed its capacity (build a new
        filter for the next epoch instead: its false-positive bound no longer holds).
        """
        live = self._live
        if isinstance(live, BloomFilter):
            positions: set[int] = set()
            added = 0
            bits = live.bits
            for o in outputs:
                new = [
                    j
                    for j in bloom_indices(o, live.m, live.k, live.seed)
                    if not bits[j >> 3] >> (j & 7) & 1 and j not in positions
                ]
                if new:
                    added += 1
                    positions.update(new)
            count = self.count + added
            if 4 * len(positions) <= live.m // 8:
                payload = b"".join(_U32.pack(p) for p in sorted(positions))
                kind = FilterKind.BLOOM_DELTA
            else:
                mask = BloomFilter(m=live.m, k=live.k, seed=live.seed)
                mask.set_positions(positions)
                payload = bytes(mask.bits)
                kind = FilterKind.BLOOM_DELTA_BITS
        else:
            payload = _sorted_prefixes(outputs, live.trunc, live)
            count = live.count + len(payload) // live.trunc
            kind = FilterKind.EXACT_DELTA
        if count > self.capacity:
            raise LocalProtocolError("filter capacity exceeded; build a new filter")
        if isinstance(live, ExactFilter):
            live.data = live.merged(payload)
        else:
            live.set_positions(positions)
            live.count = count
        base = self._base
        delta = FilterObject(
            kind=kind,
            suite=base.suite,
            epoch=base.epoch,
            filter_id=base.filter_id,
            generation=self.generation + 1,
            count=count,
            capacity=base.capacity,
            m=base.m,
            k=base.k,
            seed=base.seed,
            payload=payload,
        )
        encoded = delta.encode()
        self._objects.append(encoded)
        self.count = count
        return encoded

    def objects_since(self, filter_id: bytes, generation: int) -> list[bytes]:
        """Encoded objects a querier holding ``(filter_id, generation)`` needs, in order."""
        if filter_id == self.filter_id and 1 <= generation <= self.generation:
            return self._objects[generation:]
        return list(self._objects)

    def contains(self, output: bytes) -> bool:
        """Owner-side membership (tests and diagnostics)."""
        return output in self._live


# ---------------------------------------------------------------------------------------------
# Querier side


class FilterReplica:
    """The querier's copy of one owner's filter for one (suite, epoch)."""

    def __init__(self, *, suite: int, epoch: int) -> None:
        self.suite = suite
        self.epoch = epoch
        self.filter_id = bytes(FILTER_ID_LEN)
        self.generation = 0
        self.count = 0
        self._base: FilterObject | None = None
        self._live: BloomFilter | ExactFilter | None = None

    @property
    def kind(self) -> FilterKind | None:
        return None if self._base is None else self._base.kind

    def copy(self) -> FilterReplica:
        """An independent replica in the same state: applying objects to one never changes the
        other. Cheap: the Bloom bits (a bytearray, updated in place) are copied; exact
        prefixes and the base object are immutable and shared."""
        other = FilterReplica(suite=self.suite, epoch=self.epoch)
        other.filter_id = self.filter_id
        other.generation = self.generation
        other.count = self.count
        other._base = self._base
        live = self._live
        if isinstance(live, BloomFilter):
            twin = BloomFilter(m=live.m, k=live.k, seed=live.seed, bits=bytes(live.bits))
            twin.count = live.count
            other._live = twin
        elif isinstance(live, ExactFilter):
            other._live = ExactFilter(trunc=live.trunc, data=bytes(live.data))
        return other

    def apply(self, data: bytes, *, max_bytes: int = 1 << 28) -> FilterObject:
        """Decode, check and apply one encoded filter object; raise ``FilterError`` if it does
        not fit (another suite or epoch, a delta for another filter or generation)."""
        obj = decode_filter_object(data, max_bytes=max_bytes)
        if obj.suite != self.suite or obj.epoch != self.epoch:
            raise FilterError("filter object for another suite or epoch")
        if obj.kind.is_base:
            live: BloomFilter | ExactFilter
            if obj.kind is FilterKind.BLOOM_BASE:
                live = BloomFilter(m=obj.m, k=obj.k, seed=obj.seed, bits=obj.payload)
                _check_fill(live, obj.count)
            else:
                live = ExactFilter(trunc=obj.k, data=obj.payload)
            self._base, self._live = obj, live
        else:
            base, live_ = self._base, self._live
            if base is None or live_ is None or obj.filter_id != self.filter_id:
                raise FilterError("delta for a filter this replica does not hold")
            if obj.generation != self.generation + 1:
                raise FilterError("delta out of generation order")
            if (
                obj.kind.is_bloom != base.kind.is_bloom
                or (obj.m, obj.k, obj.seed) != (base.m, base.k, base.seed)
                or obj.capacity != base.capacity
            ):
                raise FilterError("delta parameters differ from the base")
            if obj.count < self.count:
                raise FilterError("delta count goes backwards")
            if isinstance(live_, BloomFilter) and obj.kind is FilterKind.BLOOM_DELTA_BITS:
                old = int.from_bytes(live_.bits, "little")
                merged = old | int.from_bytes(obj.payload, "little")
                _check_fill(live_, obj.count, extra=merged.bit_count() - old.bit_count())
                live_.bits = bytearray(merged.to_bytes(len(live_.bits), "little"))
            elif isinstance(live_, BloomFilter):
                # Two lazy passes over the u32s, not a list of them: a list costs ~40 bytes per
                # 4-byte position, so a peer's 30 MiB delta took 350 MiB (256 MiB: ~3 GiB).
                bits = live_.bits
                fresh = sum(
                    1 for (j,) in _U32.iter_unpack(obj.payload) if not bits[j >> 3] >> (j & 7) & 1
                )
                _check_fill(live_, obj.count, extra=fresh)
                live_.set_positions(j for (j,) in _U32.iter_unpack(obj.payload))
            else:
                data = live_.merged(obj.payload)
                added = len(data) // live_.trunc - live_.count
                if added != len(obj.payload) // obj.k or live_.count + added != obj.count:
                    raise FilterError("exact delta entries do not match its count")
                live_.data = data
        self.filter_id = obj.filter_id
        self.generation = obj.generation
        self.count = obj.count
        return obj

    def __contains__(self, output: object) -> bool:
        return self._live is not None and output in self._live

    def false_positive_rate(self) -> float:
        """The false-positive bound for one non-member at the current count."""
        if self._live is None:
            return 0.0
        return self._live.false_positive_rate(self.count)


def _check_fill(bf: BloomFilter, count: int, *, extra: int = 0) -> None:
    """Refuse a Bloom filter with more set bits than ``count`` outputs could plausibly set.

    A malicious owner could otherwise publish a filter of all ones, turning every query into a
    hit. Bound: at most ``k·count`` bits, and at most the expected fill
    ``m (1 - e^{-k count / m})`` plus six standard deviations (≤ √m / 2 each) plus ``k``.
    """
    ones = bf.ones() + extra
    expected = bf.m * (1.0 - math.exp(-bf.k * count / bf.m))
    if ones > bf.k * count or ones > expected + 3.0 * math.sqrt(bf.m) + bf.k:
        raise FilterError("Bloom filter is fuller than its count allows")
