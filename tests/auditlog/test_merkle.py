"""RFC 6962 / 9162 hashing, roots and the compact range, against the published known answers
(tests/vectors/rfc6962-merkle-vectors.json, from transparency-dev/merkle) and against a naive
recursive transcription of the RFC (tests/auditlog/reference.py)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fiumatch.auditlog.merkle import (
    EMPTY_ROOT,
    CompactRange,
    frontier_coordinates,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    root_of_leaves,
)
from tests.auditlog import reference

VECTORS = json.loads(
    (Path(__file__).parents[1] / "vectors" / "rfc6962-merkle-vectors.json").read_text()
)
LEAVES = [bytes.fromhex(x) for x in VECTORS["leaves_hex"]]


def test_hash_functions_follow_rfc_6962_domain_separation() -> None:
    assert leaf_hash(b"ab") == hashlib.sha256(b"\x00ab").digest()
    expected = hashlib.sha256(b"\x01" + b"L" * 32 + b"R" * 32).digest()
    assert node_hash(b"L" * 32, b"R" * 32) == expected
    assert EMPTY_ROOT.hex() == VECTORS["roots_by_size"]["0"]


@pytest.mark.parametrize("size", sorted(int(s) for s in VECTORS["roots_by_size"]))
def test_root_for_every_size_matches_known_answer(size: int) -> None:
    expected = bytes.fromhex(VECTORS["roots_by_size"][str(size)])
    assert root_of_leaves(LEAVES[:size]) == expected


def test_incremental_appender_gives_every_known_root() -> None:
    cr = CompactRange()
    assert cr.root().hex() == VECTORS["roots_by_size"]["0"]
    for i, data in enumerate(LEAVES):
        cr.append(leaf_hash(data))
        assert cr.size == i + 1
        assert cr.root().hex() == VECTORS["roots_by_size"][str(i + 1)]


def test_append_reports_every_complete_node_once_with_its_address() -> None:
    cr = CompactRange()
    stored: dict[tuple[int, int], bytes] = {}
    for data in LEAVES:
        for node in cr.append(leaf_hash(data)):
            assert (node.level, node.index) not in stored
            stored[(node.level, node.index)] = node.hash
    # 8 leaves make 8 + 4 + 2 + 1 complete nodes; the top one is the size-8 root.
    assert len(stored) == 15
    assert stored[(3, 0)].hex() == VECTORS["roots_by_size"]["8"]
    assert stored[(2, 1)] == reference.mth(LEAVES[4:8])
    assert stored[(0, 5)] == leaf_hash(LEAVES[5])


def test_frontier_coordinates_tile_the_range() -> None:
    assert frontier_coordinates(0) == []
    assert frontier_coordinates(1) == [(0, 0)]
    assert frontier_coordinates(6) == [(2, 0), (1, 2)]
    assert frontier_coordinates(13) == [(3, 0), (2, 2), (0, 12)]
    with pytest.raises(ValueError):
        frontier_coordinates(-1)


def test_compact_range_resumes_from_stored_frontier() -> None:
    cr = CompactRange()
    stored: dict[tuple[int, int], bytes] = {}
    for data in LEAVES[:5]:
        for node in cr.append(leaf_hash(data)):
            stored[(node.level, node.index)] = node.hash
    resumed = CompactRange.from_store(5, lambda lv, ix: stored[(lv, ix)])
    assert resumed.hashes == cr.hashes
    for data in LEAVES[5:]:
        resumed.append(leaf_hash(data))
    assert resumed.root().hex() == VECTORS["roots_by_size"]["8"]
    with pytest.raises(ValueError):
        CompactRange.from_hashes(5, cr.hashes[:1])
    with pytest.raises(ValueError):
        CompactRange.from_hashes(1, [b"short"])
    with pytest.raises(ValueError):
        cr.append(b"not a hash")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=6), max_size=70), st.integers(0, 70))
def test_append_extend_and_batch_root_agree_with_recursive_rfc(
    leaves: list[bytes], cut: int
) -> None:
    cut = min(cut, len(leaves))
    hashes = [leaf_hash(d) for d in leaves]
    cr = CompactRange()
    cr.extend(hashes[:cut])
    copy = cr.copy()
    for h in hashes[cut:]:
        cr.append(h)
    copy.extend(hashes[cut:])
    expected = reference.mth(leaves)
    assert cr.root() == copy.root() == root_from_leaf_hashes(hashes) == expected
