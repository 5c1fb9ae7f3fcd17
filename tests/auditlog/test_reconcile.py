"""reconcile(): two nodes' bundles agree on every exchange between them, and what only one
side logged is listed."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from fiumatch.auditlog.bundle import Bundle, decode_bundle
from fiumatch.auditlog.entry import Direction, EventType
from fiumatch.auditlog.errors import ReconcileError
from fiumatch.auditlog.verify import reconcile, verify
from tests.auditlog.factories import log_signer
from tests.auditlog.scenario import T0, Node, exchange, two_nodes


def bundles(a: Node, b: Node) -> tuple[Bundle, Bundle]:
    a.checkpoint()
    b.checkpoint()
    return decode_bundle(a.export()), decode_bundle(b.export())


def nodes() -> tuple[Node, Node]:
    return (Node("fiu-a", log_signer("fiu-a.example/audit")),
            Node("fiu-b", log_signer("fiu-b.example/audit")))


def test_honest_nodes_agree() -> None:
    world = two_nodes(3)
    ba, bb = bundles(world.a, world.b)
    report = reconcile(ba, bb, a_name="fiu-a", b_name="fiu-b")
    assert report.ok
    assert report.matched == 6 and report.receipts_checked == 6
    report.raise_first()
    assert reconcile(bb, ba).ok  # symmetric, and works without names


def test_counts_and_digests_must_agree() -> None:
    a, b = nodes()
    session = "a" * 32
    exchange(a, b, EventType.SESSION_OPENED, T0, session, b"open")
    req = hashlib.sha256(b"eval request").digest()
    common = dict(session=session, request_sha256=req, mode="filter", agreement="agr-ab-1",
                  epoch=3)
    b.log_event(EventType.EVALUATION, T0 + 10, peer="fiu-a", direction=Direction.IN,
                count_in=500, count_out=500, response_sha256=hashlib.sha256(b"r1").digest(),
                **common)
    a.log_event(EventType.EVALUATION, T0 + 20, peer="fiu-b", direction=Direction.OUT,
                count_in=500, count_out=400, response_sha256=hashlib.sha256(b"r2").digest(),
                **common)
    ba, bb = bundles(a, b)
    report = reconcile(ba, bb, a_name="fiu-a", b_name="fiu-b")
    assert report.matched == 2 and not report.ok
    fields = {d.field: d for d in report.disagreements}
    assert set(fields) == {"response_sha256", "count_out/count_in"}
    d = fields["count_out/count_in"]
    assert (d.location_a, d.location_b, d.a, d.b) == ("a entry 1", "b entry 1", 400, 500)
    assert d.event == "evaluation" and d.session == session
    with pytest.raises(ReconcileError) as info:
        report.raise_first()
    assert info.value.location == "a entry 1 / b entry 1"


def test_same_direction_and_one_sided_exchanges() -> None:
    a, b = nodes()
    exchange(a, b, EventType.SESSION_OPENED, T0, "s1" * 16, b"open")
    # Only a logged this request (b says it never saw it), and only b logged another.
    a.log_event(EventType.SESSION_OPENED, T0 + 10, peer="fiu-b", direction=Direction.OUT,
                session="s2" * 16, request_sha256=b"\x01" * 32)
    b.log_event(EventType.SESSION_OPENED, T0 + 20, peer="fiu-a", direction=Direction.IN,
                session="s3" * 16, request_sha256=b"\x02" * 32)
    # A third party's exchange is ignored when the names are given.
    a.log_event(EventType.SESSION_OPENED, T0 + 30, peer="fiu-c", direction=Direction.OUT,
                session="s4" * 16, request_sha256=b"\x03" * 32)
    ba, bb = bundles(a, b)
    report = reconcile(ba, bb, a_name="fiu-a", b_name="fiu-b")
    assert report.matched == 1 and not report.disagreements
    assert [(o.location, o.session) for o in report.only_in_a] == [("a entry 1", "s2" * 16)]
    assert [(o.location, o.session) for o in report.only_in_b] == [("b entry 1", "s3" * 16)]
    with pytest.raises(ReconcileError, match="only one node") as info:
        report.raise_first()
    assert info.value.location == "a entry 1"
    assert len(reconcile(ba, bb).only_in_a) == 2  # without names fiu-c's exchange counts
    # Both logging the request as their own is a disagreement on direction.
    a2, b2 = nodes()
    for node in (a2, b2):
        node.log_event(EventType.SESSION_OPENED, T0, peer="x", direction=Direction.OUT,
                       session="s5" * 16, request_sha256=b"\x04" * 32)
    r2 = reconcile(*bundles(a2, b2))
    assert [d.field for d in r2.disagreements] == ["direction"]


def test_receipts_expose_a_node_that_shows_the_auditor_another_log() -> None:
    world = two_nodes(2)
    a, b = world.a, world.b
    honest_b = decode_bundle(b.export())
    # b re-builds its log for the auditor with one evaluation's counts lowered, re-signing
    # every checkpoint with its real key: its own bundle verifies...
    forged = Node(b.name, b.signer)
    for e in honest_b.entries:
        forged.log(replace(e, count_in=1, count_out=1) if e.seq == 1 else e)
    forged.checkpoint()
    fb = decode_bundle(forged.export())
    assert fb.entries[1].event is EventType.EVALUATION
    verify(forged.export(), b.signer.verifier)
    # ... but a holds b's receipts for the real leaves.
    report = reconcile(decode_bundle(a.export()), fb, a_name="fiu-a", b_name="fiu-b")
    fields = [d.field for d in report.disagreements]
    assert "leaf_hash" in fields and "count_in/count_out" in fields
    leaf = next(d for d in report.disagreements if d.field == "leaf_hash")
    assert leaf.location_a.startswith("a receipt ") and leaf.location_b == "b entry 1"
    assert report.receipts_checked == 4
