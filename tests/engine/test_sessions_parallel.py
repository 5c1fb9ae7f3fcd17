"""Sessions through a ChunkExecutor send the same bytes, and raise the same errors, as serial ones.

Every protocol vector (positive and negative) is replayed with machines whose chunks are cut
into parts, and whole sessions run on a real process pool are compared frame by frame with the
serial run.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from fiumatch.engine import ProcessPoolChunkExecutor
from fiumatch.protocol import errors, psi
from fiumatch.protocol.errors import InvalidElementError, ProtocolError, VerifyError
from fiumatch.protocol.filters import FilterReplica
from fiumatch.protocol.sessions import (
    SERIAL,
    CardinalityQuerier,
    ChunkExecutor,
    FilterQuerier,
    ResultMismatchError,
    SerialExecutor,
    SessionMachine,
)
from fiumatch.protocol.sessions._base import part_ranges, stream_ranges
from fiumatch.protocol.wire import ElementChunk, Limits, MsgType, Suite, decode_frame, encode_frame
from tests.engine.conftest import SplittingExecutor

VECTORS = Path(__file__).resolve().parents[2] / "protocol" / "vectors"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "fiumatch_vectors_generate_engine", VECTORS / "generate.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


GEN = _generator()
CASES = {
    c["name"]: c
    for m in ("filter", "mutual", "cardinality")
    for c in json.loads((VECTORS / f"{m}.json").read_text())["cases"]
}
NEGATIVES = json.loads((VECTORS / "negative.json").read_text())["cases"]


def _machines(case: dict[str, Any], executor: ChunkExecutor) -> tuple[Any, Any]:
    querier, owner = GEN.build_machines(case)
    querier._executor = executor
    owner._executor = executor
    return querier, owner


class Drbg:
    def __init__(self, seed: bytes) -> None:
        self.seed, self.counter = seed, 0

    def __call__(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha256(self.seed + self.counter.to_bytes(8, "big")).digest()
            self.counter += 1
        return out[:n]


def _sets(n: int) -> tuple[list[bytes], list[bytes]]:
    owner = [b"key-%d" % i for i in range(n)]
    querier = [b"key-%d" % i for i in range(n // 2, n + n // 2)]
    return owner, querier


# ---------------------------------------------------------------------------------------------


def test_part_ranges_cover_the_chunk_in_order() -> None:
    for count in (0, 1, 5, 63, 64, 129, 4096, 4097):
        for parts in (1, 2, 3, 8):
            ranges = part_ranges(count, parts, min_part=1)
            assert [i for lo, hi in ranges for i in range(lo, hi)] == list(range(count))
            assert len(ranges) == min(parts, count)
            sizes = [hi - lo for lo, hi in ranges]
            assert not sizes or max(sizes) - min(sizes) <= 1
    assert part_ranges(100, 8) == [(0, 100)]  # below two MIN_PARTs: not worth cutting
    assert len(part_ranges(128, 8)) == 2


def test_stream_ranges_share_the_stream_and_respect_the_chunk_size() -> None:
    assert stream_ranges(10_000, 1, 4096) == [(0, 4096), (4096, 8192), (8192, 10_000)]
    ranges = stream_ranges(1000, 2, 4096)
    assert ranges == [(0, 500), (500, 1000)]
    assert stream_ranges(0, 2, 4096) == []
    assert all(hi - lo <= 16 for lo, hi in stream_ranges(100, 2, 16))


def test_a_machine_refuses_an_executor_without_workers() -> None:
    class Broken(SerialExecutor):
        workers = 0  # type: ignore[misc]

    with pytest.raises(errors.LocalProtocolError):
        CardinalityQuerier(
            session_id=bytes(16), epoch=1, elements=[b"x"], rng=Drbg(b"r"), executor=Broken()
        )
    assert CardinalityQuerier(
        session_id=bytes(16), epoch=1, elements=[b"x"], rng=Drbg(b"r"), executor=SERIAL
    ).start()


@pytest.mark.parametrize("name", sorted(CASES))
def test_vectors_replay_with_chunks_cut_into_parts(name: str, tiny_parts: None) -> None:
    case = CASES[name]
    executor = SplittingExecutor(workers=3)
    querier, owner = _machines(case, executor)
    sent: dict[str, list[str]] = {"q2o": [f.hex() for f in querier.start()], "o2q": []}
    for f in case["frames"]:
        frame = bytes.fromhex(f["hex"])
        if f["dir"] == "q2o":
            sent["o2q"] += [r.hex() for r in owner.receive(frame)]
        else:
            sent["q2o"] += [r.hex() for r in querier.receive(frame)]
    for direction in ("q2o", "o2q"):
        assert sent[direction] == [f["hex"] for f in case["frames"] if f["dir"] == direction]
    assert GEN.describe_results(querier, owner) == case["results"]
    assert executor.calls  # the crypto went through the executor


def _class_for(code: str) -> type[ProtocolError]:
    if code == ResultMismatchError.code:
        return ResultMismatchError
    (cls,) = [
        c
        for c in vars(errors).values()
        if isinstance(c, type) and issubclass(c, ProtocolError) and c.code == code
    ]
    return cls


@pytest.mark.parametrize("neg", NEGATIVES, ids=[n["name"] for n in NEGATIVES])
def test_negative_vectors_raise_the_same_error_with_parts(
    neg: dict[str, Any], tiny_parts: None
) -> None:
    case = CASES[neg["case"]]
    querier, owner = _machines(case, SplittingExecutor(workers=2))
    querier.start()
    target: SessionMachine = owner if neg["role"] == "owner" else querier
    direction = "q2o" if neg["role"] == "owner" else "o2q"
    incoming = [bytes.fromhex(f["hex"]) for f in case["frames"] if f["dir"] == direction]
    for f in incoming[: neg["deliver"]]:
        target.receive(f)
    expected = _class_for(neg["error"])
    with pytest.raises(expected) as info:
        target.receive(bytes.fromhex(neg["frame"]))
    assert type(info.value) is expected


# ---------------------------------------------------------------------------------------------
# Real process pool


def _digest(run: Any) -> str:
    return hashlib.sha256(b"".join(f for _, f in run.traffic.frames)).hexdigest()


LIMITS = Limits(chunk_elements=96)


def _replayed_querier(
    seed: bytes, suite: Suite, keys: list[bytes], pool: ProcessPoolChunkExecutor
) -> FilterQuerier:
    """The querier ``psi.run_filter(..., rng=Drbg(seed), limits=LIMITS)`` made, on ``pool``: the
    same rng and keys give the same blinds, so its recorded frames replay into it."""
    rng = Drbg(seed)
    rng(32)  # run_filter draws the key pair's seed, then the session id
    return FilterQuerier(
        session_id=rng(16),
        epoch=1,
        suite=suite,
        match_keys=keys,
        replica=FilterReplica(suite=suite, epoch=1),
        rng=rng,
        limits=LIMITS,
        executor=pool,
    )


@pytest.mark.parametrize("suite", list(Suite))
def test_filter_on_a_process_pool_sends_the_same_frames(
    suite: Suite, process_pool: ProcessPoolChunkExecutor
) -> None:
    owner, querier = _sets(300)
    runs = [
        psi.run_filter(
            owner, querier, rng=Drbg(b"f"), suite=suite, limits=LIMITS, record=True, executor=ex
        )
        for ex in (None, process_pool)
    ]
    assert _digest(runs[0]) == _digest(runs[1])
    assert runs[1].querier.hits == tuple(sorted(set(owner) & set(querier), key=querier.index))


def test_mutual_and_cardinality_on_a_process_pool_send_the_same_frames(
    process_pool: ProcessPoolChunkExecutor,
) -> None:
    owner, querier = _sets(300)
    for run in (psi.run_mutual, psi.run_cardinality):
        serial = run(owner, querier, rng=Drbg(b"m"), limits=LIMITS, record=True)
        pooled = run(
            owner, querier, rng=Drbg(b"m"), limits=LIMITS, record=True, executor=process_pool
        )
        assert _digest(serial) == _digest(pooled)
        assert pooled.querier.count == 150


@pytest.mark.parametrize("suite", list(Suite))
def test_a_bad_element_in_a_later_part_raises_invalid_element(
    suite: Suite, process_pool: ProcessPoolChunkExecutor
) -> None:
    owner_keys, querier_keys = _sets(200)
    frames = psi.run_filter(
        owner_keys, querier_keys, rng=Drbg(b"t"), suite=suite, limits=LIMITS, record=True
    ).traffic.frames
    # Replay into a fresh querier on the pool: the same rng and keys give the same blinds.
    q = _replayed_querier(b"t", suite, querier_keys, process_pool)
    assert q.start()[0] == frames[0][1]
    for d, f in frames[1:]:
        if d != "o2q":
            continue
        frame = decode_frame(f)
        if frame.header.msg_type is MsgType.EVAL_CHUNK:
            body = frame.body
            assert isinstance(body, ElementChunk)
            last = body.count - 1
            bad = body.elements[: 32 * last] + b"\xff" * 32  # the last element: a later part
            tampered = encode_frame(
                frame.header, ElementChunk(count=body.count, elements=bad, proof=body.proof)
            )
            with pytest.raises(InvalidElementError) as info:
                q.receive(tampered)
            assert info.value.reason  # the reason survived the process boundary
            assert "invalid_element: invalid_element" not in str(info.value)
            return
        q.receive(f)
    pytest.fail("no EVAL_CHUNK")


def test_a_tampered_evaluation_fails_the_proof_on_a_pool(
    process_pool: ProcessPoolChunkExecutor,
) -> None:
    owner_keys, querier_keys = _sets(200)
    suite = Suite.VOPRF_RISTRETTO255_SHA512
    frames = psi.run_filter(
        owner_keys, querier_keys, rng=Drbg(b"v"), suite=suite, limits=LIMITS, record=True
    ).traffic.frames
    q = _replayed_querier(b"v", suite, querier_keys, process_pool)
    q.start()
    for d, f in frames[1:]:
        if d != "o2q":
            continue
        frame = decode_frame(f)
        if frame.header.msg_type is MsgType.EVAL_CHUNK:
            body = frame.body
            assert isinstance(body, ElementChunk)
            e = body.elements
            swapped = e[:-64] + e[-32:] + e[-64:-32]  # swap the last two (in the second part)
            with pytest.raises(VerifyError):
                q.receive(
                    encode_frame(
                        frame.header,
                        ElementChunk(count=body.count, elements=swapped, proof=body.proof),
                    )
                )
            return
        q.receive(f)
    pytest.fail("no EVAL_CHUNK")


@pytest.mark.parametrize("tamper_chunk", [0, 2])
def test_frames_received_together_match_one_by_one_and_a_bad_later_chunk_fails_them_all(
    tamper_chunk: int, process_pool: ProcessPoolChunkExecutor
) -> None:
    # receive_many queues the EVAL_CHUNKs and streams their parts through the pool's imap.
    owner_keys, querier_keys = _sets(300)  # 4 chunks of at most 96
    suite = Suite.OPRF_RISTRETTO255_SHA512
    run = psi.run_filter(
        owner_keys, querier_keys, rng=Drbg(b"b"), suite=suite, limits=LIMITS, record=True
    )

    def fresh() -> FilterQuerier:
        q = _replayed_querier(b"b", suite, querier_keys, process_pool)
        q.start()
        return q

    incoming = [f for d, f in run.traffic.frames if d == "o2q"]
    evals = [
        i for i, f in enumerate(incoming) if decode_frame(f).header.msg_type is MsgType.EVAL_CHUNK
    ]
    assert len(evals) == 4
    together = fresh()
    head = evals[0]
    for f in incoming[:head]:
        together.receive(f)
    assert together.receive_many(incoming[head:]) == []
    assert together.result is not None
    assert together.result.hits == run.querier.hits
    assert together.result.hit_outputs == run.querier.hit_outputs

    frame = decode_frame(incoming[evals[tamper_chunk]])
    body = frame.body
    assert isinstance(body, ElementChunk)
    bad = body.elements[:-32] + b"\xff" * 32
    tampered = list(incoming)
    tampered[evals[tamper_chunk]] = encode_frame(
        frame.header, ElementChunk(count=body.count, elements=bad, proof=b"")
    )
    q = fresh()
    for f in tampered[:head]:
        q.receive(f)
    with pytest.raises(InvalidElementError):
        q.receive_many(tampered[head:])
    with pytest.raises(errors.LocalProtocolError):  # the session is over
        q.receive(incoming[-1])
    assert q.result is None
