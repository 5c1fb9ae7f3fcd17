"""Bank and organisation identifiers: IBAN, BIC, account numbers, LEI, registration numbers.

Owns their canonical forms. IBAN and BIC structure and checksums are schwifty's (IBAN: ISO
13616 mod 97-10, country length and BBAN structure; BIC: ISO 9362 structure and country);
LEI is python-stdnum's (ISO 17442). Hand-written here: only compaction and the BIC8 rule.
Error messages never contain the value. IBAN, BIC and LEI results (and failures) are
cached by raw value in bounded LRU caches.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache

from fiumatch.identifiers.caches import VALUE_CACHE
from fiumatch.identifiers.errors import (
    ChecksumError,
    EmptyValueError,
    Failure,
    IdentifierError,
    InvalidFormatError,
)

__all__ = [
    "bic8",
    "compact_alnum",
    "normalise_account_number",
    "normalise_bic",
    "normalise_iban",
    "normalise_lei",
    "normalise_registration_number",
]

_NOT_ALNUM = re.compile(r"[^0-9A-Z]")


def compact_alnum(value: str) -> str:
    """NFKC, upper case, and every character outside ``[0-9A-Z]`` removed."""
    return _NOT_ALNUM.sub("", unicodedata.normalize("NFKC", value).upper())


def _required(value: str, field: str) -> str:
    compact = compact_alnum(value)
    if not compact:
        raise EmptyValueError(field, "no letters or digits")
    return compact


def _cached(normalise: Callable[[str, str], str]) -> Callable[[str], str | Failure]:
    @lru_cache(maxsize=VALUE_CACHE)
    def cached(value: str) -> str | Failure:
        try:
            return normalise(value, "")
        except IdentifierError as exc:
            return Failure.of(exc)

    return cached


def normalise_iban(value: str, field: str = "iban") -> str:
    """Canonical IBAN: electronic format (upper case, no separators), checksum verified."""
    found = _iban_cached(value)
    if isinstance(found, Failure):
        raise found.at(field)
    return found


def _iban(value: str, field: str) -> str:
    from schwifty import IBAN
    from schwifty import exceptions as sx

    compact = _required(value, field)
    if compact.startswith("IBAN") and len(compact) > 4 and not compact[4].isdigit():
        compact = compact[4:]  # "IBAN DE89 ..." as printed on statements
    try:
        iban = IBAN(compact)
    except sx.InvalidChecksumDigits:
        raise ChecksumError(field, "IBAN check digits do not verify") from None
    except sx.InvalidCountryCode:
        raise InvalidFormatError(field, "IBAN country code unknown") from None
    except sx.InvalidLength:
        raise InvalidFormatError(field, "IBAN length wrong for its country") from None
    except sx.SchwiftyException:
        raise InvalidFormatError(field, "IBAN structure invalid") from None
    return str(iban.compact)


def normalise_bic(value: str, field: str = "bic") -> str:
    """Canonical BIC: 8 characters, or 11 when the branch code is not ``XXX``."""
    found = _bic_cached(value)
    if isinstance(found, Failure):
        raise found.at(field)
    return found


def _bic(value: str, field: str) -> str:
    from schwifty import BIC
    from schwifty import exceptions as sx

    compact = _required(value, field)
    try:
        bic = BIC(compact)
    except sx.InvalidCountryCode:
        raise InvalidFormatError(field, "BIC country code unknown") from None
    except sx.InvalidLength:
        raise InvalidFormatError(field, "BIC must have 8 or 11 characters") from None
    except sx.SchwiftyException:
        raise InvalidFormatError(field, "BIC structure invalid") from None
    out = str(bic.compact)
    return out[:8] if out.endswith("XXX") and len(out) == 11 else out


def bic8(bic: str) -> str:
    """The institution part of a canonical BIC (bank, country, location)."""
    return bic[:8]


def normalise_account_number(value: str, field: str = "account_number") -> str:
    """Canonical domestic account number: compacted, 1-34 characters, at least one digit."""
    compact = _required(value, field)
    if len(compact) > 34 or not any(ch.isdigit() for ch in compact):
        raise InvalidFormatError(field, "account number must be 1-34 characters with a digit")
    return compact


def normalise_lei(value: str, field: str = "lei") -> str:
    """Canonical LEI (ISO 17442): 20 characters, mod 97-10 verified."""
    found = _lei_cached(value)
    if isinstance(found, Failure):
        raise found.at(field)
    return found


def _lei(value: str, field: str) -> str:
    from stdnum import lei
    from stdnum.exceptions import InvalidChecksum, ValidationError

    compact = _required(value, field)
    try:
        return str(lei.validate(compact))
    except InvalidChecksum:
        raise ChecksumError(field, "LEI check digits do not verify") from None
    except ValidationError:
        raise InvalidFormatError(field, "LEI must be 20 alphanumeric characters") from None


_iban_cached = _cached(_iban)
_bic_cached = _cached(_bic)
_lei_cached = _cached(_lei)


def normalise_registration_number(value: str, field: str = "registration_number") -> str:
    """Canonical company registration number: compacted, 2-40 characters."""
    compact = _required(value, field)
    if not 2 <= len(compact) <= 40:
        raise InvalidFormatError(field, "registration number must be 2-40 characters")
    return compact

