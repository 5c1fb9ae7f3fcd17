"""Application services of an FIU node: they tie the store, the protocol core and the identifiers
together, and they are the only place that decides anything (agreements, budgets, roles, epochs).

Owns: the owner side of PSI sessions (state machines kept per session, fed with wire frames),
the querier side (analyst queries fanned out to peers, with per-peer progress), epochs
(derivation, background precompute, rotation, retirement), retention purges and the disclosure
workflow with its onward-dissemination consent. Every event it decides on is recorded through
the one audit seam, :class:`fiumatch.node.audit.AuditSink` (owned by :mod:`fiumatch.node.audit`;
the service creates it with the ``[audit]`` settings). Settings come from
:mod:`fiumatch.node.settings` and the node directory from :mod:`fiumatch.node.directory`; this
module reads no file.

Must never: re-implement protocol maths (it drives ``fiumatch.protocol`` machines); log or
audit an identifier, a match key, a blinded element or an OPRF output; take time or randomness
from anywhere but the injected ``clock`` and ``rng``. Routes stay thin: they parse, call one
method here and let typed errors travel to the single handler in ``app.py``.
"""

from __future__ import annotations

import base64
import binascii
import concurrent.futures
import contextlib
import hashlib
import json
import logging
import os
import re
import struct
import threading
import unicodedata
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fiumatch.engine import SerialExecutor, build_epoch_ledger
from fiumatch.engine.executors import StreamingExecutor
from fiumatch.errors import FiumatchError
from fiumatch.node.audit import AuditSink
from fiumatch.node.errors import (
    AgreementRefusedError,
    BadRequestError,
    BadTokenError,
    BudgetExhaustedError,
    ConflictError,
    EpochRetiredError,
    FilterNotYoursError,
    FingerprintMismatchError,
    NodeError,
    NotFoundError,
    PeerRefusedError,
    PermissionDeniedError,
)
from fiumatch.node.httpsig import VerifyPolicy
from fiumatch.node.keys import NodeKeys, fingerprint, public_key_from_raw
from fiumatch.node.outindex import OutputIndex, RefPacker, build_index, filter_index
from fiumatch.node.pump import PeerProgress, pump
from fiumatch.node.settings import Settings
from fiumatch.protocol import oprf
from fiumatch.protocol.filters import FilterLedger, FilterReplica
from fiumatch.protocol.keys import derive_epoch_key
from fiumatch.protocol.sessions import (
    CardinalityOwner,
    CardinalityQuerier,
    FilterOwner,
    FilterQuerier,
    MutualOwner,
    MutualQuerier,
    SessionMachine,
)
from fiumatch.protocol.wire import (
    NO_FILTER_ID,
    FrameReader,
    Hello,
    Limits,
    MsgType,
    Suite,
    decode_frame,
)
from fiumatch.store import (
    Agreement,
    BudgetCharge,
    Disclosure,
    Epoch,
    EpochBlob,
    Hit,
    Peer,
    Query,
    QueryResult,
    RecordConflictError,
    SessionRecord,
    Store,
    User,
    issue_token,
)
from fiumatch.store import Subject as StoredSubject
from fiumatch.store.subjects import KeySelection
from fiumatch.store.subjects import MatchKey as StoredKey

__all__ = [
    "MODES",
    "PURPOSES",
    "STRENGTHS",
    "AuditSink",
    "EpochRetiredError",
    "NodeService",
    "PeerProgress",
    "PeerRefusedError",
    "check_agreement",
    "pump",
    "to_stored",
]

Clock = Callable[[], float]
Rng = Callable[[int], bytes]

MODES = ("filter", "mutual", "cardinality")
PURPOSES = ("money_laundering", "terrorist_financing", "predicate_offence")
STRENGTHS = {1: "phonetic", 2: "composite", 3: "strong"}
"""Strength codes of ``fiumatch.identifiers.Strength`` as the words analysts see."""
PASTED_SOURCE = "analyst-paste"
SUITE = Suite.VOPRF_RISTRETTO255_SHA512
FP_RATE = 1e-6
_SERIAL = SerialExecutor()
INDEX_KIND = "output-index"
FILTER_KIND = "filter-objects"
QUERY_READERS = ("analyst", "supervisor", "auditor")
"""Roles that may read a query (``get_query``)."""
HITS_PAGE = 1000
SMALL_RESULT = 4096
"""Matched keys up to which a peer's hits are stored in the commit of its hit_count entry; a
larger result is streamed into the store in a transaction of its own."""
"""Hits ``get_query`` returns by default (``hit_total`` says how many there are)."""
"""Element chunks sent per HTTP request by a querier: a long run reports progress per batch."""
ABORTED_REASON = "aborted: the node restarted while the query ran"
_log = logging.getLogger("fiumatch.node.service")
_U32 = struct.Struct(">I")


def _opening_frames(meta: Mapping[str, Any]) -> tuple[bytes | None, int | None]:
    """The optional first frames of an open request (``frames``, base64, built for epoch
    ``frames_epoch``; SPEC §14.4.1); :class:`BadRequestError` if malformed."""
    raw, epoch = meta.get("frames"), meta.get("frames_epoch")
    if raw is None and epoch is None:
        return None, None
    if not isinstance(raw, str) or type(epoch) is not int or epoch < 0:
        raise BadRequestError("frames must be base64 text with an integer frames_epoch")
    try:
        return base64.b64decode(raw, validate=True), epoch
    except (binascii.Error, ValueError):
        raise BadRequestError("frames must be base64 text") from None


def _close_quietly(client: Any) -> None:
    """Close a peer client (a test's stand-in may have no ``close``)."""
    close = getattr(client, "close", None)
    if callable(close):
        with contextlib.suppress(Exception):
            close()


def _token(value: str) -> str:
    """An audit token: keep [A-Za-z0-9._:/-], at most 64 characters."""
    cleaned = re.sub(r"[^A-Za-z0-9._:/-]", "-", value).lstrip("._:/-") or "x"
    return cleaned[:64]


def _text(value: str, default: str | None = None) -> str | None:
    """Free text as an audit entry takes it: NFC, no control characters, trimmed, <= 256."""
    cleaned = "".join(
        " " if unicodedata.category(c)[0] == "C" else c for c in unicodedata.normalize("NFC", value)
    )
    cleaned = cleaned[:256].strip()
    return cleaned or default


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


_EMPTY_DIGEST = hashlib.sha256(b"").digest()


def _onward_session(disclosure_id: str) -> str:
    """The audit ``session`` of an onward-dissemination exchange: the disclosure's id with an
    ``:onward`` suffix, so both nodes log the consent request and decision as their own
    exchange, told apart from the disclosure itself."""
    return f"{disclosure_id}:onward"


# --------------------------------------------------------------------------------------------
# Agreements


def check_agreement(
    agreements: Sequence[Agreement],
    *,
    now: int,
    mode: str,
    purpose: str,
    id_types: Iterable[str],
    set_size: int,
    proofs: bool | None = None,
) -> Agreement:
    """The first agreement permitting the request, or ``AgreementRefusedError`` naming the
    clause of the closest one that refused (``no_agreement``, ``validity``, ``mode``,
    ``proofs``, ``purpose``, ``id_type``, ``set_size``). ``proofs`` (filter mode): whether the
    querier asks for VOPRF proofs; the agreement must say the same (None: not checked)."""
    if not agreements:
        raise AgreementRefusedError("no agreement with this peer", clause="no_agreement")
    types = set(id_types)
    refusal: AgreementRefusedError | None = None
    for a in agreements:
        if not a.in_force(now):
            err = AgreementRefusedError("the agreement is not in force now", clause="validity")
        elif mode not in a.modes:
            err = AgreementRefusedError("the agreement does not allow this mode", clause="mode")
        elif mode == "filter" and proofs is not None and proofs != a.proofs:
            err = AgreementRefusedError(
                "the agreement says VOPRF proofs are "
                + ("required" if a.proofs else "off")
                + " in filter mode",
                clause="proofs",
                proofs=a.proofs,
            )
        elif purpose not in a.purposes:
            err = AgreementRefusedError(
                "the agreement does not allow this purpose", clause="purpose"
            )
        elif not types or not types <= set(a.identifier_types):
            err = AgreementRefusedError(
                "the agreement does not allow these identifier types", clause="id_type"
            )
        elif set_size > a.max_set_size:
            err = AgreementRefusedError(
                "the set is larger than the agreement allows per session",
                clause="set_size",
                max_set_size=a.max_set_size,
            )
        else:
            return a
        order = ("validity", "mode", "proofs", "purpose", "id_type", "set_size")
        if refusal is None or order.index(err.clause) > order.index(refusal.clause):
            refusal = err
    assert refusal is not None
    raise refusal


# --------------------------------------------------------------------------------------------
# Small records


@dataclass
class _LiveSession:
    machine: SessionMachine
    peer_id: str
    mode: str
    epoch: int
    agreement_id: str
    purpose: str
    id_types: tuple[str, ...]
    set_size: int
    last_seen: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    served_types: frozenset[int] = frozenset()
    """Mutual mode: the key types served in this session (the hits are looked up by them)."""


_Querier = FilterQuerier | MutualQuerier | CardinalityQuerier


def _key_type_name(code: int) -> str:
    from fiumatch.identifiers import KeyType

    try:
        return KeyType.from_code(code).value
    except FiumatchError:
        return f"type-{code}"


def _key_type_code(name: str) -> int | None:
    from fiumatch.identifiers import KeyType

    try:
        return KeyType(name).code
    except ValueError:
        return None


def _mutual_token(session_id: bytes, key: bytes) -> bytes:
    return hashlib.sha256(b"fiumatch-mutual-hit-v1" + session_id + key).digest()


def _stored_token(core: bytes, epoch: int) -> bytes:
    """A hit token as both sides store it: the OPRF output (filter) or the shared mutual token,
    then the key epoch (8 bytes). The owner resolves it; it names nothing by itself."""
    return core + epoch.to_bytes(8, "big")


def _split_token(stored: bytes) -> tuple[bytes, int]:
    return stored[:-8], int.from_bytes(stored[-8:], "big")


def _encode_objects(objects: Sequence[bytes]) -> bytes:
    return b"".join(_U32.pack(len(o)) + o for o in objects)


