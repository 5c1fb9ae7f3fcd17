"""Balanced PSI at growing set sizes, every system side by side on the same sets.

For each size ``n`` both parties hold ``n`` distinct 32-byte keys, half of them shared. Each
repeat runs every system once, in the same order, on the same sets, and measures the unit
costs (hash-to-group, scalar multiplication) once more on one core, so slow drift of a shared
machine touches every figure of a repeat alike. Figures are medians over repeats.

Efficiency of a fiumatch run = (its group operations × their unit cost / cores) / wall time:
the share of the machine's cores the run spent in group operations. What is left is Python
around them (framing, filter hashing, pickling to the workers) and waiting. Two diagnostics
separate the two on a shared machine: ``cpu_efficiency`` = operations × unit cost / CPU time
the run used (this process and its workers; load-independent), and ``cores_busy`` = CPU time /
wall time (how many cores the run actually got).
"""

from __future__ import annotations

import hashlib
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from benchmarks.systems import System
from fiumatch.protocol import group, oprf


def make_sets(n: int, seed: bytes = b"fiumatch-bench") -> tuple[list[bytes], list[bytes]]:
    """``n`` owner keys and ``n`` querier keys, ``n // 2`` in common (32 bytes each)."""

    def key(i: int) -> bytes:
        return hashlib.sha256(seed + i.to_bytes(8, "big")).digest()

    owner = [key(i) for i in range(n)]
    querier = [key(i) for i in range(n // 2, n + n - n // 2)]
    return owner, querier


def unit_costs(batch: int = 512) -> dict[str, float]:
    """CPU seconds per hash-to-group and per scalar multiplication on one core, now.

    CPU time (not wall time), so that other work on a shared machine does not inflate the unit
    cost; it shows up instead as lost efficiency, where it belongs."""
    rng = os.urandom
    inputs = [rng(32) for _ in range(batch)]
    dst = b"HashToGroup-" + oprf.context_string(oprf.MODE_OPRF)
    scalar = group.random_scalar(rng)
    clock = time.process_time
    t0 = clock()
    elements = group.hash_to_group_many(inputs, dst)
    t1 = clock()
    group.scalar_mult_many(scalar, elements)
    t2 = clock()
    return {"hash_to_group": (t1 - t0) / batch, "scalar_mult": (t2 - t1) / batch}


class Meter:
    """While a run lasts: peak resident memory and CPU time of this process and its children
    (the pool's workers), sampled in a thread."""

    def __init__(self, interval: float = 0.02) -> None:
        import psutil  # type: ignore[import-untyped]

        self._proc = psutil.Process()
        self._interval = interval
        self.peak_rss = 0
        self.cpu_seconds = 0.0

    def _family(self) -> list[Any]:
        procs = [self._proc]
        with suppress(Exception):
            procs += self._proc.children(recursive=True)
        return procs

    def _rss(self) -> int:
        total = 0
        for p in self._family():
            with suppress(Exception):  # a child may exit while we read it
                total += p.memory_info().rss
        return total

    def _cpu(self) -> dict[int, float]:
        out: dict[int, float] = {}
        for p in self._family():
            with suppress(Exception):
                t = p.cpu_times()
                out[p.pid] = t.user + t.system
        return out

    @contextmanager
    def measure(self) -> Iterator[None]:
        stop = threading.Event()
        base = peak = self._rss()
        cpu0 = self._cpu()

        def loop() -> None:
            nonlocal peak
            while not stop.wait(self._interval):
                peak = max(peak, self._rss())

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            cpu1 = self._cpu()
            self.peak_rss = max(peak, self._rss()) - base
            self.cpu_seconds = sum(t - cpu0.get(pid, 0.0) for pid, t in cpu1.items())


def run_ladder(
    systems: list[System],
    sizes: list[int],
    repeats: int,
    *,
    cores: int,
    advance: Callable[[str], None] = lambda _: None,
    done: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Run every available system at every size ``repeats`` times; return raw and median data.

    ``advance(label)`` is called before each run, ``done()`` after it (progress display)."""
    meter = Meter()
    skipped = {s.name: why for s in systems if (why := s.available()) is not None}
    active = [s for s in systems if s.name not in skipped]
    rows: list[dict[str, Any]] = []
    units: list[dict[str, float]] = []
    for n in sizes:
        owner, querier = make_sets(n)
        expected = len(set(owner) & set(querier))
        samples: dict[str, list[dict[str, Any]]] = {s.name: [] for s in active}
        for _ in range(repeats):
            units.append(unit_costs())
            for system in active:
                advance(f"{system.name} n={n}")
                if system.name in skipped or n > getattr(system, "max_n", n):
                    done()
                    continue
                try:
                    with meter.measure():
                        outcome = system.run(owner, querier)
                    if not expected <= outcome.found <= expected + max(1, n // 10**6):
                        raise RuntimeError(f"found {outcome.found}, expected {expected}")
                except Exception as e:  # a long run reports the failure and goes on
                    skipped[system.name] = f"failed at n={n}: {type(e).__name__}: {e}"[:300]
                    samples[system.name] = []
                    done()
                    continue
                done()
                samples[system.name].append(
                    {
                        "seconds": outcome.seconds,
                        "bytes_q2o": outcome.bytes_q2o,
                        "bytes_o2q": outcome.bytes_o2q,
                        "found": outcome.found,
                        "phases": outcome.phases,
                        "peak_rss_bytes": outcome.node_peak_rss
                        if outcome.node_peak_rss is not None
                        else meter.peak_rss,
                        "worker_peak_rss_bytes": outcome.worker_peak_rss,
                        "cpu_seconds": outcome.node_cpu_seconds
                        if outcome.node_cpu_seconds is not None
                        else meter.cpu_seconds,
                    }
                )
        unit = median_units(units)
        for system in active:
            got = samples[system.name]
            if not got:
                continue
            seconds = statistics.median(r["seconds"] for r in got)
            total_bytes = got[0]["bytes_q2o"] + got[0]["bytes_o2q"]  # 0: not observable
            row: dict[str, Any] = {
                "system": system.name,
                "family": system.family,
                "mode": system.mode,
                "n": n,
                "seconds": seconds,
                "samples": [r["seconds"] for r in got],
                "bytes_q2o": got[0]["bytes_q2o"],
                "bytes_o2q": got[0]["bytes_o2q"],
                "bytes_per_element": total_bytes / n if total_bytes else None,
                "found": got[0]["found"],
                "expected": expected,
                "phases": {
                    k: statistics.median(r["phases"][k] for r in got) for k in got[0]["phases"]
                },
                "peak_rss_mib": statistics.median(r["peak_rss_bytes"] for r in got) / 2**20,
                "cpu_seconds": statistics.median(r["cpu_seconds"] for r in got),
            }
            row["cores_busy"] = row["cpu_seconds"] / seconds
            if got[0].get("worker_peak_rss_bytes") is not None:
                # HTTP: peak_rss_mib is the larger server process's own peak (VmHWM), not a
                # delta; the pool workers' largest peak is reported beside it.
                row["worker_peak_rss_mib"] = (
                    statistics.median(r["worker_peak_rss_bytes"] for r in got) / 2**20
                )
            ops = system.operations(n, n)
            if ops is not None:
                sys_cores = getattr(system, "workers", cores)
                row["operations"] = {
                    "hash_to_group": ops.hash_to_group,
                    "scalar_mult": ops.scalar_mult,
                }
                row["cores"] = sys_cores
                row["ideal_seconds"] = ops.seconds(unit) / sys_cores
                row["efficiency"] = row["ideal_seconds"] / seconds
                if row["cpu_seconds"]:
                    row["cpu_efficiency"] = ops.seconds(unit) / row["cpu_seconds"]
            rows.append(row)
    for row in rows:
        base = next(
            (r for r in rows if r["n"] == row["n"] and r["system"] == "openmined-gcs"), None
        )
        if base is not None:
            row["time_vs_openmined_gcs"] = row["seconds"] / base["seconds"]
            if row["bytes_per_element"] is not None:
                row["bytes_vs_openmined_gcs"] = row["bytes_per_element"] / base["bytes_per_element"]
    return {"rows": rows, "unit_costs": median_units(units), "skipped": skipped}


def median_units(units: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(u[k] for u in units) for k in units[0]} if units else {}
