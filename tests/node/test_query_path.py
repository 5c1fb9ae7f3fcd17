"""The querier's query path between two in-process services (the owner's service methods are
called directly in place of HTTP): the filter replica is kept between queries (a later session's
HELLO names it, so the owner sends no filter bytes), a failed session does not store its copy,
a rotation drops the old epoch's replica, and ``on_settled`` tells a waiter when a query is no
longer running."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from fiumatch.ingest import build_subject
from fiumatch.node.app import build_service
from fiumatch.node.directory import create_node_dir
from fiumatch.node.service import NodeService
from fiumatch.protocol.wire import FrameReader, Limits, MsgType, decode_frame
from fiumatch.store import Peer, User
from tests.node.helpers import det_rng

NOW = 1_760_000_000
LIMITS = Limits(max_elements=1 << 20)
QUERY: dict[str, Any] = {
    "purpose": "money_laundering",
    "legal_basis": "AMLD art. 53",
    "case_ref": "PATH-1",
}


def _subject(ref: str, passport: str) -> Any:
    built = build_subject(
        {"local_ref": ref, "type": "person", "name": f"Person {ref}", "passport_number": passport,
         "passport_country": "DE", "birth_date": "1970-01-02"},
        source="csv", file="t.csv", record=ref, line=None, default_retention=date(2040, 1, 1),
    )  # fmt: skip
    assert not isinstance(built, list)
    return built


@dataclass
class Direct:
    """A peer client that calls the owner's service methods (no HTTP, no signatures)."""

    owner: NodeService
    asker: str
    replies: list[tuple[list[MsgType], int]] = field(default_factory=list)
    fail_frames: bool = False
    """Cut off each session's second request (after the owner sent its filter)."""
    calls: dict[str, int] = field(default_factory=dict)
    opens: list[tuple[bool, bool]] = field(default_factory=list)
    """Per open request: whether it carried frames, and whether the answer carried frames."""

    def __enter__(self) -> Direct:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def open_session(self, **payload: Any) -> dict[str, Any]:
        body = json.dumps(payload, sort_keys=True).encode()
        opened = self.owner.open_session(self.asker, body, payload)
        self.opens.append(("frames" in payload, "frames" in opened))
        return opened

    def send_frames(self, sid: str, epoch: int, frames: bytes) -> bytes:
        self.calls[sid] = self.calls.get(sid, 0) + 1
        if self.fail_frames and self.calls[sid] == 2:
            raise RuntimeError("cut off after the owner sent its filter")
        out = self.owner.session_frames(self.asker, sid, epoch, frames)
        reader = FrameReader(LIMITS)
        kinds = [decode_frame(f, LIMITS).header.msg_type for f in reader.feed(out)]
        reader.close()
        self.replies.append((kinds, len(out)))
        return out

    def filter_chunks(self) -> int:
        """FILTER_CHUNK frames received so far."""
        return sum(kinds.count(MsgType.FILTER_CHUNK) for kinds, _ in self.replies)


@dataclass
class Pair:
    querier: NodeService
    owner: NodeService
    analyst: User
    client: Direct
    admin: User


def _node(root: Path, node_id: str, seed: bytes) -> tuple[NodeService, User]:
    _, _, admin_token = create_node_dir(
        root / node_id, node_id, port=8443, scrypt_log2_n=10, rng=det_rng(seed), env={},
        clock=lambda: NOW,
    )  # fmt: skip
    service = build_service(root / node_id, clock=lambda: NOW, rng=os.urandom, env={})
    return service, service.authenticate(admin_token)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    q, q_admin = _node(tmp_path, "FIU-Q", b"q")
    o, o_admin = _node(tmp_path, "FIU-O", b"o")
    try:
        o.load_subjects([_subject(f"O-{i}", f"C01X{i:05d}") for i in range(40)])
        q.load_subjects([_subject(f"Q-{i}", f"C01X{i + 30:05d}") for i in range(20)])
        for me, other in ((q, o), (o, q)):
            me.store.peers.add(
                Peer(node_id=other.node_id, url="https://127.0.0.1:9",
                     public_key=other.keys.public_key_raw, fingerprint=other.keys.fingerprint,
                     added_at=NOW)
            )  # fmt: skip
        for me, admin, other in ((q, q_admin, o), (o, o_admin, q)):
            me.add_agreement(
                admin, peer_id=other.node_id, modes=["filter"], purposes=["money_laundering"],
                identifier_types=["passport"], budget_per_epoch=10_000, max_set_size=1000,
                valid_from=NOW - 10, valid_until=NOW + 10**6,
            )  # fmt: skip
            me.ensure_epoch(other.node_id)
        client = Direct(o, q.node_id)
        q._peer_client = lambda peer: client  # the in-process transport
        token = q.add_user(q_admin, "analyst", "analyst")
        yield Pair(q, o, q.authenticate(token), client, q_admin)
    finally:
        for s in (q, o):
            s.close()
            s.store.close()


def _query(p: Pair) -> dict[str, Any]:
    return p.querier.create_query(p.analyst, **QUERY, all_subjects=True, wait=True)


