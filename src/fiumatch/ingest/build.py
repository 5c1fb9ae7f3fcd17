"""From a flat record (the documented column vocabulary) to a :class:`Subject` or rejects.

Owns the column vocabulary shared by every reader (CSV columns and JSON Lines keys are
exactly :data:`FIELDS`; the FtM and goAML readers map their own fields onto it) and the
per-type rules: which fields a type needs, which country a document defaults to. Every bad
field becomes one :class:`Reject`; a record with any reject does not load. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

from fiumatch.identifiers import derive
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
from fiumatch.identifiers.dates import PartialDate, parse_partial_date, parse_partial_date_iso
from fiumatch.identifiers.derive import KeyPair
from fiumatch.identifiers.documents import DocumentKind, normalise_document
from fiumatch.identifiers.errors import (
    EmptyValueError,
    IdentifierError,
    InvalidDateError,
    KeyEncodingError,
)
from fiumatch.identifiers.keys import KEY_PREFIX, new_key
from fiumatch.identifiers.model import (
    Identifier,
    IdentifierKind,
    Subject,
    SubjectType,
    new_identifier,
    new_provenance,
    new_subject,
    parse_subject_type,
    subject_id,
)
from fiumatch.identifiers.names import PersonName, new_person_name, normalise_org_name
from fiumatch.ingest.rejects import Reject

__all__ = [
    "FIELDS", "MULTI_VALUED", "Parts", "Value", "build_parts", "build_subject", "plain_row",
]  # fmt: skip

#: The column vocabulary, in documentation order (README of the CSV format in the spec).
FIELDS: tuple[str, ...] = (
    "local_ref", "type", "retention_until",
    "name", "given_name", "middle_name", "family_name", "aliases", "birth_date",
    "nationality", "country",
    "registration_number", "lei",
    "iban", "bic", "account_number",
    "passport_number", "passport_country", "national_id", "national_id_country",
    "tax_id", "tax_id_country",
    "phone", "phone_country", "email",
    "wallet_address", "wallet_chain",
)  # fmt: skip

#: Fields that may hold several values (a list in JSON, ``;``-separated in CSV). The
#: document fields pair with their ``*_country`` list by position.
MULTI_VALUED = frozenset(
    {"aliases", "nationality", "country", "iban", "phone", "email", "passport_number",
     "passport_country", "national_id", "national_id_country", "tax_id", "tax_id_country"}
)  # fmt: skip

Value = str | Sequence[str] | None

_FIELD_SET = frozenset(FIELDS)

#: Longest value any field may hold (characters) and most values a multi-valued field may
#: list. Real names and identifiers are far shorter. A hostile file's 10 MB "name" would
#: otherwise reach the name normaliser, whose phonetic key (rigour's Metaphone) takes time
#: quadratic in a token's length: hours for one record.
MAX_VALUE_CHARS = 1024
MAX_VALUES = 256
#: Longest match key the node's store accepts (the CHECK on match_keys.key in
#: fiumatch/store/migrations.py). A name can normalise to more than it has characters (NFKC
#: expands U+FDFA to 18 letters), so 300 of them made a 5 KB key that aborted a whole
#: ``fiumatch node load`` with a constraint error; such a record is rejected here instead.
MAX_KEY_BYTES = 4096
#: Names (all parts and aliases together) up to this many characters cannot reach
#: MAX_KEY_BYTES (measured over every code point below U+30000: at most 17 key bytes per
#: character, U+FDFA), so their keys are not encoded again: the check stays off the hot path.
_SHORT_NAMES = 64

_DOCS = (
    ("passport_number", "passport_country", DocumentKind.PASSPORT, IdentifierKind.PASSPORT),
    ("national_id", "national_id_country", DocumentKind.NATIONAL_ID, IdentifierKind.NATIONAL_ID),
    ("tax_id", "tax_id_country", DocumentKind.TAX_ID, IdentifierKind.TAX_ID),
)


def _one(fields: Mapping[str, Value], name: str) -> str:
    value = fields.get(name)
    if not value:
        return ""
    if isinstance(value, str):
        return value.strip()
    for item in value:
        if item and item.strip():
            return item.strip()
    return ""


def _many(fields: Mapping[str, Value], name: str) -> list[str]:
    value = fields.get(name)
    if not value:
        return []
    if isinstance(value, str):
        items: Sequence[str] = value.split(";") if ";" in value else (value,)
    else:
        items = value
    return [v.strip() for v in items if v and v.strip()]


def _paired(fields: Mapping[str, Value], name: str) -> list[str]:
    """Like :func:`_many` but keeps empty slots so positions pair with another list."""
    value = fields.get(name)
    if not value:
        return []
    items = value.split(";") if isinstance(value, str) else list(value)
    return [(v or "").strip() for v in items]


def _hostile_values(fields: Mapping[str, Value]) -> list[tuple[str, str]]:
    """(field, reason) for values no real record holds: over :data:`MAX_VALUE_CHARS`
    characters, over :data:`MAX_VALUES` values, or a NUL character (a binary or corrupted
    file). Checked before any normaliser runs. Unknown columns are never read, so skipped."""
    out: list[tuple[str, str]] = []
    for name, value in fields.items():
        if not value:
            continue
        if isinstance(value, str):  # every CSV value: two C-level checks, on the hot path
            if len(value) <= MAX_VALUE_CHARS and "\x00" not in value:
                continue
            if name in _FIELD_SET:
                too_long = len(value) > MAX_VALUE_CHARS
                out.append((name, f"value longer than {MAX_VALUE_CHARS} characters" if too_long
                            else "value holds a NUL character"))  # fmt: skip
            continue
        if name not in _FIELD_SET:
            continue
        items: Sequence[str] = value
        if len(items) > MAX_VALUES:
            out.append((name, f"more than {MAX_VALUES} values"))
        elif any(len(v) > MAX_VALUE_CHARS for v in items if v):
            out.append((name, f"value longer than {MAX_VALUE_CHARS} characters"))
        elif any("\x00" in v for v in items if v):
            out.append((name, "value holds a NUL character"))
    return out


def plain_row(values: Sequence[str]) -> bool:
    """Whether no value of a CSV row is over :data:`MAX_VALUE_CHARS` characters or holds a
    NUL: then :func:`_hostile_values` finds nothing in it (its only checks on string
    values), and :func:`build_parts` may skip it (``values_checked``). Two C-level passes
    over the row rather than two checks per value in Python."""
    return max(map(len, values), default=0) <= MAX_VALUE_CHARS and "\x00" not in "".join(values)


def _name_chars(names: list[PersonName]) -> int:
    total = 0
    for n in names:
        total += len(n.full) + len(n.given) + len(n.middle) + len(n.family)
    return total


def build_subject(
    fields: Mapping[str, Value],
    *,
    source: str,
    file: str,
    record: str,
    line: int | None,
    default_retention: date,
) -> Subject | list[Reject]:
    """Validate and normalise one record; return the subject (keys derived) or its rejects."""
    parts = build_parts(
        fields, file=file, record=record, line=line, default_retention=default_retention
    )
    if isinstance(parts, list):
        return parts
    local_ref, stype, retention, names, birth, countries, identifiers, pairs = parts
    return new_subject(
        subject_id(source, local_ref), stype, local_ref, retention,
        new_provenance(source, record, line), tuple(names), birth, tuple(countries),
        tuple(identifiers), derive.keys_from_pairs(pairs),
    )  # fmt: skip


#: A record that builds, before it is a :class:`Subject`: local reference, type, retention,
#: names, date of birth, countries, identifiers (deduplicated, in order) and key pairs (not
#: yet deduplicated).
Parts = tuple[
    str, SubjectType, date, list[PersonName], PartialDate | None, list[str],
    dict[Identifier, None], list[KeyPair],
]  # fmt: skip


def build_parts(
    fields: Mapping[str, Value],
    *,
    file: str,
    record: str,
    line: int | None,
    default_retention: date,
    values_checked: bool = False,
) -> Parts | list[Reject]:
    """:func:`build_subject` without making the subject: its parts, or its rejects. The
    parallel reader's workers send the parts on as plain values (no subject, provenance or
    key objects to make and take apart again). ``values_checked``: the caller has found
    with :func:`plain_row` that the record's values (all strings) are none of them hostile,
    so the per-value check is skipped."""
    # Every optional group is skipped outright when its fields are absent or empty: a CSV
    # row fills a handful of the 27 columns, and this function runs once per record.
    get = fields.get
    hostile = [] if values_checked else _hostile_values(fields)
    if hostile:
        bad = {name for name, _ in hostile}
        ref = record if "local_ref" in bad else _one(fields, "local_ref") or record
        return [Reject(file, line, ref, name, "invalid_format", why) for name, why in hostile]
    errors: list[IdentifierError] = []
    local_ref = _one(fields, "local_ref")
    if not local_ref:
        errors.append(EmptyValueError("local_ref", "every record needs its FIU reference"))
    stype: SubjectType | None = None
    try:
        stype = parse_subject_type(_one(fields, "type") or "")
    except IdentifierError as exc:
        errors.append(exc)

    retention = default_retention
    raw_retention = _one(fields, "retention_until") if get("retention_until") else ""
    if raw_retention:
        try:
            when = parse_partial_date(raw_retention, "retention_until")
            if when.day is None or when.month is None:
                raise InvalidDateError("retention_until", "retention needs a full date")
            retention = date(when.year, when.month, when.day)
        except IdentifierError as exc:
            errors.append(exc)

    # Countries: nationalities for persons, jurisdictions for everything else.
    country_field = "nationality" if stype is SubjectType.PERSON else "country"
    countries: list[str] = []
    for raw in _many(fields, country_field) or _many(
        fields, "country" if country_field == "nationality" else "nationality"
    ):
        try:
            cc = normalise_country(raw, country_field)
            if cc not in countries:
                countries.append(cc)
        except IdentifierError as exc:
            errors.append(exc)
    sole_country = countries[0] if len(countries) == 1 else None

    birth: PartialDate | None = None
    dob: str | None = None  # its canonical form, for the person keys
    raw_birth = _one(fields, "birth_date") if get("birth_date") else ""
    if raw_birth:
        try:
            birth, dob = parse_partial_date_iso(raw_birth, "birth_date")
        except IdentifierError as exc:
            errors.append(exc)

    # Canonical identifiers, deduplicated in first-seen order (dict keys).
    identifiers: dict[Identifier, None] = {}
    if get("iban"):
        for raw in _many(fields, "iban"):
            try:
                identifiers[new_identifier(IdentifierKind.IBAN, normalise_iban(raw, "iban"))] = None
            except IdentifierError as exc:
                errors.append(exc)
    raw_account = _one(fields, "account_number") if get("account_number") else ""
    if raw_account:
        raw_bic = _one(fields, "bic")
        try:
            number = normalise_account_number(raw_account, "account_number")
            if not raw_bic:
                raise EmptyValueError("bic", "a domestic account number needs its BIC")
            ident = new_identifier(IdentifierKind.ACCOUNT, number, normalise_bic(raw_bic, "bic"))
            identifiers[ident] = None
        except IdentifierError as exc:
            errors.append(exc)
    raw_lei = _one(fields, "lei") if get("lei") else ""
    if raw_lei:
        try:
            identifiers[new_identifier(IdentifierKind.LEI, normalise_lei(raw_lei, "lei"))] = None
        except IdentifierError as exc:
            errors.append(exc)
    raw_reg = _one(fields, "registration_number") if get("registration_number") else ""
    if raw_reg:
        try:
            if sole_country is None:
                raise EmptyValueError("country", "registration number needs one country")
            number = normalise_registration_number(raw_reg)
            identifiers[new_identifier(IdentifierKind.REGISTRATION, number, sole_country)] = None
        except IdentifierError as exc:
            errors.append(exc)
    for number_field, country_name, doc_kind, ident_kind in _DOCS:
        if not get(number_field):
            continue
        numbers = _paired(fields, number_field)
        doc_countries = _paired(fields, country_name)
        for i, raw in enumerate(numbers):
            if not raw:
                continue
            cc_raw = doc_countries[i] if i < len(doc_countries) and doc_countries[i] else ""
            try:
                if not cc_raw:
                    if sole_country is None:
                        raise EmptyValueError(country_name, "issuing country unknown")
                    cc_raw = sole_country
                doc = normalise_document(doc_kind, raw, cc_raw, number_field)
                identifiers[new_identifier(ident_kind, doc.number, doc.country)] = None
            except IdentifierError as exc:
                errors.append(exc)
    if get("phone"):
        phone_region = _one(fields, "phone_country") or (countries[0] if countries else None)
        for raw in _many(fields, "phone"):
            try:
                e164 = normalise_phone(raw, phone_region, "phone")
                identifiers[new_identifier(IdentifierKind.PHONE, e164)] = None
            except IdentifierError as exc:
                errors.append(exc)
    if get("email"):
        for raw in _many(fields, "email"):
            try:
                email = normalise_email(raw, "email")
                identifiers[new_identifier(IdentifierKind.EMAIL, email)] = None
            except IdentifierError as exc:
                errors.append(exc)
    raw_wallet = _one(fields, "wallet_address") if get("wallet_address") else ""
    if raw_wallet:
        try:
            chain, address = normalise_wallet(raw_wallet, _one(fields, "wallet_chain"), "wallet")
            identifiers[new_identifier(IdentifierKind.WALLET, address, chain)] = None
        except IdentifierError as exc:
            errors.append(exc)

    # Names.
    names: list[PersonName] = []
    full = _one(fields, "name") if get("name") else ""
    has_parts = False  # names[0] is the name given as parts (its whole form, if any, next)
    if stype is SubjectType.PERSON and (get("given_name") or get("family_name")):
        given, family = _one(fields, "given_name"), _one(fields, "family_name")
        if given or family:
            middle = _one(fields, "middle_name")
            names.append(new_person_name(full, given, middle, family))
            has_parts = True
    if full:
        names.append(new_person_name(full))
    if get("aliases"):
        names.extend(new_person_name(alias) for alias in _many(fields, "aliases"))

    pairs: list[KeyPair] = derive.identifier_pairs(identifiers)
    if stype is SubjectType.PERSON:
        if not names:
            errors.append(EmptyValueError("name", "a person needs a name"))
        for i, name in enumerate(names):
            field = "aliases" if name.full and name.full != full else "name"
            try:
                if i == 1 and has_parts and full:
                    # The whole name of a row that also gives its parts: composed from
                    # the parts' cached forms where it can be (same pairs, as tested).
                    pairs += derive.full_name_pairs(names[0], dob, field)
                else:
                    pairs += derive.person_name_pairs(name, dob, field)
            except IdentifierError as exc:
                errors.append(exc)
    elif stype is SubjectType.ORGANISATION:
        if not names:
            errors.append(EmptyValueError("name", "an organisation needs a name"))
        for name in names:
            field = "aliases" if name.full != full else "name"
            try:
                pairs += derive.org_pairs(normalise_org_name(name.full, field), countries)
            except IdentifierError as exc:
                errors.append(exc)
    elif stype is not None:
        needs = _REQUIRED[stype]
        if not any(i.kind in needs for i in identifiers) and not any(
            e.field in _REQUIRED_FIELDS[stype] for e in errors
        ):
            errors.append(EmptyValueError(_REQUIRED_FIELDS[stype][0], f"required for {stype}"))

    if names and _name_chars(names) > _SHORT_NAMES and _too_long(pairs):
        errors.append(KeyEncodingError("name", f"a match key would exceed {MAX_KEY_BYTES} bytes"))
    if not errors and not pairs:
        errors.append(
            EmptyValueError("birth_date" if stype is SubjectType.PERSON else "country",
                            "no identifier, and no name with date of birth or country")
        )  # fmt: skip
    if errors or stype is None:
        rejects = [
            Reject(file, line, local_ref or record, e.field, e.code, e.bare_reason) for e in errors
        ]
        # A caught exception's traceback holds this frame, whose ``errors`` holds the
        # exception: a reference cycle per bad value, which only the cyclic collector would
        # free. Emptying the list breaks it, so reference counting frees them at once (the
        # parallel reader's workers never run the collector; a test holds this).
        errors.clear()
        return rejects
    return local_ref, stype, retention, names, birth, countries, identifiers, pairs


#: Bytes of a key's encoding besides its fields' UTF-8: prefix, version, type, field count.
_KEY_HEADER = len(KEY_PREFIX) + 3


def _too_long(pairs: list[KeyPair]) -> bool:
    """Whether any key would encode to more than :data:`MAX_KEY_BYTES` bytes. A key whose
    fields have few enough characters cannot (at most 4 UTF-8 bytes per character, 2 bytes
    of length per field), so only the others are encoded."""
    for kt, fields in pairs:
        if _KEY_HEADER + 2 * len(fields) + 4 * sum(map(len, fields)) <= MAX_KEY_BYTES:
            continue
        if len(new_key(kt, fields).encode()) > MAX_KEY_BYTES:
            return True
    return False


_REQUIRED: dict[SubjectType, frozenset[IdentifierKind]] = {
    SubjectType.BANK_ACCOUNT: frozenset({IdentifierKind.IBAN, IdentifierKind.ACCOUNT}),
    SubjectType.CRYPTO_WALLET: frozenset({IdentifierKind.WALLET}),
    SubjectType.PHONE: frozenset({IdentifierKind.PHONE}),
    SubjectType.EMAIL: frozenset({IdentifierKind.EMAIL}),
    SubjectType.IDENTITY_DOCUMENT: frozenset(
        {IdentifierKind.PASSPORT, IdentifierKind.NATIONAL_ID, IdentifierKind.TAX_ID}
    ),
}
_REQUIRED_FIELDS: dict[SubjectType, tuple[str, ...]] = {
    SubjectType.BANK_ACCOUNT: ("iban", "account_number", "bic"),
    SubjectType.CRYPTO_WALLET: ("wallet_address", "wallet", "wallet_chain"),
    SubjectType.PHONE: ("phone", "phone_country"),
    SubjectType.EMAIL: ("email",),
    SubjectType.IDENTITY_DOCUMENT: (
        "passport_number", "national_id", "tax_id",
        "passport_country", "national_id_country", "tax_id_country",
    ),
}  # fmt: skip
