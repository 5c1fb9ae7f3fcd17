"""Identity documents and tax numbers: passport, national id and tax id with issuing country.

Owns their canonical forms: the issuing country as ISO 3166-1 alpha-2 and the number
compacted to ``[0-9A-Z]``. Where python-stdnum has a validator for the (country, kind) pair
in :data:`STDNUM_VALIDATORS`, the number must also pass it; elsewhere only the generic length
rule applies. The table is hand-written and part of the spec: changing it changes which
records are rejected, never the bytes of a key. Results and failures are cached by raw
(kind, number, country) in a bounded LRU cache.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from types import ModuleType

from fiumatch.identifiers.accounts import compact_alnum
from fiumatch.identifiers.caches import VALUE_CACHE
from fiumatch.identifiers.countries import normalise_country
from fiumatch.identifiers.errors import (
    ChecksumError,
    EmptyValueError,
    Failure,
    IdentifierError,
    InvalidFormatError,
)

__all__ = ["STDNUM_VALIDATORS", "DocumentKind", "IssuedNumber", "normalise_document"]


class DocumentKind(StrEnum):
    PASSPORT = "passport"
    NATIONAL_ID = "national_id"
    TAX_ID = "tax_id"


#: (kind, country) -> python-stdnum modules; the compacted number must pass at least one.
#: Tax ids list both the personal and the business numbers a country issues.
STDNUM_VALIDATORS: dict[tuple[DocumentKind, str], tuple[str, ...]] = {
    (DocumentKind.NATIONAL_ID, "CN"): ("stdnum.cn.ric",),
    (DocumentKind.NATIONAL_ID, "ES"): ("stdnum.es.dni", "stdnum.es.nie"),
    (DocumentKind.NATIONAL_ID, "NL"): ("stdnum.nl.bsn",),
    (DocumentKind.NATIONAL_ID, "PL"): ("stdnum.pl.pesel",),
    (DocumentKind.NATIONAL_ID, "TR"): ("stdnum.tr.tckimlik",),
    (DocumentKind.TAX_ID, "DE"): ("stdnum.de.idnr", "stdnum.de.vat", "stdnum.de.stnr"),
    (DocumentKind.TAX_ID, "ES"): ("stdnum.es.nif",),
    (DocumentKind.TAX_ID, "FR"): ("stdnum.fr.nif", "stdnum.fr.siren", "stdnum.fr.tva"),
    (DocumentKind.TAX_ID, "GB"): ("stdnum.gb.utr", "stdnum.gb.vat"),
    (DocumentKind.TAX_ID, "GR"): ("stdnum.gr.vat",),
    (DocumentKind.TAX_ID, "IT"): ("stdnum.it.codicefiscale", "stdnum.it.iva"),
    (DocumentKind.TAX_ID, "PL"): ("stdnum.pl.nip",),
    (DocumentKind.TAX_ID, "RU"): ("stdnum.ru.inn",),
    (DocumentKind.TAX_ID, "UA"): ("stdnum.ua.rntrc", "stdnum.ua.edrpou"),
}

#: A tax id written with its EU VAT prefix ("DE", "EL" for Greece) loses it.
_VAT_PREFIX = {"GR": "EL"}

_LENGTHS = {DocumentKind.PASSPORT: (5, 20), DocumentKind.NATIONAL_ID: (4, 30),
            DocumentKind.TAX_ID: (4, 30)}  # fmt: skip


@dataclass(frozen=True, slots=True)
class IssuedNumber:
    kind: DocumentKind
    country: str
    number: str


@lru_cache(maxsize=64)
def _module(name: str) -> ModuleType:
    return importlib.import_module(name)


def normalise_document(
    kind: DocumentKind, number: str, country: str, field: str | None = None
) -> IssuedNumber:
    """Canonical (kind, country alpha-2, compacted number); validated where stdnum can."""
    found = _cached(kind, number, country)
    if isinstance(found, Failure):
        raise found.at(field or str(kind))
    return found


@lru_cache(maxsize=VALUE_CACHE)
def _cached(kind: DocumentKind, number: str, country: str) -> IssuedNumber | Failure:
    try:
        return _normalise(kind, number, country, "")
    except IdentifierError as exc:
        return Failure.of(exc)


def _normalise(kind: DocumentKind, number: str, country: str, field: str) -> IssuedNumber:
    cc = normalise_country(country, f"{field}_country")
    compact = compact_alnum(number)
    if not compact:
        raise EmptyValueError(field, "no letters or digits")
    if kind is DocumentKind.TAX_ID:
        for prefix in (cc, _VAT_PREFIX.get(cc, cc)):
            if compact.startswith(prefix) and len(compact) > 2 and compact[2].isdigit():
                compact = compact[2:]
                break
    low, high = _LENGTHS[kind]
    if not low <= len(compact) <= high:
        raise InvalidFormatError(field, f"{kind} number must be {low}-{high} characters")
    validators = STDNUM_VALIDATORS.get((kind, cc))
    if validators:
        from stdnum.exceptions import InvalidChecksum, ValidationError

        checksum_failed = False
        for name in validators:
            try:
                _module(name).validate(compact)
                break
            except InvalidChecksum:
                checksum_failed = True
            except ValidationError:
                pass
        else:
            if checksum_failed:
                raise ChecksumError(field, f"{kind} check digits do not verify")
            raise InvalidFormatError(field, f"not a valid {cc} {kind} number")
    return IssuedNumber(kind, cc, compact)
