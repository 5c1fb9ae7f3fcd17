"""Where a node runs its cryptography: small jobs in the calling thread, big ones on its process
pool, epoch encoding on a Dask cluster when ``compute.dask_scheduler`` names one; the epoch's
filter and output index are the same bytes whichever runs them."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fiumatch.engine import DaskChunkExecutor, ProcessPoolChunkExecutor, SerialExecutor
from fiumatch.ingest import build_subject
from fiumatch.node.app import build_service
from fiumatch.node.directory import create_node_dir
from fiumatch.node.keys import fingerprint, raw_public_key
from fiumatch.node.service import NodeService
from fiumatch.store import Agreement, Peer
from tests.node.helpers import det_rng

T0 = 1_760_000_000
Maker = Callable[..., NodeService]


@pytest.fixture(scope="module")
def node_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("compute") / "FIU-C"
    create_node_dir(root, "FIU-C", port=8443, scrypt_log2_n=10, rng=det_rng(b"c"), clock=lambda: T0)
    svc = build_service(root, clock=lambda: T0, rng=det_rng(b"svc"), env={})
    try:
        raw = raw_public_key(Ed25519PrivateKey.generate().public_key())
        svc.store.peers.add(
            Peer(node_id="FIU-P", url="https://p", public_key=raw,
                 fingerprint=fingerprint(raw), added_at=T0)
        )  # fmt: skip
        svc.store.agreements.add(
            Agreement(
                id="agr-p",
                peer_id="FIU-P",
                modes=("filter",),
                purposes=("money_laundering",),
                identifier_types=("passport", "person_name_dob"),
                budget_per_epoch=10_000,
                max_set_size=10_000,
                valid_from=T0 - 10,
                valid_until=T0 + 10**6,
                signed_json="{}",
                created_at=T0,
            )
        )
        svc.load_subjects(
            build_subject(
                {
                    "local_ref": f"R-{i}",
                    "type": "person",
                    "name": f"Ann Example{i}",
                    "birth_date": "1980-01-02",
                    "passport_number": f"C01X{i:05d}",
                    "passport_country": "DE",
                },
                source="csv",
                file="t.csv",
                record=str(i),
                line=None,
                default_retention=date(2030, 1, 1),
            )
            for i in range(300)
        )
    finally:
        svc.close()
        svc.store.close()
    return root


@pytest.fixture
def open_service(node_dir: Path) -> Iterator[Maker]:
    made: list[NodeService] = []

    def make(**env: str) -> NodeService:
        svc = build_service(node_dir, clock=lambda: T0, rng=det_rng(b"svc"), env=env)
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.close()
        svc.store.close()


def _epoch_bytes(svc: NodeService) -> tuple[list[bytes], list[tuple[bytes, str, int, int]]]:
    svc._prepare_epoch("FIU-P", 1)
    return svc._ledger("FIU-P", 1).objects(), svc._index_rows("FIU-P", 1)


def test_small_jobs_stay_in_the_thread_and_big_ones_go_to_the_pool(open_service: Maker) -> None:
    svc = open_service(FIUMATCH_COMPUTE_PARALLEL_MIN_ELEMENTS="100", FIUMATCH_COMPUTE_WORKERS="2")
    assert isinstance(svc.compute_for(99), SerialExecutor)
    pool = svc.compute_for(100)
    assert isinstance(pool, ProcessPoolChunkExecutor) and pool.workers == 2
    assert svc.compute_for(10**6) is pool  # one pool per node, started once
    single = open_service(FIUMATCH_COMPUTE_WORKERS="1")
    assert isinstance(single.compute_for(10**6), SerialExecutor)


def test_the_pool_encodes_the_same_epoch_as_one_thread(open_service: Maker) -> None:
    serial = _epoch_bytes(open_service(FIUMATCH_COMPUTE_WORKERS="1"))
    pooled_svc = open_service(
        FIUMATCH_COMPUTE_PARALLEL_MIN_ELEMENTS="16", FIUMATCH_COMPUTE_WORKERS="2"
    )
    pooled = _epoch_bytes(pooled_svc)
    assert isinstance(pooled_svc._compute, ProcessPoolChunkExecutor)  # it really ran there
    assert pooled == serial and len(serial[1]) == 600  # 300 subjects x 2 key types


def test_a_dask_cluster_encodes_the_same_epoch(open_service: Maker) -> None:
    distributed = pytest.importorskip("dask.distributed")
    serial = _epoch_bytes(open_service(FIUMATCH_COMPUTE_WORKERS="1"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # distributed's own start-up warnings are not ours
        with distributed.LocalCluster(
            n_workers=2, processes=True, dashboard_address=None, threads_per_worker=1
        ) as cluster:
            svc = open_service(FIUMATCH_COMPUTE_DASK_SCHEDULER=cluster.scheduler_address)
            assert isinstance(svc.compute_for(10, epoch=True), DaskChunkExecutor)
            assert isinstance(svc.compute_for(10), SerialExecutor)  # sessions stay local
            on_dask = _epoch_bytes(svc)
            svc.close()  # closes the Dask client before the cluster goes
    assert on_dask == serial
