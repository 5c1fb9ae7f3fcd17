"""Application services of an FIU node: they tie the store, the protocol core and the identifiers
together, and they are the only place that decides anything (agreements, budgets, roles, epochs).

Owns: node configuration and the node directory layout (``init_node_dir``, ``load_config``),
the one audit seam (:class:`AuditSink`), the owner side of PSI sessions (state machines kept
per session, fed with wire frames), the querier side (analyst queries fanned out to peers),
epochs (derivation, background precompute, rotation, retirement), retention purges and the
disclosure workflow.

Must never: re-implement protocol maths (it drives ``fiumatch.protocol`` machines); log or
audit an identifier, a match key, a blinded element or an OPRF output; take time or randomness
from anywhere but the injected ``clock`` and ``rng``. Routes stay thin: they parse, call one
method here and let typed errors travel to the single handler in ``app.py``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import os
import re
import stat
import threading
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from fiumatch.errors import FiumatchError
from fiumatch.node.errors import (
    AgreementRefusedError,
    BadTokenError,
    BudgetExhaustedError,
    ConflictError,
    InsecureKeyFileError,
    NodeError,
    NotFoundError,
    PermissionDeniedError,
    SettingsError,
)
from fiumatch.node.keys import NodeKeys, fingerprint, public_key_from_raw
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
    evaluate_outputs,
)
from fiumatch.protocol.sessions._ops import finalize_chunk
from fiumatch.protocol.wire import (
    ELEMENT_WIDTH,
    FrameReader,
    Hello,
    Limits,
    MsgType,
    Suite,
    decode_frame,
)
from fiumatch.store import (
    Agreement,
    Disclosure,
    Epoch,
    EpochBlob,
    Hit,
    Peer,
    Query,
    QueryResult,
    RecordConflictError,
    Store,
    User,
    issue_token,
)
from fiumatch.store import Subject as StoredSubject
from fiumatch.store.subjects import MatchKey as StoredKey

__all__ = [
    "MODES",
    "PURPOSES",
    "AuditSink",
    "EpochRetiredError",
    "NodeConfig",
    "NodeService",
    "check_agreement",
    "init_node_dir",
    "load_config",
]

Clock = Callable[[], float]
Rng = Callable[[int], bytes]

MODES = ("filter", "mutual", "cardinality")
PURPOSES = ("money_laundering", "terrorist_financing", "predicate_offence")
PASTED_SOURCE = "analyst-paste"
_NODE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_DEFAULT_SECRETS = frozenset(
    {"", "changeme", "change-me", "password", "fiumatch", "secret", "admin"}
)
FP_RATE = 1e-6
PRECOMPUTE_KIND = "output-index"
_INDEX_ROW = 64 + 16 + 1 + 1  # output, subject id, key type code, strength


class EpochRetiredError(ConflictError):
    """The request names a key epoch that is retired (its key material is destroyed)."""

    code = "epoch_retired"


class PeerRefusedError(NodeError):
    """A peer refused or could not be reached (carries the peer's error code, if any)."""

    code = "peer_refused"
    http_status = 502


# --------------------------------------------------------------------------------------------
# Configuration and the node directory


@dataclass(frozen=True, kw_only=True)
class NodeConfig:
    """Validated settings of one node (``node.toml`` in the node directory, then env vars
    ``FIUMATCH_<NAME>`` override any key; ``FIUMATCH_PASSPHRASE`` gives the passphrase)."""

    node_dir: Path
    node_id: str
    host: str
    port: int
    public_url: str
    database: Path
    keys_dir: Path
    passphrase_file: Path
    tls_cert: Path
    tls_key: Path
    epoch_rotation_seconds: int = 86400
    retention_check_seconds: int = 3600
    scrypt_log2_n: int = 15
    passphrase: str = field(default="", repr=False)


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _check_private(path: Path, setting: str) -> None:
    if not path.is_file():
        raise SettingsError("a required file is missing", setting=setting)
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        raise InsecureKeyFileError(
            "a secret file is readable or writable by group or others; chmod 600 it",
            setting=setting,
        )


def make_self_signed_cert(
    cert_path: Path, key_path: Path, hosts: Sequence[str], common_name: str, now: datetime
) -> None:
    """A self-signed TLS certificate for ``hosts`` (private key written 0600)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    alt: list[x509.GeneralName] = []
    for h in hosts:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            alt.append(x509.DNSName(h))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    _write_private(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def init_node_dir(
    node_dir: Path,
    node_id: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8443,
    public_url: str | None = None,
    rng: Rng = os.urandom,
    clock: Clock | None = None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    scrypt_log2_n: int = 15,
) -> tuple[NodeConfig, str]:
    """Create a node directory: config, sealed keys, TLS certificate, database, admin user.

    Returns the config and the admin bearer token (also saved 0600 in ``secrets/admin.token``).
    Refuses a directory that already holds a node.
    """
    import time

    now = (clock or time.time)()
    if not _NODE_ID_RE.match(node_id):
        raise SettingsError("node id must be 1-64 of [A-Za-z0-9._-]", setting="node_id")
    node_dir = Path(node_dir).resolve()
    if (node_dir / "node.toml").exists():
        raise ConflictError("a node already exists in this directory")
    node_dir.mkdir(parents=True, exist_ok=True)
    passphrase = rng(24).hex()
    _write_private(node_dir / "secrets" / "passphrase", passphrase.encode())
    keys = NodeKeys.generate(rng)
    keys.save(node_dir / "keys", passphrase, rng, log2_n=scrypt_log2_n)
    if tls_cert is None or tls_key is None:
        tls_cert, tls_key = node_dir / "tls" / "cert.pem", node_dir / "tls" / "key.pem"
        make_self_signed_cert(
            tls_cert,
            tls_key,
            sorted({host, "127.0.0.1", "localhost"}),
            node_id,
            datetime.fromtimestamp(now, tz=UTC),
        )
    url = public_url or f"https://{host}:{port}"
    text = (
        f'node_id = "{node_id}"\nhost = "{host}"\nport = {port}\npublic_url = "{url}"\n'
        f'database = "node.db"\nkeys_dir = "keys"\npassphrase_file = "secrets/passphrase"\n'
        f'tls_cert = "{tls_cert}"\ntls_key = "{tls_key}"\n'
        f"epoch_rotation_seconds = 86400\nretention_check_seconds = 3600\n"
        f"scrypt_log2_n = {scrypt_log2_n}\n"
    )
    (node_dir / "node.toml").write_text(text, encoding="utf-8")
    config = load_config(node_dir, env={})
    store = Store.open(config.database)
    try:
        token = issue_token(rng)
        store.users.add(
            User(
                name="admin",
                role="admin",
                token_id=token.token_id,
                token_hash=token.token_hash,
                created_at=int(now),
            )
        )
    finally:
        store.close()
    _write_private(node_dir / "secrets" / "admin.token", token.token.encode())
    return config, token.token


def load_config(node_dir: Path, env: Mapping[str, str] | None = None) -> NodeConfig:
    """Read and validate ``node.toml`` plus ``FIUMATCH_*`` env overrides.

    Refuses (``SettingsError``/``InsecureKeyFileError``) a missing setting or file, a default
    or short passphrase, and a secret file others can read.
    """
    env = dict(os.environ if env is None else env)
    node_dir = Path(node_dir).resolve()
    path = node_dir / "node.toml"
    if not path.is_file():
        raise SettingsError("node.toml not found: run `fiumatch node init` first", setting="dir")
    try:
        raw: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError:
        raise SettingsError("node.toml is not valid TOML", setting="node.toml") from None
    for key in [*list(raw), "passphrase"]:
        value = env.get("FIUMATCH_" + key.upper())
        if value is not None:
            raw[key] = int(value) if isinstance(raw.get(key), int) else value

    def req(name: str) -> Any:
        if name not in raw or raw[name] in ("", None):
            raise SettingsError("a required setting is missing", setting=name)
        return raw[name]

    def p(name: str) -> Path:
        value = Path(str(req(name)))
        return value if value.is_absolute() else node_dir / value

    node_id = str(req("node_id"))
    if not _NODE_ID_RE.match(node_id):
        raise SettingsError("node id must be 1-64 of [A-Za-z0-9._-]", setting="node_id")
    try:
        port = int(req("port"))
        rotation = int(raw.get("epoch_rotation_seconds", 86400))
        retention = int(raw.get("retention_check_seconds", 3600))
        log2_n = int(raw.get("scrypt_log2_n", 15))
    except ValueError:
        raise SettingsError("a numeric setting is not a number", setting="port") from None
    if not 0 < port < 65536:
        raise SettingsError("port out of range", setting="port")
    if rotation < 1:
        raise SettingsError("epoch rotation must be positive", setting="epoch_rotation_seconds")
    passphrase_file = p("passphrase_file")
    passphrase = str(raw.get("passphrase", ""))
    if not passphrase:
        _check_private(passphrase_file, "passphrase_file")
        passphrase = passphrase_file.read_text(encoding="utf-8").strip()
    if passphrase.lower() in _DEFAULT_SECRETS or len(passphrase) < 16:
        raise SettingsError(
            "the passphrase is a default value or shorter than 16 characters", setting="passphrase"
        )
    tls_key = p("tls_key")
    _check_private(tls_key, "tls_key")
    tls_cert = p("tls_cert")
    if not tls_cert.is_file():
        raise SettingsError("the TLS certificate is missing", setting="tls_cert")
    keys_dir = p("keys_dir")
    for name in ("identity.sealed", "oprf-master.sealed"):
        _check_private(keys_dir / name, "keys_dir")
    return NodeConfig(
        node_dir=node_dir,
        node_id=node_id,
        host=str(req("host")),
        port=port,
        public_url=str(req("public_url")).rstrip("/"),
        database=p("database"),
        keys_dir=keys_dir,
        passphrase_file=passphrase_file,
        tls_cert=tls_cert,
        tls_key=tls_key,
        epoch_rotation_seconds=rotation,
        retention_check_seconds=retention,
        scrypt_log2_n=log2_n,
        passphrase=passphrase,
    )


# --------------------------------------------------------------------------------------------
# Audit: the one seam every event goes through


class AuditSink:
    """Append audit events to the store's Merkle log, using ``fiumatch.auditlog``'s entry
    encoding and appender. The only function the node calls to audit anything.

    Never pass identifiers, match keys, blinded elements or OPRF outputs: the entry schema has no
    field for them (digests and counts only), and free text is screened by the entry encoder.
    """

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._lock = threading.Lock()

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
    ) -> int:
        """Append one event; returns its sequence number. ``event_type`` is an
        ``auditlog.entry.EventType`` name (case-insensitive); ``extra`` holds other entry
        fields by name (``mode``, ``direction``, ``clause``, ``hits``, ``purpose``...)."""
        from fiumatch.auditlog.entry import Entry, EventType, encode_entry
        from fiumatch.auditlog.errors import AuditLogError
        from fiumatch.auditlog.merkle import CompactRange, leaf_hash
        from fiumatch.store import AuditLeaf, AuditNode

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
        event = EventType[event_type.upper()]
        from fiumatch.auditlog.entry import EVENT_SCHEMAS

        for name in ("request_sha256", "response_sha256"):
            if fields.get(name) is None and name in EVENT_SCHEMAS[event].required:
                fields[name] = _EMPTY_DIGEST  # no body in that direction (documented)
        with self._lock:
            seq = self._store.audit.size()
            time_ms = int(self._clock() * 1000)
            kwargs = {k: v for k, v in fields.items() if v is not None}
            try:
                entry = Entry(seq=seq, time_ms=time_ms, event=event, **kwargs)
            except AuditLogError:
                # Keep the log complete even if an optional field does not fit the schema:
                # drop the optional fields the event type does not allow and retry once.
                from fiumatch.auditlog.entry import EVENT_SCHEMAS

                allowed = EVENT_SCHEMAS[event].allowed
                kwargs = {k: v for k, v in kwargs.items() if k in allowed}
                entry = Entry(seq=seq, time_ms=time_ms, event=event, **kwargs)
            data = encode_entry(entry)
            lh = leaf_hash(data)

            def get_node(level: int, index: int) -> bytes:
                node = self._store.audit.node(level, index)
                assert node is not None
                return node

            frontier = CompactRange.from_store(seq, get_node)
            nodes = frontier.append(lh)
            self._store.audit.append(
                AuditLeaf(seq=seq, time=time_ms // 1000, entry=data, leaf_hash=lh),
                [AuditNode(level=n.level, index=n.index, hash=n.hash) for n in nodes],
            )
            return seq


def _token(value: str) -> str:
    """An audit token: keep [A-Za-z0-9._:/-], at most 64 characters."""
    cleaned = re.sub(r"[^A-Za-z0-9._:/-]", "-", value).lstrip("._:/-") or "x"
    return cleaned[:64]


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


_EMPTY_DIGEST = hashlib.sha256(b"").digest()


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
) -> Agreement:
    """The first agreement permitting the request, or ``AgreementRefusedError`` naming the
    clause of the closest one that refused (``no_agreement``, ``validity``, ``mode``,
    ``purpose``, ``id_type``, ``set_size``)."""
    if not agreements:
        raise AgreementRefusedError("no agreement with this peer", clause="no_agreement")
    types = set(id_types)
    refusal: AgreementRefusedError | None = None
    for a in agreements:
        if not a.in_force(now):
            err = AgreementRefusedError("the agreement is not in force now", clause="validity")
        elif mode not in a.modes:
            err = AgreementRefusedError("the agreement does not allow this mode", clause="mode")
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
        order = ("validity", "mode", "purpose", "id_type", "set_size")
        if refusal is None or order.index(err.clause) > order.index(refusal.clause):
            refusal = err
    assert refusal is not None
    raise refusal


# --------------------------------------------------------------------------------------------
# Querier-side filter machine that keeps the OPRF outputs of its hits (the hit tokens)


class _TokenFilterQuerier(FilterQuerier):
    """A :class:`FilterQuerier` that also keeps the OPRF output of every hit: the hit token a
    disclosure request carries. Uses the parent's state; adds no protocol behaviour."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._evaluated: list[bytes] = []
        self.hit_outputs: dict[int, bytes] = {}

    def _on_eval_chunk(self, body: Any) -> list[bytes]:
        self._evaluated.append(body.elements)
        return super()._on_eval_chunk(body)

    def _on_eval_end(self, body: Any) -> list[bytes]:
        evaluated = b"".join(self._evaluated)
        for i in self._hits:
            element = evaluated[i * ELEMENT_WIDTH : (i + 1) * ELEMENT_WIDTH]
            (out,) = finalize_chunk(
                self._keys[i : i + 1], self._blinds[i : i + 1], element, self._oprf_mode
            )
            self.hit_outputs[i] = out
        self._evaluated = []
        return super()._on_eval_end(body)


# --------------------------------------------------------------------------------------------
# The service


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
    lock: threading.Lock = field(default_factory=threading.Lock)
    owner_index: dict[bytes, list[tuple[str, int, int]]] = field(default_factory=dict)


@dataclass
class _Progress:
    peers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _KeyRef:
    subject_id: str
    key_type: int
    strength: int


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


def _wire_token(stored: bytes) -> tuple[bytes, int]:
    """Stored hit token = core || epoch (8) || query tag (8): the core and epoch go to the owner."""
    return stored[:-16], int.from_bytes(stored[-16:-8], "big")


def _stored_token(core: bytes, epoch: int, query_id: str) -> bytes:
    return core + epoch.to_bytes(8, "big") + hashlib.sha256(query_id.encode()).digest()[:8]


def _mutual_token(session_id: bytes, key: bytes) -> bytes:
    return hashlib.sha256(b"fiumatch-mutual-hit-v1" + session_id + key).digest()


class NodeService:
    """Everything a node does, behind methods the routes call."""

    def __init__(
        self,
        *,
        config: NodeConfig,
        keys: NodeKeys,
        store: Store,
        clock: Clock,
        rng: Rng,
        peer_client_factory: Callable[[Peer], Any] | None = None,
    ) -> None:
        self.config = config
        self.node_id = config.node_id
        self.keys = keys
        self.store = store
        self.clock = clock
        self.rng = rng
        self.audit = AuditSink(store, clock)
        self._live: dict[str, _LiveSession] = {}
        self._live_lock = threading.Lock()
        self._ledgers: dict[tuple[str, int], tuple[FilterLedger, dict[bytes, _KeyRef]]] = {}
        self._epoch_lock = threading.RLock()
        self._progress: dict[str, _Progress] = {}
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=8)
        self._background: list[concurrent.futures.Future[Any]] = []
        if peer_client_factory is None:
            from fiumatch.client.peer import PeerClient

            def factory(peer: Peer) -> Any:
                return PeerClient(
                    own_id=self.node_id,
                    key=self.keys.identity,
                    peer=peer,
                    clock=self.clock,
                    rng=self.rng,
                )

            peer_client_factory = factory
        self._peer_client = peer_client_factory

    def now(self) -> int:
        return int(self.clock())

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    # -- identity -----------------------------------------------------------------------------

    def well_known(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "url": self.config.public_url,
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

    # -- peers and agreements -------------------------------------------------------------------

    def add_peer(self, actor: User, node_id: str, url: str, expected_fingerprint: str) -> Peer:
        """Pin a peer after the out-of-band fingerprint check (as for SSH host keys)."""
        from fiumatch.client.peer import fetch_well_known

        self.require_role(actor, "admin")
        info = fetch_well_known(url)
        raw = bytes.fromhex(str(info["public_key"]))
        actual = fingerprint(raw)
        if actual != expected_fingerprint:
            raise ConflictError(
                "the peer's key fingerprint differs from the one given; not pinned",
                fetched=actual,
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
    ) -> Agreement:
        self.require_role(actor, "admin")
        self._require_peer(peer_id)
        bad = [m for m in modes if m not in MODES] + [p for p in purposes if p not in PURPOSES]
        bad += [t for t in identifier_types if _key_type_code(t) is None]
        if bad or not modes or not purposes or not identifier_types:
            raise ConflictError("unknown or empty mode, purpose or identifier type", bad=bad)
        document = {
            "peer": peer_id,
            "modes": sorted(modes),
            "purposes": sorted(purposes),
            "identifier_types": sorted(identifier_types),
            "budget_per_epoch": budget_per_epoch,
            "max_set_size": max_set_size,
            "valid_from": valid_from,
            "valid_until": valid_until,
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

    def _require_peer(self, peer_id: str) -> Peer:
        peer = self.store.peers.get(peer_id)
        if peer is None or not peer.active:
            raise NotFoundError("no such peer")
        return peer

    # -- subjects -----------------------------------------------------------------------------

    def load_subjects(self, subjects: Iterable[Any]) -> int:
        """Store identifiers-package subjects with their match keys (the node's own data)."""
        count = 0
        now = self.now()
        with self.store.transaction():
            for s in subjects:
                self.store.subjects.upsert_with_keys(*_to_stored(s), now=now)
                count += 1
        return count

    def _served_keys(self, type_codes: set[int]) -> list[StoredKey]:
        """Our match keys of the given types, excluding analyst-pasted subjects."""
        if not type_codes:
            return []
        conn = self.store.db.connection()
        marks = ",".join("?" * len(type_codes))
        rows = conn.execute(
            f"""SELECT k.subject_id, k.key_type, k.key, k.strength FROM match_keys k
                JOIN subjects s ON s.id = k.subject_id
                WHERE s.source != ? AND k.key_type IN ({marks})
                ORDER BY k.key, k.key_type, k.subject_id""",
            (PASTED_SOURCE, *sorted(type_codes)),
        ).fetchall()
        return [
            StoredKey(subject_id=r[0], key_type=r[1], key=bytes(r[2]), strength=r[3]) for r in rows
        ]

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
        """Create the epoch (if new) and precompute its encoded set (OPRF outputs of our keys
        of the allowed types, with the subject each belongs to)."""
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
        keys = self._served_keys(self._allowed_type_codes(peer_id))
        outputs = evaluate_outputs(kp, [k.key for k in keys], Suite.VOPRF_RISTRETTO255_SHA512)
        rows = bytearray()
        for k, out in zip(keys, outputs, strict=True):
            rows += out + bytes.fromhex(k.subject_id)[:16].ljust(16, b"\0")
            rows += bytes((k.key_type & 0xFF, k.strength & 0xFF))
        self.store.epochs.put_blob(
            EpochBlob(
                peer_id=peer_id,
                side="local",
                epoch=epoch,
                kind=PRECOMPUTE_KIND,
                data=bytes(rows),
                created_at=self.now(),
            )
        )
        self._ledgers.pop((peer_id, epoch), None)

    def _refresh_precompute(self, peer_id: str) -> None:
        with self._epoch_lock:
            active = self.ensure_epoch(peer_id)
            self._prepare_epoch(peer_id, active.epoch)

    def _ledger(self, peer_id: str, epoch: int) -> tuple[FilterLedger, dict[bytes, _KeyRef]]:
        """The filter and output index of an active epoch (rebuilt from the stored encoded set
        after a restart, without re-evaluating the OPRF)."""
        cached = self._ledgers.get((peer_id, epoch))
        if cached is not None:
            return cached
        blob = self.store.epochs.get_blob(peer_id, "local", epoch, PRECOMPUTE_KIND)
        if blob is None:
            self._prepare_epoch(peer_id, epoch)
            blob = self.store.epochs.get_blob(peer_id, "local", epoch, PRECOMPUTE_KIND)
            assert blob is not None
        index: dict[bytes, _KeyRef] = {}
        data = blob.data
        for i in range(0, len(data), _INDEX_ROW):
            row = data[i : i + _INDEX_ROW]
            index[row[:64]] = _KeyRef(row[64:80].hex(), row[80], row[81])
        ledger = FilterLedger.bloom(
            list(index),
            suite=Suite.VOPRF_RISTRETTO255_SHA512,
            epoch=epoch,
            fp_rate=FP_RATE,
            capacity=max(1, len(index)),
        )
        self._ledgers[(peer_id, epoch)] = (ledger, index)
        return ledger, index

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
        else:
            self._background += futures
        return results

    def _finish_rotation(self, actor: str, peer_id: str, old: int, new: int) -> None:
        self._prepare_epoch(peer_id, new)
        self._ledger(peer_id, new)
        with self._epoch_lock:
            retired = self.store.epochs.activate(peer_id, "local", new, now=self.now())
            if retired is not None:
                self._ledgers.pop((peer_id, retired.epoch), None)
            self.store.budget.prune_before(new)
        kp = self._epoch_key(peer_id, new)
        self.audit.record(
            "epoch_rotated",
            actor=actor,
            peer=peer_id,
            agreement_id=f"epoch:{peer_id}",
            epoch=new,
            extra={"epoch_public_key": kp.pk},
        )

    def rotate_due(self) -> None:
        """Rotate every peer whose active epoch is older than the rotation interval."""
        now = self.now()
        for peer in self.store.peers.list_all():
            active = self.store.epochs.active(peer.node_id, "local")
            if active and (active.activated_at or 0) + self.config.epoch_rotation_seconds <= now:
                self.rotate("scheduler", peer.node_id, wait=True)

    def _refill_at(self, epoch: Epoch) -> int:
        return (epoch.activated_at or self.now()) + self.config.epoch_rotation_seconds

    def purge_expired(self, actor: str, today: date | None = None) -> int:
        """Delete subjects past retention; they leave the next epoch (the encoded sets of the
        active epochs are recomputed without them). Audited."""
        today = today or datetime.fromtimestamp(self.now(), tz=UTC).date()
        n = self.store.subjects.purge_expired(today)
        self.store.db.checkpoint()
        self.audit.record("purge", actor=actor, extra={"scope": "retention", "records": n})
        if n:
            for peer in self.store.peers.list_all():
                self._refresh_precompute(peer.node_id)
        return n

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

    def open_session(self, peer_id: str, body: bytes, meta: Mapping[str, Any]) -> dict[str, Any]:
        """A peer asks to open a session: check our agreement and budget, bind an epoch."""
        digest = _digest(body)
        sid = str(meta.get("session_id", ""))
        try:
            if not re.fullmatch(r"[0-9a-f]{32}", sid):
                raise ConflictError("session_id must be 32 hex digits")
            mode = str(meta.get("mode"))
            purpose = str(meta.get("purpose"))
            id_types = tuple(str(t) for t in meta.get("id_types", []))
            set_size = int(meta.get("set_size", -1))
            if set_size < 0:
                raise ConflictError("set_size must be given")
            peer = self._require_peer(peer_id)
            agreement = check_agreement(
                self.store.agreements.list_for_peer(peer_id),
                now=self.now(),
                mode=mode,
                purpose=purpose,
                id_types=id_types,
                set_size=set_size,
            )
            epoch = self.ensure_epoch(peer_id)
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
        except (AgreementRefusedError, BudgetExhaustedError, NotFoundError, ConflictError) as err:
            self._refuse(
                peer_id,
                sid if len(sid) == 32 else None,
                err,
                digest,
                mode=_token(str(meta.get("mode", "x"))),
            )
            raise
        machine = self._owner_machine(peer, mode, sid, epoch.epoch, id_types, set_size)
        live = _LiveSession(
            machine=machine[0],
            peer_id=peer_id,
            mode=mode,
            epoch=epoch.epoch,
            agreement_id=agreement.id,
            purpose=purpose,
            id_types=id_types,
            set_size=set_size,
            owner_index=machine[1],
        )
        with self._live_lock:
            if sid in self._live or self.store.sessions.get(sid) is not None:
                raise ConflictError("that session id is taken")
            self._live[sid] = live
        from fiumatch.store import SessionRecord

        self.store.sessions.create(
            SessionRecord(
                id=sid,
                peer_id=peer_id,
                role="responder",
                mode=mode,
                state="start",
                epoch=epoch.epoch,
                created_at=self.now(),
                updated_at=self.now(),
            )
        )
        kp_pk = self._epoch_key(peer_id, epoch.epoch).pk if mode == "filter" else b""
        response = {
            "session_id": sid,
            "epoch": epoch.epoch,
            "mode": mode,
            "agreement": agreement.id,
            "public_key": kp_pk.hex(),
            "budget_remaining": charge.remaining,
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
        return response

    def _owner_machine(
        self, peer: Peer, mode: str, sid: str, epoch: int, id_types: Sequence[str], set_size: int
    ) -> tuple[SessionMachine, dict[bytes, list[tuple[str, int, int]]]]:
        session_id = bytes.fromhex(sid)
        allowed = {c for c in (_key_type_code(t) for t in id_types) if c is not None}
        if mode == "filter":
            ledger, _ = self._ledger(peer.node_id, epoch)
            limits = Limits(max_elements=max(set_size, 1))
            return FilterOwner(
                session_id=session_id,
                epoch=epoch,
                suite=Suite.VOPRF_RISTRETTO255_SHA512,
                key_pair=self._epoch_key(peer.node_id, epoch),
                ledger=ledger,
                rng=self.rng,
                limits=limits,
            ), {}
        keys = self._served_keys(allowed & self._allowed_type_codes(peer.node_id))
        index: dict[bytes, list[tuple[str, int, int]]] = {}
        for k in keys:
            index.setdefault(k.key, []).append((k.subject_id, k.key_type, k.strength))
        limits = Limits(max_elements=max(set_size, len(index), 1))
        if mode == "mutual":
            return MutualOwner(
                session_id=session_id,
                epoch=epoch,
                elements=list(index),
                signing_key=self.keys.identity,
                peer_key=public_key_from_raw(peer.public_key),
                rng=self.rng,
                limits=limits,
            ), index
        if mode == "cardinality":
            return CardinalityOwner(
                session_id=session_id,
                epoch=epoch,
                elements=list(index),
                rng=self.rng,
                limits=limits,
            ), {}
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
        out: list[bytes] = []
        with live.lock:
            reader = FrameReader(live.machine.limits)
            try:
                frames = reader.feed(body)
                reader.close()
                for frame in frames:
                    decoded = decode_frame(frame, live.machine.limits)
                    if decoded.header.msg_type is MsgType.HELLO:
                        assert isinstance(decoded.body, Hello)
                        if decoded.body.element_count > live.set_size:
                            raise AgreementRefusedError(
                                "HELLO announces more elements than were opened", clause="set_size"
                            )
                    out += live.machine.receive(frame)
            except FiumatchError as err:
                self._refuse(peer_id, sid, err, digest, epoch=live.epoch)
                self._close_live(sid, live, "failed")
                raise
            if live.machine.done:
                self._finish_owner(sid, live, digest)
        return b"".join(out)

    def _close_live(self, sid: str, live: _LiveSession, outcome: str) -> None:
        with self._live_lock:
            self._live.pop(sid, None)
        rec = self.store.sessions.get(sid)
        if rec is not None and rec.open:
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
        self.store.sessions.transition(
            sid,
            from_state="start",
            to_state="done",
            now=self.now(),
            close=True,
            add_received=learned,
            add_matches=matches,
        )
        with self._live_lock:
            self._live.pop(sid, None)
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
        hits = self._group_hits(
            qid,
            live.peer_id,
            live.epoch,
            [
                (k, refs, _mutual_token(bytes.fromhex(sid), k))
                for k in keys
                for refs in [live.owner_index.get(k, [])]
            ],
        )
        self.store.queries.record_result(
            QueryResult(
                query_id=qid,
                peer_id=live.peer_id,
                status="ok",
                reason="mutual match (as owner)",
                hit_count=len(hits),
                recorded_at=self.now(),
                session_id=sid,
            ),
            hits,
        )
        self.store.queries.set_status(qid, "done", now=self.now())

    def _group_hits(
        self,
        query_id: str,
        peer_id: str,
        epoch: int,
        matched: Iterable[tuple[bytes, Sequence[tuple[str, int, int]], bytes]],
    ) -> list[Hit]:
        """One hit per subject: the key types matched, the strongest strength, and the token of
        its strongest key."""
        by_subject: dict[str, tuple[set[int], int, bytes]] = {}
        for _key, refs, token in matched:
            for subject_id, key_type, strength in refs:
                types, best, tok = by_subject.get(subject_id, (set(), -1, b""))
                types.add(key_type)
                if strength > best:
                    best, tok = strength, token
                by_subject[subject_id] = (types, best, tok)
        return [
            Hit(
                hit_token=_stored_token(tok, epoch, query_id),
                query_id=query_id,
                peer_id=peer_id,
                subject_id=sid,
                key_types=tuple(sorted(types)),
                strength=best,
                created_at=self.now(),
            )
            for sid, (types, best, tok) in sorted(by_subject.items())
        ]

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
        """Create a query and fan it out concurrently to every peer whose agreement permits it."""
        self.require_role(user, "analyst", "supervisor")
        if purpose not in PURPOSES:
            raise ConflictError("unknown purpose", purposes=list(PURPOSES))
        if mode not in MODES:
            raise ConflictError("unknown mode", modes=list(MODES))
        if not (legal_basis.strip() and case_ref.strip()):
            raise ConflictError("legal basis and case reference are required")
        qid = "q-" + self.rng(8).hex()
        subjects = list(subject_ids)
        if records:
            subjects += self._store_pasted(qid, records)
        if all_subjects:
            subjects += [
                r[0]
                for r in self.store.db.connection().execute(
                    "SELECT id FROM subjects WHERE source != ? ORDER BY id", (PASTED_SOURCE,)
                )
            ]
        for s in subjects:
            if self.store.subjects.get(s) is None:
                raise NotFoundError("no such subject")
        self.store.queries.create(
            Query(
                id=qid,
                analyst=user.name,
                purpose=purpose,
                legal_basis=legal_basis,
                case_ref=case_ref,
                status="running",
                created_at=self.now(),
            )
        )
        self.audit.record(
            "query",
            actor=user.name,
            counts_in=len(subjects),
            extra={
                "purpose": purpose,
                "legal_basis": legal_basis[:256],
                "case_ref": case_ref[:256],
                "mode": mode,
            },
        )
        targets = [p for p in self.store.peers.list_all() if not peers or p.node_id in peers]
        progress = _Progress({p.node_id: "queued" for p in targets})
        self._progress[qid] = progress
        future = self._executor.submit(
            self._run_query,
            qid,
            user.name,
            purpose,
            case_ref,
            mode,
            sorted(set(subjects)),
            targets,
            tuple(id_types),
        )
        if wait:
            future.result()
        return self.get_query(user, qid)

    def _store_pasted(self, qid: str, records: Sequence[Mapping[str, Any]]) -> list[str]:
        from fiumatch.ingest import Reject, build_subject

        out = []
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
                reasons = sorted({r.reason for r in built if isinstance(r, Reject)})
                raise ConflictError("a pasted record was rejected", record=i, reasons=reasons)
            self.store.subjects.upsert_with_keys(*_to_stored(built), now=self.now())
            out.append(built.subject_id)
        return out

    def _run_query(
        self,
        qid: str,
        analyst: str,
        purpose: str,
        case_ref: str,
        mode: str,
        subjects: list[str],
        targets: list[Peer],
        id_types: tuple[str, ...],
    ) -> None:
        futures = {
            self._executor.submit(
                self._query_peer, qid, analyst, purpose, case_ref, mode, subjects, peer, id_types
            ): peer
            for peer in targets
        }
        for f in concurrent.futures.as_completed(futures):
            peer = futures[f]
            try:
                f.result()
            except Exception as exc:  # a bug in one peer's run must not lose the others
                reason = exc.reason if isinstance(exc, FiumatchError) else type(exc).__name__
                self._record_peer(qid, peer.node_id, "unreachable", f"error: {reason}")
        self.store.queries.set_status(qid, "done", now=self.now())

    def _record_peer(
        self,
        qid: str,
        peer_id: str,
        status: str,
        reason: str,
        hits: Sequence[Hit] = (),
        session: str | None = None,
    ) -> None:
        progress = self._progress.get(qid)
        if progress is not None:
            progress.peers[peer_id] = status
        with contextlib.suppress(RecordConflictError):  # a peer's result is recorded once
            self.store.queries.record_result(
                QueryResult(
                    query_id=qid,
                    peer_id=peer_id,
                    status=status,  # type: ignore[arg-type]
                    reason=reason[:500],
                    hit_count=len(hits),
                    recorded_at=self.now(),
                    session_id=session,
                ),
                hits,
            )

    def _query_peer(
        self,
        qid: str,
        analyst: str,
        purpose: str,
        case_ref: str,
        mode: str,
        subjects: list[str],
        peer: Peer,
        wanted_types: tuple[str, ...],
    ) -> None:
        # Our own agreement must permit it too.
        ours = self.store.agreements.in_force(peer.node_id, self.now())
        allowed = set().union(*(set(a.identifier_types) for a in ours)) if ours else set()
        types = set(wanted_types) & allowed if wanted_types else allowed
        keys: dict[bytes, list[tuple[str, int, int]]] = {}
        for s in subjects:
            for k in self.store.subjects.keys_of(s):
                if _key_type_name(k.key_type) in types:
                    keys.setdefault(k.key, []).append((k.subject_id, k.key_type, k.strength))
        used_types = sorted({_key_type_name(t) for refs in keys.values() for _, t, _ in refs})
        try:
            agreement = check_agreement(
                self.store.agreements.list_for_peer(peer.node_id),
                now=self.now(),
                mode=mode,
                purpose=purpose,
                id_types=used_types or sorted(types) or ["none"],
                set_size=len(keys),
            )
        except AgreementRefusedError as err:
            self._record_peer(qid, peer.node_id, "refused", f"our agreement: {err.clause}")
            return
        if not keys:
            self._record_peer(qid, peer.node_id, "ok", "no match keys of the agreed types")
            return
        with self._peer_client(peer) as client:
            self._query_peer_with(
                client, qid, analyst, purpose, case_ref, mode, peer, keys, used_types, agreement
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
        keys: dict[bytes, list[tuple[str, int, int]]],
        used_types: list[str],
        agreement: Agreement,
    ) -> None:
        from fiumatch.client.peer import PeerError

        progress = self._progress[qid]
        element_list = list(keys)
        for attempt in range(2):
            sid = self.rng(16).hex()
            progress.peers[peer.node_id] = "opening"
            try:
                opened = client.open_session(
                    session_id=sid,
                    mode=mode,
                    purpose=purpose,
                    id_types=used_types,
                    set_size=len(element_list),
                )
                epoch = int(opened["epoch"])
                machine = self._querier_machine(mode, sid, epoch, element_list, peer, opened)
                progress.peers[peer.node_id] = "exchanging"
                self._pump(client, sid, epoch, machine, progress, peer.node_id)
                break
            except PeerError as err:
                if err.code == "epoch_retired" and attempt == 0:
                    continue
                status = "refused" if err.status in (403, 409, 429, 401, 404) else "unreachable"
                detail = f"{err.code}" + (f" ({err.clause})" if err.clause else "")
                if err.retry_after is not None:
                    detail += f"; budget refills in {err.retry_after}s"
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
        hits: list[Hit] = []
        reason = "ok"
        if isinstance(machine, _TokenFilterQuerier) and machine.result:
            r = machine.result
            hits = self._group_hits(
                qid,
                peer.node_id,
                epoch,
                [
                    (element_list[i], keys[element_list[i]], machine.hit_outputs[i])
                    for i in r.hit_indices
                ],
            )
            reason = (
                f"filter: {len(r.hit_indices)} keys hit of {r.queried}; owner holds {r.owner_count}"
            )
        elif isinstance(machine, MutualQuerier) and machine.result:
            r2 = machine.result
            hits = self._group_hits(
                qid,
                peer.node_id,
                epoch,
                [(k, keys[k], _mutual_token(bytes.fromhex(sid), k)) for k in r2.intersection],
            )
            reason = f"mutual: {r2.count} keys in common (signed); owner holds {r2.peer_count}"
        elif isinstance(machine, CardinalityQuerier) and machine.result:
            r3 = machine.result
            reason = (
                f"cardinality: {r3.count} keys in common of {r3.own_count}; "
                f"owner holds {r3.peer_count}"
            )
        self._record_peer(qid, peer.node_id, "ok", reason, hits, session=sid)
        self.audit.record(
            "hit_count",
            actor=analyst,
            peer=peer.node_id,
            session=sid,
            agreement_id=agreement.id,
            epoch=epoch,
            extra={"hits": len(hits), "mode": mode, "case_ref": case_ref[:256]},
        )

    def _querier_machine(
        self,
        mode: str,
        sid: str,
        epoch: int,
        elements: list[bytes],
        peer: Peer,
        opened: Mapping[str, Any],
    ) -> SessionMachine:
        session_id = bytes.fromhex(sid)
        limits = Limits(max_elements=max(len(elements), 1 << 20))
        if mode == "filter":
            return _TokenFilterQuerier(
                session_id=session_id,
                epoch=epoch,
                suite=Suite.VOPRF_RISTRETTO255_SHA512,
                match_keys=elements,
                replica=FilterReplica(suite=Suite.VOPRF_RISTRETTO255_SHA512, epoch=epoch),
                rng=self.rng,
                limits=limits,
                owner_public_key=bytes.fromhex(str(opened["public_key"])),
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
            )
        return CardinalityQuerier(
            session_id=session_id, epoch=epoch, elements=elements, rng=self.rng, limits=limits
        )

    def _pump(
        self, client: Any, sid: str, epoch: int, machine: Any, progress: _Progress, peer_id: str
    ) -> None:
        outgoing: list[bytes] = machine.start()
        rounds = 0
        while outgoing:
            rounds += 1
            progress.peers[peer_id] = f"exchanging (round {rounds})"
            reply = client.send_frames(sid, epoch, b"".join(outgoing))
            reader = FrameReader(machine.limits)
            outgoing = []
            for frame in reader.feed(reply):
                outgoing += machine.receive(frame)
            reader.close()
        if not machine.done:
            raise ConflictError("the peer ended the session early")

    def get_query(self, user: User, qid: str) -> dict[str, Any]:
        self.require_role(user, "analyst", "supervisor", "auditor")
        q = self.store.queries.get(qid)
        if q is None:
            raise NotFoundError("no such query")
        results = {r.peer_id: r for r in self.store.queries.results(qid)}
        progress = self._progress.get(qid)
        peers = []
        names = set(results) | set(progress.peers if progress else ())
        for name in sorted(names):
            r = results.get(name)
            peers.append(
                {
                    "peer": name,
                    "status": r.status
                    if r
                    else (progress.peers.get(name, "?") if progress else "?"),
                    "done": r is not None,
                    "reason": r.reason if r else "",
                    "hit_count": r.hit_count if r else 0,
                    "session_id": r.session_id if r else None,
                }
            )
        hits = []
        for h in self.store.queries.hits(qid):
            s = self.store.subjects.get(h.subject_id)
            hits.append(
                {
                    "peer": h.peer_id,
                    "subject_id": h.subject_id,
                    "local_ref": s.local_ref if s else "",
                    "name": (s.display.get("name", "") if s else ""),
                    "key_types": [_key_type_name(t) for t in h.key_types],
                    "strength": h.strength,
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
        rows = (
            self.store.db.connection()
            .execute("SELECT * FROM sessions ORDER BY created_at, id")
            .fetchall()
        )
        return [dict(r) for r in rows]

    # -- disclosure ------------------------------------------------------------------------------

    def request_disclosure(
        self,
        user: User,
        *,
        hit_token: str,
        purpose: str,
        case_ref: str,
        legal_basis: str,
        onward_dissemination: bool = False,
    ) -> dict[str, Any]:
        """Ask the owner of a hit for the record behind it; carries only the hit token."""
        from fiumatch.client.peer import PeerError

        self.require_role(user, "analyst", "supervisor")
        try:
            stored = bytes.fromhex(hit_token)
        except ValueError:
            raise NotFoundError("no such hit") from None
        hit = self.store.queries.hit_by_token(stored)
        if hit is None:
            raise NotFoundError("no such hit")
        if purpose not in PURPOSES:
            raise ConflictError("unknown purpose")
        peer = self._require_peer(hit.peer_id)
        core, epoch = _wire_token(stored)
        did = "d-" + self.rng(8).hex()
        payload = {
            "request_id": did,
            "hit_token": core.hex(),
            "epoch": epoch,
            "purpose": purpose,
            "case_ref": case_ref,
            "legal_basis": legal_basis,
            "onward_dissemination_requested": onward_dissemination,
        }
        self.store.disclosures.create(
            Disclosure(
                id=did,
                direction="out",
                peer_id=peer.node_id,
                hit_token=stored,
                purpose=purpose,
                case_ref=case_ref,
                onward_consent=False,
                status="pending",
                created_at=self.now(),
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
                extra={"direction": "out", "case_ref": case_ref[:256], "purpose": purpose},
            )
            raise PeerRefusedError("the owner refused the request", peer_code=err.code) from None
        self.audit.record(
            "disclosure_requested",
            actor=user.name,
            peer=peer.node_id,
            session=did,
            request_digest=_digest(json.dumps(payload, sort_keys=True).encode()),
            extra={
                "direction": "out",
                "case_ref": case_ref[:256],
                "purpose": purpose,
                "legal_basis": legal_basis[:256] or None,
            },
        )
        return {"id": did, "peer": peer.node_id, "status": answer.get("status", "pending")}

    def receive_disclosure(
        self, peer_id: str, body: bytes, payload: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Owner side: a peer asks for the record behind a hit token (our OPRF output)."""
        digest = _digest(body)
        did = str(payload.get("request_id", ""))
        if not re.fullmatch(r"d-[0-9a-f]{16}", did):
            raise ConflictError("bad request id")
        self._require_peer(peer_id)
        core = bytes.fromhex(str(payload.get("hit_token", "")))
        epoch = int(payload.get("epoch", -1))
        purpose = str(payload.get("purpose", ""))
        try:
            self._resolve_token(peer_id, core, epoch)
            agreements = self.store.agreements.in_force(peer_id, self.now())
            if not agreements:
                raise AgreementRefusedError("no agreement in force", clause="no_agreement")
            if not any(purpose in a.purposes for a in agreements):
                raise AgreementRefusedError("purpose not agreed", clause="purpose")
        except NodeError as err:
            self._refuse(peer_id, did, err, digest)
            raise
        self.store.disclosures.create(
            Disclosure(
                id=did,
                direction="in",
                peer_id=peer_id,
                hit_token=core + epoch.to_bytes(8, "big"),
                purpose=purpose,
                case_ref=str(payload.get("case_ref", ""))[:256],
                onward_consent=False,
                status="pending",
                created_at=self.now(),
            )
        )
        self.audit.record(
            "disclosure_requested",
            actor=self.node_id,
            peer=peer_id,
            session=did,
            request_digest=digest,
            extra={
                "direction": "in",
                "case_ref": str(payload.get("case_ref", "-"))[:256] or "-",
                "purpose": purpose,
            },
        )
        return {
            "id": did,
            "status": "pending",
            "onward_dissemination": "requires the owner's prior consent",
        }

    def _resolve_token(self, peer_id: str, core: bytes, epoch: int) -> str:
        """Which of our subjects a hit token names (filter: our OPRF output; mutual: the token
        both sides derived). Refuses a token of a retired epoch."""
        if len(core) == 64:
            e = self.store.epochs.get(peer_id, "local", epoch)
            if e is None or e.state == "retired":
                raise EpochRetiredError("the hit's key epoch is retired; query again", epoch=epoch)
            _, index = self._ledger(peer_id, epoch)
            ref = index.get(core)
            if ref is None:
                raise NotFoundError("no record for that hit token")
            return ref.subject_id
        row = (
            self.store.db.connection()
            .execute(
                "SELECT subject_id FROM hits WHERE peer_id = ? AND substr(hit_token, 1, ?) = ? "
                "ORDER BY strength DESC LIMIT 1",
                (peer_id, len(core), core),
            )
            .fetchone()
        )
        if row is None:
            raise NotFoundError("no record for that hit token")
        return str(row[0])

    def list_disclosures(self, user: User, direction: str | None = None) -> list[dict[str, Any]]:
        self.require_role(user, "analyst", "supervisor", "auditor")
        return [
            _disclosure_dict(d)
            for d in self.store.disclosures.list_requests(
                direction="in" if direction == "in" else "out" if direction == "out" else None,
                limit=1000,
            )
        ]

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
        """A supervisor at the owner approves (releasing the chosen fields) or refuses."""
        self.require_role(user, "supervisor")
        d = self.store.disclosures.get(did)
        if d is None or d.direction != "in":
            raise NotFoundError("no such incoming request")
        if not reason.strip():
            raise ConflictError("a decision needs a reason")
        try:
            decided = self.store.disclosures.decide(
                did, "approved" if approve else "denied", reason=reason, now=self.now()
            )
        except RecordConflictError:
            raise ConflictError("the request was already decided") from None
        if approve:
            core, epoch = d.hit_token[:-8], int.from_bytes(d.hit_token[-8:], "big")
            subject = self.store.subjects.require(self._resolve_token(d.peer_id, core, epoch))
            shown = {
                "name": subject.display.get("name", ""),
                "local_ref": subject.local_ref,
                "subject_type": subject.subject_type,
                **dict(subject.display),
            }
            released: dict[str, Any] = {k: shown[k] for k in fields if k in shown}
            released["onward_dissemination"] = (
                "consented" if onward_consent else "requires the owner's prior consent"
            )
            released["decision_reason"] = reason
            decided = self.store.disclosures.mark_released(did, released, now=self.now())
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
        return _disclosure_dict(decided)

    def disclosure_for_peer(self, peer_id: str, did: str) -> dict[str, Any]:
        """Owner side: the requester polls the decision on its request."""
        d = self.store.disclosures.get(did)
        if d is None or d.direction != "in" or d.peer_id != peer_id:
            raise NotFoundError("no such request")
        out: dict[str, Any] = {"id": d.id, "status": d.status, "reason": d.decision_reason}
        if d.status == "released":
            out["released"] = dict(d.released or {})
        return out

    def refresh_disclosure(self, user: User, did: str) -> dict[str, Any]:
        """Requester side: fetch the owner's decision and record it."""
        self.require_role(user, "analyst", "supervisor")
        d = self.store.disclosures.get(did)
        if d is None or d.direction != "out":
            raise NotFoundError("no such outgoing request")
        if d.status in ("pending", "approved"):
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
            if status == "released" and d.status == "approved":
                d = self.store.disclosures.mark_released(
                    did, remote.get("released", {}), now=self.now()
                )
            if d.status != "pending":
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
        return _disclosure_dict(d)

    # -- audit -------------------------------------------------------------------------------

    def audit_entries(self, user: User, start: int = 0, end: int | None = None) -> dict[str, Any]:
        from fiumatch.auditlog.entry import decode_entry, entry_to_dict
        from fiumatch.auditlog.merkle import root_from_leaf_hashes

        self.require_role(user, "auditor")
        size = self.store.audit.size()
        end = size if end is None else min(end, size)
        entries = []
        for leaf in self.store.audit.leaves(start, end):
            d = entry_to_dict(decode_entry(leaf.entry))
            entries.append(d)
        root = root_from_leaf_hashes(self.store.audit.leaf_hashes(0, size)) if size else b""
        return {"size": size, "root": root.hex(), "entries": entries}


def _disclosure_dict(d: Disclosure) -> dict[str, Any]:
    return {
        "id": d.id,
        "direction": d.direction,
        "peer": d.peer_id,
        "purpose": d.purpose,
        "case_ref": d.case_ref,
        "status": d.status,
        "reason": d.decision_reason,
        "released": dict(d.released) if d.released is not None else None,
        "onward_dissemination": "requires the owner's prior consent",
        "created_at": d.created_at,
        "decided_at": d.decided_at,
    }


def _to_stored(subject: Any) -> tuple[StoredSubject, list[StoredKey]]:
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
    keys = list(
        {
            (k.type.code, k.encode()): StoredKey(
                subject_id=subject.subject_id,
                key_type=k.type.code,
                key=k.encode(),
                strength=int(k.strength),
            )
            for k in subject.keys
        }.values()
    )
    return stored, keys
