"""Filter mode without VOPRF proofs, as two agreements decide (SPEC §8.1, §14.4.1): two real
nodes whose agreements both say ``proofs: false`` find the same keys as a (proved) mutual
query; when only one side says so, the owner refuses with clause ``proofs`` and audits it.

These nodes run their per-chunk cryptography on their process pools (``compute.
parallel_min_elements`` lowered to 8), so the pool path of a real node is exercised too."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest

from fiumatch import synth
from fiumatch.client.api import ApiError
from fiumatch.demo.run import DemoNode, connect, make_node, wait_query

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DemoNode, DemoNode]]:
    root: Path = tmp_path_factory.mktemp("proofs-off")
    ds = synth.generate(["DE", "FR"], subjects=40, overlap=0.5, seed=5)
    synth.write(ds, root / "data", formats=("csv",))
    a = make_node(root, "FIU-PA", root / "data" / "DE.csv", "csv", scrypt_log2_n=10)
    b = make_node(root, "FIU-PB", root / "data" / "FR.csv", "csv", scrypt_log2_n=10)
    saved = os.environ.get(POOL_ENV)
    os.environ[POOL_ENV] = "8"  # inherited by the node processes started here
    try:
        a.process.start()
        b.process.start()
        connect([a, b], proofs=False)
        yield a, b
    finally:
        if saved is None:
            os.environ.pop(POOL_ENV, None)
        else:
            os.environ[POOL_ENV] = saved
        a.process.stop()
        b.process.stop()


POOL_ENV = "FIUMATCH_COMPUTE_PARALLEL_MIN_ELEMENTS"


def _pool_workers(node: DemoNode) -> int:
    """Worker processes of the node's compute pool (forkserver children of the server)."""
    assert node.process.proc is not None
    server = psutil.Process(node.process.proc.pid)
    return sum(
        1
        for p in server.children(recursive=True)
        if "forkserver" in " ".join(p.cmdline()) and p.ppid() != server.pid
    )


def _query(node: DemoNode, mode: str, peer: str) -> dict[str, object]:
    with node.client("analyst") as c:
        q = c.create_query(
            purpose="money_laundering",
            legal_basis="test",
            case_ref="PROOFS-1",
            mode=mode,
            all_subjects=True,
            peers=[peer],
        )
        q = wait_query(c, q, timeout=60)
    assert q["status"] == "done", q
    (result,) = q["peers"]
    assert isinstance(result, dict)
    return result


def _count(reason: object) -> int:
    m = re.search(r"(\d+) keys (?:hit|in common)", str(reason))
    assert m is not None, reason
    return int(m.group(1))


def test_filter_without_proofs_finds_what_mutual_finds(pair: tuple[DemoNode, DemoNode]) -> None:
    a, b = pair
    with a.client() as c:
        assert [x["proofs"] for x in c.agreements()] == [False]
    with b.client() as c:
        assert [x["proofs"] for x in c.agreements()] == [False]
    filtered = _query(a, "filter", b.node_id)
    mutual = _query(a, "mutual", b.node_id)
    assert filtered["status"] == mutual["status"] == "ok"
    assert _count(filtered["reason"]) == _count(mutual["reason"]) > 0
    assert filtered["hit_count"] == mutual["hit_count"]
    # Both sides ran the cryptography on their pools: one worker per core each.
    assert _pool_workers(a) == _pool_workers(b) == (os.cpu_count() or 1)


def test_query_hits_come_in_pages(pair: tuple[DemoNode, DemoNode]) -> None:
    """GET /api/v1/queries/{id} pages the hits (hits_offset, hits_limit; hit_total counts all):
    a query over 10^6 keys can have 10^5 hits, which no answer should build at once."""
    a, b = pair
    with a.client("analyst") as c:
        q = c.create_query(
            purpose="money_laundering",
            legal_basis="test",
            case_ref="PAGES-1",
            mode="mutual",
            all_subjects=True,
            peers=[b.node_id],
        )
        q = wait_query(c, q, timeout=60)
        total = q["hit_total"]
        assert total == len(q["hits"]) >= 3  # under the default page size: all of them
        ids = [h["id"] for h in q["hits"]]
        page = c.call(
            "GET", f"/api/v1/queries/{q['id']}", params={"hits_offset": 1, "hits_limit": 2}
        )
        assert [h["id"] for h in page["hits"]] == ids[1:3] and page["hit_total"] == total
        empty = c.call("GET", f"/api/v1/queries/{q['id']}", params={"hits_limit": 0})
        assert empty["hits"] == [] and empty["hit_total"] == total
        with pytest.raises(ApiError) as err:
            c.call("GET", f"/api/v1/queries/{q['id']}", params={"hits_limit": -1})
        assert err.value.status == 422


def test_agreements_that_disagree_on_proofs_are_refused(pair: tuple[DemoNode, DemoNode]) -> None:
    a, b = pair
    now = int(time.time())
    with a.client() as c:
        (old,) = [x for x in c.agreements() if x["revoked_at"] is None]
        assert c.revoke_agreement(old["id"])["revoked_at"] is not None
        c.add_agreement(
            peer=b.node_id,
            modes=["filter"],
            purposes=["money_laundering"],
            identifier_types=old["identifier_types"],
            budget_per_epoch=100_000,
            max_set_size=10_000,
            valid_from=now - 60,
            valid_until=now + 3600,
            proofs=True,
        )
    result = _query(a, "filter", b.node_id)
    assert result["status"] == "refused", result
    assert "agreement_refused (proofs)" in str(result["reason"])
    with b.client("auditor") as c:
        entries = c.audit_entries()["entries"]
    refusals = [e for e in entries if str(e["event"]).upper() == "REFUSAL"]
    assert any(e.get("clause") == "proofs" for e in refusals)
