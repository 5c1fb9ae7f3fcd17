"""The node's TLS certificate: generation, files, checks, and a real TLS handshake."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fiumatch.node.errors import KeyFileExistsError, SettingsError
from fiumatch.node.tls import (
    check_tls_files,
    generate_tls_key,
    self_signed_certificate,
    write_tls_files,
)
from tests.node.helpers import det_rng

NOW = 1_760_000_000


def _make(tmp_path: Path, seed: bytes = b"tls") -> tuple[Path, Path, x509.Certificate]:
    rng = det_rng(seed)
    key = generate_tls_key(rng)
    cert = self_signed_certificate(
        key, node_id="fiu-a", hosts=["localhost", "127.0.0.1", "fiu-a.example"], now=NOW, rng=rng
    )
    cert_path, key_path = tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem"
    write_tls_files(cert_path, key_path, cert, key)
    return cert_path, key_path, cert


def test_the_key_is_p256_and_reproducible_from_the_rng() -> None:
    a, b = generate_tls_key(det_rng(b"x")), generate_tls_key(det_rng(b"x"))
    assert isinstance(a.curve, ec.SECP256R1)
    assert a.private_numbers().private_value == b.private_numbers().private_value
    assert generate_tls_key(det_rng(b"y")).private_numbers() != a.private_numbers()


def test_the_certificate_names_the_node_and_its_hosts(tmp_path: Path) -> None:
    _, _, cert = _make(tmp_path)
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "fiu-a"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "fiu-a.example"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.not_valid_before_utc <= dt.datetime.fromtimestamp(NOW, tz=dt.UTC)
    assert cert.not_valid_after_utc > dt.datetime.fromtimestamp(NOW + 800 * 86400, tz=dt.UTC)
    assert cert.serial_number > 0
    cert.verify_directly_issued_by(cert)


def test_files_have_private_key_permissions_and_are_never_overwritten(tmp_path: Path) -> None:
    cert_path, key_path, _ = _make(tmp_path)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cert_path.stat().st_mode) == 0o644
    with pytest.raises(KeyFileExistsError):
        _make(tmp_path, b"other")


def test_check_accepts_good_files_and_reports_the_fingerprint(tmp_path: Path) -> None:
    cert_path, key_path, _ = _make(tmp_path)
    info = check_tls_files(cert_path, key_path, now=NOW)
    assert len(info.cert_sha256.split(":")) == 32
    assert info.not_after > NOW


def test_check_refusals_name_the_setting(tmp_path: Path) -> None:
    cert_path, key_path, _ = _make(tmp_path / "a")
    other_cert, other_key, _ = _make(tmp_path / "b", b"b")
    cases = [
        ((other_cert, key_path, NOW), "tls.key"),  # key does not match
        ((cert_path, key_path, NOW + 900 * 86400), "tls.cert"),  # expired
        ((cert_path, key_path, NOW - 3600), "tls.cert"),  # not yet valid
        ((tmp_path / "absent.pem", key_path, NOW), "tls.cert"),
        ((cert_path, tmp_path / "absent.key", NOW), "tls.key"),
        ((key_path, key_path, NOW), "tls.cert"),  # not a certificate
        ((cert_path, cert_path.with_name("cert.pem"), NOW), "tls.key"),
    ]
    for (cert, key, now), setting in cases:
        with pytest.raises(SettingsError) as info:
            check_tls_files(cert, key, now=now)
        assert info.value.setting == setting, (cert, key, now)
    other_key.chmod(0o640)
    with pytest.raises(SettingsError) as info:
        check_tls_files(other_cert, other_key, now=NOW)
    assert info.value.setting == "tls.key"
    assert "chmod 600" in info.value.reason


def test_openssl_serves_tls_with_the_generated_files(tmp_path: Path) -> None:
    cert_path, key_path, _ = _make(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert_path, key_path)
    client_ctx = ssl.create_default_context(cafile=str(cert_path))
    left, right = socket.socketpair()
    received: list[bytes] = []

    def serve() -> None:
        with server_ctx.wrap_socket(right, server_side=True) as tls:
            received.append(tls.recv(5))
            tls.sendall(b"pong")

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_ctx.wrap_socket(left, server_hostname="localhost") as tls:
            tls.sendall(b"ping!")
            assert tls.recv(4) == b"pong"
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
    finally:
        thread.join(timeout=10)
    assert received == [b"ping!"]


def test_at_least_one_host_is_needed() -> None:
    with pytest.raises(ValueError):
        self_signed_certificate(
            generate_tls_key(det_rng()), node_id="x", hosts=[], now=NOW, rng=det_rng()
        )