def _hits(q: dict[str, Any]) -> list[str]:
    (peer,) = q["peers"]
    assert peer["status"] == "ok", peer
    return sorted(h["local_ref"] for h in q["hits"])


def test_the_replica_is_kept_so_a_later_query_downloads_no_filter(pair: Pair) -> None:
    first = _query(pair)
    sent_first = pair.client.filter_chunks()
    assert sent_first >= 1  # an empty replica: the owner sends its filter
    second = _query(pair)
    assert pair.client.filter_chunks() == sent_first  # HELLO named the kept replica
    third = _query(pair)
    assert pair.client.filter_chunks() == sent_first
    # Q's passports 30..49 against O's 0..39: Q-0 .. Q-9 are O's.
    assert _hits(first) == _hits(second) == _hits(third) == sorted(f"Q-{i}" for i in range(10))


def test_with_a_replica_kept_the_hello_rides_on_the_open_request(pair: Pair) -> None:
    first = _query(pair)
    assert pair.client.opens == [(False, False)]  # nothing kept yet: HELLO on its own
    requests = len(pair.client.replies)
    second = _query(pair)
    assert pair.client.opens[-1] == (True, True)  # sent with the open and answered there
    # One frames request less than the first session (whose HELLO went on its own).
    assert len(pair.client.replies) - requests == requests - 1
    assert _hits(first) == _hits(second)
    assert (
        pair.owner.audit.size > 0
        and pair.owner.store.sessions.count_open(pair.querier.node_id) == 0
    )  # the owner's session ended as usual


def test_opening_frames_must_be_well_formed(pair: Pair) -> None:
    from fiumatch.node.errors import BadRequestError

    base = {"mode": "filter", "purpose": "money_laundering", "id_types": ["passport"],
            "set_size": 4, "proofs": True}  # fmt: skip
    for extra in (
        {"frames": "not base64!", "frames_epoch": 1},
        {"frames": "", "frames_epoch": "1"},
        {"frames": ""},
        {"frames_epoch": 1},
    ):
        meta = {**base, "session_id": os.urandom(16).hex(), **extra}
        with pytest.raises(BadRequestError):
            pair.owner.open_session(pair.querier.node_id, json.dumps(meta).encode(), meta)
    assert pair.owner.store.sessions.count_open(pair.querier.node_id) == 0


def test_opening_frames_for_another_epoch_are_ignored(pair: Pair) -> None:
    _query(pair)
    pair.owner.rotate("admin", pair.querier.node_id, wait=True)
    q = _query(pair)  # the HELLO built for the old epoch is ignored, then sent on its own
    assert pair.client.opens[-1] == (True, False)
    assert len(q["hits"]) == 10


def test_a_failed_session_does_not_store_its_replica(pair: Pair) -> None:
    pair.client.fail_frames = True
    failed = _query(pair)
    assert failed["peers"][0]["status"] == "unreachable"
    chunks = pair.client.filter_chunks()
    assert chunks >= 1  # the filter arrived and was applied to the session's copy
    pair.client.fail_frames = False
    ok = _query(pair)
    assert pair.client.filter_chunks() > chunks  # nothing was kept: the filter came again
    assert len(ok["hits"]) == 10


def test_a_rotation_drops_the_old_epochs_replica(pair: Pair) -> None:
    _query(pair)
    old = pair.owner.ensure_epoch(pair.querier.node_id).epoch
    pair.owner.rotate("admin", pair.querier.node_id, wait=True)
    new = pair.owner.ensure_epoch(pair.querier.node_id).epoch
    assert new > old
    chunks = pair.client.filter_chunks()
    q = _query(pair)
    assert pair.client.filter_chunks() > chunks  # a new epoch's filter, downloaded once
    assert len(q["hits"]) == 10
    assert {e for _, e in pair.querier._replicas} == {new}


def test_revoking_the_peer_drops_its_replicas(pair: Pair) -> None:
    _query(pair)
    assert pair.querier._replicas
    pair.querier.revoke_peer(pair.admin, pair.owner.node_id)
    assert not pair.querier._replicas


def _hold_peer_queries(pair: Pair) -> threading.Event:
    """Make the querier's peer queries wait (at most 10 s) until the returned event is set."""
    gate = threading.Event()
    real = pair.querier._query_peer

    def slow(*args: Any) -> None:
        gate.wait(10)
        real(*args)

    pair.querier._query_peer = slow  # type: ignore[method-assign,assignment]
    return gate


