"""Signed checkpoints (C2SP tlog-checkpoint), cosignatures (C2SP tlog-cosignature), receipts,
and the split-view check.

This module owns the text formats a log and its peers exchange about the tree:

* a **signed note** (c2sp.org/signed-note): a UTF-8 text ending in a newline, a blank line,
  then signature lines ``"— <key name> base64(key ID || signature)"``. For Ed25519 the key ID
  is ``SHA-256(name || 0x0A || 0x01 || public key)[:4]`` and the signature covers the text;
* a **checkpoint** (c2sp.org/tlog-checkpoint): the note text
  ``"<origin>\\n<size>\\n<base64 root>\\n"``, signed by the log under its origin as key name;
* a **cosignature** (c2sp.org/tlog-cosignature, Ed25519 type ``0x04``): a peer's extra
  signature line, key ID ``SHA-256(name || 0x0A || 0x04 || public key)[:4]``, value
  ``u64 timestamp || Ed25519(cosignature/v1\\ntime <timestamp>\\n || checkpoint text)``;
* a **receipt**: a leaf index and leaf hash, a signed checkpoint that includes it, and the
  inclusion proof; a node attaches one to every response it gives a peer.

Verification raises (:class:`~fiumatch.auditlog.errors.UnknownSignerError`,
:class:`~fiumatch.auditlog.errors.BadSignatureError`, ...) and never returns a bool. It must
never do I/O, read a clock (cosignature timestamps are passed in) or hold a private key
longer than the signer object the caller made.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fiumatch.auditlog.errors import (
    BadSignatureError,
    ConsistencyProofError,
    NoteError,
    SplitViewError,
    UnknownSignerError,
)
from fiumatch.auditlog.merkle import EMPTY_ROOT, HASH_SIZE, GetNode
from fiumatch.auditlog.proofs import inclusion_proof, verify_consistency, verify_inclusion

__all__ = [
    "COSIGNATURE_TYPE",
    "ED25519_TYPE",
    "MAX_NOTE_BYTES",
    "MAX_SIGNATURES",
    "Checkpoint",
    "Cosignature",
    "CosignatureSigner",
    "CosignatureVerifier",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "Receipt",
    "SignedNote",
    "add_cosignature",
    "check_opened_split_view",
    "check_split_view",
    "make_receipt",
    "open_checkpoint",
    "open_cosignatures",
    "open_note",
    "peek_checkpoint",
    "sign_checkpoint",
    "verify_receipt",
    "witness_cosign",
]

ED25519_TYPE: Final = 0x01
COSIGNATURE_TYPE: Final = 0x04
MAX_SIGNATURES: Final = 100
MAX_NOTE_BYTES: Final = 1 << 16
_SIG_PREFIX: Final = "\u2014 "
_SIZE_RE = re.compile(r"0|[1-9][0-9]{0,18}")
_U63_MAX: Final = (1 << 63) - 1
_COSIGN_HEADER: Final = b"cosignature/v1\n"


def _b64decode(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise NoteError(f"{what} is not standard base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise NoteError(f"{what} is not canonical base64")
    return raw


def _check_key_name(name: str) -> None:
    if not name or "+" in name or any(c.isspace() or ord(c) < 0x20 for c in name):
        raise NoteError("key names are non-empty, without spaces or '+'")
    try:
        name.encode("utf-8")  # the key ID hashes it; a lone surrogate cannot be encoded
    except UnicodeEncodeError:
        raise NoteError("key names are UTF-8") from None


def _key_id(name: str, sig_type: int, public: bytes) -> bytes:
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([sig_type]) + public).digest()[:4]


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


# --- signed notes -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: key name, 4-byte key ID, signature bytes."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        payload = base64.b64encode(self.key_id + self.signature).decode("ascii")
        return f"{_SIG_PREFIX}{self.name} {payload}\n"


@dataclass(frozen=True, slots=True)
class SignedNote:
    """A note text (ending in a newline) and its signature lines, unverified."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def encode(self) -> bytes:
        return (self.text + "\n" + "".join(s.line() for s in self.signatures)).encode("utf-8")

    @classmethod
    def parse(cls, data: bytes | str) -> SignedNote:
        """Strictly parse a signed note (c2sp.org/signed-note); :class:`NoteError` if not."""
        if isinstance(data, str):
            try:
                data = data.encode("utf-8")
            except UnicodeEncodeError:  # lone surrogates, e.g. a JSON "\udc80" escape
                raise NoteError("note is not UTF-8") from None
        if len(data) > MAX_NOTE_BYTES:
            raise NoteError("note too large")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("note is not UTF-8") from None
        if any(ord(c) < 0x20 and c != "\n" for c in text):
            raise NoteError("note holds control characters")
        if not text.endswith("\n"):
            raise NoteError("note does not end in a newline")
        split = text.rfind("\n\n")
        if split < 0:
            raise NoteError("note has no signature block")
        body, block = text[: split + 1], text[split + 2 :]
        lines = block.split("\n")[:-1]
        if not lines:
            raise NoteError("note has no signatures")
        if len(lines) > MAX_SIGNATURES:
            raise NoteError("note has too many signatures")
        sigs = []
        for line in lines:
            if not line.startswith(_SIG_PREFIX):
                raise NoteError("malformed signature line")
            parts = line[len(_SIG_PREFIX) :].split(" ")
            if len(parts) != 2:
                raise NoteError("malformed signature line")
            name, payload = parts
            _check_key_name(name)
            raw = _b64decode(payload, "signature")
            if len(raw) < 5:
                raise NoteError("signature too short")
            sigs.append(NoteSignature(name, raw[:4], raw[4:]))
        return cls(body, tuple(sigs))


