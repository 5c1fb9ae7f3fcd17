"""Offline auditor checks over bundles: :func:`verify`, :func:`reconcile`, :func:`check_policy`.

This module owns the judgement of a bundle (docs/AUDIT.md, "Verification"):

* :func:`verify` streams one bundle against the log's pinned key and raises the typed error of
  the FIRST bad entry, checkpoint, proof or receipt (``location``, ``expected``, ``found``);
* :func:`reconcile` compares what two nodes logged about the exchanges between them and
  lists what only one side logged;
* :func:`check_policy` replays one bundle against the agreements in force and raises on the
  first entry that breaks one (budgets, modes, purposes, id types, set sizes, validity,
  refusals that cite a clause that did not apply, epoch rotation).

Everything here is a pure function of bytes and keys: it must never read a file, a clock or
the network. Receipt signatures and pinned keys come in as verifier objects.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from fiumatch.auditlog.bundle import (
    Bundle,
    BundleEnd,
    BundleHeader,
    ConsistencyRecord,
    HeldReceipt,
    RecordKind,
    iter_records,
)
from fiumatch.auditlog.checkpoint import (
    CosignatureVerifier,
    NoteVerifier,
    Receipt,
    open_checkpoint,
    open_cosignatures,
    peek_checkpoint,
    verify_receipt,
)
from fiumatch.auditlog.entry import (
    Direction,
    Entry,
    EventType,
    RefusalClause,
    check_entry,
    is_exchange,
)
from fiumatch.auditlog.errors import (
    AuditLogError,
    BadEntryError,
    BundleFormatError,
    BundleTruncatedError,
    CheckpointError,
    CheckpointSignatureError,
    ConsistencyError,
    ConsistencyProofError,
    EntryError,
    ForkError,
    NoteError,
    PolicyViolationError,
    ReceiptError,
    ReconcileError,
    RootMismatchError,
    SequenceGapError,
    SignatureError,
    TimeRegressionError,
    UnsignedTailError,
)
from fiumatch.auditlog.merkle import CompactRange, leaf_hash
from fiumatch.auditlog.proofs import verify_consistency

__all__ = [
    "AgreementPolicy",
    "Disagreement",
    "OneSided",
    "PolicyReport",
    "PolicyRule",
    "ReconcileReport",
    "VerifyReport",
    "check_policy",
    "reconcile",
    "verify",
]

_sha256 = hashlib.sha256


# --- verify -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What a bundle that verified proves: leaves ``[start, size)`` of ``origin`` hash to
    ``root``, signed by the pinned key, with every check below passed."""

    origin: str
    start: int
    size: int
    root: bytes
    checkpoints: int
    proofs: int
    receipts: int
    cosignatures: int
    known_checkpoints: int
    issued_receipts: int
    first_time_ms: int | None
    last_time_ms: int | None


_NOT_EXCHANGE, _INCOMING, _OUTGOING = 0, 1, 2


def _wrap_checkpoint_error(exc: AuditLogError, location: str) -> CheckpointError:
    cls = CheckpointSignatureError if isinstance(exc, SignatureError) else CheckpointError
    return cls(exc.reason, location=location, **exc.details)


