"""Subjects and match keys: upsert, key replacement, lookup, paging, retention purge."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fiumatch.store import (
    Hit,
    MatchKey,
    Query,
    QueryResult,
    RecordConflictError,
    RecordNotFoundError,
    Store,
)
from tests.store.factories import NOW, make_peer, make_subject


def _key(subject_id: str, key: bytes, key_type: int = 1, strength: int = 200) -> MatchKey:
    return MatchKey(subject_id=subject_id, key_type=key_type, key=key, strength=strength)


def test_upsert_inserts_then_updates_by_stable_id(store: Store) -> None:
    subject = make_subject("s1")
    assert store.subjects.upsert(subject, now=NOW) is True
    changed = replace(subject, display={"name": "New Name"}, retain_until=date(2031, 5, 6))
    assert store.subjects.upsert(changed, now=NOW + 10) is False
    assert store.subjects.get("s1") == changed
    assert store.subjects.count() == 1
    row = (
        store.db.connection()
        .execute("SELECT created_at, updated_at FROM subjects WHERE id = 's1'")
        .fetchone()
    )
    assert (row["created_at"], row["updated_at"]) == (NOW, NOW + 10)


def test_get_and_require_of_an_unknown_subject(store: Store) -> None:
    assert store.subjects.get("nope") is None
    with pytest.raises(RecordNotFoundError) as info:
        store.subjects.require("nope")
    assert "nope" not in str(info.value)


def test_replace_keys_swaps_the_whole_set(store: Store) -> None:
    store.subjects.upsert(make_subject("s1"), now=NOW)
    store.subjects.replace_keys("s1", [_key("s1", b"a"), _key("s1", b"b", key_type=2)])
    store.subjects.replace_keys("s1", [_key("s1", b"c")])
    assert store.subjects.keys_of("s1") == [_key("s1", b"c")]


def test_a_failing_key_replacement_keeps_the_old_keys(store: Store) -> None:
    store.subjects.upsert(make_subject("s1"), now=NOW)
    store.subjects.replace_keys("s1", [_key("s1", b"old")])
    duplicate = [_key("s1", b"x"), _key("s1", b"x")]
    with pytest.raises(RecordConflictError):
        store.subjects.replace_keys("s1", duplicate)
    out_of_range = [_key("s1", b"y", strength=999)]
    with pytest.raises(RecordConflictError):
        store.subjects.replace_keys("s1", out_of_range)
    assert store.subjects.keys_of("s1") == [_key("s1", b"old")]


def test_keys_of_another_subject_are_refused_before_any_write(store: Store) -> None:
    store.subjects.upsert(make_subject("s1"), now=NOW)
    store.subjects.replace_keys("s1", [_key("s1", b"old")])
    with pytest.raises(ValueError):
        store.subjects.replace_keys("s1", [_key("s2", b"x")])
    assert store.subjects.keys_of("s1") == [_key("s1", b"old")]


def test_keys_need_an_existing_subject(store: Store) -> None:
    with pytest.raises(RecordConflictError):
        store.subjects.replace_keys("ghost", [_key("ghost", b"x")])


def test_upsert_with_keys_is_atomic(store: Store) -> None:
    bad_keys = [_key("s1", b"x", key_type=70000)]  # key_type out of range
    with pytest.raises(RecordConflictError):
        store.subjects.upsert_with_keys(make_subject("s1"), bad_keys, now=NOW)
    assert store.subjects.get("s1") is None
    assert store.subjects.upsert_with_keys(make_subject("s1"), [_key("s1", b"x")], now=NOW)
    assert store.subjects.keys_of("s1") == [_key("s1", b"x")]


def test_find_by_key_uses_the_key_and_optional_type(store: Store) -> None:
    for sid in ("s1", "s2"):
        store.subjects.upsert(make_subject(sid), now=NOW)
    store.subjects.replace_keys("s1", [_key("s1", b"shared", 1), _key("s1", b"own", 1)])
    store.subjects.replace_keys("s2", [_key("s2", b"shared", 2)])
    assert [k.subject_id for k in store.subjects.find_by_key(b"shared")] == ["s1", "s2"]
    assert store.subjects.find_by_key(b"shared", key_type=2) == [_key("s2", b"shared", 2)]
    assert store.subjects.find_by_key(b"absent") == []
    plan = (
        store.db.connection()
        .execute("EXPLAIN QUERY PLAN SELECT * FROM match_keys WHERE key = ?", (b"x",))
        .fetchall()
    )
    assert any("match_keys_by_key" in str(row[3]) for row in plan)


def test_iter_keys_pages_in_key_order_and_filters_types(store: Store) -> None:
    store.subjects.upsert(make_subject("s1"), now=NOW)
    keys = [_key("s1", bytes([b]), key_type=b % 3) for b in (9, 3, 7, 1, 5, 2)]
    store.subjects.replace_keys("s1", keys)
    got = list(store.subjects.iter_keys(page_size=2))
    assert [k.key for k in got] == sorted(k.key for k in keys)
    only = list(store.subjects.iter_keys({0}, page_size=1))
    assert sorted(k.key for k in only) == sorted(k.key for k in keys if k.key_type == 0)
    assert list(store.subjects.iter_keys(set())) == []
    with pytest.raises(ValueError):
        list(store.subjects.iter_keys(page_size=0))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sets(st.tuples(st.binary(min_size=1, max_size=3), st.integers(0, 3)), max_size=30),
    st.integers(min_value=1, max_value=7),
)
def test_iter_keys_returns_every_key_once_whatever_the_page_size(
    pairs: set[tuple[bytes, int]], page_size: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp, Store.open(Path(tmp) / "db") as store:
        for sid in ("a", "b"):
            store.subjects.upsert(make_subject(sid), now=NOW)
        expected = []
        for sid in ("a", "b"):
            ks = [_key(sid, k, t) for k, t in pairs]
            store.subjects.replace_keys(sid, ks)
            expected.extend(ks)
        got = list(store.subjects.iter_keys(page_size=page_size))
        assert sorted(got, key=lambda k: (k.key, k.key_type, k.subject_id)) == got
        assert sorted(expected, key=lambda k: (k.key, k.key_type, k.subject_id)) == got


def test_purge_deletes_subjects_past_retention_with_their_keys_and_hits(store: Store) -> None:
    store.subjects.upsert(make_subject("old", retain_until=date(2025, 1, 1)), now=NOW)
    store.subjects.upsert(make_subject("edge", retain_until=date(2025, 6, 1)), now=NOW)
    store.subjects.upsert(make_subject("new", retain_until=date(2030, 1, 1)), now=NOW)
    for sid in ("old", "edge", "new"):
        store.subjects.replace_keys(sid, [_key(sid, sid.encode())])
    store.peers.add(make_peer("fiu-b"))
    store.queries.create(
        Query(
            id="q1",
            analyst="ana",
            purpose="ml",
            legal_basis="art-1",
            case_ref="c-1",
            status="running",
            created_at=NOW,
        )
    )
    hit = Hit(
        id="h-1",
        hit_token=b"t" * 16,
        query_id="q1",
        peer_id="fiu-b",
        subject_id="old",
        key_types=(1,),
        strength=200,
        created_at=NOW,
    )
    store.queries.record_result(
        QueryResult(
            query_id="q1",
            peer_id="fiu-b",
            status="ok",
            reason="",
            hit_count=1,
            recorded_at=NOW,
        ),
        [hit],
    )

    # retain_until is the last day kept: "edge" survives on its own date.
    assert store.subjects.expired_ids(date(2025, 6, 1)) == ["old"]
    assert store.subjects.purge_expired(date(2025, 6, 1)) == 1
    assert store.subjects.get("old") is None
    assert store.subjects.keys_of("old") == []
    assert store.queries.hits("q1") == []
    assert store.subjects.get("edge") is not None
    assert store.subjects.purge_expired(date(2025, 6, 1)) == 0
    assert store.subjects.purge_expired(date(2025, 6, 2)) == 1
    assert store.subjects.count() == 1
    store.db.checkpoint()
    assert store.db.integrity_check() == ["ok"]


def test_delete_reports_whether_it_existed(store: Store) -> None:
    store.subjects.upsert(make_subject("s1"), now=NOW)
    assert store.subjects.delete("s1") is True
    assert store.subjects.delete("s1") is False


def test_a_malformed_retention_date_is_refused_by_the_schema(store: Store) -> None:
    with pytest.raises(RecordConflictError), store.transaction() as conn:
        conn.execute(
            "INSERT INTO subjects VALUES ('x', 'r', 'person', '{}', '1/2/2030', 's', 'r', 0, 0)"
        )


def test_ids_existing_and_keys_of_types_can_leave_a_source_out(store: Store) -> None:
    store.subjects.upsert(make_subject("a"), now=NOW)
    pasted = replace(make_subject("b"), source="analyst-paste")
    store.subjects.upsert(pasted, now=NOW)
    store.subjects.replace_keys("a", [_key("a", b"k1", key_type=1), _key("a", b"k2", key_type=2)])
    store.subjects.replace_keys("b", [_key("b", b"k1", key_type=1)])
    assert store.subjects.ids() == ["a", "b"]
    assert store.subjects.ids(exclude_source="analyst-paste") == ["a"]
    assert store.subjects.existing(["a", "zz", "b"]) == {"a", "b"}
    assert store.subjects.existing([]) == set()
    assert [(k.subject_id, k.key) for k in store.subjects.keys_of_types({1})] == [
        ("a", b"k1"),
        ("b", b"k1"),
    ]
    got = store.subjects.keys_of_types({1, 2}, exclude_source="analyst-paste")
    assert [(k.subject_id, k.key_type) for k in got] == [("a", 1), ("a", 2)]
    assert store.subjects.keys_of_types(set()) == []


def _three_subjects(store: Store) -> None:
    """a: k1 (type 1, 200), k2 (type 2, 100); b: k1 (type 1, 50), k3 (type 1, 200);
    p (pasted): k1 (type 1, 255)."""
    for sid in ("a", "b"):
        store.subjects.upsert(make_subject(sid), now=NOW)
    store.subjects.upsert(replace(make_subject("p"), source="analyst-paste"), now=NOW)
    store.subjects.replace_keys("a", [_key("a", b"k1", 1, 200), _key("a", b"k2", 2, 100)])
    store.subjects.replace_keys("b", [_key("b", b"k1", 1, 50), _key("b", b"k3", 1, 200)])
    store.subjects.replace_keys("p", [_key("p", b"k1", 1, 255)])


def test_a_key_selection_lists_distinct_keys_and_groups_hits_by_subject(store: Store) -> None:
    _three_subjects(store)
    with store.subjects.select_keys({1, 2}, exclude_source="analyst-paste") as sel:
        assert sel.keys() == [b"k1", b"k2", b"k3"]
        assert sel.key_types() == [1, 2]
        grouped = list(sel.group_hits([(b"k1", b"T1"), (b"k2", b"T2"), (b"zz", b"TZ")]))
        # a: both its keys hit, the token of its strongest (k1, 200); b: k1 only; p left out
        assert grouped == [("a", (1, 2), 200, b"T1"), ("b", (1,), 50, b"T1")]
        # a second grouping in the same selection starts afresh
        assert list(sel.group_hits([(b"k3", b"T3")])) == [("b", (1,), 200, b"T3")]
    with store.subjects.select_keys({2}) as sel:
        assert sel.keys() == [b"k2"]
        assert list(sel.group_hits([(b"k1", b"T1")])) == []  # k1 is not of a selected type


def test_a_key_selection_of_some_subjects_and_no_types(store: Store) -> None:
    _three_subjects(store)
    with store.subjects.select_keys({1}, subject_ids=["b", "p", "nobody"]) as sel:
        assert sel.keys() == [b"k1", b"k3"]
        assert list(sel.group_hits([(b"k1", b"T")])) == [
            ("b", (1,), 50, b"T"),
            ("p", (1,), 255, b"T"),
        ]
    with store.subjects.select_keys(set()) as sel:
        assert sel.keys() == [] and sel.key_types() == []
    # the selection's temporary tables are gone once it is closed
    tables = store.db.connection().execute("SELECT name FROM temp.sqlite_schema").fetchall()
    assert tables == []


def test_key_rows_stream_plain_tuples_in_key_order(store: Store) -> None:
    _three_subjects(store)
    assert list(store.subjects.key_rows({1}, exclude_source="analyst-paste")) == [
        (b"k1", "a", 1, 200),
        (b"k1", "b", 1, 50),
        (b"k3", "b", 1, 200),
    ]
    assert list(store.subjects.key_rows(set())) == []
    assert store.subjects.count_except("analyst-paste") == 2


def test_upsert_many_counts_new_subjects_replaces_keys_and_lets_the_later_win(
    store: Store,
) -> None:
    store.subjects.upsert_with_keys(make_subject("a"), [_key("a", b"old")], now=NOW)
    items = [
        (make_subject("a"), [_key("a", b"a1")]),
        (make_subject("b"), [_key("b", b"b1"), _key("b", b"b2", key_type=2)]),
        (replace(make_subject("c"), local_ref="first"), [_key("c", b"c1")]),
        (replace(make_subject("c"), local_ref="second"), [_key("c", b"c2")]),
    ]
    assert store.subjects.upsert_many(iter(items), now=NOW + 1, batch=2) == 2  # b, c
    assert [k.key for k in store.subjects.keys_of("a")] == [b"a1"]
    assert [k.key for k in store.subjects.keys_of("b")] == [b"b1", b"b2"]
    assert store.subjects.require("c").local_ref == "second"
    assert [k.key for k in store.subjects.keys_of("c")] == [b"c2"]


def test_upsert_many_is_all_or_nothing(store: Store) -> None:
    good = [(make_subject(f"s{i}"), [_key(f"s{i}", b"k%d" % i)]) for i in range(5)]
    bad = [(make_subject("x"), [_key("y", b"wrong subject")])]
    with pytest.raises(ValueError):
        store.subjects.upsert_many(good + bad, now=NOW, batch=2)
    assert store.subjects.count() == 0
    dup = [(make_subject("d"), [_key("d", b"same"), _key("d", b"same")])]
    with pytest.raises(RecordConflictError):
        store.subjects.upsert_many(good + dup, now=NOW, batch=2)
    assert store.subjects.count() == 0
