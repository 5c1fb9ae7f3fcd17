"""Parallel CSV ingestion: workers frame and build their own byte ranges of the file.

Owns the chunking, the pool and the compact form results travel in. This process reads the
header (as :func:`fiumatch.ingest.csv_reader.csv_rows` does) and then only cuts the rest of
the file into chunks of about ``chunk_bytes`` bytes, without parsing it: a chunk ends at the
last line break after which the count of quote characters since the chunk's start is even,
which in a file quoted as RFC 4180 says is exactly a record boundary. Each worker reads its
chunk from the file itself, decodes and frames it with the csv module as the serial reader
does (same line numbers, same framing rejects), and builds every row with
:func:`fiumatch.ingest.build.build_parts` (``build_subject`` without making the subject and
key objects, which would only be taken apart again). A stray quote inside an unquoted field
(``O"Brien``, which the csv module keeps as a character) can make a guessed end fall inside
a quoted field: the worker parses a sentinel line after its chunk, and unless that comes
back as a row of its own it reports the chunk as not clean; this process then drops it and
every later chunk, finds the chunk's real end by parsing it with the csv module, and goes on
from there. Results come back **in input order**, and at most ``max_inflight`` chunks are
handed out but not yet yielded, so memory stays bounded however large the file is; the
workers' caches are the normalisers' own bounded LRU caches.

Each result crosses back as its own ``marshal`` blob of plain tuples (strings, small ints,
key fields by type code, as :func:`_pack` packs), not a pickle of objects: pickling a
subject's dozen dataclasses (names, identifiers, keys, dates) in the worker and rebuilding
them through their ``__reduce__`` in this process cost more than deriving the keys. This
process decodes and rebuilds each subject only when it is yielded, with the dataclasses'
direct constructors (``new_subject`` and its kin set the slots without the frozen
``__init__``). ``marshal`` rather than ``pickle``: for plain tuples of strings and ints it
is about a fifth faster both ways (about 2 us a record together, measured on synthetic
records), and both ends are the same interpreter, which is all its format asks; the bytes
come only from our own workers. One blob per result rather than per chunk: a chunk decoded
at once is tens of thousands of new tuples alive together, and the cyclic collector walking
them cost more than the decoding (a list of ``bytes`` is nothing for it to walk). In the
workers (our own processes) the cyclic garbage collector never runs: building a record
leaves no reference cycles (a rejected value's exception used to hold the frame that held
it; tests hold that none are left, reject paths included), so reference counting frees all
garbage, and walking each chunk's survivors (some 50,000 new cache entries per chunk) cost
16 us per record, more than the decoding. What survives a chunk is frozen (``gc.freeze``,
constant time), so a collection started by anything else would not walk the caches either.

The output is exactly the serial reader's (equal subjects with the same keys, and the same
rejects, in the same order); only the scheduling differs. Must never reorder records, never
drop one, and never leave worker processes behind: closing the iterator early shuts the
pool down. A file whose header is broken, or that has nothing after its header, is read by
the serial reader (there is nothing to share out).

Workers start from a fork server (spawn where there is none), never by forking the caller:
as with any such pool, a script that reads in parallel must do so under
``if __name__ == "__main__":``, since each worker imports the script's main module. The
fork server imports the normalisers' libraries once (``_PRELOAD``), so workers start warm.
"""

from __future__ import annotations

import codecs
import csv
import gc
import io
import marshal
import multiprocessing
import signal
import sys
from collections import deque
from collections.abc import Generator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import date
from functools import lru_cache
from itertools import chain
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any, BinaryIO

from fiumatch.identifiers.caches import VALUE_CACHE
from fiumatch.identifiers.dates import PartialDate
from fiumatch.identifiers.keys import KeyType, new_key
from fiumatch.identifiers.model import (
    IdentifierKind,
    Subject,
    SubjectType,
    new_identifier,
    new_provenance,
    new_subject,
    subject_id,
)
from fiumatch.identifiers.names import new_person_name
from fiumatch.ingest.build import Parts, build_parts, plain_row
from fiumatch.ingest.csv_reader import _KNOWN, _NOT_UTF8, read_csv
from fiumatch.ingest.rejects import Reject
from fiumatch.ingest.stats import IngestStats

__all__ = ["DEFAULT_CHUNK", "WorkerError", "read_csv_parallel"]

