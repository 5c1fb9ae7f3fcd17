"""HTTP Message Signatures (RFC 9421) with Ed25519, and Content-Digest (RFC 9530), for node-to-node
requests and responses.

This module owns the fiumatch signature profile and the byte-exact signature base. It is pure:
no sockets, no clock, no global randomness (callers pass ``now`` and ``rng``), and it never logs
or puts into an error a key, a signature, a nonce or a header value.

Profile (what :func:`sign_request` produces and :func:`verify_request` demands)
-------------------------------------------------------------------------------

* Label ``fiumatch``; ``alg="ed25519"``; ``keyid`` = the signing node's id; ``created``,
  ``expires`` (default lifetime 60 s, at most ``max_lifetime``), a 128-bit random ``nonce``;
  ``tag="fiumatch-request-v1"`` (responses: ``"fiumatch-response-v1"``), so a signature made
  for one use cannot be presented as the other.
* Covered components of a request, in this order: ``"@method" "@authority" "@path"``, then
  ``"@query"`` when the target has a query, ``"content-digest"``, then ``"content-type"``,
  ``"fiumatch-session"``, ``"fiumatch-peer"``, ``"fiumatch-epoch"`` for each one present, then
  every other ``fiumatch-*`` header present (the ``fiumatch-audit-*`` receipt and cosigning
  headers among them), in name order. The signer finds them itself: a header must be in the
  message before it is signed.
  The verifier requires ``@method``, ``@authority``, ``@path``, ``content-digest`` and
  ``fiumatch-peer``, and additionally *every one of the optional components that is present in
  the message*: an uncovered ``fiumatch-*`` header, ``content-type`` or query is refused, so
  nothing the application reads can be added or changed in transit.
* ``fiumatch-peer`` names the node the message is *addressed to* (the sender is ``keyid``);
  ``verify_request(..., expected_peer=own_id)`` refuses a request signed for another node, so
  a captured request cannot be replayed against a third node. ``fiumatch-session`` and
  ``fiumatch-epoch`` bind the session id and key epoch into the signed content.
* ``content-digest`` is ``sha-256=:<base64>:`` over the exact body bytes (empty body included).
* A response covers ``"@status"``, ``content-digest``, the present optional headers, and
  ``"@method";req "@authority";req "@path";req`` (``"@query";req`` when present) and
  ``"signature";req;key="fiumatch"``: the request's own signature bytes, and so its nonce and
  everything it covered (RFC 9421 section 2.4). A response cannot be replayed to another request.
* Window: ``created`` no more than ``skew`` seconds in the future, ``expires`` not more than
  ``skew`` seconds in the past, ``created < expires <= created + max_lifetime``. The nonce is
  then remembered (per ``keyid``) until ``expires + skew``; a second use is refused.

The signature base is built exactly as RFC 9421 section 2.5 says (checked against the Ed25519
example of Appendix B.2.6 and the request-response example of section 2.4 in the tests).

Headers are passed as a mapping of *combined* field values (repeated fields joined with ", ",
as HTTP allows; :func:`combine_headers` does it from a list of pairs). Names are
case-insensitive; a mapping holding the same name twice in different cases is refused.

Errors (all :class:`fiumatch.node.errors.NodeAuthError`, HTTP 401): ``UnknownKeyError``,
``BadSignatureError``, ``StaleSignatureError``, ``ReplayedNonceError``, ``DigestMismatchError``,
``MissingComponentError``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol, TypeAlias

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from fiumatch.node.errors import (
    BadSignatureError,
    DigestMismatchError,
    MissingComponentError,
    NodeAuthError,
    ReplayedNonceError,
    StaleSignatureError,
    UnknownKeyError,
)

__all__ = [
    "ALG",
    "BOUND_HEADERS",
    "BOUND_PREFIX",
    "REQUEST_LABEL",
    "REQUEST_TAG",
    "RESPONSE_LABEL",
    "RESPONSE_TAG",
    "BadSignatureError",
    "Component",
    "DigestMismatchError",
    "HttpRequest",
    "HttpResponse",
    "InMemoryNonceCache",
    "InnerList",
    "Item",
    "KeyResolver",
    "MissingComponentError",
    "NodeAuthError",
    "NonceCache",
    "ReplayedNonceError",
    "StaleSignatureError",
    "Token",
    "UnknownKeyError",
    "VerifiedSignature",
    "VerifyPolicy",
    "claimed_keyid",
    "combine_headers",
    "content_digest",
    "parse_dictionary",
    "parse_item",
    "sign_request",
    "sign_response",
    "signature_base",
    "signature_params_value",
    "verify_content_digest",
    "verify_message",
    "verify_request",
    "verify_response",
]

ALG = "ed25519"
REQUEST_LABEL = "fiumatch"
RESPONSE_LABEL = "fiumatch"
REQUEST_TAG = "fiumatch-request-v1"
RESPONSE_TAG = "fiumatch-response-v1"
BOUND_HEADERS: tuple[str, ...] = ("fiumatch-session", "fiumatch-peer", "fiumatch-epoch")
#: Every header whose name starts with this is covered when present (BOUND_HEADERS first).
BOUND_PREFIX = "fiumatch-"
DEFAULT_LIFETIME = 60
NONCE_BYTES = 16


# === Structured Field Values (RFC 8941), the subset HTTP signatures use ======================


class Token(str):
    """An sf-token (unquoted), as opposed to an sf-string."""

    __slots__ = ()


BareItem: TypeAlias = int | Decimal | str | bytes | bool
Params: TypeAlias = tuple[tuple[str, BareItem], ...]


@dataclass(frozen=True)
class Item:
    value: BareItem
    params: Params = ()


@dataclass(frozen=True)
class InnerList:
    items: tuple[Item, ...]
    params: Params = ()


Member: TypeAlias = Item | InnerList


class _SfError(ValueError):
    pass


_KEY_RE = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_NUMBER_RE = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,3})?")
_TOKEN_RE = re.compile(r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*")
_B64 = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
_PRINTABLE_RE = re.compile(r"[ -~]*")
"""An sf-string's characters: printable ASCII (RFC 8941 §3.3.3)."""
_PLAIN_STRING_RE = re.compile(r'[ !#-\[\]-~]*"')
"""The rest of an sf-string with no escape in it, up to its closing quote (a fast path)."""


