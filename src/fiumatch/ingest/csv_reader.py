"""CSV reader: one subject per row, columns from :data:`fiumatch.ingest.build.FIELDS`.

Owns CSV framing only (UTF-8, optional BOM, RFC 4180 quoting, a header row). Streams: one
row in memory at a time. A row whose field count differs from the header, or that the csv
module cannot parse, becomes a reject with its line number; the load goes on. Unknown
columns are ignored and counted.

Framing (:func:`csv_units`) is split from building (:func:`build_unit`). The parallel
reader (:mod:`fiumatch.ingest.parallel`) frames byte ranges of the file in its workers with
the same csv module, the same line counting and the same rejects as :func:`csv_rows` (tests
hold the two readers' output equal, on fuzzed files too): a change to the framing here must
be made there as well.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import cast

from fiumatch.identifiers.model import Subject
from fiumatch.ingest.build import FIELDS, build_subject
from fiumatch.ingest.rejects import Reject
from fiumatch.ingest.stats import IngestStats

__all__ = ["CsvRow", "CsvUnit", "build_unit", "csv_rows", "csv_units", "read_csv"]

_KNOWN = frozenset(FIELDS)
_BYTES_EVERY = 256  # rows between updates of ``stats.bytes_read``
# Bytes that are not UTF-8 are decoded with surrogateescape (to U+DC80..U+DCFF) and the row
# holding them is rejected at its own line. A strict TextIOWrapper decodes 8 KiB at a time:
# the error surfaced at whichever row was being read (the header, for a small file) and the
# rest of the file was lost.
_NOT_UTF8 = re.compile("[\udc80-\udcff]")

#: One framed row: its (last) line number and its non-empty fields; or a framing reject.
CsvUnit = tuple[int, dict[str, str]] | Reject


def csv_units(path: Path, *, stats: IngestStats) -> Iterator[CsvUnit]:
    """Frame a CSV file into rows: ``(line, fields)`` or a :class:`Reject` for a broken row.

    Counts every row looked at in ``stats.records`` and keeps ``stats.bytes_read`` (bytes
    decoded so far, for progress bars) roughly current.
    """
    rows = csv_rows(path, stats=stats)
    header = next(rows, None)
    if isinstance(header, Reject):
        yield header  # the broken header's
    if not isinstance(header, list):
        return
    for unit in cast(Iterator[CsvRow], rows):
        if isinstance(unit, Reject):
            yield unit
        else:
            line, row = unit
            yield line, {k: v for k, v in zip(header, row, strict=True) if v}


#: One framed row before it is a mapping: its (last) line number and its values in header
#: order (as many as the header has); or a framing reject.
CsvRow = tuple[int, list[str]] | Reject


def csv_rows(path: Path, *, stats: IngestStats) -> Iterator[list[str] | CsvRow]:
    """:func:`csv_units` without the mapping: first the header (stripped column names), then
    ``(line, values)`` or a framing :class:`Reject` per row. Nothing if the file is empty
    or its header is broken (then only the header's reject)."""
    file = str(path)
    with path.open("rb") as raw, io.TextIOWrapper(
        raw, encoding="utf-8-sig", errors="surrogateescape", newline=""
    ) as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            return
        except csv.Error as exc:
            stats.records += 1
            yield header_reject(file, 1, type(exc).__name__)
            return
        if _NOT_UTF8.search("".join(header)):
            stats.records += 1
            yield header_reject(file, reader.line_num, "header is not UTF-8")
            return
        stats.ignored_columns.update(h for h in header if h not in _KNOWN)
        yield header
        width = len(header)
        countdown = _BYTES_EVERY
        search = _NOT_UTF8.search
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error:
                stats.records += 1
                line = reader.line_num
                reason = "row cannot be parsed as CSV"
                yield Reject(file, line, f"line {line}", "<row>", "broken_row", reason)
                continue
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            stats.records += 1
            countdown -= 1
            if not countdown:
                countdown = _BYTES_EVERY
                stats.bytes_read = raw.tell()
            if search("".join(row)):
                yield Reject(file, line, f"line {line}", "<row>", "broken_row", "row is not UTF-8")
                continue
            if len(row) != width:
                yield Reject(
                    file, line, f"line {line}", "<row>", "broken_row",
                    f"row has {len(row)} fields, header has {width}",
                )  # fmt: skip
                continue
            yield line, row
        stats.bytes_read = raw.tell()


def header_reject(file: str, line: int, reason: str) -> Reject:
    return Reject(file, line, "header", "<row>", "broken_row", reason)


def build_unit(
    unit: CsvUnit, *, source: str, file: str, default_retention: date
) -> list[Subject | Reject]:
    """What one framed row yields: its subject, or its rejects (a framing reject as is)."""
    if isinstance(unit, Reject):
        return [unit]
    line, fields = unit
    result = build_subject(
        fields,
        source=source,
        file=file,
        record=f"line {line}",
        line=line,
        default_retention=default_retention,
    )
    return list(result) if isinstance(result, list) else [result]


def read_csv(
    path: Path, *, source: str, default_retention: date, stats: IngestStats
) -> Iterator[Subject | Reject]:
    file = str(path)
    for unit in csv_units(path, stats=stats):
        if isinstance(unit, Reject):
            yield unit
            continue
        line, fields = unit
        result = build_subject(
            fields,
            source=source,
            file=file,
            record=f"line {line}",
            line=line,
            default_retention=default_retention,
        )
        if isinstance(result, list):
            yield from result
        else:
            yield result
