"""Secrets sealed at rest: AES-256-GCM under a key stretched from a passphrase with scrypt.

This module owns the sealed-secret format and the rules for key files on disk. It never logs,
prints or puts into an error a secret, a passphrase, a derived key or a file's content; it
never draws global randomness (callers pass ``rng``).

Sealed format, version 1 (all integers unsigned, one byte)::

    magic      6   b"FMSEAL"
    version    1   0x01
    log2_n     1   scrypt cost, N = 2**log2_n (default 15)
    r          1   scrypt block size (8)
    p          1   scrypt parallelism (1)
    salt      16   random
    plen       1   length of purpose
    purpose    plen  ASCII name of what the secret is for, e.g. "node-identity-ed25519"
    check     16   bytes 32..47 of the scrypt output: tells a wrong passphrase apart
    nonce     12   random AES-GCM nonce
    sealed     *   AES-256-GCM(key = scrypt output bytes 0..31) ciphertext || 16-byte tag

The AAD is ``b"fiumatch-sealed\\x00" + expected purpose + b"\\x00" + every header byte above
(magic .. nonce)``, so no header byte can change unnoticed, and a secret sealed for one purpose
never opens as another (an identity key cannot stand in for the OPRF master secret).

The check value lets :func:`unseal` say *wrong passphrase* rather than *tampered*; it gives an
attacker nothing the GCM tag would not (each guess still costs one scrypt). Errors, in the
order they are checked: :class:`SealedFormatError` (not this format, unsupported version or
parameters), :class:`WrongPurposeError`, :class:`WrongPassphraseError` (which a modified salt
or check value also looks like), :class:`TamperedSecretError` (modified nonce, ciphertext or
tag, or a header edited to claim another purpose).

Key files: :func:`write_sealed_file` writes atomically (temporary file, fsync, rename, fsync of
the directory) with mode 0600; :func:`load_sealed_file` refuses a file its group or others can
read or write.
"""

from __future__ import annotations

import hmac
import os
import re
import stat
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from fiumatch.node.errors import (
    InsecureKeyFileError,
    KeyFileExistsError,
    KeyFileMissingError,
    SealedFormatError,
    TamperedSecretError,
    WrongPassphraseError,
    WrongPurposeError,
)

__all__ = [
    "DEFAULT_LOG2_N",
    "MAGIC",
    "VERSION",
    "check_private_file",
    "load_sealed_file",
    "seal",
    "sealed_purpose",
    "unseal",
    "write_sealed_file",
]

MAGIC = b"FMSEAL"
VERSION = 1
DEFAULT_LOG2_N = 15
SCRYPT_R = 8
SCRYPT_P = 1
# Bounds on parameters read from a file, so a crafted file cannot demand gigabytes of memory.
MIN_LOG2_N = 10
MAX_LOG2_N = 20
MAX_R = 16
MAX_P = 4
MAX_SCRYPT_MEMORY = 256 * 1024 * 1024

SALT_LEN = 16
CHECK_LEN = 16
NONCE_LEN = 12
TAG_LEN = 16
MAX_SECRET_LEN = 1 << 16

_PURPOSE_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_AAD_PREFIX = b"fiumatch-sealed\x00"

Passphrase = bytes | str


def _passphrase_bytes(passphrase: Passphrase) -> bytes:
    if isinstance(passphrase, str):
        data = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    else:
        data = bytes(passphrase)
    if not data:
        raise ValueError("a passphrase must not be empty")
    return data


def _check_purpose(purpose: str) -> bytes:
    if not _PURPOSE_RE.fullmatch(purpose):
        raise ValueError("a purpose is 1..64 characters of [a-z0-9._-], starting alphanumeric")
    return purpose.encode("ascii")


def _derive(passphrase: bytes, salt: bytes, log2_n: int, r: int, p: int) -> tuple[bytes, bytes]:
    out = Scrypt(salt=salt, length=32 + CHECK_LEN, n=1 << log2_n, r=r, p=p).derive(passphrase)
    return out[:32], out[32:]


def seal(
    secret: bytes,
    passphrase: Passphrase,
    purpose: str,
    rng: Callable[[int], bytes],
    *,
    log2_n: int = DEFAULT_LOG2_N,
) -> bytes:
    """Seal ``secret`` for ``purpose`` under ``passphrase`` (a string, or key-file bytes)."""
    if not secret or len(secret) > MAX_SECRET_LEN:
        raise ValueError("a secret is 1..65536 bytes")
    if not MIN_LOG2_N <= log2_n <= MAX_LOG2_N:
        raise ValueError(f"log2_n must be in {MIN_LOG2_N}..{MAX_LOG2_N}")
    purpose_bytes = _check_purpose(purpose)
    salt = rng(SALT_LEN)
    nonce = rng(NONCE_LEN)
    if len(salt) != SALT_LEN or len(nonce) != NONCE_LEN:
        raise ValueError("rng returned the wrong number of bytes")
    key, check = _derive(_passphrase_bytes(passphrase), salt, log2_n, SCRYPT_R, SCRYPT_P)
    header = (
        MAGIC
        + bytes([VERSION, log2_n, SCRYPT_R, SCRYPT_P])
        + salt
        + bytes([len(purpose_bytes)])
        + purpose_bytes
        + check
        + nonce
    )
    aad = _AAD_PREFIX + purpose_bytes + b"\x00" + header
    return header + AESGCM(key).encrypt(nonce, bytes(secret), aad)


