"""A node's long-term secrets: its Ed25519 identity key and its 32-byte OPRF master secret.

This module owns how the two are generated, fingerprinted, and stored sealed (with
:mod:`fiumatch.node.sealing`) in a node's key directory::

    <keys_dir>/identity.sealed      purpose "node-identity-ed25519"   (the 32-byte Ed25519 seed)
    <keys_dir>/oprf-master.sealed   purpose "node-oprf-master"        (32 random bytes)

Both files are mode 0600 and never overwritten. The per-epoch OPRF keys are derived from the
master secret by the protocol package; they are never stored.

The fingerprint of a node is ``"SHA256:" + unpadded base64 of SHA-256(raw 32-byte public key)``,
the shape SSH prints, for operators to compare out of band before pinning a peer.

:class:`NodeKeys` never shows its secrets in ``repr`` and this module never logs them.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fiumatch.node.errors import KeyFileExistsError, SealedFormatError
from fiumatch.node.sealing import (
    DEFAULT_LOG2_N,
    Passphrase,
    load_sealed_file,
    seal,
    unseal,
    write_sealed_file,
)

__all__ = [
    "IDENTITY_FILE",
    "IDENTITY_PURPOSE",
    "MASTER_FILE",
    "MASTER_PURPOSE",
    "NodeKeys",
    "fingerprint",
    "public_key_from_raw",
    "raw_public_key",
]

IDENTITY_PURPOSE = "node-identity-ed25519"
MASTER_PURPOSE = "node-oprf-master"
IDENTITY_FILE = "identity.sealed"
MASTER_FILE = "oprf-master.sealed"
MASTER_SECRET_LEN = 32


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of an Ed25519 public key."""
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def public_key_from_raw(raw: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from its 32 raw bytes (ValueError if malformed)."""
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def fingerprint(public_key: bytes | Ed25519PublicKey) -> str:
    """``SHA256:<unpadded base64>`` of the raw public key."""
    raw = public_key if isinstance(public_key, bytes) else raw_public_key(public_key)
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    digest = hashlib.sha256(raw).digest()
    return "SHA256:" + base64.b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class NodeKeys:
    """The node's identity key and OPRF master secret, in memory."""

    identity: Ed25519PrivateKey = field(repr=False)
    oprf_master: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.oprf_master) != MASTER_SECRET_LEN:
            raise ValueError("the OPRF master secret is 32 bytes")

    @classmethod
    def generate(cls, rng: Callable[[int], bytes]) -> NodeKeys:
        """Fresh keys from ``rng`` (32 bytes for the Ed25519 seed, 32 for the master secret)."""
        seed = rng(32)
        master = rng(MASTER_SECRET_LEN)
        if len(seed) != 32 or len(master) != MASTER_SECRET_LEN:
            raise ValueError("rng returned the wrong number of bytes")
        return cls(identity=Ed25519PrivateKey.from_private_bytes(seed), oprf_master=master)

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.identity.public_key()

    @property
    def public_key_raw(self) -> bytes:
        return raw_public_key(self.public_key)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key_raw)

    def _seed(self) -> bytes:
        return self.identity.private_bytes_raw()

    def save(
        self,
        keys_dir: Path,
        passphrase: Passphrase,
        rng: Callable[[int], bytes],
        *,
        log2_n: int = DEFAULT_LOG2_N,
    ) -> None:
        """Seal both secrets into ``keys_dir`` (created 0700 if missing); never overwrites."""
        keys_dir = Path(keys_dir)
        keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        identity_blob = seal(self._seed(), passphrase, IDENTITY_PURPOSE, rng, log2_n=log2_n)
        master_blob = seal(self.oprf_master, passphrase, MASTER_PURPOSE, rng, log2_n=log2_n)
        for name in (IDENTITY_FILE, MASTER_FILE):
            if (keys_dir / name).exists():
                raise KeyFileExistsError(
                    "node keys already exist; refusing to overwrite them", file=name
                )
        write_sealed_file(keys_dir / IDENTITY_FILE, identity_blob)
        try:
            write_sealed_file(keys_dir / MASTER_FILE, master_blob)
        except BaseException:
            (keys_dir / IDENTITY_FILE).unlink(missing_ok=True)  # all or nothing
            raise

    @classmethod
    def load(cls, keys_dir: Path, passphrase: Passphrase) -> NodeKeys:
        """Unseal both secrets from ``keys_dir`` (refusing files others can read)."""
        keys_dir = Path(keys_dir)
        seed = unseal(load_sealed_file(keys_dir / IDENTITY_FILE), passphrase, IDENTITY_PURPOSE)
        master = unseal(load_sealed_file(keys_dir / MASTER_FILE), passphrase, MASTER_PURPOSE)
        if len(seed) != 32 or len(master) != MASTER_SECRET_LEN:
            raise SealedFormatError("a sealed node key has the wrong length")
        return cls(identity=Ed25519PrivateKey.from_private_bytes(seed), oprf_master=master)
