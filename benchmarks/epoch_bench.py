"""Epoch encoding throughput: one core against every core (process pool, threads, Dask).

Encoding = the OPRF output of every match key under the epoch key (``encode_epoch``), and, as a
node does it, the same plus the filter built from the outputs (``build_epoch_ledger``). The
single-core rate is measured with ``SerialExecutor`` on the same keys, in the same run. The
workers also compute each output's Bloom positions; setting the bits runs in the calling process
whatever the executor (``filters.set_bloom_positions``), and its per-key cost is measured
separately because at cluster scale it is the serial part (see docs/PERFORMANCE.md).
"""

from __future__ import annotations

import hashlib
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from fiumatch.engine import (
    DaskChunkExecutor,
    ProcessPoolChunkExecutor,
    SerialExecutor,
    ThreadChunkExecutor,
    build_epoch_ledger,
    encode_epoch,
)
from fiumatch.engine.epoch import DEFAULT_CHUNK, encode_with_positions
from fiumatch.engine.executors import StreamingExecutor
from fiumatch.protocol import keys
from fiumatch.protocol.filters import bloom_parameters, set_bloom_positions
from fiumatch.protocol.sessions import oprf_mode
from fiumatch.protocol.wire import Suite

SUITE = Suite.VOPRF_RISTRETTO255_SHA512
FP_RATE = 1e-9


def make_keys(n: int) -> list[bytes]:
    return [hashlib.sha256(b"epoch-bench" + i.to_bytes(8, "big")).digest() for i in range(n)]


def dask_available() -> bool:
    try:
        import dask.distributed  # noqa: F401
    except ImportError:
        return False
    return True


@contextmanager
def _dask_cluster(workers: int, address: str | None) -> Iterator[DaskChunkExecutor | None]:
    """A real cluster at ``address``, else a LocalCluster of ``workers`` processes."""
    if address:
        with DaskChunkExecutor(address) as ex:
            yield ex
        return
    try:
        from dask.distributed import LocalCluster
    except ImportError:
        yield None
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with (
            LocalCluster(  # type: ignore[no-untyped-call]
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            DaskChunkExecutor(cluster.scheduler_address) as ex,
        ):
            yield ex


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_epoch(
    n: int,
    repeats: int,
    *,
    workers: int,
    dask: bool = True,
    dask_address: str | None = None,
    threads: bool = True,
    advance: Callable[[str], None] = lambda _: None,
    done: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Rates (keys/s) of encoding and of encoding + filter, per executor; medians of repeats.

    ``advance(label)`` is called before each measurement, ``done()`` after it."""
    kp = keys.derive_epoch_key(bytes(32), "bench-peer", 1)
    match_keys = make_keys(n)
    results: dict[str, dict[str, list[float]]] = {}

    def measure(name: str, ex: StreamingExecutor) -> None:
        got = results.setdefault(name, {"encode": [], "encode_and_filter": []})
        advance(f"epoch {name} encode")
        got["encode"].append(n / _time(lambda: encode_epoch(kp.sk, match_keys, ex, suite=SUITE)))
        done()
        advance(f"epoch {name} encode+filter")
        got["encode_and_filter"].append(
            n
            / _time(
                lambda: build_epoch_ledger(
                    kp, match_keys, ex, suite=SUITE, epoch=1, fp_rate=FP_RATE
                )
            )
        )
        done()

    with (
        ProcessPoolChunkExecutor(workers) as pool,
        ThreadChunkExecutor(workers) as thread_pool,
        _dask_cluster(workers, dask_address) if dask else _none() as dask_ex,
    ):
        executors: list[tuple[str, StreamingExecutor]] = [
            ("serial", SerialExecutor()),
            (f"process-pool-{workers}", pool),
        ]
        if threads:
            executors.append((f"threads-{workers}", thread_pool))
        if dask_ex is not None:
            label = f"dask-{dask_ex.workers}" if dask_address else f"dask-local-{workers}"
            executors.append((label, dask_ex))
        for _ in range(repeats):
            for name, ex in executors:
                measure(name, ex)

    # The serial part at scale: setting the bits in the calling process, from the positions the
    # workers return (chunks of DEFAULT_CHUNK, as build_epoch_ledger receives them).
    sample = match_keys[: min(n, 1 << 15)]
    m, k = bloom_parameters(max(1, n), FP_RATE)
    packed = [
        encode_with_positions(kp.sk, sample[i : i + DEFAULT_CHUNK], oprf_mode(SUITE), m, k, 0)[1]
        for i in range(0, len(sample), DEFAULT_CHUNK)
    ]

    def set_bits() -> None:
        bits = bytearray(m // 8)
        for chunk in packed:
            set_bloom_positions(bits, chunk, k)

    insert = statistics.median(_time(set_bits) / len(sample) for _ in range(3))
    table: dict[str, Any] = {}
    serial = {k: statistics.median(v) for k, v in results["serial"].items()}
    for name, got in results.items():
        med = {k: statistics.median(v) for k, v in got.items()}
        table[name] = {
            "keys_per_second": med,
            "samples": got,
            "speedup_vs_serial": {k: med[k] / serial[k] for k in med},
        }
    return {
        "keys": n,
        "repeats": repeats,
        "workers": workers,
        "executors": table,
        "filter_insert_seconds_per_key": insert,
        "serial_encode_seconds_per_key": 1 / serial["encode"],
    }


@contextmanager
def _none() -> Iterator[None]:
    yield None


def project(
    epoch: dict[str, Any], keys_total: int, workers: int, efficiency: float
) -> dict[str, Any]:
    """What encoding ``keys_total`` keys costs on ``workers`` cores at ``efficiency``, from the
    measured per-key costs: core-hours, wall time of the parallel part, and the serial filter
    insertion in the calling process (which bounds the wall time however many workers)."""
    per_key = epoch["serial_encode_seconds_per_key"]
    core_seconds = keys_total * per_key
    parallel = core_seconds / workers / efficiency
    insert = keys_total * epoch["filter_insert_seconds_per_key"]
    return {
        "keys": keys_total,
        "workers": workers,
        "core_hours": core_seconds / 3600,
        "encode_wall_seconds": parallel,
        "filter_insert_seconds": insert,
        "wall_seconds": max(parallel, insert),
    }
