"""The audit bundle: a self-contained, versioned file of entries, checkpoints, proofs and
receipts that an auditor verifies offline (docs/AUDIT.md, "Bundle format").

This module owns the container's bytes: writing (:class:`BundleWriter`, and
:func:`export_bundle`, which interleaves a node's entries, checkpoints and consistency proofs
in the order the verifier expects), framing (:func:`iter_records`) and decoding
(:func:`decode_bundle`). Judging the contents is :mod:`fiumatch.auditlog.verify`'s job.

Layout, version 1 (integers big-endian)::

    "FIUAUDIT" u8 version=1
    record*:  u8 kind  u32 length  u8 payload[length]  u32 crc32(kind || length || payload)

    kind 1 HEADER       u16 origin_length, origin, u64 start, u8 n, n x 32-byte frontier
    kind 2 ENTRY        the canonical entry bytes (fiumatch.auditlog.entry)
    kind 3 CHECKPOINT   a signed checkpoint note (UTF-8)
    kind 4 CONSISTENCY  u64 size1, u64 size2, u8 n, n x 32-byte proof hashes
    kind 5 RECEIPT      u64 entry index (ours), a receipt from a peer (checkpoint.Receipt)
    kind 6 END          u64 entries, u32 checkpoints, u32 proofs, u32 receipts

The CRC catches accidental damage and pins it to one record; it is not a defence against a
forger, who is caught by the signed checkpoints instead. It must never do I/O: callers hand
in bytes (a ``bytes`` object or an ``mmap``) and write out the chunks it yields.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum
from itertools import pairwise
from typing import Final

from fiumatch.auditlog.checkpoint import Receipt, peek_checkpoint
from fiumatch.auditlog.entry import Entry, decode_entry
from fiumatch.auditlog.errors import (
    AuditLogError,
    BadEntryError,
    BundleFormatError,
    BundleTruncatedError,
    EntryError,
    ExportError,
)
from fiumatch.auditlog.merkle import HASH_SIZE, CompactRange, GetNode
from fiumatch.auditlog.proofs import consistency_proof

__all__ = [
    "BUNDLE_MAGIC",
    "BUNDLE_VERSION",
    "Bundle",
    "BundleEnd",
    "BundleHeader",
    "BundleWriter",
    "ConsistencyRecord",
    "HeldReceipt",
    "RawRecord",
    "RecordKind",
    "decode_bundle",
    "export_bundle",
    "iter_records",
]

BUNDLE_MAGIC: Final = b"FIUAUDIT"
BUNDLE_VERSION: Final = 1
_PREAMBLE: Final = BUNDLE_MAGIC + bytes([BUNDLE_VERSION])
_REC_HEAD = struct.Struct(">BI")
_CRC = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_PROOF_HEAD = struct.Struct(">QQB")
_END = struct.Struct(">QIII")
_MAX_RECORD: Final = 1 << 24


class RecordKind(IntEnum):
    HEADER = 1
    ENTRY = 2
    CHECKPOINT = 3
    CONSISTENCY = 4
    RECEIPT = 5
    END = 6


@dataclass(frozen=True, slots=True)
class BundleHeader:
    """The log's origin and where the bundle starts: ``start`` leaves precede it, summarised
    by their compact range ``frontier`` (empty when ``start`` is 0)."""

    origin: str
    start: int = 0
    frontier: tuple[bytes, ...] = ()

    def encode(self) -> bytes:
        origin = self.origin.encode("utf-8")
        if not origin or len(origin) > 0xFFFF or len(self.frontier) > 64:
            raise ExportError("origin or frontier out of range")
        return (
            struct.pack(">H", len(origin)) + origin + _U64.pack(self.start)
            + bytes([len(self.frontier)]) + b"".join(self.frontier)
        )

    @classmethod
    def decode(cls, payload: bytes) -> BundleHeader:
        loc = "bundle header"
        if len(payload) < 2:
            raise BundleFormatError("header too short", location=loc)
        (n,) = struct.unpack_from(">H", payload)
        if len(payload) < 2 + n + 9:
            raise BundleFormatError("header too short", location=loc)
        try:
            origin = payload[2 : 2 + n].decode("utf-8")
        except UnicodeDecodeError:
            raise BundleFormatError("origin is not UTF-8", location=loc) from None
        (start,) = _U64.unpack_from(payload, 2 + n)
        count = payload[2 + n + 8]
        hashes = payload[2 + n + 9 :]
        if len(hashes) != HASH_SIZE * count or not origin:
            raise BundleFormatError("header frontier or origin malformed", location=loc)
        frontier = tuple(hashes[i : i + HASH_SIZE] for i in range(0, len(hashes), HASH_SIZE))
        if count != start.bit_count():
            raise BundleFormatError(
                "frontier must hold one hash per set bit of start", location=loc,
                expected=start.bit_count(), found=count,
            )
        return cls(origin, start, frontier)


@dataclass(frozen=True, slots=True)
class ConsistencyRecord:
    """The consistency proof between two successive checkpoints of the bundle."""

    size1: int
    size2: int
    proof: tuple[bytes, ...]

    def encode(self) -> bytes:
        if len(self.proof) > 255:
            raise ExportError("proof too long")
        return _PROOF_HEAD.pack(self.size1, self.size2, len(self.proof)) + b"".join(self.proof)

    @classmethod
    def decode(cls, payload: bytes, location: str) -> ConsistencyRecord:
        if len(payload) < _PROOF_HEAD.size:
            raise BundleFormatError("consistency record too short", location=location)
        size1, size2, count = _PROOF_HEAD.unpack_from(payload)
        hashes = payload[_PROOF_HEAD.size :]
        if len(hashes) != HASH_SIZE * count:
            raise BundleFormatError("consistency record length does not match its count",
                                    location=location)
        proof = tuple(hashes[i : i + HASH_SIZE] for i in range(0, len(hashes), HASH_SIZE))
        return cls(size1, size2, proof)


@dataclass(frozen=True, slots=True)
class HeldReceipt:
    """A receipt a peer gave us, with the index of our own entry for that exchange."""

    entry_index: int
    receipt: Receipt

    def encode(self) -> bytes:
        return _U64.pack(self.entry_index) + self.receipt.encode()

    @classmethod
    def decode(cls, payload: bytes, location: str) -> HeldReceipt:
        if len(payload) < 8:
            raise BundleFormatError("receipt record too short", location=location)
        try:
            receipt = Receipt.decode(payload[8:])
        except AuditLogError as exc:
            raise BundleFormatError(f"receipt malformed: {exc.reason}",
                                    location=location) from exc
        return cls(_U64.unpack_from(payload)[0], receipt)


@dataclass(frozen=True, slots=True)
class BundleEnd:
    """The record counts, so a bundle cut at a record boundary is noticed."""

    entries: int
    checkpoints: int
    proofs: int
    receipts: int

    def encode(self) -> bytes:
        return _END.pack(self.entries, self.checkpoints, self.proofs, self.receipts)

    @classmethod
    def decode(cls, payload: bytes) -> BundleEnd:
        if len(payload) != _END.size:
            raise BundleFormatError("end record has the wrong length", location="bundle end")
        return cls(*_END.unpack(payload))


def _record(kind: RecordKind, payload: bytes) -> bytes:
    if len(payload) > _MAX_RECORD:
        raise ExportError("record too large", kind=kind.name.lower())
    head = _REC_HEAD.pack(kind, len(payload))
    return head + payload + _CRC.pack(zlib.crc32(payload, zlib.crc32(head)))


class BundleWriter:
    """Writes a bundle record by record; each method returns the bytes to append.

    Order: :meth:`begin`, then entries/checkpoints/proofs interleaved in log order, then
    receipts, then :meth:`end`. The writer enforces the phases and counts; the verifier
    judges the rest, so :func:`export_bundle` is the recipe to use.
    """

    def __init__(self, header: BundleHeader) -> None:
        self._header = header
        self._phase = 0  # 0 before begin, 1 log records, 2 receipts, 3 ended
        self._counts = [0, 0, 0, 0]

    def begin(self) -> bytes:
        self._need(0)
        self._phase = 1
        return _PREAMBLE + _record(RecordKind.HEADER, self._header.encode())

    def entry(self, data: bytes) -> bytes:
        self._need(1)
        self._counts[0] += 1
        return _record(RecordKind.ENTRY, data)

    def checkpoint(self, note: bytes | str) -> bytes:
        self._need(1)
        self._counts[1] += 1
        return _record(RecordKind.CHECKPOINT, note.encode() if isinstance(note, str) else note)

    def consistency(self, record: ConsistencyRecord) -> bytes:
        self._need(1)
        self._counts[2] += 1
        return _record(RecordKind.CONSISTENCY, record.encode())

    def receipt(self, held: HeldReceipt) -> bytes:
        if self._phase == 1:
            self._phase = 2
        self._need(2)
        self._counts[3] += 1
        return _record(RecordKind.RECEIPT, held.encode())

    def end(self) -> bytes:
        if self._phase not in (1, 2):
            raise ExportError("end() before begin() or twice")
        self._phase = 3
        return _record(RecordKind.END, BundleEnd(*self._counts).encode())

    def _need(self, phase: int) -> None:
        if self._phase != phase:
            raise ExportError("bundle records written out of order")


def export_bundle(
    *,
    origin: str,
    entries: Iterable[bytes],
    checkpoints: Sequence[bytes | str],
    get_node: GetNode,
    start: int = 0,
    receipts: Iterable[HeldReceipt] = (),
) -> Iterator[bytes]:
    """Yield the bundle of ``entries`` (canonical bytes of leaves ``start``, ``start+1``, ...)
    with ``checkpoints`` (signed notes, ascending sizes), consistency proofs between
    successive checkpoints (read through ``get_node``) and the receipts held.

    The last checkpoint must cover the last entry, and if ``start > 0`` the first must be at
    ``start`` (it authenticates the frontier). :class:`ExportError` otherwise: such a bundle
    would not verify.
    """
    sized = []
    for note in checkpoints:
        raw = note.encode() if isinstance(note, str) else bytes(note)
        sized.append((peek_checkpoint(raw).size, raw))
    if not sized:
        raise ExportError("a bundle needs at least one checkpoint")
    if any(b[0] <= a[0] for a, b in pairwise(sized)):
        raise ExportError("checkpoints must have strictly ascending sizes")
    if sized[0][0] < start or (start and sized[0][0] != start):
        raise ExportError("the first checkpoint must be at the bundle's start",
                          start=start, first=sized[0][0])
    frontier = CompactRange.from_store(start, get_node).hashes if start else ()
    writer = BundleWriter(BundleHeader(origin, start, frontier))
    yield writer.begin()
    pending = iter(sized)
    nxt = next(pending, None)
    previous: int | None = None

    def emit_checkpoints(size: int) -> Iterator[bytes]:
        nonlocal nxt, previous
        while nxt is not None and nxt[0] == size:
            yield writer.checkpoint(nxt[1])
            if previous is not None:
                proof = consistency_proof(previous, size, get_node)
                yield writer.consistency(ConsistencyRecord(previous, size, tuple(proof)))
            previous = size
            nxt = next(pending, None)

    index = start
    for data in entries:
        yield from emit_checkpoints(index)
        if len(data) < 11 or _U64.unpack_from(data, 3)[0] != index:
            raise ExportError("entries must be consecutive leaves from start", index=index)
        yield writer.entry(data)
        index += 1
    yield from emit_checkpoints(index)
    if nxt is not None or previous != index:
        raise ExportError("the last checkpoint must cover exactly the last entry",
                          entries_end=index)
    for held in receipts:
        yield writer.receipt(held)
    yield writer.end()


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One framed record: its position, kind byte and payload (CRC already checked)."""

    ordinal: int
    offset: int
    kind: int
    payload: bytes