def verify(
    bundle: bytes | bytearray | memoryview,
    log_key: NoteVerifier,
    *,
    peer_keys: Iterable[NoteVerifier] = (),
    cosigners: Sequence[CosignatureVerifier] = (),
    known_checkpoints: Sequence[bytes | str] = (),
    issued_receipts: Sequence[Receipt] = (),
) -> VerifyReport:
    """Check a bundle offline against the log's pinned key; raise at the first failure.

    Checks, in stream order: framing and checksums; every entry decodes under the schema,
    sequence numbers are consecutive from the header's start, times never go backwards;
    every checkpoint is signed by ``log_key`` for the bundle's origin, sits right after its
    last entry and has the root recomputed from the entries; every known cosignature line
    verifies; successive checkpoints carry a consistency proof that verifies; no entry
    follows the last checkpoint; every held receipt is attached to one of our outgoing
    exchanges and verifies under its log's key from ``peer_keys``; the end record's counts.

    ``known_checkpoints`` (signed by ``log_key``, e.g. gathered from witnesses) and
    ``issued_receipts`` (receipts peers hold from this log) must agree with the bundle: a
    different root at the same size is a :class:`ForkError` (a split view), a size beyond the
    bundle a :class:`BundleTruncatedError`.
    """
    peers = {k.name: k for k in peer_keys}
    want_roots: dict[int, list[tuple[str, bytes]]] = defaultdict(list)
    want_leaves: dict[int, list[tuple[str, bytes]]] = defaultdict(list)
    for i, note in enumerate(known_checkpoints):
        where = f"known checkpoint {i}"
        try:
            cp = open_checkpoint(note, log_key)
        except (SignatureError, NoteError) as exc:
            raise _wrap_checkpoint_error(exc, where) from exc
        want_roots[cp.size].append((where, cp.root))
    for i, receipt in enumerate(issued_receipts):
        where = f"issued receipt {i}"
        try:
            cp = verify_receipt(receipt, log_key)
        except AuditLogError as exc:
            raise ReceiptError(exc.reason, location=where, **exc.details) from exc
        want_roots[cp.size].append((where, cp.root))
        want_leaves[receipt.leaf_index].append((where, receipt.leaf_hash))

    header: BundleHeader | None = None
    cr = CompactRange()
    pending: list[bytes] = []
    flags = bytearray()
    index = start = 0
    prev_time: int | None = None
    first_time: int | None = None
    n_checkpoints = n_proofs = n_receipts = n_cosigs = 0
    last_cp: tuple[int, bytes] | None = None
    prev_cp: tuple[int, bytes] | None = None
    proof_due = False
    in_receipts = False
    end: BundleEnd | None = None

    def root_now() -> bytes:
        if pending:
            cr.extend(pending)
            pending.clear()
        return cr.root()

    def check_wanted(size: int) -> None:
        if size in want_roots:
            root = root_now()
            for where, expected in want_roots.pop(size):
                if expected != root:
                    raise ForkError(
                        "a checkpoint signed by this log disagrees with the bundle",
                        location=where, expected=expected.hex(), found=root.hex(), size=size,
                    )

    def missing_proof() -> ConsistencyError:
        return ConsistencyError(
            "no consistency proof follows the checkpoint", location=f"proof {n_checkpoints - 1}",
            expected="consistency record", found="none",
        )

    for rec in iter_records(bundle):
        kind = rec.kind
        if kind == RecordKind.ENTRY:
            where = f"entry {index}"
            if proof_due:
                raise missing_proof()
            if in_receipts:
                raise BundleFormatError("entry after the receipts", location=where)
            data = rec.payload
            try:
                summary = check_entry(data)
            except EntryError as exc:
                raise BadEntryError(exc.reason, location=where, **exc.details) from exc
            if summary.seq != index:
                raise SequenceGapError("sequence number is not the next leaf index",
                                       location=where, expected=index, found=summary.seq)
            t = summary.time_ms
            if prev_time is not None and t < prev_time:
                raise TimeRegressionError("time goes backwards", location=where,
                                          expected=f">= {prev_time}", found=t)
            if first_time is None:
                first_time = t
            prev_time = t
            h = _sha256(b"\x00" + data).digest()
            pending.append(h)
            flags.append(
                _OUTGOING if summary.outgoing else _INCOMING if summary.exchange else _NOT_EXCHANGE
            )
            if index in want_leaves:
                for wloc, expected in want_leaves.pop(index):
                    if expected != h:
                        raise ForkError("a receipt from this log names another leaf here",
                                        location=wloc, expected=expected.hex(), found=h.hex(),
                                        entry=index)
            index += 1
            check_wanted(index)
        elif kind == RecordKind.CHECKPOINT:
            where = f"checkpoint {n_checkpoints}"
            if proof_due:
                raise missing_proof()
            if in_receipts:
                raise BundleFormatError("checkpoint after the receipts", location=where)
            assert header is not None
            try:
                cp = open_checkpoint(rec.payload, log_key, origin=header.origin)
                cosigs = open_cosignatures(rec.payload, cosigners)
            except (SignatureError, NoteError) as exc:
                raise _wrap_checkpoint_error(exc, where) from exc
            if cp.size != index:
                raise CheckpointError("checkpoint is not placed right after its last entry",
                                      location=where, expected=index, found=cp.size)
            if last_cp is not None and cp.size == last_cp[0]:
                raise CheckpointError("two checkpoints of the same size", location=where,
                                      found=cp.size)
            root = root_now()
            if root != cp.root:
                raise RootMismatchError(
                    "the root recomputed from the entries differs from the signed root",
                    location=where, expected=cp.root.hex(), found=root.hex(),
                    first_entry=last_cp[0] if last_cp else start, last_entry=cp.size - 1,
                )
            n_cosigs += len(cosigs)
            prev_cp, last_cp = last_cp, (cp.size, cp.root)
            n_checkpoints += 1
            proof_due = prev_cp is not None
        elif kind == RecordKind.CONSISTENCY:
            if not proof_due or last_cp is None or prev_cp is None:
                raise ConsistencyError("consistency record not right after a second checkpoint",
                                       location=f"record {rec.ordinal}")
            where = f"proof {n_checkpoints - 1}"
            record = ConsistencyRecord.decode(rec.payload, where)
            if (record.size1, record.size2) != (prev_cp[0], last_cp[0]):
                raise ConsistencyError(
                    "consistency record is for other sizes", location=where,
                    expected=f"{prev_cp[0]}->{last_cp[0]}",
                    found=f"{record.size1}->{record.size2}",
                )
            try:
                verify_consistency(prev_cp[0], last_cp[0], prev_cp[1], last_cp[1], record.proof)
            except ConsistencyProofError as exc:
                raise ConsistencyError(
                    exc.reason, location=where,
                    expected=None if exc.expected_root is None else exc.expected_root.hex(),
                    found=None if exc.computed_root is None else exc.computed_root.hex(),
                    first_root=prev_cp[1].hex(), second_root=last_cp[1].hex(),
                ) from exc
            proof_due = False
            n_proofs += 1
        elif kind == RecordKind.RECEIPT:
            where = f"receipt {n_receipts}"
            if proof_due:
                raise missing_proof()
            in_receipts = True
            held = HeldReceipt.decode(rec.payload, where)
            local = held.entry_index - start
            if not 0 <= local < len(flags) or flags[local] != _OUTGOING:
                raise ReceiptError(
                    "receipt is not attached to one of our outgoing exchanges",
                    location=where, expected="index of an outgoing exchange entry",
                    found=held.entry_index,
                )
            try:
                origin = held.receipt.origin()
            except NoteError as exc:
                raise ReceiptError(exc.reason, location=where) from exc
            key = peers.get(origin)
            if key is None:
                raise ReceiptError("no pinned key for the receipt's log", location=where,
                                   expected="a pinned peer key", found=origin)
            try:
                verify_receipt(held.receipt, key)
            except AuditLogError as exc:
                raise ReceiptError(exc.reason, location=where, **exc.details) from exc
            n_receipts += 1
        elif kind == RecordKind.HEADER:
            header = BundleHeader.decode(rec.payload)
            start = index = header.start
            if start:
                cr = CompactRange.from_hashes(start, header.frontier)
            for size in sorted(s for s in want_roots if s < start):
                raise BundleTruncatedError(
                    "the bundle starts after a checkpoint this log signed",
                    location=want_roots[size][0][0], expected=f"bundle from {size} or earlier",
                    found=f"bundle from {start}",
                )
            check_wanted(start)
        else:
            if proof_due:
                raise missing_proof()
            end = BundleEnd.decode(rec.payload)

    assert header is not None and end is not None  # iter_records guarantees both
    seen = BundleEnd(index - start, n_checkpoints, n_proofs, n_receipts)
    if seen != end:
        cls = BundleTruncatedError if end.entries > seen.entries else BundleFormatError
        raise cls("record counts differ from the end record", location="bundle end",
                  expected=str(end), found=str(seen))
    if last_cp is None:
        raise UnsignedTailError("no checkpoint signs the bundle", location=f"entry {start}"
                                if index > start else "bundle end")
    if last_cp[0] != index:
        raise UnsignedTailError("entries follow the last checkpoint",
                                location=f"entry {last_cp[0]}", expected=last_cp[0],
                                found=index)
    for size, wanted in sorted(want_roots.items()):
        raise BundleTruncatedError(
            "the bundle does not reach a checkpoint this log signed", location=wanted[0][0],
            expected=f"bundle covering [{start}, {size})", found=f"[{start}, {index})",
        )
    for leaf, wanted in sorted(want_leaves.items()):  # pragma: no cover - implied by roots
        raise BundleTruncatedError("the bundle does not reach a receipt's leaf",
                                   location=wanted[0][0], expected=leaf, found=index)
    return VerifyReport(
        origin=header.origin, start=start, size=index, root=last_cp[1],
        checkpoints=n_checkpoints, proofs=n_proofs, receipts=n_receipts,
        cosignatures=n_cosigs, known_checkpoints=len(known_checkpoints),
        issued_receipts=len(issued_receipts), first_time_ms=first_time, last_time_ms=prev_time,
    )


