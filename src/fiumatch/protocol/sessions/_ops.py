"""Pure per-chunk cryptographic steps of the sessions, and every session-level DST.

Each function is a top-level function on bytes (picklable), so a caller may run chunks on a
process pool; each costs one libsodium call per element and no Python objects per element
beyond the ones it returns. The state machines call them chunk by chunk, or part by part
through a ``ChunkExecutor`` (``_base``): a frame's chunk may be cut into parts that run at once.

Batched DLEQ proofs (RFC 9497 2.2.1, ComputeComposites) are split the same way: a part returns
its share of the composite sums ``M = sum d_i C_i`` (and, to verify, ``Z = sum d_i D_i``) with
the indices ``i`` counted from the chunk's start (``offset``), and ``prove_composite`` /
``check_composite`` finish the proof over the whole chunk. The group sum is the same whatever
the split, so the proof bytes are those of ``oprf.generate_proof_with`` over the whole chunk.

This module must never keep state, draw randomness (scalars and proof nonces are passed in) or
decode frames.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from typing import Final

from fiumatch.protocol import group, oprf
from fiumatch.protocol.errors import InvalidScalarError, LocalProtocolError, VerifyError
from fiumatch.protocol.wire import ELEMENT_WIDTH, TAG_LEN, split_elements

__all__ = [
    "CARDINALITY_H2G_DST",
    "CARDINALITY_TAG_DST",
    "MUTUAL_H2G_DST",
    "MUTUAL_SIGNATURE_DST",
    "MUTUAL_TAG_DST",
    "TRANSCRIPT_DST",
    "blind_part",
    "check_composite",
    "composite_part",
    "evaluate_chunk",
    "evaluate_part",
    "finalize_chunk",
    "finalize_part",
    "hash_and_mult_chunk",
    "hash_mult_tag_part",
    "mult_chunk",
    "mult_tag_part",
    "proof_scalars",
    "prove_composite",
    "shuffle_permutation",
    "tag_chunk",
    "validate_chunk",
    "verify_tag_part",
]

MUTUAL_H2G_DST: Final = b"HashToGroup-fiumatch-v1-mutual-ristretto255-SHA512"
CARDINALITY_H2G_DST: Final = b"HashToGroup-fiumatch-v1-cardinality-ristretto255-SHA512"
MUTUAL_TAG_DST: Final = b"fiumatch-v1-mutual-tag"
CARDINALITY_TAG_DST: Final = b"fiumatch-v1-cardinality-tag"
TRANSCRIPT_DST: Final = b"fiumatch-v1-transcript"
MUTUAL_SIGNATURE_DST: Final = b"fiumatch-v1-mutual-result"


def hash_and_mult_chunk(scalar: bytes, inputs: Sequence[bytes], dst: bytes) -> bytes:
    """``scalar * HashToGroup(x, dst)`` for each input, concatenated (mutual, cardinality)."""
    elements = group.hash_to_group_many(inputs, dst)
    if group.IDENTITY in elements:  # probability ~2^-250; the RFC's InvalidInputError
        raise LocalProtocolError("an input maps to the identity element")
    return b"".join(group.scalar_mult_many(scalar, elements))


def mult_chunk(scalar: bytes, elements: bytes) -> bytes:
    """``scalar * E`` for each concatenated element. A bad element: ``InvalidElementError``."""
    return b"".join(group.scalar_mult_many(scalar, split_elements(elements, ELEMENT_WIDTH)))


def validate_chunk(elements: bytes) -> None:
    """Raise ``InvalidElementError`` unless every concatenated element is valid, non-identity."""
    decode = group.decode_element
    for e in split_elements(elements, ELEMENT_WIDTH):
        decode(e)


def tag_chunk(dst: bytes, session_id: bytes, elements: bytes) -> bytes:
    """``Tag(E) = SHA-512(I2OSP(len(dst), 1) || dst || session_id || E)[:16]`` per element."""
    prefix = hashlib.sha512(bytes((len(dst),)) + dst + session_id)
    out = []
    for i in range(0, len(elements), ELEMENT_WIDTH):
        h = prefix.copy()
        h.update(elements[i : i + ELEMENT_WIDTH])
        out.append(h.digest()[:TAG_LEN])
    return b"".join(out)


def evaluate_chunk(
    sk: bytes, pk: bytes, blinded: bytes, proof_nonce: bytes | None, mode: int
) -> tuple[bytes, bytes]:
    """Filter owner: ``(evaluated, proof)`` for one chunk of blinded elements.

    ``proof``: RFC 9497 batched DLEQ proof over the chunk with nonce ``proof_nonce`` (VOPRF),
    or ``b""`` when ``proof_nonce`` is None (OPRF).
    """
    items = split_elements(blinded, ELEMENT_WIDTH)
    evaluated = oprf.blind_evaluate_many(sk, items)
    proof = b""
    if proof_nonce is not None:
        proof = oprf.generate_proof_with(sk, pk, items, evaluated, proof_nonce, mode)
    return b"".join(evaluated), proof


def finalize_chunk(
    inputs: Sequence[bytes], blinds: Sequence[bytes], evaluated: bytes, mode: int
) -> list[bytes]:
    """Filter querier: RFC 9497 Finalize for one chunk."""
    return oprf.finalize_many(inputs, blinds, split_elements(evaluated, ELEMENT_WIDTH), mode)


# ---------------------------------------------------------------------------------------------
# Parts: what one worker does with its slice of a chunk (the machines join the results)


def blind_part(inputs: Sequence[bytes], blinds: Sequence[bytes], mode: int) -> bytes:
    """Filter querier: RFC 9497 Blind with the given scalars, ``r_i * HashToGroup(x_i)``,
    concatenated. The scalars are drawn by the machine (in key order) before the part runs."""
    if len(inputs) != len(blinds):
        raise LocalProtocolError("blind_part: inputs and blinds differ in length")
    for data in inputs:
        if len(data) > oprf.MAX_INPUT_LEN:
            raise LocalProtocolError("OPRF input longer than 65535 bytes")
    elements = group.hash_to_group_many(inputs, b"HashToGroup-" + oprf.context_string(mode))
    if group.IDENTITY in elements:
        raise LocalProtocolError("InvalidInputError: an input maps to the identity element")
    scalar_mult = group.scalar_mult
    return b"".join([scalar_mult(r, e) for r, e in zip(blinds, elements, strict=True)])


def _composite_prefix(pk: bytes, mode: int) -> tuple[bytes, bytes]:
    """``(I2OSP(len(seed), 2) || seed, HashToScalar DST)`` of ComputeComposites for ``pk``."""
    ctx = oprf.context_string(mode)
    seed_dst = b"Seed-" + ctx
    seed = hashlib.sha512(
        len(pk).to_bytes(2, "big") + pk + len(seed_dst).to_bytes(2, "big") + seed_dst
    ).digest()
    return len(seed).to_bytes(2, "big") + seed, b"HashToScalar-" + ctx


_LP: Final = group.ELEMENT_LEN.to_bytes(2, "big")


def composite_part(
    pk: bytes, blinded: bytes, evaluated: bytes, offset: int, mode: int, *, with_z: bool
) -> tuple[bytes, bytes]:
    """This part's share ``(M, Z)`` of ComputeComposites: ``sum d_i C_i`` and (``with_z``)
    ``sum d_i D_i``, ``i`` counted from ``offset``; ``Z`` is ``b""`` without ``with_z``.

    ``blinded`` and ``evaluated`` are concatenated 32-byte elements of the same count (at
    least one). A bad element raises ``InvalidElementError`` (libsodium decodes each one).
    """
    cs = split_elements(blinded, ELEMENT_WIDTH)
    ds = split_elements(evaluated, ELEMENT_WIDTH)
    if not cs or len(cs) != len(ds):
        raise LocalProtocolError("composite_part: empty or mismatched batch")
    if offset < 0 or offset + len(cs) > oprf.MAX_BATCH:
        raise LocalProtocolError(f"proof batch size must be 1..{oprf.MAX_BATCH}")
    prefix, dst = _composite_prefix(pk, mode)
    hash_to_scalar, scalar_mult, add = group.hash_to_scalar, group.scalar_mult, group.element_add
    m = z = b""
    for i, (c, d) in enumerate(zip(cs, ds, strict=True), start=offset):
        di = hash_to_scalar(prefix + i.to_bytes(2, "big") + _LP + c + _LP + d + b"Composite", dst)
        mi = scalar_mult(di, c)
        m = add(m, mi) if m else mi
        if with_z:
            zi = scalar_mult(di, d)
            z = add(z, zi) if z else zi
    return m, z


def _sum(elements: Sequence[bytes]) -> bytes:
    acc = elements[0]
    for e in elements[1:]:
        acc = group.element_add(acc, e)
    return acc


def _challenge(pk: bytes, m: bytes, z: bytes, t2: bytes, t3: bytes, mode: int) -> bytes:
    transcript = _LP + pk + _LP + m + _LP + z + _LP + t2 + _LP + t3 + b"Challenge"
    return group.hash_to_scalar(transcript, b"HashToScalar-" + oprf.context_string(mode))


def prove_composite(sk: bytes, pk: bytes, ms: Sequence[bytes], nonce: bytes, mode: int) -> bytes:
    """RFC 9497 GenerateProof (ComputeCompositesFast) from the parts' ``M`` shares: ``c || s``.

    Equal to ``oprf.generate_proof_with`` over the whole chunk with nonce ``nonce``.
    """
    m = _sum(ms)
    z = group.scalar_mult(sk, m)
    t2 = group.scalar_mult_base(nonce)
    t3 = group.scalar_mult(nonce, m)
    c = _challenge(pk, m, z, t2, t3, mode)
    return c + group.scalar_sub(nonce, group.scalar_mul(c, sk))


def check_composite(
    pk: bytes, ms: Sequence[bytes], zs: Sequence[bytes], proof: bytes, mode: int
) -> None:
    """RFC 9497 VerifyProof from the parts' ``(M, Z)`` shares; raises ``VerifyError``.

    Equal to ``oprf.verify_proof`` over the whole chunk (the callers check the proof's
    length and scalars first, with ``proof_scalars``, to raise in the RFC's order).
    """
    c, s = proof_scalars(proof)
    m, z = _sum(ms), _sum(zs)
    t2 = group.element_add(group.scalar_mult_base(s), group.scalar_mult(c, pk))
    t3 = group.element_add(group.scalar_mult(s, m), group.scalar_mult(c, z))
    if not hmac.compare_digest(_challenge(pk, m, z, t2, t3, mode), c):
        raise VerifyError("proof does not verify")


def proof_scalars(proof: bytes) -> tuple[bytes, bytes]:
    """``(c, s)`` of a 64-byte proof; ``VerifyError`` if either is not a canonical non-zero
    scalar (as ``oprf.verify_proof``)."""
    if len(proof) != oprf.PROOF_LEN:
        raise VerifyError(f"proof must be {oprf.PROOF_LEN} bytes")
    try:
        return (
            group.decode_scalar(proof[: group.SCALAR_LEN]),
            group.decode_scalar(proof[group.SCALAR_LEN :]),
        )
    except InvalidScalarError:
        raise VerifyError("proof scalars are not canonical") from None


def evaluate_part(
    sk: bytes,
    pk: bytes,
    blinded: bytes,
    offset: int,
    mode: int,
    prove: bool,
    tag_dst: bytes = b"",
    session_id: bytes = b"",
) -> tuple[bytes, bytes, bytes]:
    """Owner (filter, mutual): ``(evaluated, M, tags)`` for a part of a QUERY chunk.

    ``evaluated = sk * B_i`` concatenated; ``M``: the part's composite share when ``prove``
    (else ``b""``); ``tags``: ``tag_chunk(tag_dst, session_id, evaluated)`` when ``tag_dst``
    is given (mutual), else ``b""``.
    """
    evaluated = mult_chunk(sk, blinded)
    m = b""
    if prove:
        m, _ = composite_part(pk, blinded, evaluated, offset, mode, with_z=False)
    tags = tag_chunk(tag_dst, session_id, evaluated) if tag_dst else b""
    return evaluated, m, tags


def finalize_part(
    inputs: Sequence[bytes],
    blinds: Sequence[bytes],
    evaluated: bytes,
    mode: int,
    pk: bytes = b"",
    blinded: bytes = b"",
    offset: int = 0,
) -> tuple[list[bytes], bytes, bytes]:
    """Filter querier: ``(outputs, M, Z)`` for a part of an EVAL chunk.

    With ``pk`` (VOPRF), ``(M, Z)`` is the part's composite share over ``blinded`` (what was
    sent) and ``evaluated``, computed first; the machine must check the proof before it uses
    any output. Without ``pk`` both are ``b""``.
    """
    m = z = b""
    if pk:
        m, z = composite_part(pk, blinded, evaluated, offset, mode, with_z=True)
    return finalize_chunk(inputs, blinds, evaluated, mode), m, z


def verify_tag_part(
    pk: bytes, blinded: bytes, evaluated: bytes, offset: int, tag_dst: bytes, session_id: bytes
) -> tuple[bytes, bytes, bytes]:
    """Mutual querier: ``(M, Z, tags)`` for a part of an EVAL chunk: validates every element
    (``InvalidElementError``), its composite share (VOPRF context) and its tags."""
    validate_chunk(evaluated)
    m, z = composite_part(pk, blinded, evaluated, offset, oprf.MODE_VOPRF, with_z=True)
    return m, z, tag_chunk(tag_dst, session_id, evaluated)


def mult_tag_part(scalar: bytes, elements: bytes, tag_dst: bytes, session_id: bytes) -> bytes:
    """``Tag(scalar * E)`` per concatenated element (mutual SET, cardinality EVAL)."""
    return tag_chunk(tag_dst, session_id, mult_chunk(scalar, elements))


def hash_mult_tag_part(
    scalar: bytes, inputs: Sequence[bytes], dst: bytes, tag_dst: bytes, session_id: bytes
) -> bytes:
    """``Tag(scalar * HashToGroup(y))`` per input (cardinality SET)."""
    return tag_chunk(tag_dst, session_id, hash_and_mult_chunk(scalar, inputs, dst))


def shuffle_permutation(n: int, rng: Callable[[int], bytes]) -> list[int]:
    """A uniformly random permutation of ``range(n)`` (Fisher-Yates, SPEC.md §8.3).

    For ``i`` from ``n-1`` down to 1, ``j`` is the first 64-bit big-endian value ``v`` from
    ``rng`` with ``v < 2^64 - (2^64 mod (i+1))``, reduced mod ``i+1``; swap ``i`` and ``j``.
    Randomness is drawn 8 bytes per step, in batches of up to 4096 steps.
    """
    perm = list(range(n))
    pool = b""
    pos = 0
    i = n - 1
    while i > 0:
        if pos == len(pool):
            pool = rng(8 * min(i, 4096))
            if len(pool) != 8 * min(i, 4096):
                raise LocalProtocolError("rng returned the wrong number of bytes")
            pos = 0
        v = int.from_bytes(pool[pos : pos + 8], "big")
        pos += 8
        bound = i + 1
        if v >= (1 << 64) - ((1 << 64) % bound):
            continue
        j = v % bound
        perm[i], perm[j] = perm[j], perm[i]
        i -= 1
    return perm