class _Parser:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def take(self) -> str:
        ch = self.peek()
        self.i += 1
        return ch

    def skip_sp(self) -> None:
        while self.peek() == " ":
            self.i += 1

    def skip_ows(self) -> None:
        while self.peek() in (" ", "\t") and self.peek():
            self.i += 1

    def key(self) -> str:
        m = _KEY_RE.match(self.s, self.i)
        if not m:
            raise _SfError("bad key")
        self.i = m.end()
        return m.group(0)

    def params(self) -> Params:
        out: dict[str, BareItem] = {}
        while self.peek() == ";":
            self.i += 1
            self.skip_sp()
            k = self.key()
            v: BareItem = True
            if self.peek() == "=":
                self.i += 1
                v = self.bare_item()
            out[k] = v
        return tuple(out.items())

    def bare_item(self) -> BareItem:
        ch = self.peek()
        if ch == "-" or ch.isdigit():
            return self.number()
        if ch == '"':
            return self.string()
        if ch == "*" or (ch.isascii() and ch.isalpha()):
            m = _TOKEN_RE.match(self.s, self.i)
            assert m is not None
            self.i = m.end()
            return Token(m.group(0))
        if ch == ":":
            return self.byte_seq()
        if ch == "?":
            self.i += 1
            b = self.take()
            if b not in ("0", "1"):
                raise _SfError("bad boolean")
            return b == "1"
        raise _SfError("bad item")

    def number(self) -> int | Decimal:
        m = _NUMBER_RE.match(self.s, self.i)
        if not m:
            raise _SfError("bad number")
        text = m.group(0)
        self.i = m.end()
        if self.peek() == "." or self.peek().isdigit():
            raise _SfError("bad number")
        if m.group(1):
            if len(text.split(".")[0].lstrip("-")) > 12:
                raise _SfError("decimal too long")
            return Decimal(text)
        return int(text)

    def string(self) -> str:
        self.i += 1
        plain = _PLAIN_STRING_RE.match(self.s, self.i)
        if plain:  # no escape: the same result as the loop below, in one step
            self.i = plain.end()
            return plain.group(0)[:-1]
        out: list[str] = []
        while True:
            ch = self.take()
            if ch == "":
                raise _SfError("unterminated string")
            if ch == "\\":
                nxt = self.take()
                if nxt not in ('"', "\\"):
                    raise _SfError("bad escape")
                out.append(nxt)
            elif ch == '"':
                return "".join(out)
            elif not (" " <= ch <= "~"):
                raise _SfError("bad string character")
            else:
                out.append(ch)

    def byte_seq(self) -> bytes:
        self.i += 1
        end = self.s.find(":", self.i)
        if end < 0:
            raise _SfError("unterminated byte sequence")
        text = self.s[self.i : end]
        self.i = end + 1
        if not set(text) <= _B64:
            raise _SfError("bad byte sequence")
        try:
            return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise _SfError("bad byte sequence") from None

    def item(self) -> Item:
        value = self.bare_item()
        return Item(value, self.params())

    def member(self) -> Member:
        if self.peek() == "(":
            self.i += 1
            items: list[Item] = []
            while True:
                self.skip_sp()
                if self.peek() == ")":
                    self.i += 1
                    return InnerList(tuple(items), self.params())
                items.append(self.item())
                if self.peek() not in (" ", ")"):
                    raise _SfError("bad inner list")
        return self.item()

    def dictionary(self) -> dict[str, Member]:
        out: dict[str, Member] = {}
        self.s = self.s.strip(" ")
        if not self.s:
            return out
        while True:
            k = self.key()
            if self.peek() == "=":
                self.i += 1
                out[k] = self.member()
            else:
                out[k] = Item(True, self.params())
            self.skip_ows()
            if self.i >= len(self.s):
                return out
            if self.take() != ",":
                raise _SfError("expected a comma")
            self.skip_ows()
            if self.i >= len(self.s):
                raise _SfError("trailing comma")


