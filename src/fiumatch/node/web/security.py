"""Web sessions, CSRF tokens and the security headers of the node's web interface.

Owns how a browser is signed in: a user pastes their bearer token once; the node checks it with
the service, and from then on the browser holds only a session cookie:

* ``__Host-fiumatch-<node id>``: a random 256-bit session id with an HMAC-SHA256 tag (key drawn
  from the service's ``rng`` at start), ``Secure; HttpOnly; SameSite=Strict; Path=/``. The
  session lives in this process only (a restart signs everyone out); it ends after 30 minutes
  idle or 12 hours, at sign-out, or as soon as the user's token is rotated or disabled (every
  request re-reads the user). The node id is in the cookie name because cookies do not
  separate ports, and two nodes on one host must not overwrite each other's session.
* every state-changing request is a POST carrying the session's CSRF token in a hidden field,
  compared in constant time, and an ``Origin`` (when the browser sends one) equal to ours. The
  sign-in form uses a signed double-submit nonce instead (there is no session yet).

:class:`SecurityHeaders` adds the content security policy (``default-src 'self'``, no inline
script or style, no framing) and related headers to every ``/ui`` response.

Never logs or stores a bearer token: it is checked and dropped; the session keeps the user
name and the token id, to notice a rotation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fiumatch.node.errors import NodeAuthError, NodeError

__all__ = [
    "CSP",
    "CsrfError",
    "SecurityHeaders",
    "SessionExpiredError",
    "SessionManager",
    "WebSession",
]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),  # no-referrer would make forms send Origin: null
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
)


class CsrfError(NodeError):
    """A form arrived without this session's CSRF token, or from another origin."""

    code = "csrf_failed"
    http_status = 403


class SessionExpiredError(NodeAuthError):
    """No valid web session: sign in again."""

    code = "web_session_required"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class WebSession:
    """One signed-in browser. ``flashes`` are messages shown once on the next page."""

    sid: str
    user: str
    token_id: str
    csrf: str = field(repr=False)
    created: float
    seen: float
    flashes: list[tuple[str, str]] = field(default_factory=list)
    shown_once: dict[str, Any] = field(default_factory=dict, repr=False)

    def flash(self, kind: str, text: str) -> None:
        self.flashes.append((kind, text))

    def take_flashes(self) -> list[tuple[str, str]]:
        out, self.flashes = self.flashes, []
        return out


class SessionManager:
    """Issues, finds and ends web sessions; signs cookies and sign-in nonces."""

    def __init__(
        self,
        *,
        node_id: str,
        rng: Callable[[int], bytes],
        clock: Callable[[], float],
        idle_seconds: int = 1800,
        max_seconds: int = 43200,
    ) -> None:
        self._key = rng(32)
        self._rng = rng
        self._clock = clock
        self.idle_seconds = idle_seconds
        self.max_seconds = max_seconds
        self.cookie_name = f"__Host-fiumatch-{node_id}"
        self.login_cookie_name = f"__Host-fiumatch-{node_id}-signin"
        self._sessions: dict[str, WebSession] = {}
        self._lock = threading.Lock()

    # -- signing -------------------------------------------------------------------------

    def _tag(self, purpose: str, value: str) -> str:
        mac = hmac.new(self._key, f"{purpose}\x00{value}".encode(), hashlib.sha256)
        return _b64(mac.digest())

    def _signed(self, purpose: str, value: str) -> str:
        return f"{value}.{self._tag(purpose, value)}"

    def _unsign(self, purpose: str, signed: str | None) -> str | None:
        if not signed or signed.count(".") != 1:
            return None
        value, tag = signed.split(".")
        if not hmac.compare_digest(tag, self._tag(purpose, value)):
            return None
        return value

    # -- sessions ------------------------------------------------------------------------

    def create(self, user: str, token_id: str) -> tuple[WebSession, str]:
        """A new session for ``user``; returns it and the cookie value."""
        now = self._clock()
        session = WebSession(
            sid=_b64(self._rng(32)),
            user=user,
            token_id=token_id,
            csrf=_b64(self._rng(32)),
            created=now,
            seen=now,
        )
        with self._lock:
            self._expire(now)
            self._sessions[session.sid] = session
        return session, self._signed("session", session.sid)

    def lookup(self, cookie: str | None) -> WebSession | None:
        """The live session a cookie names (refreshing its idle timer), or None."""
        sid = self._unsign("session", cookie)
        if sid is None:
            return None
        now = self._clock()
        with self._lock:
            session = self._sessions.get(sid)
            if session is None:
                return None
            if now - session.seen > self.idle_seconds or now - session.created > self.max_seconds:
                del self._sessions[sid]
                return None
            session.seen = now
            return session

    def destroy(self, sid: str) -> None:
        with self._lock:
            self._sessions.pop(sid, None)

    def count(self) -> int:
        with self._lock:
            return len(self._sessions)

    def _expire(self, now: float) -> None:
        dead = [
            sid
            for sid, s in self._sessions.items()
            if now - s.seen > self.idle_seconds or now - s.created > self.max_seconds
        ]
        for sid in dead:
            del self._sessions[sid]

    # -- CSRF ----------------------------------------------------------------------------

    def login_nonce(self) -> tuple[str, str]:
        """A fresh sign-in nonce: (form value, cookie value)."""
        nonce = _b64(self._rng(24))
        return nonce, self._signed("signin", nonce)

    def check_login_nonce(self, form_value: object, cookie: str | None) -> None:
        expected = self._unsign("signin", cookie)
        if (
            expected is None
            or not isinstance(form_value, str)
            or not hmac.compare_digest(form_value, expected)
        ):
            raise CsrfError("the sign-in form expired; load it again")

    @staticmethod
    def check_csrf(
        session: WebSession, form_value: object, origin: str | None, expected_origin: str
    ) -> None:
        """Raise :class:`CsrfError` unless the form carries the session's token and the
        request did not come from another origin."""
        if origin is not None and origin != expected_origin:
            raise CsrfError("the form was sent from another site")
        if not isinstance(form_value, str) or not hmac.compare_digest(form_value, session.csrf):
            raise CsrfError("the form is stale or forged; load the page again")


Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]
ASGIApp = Callable[[Scope, Receive, Send], Any]


class SecurityHeaders:
    """ASGI middleware: the CSP and hardening headers on every response under ``prefix``
    (and on ``/``, which redirects there). Other routes are left as they are."""

    def __init__(self, app: ASGIApp, prefix: str = "/ui") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope.get("type") != "http" or not (
            path == "/" or path == self.prefix or path.startswith(self.prefix + "/")
        ):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message.get("type") == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in {name for name, _ in _HEADERS}
                ]
                message = {**message, "headers": [*headers, *_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
