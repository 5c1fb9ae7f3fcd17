"""The querier's frame pump: element chunks go to the owner in batches, and the progress it
reports after each batch counts the elements the owner has evaluated so far."""

from __future__ import annotations

import pytest

from fiumatch.node.errors import ConflictError
from fiumatch.node.service import BATCH_FRAMES, PeerProgress, pump
from fiumatch.protocol.filters import FilterLedger, FilterReplica
from fiumatch.protocol.keys import derive_epoch_key
from fiumatch.protocol.sessions import FilterOwner, FilterQuerier, evaluate_outputs
from fiumatch.protocol.wire import FrameReader, Limits, Suite
from tests.node.helpers import det_rng

SUITE = Suite.VOPRF_RISTRETTO255_SHA512
SID = bytes(range(16))


class LoopbackClient:
    """Feeds every request to an owner machine in process; notes the progress at each send."""

    def __init__(self, owner: FilterOwner, progress: PeerProgress, *, stall: bool = False):
        self.owner = owner
        self.progress = progress
        self.stall = stall
        self.sends: list[tuple[int, int]] = []  # (frames in the request, done when sent)

    def send_frames(self, sid: str, epoch: int, body: bytes) -> bytes:
        reader = FrameReader(self.owner.limits)
        frames = reader.feed(body)
        reader.close()
        self.sends.append((len(frames), self.progress.done))
        if self.stall and len(self.sends) > 1:
            return b""
        return b"".join(out for f in frames for out in self.owner.receive(f))


def _pair(keys: list[bytes]) -> tuple[FilterOwner, FilterQuerier]:
    kp = derive_epoch_key(b"\x01" * 32, "FIU-P", 1)
    owner_keys = [b"key-%d" % i for i in range(10)]
    ledger = FilterLedger.bloom(
        evaluate_outputs(kp, owner_keys, SUITE), suite=SUITE, epoch=1, fp_rate=1e-6, capacity=10
    )
    owner = FilterOwner(
        session_id=SID,
        epoch=1,
        suite=SUITE,
        key_pair=kp,
        ledger=ledger,
        rng=det_rng(b"o"),
        limits=Limits(max_elements=100),
    )
    querier = FilterQuerier(
        session_id=SID,
        epoch=1,
        suite=SUITE,
        match_keys=keys,
        replica=FilterReplica(suite=SUITE, epoch=1),
        rng=det_rng(b"q"),
        limits=Limits(max_elements=100, chunk_elements=2),
        owner_public_key=kp.pk,
    )
    return owner, querier


def test_chunks_go_in_batches_and_progress_counts_evaluated_elements() -> None:
    keys = [b"key-1", b"other-1", b"key-3", b"other-2", b"other-3", b"key-9", b"other-4"]
    owner, querier = _pair(keys)
    progress = PeerProgress(stage="opening", total=len(keys))
    client = LoopbackClient(owner, progress)
    pump(client, SID.hex(), 1, querier, progress)
    assert BATCH_FRAMES == 2
    # HELLO; then 4 chunks of at most 2 elements, two per request; then QUERY_END.
    assert client.sends == [(1, 0), (2, 0), (2, 4), (1, 7)]
    assert (progress.stage, progress.done) == ("evaluated", 7)
    assert querier.result is not None and querier.result.hit_indices == (0, 2, 5)
    assert len(querier.result.hit_outputs) == 3


def test_a_peer_that_stops_answering_ends_the_pump_with_an_error() -> None:
    owner, querier = _pair([b"key-1", b"key-2", b"key-3"])
    progress = PeerProgress(total=3)
    with pytest.raises(ConflictError, match="ended the session early"):
        pump(LoopbackClient(owner, progress, stall=True), SID.hex(), 1, querier, progress)
