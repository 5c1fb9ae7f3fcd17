"""Trust set-up on real nodes: pinning needs the right fingerprint (and a wrong one stores
nothing), an agreement outside its validity period refuses with clause ``validity``, an operator's
own TLS certificate is what the node serves, and signatures cover the request target as sent."""

from __future__ import annotations

import os
import socket
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fiumatch.cli.main import main
from fiumatch.client.api import ApiClient
from fiumatch.client.peer import PeerError
from fiumatch.demo.run import wait_query

from .conftest import Trio, peer_client

pytestmark = pytest.mark.slow


def _served_certificate(url: str) -> x509.Certificate:
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def _audit_events(node: object, event: str) -> list[dict[str, object]]:
    with node.client("auditor") as c:  # type: ignore[attr-defined]
        entries = c.audit_entries()["entries"]
    return [e for e in entries if str(e["event"]).upper() == event]


def test_an_agreement_outside_its_validity_is_refused_with_clause_validity(trio: Trio) -> None:
    client, _ = peer_client(trio.z, trio.y)  # Y's only agreement with Z starts tomorrow
    refusals_before = len(_audit_events(trio.y, "REFUSAL"))
    with client, pytest.raises(PeerError) as err:
        client.open_session(
            session_id=os.urandom(16).hex(),
            mode="filter",
            purpose="money_laundering",
            id_types=["passport"],
            set_size=1,
        )
    assert (err.value.status, err.value.code, err.value.clause) == (
        403,
        "agreement_refused",
        "validity",
    )
    refusals = _audit_events(trio.y, "REFUSAL")
    assert len(refusals) == refusals_before + 1
    assert refusals[-1]["clause"] == "validity" and refusals[-1]["peer"] == "FIU-Z"
    # Our own side refuses before sending anything: Y's analyst cannot query Z either.
    with trio.y.client("analyst") as c:
        q = c.create_query(
            purpose="money_laundering",
            legal_basis="AMLD art. 53",
            case_ref="VALIDITY-1",
            records=[
                {
                    "type": "person",
                    "name": "Ann Example",
                    "passport_number": "X1234567",
                    "passport_country": "DE",
                }
            ],
            peers=["FIU-Z"],
        )
        q = wait_query(c, q, timeout=20)
    (peer,) = q["peers"]
    assert peer["status"] == "refused" and peer["reason"] == "our agreement: validity"
    assert q["partial"]


def test_peers_add_with_a_wrong_fingerprint_exits_nonzero_and_pins_nothing(
    trio: Trio, capsys: pytest.CaptureFixture[str]
) -> None:
    x, z = trio.x, trio.z
    wrong = "SHA256:" + "A" * 43
    peer_events = len(_audit_events(x, "PEER_CHANGED"))
    code = main(["peers", "add", "FIU-Z", z.url, "--fingerprint", wrong, "--dir", str(x.root)])
    err = capsys.readouterr().err
    assert code == 1
    assert "fingerprint mismatch" in err and "nothing was pinned" in err
    assert z.fingerprint in err and wrong in err
    with x.client() as c:
        assert "FIU-Z" not in {p["node_id"] for p in c.peers()}
    assert len(_audit_events(x, "PEER_CHANGED")) == peer_events
    # The right fingerprint pins it.
    code = main(
        ["peers", "add", "FIU-Z", z.url, "--fingerprint", z.fingerprint, "--dir", str(x.root)]
    )
    assert code == 0 and "pinned FIU-Z" in capsys.readouterr().out
    with x.client() as c:
        pinned = {p["node_id"]: p for p in c.peers()}
    assert pinned["FIU-Z"]["fingerprint"] == z.fingerprint
    assert len(_audit_events(x, "PEER_CHANGED")) == peer_events + 1


def test_the_node_serves_the_operator_supplied_certificate(trio: Trio) -> None:
    z, operator = trio.z, trio.operator
    settings = z.dir.settings
    assert settings.tls_cert == operator.cert.resolve()
    assert settings.tls_key == operator.key.resolve()
    assert not (z.root / "tls").exists()  # init generated nothing of its own
    served = _served_certificate(z.url)
    supplied = x509.load_pem_x509_certificate(operator.cert.read_bytes())
    assert served.public_bytes(serialization.Encoding.DER) == supplied.public_bytes(
        serialization.Encoding.DER
    )
    # Verified TLS: against the operator's CA, and against the certificate itself (--dir).
    for anchor in (operator.ca, operator.cert):
        with ApiClient(z.url, z.analyst, cacert=anchor) as c:
            assert c.call("GET", "/api/v1/me")["node_id"] == "FIU-Z"
    assert main(["peers", "list", "--dir", str(z.root)]) == 0


def test_init_refuses_operator_files_that_do_not_fit(trio: Trio, tmp_path: Path) -> None:
    operator = trio.operator
    other = tmp_path / "other.key"
    other.write_bytes((trio.x.root / "tls" / "key.pem").read_bytes())
    other.chmod(0o600)
    base = ["node", "init", "--node-id", "FIU-W", "--scrypt-log2n", "10", "--port", "1"]
    mismatched = [*base, "--dir", str(tmp_path / "a"), "--cert", str(operator.cert)]
    assert main([*mismatched, "--key", str(other)]) == 1
    assert not (tmp_path / "a").exists()
    readable = tmp_path / "readable.key"
    readable.write_bytes(operator.key.read_bytes())
    readable.chmod(0o644)
    assert (
        main(
            [
                *base,
                "--dir",
                str(tmp_path / "b"),
                "--cert",
                str(operator.cert),
                "--key",
                str(readable),
            ]
        )
        == 1
    )
    assert not (tmp_path / "b").exists()
    assert main([*base, "--dir", str(tmp_path / "c"), "--cert", str(operator.cert)]) == 2


@pytest.mark.parametrize(
    "target",
    ["/peer/v1/disclosures/d-%20x", "/peer/v1/disclosures/d-0123456789abcdef?x=%2Fy%20z"],
)
def test_signatures_cover_the_request_target_as_sent(trio: Trio, target: str) -> None:
    """A percent-encoded path or query must verify: the node checks the raw target, not the
    decoded one (which would turn a valid request into 401 bad_signature)."""
    client, _ = peer_client(trio.x, trio.y)
    with client, pytest.raises(PeerError) as err:
        client.signed_request("GET", target, b"", content_type="application/json")
    # Authenticated (the signed 404 verified against our raw target), then simply not found.
    assert (err.value.status, err.value.code) == (404, "not_found")


def test_a_refused_signature_is_audited_with_the_parsed_claimed_signer(trio: Trio) -> None:
    client, _ = peer_client(trio.z, trio.x)
    client._key = Ed25519PrivateKey.generate()  # an unknown signer...
    client._own_id = 'FIU-"Q'  # ...whose keyid holds a quote the old string split mis-read
    before = len(_audit_events(trio.x, "REFUSAL"))
    with client, pytest.raises(PeerError) as err:
        client.signed_request("GET", "/peer/v1/disclosures/d-0", b"", content_type="text/plain")
    assert err.value.status == 401
    refusals = _audit_events(trio.x, "REFUSAL")
    assert len(refusals) == before + 1
    assert refusals[-1]["clause"] == "auth" and refusals[-1]["peer"] == "FIU--Q"