def parse_dictionary(text: str) -> dict[str, Member]:
    """Parse an sf-dictionary (ValueError if malformed)."""
    return _Parser(text).dictionary()


def parse_item(text: str) -> Item:
    """Parse an sf-item, e.g. a component identifier such as ``"@method";req``."""
    p = _Parser(text.strip(" "))
    result = p.item()
    if p.i != len(p.s):
        raise _SfError("trailing characters")
    return result


def _ser_bare(value: BareItem) -> str:
    if isinstance(value, bool):
        return "?1" if value else "?0"
    if isinstance(value, int):
        if abs(value) > 999_999_999_999_999:
            raise ValueError("integer out of range")
        return str(value)
    if isinstance(value, Decimal):
        q = value.quantize(Decimal("0.001")).normalize()
        text = format(q, "f")
        return text if "." in text else text + ".0"
    if isinstance(value, bytes):
        return ":" + base64.b64encode(value).decode("ascii") + ":"
    if isinstance(value, Token):
        if not _TOKEN_RE.fullmatch(value):
            raise ValueError("bad token")
        return str(value)
    if not _PRINTABLE_RE.fullmatch(value):
        raise ValueError("an sf-string holds printable ASCII only")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ser_params(params: Params) -> str:
    out = []
    for key, value in params:
        if not _KEY_RE.fullmatch(key):
            raise ValueError("bad parameter key")
        out.append(f";{key}" if value is True else f";{key}={_ser_bare(value)}")
    return "".join(out)


def _ser_item(item: Item) -> str:
    return _ser_bare(item.value) + _ser_params(item.params)


def _ser_member(member: Member) -> str:
    if isinstance(member, InnerList):
        return "(" + " ".join(_ser_item(i) for i in member.items) + ")" + _ser_params(member.params)
    return _ser_item(member)


# === Messages and components ===============================================================


