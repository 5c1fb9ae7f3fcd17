"""Test logs: a node that appends entries, signs checkpoints and exports bundles, and a
two-node world where every response carries a receipt the requester stores."""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fiumatch.auditlog.bundle import HeldReceipt, RecordKind, export_bundle, iter_records
from fiumatch.auditlog.checkpoint import Checkpoint, NoteSigner, make_receipt, sign_checkpoint
from fiumatch.auditlog.entry import Direction, Entry, EventType, encode_entry
from fiumatch.auditlog.merkle import leaf_hash
from fiumatch.auditlog.tree import DictNodeStore, MerkleTree
from tests.auditlog.factories import log_signer, sample_entry

T0 = 1_700_000_000_000


@dataclass
class Node:
    name: str
    signer: NoteSigner
    store: DictNodeStore = field(default_factory=DictNodeStore)
    entries: list[bytes] = field(default_factory=list)
    checkpoints: list[bytes] = field(default_factory=list)
    held: list[HeldReceipt] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.tree = MerkleTree(self.store)

    @property
    def origin(self) -> str:
        return self.signer.name

    def log(self, entry: Entry) -> int:
        data = encode_entry(entry)
        result = self.tree.append(data)
        self.entries.append(data)
        return result.index

    def log_event(self, event: EventType, time_ms: int, **fields: Any) -> int:
        return self.log(sample_entry(event, seq=self.tree.size, time_ms=time_ms, **fields))

    def checkpoint(self) -> bytes:
        if self.checkpoints and peek_size(self.checkpoints[-1]) == self.tree.size:
            return self.checkpoints[-1]
        note = sign_checkpoint(Checkpoint(self.origin, self.tree.size, self.tree.root()),
                               self.signer)
        self.checkpoints.append(note)
        return note

    def export(self, start: int = 0, checkpoints: Sequence[bytes] | None = None,
               receipts: Iterable[HeldReceipt] | None = None) -> bytes:
        cps = self.checkpoints if checkpoints is None else checkpoints
        cps = [c for c in cps if peek_size(c) >= start]
        return b"".join(export_bundle(
            origin=self.origin, entries=self.entries[start:], checkpoints=cps,
            get_node=self.store.get_node, start=start,
            receipts=self.held if receipts is None else receipts,
        ))


def peek_size(note: bytes) -> int:
    return int(note.split(b"\n")[1])


def simple_node(n: int, checkpoint_at: Iterable[int] = (), origin: str = "fiu-a.example/audit",
                salt: str = "") -> Node:
    """A node with ``n`` local-looking entries and checkpoints at the given sizes (and n)."""
    node = Node("fiu-a", log_signer(origin))
    marks = set(checkpoint_at) | {n}
    events = [EventType.LOGIN, EventType.QUERY, EventType.HIT_COUNT, EventType.EVALUATION,
              EventType.FILTER_PUBLISHED, EventType.PURGE]
    if 0 in marks:
        node.checkpoint()
    for i in range(n):
        event = events[i % len(events)]
        extra: dict[str, Any] = {}
        if event is EventType.EVALUATION:
            extra["request_sha256"] = hashlib.sha256(f"req {i}{salt}".encode()).digest()
            extra["direction"] = Direction.IN
        node.log_event(event, T0 + 1000 * i, **extra)
        if i + 1 in marks:
            node.checkpoint()
    return node


@dataclass
class World:
    a: Node
    b: Node


def exchange(requester: Node, responder: Node, event: EventType, time_ms: int, session: str,
             body: bytes, count_in: int | None = None, count_out: int | None = None,
             **fields: Any) -> tuple[int, int]:
    """Both sides log one exchange; the response carries the responder's receipt, which the
    requester stores against its own entry. Counts are the responder's (mirrored for the
    requester)."""
    common = dict(
        session=session,
        request_sha256=hashlib.sha256(b"request:" + body).digest(),
        response_sha256=hashlib.sha256(b"response:" + body).digest(),
        **fields,
    )
    r_index = responder.log_event(event, time_ms, peer=requester.name, direction=Direction.IN,
                                  count_in=count_in, count_out=count_out, **common)
    note = responder.checkpoint()
    receipt = make_receipt(r_index, leaf_hash(responder.entries[r_index]), note,
                           responder.store.get_node)
    q_index = requester.log_event(event, time_ms + 5, peer=responder.name,
                                  direction=Direction.OUT, count_in=count_out,
                                  count_out=count_in, **common)
    requester.held.append(HeldReceipt(q_index, receipt))
    return q_index, r_index


def two_nodes(sessions: int = 3) -> World:
    a = Node("fiu-a", log_signer("fiu-a.example/audit"))
    b = Node("fiu-b", log_signer("fiu-b.example/audit"))
    world = World(a, b)
    t = T0
    for s in range(sessions):
        session = hashlib.sha256(f"session {s}".encode()).hexdigest()[:32]
        t += 1000
        a.log_event(EventType.QUERY, t, peer="fiu-b", session=session)
        exchange(a, b, EventType.SESSION_OPENED, t + 10, session, f"open {s}".encode())
        exchange(a, b, EventType.EVALUATION, t + 20, session, f"eval {s}".encode(),
                 count_in=100 + s, count_out=100 + s)
        b.log_event(EventType.LOGIN, t + 30, actor="supervisor:bo")
    a.checkpoint()
    b.checkpoint()
    return world


def split_records(bundle: bytes) -> list[tuple[int, bytes]]:
    return [(r.kind, r.payload) for r in iter_records(bundle)]


def join_records(records: Sequence[tuple[int, bytes]], preamble: bytes = b"FIUAUDIT\x01") -> bytes:
    out = [preamble]
    for kind, payload in records:
        head = struct.pack(">BI", kind, len(payload))
        out.append(head + payload + struct.pack(">I", zlib.crc32(payload, zlib.crc32(head))))
    return b"".join(out)


def recount(records: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """Fix the END record's counts after a mutation (a careful forger would)."""
    counts = [sum(1 for k, _ in records if k == kind) for kind in (
        RecordKind.ENTRY, RecordKind.CHECKPOINT, RecordKind.CONSISTENCY, RecordKind.RECEIPT)]
    body = [r for r in records if r[0] != RecordKind.END]
    return [*body, (RecordKind.END, struct.pack(">QIII", *counts))]
