"""What the web pages show, computed from the node's service and store.

Owns: the identifier rule of the web interface (:func:`may_see_identifiers`), peer status
(reachability with the pinned key checked, epoch, agreement validity, budget use), parsing
pasted or uploaded identifiers, hit filtering and CSV export, the health of the
stored audit log, daily activity per peer for the charts, and verifying and reconciling
uploaded audit bundles with the pure ``fiumatch.auditlog`` functions.

Read-only over the store (repository getters and SELECTs); every decision and every write goes
through :class:`~fiumatch.node.service.NodeService`. Must never log, or put into an error
message, an identifier, a token or a key: parse errors name a line and a column, not a value.
"""

from __future__ import annotations

import concurrent.futures
import csv
import io
import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fiumatch.auditlog.bundle import BundleHeader, RecordKind, decode_bundle, iter_records
from fiumatch.auditlog.checkpoint import (
    CosignatureVerifier,
    NoteVerifier,
    open_checkpoint,
    peek_checkpoint,
)
from fiumatch.auditlog.entry import check_entry
from fiumatch.auditlog.errors import AuditLogError, BundleFormatError
from fiumatch.auditlog.merkle import leaf_hash, root_from_leaf_hashes
from fiumatch.auditlog.proofs import consistency_proof, root_at, verify_consistency
from fiumatch.auditlog.verify import ReconcileReport, VerifyReport, reconcile, verify
from fiumatch.errors import FiumatchError
from fiumatch.ingest.build import FIELDS, MULTI_VALUED
from fiumatch.node.keys import fingerprint
from fiumatch.node.service import STRENGTHS, NodeService
from fiumatch.store import Agreement, Peer, Store

__all__ = [
    "IDENTIFIER_ROLES",
    "BundleCheck",
    "LogHealth",
    "PasteError",
    "PeerActivity",
    "PeerStatus",
    "Reachability",
    "ReconcileView",
    "agreement_status",
    "csv_cell",
    "daily_activity",
    "filter_entries",
    "filter_hits",
    "hits_csv",
    "key_type_name",
    "log_health",
    "may_see_identifiers",
    "parse_identifiers",
    "peer_statuses",
    "reconcile_bundles",
    "verify_bundle",
]

#: Roles that may see identifiers (subject names, references, released records). The service
#: also lets ``admin`` read them through the API; the web interface does not show them to an
#: admin or an auditor on any page.
IDENTIFIER_ROLES = frozenset({"analyst", "supervisor"})

MAX_PASTED_RECORDS = 10_000


def may_see_identifiers(role: str) -> bool:
    return role in IDENTIFIER_ROLES


def utc(ts: float | None) -> str:
    """A Unix time as ``YYYY-MM-DD HH:MM UTC`` (empty for None)."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


# --- peers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reach:
    reachable: bool
    key_matches: bool | None


class Reachability:
    """Fetches each peer's ``/.well-known/fiumatch`` concurrently (short timeout), compares the
    announced key with the pinned one, and caches the answer for ``ttl`` seconds."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        ttl: float = 15.0,
        timeout: float = 2.0,
        fetch: Callable[..., dict[str, Any]] | None = None,
    ) -> None:
        from fiumatch.client.peer import fetch_well_known

        self._clock = clock
        self._ttl = ttl
        self._timeout = timeout
        self._fetch = fetch or fetch_well_known
        self._cache: dict[str, tuple[float, Reach]] = {}
        self._lock = threading.Lock()

    def _probe(self, peer: Peer) -> Reach:
        try:
            info = self._fetch(peer.url, timeout=self._timeout)
            announced = fingerprint(bytes.fromhex(str(info["public_key"])))
        except (FiumatchError, KeyError, ValueError, TypeError):
            return Reach(False, None)
        return Reach(True, announced == peer.fingerprint)

    def check(self, peers: Sequence[Peer]) -> dict[str, Reach]:
        now = self._clock()
        out: dict[str, Reach] = {}
        todo: list[Peer] = []
        with self._lock:
            for p in peers:
                hit = self._cache.get(p.node_id)
                if hit and now - hit[0] < self._ttl:
                    out[p.node_id] = hit[1]
                else:
                    todo.append(p)
        if todo:
            with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, len(todo))) as pool:
                for p, reach in zip(todo, pool.map(self._probe, todo), strict=True):
                    out[p.node_id] = reach
            with self._lock:
                for p in todo:
                    self._cache[p.node_id] = (now, out[p.node_id])
        return out

    def forget(self, node_id: str) -> None:
        with self._lock:
            self._cache.pop(node_id, None)