# --- reconcile --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Disagreement:
    """Both nodes logged the exchange, differently: ``field`` has value ``a`` on one side and
    ``b`` on the other (counts are compared mirrored: a's count_in against b's count_out)."""

    location_a: str
    location_b: str
    session: str | None
    event: str
    field: str
    a: object
    b: object


@dataclass(frozen=True, slots=True)
class OneSided:
    """An exchange (or a receipted leaf) only one node logged."""

    side: str
    location: str
    session: str | None
    event: str


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    matched: int
    disagreements: tuple[Disagreement, ...]
    only_in_a: tuple[OneSided, ...]
    only_in_b: tuple[OneSided, ...]
    receipts_checked: int

    @property
    def ok(self) -> bool:
        return not (self.disagreements or self.only_in_a or self.only_in_b)

    def raise_first(self) -> None:
        """Raise :class:`ReconcileError` for the first disagreement, else for the first
        one-sided exchange; return if the two logs agree completely."""
        if self.disagreements:
            d = self.disagreements[0]
            raise ReconcileError(
                f"the two logs disagree on {d.field}", location=f"{d.location_a} / {d.location_b}",
                expected=d.a, found=d.b, field=d.field, event=d.event,
            )
        for one in (*self.only_in_a, *self.only_in_b):
            raise ReconcileError("only one node logged this exchange", location=one.location,
                                 expected="logged by both", found=f"only in {one.side}",
                                 event=one.event)


