"""Fixtures for the web interface: an in-process node driven over ASGI (fast page tests) and
helpers to build real node directories, load them with synthetic data and export audit bundles
the way an auditor receives them.

Every node directory lives under pytest's tmp path; nothing here touches the network beyond
127.0.0.1.
"""

from __future__ import annotations

import os
import re
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from fiumatch.auditlog.bundle import export_bundle
from fiumatch.auditlog.checkpoint import Checkpoint, NoteSigner, sign_checkpoint
from fiumatch.auditlog.proofs import root_at
from fiumatch.node.directory import NodeDir, create_node_dir
from fiumatch.node.keys import NodeKeys
from fiumatch.node.runner import free_port
from fiumatch.store import Hit, Peer, Query, QueryResult, Role, Store, User, issue_token

with warnings.catch_warnings():
    # starlette.testclient warns at import that it prefers the httpx2 package; the client
    # works the same with httpx, which the project already depends on.
    from starlette.exceptions import StarletteDeprecationWarning

    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "web"
FIXTURE_CSV = ROOT / "tests" / "fixtures" / "subjects.csv"
ROLES: tuple[Role, ...] = ("analyst", "supervisor", "auditor")
IDENTIFIER_COLUMNS = (
    "local_ref", "name", "given_name", "family_name", "aliases", "registration_number", "lei",
    "iban", "account_number", "passport_number", "national_id", "tax_id", "phone", "email",
    "wallet_address",
)  # fmt: skip


def add_role_users(nd: NodeDir) -> dict[str, str]:
    """One user per role (named ``<role>-<node id>``); returns role -> bearer token."""
    tokens: dict[str, str] = {}
    with nd.open_store() as store:
        for role in ROLES:
            t = issue_token(os.urandom)
            store.users.add(
                User(
                    name=f"{role}-{nd.node_id.lower()}",
                    role=role,
                    token_id=t.token_id,
                    token_hash=t.token_hash,
                    created_at=int(time.time()),
                )
            )
            tokens[role] = t.token
    return tokens


def load_csv(nd: NodeDir, path: Path) -> int:
    """Ingest a CSV file of subjects into the node's store (before it starts)."""
    from fiumatch.ingest import Reject, read
    from fiumatch.node.service import to_stored

    n = 0
    with nd.open_store() as store, store.transaction():
        for item in read(path, "csv", default_retention=date.today() + timedelta(days=1826)):
            if not isinstance(item, Reject):
                store.subjects.upsert_with_keys(*to_stored(item), now=int(time.time()))
                n += 1
    return n


def identifiers_in(*paths: Path) -> set[str]:
    """Every identifier value of the given CSV files that is long enough to be unmistakable
    in a page (6+ characters; multi-valued cells split)."""
    import csv

    found: set[str] = set()
    for path in paths:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            for row in csv.DictReader(fh):
                for col in IDENTIFIER_COLUMNS:
                    for value in (row.get(col) or "").split(";"):
                        if len(value.strip()) >= 6:
                            found.add(value.strip())
    return found


def export_node_bundle(
    nd: NodeDir, origin: str | None = None, key: NodeKeys | None = None
) -> bytes:
    """The node's whole log as a bundle with one checkpoint, signed like the node's own export
    (its identity key under ``<node id>/audit``) or by ``key`` to forge one."""
    origin = origin or f"{nd.node_id}/audit"
    keys = key or nd.keys()
    with Store.open(nd.settings.db_path) as store:
        size = store.audit.size()
        leaves = store.audit.leaves(0, size)

        def get_node(level: int, index: int) -> bytes:
            node = store.audit.node(level, index)
            if node is None:
                raise KeyError((level, index))
            return node

        note = sign_checkpoint(
            Checkpoint(origin, size, root_at(size, get_node)), NoteSigner(origin, keys.identity)
        )
        return b"".join(
            export_bundle(
                origin=origin,
                entries=[leaf.entry for leaf in leaves],
                checkpoints=[note],
                get_node=get_node,
            )
        )


# --- the in-process node ----------------------------------------------------------------------


@dataclass
class InProcessNode:
    nd: NodeDir
    service: Any
    client: TestClient
    tokens: dict[str, str]
    query_id: str
    hit_ids: list[str]
    identifiers: set[str]
    peer_id: str = "FIU-P"
    extra: dict[str, Any] = field(default_factory=dict)

    def login(self, role: str, *, follow: bool = True) -> Any:
        """Sign in through the form (nonce cookie and all); returns the response."""
        self.client.cookies.clear()
        page = self.client.get("/ui/login")
        nonce = re.search(r'name="nonce" value="([^"]+)"', page.text)
        assert nonce is not None
        return self.client.post(
            "/ui/login",
            data={"nonce": nonce.group(1), "token": self.tokens[role], "next": ""},
            follow_redirects=follow,
        )

    def csrf(self, path: str = "/ui/") -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', self.client.get(path).text)
        assert found is not None
        return found.group(1)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessNode]:
    """A node (not a process: its ASGI app over TestClient) holding the fixture subjects, a
    pinned peer and a finished query with hits on three subjects."""
    from fiumatch.node.app import build_service, create_app

    root = tmp_path_factory.mktemp("web-node")
    nd, _, admin = create_node_dir(
        root / "FIU-T", "FIU-T", port=free_port(), scrypt_log2_n=10, env={}
    )
    tokens = {"admin": admin, **add_role_users(nd)}
    load_csv(nd, FIXTURE_CSV)
    service = build_service(nd.root, env={})
    now = service.now()
    other = NodeKeys.generate(os.urandom)
    service.store.peers.add(
        Peer(
            node_id="FIU-P",
            url="https://127.0.0.1:9",
            public_key=other.public_key_raw,
            fingerprint=other.fingerprint,
            added_at=now,
        )
    )
    subjects = [
        r[0]
        for r in service.store.db.connection().execute(
            "SELECT id FROM subjects ORDER BY local_ref LIMIT 3"
        )
    ]
    qid = "q-00000000000000aa"
    service.store.queries.create(
        Query(
            id=qid,
            analyst=f"analyst-{nd.node_id.lower()}",
            purpose="money_laundering",
            legal_basis="AMLD art. 53",
            case_ref="CASE-7",
            status="running",
            created_at=now,
        )
    )
    hits = [
        Hit(
            id=f"h-{i:016x}",
            hit_token=bytes([i + 1]) * 72,
            query_id=qid,
            peer_id="FIU-P",
            subject_id=s,
            key_types=(0x04, 0x10) if i == 0 else (0x10,),
            strength=3 if i == 0 else 2,
            created_at=now,
        )
        for i, s in enumerate(subjects)
    ]
    service.store.queries.record_result(
        QueryResult(
            query_id=qid,
            peer_id="FIU-P",
            status="ok",
            reason="filter: 4 keys hit of 30",
            hit_count=len(hits),
            recorded_at=now,
        ),
        hits,
    )
    service.store.queries.set_status(qid, "done", now=now)
    app = create_app(service, scheduler=False)
    with TestClient(app, base_url="https://testserver") as client:
        yield InProcessNode(
            nd=nd,
            service=service,
            client=client,
            tokens=tokens,
            query_id=qid,
            hit_ids=[h.id for h in hits],
            identifiers=identifiers_in(FIXTURE_CSV),
        )
