#!/usr/bin/env python3
"""Generate fiumatch's protocol vectors (SPEC.md §11) from seeded, deterministic randomness.

Writes, next to this file:

* ``filter.json``, ``mutual.json``, ``cardinality.json``: whole sessions, every frame in hex
  with its direction and type, the inputs that produced them and the result each side gets;
* ``negative.json``: frames that a machine, brought to a given point of one of those sessions,
  must refuse, each naming the ``code`` of the error class it must raise.

Randomness: every party draws from its own SHA-256 counter DRBG (``Drbg``), seeded from the
case. The generator uses only the public API of ``fiumatch.protocol``; ``build_machines`` is
imported by ``tests/protocol/test_protocol_vectors.py`` so the replay builds the parties exactly
as here. Run ``python protocol/vectors/generate.py`` (or ``make vectors``); ``--check`` exits 1
if the checked-in files differ from what this code generates.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fiumatch.protocol import group, keys
from fiumatch.protocol.errors import ProtocolError
from fiumatch.protocol.filters import FilterReplica
from fiumatch.protocol.sessions import (
    CardinalityOwner,
    CardinalityQuerier,
    FilterOwner,
    FilterQuerier,
    MutualOwner,
    MutualQuerier,
    SessionMachine,
    add_to_ledger,
    build_ledger,
)
from fiumatch.protocol.wire import (
    ElementChunk,
    Finish,
    Header,
    Hello,
    Mode,
    StreamEnd,
    Suite,
    decode_frame,
    encode_frame,
)

HERE = Path(__file__).resolve().parent
Case = dict[str, Any]


class Drbg:
    """SHA-256 counter DRBG. Each call ``rng(n)`` returns the first ``n`` bytes of
    ``SHA-256(seed || I2OSP(c, 8)) || SHA-256(seed || I2OSP(c+1, 8)) || ...`` and moves the
    counter past every block it used (leftover bytes of the last block are discarded)."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._counter = 0

    def __call__(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            out += hashlib.sha256(self._seed + self._counter.to_bytes(8, "big")).digest()
            self._counter += 1
        return bytes(out[:n])


def _items(tag: str, n: int) -> list[str]:
    return [hashlib.sha256(f"{tag}/{i}".encode()).hexdigest()[:40] for i in range(n)]


# ---------------------------------------------------------------------------------------------
# Cases (inputs only; everything else is computed)

CASES: dict[str, list[Case]] = {
    "filter": [
        {
            "name": "filter-oprf-bloom",
            "mode": "filter",
            "suite": int(Suite.OPRF_RISTRETTO255_SHA512),
            "epoch": 7,
            "session_id": "f1" * 16,
            "querier_rng_seed": b"filter-oprf-bloom/querier".hex(),
            "owner_rng_seed": b"filter-oprf-bloom/owner".hex(),
            "querier_set": _items("q", 3) + _items("common", 2),
            "owner_set": _items("o", 4) + _items("common", 2),
            "filter": {
                "master_secret": "5e" * 32,
                "peer_id": "fiu-querier",
                "fp_rate": 1e-3,
                "exact": False,
                "capacity": 16,
                "seed": 0,
                "querier_has_generation": 0,
                "owner_added": [],
            },
        },
        {
            "name": "filter-voprf-exact",
            "mode": "filter",
            "suite": int(Suite.VOPRF_RISTRETTO255_SHA512),
            "epoch": 8,
            "session_id": "f2" * 16,
            "querier_rng_seed": b"filter-voprf-exact/querier".hex(),
            "owner_rng_seed": b"filter-voprf-exact/owner".hex(),
            "querier_set": _items("q", 2) + _items("common", 3),
            "owner_set": _items("o", 3) + _items("common", 3),
            "filter": {
                "master_secret": "6f" * 32,
                "peer_id": "fiu-querier",
                "fp_rate": 1e-6,
                "exact": True,
                "capacity": 16,
                "seed": 0,
                "querier_has_generation": 0,
                "owner_added": [],
            },
        },
        {
            "name": "filter-voprf-bloom-noproofs",
            "mode": "filter",
            "suite": int(Suite.VOPRF_RISTRETTO255_SHA512),
            "epoch": 10,
            "session_id": "f4" * 16,
            "querier_rng_seed": b"filter-voprf-bloom-noproofs/querier".hex(),
            "owner_rng_seed": b"filter-voprf-bloom-noproofs/owner".hex(),
            "querier_set": _items("q", 3) + _items("common", 2),
            "owner_set": _items("o", 2) + _items("common", 2),
            "filter": {
                "master_secret": "8b" * 32,
                "peer_id": "fiu-querier",
                "fp_rate": 1e-6,
                "exact": False,
                "capacity": 16,
                "seed": 0,
                "querier_has_generation": 0,
                "owner_added": [],
                "proofs": False,
            },
        },
        {
            "name": "filter-oprf-bloom-delta",
            "mode": "filter",
            "suite": int(Suite.OPRF_RISTRETTO255_SHA512),
            "epoch": 9,
            "session_id": "f3" * 16,
            "querier_rng_seed": b"filter-oprf-bloom-delta/querier".hex(),
            "owner_rng_seed": b"filter-oprf-bloom-delta/owner".hex(),
            "querier_set": _items("q", 2) + _items("added", 1) + _items("common", 1),
            "owner_set": _items("o", 3) + _items("common", 1),
            "filter": {
                "master_secret": "7a" * 32,
                "peer_id": "fiu-querier",
                "fp_rate": 1e-4,
                "exact": False,
                "capacity": 64,
                "seed": 12345,
                "querier_has_generation": 1,
                "owner_added": _items("added", 2),
            },
        },
    ],
    "mutual": [
        {
            "name": "mutual",
            "mode": "mutual",
            "suite": int(Suite.OPRF_RISTRETTO255_SHA512),
            "epoch": 3,
            "session_id": "a1" * 16,
            "querier_rng_seed": b"mutual/querier".hex(),
            "owner_rng_seed": b"mutual/owner".hex(),
            "querier_set": _items("q", 3) + _items("common", 3),
            "owner_set": _items("o", 2) + _items("common", 3),
            "querier_signing_seed": "51" * 32,
            "owner_signing_seed": "52" * 32,
        },
    ],
    "cardinality": [
        {
            "name": "cardinality",
            "mode": "cardinality",
            "suite": int(Suite.OPRF_RISTRETTO255_SHA512),
            "epoch": 4,
            "session_id": "c1" * 16,
            "querier_rng_seed": b"cardinality/querier".hex(),
            "owner_rng_seed": b"cardinality/owner".hex(),
            "querier_set": _items("q", 4) + _items("common", 2),
            "owner_set": _items("o", 3) + _items("common", 2),
        },
    ],
}


def build_machines(case: Case) -> tuple[SessionMachine, SessionMachine]:
    """``(querier, owner)`` for a case, in their initial states."""
    mode = Mode[case["mode"].upper()]
    suite = Suite(case["suite"])
    epoch = case["epoch"]
    sid = bytes.fromhex(case["session_id"])
    q_rng = Drbg(bytes.fromhex(case["querier_rng_seed"]))
    o_rng = Drbg(bytes.fromhex(case["owner_rng_seed"]))
    xs = [bytes.fromhex(v) for v in case["querier_set"]]
    ys = [bytes.fromhex(v) for v in case["owner_set"]]
    if mode is Mode.FILTER:
        f = case["filter"]
        key_pair = keys.derive_epoch_key(bytes.fromhex(f["master_secret"]), f["peer_id"], epoch)
        ledger = build_ledger(
            key_pair,
            ys,
            suite=suite,
            epoch=epoch,
            fp_rate=f["fp_rate"],
            capacity=f["capacity"],
            exact=f["exact"],
            seed=f["seed"],
        )
        replica = FilterReplica(suite=suite, epoch=epoch)
        if f["querier_has_generation"]:
            for obj in ledger.objects_since(bytes(16), 0)[: f["querier_has_generation"]]:
                replica.apply(obj)
        if f["owner_added"]:
            add_to_ledger(ledger, key_pair, [bytes.fromhex(v) for v in f["owner_added"]])
        proofs = bool(f.get("proofs", True))  # VOPRF suite: proofs on unless the case says
        owner: SessionMachine = FilterOwner(
            session_id=sid,
            epoch=epoch,
            suite=suite,
            key_pair=key_pair,
            ledger=ledger,
            rng=o_rng,
            proofs=proofs,
        )
        querier: SessionMachine = FilterQuerier(
            session_id=sid,
            epoch=epoch,
            suite=suite,
            match_keys=xs,
            replica=replica,
            rng=q_rng,
            owner_public_key=key_pair.pk,
            proofs=proofs,
        )
        return querier, owner
    if mode is Mode.MUTUAL:
        qkey = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(case["querier_signing_seed"]))
        okey = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(case["owner_signing_seed"]))
        querier = MutualQuerier(
            session_id=sid,
            epoch=epoch,
            elements=xs,
            signing_key=qkey,
            peer_key=okey.public_key(),
            rng=q_rng,
        )
        owner = MutualOwner(
            session_id=sid,
            epoch=epoch,
            elements=ys,
            signing_key=okey,
            peer_key=qkey.public_key(),
            rng=o_rng,
        )
        return querier, owner
    return (
        CardinalityQuerier(session_id=sid, epoch=epoch, elements=xs, rng=q_rng),
        CardinalityOwner(session_id=sid, epoch=epoch, elements=ys, rng=o_rng),
    )


