"""Key epochs with their blobs, and PSI session records."""

from __future__ import annotations

import pytest

from fiumatch.store import (
    Epoch,
    EpochBlob,
    RecordConflictError,
    RecordNotFoundError,
    SessionRecord,
    Store,
)
from tests.store.factories import NOW, make_peer


def _epoch(n: int, side: str = "local", state: str = "preparing") -> Epoch:
    return Epoch(
        peer_id="fiu-b",
        side=side,  # type: ignore[arg-type]
        epoch=n,
        public_key=bytes([n]) * 32,
        state=state,  # type: ignore[arg-type]
        created_at=NOW + n,
    )


def _blob(n: int, kind: str = "filter", side: str = "local") -> EpochBlob:
    return EpochBlob(
        peer_id="fiu-b",
        side=side,  # type: ignore[arg-type]
        epoch=n,
        kind=kind,
        data=b"blob" + bytes([n]),
        created_at=NOW,
    )


@pytest.fixture
def peered(store: Store) -> Store:
    store.peers.add(make_peer("fiu-b"))
    return store


# --- epochs -----------------------------------------------------------------------------


def test_activation_retires_the_previous_epoch_and_drops_its_blobs(peered: Store) -> None:
    s = peered
    s.epochs.create(_epoch(1))
    s.epochs.create(_epoch(2))
    assert s.epochs.activate("fiu-b", "local", 1, now=NOW + 10) is None
    s.epochs.put_blob(_blob(1))
    s.epochs.put_blob(_blob(2, "encoded-set"))
    previous = s.epochs.activate("fiu-b", "local", 2, now=NOW + 20)
    assert previous is not None and previous.epoch == 1
    old = s.epochs.require("fiu-b", "local", 1)
    assert (old.state, old.retired_at) == ("retired", NOW + 20)
    assert s.epochs.get_blob("fiu-b", "local", 1, "filter") is None
    active = s.epochs.active("fiu-b", "local")
    assert active is not None
    assert (active.epoch, active.activated_at) == (2, NOW + 20)
    assert s.epochs.blob_kinds("fiu-b", "local", 2) == ["encoded-set"]
    assert s.epochs.latest_number("fiu-b", "local") == 2
    assert [e.epoch for e in s.epochs.list_all("fiu-b", "local")] == [1, 2]


def test_local_and_remote_sides_are_independent(peered: Store) -> None:
    s = peered
    s.epochs.create(_epoch(1, "local"))
    s.epochs.create(_epoch(1, "remote"))
    s.epochs.activate("fiu-b", "local", 1, now=NOW)
    s.epochs.activate("fiu-b", "remote", 1, now=NOW)
    assert s.epochs.active("fiu-b", "remote") is not None
    assert s.epochs.active("fiu-b", "local") is not None
    assert s.epochs.latest_number("fiu-b", "remote") == 1
    assert s.epochs.latest_number("fiu-x", "remote") is None


def test_only_a_preparing_epoch_can_be_activated(peered: Store) -> None:
    s = peered
    s.epochs.create(_epoch(1))
    s.epochs.activate("fiu-b", "local", 1, now=NOW)
    with pytest.raises(RecordConflictError):
        s.epochs.activate("fiu-b", "local", 1, now=NOW)
    with pytest.raises(RecordNotFoundError):
        s.epochs.activate("fiu-b", "local", 9, now=NOW)


def test_the_schema_allows_one_active_epoch_per_peer_and_side(peered: Store) -> None:
    peered.epochs.create(_epoch(1, state="active"))
    with pytest.raises(RecordConflictError):
        peered.epochs.create(_epoch(2, state="active"))


def test_blobs_replace_and_are_refused_on_retired_or_unknown_epochs(peered: Store) -> None:
    s = peered
    s.epochs.create(_epoch(1))
    s.epochs.put_blob(_blob(1))
    s.epochs.put_blob(EpochBlob(**{**_blob(1).__dict__, "data": b"v2"}))
    got = s.epochs.get_blob("fiu-b", "local", 1, "filter")
    assert got is not None and got.data == b"v2"
    s.epochs.retire("fiu-b", "local", 1, now=NOW)
    s.epochs.retire("fiu-b", "local", 1, now=NOW + 5)  # idempotent
    assert s.epochs.require("fiu-b", "local", 1).retired_at == NOW
    with pytest.raises(RecordConflictError):
        s.epochs.put_blob(_blob(1))
    with pytest.raises(RecordNotFoundError):
        s.epochs.put_blob(_blob(7))


