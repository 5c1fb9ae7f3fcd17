"""docs/AUDIT.md is the auditors' reference: it must name every code the implementation uses."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from fiumatch.auditlog import errors
from fiumatch.auditlog.bundle import RecordKind
from fiumatch.auditlog.entry import EVENT_SCHEMAS, FIELD_TAGS, EventType, RefusalClause
from fiumatch.auditlog.verify import PolicyRule

DOC = (Path(__file__).parents[2] / "docs" / "AUDIT.md").read_text()


def _row(first_cell: str) -> str:
    section = DOC[DOC.index("### Event types") : DOC.index("## 4.")]
    match = re.search(rf"^\| {re.escape(first_cell)} \|.*$", section, re.MULTILINE)
    assert match, first_cell
    return match.group(0)


def test_every_event_type_is_documented_with_its_schema() -> None:
    for event in EventType:
        cells = [c.strip() for c in _row(str(event.value)).split("|")[1:-1]]
        assert cells[1] == f"`{event.name.lower()}`"
        schema = EVENT_SCHEMAS[event]
        required = {c.strip() for c in cells[2].split(",")} - {"—"}
        optional = {c.strip() for c in cells[3].split(",")} - {"—", ""}
        assert required == set(schema.required) - {"actor"}, event
        assert optional == set(schema.optional) - {"request_sha256", "response_sha256"}, event


def test_every_field_tag_is_documented() -> None:
    for name, tag in FIELD_TAGS.items():
        assert f"| {tag} | `{name}` |" in DOC


def test_codes_rules_clauses_and_record_kinds_are_documented() -> None:
    for _, cls in inspect.getmembers(errors, inspect.isclass):
        if issubclass(cls, errors.AuditLogError):
            assert f"`{cls.code}`" in DOC, cls.code
    for rule in PolicyRule:
        assert f"`{rule.value}`" in DOC, rule
    for clause in RefusalClause:
        assert f"`{clause.value}`" in DOC, clause
    for kind in RecordKind:
        assert f"| {kind.value} | {kind.name} |" in DOC, kind
