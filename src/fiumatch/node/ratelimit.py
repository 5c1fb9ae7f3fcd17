"""Per-client request rate limits of a node: one token bucket per bearer token (analyst, admin
and auditor APIs) or per claimed peer key id and address (peer API), sized by ``limits.*``.

A request over its bucket is refused with :class:`RateLimitedError` (429, ``Retry-After``)
before any work is done. Buckets are keyed by a SHA-256 of the token, never the token itself,
and at most ``max_clients`` are kept (the least recently used is forgotten). Time is the
monotonic clock passed in.

Must never log or keep a token, and must never make a client wait: it only answers now or no.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from fiumatch.node.errors import RateLimitedError

__all__ = ["RateLimiter"]


class RateLimiter:
    """Token buckets: ``rate`` requests per second, up to ``burst`` at once, per client key."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._max = max_clients
        self._buckets: OrderedDict[bytes, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()
        self.refused = 0

    @staticmethod
    def key(kind: str, value: str) -> bytes:
        return hashlib.sha256(f"{kind}\x00{value}".encode()).digest()

    def take(self, key: bytes) -> None:
        """Spend one token of ``key``'s bucket, or raise :class:`RateLimitedError`."""
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                self.refused += 1
                wait = math.ceil((1.0 - tokens) / self.rate)
                raise RateLimitedError(
                    "too many requests from this client; slow down", retry_after=wait
                )
            self._buckets[key] = (tokens - 1.0, now)
            while len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
