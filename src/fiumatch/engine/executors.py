"""Chunk executors: where the per-chunk cryptography of sessions and epochs runs.

Every executor implements the core's :class:`~fiumatch.protocol.sessions.ChunkExecutor`
(``workers`` and an ordered ``map``) and adds ``imap``, an ordered iterator that keeps at most
``window`` calls in flight, so a producer (epoch encoding, filter building) overlaps with the
workers while memory stays bounded. ``close()`` (or ``with``) releases the workers.

* :class:`SerialExecutor` (from the core): the caller's thread.
* :class:`ThreadChunkExecutor`: a thread pool. libsodium runs with the GIL released (ctypes),
  so threads overlap the group operations but not the Python around them.
* :class:`ProcessPoolChunkExecutor`: a ``concurrent.futures`` process pool, one worker per core
  by default, started with ``forkserver`` (or ``fork``); its initializer imports the group and
  selects the parent's libsodium backend, so the first chunk pays no import.
* :class:`DaskChunkExecutor`: the workers of a Dask distributed cluster (``tcp://`` or
  ``tls://`` scheduler address, or a ``Client``). ``dask[distributed]`` is optional and imported
  only here, when such an executor is made.

Errors: a ``FiumatchError`` raised by a call is re-raised by ``map``/``imap`` in the caller
with the same class, reason and details (the first one in argument order); anything else is
re-raised as the pool delivers it.

This module must never see a node's master secret: callers pass only what a call needs (an
epoch's ``sk`` for epoch encoding, a session's ephemeral scalars), and it must never log
arguments or results.
"""

from __future__ import annotations

import collections
import importlib
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Protocol, TypeVar

from fiumatch.errors import FiumatchError
from fiumatch.protocol.sessions import SerialExecutor as _CoreSerialExecutor

__all__ = [
    "START_METHODS",
    "DaskChunkExecutor",
    "DaskUnavailableError",
    "EngineError",
    "ProcessPoolChunkExecutor",
    "SerialExecutor",
    "StreamingExecutor",
    "ThreadChunkExecutor",
    "make_executor",
]

T = TypeVar("T")
START_METHODS: Final = ("forkserver", "fork", "spawn")


class EngineError(FiumatchError):
    """An executor could not be created or used."""

    code = "engine_error"
    http_status = 500


class DaskUnavailableError(EngineError):
    """``--dask`` was given but ``dask[distributed]`` is not installed."""

    code = "dask_unavailable"


class StreamingExecutor(Protocol):
    """A ``ChunkExecutor`` that can also stream its results in order."""

    @property
    def workers(self) -> int: ...

    def map(
        self,
        fn: Callable[..., T],
        args: Iterable[tuple[Any, ...]],
        *,
        overlap: Callable[[], object] | None = None,
    ) -> list[T]: ...

    def imap(
        self, fn: Callable[..., T], args: Iterable[tuple[Any, ...]], *, window: int | None = None
    ) -> Iterator[T]: ...

    def close(self) -> None: ...


# ---------------------------------------------------------------------------------------------
# Carrying typed errors across a process boundary


@dataclass(frozen=True, slots=True)
class _Failure:
    """A ``FiumatchError`` raised in a worker, as data (its class pickles by reference)."""

    cls: type[FiumatchError]
    reason: str
    details: dict[str, object]

    def rebuild(self) -> FiumatchError:
        err = self.cls.__new__(self.cls)
        FiumatchError.__init__(err, self.reason, **self.details)
        return err


def _call(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """Run one call in a worker; a typed error comes back as a ``_Failure`` value."""
    try:
        return fn(*args)
    except FiumatchError as e:
        return _Failure(type(e), e.reason, dict(e.details))


def _unwrap(result: Any) -> Any:
    if isinstance(result, _Failure):
        raise result.rebuild()
    return result


def _ordered(
    submit: Callable[[tuple[Any, ...]], Any],
    args: Iterable[tuple[Any, ...]],
    window: int,
    cancel: Callable[[Any], Any],
) -> Iterator[Any]:
    """Submit ``args`` keeping at most ``window`` in flight; yield results in argument order.

    ``submit`` returns a future with ``result()`` (concurrent.futures or Dask)."""
    pending: collections.deque[Any] = collections.deque()
    it = iter(args)
    try:
        for a in it:
            pending.append(submit(a))
            if len(pending) >= window:
                yield _unwrap(pending.popleft().result())
        while pending:
            yield _unwrap(pending.popleft().result())
    finally:
        for f in pending:
            cancel(f)


# ---------------------------------------------------------------------------------------------
# Executors


class SerialExecutor(_CoreSerialExecutor):
    """The core's serial executor, with ``imap`` and ``close`` (no workers to release)."""

    def imap(
        self, fn: Callable[..., T], args: Iterable[tuple[Any, ...]], *, window: int | None = None
    ) -> Iterator[T]:
        return (fn(*a) for a in args)

    def close(self) -> None:
        return None

    def __enter__(self) -> SerialExecutor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _PoolExecutor:
    """What the thread and process pools share: ordered ``map``/``imap`` over ``submit``."""

    _pool: ThreadPoolExecutor | ProcessPoolExecutor
    _workers: int

    @property
    def workers(self) -> int:
        return self._workers

    def map(
        self,
        fn: Callable[..., T],
        args: Iterable[tuple[Any, ...]],
        *,
        overlap: Callable[[], object] | None = None,
    ) -> list[T]:
        futures = [self._pool.submit(_call, fn, a) for a in args]
        try:
            if overlap is not None:
                overlap()
            return [_unwrap(f.result()) for f in futures]
        finally:
            for f in futures:
                f.cancel()

    def imap(
        self, fn: Callable[..., T], args: Iterable[tuple[Any, ...]], *, window: int | None = None
    ) -> Iterator[T]:
        pool = self._pool
        return _ordered(
            lambda a: pool.submit(_call, fn, a),
            args,
            window or 2 * self._workers,
            lambda f: f.cancel(),
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self: _E) -> _E:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


_E = TypeVar("_E", bound=_PoolExecutor)


class ThreadChunkExecutor(_PoolExecutor):
    """``workers`` threads (default: one per core) in this process."""

    def __init__(self, workers: int | None = None) -> None:
        self._workers = _worker_count(workers)
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="fiumatch-chunk")


