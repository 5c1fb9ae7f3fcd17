"""Epoch encoding: a node's match keys under one per-epoch OPRF key, on every core or a cluster.

``encode_epoch(sk, match_keys, executor)`` computes the OPRF output ``F(sk, y)`` (RFC 9497
Evaluate, 64 bytes) of every match key, in input order, in chunks mapped over ``executor``
(a process pool, or a Dask cluster: see ``executors``); ``iter_encode_epoch`` yields them chunk
by chunk while later chunks are computed, so memory stays bounded by the in-flight window.
``build_epoch_ledger`` builds the filter ledger the owner publishes from them, the workers also
computing each output's Bloom positions so that this process only sets bits; it is
byte-identical to ``fiumatch.protocol.sessions.build_ledger`` (same filter id) whatever the
executor.

Secrets: the only secret that leaves this process is the per-epoch scalar ``sk`` (with the
match keys themselves); never the master secret, which stays with ``keys.derive_epoch_key`` in
the caller. Nothing here logs keys or outputs; the progress bar shows counts and rates only.
"""

from __future__ import annotations

import dataclasses
import hashlib
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Final

from fiumatch.engine.executors import StreamingExecutor
from fiumatch.engine.progress import progress_bar
from fiumatch.protocol import oprf
from fiumatch.protocol.errors import LocalProtocolError
from fiumatch.protocol.filters import (
    FILTER_ID_DST,
    BloomFilter,
    FilterKind,
    FilterLedger,
    FilterObject,
    bloom_indices,
    bloom_parameters,
    set_bloom_positions,
)
from fiumatch.protocol.sessions import oprf_mode
from fiumatch.protocol.wire import Suite

__all__ = [
    "DEFAULT_CHUNK",
    "build_epoch_ledger",
    "encode_epoch",
    "encode_with_positions",
    "iter_encode_epoch",
]

DEFAULT_CHUNK: Final = 4096
"""Keys per mapped call: ~0.3 s of work, large enough that task overhead is noise (also on
Dask, where a task costs about a millisecond), small enough to balance the workers."""


def _chunks(keys: Iterable[bytes], chunk: int) -> Iterator[list[bytes]]:
    it = iter(keys)
    while batch := list(islice(it, chunk)):
        yield batch


def iter_encode_epoch(
    sk: bytes,
    match_keys: Iterable[bytes],
    executor: StreamingExecutor,
    *,
    suite: Suite = Suite.VOPRF_RISTRETTO255_SHA512,
    chunk: int = DEFAULT_CHUNK,
    window: int | None = None,
    progress: bool = False,
    total: int | None = None,
) -> Iterator[list[bytes]]:
    """Yield the outputs of ``match_keys`` under ``sk``, one list per ``chunk`` keys, in order.

    ``match_keys`` may be any iterable (read lazily, ``window`` chunks ahead; default twice the
    workers). ``progress`` shows a rich progress bar (keys, rate, ETA) on stderr; ``total``
    sizes it (default ``len(match_keys)`` when it has one).
    """
    if chunk < 1:
        raise LocalProtocolError("chunk must be at least 1")
    if len(sk) != 32:
        raise LocalProtocolError("sk must be a 32-byte scalar")
    mode = oprf_mode(suite)
    if total is None and isinstance(match_keys, Sequence):
        total = len(match_keys)
    args = ((sk, batch, mode) for batch in _chunks(match_keys, chunk))
    with progress_bar("epoch encoding", total=total, unit="keys", enabled=progress) as advance:
        for outputs in executor.imap(oprf.evaluate_many, args, window=window):
            advance(len(outputs))
            yield outputs


