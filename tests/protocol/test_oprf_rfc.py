"""RFC 9497 Appendix A known answers for ristretto255-SHA512, modes 0 (OPRF) and 1 (VOPRF).

Source: tests/vectors/rfc9497-oprf-vectors.json (see tests/vectors/README.md). Every check
runs under both libsodium backends. Batched vectors hold comma-separated hex lists.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fiumatch.protocol import group, oprf
from fiumatch.protocol.errors import VerifyError

VECTOR_FILE = Path(__file__).resolve().parent.parent / "vectors" / "rfc9497-oprf-vectors.json"
SUITES: list[dict[str, Any]] = [
    entry
    for entry in json.loads(VECTOR_FILE.read_text())
    if entry["identifier"] == "ristretto255-SHA512" and entry["mode"] in (0, 1)
]
SUITE_CASES = [pytest.param(s, id=f"mode{s['mode']}") for s in SUITES]
VECTORS: list[tuple[dict[str, Any], dict[str, Any], str]] = [
    (s, v, f"mode{s['mode']}-vector{i}-batch{v['Batch']}")
    for s in SUITES
    for i, v in enumerate(s["vectors"])
]
VOPRF_VECTORS = [(s, v, name) for s, v, name in VECTORS if s["mode"] == oprf.MODE_VOPRF]
VECTOR_CASES = [pytest.param(s, v, id=name) for s, v, name in VECTORS]
VOPRF_CASES = [pytest.param(s, v, id=name) for s, v, name in VOPRF_VECTORS]


@pytest.fixture(params=group.BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    previous = group.use_backend(request.param)
    try:
        yield request.param
    finally:
        group.use_backend(previous)


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def hl(vector: dict[str, Any], name: str) -> list[bytes]:
    return [h(part) for part in vector[name].split(",")]


def key(suite: dict[str, Any]) -> oprf.KeyPair:
    return oprf.derive_key_pair(h(suite["seed"]), h(suite["keyInfo"]), suite["mode"])


def test_vector_file_has_the_expected_entries() -> None:
    # Guards against a parametrization that silently becomes empty.
    assert sorted(s["mode"] for s in SUITES) == [0, 1]
    assert len(VECTORS) == 5
    assert len(VOPRF_VECTORS) == 3
    assert any(v["Batch"] > 1 for _, v, _ in VOPRF_VECTORS)


@pytest.mark.parametrize("suite", SUITE_CASES)
def test_context_and_group_dst(suite: dict[str, Any]) -> None:
    mode = suite["mode"]
    assert oprf.context_string(mode) == b"OPRFV1-" + bytes([mode]) + b"-ristretto255-SHA512"
    assert h(suite["groupDST"]) == b"HashToGroup-" + oprf.context_string(mode)


@pytest.mark.parametrize("suite", SUITE_CASES)
def test_derive_key_pair(suite: dict[str, Any], backend: str) -> None:
    kp = key(suite)
    assert kp.sk.hex() == suite["skSm"]
    assert kp.pk == group.scalar_mult_base(kp.sk)
    if "pkSm" in suite:
        assert kp.pk.hex() == suite["pkSm"]


@pytest.mark.parametrize(("suite", "vector"), VECTOR_CASES)
def test_blind(suite: dict[str, Any], vector: dict[str, Any], backend: str) -> None:
    mode = suite["mode"]
    inputs, blinds = hl(vector, "Input"), hl(vector, "Blind")
    expected = hl(vector, "BlindedElement")
    assert len(inputs) == len(blinds) == len(expected) == vector["Batch"]
    got = [oprf.blind_with(x, r, mode) for x, r in zip(inputs, blinds, strict=True)]
    assert got == expected


@pytest.mark.parametrize(("suite", "vector"), VECTOR_CASES)
def test_blind_evaluate(suite: dict[str, Any], vector: dict[str, Any], backend: str) -> None:
    sk = key(suite).sk
    blinded, expected = hl(vector, "BlindedElement"), hl(vector, "EvaluationElement")
    assert [oprf.blind_evaluate(sk, b) for b in blinded] == expected
    assert oprf.blind_evaluate_many(sk, blinded) == expected


@pytest.mark.parametrize(("suite", "vector"), VECTOR_CASES)
def test_finalize(suite: dict[str, Any], vector: dict[str, Any], backend: str) -> None:
    mode = suite["mode"]
    inputs, blinds = hl(vector, "Input"), hl(vector, "Blind")
    evaluated, expected = hl(vector, "EvaluationElement"), hl(vector, "Output")
    got = [oprf.finalize(x, r, e, mode) for x, r, e in zip(inputs, blinds, evaluated, strict=True)]
    assert got == expected
    assert oprf.finalize_many(inputs, blinds, evaluated, mode) == expected
    assert all(len(o) == oprf.OUTPUT_LEN for o in got)


@pytest.mark.parametrize(("suite", "vector"), VECTOR_CASES)
def test_evaluate(suite: dict[str, Any], vector: dict[str, Any], backend: str) -> None:
    mode = suite["mode"]
    sk = key(suite).sk
    inputs, expected = hl(vector, "Input"), hl(vector, "Output")
    assert [oprf.evaluate(sk, x, mode) for x in inputs] == expected
    assert oprf.evaluate_many(sk, inputs, mode) == expected


@pytest.mark.parametrize(("suite", "vector"), VOPRF_CASES)
def test_generate_proof(suite: dict[str, Any], vector: dict[str, Any], backend: str) -> None:
    kp = key(suite)
    proof = oprf.generate_proof_with(
        kp.sk,
        kp.pk,
        hl(vector, "BlindedElement"),
        hl(vector, "EvaluationElement"),
        h(vector["Proof"]["r"]),
        oprf.MODE_VOPRF,
    )
    assert proof.hex() == vector["Proof"]["proof"]


@pytest.mark.parametrize(("suite", "vector"), VOPRF_CASES)
def test_verify_proof(suite: dict[str, Any], vector: dict[str, Any], backend: str) -> None:
    pk = h(suite["pkSm"])
    blinded, evaluated = hl(vector, "BlindedElement"), hl(vector, "EvaluationElement")
    proof = h(vector["Proof"]["proof"])
    oprf.verify_proof(pk, blinded, evaluated, proof, oprf.MODE_VOPRF)
    # The same proof under the OPRF context string must not verify: the DST is bound.
    with pytest.raises(VerifyError):
        oprf.verify_proof(pk, blinded, evaluated, proof, oprf.MODE_OPRF)


@pytest.mark.parametrize("bit", [0, 7, 100, 255, 256, 300, 511])
@pytest.mark.parametrize(("suite", "vector"), VOPRF_CASES)
def test_verify_proof_rejects_a_flipped_bit(
    suite: dict[str, Any], vector: dict[str, Any], bit: int, backend: str
) -> None:
    proof = bytearray(h(vector["Proof"]["proof"]))
    proof[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(VerifyError):
        oprf.verify_proof(
            h(suite["pkSm"]),
            hl(vector, "BlindedElement"),
            hl(vector, "EvaluationElement"),
            bytes(proof),
        )


@pytest.mark.parametrize(("suite", "vector"), VOPRF_CASES)
def test_verify_proof_rejects_another_key(
    suite: dict[str, Any], vector: dict[str, Any], backend: str
) -> None:
    other = oprf.derive_key_pair(bytes(32), b"other key", oprf.MODE_VOPRF)
    with pytest.raises(VerifyError):
        oprf.verify_proof(
            other.pk,
            hl(vector, "BlindedElement"),
            hl(vector, "EvaluationElement"),
            h(vector["Proof"]["proof"]),
        )


def test_batched_proof_is_bound_to_order(backend: str) -> None:
    suite, vector = next((s, v) for s, v, _ in VOPRF_VECTORS if v["Batch"] == 2)
    blinded, evaluated = hl(vector, "BlindedElement"), hl(vector, "EvaluationElement")
    proof = h(vector["Proof"]["proof"])
    with pytest.raises(VerifyError):
        oprf.verify_proof(h(suite["pkSm"]), blinded, evaluated[::-1], proof)
    with pytest.raises(VerifyError):
        oprf.verify_proof(h(suite["pkSm"]), blinded[::-1], evaluated[::-1], proof)
