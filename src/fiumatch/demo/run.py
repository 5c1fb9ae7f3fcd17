"""The multi-node demo: FIU-DE, FIU-FR and FIU-LV as real uvicorn processes on 127.0.0.1.

Each node gets synthetic, overlapping data in its own script and format (``fiumatch.synth``):
DE as goAML XML, FR as FollowTheMoney, LV as CSV. (synth has no Latvian profile; LV's records
come from its Russian-language profile, Cyrillic script, which is what a Latvian FIU often
holds.) Then: pin peers by fingerprint, record agreements, run a fan-out filter query (DE), a
mutual bulk match (FR with DE), a cardinality query (LV), one disclosure request with its
approval, and print what each side learned. Every node is stopped in ``finally`` (process
group kill) and by ``atexit``.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from fiumatch.client._cli import key_types_text, readable_ref
from fiumatch.client.api import ApiClient
from fiumatch.node.directory import NodeDir, create_node_dir
from fiumatch.node.runner import NodeProcess, free_port
from fiumatch.node.service import to_stored
from fiumatch.store import Role, Store, User, issue_token

__all__ = ["DemoNode", "connect", "load_file", "make_node", "run_demo", "wait_query"]

NODES = (
    ("FIU-DE", "DE", "goaml", "DE.goaml.xml"),
    ("FIU-FR", "FR", "ftm", "FR.ftm.json"),
    ("FIU-LV", "RU", "csv", "RU.csv"),
)


@dataclass
class DemoNode:
    node_id: str
    dir: NodeDir
    fingerprint: str
    admin: str
    analyst: str
    supervisor: str
    auditor: str
    process: NodeProcess

    @property
    def url(self) -> str:
        return self.dir.url

    @property
    def root(self) -> Path:
        return self.dir.root

    def client(self, role: str = "admin") -> ApiClient:
        return ApiClient(self.url, getattr(self, role), cacert=self.dir.settings.tls_cert)


def make_node(
    root: Path,
    node_id: str,
    data: Path | None = None,
    fmt: str | None = None,
    scrypt_log2_n: int = 12,
) -> DemoNode:
    """Init a node directory, load ``data`` into it, add one user per role (not started)."""
    opened, result, admin = create_node_dir(
        root / node_id, node_id, port=free_port(), scrypt_log2_n=scrypt_log2_n
    )
    tokens: dict[str, str] = {}
    with opened.open_store() as store:
        now = int(time.time())
        roles: tuple[Role, ...] = ("analyst", "supervisor", "auditor")
        for role in roles:
            t = issue_token(os.urandom)
            store.users.add(
                User(
                    name=f"{role}-{node_id.lower()}",
                    role=role,
                    token_id=t.token_id,
                    token_hash=t.token_hash,
                    created_at=now,
                )
            )
            tokens[role] = t.token
        if data is not None:
            load_file(store, data, fmt)
    return DemoNode(
        node_id=node_id,
        dir=opened,
        fingerprint=result.fingerprint,
        admin=admin,
        process=NodeProcess(opened.root, opened.url),
        **tokens,
    )


def load_file(store: Store, path: Path, fmt: str | None) -> int:
    from fiumatch.ingest import Reject, read

    items = read(path, fmt, default_retention=date.today() + timedelta(days=1826))
    stored = [to_stored(item) for item in items if not isinstance(item, Reject)]
    store.subjects.upsert_many(stored, now=int(time.time()))
    return len(stored)


def connect(
    nodes: list[DemoNode], *, budget: int = 100_000, max_set: int = 10_000, proofs: bool = True
) -> None:
    """Pin every pair (fingerprints compared out of band: here, from init) and add agreements."""
    now = int(time.time())
    for a in nodes:
        with a.client() as c:
            for b in nodes:
                if a is b:
                    continue
                c.add_peer(b.node_id, b.url, b.fingerprint)
                c.add_agreement(
                    peer=b.node_id,
                    modes=["filter", "mutual", "cardinality"],
                    purposes=["money_laundering", "terrorist_financing", "predicate_offence"],
                    identifier_types=ALL_TYPES,
                    budget_per_epoch=budget,
                    max_set_size=max_set,
                    valid_from=now - 60,
                    valid_until=now + 365 * 86400,
                    proofs=proofs,
                )


ALL_TYPES = [
    "iban",
    "account_bic",
    "lei",
    "passport",
    "national_id",
    "tax_id",
    "wallet",
    "email",
    "phone",
    "person_name_dob",
    "person_tokens_dob",
    "person_surname_initial_dob",
    "org_name_country",
    "org_registration_country",
]


def wait_query(
    client: ApiClient,
    query: dict[str, Any],
    timeout: float = 60.0,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Wait for ``query`` to finish (or ``timeout``): with ``on_progress``, poll every 0.1 s
    and report each state; without, long-poll the node (answered as soon as it is done)."""
    if on_progress is None:
        return dict(client.wait_query(query, timeout=timeout))
    deadline = time.monotonic() + timeout
    while query["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
        query = client.query(query["id"])
        on_progress(query)
    return query


def run_demo(workdir: Path | None = None, subjects: int = 60, seed: int = 7) -> int:
    from rich.console import Console
    from rich.table import Table

    from fiumatch import synth

    console = Console()
    started = time.monotonic()
    tmp = tempfile.TemporaryDirectory(prefix="fiumatch-demo-") if workdir is None else None
    root = Path(tmp.name) if tmp else Path(workdir)  # type: ignore[arg-type]
    nodes: list[DemoNode] = []
    try:
        with console.status("generating synthetic data and creating three nodes"):
            ds = synth.generate(
                [j for _, j, _, _ in NODES], subjects=subjects, overlap=0.3, seed=seed
            )
            synth.write(ds, root / "data", formats=("csv", "ftm", "goaml"))
            for node_id, _, fmt, fname in NODES:
                nodes.append(make_node(root, node_id, root / "data" / fname, fmt))
        with console.status("starting nodes (uvicorn, TLS)"):
            for n in nodes:
                n.process.start()
        de, fr, lv = nodes
        with console.status("pinning peers and recording agreements"):
            connect(nodes)
        console.print(
            f"[green]3 nodes up[/green] in {root}: "
            + ", ".join(f"{n.node_id} {n.url} {n.fingerprint[:20]}…" for n in nodes)
        )

        with de.client("analyst") as c:
            q = c.create_query(
                purpose="money_laundering",
                legal_basis="AMLD art. 53",
                case_ref="DE-2024-17",
                mode="filter",
                all_subjects=True,
            )
            with console.status("FIU-DE fan-out filter query"):
                q = wait_query(c, q)
        with fr.client("analyst") as c:
            m = c.create_query(
                purpose="terrorist_financing",
                legal_basis="AMLD art. 53",
                case_ref="FR-BULK-1",
                mode="mutual",
                all_subjects=True,
                peers=["FIU-DE"],
            )
            with console.status("FIU-FR mutual bulk match with FIU-DE"):
                m = wait_query(c, m)
        with lv.client("analyst") as c:
            k = c.create_query(
                purpose="predicate_offence",
                legal_basis="AML law s. 56",
                case_ref="LV-CARD-3",
                mode="cardinality",
                all_subjects=True,
            )
            with console.status("FIU-LV cardinality query"):
                k = wait_query(c, k)

        disclosure: dict[str, Any] | None = None
        fr_hits = [h for h in q["hits"] if h["peer"] == "FIU-FR"] or q["hits"]
        if fr_hits:
            hit = fr_hits[0]
            owner = next(n for n in nodes if n.node_id == hit["peer"])
            with de.client("analyst") as c:
                req = c.request_disclosure(
                    hit_id=hit["id"],
                    purpose="money_laundering",
                    case_ref="DE-2024-17",
                    legal_basis="AMLD art. 53",
                )
            with owner.client("supervisor") as c:
                c.decide_disclosure(
                    req["id"],
                    approve=True,
                    reason="consistent with the MoU; no onward dissemination",
                )
            with de.client("analyst") as c:
                disclosure = c.refresh_disclosure(req["id"])

        # ---- what each side learned ------------------------------------------------------
        t = Table(title="What each side learned", show_lines=True)
        t.add_column("exchange")
        t.add_column("querier learned")
        t.add_column("owner learned")
        for p in q["peers"]:
            t.add_row(
                f"filter  FIU-DE → {p['peer']}",
                f"{p['hit_count']} subjects hit ({p['reason']})",
                "how many evaluations were asked for; nothing about which",
            )
        for p in m["peers"]:
            t.add_row(
                f"mutual  FIU-FR ↔ {p['peer']}",
                f"{p['hit_count']} subjects in common",
                f"the same intersection, signed by both ({p['reason']})",
            )
        for p in k["peers"]:
            t.add_row(
                f"cardinality  FIU-LV → {p['peer']}", p["reason"], "the size of FIU-LV's set only"
            )
        if disclosure:
            released = disclosure.get("released") or {}
            t.add_row(
                f"disclosure  FIU-DE → {disclosure['peer']}",
                f"{disclosure['status']}: {released.get('name', '')} "
                f"({readable_ref(str(released.get('local_ref', '')))})",
                "which of its own records the hit token names; purpose and case ref",
            )
        console.print(t)
        hits = Table(title="FIU-DE hits (filter mode): its own subjects that the peer also holds")
        for col in ("peer", "FIU-DE subject", "name", "key types matched", "strength"):
            hits.add_column(col)
        for h in q["hits"][:12]:
            hits.add_row(
                h["peer"],
                readable_ref(h["local_ref"]),
                h["name"],
                key_types_text(h["key_types"]),
                h["strength_label"],
            )
        console.print(hits)
        console.print(f"demo finished in {time.monotonic() - started:.1f} s")
        return 0
    finally:
        for n in nodes:
            n.process.stop()
        if tmp is not None:
            tmp.cleanup()
