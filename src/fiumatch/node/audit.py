"""The node's audit log: the one seam every event goes through, checkpoints, receipts and
cosignatures on peer exchanges, and the auditor's views (docs/AUDIT.md, "Using it").

This module owns:

* :class:`AuditSink`: appends events to the Merkle log kept in the store. An entry and the tree
  nodes it completes are written in one SQLite transaction (``synchronous=FULL``), and
  :meth:`AuditSink.record` returns only once that transaction committed: a returned entry is on
  disk. Concurrent appends share a transaction (group commit: the first waiter writes every
  queued entry, in order), so one fsync acknowledges many. One
  :class:`~fiumatch.auditlog.merkle.CompactRange` lives in memory, resumed once from the store
  at start. Entry times never go backwards (``max(clock, previous time)``). Checkpoints are C2SP
  signed notes by the node's Ed25519 identity key under the origin ``<node id>/audit``, signed
  every ``checkpoint_every`` entries, ``checkpoint_seconds`` after an unsigned append, and
  whenever a receipt, a proof or an export needs one;
* receipts and cosigning on peer exchanges. The answering node (hooks called by
  ``routes_peer``) binds the entries the service logged for a request to the digest of the
  signed response body, then attaches a receipt for each, with the entry itself, a consistency
  proof from the checkpoint the asker holds, and its cosignature of the asker's checkpoint. The
  asking node (hooks called by ``client.peer``) verifies the receipts, checks the answerer's
  checkpoint against the last one it cosigned (a split view is stored as evidence and fails
  the exchange), cosigns it, logs the mirror of each entry (same event, session and digests,
  direction ``out``, counts mirrored) and holds the receipt against that mirror, storing the
  cosigned checkpoint in that same commit (on its own if the exchange mirrors nothing); a
  cosignature header it already verified and stored is recognised, not checked again, and so is
  a peer checkpoint note byte-identical to the last one found equal to the newest cosigned
  (a peer resends its checkpoint on every request until its log grows). Service calls
  for an exchange the transport already logged this way are not logged twice;
* the auditor's views: entries, checkpoints, inclusion and consistency proofs, the streamed
  bundle export, the keys an auditor pins, what this node witnessed of its peers' logs.

It must never: put an identifier, a match key, a blinded element or an OPRF output into an
entry (the entry schema has no place for them, free text is screened); acknowledge an entry
before its transaction committed; hold the append lock while waiting on the network; rewrite
a stored leaf, node, checkpoint, cosignature or receipt (the tables are append-only).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fiumatch.auditlog.bundle import HeldReceipt, export_bundle
from fiumatch.auditlog.checkpoint import (
    Checkpoint,
    CosignatureSigner,
    CosignatureVerifier,
    NoteSigner,
    NoteVerifier,
    Receipt,
    SignedNote,
    add_cosignature,
    check_opened_split_view,
    open_checkpoint,
    open_cosignatures,
    peek_checkpoint,
    sign_checkpoint,
    verify_receipt,
)
from fiumatch.auditlog.entry import (
    EVENT_SCHEMAS,
    Direction,
    Entry,
    EventType,
    RefusalClause,
    decode_entry,
    encode_entry,
    entry_to_dict,
)
from fiumatch.auditlog.errors import (
    AuditLogError,
    IdentifierLikeValueError,
    MissingNodeError,
    NoteError,
    SplitViewError,
)
from fiumatch.auditlog.merkle import CompactRange, leaf_hash
from fiumatch.auditlog.proofs import (
    ProofPlan,
    plan_consistency,
    plan_inclusion,
)
from fiumatch.errors import FiumatchError
from fiumatch.node.keys import fingerprint
from fiumatch.store import AuditCheckpoint, AuditLeaf, AuditNode, RecordConflictError, Store
from fiumatch.store.audit_witness import AuditWitnessRepo, HeldReceiptRow

__all__ = [
    "H_CHECKPOINT",
    "H_COSIGNED",
    "H_ENTRIES",
    "H_HAVE",
    "H_PROOF",
    "H_RECEIPTS",
    "H_WANT",
    "ORIGIN_SUFFIX",
    "AuditNestingError",
    "AuditRangeError",
    "AuditSink",
    "Incoming",
    "PeerLogError",
    "answer_headers",
    "begin_incoming",
    "cosigner_name",
    "cosigner_verifier",
    "log_origin",
    "log_verifier",
    "node_of_origin",
]

Clock = Callable[[], float]

ORIGIN_SUFFIX: Final = "/audit"
"""A node's log origin (and checkpoint key name) is its node id followed by this suffix."""

# Headers of the receipt/cosigning exchange (docs/AUDIT.md, "Receipts and cosignatures on the
# wire"). They are covered by the HTTP signatures like every fiumatch-* header (httpsig), so
# they are added before the message is signed; the notes and proofs they carry prove
# themselves as well.
H_HAVE: Final = "fiumatch-audit-have"
H_COSIGNED: Final = "fiumatch-audit-cosigned"
H_CHECKPOINT: Final = "fiumatch-audit-checkpoint"
H_PROOF: Final = "fiumatch-audit-proof"
H_RECEIPTS: Final = "fiumatch-audit-receipts"
H_ENTRIES: Final = "fiumatch-audit-entries"
H_WANT: Final = "fiumatch-audit-want"

_EMPTY_DIGEST: Final = hashlib.sha256(b"").digest()
_NO_SESSION: Final = "00" * 16
_SESSION_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}")
_EXCHANGE_TTL: Final = 60.0
_MEMORY: Final = 4096
_CHUNK: Final = 5000
_EXPORT_CHUNK: Final = 1 << 18
_EXCHANGE_EVENTS: Final = frozenset(
    {
        EventType.SESSION_OPENED,
        EventType.FILTER_FETCHED,
        EventType.EVALUATION,
        EventType.REFUSAL,
        EventType.DISCLOSURE_REQUESTED,
        EventType.DISCLOSURE_DECIDED,
    }
)


class AuditRangeError(FiumatchError):
    """An auditor asked for an index, size or range the log cannot serve."""

    code = "audit_range_invalid"
    http_status = 400


class AuditNestingError(FiumatchError):
    """An audit entry was recorded inside an open store transaction: its durability would be
    the caller's, and a group commit would wait for a lock the caller holds. Record after the
    transaction."""

    code = "audit_inside_transaction"
    http_status = 500


