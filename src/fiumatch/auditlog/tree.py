"""A Merkle tree over a pluggable node store: append, roots at any size, proofs.

This module owns :class:`NodeStore` (the two methods a storage layer implements),
:class:`DictNodeStore` (the in-memory reference store, for tests and benchmarks) and
:class:`MerkleTree` (a :class:`~fiumatch.auditlog.merkle.CompactRange` plus a store).

It must never do I/O itself: a SQLite-backed store is a shell that the node passes in. The
tree writes every complete node exactly once (``put_nodes``) and never rewrites one, so the
store may be append-only. Write the nodes in the same transaction as the entry they come from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from fiumatch.auditlog.errors import ProofRangeError
from fiumatch.auditlog.merkle import CompactRange, StoredNode, leaf_hash
from fiumatch.auditlog.proofs import consistency_proof, inclusion_proof, root_at

__all__ = ["AppendResult", "DictNodeStore", "MerkleTree", "NodeStore"]


class NodeStore(Protocol):
    """What a tree needs from storage. ``get_node`` raises ``KeyError`` for a missing node."""

    def get_node(self, level: int, index: int) -> bytes: ...

    def put_nodes(self, nodes: Sequence[StoredNode]) -> None: ...


class DictNodeStore:
    """Complete nodes in a ``dict`` keyed by ``(level, index)``."""

    __slots__ = ("nodes",)

    def __init__(self) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}

    def get_node(self, level: int, index: int) -> bytes:
        return self.nodes[(level, index)]

    def put_nodes(self, nodes: Sequence[StoredNode]) -> None:
        for n in nodes:
            self.nodes[(n.level, n.index)] = n.hash


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Where a leaf went: its index (= the entry's sequence number), its hash, the new nodes."""

    index: int
    leaf_hash: bytes
    nodes: tuple[StoredNode, ...]


class MerkleTree:
    """An append-only RFC 6962 tree whose complete nodes live in ``store``.

    ``size`` resumes a tree the store already holds (O(log n) reads). Proofs may be asked for
    any size up to the current one: complete nodes of older trees never change.
    """

    __slots__ = ("_range", "_store")

    def __init__(self, store: NodeStore, size: int = 0) -> None:
        self._store = store
        self._range = (
            CompactRange.from_store(size, store.get_node) if size else CompactRange()
        )

    @property
    def size(self) -> int:
        return self._range.size

    @property
    def frontier(self) -> CompactRange:
        """A copy of the current right frontier."""
        return self._range.copy()

    def append(self, data: bytes) -> AppendResult:
        """Hash ``data`` as the next leaf, store the complete nodes it makes."""
        h = leaf_hash(data)
        index = self._range.size
        nodes = self._range.append(h)
        self._store.put_nodes(nodes)
        return AppendResult(index=index, leaf_hash=h, nodes=tuple(nodes))

    def root(self) -> bytes:
        return self._range.root()

    def root_at(self, size: int) -> bytes:
        self._check_size(size)
        return root_at(size, self._store.get_node)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        size = self.size if size is None else size
        self._check_size(size)
        return inclusion_proof(index, size, self._store.get_node)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        size2 = self.size if size2 is None else size2
        self._check_size(size2)
        return consistency_proof(size1, size2, self._store.get_node)

    def _check_size(self, size: int) -> None:
        if size > self.size:
            raise ProofRangeError("size beyond the tree", size=size, tree_size=self.size)