#: Bytes per task (about 2,000 rows of typical FIU data): large enough that a task's round
#: trip (a pickle, a pipe, a wake-up) is noise, small enough that the first results come
#: back within a fraction of a second and the last task does not keep one worker busy alone.
DEFAULT_CHUNK = 1 << 18
#: Chunks' worth of bytes :func:`_cut` reads looking for a likely record boundary.
_GUESS_CHUNKS = 16
#: The header must end within this many bytes for the file to be read in parallel.
_HEADER_BYTES = 1 << 20
#: Parsed after a chunk whose end is a guess: it comes back as a row of its own exactly
#: when the chunk ended at a record boundary (see _build_chunk).
_SENTINEL_ROW = ["\udcff\x00fiumatch-end-of-chunk\x00\udcff"]
_SENTINEL_LINE = _SENTINEL_ROW[0] + "\n"

# Imported once in the fork server, so each worker starts with them already loaded.
_PRELOAD = [
    "fiumatch.ingest.parallel",
    "fiumatch.ingest.warmup",  # runs the normalisers once: workers start warm
    "rigour.names",
    "rigour.text.translit",
    "rigour.text.phonetics",
    "phonenumbers",
    "schwifty",
    "stdnum.lei",
]

_TYPES = tuple(SubjectType)
_TYPE_INDEX = {t: i for i, t in enumerate(_TYPES)}
_KINDS = tuple(IdentifierKind)
_KIND_INDEX = {k: i for i, k in enumerate(_KINDS)}
_KEY_TYPES = {kt.code: kt for kt in KeyType}
_KEY_CODES = {kt: kt.code for kt in KeyType}  # a dict lookup, not a property call

#: A result in transit: a subject's fields as plain values, or a reject's six fields.
_Packed = tuple[Any, ...]


def _pack(
    parts: Parts, source: str, line: int, default_retention: date
) -> _Packed:
    """A built record's parts as plain values (see the module docstring): what
    :func:`fiumatch.ingest.build.build_subject` would make a subject of, without making it.
    :func:`_unpack` makes the subject. A reject travels as its six fields."""
    local_ref, stype, retention, names, birth, countries, identifiers, pairs = parts
    key_codes = _KEY_CODES
    return (
        subject_id(source, local_ref),
        _TYPE_INDEX[stype],
        local_ref,
        None if retention == default_retention else retention.toordinal(),  # marshal: no dates
        line,
        tuple([(n.full, n.given, n.middle, n.family) for n in names]),
        None if birth is None else (birth.year, birth.month, birth.day),
        tuple(countries),
        tuple([(_KIND_INDEX[i.kind], i.value, i.qualifier) for i in identifiers]),
        tuple([(key_codes[kt], f) for kt, f in dict.fromkeys(pairs)]),  # deduplicated
    )


@lru_cache(maxsize=VALUE_CACHE)
def _date(year: int, month: int | None, day: int | None) -> PartialDate:
    return PartialDate(year, month, day)  # immutable: subjects may share one


def _unpack(packed: _Packed, source: str, default_retention: date) -> Subject | Reject:
    if len(packed) == 6:
        return Reject(*packed)
    sid, type_index, ref, retention, line, names, birth, countries, idents, keys = packed
    key_types, kinds = _KEY_TYPES, _KINDS
    return new_subject(
        sid,
        _TYPES[type_index],
        ref,
        default_retention if retention is None else date.fromordinal(retention),
        new_provenance(source, f"line {line}", line),  # the serial reader's record name
        tuple([new_person_name(*n) for n in names]),
        None if birth is None else _date(*birth),
        countries,
        tuple([new_identifier(kinds[k], value, q) for k, value, q in idents]),
        tuple([new_key(key_types[code], fields) for code, fields in keys]),
    )


class WorkerError(RuntimeError):
    """A worker process died (killed, out of memory); the read cannot go on."""


def _context() -> BaseContext:
    # Never fork the calling process: it may run threads (a progress bar refreshes from
    # one), and a fork copies their locks in whatever state they are.
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")


def _init_worker() -> None:
    # Ctrl-C is the parent's to handle: it shuts the pool down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in _PRELOAD:
        __import__(name)
    # No cyclic collection in a worker (see the module docstring): what exists now
    # (modules, ICU and phone metadata) and every chunk's survivors are frozen instead.
    gc.freeze()
    gc.disable()


