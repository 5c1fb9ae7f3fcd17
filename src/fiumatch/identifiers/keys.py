"""Match keys: typed, versioned, domain-separated, length-prefixed.

Owns the key types (stable names, one-byte codes, strength classes), the byte encoding
that is the *only* thing handed to the OPRF, and the rules that derive keys from a subject's
normalised parts. Pure: no I/O, no randomness.

Encoding (SPEC.md §13.6, "Match-key encoding")::

    b"fiumatch-mk" || version (1 byte) || type code (1 byte) || field count (1 byte)
                   || for each field: length (2 bytes, big-endian) || UTF-8 bytes

The prefix and version make keys from other protocols and other key versions disjoint; the
type code separates key types whose fields could coincide; the length prefixes make the
encoding injective.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum, IntEnum

from fiumatch.identifiers.errors import KeyEncodingError

__all__ = [
    "KEY_PREFIX",
    "KEY_VERSION",
    "Hit",
    "KeyType",
    "MatchKey",
    "Strength",
    "classify_hit",
    "decode_key",
    "new_key",
]

KEY_PREFIX = b"fiumatch-mk"
KEY_VERSION = 1
MAX_FIELDS = 255
MAX_FIELD_BYTES = 0xFFFF


class Strength(IntEnum):
    """How much a hit on a key type says. Ordered: a higher value is stronger."""

    PHONETIC = 1
    COMPOSITE = 2
    STRONG = 3

    @property
    def label(self) -> str:
        return {1: "phonetic", 2: "composite", 3: "strong"}[int(self)]


class KeyType(Enum):
    """Key types. ``value`` is the stable name; ``code`` the byte in the encoding."""

    IBAN = "iban"
    ACCOUNT_BIC = "account_bic"
    LEI = "lei"
    PASSPORT = "passport"
    NATIONAL_ID = "national_id"
    TAX_ID = "tax_id"
    WALLET = "wallet"
    EMAIL = "email"
    PHONE = "phone"
    PERSON_NAME_DOB = "person_name_dob"
    PERSON_TOKENS_DOB = "person_tokens_dob"
    PERSON_SURNAME_INITIAL_DOB = "person_surname_initial_dob"
    PERSON_PHONETIC_YEAR = "person_phonetic_year"
    ORG_NAME_COUNTRY = "org_name_country"
    ORG_REGISTRATION_COUNTRY = "org_registration_country"

    # Members are singletons: identity hashing keeps Enum's Python-level __hash__ off the
    # hot path (keys are hashed for deduplication).
    __hash__ = object.__hash__

    @property
    def code(self) -> int:
        return _CODES[self][0]

    @property
    def strength(self) -> Strength:
        return _CODES[self][1]

    @property
    def fields(self) -> tuple[str, ...]:
        return _CODES[self][2]

    @classmethod
    def from_code(cls, code: int) -> KeyType:
        try:
            return _BY_CODE[code]
        except KeyError:
            raise KeyEncodingError("key_type", "unknown key type code") from None


_S, _C, _P = Strength.STRONG, Strength.COMPOSITE, Strength.PHONETIC
_CODES: dict[KeyType, tuple[int, Strength, tuple[str, ...]]] = {
    KeyType.IBAN: (0x01, _S, ("iban",)),
    KeyType.ACCOUNT_BIC: (0x02, _S, ("bic8", "account_number")),
    KeyType.LEI: (0x03, _S, ("lei",)),
    KeyType.PASSPORT: (0x04, _S, ("country", "number")),
    KeyType.NATIONAL_ID: (0x05, _S, ("country", "number")),
    KeyType.TAX_ID: (0x06, _S, ("country", "number")),
    KeyType.WALLET: (0x07, _S, ("chain", "address")),
    KeyType.EMAIL: (0x08, _S, ("email",)),
    KeyType.PHONE: (0x09, _S, ("e164",)),
    KeyType.PERSON_NAME_DOB: (0x10, _C, ("name", "dob")),
    KeyType.PERSON_TOKENS_DOB: (0x11, _C, ("tokens", "dob")),
    KeyType.PERSON_SURNAME_INITIAL_DOB: (0x12, _C, ("surname", "initial", "dob")),
    KeyType.PERSON_PHONETIC_YEAR: (0x13, _P, ("phonetic", "year")),
    KeyType.ORG_NAME_COUNTRY: (0x20, _C, ("name", "country")),
    KeyType.ORG_REGISTRATION_COUNTRY: (0x21, _C, ("country", "number")),
}
_BY_CODE = {code: kt for kt, (code, _, _) in _CODES.items()}
_HEADERS = {
    kt: KEY_PREFIX + bytes((KEY_VERSION, code, len(fields)))
    for kt, (code, _, fields) in _CODES.items()
}
_ARITY = {kt: len(fields) for kt, (_, _, fields) in _CODES.items()}
_SHORT = 1024
_LENGTHS = [n.to_bytes(2, "big") for n in range(_SHORT)]  # length prefixes of short fields


@dataclass(frozen=True, slots=True)
class MatchKey:
    """One match key: its type and its canonical fields (already normalised strings)."""

    type: KeyType
    fields: tuple[str, ...]

    @property
    def strength(self) -> Strength:
        return self.type.strength

    def encode(self) -> bytes:
        """The bytes handed to the OPRF (see the module docstring)."""
        fields = self.fields
        if len(fields) != _ARITY[self.type]:
            raise KeyEncodingError(self.type.value, "wrong number of fields for key type")
        parts = [_HEADERS[self.type]]
        append = parts.append
        for value in fields:
            raw = value.encode("utf-8")
            n = len(raw)
            if n < _SHORT:
                append(_LENGTHS[n])
            elif n <= MAX_FIELD_BYTES:
                append(n.to_bytes(2, "big"))
            else:
                raise KeyEncodingError(self.type.value, "field longer than 65535 bytes")
            append(raw)
        return b"".join(parts)  # one allocation, not one per field

    def hex(self) -> str:
        return self.encode().hex()

    def __reduce__(self) -> tuple[object, tuple[KeyType, tuple[str, ...]]]:
        # Positional pickling (see PartialDate.__reduce__).
        return MatchKey, (self.type, self.fields)


_new_object = object.__new__
_set_type = MatchKey.__dict__["type"].__set__
_set_fields = MatchKey.__dict__["fields"].__set__


def new_key(key_type: KeyType, fields: tuple[str, ...]) -> MatchKey:
    """``MatchKey(key_type, fields)`` at half the cost (the slots are set directly rather
    than through the frozen dataclass's ``__init__``); for derivation's hot loop."""
    key: MatchKey = _new_object(MatchKey)
    _set_type(key, key_type)
    _set_fields(key, fields)
    return key


def decode_key(data: bytes) -> MatchKey:
    """Inverse of :meth:`MatchKey.encode` (for tests, vectors and debugging)."""
    head = len(KEY_PREFIX)
    if data[:head] != KEY_PREFIX or len(data) < head + 3:
        raise KeyEncodingError("key", "missing match-key prefix")
    if data[head] != KEY_VERSION:
        raise KeyEncodingError("key", "unknown match-key version")
    key_type = KeyType.from_code(data[head + 1])
    count = data[head + 2]
    pos = head + 3
    fields: list[str] = []
    for _ in range(count):
        if pos + 2 > len(data):
            raise KeyEncodingError("key", "truncated length prefix")
        n = int.from_bytes(data[pos : pos + 2], "big")
        pos += 2
        if pos + n > len(data):
            raise KeyEncodingError("key", "truncated field")
        try:
            fields.append(data[pos : pos + n].decode("utf-8"))
        except UnicodeDecodeError:
            raise KeyEncodingError("key", "field is not UTF-8") from None
        pos += n
    if pos != len(data):
        raise KeyEncodingError("key", "trailing bytes")
    key = MatchKey(key_type, tuple(fields))
    if len(fields) != len(key_type.fields):
        raise KeyEncodingError("key", "wrong number of fields for key type")
    return key


@dataclass(frozen=True, slots=True)
class Hit:
    """What a match reports: the key types that matched and the strongest class among them."""

    types: frozenset[KeyType]
    strength: Strength

    def to_dict(self) -> dict[str, object]:
        return {
            "types": sorted(t.value for t in self.types),
            "strength": self.strength.label,
        }


def classify_hit(types: Iterable[KeyType]) -> Hit:
    """Summarise the matched key types of one hit."""
    found = frozenset(types)
    if not found:
        raise ValueError("a hit has at least one matched key type")
    return Hit(found, max(t.strength for t in found))


def dedupe(keys: Sequence[MatchKey]) -> tuple[MatchKey, ...]:
    """Keys in first-seen order without repeats."""
    return tuple(dict.fromkeys(keys))
