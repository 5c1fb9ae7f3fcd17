"""The pipelined pump (node/pump.py): requests leave in order from one sender thread with up to
``depth`` in flight, so the owner evaluates the next batch while the querier finalizes the last
reply; results and progress are those of the one-at-a-time pump."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from fiumatch.node.errors import ConflictError
from fiumatch.node.pump import BATCH_FRAMES, PeerProgress, pump
from fiumatch.protocol.filters import FilterLedger, FilterReplica
from fiumatch.protocol.keys import derive_epoch_key
from fiumatch.protocol.sessions import FilterOwner, FilterQuerier, evaluate_outputs
from fiumatch.protocol.wire import FrameReader, Limits, MsgType, Suite, decode_frame
from tests.node.helpers import det_rng

SUITE = Suite.VOPRF_RISTRETTO255_SHA512
SID = bytes(range(16))
KEYS = [b"key-1", b"other-1", b"key-3", b"other-2", b"other-3", b"key-9", b"other-4", b"key-5"]


class Loopback:
    """Feeds each request to an owner machine in process; records each request's frame count
    and sets ``second_batch`` when the second batch of element chunks arrives."""

    def __init__(self, owner: FilterOwner, *, stall_after: int | None = None) -> None:
        self.owner = owner
        self.stall_after = stall_after
        self.sends: list[int] = []
        self.second_batch = threading.Event()

    def send_frames(self, sid: str, epoch: int, body: bytes) -> bytes:
        reader = FrameReader(self.owner.limits)
        frames = reader.feed(body)
        reader.close()
        self.sends.append(len(frames))
        if len(self.sends) == 3:  # HELLO, first batch, second batch
            self.second_batch.set()
        if self.stall_after is not None and len(self.sends) > self.stall_after:
            return b""
        return b"".join(out for f in frames for out in self.owner.receive(f))


class SlowQuerier:
    """A querier that, on its first evaluated chunk, waits (up to ``wait`` s) for the client to
    see the second batch, and notes whether it did: only a pipelined pump sends it first."""

    def __init__(self, inner: FilterQuerier, client: Loopback, wait: float) -> None:
        self.inner, self.client, self.wait = inner, client, wait
        self.overlapped: bool | None = None

    @property
    def limits(self) -> Limits:
        return self.inner.limits

    @property
    def done(self) -> bool:
        return self.inner.done

    def start(self) -> list[bytes]:
        return self.inner.start()

    def receive(self, data: bytes) -> list[bytes]:
        return self.receive_many([data])

    def receive_many(self, frames: Sequence[bytes]) -> list[bytes]:
        kinds = [decode_frame(f, self.inner.limits).header.msg_type for f in frames]
        if MsgType.EVAL_CHUNK in kinds and self.overlapped is None:
            self.overlapped = self.client.second_batch.wait(self.wait)
        return self.inner.receive_many(frames)


def _pair() -> tuple[FilterOwner, FilterQuerier]:
    kp = derive_epoch_key(b"\x01" * 32, "FIU-P", 1)
    owner_keys = [b"key-%d" % i for i in range(10)]
    ledger = FilterLedger.bloom(
        evaluate_outputs(kp, owner_keys, SUITE), suite=SUITE, epoch=1, fp_rate=1e-6, capacity=10
    )
    owner = FilterOwner(
        session_id=SID, epoch=1, suite=SUITE, key_pair=kp, ledger=ledger, rng=det_rng(b"o"),
        limits=Limits(max_elements=100),
    )  # fmt: skip
    querier = FilterQuerier(
        session_id=SID, epoch=1, suite=SUITE, match_keys=KEYS,
        replica=FilterReplica(suite=SUITE, epoch=1), rng=det_rng(b"q"),
        limits=Limits(max_elements=100, chunk_elements=2), owner_public_key=kp.pk,
    )  # fmt: skip
    return owner, querier


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_every_depth_gives_the_same_result_and_progress(depth: int) -> None:
    owner, querier = _pair()
    client = Loopback(owner)
    progress = PeerProgress(stage="opening", total=len(KEYS))
    pump(client, SID.hex(), 1, querier, progress, depth=depth)
    assert BATCH_FRAMES == 2
    # HELLO; 4 chunks of 2 elements, two per request; then QUERY_END on its own
    assert client.sends == [1, 2, 2, 1]
    assert (progress.stage, progress.done) == ("evaluated", len(KEYS))
    assert querier.result is not None and querier.result.hit_indices == (0, 2, 5, 7)


def test_the_next_batch_is_sent_while_the_last_reply_is_finalized() -> None:
    owner, inner = _pair()
    client = Loopback(owner)
    querier = SlowQuerier(inner, client, wait=5.0)
    pump(client, SID.hex(), 1, querier, PeerProgress(total=len(KEYS)), depth=2)
    assert querier.overlapped is True and inner.result is not None
    # one request at a time: the second batch waits for the first reply to be processed
    owner, inner = _pair()
    client = Loopback(owner)
    querier = SlowQuerier(inner, client, wait=0.2)
    pump(client, SID.hex(), 1, querier, PeerProgress(total=len(KEYS)), depth=1)
    assert querier.overlapped is False and inner.result is not None


def test_a_peer_that_stops_answering_ends_the_pump_with_an_error() -> None:
    owner, querier = _pair()
    with pytest.raises(ConflictError, match="ended the session early"):
        pump(Loopback(owner, stall_after=1), SID.hex(), 1, querier, PeerProgress(total=8))


class ThreadNoting(Loopback):
    """A loopback that notes the thread each request is sent from."""

    def __init__(self, owner: FilterOwner) -> None:
        super().__init__(owner)
        self.threads: list[str] = []

    def send_frames(self, sid: str, epoch: int, body: bytes) -> bytes:
        self.threads.append(threading.current_thread().name)
        return super().send_frames(sid, epoch, body)


def test_a_request_that_is_the_only_one_possible_is_sent_from_the_calling_thread() -> None:
    owner, querier = _pair()
    client = ThreadNoting(owner)
    pump(client, SID.hex(), 1, querier, PeerProgress(total=len(KEYS)), depth=2)
    assert client.sends == [1, 2, 2, 1] and querier.result is not None
    here = threading.current_thread().name
    # HELLO alone: from here. The batches after it go to the sender, in order: each has
    # another queued behind it or in flight (QUERY_END leaves while the second batch is out).
    assert client.threads[0] == here
    assert all(t.startswith("fiumatch-pump") for t in client.threads[1:])
    # One batch, nothing in flight (a small query's EVAL request): from here, no sender.
    owner, querier = _pair()
    client = ThreadNoting(owner)
    pump(client, SID.hex(), 1, querier, PeerProgress(total=len(KEYS)), depth=1)
    assert client.threads == [here] * 4


def test_the_first_reply_can_come_with_the_open() -> None:
    owner, querier = _pair()
    client = Loopback(owner)
    hello = querier.start()
    answered = b"".join(out for f in hello for out in owner.receive(f))
    pump(client, SID.hex(), 1, querier, PeerProgress(total=len(KEYS)), answered=answered)
    assert client.sends == [2, 2, 1]  # no HELLO request: its answer came with the open
    assert querier.result is not None and querier.result.hit_indices == (0, 2, 5, 7)
