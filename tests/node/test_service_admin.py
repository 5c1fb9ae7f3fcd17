"""Service methods the web interface (and any other front end) uses instead of reading the
store: an incoming disclosure request with the record it names, a subject search, and the
admin's disabling of users and revocation of peers and agreements, each with its role check
and its audit entry."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from fiumatch.auditlog.entry import decode_entry, entry_to_dict
from fiumatch.errors import FiumatchError
from fiumatch.ingest import build_subject
from fiumatch.node.app import build_service
from fiumatch.node.directory import create_node_dir
from fiumatch.node.errors import BadTokenError, ConflictError, NotFoundError, PermissionDeniedError
from fiumatch.node.keys import NodeKeys
from fiumatch.node.service import PASTED_SOURCE, NodeService
from fiumatch.store import Disclosure, Peer, User
from tests.node.helpers import det_rng

NOW = 1_760_000_000


@dataclass
class Node:
    service: NodeService
    users: dict[str, User]
    tokens: dict[str, str]


def _subject(ref: str, name: str, passport: str, source: str = "csv") -> Any:
    built = build_subject(
        {"local_ref": ref, "type": "person", "name": name, "passport_number": passport,
         "passport_country": "DE", "birth_date": "1970-01-02"},
        source=source, file="t.csv", record=ref, line=None, default_retention=date(2040, 1, 1),
    )  # fmt: skip
    assert not isinstance(built, list)
    return built


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    _, _, admin_token = create_node_dir(
        tmp_path / "FIU-A", "FIU-A", port=8443, scrypt_log2_n=10, rng=det_rng(b"a"), env={},
        clock=lambda: NOW,
    )  # fmt: skip
    service = build_service(tmp_path / "FIU-A", clock=lambda: NOW, rng=os.urandom, env={})
    try:
        admin = service.authenticate(admin_token)
        tokens = {"admin": admin_token}
        users = {"admin": admin}
        for role in ("analyst", "supervisor", "auditor"):
            tokens[role] = service.add_user(admin, role, role)
            users[role] = service.authenticate(tokens[role])
        other = NodeKeys.generate(os.urandom)
        service.store.peers.add(
            Peer(node_id="FIU-P", url="https://127.0.0.1:9", public_key=other.public_key_raw,
                 fingerprint=other.fingerprint, added_at=NOW)
        )  # fmt: skip
        service.load_subjects(
            [
                _subject("REF-1", "Anna Example", "C01X00T47"),
                _subject("REF-2", "Bruno Beispiel", "C01X00T48"),
                _subject("REF_3", "Carla 100% Muster", "C01X00T49"),
            ]
        )
        service.load_subjects([_subject("PASTE-1", "Anna Pasted", "C01X00T50", PASTED_SOURCE)])
        yield Node(service, users, tokens)
    finally:
        service.close()
        service.store.close()


def _entries(service: NodeService, event: str) -> list[dict[str, Any]]:
    out = []
    for leaf in service.store.audit.leaves(0, service.store.audit.size()):
        entry = entry_to_dict(decode_entry(leaf.entry))
        if str(entry["event"]).lower() == event:
            out.append(entry)
    return out


def _refused(call: Any, *args: Any, **kw: Any) -> None:
    with pytest.raises(PermissionDeniedError):
        call(*args, **kw)


# --- subject search ------------------------------------------------------------------------


def test_search_finds_stored_subjects_by_reference_or_name(node: Node) -> None:
    svc, analyst = node.service, node.users["analyst"]
    found = svc.search_subjects(analyst, "anna")
    assert found["total"] == 3  # pasted subjects are not counted
    assert [s["local_ref"] for s in found["subjects"]] == ["REF-1"]  # nor found
    assert found["subjects"][0]["name"] == "Anna Example" and found["subjects"][0]["type"]
    assert [s["local_ref"] for s in svc.search_subjects(analyst, "REF")["subjects"]] == [
        "REF-1", "REF-2", "REF_3"
    ]  # fmt: skip
    # '%' and '_' are literal characters, not wildcards.
    assert [s["local_ref"] for s in svc.search_subjects(analyst, "REF_")["subjects"]] == ["REF_3"]
    assert [s["local_ref"] for s in svc.search_subjects(analyst, "100%")["subjects"]] == ["REF_3"]
    assert len(svc.search_subjects(analyst, "", limit=2)["subjects"]) == 2
    assert svc.search_subjects(node.users["supervisor"], "x")["total"] == 3
    _refused(svc.search_subjects, node.users["auditor"], "anna")


# --- disclosure preview --------------------------------------------------------------------


def _incoming(svc: NodeService, did: str, subject_id: str | None) -> None:
    svc.store.disclosures.create(
        Disclosure(
            id=did, direction="in", peer_id="FIU-P", hit_token=bytes(40),
            purpose="money_laundering", case_ref="P-1", onward_consent=False, status="pending",
            created_at=NOW, subject_id=subject_id,
        )
    )  # fmt: skip


def test_preview_shows_the_supervisor_the_record_an_incoming_request_names(node: Node) -> None:
    svc = node.service
    (subject_id,) = [
        s["id"] for s in svc.search_subjects(node.users["analyst"], "REF-2")["subjects"]
    ]
    _incoming(svc, "d-01", subject_id)
    before = svc.store.audit.size()
    p = svc.preview_disclosure(node.users["supervisor"], "d-01")
    assert p["id"] == "d-01" and p["status"] == "pending" and p["peer"] == "FIU-P"
    assert p["record"]["local_ref"] == "REF-2" and p["record"]["name"] == "Bruno Beispiel"
    assert p["record"]["birth_date"] == "1970-01-02" and p["record_missing"] == ""
    assert svc.store.audit.size() == before  # a preview logs nothing and releases nothing
    assert svc.store.disclosures.require("d-01").status == "pending"
    _incoming(svc, "d-02", None)
    gone = svc.preview_disclosure(node.users["supervisor"], "d-02")
    assert gone["record"] is None and "purged" in gone["record_missing"]
    for role in ("analyst", "auditor"):
        _refused(svc.preview_disclosure, node.users[role], "d-01")
    with pytest.raises(NotFoundError):
        svc.preview_disclosure(node.users["supervisor"], "d-nope")


# --- admin: users, peers, agreements -------------------------------------------------------


def test_an_admin_disables_a_user_whose_token_then_stops_working(node: Node) -> None:
    svc, admin = node.service, node.users["admin"]
    for role in ("analyst", "supervisor", "auditor"):
        _refused(svc.disable_user, node.users[role], "auditor")
    user = svc.disable_user(admin, "analyst")
    assert not user.active and user.disabled_at == NOW
    with pytest.raises(BadTokenError):
        svc.authenticate(node.tokens["analyst"])
    (entry,) = [e for e in _entries(svc, "role_changed") if e["change"] == "suspended"]
    assert (entry["actor"], entry["target"], entry["role"]) == (admin.name, "analyst", "analyst")
    with pytest.raises(ConflictError):
        svc.disable_user(admin, "analyst")  # already disabled: no second entry
    with pytest.raises(ConflictError):
        svc.disable_user(admin, admin.name)  # never lock yourself out
    with pytest.raises(NotFoundError):
        svc.disable_user(admin, "nobody")
    assert len([e for e in _entries(svc, "role_changed") if e["change"] == "suspended"]) == 1


def _agreement(svc: NodeService, admin: User) -> str:
    return svc.add_agreement(
        admin, peer_id="FIU-P", modes=["filter"], purposes=["money_laundering"],
        identifier_types=["passport"], budget_per_epoch=100, max_set_size=100,
        valid_from=NOW - 60, valid_until=NOW + 86400,
    ).id  # fmt: skip


def _live(agreement_id: str) -> Any:
    from fiumatch.node.service import _LiveSession

    return _LiveSession(
        machine=None,  # type: ignore[arg-type]
        peer_id="FIU-P", mode="filter", epoch=1, agreement_id=agreement_id,
        purpose="money_laundering", id_types=("passport",), set_size=1, last_seen=NOW,
    )  # fmt: skip


def test_an_admin_revokes_an_agreement(node: Node) -> None:
    svc, admin = node.service, node.users["admin"]
    aid = _agreement(svc, admin)
    assert [a.id for a in svc.store.agreements.in_force("FIU-P", NOW)] == [aid]
    _refused(svc.revoke_agreement, node.users["supervisor"], aid)
    svc._live["ab" * 16] = _live(aid)  # a session the peer holds open under it
    svc._live["cd" * 16] = _live("agr-other")
    revoked = svc.revoke_agreement(admin, aid)
    assert list(svc._live) == ["cd" * 16]  # that session is aborted, the other goes on
    (closed,) = _entries(svc, "session_closed")
    assert (closed["session"], closed["outcome"]) == ("ab" * 16, "aborted")
    assert revoked.revoked_at == NOW and not revoked.in_force(NOW)
    assert svc.store.agreements.in_force("FIU-P", NOW) == []
    (entry,) = [e for e in _entries(svc, "agreement_changed") if e["change"] == "revoked"]
    assert (entry["agreement"], entry["peer"], entry["actor"]) == (aid, "FIU-P", admin.name)
    assert len(entry["object_sha256"]) == 64
    with pytest.raises(ConflictError):
        svc.revoke_agreement(admin, aid)
    with pytest.raises(NotFoundError):
        svc.revoke_agreement(admin, "agr-nope")


def test_an_admin_revokes_a_peer(node: Node) -> None:
    svc, admin = node.service, node.users["admin"]
    _refused(svc.revoke_peer, node.users["auditor"], "FIU-P")
    svc._live["ab" * 16] = _live("agr-any")
    peer = svc.revoke_peer(admin, "FIU-P")
    assert svc._live == {}  # its open session is aborted
    assert [e["outcome"] for e in _entries(svc, "session_closed")] == ["aborted"]
    assert not peer.active and peer.revoked_at == NOW
    assert [p.node_id for p in svc.list_peers()] == []  # no query goes to it any more
    (entry,) = [e for e in _entries(svc, "peer_changed") if e["change"] == "revoked"]
    assert (entry["peer"], entry["actor"]) == ("FIU-P", admin.name)
    with pytest.raises(ConflictError):
        svc.revoke_peer(admin, "FIU-P")
    with pytest.raises(FiumatchError):
        svc.revoke_peer(admin, "FIU-NOPE")