class PeerLogError(FiumatchError):
    """A peer's audit evidence failed our checks: a receipt that does not verify, or a
    checkpoint inconsistent with one we cosigned (a split view; the evidence is stored)."""

    code = "peer_audit_invalid"
    http_status = 502


def log_origin(node_id: str) -> str:
    """The origin of ``node_id``'s log, also its checkpoint key name: ``<node id>/audit``."""
    return node_id + ORIGIN_SUFFIX


def node_of_origin(origin: str) -> str:
    """The node id a log origin belongs to (the origin without ``/audit``)."""
    return origin[: -len(ORIGIN_SUFFIX)] if origin.endswith(ORIGIN_SUFFIX) else origin


def cosigner_name(node_id: str) -> str:
    """The name ``node_id`` cosigns peers' checkpoints under (its node id)."""
    return node_id


def log_verifier(node_id: str, public_key: bytes) -> NoteVerifier:
    """The checkpoint verifier of ``node_id``'s log, from its pinned Ed25519 key."""
    return NoteVerifier(log_origin(node_id), public_key)


def cosigner_verifier(node_id: str, public_key: bytes) -> CosignatureVerifier:
    """The verifier of ``node_id``'s cosignatures (tlog-cosignature/v1), same pinned key."""
    return CosignatureVerifier(cosigner_name(node_id), public_key)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise NoteError("an audit header is not base64") from None


_NUMBER_RE: Final = re.compile(r"[0-9]{1,19}")


def _int(text: str | None) -> int | None:
    """A size from a peer's header: ASCII digits only (``str.isdigit`` accepts '²', which
    ``int`` refuses), at most 19 of them; anything else is None."""
    return int(text) if text is not None and _NUMBER_RE.fullmatch(text) else None


def _encode_proof(size1: int, size2: int, proof: list[bytes]) -> str:
    return f"{size1}:{size2}:{_b64(b''.join(proof))}"


def _decode_proof(text: str | None) -> tuple[int, int, tuple[bytes, ...]] | None:
    if not text:
        return None
    parts = text.split(":", 2)
    size1, size2 = (_int(parts[0]), _int(parts[1])) if len(parts) == 3 else (None, None)
    if size1 is None or size2 is None:
        return None
    try:
        raw = _unb64(parts[2]) if parts[2] else b""
    except NoteError:
        return None
    if len(raw) % 32 or len(raw) > 64 * 32:
        return None
    hashes = tuple(raw[i : i + 32] for i in range(0, len(raw), 32))
    return size1, size2, hashes


_K = TypeVar("_K")
_V = TypeVar("_V")