def _build_chunk(
    path: str,
    start: int,
    end: int,
    first_line: int,
    lines: int,
    check_end: bool,
    header: list[str],
    source: str,
    default_retention: date,
) -> tuple[int, bool, list[bytes]]:
    """Frame and build the rows of bytes ``[start, end)`` of the file, which start at a
    record boundary after line ``first_line``; their results, packed, each as its own
    ``marshal`` blob.

    Returns ``(rows framed, clean, results)``. With ``check_end`` the chunk's end was only
    guessed to be a record boundary (see :func:`_cut`): a sentinel line is parsed after the
    chunk's ``lines`` lines, and the end was a boundary (``clean``) exactly when the sentinel
    comes back as a row of its own; otherwise a quoted field was still open and the
    caller discards this chunk and cuts it again exactly.
    """
    with open(path, "rb") as fh:
        fh.seek(start)
        data = fh.read(end - start)
    # The chunk starts after a line break, so no UTF-8 sequence straddles its start: decoding
    # it alone gives the same text as the serial reader's decoding of the whole file.
    decoded = data.decode("utf-8", "surrogateescape")
    # Rows are checked for bytes that are not UTF-8 one by one only if the chunk has any.
    bad_bytes = _NOT_UTF8.search(decoded) is not None
    text = io.StringIO(decoded, newline="")
    del decoded
    reader = csv.reader(chain(text, (_SENTINEL_LINE,)) if check_end else text)
    limit = lines if check_end else sys.maxsize
    width = len(header)
    search = _NOT_UTF8.search
    out: list[_Packed] = []
    append = out.append
    records = 0
    clean = not check_end
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error:
            n = reader.line_num
            if n > limit:
                break  # the sentinel ran into an open field: not clean
            records += 1
            line = first_line + n
            append((path, line, f"line {line}", "<row>", "broken_row",
                    "row cannot be parsed as CSV"))  # fmt: skip
            continue
        n = reader.line_num
        if n > limit:
            # Only a row that started at the sentinel line can equal it: one that started
            # earlier holds at least that line's break too.
            clean = row == _SENTINEL_ROW
            break
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        records += 1
        line = first_line + n
        record = f"line {line}"
        if bad_bytes and search("".join(row)):
            append((path, line, record, "<row>", "broken_row", "row is not UTF-8"))
            continue
        if len(row) != width:
            append((path, line, record, "<row>", "broken_row",
                    f"row has {len(row)} fields, header has {width}"))  # fmt: skip
            continue
        parts = build_parts(
            {k: v for k, v in zip(header, row, strict=True) if v},
            file=path,
            record=record,
            line=line,
            default_retention=default_retention,
            values_checked=plain_row(row),
        )
        if isinstance(parts, list):
            out.extend([(r.file, r.line, r.record, r.field, r.code, r.reason) for r in parts])
        else:
            append(_pack(parts, source, line, default_retention))
    blobs: list[bytes] = []
    if clean:
        dumps = marshal.dumps
        blobs = [dumps(packed) for packed in out]
    del out
    gc.freeze()  # this chunk's survivors, mostly new cache entries
    return records, clean, blobs


def _count_lines(data: bytes) -> int:
    """Line breaks in ``data`` as the serial reader counts them (``\\n``, ``\\r``, ``\\r\\n``)."""
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


def _cut(fh: BinaryIO, start: int, chunk_bytes: int) -> tuple[int, int, bool]:
    """Where the chunk that starts at ``start`` (a record boundary) ends: ``(end, lines,
    last)``; ``last`` when it runs to the end of the file.

    A guess, made without parsing: the last line break of (at least) ``chunk_bytes`` bytes
    after which the count of quote characters since ``start`` is even. In a file quoted as
    RFC 4180 says, that is exactly a record boundary; a stray quote inside an unquoted field
    (``O"Brien``) can make it wrong, which the worker notices (see :func:`_build_chunk`).
    With no such line break in :data:`_GUESS_CHUNKS` chunks' worth of bytes (a quote that
    never closes), the chunk is cut exactly instead (:func:`_exact_cut`): the serial reader
    gives up on a field at the csv module's field size limit, and so does that cut, so
    neither holds more of the file than that at once.
    """
    fh.seek(start)
    block = b""
    want = chunk_bytes
    while True:
        if len(block) >= _GUESS_CHUNKS * chunk_bytes:
            return _exact_cut(fh, start, chunk_bytes)
        more = fh.read(want)
        block += more
        if len(more) < want:
            return start + len(block), _count_lines(block), True
        quotes = block.count(b'"')
        tail, p = 0, len(block)
        while True:
            i = block.rfind(b"\n", 0, p)
            if i < 0:
                break
            tail += block.count(b'"', i + 1, p)
            if not (quotes - tail) & 1:
                cut = block[: i + 1]
                return start + len(cut), _count_lines(cut), False
            p = i
        want = len(block)  # no boundary yet: read as much again


def _exact_cut(fh: BinaryIO, start: int, at_least: int) -> tuple[int, int, bool]:
    """Like :func:`_cut` but exact: parses from ``start`` with the serial reader's csv
    reader and ends the chunk at the last record boundary it finds. Used only when a
    guessed end turned out not to be a boundary."""
    want = max(at_least, 1)
    while True:
        fh.seek(start)
        block = fh.read(want)
        lines = io.StringIO(block.decode("utf-8", "surrogateescape"), newline="").readlines()
        if len(block) < want:
            return start + len(block), len(lines), True
        reader = csv.reader(lines)
        best = 0
        while True:
            try:
                next(reader)
            except StopIteration:
                break
            except csv.Error:
                pass  # the reader starts afresh at the next line, as the serial one does
            n = reader.line_num
            if n >= len(lines):
                break  # the block's last line may be cut short: not a boundary to trust
            best = n
        if best:
            size = len("".join(lines[:best]).encode("utf-8", "surrogateescape"))
            return start + size, best, False
        want *= 2


