"""goAML XML reader: persons, entities and accounts from UNODC goAML reports.

Owns the mapping of goAML's ``t_person``, ``t_entity`` and ``t_account`` elements (wherever
they occur: ``from_person``/``to_person``, ``from_entity``/``to_entity``,
``from_account``/``to_account``, ``signatory/t_person``, ``t_entity`` inside an account,
``director_id``, ``conductor``, and ``report_party`` ``person``/``entity``/``account``)
onto the column vocabulary, and their identifiers (passport, ``id_number``, ``ssn``,
``tax_number``, ``identification``, phones, e-mail, IBAN, SWIFT + account number,
incorporation number).

Safety: parsed with defusedxml, DTDs forbidden (so no entity expansion and no external
entities); a forbidden construct or a parse error ends the file with one reject, and what
was read before still loads. Streaming: ``iterparse`` with elements cleared and detached
once read, so memory stays flat whatever the file size.

The local reference of a subject is its path in the report, e.g.
``STR-2024-001/transaction:TX17/t_from_my_client/from_account/signatory[2]/t_person``:
the same file read twice gives the same references, hence the same subject ids.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError

from fiumatch.identifiers.model import Subject
from fiumatch.ingest.build import Value, build_subject
from fiumatch.ingest.rejects import Reject
from fiumatch.ingest.stats import IngestStats

__all__ = ["ACCOUNT_TAGS", "ENTITY_TAGS", "PERSON_TAGS", "read_goaml"]

PERSON_TAGS = frozenset({"from_person", "to_person", "t_person", "person", "director_id",
                         "conductor"})  # fmt: skip
ENTITY_TAGS = frozenset({"from_entity", "to_entity", "entity", "t_entity"})
ACCOUNT_TAGS = frozenset({"from_account", "to_account", "account"})
_DETACH = frozenset({"transaction", "report_party", "report"})


@dataclass
class _Frame:
    elem: Element
    label: str
    counts: Counter[str] = field(default_factory=Counter)


def _tag(elem: Element) -> str:
    tag = elem.tag
    return tag.rsplit("}", 1)[-1] if "}" in tag else tag


def _text(elem: Element, name: str) -> str:
    for child in elem:
        if _tag(child) == name:
            return (child.text or "").strip()
    return ""


def _texts(elem: Element, name: str) -> list[str]:
    return [(c.text or "").strip() for c in elem if _tag(c) == name and (c.text or "").strip()]


def _children(elem: Element, name: str) -> list[Element]:
    return [c for c in elem if _tag(c) == name]


def _phones(elem: Element) -> list[str]:
    out: list[str] = []
    for holder in (*_children(elem, "phones"), elem):
        for phone in _children(holder, "phone"):
            number = _text(phone, "tph_number")
            if not number:
                continue
            prefix = _text(phone, "tph_country_prefix").lstrip("+0")
            out.append(f"+{prefix} {number}" if prefix else number)
    return out


def _emails(elem: Element) -> list[str]:
    return _texts(elem, "email")


def person_fields(elem: Element) -> dict[str, Value]:
    nationality = [v for v in (_text(elem, f"nationality{i}") for i in (1, 2, 3)) if v]
    residence = _text(elem, "residence")
    passports, passport_cc = [], []
    ids, ids_cc, taxes, taxes_cc = [], [], [], []
    if _text(elem, "passport_number"):
        passports.append(_text(elem, "passport_number"))
        passport_cc.append(_text(elem, "passport_country"))
    for tag in ("id_number", "ssn"):
        if _text(elem, tag):
            ids.append(_text(elem, tag))
            ids_cc.append(residence)
    if _text(elem, "tax_number"):
        taxes.append(_text(elem, "tax_number"))
        taxes_cc.append(residence)
    for ident in _children(elem, "identification"):
        number, kind = _text(ident, "number"), _text(ident, "type").lower()
        country = _text(ident, "issue_country")
        if not number:
            continue
        if "pass" in kind:
            passports.append(number)
            passport_cc.append(country)
        elif "tax" in kind:
            taxes.append(number)
            taxes_cc.append(country)
        else:
            ids.append(number)
            ids_cc.append(country)
    return {
        "type": "person",
        "given_name": _text(elem, "first_name"),
        "middle_name": _text(elem, "middle_name"),
        "family_name": _text(elem, "last_name"),
        "aliases": _texts(elem, "alias"),
        "birth_date": _text(elem, "birthdate"),
        "nationality": nationality or ([residence] if residence else []),
        "passport_number": passports,
        "passport_country": passport_cc,
        "national_id": ids,
        "national_id_country": ids_cc,
        "tax_id": taxes,
        "tax_id_country": taxes_cc,
        "phone": _phones(elem),
        "email": _emails(elem),
    }


def entity_fields(elem: Element) -> dict[str, Value]:
    country = _text(elem, "incorporation_country_code")
    return {
        "type": "organisation",
        "name": _text(elem, "name"),
        "aliases": _texts(elem, "commercial_name"),
        "country": [country] if country else [],
        "registration_number": _text(elem, "incorporation_number"),
        "tax_id": [_text(elem, "tax_number")] if _text(elem, "tax_number") else [],
        "phone": _phones(elem),
        "email": _emails(elem),
    }


def account_fields(elem: Element) -> dict[str, Value]:
    return {
        "type": "bank_account",
        "name": _text(elem, "account_name"),
        "iban": [_text(elem, "iban")] if _text(elem, "iban") else [],
        "account_number": _text(elem, "account"),
        "bic": _text(elem, "swift"),
    }


def _classify(tag: str, elem: Element) -> dict[str, Value] | None:
    if len(elem) == 0:
        return None  # a leaf, e.g. <account>123</account> inside a t_account
    if tag in PERSON_TAGS:
        return person_fields(elem)
    if tag in ENTITY_TAGS:
        return entity_fields(elem)
    if tag in ACCOUNT_TAGS:
        return account_fields(elem)
    return None


def read_goaml(
    path: Path, *, source: str, default_retention: date, stats: IngestStats
) -> Iterator[Subject | Reject]:
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import iterparse

    file = str(path)
    stack: list[_Frame] = []
    report_index = 0
    try:
        for event, elem in iterparse(str(path), events=("start", "end"), forbid_dtd=True):
            tag = _tag(elem)
            if event == "start":
                if stack:
                    counts = stack[-1].counts
                    counts[tag] += 1
                    label = tag if counts[tag] == 1 else f"{tag}[{counts[tag]}]"
                else:
                    label = tag
                if tag == "report":
                    report_index += 1
                    label = f"report[{report_index}]"
                stack.append(_Frame(elem, label))
                continue
            frame = stack.pop()
            parent = stack[-1] if stack else None
            if parent is not None:
                ptag = _tag(parent.elem)
                if tag == "entity_reference" and ptag == "report" and elem.text:
                    parent.label = elem.text.strip()
                elif tag == "transactionnumber" and ptag == "transaction" and elem.text:
                    parent.label = f"transaction:{elem.text.strip()}"
            fields = _classify(tag, elem)
            if fields is not None:
                stats.records += 1
                start = next(
                    (i for i, f in enumerate(stack) if _tag(f.elem) == "report"), len(stack)
                )
                ref = "/".join([f.label for f in stack[start:]] + [frame.label])
                fields["local_ref"] = ref
                result = build_subject(
                    fields,
                    source=source,
                    file=file,
                    record=ref,
                    line=None,
                    default_retention=default_retention,
                )
                if isinstance(result, list):
                    yield from result
                else:
                    yield result
            if tag in _DETACH and parent is not None:
                elem.clear()
                parent.elem.remove(elem)
    except ParseError as exc:
        line = exc.position[0] if getattr(exc, "position", None) else None
        yield Reject(file, line, "document", "<xml>", "broken_xml", "XML is not well-formed")
    except DefusedXmlException as exc:
        yield Reject(
            file, None, "document", "<xml>", "forbidden_xml",
            f"{type(exc).__name__}: DTDs and entities are not allowed",
        )  # fmt: skip