def test_on_settled_fires_once_the_status_is_set(pair: Pair) -> None:
    seen: list[str] = []
    gate = _hold_peer_queries(pair)
    settled = threading.Event()
    q = pair.querier.create_query(pair.analyst, **QUERY, all_subjects=True)
    assert q["status"] == "running"
    qid = q["id"]

    def callback() -> None:
        found = pair.querier.store.queries.get(qid)
        seen.append(found.status if found else "missing")
        settled.set()

    dropped: list[int] = []
    unsubscribe = pair.querier.on_settled(qid, callback)
    pair.querier.on_settled(qid, lambda: dropped.append(1))()  # unsubscribed at once
    assert not settled.wait(0.2) and seen == []  # still running: not called
    gate.set()
    assert settled.wait(10)
    assert seen == ["done"] and dropped == []
    unsubscribe()  # after the fact: harmless
    # A query no longer running (or unknown here) is answered at once, in the caller.
    late: list[int] = []
    pair.querier.on_settled(qid, lambda: late.append(1))
    pair.querier.on_settled("q-unknown", lambda: late.append(2))
    assert late == [1, 2]


def test_a_query_naming_an_unknown_subject_is_refused_before_anything_is_stored(
    pair: Pair,
) -> None:
    from fiumatch.node.errors import NotFoundError

    known = sorted(pair.querier.store.subjects.ids())[:3]
    before = len(pair.querier.list_queries(pair.analyst))
    with pytest.raises(NotFoundError):
        pair.querier.create_query(pair.analyst, **QUERY, subject_ids=[*known, "no-such-id"])
    assert len(pair.querier.list_queries(pair.analyst)) == before
    q = pair.querier.create_query(pair.analyst, **QUERY, subject_ids=known * 2, wait=True)
    assert q["status"] == "done" and q["peers"][0]["status"] == "ok"


def test_a_query_to_one_peer_runs_in_the_querys_own_thread(pair: Pair) -> None:
    threads: list[str] = []
    real = pair.querier._query_peer

    def spy(*args: Any) -> None:
        threads.append(threading.current_thread().name)
        real(*args)

    pair.querier._query_peer = spy  # type: ignore[method-assign,assignment]
    q = _query(pair)
    assert q["peers"][0]["status"] == "ok"
    (name,) = threads
    assert not name.startswith("fiumatch-peer")  # no hop to the per-peer pool for one peer


def _count_commits(monkeypatch: pytest.MonkeyPatch) -> dict[int, int]:
    """Outer write transactions (each one commit, one fsync) per database, from now on."""
    from fiumatch.store.db import Database

    counts: dict[int, int] = {}
    real = Database.transaction

    @contextlib.contextmanager
    def counting(self: Database) -> Iterator[Any]:
        if not self.connection().in_transaction:
            counts[id(self)] = counts.get(id(self), 0) + 1
        with real(self) as conn:
            yield conn

    monkeypatch.setattr(Database, "transaction", counting)
    return counts


def test_a_small_query_costs_few_commits(pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    _query(pair)  # the replica is kept from now on
    counts = _count_commits(monkeypatch)
    q = _query(pair)
    assert q["status"] == "done" and len(q["hits"]) == 10
    # Querier: the query entry with its row; the session_opened entry (mirrored over HTTP,
    # where it costs nothing); the hit_count entry with the result, its hits and the status.
    assert counts[id(pair.querier.store.db)] == 3
    # Owner: the charge with the session record; session_opened; the evaluation entry with
    # the record's close; session_closed. (Over HTTP the entries of one answer share its
    # commit: session_opened; evaluation, session_closed and the close.)
    assert counts[id(pair.owner.store.db)] == 4


def test_a_reused_session_id_spends_no_budget(pair: Pair) -> None:
    from fiumatch.node.errors import ConflictError

    meta = {"session_id": "ab" * 16, "mode": "filter", "purpose": "money_laundering",
            "id_types": ["passport"], "set_size": 7, "proofs": True}  # fmt: skip
    body = json.dumps(meta).encode()
    opened = pair.owner.open_session(pair.querier.node_id, body, meta)
    with pytest.raises(ConflictError):
        pair.owner.open_session(pair.querier.node_id, body, meta)
    meta2 = {**meta, "session_id": "cd" * 16}
    again = pair.owner.open_session(pair.querier.node_id, json.dumps(meta2).encode(), meta2)
    assert again["budget_remaining"] == opened["budget_remaining"] - 7


def test_the_long_poll_answer_is_read_by_the_thread_that_settles_the_query(pair: Pair) -> None:
    import asyncio

    from fiumatch.node.routes_api import wait_until_settled

    gate = _hold_peer_queries(pair)
    qid = pair.querier.create_query(pair.analyst, **QUERY, all_subjects=True)["id"]
    readers: list[str] = []

    def fetch() -> dict[str, Any]:
        readers.append(threading.current_thread().name)
        return pair.querier.get_query(pair.analyst, qid)

    async def wait() -> tuple[Any] | None:
        asyncio.get_running_loop().call_later(0.1, gate.set)
        return await wait_until_settled(pair.querier, qid, 10, fetch=fetch)

    made = asyncio.run(wait())
    assert made is not None and made[0]["status"] == "done"
    (reader,) = readers
    assert reader != threading.current_thread().name  # the query's thread, not the loop's
    # A query this process is not running: answered at once, read by the caller (no fetch).
    again = asyncio.run(wait_until_settled(pair.querier, qid, 10, fetch=fetch))
    assert again is None and len(readers) == 1
