"""Parallel CSV ingestion: frame in this process, normalise and derive keys in a process pool.

Owns the batching and the pool. The calling process frames the file into rows
(:func:`fiumatch.ingest.csv_reader.csv_units`, the serial reader's own framing, so line
numbers and framing rejects are the same), groups them into batches of ``batch_size`` rows
and hands each batch to a worker process, which builds every row with
:func:`fiumatch.ingest.csv_reader.build_unit`. Results come back **in input order**, and at
most ``max_inflight`` batches are framed but not yet yielded, so memory stays bounded
however large the file is; the workers' caches are the normalisers' own bounded LRU caches.

Each result crosses back as its own pickle, unpickled only when it is yielded: unpickling a
whole batch of subjects at once kept thousands of objects alive together, and the cyclic
garbage collector walking them cost more than the unpickling itself. In the workers (our
own processes) the collector runs once per batch and then freezes what survived (the
normalisers' caches), so it never walks those caches again.

The output is exactly the serial reader's (the same subjects, keys and rejects in the same
order); only the scheduling differs. Must never reorder records, never drop one, and never
leave worker processes behind: closing the iterator early shuts the pool down.

Workers start from a fork server (spawn where there is none), never by forking the caller:
as with any such pool, a script that reads in parallel must do so under
``if __name__ == "__main__":``, since each worker imports the script's main module.
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
from multiprocessing.context import BaseContext
from pathlib import Path

from fiumatch.identifiers.model import Subject
from fiumatch.ingest.csv_reader import CsvUnit, build_unit, csv_units
from fiumatch.ingest.rejects import Reject
from fiumatch.ingest.stats import IngestStats

__all__ = ["DEFAULT_BATCH", "WorkerError", "read_csv_parallel"]

DEFAULT_BATCH = 500  # rows per task: large enough to amortise a task, small for latency

# Imported once in the fork server, so each worker starts with them already loaded.
_PRELOAD = [
    "fiumatch.ingest.csv_reader",
    "rigour.names",
    "rigour.text.translit",
    "rigour.text.phonetics",
    "phonenumbers",
    "schwifty",
    "stdnum.lei",
]


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
    # keep the cyclic collector from walking them again and again.
    gc.freeze()


def _build_batch(
    units: list[CsvUnit], source: str, file: str, default_retention: date
) -> list[bytes]:
    """Build a batch; each subject or reject pickled on its own (see the module docstring)."""
    out: list[bytes] = []
    dumps, protocol = pickle.dumps, pickle.HIGHEST_PROTOCOL
    for unit in units:
        for item in build_unit(unit, source=source, file=file, default_retention=default_retention):
            out.append(dumps(item, protocol))
    # Collect this batch's cyclic garbage (a caught exception holds its frame), then freeze
    # the survivors, mostly new cache entries: the collector never walks them again.
    gc.collect()
    gc.freeze()
    return out


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

    def submit(batch: list[CsvUnit]) -> None:
        try:
            pending.append(pool.submit(_build_batch, batch, source, file, default_retention))
        except BrokenProcessPool:
            raise WorkerError("an ingest worker process died or could not start") from None

    def oldest() -> Iterator[Subject | Reject]:
        try:
            results = pending.popleft().result()
        except BrokenProcessPool:
            raise WorkerError("an ingest worker process died") from None
        loads = pickle.loads
        for blob in results:
            item: Subject | Reject = loads(blob)
            yield item

    try:
        batch: list[CsvUnit] = []
        for unit in csv_units(path, stats=stats):
            batch.append(unit)
            if len(batch) >= batch_size:
                submit(batch)
                batch = []
                while len(pending) >= limit:
                    yield from oldest()
        if batch:
            submit(batch)
        while pending:
            yield from oldest()
    finally:
        for future in pending:
            future.cancel()
        # Waiting is bounded: at most the batches already running.
        pool.shutdown(wait=True, cancel_futures=True)
