"""``kill -9`` (SIGKILL to the process group) mid-way through each long job a node runs:
loading subjects, precomputing an epoch, a matching session on either side, and a stream of
disclosure decisions. After the restart the database passes ``PRAGMA integrity_check``, the
audit log exported over the API verifies, every write a client saw acknowledged is there, and
the interrupted job was resumed or aborted - and says which.

Two real nodes: FIU-K (the owner, 3,000 subjects, ~15,000 match keys: an epoch takes a second
or more to precompute) and FIU-Q (the querier, 600 subjects), both ``fiumatch node serve``
processes in their own process groups.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fiumatch import synth
from fiumatch.client.api import ApiError
from fiumatch.demo.run import DemoNode, connect, make_node, wait_query
from fiumatch.node.service import ABORTED_REASON

from .conftest import audit_entries, integrity, kill9, kill9_node, read_db, restart, wait_for

pytestmark = pytest.mark.slow

QUERY = {"purpose": "money_laundering", "legal_basis": "AMLD art. 53", "case_ref": "REL-1"}


def _event(e: Any) -> str:
    return str(getattr(e.event, "name", e.event)).lower()


def _db(node: DemoNode) -> Path:
    return node.dir.settings.db_path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reliability-data")
    ds = synth.generate(["DE", "FR"], subjects=3000, overlap=0.3, seed=23)
    synth.write(ds, root, formats=("csv",))
    return root


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory, data: Path
) -> Iterator[tuple[DemoNode, DemoNode]]:
    root = tmp_path_factory.mktemp("kill9")
    small = root / "FR-600.csv"
    lines = (data / "FR.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    small.write_text("".join(lines[:601]), encoding="utf-8")
    k = make_node(root, "FIU-K", data / "DE.csv", "csv", scrypt_log2_n=10)
    q = make_node(root, "FIU-Q", small, "csv", scrypt_log2_n=10)
    try:
        k.process.start()
        q.process.start()
        connect([k, q])
        yield k, q
    finally:
        k.process.stop()
        q.process.stop()


def _load(node_dir: Path, csv: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "fiumatch.cli.main", "node", "load", "--dir", str(node_dir)]
    return subprocess.Popen(
        [*cmd, "--no-progress", str(csv)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _writer_busy(db: Path) -> bool:
    """True while another connection holds the write lock (the loader is inside its load)."""
    import sqlite3

    conn = sqlite3.connect(db, timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        conn.close()


def test_kill9_mid_ingestion_loses_nothing_loaded(tmp_path: Path, data: Path) -> None:
    node = make_node(tmp_path, "FIU-I", scrypt_log2_n=10)
    first = tmp_path / "first.csv"
    lines = (data / "FR.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    first.write_text("".join(lines[:201]), encoding="utf-8")
    done = _load(node.root, first)
    out, _ = done.communicate(timeout=60)
    assert done.returncode == 0 and b"loaded 200 subjects" in out  # acknowledged
    db = _db(node)

    loader = _load(node.root, data / "DE.csv")  # 3,000 records, one transaction
    try:
        wait_for(lambda: _writer_busy(db) or loader.poll() is not None, 60, "the load to start")
        time.sleep(0.3)
        assert loader.poll() is None, "the loader finished before it could be killed"
        kill9(loader)
    finally:
        if loader.poll() is None:
            kill9(loader)
        assert loader.stdout is not None
        loader.stdout.close()

    assert integrity(db) == ["ok"]
    # The interrupted file rolled back whole: the acknowledged 200 are there, nothing half-loaded.
    assert read_db(db, "SELECT COUNT(*) FROM subjects") == [(200,)]
    orphans = "SELECT COUNT(*) FROM match_keys WHERE subject_id NOT IN (SELECT id FROM subjects)"
    assert read_db(db, orphans) == [(0,)]

    again = _load(node.root, data / "DE.csv")  # loading it again after the crash completes
    out, _ = again.communicate(timeout=120)
    assert again.returncode == 0 and b"loaded 3000 subjects" in out
    assert read_db(db, "SELECT COUNT(*) FROM subjects") == [(3200,)]
    assert integrity(db) == ["ok"]
    try:
        node.process.start()
        with node.client() as c:
            c.add_user("after-load", "analyst")
        entries = audit_entries(node, tmp_path / "i.fiuaudit")
        assert [e.target for e in entries] == ["after-load"]
    finally:
        node.process.stop()


def test_kill9_mid_epoch_precompute_resumes_it(
    pair: tuple[DemoNode, DemoNode], tmp_path: Path
) -> None:
    k, q = pair
    db = _db(k)
    with k.client() as c:
        started = c.rotate(peer=q.node_id, wait=False)
    new = int(started[0]["new_epoch"])
    preparing = "SELECT state FROM epochs WHERE peer_id = ? AND side = 'local' AND epoch = ?"
    time.sleep(0.2)
    assert read_db(db, preparing, (q.node_id, new)) == [("preparing",)], "finished too soon"
    kill9_node(k)

    assert integrity(db) == ["ok"]
    assert read_db(db, preparing, (q.node_id, new)) == [("preparing",)]
    restart(k)

    def active() -> bool:
        return read_db(db, preparing, (q.node_id, new)) == [("active",)]

    wait_for(active, 60, "the resumed rotation to activate the new epoch")
    states = read_db(db, "SELECT state, COUNT(*) FROM epochs WHERE side = 'local' GROUP BY state")
    assert "preparing" not in dict(states)  # type: ignore[arg-type]
    assert f"peer={q.node_id} epoch={new} action=resumed" in k.process.log.read_text()
    entries = audit_entries(k, tmp_path / "k.fiuaudit", q)
    assert any(
        _event(e) == "epoch_rotated" and e.epoch == new and e.actor == "startup-recovery"
        for e in entries
    )
    assert integrity(db) == ["ok"]


def _open_session_of(owner: DemoNode, peer: str) -> list[str]:
    rows = read_db(
        _db(owner),
        "SELECT id FROM sessions WHERE peer_id = ? AND closed_at IS NULL",
        (peer,),
    )
    return [str(r[0]) for r in rows]


def test_kill9_owner_mid_session_gives_a_partial_result(
    pair: tuple[DemoNode, DemoNode], tmp_path: Path
) -> None:
    k, q = pair
    with q.client("analyst") as c:
        query = c.create_query(**QUERY, mode="mutual", all_subjects=True, peers=[k.node_id])
        wait_for(lambda: bool(_open_session_of(k, q.node_id)), 60, "the owner's session")
        sid = _open_session_of(k, q.node_id)[0]
        kill9_node(k)
        result = wait_query(c, query, timeout=60)
    assert result["status"] == "done" and result["partial"] is True
    (peer,) = result["peers"]
    assert peer["status"] == "unreachable" and peer["reason"].startswith("unreachable: ")

    assert integrity(_db(k)) == ["ok"]
    restart(k)
    with k.client("auditor") as c:
        states = {s["id"]: s["state"] for s in c.sessions()}
    assert states[sid] == "aborted"  # the owner closed the session it could not go on with
    entries = audit_entries(k, tmp_path / "k.fiuaudit", q)
    assert any(e.session == sid and _event(e) == "session_opened" for e in entries)
    assert audit_entries(q, tmp_path / "q.fiuaudit", k)
    assert integrity(_db(q)) == ["ok"]


def test_kill9_querier_mid_query_aborts_it_at_restart(
    pair: tuple[DemoNode, DemoNode], tmp_path: Path
) -> None:
    k, q = pair
    with q.client("analyst") as c:
        query = c.create_query(**QUERY, mode="mutual", all_subjects=True, peers=[k.node_id])
    wait_for(lambda: bool(_open_session_of(k, q.node_id)), 60, "the owner's session")
    kill9_node(q)

    assert integrity(_db(q)) == ["ok"]
    restart(q)
    with q.client("analyst") as c:
        after = c.query(query["id"])
    assert after["status"] == "failed" and after["partial"] is True
    assert [p["reason"] for p in after["peers"]] == [ABORTED_REASON]
    assert f"query={query['id']} action=aborted" in q.process.log.read_text()
    entries = audit_entries(q, tmp_path / "q.fiuaudit", k)
    assert sum(_event(e) == "query" for e in entries) >= 1  # the acknowledged query is logged
    with k.client() as c:  # the owner went on serving
        assert c.call("GET", "/healthz")["status"] == "ok"


def test_kill9_mid_disclosure_decisions_keeps_every_acknowledged_one(
    pair: tuple[DemoNode, DemoNode], tmp_path: Path
) -> None:
    k, q = pair
    with q.client("analyst") as c:
        found = c.create_query(**QUERY, mode="filter", all_subjects=True, peers=[k.node_id])
        found = wait_query(c, found, timeout=60)
        hits = found["hits"][:12]
        assert len(hits) >= 6, found["peers"]
        for h in hits:
            c.request_disclosure(hit_id=h["id"], purpose="money_laundering", case_ref="REL-2")
    with k.client("supervisor") as c:
        pending = [d["id"] for d in c.disclosures("in") if d["status"] == "pending"]
    assert len(pending) >= 6

    acknowledged: list[str] = []
    errors: list[str] = []
    two_done = threading.Event()
    killed = threading.Event()

    def decide() -> None:
        with k.client("supervisor") as c:
            for did in pending:
                try:
                    c.decide_disclosure(did, approve=True, reason="within the MoU")
                except ApiError as exc:
                    errors.append(exc.error_code)
                    return
                acknowledged.append(did)
                if len(acknowledged) == 2:
                    # Decisions can be quicker than any poll: hold the stream here until the
                    # node is killed, so the kill lands in the middle of it every time.
                    two_done.set()
                    killed.wait(30)

    worker = threading.Thread(target=decide)
    worker.start()
    try:
        assert two_done.wait(30), f"two decisions were not acknowledged: {errors}"
        kill9_node(k)
    finally:
        killed.set()
        worker.join(30)
    assert errors == ["unreachable"]

    assert integrity(_db(k)) == ["ok"]
    restart(k)
    with k.client("supervisor") as c:
        status = {d["id"]: d for d in c.disclosures("in")}
    for did in acknowledged:
        assert status[did]["status"] == "released" and status[did]["released"]
    # No request is left approved without its release (decision and release are one write).
    assert all(d["status"] in ("pending", "released") for d in status.values())
    entries = audit_entries(k, tmp_path / "k.fiuaudit", q)
    decided = {e.session for e in entries if _event(e) == "disclosure_decided"}
    assert set(acknowledged) <= decided
    # The requests not decided before the crash can be decided now.
    left = [did for did in pending if status[did]["status"] == "pending"]
    assert left
    with k.client("supervisor") as c:
        assert c.decide_disclosure(left[0], approve=False, reason="not now")["status"] == "denied"
