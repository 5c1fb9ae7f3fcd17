"""Parallel CSV ingestion: frame in this process, normalise and derive keys in a process pool.

Owns the batching, the pool and the compact form results travel in. The calling process
frames the file into rows (:func:`fiumatch.ingest.csv_reader.csv_rows`, the serial reader's
own framing, so line numbers and framing rejects are the same), groups them into batches of
``batch_size`` rows (values only; the header travels once per batch) and hands each batch to
a worker process, which builds every row with :func:`fiumatch.ingest.build.build_subject`.
Results come back **in input order**, and at most ``max_inflight`` batches are framed but
not yet yielded, so memory stays bounded however large the file is; the workers' caches are
the normalisers' own bounded LRU caches.

Each result crosses back as its own pickle of plain tuples (strings, small ints, key
fields by type code), not of objects: pickling a subject's dozen dataclasses (names,
identifiers, keys, dates) in the worker and rebuilding them through their ``__reduce__`` in
this process cost more than deriving the keys. This process unpickles and rebuilds each
subject only when it is yielded, with the dataclasses' direct constructors (``new_subject``
and its kin set the slots without the frozen ``__init__``). One pickle per result rather
than per batch: a batch unpickled at once is tens of thousands of new tuples alive
together, and the cyclic collector walking them cost more than the unpickling (a list of
``bytes`` is nothing for it to walk). In the workers (our own
processes) the cyclic garbage collector runs once per batch and then freezes what survived
(the normalisers' caches), so it never walks those caches again.

The output is exactly the serial reader's (equal subjects with the same keys, and the same
rejects, in the same order); only the scheduling differs. Must never reorder records, never
drop one, and never leave worker processes behind: closing the iterator early shuts the
pool down.

Workers start from a fork server (spawn where there is none), never by forking the caller:
as with any such pool, a script that reads in parallel must do so under
``if __name__ == "__main__":``, since each worker imports the script's main module. The
fork server imports the normalisers' libraries once (``_PRELOAD``), so workers start warm.
"""

from __future__ import annotations

import gc
import multiprocessing
import pickle
import signal
from collections import deque
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import date
from functools import lru_cache
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any, cast

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
)
from fiumatch.identifiers.names import new_person_name
from fiumatch.ingest.build import build_subject
from fiumatch.ingest.csv_reader import CsvRow, csv_rows
from fiumatch.ingest.rejects import Reject
from fiumatch.ingest.stats import IngestStats

__all__ = ["DEFAULT_BATCH", "WorkerError", "read_csv_parallel"]

#: Rows per task: large enough that a task's round trip (two pickles, a pipe, a wake-up)
#: is noise, small enough that the first results come back within a fraction of a second.
DEFAULT_BATCH = 2000

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

#: A result in transit: a subject's fields as plain values, or a reject's six fields.
_Packed = tuple[Any, ...]


def _pack(item: Subject | Reject, default_retention: date) -> _Packed:
    """A result as plain values (see the module docstring); :func:`_unpack` inverts it."""
    if isinstance(item, Reject):
        return (item.file, item.line, item.record, item.field, item.code, item.reason)
    birth = item.birth_date
    retention = item.retention_until
    return (
        item.subject_id,
        _TYPE_INDEX[item.type],
        item.local_ref,
        None if retention == default_retention else retention,
        item.provenance.line,
        tuple([(n.full, n.given, n.middle, n.family) for n in item.names]),
        None if birth is None else (birth.year, birth.month, birth.day),
        item.countries,
        tuple([(_KIND_INDEX[i.kind], i.value, i.qualifier) for i in item.identifiers]),
        tuple([(k.type.code, k.fields) for k in item.keys]),
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
        default_retention if retention is None else retention,
        new_provenance(source, f"line {line}", line),  # build_unit's record name
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
    # Objects that exist now (modules, ICU and phone metadata) live as long as the worker:
    # keep the cyclic collector from walking them again and again. In a worker the
    # collector runs only between batches (see _build_batch), never in the middle of one:
    # a batch's garbage is bounded by the batch.
    gc.freeze()
    gc.disable()


def _build_batch(
    header: list[str], rows: list[CsvRow], source: str, file: str, default_retention: date
) -> list[bytes]:
    """Build a batch of framed rows; their results, packed, each as its own pickle."""
    out: list[_Packed] = []
    append = out.append
    for unit in rows:
        if isinstance(unit, Reject):
            append(_pack(unit, default_retention))
            continue
        line, row = unit
        result = build_subject(
            {k: v for k, v in zip(header, row, strict=True) if v},
            source=source,
            file=file,
            record=f"line {line}",
            line=line,
            default_retention=default_retention,
        )
        if isinstance(result, list):
            out.extend(_pack(r, default_retention) for r in result)
        else:
            append(_pack(result, default_retention))
    dumps, protocol = pickle.dumps, pickle.HIGHEST_PROTOCOL
    blobs = [dumps(packed, protocol) for packed in out]
    del out
    # Collect this batch's cyclic garbage (a caught exception holds its frame), then freeze
    # the survivors, mostly new cache entries: the collector never walks them again.
    gc.collect()
    gc.freeze()
    return blobs


def read_csv_parallel(
    path: Path,
    *,
    source: str,
    default_retention: date,
    stats: IngestStats,
    workers: int,
    batch_size: int = DEFAULT_BATCH,
    max_inflight: int | None = None,
) -> Generator[Subject | Reject, None, None]:
    """Like :func:`fiumatch.ingest.csv_reader.read_csv`, with ``workers`` processes.

    ``max_inflight`` (default: three batches per worker) bounds the batches framed but not
    yet yielded. ``stats.records`` counts rows as they are framed, so it runs ahead of what
    has been yielded by at most ``max_inflight * batch_size``.
    """
    if workers < 1 or batch_size < 1:
        raise ValueError("workers and batch_size must be at least 1")
    limit = max(1, max_inflight if max_inflight is not None else 3 * workers)
    file = str(path)
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=_context(), initializer=_init_worker
    )
    pending: deque[Future[list[bytes]]] = deque()

    def submit(header: list[str], batch: list[CsvRow]) -> None:
        try:
            pending.append(
                pool.submit(_build_batch, header, batch, source, file, default_retention)
            )
        except BrokenProcessPool:
            raise WorkerError("an ingest worker process died or could not start") from None

    def oldest() -> Iterator[Subject | Reject]:
        try:
            blobs = pending.popleft().result()
        except BrokenProcessPool:
            raise WorkerError("an ingest worker process died") from None
        loads = pickle.loads
        for blob in blobs:
            yield _unpack(loads(blob), source, default_retention)

    try:
        rows = csv_rows(path, stats=stats)
        header = next(rows, None)
        if isinstance(header, Reject):
            yield header  # the broken header's
        if not isinstance(header, list):
            return
        batch: list[CsvRow] = []
        for unit in cast(Iterator[CsvRow], rows):
            batch.append(unit)
            if len(batch) >= batch_size:
                submit(header, batch)
                batch = []
                while len(pending) >= limit:
                    yield from oldest()
        if batch:
            submit(header, batch)
        while pending:
            yield from oldest()
    finally:
        for future in pending:
            future.cancel()
        # Waiting is bounded: at most the batches already running.
        pool.shutdown(wait=True, cancel_futures=True)