_SHARED_FIELDS: Final = ("mode", "agreement", "epoch", "response_sha256", "clause", "decision",
                         "outcome", "id_type")
_MIRRORED: Final = (("count_in", "count_out"), ("count_out", "count_in"))


def _show(value: object) -> object:
    return value.hex() if isinstance(value, bytes) else str(value) if isinstance(
        value, StrEnum) else value


def _exchanges(bundle: Bundle, other: str | None) -> dict[tuple[object, ...], list[int]]:
    out: dict[tuple[object, ...], list[int]] = defaultdict(list)
    for i, e in enumerate(bundle.entries):
        if is_exchange(e) and (other is None or e.peer == other):
            out[(e.session, int(e.event), e.request_sha256)].append(bundle.start + i)
    return out


def _roots_at(bundle: Bundle, sizes: Iterable[int]) -> dict[int, bytes]:
    """Roots of ``bundle``'s tree at ``sizes`` within ``[start, size]``, in one pass."""
    wanted = sorted({s for s in sizes if bundle.start <= s <= bundle.size})
    cr = CompactRange.from_hashes(bundle.start, bundle.header.frontier)
    roots: dict[int, bytes] = {}
    pos = bundle.start
    for s in wanted:
        cr.extend(leaf_hash(d) for d in bundle.entry_bytes[pos - bundle.start : s - bundle.start])
        pos = s
        roots[s] = cr.root()
    return roots


