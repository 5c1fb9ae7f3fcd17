"""The fiumatch wire format: frames, message bodies and chunked element streams (SPEC.md §5).

This module owns the byte layout of every protocol message and nothing else. A *frame* is::

    u32 length || header (35 bytes) || body

with all integers big-endian. The header binds the frame to its session, mode, suite, epoch and
position (``seq``) in the sender's stream of frames. Large sets never travel as one message: they
are cut into ``*_CHUNK`` frames of at most ``Limits.max_chunk_elements`` elements, closed by an
``*_END`` frame carrying the total count, which the receiver verifies
(:class:`ElementStreamDecoder`).

It must never do group arithmetic, I/O, or keep session state: whether a 32-byte element is a
valid ristretto255 point, or whether a frame is expected now, is decided by
``fiumatch.protocol.sessions``. Every function on peer bytes raises a
:class:`~fiumatch.protocol.errors.DecodeError` subclass, never another exception.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from fiumatch.protocol.errors import (
    DecodeError,
    LocalProtocolError,
    OversizedMessageError,
    TrailingDataError,
    TruncatedMessageError,
    UnknownVersionError,
)

__all__ = [
    "ELEMENT_WIDTH",
    "FRAME_PREFIX_LEN",
    "HEADER_LEN",
    "MAGIC",
    "NO_FILTER_ID",
    "PROOF_LEN",
    "SESSION_ID_LEN",
    "SIGNATURE_LEN",
    "TAG_LEN",
    "WIRE_VERSION",
    "Body",
    "ElementChunk",
    "ElementStreamDecoder",
    "FilterChunk",
    "FilterEnd",
    "Finish",
    "Frame",
    "FrameReader",
    "Header",
    "Hello",
    "HelloAck",
    "Limits",
    "Mode",
    "MsgType",
    "StreamEnd",
    "Suite",
    "decode_frame",
    "element_width",
    "encode_frame",
    "iter_chunks",
    "split_elements",
]

MAGIC: Final = b"FM"
WIRE_VERSION: Final = 1
SESSION_ID_LEN: Final = 16
FRAME_PREFIX_LEN: Final = 4
HEADER_LEN: Final = 35
ELEMENT_WIDTH: Final = 32
"""Bytes of one serialised ristretto255 element."""
TAG_LEN: Final = 16
"""Bytes of one comparison tag (mutual REVEAL stream, cardinality SET stream)."""
PROOF_LEN: Final = 64
"""Bytes of one RFC 9497 batched DLEQ proof (two scalars)."""
SIGNATURE_LEN: Final = 64
"""Bytes of one Ed25519 signature."""
PUBLIC_KEY_LEN: Final = 32
FILTER_ID_LEN: Final = 16
NO_FILTER_ID: Final = bytes(FILTER_ID_LEN)
"""The filter id a querier that holds no filter sends."""

_HEADER = struct.Struct(">2sBBBHQ16sI")
assert _HEADER.size == HEADER_LEN
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_U64_MAX: Final = (1 << 64) - 1
_U32_MAX: Final = (1 << 32) - 1


class Mode(IntEnum):
    """The PSI mode of a session (header byte 4)."""

    FILTER = 1
    MUTUAL = 2
    CARDINALITY = 3


class Suite(IntEnum):
    """The ciphersuite of a session (header bytes 5-6).

    Both use RFC 9497 ``ristretto255-SHA512``; they differ in the RFC 9497 mode (and so in
    its ``contextString``), which changes every OPRF output. ``VOPRF`` is only meaningful in
    filter mode; mutual and cardinality sessions use ``OPRF``.
    """

    OPRF_RISTRETTO255_SHA512 = 0x0001
    VOPRF_RISTRETTO255_SHA512 = 0x0002


class MsgType(IntEnum):
    """The message type (header byte 3). Which side sends which is in ``sessions._state``."""

    HELLO = 0x01
    HELLO_ACK = 0x02
    FILTER_CHUNK = 0x10
    FILTER_END = 0x11
    QUERY_CHUNK = 0x20
    QUERY_END = 0x21
    EVAL_CHUNK = 0x22
    EVAL_END = 0x23
    SET_CHUNK = 0x24
    SET_END = 0x25
    REVEAL_CHUNK = 0x26
    REVEAL_END = 0x27
    FINISH = 0x30
    FINISH_ACK = 0x31


_CHUNK_TYPES: Final = frozenset(
    {MsgType.QUERY_CHUNK, MsgType.EVAL_CHUNK, MsgType.SET_CHUNK, MsgType.REVEAL_CHUNK}
)
_END_TYPES: Final = frozenset(
    {MsgType.QUERY_END, MsgType.EVAL_END, MsgType.SET_END, MsgType.REVEAL_END}
)


def element_width(msg_type: MsgType, mode: Mode) -> int:
    """Bytes per element in an element-chunk frame of ``msg_type`` in ``mode``.

    Group elements everywhere, except comparison tags (``TAG_LEN``) in the mutual REVEAL stream
    and the cardinality SET stream.
    """
    if msg_type is MsgType.REVEAL_CHUNK:
        return TAG_LEN
    if msg_type is MsgType.SET_CHUNK and mode is Mode.CARDINALITY:
        return TAG_LEN
    if msg_type in _CHUNK_TYPES:
        return ELEMENT_WIDTH
    raise LocalProtocolError("not an element-chunk message type")


@dataclass(frozen=True, kw_only=True, slots=True)
class Limits:
    """Resource limits of one side. Anything a peer sends above them is ``OversizedMessageError``.

    ``chunk_elements`` and ``filter_chunk_bytes`` are what this side *sends*; the ``max_*``
    fields bound what it *accepts*. Peers agree on limits out of band (the agreement);
    a sender must not exceed the receiver's.
    """

    max_elements: int = 1 << 20
    """Most elements in one stream (and most a session's HELLO may announce)."""
    max_chunk_elements: int = 1 << 14
    chunk_elements: int = 1 << 12
    max_frame_bytes: int = 1 << 23
    max_filter_bytes: int = 1 << 28
    """Most bytes in a FILTER stream (all filter objects of one session together)."""
    filter_chunk_bytes: int = 1 << 18

    def __post_init__(self) -> None:
        if not 1 <= self.chunk_elements <= self.max_chunk_elements:
            raise LocalProtocolError("chunk_elements must be in 1..max_chunk_elements")
        if self.max_elements < 0 or self.max_elements > _U64_MAX:
            raise LocalProtocolError("max_elements out of range")
        if self.max_chunk_elements > _U32_MAX:
            raise LocalProtocolError("max_chunk_elements out of range")
        biggest_chunk = HEADER_LEN + 4 + self.max_chunk_elements * ELEMENT_WIDTH + 2 + PROOF_LEN
        if self.max_frame_bytes < biggest_chunk or self.max_frame_bytes > _U32_MAX:
            raise LocalProtocolError("max_frame_bytes must hold the largest element chunk")
        if not 1 <= self.filter_chunk_bytes <= self.max_frame_bytes - HEADER_LEN - 4:
            raise LocalProtocolError("filter_chunk_bytes must fit in a frame")


# ---------------------------------------------------------------------------------------------
# Messages


@dataclass(frozen=True, kw_only=True, slots=True)
class Header:
    """What binds a frame to one session, and its place in the sender's frame sequence."""

    msg_type: MsgType
    mode: Mode
    suite: Suite
    epoch: int
    session_id: bytes
    seq: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Hello:
    """Querier → owner, first frame. ``element_count``: elements the querier will send.

    Filter mode: ``filter_id``/``filter_generation`` name the filter the querier already
    holds (``NO_FILTER_ID``/0 for none). Other modes: both MUST be zero.
    """

    element_count: int
    filter_id: bytes = NO_FILTER_ID
    filter_generation: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class HelloAck:
    """Owner → querier. ``element_count``: the owner's set size (filter: keys in the filter).

    Filter mode: the current ``filter_id``/``filter_generation`` and, for the VOPRF suite,
    the owner's epoch ``public_key`` (else empty). Other modes: zero / empty.
    """

    element_count: int
    filter_id: bytes = NO_FILTER_ID
    filter_generation: int = 0
    public_key: bytes = b""


@dataclass(frozen=True, kw_only=True, slots=True)
class FilterChunk:
    """A piece of the serialised filter objects (``filters.py``) the owner sends."""

    data: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class FilterEnd:
    """End of the FILTER stream: how many filter objects and bytes it carried."""

    object_count: int
    total_bytes: int


@dataclass(frozen=True, kw_only=True, slots=True)
class ElementChunk:
    """``count`` fixed-width elements, concatenated. ``proof``: a DLEQ proof (VOPRF EVAL only)."""

    count: int
    elements: bytes
    proof: bytes = b""


@dataclass(frozen=True, kw_only=True, slots=True)
class StreamEnd:
    """End of an element stream: the total number of elements it carried."""

    total: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Finish:
    """Mutual mode: the sender's intersection size and its signature over the transcript."""

    intersection_count: int
    signature: bytes


Body = Hello | HelloAck | FilterChunk | FilterEnd | ElementChunk | StreamEnd | Finish

_BODY_TYPE: Final[dict[MsgType, type]] = {
    MsgType.HELLO: Hello,
    MsgType.HELLO_ACK: HelloAck,
    MsgType.FILTER_CHUNK: FilterChunk,
    MsgType.FILTER_END: FilterEnd,
    **{t: ElementChunk for t in _CHUNK_TYPES},
    **{t: StreamEnd for t in _END_TYPES},
    MsgType.FINISH: Finish,
    MsgType.FINISH_ACK: Finish,
}


@dataclass(frozen=True, kw_only=True, slots=True)
class Frame:
    """One decoded frame."""

    header: Header
    body: Body


# ---------------------------------------------------------------------------------------------
# Encoding (our own messages: a bad value is our bug, LocalProtocolError)


def _check_u64(value: int, what: str) -> None:
    if not 0 <= value <= _U64_MAX:
        raise LocalProtocolError(f"{what} must fit in u64")


def _encode_header(header: Header) -> bytes:
    if len(header.session_id) != SESSION_ID_LEN:
        raise LocalProtocolError(f"session id must be {SESSION_ID_LEN} bytes")
    _check_u64(header.epoch, "epoch")
    if not 0 <= header.seq <= _U32_MAX:
        raise LocalProtocolError("seq must fit in u32")
    return _HEADER.pack(
        MAGIC,
        WIRE_VERSION,
        int(header.msg_type),
        int(header.mode),
        int(header.suite),
        header.epoch,
        header.session_id,
        header.seq,
    )


def _encode_body(msg_type: MsgType, mode: Mode, body: Body) -> list[bytes]:
    if not isinstance(body, _BODY_TYPE[msg_type]):
        raise LocalProtocolError("body type does not match the message type")
    if isinstance(body, Hello):
        _check_u64(body.element_count, "element_count")
        _check_u64(body.filter_generation, "filter_generation")
        if len(body.filter_id) != FILTER_ID_LEN:
            raise LocalProtocolError("filter id must be 16 bytes")
        return [_U64.pack(body.element_count), body.filter_id, _U64.pack(body.filter_generation)]
    if isinstance(body, HelloAck):
        _check_u64(body.element_count, "element_count")
        _check_u64(body.filter_generation, "filter_generation")
        if len(body.filter_id) != FILTER_ID_LEN:
            raise LocalProtocolError("filter id must be 16 bytes")
        if len(body.public_key) not in (0, PUBLIC_KEY_LEN):
            raise LocalProtocolError("public key must be empty or 32 bytes")
        return [
            _U64.pack(body.element_count),
            body.filter_id,
            _U64.pack(body.filter_generation),
            _U16.pack(len(body.public_key)),
            body.public_key,
        ]
    if isinstance(body, FilterChunk):
        if not 1 <= len(body.data) <= _U32_MAX:
            raise LocalProtocolError("filter chunk must hold 1..2^32-1 bytes")
        return [_U32.pack(len(body.data)), body.data]
    if isinstance(body, FilterEnd):
        if not 0 <= body.object_count <= _U32_MAX:
            raise LocalProtocolError("object_count must fit in u32")
        _check_u64(body.total_bytes, "total_bytes")
        return [_U32.pack(body.object_count), _U64.pack(body.total_bytes)]
    if isinstance(body, ElementChunk):
        width = element_width(msg_type, mode)
        if not 1 <= body.count <= _U32_MAX or len(body.elements) != body.count * width:
            raise LocalProtocolError("chunk count does not match its elements")
        parts = [_U32.pack(body.count), body.elements]
        if msg_type is MsgType.EVAL_CHUNK:
            if len(body.proof) not in (0, PROOF_LEN):
                raise LocalProtocolError("proof must be empty or 64 bytes")
            parts += [_U16.pack(len(body.proof)), body.proof]
        elif body.proof:
            raise LocalProtocolError("only EVAL_CHUNK carries a proof")
        return parts
    if isinstance(body, StreamEnd):
        _check_u64(body.total, "total")
        return [_U64.pack(body.total)]
    # Finish
    _check_u64(body.intersection_count, "intersection_count")
    if len(body.signature) != SIGNATURE_LEN:
        raise LocalProtocolError("signature must be 64 bytes")
    return [_U64.pack(body.intersection_count), _U16.pack(SIGNATURE_LEN), body.signature]


def encode_frame(header: Header, body: Body) -> bytes:
    """The bytes of one frame, length prefix included."""
    parts = [_encode_header(header), *_encode_body(header.msg_type, header.mode, body)]
    length = sum(len(p) for p in parts)
    if length > _U32_MAX:
        raise LocalProtocolError("frame too large")
    return b"".join([_U32.pack(length), *parts])


# ---------------------------------------------------------------------------------------------
# Decoding (peer bytes: only DecodeError subclasses)


class _Reader:
    """Cursor over a body; reading past the end is ``TruncatedMessageError``."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: memoryview) -> None:
        self._data = data
        self._pos = 0

    def take(self, n: int) -> bytes:
        end = self._pos + n
        if end > len(self._data):
            raise TruncatedMessageError("message ends inside a field")
        out = bytes(self._data[self._pos : end])
        self._pos = end
        return out

    def u16(self) -> int:
        return int(_U16.unpack(self.take(2))[0])

    def u32(self) -> int:
        return int(_U32.unpack(self.take(4))[0])

    def u64(self) -> int:
        return int(_U64.unpack(self.take(8))[0])

    def remaining(self) -> int:
        return len(self._data) - self._pos

    def done(self) -> None:
        if self._pos != len(self._data):
            raise TrailingDataError("bytes remain after the message body")


def _decode_header(data: memoryview) -> Header:
    if len(data) < HEADER_LEN:
        raise TruncatedMessageError("frame shorter than its header")
    magic, version, msg_type, mode, suite, epoch, session_id, seq = _HEADER.unpack(
        data[:HEADER_LEN]
    )
    if magic != MAGIC or version != WIRE_VERSION:
        raise UnknownVersionError("unknown magic or wire version")
    try:
        return Header(
            msg_type=MsgType(msg_type),
            mode=Mode(mode),
            suite=Suite(suite),
            epoch=epoch,
            session_id=session_id,
            seq=seq,
        )
    except ValueError:
        raise UnknownVersionError("unknown message type, mode or suite") from None


def _decode_body(header: Header, r: _Reader, limits: Limits) -> Body:
    t = header.msg_type
    body: Body
    if t is MsgType.HELLO or t is MsgType.HELLO_ACK:
        count = r.u64()
        if count > limits.max_elements:
            raise OversizedMessageError("announced set size above the limit")
        filter_id = r.take(FILTER_ID_LEN)
        generation = r.u64()
        if header.mode is not Mode.FILTER and (filter_id != NO_FILTER_ID or generation):
            raise DecodeError("filter fields must be zero outside filter mode")
        if t is MsgType.HELLO:
            body = Hello(element_count=count, filter_id=filter_id, filter_generation=generation)
        else:
            key_len = r.u16()
            if key_len not in (0, PUBLIC_KEY_LEN):
                raise DecodeError("public key must be empty or 32 bytes")
            body = HelloAck(
                element_count=count,
                filter_id=filter_id,
                filter_generation=generation,
                public_key=r.take(key_len),
            )
    elif t is MsgType.FILTER_CHUNK:
        n = r.u32()
        if n == 0:
            raise DecodeError("empty filter chunk")
        if n > r.remaining():
            raise TruncatedMessageError("filter chunk shorter than its length")
        body = FilterChunk(data=r.take(n))
    elif t is MsgType.FILTER_END:
        body = FilterEnd(object_count=r.u32(), total_bytes=r.u64())
    elif t in _CHUNK_TYPES:
        count = r.u32()
        if count == 0:
            raise DecodeError("empty element chunk")
        if count > limits.max_chunk_elements:
            raise OversizedMessageError("chunk holds more elements than allowed")
        width = element_width(t, header.mode)
        if count * width > r.remaining():
            raise TruncatedMessageError("chunk shorter than its count")
        elements = r.take(count * width)
        proof = b""
        if t is MsgType.EVAL_CHUNK:
            proof_len = r.u16()
            if proof_len not in (0, PROOF_LEN):
                raise DecodeError("proof must be empty or 64 bytes")
            proof = r.take(proof_len)
        body = ElementChunk(count=count, elements=elements, proof=proof)
    elif t in _END_TYPES:
        body = StreamEnd(total=r.u64())
    else:  # FINISH, FINISH_ACK
        intersection_count = r.u64()
        sig_len = r.u16()
        if sig_len != SIGNATURE_LEN:
            raise DecodeError("signature must be 64 bytes")
        body = Finish(intersection_count=intersection_count, signature=r.take(sig_len))
    r.done()
    return body


def decode_frame(data: bytes | bytearray | memoryview, limits: Limits | None = None) -> Frame:
    """Decode exactly one frame (length prefix included).

    Raises ``OversizedMessageError`` (length above ``limits.max_frame_bytes``, or a count
    above a limit), ``TruncatedMessageError``, ``TrailingDataError``,
    ``UnknownVersionError`` or another ``DecodeError``. Elements are *not* checked to be
    group elements here.
    """
    limits = limits or Limits()
    view = memoryview(data).cast("B")
    if len(view) < FRAME_PREFIX_LEN:
        raise TruncatedMessageError("frame shorter than its length prefix")
    (length,) = _U32.unpack(view[:FRAME_PREFIX_LEN])
    if length > limits.max_frame_bytes:
        raise OversizedMessageError("frame longer than allowed")
    have = len(view) - FRAME_PREFIX_LEN
    if have < length:
        raise TruncatedMessageError("frame shorter than its length prefix says")
    if have > length:
        raise TrailingDataError("bytes remain after the frame")
    payload = view[FRAME_PREFIX_LEN:]
    header = _decode_header(payload)
    body = _decode_body(header, _Reader(payload[HEADER_LEN:]), limits)
    return Frame(header=header, body=body)


class FrameReader:
    """Split a byte stream (arbitrary pieces, e.g. HTTP body chunks) into frames.

    ``feed`` returns the complete frames (still encoded, so they can be hashed into a
    transcript) and keeps any partial one. A length prefix above ``max_frame_bytes`` is refused
    as soon as it is read, before its frame is buffered. ``close`` raises
    ``TruncatedMessageError`` if a partial frame is left.
    """

    def __init__(self, limits: Limits | None = None) -> None:
        self._limits = limits or Limits()
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        frames: list[bytes] = []
        pos = 0
        buf = self._buf
        while len(buf) - pos >= FRAME_PREFIX_LEN:
            (length,) = _U32.unpack_from(buf, pos)
            if length > self._limits.max_frame_bytes:
                raise OversizedMessageError("frame longer than allowed")
            end = pos + FRAME_PREFIX_LEN + length
            if end > len(buf):
                break
            frames.append(bytes(buf[pos:end]))
            pos = end
        if pos:
            del buf[:pos]
        return frames

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame held."""
        return len(self._buf)

    def close(self) -> None:
        if self._buf:
            raise TruncatedMessageError("stream ended inside a frame")


# ---------------------------------------------------------------------------------------------
# Element streams


def iter_chunks(data: bytes, width: int, chunk_elements: int) -> Iterator[bytes]:
    """Yield ``data`` (concatenated fixed-width elements) in slices of ``chunk_elements``.

    Pure and picklable-friendly; yields nothing for empty ``data``.
    """
    if width <= 0 or len(data) % width:
        raise LocalProtocolError("data is not a whole number of elements")
    step = width * chunk_elements
    view = memoryview(data)
    for start in range(0, len(data), step):
        yield bytes(view[start : start + step])


def split_elements(data: bytes, width: int) -> list[bytes]:
    """Split concatenated fixed-width elements into a list."""
    if width <= 0 or len(data) % width:
        raise LocalProtocolError("data is not a whole number of elements")
    return [data[i : i + width] for i in range(0, len(data), width)]


class ElementStreamDecoder:
    """Count the chunks of one element stream against its END frame and a limit.

    ``expected``: the total announced earlier (e.g. in HELLO), if any. More elements than
    ``max_elements`` (or than ``expected``) is ``OversizedMessageError`` as soon as a chunk
    exceeds it; an END whose total differs from what arrived is ``TruncatedMessageError``
    (fewer arrived) or ``TrailingDataError`` (more arrived); an END that disagrees with
    ``expected`` is ``TruncatedMessageError``.
    """

    __slots__ = ("_expected", "_max", "received")

    def __init__(self, *, max_elements: int, expected: int | None = None) -> None:
        self._max = max_elements if expected is None else min(max_elements, expected)
        self._expected = expected
        self.received = 0

    def accept(self, chunk: ElementChunk) -> None:
        if self.received + chunk.count > self._max:
            raise OversizedMessageError("stream carries more elements than allowed or announced")
        self.received += chunk.count

    def end(self, end: StreamEnd) -> int:
        if end.total > self.received:
            raise TruncatedMessageError("stream ended before all its elements arrived")
        if end.total < self.received:
            raise TrailingDataError("stream carried more elements than its end says")
        if self._expected is not None and end.total != self._expected:
            raise TruncatedMessageError("stream ended with fewer elements than announced")
        return self.received