def _header(path: Path) -> tuple[list[str], int, int] | None:
    """The header as :func:`fiumatch.ingest.csv_reader.csv_rows` reads it, with the byte
    offset and the line count after it; ``None`` when the file is empty, has nothing after
    its header, or its header is broken (the serial reader handles those: they cost
    nothing)."""
    with path.open("rb") as fh:
        block = fh.read(_HEADER_BYTES)
    bom = len(codecs.BOM_UTF8) if block.startswith(codecs.BOM_UTF8) else 0
    lines = io.StringIO(block[bom:].decode("utf-8", "surrogateescape"), newline="").readlines()
    reader = csv.reader(lines)
    try:
        row = next(reader)
    except (StopIteration, csv.Error):
        return None
    n = reader.line_num
    if n >= len(lines):
        return None  # nothing after it, or it may run past the block
    header = [h.strip() for h in row]
    if _NOT_UTF8.search("".join(header)):
        return None
    return header, bom + len("".join(lines[:n]).encode("utf-8", "surrogateescape")), n


def read_csv_parallel(
    path: Path,
    *,
    source: str,
    default_retention: date,
    stats: IngestStats,
    workers: int,
    chunk_bytes: int = DEFAULT_CHUNK,
    max_inflight: int | None = None,
) -> Generator[Subject | Reject, None, None]:
    """Like :func:`fiumatch.ingest.csv_reader.read_csv`, with ``workers`` processes.

    ``max_inflight`` (default: three chunks per worker) bounds the chunks handed out but not
    yet yielded. ``stats.records`` and ``stats.bytes_read`` advance a chunk at a time, as
    its results are yielded.
    """
    if workers < 1 or chunk_bytes < 1:
        raise ValueError("workers and chunk_bytes must be at least 1")
    head = _header(path)
    if head is None:
        yield from read_csv(path, source=source, default_retention=default_retention,
                            stats=stats)  # fmt: skip
        return
    header, next_start, next_line = head
    stats.ignored_columns.update(h for h in header if h not in _KNOWN)
    limit = max(1, max_inflight if max_inflight is not None else 3 * workers)
    file = str(path)
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=_context(), initializer=_init_worker
    )
    #: (future, start, end, first line, lines)
    pending: deque[tuple[Future[tuple[int, bool, list[bytes]]], int, int, int, int]] = deque()
    done = False

    def submit(start: int, end: int, first: int, lines: int, check_end: bool) -> None:
        try:
            future = pool.submit(_build_chunk, file, start, end, first, lines, check_end,
                                 header, source, default_retention)  # fmt: skip
        except BrokenProcessPool:
            raise WorkerError("an ingest worker process died or could not start") from None
        pending.append((future, start, end, first, lines))

    try:
        with path.open("rb") as fh:
            total = path.stat().st_size
            while True:
                while not done and len(pending) < limit:
                    # Near the end, smaller chunks: the last one keeps a single worker busy
                    # while the others wait (a tenth of a second at the default size).
                    near_end = total - next_start <= 2 * workers * chunk_bytes
                    want = max(1, chunk_bytes // 4) if near_end else chunk_bytes
                    end, lines, done = _cut(fh, next_start, want)
                    if end > next_start:
                        submit(next_start, end, next_line, lines, not done)
                    next_start, next_line = end, next_line + lines
                if not pending:
                    break
                future, start, end, first, lines = pending.popleft()
                try:
                    records, clean, blobs = future.result()
                except BrokenProcessPool:
                    raise WorkerError("an ingest worker process died") from None
                if not clean:
                    # The guessed end fell inside a quoted field: drop this chunk and every
                    # later one, cut this one exactly, and go on from its exact end.
                    for later in pending:
                        later[0].cancel()
                    pending.clear()
                    end, lines, done = _exact_cut(fh, start, end - start)
                    submit(start, end, first, lines, False)
                    next_start, next_line = end, first + lines
                    continue
                stats.records += records
                stats.bytes_read = end
                loads = marshal.loads
                for blob in blobs:
                    yield _unpack(loads(blob), source, default_retention)
        stats.bytes_read = next_start
    finally:
        for entry in pending:
            entry[0].cancel()
        # Waiting is bounded: at most the chunks already running.
        pool.shutdown(wait=True, cancel_futures=True)
