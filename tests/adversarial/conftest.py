"""A victim node (a real ``fiumatch node serve`` process) and the keys of the peers that attack it.

``victim``: FIU-V with synthetic data, pinned to three peers whose keys the test holds:
FIU-H (the hostile peer: every case is sent with its valid key), FIU-W (another, honest peer,
whose sessions and filters H must not reach) and FIU-B (a peer with a tiny budget, so
exhausting it leaves H's budget alone). None of the three runs: the victim never calls them.
Agreements: H and W get filter, mutual and cardinality, at most 50 keys per session; B gets a
budget of 10 evaluations per epoch. Sessions per peer are raised to 64 so that the cases,
each of which fails its own session, never hit the open-session cap.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fiumatch import synth
from fiumatch.demo.run import ALL_TYPES, DemoNode, make_node
from fiumatch.node.keys import fingerprint, raw_public_key
from fiumatch.store import Agreement, Peer, Store

from .hostile import HostilePeer


@dataclass(frozen=True)
class Victim:
    node: DemoNode
    db: Path
    hostile: HostilePeer
    other: HostilePeer
    broke: HostilePeer


def pin(store: Store, node_id: str, key: Ed25519PrivateKey, *, budget: int, max_set: int) -> None:
    raw = raw_public_key(key.public_key())
    now = int(time.time())
    store.peers.add(
        Peer(
            node_id=node_id,
            url=f"https://127.0.0.1:9/{node_id}",
            public_key=raw,
            fingerprint=fingerprint(raw),
            added_at=now,
        )
    )
    terms = {
        "modes": ["filter", "mutual", "cardinality"],
        "purposes": ["money_laundering"],
        "identifier_types": ALL_TYPES,
    }
    store.agreements.add(
        Agreement(
            id=f"agr-{node_id.lower()}",
            peer_id=node_id,
            modes=tuple(terms["modes"]),
            purposes=tuple(terms["purposes"]),
            identifier_types=tuple(terms["identifier_types"]),
            budget_per_epoch=budget,
            max_set_size=max_set,
            valid_from=now - 60,
            valid_until=now + 86400,
            signed_json=json.dumps(terms, sort_keys=True),
            created_at=now,
        )
    )


@pytest.fixture(scope="session")
def victim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Victim]:
    root = tmp_path_factory.mktemp("adversarial")
    ds = synth.generate(["DE"], subjects=40, overlap=0.0, seed=5)
    synth.write(ds, root / "data", formats=("csv",))
    node = make_node(root, "FIU-V", root / "data" / "DE.csv", "csv", scrypt_log2_n=10)
    keys = {n: Ed25519PrivateKey.generate() for n in ("FIU-H", "FIU-W", "FIU-B")}
    with node.dir.open_store() as store:
        pin(store, "FIU-H", keys["FIU-H"], budget=100_000, max_set=50)
        pin(store, "FIU-W", keys["FIU-W"], budget=100_000, max_set=50)
        pin(store, "FIU-B", keys["FIU-B"], budget=10, max_set=50)
    env = {
        "FIUMATCH_SESSIONS_MAX_OPEN_PER_PEER": "64",
        "FIUMATCH_SESSIONS_MAX_BODY_BYTES": str(256 * 1024),
    }
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        node.process.start()
    try:
        authority = node.url.split("://", 1)[1]

        def peer(name: str) -> HostilePeer:
            return HostilePeer(node_id=name, key=keys[name], base=node.url, authority=authority)

        peers = [peer("FIU-H"), peer("FIU-W"), peer("FIU-B")]
        try:
            yield Victim(node, node.dir.settings.db_path, *peers)
        finally:
            for p in peers:
                p.http.close()
    finally:
        node.process.stop()
