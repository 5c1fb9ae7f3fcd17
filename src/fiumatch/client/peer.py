"""The signed node-to-node client: what one FIU node uses to talk to a pinned peer.

Every request is signed (RFC 9421, Ed25519, with RFC 9530 Content-Digest, through
``fiumatch.node.httpsig``) and binds the recipient (``fiumatch-peer``), the session and the key
epoch; every response must carry the peer's signature over it *and* over our request's
signature, verified against the peer's pinned key, or the call fails.

Trust model: peers use the TLS certificates they generated themselves; no CA is involved and
the client does not verify the certificate chain (``verify=False``). TLS gives confidentiality
on the wire; authenticity and integrity of every message come from the pinned Ed25519 key
(pinned after the operator compared fingerprints out of band, like an SSH host key). A
man-in-the-middle can therefore read blinded elements, never forge or alter a message.

Protocol frames travel as ``application/octet-stream`` (wire frames); control messages
(open session, disclosure) as JSON.

Connections: one client is meant to be kept per peer; its HTTP/TLS connection is reused
between requests and sessions (kept alive up to ``KEEPALIVE_SECONDS`` idle).

Outages: a peer that refuses the connection (or fails the TLS handshake) is retried at most
``connect_retries`` times with exponential backoff (nothing reached the peer, so a retry is
safe); a peer silent past the timeout or closing the connection mid-response is *not* retried
(the request may have been processed) and fails at once as ``unreachable``, with the reason
saying which.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fiumatch.errors import FiumatchError
from fiumatch.node import httpsig
from fiumatch.node.audit import AuditSink
from fiumatch.node.keys import public_key_from_raw
from fiumatch.store import Peer

__all__ = ["PeerClient", "PeerError", "fetch_well_known"]

TIMEOUT = httpx.Timeout(30.0, connect=5.0)
KEEPALIVE_SECONDS = 60.0
"""How long an idle connection to the peer is kept for the next request: below the node's
server-side keep-alive (``node.runner.KEEP_ALIVE_SECONDS``), so it is dropped here first."""
BACKOFF_SECONDS = 0.2
"""The first retry's delay; each next one doubles it."""


