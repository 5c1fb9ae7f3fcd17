"""Derive a subject's match keys (SPEC.md §13.5, "Key derivation").

Owns which keys a subject yields: one strong key per canonical identifier, person
composites from every name variant that has a date of birth, organisation composites from
every name variant and jurisdiction. Pure; returns keys deduplicated in a stable order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

from fiumatch.identifiers.caches import VALUE_CACHE
from fiumatch.identifiers.dates import PartialDate
from fiumatch.identifiers.errors import EmptyValueError, NoMatchKeyError
from fiumatch.identifiers.keys import KeyType, MatchKey, dedupe
from fiumatch.identifiers.model import Identifier, IdentifierKind, Subject, SubjectType
from fiumatch.identifiers.names import (
    NormalisedOrgName,
    NormalisedPersonName,
    PersonName,
    normalise_org_name,
    normalise_person_name,
)

__all__ = [
    "derive_keys",
    "identifier_keys",
    "org_keys",
    "person_keys",
    "person_name_keys",
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
    out: list[MatchKey] = []
    for v in variants:
        out += _dated(_variant_templates(v), birth_date)
    return out


def person_name_keys(
    name: PersonName, birth_date: PartialDate | None, field: str = "name"
) -> list[MatchKey]:
    """``person_keys(normalise_person_name(name, field), birth_date)``, cached by name.

    Raises :class:`EmptyValueError` (naming ``field``) when the name has no tokens, with or
    without a date of birth, exactly as that composition does.
    """
    templates = _name_templates(name)
    if templates is None:
        raise EmptyValueError(field, "no name tokens after normalisation")
    if birth_date is None:
        return []
    return _dated(templates, birth_date)


_Template = tuple[KeyType, tuple[str, ...]]


def _dated(templates: Sequence[_Template], birth_date: PartialDate) -> list[MatchKey]:
    """The keys of undated templates: the date of birth, or the year for phonetic keys."""
    dob = birth_date.iso
    year = dob[:4]
    return [
        MatchKey(kt, (*fields, year if kt is KeyType.PERSON_PHONETIC_YEAR else dob))
        for kt, fields in templates
    ]


@lru_cache(maxsize=VALUE_CACHE)
def _variant_templates(v: NormalisedPersonName) -> tuple[_Template, ...]:
    """A variant's person keys without their date field, in derivation order."""
    out: list[_Template] = [
        (KeyType.PERSON_NAME_DOB, (v.joined,)),
        (KeyType.PERSON_TOKENS_DOB, (v.core_text,)),
    ]
    if v.family and v.initial:
        out.append((KeyType.PERSON_SURNAME_INITIAL_DOB, (" ".join(v.family), v.initial)))
    codes = v.phonetic_text
    if codes:
        out.append((KeyType.PERSON_PHONETIC_YEAR, (codes,)))
    return tuple(out)


@lru_cache(maxsize=VALUE_CACHE)
def _name_templates(name: PersonName) -> tuple[_Template, ...] | None:
    try:
        variants = normalise_person_name(name)
    except EmptyValueError:
        return None
    return tuple(t for v in variants for t in _variant_templates(v))


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
            keys += person_name_keys(name, subject.birth_date, f"names[{i}]")
    elif subject.type is SubjectType.ORGANISATION:
        for i, name in enumerate(subject.names):
            keys += org_keys(normalise_org_name(name.display, f"names[{i}]"), subject.countries)
    if not keys:
        raise NoMatchKeyError("subject", "no identifier, and no name with date of birth or country")
    return dedupe(keys)