def iter_records(data: bytes | bytearray | memoryview) -> Iterator[RawRecord]:
    """Frame the bundle: check magic, version, lengths, CRCs and the END record's place.

    Raises :class:`BundleFormatError` / :class:`BundleTruncatedError` naming the record
    (``"record N"``, counting the header as record 0) or ``"bundle header"``/``"bundle end"``.
    The END record is yielded last; bytes after it are refused.
    """
    view = memoryview(data)
    total = len(view)
    if total < len(_PREAMBLE) or bytes(view[: len(BUNDLE_MAGIC)]) != BUNDLE_MAGIC:
        raise BundleFormatError("not an audit bundle (bad magic)", location="bundle header")
    if view[len(BUNDLE_MAGIC)] != BUNDLE_VERSION:
        raise BundleFormatError("unknown bundle version", location="bundle header",
                                expected=BUNDLE_VERSION, found=view[len(BUNDLE_MAGIC)])
    offset = len(_PREAMBLE)
    ordinal = 0
    unpack_head = _REC_HEAD.unpack_from
    unpack_crc = _CRC.unpack_from
    crc32 = zlib.crc32
    while offset < total:
        where = f"record {ordinal}"
        if offset + 5 > total:
            raise BundleTruncatedError("bundle ends inside a record header", location=where,
                                       offset=offset)
        kind, length = unpack_head(view, offset)
        stop = offset + 5 + length
        if length > _MAX_RECORD or stop + 4 > total:
            raise BundleTruncatedError("record runs past the end (truncated or corrupt)",
                                       location=where, offset=offset)
        payload = bytes(view[offset + 5 : stop])
        (crc,) = unpack_crc(view, stop)
        computed = crc32(payload, crc32(view[offset : offset + 5]))
        if crc != computed:
            raise BundleFormatError("record checksum mismatch (damaged bytes)", location=where,
                                    expected=f"{computed:08x}", found=f"{crc:08x}",
                                    offset=offset)
        if kind not in _KINDS:
            raise BundleFormatError("unknown record kind", location=where, found=kind)
        if (ordinal == 0) != (kind == RecordKind.HEADER):
            raise BundleFormatError("the header must be the first record and only there",
                                    location=where)
        yield RawRecord(ordinal, offset, kind, payload)
        offset = stop + 4
        ordinal += 1
        if kind == RecordKind.END:
            if offset != total:
                raise BundleFormatError("bytes after the end record", location="bundle end",
                                        offset=offset)
            return
    raise BundleTruncatedError("bundle has no end record", location="bundle end",
                               offset=offset)


