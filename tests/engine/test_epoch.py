"""Epoch encoding: the same outputs and the same filter (same id) on any executor, Dask included."""

from __future__ import annotations

import warnings

import pytest

from fiumatch.engine import (
    ProcessPoolChunkExecutor,
    SerialExecutor,
    build_epoch_ledger,
    encode_epoch,
    iter_encode_epoch,
)
from fiumatch.protocol import keys, oprf
from fiumatch.protocol.errors import LocalProtocolError
from fiumatch.protocol.sessions import build_ledger, evaluate_outputs
from fiumatch.protocol.wire import Suite

KP = keys.derive_epoch_key(bytes(range(32)), "fiu-test", 3)
KEYS = [b"match-key-%05d" % i for i in range(700)]


@pytest.mark.parametrize("suite", list(Suite))
def test_outputs_are_the_oprf_evaluations_in_order(
    suite: Suite, process_pool: ProcessPoolChunkExecutor
) -> None:
    expected = evaluate_outputs(KP, KEYS, suite)
    assert expected[5] == oprf.evaluate(
        KP.sk, KEYS[5], 1 if suite is Suite.VOPRF_RISTRETTO255_SHA512 else 0
    )
    assert encode_epoch(KP.sk, KEYS, SerialExecutor(), suite=suite, chunk=128) == expected
    assert encode_epoch(KP.sk, iter(KEYS), process_pool, suite=suite, chunk=97) == expected


def test_chunks_stream_in_order_from_an_iterator(process_pool: ProcessPoolChunkExecutor) -> None:
    chunks = list(iter_encode_epoch(KP.sk, iter(KEYS), process_pool, chunk=300, window=1))
    assert [len(c) for c in chunks] == [300, 300, 100]
    assert [o for c in chunks for o in c] == evaluate_outputs(
        KP, KEYS, Suite.VOPRF_RISTRETTO255_SHA512
    )


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(LocalProtocolError):
        encode_epoch(KP.sk, KEYS, SerialExecutor(), chunk=0)
    with pytest.raises(LocalProtocolError):
        encode_epoch(b"short", KEYS, SerialExecutor())


@pytest.mark.parametrize("exact", [False, True])
def test_the_ledger_is_byte_identical_to_build_ledger(
    exact: bool, process_pool: ProcessPoolChunkExecutor
) -> None:
    suite = Suite.OPRF_RISTRETTO255_SHA512
    keys_with_dups = KEYS + KEYS[:50]
    reference = build_ledger(KP, keys_with_dups, suite=suite, epoch=3, fp_rate=1e-6, exact=exact)
    ledger = build_epoch_ledger(
        KP, keys_with_dups, process_pool, suite=suite, epoch=3, fp_rate=1e-6, exact=exact, chunk=64
    )
    assert ledger.objects() == reference.objects()
    assert ledger.filter_id == reference.filter_id and ledger.count == len(KEYS)


def test_a_crowded_filter_counts_only_outputs_that_set_a_new_bit(
    process_pool: ProcessPoolChunkExecutor,
) -> None:
    suite = Suite.OPRF_RISTRETTO255_SHA512
    reference = build_ledger(KP, KEYS, suite=suite, epoch=3, fp_rate=0.3)
    assert reference.count < len(KEYS)  # some outputs found all their bits set already
    seen: list[bytes] = []
    ledger = build_epoch_ledger(
        KP, KEYS, process_pool, suite=suite, epoch=3, fp_rate=0.3, chunk=50, on_outputs=seen.extend
    )
    assert ledger.objects() == reference.objects() and ledger.count == reference.count
    assert seen == evaluate_outputs(KP, KEYS, suite)


def test_progress_bar_reports_counts_only(capsys: pytest.CaptureFixture[str]) -> None:
    out = encode_epoch(KP.sk, KEYS[:20], SerialExecutor(), chunk=8, progress=True)
    err = capsys.readouterr().err
    assert len(out) == 20
    assert "epoch encoding" in err and "20/20" in err
    assert "match-key" not in err and out[0].hex()[:16] not in err


def test_dask_local_cluster_gives_the_local_result() -> None:
    distributed = pytest.importorskip("dask.distributed")
    from fiumatch.engine import DaskChunkExecutor

    local = encode_epoch(KP.sk, KEYS, SerialExecutor(), chunk=100)
    with warnings.catch_warnings():
        # distributed's own start-up may warn (ports, deprecations) — not ours to fail on
        warnings.simplefilter("ignore")
        with (
            distributed.LocalCluster(
                n_workers=2, processes=True, dashboard_address=None, threads_per_worker=1
            ) as cluster,
            DaskChunkExecutor(cluster.scheduler_address) as dask,
        ):
            assert dask.workers == 2
            remote = encode_epoch(KP.sk, KEYS, dask, chunk=100)
            ledger = build_epoch_ledger(
                KP, KEYS, dask, suite=Suite.VOPRF_RISTRETTO255_SHA512, epoch=3, fp_rate=1e-9
            )
            with pytest.raises(LocalProtocolError):  # typed errors come back typed
                dask.map(oprf.evaluate_many, [(KP.sk, [b"x" * 70000], 1)])
    assert remote == local
    reference = build_ledger(KP, KEYS, suite=Suite.VOPRF_RISTRETTO255_SHA512, epoch=3, fp_rate=1e-9)
    assert ledger.objects() == reference.objects()