def combine_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Lower-case names and join repeated fields with ", " (RFC 9110 section 5.3)."""
    out: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        value = value.strip(" \t")
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def _normalise_headers(headers: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        if key in out:
            raise BadSignatureError("a header appears twice under different cases")
        out[key] = value.strip(" \t")
    return out


@dataclass(frozen=True, kw_only=True)
class HttpRequest:
    """A request as signed: ``target`` is the origin-form request target (path and optional
    ``?query``, exactly as sent); ``authority`` the Host (host[:port])."""

    method: str
    target: str
    authority: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def path(self) -> str:
        path = self.target.split("?", 1)[0]
        return path or "/"

    @property
    def query(self) -> str | None:
        """The query without its ``?``, or None when the target has none."""
        parts = self.target.split("?", 1)
        return parts[1] if len(parts) == 2 else None


@dataclass(frozen=True, kw_only=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class Component:
    """A component identifier: a name (``@method``, ``content-type``, ...) and its parameters
    (``req``, ``key="..."``)."""

    name: str
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> Component:
        item = parse_item(text)
        if not isinstance(item.value, str) or isinstance(item.value, Token):
            raise ValueError("a component identifier is an sf-string")
        return cls(item.value, item.params)

    def serialize(self) -> str:
        return _ser_item(Item(self.name, self.params))

    def __str__(self) -> str:
        return self.serialize()


def _c(name: str, *params: tuple[str, BareItem]) -> Component:
    return Component(name, tuple(params))


_REQ: tuple[str, BareItem] = ("req", True)


def _missing(component: Component) -> MissingComponentError:
    return MissingComponentError(
        "a covered component is absent from the message", component=component.serialize()
    )


def _component_value(
    component: Component,
    message: HttpRequest | HttpResponse,
    request: HttpRequest | None,
) -> str:
    params = dict(component.params)
    unknown = set(params) - {"req", "key"}
    if unknown:
        raise MissingComponentError(
            "unsupported component parameter", component=component.serialize()
        )
    target: HttpRequest | HttpResponse = message
    if params.get("req") is True:
        if request is None:
            raise _missing(component)
        target = request
    name = component.name
    if name.startswith("@"):
        if "key" in params:
            raise MissingComponentError(
                "unsupported component parameter", component=component.serialize()
            )
        if name == "@status":
            if not isinstance(target, HttpResponse):
                raise _missing(component)
            return f"{target.status:03d}"
        if not isinstance(target, HttpRequest):
            raise _missing(component)
        if name == "@method":
            return target.method
        if name == "@authority":
            return target.authority.lower()
        if name == "@path":
            return target.path
        if name == "@query":
            return "?" + (target.query or "")
        if name == "@request-target":
            return target.target
        raise MissingComponentError(
            "unsupported derived component", component=component.serialize()
        )
    if name != name.lower():
        raise MissingComponentError(
            "a field name must be lower case", component=component.serialize()
        )
    headers = _normalise_headers(target.headers)
    if name not in headers:
        raise _missing(component)
    value = headers[name]
    key = params.get("key")
    if key is None:
        return value
    if not isinstance(key, str):
        raise MissingComponentError("bad key parameter", component=component.serialize())
    try:
        members = parse_dictionary(value)
    except ValueError:
        raise MissingComponentError(
            "the field is not a structured dictionary", component=component.serialize()
        ) from None
    if key not in members:
        raise _missing(component)
    return _ser_member(members[key])


def signature_params_value(
    components: Sequence[Component], params: Sequence[tuple[str, BareItem]]
) -> str:
    """The ``@signature-params`` value, which is also the Signature-Input member value."""
    inner = InnerList(tuple(Item(c.name, c.params) for c in components), tuple(params))
    return _ser_member(inner)


def signature_base(
    message: HttpRequest | HttpResponse,
    components: Sequence[Component],
    params: Sequence[tuple[str, BareItem]],
    *,
    request: HttpRequest | None = None,
) -> bytes:
    """The signature base of RFC 9421 section 2.5, as bytes.

    ``request`` is the related request, for ``;req`` components of a response.
    :class:`MissingComponentError` if a component is absent or repeated.
    """
    lines: list[str] = []
    seen: set[str] = set()
    for component in components:
        ident = component.serialize()
        if ident in seen:
            raise MissingComponentError("a component is covered twice", component=ident)
        seen.add(ident)
        lines.append(f"{ident}: {_component_value(component, message, request)}")
    lines.append(f'"@signature-params": {signature_params_value(components, params)}')
    text = "\n".join(lines)
    try:
        return text.encode("ascii")
    except UnicodeEncodeError:
        raise BadSignatureError("the signature base is not ASCII") from None


# === Content-Digest (RFC 9530) ============================================================


def content_digest(body: bytes, algorithm: str = "sha-256") -> str:
    """The Content-Digest field value for ``body``, e.g. ``sha-256=:...:``."""
    if algorithm == "sha-256":
        digest = hashlib.sha256(body).digest()
    elif algorithm == "sha-512":
        digest = hashlib.sha512(body).digest()
    else:
        raise ValueError("content digests are sha-256 or sha-512")
    return f"{algorithm}={_ser_bare(digest)}"


def verify_content_digest(value: str | None, body: bytes) -> None:
    """Check a Content-Digest field against ``body``: it must hold ``sha-256`` (and every
    sha-256/sha-512 member present must match). :class:`DigestMismatchError` otherwise."""
    if value is None:
        raise DigestMismatchError("the message has no Content-Digest")
    try:
        members = parse_dictionary(value)
    except ValueError:
        raise DigestMismatchError("the Content-Digest is malformed") from None
    if "sha-256" not in members:
        raise DigestMismatchError("the Content-Digest has no sha-256 member")
    for name, fn in (("sha-256", hashlib.sha256), ("sha-512", hashlib.sha512)):
        member = members.get(name)
        if member is None:
            continue
        if not isinstance(member, Item) or not isinstance(member.value, bytes):
            raise DigestMismatchError("the Content-Digest is malformed")
        if not hmac.compare_digest(member.value, fn(body).digest()):
            raise DigestMismatchError("the body does not match its Content-Digest")


# === Replay cache ==========================================================================


class NonceCache(Protocol):
    """Remembers nonces per key id. ``fiumatch.store.SqliteNonceCache`` persists them."""

    def check_and_store(self, keyid: str, nonce: str, *, expires_at: int, now: int) -> bool:
        """Store the nonce until ``expires_at``; False if it was already there."""
        ...


class InMemoryNonceCache:
    """A process-local :class:`NonceCache` (tests, single-process nodes)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], int] = {}

    def check_and_store(self, keyid: str, nonce: str, *, expires_at: int, now: int) -> bool:
        for k in [k for k, exp in self._seen.items() if exp < now]:
            del self._seen[k]
        if (keyid, nonce) in self._seen:
            return False
        self._seen[(keyid, nonce)] = expires_at
        return True

    def __len__(self) -> int:
        return len(self._seen)


