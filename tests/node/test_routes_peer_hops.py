"""A peer request costs one threadpool hop: verifying it, opening its audit exchange, the
service call and the signing of its answer (with the audit commit) run in one call, off the
event loop; the answer is signed and receipted as before."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fiumatch.node import httpsig, routes_peer
from fiumatch.node.app import build_service, create_app
from fiumatch.node.directory import create_node_dir
from fiumatch.node.keys import fingerprint, raw_public_key
from fiumatch.store import Peer
from tests.node.helpers import det_rng


def test_an_open_session_takes_one_threadpool_hop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "FIU-R"
    _, _, admin_token = create_node_dir(
        root, "FIU-R", port=8443, scrypt_log2_n=10, rng=det_rng(b"r")
    )
    service = build_service(root)
    key = Ed25519PrivateKey.generate()
    raw = raw_public_key(key.public_key())
    now = int(time.time())
    service.store.peers.add(
        Peer(node_id="FIU-Q", url="https://q", public_key=raw, fingerprint=fingerprint(raw),
             added_at=now)
    )  # fmt: skip
    service.add_agreement(
        service.authenticate(admin_token), peer_id="FIU-Q", modes=["filter"],
        purposes=["money_laundering"], identifier_types=["passport"], budget_per_epoch=100,
        max_set_size=10, valid_from=now - 10, valid_until=now + 3600,
    )  # fmt: skip
    hops: list[bool] = []
    real = getattr(routes_peer, "run_in_threadpool")  # noqa: B009 - not in __all__

    async def counting(func: Any, *args: Any) -> Any:
        def call() -> Any:
            try:
                asyncio.get_running_loop()
                hops.append(True)  # on an event loop: wrong
            except RuntimeError:
                hops.append(False)
            return func(*args)

        return await real(call)

    monkeypatch.setattr(routes_peer, "run_in_threadpool", counting)
    app = create_app(service, scheduler=False)
    sid = "ab" * 16
    meta = {"session_id": sid, "mode": "filter", "purpose": "money_laundering",
            "id_types": ["passport"], "set_size": 4, "proofs": True}  # fmt: skip
    body = json.dumps(meta).encode()
    target = "/peer/v1/sessions"
    headers = {"content-type": "application/json", "fiumatch-peer": "FIU-R",
               "fiumatch-session": sid}  # fmt: skip
    headers.update(
        httpsig.sign_request(
            method="POST", target=target, authority="fiu-r", headers=headers, body=body,
            key=key, keyid="FIU-Q", now=now, rng=os.urandom,
        )
    )  # fmt: skip

    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://fiu-r") as client:
            return await client.post(target, content=body, headers=headers)

    try:
        r = asyncio.run(run())
    finally:
        service.close()
        service.store.close()
    assert r.status_code == 200, r.text
    assert r.json()["session_id"] == sid
    assert "signature" in r.headers and "fiumatch-audit-receipts" in r.headers
    assert hops == [False]
