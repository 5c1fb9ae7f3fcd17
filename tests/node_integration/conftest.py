"""Fixtures that run real node processes (``fiumatch node serve``) on free loopback ports.

Nodes are created in-process (init, data, users), started as subprocesses in their own process
group, polled until ready (bounded), and killed at teardown whatever happens. The fixtures are
session-scoped: every module reuses the same processes, so tests must leave them usable (a test
that stops a node starts it again).

* ``cluster``: FIU-DE, FIU-FR, FIU-LV with overlapping synthetic data, all pinned to each other
  with broad agreements.
* ``trio``: FIU-X, FIU-Y and FIU-Z without data. Y grants X a narrow agreement (filter, money
  laundering, passport/email, budget 10 per epoch, at most 5 per session) and Z one that only
  starts tomorrow; X has pinned Y but agreed nothing. Z was made by ``fiumatch node init
  --cert/--key`` with an operator's CA-issued certificate.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fiumatch import synth
from fiumatch.cli.main import main
from fiumatch.client.peer import PeerClient
from fiumatch.demo.run import DemoNode, connect, make_node
from fiumatch.node.directory import open_node_dir
from fiumatch.node.keys import NodeKeys
from fiumatch.node.runner import NodeProcess, free_port
from fiumatch.store import Peer, Role, User, issue_token

JURISDICTIONS = (("FIU-DE", "DE"), ("FIU-FR", "FR"), ("FIU-LV", "RU"))


@pytest.fixture(scope="session")
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


@dataclass(frozen=True)
class OperatorCert:
    ca: Path
    cert: Path
    key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_operator_cert(directory: Path) -> OperatorCert:
    """An operator's own TLS material: a P-384 CA and a leaf for 127.0.0.1 it issued."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("Operator Test CA"))
        .issuer_name(_name("Operator Test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA384())
    )
    key = ec.generate_private_key(ec.SECP384R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("fiu-z.operator.test"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA384())
    )
    out = OperatorCert(ca=directory / "ca.pem", cert=directory / "z.pem", key=directory / "z.key")
    out.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out.cert.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    fd = os.open(out.key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return out


def adopt(directory: Path) -> DemoNode:
    """A node directory made by ``fiumatch node init``: add one user per role (not started)."""
    opened = open_node_dir(directory)
    tokens = {}
    roles: tuple[Role, ...] = ("analyst", "supervisor", "auditor")
    with opened.open_store() as store:
        for role in roles:
            t = issue_token(os.urandom)
            store.users.add(
                User(
                    name=f"{role}-{opened.node_id.lower()}",
                    role=role,
                    token_id=t.token_id,
                    token_hash=t.token_hash,
                    created_at=int(time.time()),
                )
            )
            tokens[role] = t.token
    return DemoNode(
        node_id=opened.node_id,
        dir=opened,
        fingerprint=opened.keys().fingerprint,
        admin=opened.admin_token_file.read_text().strip(),
        process=NodeProcess(opened.root, opened.url),
        **tokens,
    )


@dataclass(frozen=True)
class Trio:
    x: DemoNode
    y: DemoNode
    z: DemoNode
    operator: OperatorCert


@pytest.fixture(scope="session")
def trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trio]:
    root = tmp_path_factory.mktemp("trio")
    x, y = make_node(root, "FIU-X", scrypt_log2_n=10), make_node(root, "FIU-Y", scrypt_log2_n=10)
    operator = make_operator_cert(root / "operator")
    port = free_port()
    init = ["node", "init", "--dir", str(root / "FIU-Z"), "--node-id", "FIU-Z"]
    init += ["--port", str(port), "--scrypt-log2n", "10"]
    assert main([*init, "--cert", str(operator.cert), "--key", str(operator.key)]) == 0
    z = adopt(root / "FIU-Z")
    nodes = (x, y, z)
    try:
        for n in nodes:
            n.process.start()
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
            c.add_peer(z.node_id, z.url, z.fingerprint)
            c.add_agreement(
                peer=z.node_id,
                modes=["filter", "mutual", "cardinality"],
                purposes=["money_laundering"],
                identifier_types=["passport", "email"],
                budget_per_epoch=1000,
                max_set_size=100,
                valid_from=now + 86400,
                valid_until=now + 2 * 86400,
            )
        yield Trio(x, y, z, operator)
    finally:
        for n in nodes:
            n.process.stop()


@pytest.fixture(scope="session")
def strict_pair(trio: Trio) -> tuple[DemoNode, DemoNode]:
    return trio.x, trio.y


def peer_client(frm: DemoNode, to: DemoNode) -> tuple[PeerClient, NodeKeys]:
    """A signed client with ``frm``'s identity key talking to ``to``."""
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