# === Signing and verifying ================================================================

KeyResolver: TypeAlias = Callable[[str], Ed25519PublicKey | None]


@dataclass(frozen=True, kw_only=True)
class VerifyPolicy:
    """How strict :func:`verify_request` / :func:`verify_response` are about time."""

    skew: int = 30
    max_lifetime: int = 300


@dataclass(frozen=True, kw_only=True)
class VerifiedSignature:
    """What a successful verification established."""

    label: str
    keyid: str
    created: int | None
    expires: int | None
    nonce: str | None
    tag: str | None
    components: tuple[str, ...]
    signature: bytes = field(repr=False)


def _nonce(rng: Callable[[int], bytes]) -> str:
    raw = rng(NONCE_BYTES)
    if len(raw) != NONCE_BYTES:
        raise ValueError("rng returned the wrong number of bytes")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _optional_components(headers: Mapping[str, str], *, req: bool = False) -> list[Component]:
    names = [n for n in ("content-type", *BOUND_HEADERS) if n in headers]
    names += sorted(
        n for n in headers if n.lower().startswith(BOUND_PREFIX) and n not in BOUND_HEADERS
    )
    return [_c(name, _REQ) if req else _c(name) for name in names]


def _attach(
    headers: Mapping[str, str],
    label: str,
    components: Sequence[Component],
    params: Sequence[tuple[str, BareItem]],
    signature: bytes,
    digest: str,
) -> dict[str, str]:
    existing = _normalise_headers(headers)
    sig_input = f"{label}={signature_params_value(components, params)}"
    sig_value = f"{label}={_ser_bare(signature)}"
    if "signature-input" in existing:
        if label in parse_dictionary(existing["signature-input"]):
            raise ValueError("the message already has a signature with this label")
        sig_input = f"{existing['signature-input']}, {sig_input}"
        sig_value = f"{existing.get('signature', '')}, {sig_value}".lstrip(", ")
    return {"Content-Digest": digest, "Signature-Input": sig_input, "Signature": sig_value}


