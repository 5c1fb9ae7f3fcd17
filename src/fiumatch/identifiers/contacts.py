"""Contacts: phone numbers to E.164, e-mail addresses to a canonical lower-case form.

Phone parsing and validity are libphonenumber's (the ``phonenumbers`` port, whose metadata
version is named in the spec). Hand-written: the ``00`` international-prefix rewrite and
the e-mail rules (one ``@``, case folded, domain in IDNA ASCII form). No provider-specific
rewriting (no Gmail dot removal). Never echoes a number or address in an error.

Results (and failures) are cached by raw value in bounded LRU caches: parsing a number with
libphonenumber costs tens of microseconds and the same number recurs across records.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from types import ModuleType

from fiumatch.identifiers.caches import VALUE_CACHE
from fiumatch.identifiers.countries import normalise_country
from fiumatch.identifiers.errors import (
    EmptyValueError,
    Failure,
    IdentifierError,
    InvalidFormatError,
)

__all__ = ["CACHE_SIZE", "normalise_email", "normalise_phone"]

#: Entries per normaliser cache (see fiumatch.identifiers.caches).
CACHE_SIZE = VALUE_CACHE

_PHONE_JUNK = re.compile(r"[^0-9+]")
_LOCAL = re.compile(r"[^\s@\"(),:;<>\[\]\\]+")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def normalise_phone(value: str, region: str | None = None, field: str = "phone") -> str:
    """E.164 (``+`` and digits). ``region`` (alpha-2/alpha-3) is used for national numbers."""
    found = _phone_cached(value, region)
    if isinstance(found, Failure):
        raise found.at(field)
    return found


@lru_cache(maxsize=CACHE_SIZE)
def _phone_cached(value: str, region: str | None) -> str | Failure:
    try:
        return _phone(value, region, "")
    except IdentifierError as exc:
        return Failure.of(exc)


@lru_cache(maxsize=1)
def _phonenumbers() -> ModuleType:
    """phonenumbers, with its compiled-pattern cache on: its metadata patterns outnumber the
    ``re`` module's own cache (512 entries), so without it numbers from a few regions kept
    recompiling them (about a tenth of a number's parsing time, measured on synthetic data
    of three regions). The cache holds each metadata pattern once: bounded by the metadata."""
    import phonenumbers

    enable = getattr(phonenumbers, "enable_pattern_cache", None)
    if enable is not None:  # phonenumbers 9.0.x releases before it was added lack it
        enable()
    return phonenumbers


def _phone(value: str, region: str | None, field: str) -> str:
    phonenumbers = _phonenumbers()
    text = unicodedata.normalize("NFKC", value).strip()
    if not text:
        raise EmptyValueError(field, "no phone number")
    digits = _PHONE_JUNK.sub("", text)
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    if not digits.strip("+"):
        raise EmptyValueError(field, "no digits")
    cc = normalise_country(region, f"{field}_country") if region else None
    if not digits.startswith("+") and cc is None:
        raise InvalidFormatError(field, "national number without a country")
    try:
        parsed = phonenumbers.parse(digits, cc)
    except phonenumbers.NumberParseException:
        raise InvalidFormatError(field, "not a phone number") from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidFormatError(field, "not a valid number for its country")
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def normalise_email(value: str, field: str = "email") -> str:
    """``local@domain``: NFKC, case folded, ``mailto:`` dropped, domain IDNA-encoded."""
    found = _email_cached(value)
    if isinstance(found, Failure):
        raise found.at(field)
    return found


@lru_cache(maxsize=CACHE_SIZE)
def _email_cached(value: str) -> str | Failure:
    try:
        return _email(value, "")
    except IdentifierError as exc:
        return Failure.of(exc)


def _email(value: str, field: str) -> str:
    text = unicodedata.normalize("NFKC", value).strip().casefold()
    if text.startswith("mailto:"):
        text = text[7:]
    if not text:
        raise EmptyValueError(field, "no e-mail address")
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain or "@" in local:
        raise InvalidFormatError(field, "must contain exactly one @ between two parts")
    if len(local) > 64 or not _LOCAL.fullmatch(local):
        raise InvalidFormatError(field, "local part invalid")
    domain = domain.rstrip(".")
    try:
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise InvalidFormatError(field, "domain is not a valid IDNA name") from None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        raise InvalidFormatError(field, "domain invalid")
    address = f"{local}@{ascii_domain}"
    if len(address) > 254:
        raise InvalidFormatError(field, "address longer than 254 characters")
    return address
