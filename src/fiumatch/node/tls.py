"""The node's TLS server certificate: a self-signed ECDSA P-256 certificate made at ``node init``
(unless the operator brings one), and the checks run on the files at start.

P-256 because every OpenSSL build accepts it for TLS (uvicorn hands the files to Python's
``ssl``). TLS protects transport; peer *identity* is the Ed25519 key that signs each message
(:mod:`fiumatch.node.httpsig`), so a self-signed certificate is acceptable: peers pin the
certificate fingerprint printed here or rely on message signatures.

The private key file is written 0600, atomically, never over an existing file; it is PKCS#8
PEM without a password (the node must start unattended; protect it with file permissions).
The key is derived from the caller's ``rng``, so tests are reproducible. Nothing here logs a key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fiumatch.node.errors import SealingError, SettingsError
from fiumatch.node.sealing import check_private_file, write_sealed_file

__all__ = [
    "CERT_VALIDITY_DAYS",
    "TlsFiles",
    "cert_fingerprint",
    "check_tls_files",
    "generate_tls_key",
    "self_signed_certificate",
    "write_tls_files",
]

CERT_VALIDITY_DAYS = 825
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def generate_tls_key(rng: Callable[[int], bytes]) -> ec.EllipticCurvePrivateKey:
    """A P-256 private key whose scalar comes from ``rng`` (48 bytes, reduced: bias < 2**-128)."""
    raw = rng(48)
    if len(raw) != 48:
        raise ValueError("rng returned the wrong number of bytes")
    scalar = int.from_bytes(raw, "big") % (_P256_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())


def _utc(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


def _san(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):  # unique, in order
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def self_signed_certificate(
    key: ec.EllipticCurvePrivateKey,
    *,
    node_id: str,
    hosts: Sequence[str],
    now: int,
    rng: Callable[[int], bytes],
    days: int = CERT_VALIDITY_DAYS,
) -> x509.Certificate:
    """A self-signed server (and client) certificate for ``hosts`` valid from ``now``."""
    if not hosts:
        raise ValueError("a certificate needs at least one host name")
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fiumatch"),
            x509.NameAttribute(NameOID.COMMON_NAME, node_id),
        ]
    )
    serial = int.from_bytes(rng(19), "big") >> 1 or 1  # positive, at most 20 bytes in DER
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(serial)
        .not_valid_before(_utc(now - 300))  # tolerate small clock differences
        .not_valid_after(_utc(now + days * 86400))
        .add_extension(_san(hosts), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def write_tls_files(
    cert_path: Path, key_path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> None:
    """Write the key (0600) and certificate (0644) as PEM; refuses to overwrite either."""
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    for path in (cert_path, key_path):
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_sealed_file(key_path, key_pem)
    try:
        write_sealed_file(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    except BaseException:
        key_path.unlink(missing_ok=True)
        raise
    os.chmod(cert_path, 0o644)


@dataclass(frozen=True, kw_only=True)
class TlsFiles:
    """What :func:`check_tls_files` found."""

    cert_path: Path
    key_path: Path
    cert_sha256: str  # colon-separated hex of SHA-256 over the certificate's DER
    not_after: int


def cert_fingerprint(cert: x509.Certificate) -> str:
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def check_tls_files(cert_path: Path, key_path: Path, *, now: int) -> TlsFiles:
    """Check the TLS files a node will serve: present, key private, key matches the
    certificate, certificate currently valid. :class:`SettingsError` naming ``tls.cert`` or
    ``tls.key`` otherwise."""
    try:
        check_private_file(key_path)
    except SealingError as exc:
        raise SettingsError(
            f"the TLS key file is unusable: {exc.reason}", setting="tls.key"
        ) from None
    try:
        cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    except FileNotFoundError:
        raise SettingsError("the TLS certificate file does not exist", setting="tls.cert") from None
    except ValueError:
        raise SettingsError(
            "the TLS certificate is not a PEM certificate", setting="tls.cert"
        ) from None
    try:
        key = serialization.load_pem_private_key(Path(key_path).read_bytes(), password=None)
    except (ValueError, TypeError):
        raise SettingsError(
            "the TLS key is not an unencrypted PEM private key", setting="tls.key"
        ) from None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if key.public_key().public_bytes(der, spki) != cert.public_key().public_bytes(der, spki):
        raise SettingsError("the TLS key does not match the certificate", setting="tls.key")
    not_after = int(cert.not_valid_after_utc.timestamp())
    if not int(cert.not_valid_before_utc.timestamp()) <= now <= not_after:
        raise SettingsError("the TLS certificate is not valid at this time", setting="tls.cert")
    return TlsFiles(
        cert_path=Path(cert_path),
        key_path=Path(key_path),
        cert_sha256=cert_fingerprint(cert),
        not_after=not_after,
    )
