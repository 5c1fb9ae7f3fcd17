"""Typed errors of the node shell, each with a stable ``code`` and the HTTP status to answer with.

This module owns the ``NodeError`` branch of the tree rooted at
:class:`fiumatch.errors.FiumatchError`. The FastAPI app maps these to responses in one place;
everything else only raises. Codes are part of the wire contract: never rename or reuse one.

Reasons and details never contain secrets, passphrases, keys, identifiers, nonces or signature
bytes: they may be shown to a peer, an analyst, or written to the audit log. A setting is named,
its value is not.

Tree::

    NodeError                          node_error            500
    ├── NodeAuthError                  auth_failed           401
    │   ├── UnknownKeyError            unknown_key
    │   ├── BadSignatureError          bad_signature
    │   ├── StaleSignatureError        stale_signature
    │   ├── ReplayedNonceError         replayed_nonce
    │   ├── DigestMismatchError        digest_mismatch
    │   ├── MissingComponentError      missing_component
    │   └── BadTokenError              bad_token
    ├── PermissionDeniedError          permission_denied     403
    │   └── FilterNotYoursError        filter_not_yours
    ├── AgreementRefusedError          agreement_refused     403   details: clause
    ├── BudgetExhaustedError           budget_exhausted      429   details: retry_after, refill_at
    ├── RateLimitedError               rate_limited          429   details: retry_after
    ├── NotFoundError                  not_found             404
    ├── ConflictError                  conflict              409
    │   ├── FingerprintMismatchError   fingerprint_mismatch        details: announced
    │   └── EpochRetiredError          epoch_retired               details: epoch
    ├── BadRequestError                bad_request           400
    ├── BodyTooLargeError              body_too_large        413   details: max_body_bytes
    ├── PeerRefusedError               peer_refused          502   details: peer_code
    ├── SettingsError                  settings_error        500   details: setting
    └── SealingError                   sealing_error         500
        ├── SealedFormatError          sealed_format
        ├── WrongPassphraseError       wrong_passphrase
        ├── WrongPurposeError          wrong_purpose
        ├── TamperedSecretError        tampered_secret
        ├── KeyFileMissingError        key_file_missing
        ├── KeyFileExistsError         key_file_exists
        └── InsecureKeyFileError       insecure_key_file
"""

from __future__ import annotations

from fiumatch.errors import FiumatchError

__all__ = [
    "AgreementRefusedError",
    "BadRequestError",
    "BadSignatureError",
    "BadTokenError",
    "BodyTooLargeError",
    "BudgetExhaustedError",
    "ConflictError",
    "DigestMismatchError",
    "EpochRetiredError",
    "FilterNotYoursError",
    "FingerprintMismatchError",
    "InsecureKeyFileError",
    "KeyFileExistsError",
    "KeyFileMissingError",
    "MissingComponentError",
    "NodeAuthError",
    "NodeError",
    "NotFoundError",
    "PeerRefusedError",
    "PermissionDeniedError",
    "RateLimitedError",
    "ReplayedNonceError",
    "SealedFormatError",
    "SealingError",
    "SettingsError",
    "StaleSignatureError",
    "TamperedSecretError",
    "UnknownKeyError",
    "WrongPassphraseError",
    "WrongPurposeError",
]


class NodeError(FiumatchError):
    """The node could not do what was asked."""

    code = "node_error"
    http_status = 500


# --- authentication (401) -------------------------------------------------------------------


class NodeAuthError(NodeError):
    """The request or response could not be authenticated."""

    code = "auth_failed"
    http_status = 401


class UnknownKeyError(NodeAuthError):
    """The signature names a key this node does not know (or no key at all)."""

    code = "unknown_key"


class BadSignatureError(NodeAuthError):
    """The signature is malformed or does not verify."""

    code = "bad_signature"


class StaleSignatureError(NodeAuthError):
    """The signature was created outside the allowed window, has expired, or lives too long."""

    code = "stale_signature"


class ReplayedNonceError(NodeAuthError):
    """The signature's nonce was already seen."""

    code = "replayed_nonce"


class DigestMismatchError(NodeAuthError):
    """The Content-Digest is missing, malformed, or does not match the body."""

    code = "digest_mismatch"


class MissingComponentError(NodeAuthError):
    """A component the policy requires is not covered, or a covered component is absent."""

    code = "missing_component"


class BadTokenError(NodeAuthError):
    """The bearer token is malformed, unknown, disabled or wrong."""

    code = "bad_token"


