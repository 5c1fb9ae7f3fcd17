"""The querier's frame pump: drives a querier session machine over ``client.send_frames``.

Element chunks go to the owner in batches of ``BATCH_FRAMES`` per request, and up to ``DEPTH``
requests are in flight: while the owner evaluates one batch, this thread finalizes the reply to
the previous one, so compute on both nodes and the transfer between them overlap (issue #6:
"sessions stream chunks"). Requests leave in order from one sender thread, so the owner sees the
frames in sequence as the protocol requires (SPEC §5.2); replies are fed to the machine in the
same order. The frames a machine has queued never depend on replies still in flight: it made
them before they were sent. A request that is the only one possible at the time (nothing in
flight, and nothing queued after it, as a small query's one batch, or ``depth`` 1) is sent from
the calling thread, and no sender thread is started for it.

Progress (stage, and how many of our elements the owner has evaluated) is updated as each reply
is processed. This module never logs frames or elements.
"""

from __future__ import annotations

import concurrent.futures
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from fiumatch.node.errors import ConflictError
from fiumatch.protocol.wire import ElementChunk, FrameReader, Limits, MsgType, decode_frame

__all__ = ["BATCH_FRAMES", "DEPTH", "PeerProgress", "pump"]

BATCH_FRAMES = 2
"""Element chunks per request (plus any control frames between them)."""
DEPTH = 2
"""Requests in flight at once."""


@dataclass
class PeerProgress:
    """How far one peer's part of a query is: a stage name and how many of our elements the
    peer has evaluated so far (``done`` of ``total``)."""

    stage: str = "queued"
    done: int = 0
    total: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "done": self.done, "total": self.total}


_STAGES = {
    MsgType.HELLO_ACK: "opened",
    MsgType.FILTER_CHUNK: "filter download",
    MsgType.FILTER_END: "evaluating",
    MsgType.EVAL_CHUNK: "evaluating",
    MsgType.EVAL_END: "evaluated",
    MsgType.SET_CHUNK: "owner set",
    MsgType.SET_END: "comparing",
    MsgType.FINISH_ACK: "signed",
}

_ELEMENT_CHUNKS = (MsgType.QUERY_CHUNK, MsgType.REVEAL_CHUNK)


class FrameClient(Protocol):
    def send_frames(self, session_id: str, epoch: int, frames: bytes) -> bytes: ...


class QuerierMachine(Protocol):
    """What the pump needs of a querier machine (filter, mutual or cardinality)."""

    @property
    def limits(self) -> Limits: ...

    @property
    def done(self) -> bool: ...

    def start(self) -> list[bytes]: ...

    def receive(self, data: bytes) -> list[bytes]: ...

    def receive_many(self, frames: Sequence[bytes]) -> list[bytes]: ...


def _take_batch(queue: deque[bytes], machine: QuerierMachine) -> bytes:
    """The next request body: frames off the queue up to ``BATCH_FRAMES`` element chunks."""
    batch: list[bytes] = []
    chunks = 0
    while queue and chunks < BATCH_FRAMES:
        frame = queue.popleft()
        batch.append(frame)
        chunks += decode_frame(frame, machine.limits).header.msg_type in _ELEMENT_CHUNKS
    return b"".join(batch)


def _sent(reply: bytes) -> concurrent.futures.Future[bytes]:
    done: concurrent.futures.Future[bytes] = concurrent.futures.Future()
    done.set_result(reply)
    return done


def pump(
    client: FrameClient,
    sid: str,
    epoch: int,
    machine: QuerierMachine,
    progress: PeerProgress,
    *,
    depth: int = DEPTH,
    answered: bytes | None = None,
) -> None:
    """Drive ``machine`` (already constructed, not started) to the end; raise
    :class:`ConflictError` if the peer stops answering before the session is done. A peer
    error (``PeerError``, a protocol error) propagates after the requests in flight return.

    ``answered``: the machine was started already and its first frames went with the open
    request; this is the peer's answer to them (SPEC §14.4.1), fed first."""
    inflight: deque[concurrent.futures.Future[bytes]] = deque()
    if answered is None:
        queue = deque(machine.start())
    else:
        queue = deque()
        inflight.append(_sent(answered))
    sender: concurrent.futures.ThreadPoolExecutor | None = None
    try:
        while queue or inflight:
            while queue and len(inflight) < max(1, depth):
                body = _take_batch(queue, machine)
                if not inflight and (not queue or depth <= 1):
                    # The one request that can be in flight (nothing queued behind it, or one
                    # at a time anyway): sent from this thread, no hop to the sender.
                    inflight.append(_sent(client.send_frames(sid, epoch, body)))
                    continue
                if sender is None:
                    sender = concurrent.futures.ThreadPoolExecutor(
                        1, thread_name_prefix="fiumatch-pump"
                    )
                inflight.append(sender.submit(client.send_frames, sid, epoch, body))
            reply = inflight.popleft().result()
            reader = FrameReader(machine.limits)
            frames = reader.feed(reply)
            reader.close()
            for frame in frames:
                decoded = decode_frame(frame, machine.limits)
                kind = decoded.header.msg_type
                progress.stage = _STAGES.get(kind, progress.stage)
                if kind is MsgType.EVAL_CHUNK and isinstance(decoded.body, ElementChunk):
                    progress.done = min(progress.total, progress.done + decoded.body.count)
            # All of a reply's frames at once: their chunks go to the workers as one stream.
            queue.extend(machine.receive_many(frames))
            if machine.done:
                break
    finally:
        if sender is not None:
            sender.shutdown(wait=True)
    if not machine.done:
        raise ConflictError("the peer ended the session early")
