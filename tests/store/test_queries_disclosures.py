"""Queries, per-peer results, hits, and disclosure requests."""

from __future__ import annotations

import pytest

from fiumatch.store import (
    Disclosure,
    Hit,
    Query,
    QueryResult,
    RecordConflictError,
    RecordNotFoundError,
    Store,
)
from tests.store.factories import NOW, make_peer, make_subject


def _query(query_id: str = "q1", analyst: str = "ana", created_at: int = NOW) -> Query:
    return Query(
        id=query_id,
        analyst=analyst,
        purpose="money-laundering",
        legal_basis="AMLD art. 53",
        case_ref="CASE-1",
        status="pending",
        created_at=created_at,
    )


def _hit(token: bytes, subject_id: str = "s1", peer_id: str = "fiu-b", query_id: str = "q1") -> Hit:
    return Hit(
        id=f"h-{query_id}-{token[:1].decode()}-{subject_id}",
        hit_token=token,
        query_id=query_id,
        peer_id=peer_id,
        subject_id=subject_id,
        key_types=(3, 1),
        strength=180,
        created_at=NOW,
    )


def _result(peer_id: str = "fiu-b", status: str = "ok", hits: int = 0) -> QueryResult:
    return QueryResult(
        query_id="q1",
        peer_id=peer_id,
        status=status,  # type: ignore[arg-type]
        reason="" if status == "ok" else "agreement does not cover purpose",
        hit_count=hits,
        recorded_at=NOW + 1,
        session_id="sess-1",
    )


@pytest.fixture
def ready(store: Store) -> Store:
    store.peers.add(make_peer("fiu-b", key_byte=2))
    store.peers.add(make_peer("fiu-c", key_byte=3))
    store.subjects.upsert(make_subject("s1"), now=NOW)
    store.queries.create(_query())
    return store


def test_query_round_trip_and_listing(ready: Store) -> None:
    s = ready
    s.queries.create(_query("q2", created_at=NOW + 5))
    s.queries.create(_query("q3", analyst="bob"))
    assert s.queries.require("q1") == _query()
    assert [q.id for q in s.queries.list_by_analyst("ana")] == ["q2", "q1"]
    assert [q.id for q in s.queries.list_recent(limit=1)] == ["q2"]
    with pytest.raises(RecordNotFoundError):
        s.queries.require("zz")
    with pytest.raises(RecordConflictError):
        s.queries.create(_query())


def test_terminal_status_is_final_and_stamped(ready: Store) -> None:
    s = ready
    s.queries.set_status("q1", "running", now=NOW + 1)
    assert s.queries.require("q1").finished_at is None
    s.queries.set_status("q1", "done", now=NOW + 2)
    q = s.queries.require("q1")
    assert (q.status, q.finished_at) == ("done", NOW + 2)
    with pytest.raises(RecordConflictError):
        s.queries.set_status("q1", "running", now=NOW + 3)


def test_a_result_is_stored_with_its_hits(ready: Store) -> None:
    s = ready
    hits = [_hit(b"a" * 16), _hit(b"b" * 16)]
    s.queries.record_result(_result(hits=2), hits)
    s.queries.record_result(_result("fiu-c", "refused"))
    assert [r.status for r in s.queries.results("q1")] == ["ok", "refused"]
    stored = s.queries.hits("q1")
    assert stored == [
        Hit(**{**h.__dict__, "key_types": (1, 3)})  # stored sorted
        for h in hits
    ]
    assert s.queries.hits("q1", "fiu-c") == []
    assert s.queries.hit(hits[0].id) == stored[0]
    assert s.queries.hit("h-nope") is None
    assert s.queries.hits_by_token(b"a" * 16) == [stored[0]]
    assert s.queries.hits_by_token(b"a" * 16, peer_id="fiu-c") == []
    assert s.queries.hits_by_token(b"z" * 16) == []


def test_a_result_whose_hit_fails_is_not_stored_at_all(ready: Store) -> None:
    s = ready
    hits = [_hit(b"a" * 16), _hit(b"b" * 16, subject_id="ghost")]
    with pytest.raises(RecordConflictError):
        s.queries.record_result(_result(hits=2), hits)
    assert s.queries.results("q1") == []
    assert s.queries.hits("q1") == []


def test_result_invariants_are_checked_before_writing(ready: Store) -> None:
    s = ready
    with pytest.raises(ValueError):
        s.queries.record_result(_result(hits=1), [])
    with pytest.raises(ValueError):
        s.queries.record_result(_result("fiu-c", hits=1), [_hit(b"a" * 16)])
    s.queries.record_result(_result())
    with pytest.raises(RecordConflictError):
        s.queries.record_result(_result())
    with pytest.raises(RecordConflictError):
        s.queries.record_result(_result("fiu-c", status="maybe"))


def test_a_streamed_result_counts_its_hits_and_is_all_or_nothing(ready: Store) -> None:
    s = ready
    hits = [_hit(b"a" * 16), _hit(b"b" * 16)]
    assert s.queries.record_result_stream(_result(hits=99), iter(hits)) == 2
    (stored,) = s.queries.results("q1")
    assert stored.hit_count == 2 and len(s.queries.hits("q1")) == 2
    # a hit of another peer, or one that fails in the middle: nothing of the result stays
    with pytest.raises(ValueError):
        s.queries.record_result_stream(_result("fiu-c"), iter([_hit(b"c" * 16)]))
    bad = [_hit(b"d" * 16, peer_id="fiu-c"), _hit(b"e" * 16, peer_id="fiu-c", subject_id="ghost")]
    with pytest.raises(RecordConflictError):
        s.queries.record_result_stream(_result("fiu-c"), iter(bad))
    assert [r.peer_id for r in s.queries.results("q1")] == ["fiu-b"]
    assert s.queries.hits("q1", "fiu-c") == []
    assert s.queries.record_result_stream(_result("fiu-c", "refused"), iter(())) == 0


