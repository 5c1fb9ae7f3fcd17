"""Run a whole PSI session between two in-process state machines (demo, benchmarks, tests).

``run_filter``, ``run_mutual`` and ``run_cardinality`` build both machines, pump every frame
from one to the other through a :class:`~fiumatch.protocol.wire.FrameReader` (as a transport
would), and return both sides' results with the traffic in each direction. ``pump`` does the
pumping for machines built by the caller, and can record every frame (for the vectors).
Each ``run_*`` takes an optional ``executor`` (a ``ChunkExecutor``) that both machines, and the
filter ledger build, run their per-chunk cryptography through.

This module must never do I/O or draw randomness of its own: the caller passes ``rng``.
It is a convenience over ``fiumatch.protocol.sessions``; nodes drive the machines themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fiumatch.protocol import oprf
from fiumatch.protocol.errors import LocalProtocolError
from fiumatch.protocol.filters import FilterLedger, FilterReplica
from fiumatch.protocol.sessions import (
    CardinalityOwner,
    CardinalityOwnerResult,
    CardinalityQuerier,
    CardinalityResult,
    ChunkExecutor,
    FilterOwner,
    FilterOwnerResult,
    FilterQuerier,
    FilterResult,
    MutualOwner,
    MutualQuerier,
    MutualResult,
    Rng,
    SessionMachine,
    build_ledger,
)
from fiumatch.protocol.wire import FrameReader, Limits, Suite

__all__ = [
    "Run",
    "Traffic",
    "pump",
    "run_cardinality",
    "run_filter",
    "run_mutual",
]

QR = TypeVar("QR")
OR = TypeVar("OR")


class _Querier(Protocol):
    def start(self) -> list[bytes]: ...
    def receive(self, data: bytes) -> list[bytes]: ...
    def receive_many(self, frames: Iterable[bytes]) -> list[bytes]: ...


@dataclass(kw_only=True, slots=True)
class Traffic:
    """Frames and bytes in each direction; ``frames`` holds ``(direction, frame)`` when
    recorded, direction ``"q2o"`` or ``"o2q"``."""

    frames_q2o: int = 0
    frames_o2q: int = 0
    bytes_q2o: int = 0
    bytes_o2q: int = 0
    frames: list[tuple[str, bytes]] = field(default_factory=list, repr=False)


@dataclass(frozen=True, kw_only=True, slots=True)
class Run(Generic[QR, OR]):
    """Both sides' results of one in-process session."""

    querier: QR
    owner: OR
    traffic: Traffic


def pump(querier: _Querier, owner: SessionMachine, *, record: bool = False) -> Traffic:
    """Deliver frames between the two machines until neither has anything to send.

    Frames pass as one byte stream per turn through a ``FrameReader``, as over a transport.
    """
    traffic = Traffic()
    q_reader, o_reader = FrameReader(_querier_limits(querier)), FrameReader(owner.limits)
    outgoing = querier.start()
    while outgoing:
        frames = list(o_reader.feed(b"".join(outgoing)))
        o_reader.close()
        _count(traffic, "q2o", frames, record)
        replies = owner.receive_many(frames)
        frames = list(q_reader.feed(b"".join(replies)))
        q_reader.close()
        _count(traffic, "o2q", frames, record)
        outgoing = querier.receive_many(frames)
    return traffic


def _count(traffic: Traffic, direction: str, frames: list[bytes], record: bool) -> None:
    size = sum(len(f) for f in frames)
    if direction == "q2o":
        traffic.frames_q2o += len(frames)
        traffic.bytes_q2o += size
    else:
        traffic.frames_o2q += len(frames)
        traffic.bytes_o2q += size
    if record:
        traffic.frames += [(direction, f) for f in frames]


def _querier_limits(querier: object) -> Limits:
    limits = getattr(querier, "limits", None)
    return limits if isinstance(limits, Limits) else Limits()


def _done(machine: SessionMachine) -> None:
    if not machine.done:  # pragma: no cover - pump ends only when both are done or one raised
        raise LocalProtocolError("session ended before completion")


