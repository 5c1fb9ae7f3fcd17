"""The bundle container: writing order, export rules, framing and decoding."""

from __future__ import annotations

import struct

import pytest

from fiumatch.auditlog.bundle import (
    BUNDLE_MAGIC,
    BundleHeader,
    BundleWriter,
    ConsistencyRecord,
    RecordKind,
    decode_bundle,
    export_bundle,
    iter_records,
)
from fiumatch.auditlog.entry import decode_entry
from fiumatch.auditlog.errors import (
    BundleFormatError,
    BundleTruncatedError,
    ExportError,
)
from tests.auditlog.scenario import join_records, simple_node, split_records, two_nodes


def test_layout_of_a_small_bundle() -> None:
    node = simple_node(5, checkpoint_at=[2])
    data = node.export()
    assert data.startswith(BUNDLE_MAGIC + b"\x01")
    kinds = [r.kind for r in iter_records(data)]
    E, C, P = RecordKind.ENTRY, RecordKind.CHECKPOINT, RecordKind.CONSISTENCY
    assert kinds == [RecordKind.HEADER, E, E, C, E, E, E, C, P, RecordKind.END]
    first = next(iter(iter_records(data)))
    assert (first.ordinal, first.offset) == (0, 9)


def test_decode_bundle_gives_entries_checkpoints_proofs_receipts() -> None:
    world = two_nodes(2)
    b = decode_bundle(world.a.export())
    assert b.origin == world.a.origin and b.start == 0 and b.size == len(world.a.entries)
    assert list(b.entry_bytes) == world.a.entries
    assert [decode_entry(x) for x in b.entry_bytes] == list(b.entries)
    assert len(b.receipts) == 4 and b.end.receipts == 4
    assert b.checkpoints == tuple(world.a.checkpoints)
    partial = decode_bundle(simple_node(30, [11, 20]).export(start=11))
    assert partial.start == 11 and len(partial.header.frontier) == bin(11).count("1")
    assert partial.consistency == (ConsistencyRecord(11, 20, partial.consistency[0].proof),
                                   partial.consistency[1])


def test_writer_enforces_phases() -> None:
    w = BundleWriter(BundleHeader("o"))
    with pytest.raises(ExportError):
        w.entry(b"x")
    w.begin()
    with pytest.raises(ExportError):
        w.begin()
    w.entry(b"x")
    w.end()
    with pytest.raises(ExportError):
        w.end()


def test_export_refuses_bundles_that_could_not_verify() -> None:
    node = simple_node(10, checkpoint_at=[4])

    def run(**kwargs: object) -> bytes:
        args: dict[str, object] = dict(origin=node.origin, entries=node.entries,
                                       checkpoints=node.checkpoints, get_node=node.store.get_node)
        args.update(kwargs)
        return b"".join(export_bundle(**args))  # type: ignore[arg-type]

    run()
    with pytest.raises(ExportError, match="at least one"):
        run(checkpoints=[])
    with pytest.raises(ExportError, match="ascending"):
        run(checkpoints=node.checkpoints[::-1])
    with pytest.raises(ExportError, match="last checkpoint"):
        run(checkpoints=node.checkpoints[:1])
    with pytest.raises(ExportError, match="last checkpoint"):
        run(entries=node.entries[:9])
    with pytest.raises(ExportError, match="consecutive"):
        run(entries=node.entries[1:])
    with pytest.raises(ExportError, match="start"):
        run(start=3, entries=node.entries[3:])


def test_framing_errors_name_the_record() -> None:
    data = simple_node(3).export()
    with pytest.raises(BundleFormatError, match="magic") as info:
        list(iter_records(b"NOTAUDIT\x01"))
    assert info.value.location == "bundle header"
    with pytest.raises(BundleFormatError, match="version"):
        list(iter_records(BUNDLE_MAGIC + b"\x02" + data[9:]))
    with pytest.raises(BundleFormatError, match="after the end") as info:
        list(iter_records(data + b"\x00"))
    assert info.value.location == "bundle end"
    records = split_records(data)
    with pytest.raises(BundleFormatError, match="first record") as info:
        list(iter_records(join_records(records[1:])))
    assert info.value.location == "record 0"
    with pytest.raises(BundleFormatError, match="unknown record kind") as info:
        list(iter_records(join_records([records[0], (9, b""), *records[1:]])))
    assert info.value.location == "record 1"
    with pytest.raises(BundleTruncatedError) as info:
        list(iter_records(join_records(records[:-1])))
    assert info.value.location == "bundle end"
    with pytest.raises(BundleFormatError, match="frontier"):
        decode_bundle(join_records([(RecordKind.HEADER, BundleHeader("o", 3, ()).encode()[:-1]
                                     + b"\x00"), *records[1:]]))
    header = struct.pack(">H", 1) + b"o" + struct.pack(">Q", 0) + b"\x01" + b"\x00" * 32
    with pytest.raises(BundleFormatError, match="one hash per set bit"):
        decode_bundle(join_records([(RecordKind.HEADER, header), *records[1:]]))
