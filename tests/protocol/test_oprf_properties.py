"""Properties of the OPRF/VOPRF core beyond the RFC vectors, under both backends."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fiumatch.protocol import group, oprf
from fiumatch.protocol.errors import (
    InvalidElementError,
    InvalidScalarError,
    LocalProtocolError,
    VerifyError,
)

MODES = st.sampled_from(oprf.MODES)
SEEDS = st.binary(min_size=32, max_size=32)
INPUTS = st.binary(max_size=200)


def rng_from(seed: int) -> Callable[[int], bytes]:
    """A deterministic test rng (tests only: production passes os.urandom or secrets)."""
    r = random.Random(seed)
    return r.randbytes


@pytest.fixture(params=group.BACKENDS, scope="module")
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    previous = group.use_backend(request.param)
    try:
        yield request.param
    finally:
        group.use_backend(previous)


def key(seed: bytes, mode: int = oprf.MODE_VOPRF) -> oprf.KeyPair:
    return oprf.derive_key_pair(seed, b"properties", mode)


# --- correctness ------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(data=INPUTS, seed=SEEDS, mode=MODES, rng_seed=st.integers())
def test_blind_evaluate_finalize_equals_evaluate(
    backend: str, data: bytes, seed: bytes, mode: int, rng_seed: int
) -> None:
    sk = key(seed).sk
    blind, blinded = oprf.blind(data, rng_from(rng_seed), mode)
    assert group.decode_element(blinded) == blinded
    output = oprf.finalize(data, blind, oprf.blind_evaluate(sk, blinded), mode)
    assert output == oprf.evaluate(sk, data, mode)
    assert len(output) == oprf.OUTPUT_LEN


@settings(max_examples=25, deadline=None)
@given(inputs=st.lists(INPUTS, max_size=8), seed=SEEDS, mode=MODES, rng_seed=st.integers())
def test_batch_functions_match_single_ones(
    backend: str, inputs: list[bytes], seed: bytes, mode: int, rng_seed: int
) -> None:
    sk = key(seed).sk
    blinds, blinded = oprf.blind_many(inputs, rng_from(rng_seed), mode)
    assert blinded == [oprf.blind_with(x, r, mode) for x, r in zip(inputs, blinds, strict=True)]
    evaluated = oprf.blind_evaluate_many(sk, blinded)
    assert evaluated == [oprf.blind_evaluate(sk, b) for b in blinded]
    outputs = oprf.finalize_many(inputs, blinds, evaluated, mode)
    assert outputs == oprf.evaluate_many(sk, inputs, mode)
    assert outputs == [oprf.evaluate(sk, x, mode) for x in inputs]


@settings(max_examples=25, deadline=None)
@given(data=INPUTS, seed=SEEDS)
def test_modes_and_keys_separate_outputs(backend: str, data: bytes, seed: bytes) -> None:
    sk = key(seed).sk
    other = key(bytes(32) if seed != bytes(32) else b"\x01" * 32).sk
    assert oprf.evaluate(sk, data, oprf.MODE_OPRF) != oprf.evaluate(sk, data, oprf.MODE_VOPRF)
    assert oprf.evaluate(sk, data, oprf.MODE_OPRF) != oprf.evaluate(other, data, oprf.MODE_OPRF)


def test_blinding_hides_the_input(backend: str) -> None:
    rng = rng_from(1)
    _, first = oprf.blind(b"same input", rng, oprf.MODE_OPRF)
    _, second = oprf.blind(b"same input", rng, oprf.MODE_OPRF)
    assert first != second


# --- batched proofs ----------------------------------------------------------------------------


@st.composite
def proof_batches(draw: st.DrawFn) -> tuple[bytes, list[bytes], int, int]:
    seed = draw(SEEDS)
    inputs = draw(st.lists(INPUTS, min_size=1, max_size=20))
    mode = draw(MODES)
    return seed, inputs, mode, draw(st.integers())


def make_batch(
    seed: bytes, inputs: list[bytes], mode: int, rng_seed: int
) -> tuple[oprf.KeyPair, list[bytes], list[bytes], bytes]:
    kp = key(seed)
    rng = rng_from(rng_seed)
    _, blinded = oprf.blind_many(inputs, rng, mode)
    evaluated = oprf.blind_evaluate_many(kp.sk, blinded)
    proof = oprf.generate_proof(kp.sk, kp.pk, blinded, evaluated, rng, mode)
    return kp, blinded, evaluated, proof


@settings(max_examples=20, deadline=None)
@given(batch=proof_batches(), data=st.data())
def test_batched_proof_verifies_and_binds_every_element(
    backend: str, batch: tuple[bytes, list[bytes], int, int], data: st.DataObject
) -> None:
    seed, inputs, mode, rng_seed = batch
    kp, blinded, evaluated, proof = make_batch(seed, inputs, mode, rng_seed)
    assert len(proof) == oprf.PROOF_LEN
    oprf.verify_proof(kp.pk, blinded, evaluated, proof, mode)

    n = len(evaluated)
    i = data.draw(st.integers(0, n - 1), label="replaced index")
    # Replace one evaluation with a valid element that is not sk * blinded[i].
    replaced = list(evaluated)
    replaced[i] = group.scalar_mult(group.scalar_add(kp.sk, (1).to_bytes(32, "little")), blinded[i])
    with pytest.raises(VerifyError):
        oprf.verify_proof(kp.pk, blinded, replaced, proof, mode)
    # Swap two evaluations (when they differ).
    if n >= 2:
        j = data.draw(st.integers(0, n - 1).filter(lambda j: j != i), label="swapped with")
        if evaluated[i] != evaluated[j]:
            swapped = list(evaluated)
            swapped[i], swapped[j] = swapped[j], swapped[i]
            with pytest.raises(VerifyError):
                oprf.verify_proof(kp.pk, blinded, swapped, proof, mode)
    # Drop the last pair: the proof covers the whole batch, not a prefix.
    if n >= 2:
        with pytest.raises(VerifyError):
            oprf.verify_proof(kp.pk, blinded[:-1], evaluated[:-1], proof, mode)
    # The proof is bound to its mode's context string.
    with pytest.raises(VerifyError):
        oprf.verify_proof(kp.pk, blinded, evaluated, proof, 1 - mode)


def test_fresh_proofs_differ_and_both_verify(backend: str) -> None:
    kp, blinded, evaluated, _ = make_batch(b"\x07" * 32, [b"a", b"b"], oprf.MODE_VOPRF, 3)
    p1 = oprf.generate_proof(kp.sk, kp.pk, blinded, evaluated, rng_from(10))
    p2 = oprf.generate_proof(kp.sk, kp.pk, blinded, evaluated, rng_from(11))
    assert p1 != p2
    oprf.verify_proof(kp.pk, blinded, evaluated, p1)
    oprf.verify_proof(kp.pk, blinded, evaluated, p2)


def test_a_proof_for_another_key_does_not_verify(backend: str) -> None:
    kp, blinded, _, _ = make_batch(b"\x07" * 32, [b"a", b"b"], oprf.MODE_VOPRF, 3)
    liar = key(b"\x08" * 32)
    evaluated = oprf.blind_evaluate_many(liar.sk, blinded)
    proof = oprf.generate_proof(liar.sk, liar.pk, blinded, evaluated, rng_from(1))
    oprf.verify_proof(liar.pk, blinded, evaluated, proof)
    with pytest.raises(VerifyError):
        oprf.verify_proof(kp.pk, blinded, evaluated, proof)


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda p: p[:63], id="short"),
        pytest.param(lambda p: p + b"\x00", id="long"),
        pytest.param(lambda p: b"", id="empty"),
        pytest.param(lambda p: group.ORDER.to_bytes(32, "little") + p[32:], id="c=order"),
        pytest.param(lambda p: p[:32] + group.ORDER.to_bytes(32, "little"), id="s=order"),
        pytest.param(lambda p: bytes(32) + p[32:], id="c=0"),
        pytest.param(lambda p: p[:32] + bytes(32), id="s=0"),
        pytest.param(lambda p: p[32:] + p[:32], id="c<->s"),
    ],
)
def test_malformed_proofs_raise_verify_error(
    backend: str, mangle: Callable[[bytes], bytes]
) -> None:
    kp, blinded, evaluated, proof = make_batch(b"\x07" * 32, [b"a", b"b"], oprf.MODE_VOPRF, 3)
    with pytest.raises(VerifyError):
        oprf.verify_proof(kp.pk, blinded, evaluated, mangle(proof))


def test_invalid_evaluated_element_raises_invalid_element(backend: str) -> None:
    kp, blinded, evaluated, proof = make_batch(b"\x07" * 32, [b"a", b"b"], oprf.MODE_VOPRF, 3)
    for bad in (bytes(32), b"\xff" * 32, evaluated[0][:31], evaluated[0][:31] + b"\x80"):
        with pytest.raises(InvalidElementError):
            oprf.verify_proof(kp.pk, blinded, [evaluated[0], bad], proof)


def test_batch_shape_errors(backend: str) -> None:
    kp, blinded, evaluated, proof = make_batch(b"\x07" * 32, [b"a", b"b"], oprf.MODE_VOPRF, 3)
    with pytest.raises(VerifyError):
        oprf.verify_proof(kp.pk, blinded, evaluated[:1], proof)
    with pytest.raises(LocalProtocolError):
        oprf.verify_proof(kp.pk, [], [], proof)
    with pytest.raises(LocalProtocolError):
        oprf.generate_proof(kp.sk, kp.pk, blinded, evaluated[:1], rng_from(1))
    with pytest.raises(LocalProtocolError):
        oprf.generate_proof(kp.sk, kp.pk, [], [], rng_from(1))


# --- caller errors -----------------------------------------------------------------------------


def test_inputs_longer_than_65535_bytes_are_local_errors(backend: str) -> None:
    sk = key(b"\x01" * 32).sk
    longest, too_long = b"x" * 65535, b"x" * 65536
    blind, blinded = oprf.blind(longest, rng_from(1), oprf.MODE_OPRF)
    evaluated = oprf.blind_evaluate(sk, blinded)
    assert oprf.finalize(longest, blind, evaluated, oprf.MODE_OPRF) == oprf.evaluate(
        sk, longest, oprf.MODE_OPRF
    )
    for call in (
        lambda: oprf.blind(too_long, rng_from(1), oprf.MODE_OPRF),
        lambda: oprf.blind_with(too_long, blind, oprf.MODE_OPRF),
        lambda: oprf.blind_many([b"ok", too_long], rng_from(1), oprf.MODE_OPRF),
        lambda: oprf.finalize(too_long, blind, evaluated, oprf.MODE_OPRF),
        lambda: oprf.finalize_many([too_long], [blind], [evaluated], oprf.MODE_OPRF),
        lambda: oprf.evaluate(sk, too_long, oprf.MODE_OPRF),
        lambda: oprf.evaluate_many(sk, [too_long], oprf.MODE_OPRF),
        lambda: oprf.derive_key_pair(b"\x01" * 32, too_long, oprf.MODE_OPRF),
    ):
        with pytest.raises(LocalProtocolError):
            call()


@pytest.mark.parametrize("mode", [2, -1, 256, None])
def test_unsupported_modes_are_local_errors(mode: int) -> None:
    with pytest.raises(LocalProtocolError):
        oprf.context_string(mode)
    with pytest.raises(LocalProtocolError):
        oprf.evaluate(key(b"\x01" * 32).sk, b"x", mode)
    with pytest.raises(LocalProtocolError):
        oprf.derive_key_pair(b"\x01" * 32, b"", mode)


def test_input_hashing_to_the_identity_is_refused(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # RFC 9497 InvalidInputError; unreachable without a SHA-512 preimage, so patch the map.
    monkeypatch.setattr(group, "hash_to_group", lambda msg, dst: group.IDENTITY)
    monkeypatch.setattr(
        group, "hash_to_group_many", lambda msgs, dst: [group.IDENTITY for _ in msgs]
    )
    sk = key(b"\x01" * 32).sk
    for call in (
        lambda: oprf.blind(b"x", rng_from(1), oprf.MODE_OPRF),
        lambda: oprf.blind_many([b"x"], rng_from(1), oprf.MODE_OPRF),
        lambda: oprf.evaluate(sk, b"x", oprf.MODE_OPRF),
        lambda: oprf.evaluate_many(sk, [b"x"], oprf.MODE_OPRF),
    ):
        with pytest.raises(LocalProtocolError):
            call()


def test_peer_elements_are_validated(backend: str) -> None:
    sk = key(b"\x01" * 32).sk
    blind, blinded = oprf.blind(b"x", rng_from(1), oprf.MODE_OPRF)
    for bad in (bytes(32), b"\xff" * 32, blinded[:31], blinded[:31] + bytes([blinded[31] | 0x80])):
        with pytest.raises(InvalidElementError):
            oprf.blind_evaluate(sk, bad)
        with pytest.raises(InvalidElementError):
            oprf.blind_evaluate_many(sk, [blinded, bad])
        with pytest.raises(InvalidElementError):
            oprf.finalize(b"x", blind, bad, oprf.MODE_OPRF)


def test_zero_blind_is_refused(backend: str) -> None:
    with pytest.raises(InvalidScalarError):
        oprf.blind_with(b"x", bytes(32), oprf.MODE_OPRF)
    _, blinded = oprf.blind(b"x", rng_from(1), oprf.MODE_OPRF)
    with pytest.raises(InvalidScalarError):
        oprf.finalize(b"x", bytes(32), blinded, oprf.MODE_OPRF)


def test_finalize_many_requires_equal_lengths(backend: str) -> None:
    blind, blinded = oprf.blind(b"x", rng_from(1), oprf.MODE_OPRF)
    with pytest.raises(LocalProtocolError):
        oprf.finalize_many([b"x", b"y"], [blind], [blinded], oprf.MODE_OPRF)


def test_derive_key_pair_needs_a_32_byte_seed() -> None:
    for seed in (b"", b"\x01" * 31, b"\x01" * 33):
        with pytest.raises(LocalProtocolError):
            oprf.derive_key_pair(seed, b"info", oprf.MODE_VOPRF)


def test_key_pair_repr_hides_sk() -> None:
    kp = key(b"\x01" * 32)
    assert kp.sk.hex() not in repr(kp) and repr(kp.sk) not in repr(kp)
