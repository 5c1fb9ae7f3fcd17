"""fiumatch.auditlog: the pure core of the tamper-evident audit log.

Small modules, one job each (after transparency-dev/merkle and tessera):

* :mod:`~fiumatch.auditlog.merkle`: RFC 6962 hashing, roots, the O(log n) frontier appender;
* :mod:`~fiumatch.auditlog.proofs`: inclusion/consistency proofs built from a
  ``get_node(level, index)`` callback, and their verification;
* :mod:`~fiumatch.auditlog.tree`: a Merkle tree over a pluggable node store;
* :mod:`~fiumatch.auditlog.entry`: the closed entry schema and its canonical encoding;
* :mod:`~fiumatch.auditlog.checkpoint`: C2SP signed checkpoints, cosignatures, receipts,
  split-view detection;
* :mod:`~fiumatch.auditlog.bundle`: the auditor's export format;
* :mod:`~fiumatch.auditlog.verify`: ``verify``, ``reconcile``, ``check_policy``.

The package never does I/O, reads a clock or draws randomness: time comes in as
``time_ms``/``timestamp`` arguments, storage as a node store, keys as objects. Formats are
described for auditors in docs/AUDIT.md.
"""

from __future__ import annotations

from fiumatch.auditlog.bundle import (
    Bundle,
    BundleHeader,
    BundleWriter,
    ConsistencyRecord,
    HeldReceipt,
    decode_bundle,
    export_bundle,
)
from fiumatch.auditlog.checkpoint import (
    Checkpoint,
    CosignatureSigner,
    CosignatureVerifier,
    NoteSigner,
    NoteVerifier,
    Receipt,
    add_cosignature,
    check_split_view,
    make_receipt,
    open_checkpoint,
    open_cosignatures,
    sign_checkpoint,
    verify_receipt,
    witness_cosign,
)
from fiumatch.auditlog.entry import (
    Change,
    Decision,
    Direction,
    Entry,
    EventType,
    Outcome,
    RefusalClause,
    body_digest,
    decode_entry,
    encode_entry,
    entry_from_dict,
    entry_to_dict,
)
from fiumatch.auditlog.merkle import EMPTY_ROOT, CompactRange, StoredNode, leaf_hash
from fiumatch.auditlog.proofs import (
    consistency_proof,
    inclusion_proof,
    plan_consistency,
    plan_inclusion,
    root_at,
    verify_consistency,
    verify_inclusion,
)
from fiumatch.auditlog.tree import AppendResult, DictNodeStore, MerkleTree, NodeStore
from fiumatch.auditlog.verify import (
    AgreementPolicy,
    PolicyReport,
    PolicyRule,
    ReconcileReport,
    VerifyReport,
    check_policy,
    reconcile,
    verify,
)

__all__ = [
    "EMPTY_ROOT",
    "AgreementPolicy",
    "AppendResult",
    "Bundle",
    "BundleHeader",
    "BundleWriter",
    "Change",
    "Checkpoint",
    "CompactRange",
    "ConsistencyRecord",
    "CosignatureSigner",
    "CosignatureVerifier",
    "Decision",
    "DictNodeStore",
    "Direction",
    "Entry",
    "EventType",
    "HeldReceipt",
    "MerkleTree",
    "NodeStore",
    "NoteSigner",
    "NoteVerifier",
    "Outcome",
    "PolicyReport",
    "PolicyRule",
    "Receipt",
    "ReconcileReport",
    "RefusalClause",
    "StoredNode",
    "VerifyReport",
    "add_cosignature",
    "body_digest",
    "check_policy",
    "check_split_view",
    "consistency_proof",
    "decode_bundle",
    "decode_entry",
    "encode_entry",
    "entry_from_dict",
    "entry_to_dict",
    "export_bundle",
    "inclusion_proof",
    "leaf_hash",
    "make_receipt",
    "open_checkpoint",
    "open_cosignatures",
    "plan_consistency",
    "plan_inclusion",
    "reconcile",
    "root_at",
    "sign_checkpoint",
    "verify",
    "verify_consistency",
    "verify_inclusion",
    "verify_receipt",
    "witness_cosign",
]
