"""Deterministic randomness and small helpers for node tests."""

from __future__ import annotations

import hashlib
from collections.abc import Callable


def det_rng(seed: bytes = b"fiumatch-tests") -> Callable[[int], bytes]:
    """A reproducible rng: SHAKE-256 over (seed, call counter)."""
    counter = 0

    def rng(n: int) -> bytes:
        nonlocal counter
        counter += 1
        return hashlib.shake_256(seed + counter.to_bytes(8, "big")).digest(n)

    return rng
