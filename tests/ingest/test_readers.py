"""Readers: fixtures load, bad records land in rejects, XML attacks fail cleanly, re-ingestion
is idempotent and files are streamed."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from fiumatch.identifiers import KeyType, Subject, SubjectType
from fiumatch.ingest import IngestStats, Reject, UnknownFormatError, detect_format, read

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RETENTION = date(2031, 1, 1)


def _load(path: Path, fmt: str | None = None) -> tuple[list[Subject], list[Reject]]:
    items = list(read(path, fmt, default_retention=RETENTION))
    return [i for i in items if isinstance(i, Subject)], [i for i in items if isinstance(i, Reject)]


def test_csv_fixture_loads_every_type() -> None:
    subjects, rejects = _load(FIXTURES / "subjects.csv")
    assert rejects == []
    assert {s.type for s in subjects} == set(SubjectType)
    by_ref = {s.local_ref: s for s in subjects}
    hans = by_ref["P-001"]
    assert hans.retention_until == date(2031, 12, 31)
    assert by_ref["P-002"].retention_until == RETENTION
    types = {k.type for k in hans.keys}
    assert {KeyType.IBAN, KeyType.PASSPORT, KeyType.TAX_ID, KeyType.PHONE, KeyType.EMAIL,
            KeyType.PERSON_NAME_DOB, KeyType.PERSON_PHONETIC_YEAR} <= types  # fmt: skip
    assert hans.provenance.source == "subjects.csv" and hans.provenance.line == 2


def test_goaml_fixture(tmp_path: Path) -> None:
    stats = IngestStats()
    items = list(read(FIXTURES / "goaml_report.xml", default_retention=RETENTION, stats=stats))
    subjects = [i for i in items if isinstance(i, Subject)]
    rejects = [i for i in items if isinstance(i, Reject)]
    refs = {s.local_ref: s for s in subjects}
    tx = "STR-2024-001/transaction:TX17"
    signatory = refs[f"{tx}/t_from_my_client/from_account/signatory/t_person"]
    assert signatory.type is SubjectType.PERSON
    assert {k.type for k in signatory.keys} >= {KeyType.PASSPORT, KeyType.TAX_ID, KeyType.PHONE}
    account = refs["STR-2024-001/transaction:TX17/t_from_my_client/from_account"]
    assert {k.type for k in account.keys} == {KeyType.IBAN, KeyType.ACCOUNT_BIC}
    entity = refs["STR-2024-001/transaction:TX17/t_to/to_entity"]
    assert ("romashka", "RU") in {k.fields for k in entity.keys}
    assert not any("reporting_person" in ref for ref in refs)
    assert len(rejects) == 1 and rejects[0].field == "iban" and rejects[0].code == "bad_checksum"
    assert rejects[0].record.endswith("report_party[2]/account")
    assert stats.subjects == 4 and stats.rejected_records == 1


def test_ftm_fixture() -> None:
    stats = IngestStats()
    items = list(read(FIXTURES / "entities.ftm.json", default_retention=RETENTION, stats=stats))
    subjects = {i.local_ref: i for i in items if isinstance(i, Subject)}
    rejects = [i for i in items if isinstance(i, Reject)]
    assert subjects["co-1"].type is SubjectType.ORGANISATION
    assert subjects["pass-1"].type is SubjectType.IDENTITY_DOCUMENT
    assert subjects["wal-1"].type is SubjectType.CRYPTO_WALLET
    assert stats.skipped == 1  # the Ownership
    assert [(r.record, r.field, r.line) for r in rejects] == [("per-3", "nationality", 8)]


BAD_CSV = """local_ref,type,name,birth_date,nationality,iban,phone
G-1,person,Anna Schmidt,1980-01-01,DE,,
B-1,person,Bad Iban,1980-01-01,DE,DE88370400440532013000,
B-2,person,Bad Date,31.02.1980,DE,,
B-3,person,Bad Country,1980-01-01,XQ,,
B-4,person,"Broken, row",1980,DE,,,extra
B-5,alien,Somebody,1980-01-01,DE,,
B-6,person,Two Bad,1980-99-01,DE,DE00,
G-2,organisation,Acme GmbH,,DE,,+49 30 1234567
"""


def test_bad_records_are_reported_and_good_ones_still_load(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(BAD_CSV, encoding="utf-8")
    subjects, rejects = _load(path)
    assert [s.local_ref for s in subjects] == ["G-1", "G-2"]
    got = {(r.record, r.line, r.field, r.code) for r in rejects}
    assert got == {
        ("B-1", 3, "iban", "bad_checksum"),
        ("B-2", 4, "birth_date", "invalid_date"),
        ("B-3", 5, "nationality", "unknown_country"),
        ("line 6", 6, "<row>", "broken_row"),
        ("B-5", 7, "type", "unknown_subject_type"),
        ("B-6", 8, "birth_date", "invalid_date"),
        ("B-6", 8, "iban", "invalid_format"),
    }
    for reject in rejects:
        assert reject.file == str(path) and reject.reason
        assert "DE88" not in reject.reason and "1980" not in reject.reason


def test_jsonl_reader(tmp_path: Path) -> None:
    path = tmp_path / "subjects.jsonl"
    rows = [
        {"local_ref": "J-1", "type": "person", "given_name": "Анна", "family_name": "Иванова",
         "birth_date": "1990-01-15", "nationality": ["RU"], "email": ["A@B.RU", "c@d.ru"]},
        "not an object",
        {"local_ref": "J-2", "type": "email", "email": {"nested": True}},
    ]  # fmt: skip
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n{broken\n", encoding="utf-8")
    subjects, rejects = _load(path)
    assert len(subjects) == 1 and subjects[0].names[0].given == "Анна"
    assert {("email", "a@b.ru"), ("email", "c@d.ru")} <= {
        (str(i.kind), i.value) for i in subjects[0].identifiers
    }
    assert [(r.line, r.code) for r in rejects] == [
        (2, "broken_row"), (3, "invalid_format"), (4, "broken_row"),
    ]  # fmt: skip


def test_reingestion_is_idempotent(tmp_path: Path) -> None:
    first, _ = _load(FIXTURES / "goaml_report.xml")
    copy = tmp_path / "elsewhere.xml"
    copy.write_bytes((FIXTURES / "goaml_report.xml").read_bytes())
    again = list(read(copy, default_retention=RETENTION, source="goaml_report.xml"))
    second = [s for s in again if isinstance(s, Subject)]
    assert [s.subject_id for s in first] == [s.subject_id for s in second]
    assert [s.keys for s in first] == [s.keys for s in second]
    assert len({s.subject_id for s in first}) == len(first)


XML_BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<report><entity_reference>&lol3;</entity_reference></report>
"""
XXE = """<?xml version="1.0"?>
<!DOCTYPE report [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<report><activity><report_parties><report_party><person><first_name>&xxe;</first_name>
<last_name>X</last_name><birthdate>1980-01-01</birthdate></person></report_party>
</report_parties></activity></report>
"""


