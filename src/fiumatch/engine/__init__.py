"""The execution engine: per-chunk cryptography on every core, or on a Dask cluster.

A shell around the pure core. The session machines and ``build_ledger`` in
``fiumatch.protocol.sessions`` take any ``ChunkExecutor`` (an ordered ``map`` and a
``workers`` count, defined in the core); this package provides the implementations (serial,
threads, a process pool, a Dask cluster), epoch encoding and filter building that stream
through them, and progress bars.

It must never receive a node's master secret (only per-epoch or per-session scalars), never log
keys, outputs or elements, and the core must never import it.
"""

from __future__ import annotations

from fiumatch.engine.epoch import (
    DEFAULT_CHUNK,
    build_epoch_ledger,
    encode_epoch,
    iter_encode_epoch,
)
from fiumatch.engine.executors import (
    START_METHODS,
    DaskChunkExecutor,
    DaskUnavailableError,
    EngineError,
    ProcessPoolChunkExecutor,
    SerialExecutor,
    StreamingExecutor,
    ThreadChunkExecutor,
    make_executor,
)
from fiumatch.engine.progress import progress_bar

__all__ = [
    "DEFAULT_CHUNK",
    "START_METHODS",
    "DaskChunkExecutor",
    "DaskUnavailableError",
    "EngineError",
    "ProcessPoolChunkExecutor",
    "SerialExecutor",
    "StreamingExecutor",
    "ThreadChunkExecutor",
    "build_epoch_ledger",
    "encode_epoch",
    "iter_encode_epoch",
    "make_executor",
    "progress_bar",
]