def encode_epoch(
    sk: bytes,
    match_keys: Iterable[bytes],
    executor: StreamingExecutor,
    *,
    suite: Suite = Suite.VOPRF_RISTRETTO255_SHA512,
    chunk: int = DEFAULT_CHUNK,
    progress: bool = False,
) -> list[bytes]:
    """The outputs ``F(sk, y)`` of every match key, in input order (see ``iter_encode_epoch``)."""
    return [
        o
        for outputs in iter_encode_epoch(
            sk, match_keys, executor, suite=suite, chunk=chunk, progress=progress
        )
        for o in outputs
    ]


def encode_with_positions(
    sk: bytes, keys: list[bytes], mode: int, m: int, k: int, seed: int
) -> tuple[list[bytes], bytes]:
    """One worker call of ``build_epoch_ledger``: the outputs of ``keys`` and, for each output in
    order, its ``k`` Bloom bit positions (``filters.bloom_indices``) as native u32s."""
    outputs = oprf.evaluate_many(sk, keys, mode)
    positions = array("I")
    for o in outputs:
        positions.extend(bloom_indices(o, m, k, seed))
    return outputs, positions.tobytes()


def build_epoch_ledger(
    key_pair: oprf.KeyPair,
    match_keys: Sequence[bytes],
    executor: StreamingExecutor,
    *,
    suite: Suite,
    epoch: int,
    fp_rate: float,
    capacity: int | None = None,
    exact: bool = False,
    seed: int = 0,
    chunk: int = DEFAULT_CHUNK,
    progress: bool = False,
    on_outputs: Callable[[list[bytes]], None] | None = None,
) -> FilterLedger:
    """The filter ledger of one (peer, epoch), byte-identical to ``sessions.build_ledger``'s,
    with the outputs computed on ``executor`` while the filter grows in this process.

    Bloom: the workers also compute each output's bit positions, so this process only sets bits
    (and counts the outputs that set a new one, as ``BloomFilter.add`` does). Exact: the
    outputs stream into ``FilterLedger.exact``. ``on_outputs`` receives every chunk of outputs
    in key order (to store the encoded set). Duplicate keys are dropped first, as
    ``build_ledger`` does; ``capacity`` defaults to the number of distinct keys (at least 1).
    Only ``key_pair.sk`` reaches the workers.
    """
    keys = list(dict.fromkeys(match_keys))
    cap = capacity if capacity is not None else max(1, len(keys))
    if exact:

        def stream() -> Iterator[bytes]:
            for outputs in iter_encode_epoch(
                key_pair.sk, keys, executor, suite=suite, chunk=chunk, progress=progress
            ):
                if on_outputs is not None:
                    on_outputs(outputs)
                yield from outputs

        return FilterLedger.exact(stream(), suite=suite, epoch=epoch, fp_rate=fp_rate, capacity=cap)
    m, k = bloom_parameters(cap, fp_rate)
    mode = oprf_mode(suite)
    bits = bytearray(m // 8)
    count = 0
    args = (
        (key_pair.sk, keys[i : i + chunk], mode, m, k, seed) for i in range(0, len(keys), chunk)
    )
    with progress_bar("epoch filter", total=len(keys), unit="keys", enabled=progress) as advance:
        for outputs, packed in executor.imap(encode_with_positions, args):
            if on_outputs is not None:
                on_outputs(outputs)
            count += set_bloom_positions(bits, packed, k)
            advance(len(outputs))
    if count > cap:
        raise LocalProtocolError("more outputs than the filter capacity")
    base = FilterObject(
        kind=FilterKind.BLOOM_BASE,
        suite=suite,
        epoch=epoch,
        filter_id=bytes(16),
        generation=1,
        count=count,
        capacity=cap,
        m=m,
        k=k,
        seed=seed,
        payload=bytes(bits),
    )
    filter_id = hashlib.sha256(FILTER_ID_DST + base.encode()).digest()[:16]  # SPEC §7.4
    live = BloomFilter(m=m, k=k, seed=seed, bits=bytes(bits))
    live.count = count
    return FilterLedger(dataclasses.replace(base, filter_id=filter_id), live)
