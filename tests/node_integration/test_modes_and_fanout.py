"""Every mode across two and three real nodes, fan-out with one peer down, restart with nothing
lost, disclosure approve/refuse, epoch rotation during a query."""

from __future__ import annotations

import os
from typing import Any

import pytest

from fiumatch.client.api import ApiError
from fiumatch.client.peer import PeerError
from fiumatch.demo.run import DemoNode, wait_query

from .conftest import peer_client

pytestmark = pytest.mark.slow


def _run(node: DemoNode, mode: str, peers: list[str] | None = None) -> dict:  # type: ignore[type-arg]
    with node.client("analyst") as c:
        q = c.create_query(
            purpose="money_laundering",
            legal_basis="AMLD art. 53",
            case_ref="CASE-1",
            mode=mode,
            all_subjects=True,
            peers=peers or [],
        )
        return wait_query(c, q, timeout=30)


def test_filter_fans_out_to_both_peers_and_finds_the_shared_subjects(
    cluster: list[DemoNode],
) -> None:
    de = cluster[0]
    q = _run(de, "filter")
    assert q["status"] == "done" and not q["partial"]
    assert {p["peer"] for p in q["peers"]} == {"FIU-FR", "FIU-LV"}
    assert all(p["status"] == "ok" for p in q["peers"])
    assert sum(p["hit_count"] for p in q["peers"]) > 0
    for h in q["hits"]:
        assert h["key_types"] and 1 <= h["strength"] <= 3 and h["id"].startswith("h-")
        assert h["strength_label"] in ("phonetic", "composite", "strong")


def test_mutual_both_sides_learn_the_same_intersection(cluster: list[DemoNode]) -> None:
    fr, de = cluster[1], cluster[0]
    q = _run(fr, "mutual", ["FIU-DE"])
    (peer,) = q["peers"]
    assert peer["status"] == "ok" and "signed" in peer["reason"]
    with de.client("analyst") as c:
        owner_queries = [x for x in c.queries() if x["analyst"] == "peer:FIU-FR"]
        assert owner_queries
        owner = c.query(owner_queries[0]["id"])
    keys_in_common = int(peer["reason"].split(": ")[1].split()[0])
    assert keys_in_common > 0
    assert owner["peers"][0]["hit_count"] > 0


def test_cardinality_gives_only_a_count(cluster: list[DemoNode]) -> None:
    lv = cluster[2]
    q = _run(lv, "cardinality")
    assert all(p["status"] == "ok" and p["reason"].startswith("cardinality:") for p in q["peers"])
    assert q["hits"] == []


def test_filter_results_agree_with_mutual(cluster: list[DemoNode]) -> None:
    de = cluster[0]
    f = _run(de, "filter", ["FIU-FR"])
    m = _run(de, "mutual", ["FIU-FR"])
    assert {h["subject_id"] for h in f["hits"]} == {h["subject_id"] for h in m["hits"]}


def test_disclosure_approve_and_refuse(cluster: list[DemoNode]) -> None:
    de, fr = cluster[0], cluster[1]
    q = _run(de, "filter", ["FIU-FR"])
    assert len(q["hits"]) >= 2
    ids = []
    with de.client("analyst") as c:
        for h in q["hits"][:2]:
            ids.append(
                c.request_disclosure(
                    hit_id=h["id"],
                    purpose="money_laundering",
                    case_ref="CASE-1",
                    legal_basis="AMLD",
                )["id"]
            )
    with fr.client("analyst") as c, pytest.raises(ApiError) as denied:
        c.decide_disclosure(ids[0], approve=True, reason="analysts may not decide")
    assert denied.value.status == 403
    with fr.client("supervisor") as c:
        incoming = {d["id"]: d for d in c.disclosures("in")}
        assert incoming[ids[0]]["status"] == "pending"
        ok = c.decide_disclosure(ids[0], approve=True, reason="within the MoU")
        no = c.decide_disclosure(ids[1], approve=False, reason="case closed")
    assert ok["status"] == "released" and ok["released"]["local_ref"]
    assert no["status"] == "denied"
    with de.client("analyst") as c:
        got = c.refresh_disclosure(ids[0])
        refused = c.refresh_disclosure(ids[1])
    assert (
        got["status"] == "released" and got["released"]["local_ref"] == ok["released"]["local_ref"]
    )
    assert refused["status"] == "denied" and refused["reason"] == "case closed"
    assert "prior consent" in got["onward_dissemination"]
    # audited on both nodes
    for node in (de, fr):
        with node.client("auditor") as c:
            events = {e["event"] for e in c.audit_entries()["entries"]}
        assert {"DISCLOSURE_REQUESTED", "DISCLOSURE_DECIDED"} <= {str(e).upper() for e in events}


def test_epoch_rotation_during_a_query(cluster: list[DemoNode]) -> None:
    de, fr = cluster[0], cluster[1]
    client, _ = peer_client(de, fr)
    sid = os.urandom(16).hex()
    opened = client.open_session(
        session_id=sid,
        mode="cardinality",
        purpose="money_laundering",
        id_types=["passport"],
        set_size=1,
    )
    with fr.client() as c:
        rotated = c.rotate("FIU-DE")
    assert rotated[0]["new_epoch"] == opened["epoch"] + 1
    with pytest.raises(PeerError) as err:
        client.send_frames(sid, opened["epoch"], b"")
    client.close()
    assert err.value.status == 409 and err.value.code == "epoch_retired"
    # a query after (and across) the rotation still works, on the new epoch
    q = _run(de, "filter", ["FIU-FR"])
    assert q["peers"][0]["status"] == "ok"
    with fr.client() as c:
        states = {e["epoch"]: e["state"] for e in c.epochs() if e["peer"] == "FIU-DE"}
    assert states[opened["epoch"]] == "retired" and states[opened["epoch"] + 1] == "active"


def test_peer_down_gives_partial_result_and_restart_loses_nothing(cluster: list[DemoNode]) -> None:
    de, lv = cluster[0], cluster[2]
    before = _run(de, "filter")
    with lv.client("analyst") as c:
        lv_queries = len(c.queries())
    lv.process.stop()
    try:
        q = _run(de, "filter")
        by_peer = {p["peer"]: p for p in q["peers"]}
        assert by_peer["FIU-LV"]["status"] == "unreachable"
        assert by_peer["FIU-FR"]["status"] == "ok"
        assert q["partial"] and q["status"] == "done"
    finally:
        lv.process.start()
    with lv.client("analyst") as c:
        assert len(c.queries()) == lv_queries
        assert {p["node_id"] for p in c.peers()} == {"FIU-DE", "FIU-FR"}
    after = _run(de, "filter")
    assert _hit_set(after) == _hit_set(before)


def _hit_set(q: dict[str, Any]) -> set[tuple[str, str]]:
    return {(h["peer"], h["subject_id"]) for h in q["hits"]}
