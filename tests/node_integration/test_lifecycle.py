"""Data and disclosure life cycle on real nodes: pasted identifiers in an analyst query, the
retention purge (a purged subject stops matching and is audited), onward-dissemination consent
asked, granted and refused on both nodes, a disclosure decided after its epoch rotated, and the
per-peer progress a query reports (and the CLI shows)."""

from __future__ import annotations

import csv
import json
from datetime import date, timedelta
from typing import Any

import pytest

from fiumatch.cli.main import main
from fiumatch.client.api import ApiError
from fiumatch.demo.run import DemoNode, wait_query
from fiumatch.store import Subject

pytestmark = pytest.mark.slow


def _query(node: DemoNode, peer: str, mode: str = "filter", **spec: Any) -> dict[str, Any]:
    spec.setdefault("all_subjects", not spec.get("subject_ids") and not spec.get("records"))
    with node.client("analyst") as c:
        q = c.create_query(
            purpose="money_laundering",
            legal_basis="AMLD art. 53",
            case_ref="LIFE-1",
            mode=mode,
            peers=[peer],
            **spec,
        )
        q = wait_query(c, q, timeout=30)
    assert q["status"] == "done", q
    return q


def _events(node: DemoNode, event: str) -> list[dict[str, Any]]:
    with node.client("auditor") as c:
        entries: list[dict[str, Any]] = c.audit_entries()["entries"]
    return [e for e in entries if str(e["event"]).upper() == event]


def _rotate(owner: DemoNode, peer: str) -> None:
    with owner.client() as c:
        c.rotate(peer)


def test_pasted_identifiers_are_queried_but_never_served(cluster: list[DemoNode]) -> None:
    de, fr = cluster[0], cluster[1]
    held_by_de = {h["local_ref"] for h in _query(fr, "FIU-DE")["hits"]}
    with (fr.root.parent / "data" / "FR.csv").open(encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["local_ref"] not in held_by_de]
    row = next(r for r in rows if r["type"] == "person" and r["passport_number"])
    pasted = {k: v for k, v in row.items() if v} | {"local_ref": "PASTED-1"}

    q = _query(de, "FIU-FR", records=[pasted])
    (peer,) = q["peers"]
    assert peer["status"] == "ok"
    assert [h["local_ref"] for h in q["hits"]] == ["PASTED-1"]
    assert "passport" in q["hits"][0]["key_types"]
    # DE now holds the pasted subject, but serves only its own data: FR still finds nothing.
    _rotate(de, "FIU-FR")  # a fresh precomputed set, built after the paste
    for mode in ("filter", "mutual"):
        again = {h["local_ref"] for h in _query(fr, "FIU-DE", mode)["hits"]}
        assert row["local_ref"] not in again
    # A pasted record that does not validate is refused with the field, not the value.
    with de.client("analyst") as c, pytest.raises(ApiError) as err:
        c.create_query(
            purpose="money_laundering",
            legal_basis="AMLD art. 53",
            case_ref="LIFE-1",
            records=[{"type": "person", "passport_number": "X1234567"}],
        )
    assert err.value.status == 409 and "passport_country" in err.value.error_details["fields"]
    assert "X1234567" not in json.dumps(err.value.error_details)


