"""Per-peer, per-epoch OPRF server keys derived from one master secret.

This module owns the ``info`` string fed to RFC 9497 DeriveKeyPair and the choice of its
mode. It must never do I/O or read clocks (the caller says which epoch it is), never store or
log the master secret or a derived key, and never put either in an error message.

A node holds one 32-byte master secret. For each peer and each key epoch it derives::

    (sk, pk) = DeriveKeyPair(seed = master_secret,
                             info = epoch_key_info(peer_id, epoch),
                             mode = VOPRF)

with RFC 9497's DeriveKeyPair DST ``"DeriveKeyPair" || "OPRFV1-\\x01-ristretto255-SHA512"``.
The VOPRF context is used for every epoch key whatever mode a session runs in, so a session
that asks for no proofs uses the same key whose ``pk`` is published for proofs. (The mode still
matters for *evaluation*: OPRF and VOPRF hash inputs with different DSTs, so both peers of a
session must agree on it.)
"""

from __future__ import annotations

from typing import Final

from fiumatch.protocol.errors import LocalProtocolError
from fiumatch.protocol.oprf import MAX_INPUT_LEN, MODE_VOPRF, KeyPair, derive_key_pair

__all__ = [
    "EPOCH_KEY_DOMAIN",
    "MASTER_SECRET_LEN",
    "MAX_EPOCH",
    "MAX_PEER_ID_LEN",
    "PROTOCOL_VERSION",
    "derive_epoch_key",
    "epoch_key_info",
]

PROTOCOL_VERSION: Final = 1
EPOCH_KEY_DOMAIN: Final = b"fiumatch-epoch-key-v1"
"""The domain tag that starts every version-1 ``info`` string (21 ASCII bytes)."""
MASTER_SECRET_LEN: Final = 32
MAX_EPOCH: Final = 2**64 - 1
MAX_PEER_ID_LEN: Final = MAX_INPUT_LEN - len(EPOCH_KEY_DOMAIN) - 2 - 8
"""Largest UTF-8 peer id, in bytes, that keeps ``info`` within DeriveKeyPair's 65535 bytes."""


def epoch_key_info(peer_id: str, epoch: int, version: int = PROTOCOL_VERSION) -> bytes:
    """The DeriveKeyPair ``info`` for (``peer_id``, ``epoch``), protocol version 1::

        info = "fiumatch-epoch-key-v1"      21 ASCII bytes, the domain tag
            || I2OSP(len(peer), 2)          peer = UTF-8 encoding of peer_id, big-endian length
            || peer                         1..65504 bytes, exactly as given (no normalisation)
            || I2OSP(epoch, 8)              epoch as an unsigned 64-bit big-endian integer

    The tag has a fixed length and the only variable-length field carries its length, so
    distinct (peer_id, epoch) pairs always give distinct strings: ("ab", 1) and ("a", ...)
    differ in the length prefix. Example: ``epoch_key_info("fiu-nl", 7)`` is
    ``b"fiumatch-epoch-key-v1" + b"\\x00\\x06" + b"fiu-nl" + b"\\x00" * 7 + b"\\x07"``.

    Raises ``LocalProtocolError`` for an unknown ``version``, an empty or over-long peer id, a
    peer id that is not encodable as UTF-8 (lone surrogates), or an epoch outside 0..2^64-1.
    """
    if version != PROTOCOL_VERSION:
        raise LocalProtocolError("unsupported epoch key derivation version")
    if not isinstance(peer_id, str):
        raise LocalProtocolError("peer id must be a str")
    try:
        peer = peer_id.encode("utf-8")
    except UnicodeEncodeError:
        raise LocalProtocolError("peer id is not encodable as UTF-8") from None
    if not 0 < len(peer) <= MAX_PEER_ID_LEN:
        raise LocalProtocolError(f"peer id must be 1..{MAX_PEER_ID_LEN} UTF-8 bytes")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= MAX_EPOCH:
        raise LocalProtocolError("epoch must be an integer in 0..2^64-1")
    return EPOCH_KEY_DOMAIN + len(peer).to_bytes(2, "big") + peer + epoch.to_bytes(8, "big")


def derive_epoch_key(
    master_secret: bytes, peer_id: str, epoch: int, mode: int = MODE_VOPRF
) -> KeyPair:
    """The OPRF key pair this node uses with ``peer_id`` in ``epoch`` (see module docstring).

    ``master_secret`` must be exactly 32 bytes (``LocalProtocolError`` otherwise). Leave
    ``mode`` at ``MODE_VOPRF``: fiumatch derives every epoch key with the VOPRF DST; another
    mode gives a different key and exists for tests only.
    """
    if len(master_secret) != MASTER_SECRET_LEN:
        raise LocalProtocolError(f"master secret must be {MASTER_SECRET_LEN} bytes")
    return derive_key_pair(bytes(master_secret), epoch_key_info(peer_id, epoch), mode)