def _check_receipts(
    holder: Bundle, issuer: Bundle, side: str, other: str, problems: list[Disagreement]
) -> int:
    """Receipts ``holder`` holds from ``issuer``'s log must point at the entry ``issuer``
    logged for the same exchange, under a root ``issuer``'s bundle reproduces."""
    mine = [(r, h) for r, h in enumerate(holder.receipts)
            if _origin_or_none(h.receipt) == issuer.origin]
    sizes = {peek_checkpoint(h.receipt.checkpoint).size for _, h in mine}
    roots = _roots_at(issuer, sizes)
    checked = 0
    for r, held in mine:
        receipt = held.receipt
        cp = peek_checkpoint(receipt.checkpoint)
        loc_h = f"{side} receipt {r}"
        loc_i = f"{other} entry {receipt.leaf_index}"
        own = holder.entries[held.entry_index - holder.start]
        event = own.event.name.lower()

        def problem(fld: str, a: object, b: object, *, _lh: str = loc_h, _li: str = loc_i,
                    _s: str | None = own.session, _e: str = event) -> None:
            pair = (_lh, _li) if side == "a" else (_li, _lh)
            problems.append(Disagreement(pair[0], pair[1], _s, _e, fld, a, b))

        if cp.size in roots and roots[cp.size] != cp.root:
            problem("checkpoint_root", cp.root.hex(), roots[cp.size].hex())
        pos = receipt.leaf_index - issuer.start
        if not 0 <= pos < len(issuer.entries):
            if cp.size > issuer.size:
                problem("leaf_index", receipt.leaf_index, "beyond the bundle")
            continue
        theirs = issuer.entries[pos]
        if leaf_hash(issuer.entry_bytes[pos]) != receipt.leaf_hash:
            problem("leaf_hash", receipt.leaf_hash.hex(),
                    leaf_hash(issuer.entry_bytes[pos]).hex())
        elif (theirs.session, theirs.event, theirs.request_sha256) != (
            own.session, own.event, own.request_sha256
        ):
            problem("receipted_exchange", f"{own.session}/{event}",
                    f"{theirs.session}/{theirs.event.name.lower()}")
        checked += 1
    return checked


def _origin_or_none(receipt: Receipt) -> str | None:
    try:
        return receipt.origin()
    except NoteError:
        return None