_KINDS: Final = frozenset(int(k) for k in RecordKind)


@dataclass(frozen=True, slots=True)
class Bundle:
    """A decoded bundle (structure only: use :func:`~fiumatch.auditlog.verify.verify` to
    judge it). ``entries[i]`` is leaf ``header.start + i``; ``entry_bytes`` are what the
    tree hashed."""

    header: BundleHeader
    entries: tuple[Entry, ...]
    entry_bytes: tuple[bytes, ...]
    checkpoints: tuple[bytes, ...]
    consistency: tuple[ConsistencyRecord, ...]
    receipts: tuple[HeldReceipt, ...]
    end: BundleEnd

    @property
    def origin(self) -> str:
        return self.header.origin

    @property
    def start(self) -> int:
        return self.header.start

    @property
    def size(self) -> int:
        """The index one past the last entry."""
        return self.header.start + len(self.entries)


def decode_bundle(data: bytes | bytearray | memoryview) -> Bundle:
    """Decode every record; entries are fully checked against the entry schema."""
    header: BundleHeader | None = None
    entries: list[Entry] = []
    raw_entries: list[bytes] = []
    checkpoints: list[bytes] = []
    proofs: list[ConsistencyRecord] = []
    receipts: list[HeldReceipt] = []
    end: BundleEnd | None = None
    for rec in iter_records(data):
        if rec.kind == RecordKind.HEADER:
            header = BundleHeader.decode(rec.payload)
        elif rec.kind == RecordKind.ENTRY:
            assert header is not None
            index = header.start + len(entries)
            try:
                entries.append(decode_entry(rec.payload))
            except EntryError as exc:
                raise BadEntryError(exc.reason, location=f"entry {index}",
                                    **exc.details) from exc
            raw_entries.append(rec.payload)
        elif rec.kind == RecordKind.CHECKPOINT:
            checkpoints.append(rec.payload)
        elif rec.kind == RecordKind.CONSISTENCY:
            proofs.append(ConsistencyRecord.decode(rec.payload, f"proof {len(checkpoints) - 1}"))
        elif rec.kind == RecordKind.RECEIPT:
            receipts.append(HeldReceipt.decode(rec.payload, f"receipt {len(receipts)}"))
        else:
            end = BundleEnd.decode(rec.payload)
    assert header is not None and end is not None  # iter_records guarantees both
    return Bundle(header, tuple(entries), tuple(raw_entries), tuple(checkpoints),
                  tuple(proofs), tuple(receipts), end)
