"""The app factory's OpenAPI: every status a route group can answer is documented."""

from __future__ import annotations

from pathlib import Path

from fiumatch.node.app import build_service, create_app
from fiumatch.node.audit import PeerLogError
from fiumatch.node.directory import create_node_dir


def test_peer_routes_document_the_split_view_502(tmp_path: Path) -> None:
    # routes_peer refuses an asker whose audit headers show a split view with 502
    # peer_audit_invalid; the OpenAPI of every peer route must list it.
    assert PeerLogError.http_status == 502
    opened, _, _ = create_node_dir(tmp_path / "FIU-S", "FIU-S", port=8443, scrypt_log2_n=10)
    service = build_service(opened.root)
    try:
        paths = create_app(service, scheduler=False).openapi()["paths"]
    finally:
        service.close()
        service.store.close()
    peer_ops = [op for p, ops in paths.items() if p.startswith("/peer/") for op in ops.values()]
    assert peer_ops
    for op in peer_ops:
        assert "502" in op["responses"]
