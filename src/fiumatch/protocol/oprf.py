"""RFC 9497 OPRF (mode 0) and VOPRF (mode 1) on the ristretto255-SHA512 suite.

This module owns the RFC 9497 algorithms (sections 2.2, 3.2, 3.3 and 4.1) as functions on
bytes: key derivation, blinding, blind evaluation, finalization, direct evaluation and the
batched DLEQ proof (GenerateProof / VerifyProof with ComputeCompositesFast / ComputeComposites).
It is checked byte for byte against the RFC's Appendix A vectors.

It must never do I/O, read clocks or use global randomness (``blind`` and ``generate_proof``
take the caller's ``rng``), and never put inputs, keys, blinds, elements or outputs in an error
message or a ``repr``.

Differences from the RFC's interface, all deliberate:

* VOPRF ``BlindEvaluate`` is split into ``blind_evaluate(_many)`` plus ``generate_proof``, and
  VOPRF ``Finalize`` into ``verify_proof`` plus ``finalize(_many)``: a VOPRF client must call
  ``verify_proof`` over the whole batch *before* it finalizes.
* ``finalize`` takes ``mode`` only to check it: the RFC's Finalize hash has no context string,
  so OPRF and VOPRF finalize identically (their HashToGroup DSTs differ, so outputs differ).
* ``evaluate`` is the RFC's OPRF-mode Evaluate; for mode 1 it is the same formula with the
  VOPRF context, i.e. the value a VOPRF client obtains from ``finalize``.

Errors: a bad element from the peer raises ``InvalidElementError`` (libsodium decodes every
element it multiplies); a proof that is malformed or does not verify raises ``VerifyError``;
caller mistakes (unknown mode, input over 65535 bytes, empty or mismatched batches, an input
that hashes to the identity: the RFC's InvalidInputError) raise ``LocalProtocolError``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from fiumatch.protocol import group
from fiumatch.protocol.errors import (
    InvalidScalarError,
    LocalProtocolError,
    VerifyError,
)

__all__ = [
    "MAX_BATCH",
    "MAX_INPUT_LEN",
    "MODES",
    "MODE_OPRF",
    "MODE_VOPRF",
    "OUTPUT_LEN",
    "PROOF_LEN",
    "SUITE_ID",
    "KeyPair",
    "blind",
    "blind_evaluate",
    "blind_evaluate_many",
    "blind_many",
    "blind_with",
    "context_string",
    "derive_key_pair",
    "evaluate",
    "evaluate_many",
    "finalize",
    "finalize_many",
    "generate_proof",
    "generate_proof_with",
    "verify_proof",
]

MODE_OPRF: Final = 0
MODE_VOPRF: Final = 1
MODES: Final = (MODE_OPRF, MODE_VOPRF)
SUITE_ID: Final = b"ristretto255-SHA512"
OUTPUT_LEN: Final = 64  # Nh, SHA-512
PROOF_LEN: Final = 2 * group.SCALAR_LEN  # c || s
SEED_LEN: Final = 32  # Ns
MAX_INPUT_LEN: Final = 65535  # inputs and key info are framed with I2OSP(len, 2)
MAX_BATCH: Final = 65536  # ComputeComposites frames the index with I2OSP(i, 2)

_I2OSP_ELEMENT_LEN: Final = group.ELEMENT_LEN.to_bytes(2, "big")


def context_string(mode: int) -> bytes:
    """``"OPRFV1-" || I2OSP(mode, 1) || "-" || "ristretto255-SHA512"`` (RFC 9497 3.1)."""
    if mode not in MODES:
        raise LocalProtocolError("unsupported OPRF mode; expected 0 (OPRF) or 1 (VOPRF)")
    return b"OPRFV1-" + bytes((mode,)) + b"-" + SUITE_ID


@dataclass(frozen=True, slots=True)
class _Suite:
    context: bytes
    hash_to_group_dst: bytes
    hash_to_scalar_dst: bytes
    derive_key_pair_dst: bytes
    seed_dst: bytes


def _make_suite(mode: int) -> _Suite:
    ctx = context_string(mode)
    return _Suite(
        context=ctx,
        hash_to_group_dst=b"HashToGroup-" + ctx,
        hash_to_scalar_dst=b"HashToScalar-" + ctx,
        derive_key_pair_dst=b"DeriveKeyPair" + ctx,
        seed_dst=b"Seed-" + ctx,
    )


_SUITES: Final = {mode: _make_suite(mode) for mode in MODES}


def _suite(mode: int) -> _Suite:
    try:
        return _SUITES[mode]
    except (KeyError, TypeError):
        raise LocalProtocolError("unsupported OPRF mode; expected 0 (OPRF) or 1 (VOPRF)") from None


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A server key: ``sk`` (scalar) and ``pk = sk * G`` (element). ``repr`` hides ``sk``."""

    sk: bytes = field(repr=False)
    pk: bytes