def run_case(case: Case) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """Run a case: its frames (one at a time, replies delivered after each turn) and results."""
    querier, owner = build_machines(case)
    frames: list[dict[str, str]] = []

    def record(direction: str, frame: bytes) -> None:
        t = decode_frame(frame).header.msg_type.name
        frames.append({"dir": direction, "type": t, "hex": frame.hex()})

    outgoing = querier.start()  # type: ignore[attr-defined]
    while outgoing:
        replies: list[bytes] = []
        for f in outgoing:
            record("q2o", f)
            replies += owner.receive(f)
        outgoing = []
        for f in replies:
            record("o2q", f)
            outgoing += querier.receive(f)
    return frames, describe_results(querier, owner)


def describe_results(querier: SessionMachine, owner: SessionMachine) -> dict[str, Any]:
    """The results as JSON values (what a replay must reproduce)."""
    q, o = querier.result, owner.result  # type: ignore[attr-defined]
    if isinstance(querier, FilterQuerier):
        return {
            "querier": {
                "hit_indices": list(q.hit_indices),
                "owner_count": q.owner_count,
                "filter_id": q.filter_id.hex(),
                "filter_generation": q.filter_generation,
            },
            "owner": {"evaluated": o.evaluated},
        }
    if isinstance(querier, MutualQuerier):
        return {
            side: {
                "intersection": [e.hex() for e in r.intersection],
                "count": r.count,
                "transcript_hash": r.transcript_hash.hex(),
                "statement": r.statement.hex(),
                "own_signature": r.own_signature.hex(),
            }
            for side, r in (("querier", q), ("owner", o))
        }
    return {
        "querier": {"count": q.count, "peer_count": q.peer_count},
        "owner": {"peer_count": o.peer_count},
    }


