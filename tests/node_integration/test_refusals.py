"""The owner enforces its agreement (each clause → 403 naming it), its budget (429 with when it
refills) and peer authentication (unknown key, forged, replayed → 401), and audits each."""

from __future__ import annotations

import json
import os
import time
from typing import Any, cast

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fiumatch.client.peer import PeerError
from fiumatch.demo.run import DemoNode
from fiumatch.node import httpsig

from .conftest import peer_client

pytestmark = pytest.mark.slow


def _open(client: Any, **over: Any) -> Any:
    spec = {
        "mode": "filter",
        "purpose": "money_laundering",
        "id_types": ["passport"],
        "set_size": 1,
    }
    spec.update(over)
    return client.open_session(session_id=os.urandom(16).hex(), **spec)


@pytest.mark.parametrize(
    ("over", "clause"),
    [
        ({"mode": "mutual"}, "mode"),
        ({"purpose": "terrorist_financing"}, "purpose"),
        ({"id_types": ["iban"]}, "id_type"),
        ({"set_size": 6}, "set_size"),
        ({"proofs": False}, "proofs"),
    ],
)
def test_each_agreement_clause_refuses(
    strict_pair: tuple[DemoNode, DemoNode], over: dict[str, Any], clause: str
) -> None:
    x, y = strict_pair
    client, _ = peer_client(x, y)
    with client, pytest.raises(PeerError) as err:
        _open(client, **over)
    assert err.value.status == 403 and err.value.code == "agreement_refused"
    assert err.value.clause == clause


def test_no_agreement_refuses(strict_pair: tuple[DemoNode, DemoNode]) -> None:
    x, y = strict_pair
    client, _ = peer_client(y, x)  # X has no agreement with Y
    with client, pytest.raises(PeerError) as err:
        _open(client)
    assert err.value.status == 403 and err.value.clause == "no_agreement"


def test_budget_exhaustion_says_when_it_refills(strict_pair: tuple[DemoNode, DemoNode]) -> None:
    x, y = strict_pair
    client, _ = peer_client(x, y)
    with y.client() as c:
        c.rotate("FIU-X")  # a fresh epoch, a fresh budget
    with client:
        _open(client, set_size=5)
        _open(client, set_size=5)
        with pytest.raises(PeerError) as err:
            _open(client, set_size=1)
    assert err.value.status == 429 and err.value.code == "budget_exhausted"
    period = y.dir.settings.epoch_rotation_seconds  # the budget refills with the next epoch
    assert err.value.retry_after is not None and period - 60 < err.value.retry_after <= period
    with y.client("auditor") as c:
        entries = c.audit_entries()["entries"]
    clauses = {e.get("clause") for e in entries if str(e["event"]).upper() == "REFUSAL"}
    assert {"budget", "mode", "purpose"} <= clauses


def _signed(
    x: DemoNode, y: DemoNode, key: Ed25519PrivateKey, keyid: str
) -> tuple[str, dict[str, str], bytes]:
    sid = os.urandom(16).hex()
    body = json.dumps(
        {
            "session_id": sid,
            "mode": "filter",
            "purpose": "money_laundering",
            "id_types": ["passport"],
            "set_size": 1,
        }
    ).encode()
    authority = y.url.split("://", 1)[1]
    headers = {
        "content-type": "application/json",
        "fiumatch-peer": y.node_id,
        "fiumatch-session": sid,
    }
    headers |= httpsig.sign_request(
        method="POST",
        target="/peer/v1/sessions",
        authority=authority,
        headers=headers,
        body=body,
        key=key,
        keyid=keyid,
        now=int(time.time()),
        rng=os.urandom,
    )
    return y.url + "/peer/v1/sessions", headers, body


def test_replayed_forged_and_unknown_requests_get_401(
    strict_pair: tuple[DemoNode, DemoNode],
) -> None:
    x, y = strict_pair
    client, keys = peer_client(x, y)
    client.close()
    with y.client() as c:
        c.rotate("FIU-X")
    url, headers, body = _signed(x, y, keys.identity, x.node_id)
    first = httpx.post(url, content=body, headers=headers, verify=False)
    assert first.status_code == 200
    replay = httpx.post(url, content=body, headers=headers, verify=False)
    assert replay.status_code == 401 and replay.json()["error"] == "replayed_nonce"
    url, headers, body = _signed(x, y, Ed25519PrivateKey.generate(), x.node_id)
    forged = httpx.post(url, content=body, headers=headers, verify=False)
    assert forged.status_code == 401 and forged.json()["error"] == "bad_signature"
    url, headers, body = _signed(x, y, Ed25519PrivateKey.generate(), "FIU-NOBODY")
    unknown = httpx.post(url, content=body, headers=headers, verify=False)
    assert unknown.status_code == 401 and unknown.json()["error"] == "unknown_key"
    url, headers, body = _signed(x, y, keys.identity, x.node_id)
    tampered = httpx.post(
        url, content=body.replace(b'"set_size": 1', b'"set_size": 2'), headers=headers, verify=False
    )
    assert tampered.status_code == 401
    with y.client("auditor") as c:
        entries = c.audit_entries()["entries"]
    assert sum(1 for e in entries if e.get("clause") == "auth") >= 4


def test_open_sessions_are_capped_per_peer_and_a_rotation_frees_them(
    strict_pair: tuple[DemoNode, DemoNode],
) -> None:
    x, y = strict_pair
    cap = y.dir.settings.session_max_open_per_peer
    client, _ = peer_client(x, y)
    with y.client() as c:
        c.rotate("FIU-X")  # a fresh budget, and no session of X open on Y
    with client:
        for _ in range(cap):
            _open(client)  # opened and left idle
        with pytest.raises(PeerError) as err:
            _open(client)
        assert (err.value.status, err.value.code) == (409, "conflict")
        with y.client() as c:
            c.rotate("FIU-X")  # sessions on the retired epoch stop counting
        _open(client)
    with y.client() as c:
        c.rotate("FIU-X")  # leave nothing open for the other tests


@pytest.mark.parametrize("set_size", ["abc", None, 1.5, True, -1, [1]])
def test_a_set_size_that_is_no_count_is_a_bad_request(
    strict_pair: tuple[DemoNode, DemoNode], set_size: Any
) -> None:
    x, y = strict_pair
    client, _ = peer_client(x, y)
    with y.client("auditor") as c:
        before = c.audit_entries(0, 0)["size"]
    with client, pytest.raises(PeerError) as err:
        _open(client, set_size=set_size)
    assert err.value.status == 400 and err.value.code == "bad_request"
    assert "set_size" in err.value.reason
    with y.client("auditor") as c:
        new = c.audit_entries(before)["entries"]
    assert [e.get("clause") for e in new if str(e["event"]).upper() == "REFUSAL"] == ["protocol"]


@pytest.mark.parametrize("epoch", ["1x", "+1", "-1", "1_0", "", "9" * 20])
def test_a_non_decimal_epoch_header_is_a_bad_request(
    strict_pair: tuple[DemoNode, DemoNode], epoch: str
) -> None:
    # The header is signed and present, so it is not a missing component: it is malformed.
    x, y = strict_pair
    client, _ = peer_client(x, y)
    sid = os.urandom(16).hex()
    with client, pytest.raises(PeerError) as err:
        client.signed_request(
            "POST",
            f"/peer/v1/sessions/{sid}/frames",
            b"",
            content_type="application/octet-stream",
            session=sid,
            epoch=cast(Any, epoch),
        )
    assert err.value.status == 400 and err.value.code == "bad_request"
    assert "epoch" in err.value.reason