def reconcile(
    a: Bundle, b: Bundle, *, a_name: str | None = None, b_name: str | None = None
) -> ReconcileReport:
    """Compare two verified bundles' views of the exchanges between their nodes.

    Exchanges pair up by (session, event type, request digest). For each pair the directions
    must be opposite, the shared fields equal (mode, agreement, epoch, response digest,
    clause, decision, outcome, id type) and the counts mirrored. ``a_name``/``b_name`` (the
    peer ids each node uses for the other) restrict the comparison to exchanges between the
    two; without them every exchange counts. Receipts each side holds from the other's log
    must name the other side's entry for the same exchange, under a root the other side's
    bundle reproduces.
    """
    ex_a = _exchanges(a, b_name)
    ex_b = _exchanges(b, a_name)
    disagreements: list[Disagreement] = []
    only_a: list[OneSided] = []
    only_b: list[OneSided] = []
    matched = 0
    never = 1 << 64

    def order(k: tuple[object, ...]) -> tuple[int, int]:
        return (ex_a[k][0] if k in ex_a else never, ex_b[k][0] if k in ex_b else never)

    for key in sorted(set(ex_a) | set(ex_b), key=order):
        la, lb = ex_a.get(key, []), ex_b.get(key, [])
        for ia, ib in zip(la, lb, strict=False):
            ea, eb = a.entries[ia - a.start], b.entries[ib - b.start]
            matched += 1
            loc_a, loc_b = f"a entry {ia}", f"b entry {ib}"
            event = ea.event.name.lower()

            def differ(fld: str, va: object, vb: object, *, _la: str = loc_a, _lb: str = loc_b,
                       _s: str | None = ea.session, _e: str = event) -> None:
                disagreements.append(Disagreement(_la, _lb, _s, _e, fld, _show(va), _show(vb)))

            if ea.direction == eb.direction:
                differ("direction", ea.direction, eb.direction)
            for fld in _SHARED_FIELDS:
                va, vb = getattr(ea, fld), getattr(eb, fld)
                if va is not None and vb is not None and va != vb:
                    differ(fld, va, vb)
            for fa, fb in _MIRRORED:
                va, vb = getattr(ea, fa), getattr(eb, fb)
                if va is not None and vb is not None and va != vb:
                    differ(f"{fa}/{fb}", va, vb)
        for ia in la[len(lb):]:
            e = a.entries[ia - a.start]
            only_a.append(OneSided("a", f"a entry {ia}", e.session, e.event.name.lower()))
        for ib in lb[len(la):]:
            e = b.entries[ib - b.start]
            only_b.append(OneSided("b", f"b entry {ib}", e.session, e.event.name.lower()))
    receipts = _check_receipts(a, b, "a", "b", disagreements)
    receipts += _check_receipts(b, a, "b", "a", disagreements)
    return ReconcileReport(matched, tuple(disagreements), tuple(only_a), tuple(only_b), receipts)


# --- policy -----------------------------------------------------------------------------------


class PolicyRule(StrEnum):
    """Stable names of the policy rules an entry can break."""

    UNKNOWN_AGREEMENT = "unknown_agreement"
    PEER_MISMATCH = "peer_mismatch"
    OUTSIDE_VALIDITY = "outside_validity"
    MODE_NOT_ALLOWED = "mode_not_allowed"
    PURPOSE_NOT_ALLOWED = "purpose_not_allowed"
    ID_TYPE_NOT_ALLOWED = "id_type_not_allowed"
    SET_TOO_LARGE = "set_too_large"
    BUDGET_EXCEEDED = "budget_exceeded"
    STALE_EPOCH = "stale_epoch"
    ROTATION_LATE = "rotation_late"
    ROTATION_SKIPPED = "rotation_skipped"
    UNJUSTIFIED_REFUSAL = "unjustified_refusal"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgreementPolicy:
    """The auditable terms of one agreement between this node and ``peer``.

    ``budget_per_epoch`` bounds the elements evaluated per key epoch and direction,
    ``max_set_size`` one request's elements; the agreement is in force for
    ``valid_from_ms <= time < valid_until_ms``; this node's key for it must rotate at least
    every ``rotation_period_ms``.
    """

    agreement: str
    peer: str
    modes: frozenset[str]
    purposes: frozenset[str]
    id_types: frozenset[str]
    budget_per_epoch: int
    max_set_size: int
    valid_from_ms: int
    valid_until_ms: int
    rotation_period_ms: int


@dataclass(frozen=True, slots=True)
class PolicyReport:
    entries: int
    requests: int
    refusals: int
    rotations: int
    budget_used: Mapping[tuple[str, int, str], int]


_REQUESTS: Final = frozenset(
    {EventType.SESSION_OPENED, EventType.FILTER_FETCHED, EventType.EVALUATION}
)


def _set_size(e: Entry) -> int | None:
    """Elements of the requester's set: received if we answered, sent if we asked."""
    return e.count_in if e.direction is Direction.IN else e.count_out