def _prepare_digest(headers: Mapping[str, str], body: bytes) -> str:
    digest = content_digest(body)
    given = _normalise_headers(headers).get("content-digest")
    if given is not None:
        verify_content_digest(given, body)
        return given
    return digest


def sign_request(
    *,
    method: str,
    target: str,
    authority: str,
    headers: Mapping[str, str],
    body: bytes,
    key: Ed25519PrivateKey,
    keyid: str,
    now: int,
    rng: Callable[[int], bytes],
    lifetime: int = DEFAULT_LIFETIME,
    label: str = REQUEST_LABEL,
) -> dict[str, str]:
    """Sign a request; returns the ``Content-Digest``, ``Signature-Input`` and ``Signature``
    headers to add (the profile is in the module docstring)."""
    if lifetime <= 0:
        raise ValueError("lifetime must be positive")
    norm = _normalise_headers(headers)
    digest = _prepare_digest(norm, body)
    norm["content-digest"] = digest
    request = HttpRequest(method=method, target=target, authority=authority, headers=norm)
    components = [_c("@method"), _c("@authority"), _c("@path")]
    if request.query is not None:
        components.append(_c("@query"))
    components.append(_c("content-digest"))
    components.extend(_optional_components(norm))
    params = _profile_params(now, lifetime, _nonce(rng), keyid, REQUEST_TAG)
    base = signature_base(request, components, params)
    return _attach(headers, label, components, params, key.sign(base), digest)


def sign_response(
    *,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    request: HttpRequest,
    key: Ed25519PrivateKey,
    keyid: str,
    now: int,
    rng: Callable[[int], bytes],
    lifetime: int = DEFAULT_LIFETIME,
    request_label: str = REQUEST_LABEL,
    label: str = RESPONSE_LABEL,
) -> dict[str, str]:
    """Sign a response to ``request`` (which must carry its Signature headers), binding the
    request's method, authority, path, query and signature into the response signature."""
    if lifetime <= 0:
        raise ValueError("lifetime must be positive")
    norm = _normalise_headers(headers)
    digest = _prepare_digest(norm, body)
    norm["content-digest"] = digest
    response = HttpResponse(status=status, headers=norm)
    components = [_c("@status"), _c("content-digest"), *_optional_components(norm)]
    components += [_c("@method", _REQ), _c("@authority", _REQ), _c("@path", _REQ)]
    if request.query is not None:
        components.append(_c("@query", _REQ))
    components.append(_c("signature", _REQ, ("key", request_label)))
    params = _profile_params(now, lifetime, _nonce(rng), keyid, RESPONSE_TAG)
    base = signature_base(response, components, params, request=request)
    return _attach(headers, label, components, params, key.sign(base), digest)


def _profile_params(
    now: int, lifetime: int, nonce: str, keyid: str, tag: str
) -> list[tuple[str, BareItem]]:
    return [
        ("created", now),
        ("expires", now + lifetime),
        ("nonce", nonce),
        ("alg", ALG),
        ("keyid", keyid),
        ("tag", tag),
    ]


@dataclass(frozen=True)
class _Parsed:
    label: str
    components: tuple[Component, ...]
    params: Params
    signature: bytes

    def param(self, name: str) -> BareItem | None:
        return dict(self.params).get(name)