def _init_worker(backend: str) -> None:
    """Process-pool initializer: load the group (libsodium), the per-chunk operations and epoch
    encoding once, with the parent's backend, then freeze what they allocated so the cyclic
    garbage collector never walks it again."""
    import gc

    from fiumatch.engine import epoch  # noqa: F401 - imported for its side effect
    from fiumatch.protocol import group
    from fiumatch.protocol.sessions import _ops  # noqa: F401 - imported for its side effect

    if backend != group.BACKEND:
        group.use_backend(backend)
    gc.collect()
    gc.freeze()


def _warm(_: int) -> int:
    return os.getpid()


class ProcessPoolChunkExecutor(_PoolExecutor):
    """``workers`` processes (default ``os.cpu_count()``), started with ``start_method``.

    ``forkserver`` (the default) forks each worker from a clean server process that has
    imported the group once; ``fork`` starts faster but copies this process, threads and all
    (unsafe once a web server or a Dask client runs threads here). The pool is started and
    warmed up in the constructor, so timings of later calls do not include process start-up.
    """

    def __init__(
        self, workers: int | None = None, *, start_method: str = "forkserver", warm: bool = True
    ) -> None:
        if start_method not in START_METHODS:
            raise EngineError(f"start method must be one of {START_METHODS}")
        from fiumatch.protocol import group

        self._workers = _worker_count(workers)
        self.start_method = start_method
        ctx = multiprocessing.get_context(start_method)
        if start_method == "forkserver":
            ctx.set_forkserver_preload(["fiumatch.protocol.sessions._ops"])
        self._pool = ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(group.BACKEND,),
        )
        if warm:
            self.map(_warm, [(i,) for i in range(self._workers)])


class DaskChunkExecutor:
    """The workers of a Dask distributed cluster.

    ``address``: the scheduler (``tcp://host:8786``, ``tls://…`` with ``security``) or an
    existing ``distributed.Client``. Every worker must have fiumatch installed (the calls are
    its functions, sent by reference). ``workers`` defaults to the cluster's total threads.
    Calls are submitted as impure tasks (each runs once, nothing is cached by value).
    """

    def __init__(self, address: Any, *, workers: int | None = None, security: Any = None) -> None:
        try:
            distributed: Any = importlib.import_module("dask.distributed")
        except ImportError:  # pragma: no cover - exercised only without the extra
            raise DaskUnavailableError(
                "dask[distributed] is not installed; pip install 'dask[distributed]' "
                "(or fiumatch[dev]) to run on a Dask cluster"
            ) from None
        client_cls: Any = distributed.Client
        if isinstance(address, client_cls):
            self._client: Any = address
            self._owns_client = False
        else:
            kwargs: dict[str, Any] = {"set_as_default": False}
            if security is not None:
                kwargs["security"] = security
            self._client = client_cls(address, **kwargs)
            self._owns_client = True
        if workers is None:
            threads = self._client.nthreads()
            workers = sum(threads.values()) if threads else 1
        self._workers = max(1, int(workers))

    @property
    def workers(self) -> int:
        return self._workers

    @property
    def client(self) -> Any:
        return self._client

    def map(
        self,
        fn: Callable[..., T],
        args: Iterable[tuple[Any, ...]],
        *,
        overlap: Callable[[], object] | None = None,
    ) -> list[T]:
        futures = [self._client.submit(_call, fn, a, pure=False) for a in args]
        try:
            if overlap is not None:
                overlap()
            return [_unwrap(f.result()) for f in futures]
        finally:
            for f in futures:
                f.release()

    def imap(
        self, fn: Callable[..., T], args: Iterable[tuple[Any, ...]], *, window: int | None = None
    ) -> Iterator[T]:
        client = self._client

        def submit(a: tuple[Any, ...]) -> Any:
            return client.submit(_call, fn, a, pure=False)

        return _ordered(submit, args, window or 2 * self._workers, lambda f: f.release())

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> DaskChunkExecutor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _worker_count(workers: int | None) -> int:
    n = workers if workers is not None else (os.cpu_count() or 1)
    if n < 1:
        raise EngineError("an executor needs at least one worker")
    return n


def make_executor(
    *, dask: str | None = None, workers: int | None = None, kind: str = "process"
) -> StreamingExecutor:
    """The executor a command line asks for: a Dask cluster when ``dask`` (a scheduler
    address) is given, else ``kind`` (``process``, ``thread`` or ``serial``) on this machine."""
    if dask:
        return DaskChunkExecutor(dask, workers=workers)
    if kind == "process":
        return ProcessPoolChunkExecutor(workers)
    if kind == "thread":
        return ThreadChunkExecutor(workers)
    if kind == "serial":
        return SerialExecutor()
    raise EngineError("executor kind must be process, thread or serial")