def test_epochs_need_a_known_peer_and_a_valid_state(store: Store) -> None:
    with pytest.raises(RecordConflictError):
        store.epochs.create(_epoch(1))
    store.peers.add(make_peer("fiu-b"))
    with pytest.raises(RecordConflictError):
        store.epochs.create(_epoch(1, state="zombie"))


# --- sessions ---------------------------------------------------------------------------


def _session(session_id: str = "sess-1", **kw: object) -> SessionRecord:
    fields: dict[str, object] = {
        "id": session_id,
        "peer_id": "fiu-b",
        "role": "responder",
        "mode": "psi-hits",
        "state": "opened",
        "epoch": 3,
        "created_at": NOW,
        "updated_at": NOW,
    }
    fields.update(kw)
    return SessionRecord(**fields)  # type: ignore[arg-type]


def test_transition_is_compare_and_set_and_adds_counts(peered: Store) -> None:
    s = peered
    s.sessions.create(_session())
    moved = s.sessions.transition(
        "sess-1", from_state="opened", to_state="blinded", now=NOW + 1, add_received=10
    )
    assert (moved.state, moved.items_received, moved.updated_at) == ("blinded", 10, NOW + 1)
    with pytest.raises(RecordConflictError):
        s.sessions.transition("sess-1", from_state="opened", to_state="x", now=NOW + 2)
    done = s.sessions.transition(
        "sess-1",
        from_state="blinded",
        to_state="finished",
        now=NOW + 3,
        add_sent=10,
        add_matches=2,
        close=True,
    )
    assert (done.items_sent, done.matches, done.closed_at, done.open) == (10, 2, NOW + 3, False)
    with pytest.raises(RecordConflictError):
        s.sessions.transition("sess-1", from_state="finished", to_state="x", now=NOW + 4)
    with pytest.raises(RecordNotFoundError):
        s.sessions.transition("nope", from_state="a", to_state="b", now=NOW)
    with pytest.raises(ValueError):
        s.sessions.transition("sess-1", from_state="a", to_state="b", now=NOW, add_sent=-1)


def test_open_session_limit_per_peer(peered: Store) -> None:
    s = peered
    assert s.sessions.create_if_below_limit(_session("a"), max_open=2)
    assert s.sessions.create_if_below_limit(_session("b"), max_open=2)
    assert not s.sessions.create_if_below_limit(_session("c"), max_open=2)
    assert s.sessions.get("c") is None
    s.sessions.transition("a", from_state="opened", to_state="aborted", now=NOW, close=True)
    assert s.sessions.count_open("fiu-b") == 1
    assert s.sessions.create_if_below_limit(_session("c"), max_open=2)
    assert [x.id for x in s.sessions.list_open("fiu-b")] == ["b", "c"]
    assert [x.id for x in s.sessions.list_open()] == ["b", "c"]


def test_idle_sessions_expire(peered: Store) -> None:
    s = peered
    s.sessions.create(_session("old", updated_at=NOW - 100))
    s.sessions.create(_session("fresh", updated_at=NOW))
    assert s.sessions.expire_idle(idle_since=NOW - 10, state="expired", now=NOW) == 1
    old = s.sessions.require("old")
    assert (old.state, old.closed_at) == ("expired", NOW)
    assert s.sessions.require("fresh").open


def test_a_session_role_is_checked(peered: Store) -> None:
    with pytest.raises(RecordConflictError):
        peered.sessions.create(_session(role="observer"))


def test_recent_sessions_are_listed_newest_first(peered: Store) -> None:
    s = peered
    s.sessions.create(_session("a", created_at=NOW))
    s.sessions.create(_session("b", created_at=NOW + 5))
    s.sessions.create(_session("c", created_at=NOW + 1))
    assert [x.id for x in s.sessions.list_recent()] == ["b", "c", "a"]
    assert [x.id for x in s.sessions.list_recent(limit=1)] == ["b"]
