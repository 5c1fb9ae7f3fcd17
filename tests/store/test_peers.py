"""Peers, agreements and budget usage."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest

from fiumatch.store import (
    Agreement,
    BudgetCharge,
    RecordConflictError,
    RecordNotFoundError,
    Store,
)
from tests.store.factories import NOW, make_peer


def _agreement(agreement_id: str = "ag-1", **changes: object) -> Agreement:
    base = Agreement(
        id=agreement_id,
        peer_id="fiu-b",
        modes=("psi-cardinality", "psi-hits"),
        purposes=("money-laundering",),
        identifier_types=("iban", "passport"),
        budget_per_epoch=100,
        max_set_size=50_000,
        valid_from=NOW,
        valid_until=NOW + 1000,
        signed_json='{"signed":true}',
        created_at=NOW,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


# --- peers ------------------------------------------------------------------------------


def test_add_get_and_list_peers(store: Store) -> None:
    b, c = make_peer("fiu-b", key_byte=2), make_peer("fiu-c", key_byte=3)
    store.peers.add(c)
    store.peers.add(b)
    assert store.peers.get("fiu-b") == b
    assert store.peers.by_fingerprint(c.fingerprint) == c
    assert store.peers.list_all() == [b, c]
    assert store.peers.get("fiu-x") is None
    with pytest.raises(RecordNotFoundError):
        store.peers.require("fiu-x")


def test_node_id_and_fingerprint_are_unique(store: Store) -> None:
    store.peers.add(make_peer("fiu-b"))
    with pytest.raises(RecordConflictError):
        store.peers.add(make_peer("fiu-b", key_byte=9))
    with pytest.raises(RecordConflictError):
        store.peers.add(replace(make_peer("fiu-c"), fingerprint=make_peer("fiu-b").fingerprint))


def test_a_public_key_must_be_32_bytes(store: Store) -> None:
    with pytest.raises(RecordConflictError):
        store.peers.add(replace(make_peer(), public_key=b"short"))


def test_revoke_hides_the_peer_and_keeps_the_first_time(store: Store) -> None:
    store.peers.add(make_peer("fiu-b"))
    store.peers.revoke("fiu-b", now=NOW + 5)
    store.peers.revoke("fiu-b", now=NOW + 99)
    assert store.peers.list_all() == []
    revoked = store.peers.require("fiu-b")
    assert revoked.revoked_at == NOW + 5
    assert not revoked.active
    assert store.peers.list_all(include_revoked=True) == [revoked]
    with pytest.raises(RecordNotFoundError):
        store.peers.revoke("fiu-x", now=NOW)


def test_repin_and_update_url_change_only_what_they_say(store: Store) -> None:
    store.peers.add(make_peer("fiu-b"))
    store.peers.update_url("fiu-b", "https://new.example")
    store.peers.repin("fiu-b", b"\x01" * 32, "SHA256:new")
    peer = store.peers.require("fiu-b")
    assert (peer.url, peer.public_key, peer.fingerprint) == (
        "https://new.example",
        b"\x01" * 32,
        "SHA256:new",
    )
    with pytest.raises(RecordNotFoundError):
        store.peers.repin("fiu-x", b"\x01" * 32, "SHA256:x")
    with pytest.raises(RecordNotFoundError):
        store.peers.update_url("fiu-x", "https://x")


# --- agreements -------------------------------------------------------------------------


def test_agreements_round_trip_and_need_a_known_peer(store: Store) -> None:
    with pytest.raises(RecordConflictError):
        store.agreements.add(_agreement())
    store.peers.add(make_peer("fiu-b"))
    store.agreements.add(_agreement())
    assert store.agreements.require("ag-1") == _agreement()
    assert store.agreements.list_for_peer("fiu-b") == [_agreement()]
    with pytest.raises(RecordNotFoundError):
        store.agreements.require("ag-x")


def test_agreements_in_force_respect_the_half_open_window_and_revocation(store: Store) -> None:
    store.peers.add(make_peer("fiu-b"))
    store.agreements.add(_agreement("ag-1"))
    store.agreements.add(_agreement("ag-2", valid_from=NOW + 500, valid_until=NOW + 2000))
    assert [a.id for a in store.agreements.in_force("fiu-b", NOW - 1)] == []
    assert [a.id for a in store.agreements.in_force("fiu-b", NOW)] == ["ag-1"]
    assert [a.id for a in store.agreements.in_force("fiu-b", NOW + 500)] == ["ag-1", "ag-2"]
    assert [a.id for a in store.agreements.in_force("fiu-b", NOW + 1000)] == ["ag-2"]
    store.agreements.revoke("ag-2", now=NOW + 600)
    assert store.agreements.in_force("fiu-b", NOW + 1000) == []
    assert not store.agreements.require("ag-2").in_force(NOW + 1000)
    assert store.agreements.require("ag-1").in_force(NOW + 999)


def test_an_agreement_must_end_after_it_starts(store: Store) -> None:
    store.peers.add(make_peer("fiu-b"))
    with pytest.raises(RecordConflictError):
        store.agreements.add(_agreement(valid_until=NOW))


# --- budget -----------------------------------------------------------------------------


def test_budget_is_spent_per_peer_and_epoch_up_to_the_limit(store: Store) -> None:
    store.peers.add(make_peer("fiu-b"))
    charge = store.budget.try_consume("fiu-b", 7, 60, limit=100, now=NOW)
    assert charge == BudgetCharge(granted=True, used=60, remaining=40)
    refused = store.budget.try_consume("fiu-b", 7, 41, limit=100, now=NOW)
    assert refused == BudgetCharge(granted=False, used=60, remaining=40)
    assert store.budget.used("fiu-b", 7) == 60  # a refused charge writes nothing
    assert store.budget.try_consume("fiu-b", 7, 40, limit=100, now=NOW).granted
    assert store.budget.try_consume("fiu-b", 8, 100, limit=100, now=NOW).granted
    assert store.budget.used("fiu-b", 9) == 0
    with pytest.raises(ValueError):
        store.budget.try_consume("fiu-b", 7, -1, limit=100, now=NOW)
    assert store.budget.prune_before(8) == 1
    assert store.budget.used("fiu-b", 7) == 0


def test_concurrent_charges_never_overspend(db_path: Path) -> None:
    setup = Store.open(db_path)
    setup.peers.add(make_peer("fiu-b"))
    granted: list[bool] = []
    lock = threading.Lock()

    def spend() -> None:
        s = Store.open(db_path, busy_timeout_ms=10_000)
        try:
            for _ in range(15):
                ok = s.budget.try_consume("fiu-b", 1, 1, limit=20, now=NOW).granted
                with lock:
                    granted.append(ok)
        finally:
            s.close()

    threads = [threading.Thread(target=spend) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert granted.count(True) == 20
    assert setup.budget.used("fiu-b", 1) == 20
    setup.close()
