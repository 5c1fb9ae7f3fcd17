"""RFC 6962 / RFC 9162 Merkle tree hashing: leaf and node hashes, roots, the compact range.

This module owns the hash functions of the audit log's tree and :class:`CompactRange`, the
incremental appender that keeps only the right frontier (one hash per set bit of the size).
Building and checking proofs lives in :mod:`fiumatch.auditlog.proofs`.

Tree nodes are addressed as ``(level, index)``: level 0 holds the leaf hashes, and node
``(level, index)`` is the root of the *complete* subtree over leaves
``[index * 2**level, (index + 1) * 2**level)``. Only complete subtrees have an address; the
right border of a tree whose size is not a power of two is made of ephemeral nodes that are
recomputed from complete ones. Complete nodes never change once made, so a store may write
them once and keep them forever (:meth:`CompactRange.append` says which to write).

It must never do I/O, read a clock or draw randomness, and never recurses over lists of
leaves: roots are computed with the iterative frontier, so a million leaves cost a million
leaf hashes, a million node hashes and O(log n) memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "GetNode",
    "StoredNode",
    "frontier_coordinates",
    "leaf_hash",
    "node_hash",
    "root_from_leaf_hashes",
    "root_of_leaves",
]

HASH_SIZE: Final = 32
_sha256 = hashlib.sha256
_LEAF_PREFIX: Final = b"\x00"
_NODE_PREFIX: Final = b"\x01"

#: The root of the empty tree: SHA-256 of the empty string (RFC 9162, section 2.1.1).
EMPTY_ROOT: Final = _sha256(b"").digest()

#: ``get_node(level, index) -> hash`` of a complete subtree; raises ``KeyError`` if absent.
GetNode = Callable[[int, int], bytes]


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``: the hash of one leaf."""
    return _sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``: the hash of an interior node."""
    return _sha256(_NODE_PREFIX + left + right).digest()


@dataclass(frozen=True, slots=True)
class StoredNode:
    """A complete subtree's hash and its address, as a store persists it."""

    level: int
    index: int
    hash: bytes


def frontier_coordinates(size: int) -> list[tuple[int, int]]:
    """Addresses of the complete subtrees that tile ``[0, size)``, left (largest) to right."""
    if size < 0:
        raise ValueError("size must not be negative")
    coords: list[tuple[int, int]] = []
    begin = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if (size >> level) & 1:
            coords.append((level, begin >> level))
            begin += 1 << level
    return coords


class CompactRange:
    """The right frontier of a tree over leaves ``[0, size)``: an O(log n) appender.

    ``hashes`` holds one complete-subtree hash per set bit of ``size``, largest first (the
    subtrees of :func:`frontier_coordinates`). Appending a leaf merges equal-sized subtrees
    (one node hash per trailing one bit of the old size: amortised O(1), worst O(log n)).
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []

    @classmethod
    def from_hashes(cls, size: int, hashes: Sequence[bytes]) -> CompactRange:
        """Resume from a stored frontier (the hashes of :func:`frontier_coordinates`)."""
        if size < 0 or len(hashes) != size.bit_count():
            raise ValueError("a frontier holds one hash per set bit of the size")
        if any(len(h) != HASH_SIZE for h in hashes):
            raise ValueError("frontier hashes are 32 bytes")
        cr = cls()
        cr._size = size
        cr._hashes = [bytes(h) for h in hashes]
        return cr

    @classmethod
    def from_store(cls, size: int, get_node: GetNode) -> CompactRange:
        """Resume from a node store: O(log n) ``get_node`` calls."""
        return cls.from_hashes(size, [get_node(lv, ix) for lv, ix in frontier_coordinates(size)])

    @property
    def size(self) -> int:
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        return tuple(self._hashes)

    def copy(self) -> CompactRange:
        return CompactRange.from_hashes(self._size, self._hashes)

    def append(self, leaf: bytes) -> list[StoredNode]:
        """Append one leaf *hash*; return the complete nodes it made (the leaf first)."""
        if len(leaf) != HASH_SIZE:
            raise ValueError("append takes a 32-byte leaf hash")
        index = self._size
        made = [StoredNode(0, index, leaf)]
        hashes = self._hashes
        h = leaf
        level = 0
        while index & 1:
            h = _sha256(_NODE_PREFIX + hashes.pop() + h).digest()
            level += 1
            index >>= 1
            made.append(StoredNode(level, index, h))
        hashes.append(h)
        self._size += 1
        return made

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Append many leaf hashes without reporting nodes (the verifier's fast path).

        Leaf hashes are trusted to be 32 bytes (they come from :func:`leaf_hash`).
        """
        hashes = self._hashes
        pop = hashes.pop
        push = hashes.append
        size = self._size
        for h in leaves:
            n = size
            while n & 1:
                h = _sha256(_NODE_PREFIX + pop() + h).digest()
                n >>= 1
            push(h)
            size += 1
        self._size = size

    def root(self) -> bytes:
        """The RFC 6962 root hash of ``[0, size)``."""
        hashes = self._hashes
        if not hashes:
            return EMPTY_ROOT
        h = hashes[-1]
        for left in reversed(hashes[:-1]):
            h = _sha256(_NODE_PREFIX + left + h).digest()
        return h


def root_from_leaf_hashes(leaves: Iterable[bytes]) -> bytes:
    """The root over already-hashed leaves, by the iterative frontier."""
    cr = CompactRange()
    cr.extend(leaves)
    return cr.root()


def root_of_leaves(data: Iterable[bytes]) -> bytes:
    """The root over raw leaf data (each hashed with :func:`leaf_hash`)."""
    return root_from_leaf_hashes(leaf_hash(d) for d in data)