def test_a_subject_past_retention_is_purged_stops_matching_and_is_audited(
    cluster: list[DemoNode],
) -> None:
    de, fr = cluster[0], cluster[1]
    already = {h["subject_id"] for h in _query(de, "FIU-FR")["hits"]}
    with de.dir.open_store() as store:
        probe = next(
            s for s in store.subjects.ids() if s not in already and store.subjects.keys_of(s)
        )
        keys = store.subjects.keys_of(probe)
    today = date.today()
    with fr.dir.open_store() as store:  # FR holds the same person, kept until today only
        copy = Subject(
            id="ffff0000ffff0000ffff0000ffff0000",
            local_ref="FR-EXPIRING-1",
            subject_type="person",
            display={"name": "Expiring Record"},
            retain_until=today,
            source="csv",
            source_record="1",
        )
        store.subjects.upsert_with_keys(
            copy,
            [
                type(k)(subject_id=copy.id, key_type=k.key_type, key=k.key, strength=k.strength)
                for k in keys
            ],
            now=0,
        )
    _rotate(fr, "FIU-DE")  # new data joins at the next epoch
    before = _query(de, "FIU-FR", subject_ids=[probe])
    assert [h["subject_id"] for h in before["hits"]] == [probe]
    purges = len(_events(fr, "PURGE"))

    with fr.client() as c:
        assert c.purge(today.isoformat())["purged"] == 0  # retain_until is the last day kept
        assert c.purge((today + timedelta(days=1)).isoformat())["purged"] == 1

    assert _query(de, "FIU-FR", subject_ids=[probe])["hits"] == []  # out of the active epoch
    _rotate(fr, "FIU-DE")
    assert _query(de, "FIU-FR", subject_ids=[probe])["hits"] == []  # and of the next one
    with fr.dir.open_store() as store:
        assert store.subjects.get(copy.id) is None and store.subjects.keys_of(copy.id) == []
    entries = _events(fr, "PURGE")
    assert len(entries) == purges + 2
    assert [(e["scope"], e["records"]) for e in entries[-2:]] == [
        ("retention", 0),
        ("retention", 1),
    ]
    assert entries[-1]["actor"] == "admin"


def _disclose(de: DemoNode, hit: dict[str, Any], **onward: str) -> dict[str, Any]:
    with de.client("analyst") as c:
        return dict(
            c.request_disclosure(
                hit_id=hit["id"],
                purpose="money_laundering",
                case_ref="LIFE-1",
                legal_basis="AMLD art. 53",
                **onward,
            )
        )


def test_onward_dissemination_is_asked_granted_or_refused_and_audited_on_both_nodes(
    cluster: list[DemoNode],
) -> None:
    de, fr = cluster[0], cluster[1]
    hits = _query(de, "FIU-FR")["hits"]
    assert len(hits) >= 2
    # 1. asked after release, granted
    first = _disclose(de, hits[0])
    assert first["onward"]["status"] == "none"
    assert first["onward_dissemination"] == "requires the owner's prior consent"
    with fr.client("supervisor") as c:
        c.decide_disclosure(first["id"], approve=True, reason="within the MoU")
    with de.client("analyst") as c:
        asked = c.request_onward(
            first["id"], recipient="public prosecutor", purpose="criminal proceedings"
        )
        assert asked["onward"]["status"] == "requested"
        with pytest.raises(ApiError) as twice:
            c.request_onward(first["id"], recipient="x", purpose="y")
        assert twice.value.status == 409
    with fr.client("analyst") as c, pytest.raises(ApiError) as denied:
        c.decide_onward(first["id"], grant=True, reason="analysts may not")
    assert denied.value.status == 403
    with fr.client("supervisor") as c:
        incoming = {d["id"]: d for d in c.disclosures("in")}
        assert incoming[first["id"]]["onward"] == {
            **incoming[first["id"]]["onward"],
            "status": "requested",
            "recipient": "public prosecutor",
            "purpose": "criminal proceedings",
        }
        granted = c.decide_onward(first["id"], grant=True, reason="proceedings are open")
    assert granted["onward"]["status"] == "granted"
    with de.client("analyst") as c:
        got = c.refresh_disclosure(first["id"])
    assert got["status"] == "released" and got["onward"]["status"] == "granted"
    assert got["onward"]["reason"] == "proceedings are open"
    assert "public prosecutor" in got["onward_dissemination"]

    # 2. asked with the request itself, refused while the disclosure is approved
    second = _disclose(
        de, hits[1], onward_recipient="tax authority", onward_purpose="tax assessment"
    )
    assert second["onward"]["status"] == "requested"
    with fr.client("supervisor") as c:
        c.decide_disclosure(second["id"], approve=True, reason="within the MoU")
        c.decide_onward(second["id"], grant=False, reason="not a purpose of the MoU")
    with de.client("analyst") as c:
        got2 = c.refresh_disclosure(second["id"])
    assert got2["status"] == "released" and got2["onward"]["status"] == "refused"
    assert "do not pass it on" in got2["onward_dissemination"]

    for node, direction in ((de, "out"), (fr, "in")):
        for did, decision in ((first["id"], "approved"), (second["id"], "denied")):
            session = f"{did}:onward"
            asked_e = [e for e in _events(node, "DISCLOSURE_REQUESTED") if e["session"] == session]
            decided_e = [e for e in _events(node, "DISCLOSURE_DECIDED") if e["session"] == session]
            assert [e["direction"] for e in asked_e] == [direction]
            assert [(e["direction"], e["decision"]) for e in decided_e] == [(direction, decision)]
    # both nodes logged the same request bytes for each onward request
    digests = [
        {e["session"]: e["request_sha256"] for e in _events(n, "DISCLOSURE_REQUESTED")}
        for n in (de, fr)
    ]
    for did in (first["id"], second["id"]):
        assert digests[0][f"{did}:onward"] == digests[1][f"{did}:onward"]


