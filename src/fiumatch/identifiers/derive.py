"""Derive a subject's match keys (SPEC-identifiers.md, "Key derivation").

Owns which keys a subject yields: one strong key per canonical identifier, person
composites from every name variant that has a date of birth, organisation composites from
every name variant and jurisdiction. Pure; returns keys deduplicated in a stable order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

from fiumatch.identifiers.dates import PartialDate
from fiumatch.identifiers.errors import NoMatchKeyError
from fiumatch.identifiers.keys import KeyType, MatchKey, dedupe
from fiumatch.identifiers.model import Identifier, IdentifierKind, Subject, SubjectType
from fiumatch.identifiers.names import (
    NormalisedOrgName,
    NormalisedPersonName,
    normalise_org_name,
    normalise_person_name,
)

__all__ = [
    "derive_keys",
    "identifier_keys",
    "org_keys",
    "person_keys",
]

_DOC_KEYS = {
    IdentifierKind.PASSPORT: KeyType.PASSPORT,
    IdentifierKind.NATIONAL_ID: KeyType.NATIONAL_ID,
    IdentifierKind.TAX_ID: KeyType.TAX_ID,
    IdentifierKind.REGISTRATION: KeyType.ORG_REGISTRATION_COUNTRY,
}
_SINGLE_KEYS = {
    IdentifierKind.IBAN: KeyType.IBAN,
    IdentifierKind.LEI: KeyType.LEI,
    IdentifierKind.EMAIL: KeyType.EMAIL,
    IdentifierKind.PHONE: KeyType.PHONE,
}


def identifier_keys(identifiers: Iterable[Identifier]) -> list[MatchKey]:
    """One strong (or registration) key per canonical identifier."""
    out: list[MatchKey] = []
    for ident in identifiers:
        kind = ident.kind
        if kind in _SINGLE_KEYS:
            out.append(MatchKey(_SINGLE_KEYS[kind], (ident.value,)))
        elif kind in _DOC_KEYS:
            out.append(MatchKey(_DOC_KEYS[kind], (ident.qualifier, ident.value)))
        elif kind is IdentifierKind.ACCOUNT:
            out.append(MatchKey(KeyType.ACCOUNT_BIC, (ident.qualifier[:8], ident.value)))
        elif kind is IdentifierKind.WALLET:
            out.append(MatchKey(KeyType.WALLET, (ident.qualifier, ident.value)))
    return out


def person_keys(
    variants: Sequence[NormalisedPersonName], birth_date: PartialDate | None
) -> list[MatchKey]:
    """Person composites; none without a date of birth."""
    if birth_date is None:
        return []
    dob = birth_date.iso
    year = f"{birth_date.year:04d}"
    out: list[MatchKey] = []
    for v in variants:
        joined, core, family, codes = _person_fields(v)
        out.append(MatchKey(KeyType.PERSON_NAME_DOB, (joined, dob)))
        out.append(MatchKey(KeyType.PERSON_TOKENS_DOB, (core, dob)))
        if family:
            out.append(MatchKey(KeyType.PERSON_SURNAME_INITIAL_DOB, (family, v.initial, dob)))
        if codes:
            out.append(MatchKey(KeyType.PERSON_PHONETIC_YEAR, (codes, year)))
    return out


@lru_cache(maxsize=1 << 16)
def _person_fields(v: NormalisedPersonName) -> tuple[str, str, str, str]:
    """(joined name, core tokens, surname or "" if no initial, phonetic codes) of a variant."""
    family = " ".join(v.family) if v.family and v.initial else ""
    return v.joined, v.core_text, family, v.phonetic_text


def org_keys(variants: Sequence[NormalisedOrgName], countries: Sequence[str]) -> list[MatchKey]:
    """Organisation name composites: one per name variant and jurisdiction."""
    return [
        MatchKey(KeyType.ORG_NAME_COUNTRY, (" ".join(v.tokens), cc))
        for v in variants
        for cc in countries
    ]


def derive_keys(subject: Subject) -> tuple[MatchKey, ...]:
    """All keys of a subject, deduplicated; raise :class:`NoMatchKeyError` if there are none."""
    keys = identifier_keys(subject.identifiers)
    if subject.type is SubjectType.PERSON:
        for i, name in enumerate(subject.names):
            keys += person_keys(normalise_person_name(name, f"names[{i}]"), subject.birth_date)
    elif subject.type is SubjectType.ORGANISATION:
        for i, name in enumerate(subject.names):
            keys += org_keys(normalise_org_name(name.display, f"names[{i}]"), subject.countries)
    if not keys:
        raise NoMatchKeyError("subject", "no identifier, and no name with date of birth or country")
    return dedupe(keys)
