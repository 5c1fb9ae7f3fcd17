"""The analyst API's long-poll on real nodes: ``GET /api/v1/queries/{id}?wait=S`` answers as
soon as the query is no longer running (not at the end of ``S``), the same document a plain read
gives; ``wait`` is bounded (0..30 s) and checked like any parameter; an unknown query or a
missing token is refused at once, not after the wait."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from fiumatch.client.api import ApiClient, ApiError
from fiumatch.demo.run import DemoNode

pytestmark = pytest.mark.slow

WAIT = 25.0


def _create(c: ApiClient, peer: str) -> dict[str, Any]:
    q: dict[str, Any] = c.create_query(
        purpose="money_laundering",
        legal_basis="AMLD art. 53",
        case_ref="WAIT-1",
        mode="filter",
        all_subjects=True,
        peers=[peer],
    )
    return q


def test_long_poll_answers_when_the_query_is_done_not_after_the_wait(
    cluster: list[DemoNode],
) -> None:
    de, fr = cluster[0], cluster[1]
    with de.client("analyst") as c:
        created = _create(c, fr.node_id)
        started = time.monotonic()
        q = c.query(created["id"], wait=WAIT)
        elapsed = time.monotonic() - started
        plain = c.query(created["id"])
    assert q["status"] == "done", q
    assert elapsed < WAIT / 2, elapsed
    (peer,) = q["peers"]
    assert peer["peer"] == fr.node_id and peer["done"] and peer["status"] == "ok"
    assert {k: v for k, v in q.items() if k != "peers"} == {
        k: v for k, v in plain.items() if k != "peers"
    }
    assert [p["hit_count"] for p in q["peers"]] == [p["hit_count"] for p in plain["peers"]]


def test_wait_query_long_polls_to_the_end_and_a_finished_query_is_answered_at_once(
    cluster: list[DemoNode],
) -> None:
    de, lv = cluster[0], cluster[2]
    with de.client("analyst") as c:
        q = c.wait_query(_create(c, lv.node_id), timeout=60)
        assert q["status"] == "done", q
        started = time.monotonic()
        again = c.query(q["id"], wait=WAIT)
        elapsed = time.monotonic() - started
    assert again["status"] == "done" and again["id"] == q["id"]
    assert elapsed < WAIT / 2, elapsed


@pytest.mark.parametrize("wait", ["31", "-1", "nan", "soon"])
def test_a_wait_out_of_bounds_is_refused(cluster: list[DemoNode], wait: str) -> None:
    de, fr = cluster[0], cluster[1]
    with de.client("analyst") as c:
        q = c.wait_query(_create(c, fr.node_id), timeout=60)
        with pytest.raises(ApiError) as err:
            c.call("GET", f"/api/v1/queries/{q['id']}", params={"wait": wait})
    assert err.value.status == 422 and err.value.error_code == "invalid_request"
    assert err.value.error_details == {"fields": ["query.wait"]}


def test_unknown_query_and_missing_token_are_refused_without_waiting(
    cluster: list[DemoNode],
) -> None:
    de = cluster[0]
    started = time.monotonic()
    with de.client("analyst") as c, pytest.raises(ApiError) as err:
        c.query("q-0000000000000000", wait=WAIT)
    assert err.value.status == 404
    r = httpx.get(
        f"{de.url}/api/v1/queries/q-0000000000000000",
        params={"wait": WAIT},
        verify=False,
        timeout=WAIT + 10,
    )
    assert r.status_code == 401
    assert time.monotonic() - started < WAIT / 2
