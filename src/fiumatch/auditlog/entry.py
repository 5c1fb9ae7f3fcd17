"""Audit log entries: the closed schema, its canonical binary encoding, event type codes.

This module owns what one audit entry may say and the exact bytes that are hashed into the
Merkle tree (``leaf_hash(encode_entry(entry))``). The schema is closed: a fixed set of typed
fields, each allowed or required per event type, so there is no place to put a subject
identifier, a match key, a blinded element or an OPRF output. Message bodies appear only as
SHA-256 digests. The only free-text fields are ``purpose``, ``legal_basis`` and ``case_ref``
(analyst metadata); they and the token fields are screened by :func:`identifier_like`, a
heuristic guard (e-mail addresses, IBANs, runs of 10+ digits), not a guarantee.

Canonical encoding, version 1 (integers big-endian)::

    u8  version = 1
    u16 event            EventType code
    u64 seq              leaf index, 0, 1, 2, ...
    u64 time_ms          Unix time in milliseconds (UTC), passed in by the caller
    u8  field_count
    field_count x { u8 tag; u16 length; u8 value[length] }    tags strictly ascending

Values: tokens, enums and text are UTF-8 (text NFC-normalised), u64 fields are exactly 8
bytes, digests exactly 32 bytes. Decoding refuses anything :func:`encode_entry` would not
produce, so ``encode_entry(decode_entry(b)) == b`` for every accepted ``b``.

It must never do I/O or read a clock; codes and tags are never renumbered or reused.
"""

from __future__ import annotations

import hashlib
import operator
import re
import struct
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import IntEnum, StrEnum
from typing import Final

from fiumatch.auditlog.errors import EntryError, IdentifierLikeValueError

__all__ = [
    "ENTRY_VERSION",
    "EVENT_SCHEMAS",
    "FIELD_TAGS",
    "Change",
    "Decision",
    "Direction",
    "Entry",
    "EntrySummary",
    "EventSchema",
    "EventType",
    "Outcome",
    "RefusalClause",
    "body_digest",
    "check_entry",
    "decode_entry",
    "encode_entry",
    "entry_from_dict",
    "entry_to_dict",
    "identifier_like",
    "is_exchange",
]

ENTRY_VERSION: Final = 1
_U64_MAX: Final = (1 << 64) - 1
_HEADER = struct.Struct(">BHQQB")
_FIELD = struct.Struct(">BH")
_U64 = struct.Struct(">Q")


class EventType(IntEnum):
    """What happened. Codes are stable: never renumbered, never reused."""

    SESSION_OPENED = 1
    SESSION_CLOSED = 2
    FILTER_PUBLISHED = 3
    FILTER_FETCHED = 4
    EVALUATION = 5
    REFUSAL = 6
    QUERY = 7
    HIT_COUNT = 8
    DISCLOSURE_REQUESTED = 9
    DISCLOSURE_DECIDED = 10
    AGREEMENT_CHANGED = 11
    PEER_CHANGED = 12
    EPOCH_ROTATED = 13
    PURGE = 14
    LOGIN = 15
    ROLE_CHANGED = 16


class Direction(StrEnum):
    """Who asked: ``out`` = this node sent the request, ``in`` = this node answered it."""

    IN = "in"
    OUT = "out"


class Decision(StrEnum):
    APPROVED = "approved"
    DENIED = "denied"