# ---------------------------------------------------------------------------------------------
# Negative vectors


def _reframe(frame: bytes, **changes: Any) -> bytes:
    from fiumatch.protocol.wire import Limits

    f = decode_frame(frame, Limits(max_elements=2**64 - 1))
    fields = {
        n: getattr(f.header, n) for n in ("msg_type", "mode", "suite", "epoch", "session_id", "seq")
    }
    body = changes.pop("body", f.body)
    fields.update(changes)
    return encode_frame(Header(**fields), body)


def _find(frames: list[dict[str, str]], direction: str, msg_type: str) -> tuple[int, bytes]:
    """Index among ``direction``'s frames, and bytes, of the first frame of ``msg_type``."""
    k = 0
    for f in frames:
        if f["dir"] != direction:
            continue
        if f["type"] == msg_type:
            return k, bytes.fromhex(f["hex"])
        k += 1
    raise LookupError(msg_type)


def negative_cases(runs: dict[str, tuple[Case, list[dict[str, str]]]]) -> list[dict[str, Any]]:
    """Each: a session case, the role attacked, how many of the frames that role receives in
    that session to deliver first (``deliver``), then ``frame``, which must raise ``error``."""
    out: list[dict[str, Any]] = []

    def add(
        name: str, case: str, role: str, deliver: int, frame: bytes, error: str, why: str
    ) -> None:
        out.append(
            {
                "name": name,
                "case": case,
                "role": role,
                "deliver": deliver,
                "frame": frame.hex(),
                "error": error,
                "description": why,
            }
        )

    _, ffr = runs["filter-oprf-bloom"]
    _, hello = _find(ffr, "q2o", "HELLO")
    add(
        "truncated-hello",
        "filter-oprf-bloom",
        "owner",
        0,
        hello[:-1],
        "truncated_message",
        "HELLO one byte short of its length prefix",
    )
    add(
        "trailing-data",
        "filter-oprf-bloom",
        "owner",
        0,
        hello + b"\x00",
        "trailing_data",
        "a byte after a complete frame",
    )
    add(
        "oversized-frame",
        "filter-oprf-bloom",
        "owner",
        0,
        (2**31).to_bytes(4, "big") + hello[4:],
        "oversized_message",
        "length prefix above max_frame_bytes (default 2^23)",
    )
    too_many = _reframe(hello, body=Hello(element_count=2**20 + 1))
    add(
        "oversized-announced-set",
        "filter-oprf-bloom",
        "owner",
        0,
        too_many,
        "oversized_message",
        "HELLO announces more elements than max_elements (default 2^20)",
    )
    bad_version = hello[:6] + b"\x02" + hello[7:]
    add(
        "unknown-version",
        "filter-oprf-bloom",
        "owner",
        0,
        bad_version,
        "unknown_version",
        "wire version 2",
    )
    add(
        "unknown-type",
        "filter-oprf-bloom",
        "owner",
        0,
        hello[:7] + b"\x7f" + hello[8:],
        "unknown_version",
        "message type 0x7f",
    )
    add(
        "wrong-session",
        "filter-oprf-bloom",
        "owner",
        0,
        _reframe(hello, session_id=b"\xee" * 16),
        "wrong_session",
        "another session id",
    )
    add(
        "wrong-epoch",
        "filter-oprf-bloom",
        "owner",
        0,
        _reframe(hello, epoch=6),
        "wrong_epoch",
        "epoch 6 in a session of epoch 7",
    )
    add(
        "wrong-mode",
        "filter-oprf-bloom",
        "owner",
        0,
        _reframe(hello, mode=Mode.CARDINALITY, body=Hello(element_count=5)),
        "wrong_mode",
        "a cardinality HELLO sent to a filter session",
    )
    add(
        "wrong-suite",
        "filter-oprf-bloom",
        "owner",
        0,
        _reframe(hello, suite=Suite.VOPRF_RISTRETTO255_SHA512),
        "wrong_suite",
        "VOPRF suite in an OPRF session",
    )
    add(
        "replayed-hello",
        "filter-oprf-bloom",
        "owner",
        1,
        hello,
        "replay",
        "the HELLO delivered a second time",
    )
    k, qend = _find(ffr, "q2o", "QUERY_END")
    add(
        "out-of-order-end",
        "filter-oprf-bloom",
        "owner",
        0,
        _reframe(qend, seq=0),
        "out_of_order",
        "QUERY_END (seq 0) before any HELLO",
    )
    add(
        "seq-skips-ahead",
        "filter-oprf-bloom",
        "owner",
        1,
        _reframe(qend, seq=5),
        "out_of_order",
        "seq 5 where 1 is expected",
    )
    add(
        "stream-total-too-big",
        "filter-oprf-bloom",
        "owner",
        k,
        _reframe(qend, body=StreamEnd(total=6)),
        "truncated_message",
        "QUERY_END says 6 elements; 5 arrived",
    )
    k, eval_chunk = _find(ffr, "o2q", "EVAL_CHUNK")
    body = decode_frame(eval_chunk).body
    assert isinstance(body, ElementChunk)
    add(
        "identity-in-eval",
        "filter-oprf-bloom",
        "querier",
        k,
        _reframe(
            eval_chunk,
            body=ElementChunk(count=body.count, elements=group.IDENTITY + body.elements[32:]),
        ),
        "invalid_element",
        "the identity element in an EVAL_CHUNK",
    )
    k, fchunk = _find(ffr, "o2q", "FILTER_CHUNK")
    fb = decode_frame(fchunk).body
    from fiumatch.protocol.wire import FilterChunk

    assert isinstance(fb, FilterChunk)
    corrupt = fb.data[:15] + bytes([fb.data[15] ^ 1]) + fb.data[16:]
    add(
        "filter-id-mismatch",
        "filter-oprf-bloom",
        "querier",
        k,
        _reframe(fchunk, body=FilterChunk(data=corrupt)),
        "filter_error",
        "the base filter object's id does not match its contents",
    )

    _, vfr = runs["filter-voprf-exact"]
    k, eval_chunk = _find(vfr, "o2q", "EVAL_CHUNK")
    body = decode_frame(eval_chunk).body
    assert isinstance(body, ElementChunk)
    swapped = body.elements[32:64] + body.elements[:32] + body.elements[64:]
    add(
        "voprf-proof-fails",
        "filter-voprf-exact",
        "querier",
        k,
        _reframe(
            eval_chunk, body=ElementChunk(count=body.count, elements=swapped, proof=body.proof)
        ),
        "verify_failed",
        "two evaluated elements swapped: the DLEQ proof no longer verifies",
    )

    # The same session agreed without proofs: a proof where none was agreed is refused, and
    # so is, in the proved session, an evaluation whose proof was left out.
    _, nfr = runs["filter-voprf-bloom-noproofs"]
    k, eval_chunk = _find(nfr, "o2q", "EVAL_CHUNK")
    body = decode_frame(eval_chunk).body
    assert isinstance(body, ElementChunk) and not body.proof
    _, proved_chunk = _find(vfr, "o2q", "EVAL_CHUNK")
    proved = decode_frame(proved_chunk).body
    assert isinstance(proved, ElementChunk)
    add(
        "proof-where-none-agreed",
        "filter-voprf-bloom-noproofs",
        "querier",
        k,
        _reframe(
            eval_chunk,
            body=ElementChunk(count=body.count, elements=body.elements, proof=proved.proof),
        ),
        "decode_error",
        "an EVAL_CHUNK carrying a proof in a session agreed without proofs",
    )
    k, eval_chunk = _find(vfr, "o2q", "EVAL_CHUNK")
    body = decode_frame(eval_chunk).body
    assert isinstance(body, ElementChunk)
    add(
        "proof-left-out",
        "filter-voprf-exact",
        "querier",
        k,
        _reframe(eval_chunk, body=ElementChunk(count=body.count, elements=body.elements)),
        "verify_failed",
        "an EVAL_CHUNK without its proof in a session agreed with proofs",
    )

    _, mfr = runs["mutual"]
    k, qchunk = _find(mfr, "q2o", "QUERY_CHUNK")
    body = decode_frame(qchunk).body
    assert isinstance(body, ElementChunk)
    add(
        "identity-in-query",
        "mutual",
        "owner",
        k,
        _reframe(
            qchunk,
            body=ElementChunk(count=body.count, elements=group.IDENTITY + body.elements[32:]),
        ),
        "invalid_element",
        "the identity element in a QUERY_CHUNK",
    )
    k, mev = _find(mfr, "o2q", "EVAL_CHUNK")
    body = decode_frame(mev).body
    assert isinstance(body, ElementChunk)
    other = group.scalar_mult(b"\x02" + bytes(31), body.elements[:32])
    add(
        "mutual-eval-other-scalar",
        "mutual",
        "querier",
        k,
        _reframe(
            mev,
            body=ElementChunk(
                count=body.count, elements=other + body.elements[32:], proof=body.proof
            ),
        ),
        "verify_failed",
        "one EVAL element not computed with the announced ephemeral key: the proof fails",
    )
    k, ack = _find(mfr, "o2q", "FINISH_ACK")
    fin = decode_frame(ack).body
    assert isinstance(fin, Finish)
    add(
        "mutual-bad-signature",
        "mutual",
        "querier",
        k,
        _reframe(
            ack,
            body=Finish(
                intersection_count=fin.intersection_count,
                signature=bytes([fin.signature[0] ^ 1]) + fin.signature[1:],
            ),
        ),
        "verify_failed",
        "FINISH_ACK signature with one bit flipped",
    )
    add(
        "mutual-count-mismatch",
        "mutual",
        "querier",
        k,
        _reframe(
            ack, body=Finish(intersection_count=fin.intersection_count + 1, signature=fin.signature)
        ),
        "result_mismatch",
        "FINISH_ACK reports a different intersection size",
    )

    _, cfr = runs["cardinality"]
    k, qchunk = _find(cfr, "q2o", "QUERY_CHUNK")
    body = decode_frame(qchunk).body
    assert isinstance(body, ElementChunk)
    add(
        "non-canonical-in-query",
        "cardinality",
        "owner",
        k,
        _reframe(
            qchunk, body=ElementChunk(count=body.count, elements=b"\xff" * 32 + body.elements[32:])
        ),
        "invalid_element",
        "a non-canonical encoding in a QUERY_CHUNK",
    )
    k, hello = _find(cfr, "q2o", "HELLO")
    add(
        "more-than-announced",
        "cardinality",
        "owner",
        1,
        _reframe(
            qchunk,
            body=ElementChunk(count=body.count + 1, elements=body.elements + body.elements[:32]),
        ),
        "oversized_message",
        "a QUERY_CHUNK with more elements than HELLO announced",
    )
    return out


