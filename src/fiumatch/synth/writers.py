"""Writers for synthetic records: CSV, FollowTheMoney (JSON Lines) and goAML XML.

Owns the serialisation of flat synthetic records into the three formats the readers take,
and the goAML reference each record gets (so the ground truth can name it). Streams: one
record at a time to the file. Writes nothing but the files it is given.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from xml.sax.saxutils import escape

from fiumatch.identifiers.countries import normalise_country
from fiumatch.identifiers.dates import parse_partial_date
from fiumatch.ingest.build import FIELDS

__all__ = ["GOAML_TAG", "goaml_ref", "write_csv", "write_ftm", "write_goaml"]

#: goAML report_party child element per subject type; wallets have none in goAML.
GOAML_TAG = {"person": "person", "organisation": "entity", "bank_account": "account"}


def write_csv(records: Iterable[Mapping[str, str]], path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS, extrasaction="raise")
        writer.writeheader()
        for rec in records:
            writer.writerow(rec)


def _iso(value: str) -> str:
    return parse_partial_date(value).iso


def _entity(rec: Mapping[str, str]) -> dict[str, object]:
    kind = rec["type"]
    props: dict[str, list[str]] = {}

    def put(prop: str, value: str | None) -> None:
        if value:
            props.setdefault(prop, []).append(value)

    if kind == "person":
        schema = "Person"
        name = rec.get("name") or " ".join(
            x for x in (rec.get("given_name"), rec.get("middle_name"), rec.get("family_name")) if x
        )
        put("name", name)
        put("firstName", rec.get("given_name"))
        put("middleName", rec.get("middle_name"))
        put("lastName", rec.get("family_name"))
        put("alias", rec.get("aliases"))
        if rec.get("birth_date"):
            put("birthDate", _iso(rec["birth_date"]))
        put("nationality", rec.get("nationality"))
        put("passportNumber", rec.get("passport_number"))
        put("idNumber", rec.get("national_id"))
        put("taxNumber", rec.get("tax_id"))
    elif kind == "organisation":
        schema = "Company"
        put("name", rec.get("name"))
        put("jurisdiction", rec.get("country"))
        put("registrationNumber", rec.get("registration_number"))
        put("leiCode", rec.get("lei"))
        put("taxNumber", rec.get("tax_id"))
    elif kind == "bank_account":
        schema = "BankAccount"
        put("name", rec.get("name"))
        put("iban", rec.get("iban"))
        put("accountNumber", rec.get("account_number"))
        put("bic", rec.get("bic"))
        put("country", rec.get("country"))
    else:
        schema = "CryptoWallet"
        put("publicKey", rec.get("wallet_address"))
        put("currency", rec.get("wallet_chain"))
    if kind in ("person", "organisation"):
        phone = rec.get("phone")
        if phone and not phone.startswith(("+", "00")) and rec.get("phone_country"):
            # FtM has no phone-country property: a national number is written with its
            # country prefix, as FtM's own phone cleaning would.
            import phonenumbers

            parsed = phonenumbers.parse(phone, rec["phone_country"])
            phone = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
        put("phone", phone)
        put("email", rec.get("email"))
    return {"id": rec["local_ref"], "schema": schema, "properties": props}


def write_ftm(records: Iterable[Mapping[str, str]], path: Path) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(_entity(rec), ensure_ascii=False) + "\n")


def goaml_ref(report_ref: str, index: int, kind: str) -> str:
    """The local reference the goAML reader gives the ``index``-th (1-based) report party."""
    party = "report_party" if index == 1 else f"report_party[{index}]"
    return f"{report_ref}/activity/report_parties/{party}/{GOAML_TAG[kind]}"


def _el(tag: str, value: str | None, indent: str) -> str:
    return f"{indent}<{tag}>{escape(value)}</{tag}>\n" if value else ""


def _alpha2(value: str | None) -> str:
    return normalise_country(value) if value else ""


def _goaml_party(rec: Mapping[str, str]) -> str:
    kind = rec["type"]
    i = "          "
    body = ""
    if kind == "person":
        body += _el("first_name", rec.get("given_name"), i)
        body += _el("middle_name", rec.get("middle_name"), i)
        body += _el("last_name", rec.get("family_name"), i)
        dob = rec.get("birth_date")
        if dob:
            # goAML's birthdate is an xs:dateTime; a partial date is written as it is known
            # ("1980", "1980-05") rather than invented, which strict schema checks flag.
            parsed = parse_partial_date(dob)
            iso = parsed.iso + "T00:00:00" if parsed.day is not None else parsed.iso
            body += _el("birthdate", iso, i)
        body += _el("alias", rec.get("aliases"), i)
        body += _el("passport_number", rec.get("passport_number"), i)
        body += _el("passport_country", _alpha2(rec.get("passport_country")), i)
        body += _el("nationality1", _alpha2(rec.get("nationality")), i)
    elif kind == "organisation":
        body += _el("name", rec.get("name"), i)
        body += _el("incorporation_number", rec.get("registration_number"), i)
        body += _el("incorporation_country_code", _alpha2(rec.get("country")), i)
    else:
        body += _el("institution_name", "Synthetic Bank", i)
        body += _el("swift", rec.get("bic"), i)
        body += _el("account", rec.get("account_number"), i)
        body += _el("account_name", rec.get("name"), i)
        body += _el("iban", rec.get("iban"), i)
    if kind in ("person", "organisation"):
        phone = rec.get("phone")
        if phone:
            body += f"{i}<phones>\n{i}  <phone>\n"
            body += _el("tph_contact_type", "B", i + "    ")
            body += _el("tph_communication_type", "M", i + "    ")
            body += _el("tph_number", phone, i + "    ")
            body += f"{i}  </phone>\n{i}</phones>\n"
        body += _el("email", rec.get("email"), i)
        if kind == "organisation" and rec.get("tax_id"):
            body += _el("tax_number", rec.get("tax_id"), i)
    if kind == "person":
        for number_field, type_code in (("national_id", "ID"), ("tax_id", "TAX")):
            if rec.get(number_field):
                body += f"{i}<identification>\n"
                body += _el("type", type_code, i + "  ")
                body += _el("number", rec[number_field], i + "  ")
                body += _el("issue_country", _alpha2(rec.get(f"{number_field}_country")), i + "  ")
                body += f"{i}</identification>\n"
    tag = GOAML_TAG[kind]
    return (
        f"      <report_party>\n        <{tag}>\n{body}        </{tag}>\n"
        f"        <significance>5</significance>\n      </report_party>\n"
    )


def write_goaml(
    records: Iterable[Mapping[str, str]], path: Path, report_ref: str, rentity_id: str
) -> dict[str, str]:
    """Write one goAML report; return ``{record local_ref: goAML reference}``."""
    refs: dict[str, str] = {}
    with path.open("w", encoding="utf-8") as fh:
        fh.write('<?xml version="1.0" encoding="UTF-8"?>\n<report>\n')
        fh.write(f"  <rentity_id>{escape(rentity_id)}</rentity_id>\n")
        fh.write("  <submission_code>E</submission_code>\n  <report_code>SAR</report_code>\n")
        fh.write(f"  <entity_reference>{escape(report_ref)}</entity_reference>\n")
        fh.write("  <submission_date>2024-01-01T00:00:00</submission_date>\n")
        fh.write("  <currency_code_local>EUR</currency_code_local>\n")
        fh.write("  <reason>Synthetic data</reason>\n  <activity>\n    <report_parties>\n")
        index = 0
        for rec in records:
            if rec["type"] not in GOAML_TAG:
                continue
            index += 1
            fh.write(_goaml_party(rec))
            refs[rec["local_ref"]] = goaml_ref(report_ref, index, rec["type"])
        fh.write("    </report_parties>\n  </activity>\n</report>\n")
    return refs
