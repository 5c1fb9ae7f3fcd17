"""Building and verifying RFC 9162 inclusion and consistency proofs.

This module owns two separate halves, as transparency-dev/merkle does:

* building, from a ``get_node(level, index)`` callback over *complete* subtrees (so a store
  may back it with SQLite): :func:`plan_inclusion` / :func:`plan_consistency` say which
  stored nodes a proof needs (fetch them in one query if you like), and
  :func:`inclusion_proof` / :func:`consistency_proof` / :func:`root_at` fetch them;
* verifying, from hashes only: :func:`verify_inclusion` and :func:`verify_consistency` raise
  :class:`~fiumatch.auditlog.errors.InclusionProofError` /
  :class:`~fiumatch.auditlog.errors.ConsistencyProofError` carrying both the trusted root and
  the one the proof leads to; they never return a bool.

Proof order is RFC 9162's: the sibling nearest the leaf first. It never does I/O itself: the
callback is the only way out, and a missing node becomes
:class:`~fiumatch.auditlog.errors.MissingNodeError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn

from fiumatch.auditlog.errors import (
    ConsistencyProofError,
    InclusionProofError,
    MissingNodeError,
    ProofRangeError,
)
from fiumatch.auditlog.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    GetNode,
    frontier_coordinates,
    node_hash,
)

__all__ = [
    "Coord",
    "ProofPlan",
    "consistency_proof",
    "inclusion_proof",
    "plan_consistency",
    "plan_inclusion",
    "plan_root",
    "root_at",
    "root_from_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
]

Coord = tuple[int, int]


@dataclass(frozen=True, slots=True)
class ProofPlan:
    """Which complete nodes make each proof element.

    Each element is a tuple of node addresses: one address is a stored node; several are the
    complete subtrees tiling an ephemeral right-border node, folded right to left.
    """

    elements: tuple[tuple[Coord, ...], ...]

    @property
    def nodes(self) -> tuple[Coord, ...]:
        """Every address the plan reads, in order (for a batched store query)."""
        return tuple(c for group in self.elements for c in group)

    def fetch(self, get_node: GetNode) -> list[bytes]:
        """Read the nodes through ``get_node`` and assemble the proof."""
        out: list[bytes] = []
        for group in self.elements:
            hashes = [_get(get_node, c) for c in group]
            out.append(_fold(hashes))
        return out

    def assemble(self, nodes: Mapping[Coord, bytes]) -> list[bytes]:
        """Assemble the proof from nodes fetched beforehand (e.g. by one SQL query)."""
        return self.fetch(lambda level, index: nodes[(level, index)])


def _get(get_node: GetNode, coord: Coord) -> bytes:
    try:
        h = get_node(*coord)
    except KeyError:
        raise MissingNodeError(
            "the node store lacks a tree node", level=coord[0], index=coord[1]
        ) from None
    if len(h) != HASH_SIZE:
        raise MissingNodeError("the node store returned a malformed hash", level=coord[0],
                               index=coord[1])
    return bytes(h)


def _fold(hashes: Sequence[bytes]) -> bytes:
    h = hashes[-1]
    for left in reversed(hashes[:-1]):
        h = node_hash(left, h)
    return h


def _cover(begin: int, end: int) -> tuple[Coord, ...]:
    """Complete subtrees tiling ``[begin, end)`` when ``begin`` is aligned to a larger power
    of two than ``end - begin`` (a right border), largest first."""
    coords: list[Coord] = []
    size = end - begin
    for level in range(size.bit_length() - 1, -1, -1):
        if (size >> level) & 1:
            coords.append((level, begin >> level))
            begin += 1 << level
    return tuple(coords)


def _path(level: int, index: int, size: int) -> list[tuple[Coord, ...]]:
    """Siblings of node ``(level, index)`` from its level up to the root of a tree of
    ``size`` leaves; a missing sibling (past the right border) is skipped."""
    top = (size - 1).bit_length()
    out: list[tuple[Coord, ...]] = []
    for lv in range(level, top):
        sibling = index ^ 1
        begin = sibling << lv
        if begin < size:
            end = begin + (1 << lv)
            out.append(((lv, sibling),) if end <= size else _cover(begin, size))
        index >>= 1
    return out


def plan_inclusion(index: int, size: int) -> ProofPlan:
    """The plan of the inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
    if not 0 <= index < size:
        raise ProofRangeError("leaf index out of range", index=index, size=size)
    return ProofPlan(tuple(_path(0, index, size)))


def plan_consistency(size1: int, size2: int) -> ProofPlan:
    """The plan of the consistency proof from ``size1`` to ``size2`` (RFC 9162 SUBPROOF)."""
    if not 0 <= size1 <= size2:
        raise ProofRangeError("consistency needs 0 <= size1 <= size2", size1=size1, size2=size2)
    if size1 == 0 or size1 == size2:
        return ProofPlan(())
    # The largest complete subtree ending at size1, then its path up the size2 tree.
    level = (size1 & -size1).bit_length() - 1
    index = (size1 - 1) >> level
    elements: list[tuple[Coord, ...]] = [] if index == 0 else [((level, index),)]
    elements.extend(_path(level, index, size2))
    return ProofPlan(tuple(elements))


