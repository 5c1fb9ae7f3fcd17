"""CSV reader: one subject per row, columns from :data:`fiumatch.ingest.build.FIELDS`.

Owns CSV framing only (UTF-8, optional BOM, RFC 4180 quoting, a header row). Streams: one
row in memory at a time. A row whose field count differs from the header, or that the csv
module cannot parse, becomes a reject with its line number; the load goes on. Unknown
columns are ignored and counted.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import date
from pathlib import Path

from fiumatch.identifiers.model import Subject
from fiumatch.ingest.build import FIELDS, build_subject
from fiumatch.ingest.rejects import Reject
from fiumatch.ingest.stats import IngestStats

__all__ = ["read_csv"]

_KNOWN = frozenset(FIELDS)


def read_csv(
    path: Path, *, source: str, default_retention: date, stats: IngestStats
) -> Iterator[Subject | Reject]:
    file = str(path)
    with path.open("r", encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            return
        except (csv.Error, UnicodeDecodeError) as exc:
            stats.records += 1
            yield Reject(file, 1, "header", "<row>", "broken_row", type(exc).__name__)
            return
        stats.ignored_columns.update(h for h in header if h not in _KNOWN)
        width = len(header)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except (csv.Error, UnicodeDecodeError) as exc:
                stats.records += 1
                line = reader.line_num
                reason = "row cannot be parsed as CSV" if isinstance(exc, csv.Error) else (
                    "row is not UTF-8"
                )
                yield Reject(file, line, f"line {line}", "<row>", "broken_row", reason)
                if isinstance(exc, UnicodeDecodeError):
                    return  # the decoder cannot resynchronise; the rest of the file is lost
                continue
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            stats.records += 1
            if len(row) != width:
                yield Reject(
                    file, line, f"line {line}", "<row>", "broken_row",
                    f"row has {len(row)} fields, header has {width}",
                )  # fmt: skip
                continue
            result = build_subject(
                {k: v for k, v in zip(header, row, strict=True) if v},
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
