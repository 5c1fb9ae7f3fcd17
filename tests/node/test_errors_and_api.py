"""Error codes are stable and unique; public names exist as listed in ``__all__``."""

from __future__ import annotations

import importlib
import inspect

import pytest

from fiumatch.errors import FiumatchError
from fiumatch.node import errors as node_errors
from fiumatch.node.errors import (
    AgreementRefusedError,
    BudgetExhaustedError,
    ConflictError,
    NodeAuthError,
    NodeError,
    NotFoundError,
    PermissionDeniedError,
    SettingsError,
)
from fiumatch.store import errors as store_errors

MODULES = [
    "fiumatch.node.errors",
    "fiumatch.node.sealing",
    "fiumatch.node.keys",
    "fiumatch.node.httpsig",
    "fiumatch.node.settings",
    "fiumatch.node.tls",
    "fiumatch.store",
    "fiumatch.store.errors",
]


def _error_classes() -> list[type[FiumatchError]]:
    found: list[type[FiumatchError]] = []
    for module in (node_errors, store_errors):
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, FiumatchError) and obj is not FiumatchError:
                found.append(obj)
    return found


def test_every_error_class_has_its_own_code() -> None:
    classes = _error_classes()
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes)), sorted(codes)
    assert len(classes) >= 25


# The wire contract: these codes and statuses must never change.
EXPECTED = {
    "NodeError": ("node_error", 500),
    "NodeAuthError": ("auth_failed", 401),
    "UnknownKeyError": ("unknown_key", 401),
    "BadSignatureError": ("bad_signature", 401),
    "StaleSignatureError": ("stale_signature", 401),
    "ReplayedNonceError": ("replayed_nonce", 401),
    "DigestMismatchError": ("digest_mismatch", 401),
    "MissingComponentError": ("missing_component", 401),
    "BadTokenError": ("bad_token", 401),
    "PermissionDeniedError": ("permission_denied", 403),
    "FilterNotYoursError": ("filter_not_yours", 403),
    "AgreementRefusedError": ("agreement_refused", 403),
    "BudgetExhaustedError": ("budget_exhausted", 429),
    "NotFoundError": ("not_found", 404),
    "ConflictError": ("conflict", 409),
    "FingerprintMismatchError": ("fingerprint_mismatch", 409),
    "EpochRetiredError": ("epoch_retired", 409),
    "BodyTooLargeError": ("body_too_large", 413),
    "BadRequestError": ("bad_request", 400),
    "PeerRefusedError": ("peer_refused", 502),
    "SettingsError": ("settings_error", 500),
    "SealingError": ("sealing_error", 500),
    "StoreError": ("store_error", 500),
    "SchemaTooNewError": ("schema_too_new", 500),
    "RecordNotFoundError": ("store_not_found", 404),
    "RecordConflictError": ("store_conflict", 409),
    "StoreBusyError": ("store_busy", 503),
}


@pytest.mark.parametrize(("name", "expected"), sorted(EXPECTED.items()))
def test_codes_and_statuses_are_stable(name: str, expected: tuple[str, int]) -> None:
    cls = getattr(node_errors, name, None) or getattr(store_errors, name)
    assert (cls.code, cls.http_status) == expected


def test_auth_errors_share_a_base() -> None:
    for name in EXPECTED:
        cls = getattr(node_errors, name, None)
        if cls is not None and EXPECTED[name][1] == 401:
            assert issubclass(cls, NodeAuthError)
    assert issubclass(NodeAuthError, NodeError)
    assert issubclass(NodeError, FiumatchError)


def test_agreement_refusal_carries_the_clause() -> None:
    error = AgreementRefusedError("the purpose is not covered", clause="purposes")
    assert error.clause == "purposes"
    assert error.to_dict() == {
        "error": "agreement_refused",
        "reason": "the purpose is not covered",
        "details": {"clause": "purposes"},
    }


def test_budget_exhaustion_carries_retry_after_and_refill_time() -> None:
    error = BudgetExhaustedError("budget used up", retry_after=120, refill_at=1_760_000_120)
    assert (error.retry_after, error.refill_at) == (120, 1_760_000_120)
    assert error.to_dict()["details"] == {"retry_after": 120, "refill_at": 1_760_000_120}
    # Retry-After: 0 would tell the asker to retry at once, into the same refusal
    assert BudgetExhaustedError(retry_after=-5, refill_at=0).retry_after == 1
    assert BudgetExhaustedError(retry_after=0, refill_at=0).retry_after == 1


def test_settings_error_names_the_setting_and_defaults_its_reason() -> None:
    error = SettingsError(setting="listen.port")
    assert error.setting == "listen.port"
    assert error.reason  # the class docstring
    assert error.to_dict()["details"] == {"setting": "listen.port"}


@pytest.mark.parametrize("cls", [NotFoundError, ConflictError, PermissionDeniedError])
def test_plain_errors_have_a_default_reason(cls: type[NodeError]) -> None:
    assert cls().to_dict() == {"error": cls.code, "reason": cls.__doc__}


@pytest.mark.parametrize("module_name", MODULES)
def test_all_lists_only_existing_names_once(module_name: str) -> None:
    module = importlib.import_module(module_name)
    names = list(module.__all__)
    missing = [n for n in names if not hasattr(module, n)]
    assert not missing
    assert len(names) == len(set(names))
