"""Shared fixtures for the engine tests: one small process pool for the whole module."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import pytest

from fiumatch.engine import ProcessPoolChunkExecutor
from fiumatch.protocol.sessions import _base

T = TypeVar("T")


class SplittingExecutor:
    """Serial, but claims ``workers`` workers, so machines cut every chunk into parts; records
    each mapped function name (to check what went through the executor)."""

    def __init__(self, workers: int = 3) -> None:
        self.workers = workers
        self.calls: list[str] = []

    def map(
        self,
        fn: Callable[..., T],
        args: Iterable[tuple[Any, ...]],
        *,
        overlap: Callable[[], object] | None = None,
    ) -> list[T]:
        out = [fn(*a) for a in args]
        if overlap is not None:  # after the calls: the opposite order to SerialExecutor's
            overlap()
        self.calls += [fn.__name__] * len(out)
        return out


@pytest.fixture
def tiny_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the machines cut even a 2-element chunk into parts."""
    monkeypatch.setattr(_base, "MIN_PART", 1)


@pytest.fixture(scope="session")
def process_pool() -> Iterator[ProcessPoolChunkExecutor]:
    with ProcessPoolChunkExecutor(2) as pool:
        yield pool