class PeerError(FiumatchError):
    """A peer refused a request (``status`` and its error ``code``, ``clause``, ``retry_after``)
    or could not be reached (``status`` 0, code ``unreachable``)."""

    code = "peer_error"
    http_status = 502

    def __init__(
        self,
        reason: str,
        *,
        status: int,
        peer_code: str,
        clause: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(reason, status=status, peer_code=peer_code)
        self.status = status
        self.code = peer_code
        self.clause = clause
        self.retry_after = retry_after


def fetch_well_known(url: str, *, timeout: float = 10.0) -> dict[str, Any]:
    """The peer's self-description (node id, Ed25519 public key, fingerprint). Unsigned: the
    caller must compare the fingerprint out of band before pinning it."""
    try:
        r = httpx.get(url.rstrip("/") + "/.well-known/fiumatch", verify=False, timeout=timeout)
        r.raise_for_status()
        data: dict[str, Any] = r.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise PeerError("the peer could not be reached", status=0, peer_code="unreachable") from exc
    return data


class PeerClient:
    """Signed calls to one pinned peer."""

    def __init__(
        self,
        *,
        own_id: str,
        key: Ed25519PrivateKey,
        peer: Peer,
        clock: Callable[[], float],
        rng: Callable[[int], bytes],
        transport: httpx.BaseTransport | None = None,
        audit: AuditSink | None = None,
        timeout: float | None = None,
        connect_retries: int = 0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._own_id = own_id
        self._key = key
        self._peer = peer
        self._peer_key: Ed25519PublicKey = public_key_from_raw(peer.public_key)
        self._clock = clock
        self._rng = rng
        self._base = peer.url.rstrip("/")
        # Exactly the Host header httpx sends: it leaves a scheme's default port out
        # (https://x:443 -> Host: x) and sends an IDN host in its ASCII form.
        self._authority = httpx.URL(self._base).netloc.decode("ascii")
        limit = TIMEOUT if timeout is None else httpx.Timeout(timeout, connect=min(timeout, 5.0))
        self._timeout = limit.read
        # One connection is kept alive and reused by every request (the node keeps one client
        # per peer): a session pays no TLS handshake. A connection the peer closed meanwhile
        # is noticed before reuse (it reads as closed) and replaced by a new one.
        self._http = httpx.Client(
            verify=False,
            timeout=limit,
            transport=transport,
            limits=httpx.Limits(
                max_connections=100,
                max_keepalive_connections=20,
                keepalive_expiry=KEEPALIVE_SECONDS,
            ),
        )
        self._audit = audit  # receipts and cosignatures on every exchange (node.audit)
        self._connect_retries = max(0, connect_retries)
        self._sleep = sleep
        self.connect_attempts = 0
        """Connection attempts made so far (first tries and retries)."""

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PeerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def signed_request(
        self,
        method: str,
        path: str,
        body: bytes,
        *,
        content_type: str,
        session: str | None = None,
        epoch: int | None = None,
    ) -> tuple[int, Mapping[str, str], bytes, dict[str, str]]:
        """Send one signed request; verify the signed response. Returns status, headers, body
        and the request headers sent (tests use them to replay)."""
        headers = {"content-type": content_type, "fiumatch-peer": self._peer.node_id}
        if session is not None:
            headers["fiumatch-session"] = session
        if epoch is not None:
            headers["fiumatch-epoch"] = str(epoch)
        if self._audit is not None:  # before signing: every fiumatch-* header is covered
            headers.update(self._audit.outgoing_headers(self._peer.node_id))
        now = int(self._clock())
        headers.update(
            httpsig.sign_request(
                method=method,
                target=path,
                authority=self._authority,
                headers=headers,
                body=body,
                key=self._key,
                keyid=self._own_id,
                now=now,
                rng=self._rng,
            )
        )
        r = self._send(method, path, body, headers)
        request = httpsig.HttpRequest(
            method=method,
            target=path,
            authority=self._authority,
            headers={k.lower(): v for k, v in headers.items()},
            body=body,
        )
        resp_headers = httpsig.combine_headers(r.headers.multi_items())
        try:
            httpsig.verify_response(
                status=r.status_code,
                headers=resp_headers,
                body=r.content,
                request=request,
                resolve_key=lambda kid: self._peer_key if kid == self._peer.node_id else None,
                now=int(self._clock()),
                expected_peer=self._own_id,
            )
        except FiumatchError as exc:
            # A 429 rate_limited comes before the peer knows who asked, so it is unsigned:
            # keep its Retry-After (only a delay; bounded, so a forged one cannot stall us long).
            raise PeerError(
                f"the peer's response is not authentic ({exc.code})",
                status=r.status_code or 0,
                peer_code="unauthentic_response" if r.status_code < 400 else _code(r),
                retry_after=_retry_after(r) if r.status_code == 429 else None,
            ) from None
        if self._audit is not None:
            self._audit.after_response(
                self._peer.node_id, session, body, r.status_code, r.content, resp_headers
            )
        if r.status_code >= 400:
            data = _json(r.content)
            details = data.get("details", {}) if isinstance(data.get("details"), dict) else {}
            raise PeerError(
                str(data.get("reason", "refused")),
                status=r.status_code,
                peer_code=str(data.get("error", "refused")),
                clause=details.get("clause"),
                retry_after=details.get("retry_after"),
            )
        return r.status_code, resp_headers, r.content, headers

    def _send(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        """One request, with bounded retries only while the peer refuses the connection."""
        for attempt in range(self._connect_retries + 1):
            self.connect_attempts += 1
            try:
                return self._http.request(method, self._base + path, content=body, headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if attempt < self._connect_retries:
                    self._sleep(BACKOFF_SECONDS * 2**attempt)
                    continue
                raise PeerError(
                    f"the peer could not be reached ({attempt + 1} attempts)",
                    status=0,
                    peer_code="unreachable",
                ) from exc
            except httpx.TimeoutException as exc:
                raise PeerError(
                    f"the peer did not answer within {self._timeout:g} s",
                    status=0,
                    peer_code="unreachable",
                ) from exc
            except httpx.HTTPError as exc:
                raise PeerError(
                    f"the peer closed the connection mid-exchange ({type(exc).__name__})",
                    status=0,
                    peer_code="unreachable",
                ) from exc
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _json_call(
        self, method: str, path: str, payload: Mapping[str, Any] | None, **kw: Any
    ) -> dict[str, Any]:
        body = b"" if payload is None else json.dumps(payload, sort_keys=True).encode()
        _, _, content, _ = self.signed_request(
            method, path, body, content_type="application/json", **kw
        )
        return _json(content)

    def open_session(
        self,
        *,
        session_id: str,
        mode: str,
        purpose: str,
        id_types: list[str],
        set_size: int,
        proofs: bool = True,
        frames: str | None = None,
        frames_epoch: int | None = None,
    ) -> dict[str, Any]:
        """Open a session. ``frames`` (base64) and ``frames_epoch``: the session's first frames,
        built for that epoch, sent with the open (SPEC §14.4.1); the answer to them comes back
        as the response's ``frames`` if the peer's epoch is that one."""
        payload: dict[str, Any] = {
            "session_id": session_id,
            "mode": mode,
            "purpose": purpose,
            "id_types": id_types,
            "set_size": set_size,
            "proofs": proofs,
        }
        if frames is not None:
            payload.update(frames=frames, frames_epoch=frames_epoch)
        return self._json_call("POST", "/peer/v1/sessions", payload, session=session_id)

    def send_frames(self, session_id: str, epoch: int, frames: bytes) -> bytes:
        _, _, content, _ = self.signed_request(
            "POST",
            f"/peer/v1/sessions/{session_id}/frames",
            frames,
            content_type="application/octet-stream",
            session=session_id,
            epoch=epoch,
        )
        return content

    def request_disclosure(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        return self._json_call("POST", "/peer/v1/disclosures", payload)

    def disclosure_status(self, disclosure_id: str) -> dict[str, Any]:
        return self._json_call("GET", f"/peer/v1/disclosures/{disclosure_id}", None)

    def request_onward(self, disclosure_id: str, terms: Mapping[str, Any]) -> dict[str, Any]:
        """Ask the owner for prior consent to pass a disclosure's data on."""
        return self._json_call("POST", f"/peer/v1/disclosures/{disclosure_id}/onward", terms)


def _json(content: bytes) -> dict[str, Any]:
    try:
        data = json.loads(content or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


MAX_UNSIGNED_RETRY_AFTER = 3600
"""The longest unsigned ``Retry-After`` believed (seconds); a longer or malformed one is dropped."""


def _retry_after(r: httpx.Response) -> int | None:
    value = r.headers.get("retry-after", "").strip()
    if not (value.isascii() and value.isdigit()) or len(value) > 10:
        return None
    seconds = int(value)
    return seconds if seconds <= MAX_UNSIGNED_RETRY_AFTER else None


def _code(r: httpx.Response) -> str:
    return str(_json(r.content).get("error", "refused"))