class _PolicyState:
    def __init__(self, agreements: Iterable[AgreementPolicy]) -> None:
        self.policies: dict[str, AgreementPolicy] = {}
        for p in agreements:
            if p.agreement in self.policies:
                raise ValueError(f"agreement {p.agreement!r} given twice")
            self.policies[p.agreement] = p
        self.budget: dict[tuple[str, int, str], int] = defaultdict(int)
        self.epoch: dict[str, tuple[int, int]] = {}  # agreement -> (epoch, rotated at)

    def breaches(self, e: Entry, p: AgreementPolicy) -> list[tuple[PolicyRule, object, object]]:
        """Every clause a request described by ``e`` breaks (rule, expected, found)."""
        out: list[tuple[PolicyRule, object, object]] = []
        if e.peer is not None and e.peer != p.peer:
            out.append((PolicyRule.PEER_MISMATCH, p.peer, e.peer))
        if not p.valid_from_ms <= e.time_ms < p.valid_until_ms:
            out.append((PolicyRule.OUTSIDE_VALIDITY,
                        f"[{p.valid_from_ms}, {p.valid_until_ms})", e.time_ms))
        if e.mode is not None and e.mode not in p.modes:
            out.append((PolicyRule.MODE_NOT_ALLOWED, sorted(p.modes), e.mode))
        if e.id_type is not None and e.id_type not in p.id_types:
            out.append((PolicyRule.ID_TYPE_NOT_ALLOWED, sorted(p.id_types), e.id_type))
        if e.purpose is not None and e.purpose not in p.purposes:
            out.append((PolicyRule.PURPOSE_NOT_ALLOWED, sorted(p.purposes), "another purpose"))
        size = _set_size(e)
        if size is not None and size > p.max_set_size:
            out.append((PolicyRule.SET_TOO_LARGE, f"<= {p.max_set_size}", size))
        if size is not None and e.epoch is not None and e.direction is not None:
            key = (p.agreement, e.epoch, e.direction.value)
            if self.budget[key] + size > p.budget_per_epoch:
                out.append((PolicyRule.BUDGET_EXCEEDED, f"<= {p.budget_per_epoch}",
                            self.budget[key] + size))
        current = self.epoch.get(p.agreement)
        if e.direction is Direction.IN and e.epoch is not None and current is not None:
            if e.epoch != current[0]:
                out.append((PolicyRule.STALE_EPOCH, current[0], e.epoch))
            elif e.time_ms > current[1] + p.rotation_period_ms:
                out.append((PolicyRule.ROTATION_LATE,
                            f"rotation by {current[1] + p.rotation_period_ms}", e.time_ms))
        return out


_CLAUSE_RULES: Final[Mapping[RefusalClause, frozenset[PolicyRule]]] = {
    RefusalClause.PEER: frozenset({PolicyRule.PEER_MISMATCH}),
    RefusalClause.VALIDITY: frozenset({PolicyRule.OUTSIDE_VALIDITY}),
    RefusalClause.MODE: frozenset({PolicyRule.MODE_NOT_ALLOWED}),
    RefusalClause.PURPOSE: frozenset({PolicyRule.PURPOSE_NOT_ALLOWED}),
    RefusalClause.ID_TYPE: frozenset({PolicyRule.ID_TYPE_NOT_ALLOWED}),
    RefusalClause.SET_SIZE: frozenset({PolicyRule.SET_TOO_LARGE}),
    RefusalClause.BUDGET: frozenset({PolicyRule.BUDGET_EXCEEDED}),
    RefusalClause.EPOCH: frozenset({PolicyRule.STALE_EPOCH, PolicyRule.ROTATION_LATE}),
}


