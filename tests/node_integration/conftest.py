"""Fixtures that run real node processes (``fiumatch node serve``) on free loopback ports.

Nodes are created in-process (init, data, users), started as subprocesses in their own process
group, polled until ready (bounded), and killed at teardown whatever happens.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fiumatch import synth
from fiumatch.demo.run import DemoNode, connect, make_node

JURISDICTIONS = (("FIU-DE", "DE"), ("FIU-FR", "FR"), ("FIU-LV", "RU"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[DemoNode]]:
    root = tmp_path_factory.mktemp("cluster")
    ds = synth.generate([j for _, j in JURISDICTIONS], subjects=30, overlap=0.3, seed=11)
    synth.write(ds, root / "data", formats=("csv",))
    nodes = [
        make_node(root, nid, root / "data" / f"{j}.csv", "csv", scrypt_log2_n=10)
        for nid, j in JURISDICTIONS
    ]
    try:
        for n in nodes:
            n.process.start()
        connect(nodes)
        yield nodes
    finally:
        for n in nodes:
            n.process.stop()


@pytest.fixture(scope="module")
def strict_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DemoNode, DemoNode]]:
    """X and Y; Y's agreement with X is narrow (filter, money laundering, passport/email,
    budget 10 per epoch, at most 5 per session)."""
    root = tmp_path_factory.mktemp("pair")
    x, y = make_node(root, "FIU-X", scrypt_log2_n=10), make_node(root, "FIU-Y", scrypt_log2_n=10)
    try:
        x.process.start()
        y.process.start()
        now = int(time.time())
        with x.client() as c:
            c.add_peer(y.node_id, y.url, y.fingerprint)
        with y.client() as c:
            c.add_peer(x.node_id, x.url, x.fingerprint)
            c.add_agreement(
                peer=x.node_id,
                modes=["filter"],
                purposes=["money_laundering"],
                identifier_types=["passport", "email"],
                budget_per_epoch=10,
                max_set_size=5,
                valid_from=now - 60,
                valid_until=now + 3600,
            )
        yield x, y
    finally:
        x.process.stop()
        y.process.stop()


def peer_client(frm: DemoNode, to: DemoNode):  # type: ignore[no-untyped-def]
    """A signed client with ``frm``'s identity key talking to ``to``."""
    import os

    from fiumatch.client.peer import PeerClient
    from fiumatch.store import Peer

    keys = frm.dir.keys()
    with to.client() as c:
        info = c.well_known()
    peer = Peer(
        node_id=to.node_id,
        url=to.url,
        public_key=bytes.fromhex(info["public_key"]),
        fingerprint=info["fingerprint"],
        added_at=0,
    )
    return PeerClient(
        own_id=frm.node_id, key=keys.identity, peer=peer, clock=time.time, rng=os.urandom
    ), keys


def data_dir(node: DemoNode) -> Path:
    return node.root