# ---------------------------------------------------------------------------------------------
# Keys


def derive_key_pair(seed: bytes, info: bytes, mode: int) -> KeyPair:
    """RFC 9497 3.2.1 DeriveKeyPair(seed, info) with the DST ``"DeriveKeyPair" || ctx(mode)``.

    ``seed`` must be 32 bytes and ``info`` at most 65535 bytes (else ``LocalProtocolError``).
    """
    suite = _suite(mode)
    if len(seed) != SEED_LEN:
        raise LocalProtocolError(f"DeriveKeyPair seed must be {SEED_LEN} bytes")
    if len(info) > MAX_INPUT_LEN:
        raise LocalProtocolError("DeriveKeyPair info longer than 65535 bytes")
    derive_input = bytes(seed) + len(info).to_bytes(2, "big") + bytes(info)
    for counter in range(256):
        sk = group.hash_to_scalar(derive_input + bytes((counter,)), suite.derive_key_pair_dst)
        if sk != group.IDENTITY:  # the zero scalar has the same encoding as the identity
            return KeyPair(sk=sk, pk=group.scalar_mult_base(sk))
    raise LocalProtocolError("DeriveKeyPairError")  # pragma: no cover - probability 2^-64000


# ---------------------------------------------------------------------------------------------
# Client: blind / finalize


def _check_input(data: bytes) -> None:
    if len(data) > MAX_INPUT_LEN:
        raise LocalProtocolError("OPRF input longer than 65535 bytes")


def _input_element(data: bytes, suite: _Suite) -> bytes:
    _check_input(data)
    element = group.hash_to_group(data, suite.hash_to_group_dst)
    if element == group.IDENTITY:
        raise LocalProtocolError("InvalidInputError: input maps to the identity element")
    return element


def _input_elements(inputs: Sequence[bytes], suite: _Suite) -> list[bytes]:
    for data in inputs:
        _check_input(data)
    elements = group.hash_to_group_many(inputs, suite.hash_to_group_dst)
    if group.IDENTITY in elements:
        raise LocalProtocolError("InvalidInputError: an input maps to the identity element")
    return elements


def blind(input: bytes, rng: Callable[[int], bytes], mode: int) -> tuple[bytes, bytes]:
    """RFC 9497 Blind: return ``(blind, blinded_element)`` with a fresh scalar from ``rng``."""
    r = group.random_scalar(rng)
    return r, blind_with(input, r, mode)


def blind_with(input: bytes, blind: bytes, mode: int) -> bytes:
    """Blind with a given scalar (deterministic; for vectors): ``blind * HashToGroup(input)``."""
    return group.scalar_mult(blind, _input_element(input, _suite(mode)))


def blind_many(
    inputs: Sequence[bytes], rng: Callable[[int], bytes], mode: int
) -> tuple[list[bytes], list[bytes]]:
    """``blind`` over a batch: ``(blinds, blinded_elements)``, one fresh scalar per input."""
    elements = _input_elements(inputs, _suite(mode))
    blinds = [group.random_scalar(rng) for _ in elements]
    scalar_mult = group.scalar_mult
    return blinds, [scalar_mult(r, e) for r, e in zip(blinds, elements, strict=True)]


def _output(data: bytes, element: bytes) -> bytes:
    # Hash(I2OSP(len(input), 2) || input || I2OSP(len(element), 2) || element || "Finalize")
    return hashlib.sha512(
        len(data).to_bytes(2, "big") + data + _I2OSP_ELEMENT_LEN + element + b"Finalize"
    ).digest()


def finalize(input: bytes, blind: bytes, evaluated: bytes, mode: int) -> bytes:
    """RFC 9497 Finalize: ``Hash(... input ... (1/blind) * evaluated ... "Finalize")``.

    VOPRF: verify the batch's proof with ``verify_proof`` first. ``evaluated`` comes from the
    peer; a bad one raises ``InvalidElementError``.
    """
    _suite(mode)
    _check_input(input)
    unblinded = group.scalar_mult(group.scalar_invert(blind), evaluated)
    return _output(input, unblinded)


