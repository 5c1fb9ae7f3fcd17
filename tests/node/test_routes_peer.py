"""Peer routes in process (ASGI, no sockets): an oversized body is refused before anything else,
and the request target the signature covers is the raw one."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from fiumatch.node.app import build_service, create_app
from fiumatch.node.directory import create_node_dir
from fiumatch.node.routes_peer import request_target
from tests.node.helpers import det_rng


@pytest.fixture(scope="module")
def node_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("routes") / "FIU-R"
    create_node_dir(root, "FIU-R", port=8443, scrypt_log2_n=10, rng=det_rng(b"r"))
    return root


def _post(node_dir: Path, body: bytes) -> httpx.Response:
    service = build_service(node_dir, env={"FIUMATCH_SESSIONS_MAX_BODY_BYTES": "1024"})
    app = create_app(service, scheduler=False)

    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://fiu-r") as client:
            return await client.post("/peer/v1/sessions", content=body)

    try:
        return asyncio.run(run())
    finally:
        service.close()
        service.store.close()


def test_a_body_above_the_limit_is_refused_with_413(node_dir: Path) -> None:
    r = _post(node_dir, b"x" * 1025)
    assert r.status_code == 413 and r.json()["error"] == "body_too_large"
    assert r.json()["details"] == {"max_body_bytes": 1024}
    small = _post(node_dir, b"{}")
    assert small.status_code == 401  # within the limit: on to the signature check


def test_the_request_target_is_the_raw_path_and_query() -> None:
    from starlette.requests import Request

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/peer/v1/disclosures/d- x",
        "raw_path": b"/peer/v1/disclosures/d-%20x",
        "query_string": b"a=%2F",
        "headers": [],
    }
    assert request_target(Request(scope)) == "/peer/v1/disclosures/d-%20x?a=%2F"
    del scope["raw_path"]
    scope["query_string"] = b""
    assert request_target(Request(scope)) == "/peer/v1/disclosures/d- x"


def test_signing_and_the_audit_commit_run_off_the_event_loop(
    node_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peer response is signed, and its audit entries committed to SQLite, in the
    threadpool: on the event loop a slow commit would stall every other request."""
    import os
    import time

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from fiumatch.node import audit as audit_module
    from fiumatch.node import httpsig
    from fiumatch.node.keys import fingerprint, raw_public_key
    from fiumatch.store import Peer

    on_loop: list[bool] = []

    def on_event_loop() -> bool:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False
        return True

    real = audit_module.answer_headers

    def spy(*args: Any) -> dict[str, str]:
        on_loop.append(on_event_loop())
        return real(*args)

    monkeypatch.setattr(audit_module, "answer_headers", spy)
    service = build_service(node_dir)
    key = Ed25519PrivateKey.generate()
    raw = raw_public_key(key.public_key())
    if service.store.peers.get("FIU-Q") is None:
        service.store.peers.add(
            Peer(node_id="FIU-Q", url="https://q", public_key=raw, fingerprint=fingerprint(raw),
                 added_at=int(time.time()))
        )  # fmt: skip
    app = create_app(service, scheduler=False)
    target = "/peer/v1/disclosures/d-0123456789abcdef"
    headers = {"content-type": "application/json", "fiumatch-peer": "FIU-R"}
    headers.update(
        httpsig.sign_request(
            method="GET", target=target, authority="fiu-r", headers=headers, body=b"",
            key=key, keyid="FIU-Q", now=int(time.time()), rng=os.urandom,
        )
    )  # fmt: skip

    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://fiu-r") as client:
            return await client.get(target, headers=headers)

    try:
        r = asyncio.run(run())
    finally:
        service.close()
        service.store.close()
    assert r.status_code == 404 and "signature" in r.headers  # a signed refusal
    assert "fiumatch-audit-receipts" in r.headers
    assert on_loop == [False]


def test_the_audit_checkpoint_settings_reach_the_audit_sink(tmp_path: Path) -> None:
    # A node of its own: the module's shared node may already hold a checkpoint at a size that
    # is not a multiple of 3 (left by the tests before this one), and the count restarts there.
    root = tmp_path / "FIU-R"
    create_node_dir(root, "FIU-R", port=8443, scrypt_log2_n=10, rng=det_rng(b"c"))
    env = {"FIUMATCH_AUDIT_CHECKPOINT_EVERY": "3", "FIUMATCH_AUDIT_CHECKPOINT_SECONDS": "3600"}
    service = build_service(root, env=env)
    try:
        start = service.audit.size
        for i in range(6 - start % 3):  # 4 to 6 more entries, ending on a multiple of 3
            service.audit.record("login", actor=f"analyst:a{i}", extra={"outcome": "ok"})
        size = service.audit.size
        assert service.audit.status()["checkpoint_size"] == size - size % 3
    finally:
        service.close()
        service.store.close()