def test_a_disclosure_is_decided_after_its_epoch_rotated(cluster: list[DemoNode]) -> None:
    de, fr = cluster[0], cluster[1]
    hit = _query(de, "FIU-FR")["hits"][0]
    pending = _disclose(de, hit)
    _rotate(fr, "FIU-DE")
    with fr.client("supervisor") as c:
        ok = c.decide_disclosure(pending["id"], approve=True, reason="within the MoU")
    assert ok["status"] == "released" and ok["released"]["local_ref"]
    assert ok["subject_ref"] == ok["released"]["local_ref"]
    # A new request on the old token is refused: its epoch's key material is gone.
    with de.client("analyst") as c, pytest.raises(ApiError) as err:
        c.request_disclosure(hit_id=hit["id"], purpose="money_laundering", case_ref="LIFE-1")
    assert err.value.status == 502 and err.value.error_details["peer_code"] == "epoch_retired"


def test_a_query_reports_progress_per_peer_and_the_cli_shows_hits(
    cluster: list[DemoNode], capsys: pytest.CaptureFixture[str]
) -> None:
    de = cluster[0]
    q = _query(de, "FIU-FR")
    (peer,) = q["peers"]
    assert peer["progress"]["total"] > 0
    assert peer["progress"] == {
        "stage": "ok",
        "done": peer["progress"]["total"],
        "total": peer["progress"]["total"],
    }
    args = ["query", "--purpose", "money_laundering", "--legal-basis", "AMLD art. 53"]
    args += ["--case-ref", "CLI-1", "--all", "--peer", "FIU-FR", "--dir", str(de.root)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "hit id" in out and "h-" in out and "FIU-FR" in out
    assert any(word in out for word in ("strong", "composite", "phonetic"))


def test_the_disclosure_commands_carry_onward_consent_end_to_end(
    cluster: list[DemoNode], capsys: pytest.CaptureFixture[str]
) -> None:
    de, fr = cluster[0], cluster[1]
    hit = _query(de, "FIU-FR")["hits"][-1]
    capsys.readouterr()
    request = ["disclosure", "request", hit["id"], "--purpose", "money_laundering"]
    request += ["--case-ref", "CLI-2", "--onward-recipient", "customs", "--onward-purpose"]
    request += ["customs fraud case", "--dir", str(de.root)]
    assert main(request) == 0
    did = json.loads(capsys.readouterr().out)["id"]
    # the owner's admin may decide (admins hold every role); analysts may not
    decide = ["disclosure", "decide", did, "--approve", "--reason", "within the MoU"]
    decide += ["--fields", "name,local_ref", "--grant-onward", "--dir", str(fr.root)]
    assert main(decide) == 0
    decided = json.loads(capsys.readouterr().out)
    assert set(decided["released"]) == {"name", "local_ref", "decision_reason"}
    assert decided["onward"]["status"] == "granted"
    assert main(["disclosure", "status", did, "--dir", str(de.root)]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["status"] == "released" and status["onward"]["status"] == "granted"
    assert (
        main(
            ["disclosure", "onward-decide", did, "--refuse", "--reason", "x", "--dir", str(fr.root)]
        )
        == 3
    )  # already decided: 409
