"""Inclusion and consistency proofs: RFC 6962 known answers, the recursive RFC oracle for every
pair of sizes up to 40, Hypothesis over larger trees, and failures that carry both roots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fiumatch.auditlog.errors import (
    ConsistencyProofError,
    InclusionProofError,
    MissingNodeError,
    ProofRangeError,
)
from fiumatch.auditlog.merkle import EMPTY_ROOT, CompactRange, leaf_hash
from fiumatch.auditlog.proofs import (
    consistency_proof,
    inclusion_proof,
    plan_consistency,
    plan_inclusion,
    root_at,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from tests.auditlog import reference

VECTORS = json.loads(
    (Path(__file__).parents[1] / "vectors" / "rfc6962-merkle-vectors.json").read_text()
)
LEAVES = [bytes.fromhex(x) for x in VECTORS["leaves_hex"]]


def build(leaves: list[bytes]) -> dict[tuple[int, int], bytes]:
    cr = CompactRange()
    store: dict[tuple[int, int], bytes] = {}
    for data in leaves:
        for node in cr.append(leaf_hash(data)):
            store[(node.level, node.index)] = node.hash
    return store


STORE = build(LEAVES)


def get(level: int, index: int) -> bytes:
    return STORE[(level, index)]


def root(size: int) -> bytes:
    return bytes.fromhex(VECTORS["roots_by_size"][str(size)])


@pytest.mark.parametrize(
    "case", VECTORS["inclusion"], ids=lambda c: f"{c['leaf_index']}@{c['tree_size']}"
)
def test_inclusion_known_answers(case: dict[str, object]) -> None:
    index, size = int(case["leaf_index"]), int(case["tree_size"])  # type: ignore[call-overload]
    expected = [bytes.fromhex(h) for h in case["proof"]]  # type: ignore[attr-defined]
    assert inclusion_proof(index, size, get) == expected
    verify_inclusion(index, size, leaf_hash(LEAVES[index]), expected, root(size))


@pytest.mark.parametrize("case", VECTORS["consistency"], ids=lambda c: f"{c['size1']}-{c['size2']}")
def test_consistency_known_answers(case: dict[str, object]) -> None:
    size1, size2 = int(case["size1"]), int(case["size2"])  # type: ignore[call-overload]
    expected = [bytes.fromhex(h) for h in case["proof"]]  # type: ignore[attr-defined]
    assert consistency_proof(size1, size2, get) == expected
    verify_consistency(size1, size2, root(size1), root(size2), expected)


def test_every_pair_up_to_40_against_the_recursive_rfc() -> None:
    leaves = [i.to_bytes(2, "big") for i in range(40)]
    store = build(leaves)
    g = store.__getitem__

    def getter(level: int, index: int) -> bytes:
        return g((level, index))

    roots = [reference.mth(leaves[:n]) for n in range(41)]
    for n in range(41):
        assert root_at(n, getter) == roots[n]
        for m in range(n):
            p = inclusion_proof(m, n, getter)
            assert p == reference.path(m, leaves[:n])
            verify_inclusion(m, n, leaf_hash(leaves[m]), p, roots[n])
        for m in range(n + 1):
            p = consistency_proof(m, n, getter)
            assert p == reference.proof(m, leaves[:n])
            verify_consistency(m, n, roots[m], roots[n], p)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3000), st.data())
def test_proofs_verify_on_larger_trees(size: int, data: st.DataObject) -> None:
    leaves = [i.to_bytes(4, "big") for i in range(size)]
    store = build(leaves)

    def getter(level: int, index: int) -> bytes:
        return store[(level, index)]

    index = data.draw(st.integers(0, size - 1))
    size1 = data.draw(st.integers(0, size))
    r = root_at(size, getter)
    cr = CompactRange()
    cr.extend(leaf_hash(d) for d in leaves)
    assert r == cr.root()
    p = inclusion_proof(index, size, getter)
    assert len(p) == len(plan_inclusion(index, size).elements) <= 2 * size.bit_length()
    verify_inclusion(index, size, leaf_hash(leaves[index]), p, r)
    c = consistency_proof(size1, size, getter)
    verify_consistency(size1, size, root_at(size1, getter), r, c)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 200), st.data())
def test_any_flipped_proof_byte_is_refused_with_both_roots(size: int, data: st.DataObject) -> None:
    leaves = [i.to_bytes(4, "big") for i in range(size)]
    store = build(leaves)

    def getter(level: int, index: int) -> bytes:
        return store[(level, index)]

    r = root_at(size, getter)
    index = data.draw(st.integers(0, size - 1))
    p = inclusion_proof(index, size, getter)
    if p:
        k = data.draw(st.integers(0, len(p) - 1))
        bit = data.draw(st.integers(0, 255))
        bad = list(p)
        bad[k] = bytes(b ^ (1 << (bit % 8)) if j == bit // 8 else b for j, b in enumerate(bad[k]))
        with pytest.raises(InclusionProofError) as info:
            verify_inclusion(index, size, leaf_hash(leaves[index]), bad, r)
        assert info.value.expected_root == r
        assert info.value.computed_root is not None and info.value.computed_root != r
    size1 = data.draw(st.integers(1, size - 1))
    r1 = root_at(size1, getter)
    c = consistency_proof(size1, size, getter)
    k = data.draw(st.integers(0, len(c) - 1))
    bad = list(c)
    bad[k] = bytes([bad[k][0] ^ 1]) + bad[k][1:]
    with pytest.raises(ConsistencyProofError) as cinfo:
        verify_consistency(size1, size, r1, r, bad)
    assert cinfo.value.first_root == r1 and cinfo.value.second_root == r
    assert cinfo.value.expected_root in (r1, r)
    assert cinfo.value.computed_root not in (None, cinfo.value.expected_root)
    # A truncated or extended proof is refused by its length before any hashing.
    with pytest.raises(ConsistencyProofError):
        verify_consistency(size1, size, r1, r, c[:-1])
    with pytest.raises(ConsistencyProofError):
        verify_consistency(size1, size, r1, r, [*c, c[0]])
    # Swapped roots are refused.
    with pytest.raises(ConsistencyProofError):
        verify_consistency(size1, size, r, r1, c)


def test_wrong_leaf_or_root_carries_both_roots() -> None:
    p = inclusion_proof(5, 8, get)
    with pytest.raises(InclusionProofError) as info:
        verify_inclusion(5, 8, leaf_hash(b"other"), p, root(8))
    assert info.value.expected_root == root(8)
    assert info.value.details["expected_root"] == root(8).hex()
    with pytest.raises(InclusionProofError):
        verify_inclusion(5, 8, leaf_hash(LEAVES[5]), p, root(7))
    with pytest.raises(InclusionProofError):
        verify_inclusion(5, 8, leaf_hash(LEAVES[5]), p[:-1], root(8))
    with pytest.raises(InclusionProofError):
        verify_inclusion(8, 8, leaf_hash(LEAVES[5]), p, root(8))
    with pytest.raises(InclusionProofError):
        root_from_inclusion_proof(5, 8, b"short", p)
    with pytest.raises(InclusionProofError):
        verify_inclusion(5, 8, leaf_hash(LEAVES[5]), [p[0][:31], *p[1:]], root(8))


def test_consistency_edge_cases() -> None:
    verify_consistency(0, 5, EMPTY_ROOT, root(5), [])
    verify_consistency(3, 3, root(3), root(3), [])
    with pytest.raises(ConsistencyProofError):
        verify_consistency(3, 3, root(3), root(4), [])
    with pytest.raises(ConsistencyProofError):
        verify_consistency(3, 3, root(3), root(3), [root(1)])
    with pytest.raises(ConsistencyProofError):
        verify_consistency(0, 5, root(1), root(5), [])
    with pytest.raises(ConsistencyProofError):
        verify_consistency(0, 5, EMPTY_ROOT, root(5), [root(1)])
    with pytest.raises(ConsistencyProofError):
        verify_consistency(2, 5, root(2), root(5), [])
    with pytest.raises(ConsistencyProofError):
        verify_consistency(6, 5, root(6), root(5), [])
    with pytest.raises(ConsistencyProofError):
        verify_consistency(2, 5, root(2), root(5), [b"short", root(1)])


def test_plans_and_missing_nodes() -> None:
    assert plan_consistency(4, 4).elements == ()
    assert plan_consistency(0, 4).elements == ()
    # 6 -> 7: the size-7 tree's right border (leaf 6) is a stored leaf, the proof has 3 parts.
    assert plan_consistency(6, 7).nodes == ((1, 2), (0, 6), (2, 0))
    # Leaf 1 in a size-7 tree: the ephemeral right subtree [4, 7) is folded from two nodes.
    assert plan_inclusion(1, 7).elements == (((0, 0),), ((1, 1),), ((1, 2), (0, 6)))
    plan = plan_inclusion(1, 7)
    assert plan.assemble({c: STORE[c] for c in plan.nodes}) == inclusion_proof(1, 7, get)
    with pytest.raises(ProofRangeError):
        plan_inclusion(7, 7)
    with pytest.raises(ProofRangeError):
        plan_consistency(5, 4)
    with pytest.raises(MissingNodeError):
        inclusion_proof(0, 8, lambda level, index: STORE[(level + 9, index)])
    with pytest.raises(MissingNodeError):
        inclusion_proof(0, 8, lambda level, index: b"short")
