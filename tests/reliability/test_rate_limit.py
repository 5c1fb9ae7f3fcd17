"""Per-client rate limits (``limits.requests_per_second``, ``limits.burst``): a token bucket per
bearer token (and per claimed peer key id and address): a client over its bucket gets 429
``rate_limited`` with ``Retry-After``, and the others are not affected."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fiumatch.demo.run import DemoNode, make_node
from fiumatch.node.app import build_service
from fiumatch.node.errors import RateLimitedError
from fiumatch.node.ratelimit import RateLimiter
from fiumatch.node.service import NodeService

from .test_storage import Client


def test_bucket_refills_at_its_rate() -> None:
    now = [100.0]
    limiter = RateLimiter(2, 3, clock=lambda: now[0])
    a, b = limiter.key("token", "a"), limiter.key("token", "b")
    for _ in range(3):
        limiter.take(a)
    with pytest.raises(RateLimitedError) as refused:
        limiter.take(a)
    assert refused.value.retry_after == 1 and refused.value.http_status == 429
    limiter.take(b)  # another client has its own bucket
    now[0] += 0.5  # one token back at 2 per second
    limiter.take(a)
    with pytest.raises(RateLimitedError):
        limiter.take(a)
    assert limiter.refused == 2


def test_bucket_count_is_bounded() -> None:
    limiter = RateLimiter(1, 1, max_clients=10)
    for i in range(50):
        limiter.take(limiter.key("token", str(i)))
    assert len(limiter._buckets) == 10


@pytest.fixture
def limited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[DemoNode, Client]]:
    node = make_node(tmp_path, "FIU-R", scrypt_log2_n=10)
    monkeypatch.setenv("FIUMATCH_LIMITS_REQUESTS_PER_SECOND", "1")
    monkeypatch.setenv("FIUMATCH_LIMITS_BURST", "5")
    service: NodeService = build_service(node.root)
    client = Client(service)
    try:
        yield node, client
    finally:
        client.close()
        service.close()
        service.store.close()


def test_over_the_limit_is_429_with_retry_after_and_others_go_on(
    limited: tuple[DemoNode, Client],
) -> None:
    node, client = limited
    greedy = {"authorization": f"Bearer {node.analyst}"}
    codes = [client.get("/api/v1/queries", headers=greedy).status_code for _ in range(8)]
    assert codes[:5] == [200] * 5 and 429 in codes[5:]  # (a token refills each second)
    refused = client.get("/api/v1/queries", headers=greedy)
    assert refused.status_code == 429
    assert refused.json()["error"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1
    other = {"authorization": f"Bearer {node.auditor}"}
    assert client.get("/audit/v1/entries", headers=other).status_code == 200
    peer = {"signature-input": 'sig1=("@method");keyid="FIU-P"'}
    assert client.post("/peer/v1/sessions", headers=peer).status_code != 429
