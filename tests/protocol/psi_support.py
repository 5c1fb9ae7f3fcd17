"""Shared helpers for the PSI session tests: a deterministic rng and machine-pair builders."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fiumatch.protocol import oprf
from fiumatch.protocol.filters import FilterLedger, FilterReplica
from fiumatch.protocol.sessions import (
    CardinalityOwner,
    CardinalityQuerier,
    FilterOwner,
    FilterQuerier,
    MutualOwner,
    MutualQuerier,
    SessionMachine,
    build_ledger,
)
from fiumatch.protocol.wire import Limits, Mode, Suite


class Drbg:
    """SHA-256 counter DRBG: block i = SHA-256(seed || u64(i)); each call takes fresh blocks."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._counter = 0

    def __call__(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            out += hashlib.sha256(self._seed + self._counter.to_bytes(8, "big")).digest()
            self._counter += 1
        return bytes(out[:n])


def items(tag: str, n: int) -> list[bytes]:
    return [hashlib.sha256(f"{tag}/{i}".encode()).digest()[:20] for i in range(n)]


SID = bytes.fromhex("00112233445566778899aabbccddeeff")
OWNER_SIG = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
QUERIER_SIG = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))


@dataclass
class Pair:
    querier: FilterQuerier | MutualQuerier | CardinalityQuerier
    owner: SessionMachine
    key_pair: oprf.KeyPair | None = None
    ledger: FilterLedger | None = None


def make_pair(
    mode: Mode,
    *,
    x: Sequence[bytes] | None = None,
    y: Sequence[bytes] | None = None,
    seed: bytes = b"pair",
    session_id: bytes = SID,
    epoch: int = 1,
    owner_epoch: int | None = None,
    suite: Suite = Suite.OPRF_RISTRETTO255_SHA512,
    limits: Limits | None = None,
    owner_limits: Limits | None = None,
    replica: FilterReplica | None = None,
    ledger: FilterLedger | None = None,
    key_pair: oprf.KeyPair | None = None,
    fp_rate: float = 1e-6,
    owner_proofs: bool = True,
    querier_proofs: bool = True,
) -> Pair:
    """A querier with set ``x`` and an owner with set ``y`` (defaults overlap in 3 items)."""
    x = list(x) if x is not None else items("x", 4) + items("both", 3)
    y = list(y) if y is not None else items("y", 5) + items("both", 3)
    q_rng, o_rng = Drbg(seed + b"/querier"), Drbg(seed + b"/owner")
    oe = epoch if owner_epoch is None else owner_epoch
    ol = owner_limits or limits
    if mode is Mode.FILTER:
        kp = key_pair or oprf.derive_key_pair(bytes(32), b"test-epoch-key", oprf.MODE_VOPRF)
        led = ledger or build_ledger(kp, y, suite=suite, epoch=oe, fp_rate=fp_rate)
        owner = FilterOwner(
            session_id=session_id,
            epoch=oe,
            suite=suite,
            key_pair=kp,
            ledger=led,
            rng=o_rng,
            limits=ol,
            proofs=owner_proofs,
        )
        rep = replica or FilterReplica(suite=suite, epoch=epoch)
        querier = FilterQuerier(
            session_id=session_id,
            epoch=epoch,
            suite=suite,
            match_keys=x,
            replica=rep,
            rng=q_rng,
            limits=limits,
            owner_public_key=kp.pk,
            proofs=querier_proofs,
        )
        return Pair(querier=querier, owner=owner, key_pair=kp, ledger=led)
    if mode is Mode.MUTUAL:
        mo = MutualOwner(
            session_id=session_id,
            epoch=oe,
            elements=y,
            signing_key=OWNER_SIG,
            peer_key=QUERIER_SIG.public_key(),
            rng=o_rng,
            limits=ol,
        )
        mq = MutualQuerier(
            session_id=session_id,
            epoch=epoch,
            elements=x,
            signing_key=QUERIER_SIG,
            peer_key=OWNER_SIG.public_key(),
            rng=q_rng,
            limits=limits,
        )
        return Pair(querier=mq, owner=mo)
    co = CardinalityOwner(session_id=session_id, epoch=oe, elements=y, rng=o_rng, limits=ol)
    cq = CardinalityQuerier(
        session_id=session_id, epoch=epoch, elements=x, rng=q_rng, limits=limits
    )
    return Pair(querier=cq, owner=co)


def run_recorded(pair: Pair) -> list[tuple[str, bytes]]:
    """Run a pair to completion, one frame at a time; return every frame with its direction."""
    log: list[tuple[str, bytes]] = []
    outgoing = pair.querier.start()
    while outgoing:
        replies: list[bytes] = []
        for f in outgoing:
            log.append(("q2o", f))
            replies += pair.owner.receive(f)
        outgoing = []
        for f in replies:
            log.append(("o2q", f))
            outgoing += pair.querier.receive(f)
    return log
