"""MerkleTree over the dict store: append, resume, proofs at past sizes."""

from __future__ import annotations

import pytest

from fiumatch.auditlog.errors import ProofRangeError
from fiumatch.auditlog.merkle import leaf_hash
from fiumatch.auditlog.proofs import verify_consistency, verify_inclusion
from fiumatch.auditlog.tree import DictNodeStore, MerkleTree
from tests.auditlog import reference


def test_tree_appends_resumes_and_proves_old_sizes() -> None:
    store = DictNodeStore()
    tree = MerkleTree(store)
    leaves = [f"leaf {i}".encode() for i in range(37)]
    roots = []
    for i, data in enumerate(leaves[:20]):
        result = tree.append(data)
        assert result.index == i
        assert result.leaf_hash == leaf_hash(data)
        assert result.nodes[0].hash == result.leaf_hash
        roots.append(tree.root())
    resumed = MerkleTree(store, size=20)
    assert resumed.root() == roots[-1]
    assert resumed.frontier.hashes == tree.frontier.hashes
    for data in leaves[20:]:
        resumed.append(data)
    assert resumed.root() == reference.mth(leaves)
    assert resumed.root_at(13) == roots[12] == reference.mth(leaves[:13])
    proof = resumed.inclusion_proof(11, 13)
    verify_inclusion(11, 13, leaf_hash(leaves[11]), proof, roots[12])
    verify_consistency(13, 37, roots[12], resumed.root(), resumed.consistency_proof(13))
    assert resumed.inclusion_proof(36) == reference.path(36, leaves)
    assert len(store.nodes) == 37 + 18 + 9 + 4 + 2 + 1
    with pytest.raises(ProofRangeError):
        resumed.inclusion_proof(0, 38)
    with pytest.raises(ProofRangeError):
        resumed.root_at(38)
    with pytest.raises(ProofRangeError):
        resumed.consistency_proof(14, 13)