@dataclass(frozen=True)
class _Parsed:
    log2_n: int
    r: int
    p: int
    salt: bytes
    purpose: bytes
    check: bytes
    nonce: bytes
    header: bytes
    sealed: bytes


def _parse(blob: bytes) -> _Parsed:
    fixed = len(MAGIC) + 4 + SALT_LEN + 1
    if len(blob) < fixed or blob[: len(MAGIC)] != MAGIC:
        raise SealedFormatError("not a fiumatch sealed secret")
    pos = len(MAGIC)
    version, log2_n, r, p = blob[pos : pos + 4]
    if version != VERSION:
        raise SealedFormatError("unsupported sealed-secret version", version=version)
    if not (MIN_LOG2_N <= log2_n <= MAX_LOG2_N and 1 <= r <= MAX_R and 1 <= p <= MAX_P):
        raise SealedFormatError("scrypt parameters out of the accepted range")
    if 128 * r * (1 << log2_n) * p > MAX_SCRYPT_MEMORY:
        raise SealedFormatError("scrypt parameters would need too much memory")
    pos += 4
    salt = blob[pos : pos + SALT_LEN]
    pos += SALT_LEN
    plen = blob[pos]
    pos += 1
    purpose = blob[pos : pos + plen]
    pos += plen
    check = blob[pos : pos + CHECK_LEN]
    pos += CHECK_LEN
    nonce = blob[pos : pos + NONCE_LEN]
    pos += NONCE_LEN
    sealed = blob[pos:]
    if len(sealed) < TAG_LEN + 1 or not plen:
        raise SealedFormatError("the sealed secret is truncated")
    return _Parsed(log2_n, r, p, salt, purpose, check, nonce, blob[:pos], sealed)


def sealed_purpose(blob: bytes) -> str:
    """The purpose a sealed blob claims (unauthenticated until :func:`unseal` succeeds)."""
    return _parse(blob).purpose.decode("ascii", errors="replace")


def unseal(blob: bytes, passphrase: Passphrase, purpose: str) -> bytes:
    """Open a sealed secret; raises a :class:`SealingError` subclass saying why it cannot."""
    expected = _check_purpose(purpose)
    parsed = _parse(bytes(blob))
    if not hmac.compare_digest(parsed.purpose, expected):
        raise WrongPurposeError("the secret was sealed for another purpose")
    key, check = _derive(
        _passphrase_bytes(passphrase), parsed.salt, parsed.log2_n, parsed.r, parsed.p
    )
    if not hmac.compare_digest(check, parsed.check):
        raise WrongPassphraseError("the passphrase does not open this secret")
    aad = _AAD_PREFIX + expected + b"\x00" + parsed.header
    try:
        return AESGCM(key).decrypt(parsed.nonce, parsed.sealed, aad)
    except InvalidTag:
        raise TamperedSecretError("the sealed secret was modified") from None


# --- key files ------------------------------------------------------------------------------


def check_private_file(path: Path | str) -> os.stat_result:
    """Stat a file that must be private: a regular file no one but its owner can access.

    :class:`KeyFileMissingError` if absent or not a regular file, :class:`InsecureKeyFileError`
    if its mode grants anything to group or others.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise KeyFileMissingError("the key file does not exist", file=Path(path).name) from None
    return _check_stat(st, path)


def _check_stat(st: os.stat_result, path: Path | str) -> os.stat_result:
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileMissingError("the key file is not a regular file", file=Path(path).name)
    if st.st_mode & 0o077:
        raise InsecureKeyFileError(
            f"the key file is accessible to group or others (mode {stat.S_IMODE(st.st_mode):04o});"
            " run chmod 600 on it",
            file=Path(path).name,
        )
    return st


def load_sealed_file(path: Path | str) -> bytes:
    """Read a sealed key file after checking, on the open descriptor, that it is private."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise KeyFileMissingError("the key file does not exist", file=Path(path).name) from None
    try:
        st = _check_stat(os.fstat(fd), path)
        if st.st_size > MAX_SECRET_LEN * 2:
            raise SealedFormatError("the key file is too large to be a sealed secret")
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def write_sealed_file(path: Path | str, blob: bytes, *, overwrite: bool = False) -> None:
    """Write ``blob`` to ``path`` atomically with mode 0600.

    Writes a temporary file in the same directory, fsyncs it, renames it into place and fsyncs
    the directory, so a crash leaves either the old file or the new one, never a torn one.
    Without ``overwrite``, an existing file is kept and :class:`KeyFileExistsError` raised.
    """
    target = Path(path)
    directory = target.parent
    tmp = directory / f".{target.name}.tmp-{os.getpid()}-{os.urandom(4).hex()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # the creation mode is filtered by the umask; be explicit
            view = memoryview(blob)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(tmp, target)
        else:
            try:
                os.link(tmp, target)  # atomic, and fails if the target exists
            except FileExistsError:
                raise KeyFileExistsError(
                    "the key file already exists; refusing to overwrite it", file=target.name
                ) from None
            os.unlink(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    try:
        dfd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
