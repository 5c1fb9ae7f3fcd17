"""FollowTheMoney reader: a stream of FtM entities (JSON Lines, one entity per line).

Owns the mapping from FtM schemata and properties onto the column vocabulary. The schema
hierarchy is FtM's own (``followthemoney.model``), so ``Company`` is an ``Organization``
and ``Passport`` an ``Identification``; property values are read raw (FtM's own cleaning
would silently drop values we must report instead). Entities that are not subjects
(``Ownership``, ``Address``, ``Payment``, ...) are skipped and counted, not rejected.
Streams one line at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Any

from fiumatch.identifiers.model import Subject
from fiumatch.ingest.build import Value, build_subject
from fiumatch.ingest.rejects import Reject
from fiumatch.ingest.stats import IngestStats

__all__ = ["entity_fields", "read_ftm"]

_PERSON = {
    "birthDate": "birth_date", "passportNumber": "passport_number",
    "idNumber": "national_id", "taxNumber": "tax_id", "innCode": "tax_id", "vatCode": "tax_id",
    "phone": "phone", "email": "email", "leiCode": "lei",
}  # fmt: skip
_ORG = {
    "registrationNumber": "registration_number", "ogrnCode": "registration_number",
    "leiCode": "lei", "taxNumber": "tax_id", "innCode": "tax_id", "vatCode": "tax_id",
    "phone": "phone", "email": "email",
}  # fmt: skip
_ACCOUNT = {"iban": "iban", "accountNumber": "account_number", "bic": "bic", "country": "country"}
_WALLET = {"publicKey": "wallet_address", "currency": "wallet_chain"}


def _schema_type(schema_name: str) -> str | None:
    from followthemoney import model

    schema = model.get(schema_name)
    if schema is None:
        return None
    if schema.is_a("Person"):
        return "person"
    if schema.is_a("LegalEntity"):
        return "organisation"
    if schema.is_a("BankAccount"):
        return "bank_account"
    if schema.is_a("CryptoWallet"):
        return "crypto_wallet"
    if schema.is_a("Identification"):
        return "identity_document"
    return ""


def _values(props: Mapping[str, Any], name: str) -> list[str]:
    value = props.get(name)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value if v is not None and str(v).strip()]


def _is_property_value(value: object) -> bool:
    if value is None or isinstance(value, str):
        return True
    return isinstance(value, list) and all(
        v is None or isinstance(v, str | int | float) for v in value
    )


def entity_fields(entity: Mapping[str, Any], subject_type: str) -> dict[str, Value]:
    """Map one FtM entity (as a dict) onto the column vocabulary."""
    props = entity.get("properties") or {}
    fields: dict[str, Value] = {"local_ref": str(entity.get("id") or ""), "type": subject_type}
    names = _values(props, "name")
    if names:
        fields["name"] = names[0]
    aliases = names[1:] + _values(props, "alias") + _values(props, "previousName")
    if aliases:
        fields["aliases"] = aliases
    if subject_type == "person":
        for prop, col in (("firstName", "given_name"), ("middleName", "middle_name"),
                          ("lastName", "family_name")):  # fmt: skip
            vals = _values(props, prop)
            if vals:
                fields[col] = " ".join(vals)
        mapping = _PERSON
        countries = _values(props, "nationality") or _values(props, "country")
        fields["nationality"] = countries
    elif subject_type == "organisation":
        mapping = _ORG
        fields["country"] = (
            _values(props, "jurisdiction")
            or _values(props, "country")
            or _values(props, "mainCountry")
        )
    elif subject_type == "bank_account":
        mapping = _ACCOUNT
    elif subject_type == "crypto_wallet":
        mapping = _WALLET
    else:  # identity_document
        mapping = {}
        numbers = _values(props, "number") or _values(props, "passportNumber")
        kind = " ".join(_values(props, "type")).lower()
        if entity.get("schema") == "Passport" or "pass" in kind:
            col = "passport_number"
        elif "tax" in kind:
            col = "tax_id"
        else:
            col = "national_id"
        fields[col] = numbers[:1]
        fields[col.replace("_number", "") + "_country"] = _values(props, "country")[:1]
    for prop, col in mapping.items():
        vals = _values(props, prop)
        if not vals:
            continue
        existing = fields.get(col)
        if isinstance(existing, list):
            existing.extend(vals)
        else:
            fields[col] = vals
    return fields


def read_ftm(
    path: Path, *, source: str, default_retention: date, stats: IngestStats
) -> Iterator[Subject | Reject]:
    file = str(path)
    with path.open("rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            if not line_no % 256:
                stats.bytes_read = fh.tell()  # for progress bars
            if not raw.strip():
                continue
            record = f"line {line_no}"
            try:
                entity = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                stats.records += 1
                yield Reject(file, line_no, record, "<row>", "broken_row", "not valid JSON")
                continue
            except RecursionError:  # e.g. 100 000 nested '[': json recurses once per level
                stats.records += 1
                yield Reject(file, line_no, record, "<row>", "broken_row", "JSON nested too deeply")
                continue
            if not isinstance(entity, dict) or not isinstance(entity.get("schema"), str):
                stats.records += 1
                yield Reject(file, line_no, record, "schema", "broken_row", "not an FtM entity")
                continue
            subject_type = _schema_type(entity["schema"])
            if subject_type is None:
                stats.records += 1
                yield Reject(file, line_no, record, "schema", "invalid_format", "unknown schema")
                continue
            if not subject_type:
                stats.skipped += 1
                continue
            stats.records += 1
            if not isinstance(entity.get("properties", {}), dict):
                yield Reject(file, line_no, record, "properties", "broken_row", "not an object")
                continue
            # _values iterates a property's value: {"name": 5} raised TypeError (a traceback
            # that stopped the whole load); FtM property values are lists of strings.
            props = entity.get("properties") or {}
            if not all(_is_property_value(v) for v in props.values()):
                reason = "a property value is not a string or a list of strings"
                yield Reject(file, line_no, record, "properties", "invalid_format", reason)
                continue
            result = build_subject(
                entity_fields(entity, subject_type),
                source=source,
                file=file,
                record=f"{record} ({entity['schema']})",
                line=line_no,
                default_retention=default_retention,
            )
            if isinstance(result, list):
                yield from result
            else:
                yield result