def check_policy(bundle: Bundle, agreements: Iterable[AgreementPolicy]) -> PolicyReport:
    """Replay a verified bundle against the agreements; raise :class:`PolicyViolationError`
    (with a stable ``rule``) at the first entry that breaks one.

    Accepted requests (sessions opened, filters fetched, evaluations, either direction) must
    break no clause, and evaluations count against the budget of their (agreement, epoch,
    direction). Queries and disclosure requests must name allowed purposes and id types.
    Every refusal must cite a clause that the refused request really broke (``auth`` and
    ``protocol`` refusals are not agreement clauses and pass). Key rotations for an agreement
    must step the epoch by one and come within the rotation period; after a rotation,
    requests we answer must use the current epoch, and none may come after the epoch's
    period ran out.
    """
    state = _PolicyState(agreements)
    counts = {"requests": 0, "refusals": 0, "rotations": 0}
    for i, e in enumerate(bundle.entries):
        where = f"entry {bundle.start + i}"

        def violate(rule: PolicyRule, expected: object, found: object, *,
                    _w: str = where, _e: Entry = e) -> PolicyViolationError:
            return PolicyViolationError(
                f"entry breaks the agreement ({rule.value})", rule=rule.value, location=_w,
                expected=expected, found=found, agreement=_e.agreement,
                event=_e.event.name.lower(),
            )

        p = state.policies.get(e.agreement) if e.agreement is not None else None
        if e.event in _REQUESTS:
            counts["requests"] += 1
            if p is None:
                raise violate(PolicyRule.UNKNOWN_AGREEMENT, sorted(state.policies), e.agreement)
            breaches = state.breaches(e, p)
            if breaches:
                raise violate(*breaches[0])
            size = _set_size(e)
            if e.event is EventType.EVALUATION and size is not None and e.epoch is not None:
                assert e.direction is not None
                state.budget[(p.agreement, e.epoch, e.direction.value)] += size
        elif e.event in (EventType.QUERY, EventType.DISCLOSURE_REQUESTED) and e.agreement:
            if p is None:
                raise violate(PolicyRule.UNKNOWN_AGREEMENT, sorted(state.policies), e.agreement)
            for rule, expected, found in state.breaches(e, p):
                if rule in (PolicyRule.PURPOSE_NOT_ALLOWED, PolicyRule.ID_TYPE_NOT_ALLOWED,
                            PolicyRule.PEER_MISMATCH, PolicyRule.OUTSIDE_VALIDITY):
                    raise violate(rule, expected, found)
        elif e.event is EventType.REFUSAL:
            counts["refusals"] += 1
            clause = e.clause
            assert clause is not None
            if clause in (RefusalClause.AUTH, RefusalClause.PROTOCOL, RefusalClause.PROOFS):
                continue
            if clause is RefusalClause.NO_AGREEMENT:
                if p is not None:
                    raise violate(PolicyRule.UNJUSTIFIED_REFUSAL,
                                  "a request under no known agreement", e.agreement)
                continue
            if p is None:
                raise violate(PolicyRule.UNJUSTIFIED_REFUSAL,
                              f"a refusal under a known agreement for clause {clause.value}",
                              e.agreement)
            broken = {rule for rule, _, _ in state.breaches(e, p)}
            if not broken & _CLAUSE_RULES[clause]:
                raise violate(PolicyRule.UNJUSTIFIED_REFUSAL,
                              f"a request breaking clause {clause.value}",
                              sorted(r.value for r in broken) or "a request within the agreement")
        elif e.event is EventType.EPOCH_ROTATED:
            counts["rotations"] += 1
            if p is None:
                raise violate(PolicyRule.UNKNOWN_AGREEMENT, sorted(state.policies), e.agreement)
            assert e.epoch is not None
            previous = state.epoch.get(p.agreement)
            if previous is not None:
                if e.epoch != previous[0] + 1:
                    raise violate(PolicyRule.ROTATION_SKIPPED, previous[0] + 1, e.epoch)
                if e.time_ms - previous[1] > p.rotation_period_ms:
                    raise violate(PolicyRule.ROTATION_LATE,
                                  f"<= {previous[1] + p.rotation_period_ms}", e.time_ms)
            state.epoch[p.agreement] = (e.epoch, e.time_ms)
    return PolicyReport(len(bundle.entries), counts["requests"], counts["refusals"],
                        counts["rotations"], dict(state.budget))