class _Recent(Generic[_K, _V]):
    """A small bounded map: the most recent ``limit`` keys."""

    def __init__(self, limit: int = _MEMORY) -> None:
        self._data: OrderedDict[_K, _V] = OrderedDict()
        self._limit = limit

    def put(self, key: _K, value: _V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self._limit:
            self._data.popitem(last=False)

    def get(self, key: _K) -> _V | None:
        return self._data.get(key)


def _is_exchange(fields: Mapping[str, Any]) -> bool:
    return all(fields.get(k) is not None for k in ("session", "direction", "request_sha256"))


def _direction(fields: Mapping[str, Any]) -> str | None:
    d = fields.get("direction")
    return None if d is None else str(d)


def _make_entry(seq: int, time_ms: int, event: EventType, fields: Mapping[str, Any]) -> Entry:
    kwargs = {k: v for k, v in fields.items() if v is not None}
    try:
        return Entry(seq=seq, time_ms=time_ms, event=event, **kwargs)
    except IdentifierLikeValueError:
        raise
    except AuditLogError:
        # Keep the log complete when a caller passes an optional field the event type does
        # not allow: drop those fields and try once more (required fields are never dropped).
        allowed = EVENT_SCHEMAS[event].allowed
        kept = {k: v for k, v in kwargs.items() if k in allowed}
        if kept == kwargs:
            raise
        return Entry(seq=seq, time_ms=time_ms, event=event, **kept)


def _time_of(entry: bytes) -> int:
    """``time_ms`` of canonical entry bytes (u8 version, u16 event, u64 seq, u64 time)."""
    return int.from_bytes(entry[11:19], "big")


def _mirror(entry: Entry, peer_id: str, actor: str) -> tuple[EventType, dict[str, Any]]:
    """Our side of an exchange a peer logged as ``entry``: same event, session, digests and
    shared fields; direction out; counts mirrored (what it received, we sent)."""
    fields = dict(entry.present())
    count_in, count_out = fields.pop("count_in", None), fields.pop("count_out", None)
    fields.update(actor=actor, peer=peer_id, direction=Direction.OUT)
    if count_out is not None:
        fields["count_in"] = count_out
    if count_in is not None:
        fields["count_out"] = count_in
    return entry.event, fields


@dataclass
class Incoming:
    """A peer request being answered: the entries the service logged for it wait here until
    the signed response body is known (its digest goes into them)."""

    peer: str
    request_digest: bytes
    session: str | None
    opened: float
    deferred: list[tuple[EventType, dict[str, Any]]] = field(default_factory=list)
    have: int | None = None
    cosigned: bytes | None = None
    want: int | None = None
    closed: bool = False
    writes: list[Callable[[], None]] = field(default_factory=list)
    """What the asker's headers gave us to keep (its cosignature of our checkpoint, its
    checkpoint we cosigned): written with the answer's entries, in their commit."""


@dataclass(eq=False)
class _Pending:
    """An entry numbered and queued for the next group commit."""

    seq: int
    leaf: AuditLeaf
    nodes: list[AuditNode]
    also: Callable[[int], None] | None
    frontier: CompactRange
    entry: Entry
    checkpoint: bool = False
    done: bool = False
    error: BaseException | None = None


@dataclass(frozen=True)
class _Appended:
    seq: int
    leaf_hash: bytes
    entry: bytes


class AuditSink:
    """The node's audit log. The only object the node calls to audit anything.

    ``node_id`` and ``key`` (the node's Ed25519 identity key) enable checkpoints, receipts
    and cosigning; without them the sink only appends (tests of other layers).
    """

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        node_id: str | None = None,
        key: Ed25519PrivateKey | None = None,
        checkpoint_every: int = 1000,
        checkpoint_seconds: float = 10.0,
    ) -> None:
        if checkpoint_every < 1 or checkpoint_seconds <= 0:
            raise ValueError("checkpoints need a positive period")
        self._store = store
        self._clock = clock
        self._witness = AuditWitnessRepo(store.db)
        self._node_id = node_id
        self._signer: NoteSigner | None = None
        self._cosigner: CosignatureSigner | None = None
        self._verifier: NoteVerifier | None = None
        if node_id is not None and key is not None:
            self._signer = NoteSigner(log_origin(node_id), key)
            self._cosigner = CosignatureSigner(cosigner_name(node_id), key)
            self._verifier = self._signer.verifier
        self._every = checkpoint_every
        self._seconds = checkpoint_seconds
        self._lock = threading.RLock()
        self._timer: threading.Timer | None = None
        self._open: dict[tuple[str, bytes], Incoming] = {}
        self._open_sessions: dict[tuple[str, str], Incoming] = {}
        self._last_exchange: _Recent[tuple[str, str], int] = _Recent()
        self._mirrored: _Recent[tuple[str, str, int], int] = _Recent()
        self._want: dict[str, int] = {}
        # Cosignature headers already verified and stored, per peer: a peer returns the same
        # cosigned note on every response until our checkpoint moves (no need to check again).
        self._accepted: _Recent[tuple[str, str], bool] = _Recent(64)
        self._accepted_lock = threading.Lock()  # its own: taken inside commits
        # Per peer log (name, key): the last checkpoint note found equal (size and root) to
        # the newest one we cosigned, with that cosigned note; dropped when a newer one is
        # stored. Its own lock, for the same reason.
        self._seen: dict[tuple[str, bytes], tuple[bytes, bytes]] = {}
        self._seen_lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self._pending: list[_Pending] = []
        self._resume()

    # --- state ------------------------------------------------------------------------------

    def _resume(self) -> None:
        """Load the frontier (O(log n) node reads), the last time and the last checkpoint."""
        audit = self._store.audit
        size = audit.size()
        try:
            self._range = CompactRange.from_store(size, self.get_node) if size else CompactRange()
            self._committed = self._range.copy()
        except KeyError as exc:
            raise MissingNodeError(
                "the stored audit tree lacks a frontier node", node=str(exc)
            ) from None
        last = audit.leaf(size - 1) if size else None
        self._last_time = _time_of(last.entry) if last is not None else 0
        cp = audit.latest_checkpoint()
        self._cp: tuple[int, bytes] | None = (
            (cp.size, cp.note.encode("utf-8")) if cp is not None else None
        )

    @property
    def origin(self) -> str | None:
        return self._signer.name if self._signer else None

    @property
    def verifier(self) -> NoteVerifier | None:
        """This log's checkpoint verifier (what an auditor pins)."""
        return self._verifier

    @property
    def size(self) -> int:
        """Entries on disk (appends still waiting for their commit are not counted)."""
        with self._lock:
            return self._committed.size

    def get_node(self, level: int, index: int) -> bytes:
        """A stored complete-subtree hash; ``KeyError((level, index))`` if the store lacks it."""
        h = self._store.audit.node(level, index)
        if h is None:
            raise KeyError((level, index))
        return h

    def close(self) -> None:
        """Stop the checkpoint timer (entries are durable already)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    # --- appending ---------------------------------------------------------------------------

    def record(
        self,
        event_type: str,
        *,
        actor: str,
        peer: str | None = None,
        session: str | None = None,
        agreement_id: str | None = None,
        epoch: int | None = None,
        counts_in: int | None = None,
        counts_out: int | None = None,
        request_digest: bytes | None = None,
        response_digest: bytes | None = None,
        extra: Mapping[str, Any] | None = None,
        with_commit: Callable[[], None] | None = None,
    ) -> int:
        """Append one event and return its sequence number once it is on disk.

        Must not be called inside an open store transaction (:class:`AuditNestingError`).

        ``with_commit``: store writes that belong with the event, made in the transaction that
        writes it (one commit, one fsync, for both; rolled back with it): in the entry's own
        commit, or, for an event that waits for a response (below), in the commit of the
        response's entries; at once when the event is not logged again (a mirror).

        ``event_type`` is an ``auditlog.entry.EventType`` name (case-insensitive); ``extra``
        holds other entry fields by name (``mode``, ``direction``, ``clause``, ``hits``,
        ``purpose``...). A digest an event requires but the caller lacks is the digest of the
        empty body. Two cases are not appended at once: an answering-side (``in``) event of a
        peer request still being answered waits for the response body, whose digest it gets
        (returns -1; appended before the response leaves); an asking-side (``out``) exchange
        the transport already logged as the mirror of the peer's receipted entry is not logged
        again (returns the mirror's number).
        """
        event = EventType[event_type.upper()]
        fields: dict[str, Any] = {
            "actor": _token(actor),
            "peer": _token(peer) if peer else None,
            "session": session,
            "agreement": _token(agreement_id) if agreement_id else None,
            "epoch": epoch,
            "count_in": counts_in,
            "count_out": counts_out,
            "request_sha256": request_digest,
            "response_sha256": response_digest,
        }
        fields.update(extra or {})
        required = EVENT_SCHEMAS[event].required
        for name in ("request_sha256", "response_sha256"):
            if fields.get(name) is None and name in required:
                fields[name] = _EMPTY_DIGEST
        seq: int | None = None
        with self._lock:
            self._sweep()
            p, s = fields.get("peer"), fields.get("session")
            if p is not None and s is not None and _direction(fields) is not None:
                if _direction(fields) == "out" and event in _EXCHANGE_EVENTS:
                    mirrored = self._mirrored.get((p, s, int(event)))
                    if mirrored is not None:
                        seq = mirrored
                if seq is None and _direction(fields) == "in":
                    ex = self._open.get((p, request_digest)) if request_digest else None
                    ex = ex or self._open_sessions.get((p, s))
                    if ex is not None and not ex.closed:
                        _make_entry(0, 0, event, fields)  # refuse a bad entry now, not later
                        ex.deferred.append((event, fields))
                        if with_commit is not None:
                            ex.writes.append(with_commit)
                        return -1
            if seq is None:
                also = None if with_commit is None else (lambda _seq: with_commit())
                ticket = self._enqueue(event, fields, also)
        if seq is not None:  # mirrored already: nothing to append, the writes on their own
            if with_commit is not None:
                with self._store.transaction():
                    with_commit()
            return seq
        self._commit(ticket)
        return ticket.seq

    def _enqueue(
        self,
        event: EventType,
        fields: Mapping[str, Any],
        also: Callable[[int], None] | None = None,
        *,
        checkpoint: bool = False,
    ) -> _Pending:
        """Give the entry its number and time and queue it for the next commit (lock held).

        The in-memory frontier advances at once; :meth:`_commit` writes the queue.
        ``checkpoint``: the commit also signs a checkpoint that includes the entry (for a
        receipt), written in the same transaction."""
        if self._store.db.connection().in_transaction:
            raise AuditNestingError(
                "an audit entry cannot be appended inside an open store transaction"
            )
        seq = self._range.size
        time_ms = max(int(self._clock() * 1000), self._last_time)
        entry = _make_entry(seq, time_ms, event, fields)
        data = encode_entry(entry)
        lh = leaf_hash(data)
        nodes = self._range.append(lh)
        self._last_time = time_ms
        ticket = _Pending(
            seq=seq,
            leaf=AuditLeaf(seq=seq, time=time_ms // 1000, entry=data, leaf_hash=lh),
            nodes=[AuditNode(level=n.level, index=n.index, hash=n.hash) for n in nodes],
            also=also,
            frontier=self._range.copy(),
            entry=entry,
            checkpoint=checkpoint,
        )
        self._pending.append(ticket)
        return ticket

    def _commit(self, ticket: _Pending) -> None:
        """Return once ``ticket`` is on disk (lock not held). Group commit: the first waiter
        writes every queued entry in one transaction, so concurrent appends share an fsync."""
        while not ticket.done:
            with self._commit_lock:
                if ticket.done:
                    break
                with self._lock:
                    batch, self._pending = self._pending, []
                    note = self._batch_checkpoint(batch)
                try:
                    with self._store.transaction():
                        for p in batch:
                            self._store.audit.append(p.leaf, p.nodes)
                            if p.also is not None:
                                p.also(p.seq)
                        if note is not None:
                            self._store.audit.add_checkpoint(note)
                except BaseException as exc:
                    with self._lock:
                        # Whatever followed the failed batch was built on it: void it all and
                        # reload the truth from the store.
                        void, self._pending = self._pending, []
                        for p in (*batch, *void):
                            p.error, p.done = exc, True
                        self._resume()
                    break
                with self._lock:
                    self._committed = batch[-1].frontier
                    if note is not None:
                        self._cp = (note.size, note.note.encode("utf-8"))
                    for p in batch:
                        p.done = True
                        e = p.entry
                        if (
                            e.direction is Direction.IN
                            and e.session is not None
                            and e.peer is not None
                            and e.request_sha256 is not None
                        ):
                            self._last_exchange.put((e.peer, e.session), p.seq)
                    self._after_append()
        if ticket.error is not None:
            raise ticket.error

    def _batch_checkpoint(self, batch: list[_Pending]) -> AuditCheckpoint | None:
        """The checkpoint to write with ``batch`` (lock held): at its end, if an entry needs a
        receipt or ``checkpoint_every`` entries went unsigned. Signing the frontier before the
        commit is safe: the note is stored in the same transaction as the entries it covers."""
        if self._signer is None or not batch:
            return None
        end = batch[-1].frontier
        signed = self._cp[0] if self._cp else 0
        if not any(p.checkpoint for p in batch) and end.size - signed < self._every:
            return None
        note = sign_checkpoint(Checkpoint(self._signer.name, end.size, end.root()), self._signer)
        return AuditCheckpoint(
            size=end.size, note=note.decode("utf-8"), created_at=int(self._clock())
        )

    def _after_append(self) -> None:
        """Arm the timer that signs a quiet tail (lock held)."""
        if self._signer is None:
            return
        signed = self._cp[0] if self._cp else 0
        if self._committed.size > signed and self._timer is None:
            self._timer = threading.Timer(self._seconds, self._timer_fired)
            self._timer.daemon = True
            self._timer.start()

    def _timer_fired(self) -> None:
        with self._lock:
            self._timer = None
            with contextlib.suppress(FiumatchError):  # closing: the next append or export signs
                self._sign_now()

    # --- checkpoints ---------------------------------------------------------------------------

    def _sign_now(self) -> tuple[int, bytes]:
        """The checkpoint of the size on disk, signed and stored if not yet (lock held)."""
        size = self._committed.size
        if self._cp is not None and self._cp[0] == size:
            return self._cp
        if self._signer is None:
            raise AuditRangeError("this log has no signing key")
        note = sign_checkpoint(
            Checkpoint(self._signer.name, size, self._committed.root()), self._signer
        )
        try:
            self._store.audit.add_checkpoint(
                AuditCheckpoint(size=size, note=note.decode("utf-8"), created_at=int(self._clock()))
            )
        except RecordConflictError:
            stored = self._store.audit.checkpoint(size)
            if stored is None:
                raise
            note = stored.note.encode("utf-8")
        self._cp = (size, note)
        return self._cp

    def checkpoint(self, *, fresh: bool = False) -> bytes | None:
        """The latest signed checkpoint (``fresh``: first sign one at the current size)."""
        with self._lock:
            if fresh or self._cp is None:
                return self._sign_now()[1] if self._signer is not None else None
            return self._cp[1]

    def _covering(self, seq: int) -> tuple[int, bytes]:
        """A signed checkpoint that includes leaf ``seq`` (lock held): the latest if it does,
        else a new one at the current size."""
        if self._cp is not None and self._cp[0] > seq:
            return self._cp
        return self._sign_now()

    # --- proofs ------------------------------------------------------------------------------

    def _fetch(self, plan: ProofPlan) -> list[bytes]:
        return plan.assemble(self._witness.nodes(plan.nodes))

    def _receipt(self, seq: int, lh: bytes, cp: tuple[int, bytes]) -> Receipt:
        return Receipt(seq, lh, tuple(self._fetch(plan_inclusion(seq, cp[0]))), cp[1])

    def receipt(self, seq: int) -> Receipt:
        """A receipt for leaf ``seq`` under a signed checkpoint that includes it."""
        with self._lock:
            if not 0 <= seq < self._committed.size:
                raise AuditRangeError("no such entry", index=seq, size=self._committed.size)
            cp = self._covering(seq)
        leaf = self._store.audit.leaf(seq)
        assert leaf is not None
        return self._receipt(seq, leaf.leaf_hash, cp)

    def inclusion(self, index: int, size: int | None = None) -> dict[str, Any]:
        """The inclusion proof of ``index`` in the tree of ``size`` (default: a signed
        checkpoint that includes it, signing one if needed), with that checkpoint if any."""
        with self._lock:
            current = self._committed.size
            if size is None:
                if not 0 <= index < current:
                    raise AuditRangeError("no such entry", index=index, size=current)
                cp: tuple[int, bytes] | None = self._covering(index)
                size = cp[0] if cp else current
            else:
                cp = self._cp if self._cp is not None and self._cp[0] == size else None
        if not 0 <= index < size <= current:
            raise AuditRangeError(
                "index or size out of range", index=index, size=size, tree_size=current
            )
        leaf = self._store.audit.leaf(index)
        assert leaf is not None
        if cp is None:
            stored = self._store.audit.checkpoint(size)
            cp = (size, stored.note.encode("utf-8")) if stored else None
        proof = self._fetch(plan_inclusion(index, size))
        return {
            "index": index,
            "size": size,
            "leaf_hash": leaf.leaf_hash.hex(),
            "proof": [h.hex() for h in proof],
            "checkpoint": cp[1].decode("utf-8") if cp else None,
        }

    def consistency(self, size1: int, size2: int | None = None) -> dict[str, Any]:
        """The consistency proof from ``size1`` to ``size2`` (default: the latest checkpoint)."""
        with self._lock:
            current = self._committed.size
            if size2 is None:
                size2 = self._sign_now()[0] if self._signer else current
        if not 0 <= size1 <= size2 <= current:
            raise AuditRangeError("sizes out of range", size1=size1, size2=size2, tree_size=current)
        proof = self._fetch(plan_consistency(size1, size2))
        return {"size1": size1, "size2": size2, "proof": [h.hex() for h in proof]}

    # --- answering side of a peer exchange ---------------------------------------------------

    def open_incoming(self, peer: str, body: bytes, session: str | None) -> Incoming:
        """A verified peer request starts being answered."""
        ex = Incoming(peer, hashlib.sha256(body).digest(), session, time.monotonic())
        with self._lock:
            self._open[(peer, ex.request_digest)] = ex
            if session:
                self._open_sessions[(peer, session)] = ex
        return ex

    def witness_incoming(self, ex: Incoming, headers: Mapping[str, str]) -> None:
        """Take the asker's audit headers: its cosignature of our checkpoint (kept), the size
        of our checkpoint it holds, its own checkpoint (checked against the last one we
        cosigned; cosigned for the response). A split view raises :class:`PeerLogError`."""
        if self._signer is None:
            return
        ex.have = _int(headers.get(H_HAVE))
        self._accept_cosignature(ex.peer, headers.get(H_COSIGNED), defer=ex.writes.append)
        note = headers.get(H_CHECKPOINT)
        log = self._peer_log(ex.peer)
        if note is None or log is None:
            return
        try:
            raw = _unb64(note)
        except NoteError:
            return
        ex.cosigned, ex.want = self._witness_peer(
            log, raw, _decode_proof(headers.get(H_PROOF)), defer=ex.writes.append
        )

    def answer(self, ex: Incoming, status: int, body: bytes) -> dict[str, str]:
        """The response is signed: append what waited for it, then the audit headers."""
        digest = hashlib.sha256(body).digest()
        queued: list[_Pending] = []
        exchanges: list[_Pending] = []
        receipted: list[_Appended] = []
        writes, ex.writes = ex.writes, []

        def also(seq: int) -> None:  # the first entry's commit keeps the witnessed notes too
            for write in writes:
                write()

        with self._lock:
            self._close(ex)
            for event, fields in ex.deferred:
                if fields.get("request_sha256") == ex.request_digest and _is_exchange(fields):
                    fields["response_sha256"] = digest
                exchange = _is_exchange(fields)
                hook = also if writes and not queued else None
                queued.append(self._enqueue(event, fields, hook, checkpoint=exchange))
                if exchange:
                    exchanges.append(queued[-1])
            ex.deferred.clear()
            if not exchanges and status >= 400:
                refusal = self._refusal_fields(ex, status, body, digest)
                hook = also if writes and not queued else None
                queued.append(self._enqueue(EventType.REFUSAL, refusal, hook, checkpoint=True))
                exchanges.append(queued[-1])
            if not exchanges and ex.session is not None:
                last = self._last_exchange.get((ex.peer, ex.session))
                leaf = self._store.audit.leaf(last) if last is not None else None
                if leaf is not None:
                    receipted.append(_Appended(leaf.seq, leaf.leaf_hash, leaf.entry))
        if queued:
            try:
                self._commit(queued[-1])  # the queue is written in order: all of it is on disk
            except BaseException:
                with contextlib.suppress(Exception):  # rolled back with the entries: keep them
                    also(-1)
                raise
        elif writes:
            also(-1)
        receipted += [_Appended(t.seq, t.leaf.leaf_hash, t.leaf.entry) for t in exchanges]
        with self._lock:
            cp = (
                self._covering(max(r.seq for r in receipted))
                if (receipted and self._signer is not None)
                else None
            )
        headers: dict[str, str] = {}
        if cp is not None:
            receipts = [self._receipt(r.seq, r.leaf_hash, cp) for r in receipted]
            headers[H_RECEIPTS] = ",".join(_b64(r.encode()) for r in receipts)
            headers[H_ENTRIES] = ",".join(_b64(r.entry) for r in receipted)
            if ex.have is not None and ex.have <= cp[0]:
                proof = self._fetch(plan_consistency(ex.have, cp[0]))
                headers[H_PROOF] = _encode_proof(ex.have, cp[0], proof)
        if ex.cosigned is not None:
            headers[H_COSIGNED] = _b64(ex.cosigned)
        if ex.want is not None:
            headers[H_WANT] = str(ex.want)
        return headers

    def _refusal_fields(
        self, ex: Incoming, status: int, body: bytes, digest: bytes
    ) -> dict[str, Any]:
        clause = "auth" if status == 401 else "protocol"
        try:
            details = json.loads(body or b"{}").get("details") or {}
            named = str(details.get("clause", ""))
            if named in {c.value for c in RefusalClause}:
                clause = named
        except (ValueError, AttributeError):
            pass
        session = ex.session if ex.session and _SESSION_RE.fullmatch(ex.session) else None
        return {
            "actor": _token(self._node_id or "node"),
            "peer": ex.peer,
            "session": session or _NO_SESSION,
            "direction": Direction.IN,
            "request_sha256": ex.request_digest,
            "response_sha256": digest,
            "clause": clause,
        }

    def _close(self, ex: Incoming) -> None:
        ex.closed = True
        if self._open.get((ex.peer, ex.request_digest)) is ex:
            del self._open[(ex.peer, ex.request_digest)]
        if ex.session and self._open_sessions.get((ex.peer, ex.session)) is ex:
            del self._open_sessions[(ex.peer, ex.session)]

    def _sweep(self) -> None:
        """Append what waits for a response that never came (lock held): the digest of the
        empty body stands for the response."""
        now = time.monotonic()
        for ex in [e for e in self._open.values() if now - e.opened > _EXCHANGE_TTL]:
            self._close(ex)
            writes, ex.writes = ex.writes, []
            for write in writes:
                with contextlib.suppress(Exception):  # evidence kept; the answer never came
                    write()
            for event, fields in ex.deferred:
                self._enqueue(event, fields)  # written by the commit that follows
            ex.deferred.clear()

    # --- asking side of a peer exchange ------------------------------------------------------

    def outgoing_headers(self, peer_id: str) -> dict[str, str]:
        """Audit headers for a request to ``peer_id``: the size of its checkpoint we hold and
        our cosignature of it, our latest checkpoint and a consistency proof from the last
        one of ours the peer cosigned."""
        if self._signer is None:
            return {}
        out: dict[str, str] = {}
        prev = self._witness.latest_witnessed(log_origin(peer_id))
        if prev is not None:
            out[H_HAVE] = str(peek_checkpoint(prev.note).size)
            out[H_COSIGNED] = _b64(prev.note.encode("utf-8"))
        else:
            out[H_HAVE] = "0"
        with self._lock:
            cp = self._cp if self._cp is not None else self._sign_now()
            start = self._want.pop(peer_id, None)
        if start is None:
            start = self._witness.latest_cosigned(cosigner_name(peer_id))
        out[H_CHECKPOINT] = _b64(cp[1])
        if start is not None and start <= cp[0]:
            out[H_PROOF] = _encode_proof(start, cp[0], self._fetch(plan_consistency(start, cp[0])))
        return out

    def after_response(
        self,
        peer_id: str,
        session: str | None,
        request_body: bytes,
        status: int,
        content: bytes,
        headers: Mapping[str, str],
    ) -> None:
        """A verified response from ``peer_id``: check its receipts and checkpoint, cosign,
        log the mirror of each receipted entry of this exchange and hold its receipt.

        Raises :class:`PeerLogError` on a receipt that does not verify or a split view."""
        if self._signer is None or self._cosigner is None:
            return
        want = _int(headers.get(H_WANT))
        if want is not None:
            with self._lock:
                self._want[peer_id] = want
        self._accept_cosignature(peer_id, headers.get(H_COSIGNED))
        raw_receipts = headers.get(H_RECEIPTS)
        log = self._peer_log(peer_id)
        if not raw_receipts or log is None:
            return
        try:
            receipts = [Receipt.decode(_unb64(x)) for x in raw_receipts.split(",")]
            entries = [_unb64(x) for x in headers.get(H_ENTRIES, "").split(",") if x]
            checked = [verify_receipt(r, log) for r in receipts]
        except AuditLogError as exc:
            raise PeerLogError(
                "the peer's audit receipt does not verify", peer=peer_id, problem=exc.code
            ) from None
        newest = max(range(len(receipts)), key=lambda i: checked[i].size)
        witnessed: list[Callable[[], None]] = []
        self._witness_peer(
            log,
            receipts[newest].checkpoint,
            _decode_proof(headers.get(H_PROOF)),
            defer=witnessed.append,
            verified=checked[newest],
        )
        request_digest = hashlib.sha256(request_body).digest()
        response_digest = hashlib.sha256(content).digest()
        try:
            for receipt, data in zip(receipts, entries, strict=False):
                # The cosigned checkpoint is stored in the transaction of the first mirror (one
                # commit for both), or on its own below if this exchange mirrors nothing.
                if self._hold(
                    peer_id, log.name, session, receipt, data, request_digest, response_digest,
                    witnessed,
                ):  # fmt: skip
                    witnessed = []
        finally:
            for write in witnessed:
                write()

    def _hold(
        self,
        peer_id: str,
        origin: str,
        session: str | None,
        receipt: Receipt,
        data: bytes,
        request_digest: bytes,
        response_digest: bytes,
        with_commit: list[Callable[[], None]] = [],  # noqa: B006 - never mutated
    ) -> bool:
        """Log the mirror of a receipted entry of this exchange and hold its receipt (one
        commit, which also runs ``with_commit``). Returns whether a mirror was appended."""
        if leaf_hash(data) != receipt.leaf_hash:
            raise PeerLogError("the peer's audit entry is not the receipted leaf", peer=peer_id)
        if self._witness.mirrored(origin, receipt.leaf_index) is not None:
            return False
        try:
            entry = decode_entry(data)
        except AuditLogError:
            raise PeerLogError("the peer's audit entry does not decode", peer=peer_id) from None
        if not (
            entry.direction is Direction.IN
            and entry.peer == self._node_id
            and entry.request_sha256 == request_digest
            and entry.response_sha256 == response_digest
            and entry.session is not None
            and (session is None or entry.session == session)
        ):
            return False  # an earlier entry of the session (already mirrored) or not this one
        event, fields = _mirror(entry, peer_id, _token(self._node_id or "node"))
        now = int(self._clock())

        def hold(seq: int) -> None:
            for write in with_commit:
                write()
            self._witness.add_receipt(
                HeldReceiptRow(
                    entry_index=seq,
                    origin=origin,
                    leaf_index=receipt.leaf_index,
                    receipt=receipt.encode(),
                    received_at=now,
                )
            )

        with self._lock:
            ticket = self._enqueue(event, fields, also=hold)
        self._commit(ticket)
        with self._lock:
            self._mirrored.put((peer_id, entry.session, int(event)), ticket.seq)
        return True

    # --- witnessing ----------------------------------------------------------------------------

    def _peer_log(self, peer_id: str) -> NoteVerifier | None:
        peer = self._store.peers.get(peer_id)
        if peer is None:
            return None
        return log_verifier(peer_id, peer.public_key)

    def _witness_peer(
        self,
        log: NoteVerifier,
        note: bytes,
        proof: tuple[int, int, tuple[bytes, ...]] | None,
        *,
        defer: Callable[[Callable[[], None]], None] | None = None,
        verified: Checkpoint | None = None,
    ) -> tuple[bytes | None, int | None]:
        """Check a peer's checkpoint against the last one we cosigned and cosign it.

        ``verified``: ``note`` opened already under ``log`` (a receipt's checkpoint), so its
        signature is not checked twice. The last note we cosigned was verified before we
        stored it: it is compared with, not verified again.

        ``defer``: takes the write of the cosigned checkpoint instead of running it now (the
        asker runs it in the commit of the exchange's mirror entry: one transaction).

        Returns (our cosigned note, None), or (None, the size we need a proof from) when the
        proof given starts elsewhere. Same size with another root, or a proof for the right
        sizes that fails, is a split view: both notes are stored and :class:`PeerLogError`
        raised. A checkpoint older than the last one we cosigned is left alone."""
        assert self._cosigner is not None
        memo_key = (log.name, log.public_key)
        with self._seen_lock:
            seen = self._seen.get(memo_key)
        if seen is not None and seen[0] == note:
            # The very note we last found equal to the newest one we cosigned (a peer sends
            # the same checkpoint on every request until its log grows): verified then.
            return seen[1], None
        try:
            cp = verified if verified is not None else open_checkpoint(note, log)
        except AuditLogError as exc:
            raise PeerLogError(
                "the peer's checkpoint does not verify", peer=log.name, problem=exc.code
            ) from None
        prev = self._witness.latest_witnessed(log.name)
        if prev is not None:
            old = peek_checkpoint(prev.note)
            if cp.size < old.size:
                return None, None
            if cp.size > old.size and (proof is None or proof[:2] != (old.size, cp.size)):
                return None, old.size
            hashes = proof[2] if proof is not None and cp.size > old.size else ()
            try:
                check_opened_split_view(old, cp, hashes)
            except SplitViewError as exc:
                with self._seen_lock:
                    self._seen.pop(memo_key, None)
                self._witness.add_split_view(
                    log.name, prev.note, note.decode("utf-8"), int(self._clock())
                )
                raise PeerLogError(
                    "the peer's audit log shows a split view (evidence kept)",
                    peer=log.name,
                    evidence=str(exc.details.get("evidence", "")),
                ) from None
            if cp.size == old.size:
                held = prev.note.encode("utf-8")
                with self._seen_lock:
                    self._seen[memo_key] = (note, held)
                return held, None
        now = int(self._clock())
        cosigned = add_cosignature(note, self._cosigner, now)

        def store() -> None:
            with self._seen_lock:  # a newer checkpoint of this log: the memo is stale
                self._seen.pop(memo_key, None)
            self._witness.add_witnessed(log.name, cp.size, cosigned.decode("utf-8"), now)

        if defer is None:
            store()
        else:
            defer(store)
        return cosigned, None

    def _accept_cosignature(
        self,
        peer_id: str,
        header: str | None,
        *,
        defer: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        """Keep ``peer_id``'s cosignature of one of our checkpoints, if it is of a checkpoint
        we signed and stored, and it verifies under the peer's pinned key."""
        if not header or self._verifier is None:
            return
        with self._accepted_lock:
            if self._accepted.get((peer_id, header)):
                return  # this very note was verified and its cosignature stored already
        peer = self._store.peers.get(peer_id)
        if peer is None:
            return
        try:
            note = _unb64(header)
            if not self._is_our_checkpoint(note):
                return
            cp = peek_checkpoint(note)
            witness = cosigner_verifier(peer_id, peer.public_key)
            if not open_cosignatures(note, [witness]):
                return
        except AuditLogError:
            return
        lines = [sig.line() for sig in SignedNote.parse(note).signatures if witness.matches(sig)]
        now = int(self._clock())

        def store() -> None:
            for line in lines:
                self._witness.add_cosignature(cp.size, witness.name, line, now)
            with self._accepted_lock:
                self._accepted.put((peer_id, header), True)

        if defer is None:
            store()
        else:
            defer(store)

    def _is_our_checkpoint(self, note: bytes) -> bool:
        """Whether ``note`` is one of our stored checkpoints, with our signature: its text and
        our signature line equal the stored note's (our signatures are deterministic, and we
        verified nothing we did not sign ourselves), so it needs no signature check."""
        try:
            given = SignedNote.parse(note)
            cp = Checkpoint.parse_body(given.text)
        except AuditLogError:
            return False
        if self._signer is None or cp.origin != self._signer.name:
            return False
        ours = self._store.audit.checkpoint(cp.size)
        if ours is None:
            return False
        stored = SignedNote.parse(ours.note)
        lines = {sig.line() for sig in given.signatures}
        return stored.text == given.text and all(sig.line() in lines for sig in stored.signatures)

    # --- the auditor's views -----------------------------------------------------------------

    def entries(self, start: int = 0, end: int | None = None, limit: int = 1000) -> dict[str, Any]:
        """Entries ``[start, min(end, start + limit))`` as JSON-ready dicts, with the log size
        and the latest checkpoint."""
        size = self.size
        end = size if end is None else min(end, size)
        end = min(end, start + max(0, min(limit, 10_000)))
        if start < 0 or start > size:
            raise AuditRangeError("start out of range", start=start, size=size)
        rows = self._store.audit.leaves(start, end) if end > start else []
        cp = self.checkpoint()
        return {
            "size": size,
            "start": start,
            "end": max(start, end),
            "checkpoint": cp.decode("utf-8") if cp else None,
            "entries": [entry_to_dict(decode_entry(r.entry)) for r in rows],
        }

    def export(self, start: int = 0, *, every: int | None = None) -> Iterator[bytes]:
        """Stream a bundle of leaves ``[start, size)``: checkpoints in that range (with the
        cosignatures peers gave), the consistency proofs between them, the receipts we hold.
        Signs a checkpoint at the current size first, so nothing is left unsigned.

        A busy node signs a checkpoint for nearly every peer response; ``every`` keeps the
        bundle lean: the first and last checkpoints, one at least every ``every`` entries, and
        each peer's newest cosigned one (default: ``checkpoint_every``; 0 keeps them all).
        Checkpoints left out are still checked: peers' receipts and cosigned checkpoints name
        their sizes and roots, which ``verify`` recomputes from the entries."""
        with self._lock:
            if self._signer is None:
                raise AuditRangeError("this log has no signing key")
            end, _ = self._sign_now()
        if not 0 <= start <= end:
            raise AuditRangeError("start out of range", start=start, size=end)
        notes = self._witness.checkpoints(start, end)
        if start and (not notes or notes[0][0] != start):
            raise AuditRangeError(
                "a bundle must start at the size of a signed checkpoint", start=start
            )
        cosigs = self._witness.cosignatures(start, end)
        notes = _thin(notes, cosigs, self._every if every is None else every)
        checkpoints = [note + "".join(cosigs.get(size, [])) for size, note in notes]
        held = [
            HeldReceipt(r.entry_index, Receipt.decode(r.receipt))
            for r in self._witness.receipts(start, end)
        ]
        origin = self._signer.name
        records = export_bundle(
            origin=origin,
            entries=self._leaf_data(start, end),
            checkpoints=checkpoints,
            get_node=self.get_node,
            start=start,
            receipts=held,
        )
        return _coalesce(records, _EXPORT_CHUNK)

    def _leaf_data(self, start: int, end: int) -> Iterator[bytes]:
        for a in range(start, end, _CHUNK):
            for leaf in self._store.audit.leaves(a, min(end, a + _CHUNK)):
                yield leaf.entry

    def keys(self) -> dict[str, Any]:
        """What an auditor pins: this log's checkpoint key and cosigner key (C2SP verifier
        keys), the node's fingerprint, and the same for every peer this node pinned."""
        if self._signer is None or self._cosigner is None or self._node_id is None:
            raise AuditRangeError("this log has no signing key")
        raw = self._signer.verifier.public_key
        peers = []
        for p in self._store.peers.list_all(include_revoked=True):
            peers.append(
                {
                    "node_id": p.node_id,
                    "log_key": log_verifier(p.node_id, p.public_key).vkey(),
                    "cosigner_key": cosigner_verifier(p.node_id, p.public_key).vkey(),
                    "fingerprint": fingerprint(p.public_key),
                }
            )
        return {
            "node_id": self._node_id,
            "origin": self._signer.name,
            "log_key": self._signer.verifier.vkey(),
            "cosigner_key": self._cosigner.verifier.vkey(),
            "fingerprint": fingerprint(raw),
            "peers": peers,
        }

    def witness_report(self) -> dict[str, Any]:
        """Peers' checkpoints this node checked and cosigned, and any split-view evidence."""
        witnessed: dict[str, list[dict[str, Any]]] = {}
        for w in self._witness.witnessed():
            witnessed.setdefault(w.origin, []).append(
                {"size": w.size, "note": w.note, "seen_at": w.seen_at}
            )
        return {
            "witnessed": witnessed,
            "split_views": [
                {
                    "origin": s.origin,
                    "first": s.first_note,
                    "second": s.second_note,
                    "detected_at": s.detected_at,
                }
                for s in self._witness.split_views()
            ],
        }

    def status(self) -> dict[str, Any]:
        """Size, latest checkpoint, and counts for a dashboard."""
        with self._lock:
            size = self._committed.size
            cp = self._cp
        return {
            "origin": self.origin,
            "size": size,
            "checkpoint_size": cp[0] if cp else None,
            "checkpoint": cp[1].decode("utf-8") if cp else None,
            "checkpoints": self._witness.checkpoint_count(),
            "split_views": len(self._witness.split_views()),
        }


def _coalesce(records: Iterator[bytes], size: int) -> Iterator[bytes]:
    """Join the bundle's small records into chunks of about ``size`` bytes (a web server hands
    each chunk of a streamed response to a thread: one per record would crawl)."""
    buffer: list[bytes] = []
    held = 0
    for record in records:
        buffer.append(record)
        held += len(record)
        if held >= size:
            yield b"".join(buffer)
            buffer, held = [], 0
    if buffer:
        yield b"".join(buffer)


def _thin(
    notes: list[tuple[int, str]], cosigs: Mapping[int, list[str]], every: int
) -> list[tuple[int, str]]:
    """The checkpoints an export keeps (see :meth:`AuditSink.export`), in size order."""
    if every <= 0 or len(notes) <= 2:
        return notes
    newest: dict[str, int] = {}
    for size, lines in cosigs.items():
        for line in lines:
            name = line.split(" ", 2)[1] if line.count(" ") >= 2 else line
            newest[name] = max(newest.get(name, -1), size)
    keep_sizes = set(newest.values())
    kept: list[tuple[int, str]] = []
    for i, (size, note) in enumerate(notes):
        last = i == len(notes) - 1
        if not kept or last or size in keep_sizes or size - kept[-1][0] >= every:
            kept.append((size, note))
    return kept


def _token(value: str) -> str:
    """An audit token: keep [A-Za-z0-9._:/-], at most 64 characters."""
    cleaned = re.sub(r"[^A-Za-z0-9._:/-]", "-", value).lstrip("._:/-") or "x"
    return cleaned[:64]


# --- the hooks routes_peer calls (one line each there) -------------------------------------


def _sink_of(service: Any) -> AuditSink | None:
    sink = getattr(service, "audit", None)
    return sink if isinstance(sink, AuditSink) else None


def begin_incoming(service: Any, request: Any, peer_id: str, body: bytes) -> None:
    """``routes_peer``: a peer request passed its signature check. Opens the exchange (kept on
    ``request.state.audit``) before taking the audit headers, so a split view the headers show
    is answered, and logged, as a refusal."""
    sink = _sink_of(service)
    if sink is None:
        return
    params = getattr(request, "path_params", {}) or {}
    session = (
        request.headers.get("fiumatch-session")
        or params.get("session_id")
        or params.get("disclosure_id")
    )
    ex = sink.open_incoming(peer_id, body, str(session) if session else None)
    request.state.audit = ex
    sink.witness_incoming(ex, request.headers)


def answer_headers(service: Any, request: Any, status: int, body: bytes) -> dict[str, str]:
    """``routes_peer``: the response body is final and signed; the audit headers to add."""
    sink = _sink_of(service)
    ex = getattr(request.state, "audit", None)
    if sink is None or not isinstance(ex, Incoming) or ex.closed:
        return {}
    return sink.answer(ex, status, body)