def test_a_hit_id_is_unique_but_a_token_may_come_back_in_another_query(ready: Store) -> None:
    s = ready
    with pytest.raises(RecordConflictError):
        s.queries.record_result(_result(hits=2), [_hit(b"a" * 16), _hit(b"a" * 16)])
    s.queries.record_result(_result(hits=1), [_hit(b"a" * 16)])
    s.queries.create(_query("q2", created_at=NOW + 5))
    again = Hit(**{**_hit(b"a" * 16, query_id="q2").__dict__, "created_at": NOW + 5})
    s.queries.record_result(QueryResult(**{**_result(hits=1).__dict__, "query_id": "q2"}), [again])
    assert [h.query_id for h in s.queries.hits_by_token(b"a" * 16)] == ["q2", "q1"]


# --- disclosures ------------------------------------------------------------------------


def _disclosure(disclosure_id: str = "d1", direction: str = "out") -> Disclosure:
    return Disclosure(
        id=disclosure_id,
        direction=direction,  # type: ignore[arg-type]
        peer_id="fiu-b",
        hit_token=b"a" * 16,
        purpose="money-laundering",
        case_ref="CASE-1",
        onward_consent=True,
        status="pending",
        created_at=NOW,
    )


def test_disclosure_life_cycle(ready: Store) -> None:
    s = ready
    s.disclosures.create(_disclosure())
    assert s.disclosures.require("d1") == _disclosure()
    with pytest.raises(RecordConflictError):
        s.disclosures.mark_released("d1", {"name": "x"}, now=NOW)
    approved = s.disclosures.decide("d1", "approved", reason="case supports it", now=NOW + 1)
    assert (approved.status, approved.decided_at, approved.decision_reason) == (
        "approved",
        NOW + 1,
        "case supports it",
    )
    with pytest.raises(RecordConflictError):
        s.disclosures.decide("d1", "denied", reason="second click", now=NOW + 2)
    released = s.disclosures.mark_released("d1", {"name": "X", "dob": "1970"}, now=NOW + 3)
    assert released.status == "released"
    assert released.released == {"dob": "1970", "name": "X"}
    assert released.decided_at == NOW + 1
    assert released.onward_consent is True


def test_disclosure_listing_filters(ready: Store) -> None:
    s = ready
    s.disclosures.create(_disclosure("d1", "out"))
    s.disclosures.create(_disclosure("d2", "in"))
    s.disclosures.decide("d2", "denied", reason="no basis", now=NOW)
    assert [d.id for d in s.disclosures.list_requests()] == ["d1", "d2"]
    assert [d.id for d in s.disclosures.list_requests(direction="in")] == ["d2"]
    assert [d.id for d in s.disclosures.list_requests(status="pending")] == ["d1"]
    assert s.disclosures.list_requests(direction="in", status="pending") == []


def test_disclosure_decisions_are_checked(ready: Store) -> None:
    s = ready
    s.disclosures.create(_disclosure())
    with pytest.raises(ValueError):
        s.disclosures.decide("d1", "released", reason="", now=NOW)  # type: ignore[arg-type]
    with pytest.raises(RecordNotFoundError):
        s.disclosures.decide("zz", "approved", reason="", now=NOW)
    with pytest.raises(RecordConflictError):
        s.disclosures.create(_disclosure("d9", direction="sideways"))


def test_onward_dissemination_needs_a_request_then_one_decision(ready: Store) -> None:
    s = ready
    s.disclosures.create(_disclosure())
    d = s.disclosures.require("d1")
    assert (d.onward_status, d.onward_consent) == ("none", True)  # as created (legacy flag)
    with pytest.raises(RecordConflictError):
        s.disclosures.decide_onward("d1", grant=True, reason="nothing asked", now=NOW)
    asked = s.disclosures.request_onward(
        "d1", recipient="national police", purpose="criminal investigation", now=NOW + 1
    )
    assert (asked.onward_status, asked.onward_consent) == ("requested", False)
    assert (asked.onward_recipient, asked.onward_purpose) == (
        "national police",
        "criminal investigation",
    )
    assert asked.onward_requested_at == NOW + 1
    with pytest.raises(RecordConflictError):
        s.disclosures.request_onward("d1", recipient="x", purpose="y", now=NOW + 2)
    refused = s.disclosures.decide_onward("d1", grant=False, reason="not yet", now=NOW + 3)
    assert (refused.onward_status, refused.onward_reason, refused.onward_consent) == (
        "refused",
        "not yet",
        False,
    )
    s.disclosures.request_onward("d1", recipient="prosecutor", purpose="charges", now=NOW + 4)
    granted = s.disclosures.decide_onward("d1", grant=True, reason="agreed", now=NOW + 5)
    assert (granted.onward_status, granted.onward_consent, granted.onward_decided_at) == (
        "granted",
        True,
        NOW + 5,
    )
    with pytest.raises(RecordConflictError):
        s.disclosures.decide_onward("d1", grant=False, reason="second click", now=NOW + 6)
    with pytest.raises(RecordNotFoundError):
        s.disclosures.request_onward("zz", recipient="x", purpose="y", now=NOW)


def test_an_incoming_request_keeps_its_subject_until_the_subject_is_purged(ready: Store) -> None:
    s = ready
    d = Disclosure(**{**_disclosure("d2", "in").__dict__, "subject_id": "s1", "hit_id": None})
    s.disclosures.create(d)
    assert s.disclosures.require("d2").subject_id == "s1"
    s.subjects.delete("s1")
    assert s.disclosures.require("d2").subject_id is None