def agreement_status(agreements: Sequence[Agreement], now: int) -> tuple[str, bool, int | None]:
    """A phrase for the agreements with one peer, whether one is in force, and the budget per
    epoch of the one in force (the largest, if several)."""
    in_force = [a for a in agreements if a.in_force(now)]
    if in_force:
        until = max(a.valid_until for a in in_force)
        budget = max(a.budget_per_epoch for a in in_force)
        return f"in force until {utc(until - 1)[:10]}", True, budget
    live = [a for a in agreements if a.revoked_at is None]
    future = [a for a in live if a.valid_from > now]
    if future:
        return f"not yet valid (from {utc(min(a.valid_from for a in future))[:10]})", False, None
    if live:
        return f"expired after {utc(max(a.valid_until for a in live) - 1)[:10]}", False, None
    if agreements:
        return "revoked", False, None
    return "no agreement", False, None


@dataclass(frozen=True)
class PeerStatus:
    node_id: str
    url: str
    fingerprint: str
    reachable: bool
    key_matches: bool | None
    epoch: int | None
    epoch_since: str
    agreement: str
    agreement_ok: bool
    budget_used: int
    budget_limit: int | None

    @property
    def budget_percent(self) -> int:
        if not self.budget_limit:
            return 0
        return min(100, round(100 * self.budget_used / self.budget_limit))


def peer_statuses(service: NodeService, reach: Reachability) -> list[PeerStatus]:
    store = service.store
    peers = store.peers.list_all()
    reached = reach.check(peers)
    now = service.now()
    out = []
    for p in peers:
        text, ok, budget = agreement_status(store.agreements.list_for_peer(p.node_id), now)
        epoch = store.epochs.active(p.node_id, "local")
        used = store.budget.used(p.node_id, epoch.epoch) if epoch else 0
        r = reached.get(p.node_id, Reach(False, None))
        out.append(
            PeerStatus(
                node_id=p.node_id,
                url=p.url,
                fingerprint=p.fingerprint,
                reachable=r.reachable,
                key_matches=r.key_matches,
                epoch=epoch.epoch if epoch else None,
                epoch_since=utc(epoch.activated_at) if epoch else "",
                agreement=text,
                agreement_ok=ok,
                budget_used=used,
                budget_limit=budget,
            )
        )
    return out


# --- subjects and pasted identifiers -----------------------------------------------------------


class PasteError(ValueError):
    """Pasted or uploaded identifiers that cannot be read (names a line, never a value)."""


_KNOWN_FIELDS = frozenset(FIELDS)


def _value(name: str, raw: str) -> str | list[str]:
    if name in MULTI_VALUED:
        return [v.strip() for v in raw.split(";") if v.strip()]
    return raw.strip()


def parse_identifiers(text: str) -> list[dict[str, str | list[str]]]:
    """Records from CSV (a header row of column names, as ``fiumatch ingest`` reads) or JSON
    Lines (one object per line). Raises :class:`PasteError` naming the line."""
    text = text.lstrip("\ufeff")
    if not text.strip():
        return []
    if text.lstrip().startswith("{"):
        return _parse_jsonl(text)
    return _parse_csv(text)


