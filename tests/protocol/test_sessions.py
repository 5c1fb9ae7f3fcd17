"""Session state machines: correctness on random sets, and every failure by its own class."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fiumatch.protocol import group, oprf
from fiumatch.protocol.errors import (
    DecodeError,
    InvalidElementError,
    LocalProtocolError,
    OutOfOrderError,
    OversizedMessageError,
    RemoteProtocolError,
    ReplayError,
    TruncatedMessageError,
    VerifyError,
    WrongEpochError,
    WrongModeError,
    WrongSessionError,
    WrongSuiteError,
)
from fiumatch.protocol.filters import FilterReplica
from fiumatch.protocol.psi import run_cardinality, run_filter, run_mutual
from fiumatch.protocol.sessions import (
    MUTUAL_SIGNATURE_DST,
    START,
    TRANSITIONS,
    FilterQuerier,
    FilterResult,
    MutualOwner,
    ResultMismatchError,
    Role,
    SessionMachine,
    State,
    add_to_ledger,
    build_ledger,
    evaluate_outputs,
    result_statement,
)
from fiumatch.protocol.wire import (
    ElementChunk,
    FilterChunk,
    FilterEnd,
    Finish,
    Header,
    Hello,
    HelloAck,
    Limits,
    Mode,
    MsgType,
    StreamEnd,
    Suite,
    decode_frame,
    element_width,
    encode_frame,
)
from tests.protocol.psi_support import (
    OWNER_SIG,
    QUERIER_SIG,
    SID,
    Drbg,
    Pair,
    items,
    make_pair,
    run_recorded,
)

UNIVERSE = items("universe", 40)
sets = st.lists(st.sampled_from(UNIVERSE), max_size=14)
SESSION_SETTINGS = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def plain(x: list[bytes], y: list[bytes]) -> list[bytes]:
    ys = set(y)
    return [e for e in dict.fromkeys(x) if e in ys]


# ---------------------------------------------------------------------------------------------
# Results equal the plain intersection


@SESSION_SETTINGS
@given(x=sets, y=sets, seed=st.binary(min_size=1, max_size=8))
def test_mutual_equals_plain_intersection(x: list[bytes], y: list[bytes], seed: bytes) -> None:
    run = run_mutual(y, x, rng=Drbg(seed))
    assert list(run.querier.intersection) == plain(x, y)
    assert list(run.owner.intersection) == plain(y, x)
    assert run.querier.count == run.owner.count == len(plain(x, y))
    assert run.querier.statement == run.owner.statement
    assert run.querier.peer_signature == run.owner.own_signature
    assert run.querier.peer_count == len(set(y)) and run.owner.peer_count == len(set(x))


@SESSION_SETTINGS
@given(x=sets, y=sets, seed=st.binary(min_size=1, max_size=8))
def test_cardinality_equals_plain_size(x: list[bytes], y: list[bytes], seed: bytes) -> None:
    run = run_cardinality(y, x, rng=Drbg(seed))
    assert run.querier.count == len(plain(x, y))
    assert run.querier.peer_count == len(set(y))
    assert run.owner.peer_count == len(set(x))


@SESSION_SETTINGS
@given(
    x=sets,
    y=sets,
    seed=st.binary(min_size=1, max_size=8),
    suite=st.sampled_from(list(Suite)),
    exact=st.booleans(),
)
def test_filter_finds_every_true_hit(
    x: list[bytes], y: list[bytes], seed: bytes, suite: Suite, exact: bool
) -> None:
    run = run_filter(y, x, rng=Drbg(seed), suite=suite, exact=exact, fp_rate=1e-6)
    truth = set(plain(x, y))
    assert truth <= set(run.querier.hits)
    assert set(run.querier.hits) <= set(x)
    assert [x[i] for i in run.querier.hit_indices] == list(run.querier.hits)
    # Each hit's token is the owner's own OPRF output for that key (what a disclosure names).
    assert len(run.querier.hit_outputs) == len(run.querier.hits)
    assert run.owner.evaluated == len(x)  # all the owner learns


def test_filter_false_positives_within_the_configured_bound() -> None:
    p, n_owner, n_probe = 0.02, 300, 1500
    owner = items("fp-owner", n_owner)
    probes = items("fp-probe", n_probe)  # none of them is the owner's
    run = run_filter(owner, probes, rng=Drbg(b"fp"), fp_rate=p)
    fps = len(run.querier.hits)
    assert run.querier.false_positive_rate <= p * 1.05
    # Binomial(n_probe, p): 5 standard deviations of margin.
    assert fps <= n_probe * p + 5 * math.sqrt(n_probe * p * (1 - p))
    assert fps > 0  # at this rate some false positives must show up


@pytest.mark.parametrize("mode", list(Mode))
def test_small_chunks_give_the_same_result(mode: Mode) -> None:
    limits = Limits(
        chunk_elements=2, max_chunk_elements=2, filter_chunk_bytes=64, max_frame_bytes=4096
    )
    x, y = items("x", 9) + items("both", 5), items("y", 6) + items("both", 5)
    pair = make_pair(mode, x=x, y=y, limits=limits)
    log = run_recorded(pair)
    assert len(log) > 15
    result = pair.querier.result
    assert result is not None
    assert getattr(result, "count", None) == 5 or len(getattr(result, "hits", ())) == 5


def test_filter_deltas_across_sessions() -> None:
    kp = oprf.derive_key_pair(bytes(32), b"delta-test", oprf.MODE_VOPRF)
    suite = Suite.OPRF_RISTRETTO255_SHA512
    ledger = build_ledger(
        kp, items("d-owner", 50), suite=suite, epoch=1, fp_rate=1e-6, capacity=100
    )
    replica = FilterReplica(suite=suite, epoch=1)
    first = make_pair(
        Mode.FILTER, x=items("d-owner", 3), ledger=ledger, key_pair=kp, replica=replica
    )
    run_recorded(first)
    assert replica.generation == 1
    new_keys = items("d-new", 5)
    add_to_ledger(ledger, kp, new_keys)
    second = make_pair(
        Mode.FILTER,
        x=[*new_keys[:2], b"absent", items("d-owner", 1)[0]],
        ledger=ledger,
        key_pair=kp,
        replica=replica,
        seed=b"second",
    )
    log = run_recorded(second)
    filter_bytes = 0
    for _, f in log:
        body = decode_frame(f).body
        if isinstance(body, FilterChunk):
            filter_bytes += len(body.data)
    base_bytes = len(ledger.objects_since(bytes(16), 0)[0])
    assert 0 < filter_bytes < base_bytes  # only the delta crossed
    assert replica.generation == 2 and replica.count == 55
    assert isinstance(second.querier, FilterQuerier) and second.querier.result is not None
    assert second.querier.result.hit_indices == (0, 1, 3)
    hits = second.querier.result.hits
    assert list(second.querier.result.hit_outputs) == evaluate_outputs(kp, list(hits), suite)


def test_capacity_error_leaves_the_ledger_unchanged() -> None:
    kp = oprf.derive_key_pair(bytes(32), b"cap-test", oprf.MODE_VOPRF)
    ledger = build_ledger(
        kp, items("c", 5), suite=Suite.OPRF_RISTRETTO255_SHA512, epoch=1, fp_rate=1e-3
    )
    with pytest.raises(LocalProtocolError):
        add_to_ledger(ledger, kp, items("more", 2))
    assert ledger.generation == 1 and ledger.count == 5
    outputs = evaluate_outputs(kp, items("more", 2), Suite.OPRF_RISTRETTO255_SHA512)
    assert not any(ledger.contains(o) for o in outputs)


# ---------------------------------------------------------------------------------------------
# Negative: every failure has its own error class


def _reframe(frame: bytes, **changes: object) -> bytes:
    """Re-encode ``frame`` with header fields and/or body replaced."""
    f = decode_frame(frame, Limits(max_elements=2**64 - 1))
    fields = {
        n: getattr(f.header, n) for n in ("msg_type", "mode", "suite", "epoch", "session_id", "seq")
    }
    body = changes.pop("body", f.body)
    fields.update(changes)
    return encode_frame(Header(**fields), body)  # type: ignore[arg-type]


def _hello(mode: Mode, **kw: object) -> tuple[Pair, bytes]:
    pair = make_pair(mode, **kw)  # type: ignore[arg-type]
    return pair, pair.querier.start()[0]


@pytest.mark.parametrize("mode", list(Mode))
def test_replayed_frame(mode: Mode) -> None:
    pair, hello = _hello(mode)
    pair.owner.receive(hello)
    with pytest.raises(ReplayError):
        pair.owner.receive(hello)


@pytest.mark.parametrize("mode", list(Mode))
def test_replayed_chunk_mid_stream(mode: Mode) -> None:
    pair = make_pair(mode)
    log = run_recorded(pair)
    fresh = make_pair(mode)
    fresh.querier.start()
    to_owner = [f for d, f in log if d == "q2o"]
    chunk = next(f for f in to_owner if decode_frame(f).header.msg_type is MsgType.QUERY_CHUNK)
    for f in to_owner:
        fresh.owner.receive(f)
        if f == chunk:
            break
    with pytest.raises(ReplayError):
        fresh.owner.receive(chunk)


@pytest.mark.parametrize("mode", list(Mode))
def test_out_of_order(mode: Mode) -> None:
    pair, hello = _hello(mode)
    early = _reframe(hello, msg_type=MsgType.QUERY_END, body=StreamEnd(total=0))
    with pytest.raises(OutOfOrderError):
        pair.owner.receive(early)
    pair, hello = _hello(mode)
    with pytest.raises(OutOfOrderError):  # seq skips ahead
        pair.owner.receive(_reframe(hello, seq=1))
    pair, hello = _hello(mode)
    ack = encode_frame(
        Header(
            msg_type=MsgType.EVAL_END,
            mode=mode,
            suite=pair.querier.suite,
            epoch=1,
            session_id=SID,
            seq=0,
        ),
        StreamEnd(total=0),
    )
    with pytest.raises(OutOfOrderError):
        pair.querier.receive(ack)


@pytest.mark.parametrize("mode", list(Mode))
def test_truncated(mode: Mode) -> None:
    pair, hello = _hello(mode)
    with pytest.raises(TruncatedMessageError):
        pair.owner.receive(hello[:-1])


@pytest.mark.parametrize("mode", list(Mode))
def test_oversized(mode: Mode) -> None:
    small = Limits(max_elements=4)
    pair, hello = _hello(mode, owner_limits=small, y=items("y", 3))
    with pytest.raises(OversizedMessageError):  # 7 announced, 4 allowed
        pair.owner.receive(hello)
    # More elements than the HELLO announced.
    pair = make_pair(mode)
    log = run_recorded(pair)
    fresh = make_pair(mode)
    fresh.querier.start()
    frames = [f for d, f in log if d == "q2o"]
    hello = _reframe(frames[0], body=_with_count(frames[0], 1))
    fresh.owner.receive(hello)
    chunk = next(f for f in frames if decode_frame(f).header.msg_type is MsgType.QUERY_CHUNK)
    with pytest.raises(OversizedMessageError):
        fresh.owner.receive(chunk)
    # A frame above max_frame_bytes.
    limits = Limits(max_frame_bytes=200_000, max_chunk_elements=4096, filter_chunk_bytes=65536)
    pair, hello = _hello(mode, owner_limits=limits)
    pair.owner.receive(hello)
    big = b"\x00\x10\x00\x00" + bytes(64)
    with pytest.raises(OversizedMessageError):
        pair.owner.receive(big)


def _with_count(frame: bytes, n: int) -> Hello:
    body = decode_frame(frame).body
    assert isinstance(body, Hello)
    return Hello(
        element_count=n, filter_id=body.filter_id, filter_generation=body.filter_generation
    )


@pytest.mark.parametrize("mode", list(Mode))
def test_wrong_session(mode: Mode) -> None:
    _, hello = _hello(mode)
    other = make_pair(mode, session_id=b"\x42" * 16)
    with pytest.raises(WrongSessionError):
        other.owner.receive(hello)


@pytest.mark.parametrize("mode", list(Mode))
def test_wrong_epoch(mode: Mode) -> None:
    pair, hello = _hello(mode, owner_epoch=2)
    with pytest.raises(WrongEpochError):
        pair.owner.receive(hello)


def test_wrong_mode_and_suite() -> None:
    _, hello = _hello(Mode.CARDINALITY)
    mutual = make_pair(Mode.MUTUAL)
    with pytest.raises(WrongModeError):
        mutual.owner.receive(hello)
    _, hello = _hello(Mode.FILTER, suite=Suite.OPRF_RISTRETTO255_SHA512)
    voprf = make_pair(Mode.FILTER, suite=Suite.VOPRF_RISTRETTO255_SHA512)
    with pytest.raises(WrongSuiteError):
        voprf.owner.receive(hello)


BAD_ELEMENTS = [group.IDENTITY, b"\xff" * 32, b"\x01" + bytes(31)]


@pytest.mark.parametrize("mode", list(Mode))
@pytest.mark.parametrize("bad", BAD_ELEMENTS)
def test_invalid_point_from_querier(mode: Mode, bad: bytes) -> None:
    pair, hello = _hello(mode)
    pair.owner.receive(hello)
    chunk = encode_frame(
        Header(
            msg_type=MsgType.QUERY_CHUNK,
            mode=mode,
            suite=pair.owner.suite,
            epoch=1,
            session_id=SID,
            seq=1,
        ),
        ElementChunk(count=1, elements=bad),
    )
    with pytest.raises(InvalidElementError):
        pair.owner.receive(chunk)
        # cardinality defers nothing: the chunk is multiplied on arrival


@pytest.mark.parametrize("mode", list(Mode))
@pytest.mark.parametrize("bad", BAD_ELEMENTS)
def test_invalid_point_from_owner(mode: Mode, bad: bytes) -> None:
    pair = make_pair(mode)
    log = run_recorded(pair)
    fresh = make_pair(mode)
    outgoing = fresh.querier.start()
    for direction, f in log:
        if direction != "o2q":
            continue
        h = decode_frame(f).header
        if h.msg_type is MsgType.EVAL_CHUNK:
            body = decode_frame(f).body
            assert isinstance(body, ElementChunk)
            tampered = ElementChunk(
                count=body.count, elements=bad + body.elements[32:], proof=body.proof
            )
            with pytest.raises(InvalidElementError):
                fresh.querier.receive(_reframe(f, body=tampered))
            return
        outgoing += fresh.querier.receive(f)
    pytest.fail("no EVAL_CHUNK in the session")


def _tamper_o2q(
    mode: Mode, msg_type: MsgType, edit: Callable[[object], object], **kw: object
) -> tuple[Pair, bytes]:
    """Replay a session into a fresh querier up to the first ``msg_type`` from the owner;
    return the pair and that frame with its body edited."""
    log = run_recorded(make_pair(mode, **kw))  # type: ignore[arg-type]
    fresh = make_pair(mode, **kw)  # type: ignore[arg-type]
    fresh.querier.start()
    for direction, f in log:
        if direction != "o2q":
            continue
        frame = decode_frame(f)
        if frame.header.msg_type is msg_type:
            return fresh, _reframe(f, body=edit(frame.body))
        fresh.querier.receive(f)
    raise AssertionError("message not found")


def test_voprf_tampered_evaluation_fails_the_proof() -> None:
    def swap(body: object) -> object:
        assert isinstance(body, ElementChunk)
        e = body.elements
        return ElementChunk(count=body.count, elements=e[32:64] + e[:32] + e[64:], proof=body.proof)

    pair, frame = _tamper_o2q(
        Mode.FILTER, MsgType.EVAL_CHUNK, swap, suite=Suite.VOPRF_RISTRETTO255_SHA512
    )
    with pytest.raises(VerifyError):
        pair.querier.receive(frame)


def test_voprf_missing_proof_and_unpinned_key() -> None:
    def strip(body: object) -> object:
        assert isinstance(body, ElementChunk)
        return ElementChunk(count=body.count, elements=body.elements)

    pair, frame = _tamper_o2q(
        Mode.FILTER, MsgType.EVAL_CHUNK, strip, suite=Suite.VOPRF_RISTRETTO255_SHA512
    )
    with pytest.raises(VerifyError):
        pair.querier.receive(frame)

    def other_key(body: object) -> object:
        assert isinstance(body, HelloAck)
        return HelloAck(
            element_count=body.element_count,
            filter_id=body.filter_id,
            filter_generation=body.filter_generation,
            public_key=group.scalar_mult_base(b"\x07" + bytes(31)),
        )

    pair, frame = _tamper_o2q(
        Mode.FILTER, MsgType.HELLO_ACK, other_key, suite=Suite.VOPRF_RISTRETTO255_SHA512
    )
    with pytest.raises(VerifyError):
        pair.querier.receive(frame)


def _drive(pair: Pair) -> list[bytes]:
    """Run a pair to the end; return every EVAL_CHUNK the owner sent."""
    evals: list[bytes] = []
    queue = list(pair.querier.start())
    while queue:
        replies = []
        for f in queue:
            for r in pair.owner.receive(f):
                if decode_frame(r).header.msg_type is MsgType.EVAL_CHUNK:
                    evals.append(r)
                replies.append(r)
        queue = [q for r in replies for q in pair.querier.receive(r)]
    return evals


def test_voprf_suite_without_proofs_finds_the_same_hits_with_no_proof_sent() -> None:
    """Proofs off (the agreement decides, SPEC §7.4): same suite, so the same outputs, filter
    and hits as with proofs; no EVAL_CHUNK carries a proof."""
    suite = Suite.VOPRF_RISTRETTO255_SHA512
    with_proofs = make_pair(Mode.FILTER, suite=suite)
    evals = _drive(with_proofs)
    assert evals and all(isinstance(decode_frame(e).body, ElementChunk) for e in evals)
    assert all(decode_frame(e).body.proof for e in evals)  # type: ignore[union-attr]
    without = make_pair(Mode.FILTER, suite=suite, owner_proofs=False, querier_proofs=False)
    evals = _drive(without)
    assert evals and not any(decode_frame(e).body.proof for e in evals)  # type: ignore[union-attr]
    a, b = with_proofs.querier.result, without.querier.result
    assert isinstance(a, FilterResult) and isinstance(b, FilterResult)
    assert a.hits == b.hits and len(a.hits) == 3 and a.hit_outputs == b.hit_outputs


def test_proofs_setting_mismatch_fails_each_way() -> None:
    suite = Suite.VOPRF_RISTRETTO255_SHA512
    # The querier requires proofs, the owner sends none: a missing proof.
    pair = make_pair(Mode.FILTER, suite=suite, owner_proofs=False, querier_proofs=True)
    with pytest.raises(VerifyError):
        _drive(pair)
    # The querier agreed to no proofs, the owner sends one: not what was agreed.
    pair = make_pair(Mode.FILTER, suite=suite, owner_proofs=True, querier_proofs=False)
    with pytest.raises(DecodeError):
        _drive(pair)


def test_mutual_owner_must_prove_its_evaluation() -> None:
    def strip(body: object) -> object:
        assert isinstance(body, ElementChunk)
        return ElementChunk(count=body.count, elements=body.elements)

    pair, frame = _tamper_o2q(Mode.MUTUAL, MsgType.EVAL_CHUNK, strip)
    with pytest.raises(VerifyError):
        pair.querier.receive(frame)

    def other_scalar(body: object) -> object:
        assert isinstance(body, ElementChunk)
        e = group.scalar_mult(b"\x03" + bytes(31), body.elements[:32])
        return ElementChunk(count=body.count, elements=e + body.elements[32:], proof=body.proof)

    pair, frame = _tamper_o2q(Mode.MUTUAL, MsgType.EVAL_CHUNK, other_scalar)
    with pytest.raises(VerifyError):
        pair.querier.receive(frame)


def test_mutual_bad_signature_and_count_mismatch() -> None:
    def bad_sig(body: object) -> object:
        assert isinstance(body, Finish)
        return Finish(
            intersection_count=body.intersection_count,
            signature=bytes([body.signature[0] ^ 1]) + body.signature[1:],
        )

    pair, frame = _tamper_o2q(Mode.MUTUAL, MsgType.FINISH_ACK, bad_sig)
    with pytest.raises(VerifyError):
        pair.querier.receive(frame)

    def bad_count(body: object) -> object:
        assert isinstance(body, Finish)
        return Finish(intersection_count=body.intersection_count + 1, signature=body.signature)

    pair, frame = _tamper_o2q(Mode.MUTUAL, MsgType.FINISH_ACK, bad_count)
    with pytest.raises(ResultMismatchError) as info:
        pair.querier.receive(frame)
    assert isinstance(info.value, VerifyError) and info.value.code == "result_mismatch"


def test_mutual_owner_checks_the_querier_finish() -> None:
    log = run_recorded(make_pair(Mode.MUTUAL))
    fresh = make_pair(Mode.MUTUAL)
    fresh.querier.start()
    for direction, f in log:
        if direction == "q2o":
            if decode_frame(f).header.msg_type is MsgType.FINISH:
                body = decode_frame(f).body
                assert isinstance(body, Finish)
                forged = Finish(intersection_count=body.intersection_count, signature=bytes(64))
                with pytest.raises(VerifyError):
                    fresh.owner.receive(_reframe(f, body=forged))
                return
            fresh.owner.receive(f)
    pytest.fail("no FINISH")


def test_failed_machine_refuses_everything_and_start_is_once() -> None:
    pair, hello = _hello(Mode.MUTUAL)
    with pytest.raises(TruncatedMessageError):
        pair.owner.receive(hello[:-2])
    assert pair.owner.state is State.FAILED
    with pytest.raises(LocalProtocolError):
        pair.owner.receive(hello)
    with pytest.raises(LocalProtocolError):
        pair.querier.start()


def test_constructor_refuses_our_own_mistakes() -> None:
    with pytest.raises(LocalProtocolError):
        make_pair(Mode.MUTUAL, session_id=b"short")
    with pytest.raises(LocalProtocolError):
        MutualOwner(
            session_id=SID,
            epoch=1,
            elements=[],
            signing_key=OWNER_SIG,
            peer_key=QUERIER_SIG.public_key(),
            rng=Drbg(b""),
            suite=Suite.VOPRF_RISTRETTO255_SHA512,
        )
    with pytest.raises(LocalProtocolError):
        FilterQuerier(
            session_id=SID,
            epoch=1,
            suite=Suite.OPRF_RISTRETTO255_SHA512,
            match_keys=[],
            replica=FilterReplica(suite=2, epoch=1),
            rng=Drbg(b""),
        )


# ---------------------------------------------------------------------------------------------
# Every (state, message type) pair the table does not allow is OutOfOrderError


def _sample_body(msg_type: MsgType, mode: Mode) -> object:
    if msg_type is MsgType.HELLO:
        return Hello(element_count=0)
    if msg_type is MsgType.HELLO_ACK:
        return HelloAck(element_count=0)
    if msg_type is MsgType.FILTER_CHUNK:
        return FilterChunk(data=b"x")
    if msg_type is MsgType.FILTER_END:
        return FilterEnd(object_count=0, total_bytes=0)
    if msg_type.name.endswith("_CHUNK"):
        return ElementChunk(count=1, elements=bytes(element_width(msg_type, mode)))
    if msg_type.name.endswith("_END"):
        return StreamEnd(total=0)
    return Finish(intersection_count=0, signature=bytes(64))


@pytest.mark.parametrize("mode", list(Mode))
@pytest.mark.parametrize("role", list(Role))
def test_every_disallowed_pair_is_out_of_order(mode: Mode, role: Role) -> None:
    log = run_recorded(make_pair(mode))
    incoming = [f for d, f in log if d == ("q2o" if role is Role.OWNER else "o2q")]
    checked = 0
    for step in range(len(incoming) + 1):
        # Rebuild the machine at this step once, then probe it with each disallowed type.
        for msg_type in MsgType:
            fresh = make_pair(mode)
            machine: SessionMachine = fresh.owner if role is Role.OWNER else fresh.querier
            if role is Role.QUERIER:
                fresh.querier.start()
            for f in incoming[:step]:
                machine.receive(f)
            if (mode, role, machine.state, msg_type) in TRANSITIONS:
                continue
            frame = encode_frame(
                Header(
                    msg_type=msg_type,
                    mode=mode,
                    suite=machine.suite,
                    epoch=1,
                    session_id=SID,
                    seq=step,
                ),
                _sample_body(msg_type, mode),  # type: ignore[arg-type]
            )
            with pytest.raises(OutOfOrderError):
                machine.receive(frame)
            checked += 1
    assert checked >= len(MsgType)


def test_the_table_is_consistent() -> None:
    for (_mode, role, state, inp), transition in TRANSITIONS.items():
        assert (inp == START) == (state is State.START and role is Role.QUERIER)
        assert state not in (State.DONE, State.FAILED)
        assert transition.next is not State.FAILED
    # Every mode has exactly one way to start and reaches DONE for both roles.
    for mode in Mode:
        assert sum(1 for k in TRANSITIONS if k[0] is mode and k[3] == START) == 1
        for role in Role:
            assert any(
                k[0] is mode and k[1] is role and t.next is State.DONE
                for k, t in TRANSITIONS.items()
            )


def test_machines_send_what_the_table_says() -> None:
    for mode in Mode:
        pair = make_pair(mode)
        log = run_recorded(pair)
        types = [(d, decode_frame(f).header.msg_type) for d, f in log]
        assert types[0] == ("q2o", MsgType.HELLO)
        assert pair.querier.state is State.DONE and pair.owner.state is State.DONE
        senders = {t: d for d, t in types}
        for (m, role, _s, _i), transition in TRANSITIONS.items():
            if m is not mode:
                continue
            for sent in transition.sends:
                if sent in senders:
                    assert senders[sent] == ("q2o" if role is Role.QUERIER else "o2q")


# ---------------------------------------------------------------------------------------------
# Fuzz: whatever arrives, a machine raises a remote protocol error or carries on


@settings(max_examples=60, deadline=None)
@given(
    mode=st.sampled_from(list(Mode)),
    data=st.data(),
)
def test_fuzz_machines_on_mutated_frames(mode: Mode, data: st.DataObject) -> None:
    log = run_recorded(make_pair(mode))
    fresh = make_pair(mode)
    fresh.querier.start()
    target = data.draw(st.integers(0, len(log) - 1))
    for i, (direction, f) in enumerate(log):
        machine = fresh.owner if direction == "q2o" else fresh.querier
        if i == target:
            mutated = bytearray(f)
            for pos, val in data.draw(
                st.lists(
                    st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=3
                )
            ):
                mutated[pos % len(mutated)] = val
            try:
                machine.receive(bytes(mutated))
            except RemoteProtocolError as exc:
                assert exc.code
                assert machine.state is State.FAILED
            return
        machine.receive(f)


@settings(max_examples=60, deadline=None)
@given(mode=st.sampled_from(list(Mode)), junk=st.binary(max_size=120))
def test_fuzz_owner_on_random_bytes(mode: Mode, junk: bytes) -> None:
    pair = make_pair(mode)
    with pytest.raises(RemoteProtocolError):
        pair.owner.receive(junk)


def test_the_signed_statement_verifies_with_both_keys() -> None:
    run = run_mutual(
        items("a", 3),
        items("a", 2),
        rng=Drbg(b"stmt"),
        owner_signing_key=OWNER_SIG,
        querier_signing_key=QUERIER_SIG,
    )
    statement = run.querier.statement
    OWNER_SIG.public_key().verify(run.querier.peer_signature, statement)
    QUERIER_SIG.public_key().verify(run.owner.peer_signature, statement)
    expected = result_statement(
        session_id=statement[1 + len(MUTUAL_SIGNATURE_DST) : 17 + len(MUTUAL_SIGNATURE_DST)],
        suite=Suite.OPRF_RISTRETTO255_SHA512,
        epoch=1,
        querier_key=QUERIER_SIG.public_key().public_bytes_raw(),
        owner_key=OWNER_SIG.public_key().public_bytes_raw(),
        transcript_hash=run.querier.transcript_hash,
        intersection_count=2,
    )
    assert statement == expected
    assert run.owner.transcript_hash == run.querier.transcript_hash


# ---------------------------------------------------------------------------------------------
# SPEC.md says what the code does


SPEC = (Path(__file__).resolve().parents[2] / "protocol" / "SPEC.md").read_text()


def test_spec_state_table_is_the_code_table() -> None:
    rows = set()
    for line in SPEC.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0] in ("filter", "mutual", "cardinality"):
            rows.add(tuple(cells))
    code = set()
    for (mode, role, state, inp), t in TRANSITIONS.items():
        sends = ", ".join(s.name for s in t.sends) or "—"
        name = inp if isinstance(inp, str) else inp.name
        code.add((mode.name.lower(), role.value, state.name, name, t.next.name, sends))
    assert rows == code


def test_spec_lists_every_domain_separation_string_and_error_code() -> None:
    from fiumatch.protocol import errors, filters
    from fiumatch.protocol.sessions import (
        CARDINALITY_H2G_DST,
        CARDINALITY_TAG_DST,
        MUTUAL_H2G_DST,
        MUTUAL_TAG_DST,
        TRANSCRIPT_DST,
    )

    for dst in (
        CARDINALITY_H2G_DST,
        CARDINALITY_TAG_DST,
        MUTUAL_H2G_DST,
        MUTUAL_TAG_DST,
        TRANSCRIPT_DST,
        MUTUAL_SIGNATURE_DST,
        filters.FILTER_ID_DST,
    ):
        assert f"`{dst.decode()}`" in SPEC
    codes = {
        c.code
        for c in vars(errors).values()
        if isinstance(c, type) and issubclass(c, errors.ProtocolError)
    }
    codes.add(ResultMismatchError.code)
    for code in codes:
        assert f"| `{code}` |" in SPEC, code
    assert "## 13. Subject normalisation and match keys\n" in SPEC
    assert "## 14. HTTP binding\n" in SPEC


def test_public_names_exist() -> None:
    from fiumatch.protocol import psi, sessions

    for module in (sessions, psi):
        for name in module.__all__:
            assert hasattr(module, name), (module.__name__, name)
