"""Epochs in process, on an injected clock: the schedule comes from the settings
(``epochs.rotation_seconds``), the scheduler thread started by the app's lifespan rotates when
it is due and purges subjects past retention; a restarted node restores its filter ledgers from
the store (same filter id) without evaluating the OPRF again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fiumatch.ingest import build_subject
from fiumatch.node import service as service_module
from fiumatch.node.app import build_service, create_app
from fiumatch.node.directory import create_node_dir
from fiumatch.node.keys import fingerprint, raw_public_key
from fiumatch.node.scheduler import Scheduler
from fiumatch.node.service import NodeService
from fiumatch.store import Agreement, Peer
from tests.node.helpers import det_rng

T0 = 1_760_000_000
HOUR = 3600


@dataclass
class FakeClock:
    t: float = T0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def node_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sched") / "FIU-S"
    create_node_dir(root, "FIU-S", port=8443, scrypt_log2_n=10, rng=det_rng(b"s"), clock=lambda: T0)
    return root


def _service(node_dir: Path, clock: FakeClock) -> NodeService:
    env = {"FIUMATCH_EPOCHS_ROTATION_SECONDS": str(HOUR)}  # the schedule comes from settings
    return build_service(node_dir, clock=clock, rng=det_rng(b"svc"), env=env)


def _subject(ref: str, passport: str, retention: str) -> object:
    built = build_subject(
        {
            "local_ref": ref,
            "type": "person",
            "name": "Ann Example",
            "passport_number": passport,
            "passport_country": "DE",
            "retention_until": retention,
        },
        source="csv",
        file="t.csv",
        record=ref,
        line=None,
        default_retention=date(2030, 1, 1),
    )
    assert not isinstance(built, list)
    return built


@pytest.fixture
def service(node_dir: Path) -> Iterator[tuple[NodeService, FakeClock]]:
    clock = FakeClock()
    svc = _service(node_dir, clock)
    try:
        if svc.store.peers.get("FIU-P") is None:
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
                    identifier_types=("passport",),
                    budget_per_epoch=100,
                    max_set_size=100,
                    valid_from=T0 - 10,
                    valid_until=T0 + 1000 * HOUR,
                    signed_json="{}",
                    created_at=T0,
                )
            )
            svc.load_subjects(
                [
                    _subject("KEEP-1", "C01X00T47", "2030-01-01"),
                    _subject("GONE-1", "C01X00T48", "2025-01-01"),  # past retention at T0
                ]
            )
            svc.ensure_epoch("FIU-P")
        yield svc, clock
    finally:
        svc.close()
        svc.store.close()


def _active(svc: NodeService) -> int:
    active = svc.store.epochs.active("FIU-P", "local")
    assert active is not None
    return active.epoch


def _events(svc: NodeService, name: str) -> list[dict[str, object]]:
    from fiumatch.auditlog.entry import decode_entry, entry_to_dict

    out = []
    for leaf in svc.store.audit.leaves(0, svc.store.audit.size()):
        entry = entry_to_dict(decode_entry(leaf.entry))
        if str(entry["event"]).upper() == name:
            out.append(entry)
    return out


def test_a_tick_rotates_only_when_the_configured_period_has_passed(
    service: tuple[NodeService, FakeClock],
) -> None:
    svc, clock = service
    assert svc.settings.epoch_rotation_seconds == HOUR
    scheduler = Scheduler(svc, poll_seconds=3600)
    first = _active(svc)
    activated = svc.store.epochs.active("FIU-P", "local").activated_at  # type: ignore[union-attr]
    assert activated is not None
    clock.t = activated + HOUR - 1
    scheduler.tick()
    assert _active(svc) == first
    clock.t = activated + HOUR
    scheduler.tick()
    assert _active(svc) == first + 1
    states = {e.epoch: e.state for e in svc.store.epochs.list_all("FIU-P", "local")}
    assert states[first] == "retired"
    assert svc.store.epochs.blob_kinds("FIU-P", "local", first) == []  # its sets are destroyed
    rotated = _events(svc, "EPOCH_ROTATED")
    assert rotated[-1]["actor"] == "scheduler" and rotated[-1]["epoch"] == first + 1


def test_the_app_lifespan_runs_the_scheduler_thread(
    service: tuple[NodeService, FakeClock],
) -> None:
    svc, clock = service
    app = create_app(svc, poll_seconds=0.02)
    assert isinstance(app.state.scheduler, Scheduler)
    before = _active(svc)
    activated = svc.store.epochs.active("FIU-P", "local").activated_at  # type: ignore[union-attr]
    assert activated is not None
    clock.t = activated + 1
    purges = len(_events(svc, "PURGE"))

    async def run() -> int:
        async with app.router.lifespan_context(app):
            await asyncio.sleep(0.1)
            assert _active(svc) == before  # not due yet
            clock.t = activated + HOUR + 1  # the period passes on the node's clock
            deadline = time.monotonic() + 10
            while _active(svc) == before and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            return _active(svc)

    assert asyncio.run(run()) == before + 1
    assert app.state.scheduler._thread is None  # stopped with the app
    purge_entries = _events(svc, "PURGE")
    assert len(purge_entries) > purges and purge_entries[-1]["actor"] == "scheduler"


def test_a_purge_takes_subjects_out_of_the_served_sets_without_oprf_work(
    service: tuple[NodeService, FakeClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    svc, _ = service
    svc.load_subjects([_subject("GONE-2", "C01X00T49", "2029-06-30")])
    svc._refresh_precompute("FIU-P")  # GONE-2 is served in the active epoch
    epoch = _active(svc)
    gone = next(
        s for s in svc.store.subjects.ids() if svc.store.subjects.require(s).local_ref == "GONE-2"
    )
    served = {sid for _, sid, _, _ in svc._index_rows("FIU-P", epoch)}
    assert gone in served
    count = svc._ledger("FIU-P", epoch).count

    def no_oprf(*args: object, **kwargs: object) -> list[bytes]:
        raise AssertionError("a purge re-uses the stored outputs")

    monkeypatch.setattr(service_module, "build_epoch_ledger", no_oprf)
    assert svc.purge_expired("test", date(2029, 7, 1)) == 1
    assert svc.store.subjects.get(gone) is None
    served = {sid for _, sid, _, _ in svc._index_rows("FIU-P", epoch)}
    assert gone not in served and served == set(svc.store.subjects.ids())
    assert svc._ledger("FIU-P", epoch).count == count - 1
    purge = _events(svc, "PURGE")[-1]
    assert (purge["actor"], purge["scope"], purge["records"]) == ("test", "retention", 1)


def test_a_restart_restores_the_filter_ledger_without_oprf_work(
    service: tuple[NodeService, FakeClock], node_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc, clock = service
    epoch = _active(svc)
    ledger = svc._ledger("FIU-P", epoch)
    filter_id, count = ledger.filter_id, ledger.count

    def no_oprf(*args: object, **kwargs: object) -> list[bytes]:
        raise AssertionError("a restart must not evaluate the OPRF again")

    monkeypatch.setattr(service_module, "build_epoch_ledger", no_oprf)
    restarted = _service(node_dir, clock)
    try:
        again = restarted._ledger("FIU-P", epoch)
        assert (again.filter_id, again.count) == (filter_id, count)
        assert again.objects() == ledger.objects()
        assert restarted._index_rows("FIU-P", epoch) == svc._index_rows("FIU-P", epoch)
    finally:
        restarted.close()
        restarted.store.close()


def test_a_session_left_idle_is_closed_and_audited(
    service: tuple[NodeService, FakeClock],
) -> None:
    svc, clock = service
    activated = svc.store.epochs.active("FIU-P", "local").activated_at  # type: ignore[union-attr]
    assert activated is not None
    clock.t = activated + 10  # no rotation due during this test
    sid = "ab" * 16
    meta = {
        "session_id": sid,
        "mode": "filter",
        "purpose": "money_laundering",
        "id_types": ["passport"],
        "set_size": 1,
    }
    svc.open_session("FIU-P", b"{}", meta)
    assert svc.store.sessions.count_open("FIU-P") == 1
    clock.t += svc.settings.session_idle_timeout_seconds - 1
    assert svc.expire_idle_sessions() == 0
    clock.t += 2
    Scheduler(svc).tick()
    assert svc.store.sessions.count_open("FIU-P") == 0
    record = svc.store.sessions.require(sid)
    assert (record.state, record.open) == ("expired", False)
    closed = [e for e in _events(svc, "SESSION_CLOSED") if e["session"] == sid]
    assert [e["outcome"] for e in closed] == ["expired"]


def test_a_rotation_is_logged_under_the_agreement_in_force_and_passes_the_policy_check(
    service: tuple[NodeService, FakeClock], tmp_path: Path
) -> None:
    """Rotations name the agreement in force with the peer (not an ``epoch:<peer>`` name no
    agreement list holds), so ``check_policy`` follows them with the node's own list."""
    import json

    from fiumatch.auditlog.bundle import decode_bundle
    from fiumatch.auditlog.verify import check_policy
    from fiumatch.cli.audit import load_agreements

    svc, clock = service
    before = len(_events(svc, "EPOCH_ROTATED"))
    first = _active(svc)
    svc.rotate("admin:ops", "FIU-P")
    clock.t += 60
    svc.rotate("admin:ops", "FIU-P")
    rotated = _events(svc, "EPOCH_ROTATED")[before:]
    assert [(e["agreement"], e["epoch"]) for e in rotated] == [
        ("agr-p", first + 1),
        ("agr-p", first + 2),
    ]
    listed = tmp_path / "agreements.json"
    a = svc.store.agreements.require("agr-p")
    listed.write_text(
        json.dumps(
            [
                {"id": a.id, "peer": a.peer_id, "modes": list(a.modes),
                 "purposes": list(a.purposes), "identifier_types": list(a.identifier_types),
                 "budget_per_epoch": a.budget_per_epoch, "max_set_size": a.max_set_size,
                 "valid_from": a.valid_from, "valid_until": a.valid_until}
            ]
        )
    )  # fmt: skip
    policies = load_agreements(listed, rotation_seconds=10 * HOUR)
    assert [p.agreement for p in policies] == ["agr-p"]  # no alias any more
    report = check_policy(decode_bundle(b"".join(svc.audit.export())), policies)
    assert report.rotations == len(_events(svc, "EPOCH_ROTATED")) >= 2