def finalize_many(
    inputs: Sequence[bytes], blinds: Sequence[bytes], evaluated: Sequence[bytes], mode: int
) -> list[bytes]:
    """``finalize`` over a batch (all three sequences must have the same length).

    The blinds are inverted together (``group.scalar_invert_many``), which makes this about
    a third cheaper per element than calling ``finalize`` in a loop.
    """
    _suite(mode)
    if not len(inputs) == len(blinds) == len(evaluated):
        raise LocalProtocolError("finalize_many: inputs, blinds and evaluated differ in length")
    for data in inputs:
        _check_input(data)
    scalar_mult = group.scalar_mult
    sha512 = hashlib.sha512
    suffix = b"Finalize"
    out: list[bytes] = []
    append = out.append
    inverses = group.scalar_invert_many(blinds)  # one inversion for the whole batch
    for data, inverse, element in zip(inputs, inverses, evaluated, strict=True):
        unblinded = scalar_mult(inverse, element)
        append(
            sha512(
                len(data).to_bytes(2, "big") + data + _I2OSP_ELEMENT_LEN + unblinded + suffix
            ).digest()
        )
    return out


# ---------------------------------------------------------------------------------------------
# Server: blind evaluation and direct evaluation


def blind_evaluate(sk: bytes, blinded: bytes) -> bytes:
    """RFC 9497 BlindEvaluate (without the VOPRF proof): ``sk * blinded``.

    ``blinded`` comes from the peer; a bad one raises ``InvalidElementError``.
    """
    return group.scalar_mult(sk, blinded)


def blind_evaluate_many(sk: bytes, blinded: Sequence[bytes]) -> list[bytes]:
    """``blind_evaluate`` over a batch."""
    return group.scalar_mult_many(sk, blinded)


def evaluate(sk: bytes, input: bytes, mode: int) -> bytes:
    """RFC 9497 Evaluate: the PRF computed directly by the key holder (see module docstring)."""
    element = _input_element(input, _suite(mode))
    return _output(input, group.scalar_mult(sk, element))


def evaluate_many(sk: bytes, inputs: Sequence[bytes], mode: int) -> list[bytes]:
    """``evaluate`` over a batch."""
    elements = _input_elements(inputs, _suite(mode))
    issued = group.scalar_mult_many(sk, elements)
    sha512 = hashlib.sha512
    suffix = b"Finalize"
    return [
        sha512(len(data).to_bytes(2, "big") + data + _I2OSP_ELEMENT_LEN + e + suffix).digest()
        for data, e in zip(inputs, issued, strict=True)
    ]


# ---------------------------------------------------------------------------------------------
# DLEQ proofs (RFC 9497 2.2), batched


def _check_batch(blinded: Sequence[bytes], evaluated: Sequence[bytes]) -> None:
    if len(blinded) != len(evaluated):
        raise LocalProtocolError("proof batch: blinded and evaluated differ in length")
    if not 0 < len(blinded) <= MAX_BATCH:
        raise LocalProtocolError(f"proof batch size must be 1..{MAX_BATCH}")


def _composite_scalars(
    pk: bytes, blinded: Sequence[bytes], evaluated: Sequence[bytes], suite: _Suite
) -> list[bytes]:
    """The d_i of ComputeComposites: HashToScalar of each composite transcript."""
    seed_dst = suite.seed_dst
    seed = hashlib.sha512(
        len(pk).to_bytes(2, "big") + pk + len(seed_dst).to_bytes(2, "big") + seed_dst
    ).digest()
    prefix = len(seed).to_bytes(2, "big") + seed
    hash_to_scalar = group.hash_to_scalar
    dst = suite.hash_to_scalar_dst
    lp = _I2OSP_ELEMENT_LEN
    ds: list[bytes] = []
    for i, (c, d) in enumerate(zip(blinded, evaluated, strict=True)):
        if len(c) != group.ELEMENT_LEN or len(d) != group.ELEMENT_LEN:
            # The transcript frames them as Ne bytes; anything else is not an element.
            group.decode_element(c)
            group.decode_element(d)
        ds.append(
            hash_to_scalar(prefix + i.to_bytes(2, "big") + lp + c + lp + d + b"Composite", dst)
        )
    return ds


