"""fiumatch.identifiers: subjects, normalisation and match keys (pure core).

Owns the subject model, every normaliser (names, dates, countries, bank and organisation
identifiers, identity documents, contacts, crypto wallets) and match-key derivation and
encoding, as specified in protocol/SPEC.md §13. Must never do I/O, read a clock or
draw randomness, and must never put an identifier value into an error message.

Public API::

    Subject, SubjectType, Identifier, IdentifierKind, Provenance, PersonName, PartialDate
    MatchKey, KeyType, Strength, Hit, classify_hit, decode_key
    derive_keys(subject) -> tuple[MatchKey, ...]
    normalise_* functions, subject_id(source, local_ref)
"""

from __future__ import annotations

from fiumatch.identifiers.accounts import (
    normalise_account_number,
    normalise_bic,
    normalise_iban,
    normalise_lei,
    normalise_registration_number,
)
from fiumatch.identifiers.contacts import normalise_email, normalise_phone
from fiumatch.identifiers.countries import normalise_country
from fiumatch.identifiers.crypto import normalise_wallet
from fiumatch.identifiers.dates import PartialDate, parse_partial_date
from fiumatch.identifiers.derive import derive_keys, identifier_keys, org_keys, person_keys
from fiumatch.identifiers.documents import DocumentKind, IssuedNumber, normalise_document
from fiumatch.identifiers.errors import IdentifierError
from fiumatch.identifiers.keys import (
    KEY_PREFIX,
    KEY_VERSION,
    Hit,
    KeyType,
    MatchKey,
    Strength,
    classify_hit,
    decode_key,
)
from fiumatch.identifiers.model import (
    Identifier,
    IdentifierKind,
    Provenance,
    Subject,
    SubjectType,
    parse_subject_type,
    subject_id,
)
from fiumatch.identifiers.names import (
    NormalisedOrgName,
    NormalisedPersonName,
    PersonName,
    normalise_org_name,
    normalise_person_name,
)

__all__ = [
    "KEY_PREFIX",
    "KEY_VERSION",
    "DocumentKind",
    "Hit",
    "Identifier",
    "IdentifierError",
    "IdentifierKind",
    "IssuedNumber",
    "KeyType",
    "MatchKey",
    "NormalisedOrgName",
    "NormalisedPersonName",
    "PartialDate",
    "PersonName",
    "Provenance",
    "Strength",
    "Subject",
    "SubjectType",
    "classify_hit",
    "decode_key",
    "derive_keys",
    "identifier_keys",
    "normalise_account_number",
    "normalise_bic",
    "normalise_country",
    "normalise_document",
    "normalise_email",
    "normalise_iban",
    "normalise_lei",
    "normalise_org_name",
    "normalise_person_name",
    "normalise_phone",
    "normalise_registration_number",
    "normalise_wallet",
    "org_keys",
    "parse_partial_date",
    "parse_subject_type",
    "person_keys",
    "subject_id",
]
