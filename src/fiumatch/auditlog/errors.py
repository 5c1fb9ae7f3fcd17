"""Typed errors of the audit log, each with a stable ``code`` (never renamed, never reused).

This module owns the ``AuditLogError`` branch of the tree rooted at
:class:`fiumatch.errors.FiumatchError`. It never imports anything but that root.

Proof failures carry both roots (the one the caller trusts and the one the proof leads to), as
transparency-dev/merkle does. Verification failures name the FIRST bad place in a bundle
(``location``: ``"entry 17"``, ``"checkpoint 3"``, ``"proof 3"``, ``"receipt 0"``,
``"record 41"``, ``"bundle header"``, ``"bundle end"``) and say what was ``expected`` and what
was ``found``. Messages hold sizes, indexes, hashes and field names only: never an entry's
free-text value, never a key or a signature.

Tree::

    AuditLogError                         audit_log_error             500
    ├── EntryError                        audit_entry_invalid         422
    │   └── IdentifierLikeValueError      audit_identifier_like_value 422
    ├── NoteError                         audit_note_invalid          422
    ├── SignatureError                    audit_signature_invalid     422
    │   ├── UnknownSignerError            audit_unknown_signer        422
    │   └── BadSignatureError             audit_bad_signature         422
    ├── ProofError                        audit_proof_invalid         422  (both roots)
    │   ├── InclusionProofError           audit_inclusion_failed      422
    │   └── ConsistencyProofError         audit_consistency_failed    422
    ├── ProofRangeError                   audit_proof_range           400
    ├── MissingNodeError                  audit_missing_node          500
    ├── SplitViewError                    audit_split_view            409  (both roots)
    ├── ExportError                       audit_export_invalid        500
    └── VerificationError                 audit_verification_failed   422  (location)
        ├── BundleFormatError             audit_bundle_malformed
        │   └── BundleTruncatedError      audit_bundle_truncated
        ├── BadEntryError                 audit_bad_entry
        ├── SequenceGapError              audit_sequence_gap
        ├── TimeRegressionError           audit_time_regression
        ├── CheckpointError               audit_bad_checkpoint
        │   └── CheckpointSignatureError  audit_checkpoint_signature
        ├── RootMismatchError             audit_root_mismatch
        ├── ConsistencyError              audit_consistency_mismatch
        ├── UnsignedTailError             audit_unsigned_tail
        ├── ReceiptError                  audit_bad_receipt
        ├── ForkError                     audit_fork_detected
        ├── ReconcileError                audit_reconcile_mismatch
        └── PolicyViolationError          audit_policy_violation           (rule)
"""

from __future__ import annotations

from fiumatch.errors import FiumatchError

__all__ = [
    "AuditLogError",
    "BadEntryError",
    "BadSignatureError",
    "BundleFormatError",
    "BundleTruncatedError",
    "CheckpointError",
    "CheckpointSignatureError",
    "ConsistencyError",
    "ConsistencyProofError",
    "EntryError",
    "ExportError",
    "ForkError",
    "IdentifierLikeValueError",
    "InclusionProofError",
    "MissingNodeError",
    "NoteError",
    "PolicyViolationError",
    "ProofError",
    "ProofRangeError",
    "ReceiptError",
    "ReconcileError",
    "RootMismatchError",
    "SequenceGapError",
    "SignatureError",
    "SplitViewError",
    "TimeRegressionError",
    "UnknownSignerError",
    "UnsignedTailError",
    "VerificationError",
]


class AuditLogError(FiumatchError):
    """The audit log refused an input or found evidence of tampering."""

    code = "audit_log_error"
    http_status = 500


class EntryError(AuditLogError):
    """An audit entry does not fit the entry schema."""

    code = "audit_entry_invalid"
    http_status = 422


class IdentifierLikeValueError(EntryError):
    """A field value looks like a subject identifier (an e-mail, an IBAN, a long number)."""

    code = "audit_identifier_like_value"


class NoteError(AuditLogError):
    """A signed note, checkpoint, cosignature or receipt is malformed."""

    code = "audit_note_invalid"
    http_status = 422


class SignatureError(AuditLogError):
    """A note signature does not verify."""

    code = "audit_signature_invalid"
    http_status = 422


class UnknownSignerError(SignatureError):
    """The note carries no signature line from the expected key."""

    code = "audit_unknown_signer"


class BadSignatureError(SignatureError):
    """A signature line from the expected key fails to verify."""

    code = "audit_bad_signature"


def _hex(value: bytes | None) -> str | None:
    return None if value is None else value.hex()


class ProofError(AuditLogError):
    """A Merkle proof does not lead to the trusted root.

    ``expected_root`` is the root the caller trusts, ``computed_root`` the one the proof leads
    to (``None`` when the proof is too malformed to compute one).
    """

    code = "audit_proof_invalid"
    http_status = 422

    def __init__(
        self,
        reason: str = "",
        *,
        expected_root: bytes | None = None,
        computed_root: bytes | None = None,
        **details: object,
    ) -> None:
        self.expected_root = expected_root
        self.computed_root = computed_root
        super().__init__(
            reason,
            expected_root=_hex(expected_root),
            computed_root=_hex(computed_root),
            **details,
        )