def _parse_jsonl(text: str) -> list[dict[str, str | list[str]]]:
    out: list[dict[str, str | list[str]]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            raise PasteError(f"line {n} is not a JSON object") from None
        if not isinstance(obj, dict):
            raise PasteError(f"line {n} is not a JSON object")
        rec: dict[str, str | list[str]] = {}
        for k, v in obj.items():
            if k not in _KNOWN_FIELDS:
                raise PasteError(f"line {n}: unknown field {str(k)[:40]!r}")
            if isinstance(v, str):
                rec[k] = v.strip()
            elif isinstance(v, list) and all(isinstance(x, str) for x in v):
                rec[k] = [x.strip() for x in v if x.strip()]
            elif v is not None:
                raise PasteError(f"line {n}: field {k!r} must be text or a list of text")
        out.append(rec)
        if len(out) > MAX_PASTED_RECORDS:
            raise PasteError(f"at most {MAX_PASTED_RECORDS} records at once")
    return out


def _parse_csv(text: str) -> list[dict[str, str | list[str]]]:
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except (StopIteration, csv.Error):
        raise PasteError("line 1 must be a header row of column names") from None
    unknown = [i for i, h in enumerate(header, 1) if h not in _KNOWN_FIELDS]
    if unknown:
        # By position, not by name: without a header row, line 1 holds identifiers.
        raise PasteError(
            f"line 1, column {unknown[0]} is not a known column name; the first line must "
            "be a header row with the columns of fiumatch ingest"
        )
    if "type" not in header:
        raise PasteError("line 1: a 'type' column is required (person, organisation, ...)")
    out: list[dict[str, str | list[str]]] = []
    try:
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != len(header):
                raise PasteError(
                    f"line {reader.line_num} has {len(row)} fields; the header has {len(header)}"
                )
            out.append({h: _value(h, v) for h, v in zip(header, row, strict=True) if v.strip()})
            if len(out) > MAX_PASTED_RECORDS:
                raise PasteError(f"at most {MAX_PASTED_RECORDS} records at once")
    except csv.Error:
        raise PasteError(f"line {reader.line_num} cannot be parsed as CSV") from None
    return out


# --- hits --------------------------------------------------------------------------------------

STRENGTH_LABELS = STRENGTHS


def filter_hits(
    hits: Iterable[Mapping[str, Any]], *, peer: str = "", key_type: str = "", min_strength: int = 0
) -> list[Mapping[str, Any]]:
    return [
        h
        for h in hits
        if (not peer or h["peer"] == peer)
        and (not key_type or key_type in h["key_types"])
        and int(h["strength"]) >= min_strength
    ]


def csv_cell(value: object) -> str:
    """A CSV cell that a spreadsheet will not run as a formula."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def hits_csv(query: Mapping[str, Any], hits: Iterable[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(
        [
            "query",
            "case_ref",
            "peer",
            "local_ref",
            "name",
            "key_types",
            "strength",
            "strength_label",
        ]
    )
    for h in hits:
        w.writerow(
            [
                csv_cell(query["id"]),
                csv_cell(query["case_ref"]),
                csv_cell(h["peer"]),
                csv_cell(h["local_ref"]),
                csv_cell(h["name"]),
                csv_cell(";".join(h["key_types"])),
                csv_cell(h["strength"]),
                STRENGTH_LABELS.get(int(h["strength"]), ""),
            ]
        )
    return buf.getvalue()


# --- disclosures -------------------------------------------------------------------------------


def key_type_name(code: int) -> str:
    from fiumatch.identifiers import KeyType

    try:
        return KeyType.from_code(code).value
    except FiumatchError:
        return f"type-{code}"


# --- audit log -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogHealth:
    """The stored log checked against itself: every leaf hash recomputed from its entry, the
    root from the leaves equal to the root from the stored tree nodes, and the latest signed
    checkpoint (if any) verified and proved consistent with the log now."""

    size: int
    root: str
    first_bad_leaf: int | None
    bad_leaf_reason: str
    tree_ok: bool
    tree_reason: str
    checkpoint_size: int | None = None
    checkpoint_time: str = ""
    checkpoint_ok: bool | None = None
    checkpoint_reason: str = ""

    @property
    def ok(self) -> bool:
        return self.first_bad_leaf is None and self.tree_ok and self.checkpoint_ok is not False


class _Unhealthy(Exception):
    pass


def log_health(store: Store, note: str | bytes | None, log_key: NoteVerifier | None) -> LogHealth:
    """Recompute the stored log: each leaf hash from its entry, the root from the leaves
    against the root from the stored tree nodes, and the signed checkpoint ``note`` (the
    node's latest) verified with ``log_key`` and proved consistent with the log now."""
    audit = store.audit
    size = audit.size()
    hashes: list[bytes] = []
    bad: int | None = None
    reason = ""
    for leaf in audit.leaves(0, size):
        if bad is None:
            try:
                check_entry(leaf.entry)
            except AuditLogError as exc:
                bad, reason = leaf.seq, f"entry does not decode: {exc.reason}"
            else:
                if leaf.seq != len(hashes):
                    bad, reason = len(hashes), "sequence numbers have a gap"
                elif leaf_hash(leaf.entry) != leaf.leaf_hash:
                    bad, reason = leaf.seq, "stored leaf hash differs from the entry's hash"
        hashes.append(leaf.leaf_hash)
    root = root_from_leaf_hashes(hashes)

    def get_node(level: int, index: int) -> bytes:
        node = audit.node(level, index)
        if node is None:
            raise KeyError((level, index))
        return node

    tree_ok, tree_reason = True, ""
    try:
        if size and root_at(size, get_node) != root:
            tree_ok, tree_reason = False, "the stored tree nodes give another root"
    except AuditLogError as exc:
        tree_ok, tree_reason = False, exc.reason
    if note is None:
        return LogHealth(size, root.hex(), bad, reason, tree_ok, tree_reason)
    ok, why, signed_size = True, "", None
    try:
        if log_key is None:
            raise _Unhealthy("no key to verify the checkpoint with")
        signed = open_checkpoint(note, log_key)
        signed_size = signed.size
        if signed.size > size:
            raise _Unhealthy("the checkpoint is larger than the stored log")
        if signed.size and root_at(signed.size, get_node) != signed.root:
            raise _Unhealthy("the signed root differs from the stored tree")
        if 0 < signed.size < size:
            proof = consistency_proof(signed.size, size, get_node)
            verify_consistency(signed.size, size, signed.root, root, proof)
    except AuditLogError as exc:
        ok, why = False, exc.reason
    except _Unhealthy as exc:
        ok, why = False, str(exc)
    if signed_size is None:
        try:
            signed_size = peek_checkpoint(note).size
        except AuditLogError:
            signed_size = -1
    return LogHealth(size, root.hex(), bad, reason, tree_ok, tree_reason, signed_size, "", ok, why)


@dataclass(frozen=True)
class LogFilter:
    peer: str = ""
    session: str = ""
    event: str = ""
    since: date | None = None
    until: date | None = None


def filter_entries(entries: Iterable[Mapping[str, Any]], f: LogFilter) -> list[Mapping[str, Any]]:
    lo = None if f.since is None else datetime.combine(f.since, datetime.min.time(), UTC)
    hi = None if f.until is None else datetime.combine(f.until, datetime.min.time(), UTC)
    lo_ms = None if lo is None else int(lo.timestamp() * 1000)
    hi_ms = None if hi is None else int((hi + timedelta(days=1)).timestamp() * 1000)
    out = []
    for e in entries:
        if f.peer and e.get("peer") != f.peer:
            continue
        if f.session and not str(e.get("session", "")).startswith(f.session):
            continue
        if f.event and e.get("event") != f.event:
            continue
        t = int(str(e["time_ms"]))
        if lo_ms is not None and t < lo_ms:
            continue
        if hi_ms is not None and t >= hi_ms:
            continue
        out.append(e)
    return out


@dataclass
class DayActivity:
    day: date
    sessions_out: int = 0
    sessions_in: int = 0
    evaluations: int = 0
    refusals: int = 0


@dataclass
class PeerActivity:
    peer: str
    budget: int | None
    days: list[DayActivity] = field(default_factory=list)

    @property
    def peak(self) -> int:
        return max([d.evaluations for d in self.days] + [self.budget or 0, 1])


def daily_activity(
    entries: Iterable[Mapping[str, Any]],
    peers: Sequence[str],
    budgets: Mapping[str, int | None],
    *,
    today: date,
    days: int = 14,
) -> list[PeerActivity]:
    """Per peer and day (UTC) over the last ``days`` days: sessions we opened with the peer,
    sessions it opened with us, OPRF evaluations we performed for it (what its budget pays
    for) and our refusals."""
    first = today - timedelta(days=days - 1)
    table = {
        p: PeerActivity(
            p, budgets.get(p), [DayActivity(first + timedelta(days=i)) for i in range(days)]
        )
        for p in peers
    }
    for e in entries:
        peer = e.get("peer")
        if peer not in table:
            continue
        day = datetime.fromtimestamp(int(str(e["time_ms"])) / 1000, tz=UTC).date()
        i = (day - first).days
        if not 0 <= i < days:
            continue
        bucket = table[str(peer)].days[i]
        event, direction = e.get("event"), e.get("direction")
        if event == "session_opened":
            if direction == "out":
                bucket.sessions_out += 1
            elif direction == "in":
                bucket.sessions_in += 1
        elif event == "evaluation" and direction == "in":
            bucket.evaluations += int(str(e.get("count_in", 0)))
        elif event == "refusal" and direction == "in":
            bucket.refusals += 1
    return [table[p] for p in peers]


# --- uploaded bundles ----------------------------------------------------------------------------


def bundle_origin(data: bytes) -> str:
    """The origin in a bundle's header (to name the key that must have signed it)."""
    for rec in iter_records(data):
        if rec.kind == RecordKind.HEADER:
            return BundleHeader.decode(rec.payload).origin
        break
    raise BundleFormatError("the bundle has no header", location="bundle header")


@dataclass(frozen=True)
class BundleCheck:
    """The outcome of verifying one uploaded bundle."""

    ok: bool
    origin: str = ""
    report: VerifyReport | None = None
    error: str = ""
    error_code: str = ""
    location: str = ""
    expected: str = ""
    found: str = ""

    @property
    def first_time(self) -> str:
        t = self.report.first_time_ms if self.report else None
        return "" if t is None else utc(t / 1000)

    @property
    def last_time(self) -> str:
        t = self.report.last_time_ms if self.report else None
        return "" if t is None else utc(t / 1000)


def verify_bundle(
    data: bytes,
    key_for: Callable[[str], NoteVerifier],
    *,
    peer_keys: Sequence[NoteVerifier] = (),
    cosigners: Sequence[CosignatureVerifier] = (),
) -> BundleCheck:
    """Verify ``data`` with the key ``key_for(origin)`` names (receipts in it against
    ``peer_keys``, cosignatures on its checkpoints against ``cosigners``); every failure
    becomes a :class:`BundleCheck` carrying the verifier's location, expected and found."""
    origin = ""
    try:
        origin = bundle_origin(data)
        report = verify(data, key_for(origin), peer_keys=peer_keys, cosigners=cosigners)
    except AuditLogError as exc:
        details = exc.details
        return BundleCheck(
            ok=False,
            origin=origin,
            error=exc.reason,
            error_code=exc.code,
            location=str(details.get("location", "")),
            expected=_short(details.get("expected")),
            found=_short(details.get("found")),
        )
    return BundleCheck(ok=True, origin=origin, report=report)


def _short(value: object) -> str:
    return "" if value is None else str(value)[:200]


@dataclass(frozen=True)
class ReconcileView:
    a: BundleCheck
    b: BundleCheck
    report: ReconcileReport | None = None


def reconcile_bundles(
    a_data: bytes,
    a_key: Callable[[str], NoteVerifier],
    b_data: bytes,
    b_key: Callable[[str], NoteVerifier],
    *,
    a_name: str | None,
    b_name: str | None,
    peer_keys: Sequence[NoteVerifier] = (),
    cosigners: Sequence[CosignatureVerifier] = (),
) -> ReconcileView:
    """Verify both bundles (each with its own key), then compare what each logged about the
    exchanges between them (``a_name``/``b_name``: the peer id each side uses for the other)."""
    a = verify_bundle(a_data, a_key, peer_keys=peer_keys, cosigners=cosigners)
    b = verify_bundle(b_data, b_key, peer_keys=peer_keys, cosigners=cosigners)
    if not (a.ok and b.ok):
        return ReconcileView(a, b)
    report = reconcile(decode_bundle(a_data), decode_bundle(b_data), a_name=a_name, b_name=b_name)
    return ReconcileView(a, b, report)