class Change(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    SUSPENDED = "suspended"
    REVOKED = "revoked"


class Outcome(StrEnum):
    OK = "ok"
    FAILED = "failed"
    REFUSED = "refused"
    ABORTED = "aborted"
    EXPIRED = "expired"


class RefusalClause(StrEnum):
    """The clause that refused a request. ``auth`` and ``protocol`` are not agreement clauses
    (a bad signature, a malformed message); the policy check does not judge them."""

    NO_AGREEMENT = "no_agreement"
    PEER = "peer"
    VALIDITY = "validity"
    MODE = "mode"
    PURPOSE = "purpose"
    ID_TYPE = "id_type"
    SET_SIZE = "set_size"
    BUDGET = "budget"
    EPOCH = "epoch"
    AUTH = "auth"
    PROTOCOL = "protocol"
    PROOFS = "proofs"
    """The request asked for VOPRF proofs in filter mode where the agreement says otherwise (or
    the reverse). Not judged by the policy check: the entry does not hold the flag asked for."""


# --- value kinds ------------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}")
_EMAIL_RE = re.compile(r"[^\s@]+@[^\s@]+\.[^\s@]+")
_DIGITS_RE = re.compile(r"[0-9]{10,}")
_IBAN_START_RE = re.compile(r"(?=([A-Z]{2})[0-9]{2})")
_TEXT_MAX: Final = 256
# ISO 13616 IBAN lengths by country (the SWIFT registry): a candidate must have its country's
# exact length and a valid mod-97 check sum, so random references rarely look like one.
_IBAN_LENGTHS: Final = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30,
    "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
    "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}
_IBAN_MIN: Final = min(_IBAN_LENGTHS.values())


def _iban_valid(candidate: str) -> bool:
    if not candidate.isalnum() or not candidate.isascii():
        return False
    moved = candidate[4:] + candidate[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def identifier_like(value: str, *, free_text: bool = True) -> str | None:
    """Why ``value`` looks like a subject identifier (``"email"``, ``"iban"``, ``"number"``),
    or ``None``. A heuristic guard: it can miss identifiers and flag harmless text.

    Free text is screened for e-mail addresses, IBANs (a known country code, that country's
    exact length and a valid ISO 13616 check sum; spaces and dashes ignored) and runs of 10
    or more digits; tokens for IBANs only.
    """
    if free_text and _EMAIL_RE.search(value):
        return "email"
    if len(value) >= _IBAN_MIN:
        compact = re.sub(r"[\s-]", "", value).upper()
        for match in _IBAN_START_RE.finditer(compact):
            length = _IBAN_LENGTHS.get(match.group(1))
            begin = match.start()
            if length and begin + length <= len(compact) and _iban_valid(
                compact[begin : begin + length]
            ):
                return "iban"
    if free_text and _DIGITS_RE.search(value):
        return "number"
    return None


def _text_problem(value: str) -> str | None:
    if not 1 <= len(value) <= _TEXT_MAX:
        return f"text must be 1-{_TEXT_MAX} characters"
    if value != value.strip() or any(unicodedata.category(c)[0] == "C" for c in value):
        return "text has control characters or outer whitespace"
    if not unicodedata.is_normalized("NFC", value):
        return "text must be NFC-normalised"
    return None


# Field kinds (small ints: the scanner dispatches on them in its hot loop).
_TOKEN, _SESSION, _TEXT, _U64K, _DIGEST, _KEY, _ENUM = range(7)
_KIND_NAMES: Final = ("token", "session", "text", "u64", "digest", "key", "enum")


@dataclass(frozen=True, slots=True)
class _Field:
    tag: int
    name: str
    kind: int
    members: Mapping[str, StrEnum] | None = None

    @property
    def kind_name(self) -> str:
        return _KIND_NAMES[self.kind]


def _enum(tag: int, name: str, cls: type[StrEnum]) -> _Field:
    return _Field(tag, name, _ENUM, {m.value: m for m in cls})


_FIELDS: Final = (
    _Field(1, "actor", _TOKEN),
    _Field(2, "peer", _TOKEN),
    _Field(3, "session", _SESSION),
    _Field(4, "agreement", _TOKEN),
    _Field(5, "epoch", _U64K),
    _Field(6, "mode", _TOKEN),
    _enum(7, "direction", Direction),
    _Field(8, "count_in", _U64K),
    _Field(9, "count_out", _U64K),
    _Field(10, "hits", _U64K),
    _Field(11, "records", _U64K),
    _Field(12, "request_sha256", _DIGEST),
    _Field(13, "response_sha256", _DIGEST),
    _Field(14, "object_sha256", _DIGEST),
    _Field(15, "epoch_public_key", _KEY),
    _enum(16, "clause", RefusalClause),
    _enum(17, "decision", Decision),
    _enum(18, "change", Change),
    _enum(19, "outcome", Outcome),
    _Field(20, "role", _TOKEN),
    _Field(21, "target", _TOKEN),
    _Field(22, "scope", _TOKEN),
    _Field(23, "id_type", _TOKEN),
    _Field(24, "purpose", _TEXT),
    _Field(25, "legal_basis", _TEXT),
    _Field(26, "case_ref", _TEXT),
)
_BY_TAG: Final[list[_Field | None]] = [None] * 256
for _f in _FIELDS:
    _BY_TAG[_f.tag] = _f
_BY_NAME: Final = {f.name: f for f in _FIELDS}
_KEY_MIN, _KEY_MAX = 16, 256
_DIRECTION_TAG: Final = 7

#: Field name -> stable tag.
FIELD_TAGS: Final[Mapping[str, int]] = {f.name: f.tag for f in _FIELDS}


@dataclass(frozen=True, slots=True)
class EventSchema:
    """Which fields an event type requires and which it may carry (``actor`` always)."""

    required: frozenset[str]
    optional: frozenset[str]
    allowed: frozenset[str] = field(init=False)
    required_mask: int = field(init=False, repr=False)
    allowed_mask: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        allowed = self.required | self.optional
        object.__setattr__(self, "allowed", allowed)
        object.__setattr__(
            self, "required_mask", sum(1 << FIELD_TAGS[n] for n in self.required)
        )
        object.__setattr__(self, "allowed_mask", sum(1 << FIELD_TAGS[n] for n in allowed))


def _schema(required: str, optional: str = "") -> EventSchema:
    must = frozenset(("actor", *required.split()))
    may = frozenset(("request_sha256", "response_sha256", *optional.split())) - must
    return EventSchema(must, may)


_EXCHANGE: Final = "peer session direction "
_DIGESTS: Final = "request_sha256 response_sha256 "
_E = EventType

#: Event type -> its schema. Exchanges (a request one node sent and the other answered)
#: require ``peer``, ``session``, ``direction``; both nodes log them with the same event type.
EVENT_SCHEMAS: Final[Mapping[EventType, EventSchema]] = {
    _E.SESSION_OPENED: _schema(
        _EXCHANGE + _DIGESTS + "agreement epoch mode", "id_type count_in count_out"
    ),
    _E.SESSION_CLOSED: _schema(_EXCHANGE + "mode outcome", "agreement epoch count_in count_out"),
    _E.FILTER_PUBLISHED: _schema("agreement epoch mode count_out", "peer id_type object_sha256"),
    _E.FILTER_FETCHED: _schema(
        _EXCHANGE + _DIGESTS + "agreement epoch mode", "id_type count_in count_out object_sha256"
    ),
    _E.EVALUATION: _schema(
        _EXCHANGE + _DIGESTS + "agreement epoch mode count_in count_out", "id_type"
    ),
    _E.REFUSAL: _schema(
        _EXCHANGE + _DIGESTS + "clause", "agreement epoch mode id_type count_in count_out purpose"
    ),
    _E.QUERY: _schema(
        "purpose legal_basis case_ref", "peer agreement session mode id_type count_in"
    ),
    _E.HIT_COUNT: _schema("peer session hits", "agreement epoch mode case_ref"),
    _E.DISCLOSURE_REQUESTED: _schema(
        _EXCHANGE + "case_ref", "agreement purpose legal_basis count_out"
    ),
    _E.DISCLOSURE_DECIDED: _schema(_EXCHANGE + "decision", "agreement count_out case_ref"),
    _E.AGREEMENT_CHANGED: _schema("agreement change", "peer object_sha256"),
    _E.PEER_CHANGED: _schema("peer change", "object_sha256"),
    _E.EPOCH_ROTATED: _schema("agreement epoch epoch_public_key", "peer"),
    _E.PURGE: _schema("scope records", "peer agreement session"),
    _E.LOGIN: _schema("outcome", "role"),
    _E.ROLE_CHANGED: _schema("target role change"),
}
_SCHEMA_BY_CODE: Final = {int(e): s for e, s in EVENT_SCHEMAS.items()}
_EXCHANGE_MASK: Final = (
    (1 << FIELD_TAGS["session"]) | (1 << FIELD_TAGS["direction"])
    | (1 << FIELD_TAGS["request_sha256"])
)


@dataclass(frozen=True, kw_only=True, slots=True)
class Entry:
    """One audit event. Construct with keyword arguments; invalid entries cannot exist.

    ``seq`` is the leaf index, ``time_ms`` Unix milliseconds (UTC) given by the caller.
    Counts are from the logging node's side: ``count_in`` elements received, ``count_out``
    elements sent (an evaluation: received N blinded elements, returned N evaluations).
    Enum fields accept their string values and hold the enum member afterwards.

    Validation has one source of truth: the entry is encoded, and the canonical bytes must
    pass the same scanner that :func:`decode_entry` and the bundle verifier use.
    """

    seq: int
    time_ms: int
    event: EventType
    actor: str
    peer: str | None = None
    session: str | None = None
    agreement: str | None = None
    epoch: int | None = None
    mode: str | None = None
    direction: Direction | None = None
    count_in: int | None = None
    count_out: int | None = None
    hits: int | None = None
    records: int | None = None
    request_sha256: bytes | None = None
    response_sha256: bytes | None = None
    object_sha256: bytes | None = None
    epoch_public_key: bytes | None = None
    clause: RefusalClause | None = None
    decision: Decision | None = None
    change: Change | None = None
    outcome: Outcome | None = None
    role: str | None = None
    target: str | None = None
    scope: str | None = None
    id_type: str | None = None
    purpose: str | None = None
    legal_basis: str | None = None
    case_ref: str | None = None
    _encoded: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.event, bool) or not isinstance(self.event, int):
            raise EntryError("unknown event type", field="event")
        parts = []
        for f, value in zip(_FIELDS, _get_all(self), strict=True):
            if value is not None:
                raw = _raw_value(f, value)
                parts.append(_FIELD.pack(f.tag, len(raw)) + raw)
        for name, value in (("seq", self.seq), ("time_ms", self.time_ms)):
            if type(value) is not int or not 0 <= value <= _U64_MAX:
                raise EntryError("field must be an integer in 0..2^64-1", field=name)
        if len(parts) > 255 or not 0 <= self.event <= 0xFFFF:  # pragma: no cover - 26 fields
            raise EntryError("entry does not fit the encoding")
        data = _HEADER.pack(ENTRY_VERSION, self.event, self.seq, self.time_ms, len(parts))
        data += b"".join(parts)
        event, _, _, _, values, _ = _scan(data, want_values=True)
        assert values is not None
        object.__setattr__(self, "event", event)
        for name, value in values.items():
            if value is not getattr(self, name):
                object.__setattr__(self, name, value)
        object.__setattr__(self, "_encoded", data)

    def present(self) -> dict[str, object]:
        """The fields that are set (beyond seq, time_ms and event), in tag order."""
        return {f.name: v for f, v in zip(_FIELDS, _get_all(self), strict=True) if v is not None}


_FIELD_NAMES: Final = tuple(f.name for f in _FIELDS)
_get_all: Final = operator.attrgetter(*_FIELD_NAMES)


def _raw_value(f: _Field, value: object) -> bytes:
    """Python value -> field bytes, checking only the Python type (the scanner checks the
    rest)."""
    kind = f.kind
    if kind == _U64K:
        if type(value) is not int or not 0 <= value <= _U64_MAX:
            raise EntryError("field must be an integer in 0..2^64-1", field=f.name)
        return _U64.pack(value)
    if kind in (_DIGEST, _KEY):
        if not isinstance(value, bytes):
            raise EntryError("field must be bytes", field=f.name)
        return bytes(value)
    if not isinstance(value, str):
        raise EntryError(f"field must be a {f.kind_name} string", field=f.name)
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise EntryError("field is not encodable as UTF-8", field=f.name) from None


def _scan(
    data: bytes, want_values: bool
) -> tuple[EventType, int, int, int, dict[str, object] | None, object]:
    """Check canonical entry bytes completely; return event, seq, time, tag mask, values
    (if wanted) and the direction (or None).

    The single validator of the module: every rule of the schema is enforced here.
    """
    if len(data) < _HEADER.size:
        raise EntryError("entry shorter than its header")
    version, code, seq, time_ms, count = _HEADER.unpack_from(data)
    if version != ENTRY_VERSION:
        raise EntryError("unknown entry version", version=version)
    schema = _SCHEMA_BY_CODE.get(code)
    if schema is None:
        raise EntryError("unknown event type", field="event")
    values: dict[str, object] | None = {} if want_values else None
    offset = _HEADER.size
    end = len(data)
    mask = 0
    last_tag = 0
    direction: object = None
    unpack_field = _FIELD.unpack_from
    token_match = _TOKEN_RE.fullmatch
    for _ in range(count):
        if offset + 3 > end:
            raise EntryError("entry ends inside a field header")
        tag, length = unpack_field(data, offset)
        offset += 3
        f = _BY_TAG[tag]
        if f is None or tag <= last_tag:
            raise EntryError("unknown, repeated or out-of-order field tag", tag=tag)
        last_tag = tag
        mask |= 1 << tag
        stop = offset + length
        if stop > end:
            raise EntryError("entry ends inside a field value", field=f.name)
        kind = f.kind
        value: object
        if kind == _U64K:
            if length != 8:
                raise EntryError("integer fields are 8 bytes", field=f.name)
            value = _U64.unpack_from(data, offset)[0]
        elif kind == _DIGEST:
            if length != 32:
                raise EntryError("digest fields are 32 bytes", field=f.name)
            value = data[offset:stop]
        elif kind == _KEY:
            if not _KEY_MIN <= length <= _KEY_MAX:
                raise EntryError(f"key fields are {_KEY_MIN}-{_KEY_MAX} bytes", field=f.name)
            value = data[offset:stop]
        else:
            try:
                text = data[offset:stop].decode("utf-8")
            except UnicodeDecodeError:
                raise EntryError("field is not UTF-8", field=f.name) from None
            value = text
            if kind in (_TOKEN, _SESSION):
                if token_match(text) is None:
                    raise EntryError(
                        "field must be a token: 1-64 of A-Z a-z 0-9 . _ : / - "
                        "(starting alphanumeric)",
                        field=f.name,
                    )
                if kind == _TOKEN and len(text) >= _IBAN_MIN:
                    why = identifier_like(text, free_text=False)
                    if why:
                        raise IdentifierLikeValueError(
                            "field looks like an identifier", field=f.name, looks_like=why
                        )
            elif kind == _ENUM:
                assert f.members is not None
                member = f.members.get(text)
                if member is None:
                    raise EntryError(f"field must be one of {sorted(f.members)}", field=f.name)
                value = member
                if tag == _DIRECTION_TAG:
                    direction = member
            else:
                problem = _text_problem(text)
                if problem:
                    raise EntryError(problem, field=f.name)
                why = identifier_like(text)
                if why:
                    raise IdentifierLikeValueError(
                        "field looks like an identifier", field=f.name, looks_like=why
                    )
        if values is not None:
            values[f.name] = value
        offset = stop
    if offset != end:
        raise EntryError("bytes after the last field")
    event = EventType(code)
    if mask & ~schema.allowed_mask:
        name = _BY_TAG[(mask & ~schema.allowed_mask).bit_length() - 1]
        assert name is not None
        raise EntryError("field not allowed for this event", field=name.name,
                         event=event.name.lower())
    if schema.required_mask & ~mask:
        missing = schema.required_mask & ~mask
        low = _BY_TAG[(missing & -missing).bit_length() - 1]
        assert low is not None
        raise EntryError("missing a required field", field=low.name, event=event.name.lower())
    return event, seq, time_ms, mask, values, direction


@dataclass(frozen=True, slots=True)
class EntrySummary:
    """What the bundle verifier needs from an entry it has fully checked."""

    event: EventType
    seq: int
    time_ms: int
    exchange: bool
    outgoing: bool


def is_exchange(entry: Entry) -> bool:
    """Whether the entry logs one side of a request/response between two nodes (it has a
    ``session``, a ``direction`` and a ``request_sha256``)."""
    return (
        entry.session is not None
        and entry.direction is not None
        and entry.request_sha256 is not None
    )


def body_digest(body: bytes) -> bytes:
    """SHA-256 of a signed request or response body, as entries carry it."""
    return hashlib.sha256(body).digest()


def encode_entry(entry: Entry) -> bytes:
    """The canonical bytes of ``entry`` (what the tree hashes; computed at construction)."""
    return entry._encoded


def decode_entry(data: bytes | memoryview) -> Entry:
    """Parse canonical entry bytes; :class:`EntryError` on anything non-canonical."""
    raw = bytes(data)
    event, seq, time_ms, _, values, _ = _scan(raw, want_values=True)
    assert values is not None
    # The bytes passed the validator: build the entry without encoding and scanning again.
    entry = object.__new__(Entry)
    setattr_ = object.__setattr__
    for name in _FIELD_NAMES:
        setattr_(entry, name, values.get(name))
    setattr_(entry, "seq", seq)
    setattr_(entry, "time_ms", time_ms)
    setattr_(entry, "event", event)
    setattr_(entry, "_encoded", raw)
    return entry


def check_entry(data: bytes) -> EntrySummary:
    """Check canonical entry bytes exactly as :func:`decode_entry` does, without building an
    :class:`Entry` (the bundle verifier's fast path)."""
    event, seq, time_ms, mask, _, direction = _scan(data, want_values=False)
    exchange = mask & _EXCHANGE_MASK == _EXCHANGE_MASK
    return EntrySummary(event, seq, time_ms, exchange, exchange and direction is Direction.OUT)


def entry_to_dict(entry: Entry) -> dict[str, object]:
    """A JSON-ready view for auditors: names for codes, lowercase hex for bytes."""
    out: dict[str, object] = {
        "seq": entry.seq,
        "time_ms": entry.time_ms,
        "event": entry.event.name.lower(),
    }
    for name, value in entry.present().items():
        if isinstance(value, bytes):
            out[name] = value.hex()
        elif isinstance(value, StrEnum):
            out[name] = value.value
        else:
            out[name] = value
    return out


def entry_from_dict(obj: Mapping[str, object]) -> Entry:
    """The inverse of :func:`entry_to_dict`; unknown keys are refused."""
    known = {f.name for f in fields(Entry) if f.init}
    unknown = set(obj) - known
    if unknown:
        raise EntryError("unknown entry keys", keys=sorted(unknown))
    kwargs: dict[str, object] = dict(obj)
    event = kwargs.get("event")
    if isinstance(event, str):
        try:
            kwargs["event"] = EventType[event.upper()]
        except KeyError:
            raise EntryError("unknown event type", field="event") from None
    for name, value in list(kwargs.items()):
        f = _BY_NAME.get(name)
        if f is not None and f.kind in (_DIGEST, _KEY) and isinstance(value, str):
            try:
                kwargs[name] = bytes.fromhex(value)
            except ValueError:
                raise EntryError("field must be hex", field=name) from None
    try:
        return Entry(**kwargs)  # type: ignore[arg-type]
    except TypeError:
        raise EntryError("entry lacks seq, time_ms, event or actor") from None