class InclusionProofError(ProofError):
    """An inclusion proof does not lead to the trusted root."""

    code = "audit_inclusion_failed"


class ConsistencyProofError(ProofError):
    """A consistency proof does not connect the two trusted roots.

    ``expected_root``/``computed_root`` describe the root that failed; ``first_root`` and
    ``second_root`` are the two trusted roots the proof should have connected.
    """

    code = "audit_consistency_failed"

    def __init__(
        self,
        reason: str = "",
        *,
        first_root: bytes,
        second_root: bytes,
        expected_root: bytes | None = None,
        computed_root: bytes | None = None,
        **details: object,
    ) -> None:
        self.first_root = first_root
        self.second_root = second_root
        super().__init__(
            reason,
            expected_root=expected_root,
            computed_root=computed_root,
            first_root=first_root.hex(),
            second_root=second_root.hex(),
            **details,
        )


class ProofRangeError(AuditLogError):
    """A proof was asked for an index or size the tree does not have."""

    code = "audit_proof_range"
    http_status = 400


class MissingNodeError(AuditLogError):
    """The node store lacks a tree node the proof needs (the store is incomplete)."""

    code = "audit_missing_node"
    http_status = 500


class SplitViewError(AuditLogError):
    """Two checkpoints signed by the same log key cannot both be honest.

    ``evidence`` is ``"same_size_different_root"`` (conclusive on its own: two signed notes)
    or ``"consistency_proof_failed"`` (the log could not prove the older tree is a prefix).
    """

    code = "audit_split_view"
    http_status = 409

    def __init__(
        self,
        reason: str = "",
        *,
        evidence: str,
        first_size: int,
        first_root: bytes,
        second_size: int,
        second_root: bytes,
    ) -> None:
        self.evidence = evidence
        self.first_size = first_size
        self.first_root = first_root
        self.second_size = second_size
        self.second_root = second_root
        super().__init__(
            reason,
            evidence=evidence,
            first_size=first_size,
            first_root=first_root.hex(),
            second_size=second_size,
            second_root=second_root.hex(),
        )


class ExportError(AuditLogError):
    """The caller asked to export a bundle that could not verify (a bug in the caller)."""

    code = "audit_export_invalid"
    http_status = 500


class VerificationError(AuditLogError):
    """An offline check failed; ``location`` names the first bad place in the bundle."""

    code = "audit_verification_failed"
    http_status = 422

    def __init__(
        self,
        reason: str = "",
        *,
        location: str,
        expected: object = None,
        found: object = None,
        **details: object,
    ) -> None:
        self.location = location
        self.expected = expected
        self.found = found
        super().__init__(
            f"{location}: {reason}" if reason else location,
            location=location,
            expected=expected,
            found=found,
            **details,
        )


class BundleFormatError(VerificationError):
    """The bundle's bytes do not follow the bundle format."""

    code = "audit_bundle_malformed"


class BundleTruncatedError(BundleFormatError):
    """The bundle ends before its end record (or before a checkpoint known to the auditor)."""

    code = "audit_bundle_truncated"


class BadEntryError(VerificationError):
    """An entry in the bundle does not decode under the entry schema."""

    code = "audit_bad_entry"


class SequenceGapError(VerificationError):
    """An entry's sequence number is not the next leaf index."""

    code = "audit_sequence_gap"


class TimeRegressionError(VerificationError):
    """An entry's time is earlier than the entry before it."""

    code = "audit_time_regression"


class CheckpointError(VerificationError):
    """A checkpoint is malformed, misplaced or for another origin."""

    code = "audit_bad_checkpoint"


class CheckpointSignatureError(CheckpointError):
    """A checkpoint is not signed by the pinned key, or a known cosignature fails."""

    code = "audit_checkpoint_signature"


class RootMismatchError(VerificationError):
    """The root recomputed from the entries differs from the signed checkpoint's root."""

    code = "audit_root_mismatch"


class ConsistencyError(VerificationError):
    """A consistency proof between two successive checkpoints is missing or fails."""

    code = "audit_consistency_mismatch"


class UnsignedTailError(VerificationError):
    """Entries follow the last checkpoint: no signature covers them."""

    code = "audit_unsigned_tail"


class ReceiptError(VerificationError):
    """A receipt does not verify, or does not match the log it points into."""

    code = "audit_bad_receipt"


class ForkError(VerificationError):
    """A checkpoint known from elsewhere disagrees with the bundle: the log showed a split view."""

    code = "audit_fork_detected"


class ReconcileError(VerificationError):
    """Two nodes logged the same exchange differently."""

    code = "audit_reconcile_mismatch"


class PolicyViolationError(VerificationError):
    """An entry breaks the agreement in force; ``rule`` names the rule (stable strings)."""

    code = "audit_policy_violation"

    def __init__(
        self,
        reason: str = "",
        *,
        rule: str,
        location: str,
        expected: object = None,
        found: object = None,
        **details: object,
    ) -> None:
        self.rule = rule
        super().__init__(
            reason, location=location, expected=expected, found=found, rule=rule, **details
        )
