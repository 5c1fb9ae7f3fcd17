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
from fiumatch.identifiers.keys import KeyType, MatchKey, new_key
from fiumatch.identifiers.model import Identifier, IdentifierKind, Subject, SubjectType
from fiumatch.identifiers.names import (
    NormalisedOrgName,
    NormalisedPersonName,
    PartForms,
    PersonName,
    compose_forms,
    normalise_org_name,
    part_forms,
    phonetic,
    plain_part,
    whole_name_forms,
)

__all__ = [
    "KeyPair",
    "derive_keys",
    "full_name_pairs",
    "identifier_keys",
    "identifier_pairs",
    "keys_from_pairs",
    "org_keys",
    "org_pairs",
    "person_keys",
    "person_name_keys",
    "person_name_pairs",
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


#: A key before it is a :class:`MatchKey`: its type and fields. Derivation works on pairs
#: (plain tuples: hashed and compared in C) and makes the deduplicated keys at the end.
KeyPair = tuple[KeyType, tuple[str, ...]]

_ACCOUNT, _WALLET = IdentifierKind.ACCOUNT, IdentifierKind.WALLET
_NAME_DOB, _TOKENS_DOB = KeyType.PERSON_NAME_DOB, KeyType.PERSON_TOKENS_DOB
_SURNAME_DOB, _PHONETIC_YEAR = KeyType.PERSON_SURNAME_INITIAL_DOB, KeyType.PERSON_PHONETIC_YEAR


def identifier_pairs(identifiers: Iterable[Identifier]) -> list[KeyPair]:
    """:func:`identifier_keys` as key pairs."""
    out: list[KeyPair] = []
    for ident in identifiers:
        kind = ident.kind
        single = _SINGLE_KEYS.get(kind)
        if single is not None:
            out.append((single, (ident.value,)))
            continue
        doc = _DOC_KEYS.get(kind)
        if doc is not None:
            out.append((doc, (ident.qualifier, ident.value)))
        elif kind is _ACCOUNT:
            out.append((KeyType.ACCOUNT_BIC, (ident.qualifier[:8], ident.value)))
        elif kind is _WALLET:
            out.append((KeyType.WALLET, (ident.qualifier, ident.value)))
    return out


def identifier_keys(identifiers: Iterable[Identifier]) -> list[MatchKey]:
    """One strong (or registration) key per canonical identifier."""
    return [new_key(kt, fields) for kt, fields in identifier_pairs(identifiers)]


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
    """``person_keys(normalise_person_name(name, field), birth_date)``, faster.

    Raises :class:`EmptyValueError` (naming ``field``) when the name has no tokens, with or
    without a date of birth, exactly as that composition does.
    """
    pairs = person_name_pairs(name, birth_date.iso if birth_date is not None else None, field)
    return [new_key(kt, fields) for kt, fields in pairs]


def person_name_pairs(name: PersonName, dob: str | None, field: str = "name") -> list[KeyPair]:
    """:func:`person_name_keys` as key pairs, given the date of birth's canonical form.

    Built from the per-part cache :func:`fiumatch.identifiers.names.part_forms` (given,
    middle and family names recur across records; whole names rarely do, and have a smaller
    cache of their own, :func:`fiumatch.identifiers.names.whole_name_forms`), following
    :func:`fiumatch.identifiers.names.normalise_person_name` and :func:`person_keys` step
    for step: variants deduplicated by their token forms (empty forms included), variants
    with no token skipped, the same keys in the same order. A test holds the two equal.
    """
    if name.given.strip() or name.family.strip():  # PersonName.structured
        given, family = part_forms(name.given), part_forms(name.family)
        middle = part_forms(name.middle) if name.middle else _NO_MIDDLE
        return _pairs(given, middle, family, True, dob, field)
    return _pairs(whole_name_forms(name.full), _NO_MIDDLE, _NO_MIDDLE, False, dob, field)


def full_name_pairs(name: PersonName, dob: str | None, field: str = "name") -> list[KeyPair]:
    """``person_name_pairs(PersonName(full=name.full), dob, field)`` for a structured name
    that also has a whole form (a row with both ``name`` and its parts), faster.

    When the whole name is exactly its non-empty parts joined by single spaces, in the
    order given, middle, family or family, given, middle, and every part is plain
    (:func:`fiumatch.identifiers.names.plain_part`), its forms are composed from the parts'
    cached forms (:func:`fiumatch.identifiers.names.compose_forms`) instead of tokenising
    a string that rarely recurs. A test holds the two equal.
    """
    full, given, middle, family = name.full, name.given, name.middle, name.family
    for order in ((given, middle, family), (family, given, middle)):
        parts = [p for p in order if p]
        if full == " ".join(parts):
            if all(map(plain_part, parts)):
                forms = compose_forms([part_forms(p) for p in parts])
                return _pairs(forms, _NO_MIDDLE, _NO_MIDDLE, False, dob, field)
            break
    return _pairs(whole_name_forms(full), _NO_MIDDLE, _NO_MIDDLE, False, dob, field)


def _pairs(
    given: PartForms,
    middle: PartForms,
    family: PartForms,
    structured: bool,
    dob: str | None,
    field: str,
) -> list[KeyPair]:
    """The keys of a name's forms: a structured name's parts, or a whole name's forms as
    ``given`` (``middle`` and ``family`` empty)."""
    if dob is None:
        # No keys, but a name none of whose variants keeps a token is still an error.
        if not any(given[i][1] or middle[i][1] or family[i][1] for i in range(3)):
            raise EmptyValueError(field, "no name tokens after normalisation")
        return []
    year = dob[:4]
    out: list[KeyPair] = []
    seen: list[tuple[tuple[str, ...], ...]] = []
    for i in range(3):
        g_forms, g = given[i]
        m_forms, m = middle[i]
        f_forms, f = family[i]
        if i:
            column = (g_forms, m_forms, f_forms)
            if column in seen:
                continue
            seen.append(column)
        else:
            seen.append((g_forms, m_forms, f_forms))
        ordered = g + m + f if structured else g
        if not ordered:
            continue
        if structured:
            core = sorted(g + f) if g or f else sorted(ordered)
            out.append((_NAME_DOB, ("".join(ordered), dob)))
            out.append((_TOKENS_DOB, (" ".join(core), dob)))
            if f and g:
                out.append((_SURNAME_DOB, (" ".join(f), g[0][0], dob)))
        else:
            core = sorted(ordered)
            out.append((_NAME_DOB, ("".join(ordered), dob)))
            out.append((_TOKENS_DOB, (" ".join(core), dob)))
        codes = [c for c in map(phonetic, core) if c]
        if codes:
            codes.sort()
            out.append((_PHONETIC_YEAR, (" ".join(codes), year)))
    if not out:
        raise EmptyValueError(field, "no name tokens after normalisation")
    return out


_NO_MIDDLE = part_forms("")
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


def org_pairs(variants: Sequence[NormalisedOrgName], countries: Sequence[str]) -> list[KeyPair]:
    """:func:`org_keys` as key pairs."""
    return [
        (KeyType.ORG_NAME_COUNTRY, (" ".join(v.tokens), cc)) for v in variants for cc in countries
    ]


def org_keys(variants: Sequence[NormalisedOrgName], countries: Sequence[str]) -> list[MatchKey]:
    """Organisation name composites: one per name variant and jurisdiction."""
    return [new_key(kt, fields) for kt, fields in org_pairs(variants, countries)]


def keys_from_pairs(pairs: Iterable[KeyPair]) -> tuple[MatchKey, ...]:
    """The keys of ``pairs``, deduplicated in first-seen order (as :func:`keys.dedupe`)."""
    return tuple([new_key(kt, fields) for kt, fields in dict.fromkeys(pairs)])


def derive_keys(subject: Subject) -> tuple[MatchKey, ...]:
    """All keys of a subject, deduplicated; raise :class:`NoMatchKeyError` if there are none."""
    pairs = identifier_pairs(subject.identifiers)
    if subject.type is SubjectType.PERSON:
        dob = subject.birth_date.iso if subject.birth_date is not None else None
        for i, name in enumerate(subject.names):
            pairs += person_name_pairs(name, dob, f"names[{i}]")
    elif subject.type is SubjectType.ORGANISATION:
        for i, name in enumerate(subject.names):
            pairs += org_pairs(normalise_org_name(name.display, f"names[{i}]"), subject.countries)
    if not pairs:
        raise NoMatchKeyError("subject", "no identifier, and no name with date of birth or country")
    return keys_from_pairs(pairs)