# --- authorisation and policy ---------------------------------------------------------------


class PermissionDeniedError(NodeError):
    """The authenticated caller's role does not allow this action."""

    code = "permission_denied"
    http_status = 403


class FilterNotYoursError(PermissionDeniedError):
    """A filter-mode HELLO names the filter this node built for a different peer: filters are
    per peer, so a peer may only ever refresh its own (an unknown or stale id is not this)."""

    code = "filter_not_yours"


class AgreementRefusedError(NodeError):
    """No agreement with the peer allows this; ``details['clause']`` names the clause."""

    code = "agreement_refused"
    http_status = 403

    def __init__(self, reason: str = "", *, clause: str, **details: object) -> None:
        self.clause = clause
        super().__init__(reason, clause=clause, **details)


class BudgetExhaustedError(NodeError):
    """The peer's query budget for this epoch is used up.

    ``retry_after`` is the number of whole seconds until the budget refills (the value of an
    HTTP ``Retry-After`` header); ``refill_at`` the Unix time at which it does.
    """

    code = "budget_exhausted"
    http_status = 429

    def __init__(
        self, reason: str = "", *, retry_after: int, refill_at: int, **details: object
    ) -> None:
        self.retry_after = max(1, int(retry_after))  # 0 would mean: retry at once, in vain
        self.refill_at = int(refill_at)
        super().__init__(reason, retry_after=self.retry_after, refill_at=self.refill_at, **details)


class RateLimitedError(NodeError):
    """This client (bearer token or peer key) sent more requests than ``limits.*`` allow.

    ``retry_after`` is the number of whole seconds until a request will be accepted again.
    """

    code = "rate_limited"
    http_status = 429

    def __init__(self, reason: str = "", *, retry_after: int) -> None:
        self.retry_after = max(1, int(retry_after))
        super().__init__(reason, retry_after=self.retry_after)


class NotFoundError(NodeError):
    """The thing asked for does not exist (or the caller may not know that it does)."""

    code = "not_found"
    http_status = 404


class ConflictError(NodeError):
    """The request conflicts with the current state (a duplicate, or a finished item)."""

    code = "conflict"
    http_status = 409


class FingerprintMismatchError(ConflictError):
    """The key a peer announces does not have the fingerprint obtained out of band; nothing was
    pinned. ``details['announced']`` is the fingerprint the URL announced (public)."""

    code = "fingerprint_mismatch"


class EpochRetiredError(ConflictError):
    """The request names a key epoch that is retired (its key material is destroyed)."""

    code = "epoch_retired"


class BadRequestError(NodeError):
    """The request is malformed (not the JSON object or the fields this route takes)."""

    code = "bad_request"
    http_status = 400


class BodyTooLargeError(NodeError):
    """The request body is larger than this node accepts (``sessions.max_body_bytes``)."""

    code = "body_too_large"
    http_status = 413


class PeerRefusedError(NodeError):
    """A peer refused our request or could not be reached; ``details['peer_code']`` is the
    peer's error code (``unreachable`` when there was no answer)."""

    code = "peer_refused"
    http_status = 502


# --- local configuration and secrets (500: never the caller's fault) -------------------------


class SettingsError(NodeError):
    """The node's settings are invalid; ``details['setting']`` names the offending setting."""

    code = "settings_error"
    http_status = 500

    def __init__(self, reason: str = "", *, setting: str, **details: object) -> None:
        self.setting = setting
        super().__init__(reason, setting=setting, **details)


class SealingError(NodeError):
    """A sealed secret could not be opened or written."""

    code = "sealing_error"
    http_status = 500


class SealedFormatError(SealingError):
    """The bytes are not a sealed secret this version understands."""

    code = "sealed_format"


class WrongPassphraseError(SealingError):
    """The passphrase (or key file) does not open this sealed secret."""

    code = "wrong_passphrase"


class WrongPurposeError(SealingError):
    """The sealed secret was sealed for another purpose."""

    code = "wrong_purpose"


class TamperedSecretError(SealingError):
    """The sealed secret was modified after sealing."""

    code = "tampered_secret"


class KeyFileMissingError(SealingError):
    """The key file does not exist or is not a regular file."""

    code = "key_file_missing"


class KeyFileExistsError(SealingError):
    """A key file is already there; keys are never overwritten silently."""

    code = "key_file_exists"


class InsecureKeyFileError(SealingError):
    """The key file is readable or writable by its group or by others; it must be mode 0600."""

    code = "insecure_key_file"
