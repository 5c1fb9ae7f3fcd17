"""The epoch output index: built from packed refs, read in place (binary search), filtered
for a purge, and the version-1 layout still read."""

from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fiumatch.node.outindex import MAGIC, OutputIndex, RefPacker, build_index, filter_index


def _out(i: int) -> bytes:
    return hashlib.sha512(i.to_bytes(4, "big")).digest()


def _index(rows: list[tuple[bytes, str, int, int]]) -> bytes:
    refs = RefPacker()
    for _, sid, t, g in rows:
        refs.add(sid, t, g)
    return build_index([o for o, _, _, _ in rows], refs)


def test_lookup_finds_every_row_of_an_output_and_nothing_else() -> None:
    rows = [(_out(i), f"s{i}", 1 + i % 3, 100 + i) for i in range(50)]
    rows.append((_out(7), "other", 9, 255))  # one output held twice
    index = OutputIndex(_index(rows))
    assert len(index) == 51
    assert sorted(index.refs(_out(7))) == [("other", 9, 255), ("s7", 2, 107)]
    assert index.refs(_out(3)) == [("s3", 1, 103)]
    assert index.refs(_out(999)) == [] and index.refs(b"\xff" * 64) == []
    assert index.refs(b"\x00" * 64) == []
    assert index.distinct_outputs() == sorted({o for o, _, _, _ in rows})
    assert sorted(index.rows()) == sorted(rows)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.text(min_size=1, max_size=40)), max_size=60))
def test_rows_round_trip_whatever_the_order(spec: list[tuple[int, str]]) -> None:
    rows = [(_out(i), sid, i % 7, i % 256) for i, sid in spec]
    index = OutputIndex(_index(rows))
    assert sorted(index.rows()) == sorted(rows)
    for o, sid, t, g in rows:
        assert (sid, t, g) in index.refs(o)


def test_filter_drops_the_rows_of_gone_subjects() -> None:
    rows = [(_out(i), f"s{i % 4}", 1, 200) for i in range(20)]
    kept = OutputIndex(filter_index(_index(rows), {"s1", "s3"}))
    assert {sid for _, sid, _, _ in kept.rows()} == {"s0", "s2"}
    assert len(kept) == 10 and kept.refs(_out(1)) == []


def test_version_1_blobs_are_still_read() -> None:
    rows = [(_out(i), f"s{i}", 5, 77) for i in range(5)]
    v1 = b"".join(o + struct.pack(">HBB", t, g, len(s)) + s.encode() for o, s, t, g in rows)
    index = OutputIndex(v1)
    assert len(index) == 5 and list(index.rows()) == rows
    assert index.refs(_out(2)) == [("s2", 5, 77)]
    assert not v1.startswith(MAGIC)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError):
        RefPacker().add("x" * 256, 1, 1)
    with pytest.raises(ValueError):
        build_index([_out(1)], RefPacker())
    with pytest.raises(ValueError):
        OutputIndex(MAGIC + struct.pack(">I", 3) + b"\x00" * 10)
