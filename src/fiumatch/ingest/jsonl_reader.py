"""JSON Lines reader: one JSON object per line, keys from the CSV column vocabulary.

Owns JSON Lines framing only. Values are strings, numbers, ``null``, or (for multi-valued
fields) lists of strings. A line that is not a JSON object becomes a reject with its line
number; the load goes on. Streams one line at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

from fiumatch.identifiers.model import Subject
from fiumatch.ingest.build import FIELDS, Value, build_subject
from fiumatch.ingest.rejects import Reject
from fiumatch.ingest.stats import IngestStats

__all__ = ["read_jsonl"]

_KNOWN = frozenset(FIELDS)


def _coerce(value: object) -> Value | bool:
    """A JSON value as a field value; ``False`` when it has a shape we do not accept."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str | int) for v in value):
        return [str(v) for v in value]
    return False


def read_jsonl(
    path: Path, *, source: str, default_retention: date, stats: IngestStats
) -> Iterator[Subject | Reject]:
    file = str(path)
    with path.open("rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            if not line_no % 256:
                stats.bytes_read = fh.tell()  # for progress bars
            if not raw.strip():
                continue
            stats.records += 1
            record = f"line {line_no}"
            try:
                obj = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                yield Reject(file, line_no, record, "<row>", "broken_row", "not valid JSON")
                continue
            except RecursionError:  # e.g. 100 000 nested '[': json recurses once per level
                yield Reject(file, line_no, record, "<row>", "broken_row", "JSON nested too deeply")
                continue
            if not isinstance(obj, dict):
                yield Reject(file, line_no, record, "<row>", "broken_row", "not a JSON object")
                continue
            fields: dict[str, Value] = {}
            bad: list[Reject] = []
            for key, value in obj.items():
                if key not in _KNOWN:
                    stats.ignored_columns.add(key)
                    continue
                coerced = _coerce(value)
                if coerced is False:
                    reason = "unsupported JSON type"
                    bad.append(Reject(file, line_no, record, key, "invalid_format", reason))
                    continue
                fields[key] = coerced  # type: ignore[assignment]
            if bad:
                yield from bad
                continue
            result = build_subject(
                fields,
                source=source,
                file=file,
                record=record,
                line=line_no,
                default_retention=default_retention,
            )
            if isinstance(result, list):
                yield from result
            else:
                yield result