def run_filter(
    owner_keys: Sequence[bytes],
    querier_keys: Sequence[bytes],
    *,
    rng: Rng,
    key_pair: oprf.KeyPair | None = None,
    ledger: FilterLedger | None = None,
    replica: FilterReplica | None = None,
    suite: Suite = Suite.OPRF_RISTRETTO255_SHA512,
    epoch: int = 1,
    fp_rate: float = 1e-6,
    exact: bool = False,
    session_id: bytes | None = None,
    limits: Limits | None = None,
    record: bool = False,
    executor: ChunkExecutor | None = None,
) -> Run[FilterResult, FilterOwnerResult]:
    """Filter mode end to end. Without ``key_pair`` a fresh one is derived from ``rng``; without
    ``ledger`` one is built from ``owner_keys``; pass ``replica`` to reuse (and update) a
    querier's earlier filter copy."""
    if key_pair is None:
        key_pair = oprf.derive_key_pair(rng(32), b"fiumatch-psi-run", oprf.MODE_VOPRF)
    if ledger is None:
        ledger = build_ledger(
            key_pair,
            owner_keys,
            suite=suite,
            epoch=epoch,
            fp_rate=fp_rate,
            exact=exact,
            executor=executor,
        )
    if replica is None:
        replica = FilterReplica(suite=suite, epoch=epoch)
    sid = session_id if session_id is not None else rng(16)
    owner = FilterOwner(
        session_id=sid,
        epoch=epoch,
        suite=suite,
        key_pair=key_pair,
        ledger=ledger,
        rng=rng,
        limits=limits,
        executor=executor,
    )
    querier = FilterQuerier(
        session_id=sid,
        epoch=epoch,
        suite=suite,
        match_keys=querier_keys,
        replica=replica,
        rng=rng,
        limits=limits,
        owner_public_key=key_pair.pk,
        executor=executor,
    )
    traffic = pump(querier, owner, record=record)
    _done(owner)
    _done(querier)
    assert querier.result is not None and owner.result is not None
    return Run(querier=querier.result, owner=owner.result, traffic=traffic)


def run_mutual(
    owner_elements: Sequence[bytes],
    querier_elements: Sequence[bytes],
    *,
    rng: Rng,
    owner_signing_key: Ed25519PrivateKey | None = None,
    querier_signing_key: Ed25519PrivateKey | None = None,
    epoch: int = 1,
    session_id: bytes | None = None,
    limits: Limits | None = None,
    record: bool = False,
    executor: ChunkExecutor | None = None,
) -> Run[MutualResult, MutualResult]:
    """Mutual mode end to end; signing keys default to fresh ones drawn from ``rng``."""
    okey = owner_signing_key or Ed25519PrivateKey.from_private_bytes(rng(32))
    qkey = querier_signing_key or Ed25519PrivateKey.from_private_bytes(rng(32))
    sid = session_id if session_id is not None else rng(16)
    owner = MutualOwner(
        session_id=sid,
        epoch=epoch,
        elements=owner_elements,
        signing_key=okey,
        peer_key=qkey.public_key(),
        rng=rng,
        limits=limits,
        executor=executor,
    )
    querier = MutualQuerier(
        session_id=sid,
        epoch=epoch,
        elements=querier_elements,
        signing_key=qkey,
        peer_key=okey.public_key(),
        rng=rng,
        limits=limits,
        executor=executor,
    )
    traffic = pump(querier, owner, record=record)
    _done(owner)
    _done(querier)
    assert querier.result is not None and owner.result is not None
    return Run(querier=querier.result, owner=owner.result, traffic=traffic)


def run_cardinality(
    owner_elements: Sequence[bytes],
    querier_elements: Sequence[bytes],
    *,
    rng: Rng,
    epoch: int = 1,
    session_id: bytes | None = None,
    limits: Limits | None = None,
    record: bool = False,
    executor: ChunkExecutor | None = None,
) -> Run[CardinalityResult, CardinalityOwnerResult]:
    """Cardinality mode end to end."""
    sid = session_id if session_id is not None else rng(16)
    owner = CardinalityOwner(
        session_id=sid,
        epoch=epoch,
        elements=owner_elements,
        rng=rng,
        limits=limits,
        executor=executor,
    )
    querier = CardinalityQuerier(
        session_id=sid,
        epoch=epoch,
        elements=querier_elements,
        rng=rng,
        limits=limits,
        executor=executor,
    )
    traffic = pump(querier, owner, record=record)
    _done(owner)
    _done(querier)
    assert querier.result is not None and owner.result is not None
    return Run(querier=querier.result, owner=owner.result, traffic=traffic)
