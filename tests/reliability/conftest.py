"""Helpers for the reliability tests: real node processes killed with SIGKILL (the whole process
group, never a graceful stop), restarted, and checked.

After every crash the tests check the same three things: ``PRAGMA integrity_check`` is ``ok``
(opened read-only, so the check itself changes nothing), the audit log exported over the API
verifies offline against the node's key, and everything a client saw acknowledged is there.
Every wait is bounded; every process is killed in ``finally``.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from fiumatch.auditlog import Entry, decode_bundle, verify
from fiumatch.client.audit import AuditClient
from fiumatch.demo.run import DemoNode
from fiumatch.node.audit import log_verifier
from fiumatch.node.runner import NodeProcess

__all__ = [
    "audit_entries",
    "integrity",
    "kill9",
    "read_db",
    "restart",
    "wait_for",
]


def kill9(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL the process group of ``proc`` and reap it (bounded)."""
    assert proc is not None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL


def kill9_node(node: DemoNode) -> None:
    kill9(node.process.proc)
    node.process.stop()  # forget the dead process


def restart(node: DemoNode) -> None:
    node.process = NodeProcess(node.root, node.url)
    node.process.start()


def integrity(db_path: Path) -> list[str]:
    """``PRAGMA integrity_check`` and ``foreign_key_check``, on a read-only connection."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10) as conn:
        result = [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]
        result += [
            f"foreign key violation in {r[0]}" for r in conn.execute("PRAGMA foreign_key_check")
        ]
    conn.close()
    return result


def read_db(db_path: Path, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        return [tuple(r) for r in conn.execute(sql, args)]
    finally:
        conn.close()


def audit_entries(node: DemoNode, out: Path, *peers: DemoNode) -> list[Entry]:
    """Export the node's audit log over the API and verify it offline (with the pinned keys of
    ``peers``, whose receipts it holds); its entries."""
    with node.client("auditor") as api, out.open("wb") as fh:
        AuditClient.over(api).export_to(fh)
    data = out.read_bytes()
    key = log_verifier(node.node_id, node.dir.keys().public_key_raw)
    peer_keys = [log_verifier(p.node_id, p.dir.keys().public_key_raw) for p in peers]
    report = verify(data, key, peer_keys=peer_keys)
    entries = list(decode_bundle(data).entries)
    assert report.size == len(entries)
    return entries


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
