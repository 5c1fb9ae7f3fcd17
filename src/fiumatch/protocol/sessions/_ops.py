"""Pure per-chunk cryptographic steps of the sessions, and every session-level DST.

Each function is a top-level function on bytes (picklable), so a caller may run chunks on a
process pool; each costs one libsodium call per element and no Python objects per element
beyond the ones it returns. The state machines call them chunk by chunk.

This module must never keep state, draw randomness (scalars and proof nonces are passed in) or
decode frames.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Final

from fiumatch.protocol import group, oprf
from fiumatch.protocol.errors import LocalProtocolError
from fiumatch.protocol.wire import ELEMENT_WIDTH, TAG_LEN, split_elements

__all__ = [
    "CARDINALITY_H2G_DST",
    "CARDINALITY_TAG_DST",
    "MUTUAL_H2G_DST",
    "MUTUAL_SIGNATURE_DST",
    "MUTUAL_TAG_DST",
    "TRANSCRIPT_DST",
    "evaluate_chunk",
    "finalize_chunk",
    "hash_and_mult_chunk",
    "mult_chunk",
    "shuffle_permutation",
    "tag_chunk",
    "validate_chunk",
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