def _linear_combination(scalars: Sequence[bytes], elements: Sequence[bytes]) -> bytes:
    """``sum(scalars[i] * elements[i])``; every element is decoded by libsodium on the way."""
    scalar_mult = group.scalar_mult
    element_add = group.element_add
    acc = scalar_mult(scalars[0], elements[0])
    for s, e in zip(scalars[1:], elements[1:], strict=True):
        acc = element_add(acc, scalar_mult(s, e))
    return acc


def _challenge(pk: bytes, m: bytes, z: bytes, t2: bytes, t3: bytes, suite: _Suite) -> bytes:
    lp = _I2OSP_ELEMENT_LEN
    transcript = lp + pk + lp + m + lp + z + lp + t2 + lp + t3 + b"Challenge"
    return group.hash_to_scalar(transcript, suite.hash_to_scalar_dst)


def generate_proof(
    sk: bytes,
    pk: bytes,
    blinded: Sequence[bytes],
    evaluated: Sequence[bytes],
    rng: Callable[[int], bytes],
    mode: int = MODE_VOPRF,
) -> bytes:
    """RFC 9497 GenerateProof(sk, G, pk, blinded, evaluated): a 64-byte proof ``c || s``.

    Proves ``evaluated[i] == sk * blinded[i]`` for all i, and ``pk == sk * G``, in one proof
    for the whole batch (1..65536 pairs), using ComputeCompositesFast.
    """
    return generate_proof_with(sk, pk, blinded, evaluated, group.random_scalar(rng), mode)


def generate_proof_with(
    sk: bytes,
    pk: bytes,
    blinded: Sequence[bytes],
    evaluated: Sequence[bytes],
    r: bytes,
    mode: int = MODE_VOPRF,
) -> bytes:
    """``generate_proof`` with a given nonce ``r`` (deterministic; for vectors and callers that
    draw ``r`` themselves with ``group.random_scalar``).

    ``r`` must be uniformly random, secret and used for one proof only: two proofs under the
    same key with the same ``r`` reveal ``sk`` (``sk = (s1 - s2) / (c2 - c1)``).
    """
    suite = _suite(mode)
    _check_batch(blinded, evaluated)
    ds = _composite_scalars(pk, blinded, evaluated, suite)
    m = _linear_combination(ds, blinded)
    z = group.scalar_mult(sk, m)
    t2 = group.scalar_mult_base(r)
    t3 = group.scalar_mult(r, m)
    c = _challenge(pk, m, z, t2, t3, suite)
    s = group.scalar_sub(r, group.scalar_mul(c, sk))
    return c + s


def verify_proof(
    pk: bytes,
    blinded: Sequence[bytes],
    evaluated: Sequence[bytes],
    proof: bytes,
    mode: int = MODE_VOPRF,
) -> None:
    """RFC 9497 VerifyProof(G, pk, blinded, evaluated, proof); raises ``VerifyError``.

    ``VerifyError`` when the proof is not 64 bytes, ``c`` or ``s`` is not a canonical non-zero
    scalar, or the challenge does not match. A malformed element in ``evaluated`` raises
    ``InvalidElementError``; a batch whose two lists differ in length raises ``VerifyError``.
    """
    suite = _suite(mode)
    if len(blinded) != len(evaluated):
        raise VerifyError("proof batch: blinded and evaluated differ in length")
    _check_batch(blinded, evaluated)
    if len(proof) != PROOF_LEN:
        raise VerifyError(f"proof must be {PROOF_LEN} bytes")
    try:
        c = group.decode_scalar(proof[: group.SCALAR_LEN])
        s = group.decode_scalar(proof[group.SCALAR_LEN :])
    except InvalidScalarError:
        raise VerifyError("proof scalars are not canonical") from None
    ds = _composite_scalars(pk, blinded, evaluated, suite)
    m = _linear_combination(ds, blinded)
    z = _linear_combination(ds, evaluated)
    t2 = group.element_add(group.scalar_mult_base(s), group.scalar_mult(c, pk))
    t3 = group.element_add(group.scalar_mult(s, m), group.scalar_mult(c, z))
    expected = _challenge(pk, m, z, t2, t3, suite)
    if not hmac.compare_digest(expected, c):
        raise VerifyError("proof does not verify")
