"""Crash test: ``kill -9`` a real node while clients drive audit appends, restart it, export the
log and verify it offline: it verifies, and every entry a client saw acknowledged is there."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from fiumatch.auditlog import decode_bundle, verify
from fiumatch.client.api import ApiError
from fiumatch.client.audit import AuditClient
from fiumatch.demo.run import make_node
from fiumatch.node.audit import log_verifier
from fiumatch.node.directory import open_node_dir

pytestmark = pytest.mark.slow

WRITERS = 3
RUN_SECONDS = 1.5


def test_kill_9_mid_append_loses_nothing_acknowledged(tmp_path: Path) -> None:
    node = make_node(tmp_path, "FIU-K", scrypt_log2_n=10)
    key = log_verifier("FIU-K", open_node_dir(node.root).keys().public_key_raw)
    acknowledged: list[str] = []
    failures: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(w: int) -> None:
        # Each added user is one audit entry (role_changed, target = the user's name), appended
        # and committed before the node answers.
        with node.client("admin") as c:
            i = 0
            while not stop.is_set():
                name = f"crash-{w}-{i}"
                try:
                    c.add_user(name, "analyst")
                except ApiError as exc:
                    with lock:
                        failures.append(exc.error_code)
                    return
                with lock:
                    acknowledged.append(name)
                i += 1

    try:
        node.process.start()
        threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
        for t in threads:
            t.start()
        time.sleep(RUN_SECONDS)
        proc = node.process.proc
        assert proc is not None
        os.killpg(proc.pid, signal.SIGKILL)  # mid-stream: requests are in flight
        proc.wait(10)
        stop.set()
        for t in threads:
            t.join(30)
        assert len(acknowledged) > 20 and len(failures) == WRITERS  # every writer saw the crash
        node.process.stop()  # forget the dead process
        node.process.start()

        with node.client("auditor") as api:
            client = AuditClient.over(api)
            bundle_path = tmp_path / "after-crash.fiuaudit"
            with bundle_path.open("wb") as fh:
                client.export_to(fh)
        data = bundle_path.read_bytes()
        report = verify(data, key)
        logged = {e.target for e in decode_bundle(data).entries if e.target}
        missing = [n for n in acknowledged if n not in logged]
        assert not missing, f"{len(missing)} acknowledged entries lost"
        assert report.size >= len(acknowledged)

        # The restarted node resumes its tree and keeps appending a log that verifies.
        with node.client("admin") as c:
            c.add_user("after-restart", "auditor")
        with node.client("auditor") as api, bundle_path.open("wb") as fh:
            AuditClient.over(api).export_to(fh)
        again = verify(bundle_path.read_bytes(), key)
        assert again.size == report.size + 1
    finally:
        stop.set()
        node.process.stop()