def _parse_signature(headers: Mapping[str, str], label: str) -> _Parsed:
    norm = _normalise_headers(headers)
    if "signature-input" not in norm or "signature" not in norm:
        raise BadSignatureError("the message is not signed")
    try:
        inputs = parse_dictionary(norm["signature-input"])
        signatures = parse_dictionary(norm["signature"])
    except ValueError:
        raise BadSignatureError("the signature fields are malformed") from None
    if label not in inputs or label not in signatures:
        raise BadSignatureError("no signature with the expected label")
    member, sig = inputs[label], signatures[label]
    if not isinstance(member, InnerList) or not isinstance(sig, Item):
        raise BadSignatureError("the signature fields are malformed")
    if not isinstance(sig.value, bytes) or isinstance(sig.value, bool):
        raise BadSignatureError("the signature fields are malformed")
    components = []
    for item in member.items:
        if not isinstance(item.value, str) or isinstance(item.value, Token):
            raise BadSignatureError("a component identifier is not a string")
        components.append(Component(item.value, item.params))
    return _Parsed(label, tuple(components), member.params, sig.value)


def claimed_keyid(headers: Mapping[str, str], label: str = REQUEST_LABEL) -> str | None:
    """The ``keyid`` a message's signature *claims*, read with the structured-field parser:
    unverified, for naming the claimed sender in an audit entry of a refused request only.
    None when the Signature-Input field is absent, malformed or has no such parameter."""
    try:
        inputs = parse_dictionary(_normalise_headers(headers).get("signature-input", ""))
    except (ValueError, NodeAuthError):
        return None
    member = inputs.get(label)
    if not isinstance(member, InnerList):
        return None
    value = dict(member.params).get("keyid")
    if not isinstance(value, str) or isinstance(value, Token) or not value:
        return None
    return value


def _str_param(parsed: _Parsed, name: str) -> str | None:
    value = parsed.param(name)
    if value is None:
        return None
    if not isinstance(value, str) or isinstance(value, Token):
        raise BadSignatureError("a signature parameter has the wrong type", parameter=name)
    return value


