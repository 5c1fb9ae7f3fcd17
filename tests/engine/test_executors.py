"""Executors: ordered results, typed errors across process boundaries, bounded streaming."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from functools import partial

import pytest

from fiumatch.engine import (
    EngineError,
    ProcessPoolChunkExecutor,
    SerialExecutor,
    ThreadChunkExecutor,
    make_executor,
)
from fiumatch.engine.executors import _call, _unwrap
from fiumatch.protocol import group
from fiumatch.protocol.errors import InvalidElementError, LocalProtocolError
from fiumatch.protocol.sessions import ChunkExecutor, _ops


def _echo(x: int, y: int = 0) -> int:
    return x * 10 + y


def _fail_at(x: int, bad: int) -> int:
    if x >= bad:
        raise LocalProtocolError(f"refused {x}", where="test")
    return x


def test_every_executor_is_a_chunk_executor(process_pool: ProcessPoolChunkExecutor) -> None:
    with ThreadChunkExecutor(2) as threads:
        for ex in (SerialExecutor(), threads, process_pool):
            assert isinstance(ex, ChunkExecutor)
            assert ex.map(_echo, [(i, 1) for i in range(20)]) == [i * 10 + 1 for i in range(20)]
            assert list(ex.imap(_echo, ((i,) for i in range(7)), window=2)) == [
                i * 10 for i in range(7)
            ]
            assert ex.map(_echo, []) == []


def test_overlap_runs_once_in_the_caller_while_the_calls_run(
    process_pool: ProcessPoolChunkExecutor,
) -> None:
    with ThreadChunkExecutor(2) as threads:
        for ex in (SerialExecutor(), threads, process_pool):
            ran: list[int] = []
            out = ex.map(_echo, [(i,) for i in range(5)], overlap=partial(ran.append, 1))
            assert out == [0, 10, 20, 30, 40] and ran == [1]


def test_a_typed_error_crosses_the_process_boundary_intact(
    process_pool: ProcessPoolChunkExecutor,
) -> None:
    with pytest.raises(LocalProtocolError) as info:
        process_pool.map(_fail_at, [(i, 3) for i in range(8)])
    err = info.value
    assert type(err) is LocalProtocolError
    assert err.reason == "refused 3"  # the first failure in argument order, not a later one
    assert err.details == {"where": "test"}
    assert str(err) == "local_protocol_error: refused 3"


def test_group_errors_from_workers_keep_their_class(
    process_pool: ProcessPoolChunkExecutor,
) -> None:
    scalar = group.random_scalar(lambda n: bytes(range(n)))
    good = group.hash_to_group(b"x", b"dst")
    with pytest.raises(InvalidElementError):
        process_pool.map(_ops.mult_chunk, [(scalar, good), (scalar, b"\xff" * 32)])


def test_call_wraps_only_typed_errors() -> None:
    with pytest.raises(LocalProtocolError):
        _unwrap(_call(_fail_at, (5, 1)))
    with pytest.raises(ZeroDivisionError):
        _call(lambda: 1 // 0, ())


def test_imap_stops_reading_its_input_when_the_consumer_stops(
    process_pool: ProcessPoolChunkExecutor,
) -> None:
    produced = itertools.count()

    def args() -> Iterator[tuple[int]]:
        for i in produced:
            yield (i,)

    it = process_pool.imap(_echo, args(), window=3)
    assert [next(it) for _ in range(4)] == [0, 10, 20, 30]
    it.close()  # type: ignore[attr-defined]
    assert next(produced) <= 4 + 3  # never more than the window ahead


def test_bad_configurations_are_refused() -> None:
    with pytest.raises(EngineError):
        ThreadChunkExecutor(0)
    with pytest.raises(EngineError):
        ProcessPoolChunkExecutor(1, start_method="teleport")
    with pytest.raises(EngineError):
        make_executor(kind="gpu")
    ex = make_executor(kind="serial")
    assert ex.workers == 1
    ex.close()


def test_fork_start_method_works_too() -> None:
    with ProcessPoolChunkExecutor(1, start_method="fork") as pool:
        assert pool.map(_echo, [(1,), (2,)]) == [10, 20]
