"""Micro-benchmark of the group and OPRF core: per-element cost, rbcl vs pysodium side by side.

Each operation runs over a batch of ``batch`` elements through the batch API the PSI sessions
use (``hash_to_group_many``, ``scalar_mult_many``, ``blind_evaluate_many``, ``finalize_many``,
one ``generate_proof`` / ``verify_proof`` over the whole batch), and is divided by the batch
size. Every repeat runs both backends back to back (switched with ``group.use_backend``), so
slow drift on a shared machine hits both alike; the result is the median over repeats.

Run: ``python -m benchmarks.micro_group [--repeats N] [--batch N]``. Prints a table and the
JSON of ``measure``; writes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from fiumatch.protocol import group, oprf

OPERATIONS = (
    "hash_to_group",
    "scalar_mult",
    "blind_evaluate",
    "finalize",
    "generate_proof",
    "verify_proof",
)
MODE = oprf.MODE_VOPRF


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _one_round(batch: int) -> dict[str, float]:
    """Seconds per element for each operation, with the current backend."""
    rng = os.urandom
    kp = oprf.derive_key_pair(bytes(32), b"micro_group", MODE)
    inputs = [b"subject-%08d" % i for i in range(batch)]
    dst = b"HashToGroup-" + oprf.context_string(MODE)
    blinds, blinded = oprf.blind_many(inputs, rng, MODE)
    elements = group.hash_to_group_many(inputs, dst)
    scalar = group.random_scalar(rng)
    evaluated = oprf.blind_evaluate_many(kp.sk, blinded)
    proof = oprf.generate_proof(kp.sk, kp.pk, blinded, evaluated, rng, MODE)

    seconds = {
        "hash_to_group": _timed(lambda: group.hash_to_group_many(inputs, dst)),
        "scalar_mult": _timed(lambda: group.scalar_mult_many(scalar, elements)),
        "blind_evaluate": _timed(lambda: oprf.blind_evaluate_many(kp.sk, blinded)),
        "finalize": _timed(lambda: oprf.finalize_many(inputs, blinds, evaluated, MODE)),
        "generate_proof": _timed(
            lambda: oprf.generate_proof(kp.sk, kp.pk, blinded, evaluated, rng, MODE)
        ),
        "verify_proof": _timed(lambda: oprf.verify_proof(kp.pk, blinded, evaluated, proof, MODE)),
    }
    return {op: s / batch for op, s in seconds.items()}


def measure(repeats: int, batch: int = 256) -> dict[str, Any]:
    """Median per-element microseconds per operation and backend, and pysodium/rbcl ratios.

    Returns ``{"batch", "repeats", "libsodium": {backend: version},
    "us_per_element": {op: {backend: us, "ratio_pysodium_over_rbcl": r}}}``.
    """
    if repeats < 1 or batch < 1:
        raise ValueError("repeats and batch must be positive")
    previous = group.BACKEND
    samples: dict[str, dict[str, list[float]]] = {
        b: {op: [] for op in OPERATIONS} for b in group.BACKENDS
    }
    versions: dict[str, str] = {}
    try:
        for b in group.BACKENDS:  # warm up: load both libraries, fill caches
            group.use_backend(b)
            versions[b] = group.libsodium_version()
            _one_round(min(batch, 16))
        for _ in range(repeats):
            for b in group.BACKENDS:
                group.use_backend(b)
                for op, sec in _one_round(batch).items():
                    samples[b][op].append(sec)
    finally:
        group.use_backend(previous)

    table: dict[str, dict[str, float]] = {}
    for op in OPERATIONS:
        row = {b: statistics.median(samples[b][op]) * 1e6 for b in group.BACKENDS}
        row["ratio_pysodium_over_rbcl"] = row["pysodium"] / row["rbcl"]
        table[op] = row
    return {"batch": batch, "repeats": repeats, "libsodium": versions, "us_per_element": table}


def _format(result: dict[str, Any]) -> str:
    lines = [
        f"batch={result['batch']} repeats={result['repeats']} libsodium={result['libsodium']}",
        f"{'operation':<16}{'rbcl us/el':>12}{'pysodium us/el':>16}{'pysodium/rbcl':>15}",
    ]
    for op, row in result["us_per_element"].items():
        lines.append(
            f"{op:<16}{row['rbcl']:>12.2f}{row['pysodium']:>16.2f}"
            f"{row['ratio_pysodium_over_rbcl']:>15.3f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args(argv)
    result = measure(args.repeats, args.batch)
    print(_format(result))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