def plan_root(size: int) -> ProofPlan:
    """The nodes whose fold is the root of the tree of ``size`` leaves (one element)."""
    if size < 0:
        raise ProofRangeError("size must not be negative", size=size)
    coords = tuple(frontier_coordinates(size))
    return ProofPlan((coords,) if coords else ())


def inclusion_proof(index: int, size: int, get_node: GetNode) -> list[bytes]:
    """The RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
    return plan_inclusion(index, size).fetch(get_node)


def consistency_proof(size1: int, size2: int, get_node: GetNode) -> list[bytes]:
    """The RFC 9162 consistency proof from the tree of ``size1`` to that of ``size2``."""
    return plan_consistency(size1, size2).fetch(get_node)


def root_at(size: int, get_node: GetNode) -> bytes:
    """The root of the tree of ``size`` leaves, from O(log n) stored nodes."""
    hashes = plan_root(size).fetch(get_node)
    return hashes[0] if hashes else EMPTY_ROOT


# --- verifying --------------------------------------------------------------------------------


def _decompose(index: int, size: int) -> tuple[int, int]:
    """Split an inclusion proof's length into its inner part and its right-border part."""
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    return inner, border


def _check_hashes(proof: Sequence[bytes]) -> None:
    for h in proof:
        if len(h) != HASH_SIZE:
            raise ValueError("proof hashes are 32 bytes")


def root_from_inclusion_proof(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]
) -> bytes:
    """The root that ``proof`` leads to from ``leaf_hash`` at ``index`` in a tree of ``size``.

    :class:`InclusionProofError` (with no roots) if the proof has the wrong shape.
    """
    if not 0 <= index < size:
        raise InclusionProofError("leaf index out of range", index=index, size=size)
    if len(leaf_hash) != HASH_SIZE:
        raise InclusionProofError("leaf hash is not 32 bytes", index=index, size=size)
    inner, border = _decompose(index, size)
    if len(proof) != inner + border:
        raise InclusionProofError(
            "inclusion proof has the wrong length",
            index=index, size=size, expected_length=inner + border, found_length=len(proof),
        )
    try:
        _check_hashes(proof)
    except ValueError:
        raise InclusionProofError("proof hashes are 32 bytes", index=index, size=size) from None
    h = leaf_hash
    for i in range(inner):
        h = node_hash(proof[i], h) if (index >> i) & 1 else node_hash(h, proof[i])
    for p in proof[inner:]:
        h = node_hash(p, h)
    return h


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` with ``root``."""
    try:
        computed = root_from_inclusion_proof(index, size, leaf_hash, proof)
    except InclusionProofError as exc:
        raise InclusionProofError(exc.reason, expected_root=root, index=index, size=size) from None
    if computed != root:
        raise InclusionProofError(
            "inclusion proof leads to another root",
            expected_root=root, computed_root=computed, index=index, size=size,
        )


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``size1`` with ``root1`` is a prefix of that of ``size2``.

    Raises :class:`ConsistencyProofError` carrying both trusted roots and, for the root that
    failed, the one the proof leads to.
    """

    def fail(
        reason: str, expected: bytes | None = None, computed: bytes | None = None
    ) -> NoReturn:
        raise ConsistencyProofError(
            reason, first_root=root1, second_root=root2, expected_root=expected,
            computed_root=computed, size1=size1, size2=size2,
        )

    if not 0 <= size1 <= size2:
        fail("consistency needs 0 <= size1 <= size2")
    try:
        _check_hashes(proof)
    except ValueError:
        fail("proof hashes are 32 bytes")
    if size1 == size2:
        if proof:
            fail("a proof between equal sizes must be empty")
        if root1 != root2:
            fail("equal sizes with different roots", root1, root2)
        return
    if size1 == 0:
        if proof:
            fail("a proof from the empty tree must be empty")
        if root1 != EMPTY_ROOT:
            fail("the empty tree has another root", EMPTY_ROOT, root1)
        return
    if not proof:
        fail("consistency proof is empty")
    inner, border = _decompose(size1 - 1, size2)
    shift = (size1 & -size1).bit_length() - 1
    inner -= shift
    if size1 == 1 << shift:
        seed, rest = root1, list(proof)
    else:
        seed, rest = proof[0], list(proof[1:])
    if len(rest) != inner + border:
        fail("consistency proof has the wrong length")
    mask = (size1 - 1) >> shift
    h1 = seed
    h2 = seed
    for i in range(inner):
        p = rest[i]
        if (mask >> i) & 1:
            h1 = node_hash(p, h1)
            h2 = node_hash(p, h2)
        else:
            h2 = node_hash(h2, p)
    for p in rest[inner:]:
        h1 = node_hash(p, h1)
        h2 = node_hash(p, h2)
    if h1 != root1:
        fail("consistency proof leads to another first root", root1, h1)
    if h2 != root2:
        fail("consistency proof leads to another second root", root2, h2)
