"""The subject model: what an FIU holds about one person, organisation, account, wallet,
phone number, e-mail address or identity document.

Owns :class:`Subject` and its parts, and the stable subject id. A ``Subject`` holds names
as written (for the analyst, locally) and identifiers in canonical form (already validated
by the normalisers); its match keys are derived by :mod:`fiumatch.identifiers.derive`.
Pure: no I/O. A subject never leaves its node: only match keys, blinded, do.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from functools import lru_cache

from fiumatch.identifiers.dates import PartialDate
from fiumatch.identifiers.errors import UnknownSubjectTypeError
from fiumatch.identifiers.keys import MatchKey
from fiumatch.identifiers.names import PersonName

__all__ = [
    "Identifier",
    "IdentifierKind",
    "Provenance",
    "Subject",
    "SubjectType",
    "new_identifier",
    "new_provenance",
    "new_subject",
    "parse_subject_type",
    "subject_id",
]


class SubjectType(StrEnum):
    PERSON = "person"
    ORGANISATION = "organisation"
    BANK_ACCOUNT = "bank_account"
    CRYPTO_WALLET = "crypto_wallet"
    PHONE = "phone"
    EMAIL = "email"
    IDENTITY_DOCUMENT = "identity_document"


_TYPE_CACHE: dict[str, SubjectType] = {t.value: t for t in SubjectType}
_TYPE_ALIASES = {
    "organization": SubjectType.ORGANISATION,
    "org": SubjectType.ORGANISATION,
    "company": SubjectType.ORGANISATION,
    "entity": SubjectType.ORGANISATION,
    "account": SubjectType.BANK_ACCOUNT,
    "wallet": SubjectType.CRYPTO_WALLET,
    "document": SubjectType.IDENTITY_DOCUMENT,
}


def parse_subject_type(value: str, field: str = "type") -> SubjectType:
    found = _TYPE_CACHE.get(value)
    if found is not None:
        return found
    text = value.strip().lower().replace("-", "_").replace(" ", "_")
    try:
        return SubjectType(text)
    except ValueError:
        pass
    try:
        return _TYPE_ALIASES[text]
    except KeyError:
        raise UnknownSubjectTypeError(field, "not a known subject type") from None


class IdentifierKind(StrEnum):
    IBAN = "iban"
    ACCOUNT = "account"  # domestic account number; qualifier = canonical BIC
    LEI = "lei"
    PASSPORT = "passport"  # qualifier = issuing country (alpha-2)
    NATIONAL_ID = "national_id"  # qualifier = issuing country
    TAX_ID = "tax_id"  # qualifier = issuing country
    REGISTRATION = "registration"  # company registration number; qualifier = country
    WALLET = "wallet"  # qualifier = chain
    EMAIL = "email"
    PHONE = "phone"


@dataclass(frozen=True, slots=True, order=True)
class Identifier:
    """A canonical identifier (see the normalisers); ``qualifier`` per :class:`IdentifierKind`."""

    kind: IdentifierKind
    value: str
    qualifier: str = ""

    def __reduce__(self) -> tuple[type[Identifier], tuple[IdentifierKind, str, str]]:
        # Positional pickling (see Subject.__reduce__).
        return Identifier, (self.kind, self.value, self.qualifier)


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a subject came from: the source (file) and the record in it."""

    source: str
    record: str
    line: int | None = None

    def __reduce__(self) -> tuple[type[Provenance], tuple[str, str, int | None]]:
        return Provenance, (self.source, self.record, self.line)


@dataclass(frozen=True, slots=True, kw_only=True)
class Subject:
    """One subject held by the local FIU.

    ``countries`` are nationalities for a person, jurisdictions for an organisation.
    ``keys`` are the derived match keys (empty until derived).
    """

    subject_id: str
    type: SubjectType
    local_ref: str
    retention_until: date
    provenance: Provenance
    names: tuple[PersonName, ...] = ()
    birth_date: PartialDate | None = None
    countries: tuple[str, ...] = ()
    identifiers: tuple[Identifier, ...] = ()
    keys: tuple[MatchKey, ...] = field(default=(), compare=False)

    @property
    def display_name(self) -> str:
        return self.names[0].display if self.names else ""

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        # Positional pickling: the dataclass default for slots goes through fields() per
        # object and made unpickling cost more than deriving the keys, which the parallel
        # reader pays for every subject its worker processes return.
        return new_subject, (
            self.subject_id, self.type, self.local_ref, self.retention_until, self.provenance,
            self.names, self.birth_date, self.countries, self.identifiers, self.keys,
        )  # fmt: skip


_new_object = object.__new__
_i_kind, _i_value, _i_qualifier = (
    Identifier.__dict__[f].__set__ for f in ("kind", "value", "qualifier")
)
_p_source, _p_record, _p_line = (
    Provenance.__dict__[f].__set__ for f in ("source", "record", "line")
)


def new_identifier(kind: IdentifierKind, value: str, qualifier: str = "") -> Identifier:
    """``Identifier(kind, value, qualifier)`` with the slots set directly (see new_subject)."""
    ident: Identifier = _new_object(Identifier)
    _i_kind(ident, kind)
    _i_value(ident, value)
    _i_qualifier(ident, qualifier)
    return ident


def new_provenance(source: str, record: str, line: int | None) -> Provenance:
    """``Provenance(source, record, line)`` with the slots set directly (see new_subject)."""
    prov: Provenance = _new_object(Provenance)
    _p_source(prov, source)
    _p_record(prov, record)
    _p_line(prov, line)
    return prov

(_s_id, _s_type, _s_ref, _s_ret, _s_prov, _s_names, _s_birth, _s_countries, _s_idents,
 _s_keys) = (Subject.__dict__[f].__set__ for f in Subject.__dataclass_fields__)  # fmt: skip


def new_subject(
    subject_id: str,
    type: SubjectType,
    local_ref: str,
    retention_until: date,
    provenance: Provenance,
    names: tuple[PersonName, ...],
    birth_date: PartialDate | None,
    countries: tuple[str, ...],
    identifiers: tuple[Identifier, ...],
    keys: tuple[MatchKey, ...],
) -> Subject:
    """``Subject(...)`` with every field given positionally, at half the cost (the slots are
    set directly rather than through the frozen dataclass's ``__init__``): readers make one
    per record."""
    s: Subject = _new_object(Subject)
    _s_id(s, subject_id)
    _s_type(s, type)
    _s_ref(s, local_ref)
    _s_ret(s, retention_until)
    _s_prov(s, provenance)
    _s_names(s, names)
    _s_birth(s, birth_date)
    _s_countries(s, countries)
    _s_idents(s, identifiers)
    _s_keys(s, keys)
    return s


def _lp(value: str) -> bytes:
    raw = value.encode("utf-8")
    return len(raw).to_bytes(4, "big") + raw


def subject_id(source: str, local_ref: str) -> str:
    """Stable id: the first 16 bytes of SHA-256 over (domain, source, local reference), hex.

    Re-ingesting the same record from the same source gives the same id, so a store can upsert.
    """
    hasher = _source_hasher(source).copy()
    hasher.update(_lp(local_ref))
    return hasher.digest()[:16].hex()


@lru_cache(maxsize=256)
def _source_hasher(source: str) -> hashlib._Hash:
    """SHA-256 state after the domain and the source (a file holds one source)."""
    return hashlib.sha256(b"fiumatch-subject-id-v1" + _lp(source))
