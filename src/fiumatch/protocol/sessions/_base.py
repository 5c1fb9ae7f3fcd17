"""The part every session state machine shares: binding, sequence numbers, transcript, errors.

A machine is fed whole frames (``receive``) and returns the frames to send, as bytes. Before a
frame's body is looked at, its header must name this session, mode, suite and epoch, its
``seq`` must be the next one expected from the peer, and ``TRANSITIONS`` must allow its type in
the current state. Any ``ProtocolError`` is fatal: the machine moves to ``FAILED`` and refuses
every further input with ``LocalProtocolError``.

Per-chunk cryptography goes through an optional :class:`ChunkExecutor` (default
:data:`SERIAL`, in the caller's thread): an abstract ordered ``map`` that a shell may back with
a process pool or a cluster (``fiumatch.engine``). The machines pass it only top-level
functions of ``_ops`` and bytes, never themselves or their rng; they draw every random scalar
before the work is mapped, so the frames are the same whatever executor runs them.

``receive_many`` takes several frames at once (what a transport read in one go) and returns the
same replies as ``receive`` on each in turn. A mode lists the message types whose work can wait
(``_deferrable``: the element chunks of a stream); their calls queue up and go to the executor
together, through its ``imap`` when it has one, so the workers never wait for this thread
between two chunks, and this thread finishes a chunk (joins it, proves, tests) while the
workers compute the next. Any other frame first finishes what is queued, so replies keep their
order and sequence numbers.

This module must never do I/O, read clocks or draw randomness except through the caller's rng,
and never import an executor implementation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Protocol, TypeVar, runtime_checkable

from fiumatch.protocol.errors import (
    LocalProtocolError,
    OutOfOrderError,
    ProtocolError,
    ReplayError,
    VerifyError,
    WrongEpochError,
    WrongModeError,
    WrongSessionError,
    WrongSuiteError,
)
from fiumatch.protocol.sessions._ops import TRANSCRIPT_DST
from fiumatch.protocol.sessions._state import START, TRANSITIONS, Input, Role, State, Transition
from fiumatch.protocol.wire import (
    SESSION_ID_LEN,
    Body,
    ElementChunk,
    Frame,
    Header,
    Limits,
    Mode,
    MsgType,
    StreamEnd,
    Suite,
    decode_frame,
    element_width,
    encode_frame,
    iter_chunks,
)

Rng = Callable[[int], bytes]
T = TypeVar("T")


@runtime_checkable
class ChunkExecutor(Protocol):
    """Runs per-chunk work: ``map(fn, args)`` is ``[fn(*a) for a in args]``, in order.

    ``fn`` is a top-level function of ``fiumatch.protocol.sessions._ops`` (or
    ``fiumatch.protocol.oprf``) and every argument is bytes, ints or lists of bytes, so an
    implementation may run the calls in other processes or on other machines. An exception
    raised by a call is raised by ``map`` (the first one in argument order), with its class
    and reason. ``workers`` is how many calls it runs at once: machines cut a chunk into that
    many parts.

    ``overlap``, if given, is called once, in the caller's thread, while the calls run (a
    serial executor calls it first): the caller's own work that does not depend on them, so
    that it does not leave the workers idle.
    """

    @property
    def workers(self) -> int: ...

    def map(
        self,
        fn: Callable[..., T],
        args: Iterable[tuple[Any, ...]],
        *,
        overlap: Callable[[], object] | None = None,
    ) -> list[T]: ...


class SerialExecutor:
    """Every call in the caller's thread, one after the other (the default)."""

    workers: Final = 1

    def map(
        self,
        fn: Callable[..., T],
        args: Iterable[tuple[Any, ...]],
        *,
        overlap: Callable[[], object] | None = None,
    ) -> list[T]:
        if overlap is not None:
            overlap()
        return [fn(*a) for a in args]


SERIAL: Final = SerialExecutor()
MIN_PART: Final = 64
"""Fewest elements worth sending to a worker on their own: smaller chunks are not cut."""
PARTS_PER_WORKER: Final = 2
"""A received chunk is cut into this many parts per worker, so that a worker slowed by other
work on its core (a shared machine, a busy cluster node) is helped by the others instead of
holding the whole chunk back."""