def _decode_objects(data: bytes) -> list[bytes]:
    objects, pos = [], 0
    while pos < len(data):
        (n,) = _U32.unpack_from(data, pos)
        objects.append(data[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return objects


def _build_ledger(epoch: int, outputs: Sequence[bytes]) -> FilterLedger:
    return FilterLedger.bloom(
        outputs, suite=SUITE, epoch=epoch, fp_rate=FP_RATE, capacity=max(1, len(outputs))
    )


# --------------------------------------------------------------------------------------------
# The service


@dataclass
class _Finish:
    """Setting a query's final status, which the commit of its only peer's hit_count entry may
    make (``done`` once that commit returned); else the query's thread makes it after."""

    write: Callable[[], None]
    done: bool = False


@dataclass
class _EarlyStart:
    """A querier machine started before its session opened, for the epoch of the replica kept
    for the peer: its first frames (the HELLO) go with the open request (SPEC §14.4.1)."""

    epoch: int
    epoch_pk: bytes
    replica: FilterReplica
    machine: _Querier
    frames: bytes

    def fields(self) -> dict[str, Any]:
        """The open request's extra fields."""
        return {"frames": base64.b64encode(self.frames).decode("ascii"), "frames_epoch": self.epoch}

    def answer(self, opened: Mapping[str, Any]) -> bytes | None:
        """The owner's answer to the early frames, if it fed them: the session is bound to our
        epoch under the key we pinned for it. None if it ignored them (another epoch: this
        machine is dropped and a new one sends its HELLO as usual)."""
        raw = opened.get("frames")
        if raw is None or opened.get("epoch") != self.epoch:
            return None
        if not isinstance(raw, str) or opened.get("public_key") != self.epoch_pk.hex():
            raise ConflictError("the peer answered the opening frames under another key")
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise ConflictError("the peer's answer to the opening frames is not base64") from None


class NodeService:
    """Everything a node does, behind methods the routes call."""

    def __init__(
        self,
        *,
        settings: Settings,
        keys: NodeKeys,
        store: Store,
        clock: Clock,
        rng: Rng,
        peer_client_factory: Callable[[Peer], Any] | None = None,
    ) -> None:
        self.settings = settings
        self.node_id = settings.node_id
        self.keys = keys
        self.store = store
        self.clock = clock
        self.rng = rng
        self.verify_policy = VerifyPolicy(
            skew=settings.signature_skew_seconds,
            max_lifetime=settings.signature_max_lifetime_seconds,
        )
        self.audit = AuditSink(
            store,
            clock,
            node_id=self.node_id,
            key=keys.identity,
            checkpoint_every=settings.audit_checkpoint_every,
            checkpoint_seconds=settings.audit_checkpoint_seconds,
        )
        self._live: dict[str, _LiveSession] = {}
        self._live_lock = threading.Lock()
        self._ledgers: dict[tuple[str, int], FilterLedger] = {}
        self._epoch_lock = threading.RLock()
        self._purges = 0
        self._progress: dict[str, dict[str, PeerProgress]] = {}
        # Filter replicas kept between queries, per (peer, epoch), with the pinned key they
        # came under: a session starts from a copy (HELLO names its filter id and generation,
        # so the owner sends only what it lacks) and stores its copy back when it succeeds.
        self._replicas: dict[tuple[str, int], tuple[bytes, FilterReplica, bytes]] = {}
        self._replica_lock = threading.Lock()
        # Queries running in this process and who waits for them to settle (on_settled).
        self._running: dict[str, list[Callable[[], None]]] = {}
        self._finishers: dict[str, _Finish] = {}
        self._settle_lock = threading.Lock()
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=8)
        # A query's per-peer runs get their own pool: submitted from a worker of _executor
        # and waited for there, they deadlocked it once 8 queries ran at once (every worker
        # waiting on peer runs queued behind them; found by benchmarks/load.py).
        self._peer_executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=16, thread_name_prefix="fiumatch-peer"
        )
        # Per-chunk cryptography of big sets runs on a process pool (one worker per core by
        # default), started on first use; small sets stay in the calling thread, where a pool
        # round trip would cost more than the work. Epoch encoding goes to a Dask cluster when
        # compute.dask_scheduler names one.
        self._compute: StreamingExecutor | None = None
        self._dask: StreamingExecutor | None = None
        self._compute_lock = threading.Lock()
        if peer_client_factory is None:
            from fiumatch.client.peer import PeerClient

            def factory(peer: Peer) -> Any:
                return PeerClient(
                    own_id=self.node_id,
                    key=self.keys.identity,
                    peer=peer,
                    clock=self.clock,
                    rng=self.rng,
                    audit=self.audit,
                    timeout=settings.peer_timeout_seconds,
                    connect_retries=settings.peer_connect_retries,
                )

            peer_client_factory = factory
        self._peer_client = peer_client_factory
        # One client per peer (pinned id, URL and key), kept between sessions: its HTTP/TLS
        # connection is reused, so a query pays no handshake (issue #6). A revoked or re-pinned
        # peer's client is closed; the rest close with the service.
        self._clients: dict[tuple[str, str, bytes], Any] = {}
        self._clients_lock = threading.Lock()
        # Session machines live in memory: sessions a previous process left open cannot go on.
        now = self.now()
        self.store.sessions.expire_idle(idle_since=now + 1, state="aborted", now=now)
        self.recovered: list[dict[str, Any]] = self._recover_interrupted()

    def _recover_interrupted(self) -> list[dict[str, Any]]:
        """What a previous process left half done (a crash, ``kill -9``), settled at startup:
        a query still running is aborted (each peer without a result gets one saying so, the
        query becomes ``failed``); of the epochs left ``preparing`` per peer, the newest is
        resumed in the background (precomputed, then activated as a rotation would) and any
        older one is discarded (retired). Each action is logged by id, never with data."""
        now = self.now()
        actions: list[dict[str, Any]] = []
        for q in self.store.queries.unfinished():
            have = {r.peer_id for r in self.store.queries.results(q.id)}
            for peer in self.store.peers.list_all():
                if peer.node_id not in have:
                    self._record_peer(q.id, peer.node_id, "unreachable", ABORTED_REASON)
            with contextlib.suppress(RecordConflictError):
                self.store.queries.set_status(q.id, "failed", now=now)
            self._settle(q.id)
            actions.append({"query": q.id, "action": "aborted"})
        for peer in self.store.peers.list_all():
            preparing = [
                e
                for e in self.store.epochs.list_all(peer.node_id, "local")
                if e.state == "preparing"
            ]
            active = self.store.epochs.active(peer.node_id, "local")
            for e in preparing:
                newest = e is preparing[-1] and (active is None or e.epoch > active.epoch)
                if newest:
                    self._executor.submit(
                        self._finish_rotation, "startup-recovery", peer.node_id, 0, e.epoch
                    )
                else:
                    self.store.epochs.retire(peer.node_id, "local", e.epoch, now=now)
                action = "resumed" if newest else "discarded"
                actions.append({"peer": peer.node_id, "epoch": e.epoch, "action": action})
        for a in actions:
            _log.warning("startup recovery: %s", " ".join(f"{k}={v}" for k, v in a.items()))
        return actions

    def now(self) -> int:
        return int(self.clock())

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._peer_executor.shutdown(wait=True, cancel_futures=True)
        self._drop_clients(None)
        with self._compute_lock:
            for ex in (self._compute, self._dask):
                if ex is not None:
                    ex.close()
            self._compute = self._dask = None

    def compute_for(self, elements: int, *, epoch: bool = False) -> StreamingExecutor:
        """Where the cryptography of a job over ``elements`` runs: the calling thread below
        ``compute.parallel_min_elements`` (or with ``compute.workers = 1``), else the node's
        process pool; epoch encoding (``epoch``) on the Dask cluster when one is configured."""
        s = self.settings
        if epoch and s.compute_dask_scheduler:
            with self._compute_lock:
                if self._dask is None:
                    from fiumatch.engine import DaskChunkExecutor

                    self._dask = DaskChunkExecutor(s.compute_dask_scheduler)
                return self._dask
        workers = s.compute_workers or (os.cpu_count() or 1)
        if workers <= 1 or elements < s.compute_parallel_min_elements:
            return _SERIAL
        with self._compute_lock:
            if self._compute is None:
                from fiumatch.engine import ProcessPoolChunkExecutor

                self._compute = ProcessPoolChunkExecutor(workers)
            return self._compute

    # -- identity -----------------------------------------------------------------------------

    def well_known(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "url": self.settings.base_url,
            "public_key": self.keys.public_key_raw.hex(),
            "fingerprint": self.keys.fingerprint,
            "protocol_version": 1,
            "modes": list(MODES),
        }

    # -- users --------------------------------------------------------------------------------

    def authenticate(self, token: str) -> User:
        user = self.store.users.authenticate(token)
        if user is None or not user.active:
            raise BadTokenError("the bearer token is unknown, disabled or wrong")
        return user

    @staticmethod
    def require_role(user: User, *roles: str) -> None:
        if user.role not in roles and user.role != "admin":
            raise PermissionDeniedError("your role does not allow this", role=user.role)

    def add_user(self, actor: User, name: str, role: str) -> str:
        self.require_role(actor, "admin")
        if role not in ("analyst", "supervisor", "auditor", "admin"):
            raise PermissionDeniedError("unknown role")
        token = issue_token(self.rng)
        try:
            self.store.users.add(
                User(
                    name=name,
                    role=role,  # type: ignore[arg-type]
                    token_id=token.token_id,
                    token_hash=token.token_hash,
                    created_at=self.now(),
                )
            )
        except RecordConflictError:
            raise ConflictError("a user with that name exists") from None
        self.audit.record(
            "role_changed",
            actor=actor.name,
            extra={"target": _token(name), "role": role, "change": "created"},
        )
        return token.token

    def disable_user(self, actor: User, name: str) -> User:
        """An admin disables a user: its token stops working at once, and with it the user's
        web sessions (they re-read the user on every request). Audited as ``role_changed``
        with change ``suspended``. An admin cannot disable their own account."""
        self.require_role(actor, "admin")
        if name == actor.name:
            raise ConflictError("you cannot disable your own account")
        user = self.store.users.get(name)
        if user is None:
            raise NotFoundError("no such user")
        if not user.active:
            raise ConflictError("the user is already disabled")
        self.store.users.disable(name, now=self.now())
        self.audit.record(
            "role_changed",
            actor=actor.name,
            extra={"target": _token(name), "role": user.role, "change": "suspended"},
        )
        return self.store.users.require(name)

    # -- peers and agreements -------------------------------------------------------------------

    def add_peer(self, actor: User, node_id: str, url: str, expected_fingerprint: str) -> Peer:
        """Pin a peer after the out-of-band fingerprint check (as for SSH host keys): the key
        the URL announces must have exactly the fingerprint the operator was given."""
        from fiumatch.client.peer import PeerError, fetch_well_known

        self.require_role(actor, "admin")
        if not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+(/[\x21-\x7e]*)?", url):
            raise BadRequestError("the peer URL must be http(s)://host[:port][/path]")
        try:
            info = fetch_well_known(url)
            raw = bytes.fromhex(str(info["public_key"]))
            actual = fingerprint(raw)
        except PeerError:
            raise PeerRefusedError(
                "the peer's URL could not be reached", peer_code="unreachable"
            ) from None
        except (KeyError, ValueError):
            raise ConflictError("the peer's URL does not describe a fiumatch node") from None
        if actual != expected_fingerprint.strip():
            raise FingerprintMismatchError(
                "the key this URL announces does not have the fingerprint you were given; "
                "nothing was pinned. Check the fingerprint with the peer out of band.",
                announced=actual,
            )
        if info.get("node_id") != node_id:
            raise ConflictError("the peer announces another node id", announced=info.get("node_id"))
        peer = Peer(
            node_id=node_id,
            url=url.rstrip("/"),
            public_key=raw,
            fingerprint=actual,
            added_at=self.now(),
        )
        try:
            self.store.peers.add(peer)
        except RecordConflictError:
            raise ConflictError("that peer id or key is already pinned") from None
        self.audit.record(
            "peer_changed",
            actor=actor.name,
            peer=node_id,
            extra={"change": "created", "object_sha256": _digest(raw)},
        )
        self.ensure_epoch(node_id)
        return peer

    def list_peers(self) -> list[Peer]:
        return self.store.peers.list_all()

    def add_agreement(
        self,
        actor: User,
        *,
        peer_id: str,
        modes: Sequence[str],
        purposes: Sequence[str],
        identifier_types: Sequence[str],
        budget_per_epoch: int,
        max_set_size: int,
        valid_from: int,
        valid_until: int,
        proofs: bool = True,
    ) -> Agreement:
        self.require_role(actor, "admin")
        self._require_peer(peer_id)
        bad = [m for m in modes if m not in MODES] + [p for p in purposes if p not in PURPOSES]
        bad += [t for t in identifier_types if _key_type_code(t) is None]
        if bad or not modes or not purposes or not identifier_types:
            raise ConflictError("unknown or empty mode, purpose or identifier type", bad=bad)
        if valid_until <= valid_from:
            raise ConflictError("an agreement must end after it starts")
        document = {
            "peer": peer_id,
            "modes": sorted(modes),
            "purposes": sorted(purposes),
            "identifier_types": sorted(identifier_types),
            "budget_per_epoch": budget_per_epoch,
            "max_set_size": max_set_size,
            "valid_from": valid_from,
            "valid_until": valid_until,
            "proofs": proofs,
        }
        signed = json.dumps(document, sort_keys=True, separators=(",", ":"))
        agreement = Agreement(
            id="agr-" + self.rng(6).hex(),
            peer_id=peer_id,
            modes=tuple(sorted(modes)),
            purposes=tuple(sorted(purposes)),
            identifier_types=tuple(sorted(identifier_types)),
            budget_per_epoch=budget_per_epoch,
            max_set_size=max_set_size,
            valid_from=valid_from,
            valid_until=valid_until,
            signed_json=signed,
            created_at=self.now(),
            proofs=proofs,
        )
        self.store.agreements.add(agreement)
        self.audit.record(
            "agreement_changed",
            actor=actor.name,
            peer=peer_id,
            agreement_id=agreement.id,
            extra={"change": "created", "object_sha256": _digest(signed.encode())},
        )
        # The served set depends on the allowed identifier types: rebuild this epoch's index.
        self._refresh_precompute(peer_id)
        return agreement

    def list_agreements(self) -> list[Agreement]:
        return [
            a
            for p in self.store.peers.list_all()
            for a in self.store.agreements.list_for_peer(p.node_id)
        ]

    def revoke_peer(self, actor: User, peer_id: str) -> Peer:
        """An admin revokes a pinned peer: its signatures are refused from now on, the sessions
        it holds open are aborted, and no query goes to it. Audited (``peer_changed``,
        ``revoked``). A revoked peer stays listed; it is not pinned again under that id."""
        self.require_role(actor, "admin")
        peer = self.store.peers.get(peer_id)
        if peer is None:
            raise NotFoundError("no such peer")
        if not peer.active:
            raise ConflictError("the peer is already revoked")
        self.store.peers.revoke(peer_id, now=self.now())
        self.audit.record(
            "peer_changed",
            actor=actor.name,
            peer=peer_id,
            extra={"change": "revoked", "object_sha256": _digest(peer.public_key)},
        )
        self._abort_live(lambda live: live.peer_id == peer_id)
        self._drop_replicas(peer_id)  # never used again (the key check fails), so never kept
        self._drop_clients(peer_id)
        return self.store.peers.require(peer_id)

    def revoke_agreement(self, actor: User, agreement_id: str) -> Agreement:
        """An admin revokes an agreement: no session opens under it from now on, the sessions
        open under it are aborted, and the sets served to its peer are rebuilt for the
        identifier types still allowed. Audited (``agreement_changed``, ``revoked``)."""
        self.require_role(actor, "admin")
        agreement = self.store.agreements.get(agreement_id)
        if agreement is None:
            raise NotFoundError("no such agreement")
        if agreement.revoked_at is not None:
            raise ConflictError("the agreement is already revoked")
        self.store.agreements.revoke(agreement_id, now=self.now())
        self.audit.record(
            "agreement_changed",
            actor=actor.name,
            peer=agreement.peer_id,
            agreement_id=agreement_id,
            extra={"change": "revoked", "object_sha256": _digest(agreement.signed_json.encode())},
        )
        self._abort_live(lambda live: live.agreement_id == agreement_id)
        peer = self.store.peers.get(agreement.peer_id)
        if peer is not None and peer.active:
            self._refresh_precompute(agreement.peer_id)
        return self.store.agreements.require(agreement_id)

    def _abort_live(self, which: Callable[[_LiveSession], bool]) -> None:
        """Close (``aborted``, audited) the live sessions ``which`` selects."""
        with self._live_lock:
            chosen = [(sid, live) for sid, live in self._live.items() if which(live)]
        for sid, live in chosen:
            self._close_live(sid, live, "aborted")

    def _client_for(self, peer: Peer) -> Any:
        """The client kept for ``peer`` (made by the peer client factory on first use). Its
        connection pool is thread-safe: concurrent sessions with one peer share it. A client
        kept for an older pinning of the same peer id (another URL or key) is closed."""
        key = (peer.node_id, peer.url, peer.public_key)
        with self._clients_lock:
            client = self._clients.get(key)
            if client is not None:
                return client
            stale = [self._clients.pop(k) for k in list(self._clients) if k[0] == peer.node_id]
            client = self._clients[key] = self._peer_client(peer)
        for old in stale:
            _close_quietly(old)
        return client

    def _drop_clients(self, peer_id: str | None) -> None:
        """Close the clients kept for ``peer_id`` (None: every peer)."""
        with self._clients_lock:
            gone = [
                self._clients.pop(k)
                for k in list(self._clients)
                if peer_id is None or k[0] == peer_id
            ]
        for client in gone:
            _close_quietly(client)

    def _require_peer(self, peer_id: str) -> Peer:
        peer = self.store.peers.get(peer_id)
        if peer is None or not peer.active:
            raise NotFoundError("no such peer")
        return peer

    # -- subjects -----------------------------------------------------------------------------

    def load_subjects(self, subjects: Iterable[Any]) -> int:
        """Store identifiers-package subjects with their match keys (the node's own data).
        They join the served sets at the next epoch."""
        count = 0

        def stored() -> Iterator[tuple[StoredSubject, list[StoredKey]]]:
            nonlocal count
            for s in subjects:
                count += 1
                yield to_stored(s)

        self.store.subjects.upsert_many(stored(), now=self.now())
        return count

    def search_subjects(self, user: User, text: str, limit: int = 50) -> dict[str, Any]:
        """Our stored subjects (not analyst-pasted ones) whose reference or display data holds
        ``text``, for an analyst choosing what to query: ``subjects`` (id, local_ref, type,
        name; at most ``limit``, by reference) and ``total``, how many are stored in all."""
        self.require_role(user, "analyst", "supervisor")
        found, total = self.store.subjects.search(
            text, exclude_source=PASTED_SOURCE, limit=max(0, min(limit, 1000))
        )
        return {
            "subjects": [
                {
                    "id": s.id,
                    "local_ref": s.local_ref,
                    "type": s.subject_type,
                    "name": str(s.display.get("name", "")),
                }
                for s in found
            ],
            "total": total,
        }

    def _allowed_type_codes(self, peer_id: str) -> set[int]:
        codes: set[int] = set()
        for a in self.store.agreements.in_force(peer_id, self.now()):
            codes |= {c for c in (_key_type_code(t) for t in a.identifier_types) if c is not None}
        return codes

    # -- epochs -------------------------------------------------------------------------------

    def ensure_epoch(self, peer_id: str) -> Epoch:
        """The active local epoch for ``peer_id`` (epoch 1 created on first use)."""
        with self._epoch_lock:
            active = self.store.epochs.active(peer_id, "local")
            if active is not None:
                return active
            latest = self.store.epochs.latest_number(peer_id, "local") or 0
            self._prepare_epoch(peer_id, latest + 1)
            self.store.epochs.activate(peer_id, "local", latest + 1, now=self.now())
            return self.store.epochs.require(peer_id, "local", latest + 1)

    def _epoch_key(self, peer_id: str, epoch: int) -> oprf.KeyPair:
        return derive_epoch_key(self.keys.oprf_master, peer_id, epoch)

    def _prepare_epoch(self, peer_id: str, epoch: int) -> None:
        """Create the epoch (if new) and precompute what it serves: the OPRF outputs of our keys
        of the allowed types with the subject each came from (the output index), and the
        filter ledger over them, both persisted so a restart re-evaluates nothing."""
        kp = self._epoch_key(peer_id, epoch)
        if self.store.epochs.get(peer_id, "local", epoch) is None:
            self.store.epochs.create(
                Epoch(
                    peer_id=peer_id,
                    side="local",
                    epoch=epoch,
                    public_key=kp.pk,
                    state="preparing",
                    created_at=self.now(),
                )
            )
        purges = self._purges
        # One pass over the rows (key order): the distinct keys as a list of bytes, each row's
        # key as a position, and the rows' refs packed in one bytearray (no object per key: an
        # epoch over 10^6 keys stays a few hundred MB).
        keys: list[bytes] = []
        key_of_row = array("I")
        refs = RefPacker()
        for key, subject_id, key_type, strength in self.store.subjects.key_rows(
            self._allowed_type_codes(peer_id), exclude_source=PASTED_SOURCE
        ):
            if not keys or keys[-1] != key:
                keys.append(key)
            key_of_row.append(len(keys) - 1)
            refs.add(subject_id, key_type, strength)
        # The workers compute the outputs and their Bloom positions; this thread sets the bits
        # as the chunks come back (engine.build_epoch_ledger: the same filter as build_ledger).
        outputs: list[bytes] = []
        ledger: FilterLedger | None = build_epoch_ledger(
            kp,
            keys,
            self.compute_for(len(keys), epoch=True),
            suite=SUITE,
            epoch=epoch,
            fp_rate=FP_RATE,
            on_outputs=outputs.extend,
        )
        del keys
        index = build_index([outputs[i] for i in key_of_row], refs)
        del outputs, refs, key_of_row
        with self._epoch_lock:
            if self._purges != purges:  # a purge ran while we evaluated: leave its subjects out
                subjects = {s for _, s, _, _ in OutputIndex(index).rows()}
                gone = subjects - self.store.subjects.existing(subjects)
                if gone:
                    index, ledger = filter_index(index, gone), None
            self._store_epoch_sets(peer_id, epoch, index, ledger)

    def _store_epoch_sets(
        self, peer_id: str, epoch: int, index: bytes, ledger: FilterLedger | None = None
    ) -> None:
        """Persist an epoch's output index and filter (the filter built from the index unless
        given) and make the filter the one served."""
        if ledger is None:
            ledger = _build_ledger(epoch, OutputIndex(index).distinct_outputs())
        now = self.now()
        with self.store.transaction():
            for kind, data in (
                (INDEX_KIND, index),
                (FILTER_KIND, _encode_objects(ledger.objects())),
            ):
                self.store.epochs.put_blob(
                    EpochBlob(
                        peer_id=peer_id,
                        side="local",
                        epoch=epoch,
                        kind=kind,
                        data=data,
                        created_at=now,
                    )
                )
        self._ledgers[(peer_id, epoch)] = ledger

    def _refresh_precompute(self, peer_id: str) -> None:
        with self._epoch_lock:
            active = self.ensure_epoch(peer_id)
            self._prepare_epoch(peer_id, active.epoch)

    def _ledger(self, peer_id: str, epoch: int) -> FilterLedger:
        """The filter ledger of an epoch: from memory, else restored from its stored objects
        (``FilterLedger.from_objects``: same filter id, so queriers keep their replicas)."""
        cached = self._ledgers.get((peer_id, epoch))
        if cached is not None:
            return cached
        with self._epoch_lock:
            blob = self.store.epochs.get_blob(peer_id, "local", epoch, FILTER_KIND)
            if blob is None:
                self._prepare_epoch(peer_id, epoch)
                return self._ledgers[(peer_id, epoch)]
            ledger = FilterLedger.from_objects(_decode_objects(blob.data))
            self._ledgers[(peer_id, epoch)] = ledger
            return ledger

    def _index_rows(self, peer_id: str, epoch: int) -> list[tuple[bytes, str, int, int]]:
        """Every (output, subject id, key type, strength) an epoch serves (for tests/tools)."""
        blob = self.store.epochs.get_blob(peer_id, "local", epoch, INDEX_KIND)
        return [] if blob is None else list(OutputIndex(blob.data).rows())

    def _output_refs(self, peer_id: str, epoch: int, output: bytes) -> list[tuple[str, int, int]]:
        """Which of our subjects an OPRF output of an epoch came from: (subject id, key type,
        strength) of each, read from the stored output index in place."""
        with self._epoch_lock:
            blob = self.store.epochs.get_blob(peer_id, "local", epoch, INDEX_KIND)
            if blob is None:
                self._prepare_epoch(peer_id, epoch)
                blob = self.store.epochs.get_blob(peer_id, "local", epoch, INDEX_KIND)
                assert blob is not None
        return OutputIndex(blob.data).refs(output)

    def rotate(
        self, actor: str, peer_id: str | None = None, *, wait: bool = True
    ) -> list[dict[str, Any]]:
        """Start a new epoch for one peer (or all): precompute it in the background while the old
        epoch keeps serving, then activate it and retire (destroy) the old one."""
        peers = [self._require_peer(peer_id)] if peer_id else self.store.peers.list_all()
        results: list[dict[str, Any]] = []
        futures = []
        for peer in peers:
            with self._epoch_lock:
                old = self.ensure_epoch(peer.node_id)
                new = (self.store.epochs.latest_number(peer.node_id, "local") or 0) + 1
                kp = self._epoch_key(peer.node_id, new)
                self.store.epochs.create(
                    Epoch(
                        peer_id=peer.node_id,
                        side="local",
                        epoch=new,
                        public_key=kp.pk,
                        state="preparing",
                        created_at=self.now(),
                    )
                )
            futures.append(
                self._executor.submit(self._finish_rotation, actor, peer.node_id, old.epoch, new)
            )
            results.append({"peer": peer.node_id, "old_epoch": old.epoch, "new_epoch": new})
        if wait:
            for f in futures:
                f.result()
        return results

    def _finish_rotation(self, actor: str, peer_id: str, old: int, new: int) -> None:
        self._prepare_epoch(peer_id, new)
        with self._epoch_lock:
            retired = self.store.epochs.activate(peer_id, "local", new, now=self.now())
            if retired is not None:
                self._ledgers.pop((peer_id, retired.epoch), None)
                self._abort_sessions_of(peer_id, retired.epoch)
            self.store.budget.prune_before(new)
        kp = self._epoch_key(peer_id, new)
        # Under each agreement in force with the peer (they share the peer's key epoch), so
        # check_policy follows every agreement's rotations. With none in force the rotation is
        # not logged: no agreement can use that key, and the entry needs an agreement.
        for agreement in self.store.agreements.in_force(peer_id, self.now()):
            self.audit.record(
                "epoch_rotated",
                actor=actor,
                peer=peer_id,
                agreement_id=agreement.id,
                epoch=new,
                extra={"epoch_public_key": kp.pk},
            )

    def rotate_due(self) -> list[dict[str, Any]]:
        """Rotate every peer whose active epoch is older than ``epochs.rotation_seconds``."""
        now = self.now()
        done: list[dict[str, Any]] = []
        for peer in self.store.peers.list_all():
            active = self.store.epochs.active(peer.node_id, "local")
            due = (active.activated_at or 0) + self.settings.epoch_rotation_seconds if active else 0
            if active and due <= now:
                done += self.rotate("scheduler", peer.node_id, wait=True)
        return done

    def _refill_at(self, epoch: Epoch) -> int:
        return (epoch.activated_at or self.now()) + self.settings.epoch_rotation_seconds

    def purge_expired(self, actor: str, today: date | None = None) -> int:
        """Delete subjects past their retention date (keys, hits and all, with secure delete),
        and take them out of every precomputed set at once: the active epoch stops matching
        them now and the next epoch never holds them. Audited (scope ``retention``)."""
        today = today or datetime.fromtimestamp(self.now(), tz=UTC).date()
        with self._epoch_lock:
            gone = set(self.store.subjects.expired_ids(today))
            n = self.store.subjects.purge_expired(today)
            self._purges += 1
            if gone:
                for peer in self.store.peers.list_all():
                    for e in self.store.epochs.list_all(peer.node_id, "local"):
                        if e.state != "retired":
                            self._drop_subjects(peer.node_id, e.epoch, gone)
        self.store.db.checkpoint()
        self.audit.record("purge", actor=actor, extra={"scope": "retention", "records": n})
        return n

    def _drop_subjects(self, peer_id: str, epoch: int, gone: set[str]) -> None:
        blob = self.store.epochs.get_blob(peer_id, "local", epoch, INDEX_KIND)
        if blob is None:
            return
        if any(s in gone for _, s, _, _ in OutputIndex(blob.data).rows()):
            # no OPRF: the outputs are stored
            self._store_epoch_sets(peer_id, epoch, filter_index(blob.data, gone))

    def epochs(self) -> list[dict[str, Any]]:
        out = []
        for peer in self.store.peers.list_all():
            for e in self.store.epochs.list_all(peer.node_id, "local"):
                out.append(
                    {
                        "peer": e.peer_id,
                        "epoch": e.epoch,
                        "state": e.state,
                        "activated_at": e.activated_at,
                        "retired_at": e.retired_at,
                    }
                )
        return out

    # -- owner side of a session --------------------------------------------------------------

    def _refuse(
        self, peer_id: str, session: str | None, err: FiumatchError, digest: bytes, **extra: Any
    ) -> None:
        clause = getattr(err, "clause", None) or (
            "budget"
            if isinstance(err, BudgetExhaustedError)
            else "epoch"
            if isinstance(err, EpochRetiredError)
            else "protocol"
        )
        self.audit.record(
            "refusal",
            actor=self.node_id,
            peer=peer_id,
            session=session or "00" * 16,
            request_digest=digest,
            extra={"direction": "in", "clause": clause, **extra},
        )

    def refuse_unauthenticated(
        self, claimed: str | None, session: str, body: bytes, clause: str = "auth"
    ) -> None:
        """Audit a peer request refused before it was authenticated (the sender is only
        *claimed*): a bad signature (clause ``auth``) or a body over the limit (``protocol``)."""
        self.audit.record(
            "refusal",
            actor=self.node_id,
            peer=claimed or "unknown",
            session=session if re.fullmatch(r"[0-9a-f]{32}", session) else "00" * 16,
            request_digest=_digest(body),
            extra={"direction": "in", "clause": clause},
        )

    def open_session(self, peer_id: str, body: bytes, meta: Mapping[str, Any]) -> dict[str, Any]:
        """A peer asks to open a session: check our agreement and budget, bind an epoch."""
        digest = _digest(body)
        sid = str(meta.get("session_id", ""))
        try:
            if not re.fullmatch(r"[0-9a-f]{32}", sid):
                raise ConflictError("session_id must be 32 hex digits")
            mode = str(meta.get("mode"))
            purpose = str(meta.get("purpose"))
            raw_types = meta.get("id_types", [])
            if not isinstance(raw_types, list) or not all(isinstance(t, str) for t in raw_types):
                raise BadRequestError("id_types must be a list of strings")
            id_types = tuple(raw_types)
            set_size = meta.get("set_size")
            # bool is an int in Python; a float, a string or null would crash int() or compare
            if type(set_size) is not int or set_size < 0:
                raise BadRequestError("set_size must be a non-negative integer")
            proofs = meta.get("proofs", True)
            if type(proofs) is not bool:
                raise BadRequestError("proofs must be true or false")
            first_frames, frames_epoch = _opening_frames(meta)
            peer = self._require_peer(peer_id)
            agreement = check_agreement(
                self.store.agreements.list_for_peer(peer_id),
                now=self.now(),
                mode=mode,
                purpose=purpose,
                id_types=id_types,
                set_size=set_size,
                proofs=proofs,
            )
            if set_size > self.settings.max_set_size:
                raise AgreementRefusedError(
                    "the set is larger than this node accepts per session",
                    clause="set_size",
                    max_set_size=self.settings.max_set_size,
                )
            if self.store.sessions.count_open(peer_id) >= self.settings.session_max_open_per_peer:
                raise ConflictError(
                    "too many open sessions with this peer; finish one first",
                    max_open=self.settings.session_max_open_per_peer,
                )
            epoch = self.ensure_epoch(peer_id)

            def charge_once() -> BudgetCharge:
                """The id check and the charge (caller holds the live lock, in a transaction).
                A reused id or a refused charge writes nothing."""
                if sid in self._live or self.store.sessions.get(sid) is not None:
                    raise ConflictError("that session id is taken")
                charge = self.store.budget.try_consume(
                    peer_id, epoch.epoch, set_size, limit=agreement.budget_per_epoch, now=self.now()
                )
                if not charge.granted:
                    refill = self._refill_at(epoch)
                    raise BudgetExhaustedError(
                        "the OPRF evaluation budget of this epoch is used up",
                        retry_after=refill - self.now(),
                        refill_at=refill,
                        remaining=charge.remaining,
                    )
                return charge

            def build() -> tuple[SessionMachine, frozenset[int]]:
                return self._owner_machine(
                    peer, mode, sid, epoch.epoch, id_types, set_size, proofs=agreement.proofs
                )

            record = SessionRecord(
                id=sid,
                peer_id=peer_id,
                role="responder",
                mode=mode,
                state="start",
                epoch=epoch.epoch,
                created_at=self.now(),
                updated_at=self.now(),
            )
            if mode == "filter":
                # Its machine is cheap to build (key and filter are cached): the charge, the
                # machine and the session record in one transaction (one commit), all or
                # nothing.
                with self._live_lock, self.store.transaction():
                    charge = charge_once()
                    machine, served_types = build()
                    self.store.sessions.create(record)
            else:
                # The others select every key served to the peer first: charged first (a
                # refused open does no such work), the record once the machine is ready.
                with self._live_lock, self.store.transaction():
                    charge = charge_once()
                machine, served_types = build()
                with self._live_lock:
                    if sid in self._live or self.store.sessions.get(sid) is not None:
                        raise ConflictError("that session id is taken")
                    self.store.sessions.create(record)
        except (
            AgreementRefusedError,
            BudgetExhaustedError,
            NotFoundError,
            ConflictError,
            BadRequestError,
        ) as err:
            self._refuse(
                peer_id,
                sid if len(sid) == 32 else None,
                err,
                digest,
                mode=_token(str(meta.get("mode", "x"))),
            )
            raise
        live = _LiveSession(
            machine=machine,
            peer_id=peer_id,
            mode=mode,
            epoch=epoch.epoch,
            agreement_id=agreement.id,
            purpose=purpose,
            id_types=id_types,
            set_size=set_size,
            last_seen=self.now(),
            served_types=served_types,
        )
        with self._live_lock:
            self._live[sid] = live
        kp_pk = self._epoch_key(peer_id, epoch.epoch).pk if mode == "filter" else b""
        response: dict[str, Any] = {
            "session_id": sid,
            "epoch": epoch.epoch,
            "mode": mode,
            "agreement": agreement.id,
            "public_key": kp_pk.hex(),
            "budget_remaining": charge.remaining,
            "proofs": agreement.proofs,
        }
        self.audit.record(
            "session_opened",
            actor=self.node_id,
            peer=peer_id,
            session=sid,
            agreement_id=agreement.id,
            epoch=epoch.epoch,
            counts_in=set_size,
            request_digest=digest,
            response_digest=_digest(json.dumps(response, sort_keys=True).encode()),
            extra={"direction": "in", "mode": mode},
        )
        if first_frames is not None and frames_epoch == epoch.epoch:
            # The asker's first frames rode on the open (SPEC §14.4.1): fed to the machine as
            # a frames request would be, their answer returned with the session. Built for
            # another epoch (we rotated), they are ignored: the asker sends them again.
            out = self._feed_frames(peer_id, sid, live, first_frames, digest)
            response["frames"] = base64.b64encode(out).decode("ascii")
        return response

    def _owner_machine(
        self,
        peer: Peer,
        mode: str,
        sid: str,
        epoch: int,
        id_types: Sequence[str],
        set_size: int,
        *,
        proofs: bool,
    ) -> tuple[SessionMachine, frozenset[int]]:
        session_id = bytes.fromhex(sid)
        allowed = {c for c in (_key_type_code(t) for t in id_types) if c is not None}
        if mode == "filter":
            return FilterOwner(
                session_id=session_id,
                epoch=epoch,
                suite=SUITE,
                key_pair=self._epoch_key(peer.node_id, epoch),
                ledger=self._ledger(peer.node_id, epoch),
                rng=self.rng,
                limits=Limits(max_elements=max(set_size, 1)),
                executor=self.compute_for(set_size),
                proofs=proofs,
            ), frozenset()
        served = frozenset(allowed & self._allowed_type_codes(peer.node_id))
        with self.store.subjects.select_keys(served, exclude_source=PASTED_SOURCE) as selection:
            elements = selection.keys()
        limits = Limits(max_elements=max(set_size, len(elements), 1))
        executor = self.compute_for(max(set_size, len(elements)))
        if mode == "mutual":
            return MutualOwner(
                session_id=session_id,
                epoch=epoch,
                elements=elements,
                signing_key=self.keys.identity,
                peer_key=public_key_from_raw(peer.public_key),
                rng=self.rng,
                limits=limits,
                executor=executor,
            ), served
        if mode == "cardinality":
            return CardinalityOwner(
                session_id=session_id,
                epoch=epoch,
                elements=elements,
                rng=self.rng,
                limits=limits,
                executor=executor,
            ), served
        raise ConflictError("unknown mode")

    def session_frames(self, peer_id: str, sid: str, epoch: int, body: bytes) -> bytes:
        """Feed the peer's frames to the session's machine; return our frames."""
        digest = _digest(body)
        with self._live_lock:
            live = self._live.get(sid)
        if live is None or live.peer_id != peer_id:
            err = NotFoundError("no such open session")
            self._refuse(peer_id, sid if re.fullmatch(r"[0-9a-f]{32}", sid) else None, err, digest)
            raise err
        state = self.store.epochs.get(peer_id, "local", live.epoch)
        if state is None or state.state == "retired" or epoch != live.epoch:
            err2 = EpochRetiredError(
                "the session's key epoch is retired; open a new session", epoch=live.epoch
            )
            self._refuse(peer_id, sid, err2, digest, epoch=live.epoch)
            self._close_live(sid, live, "aborted")
            raise err2
        return self._feed_frames(peer_id, sid, live, body, digest)

    def _feed_frames(
        self, peer_id: str, sid: str, live: _LiveSession, body: bytes, digest: bytes
    ) -> bytes:
        """Feed a request's frames to the session's machine (SPEC §14.4.2); our frames. The
        first error closes the session (audited) and propagates."""
        out: list[bytes] = []
        with live.lock:
            live.last_seen = self.now()
            reader = FrameReader(live.machine.limits)
            try:
                frames = reader.feed(body)
                reader.close()
                batch: list[bytes] = []
                for frame in frames:
                    decoded = decode_frame(frame, live.machine.limits)
                    if decoded.header.msg_type is MsgType.HELLO:
                        assert isinstance(decoded.body, Hello)
                        # The frames before it go to the machine first, as one at a time would.
                        out += live.machine.receive_many(batch)
                        batch = []
                        if decoded.body.element_count > live.set_size:
                            raise AgreementRefusedError(
                                "HELLO announces more elements than were opened", clause="set_size"
                            )
                        if live.mode == "filter":
                            self._refuse_foreign_filter(peer_id, live.epoch, decoded.body.filter_id)
                    batch.append(frame)
                # A request's chunks go to the workers as one stream (receive_many).
                out += live.machine.receive_many(batch)
            except FiumatchError as err:
                self._refuse(peer_id, sid, err, digest, epoch=live.epoch)
                self._close_live(sid, live, "failed")
                raise
            if live.machine.done:
                self._finish_owner(sid, live, digest)
        return b"".join(out)

    def _refuse_foreign_filter(self, peer_id: str, epoch: int, filter_id: bytes) -> None:
        """Refuse a filter-mode HELLO naming the filter this node holds for a *different* peer.

        No filter id, our own current one, or one we do not know (stale after a rotation) is
        the refresh path (SPEC §7.5, §8.1) and goes on to the machine. Reads only: nothing is
        prepared, cached or stored here.
        """
        if filter_id == NO_FILTER_ID:
            return
        with self._epoch_lock:
            cached = dict(self._ledgers)
        own = cached.get((peer_id, epoch))
        if own is not None and own.filter_id == filter_id:
            return
        for (holder, _), ledger in cached.items():
            if ledger.filter_id == filter_id:
                if holder == peer_id:
                    return
                raise FilterNotYoursError("the HELLO names a filter held for another peer")
        for peer in self.store.peers.list_all(include_revoked=True):
            if peer.node_id == peer_id:
                continue
            for ep in self.store.epochs.list_all(peer.node_id, "local"):
                if (peer.node_id, ep.epoch) in cached:
                    continue
                blob = self.store.epochs.get_blob(peer.node_id, "local", ep.epoch, FILTER_KIND)
                if blob is None:
                    continue
                if FilterLedger.from_objects(_decode_objects(blob.data)).filter_id == filter_id:
                    raise FilterNotYoursError("the HELLO names a filter held for another peer")

    def _abort_sessions_of(self, peer_id: str, epoch: int) -> None:
        """Sessions on a retired epoch cannot go on: close their records now, so they stop
        counting against ``sessions.max_open_per_peer``. The machines stay until the peer's
        next frame (answered ``epoch_retired``, so it reopens on the new epoch) or idle expiry.
        """
        with self._live_lock:
            stale = [
                s
                for s, live in self._live.items()
                if (live.peer_id, live.epoch) == (peer_id, epoch)
            ]
        for sid in stale:
            rec = self.store.sessions.get(sid)
            if rec is not None and rec.open:
                with contextlib.suppress(RecordConflictError):
                    self.store.sessions.transition(
                        sid, from_state=rec.state, to_state="aborted", now=self.now(), close=True
                    )

    def expire_idle_sessions(self) -> int:
        """Close sessions a peer left idle longer than ``sessions.idle_timeout_seconds``."""
        limit = self.now() - self.settings.session_idle_timeout_seconds
        with self._live_lock:
            idle = [(sid, live) for sid, live in self._live.items() if live.last_seen < limit]
        for sid, live in idle:
            self._close_live(sid, live, "expired")
        return len(idle)

    def _close_live(self, sid: str, live: _LiveSession, outcome: str) -> None:
        with self._live_lock:
            self._live.pop(sid, None)
        rec = self.store.sessions.get(sid)
        if rec is not None and rec.open:
            with contextlib.suppress(RecordConflictError):
                self.store.sessions.transition(
                    sid, from_state=rec.state, to_state=outcome, now=self.now(), close=True
                )
        self.audit.record(
            "session_closed",
            actor=self.node_id,
            peer=live.peer_id,
            session=sid,
            agreement_id=live.agreement_id,
            epoch=live.epoch,
            extra={"direction": "in", "mode": live.mode, "outcome": outcome},
        )

    def _finish_owner(self, sid: str, live: _LiveSession, digest: bytes) -> None:
        machine = live.machine
        matches = 0
        learned = 0
        if isinstance(machine, FilterOwner) and machine.result:
            learned = machine.result.evaluated
        elif isinstance(machine, CardinalityOwner) and machine.result:
            learned = machine.result.peer_count
        elif isinstance(machine, MutualOwner) and machine.result:
            res = machine.result
            learned = res.peer_count
            matches = res.count
            self._record_mutual_owner(sid, live, res.intersection)
        now = self.now()

        def close_record() -> None:
            with contextlib.suppress(RecordConflictError):  # a rotation closed it meanwhile
                self.store.sessions.transition(
                    sid,
                    from_state="start",
                    to_state="done",
                    now=now,
                    close=True,
                    add_received=learned,
                    add_matches=matches,
                )

        with self._live_lock:
            self._live.pop(sid, None)
        # The session record closes in the commit of the evaluation's entry (for a peer request
        # being answered: the commit of the answer's entries, before the response leaves).
        self.audit.record(
            "evaluation",
            actor=self.node_id,
            peer=live.peer_id,
            session=sid,
            agreement_id=live.agreement_id,
            epoch=live.epoch,
            counts_in=learned,
            counts_out=learned,
            request_digest=digest,
            extra={"direction": "in", "mode": live.mode},
            with_commit=close_record,
        )
        self.audit.record(
            "session_closed",
            actor=self.node_id,
            peer=live.peer_id,
            session=sid,
            agreement_id=live.agreement_id,
            epoch=live.epoch,
            extra={"direction": "in", "mode": live.mode, "outcome": "ok"},
        )

    def _record_mutual_owner(self, sid: str, live: _LiveSession, keys: Sequence[bytes]) -> None:
        """Mutual mode: the owner learns the intersection too; keep it as a query of its own."""
        qid = "q-" + sid[:16]
        self.store.queries.create(
            Query(
                id=qid,
                analyst=f"peer:{live.peer_id}",
                purpose=live.purpose,
                legal_basis="agreement " + live.agreement_id,
                case_ref="mutual:" + sid[:12],
                status="running",
                created_at=self.now(),
            )
        )
        token = bytes.fromhex(sid)
        with self.store.subjects.select_keys(
            live.served_types, exclude_source=PASTED_SOURCE
        ) as selection:
            grouped = selection.group_hits((k, _mutual_token(token, k)) for k in keys)
            self.store.queries.record_result_stream(
                QueryResult(
                    query_id=qid,
                    peer_id=live.peer_id,
                    status="ok",
                    reason="mutual match (as owner)",
                    hit_count=0,
                    recorded_at=self.now(),
                    session_id=sid,
                ),
                self._hits_of(qid, live.peer_id, live.epoch, grouped),
            )
        self.store.queries.set_status(qid, "done", now=self.now())

    def _hits_of(
        self,
        query_id: str,
        peer_id: str,
        epoch: int,
        grouped: Iterable[tuple[str, tuple[int, ...], int, bytes]],
    ) -> Iterator[Hit]:
        """One hit per subject (from ``KeySelection.group_hits``): the key types matched, the
        strongest strength, and the token of its strongest key."""
        now = self.now()
        for subject_id, key_types, strength, token in grouped:
            yield Hit(
                id="h-" + self.rng(8).hex(),
                hit_token=_stored_token(token, epoch),
                query_id=query_id,
                peer_id=peer_id,
                subject_id=subject_id,
                key_types=key_types,
                strength=strength,
                created_at=now,
            )

    # -- querier side: analyst queries ---------------------------------------------------------

    def create_query(
        self,
        user: User,
        *,
        purpose: str,
        legal_basis: str,
        case_ref: str,
        mode: str = "filter",
        subject_ids: Sequence[str] = (),
        all_subjects: bool = False,
        records: Sequence[Mapping[str, Any]] = (),
        peers: Sequence[str] = (),
        id_types: Sequence[str] = (),
        wait: bool = False,
    ) -> dict[str, Any]:
        """Create a query over stored subjects and/or pasted identifier records, and fan it out
        concurrently to every peer whose agreement permits it."""
        self.require_role(user, "analyst", "supervisor")
        if purpose not in PURPOSES:
            raise ConflictError("unknown purpose", purposes=list(PURPOSES))
        if mode not in MODES:
            raise ConflictError("unknown mode", modes=list(MODES))
        basis, case = _text(legal_basis), _text(case_ref)
        if basis is None or case is None:
            raise ConflictError("legal basis and case reference are required")
        qid = "q-" + self.rng(8).hex()
        subjects = list(subject_ids)
        if subjects and len(self.store.subjects.existing(subjects)) != len(set(subjects)):
            raise NotFoundError("no such subject")  # one query for all, not one per subject
        every = all_subjects and not records and not subjects
        if every:
            # Every stored subject: selected in SQLite by the peer runs, never listed here.
            count = self.store.subjects.count_except(PASTED_SOURCE)
        else:
            if all_subjects:
                subjects += self.store.subjects.ids(exclude_source=PASTED_SOURCE)
            if records:
                subjects += self._store_pasted(qid, records)
            count = len(set(subjects))
        if not count:
            raise ConflictError("a query needs stored subjects or pasted records")
        query = Query(
            id=qid,
            analyst=user.name,
            purpose=purpose,
            legal_basis=basis,
            case_ref=case,
            status="running",
            created_at=self.now(),
        )
        with self._settle_lock:
            self._running[qid] = []
        try:
            # Audit first: a case reference the audit log refuses (it looks like an identifier)
            # stops the query before anything is stored or sent. The query row is written in
            # the entry's commit (one transaction: both or neither).
            self.audit.record(
                "query",
                actor=user.name,
                counts_in=count,
                extra={"purpose": purpose, "legal_basis": basis, "case_ref": case, "mode": mode},
                with_commit=lambda: self.store.queries.create(query),
            )
        except BaseException:
            self._settle(qid)
            raise
        targets = [p for p in self.store.peers.list_all() if not peers or p.node_id in peers]
        self._progress[qid] = {p.node_id: PeerProgress() for p in targets}
        try:
            future = self._executor.submit(
                self._run_query,
                qid,
                user.name,
                purpose,
                case,
                mode,
                None if every else sorted(set(subjects)),
                targets,
                tuple(id_types),
            )
        except BaseException:  # closing: nothing will settle it
            self._settle(qid)
            raise
        if wait:
            future.result()
        return self.get_query(user, qid)

    def _store_pasted(self, qid: str, records: Sequence[Mapping[str, Any]]) -> list[str]:
        """Pasted identifiers become subjects of source ``analyst-paste``: queried like stored
        ones, never served to peers, kept 30 days (then purged like any other)."""
        from fiumatch.ingest import Reject, build_subject

        built_all = []
        retention = datetime.fromtimestamp(self.now(), tz=UTC).date() + timedelta(days=30)
        for i, rec in enumerate(records):
            fields = {k: v for k, v in rec.items() if isinstance(v, (str, list))}
            fields.setdefault("local_ref", f"{qid}-{i}")
            built = build_subject(
                fields,
                source=PASTED_SOURCE,
                file="api",
                record=str(i),
                line=None,
                default_retention=retention,
            )
            if isinstance(built, list):
                rejects = [r for r in built if isinstance(r, Reject)]
                raise ConflictError(
                    "a pasted record was rejected",
                    record=i,
                    fields=sorted({r.field for r in rejects if r.field}),
                    reasons=sorted({r.reason for r in rejects}),
                )
            built_all.append(built)
        with self.store.transaction():
            for built in built_all:
                self.store.subjects.upsert_with_keys(*to_stored(built), now=self.now())
        return [b.subject_id for b in built_all]

    def _run_query(
        self,
        qid: str,
        analyst: str,
        purpose: str,
        case_ref: str,
        mode: str,
        subjects: list[str] | None,
        targets: list[Peer],
        id_types: tuple[str, ...],
    ) -> None:
        def run(peer: Peer) -> None:
            try:
                self._query_peer(qid, analyst, purpose, case_ref, mode, subjects, peer, id_types)
            except Exception as exc:  # a bug in one peer's run must not lose the others
                reason = exc.code if isinstance(exc, FiumatchError) else type(exc).__name__
                self._record_peer(qid, peer.node_id, "unreachable", f"error: {reason}")

        finish = _Finish(lambda: self.store.queries.set_status(qid, "done", now=self.now()))
        try:
            if len(targets) == 1:  # one peer: run it in this thread, no hop to the peer pool
                # Its hit_count entry's commit may set the query's status too (_Finish).
                self._finishers[qid] = finish
                run(targets[0])
            else:
                futures = [self._peer_executor.submit(run, peer) for peer in targets]
                for f in concurrent.futures.as_completed(futures):
                    f.result()
            if not finish.done:
                finish.write()
        finally:
            self._finishers.pop(qid, None)
            self._settle(qid)

    def on_settled(self, qid: str, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` (once, from whichever thread settles it) when query ``qid`` is no
        longer running: right after its status is set, or at once if this process is not
        running it (finished, recovered at startup, unknown). Returns the unsubscribe."""
        with self._settle_lock:
            waiting = self._running.get(qid)
            if waiting is not None:
                waiting.append(callback)
        if waiting is None:
            callback()

        def unsubscribe() -> None:
            with self._settle_lock:
                current = self._running.get(qid)
                if current is not None and callback in current:
                    current.remove(callback)

        return unsubscribe

    def _settle(self, qid: str) -> None:
        """Query ``qid`` is no longer running here: tell whoever waits (``on_settled``)."""
        with self._settle_lock:
            waiting = self._running.pop(qid, [])
        for callback in waiting:
            try:
                callback()
            except Exception:  # one waiter's failure must not keep the others waiting
                _log.exception("a query-settled callback failed")

    def _peer_progress(self, qid: str, peer_id: str) -> PeerProgress:
        return self._progress.setdefault(qid, {}).setdefault(peer_id, PeerProgress())

    def _record_peer(
        self,
        qid: str,
        peer_id: str,
        status: str,
        reason: str,
        hits: Iterable[Hit] = (),
        session: str | None = None,
    ) -> int:
        """Record a peer's result with its hits (streamed into the store); the hit count."""
        progress = self._peer_progress(qid, peer_id)
        progress.stage = status
        if status == "ok":
            progress.done = progress.total
        with contextlib.suppress(RecordConflictError):  # a peer's result is recorded once
            return self.store.queries.record_result_stream(
                QueryResult(
                    query_id=qid,
                    peer_id=peer_id,
                    status=status,  # type: ignore[arg-type]
                    reason=reason[:500],
                    hit_count=0,
                    recorded_at=self.now(),
                    session_id=session,
                ),
                hits,
            )
        return 0

    def _query_peer(
        self,
        qid: str,
        analyst: str,
        purpose: str,
        case_ref: str,
        mode: str,
        subjects: list[str] | None,
        peer: Peer,
        wanted_types: tuple[str, ...],
    ) -> None:
        """One peer's part of a query over ``subjects`` (None: every stored subject). The keys
        are selected in SQLite (``KeySelection``): only the distinct keys sit in memory, and
        the hits are grouped by subject there too."""
        # Our own agreement must permit it too.
        ours = self.store.agreements.in_force(peer.node_id, self.now())
        allowed = set().union(*(set(a.identifier_types) for a in ours)) if ours else set()
        types = set(wanted_types) & allowed if wanted_types else allowed
        codes = {c for c in (_key_type_code(t) for t in types) if c is not None}
        with self.store.subjects.select_keys(
            codes,
            subject_ids=subjects,
            exclude_source=PASTED_SOURCE if subjects is None else None,
        ) as selection:
            elements = selection.keys()
            used_types = sorted(_key_type_name(t) for t in selection.key_types())
            try:
                agreement = check_agreement(
                    self.store.agreements.list_for_peer(peer.node_id),
                    now=self.now(),
                    mode=mode,
                    purpose=purpose,
                    id_types=used_types or sorted(types) or ["none"],
                    set_size=len(elements),
                )
            except AgreementRefusedError as err:
                self._record_peer(qid, peer.node_id, "refused", f"our agreement: {err.clause}")
                return
            if not elements:
                self._record_peer(qid, peer.node_id, "ok", "no match keys of the agreed types")
                return
            self._peer_progress(qid, peer.node_id).total = len(elements)
            self._query_peer_with(
                self._client_for(peer),
                qid,
                analyst,
                purpose,
                case_ref,
                mode,
                peer,
                elements,
                selection,
                used_types,
                agreement,
            )

    def _query_peer_with(
        self,
        client: Any,
        qid: str,
        analyst: str,
        purpose: str,
        case_ref: str,
        mode: str,
        peer: Peer,
        element_list: list[bytes],
        selection: KeySelection,
        used_types: list[str],
        agreement: Agreement,
    ) -> None:
        from fiumatch.client.peer import PeerError

        progress = self._peer_progress(qid, peer.node_id)
        for attempt in range(2):
            sid = self.rng(16).hex()
            progress.stage, progress.done = "opening", 0
            opened_epoch: int | None = None
            try:
                # With a replica kept, the session's HELLO is built for its epoch and rides on
                # the open request (one round trip less; SPEC §14.4.1).
                early = self._early_start(mode, sid, element_list, peer, proofs=agreement.proofs)
                opened = client.open_session(
                    session_id=sid,
                    mode=mode,
                    purpose=purpose,
                    id_types=used_types,
                    set_size=len(element_list),
                    proofs=agreement.proofs,
                    **({} if early is None else early.fields()),
                )
                epoch = opened_epoch = int(opened["epoch"])
                answered = early.answer(opened) if early is not None else None
                replica: FilterReplica | None
                if early is not None and answered is not None:
                    replica, machine = early.replica, early.machine
                else:
                    replica = self._replica_for(peer, epoch) if mode == "filter" else None
                    machine = self._querier_machine(
                        mode,
                        sid,
                        epoch,
                        element_list,
                        peer,
                        opened,
                        proofs=agreement.proofs,
                        replica=replica,
                    )
                pump(client, sid, epoch, machine, progress, answered=answered)
                if replica is not None:
                    self._keep_replica(peer, replica, bytes.fromhex(str(opened["public_key"])))
                break
            except PeerError as err:
                if err.code == "epoch_retired":  # its replica is of no use any more
                    last = None if opened_epoch is None else opened_epoch + 1
                    self._drop_replicas(peer.node_id, before=last)
                if err.code == "epoch_retired" and attempt == 0:
                    continue  # the owner rotated under us: open again on its new epoch
                status = "refused" if err.status in (403, 409, 429, 401, 404) else "unreachable"
                detail = f"{err.code}" + (f" ({err.clause})" if err.clause else "")
                if err.status == 0:  # down, silent or cut off: say which (no data in it)
                    detail += f": {err.reason}"
                if err.retry_after is not None:
                    wait = "budget refills in" if err.code == "budget_exhausted" else "retry in"
                    detail += f"; {wait} {err.retry_after}s"
                self.audit.record(
                    "session_closed",
                    actor=analyst,
                    peer=peer.node_id,
                    session=sid,
                    agreement_id=agreement.id,
                    extra={"direction": "out", "mode": mode, "outcome": "refused"},
                )
                self._record_peer(qid, peer.node_id, status, detail)
                return
        self.audit.record(
            "session_opened",
            actor=analyst,
            peer=peer.node_id,
            session=sid,
            agreement_id=agreement.id,
            epoch=epoch,
            counts_out=len(element_list),
            request_digest=_digest(sid.encode()),
            extra={"direction": "out", "mode": mode},
        )
        matched: Iterable[tuple[bytes, bytes]] = ()
        matched_keys = 0
        reason = "ok"
        if isinstance(machine, FilterQuerier) and machine.result:
            r = machine.result
            matched_keys = len(r.hit_indices)
            matched = (
                (element_list[i], output)
                for i, output in zip(r.hit_indices, r.hit_outputs, strict=True)
            )
            reason = (
                f"filter: {len(r.hit_indices)} keys hit of {r.queried}; owner holds {r.owner_count}"
            )
        elif isinstance(machine, MutualQuerier) and machine.result:
            r2 = machine.result
            matched_keys = len(r2.intersection)
            matched = ((k, _mutual_token(bytes.fromhex(sid), k)) for k in r2.intersection)
            reason = f"mutual: {r2.count} keys in common (signed); owner holds {r2.peer_count}"
        elif isinstance(machine, CardinalityQuerier) and machine.result:
            r3 = machine.result
            reason = (
                f"cardinality: {r3.count} keys in common of {r3.own_count}; "
                f"owner holds {r3.peer_count}"
            )
        del machine  # its per-key state (blinds, outputs) is not needed for the hits
        hits: Iterable[Hit] = self._hits_of(qid, peer.node_id, epoch, selection.group_hits(matched))
        finish = self._finishers.pop(qid, None)
        writes: list[Callable[[], None]] = []
        if matched_keys <= SMALL_RESULT:
            # A small result (its hits held in memory): stored in the commit of its hit_count
            # entry, with the query's status if this is its only peer (one transaction, one
            # fsync, for the three; none of them without the others).
            kept = list(hits)
            count = len(kept)

            def record() -> None:
                self._record_peer(qid, peer.node_id, "ok", reason, kept, session=sid)

            writes.append(record)
            if finish is not None:
                writes.append(finish.write)
        else:  # streamed into the store on its own (it may not fit in memory)
            count = self._record_peer(qid, peer.node_id, "ok", reason, hits, session=sid)

        def together() -> None:
            for write in writes:
                write()

        self.audit.record(
            "hit_count",
            actor=analyst,
            peer=peer.node_id,
            session=sid,
            agreement_id=agreement.id,
            epoch=epoch,
            extra={"hits": count, "mode": mode, "case_ref": case_ref},
            with_commit=together if writes else None,
        )
        if finish is not None and writes:
            finish.done = True

    def _querier_machine(
        self,
        mode: str,
        sid: str,
        epoch: int,
        elements: list[bytes],
        peer: Peer,
        opened: Mapping[str, Any],
        *,
        proofs: bool = True,
        replica: FilterReplica | None = None,
    ) -> _Querier:
        session_id = bytes.fromhex(sid)
        limits = Limits(max_elements=max(len(elements), 1 << 20))
        ex = self.compute_for(len(elements))
        if mode == "filter":
            return FilterQuerier(
                session_id=session_id,
                epoch=epoch,
                suite=SUITE,
                match_keys=elements,
                replica=replica if replica is not None else FilterReplica(suite=SUITE, epoch=epoch),
                rng=self.rng,
                limits=limits,
                owner_public_key=bytes.fromhex(str(opened["public_key"])),
                executor=ex,
                proofs=proofs,
            )
        if mode == "mutual":
            return MutualQuerier(
                session_id=session_id,
                epoch=epoch,
                elements=elements,
                signing_key=self.keys.identity,
                peer_key=public_key_from_raw(peer.public_key),
                rng=self.rng,
                limits=limits,
                executor=ex,
            )
        return CardinalityQuerier(
            session_id=session_id,
            epoch=epoch,
            elements=elements,
            rng=self.rng,
            limits=limits,
            executor=ex,
        )

    def _replica_for(self, peer: Peer, epoch: int) -> FilterReplica:
        """The session's own copy of the replica kept for ``peer`` at ``epoch`` (empty if none
        is kept, or it was kept under another pinned key). Opening ``epoch`` drops the peer's
        older ones: the owner serves only its active epoch."""
        self._drop_replicas(peer.node_id, before=epoch)
        with self._replica_lock:
            kept = self._replicas.get((peer.node_id, epoch))
        if kept is None or kept[0] != peer.public_key:
            return FilterReplica(suite=SUITE, epoch=epoch)
        return kept[1].copy()  # the kept replica is never applied to: no lock needed to copy

    def _early_start(
        self, mode: str, sid: str, elements: list[bytes], peer: Peer, *, proofs: bool
    ) -> _EarlyStart | None:
        """Filter mode, with a replica kept for ``peer``: a machine for the newest kept epoch
        (the owner's epoch public key pinned as that epoch's sessions announced it), started,
        so its HELLO can go with the open request. None otherwise."""
        if mode != "filter":
            return None
        with self._replica_lock:
            kept = [
                (e, v) for (p, e), v in self._replicas.items()
                if p == peer.node_id and v[0] == peer.public_key
            ]  # fmt: skip
        if not kept:
            return None
        epoch, (_, replica, epoch_pk) = max(kept, key=lambda kv: kv[0])
        own = replica.copy()
        machine = self._querier_machine(
            mode, sid, epoch, elements, peer, {"public_key": epoch_pk.hex()},
            proofs=proofs, replica=own,
        )  # fmt: skip
        return _EarlyStart(epoch, epoch_pk, own, machine, b"".join(machine.start()))

    def _keep_replica(self, peer: Peer, replica: FilterReplica, epoch_pk: bytes) -> None:
        """A session that ended well stores its replica back (with the owner's epoch public
        key it ran under), if it is newer than the kept one (concurrent sessions: the newest
        generation wins) and its epoch is not outdated."""
        if replica.kind is None:
            return
        key = (peer.node_id, replica.epoch)
        with self._replica_lock:
            if any(p == peer.node_id and e > replica.epoch for p, e in self._replicas):
                return
            kept = self._replicas.get(key)
            if (
                kept is None
                or kept[0] != peer.public_key
                or kept[1].filter_id != replica.filter_id
                or kept[1].generation < replica.generation
            ):
                self._replicas[key] = (peer.public_key, replica, epoch_pk)

    def _drop_replicas(self, peer_id: str, *, before: int | None = None) -> None:
        """Forget the replicas kept for ``peer_id`` (of epochs below ``before``, if given)."""
        with self._replica_lock:
            for key in [k for k in self._replicas if k[0] == peer_id]:
                if before is None or key[1] < before:
                    del self._replicas[key]

    def query_progress(self, qid: str) -> dict[str, dict[str, Any]]:
        return {peer: p.as_dict() for peer, p in self._progress.get(qid, {}).items()}

    def get_query(
        self, user: User, qid: str, *, hits_offset: int = 0, hits_limit: int | None = HITS_PAGE
    ) -> dict[str, Any]:
        """A query, its per-peer results, and one page of its hits: ``hits_limit`` (None: all)
        from ``hits_offset``; ``hit_total`` counts them all (a query over 10^6 keys can have
        10^5 hits: nobody reads them in one answer, and building it would cost gigabytes)."""
        self.require_role(user, *QUERY_READERS)
        q = self.store.queries.get(qid)
        if q is None:
            raise NotFoundError("no such query")
        results = {r.peer_id: r for r in self.store.queries.results(qid)}
        progress = self._progress.get(qid, {})
        peers = []
        for name in sorted(set(results) | set(progress)):
            r = results.get(name)
            p = progress.get(name) or PeerProgress(stage=r.status if r else "?")
            peers.append(
                {
                    "peer": name,
                    "status": r.status if r else p.stage,
                    "done": r is not None,
                    "reason": r.reason if r else "",
                    "hit_count": r.hit_count if r else 0,
                    "session_id": r.session_id if r else None,
                    "progress": p.as_dict(),
                }
            )
        hits = []
        for h in self.store.queries.hits(qid, offset=hits_offset, limit=hits_limit):
            s = self.store.subjects.get(h.subject_id)
            hits.append(
                {
                    "id": h.id,
                    "peer": h.peer_id,
                    "subject_id": h.subject_id,
                    "local_ref": s.local_ref if s else "",
                    "name": (s.display.get("name", "") if s else ""),
                    "key_types": [_key_type_name(t) for t in h.key_types],
                    "strength": h.strength,
                    "strength_label": STRENGTHS.get(h.strength, str(h.strength)),
                    "hit_token": h.hit_token.hex(),
                }
            )
        partial = any(p["status"] in ("refused", "unreachable") for p in peers)
        return {
            "id": q.id,
            "analyst": q.analyst,
            "purpose": q.purpose,
            "legal_basis": q.legal_basis,
            "case_ref": q.case_ref,
            "status": q.status,
            "partial": partial,
            "peers": peers,
            "hits": hits,
            "hit_total": self.store.queries.hit_total(qid),
            "hits_offset": hits_offset,
            "created_at": q.created_at,
        }

    def list_queries(self, user: User) -> list[dict[str, Any]]:
        self.require_role(user, "analyst", "supervisor", "auditor")
        return [
            {
                "id": q.id,
                "analyst": q.analyst,
                "status": q.status,
                "case_ref": q.case_ref,
                "purpose": q.purpose,
                "created_at": q.created_at,
            }
            for q in self.store.queries.list_recent()
        ]

    def sessions(self, user: User) -> list[dict[str, Any]]:
        self.require_role(user, "analyst", "supervisor", "auditor")
        return [
            {
                "id": s.id,
                "peer": s.peer_id,
                "role": s.role,
                "mode": s.mode,
                "state": s.state,
                "epoch": s.epoch,
                "items_received": s.items_received,
                "matches": s.matches,
                "created_at": s.created_at,
                "closed_at": s.closed_at,
            }
            for s in self.store.sessions.list_recent()
        ]

    # -- disclosure ------------------------------------------------------------------------------

    def request_disclosure(
        self,
        user: User,
        *,
        hit_id: str | None = None,
        hit_token: str | None = None,
        purpose: str,
        case_ref: str,
        legal_basis: str = "",
        onward_recipient: str | None = None,
        onward_purpose: str | None = None,
    ) -> dict[str, Any]:
        """Ask the owner of a hit for the record behind it; carries only the hit token. With
        ``onward_recipient`` it also asks, in the same request, for prior consent to pass the
        released data on (recorded, and decided by the owner's supervisor)."""
        from fiumatch.client.peer import PeerError

        self.require_role(user, "analyst", "supervisor")
        hit = self._find_hit(hit_id, hit_token)
        if purpose not in PURPOSES:
            raise ConflictError("unknown purpose")
        case = _text(case_ref)
        if case is None:
            raise ConflictError("a disclosure request needs a case reference")
        onward = self._onward_terms(onward_recipient, onward_purpose)
        peer = self._require_peer(hit.peer_id)
        core, epoch = _split_token(hit.hit_token)
        did = "d-" + self.rng(8).hex()
        payload: dict[str, Any] = {
            "request_id": did,
            "hit_token": core.hex(),
            "epoch": epoch,
            "purpose": purpose,
            "case_ref": case,
            "legal_basis": _text(legal_basis, "") or "",
            "onward": onward,
        }
        digest = _digest(json.dumps(payload, sort_keys=True).encode())
        self.store.disclosures.create(
            Disclosure(
                id=did,
                direction="out",
                peer_id=peer.node_id,
                hit_token=hit.hit_token,
                purpose=purpose,
                case_ref=case,
                onward_consent=False,
                status="pending",
                created_at=self.now(),
                subject_id=hit.subject_id,
                hit_id=hit.id,
            )
        )
        try:
            with self._peer_client(peer) as client:
                answer = client.request_disclosure(payload)
        except PeerError as err:
            self.store.disclosures.decide(
                did, "withdrawn", reason=f"owner refused: {err.code}", now=self.now()
            )
            self.audit.record(
                "disclosure_requested",
                actor=user.name,
                peer=peer.node_id,
                session=did,
                request_digest=digest,
                extra={"direction": "out", "case_ref": case, "purpose": purpose},
            )
            raise PeerRefusedError("the owner refused the request", peer_code=err.code) from None
        self.audit.record(
            "disclosure_requested",
            actor=user.name,
            peer=peer.node_id,
            session=did,
            request_digest=digest,
            extra={
                "direction": "out",
                "case_ref": case,
                "purpose": purpose,
                "legal_basis": _text(legal_basis),
            },
        )
        if onward is not None:
            self.store.disclosures.request_onward(did, **onward, now=self.now())
            self._audit_onward_request(user.name, peer.node_id, did, "out", digest, onward)
        return self._disclosure_dict(self.store.disclosures.require(did)) | {
            "status": answer.get("status", "pending")
        }

    def _find_hit(self, hit_id: str | None, hit_token: str | None) -> Hit:
        if hit_id:
            hit = self.store.queries.hit(hit_id)
        elif hit_token:
            try:
                found = self.store.queries.hits_by_token(bytes.fromhex(hit_token))
            except ValueError:
                found = []
            hit = found[0] if found else None
        else:
            raise ConflictError("name the hit (hit_id)")
        if hit is None:
            raise NotFoundError("no such hit")
        return hit

    @staticmethod
    def _onward_terms(recipient: str | None, purpose: str | None) -> dict[str, str] | None:
        if not recipient and not purpose:
            return None
        r, p = _text(recipient or ""), _text(purpose or "")
        if r is None or p is None:
            raise ConflictError("onward dissemination needs both a recipient and a purpose")
        return {"recipient": r, "purpose": p}

    def _audit_onward_request(
        self,
        actor: str,
        peer_id: str,
        did: str,
        direction: str,
        digest: bytes,
        onward: Mapping[str, str],
    ) -> None:
        d = self.store.disclosures.require(did)
        self.audit.record(
            "disclosure_requested",
            actor=actor,
            peer=peer_id,
            session=_onward_session(did),
            request_digest=digest,
            extra={"direction": direction, "case_ref": d.case_ref, "purpose": onward["purpose"]},
        )

    def receive_disclosure(
        self, peer_id: str, body: bytes, payload: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Owner side: a peer asks for the record behind a hit token (our OPRF output or the
        shared mutual token). The subject it names is resolved now and kept with the request,
        so the decision does not depend on the token's epoch still being active."""
        digest = _digest(body)
        did = str(payload.get("request_id", ""))
        if not re.fullmatch(r"d-[0-9a-f]{16}", did):
            raise ConflictError("bad request id")
        self._require_peer(peer_id)
        purpose = str(payload.get("purpose", ""))
        case = _text(str(payload.get("case_ref", "")), "-") or "-"
        try:
            core = bytes.fromhex(str(payload.get("hit_token", "")))
            epoch = int(payload.get("epoch", -1))
            onward = payload.get("onward")
            terms = (
                self._onward_terms(str(onward.get("recipient", "")), str(onward.get("purpose", "")))
                if isinstance(onward, Mapping)
                else None
            )
            subject_id = self._resolve_token(peer_id, core, epoch)
            agreements = self.store.agreements.in_force(peer_id, self.now())
            if not agreements:
                raise AgreementRefusedError("no agreement in force", clause="no_agreement")
            if not any(purpose in a.purposes for a in agreements):
                raise AgreementRefusedError("purpose not agreed", clause="purpose")
        except (ValueError, TypeError):
            err0 = ConflictError("malformed disclosure request")
            self._refuse(peer_id, did, err0, digest)
            raise err0 from None
        except NodeError as err:
            self._refuse(peer_id, did, err, digest)
            raise
        self.store.disclosures.create(
            Disclosure(
                id=did,
                direction="in",
                peer_id=peer_id,
                hit_token=_stored_token(core, epoch),
                purpose=purpose,
                case_ref=case,
                onward_consent=False,
                status="pending",
                created_at=self.now(),
                subject_id=subject_id,
            )
        )
        self.audit.record(
            "disclosure_requested",
            actor=self.node_id,
            peer=peer_id,
            session=did,
            request_digest=digest,
            extra={"direction": "in", "case_ref": case, "purpose": purpose},
        )
        if terms is not None:
            self.store.disclosures.request_onward(did, **terms, now=self.now())
            self._audit_onward_request(self.node_id, peer_id, did, "in", digest, terms)
        return {
            "id": did,
            "status": "pending",
            "onward_dissemination": "requires the owner's prior consent",
        }

    def _resolve_token(self, peer_id: str, core: bytes, epoch: int) -> str:
        """Which of our subjects a hit token names (filter: our OPRF output of that epoch;
        mutual: the token both sides derived). Refuses a token of a retired epoch."""
        if len(core) == 64:
            e = self.store.epochs.get(peer_id, "local", epoch)
            if e is None or e.state == "retired":
                raise EpochRetiredError("the hit's key epoch is retired; query again", epoch=epoch)
            refs = self._output_refs(peer_id, epoch, core)
            if not refs:
                raise NotFoundError("no record for that hit token")
            return max(refs, key=lambda r: r[2])[0]
        found = self.store.queries.hits_by_token(_stored_token(core, epoch), peer_id=peer_id)
        if not found:
            raise NotFoundError("no record for that hit token")
        return max(found, key=lambda h: h.strength).subject_id

    def list_disclosures(self, user: User, direction: str | None = None) -> list[dict[str, Any]]:
        self.require_role(user, "analyst", "supervisor", "auditor")
        return [
            self._disclosure_dict(d)
            for d in self.store.disclosures.list_requests(
                direction="in" if direction == "in" else "out" if direction == "out" else None,
                limit=1000,
            )
        ]

    def preview_disclosure(self, user: User, did: str) -> dict[str, Any]:
        """An incoming request with the record it names, for the owner's supervisor deciding
        it: the request (as :meth:`list_disclosures` gives it) plus ``record`` (the fields a
        decision can release) or None and ``record_missing`` saying why (purged since). It
        releases nothing and changes nothing."""
        self.require_role(user, "supervisor")
        d = self.store.disclosures.get(did)
        if d is None or d.direction != "in":
            raise NotFoundError("no such incoming request")
        subject = self.store.subjects.get(d.subject_id) if d.subject_id else None
        record: dict[str, Any] | None = None
        if subject is not None:
            record = {
                "name": subject.display.get("name", ""),
                "local_ref": subject.local_ref,
                "subject_type": subject.subject_type,
            }
            for k, v in subject.display.items():
                if k not in ("name", "type"):
                    record[k] = ", ".join(v) if isinstance(v, list) else v
        return {
            **self._disclosure_dict(d),
            "record": record,
            "record_missing": "" if record else "the record is no longer held (purged)",
        }

    def decide_disclosure(
        self,
        user: User,
        did: str,
        *,
        approve: bool,
        reason: str,
        fields: Sequence[str] = ("name", "local_ref", "subject_type"),
        onward_consent: bool = False,
    ) -> dict[str, Any]:
        """A supervisor at the owner approves (releasing the chosen fields) or refuses. With
        ``onward_consent`` an onward dissemination the request asked for is granted too."""
        self.require_role(user, "supervisor")
        d = self.store.disclosures.get(did)
        if d is None or d.direction != "in":
            raise NotFoundError("no such incoming request")
        why = _text(reason)
        if why is None:
            raise ConflictError("a decision needs a reason")
        if onward_consent and d.onward_status != "requested":
            raise ConflictError("no onward dissemination was asked for")
        subject = self.store.subjects.get(d.subject_id) if d.subject_id else None
        if approve and subject is None:
            raise NotFoundError("the record is no longer held (purged); refuse the request")
        released: dict[str, Any] | None = None
        if approve:
            assert subject is not None
            shown = {
                "name": subject.display.get("name", ""),
                "local_ref": subject.local_ref,
                "subject_type": subject.subject_type,
                **dict(subject.display),
            }
            released = {k: shown[k] for k in fields if k in shown}
            released["decision_reason"] = why
        try:
            # Decision and release in one transaction: a crash between them left an approved
            # request whose fields were never released (found by tests/reliability kill -9).
            with self.store.transaction():
                decided = self.store.disclosures.decide(
                    did, "approved" if approve else "denied", reason=why, now=self.now()
                )
                if released is not None:
                    decided = self.store.disclosures.mark_released(did, released, now=self.now())
        except RecordConflictError:
            raise ConflictError("the request was already decided") from None
        self.audit.record(
            "disclosure_decided",
            actor=user.name,
            peer=d.peer_id,
            session=did,
            extra={
                "direction": "in",
                "decision": "approved" if approve else "denied",
                "count_out": 1 if approve else 0,
                "case_ref": d.case_ref or None,
            },
        )
        if onward_consent:
            decided = self._decide_onward(user, decided, grant=approve, reason=why)
        return self._disclosure_dict(decided)

    def decide_onward(self, user: User, did: str, *, grant: bool, reason: str) -> dict[str, Any]:
        """The owner's supervisor grants or refuses prior consent to onward dissemination."""
        self.require_role(user, "supervisor")
        d = self.store.disclosures.get(did)
        if d is None or d.direction != "in":
            raise NotFoundError("no such incoming request")
        why = _text(reason)
        if why is None:
            raise ConflictError("a decision needs a reason")
        if grant and d.status in ("denied", "withdrawn"):
            raise ConflictError("nothing was released: consent to pass it on makes no sense")
        return self._disclosure_dict(self._decide_onward(user, d, grant=grant, reason=why))

    def _decide_onward(self, user: User, d: Disclosure, *, grant: bool, reason: str) -> Disclosure:
        try:
            decided = self.store.disclosures.decide_onward(
                d.id, grant=grant, reason=reason, now=self.now()
            )
        except RecordConflictError:
            raise ConflictError("no onward dissemination is waiting for a decision") from None
        self.audit.record(
            "disclosure_decided",
            actor=user.name,
            peer=d.peer_id,
            session=_onward_session(d.id),
            extra={
                "direction": d.direction,
                "decision": "approved" if grant else "denied",
                "case_ref": d.case_ref or None,
            },
        )
        return decided

    def request_onward(
        self, user: User, did: str, *, recipient: str, purpose: str
    ) -> dict[str, Any]:
        """Requester side: ask the owner for prior consent to pass a disclosure's data on."""
        from fiumatch.client.peer import PeerError

        self.require_role(user, "analyst", "supervisor")
        d = self.store.disclosures.get(did)
        if d is None or d.direction != "out":
            raise NotFoundError("no such outgoing request")
        terms = self._onward_terms(recipient, purpose)
        assert terms is not None
        if d.status in ("denied", "withdrawn"):
            raise ConflictError("the owner released nothing: there is nothing to pass on")
        if d.onward_status in ("requested", "granted"):
            raise ConflictError("onward dissemination is already asked for or granted")
        body = json.dumps(terms, sort_keys=True).encode()
        try:
            with self._peer_client(self._require_peer(d.peer_id)) as client:
                client.request_onward(did, terms)
        except PeerError as err:
            raise PeerRefusedError("the owner refused the request", peer_code=err.code) from None
        self.store.disclosures.request_onward(did, **terms, now=self.now())
        self._audit_onward_request(user.name, d.peer_id, did, "out", _digest(body), terms)
        return self._disclosure_dict(self.store.disclosures.require(did))

    def receive_onward(
        self, peer_id: str, did: str, body: bytes, payload: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Owner side: the requester asks for prior consent to pass released data on."""
        d = self.store.disclosures.get(did)
        if d is None or d.direction != "in" or d.peer_id != peer_id:
            raise NotFoundError("no such request")
        terms = self._onward_terms(
            str(payload.get("recipient", "")), str(payload.get("purpose", ""))
        )
        if terms is None:
            raise ConflictError("onward dissemination needs both a recipient and a purpose")
        try:
            self.store.disclosures.request_onward(did, **terms, now=self.now())
        except RecordConflictError:
            raise ConflictError("onward dissemination is already asked for or granted") from None
        self._audit_onward_request(self.node_id, peer_id, did, "in", _digest(body), terms)
        return {"id": did, "onward": "requested"}

    def disclosure_for_peer(self, peer_id: str, did: str) -> dict[str, Any]:
        """Owner side: the requester polls the decision on its request."""
        d = self.store.disclosures.get(did)
        if d is None or d.direction != "in" or d.peer_id != peer_id:
            raise NotFoundError("no such request")
        out: dict[str, Any] = {
            "id": d.id,
            "status": d.status,
            "reason": d.decision_reason,
            "onward": {"status": d.onward_status, "reason": d.onward_reason},
        }
        if d.status == "released":
            out["released"] = dict(d.released or {})
        return out

    def refresh_disclosure(self, user: User, did: str) -> dict[str, Any]:
        """Requester side: fetch the owner's decisions (disclosure and onward consent) and
        record them, each audited once."""
        self.require_role(user, "analyst", "supervisor")
        d = self.store.disclosures.get(did)
        if d is None or d.direction != "out":
            raise NotFoundError("no such outgoing request")
        if d.status in ("pending", "approved") or d.onward_status == "requested":
            with self._peer_client(self._require_peer(d.peer_id)) as client:
                remote = client.disclosure_status(did)
            status = remote.get("status")
            if status in ("approved", "released", "denied") and d.status == "pending":
                d = self.store.disclosures.decide(
                    did,
                    "denied" if status == "denied" else "approved",
                    reason=str(remote.get("reason", "")),
                    now=self.now(),
                )
                self.audit.record(
                    "disclosure_decided",
                    actor=user.name,
                    peer=d.peer_id,
                    session=did,
                    extra={
                        "direction": "out",
                        "decision": "denied" if d.status == "denied" else "approved",
                        "case_ref": d.case_ref or None,
                    },
                )
            if status == "released" and d.status == "approved":
                d = self.store.disclosures.mark_released(
                    did, remote.get("released", {}), now=self.now()
                )
            onward = remote.get("onward")
            decided = onward.get("status") if isinstance(onward, Mapping) else None
            if d.onward_status == "requested" and decided in ("granted", "refused"):
                d = self._decide_onward(
                    user, d, grant=decided == "granted", reason=str(onward.get("reason", ""))
                )
        return self._disclosure_dict(d)

    def _disclosure_dict(self, d: Disclosure) -> dict[str, Any]:
        onward_text = {
            "granted": f"the owner consented to onward dissemination to {d.onward_recipient}",
            "refused": "the owner refused onward dissemination; do not pass it on",
            "requested": "onward dissemination asked for; the owner has not decided",
        }.get(d.onward_status, "requires the owner's prior consent")
        subject = self.store.subjects.get(d.subject_id) if d.subject_id else None
        return {
            "id": d.id,
            "direction": d.direction,
            "peer": d.peer_id,
            "purpose": d.purpose,
            "case_ref": d.case_ref,
            "status": d.status,
            "reason": d.decision_reason,
            "released": dict(d.released) if d.released is not None else None,
            "subject_ref": subject.local_ref if subject else None,
            "hit_id": d.hit_id,
            "onward_dissemination": onward_text,
            "onward": {
                "status": d.onward_status,
                "recipient": d.onward_recipient,
                "purpose": d.onward_purpose,
                "reason": d.onward_reason,
                "requested_at": d.onward_requested_at,
                "decided_at": d.onward_decided_at,
            },
            "created_at": d.created_at,
            "decided_at": d.decided_at,
        }

    # -- audit -------------------------------------------------------------------------------

    def audit_entries(self, user: User, start: int = 0, end: int | None = None) -> dict[str, Any]:
        from fiumatch.auditlog.entry import decode_entry, entry_to_dict
        from fiumatch.auditlog.merkle import root_from_leaf_hashes

        self.require_role(user, "auditor")
        size = self.store.audit.size()
        end = size if end is None else min(end, size)
        entries = []
        for leaf in self.store.audit.leaves(start, end):
            entries.append(entry_to_dict(decode_entry(leaf.entry)))
        root = root_from_leaf_hashes(self.store.audit.leaf_hashes(0, size)) if size else b""
        return {"size": size, "root": root.hex(), "entries": entries}


def to_stored(subject: Any) -> tuple[StoredSubject, list[StoredKey]]:
    """An identifiers-package subject as the store holds it (display JSON for analysts)."""
    display = {
        "name": subject.display_name,
        "type": str(subject.type),
        "birth_date": subject.birth_date.iso if subject.birth_date else None,
        "countries": list(subject.countries),
    }
    stored = StoredSubject(
        id=subject.subject_id,
        local_ref=subject.local_ref,
        subject_type=str(subject.type),
        display={k: v for k, v in display.items() if v},
        retain_until=subject.retention_until,
        source=subject.provenance.source,
        source_record=subject.provenance.record,
    )
    keys: dict[tuple[int, bytes], StoredKey] = {}
    for k in subject.keys:
        code, encoded = k.type.code, k.encode()  # encoded once per key
        keys[(code, encoded)] = StoredKey(
            subject_id=subject.subject_id, key_type=code, key=encoded, strength=int(k.strength)
        )
    return stored, list(keys.values())
