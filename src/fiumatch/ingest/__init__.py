"""fiumatch.ingest: readers from FIU files to subjects, and the reject report.

Owns file formats (CSV, JSON Lines, FollowTheMoney entity streams, goAML XML) and their
mapping onto :class:`fiumatch.identifiers.Subject`. A shell around the pure
``identifiers`` core: it opens files, the core never does. Must never abort a load on a
bad record, never drop one silently (every bad record yields :class:`Reject` entries), and
never hold a whole file in memory.

API::

    read(path, fmt=None, *, default_retention, source=None, stats=None, workers=1)
        -> Iterator[Subject | Reject]
    default_workers(path, fmt=None) -> int   # what ``workers`` to pass when none was asked for

``fmt`` is one of :data:`FORMATS` or ``None`` to guess from the file name. ``source`` names
the data source in subject ids (default: the file name), so moving a file does not change
its subjects' ids. ``workers`` > 1 normalises CSV rows in that many processes
(:mod:`fiumatch.ingest.parallel`) with the same output in the same order; the other formats
are read in the calling process. Persisting what is yielded is the caller's business (the
node's store).
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from datetime import date
from pathlib import Path

from fiumatch.errors import FiumatchError
from fiumatch.identifiers.model import Subject
from fiumatch.ingest.build import FIELDS, MULTI_VALUED, build_subject
from fiumatch.ingest.csv_reader import read_csv
from fiumatch.ingest.ftm_reader import read_ftm
from fiumatch.ingest.goaml_reader import read_goaml
from fiumatch.ingest.jsonl_reader import read_jsonl
from fiumatch.ingest.rejects import Reject, RejectReport
from fiumatch.ingest.stats import IngestStats

__all__ = [
    "FIELDS",
    "FORMATS",
    "MULTI_VALUED",
    "PARALLEL_MIN_BYTES",
    "IngestError",
    "IngestStats",
    "Reject",
    "RejectReport",
    "UnknownFormatError",
    "build_subject",
    "default_workers",
    "detect_format",
    "read",
]

FORMATS = ("csv", "jsonl", "ftm", "goaml")

#: Smallest CSV file read with a worker pool by default (about 35,000 records of typical
#: FIU data). Starting the pool (a fork server that imports and warms the normalisers'
#: libraries, then the workers) costs about half a second, and the results' trip back to
#: this process costs some of what the second core saves: below about 2 MiB a 2-core
#: machine read faster alone, and on a busy machine the break-even moves higher.
PARALLEL_MIN_BYTES = 4 << 20


class IngestError(FiumatchError):
    """A file could not be read at all (as opposed to a bad record in it)."""

    code = "ingest_error"
    http_status = 422


class UnknownFormatError(IngestError):
    """The format is not one of csv, jsonl, ftm, goaml, and cannot be guessed."""

    code = "unknown_format"


def detect_format(path: Path) -> str:
    """Guess the format from the name: ``.csv``, ``.xml``, ``.ftm.json(l)``, ``.jsonl``."""
    name = path.name.lower()
    if name.endswith(".csv"):
        return "csv"
    if name.endswith(".xml"):
        return "goaml"
    if ".ftm." in name or name.endswith((".ftm", ".ijson")):
        return "ftm"
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    raise UnknownFormatError("cannot guess the format from the file name; pass it explicitly")


def default_workers(path: Path, fmt: str | None = None) -> int:
    """Worker processes worth starting for ``path``: one per core for a CSV file of at least
    :data:`PARALLEL_MIN_BYTES`, else 1 (the other formats are always read in this process)."""
    if (fmt or ("csv" if path.name.lower().endswith(".csv") else "")) != "csv":
        return 1
    return (os.cpu_count() or 1) if path.stat().st_size >= PARALLEL_MIN_BYTES else 1


def read(
    path: str | Path,
    fmt: str | None = None,
    *,
    default_retention: date,
    source: str | None = None,
    stats: IngestStats | None = None,
    workers: int = 1,
) -> Iterator[Subject | Reject]:
    """Stream subjects and rejects from one file, in file order."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    readers = {"csv": read_csv, "jsonl": read_jsonl, "ftm": read_ftm, "goaml": read_goaml}
    if fmt not in readers:
        raise UnknownFormatError(f"format must be one of {', '.join(FORMATS)}")
    counters = stats if stats is not None else IngestStats()
    name = source or path.name
    stream: Iterator[Subject | Reject]
    if workers > 1 and fmt == "csv":
        from fiumatch.ingest.parallel import read_csv_parallel

        stream = read_csv_parallel(
            path, source=name, default_retention=default_retention, stats=counters,
            workers=workers,
        )  # fmt: skip
    else:
        stream = readers[fmt](
            path, source=name, default_retention=default_retention, stats=counters
        )
    last_rejected: tuple[str, int | None, str] | None = None
    try:
        for item in stream:
            if isinstance(item, Reject):
                counters.rejects += 1
                ident = (item.file, item.line, item.record)
                if ident != last_rejected:
                    counters.rejected_records += 1
                    last_rejected = ident
            else:
                counters.subjects += 1
                counters.keys += len(item.keys)
            yield item
    finally:
        if isinstance(stream, Generator):
            stream.close()  # a caller that stops early stops the parallel reader's workers now