def part_ranges(count: int, parts: int, *, min_part: int | None = None) -> list[tuple[int, int]]:
    """Cut ``range(count)`` into at most ``parts`` contiguous ``(lo, hi)`` ranges of nearly equal
    size, none below ``min_part`` (default ``MIN_PART``) elements (one range if ``count`` is
    small); none if ``count`` is 0."""
    if count <= 0:
        return []
    least = MIN_PART if min_part is None else min_part
    n = max(1, min(parts, count // max(1, least)))
    step, extra = divmod(count, n)
    out, lo = [], 0
    for i in range(n):
        hi = lo + step + (1 if i < extra else 0)
        out.append((lo, hi))
        lo = hi
    return out


def stream_ranges(count: int, workers: int, chunk_elements: int) -> list[tuple[int, int]]:
    """Ranges for computing a whole stream at once: at most ``chunk_elements`` each, and at
    least ``workers`` of them when there are enough elements to share."""
    size = max(1, min(chunk_elements, -(-count // max(1, workers))))
    if workers > 1:
        size = max(size, min(MIN_PART, chunk_elements))
    return [(lo, min(count, lo + size)) for lo in range(0, count, size)]


@dataclass(frozen=True, slots=True)
class Deferred:
    """The work of one received chunk: ``fn`` over ``args`` on the executor, then ``finish``
    (in the machine's thread, in frame order) turns the results into the frames to send."""

    fn: Callable[..., Any]
    args: list[tuple[Any, ...]]
    finish: Callable[[list[Any]], list[bytes]]


class ResultMismatchError(VerifyError):
    """Mutual mode: the peer's signed intersection size differs from ours."""

    code = "result_mismatch"


class SessionMachine:
    """Base class; subclasses set ``mode`` and ``role`` and define ``_on_<msgtype>`` handlers."""

    mode: ClassVar[Mode]
    role: ClassVar[Role]
    _deferrable: ClassVar[frozenset[MsgType]] = frozenset()
    """Message types handled by ``_defer_<type>`` (returning a ``Deferred``), not ``_on_``."""

    def __init__(
        self,
        *,
        session_id: bytes,
        epoch: int,
        suite: Suite,
        rng: Rng,
        limits: Limits | None = None,
        executor: ChunkExecutor | None = None,
    ) -> None:
        if len(session_id) != SESSION_ID_LEN:
            raise LocalProtocolError(f"session id must be {SESSION_ID_LEN} bytes")
        if not 0 <= epoch < 1 << 64:
            raise LocalProtocolError("epoch must fit in u64")
        self.session_id = bytes(session_id)
        self.epoch = epoch
        self.suite = Suite(suite)
        self.limits = limits or Limits()
        self._rng = rng
        self._executor: ChunkExecutor = executor if executor is not None else SERIAL
        if self._executor.workers < 1:
            raise LocalProtocolError("an executor must run at least one call at once")
        self.state = State.START
        self._send_seq = 0
        self._recv_seq = 0
        self._sent_hash = hashlib.sha512()
        self._recv_hash = hashlib.sha512()
        self._pending: list[Deferred] = []

    # -- public -------------------------------------------------------------------------------

    def receive(self, data: bytes) -> list[bytes]:
        """Process one frame from the peer; return the frames to send in reply (maybe none)."""
        return self.receive_many((data,))

    def receive_many(self, frames: Iterable[bytes]) -> list[bytes]:
        """Process ``frames`` in order; return every reply, in order: the same frames as
        ``receive`` on each in turn, with the chunk work of consecutive frames run together.

        If a frame fails, nothing is returned for the earlier ones either: the session is over.
        """
        if self.state is State.FAILED:
            raise LocalProtocolError("the session already failed")
        out: list[bytes] = []
        try:
            for data in frames:
                if self.state is State.FAILED:  # pragma: no cover - failures raise below
                    raise LocalProtocolError("the session already failed")
                frame = decode_frame(data, self.limits)
                self._check_binding(frame.header)
                self._check_seq(frame.header.seq)
                transition = self._transition(frame.header.msg_type)
                self._recv_seq += 1
                self._recv_hash.update(data)
                if frame.header.msg_type in self._deferrable:
                    self._pending.append(self._defer(frame))
                else:
                    out += self._run_pending()
                    out += self._dispatch(frame)
                self.state = transition.next
            out += self._run_pending()
        except ProtocolError:
            self.state = State.FAILED
            self._pending = []
            raise
        return out

    @property
    def done(self) -> bool:
        return self.state is State.DONE

    def transcript_hash(self) -> bytes:
        """``SHA-512(DST || SHA-512(querier→owner frames) || SHA-512(owner→querier frames))``."""
        if self.role is Role.QUERIER:
            q2o, o2q = self._sent_hash, self._recv_hash
        else:
            q2o, o2q = self._recv_hash, self._sent_hash
        return hashlib.sha512(TRANSCRIPT_DST + q2o.digest() + o2q.digest()).digest()

    # -- helpers for subclasses ---------------------------------------------------------------

    def _start(self) -> None:
        """Querier: check ``start()`` is allowed now and apply its transition."""
        if self.state is State.FAILED:
            raise LocalProtocolError("the session already failed")
        key: tuple[Mode, Role, State, Input] = (self.mode, self.role, self.state, START)
        transition = TRANSITIONS.get(key)
        if transition is None:
            raise LocalProtocolError("start() is only allowed once, by the querier")
        self.state = transition.next

    def _send(self, msg_type: MsgType, body: Body) -> bytes:
        header = Header(
            msg_type=msg_type,
            mode=self.mode,
            suite=self.suite,
            epoch=self.epoch,
            session_id=self.session_id,
            seq=self._send_seq,
        )
        frame = encode_frame(header, body)
        self._send_seq += 1
        self._sent_hash.update(frame)
        return frame

    def _send_stream(
        self, chunk_type: MsgType, end_type: MsgType, chunks: Iterable[bytes]
    ) -> Iterator[bytes]:
        """Frames for an element stream: one ``chunk_type`` per non-empty chunk, then the end."""
        width = element_width(chunk_type, self.mode)
        total = 0
        for chunk in chunks:
            count = len(chunk) // width
            if count == 0:
                continue
            total += count
            yield self._send(chunk_type, ElementChunk(count=count, elements=chunk))
        yield self._send(end_type, StreamEnd(total=total))

    def _send_elements(self, chunk_type: MsgType, end_type: MsgType, data: bytes) -> list[bytes]:
        width = element_width(chunk_type, self.mode)
        chunks = iter_chunks(data, width, self.limits.chunk_elements)
        return list(self._send_stream(chunk_type, end_type, chunks))

    def _parts(self, count: int) -> list[tuple[int, int]]:
        """How to cut a received chunk of ``count`` elements across the executor's workers."""
        workers = self._executor.workers
        return part_ranges(count, workers if workers == 1 else workers * PARTS_PER_WORKER)

    def _stream_ranges(self, count: int) -> list[tuple[int, int]]:
        """How to cut a whole outgoing stream of ``count`` elements into mapped calls."""
        return stream_ranges(count, self._executor.workers, self.limits.chunk_elements)

    # -- internals ----------------------------------------------------------------------------

    def _check_binding(self, header: Header) -> None:
        if header.session_id != self.session_id:
            raise WrongSessionError("frame belongs to another session")
        if header.mode is not self.mode:
            raise WrongModeError("frame is bound to another mode")
        if header.suite is not self.suite:
            raise WrongSuiteError("frame is bound to another suite")
        if header.epoch != self.epoch:
            raise WrongEpochError("frame is bound to another epoch")

    def _check_seq(self, seq: int) -> None:
        if seq < self._recv_seq:
            raise ReplayError("frame sequence number already processed")
        if seq > self._recv_seq:
            raise OutOfOrderError("frame sequence number skips ahead")

    def _transition(self, msg_type: MsgType) -> Transition:
        key: tuple[Mode, Role, State, Input] = (self.mode, self.role, self.state, msg_type)
        transition = TRANSITIONS.get(key)
        if transition is None:
            raise OutOfOrderError("message type not expected in this state")
        return transition

    def _dispatch(self, frame: Frame) -> list[bytes]:
        handler = getattr(self, "_on_" + frame.header.msg_type.name.lower(), None)
        if handler is None:  # pragma: no cover - the table and the handlers disagree
            raise LocalProtocolError("no handler for an allowed message type")
        out: list[bytes] = handler(frame.body)
        return out

    def _defer(self, frame: Frame) -> Deferred:
        handler = getattr(self, "_defer_" + frame.header.msg_type.name.lower(), None)
        if handler is None:  # pragma: no cover - _deferrable and the handlers disagree
            raise LocalProtocolError("no handler for an allowed message type")
        deferred: Deferred = handler(frame.body)
        return deferred

    def _between_chunks(self) -> None:
        """This thread's own work while the workers compute (a mode may override it): run
        during a lone ``map`` (its ``overlap``) and after each chunk is finished."""

    def _after_chunks(self) -> list[bytes]:
        """Called once every queued chunk is finished (a mode may override it)."""
        return []

    def _run_pending(self) -> list[bytes]:
        """Run the queued chunks' calls and finish each chunk in order; return their frames."""
        pending, self._pending = self._pending, []
        if not pending:
            return []
        fn = pending[0].fn
        if any(d.fn is not fn for d in pending):  # pragma: no cover - one stream at a time
            raise LocalProtocolError("queued chunks of different kinds")
        calls = [a for d in pending for a in d.args]
        imap: Callable[..., Iterator[Any]] | None = getattr(self._executor, "imap", None)
        out: list[bytes] = []
        if imap is None or len(pending) == 1:
            results = self._executor.map(fn, calls, overlap=self._between_chunks)
            pos = 0
            for d in pending:
                out += d.finish(results[pos : pos + len(d.args)])
                pos += len(d.args)
        else:
            stream = imap(fn, calls)
            try:
                for d in pending:
                    out += d.finish([next(stream) for _ in d.args])
                    self._between_chunks()
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
        return out + self._after_chunks()