@pytest.mark.parametrize("payload", [XML_BOMB, XXE])
def test_goaml_entity_attacks_are_rejected_cleanly(tmp_path: Path, payload: str) -> None:
    path = tmp_path / "evil.xml"
    path.write_text(payload, encoding="utf-8")
    subjects, rejects = _load(path)
    assert subjects == []
    assert len(rejects) == 1 and rejects[0].code == "forbidden_xml"
    assert "passwd" not in rejects[0].reason


def test_truncated_goaml_keeps_what_came_before(tmp_path: Path) -> None:
    text = (FIXTURES / "goaml_report.xml").read_text(encoding="utf-8")
    cut = text[: text.index("<activity>") + 40]
    path = tmp_path / "cut.xml"
    path.write_text(cut, encoding="utf-8")
    subjects, rejects = _load(path)
    assert len(subjects) == 3
    assert rejects[-1].code == "broken_xml" and rejects[-1].line is not None


def test_reader_is_a_lazy_stream(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8") as fh:
        fh.write("local_ref,type,email\n")
        for i in range(5000):
            fh.write(f"E-{i},email,user{i}@example.com\n")
    stream = read(path, default_retention=RETENTION, stats=(stats := IngestStats()))
    first = next(stream)
    assert isinstance(first, Subject)
    assert stats.records == 1  # nothing beyond the first row has been read
    assert sum(1 for _ in stream) == 4999


def test_format_detection() -> None:
    assert detect_format(Path("a.CSV")) == "csv"
    assert detect_format(Path("x.goaml.xml")) == "goaml"
    assert detect_format(Path("e.ftm.json")) == "ftm"
    assert detect_format(Path("s.jsonl")) == "jsonl"
    with pytest.raises(UnknownFormatError):
        detect_format(Path("notes.txt"))
