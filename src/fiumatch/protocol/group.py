"""The ristretto255 group (RFC 9496) and its hash-to-group (RFC 9380), through libsodium.

This module owns every call into libsodium. Everything above it (``oprf``, ``keys``, the wire
codecs) handles group elements and scalars as plain 32-byte ``bytes``:

* an *element* is the canonical RFC 9496 encoding of a ristretto255 point;
* a *scalar* is a 32-byte little-endian integer modulo ``ORDER``.

It must never do I/O, read clocks or use global randomness: ``random_scalar`` takes the
caller's ``rng``. The only global state is the libsodium backend, chosen once at import from
``FIUMATCH_SODIUM`` (``pysodium``, the default, over the system libsodium; or ``rbcl``, which
bundles its own build) and switchable with ``use_backend`` (tests and benchmarks only; not
thread-safe). pysodium is the default because both load libsodium 1.0.18 here and measured
the same per operation (benchmarks/results/), while rbcl writes a fresh copy of its shared
library to the temporary directory at every import and never removes it.

Validation rules:

* ``decode_element`` / ``decode_scalar`` are the gate for bytes that come from a peer. They
  raise ``InvalidElementError`` (wrong length, non-canonical, not on the group, identity) and
  ``InvalidScalarError`` (wrong length, not below ``ORDER``, zero).
* The arithmetic functions are safe on unchecked input too: libsodium decodes every element
  argument canonically and refuses an identity result, so ``scalar_mult`` with a non-zero
  scalar raises ``InvalidElementError`` for exactly the inputs ``decode_element`` rejects.
  A scalar that is zero modulo ``ORDER`` where a non-zero one is needed, or a scalar of the
  wrong length, raises ``InvalidScalarError``.
* Lengths are always checked in Python before libsodium sees a buffer, and so is bit 255 of
  every element: libsodium 1.0.18 does not check it, so it would accept a second,
  non-canonical encoding of every element (fixed upstream in later releases).

Error messages never contain the bytes that failed.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
from collections.abc import Callable, Sequence
from typing import Any, Final

from fiumatch.protocol.errors import (
    InvalidElementError,
    InvalidScalarError,
    LocalProtocolError,
)

__all__ = [
    "BACKEND",
    "BACKENDS",
    "ELEMENT_LEN",
    "HASH_LEN",
    "IDENTITY",
    "ORDER",
    "SCALAR_LEN",
    "decode_element",
    "decode_scalar",
    "element_add",
    "element_from_uniform_bytes",
    "expand_message_xmd",
    "hash_to_group",
    "hash_to_group_many",
    "hash_to_scalar",
    "libsodium_version",
    "random_scalar",
    "scalar_add",
    "scalar_invert",
    "scalar_invert_many",
    "scalar_mul",
    "scalar_mult",
    "scalar_mult_base",
    "scalar_mult_many",
    "scalar_sub",
    "use_backend",
]

ELEMENT_LEN: Final = 32
SCALAR_LEN: Final = 32
HASH_LEN: Final = 64
"""Bytes of uniform input taken by the one-way map (``element_from_uniform_bytes``)."""

ORDER: Final = 2**252 + 27742317777372353535851937790883648493
"""The prime order l of ristretto255."""

IDENTITY: Final = bytes(32)
"""The (only) encoding of the identity element. ``decode_element`` rejects it."""

BACKENDS: Final = ("rbcl", "pysodium")

_ZERO_SCALAR: Final = bytes(32)
_SHA512_BLOCK: Final = 128  # RFC 9380 s_in_bytes for SHA-512
_SHA512_LEN: Final = 64  # RFC 9380 b_in_bytes for SHA-512
# Z_pad is exactly one SHA-512 block: hash it once and copy the state per message.
_ZPAD_STATE: Final = hashlib.sha512(bytes(_SHA512_BLOCK))
_RANDOM_SCALAR_TRIES: Final = 16

# ---------------------------------------------------------------------------------------------
# Backend: raw ctypes entry points of one loaded libsodium, bound to module globals so that the
# hot paths do one global lookup and no wrapper calls. Both bindings are ctypes CDLLs, so the
# calling convention below is the C one: output buffer first, return 0 on success, -1 on error.

_Fn = Callable[..., int]

BACKEND: str = ""
_lib: Any = None
_is_valid_point: _Fn
_from_hash: _Fn
_scalarmult: _Fn
_scalarmult_base: _Fn
_add: _Fn
_scalar_reduce: _Fn
_scalar_invert: _Fn
_scalar_mul: _Fn
_scalar_add: _Fn
_scalar_sub: _Fn
_new_buffer: Callable[[int], ctypes.Array[ctypes.c_char]] = ctypes.create_string_buffer


def _load_library(name: str) -> Any:
    """Return the ctypes handle of the libsodium that backend ``name`` loads."""
    if name == "rbcl":
        import rbcl  # bundles its own libsodium build

        return rbcl._sodium
    if name == "pysodium":
        import pysodium  # the system libsodium (libsodium23)

        return pysodium.sodium
    raise LocalProtocolError(f"unknown libsodium backend {name!r}; expected one of {BACKENDS}")


def use_backend(name: str) -> str:
    """Switch every function of this module to backend ``name``; return the previous name.

    For tests and benchmarks that compare backends. Not thread-safe: call it only while no
    other thread uses this module. ``BACKEND`` is rebound, so read it as ``group.BACKEND``.
    """
    global BACKEND, _is_valid_point, _from_hash, _scalarmult, _scalarmult_base, _add
    global _scalar_reduce, _scalar_invert, _scalar_mul, _scalar_add, _scalar_sub, _lib
    lib = _load_library(name)
    previous = BACKEND
    _lib = lib
    _is_valid_point = lib.crypto_core_ristretto255_is_valid_point
    _from_hash = lib.crypto_core_ristretto255_from_hash
    _scalarmult = lib.crypto_scalarmult_ristretto255
    _scalarmult_base = lib.crypto_scalarmult_ristretto255_base
    _add = lib.crypto_core_ristretto255_add
    _scalar_reduce = lib.crypto_core_ristretto255_scalar_reduce
    _scalar_invert = lib.crypto_core_ristretto255_scalar_invert
    _scalar_mul = lib.crypto_core_ristretto255_scalar_mul
    _scalar_add = lib.crypto_core_ristretto255_scalar_add
    _scalar_sub = lib.crypto_core_ristretto255_scalar_sub
    BACKEND = name
    return previous


use_backend(os.environ.get("FIUMATCH_SODIUM", "pysodium") or "pysodium")


def libsodium_version() -> str:
    """The version string of the libsodium the current backend loaded (for diagnostics)."""
    fn = _lib.sodium_version_string
    fn.restype = ctypes.c_char_p
    return str(fn().decode("ascii"))


# ---------------------------------------------------------------------------------------------
# Decoding (the gate for peer bytes)


def decode_element(data: bytes) -> bytes:
    """Return ``data`` if it is the canonical encoding of a non-identity element.

    RFC 9497 DeserializeElement: wrong length, a non-canonical or invalid encoding
    (RFC 9496 section 4.3.1) and the identity element all raise ``InvalidElementError``.
    libsodium's ``is_valid_point`` accepts the all-zero identity, and libsodium 1.0.18 (the
    version both backends ship) ignores bit 255, so both are refused here explicitly.
    """
    if data.__class__ is not bytes:
        data = bytes(data)
    if len(data) != ELEMENT_LEN:
        raise InvalidElementError(f"element must be {ELEMENT_LEN} bytes")
    if data == IDENTITY:
        raise InvalidElementError("element is the identity")
    if data[31] & 0x80 or _is_valid_point(data) != 1:
        raise InvalidElementError("element encoding is not canonical or not in the group")
    return data


def decode_scalar(data: bytes) -> bytes:
    """Return ``data`` if it is a canonical, non-zero scalar (little-endian, below ``ORDER``).

    RFC 9497 DeserializeScalar plus the zero check; raises ``InvalidScalarError``.
    """
    if data.__class__ is not bytes:
        data = bytes(data)
    if len(data) != SCALAR_LEN:
        raise InvalidScalarError(f"scalar must be {SCALAR_LEN} bytes")
    n = int.from_bytes(data, "little")
    if n >= ORDER:
        raise InvalidScalarError("scalar is not below the group order")
    if n == 0:
        raise InvalidScalarError("scalar is zero")
    return data


# ---------------------------------------------------------------------------------------------
# Hashing (RFC 9380 expand_message_xmd with SHA-512; RFC 9496 one-way map)


def expand_message_xmd(msg: bytes, dst: bytes, length: int) -> bytes:
    """RFC 9380 section 5.3.1 ``expand_message_xmd`` with SHA-512.

    Raises ``LocalProtocolError`` where the RFC aborts: ``len(dst) > 255``, ``length``
    outside 1..65535 or needing more than 255 SHA-512 blocks.
    """
    if len(dst) > 255:
        raise LocalProtocolError("expand_message_xmd: DST longer than 255 bytes")
    ell = -(-length // _SHA512_LEN)
    if length < 1 or length > 65535 or ell > 255:
        raise LocalProtocolError("expand_message_xmd: output length out of range")
    dst_prime = dst + bytes((len(dst),))
    h = _ZPAD_STATE.copy()
    h.update(msg)
    h.update(length.to_bytes(2, "big") + b"\x00" + dst_prime)
    b0 = h.digest()
    b = hashlib.sha512(b0 + b"\x01" + dst_prime).digest()
    blocks = [b]
    b0_int = int.from_bytes(b0, "big")
    for i in range(2, ell + 1):
        mixed = (b0_int ^ int.from_bytes(b, "big")).to_bytes(_SHA512_LEN, "big")
        b = hashlib.sha512(mixed + bytes((i,)) + dst_prime).digest()
        blocks.append(b)
    return b"".join(blocks)[:length]


def _xmd64(dst: bytes) -> Callable[[bytes], bytes]:
    """Return ``msg -> expand_message_xmd(msg, dst, 64)`` with the per-DST work done once."""
    if len(dst) > 255:
        raise LocalProtocolError("expand_message_xmd: DST longer than 255 bytes")
    dst_prime = dst + bytes((len(dst),))
    suffix0 = b"\x00\x40\x00" + dst_prime  # I2OSP(64, 2) || I2OSP(0, 1) || DST_prime
    suffix1 = b"\x01" + dst_prime
    zpad = _ZPAD_STATE
    sha512 = hashlib.sha512

    def xmd64(msg: bytes) -> bytes:
        h = zpad.copy()
        h.update(msg)
        h.update(suffix0)
        return sha512(h.digest() + suffix1).digest()

    return xmd64


def element_from_uniform_bytes(uniform: bytes) -> bytes:
    """RFC 9496 section 4.3.4 one-way map (libsodium ``from_hash``) of 64 uniform bytes.

    May (with negligible probability) return ``IDENTITY``.
    """
    if len(uniform) != HASH_LEN:
        raise LocalProtocolError(f"one-way map takes {HASH_LEN} bytes")
    out = _new_buffer(ELEMENT_LEN)
    _from_hash(out, uniform)
    return out.raw


def hash_to_group(msg: bytes, dst: bytes) -> bytes:
    """``hash_to_ristretto255``: the one-way map of ``expand_message_xmd(msg, dst, 64)``.

    This is RFC 9497 HashToGroup when ``dst`` is ``"HashToGroup-" || contextString``.
    The result may be ``IDENTITY`` with negligible probability; callers that need a
    non-identity element (RFC 9497 Blind / Evaluate) check for it.
    """
    out = _new_buffer(ELEMENT_LEN)
    _from_hash(out, _xmd64(dst)(msg))
    return out.raw


def hash_to_group_many(msgs: Sequence[bytes], dst: bytes) -> list[bytes]:
    """``[hash_to_group(m, dst) for m in msgs]`` with the per-call overhead paid once."""
    xmd = _xmd64(dst)
    from_hash = _from_hash
    new_buffer = _new_buffer
    result: list[bytes] = []
    append = result.append
    for msg in msgs:
        out = new_buffer(ELEMENT_LEN)
        from_hash(out, xmd(msg))
        append(out.raw)
    return result


def hash_to_scalar(msg: bytes, dst: bytes) -> bytes:
    """``expand_message_xmd(msg, dst, 64)`` read little-endian and reduced modulo ``ORDER``.

    RFC 9497 section 4.1 HashToScalar for ristretto255-SHA512. May return the zero scalar.
    """
    out = _new_buffer(SCALAR_LEN)
    _scalar_reduce(out, _xmd64(dst)(msg))
    return out.raw


def scalar_reduce(data: bytes) -> bytes:
    """Reduce a 64-byte little-endian integer modulo ``ORDER``."""
    if len(data) != 64:
        raise LocalProtocolError("scalar_reduce takes 64 bytes")
    out = _new_buffer(SCALAR_LEN)
    _scalar_reduce(out, data)
    return out.raw


def random_scalar(rng: Callable[[int], bytes]) -> bytes:
    """A uniformly random non-zero scalar: ``rng(64)`` reduced modulo ``ORDER``, retried if 0.

    Raises ``LocalProtocolError`` if ``rng`` returns the wrong length or keeps yielding zero.
    """
    out = _new_buffer(SCALAR_LEN)
    for _ in range(_RANDOM_SCALAR_TRIES):
        wide = rng(64)
        if len(wide) != 64 or wide.__class__ is not bytes:
            raise LocalProtocolError("rng must return 64 bytes")
        _scalar_reduce(out, wide)
        scalar = out.raw
        if scalar != _ZERO_SCALAR:
            return scalar
    raise LocalProtocolError("rng keeps producing the zero scalar")


# ---------------------------------------------------------------------------------------------
# Element arithmetic


def _check_scalar_len(scalar: bytes) -> None:
    if len(scalar) != SCALAR_LEN or scalar.__class__ is not bytes:
        raise InvalidScalarError(f"scalar must be {SCALAR_LEN} bytes")


def _check_mult_scalar(scalar: bytes) -> None:
    # libsodium's scalarmult silently clears bit 255; refuse such a scalar instead.
    if len(scalar) != SCALAR_LEN or scalar.__class__ is not bytes or scalar[31] & 0x80:
        raise InvalidScalarError(f"scalar must be {SCALAR_LEN} bytes below 2^255")


def _check_element(element: bytes) -> None:
    # libsodium 1.0.18 ignores bit 255 when decoding (non-canonical, RFC 9496 4.3.1): refuse it.
    if len(element) != ELEMENT_LEN or element.__class__ is not bytes or element[31] & 0x80:
        raise InvalidElementError(f"element must be {ELEMENT_LEN} bytes, canonical")


def _scalar_mult_failed(element: bytes) -> Exception:
    """Explain a failed libsodium ``scalarmult``: a bad element, else a zero scalar."""
    if element == IDENTITY or element[31] & 0x80 or _is_valid_point(element) != 1:
        return InvalidElementError("element is not canonical, not in the group, or the identity")
    return InvalidScalarError("scalar is zero modulo the group order")


def scalar_mult(scalar: bytes, element: bytes) -> bytes:
    """``scalar * element``. The element is decoded by libsodium (see module docstring)."""
    _check_mult_scalar(scalar)
    _check_element(element)
    out = _new_buffer(ELEMENT_LEN)
    if _scalarmult(out, scalar, element) != 0:
        raise _scalar_mult_failed(element)
    return out.raw


def scalar_mult_many(scalar: bytes, elements: Sequence[bytes]) -> list[bytes]:
    """``[scalar_mult(scalar, e) for e in elements]`` with the per-call overhead paid once."""
    _check_mult_scalar(scalar)
    scalarmult = _scalarmult
    new_buffer = _new_buffer
    result: list[bytes] = []
    append = result.append
    for element in elements:
        if len(element) != ELEMENT_LEN or element.__class__ is not bytes or element[31] & 0x80:
            raise InvalidElementError(f"element must be {ELEMENT_LEN} bytes, canonical")
        out = new_buffer(ELEMENT_LEN)
        if scalarmult(out, scalar, element) != 0:
            raise _scalar_mult_failed(element)
        append(out.raw)
    return result


def scalar_mult_base(scalar: bytes) -> bytes:
    """``scalar * G`` for the RFC 9496 generator G; a zero scalar raises InvalidScalarError."""
    _check_mult_scalar(scalar)
    out = _new_buffer(ELEMENT_LEN)
    if _scalarmult_base(out, scalar) != 0:
        raise InvalidScalarError("scalar is zero modulo the group order")
    return out.raw


def element_add(a: bytes, b: bytes) -> bytes:
    """``a + b``. Both inputs may be the identity; the result may be ``IDENTITY``."""
    _check_element(a)
    _check_element(b)
    out = _new_buffer(ELEMENT_LEN)
    if _add(out, a, b) != 0:
        raise InvalidElementError("element encoding is not canonical or not in the group")
    return out.raw


# ---------------------------------------------------------------------------------------------
# Scalar arithmetic (results are reduced modulo ORDER)


def scalar_invert(s: bytes) -> bytes:
    """``1 / s`` modulo ``ORDER``; a zero scalar raises ``InvalidScalarError``."""
    _check_scalar_len(s)
    out = _new_buffer(SCALAR_LEN)
    if _scalar_invert(out, s) != 0 or int.from_bytes(s, "little") % ORDER == 0:
        raise InvalidScalarError("cannot invert the zero scalar")
    return out.raw


def scalar_invert_many(scalars: Sequence[bytes]) -> list[bytes]:
    """``[scalar_invert(s) for s in scalars]`` with one inversion (Montgomery's trick).

    An inversion costs about as much as a scalar multiplication; this costs one inversion
    plus three scalar products per element, all constant time in libsodium. If any scalar
    is zero modulo ``ORDER`` it raises ``InvalidScalarError`` (without saying which one).
    """
    n = len(scalars)
    if n == 0:
        return []
    mul = _scalar_mul
    new_buffer = _new_buffer
    prefix: list[bytes] = []
    acc = b""
    for i, s in enumerate(scalars):
        _check_scalar_len(s)
        if i == 0:
            acc = s
        else:
            out = new_buffer(SCALAR_LEN)
            mul(out, acc, s)
            acc = out.raw
        prefix.append(acc)
    inv = scalar_invert(acc)  # 1 / (s_0 * ... * s_{n-1})
    result = [b""] * n
    for i in range(n - 1, 0, -1):
        out = new_buffer(SCALAR_LEN)
        mul(out, inv, prefix[i - 1])  # 1 / s_i
        result[i] = out.raw
        out = new_buffer(SCALAR_LEN)
        mul(out, inv, scalars[i])  # 1 / (s_0 * ... * s_{i-1})
        inv = out.raw
    result[0] = inv
    return result


def scalar_mul(a: bytes, b: bytes) -> bytes:
    """``a * b`` modulo ``ORDER``."""
    _check_scalar_len(a)
    _check_scalar_len(b)
    out = _new_buffer(SCALAR_LEN)
    _scalar_mul(out, a, b)
    return out.raw


def scalar_add(a: bytes, b: bytes) -> bytes:
    """``a + b`` modulo ``ORDER``."""
    _check_scalar_len(a)
    _check_scalar_len(b)
    out = _new_buffer(SCALAR_LEN)
    _scalar_add(out, a, b)
    return out.raw


def scalar_sub(a: bytes, b: bytes) -> bytes:
    """``a - b`` modulo ``ORDER``."""
    _check_scalar_len(a)
    _check_scalar_len(b)
    out = _new_buffer(SCALAR_LEN)
    _scalar_sub(out, a, b)
    return out.raw