class NoteVerifier:
    """An Ed25519 note verifier (signature type 0x01): key name + public key."""

    __slots__ = ("_key", "key_id", "name", "public_key")

    def __init__(self, name: str, public_key: bytes | Ed25519PublicKey) -> None:
        _check_key_name(name)
        raw = public_key if isinstance(public_key, bytes) else _raw_public(public_key)
        if len(raw) != 32:
            raise NoteError("Ed25519 public keys are 32 bytes")
        self.name = name
        self.public_key = raw
        self._key = Ed25519PublicKey.from_public_bytes(raw)
        self.key_id = _key_id(name, ED25519_TYPE, raw)

    def vkey(self) -> str:
        """The verifier key text: ``<name>+<hex key ID>+<base64(type || public key)>``."""
        payload = base64.b64encode(bytes([ED25519_TYPE]) + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{payload}"

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        name, public = _parse_vkey(vkey, ED25519_TYPE)
        return cls(name, public)

    def matches(self, sig: NoteSignature) -> bool:
        return sig.name == self.name and sig.key_id == self.key_id

    def verify(self, text: str, sig: NoteSignature) -> None:
        """:class:`BadSignatureError` unless ``sig`` is this key's signature of ``text``."""
        if len(sig.signature) != 64:
            raise BadSignatureError("signature has the wrong length", key=self.name)
        try:
            self._key.verify(sig.signature, text.encode("utf-8"))
        except InvalidSignature:
            raise BadSignatureError("signature does not verify", key=self.name) from None

    def __repr__(self) -> str:
        return f"NoteVerifier({self.vkey()!r})"


def _parse_vkey(vkey: str, sig_type: int) -> tuple[str, bytes]:
    parts = vkey.split("+", 2)  # the base64 key may itself contain '+'
    if len(parts) != 3:
        raise NoteError("a vkey is <name>+<hex key ID>+<base64 key>")
    name, key_hex, payload = parts
    _check_key_name(name)
    raw = _b64decode(payload, "vkey")
    if len(raw) != 33 or raw[0] != sig_type:
        raise NoteError("vkey has the wrong signature type or key length")
    if _key_id(name, sig_type, raw[1:]).hex() != key_hex:
        raise NoteError("vkey key ID does not match its key")
    return name, raw[1:]


class NoteSigner:
    """An Ed25519 note signer. Deterministic (RFC 8032): no randomness needed."""

    __slots__ = ("_key", "verifier")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.verifier = NoteVerifier(name, private_key.public_key())

    @property
    def name(self) -> str:
        return self.verifier.name

    def sign(self, text: str) -> NoteSignature:
        return NoteSignature(self.name, self.verifier.key_id, self._key.sign(text.encode("utf-8")))

    def __repr__(self) -> str:
        return f"NoteSigner({self.name!r})"


def open_note(data: bytes | str, verifier: NoteVerifier) -> SignedNote:
    """Parse a note and verify it under ``verifier`` (per c2sp.org/signed-note: every line
    from the key must verify; lines from other keys are ignored)."""
    note = SignedNote.parse(data)
    found = False
    for sig in note.signatures:
        if verifier.matches(sig):
            verifier.verify(note.text, sig)
            found = True
    if not found:
        raise UnknownSignerError("no signature from the expected key", key=verifier.name)
    return note


# --- checkpoints ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tree head: origin, size, root (and opaque extension lines, which we never emit)."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin or any(ord(c) < 0x20 for c in self.origin):
            raise NoteError("origin must be a non-empty line")
        if not 0 <= self.size <= _U63_MAX:
            raise NoteError("checkpoint size out of range")
        if len(self.root) != HASH_SIZE:
            raise NoteError("checkpoint root is not 32 bytes")
        if self.size == 0 and self.root != EMPTY_ROOT:
            raise NoteError("the empty tree has the empty root")
        for line in self.extensions:
            if not line or "\n" in line:
                raise NoteError("extension lines are non-empty lines")

    def body(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode("ascii")]
        return "\n".join([*lines, *self.extensions]) + "\n"

    @classmethod
    def parse_body(cls, text: str) -> Checkpoint:
        if not text.endswith("\n"):
            raise NoteError("checkpoint body does not end in a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError("checkpoint body has fewer than three lines")
        origin, size_text, root_text, *extensions = lines
        if not _SIZE_RE.fullmatch(size_text):
            raise NoteError("checkpoint size is not a canonical decimal")
        root = _b64decode(root_text, "checkpoint root")
        return cls(origin, int(size_text), root, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signer: NoteSigner) -> bytes:
    """The signed note of ``checkpoint``; the key name should equal the origin."""
    text = checkpoint.body()
    return SignedNote(text, (signer.sign(text),)).encode()


def open_checkpoint(
    note: bytes | str, verifier: NoteVerifier, *, origin: str | None = None
) -> Checkpoint:
    """Verify the log's signature and parse the checkpoint; its origin must be ``origin``
    (default: the verifier's key name)."""
    text = open_note(note, verifier).text
    cp = Checkpoint.parse_body(text)
    expected = verifier.name if origin is None else origin
    if cp.origin != expected:
        raise NoteError("checkpoint is for another origin", expected=expected, found=cp.origin)
    return cp


def peek_checkpoint(note: bytes | str) -> Checkpoint:
    """Parse a checkpoint WITHOUT verifying any signature (to pick the key to verify with)."""
    return Checkpoint.parse_body(SignedNote.parse(note).text)


# --- cosignatures -----------------------------------------------------------------------------


def _cosigned_message(text: str, timestamp: int) -> bytes:
    return _COSIGN_HEADER + f"time {timestamp}\n".encode("ascii") + text.encode("utf-8")


class CosignatureVerifier:
    """A tlog-cosignature/v1 Ed25519 verifier (signature type 0x04)."""

    __slots__ = ("_key", "key_id", "name", "public_key")

    def __init__(self, name: str, public_key: bytes | Ed25519PublicKey) -> None:
        _check_key_name(name)
        raw = public_key if isinstance(public_key, bytes) else _raw_public(public_key)
        if len(raw) != 32:
            raise NoteError("Ed25519 public keys are 32 bytes")
        self.name = name
        self.public_key = raw
        self._key = Ed25519PublicKey.from_public_bytes(raw)
        self.key_id = _key_id(name, COSIGNATURE_TYPE, raw)

    def vkey(self) -> str:
        payload = base64.b64encode(bytes([COSIGNATURE_TYPE]) + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{payload}"

    @classmethod
    def from_vkey(cls, vkey: str) -> CosignatureVerifier:
        name, public = _parse_vkey(vkey, COSIGNATURE_TYPE)
        return cls(name, public)

    def matches(self, sig: NoteSignature) -> bool:
        return sig.name == self.name and sig.key_id == self.key_id

    def verify(self, text: str, sig: NoteSignature) -> int:
        """The cosignature's timestamp; :class:`BadSignatureError` if it does not verify."""
        if len(sig.signature) != 8 + 64:
            raise BadSignatureError("cosignature has the wrong length", key=self.name)
        timestamp = int.from_bytes(sig.signature[:8], "big")
        if timestamp > _U63_MAX:
            raise BadSignatureError("cosignature timestamp out of range", key=self.name)
        try:
            self._key.verify(sig.signature[8:], _cosigned_message(text, timestamp))
        except InvalidSignature:
            raise BadSignatureError("cosignature does not verify", key=self.name) from None
        return timestamp

    def __repr__(self) -> str:
        return f"CosignatureVerifier({self.vkey()!r})"


class CosignatureSigner:
    """A tlog-cosignature/v1 Ed25519 cosigner. One key per cosigner name (the signed message
    does not commit to the name)."""

    __slots__ = ("_key", "verifier")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.verifier = CosignatureVerifier(name, private_key.public_key())

    @property
    def name(self) -> str:
        return self.verifier.name

    def sign(self, text: str, timestamp: int) -> NoteSignature:
        if not 0 <= timestamp <= _U63_MAX:
            raise NoteError("cosignature timestamp out of range")
        sig = self._key.sign(_cosigned_message(text, timestamp))
        return NoteSignature(self.name, self.verifier.key_id, struct.pack(">Q", timestamp) + sig)

    def __repr__(self) -> str:
        return f"CosignatureSigner({self.name!r})"


@dataclass(frozen=True, slots=True)
class Cosignature:
    name: str
    timestamp: int


def add_cosignature(note: bytes | str, cosigner: CosignatureSigner, timestamp: int) -> bytes:
    """Append ``cosigner``'s line to ``note`` (the caller has checked the checkpoint: use
    :func:`witness_cosign` for the checked recipe). ``timestamp``: POSIX seconds."""
    parsed = SignedNote.parse(note)
    if len(parsed.signatures) >= MAX_SIGNATURES:
        raise NoteError("note has too many signatures")
    sig = cosigner.sign(parsed.text, timestamp)
    return SignedNote(parsed.text, (*parsed.signatures, sig)).encode()


def open_cosignatures(
    note: bytes | str, cosigners: Sequence[CosignatureVerifier]
) -> list[Cosignature]:
    """Verify every line from a known cosigner; return who cosigned and when. Lines from
    unknown keys are ignored; a known cosigner's failing line raises."""
    parsed = SignedNote.parse(note)
    out = []
    for sig in parsed.signatures:
        for cosigner in cosigners:
            if cosigner.matches(sig):
                out.append(Cosignature(cosigner.name, cosigner.verify(parsed.text, sig)))
    return out


def witness_cosign(
    note: bytes | str,
    log: NoteVerifier,
    cosigner: CosignatureSigner,
    timestamp: int,
    *,
    previous: bytes | str | None = None,
    proof: Sequence[bytes] = (),
) -> bytes:
    """Cosign a peer's checkpoint the safe way: verify the log's signature, and if this
    cosigner already cosigned ``previous`` for the log, require the new checkpoint to be no
    smaller and ``proof`` to show consistency (:class:`SplitViewError` otherwise)."""
    cp = open_checkpoint(note, log)
    if previous is not None:
        old = open_checkpoint(previous, log)
        if cp.size < old.size:
            raise NoteError("checkpoint is older than the one already cosigned",
                            size=cp.size, cosigned_size=old.size)
        check_split_view(previous, note, log, proof)
    return add_cosignature(note, cosigner, timestamp)


# --- split views ------------------------------------------------------------------------------


def check_split_view(
    first: bytes | str, second: bytes | str, log: NoteVerifier, proof: Sequence[bytes] = ()
) -> None:
    """Raise :class:`SplitViewError` if two checkpoints signed by ``log`` cannot both be true.

    Same size with different roots is conclusive evidence on its own. Different sizes need
    ``proof``, the consistency proof from the smaller to the larger; if it fails, the log
    could not show the smaller tree is a prefix of the larger. Signatures are checked first
    (a forged note is a :class:`~fiumatch.auditlog.errors.SignatureError`, not a split view).
    """
    check_opened_split_view(open_checkpoint(first, log), open_checkpoint(second, log), proof)


def check_opened_split_view(
    first: Checkpoint, second: Checkpoint, proof: Sequence[bytes] = ()
) -> None:
    """``check_split_view`` for two checkpoints of one log whose signatures were checked
    already (opened with ``open_checkpoint``)."""
    a, b = (first, second) if first.size <= second.size else (second, first)
    if a.size == b.size:
        if a.root != b.root:
            raise SplitViewError(
                "two signed checkpoints of the same size with different roots",
                evidence="same_size_different_root", first_size=a.size, first_root=a.root,
                second_size=b.size, second_root=b.root,
            )
        return
    try:
        verify_consistency(a.size, b.size, a.root, b.root, proof)
    except ConsistencyProofError as exc:
        raise SplitViewError(
            "the smaller checkpoint is not proven a prefix of the larger",
            evidence="consistency_proof_failed", first_size=a.size, first_root=a.root,
            second_size=b.size, second_root=b.root,
        ) from exc


# --- receipts ---------------------------------------------------------------------------------

_RECEIPT_VERSION: Final = 1
_RECEIPT_HEAD = struct.Struct(">BQ32sB")


@dataclass(frozen=True, slots=True)
class Receipt:
    """Proof that a log holds a leaf: its index and hash, a signed checkpoint that includes
    it, and the inclusion proof. Encoded (version 1, big-endian)::

        u8 version = 1; u64 leaf_index; u8 leaf_hash[32];
        u8 proof_count; u8 proof[proof_count][32]; u16 note_length; u8 note[note_length]
    """

    leaf_index: int
    leaf_hash: bytes
    proof: tuple[bytes, ...]
    checkpoint: bytes

    def encode(self) -> bytes:
        if len(self.proof) > 255 or len(self.checkpoint) > 0xFFFF:
            raise NoteError("receipt too large")
        head = _RECEIPT_HEAD.pack(_RECEIPT_VERSION, self.leaf_index, self.leaf_hash,
                                  len(self.proof))
        return head + b"".join(self.proof) + struct.pack(">H", len(self.checkpoint)) + (
            self.checkpoint)

    @classmethod
    def decode(cls, data: bytes | memoryview) -> Receipt:
        data = bytes(data)
        if len(data) < _RECEIPT_HEAD.size:
            raise NoteError("receipt too short")
        version, index, leaf, count = _RECEIPT_HEAD.unpack_from(data)
        if version != _RECEIPT_VERSION:
            raise NoteError("unknown receipt version", version=version)
        offset = _RECEIPT_HEAD.size
        proof_end = offset + 32 * count
        if proof_end + 2 > len(data):
            raise NoteError("receipt too short")
        proof = tuple(data[i : i + 32] for i in range(offset, proof_end, 32))
        (note_len,) = struct.unpack_from(">H", data, proof_end)
        if proof_end + 2 + note_len != len(data):
            raise NoteError("receipt length does not match its note")
        return cls(index, leaf, proof, data[proof_end + 2 :])

    def origin(self) -> str:
        """The (unverified) origin of the receipt's checkpoint."""
        return peek_checkpoint(self.checkpoint).origin


def make_receipt(leaf_index: int, leaf_hash: bytes, note: bytes, get_node: GetNode) -> Receipt:
    """The receipt for leaf ``leaf_index`` under the signed checkpoint ``note`` (our own, so
    not re-verified), with the inclusion proof read from the node store."""
    cp = peek_checkpoint(note)
    proof = inclusion_proof(leaf_index, cp.size, get_node)
    return Receipt(leaf_index, leaf_hash, tuple(proof), note)


def verify_receipt(receipt: Receipt, log: NoteVerifier) -> Checkpoint:
    """Verify a receipt from ``log``: its signature and its inclusion proof. Returns the
    checkpoint (store it: it is what a later split-view check compares against)."""
    cp = open_checkpoint(receipt.checkpoint, log)
    verify_inclusion(receipt.leaf_index, cp.size, receipt.leaf_hash, receipt.proof, cp.root)
    return cp