def _int_param(parsed: _Parsed, name: str) -> int | None:
    value = parsed.param(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadSignatureError("a signature parameter has the wrong type", parameter=name)
    return value


def verify_message(
    message: HttpRequest | HttpResponse,
    *,
    label: str,
    resolve_key: KeyResolver,
    request: HttpRequest | None = None,
) -> VerifiedSignature:
    """Verify one RFC 9421 Ed25519 signature cryptographically, with no profile rules (no
    window, nonce, tag or required components). A building block: nodes use
    :func:`verify_request` / :func:`verify_response`."""
    parsed = _parse_signature(message.headers, label)
    return _verify_parsed(parsed, message, resolve_key, request)


def _verify_parsed(
    parsed: _Parsed,
    message: HttpRequest | HttpResponse,
    resolve_key: KeyResolver,
    request: HttpRequest | None,
) -> VerifiedSignature:
    alg = _str_param(parsed, "alg")
    if alg is not None and alg != ALG:
        raise BadSignatureError("unsupported signature algorithm")
    keyid = _str_param(parsed, "keyid")
    if not keyid:
        raise UnknownKeyError("the signature names no key")
    public_key = resolve_key(keyid)
    if public_key is None:
        raise UnknownKeyError("the signing key is not known")
    base = signature_base(message, parsed.components, parsed.params, request=request)
    try:
        public_key.verify(parsed.signature, base)
    except InvalidSignature:
        raise BadSignatureError("the signature does not verify") from None
    return VerifiedSignature(
        label=parsed.label,
        keyid=keyid,
        created=_int_param(parsed, "created"),
        expires=_int_param(parsed, "expires"),
        nonce=_str_param(parsed, "nonce"),
        tag=_str_param(parsed, "tag"),
        components=tuple(c.serialize() for c in parsed.components),
        signature=parsed.signature,
    )


def _check_window(parsed: _Parsed, now: int, policy: VerifyPolicy) -> tuple[int, int]:
    created = _int_param(parsed, "created")
    expires = _int_param(parsed, "expires")
    if created is None or expires is None:
        raise StaleSignatureError("the signature must carry created and expires")
    if created > now + policy.skew:
        raise StaleSignatureError("the signature was created in the future")
    if expires < now - policy.skew:
        raise StaleSignatureError("the signature has expired")
    if not created < expires <= created + policy.max_lifetime:
        raise StaleSignatureError("the signature's lifetime is not allowed")
    return created, expires


def _check_profile(
    parsed: _Parsed,
    *,
    tag: str,
    required: Sequence[Component],
    now: int,
    policy: VerifyPolicy,
) -> tuple[int, str]:
    if _str_param(parsed, "alg") != ALG:
        raise BadSignatureError("the signature must declare alg ed25519")
    if _str_param(parsed, "tag") != tag:
        raise BadSignatureError("the signature's tag is not the expected one")
    _, expires = _check_window(parsed, now, policy)
    nonce = _str_param(parsed, "nonce")
    if not nonce:
        raise BadSignatureError("the signature carries no nonce")
    covered = {c.serialize() for c in parsed.components}
    for component in required:
        if component.serialize() not in covered:
            raise MissingComponentError(
                "a required component is not covered", component=component.serialize()
            )
    return expires, nonce


def verify_request(
    *,
    method: str,
    target: str,
    authority: str,
    headers: Mapping[str, str],
    body: bytes,
    resolve_key: KeyResolver,
    nonces: NonceCache,
    now: int,
    policy: VerifyPolicy | None = None,
    expected_peer: str | None = None,
    label: str = REQUEST_LABEL,
) -> VerifiedSignature:
    """Verify a peer's request under the fiumatch profile; the caller then trusts ``keyid``.

    Checks, in order: signature fields and label, ``alg`` and ``tag``, time window, nonce
    present, required components covered, key known, signature, Content-Digest against the
    body, addressee (``fiumatch-peer == expected_peer`` when given) and, last, the nonce
    (so an invalid request never spends a nonce).
    """
    policy = policy or VerifyPolicy()
    norm = _normalise_headers(headers)
    request = HttpRequest(
        method=method, target=target, authority=authority, headers=norm, body=body
    )
    parsed = _parse_signature(norm, label)
    required = [_c("@method"), _c("@authority"), _c("@path"), _c("content-digest")]
    required.append(_c("fiumatch-peer"))
    if request.query is not None:
        required.append(_c("@query"))
    required.extend(c for c in _optional_components(norm) if c not in required)
    expires, nonce = _check_profile(
        parsed, tag=REQUEST_TAG, required=required, now=now, policy=policy
    )
    verified = _verify_parsed(parsed, request, resolve_key, None)
    verify_content_digest(norm.get("content-digest"), body)
    if expected_peer is not None and norm.get("fiumatch-peer") != expected_peer:
        raise BadSignatureError("the request is addressed to another node")
    if not nonces.check_and_store(verified.keyid, nonce, expires_at=expires + policy.skew, now=now):
        raise ReplayedNonceError("the signature's nonce was already used")
    return verified


def verify_response(
    *,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    request: HttpRequest,
    resolve_key: KeyResolver,
    now: int,
    nonces: NonceCache | None = None,
    policy: VerifyPolicy | None = None,
    request_label: str = REQUEST_LABEL,
    label: str = RESPONSE_LABEL,
    expected_peer: str | None = None,
) -> VerifiedSignature:
    """Verify a peer's response to ``request`` (the request as we sent it, with its Signature
    headers). The response must cover the request's signature, so it cannot have been made
    for another request; ``nonces`` is optional for that reason."""
    policy = policy or VerifyPolicy()
    norm = _normalise_headers(headers)
    response = HttpResponse(status=status, headers=norm, body=body)
    parsed = _parse_signature(norm, label)
    required = [_c("@status"), _c("content-digest"), *_optional_components(norm)]
    required += [_c("@method", _REQ), _c("@authority", _REQ), _c("@path", _REQ)]
    if request.query is not None:
        required.append(_c("@query", _REQ))
    required.append(_c("signature", _REQ, ("key", request_label)))
    expires, nonce = _check_profile(
        parsed, tag=RESPONSE_TAG, required=required, now=now, policy=policy
    )
    verified = _verify_parsed(parsed, response, resolve_key, request)
    verify_content_digest(norm.get("content-digest"), body)
    if expected_peer is not None and norm.get("fiumatch-peer") != expected_peer:
        raise BadSignatureError("the response is addressed to another node")
    if nonces is not None and not nonces.check_and_store(
        verified.keyid, nonce, expires_at=expires + policy.skew, now=now
    ):
        raise ReplayedNonceError("the signature's nonce was already used")
    return verified
