"""The wire codec: round trips, every framing error by its class, and decoder fuzzing."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fiumatch.protocol import wire
from fiumatch.protocol.errors import (
    DecodeError,
    LocalProtocolError,
    OversizedMessageError,
    TrailingDataError,
    TruncatedMessageError,
    UnknownVersionError,
)
from fiumatch.protocol.wire import (
    ElementChunk,
    ElementStreamDecoder,
    FilterChunk,
    FilterEnd,
    Finish,
    FrameReader,
    Header,
    Hello,
    HelloAck,
    Limits,
    Mode,
    MsgType,
    StreamEnd,
    Suite,
    decode_frame,
    element_width,
    encode_frame,
)

SID = bytes(range(16))
SMALL = Limits(
    max_elements=64,
    max_chunk_elements=8,
    chunk_elements=4,
    max_frame_bytes=4096,
    filter_chunk_bytes=512,
)


def header(msg_type: MsgType, mode: Mode = Mode.MUTUAL, seq: int = 0, **kw: object) -> Header:
    fields: dict[str, object] = dict(
        msg_type=msg_type,
        mode=mode,
        suite=Suite.OPRF_RISTRETTO255_SHA512,
        epoch=7,
        session_id=SID,
        seq=seq,
    )
    fields.update(kw)
    return Header(**fields)  # type: ignore[arg-type]


def test_all_names_exist() -> None:
    for name in wire.__all__:
        assert hasattr(wire, name), name


def test_header_layout_is_fixed() -> None:
    frame = encode_frame(header(MsgType.QUERY_END, seq=3), StreamEnd(total=5))
    assert len(frame) == 4 + wire.HEADER_LEN + 8
    assert frame[:4] == struct.pack(">I", wire.HEADER_LEN + 8)
    assert frame[4:6] == b"FM" and frame[6] == wire.WIRE_VERSION
    assert frame[7] == MsgType.QUERY_END and frame[8] == Mode.MUTUAL
    assert frame[9:11] == b"\x00\x01"
    assert frame[11:19] == (7).to_bytes(8, "big")
    assert frame[19:35] == SID
    assert frame[35:39] == (3).to_bytes(4, "big")
    assert frame[39:] == (5).to_bytes(8, "big")


def _bodies(mode: Mode) -> st.SearchStrategy[tuple[MsgType, wire.Body]]:
    u64 = st.integers(0, 2**64 - 1)
    small = st.integers(0, SMALL.max_elements)
    fid = st.binary(min_size=16, max_size=16) if mode is Mode.FILTER else st.just(bytes(16))
    gen = u64 if mode is Mode.FILTER else st.just(0)
    options: list[st.SearchStrategy[tuple[MsgType, wire.Body]]] = [
        st.builds(
            lambda c, f, g: (
                MsgType.HELLO,
                Hello(element_count=c, filter_id=f, filter_generation=g),
            ),
            small,
            fid,
            gen,
        ),
        st.builds(
            lambda c, f, g, pk: (
                MsgType.HELLO_ACK,
                HelloAck(element_count=c, filter_id=f, filter_generation=g, public_key=pk),
            ),
            small,
            fid,
            gen,
            st.sampled_from([b"", bytes(32), b"\x01" * 32]),
        ),
        st.builds(
            lambda d: (MsgType.FILTER_CHUNK, FilterChunk(data=d)),
            st.binary(min_size=1, max_size=64),
        ),
        st.builds(
            lambda n, t: (MsgType.FILTER_END, FilterEnd(object_count=n, total_bytes=t)),
            st.integers(0, 2**32 - 1),
            u64,
        ),
        st.builds(
            lambda c, s: (MsgType.FINISH, Finish(intersection_count=c, signature=s)),
            u64,
            st.binary(min_size=64, max_size=64),
        ),
    ]
    for t in (MsgType.QUERY_CHUNK, MsgType.EVAL_CHUNK, MsgType.SET_CHUNK, MsgType.REVEAL_CHUNK):
        width = element_width(t, mode)
        proofs = st.sampled_from([b"", b"\x02" * 64]) if t is MsgType.EVAL_CHUNK else st.just(b"")
        options.append(
            st.builds(
                lambda n, p, seed, t=t, width=width: (
                    t,
                    ElementChunk(count=n, elements=bytes([seed]) * (n * width), proof=p),
                ),
                st.integers(1, SMALL.max_chunk_elements),
                proofs,
                st.integers(0, 255),
            )
        )
    for t in (MsgType.QUERY_END, MsgType.EVAL_END, MsgType.SET_END, MsgType.REVEAL_END):
        options.append(st.builds(lambda n, t=t: (t, StreamEnd(total=n)), u64))
    return st.one_of(options)


@settings(max_examples=60)
@given(
    data=st.data(),
    mode=st.sampled_from(list(Mode)),
    seq=st.integers(0, 2**32 - 1),
    epoch=st.integers(0, 2**64 - 1),
)
def test_round_trip(data: st.DataObject, mode: Mode, seq: int, epoch: int) -> None:
    msg_type, body = data.draw(_bodies(mode))
    h = header(msg_type, mode=mode, seq=seq, epoch=epoch)
    frame = decode_frame(encode_frame(h, body), SMALL)
    assert frame.header == h
    assert frame.body == body


def test_widths() -> None:
    assert element_width(MsgType.QUERY_CHUNK, Mode.CARDINALITY) == 32
    assert element_width(MsgType.SET_CHUNK, Mode.CARDINALITY) == wire.TAG_LEN
    assert element_width(MsgType.SET_CHUNK, Mode.MUTUAL) == 32
    assert element_width(MsgType.REVEAL_CHUNK, Mode.MUTUAL) == wire.TAG_LEN
    with pytest.raises(LocalProtocolError):
        element_width(MsgType.HELLO, Mode.MUTUAL)


def _chunk_frame(count: int = 2, mode: Mode = Mode.MUTUAL) -> bytes:
    return encode_frame(
        header(MsgType.QUERY_CHUNK, mode=mode),
        ElementChunk(count=count, elements=b"\x05" * (32 * count)),
    )


def test_truncated_frames() -> None:
    frame = _chunk_frame()
    for cut in (0, 2, 4, 10, len(frame) - 1):
        with pytest.raises(TruncatedMessageError):
            decode_frame(frame[:cut])


def test_length_prefix_inside_body_is_checked() -> None:
    frame = bytearray(_chunk_frame(2))
    # Claim 3 elements in a body that holds 2, keeping the outer length consistent.
    frame[4 + wire.HEADER_LEN : 4 + wire.HEADER_LEN + 4] = (3).to_bytes(4, "big")
    with pytest.raises(TruncatedMessageError):
        decode_frame(bytes(frame))
    frame[4 + wire.HEADER_LEN : 4 + wire.HEADER_LEN + 4] = (1).to_bytes(4, "big")
    with pytest.raises(TrailingDataError):
        decode_frame(bytes(frame))


def test_trailing_data() -> None:
    with pytest.raises(TrailingDataError):
        decode_frame(_chunk_frame() + b"\x00")


def test_oversized_frame_and_chunk_and_count() -> None:
    with pytest.raises(OversizedMessageError):
        decode_frame(_chunk_frame(9), SMALL)  # 9 > max_chunk_elements
    big = struct.pack(">I", SMALL.max_frame_bytes + 1) + bytes(64)
    with pytest.raises(OversizedMessageError):
        decode_frame(big, SMALL)
    hello = encode_frame(header(MsgType.HELLO), Hello(element_count=65))
    with pytest.raises(OversizedMessageError):
        decode_frame(hello, SMALL)


@pytest.mark.parametrize(
    "offset,value", [(4, 0x00), (5, 0x4E), (6, 2), (7, 0x7F), (8, 9), (10, 0x09)]
)
def test_unknown_version_type_mode_suite(offset: int, value: int) -> None:
    frame = bytearray(_chunk_frame())
    frame[offset] = value
    with pytest.raises(UnknownVersionError):
        decode_frame(bytes(frame))


def test_filter_fields_must_be_zero_outside_filter_mode() -> None:
    body = Hello(element_count=1, filter_id=b"\x01" * 16, filter_generation=0)
    frame = encode_frame(header(MsgType.HELLO, mode=Mode.MUTUAL), body)
    with pytest.raises(DecodeError):
        decode_frame(frame)


def test_encode_refuses_our_own_mistakes() -> None:
    with pytest.raises(LocalProtocolError):
        encode_frame(header(MsgType.HELLO), StreamEnd(total=1))
    with pytest.raises(LocalProtocolError):
        encode_frame(header(MsgType.QUERY_CHUNK), ElementChunk(count=2, elements=bytes(32)))
    with pytest.raises(LocalProtocolError):
        encode_frame(header(MsgType.QUERY_END, session_id=b"short"), StreamEnd(total=1))
    with pytest.raises(LocalProtocolError):
        Limits(chunk_elements=10, max_chunk_elements=5)


@settings(max_examples=40)
@given(frames=st.lists(st.integers(1, 8), min_size=1, max_size=6), cuts=st.data())
def test_frame_reader_reassembles_any_split(frames: list[int], cuts: st.DataObject) -> None:
    encoded = [_chunk_frame(n) for n in frames]
    stream = b"".join(encoded)
    points = sorted(cuts.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    reader = FrameReader()
    got: list[bytes] = []
    last = 0
    for p in [*points, len(stream)]:
        got += reader.feed(stream[last:p])
        last = p
    reader.close()
    assert got == encoded


def test_frame_reader_refuses_oversized_prefix_before_buffering() -> None:
    reader = FrameReader(SMALL)
    with pytest.raises(OversizedMessageError):
        reader.feed(struct.pack(">I", SMALL.max_frame_bytes + 1))


def test_frame_reader_close_with_partial_frame() -> None:
    reader = FrameReader()
    assert reader.feed(_chunk_frame()[:-3]) == []
    assert reader.buffered > 0
    with pytest.raises(TruncatedMessageError):
        reader.close()


def test_element_stream_decoder_checks_totals() -> None:
    chunk = ElementChunk(count=3, elements=bytes(96))
    d = ElementStreamDecoder(max_elements=10)
    d.accept(chunk)
    with pytest.raises(TruncatedMessageError):
        d.end(StreamEnd(total=4))
    d = ElementStreamDecoder(max_elements=10)
    d.accept(chunk)
    with pytest.raises(TrailingDataError):
        d.end(StreamEnd(total=2))
    d = ElementStreamDecoder(max_elements=10)
    d.accept(chunk)
    assert d.end(StreamEnd(total=3)) == 3
    d = ElementStreamDecoder(max_elements=10, expected=2)
    with pytest.raises(OversizedMessageError):
        d.accept(chunk)
    d = ElementStreamDecoder(max_elements=10, expected=4)
    d.accept(chunk)
    with pytest.raises(TruncatedMessageError):
        d.end(StreamEnd(total=3))
    d = ElementStreamDecoder(max_elements=5)
    d.accept(chunk)
    with pytest.raises(OversizedMessageError):
        d.accept(chunk)


def test_iter_chunks_and_split() -> None:
    data = bytes(range(10)) * 32  # ten 32-byte elements
    chunks = list(wire.iter_chunks(data, 32, 4))
    assert [len(c) // 32 for c in chunks] == [4, 4, 2]
    assert b"".join(chunks) == data
    assert list(wire.iter_chunks(b"", 32, 4)) == []
    assert wire.split_elements(data, 32)[3] == data[96:128]
    with pytest.raises(LocalProtocolError):
        wire.split_elements(b"abc", 2)


def _decode_or_fail_typed(data: bytes) -> wire.Frame | None:
    """Decode, or raise only a DecodeError; a frame that decodes re-encodes to the same bytes."""
    try:
        frame = decode_frame(data, SMALL)
    except DecodeError as exc:
        assert exc.code and exc.http_status in (400, 413)
        return None
    assert encode_frame(frame.header, frame.body) == data  # the encoding is canonical
    return frame


@settings(max_examples=300)
@given(data=st.binary(max_size=200))
def test_fuzz_decode_any_bytes(data: bytes) -> None:
    _decode_or_fail_typed(data)


@settings(max_examples=300)
@given(
    data=st.data(),
    mode=st.sampled_from(list(Mode)),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.integers(0, 8),
)
def test_fuzz_decode_mutated_frames(
    data: st.DataObject, mode: Mode, flips: list[tuple[int, int]], cut: int
) -> None:
    msg_type, body = data.draw(_bodies(mode))
    frame = bytearray(encode_frame(header(msg_type, mode=mode), body))
    for pos, value in flips:
        frame[pos % len(frame)] = value
    mutated = bytes(frame[: len(frame) - cut])
    _decode_or_fail_typed(mutated)
    reader = FrameReader(SMALL)
    try:
        for f in reader.feed(mutated):
            _decode_or_fail_typed(f)
        reader.close()
    except DecodeError as exc:
        assert exc.code