# ---------------------------------------------------------------------------------------------


def _document(description: str, cases: list[Case]) -> str:
    doc = {
        "description": description,
        "generator": "protocol/vectors/generate.py",
        "spec": "protocol/SPEC.md",
        "wire_version": 1,
        "cases": cases,
    }
    return json.dumps(doc, indent=1, sort_keys=False) + "\n"


def generate() -> dict[str, str]:
    """File name -> contents of every vector file."""
    files: dict[str, str] = {}
    runs: dict[str, tuple[Case, list[dict[str, str]]]] = {}
    descriptions = {
        "filter": "Filter-mode sessions: querier learns which of its keys are in the owner's "
        "filter (SPEC.md §8.1).",
        "mutual": "Mutual-mode sessions: both learn the intersection and sign the transcript "
        "(SPEC.md §8.2).",
        "cardinality": "Cardinality-mode sessions: querier learns only the number of hits "
        "(SPEC.md §8.3).",
    }
    for mode, cases in CASES.items():
        full = []
        for case in cases:
            frames, results = run_case(case)
            runs[case["name"]] = (case, frames)
            full.append({**case, "frames": frames, "results": results})
        files[f"{mode}.json"] = _document(descriptions[mode], full)
    negatives = negative_cases(runs)
    for neg in negatives:  # a negative vector that does not fail as stated is a generator bug
        case, frames = runs[neg["case"]]
        got = check_negative(case, neg, frames)
        if got != neg["error"]:
            raise RuntimeError(f"negative vector {neg['name']}: raised {got!r}")
    files["negative.json"] = _document(
        "Frames a party must refuse, each with the error code it must raise (SPEC.md §10). "
        "Build the named case's parties, deliver the first `deliver` frames the `role` "
        "receives in that case, then `frame`.",
        negatives,
    )
    return files


def check_negative(case: Case, neg: dict[str, Any], frames: list[dict[str, str]]) -> str:
    """Replay one negative vector; return the code of the error raised ('' if none)."""
    querier, owner = build_machines(case)
    querier.start()  # type: ignore[attr-defined]
    target = owner if neg["role"] == "owner" else querier
    direction = "q2o" if neg["role"] == "owner" else "o2q"
    incoming = [bytes.fromhex(f["hex"]) for f in frames if f["dir"] == direction]
    for f in incoming[: neg["deliver"]]:
        target.receive(f)
    try:
        target.receive(bytes.fromhex(neg["frame"]))
    except ProtocolError as exc:
        return exc.code
    return ""


def main(argv: list[str]) -> int:
    files = generate()
    if "--check" in argv:
        stale = [n for n, text in files.items() if (HERE / n).read_text() != text]
        for n in stale:
            print(f"stale: {n}", file=sys.stderr)
        return 1 if stale else 0
    for name, text in files.items():
        (HERE / name).write_text(text)
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
