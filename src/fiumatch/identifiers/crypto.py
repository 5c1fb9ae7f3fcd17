"""Crypto wallet addresses by chain: BTC, ETH, TRX.

Owns chain names and canonical address forms. Bitcoin base58check and bech32 (BIP 173)
validation is python-stdnum's; hand-written here: bech32m (BIP 350, taproot) which stdnum
2.2 does not know, the EIP-55 mixed-case rule and Tron's base58check. Keccak-256 is
pycryptodome's (hashlib's SHA3 uses the NIST padding, which gives other digests).
Canonical forms: Bitcoin base58 unchanged (it is case-sensitive), bech32 lower case,
Ethereum ``0x`` + 40 lower-case hex, Tron base58 unchanged.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from functools import lru_cache

from fiumatch.identifiers.caches import VALUE_CACHE
from fiumatch.identifiers.errors import (
    ChecksumError,
    EmptyValueError,
    Failure,
    IdentifierError,
    InvalidFormatError,
    UnsupportedChainError,
)

__all__ = ["CHAINS", "CHAIN_ALIASES", "eip55", "keccak256", "normalise_wallet"]

CHAINS = ("BTC", "ETH", "TRX")

#: Accepted chain spellings (after NFKC, strip, upper case). Hand-written.
CHAIN_ALIASES: dict[str, str] = {
    "BTC": "BTC", "XBT": "BTC", "BITCOIN": "BTC",
    "ETH": "ETH", "ETHER": "ETH", "ETHEREUM": "ETH", "ERC20": "ETH",
    "TRX": "TRX", "TRON": "TRX", "TRC20": "TRX",
}  # fmt: skip

_HEX40 = re.compile(r"0[xX][0-9a-fA-F]{40}")
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32M_CONST = 0x2BC830A3


def keccak256(data: bytes) -> bytes:
    """Keccak-256 as used by Ethereum (original Keccak padding, not NIST SHA3-256)."""
    from Crypto.Hash import keccak

    return keccak.new(data=data, digest_bits=256).digest()


def eip55(address_hex40: str) -> str:
    """The EIP-55 checksummed spelling of a 40-hex-digit address (without ``0x``)."""
    lower = address_hex40.lower()
    digest = keccak256(lower.encode("ascii")).hex()
    return "".join(
        ch.upper() if ch.isalpha() and int(digest[i], 16) >= 8 else ch
        for i, ch in enumerate(lower)
    )


# --- address checks ------------------------------------------------------------------


def _b58decode(s: str) -> bytes | None:
    value = 0
    for ch in s:
        idx = _B58_INDEX.get(ch)
        if idx is None:
            return None
        value = value * 58 + idx
    body = value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""
    return b"\x00" * (len(s) - len(s.lstrip("1"))) + body


def _b58check(s: str) -> bytes | None:
    """Payload of a valid base58check string, ``None`` if the checksum fails."""
    raw = _b58decode(s)
    if raw is None or len(raw) < 5:
        return None
    payload, check = raw[:-4], raw[-4:]
    if hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4] != check:
        return None
    return payload


def _bech32_polymod(values: list[int]) -> int:
    gen = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if (top >> i) & 1 else 0
    return chk


def _bitcoin(address: str, field: str) -> str:
    from stdnum import bitcoin
    from stdnum.exceptions import InvalidChecksum, ValidationError

    compact = address.lower() if address[:3].lower() == "bc1" else address
    try:
        return str(bitcoin.validate(compact))
    except InvalidChecksum:
        if compact.startswith("bc1p") or (compact.startswith("bc1") and compact[3] != "q"):
            # bech32m (BIP 350): witness version >= 1 uses another checksum constant.
            data = [_BECH32.find(c) for c in compact[3:]]
            hrp = [ord(c) >> 5 for c in "bc"] + [0] + [ord(c) & 31 for c in "bc"]
            if -1 not in data and _bech32_polymod(hrp + data) == _BECH32M_CONST:
                return compact
        raise ChecksumError(field, "bitcoin address checksum does not verify") from None
    except ValidationError:
        raise InvalidFormatError(field, "not a bitcoin address") from None


def _ethereum(address: str, field: str) -> str:
    if not _HEX40.fullmatch(address):
        raise InvalidFormatError(field, "not 0x followed by 40 hex digits")
    body = address[2:]
    if body != body.lower() and body != body.upper() and eip55(body) != body:
        raise ChecksumError(field, "EIP-55 mixed-case checksum does not verify")
    return "0x" + body.lower()


def _tron(address: str, field: str) -> str:
    payload = _b58check(address)
    if payload is None:
        raise ChecksumError(field, "tron address checksum does not verify")
    if len(payload) != 21 or payload[0] != 0x41:
        raise InvalidFormatError(field, "not a tron address")
    return address


def _infer_chain(address: str) -> str | None:
    if _HEX40.fullmatch(address):
        return "ETH"
    if address[:3].lower() == "bc1" or address[:1] in ("1", "3"):
        return "BTC"
    if address[:1] == "T":
        return "TRX"
    return None


def normalise_wallet(
    address: str, chain: str | None = None, field: str = "wallet"
) -> tuple[str, str]:
    """Canonical ``(chain, address)``. An unknown or missing chain is inferred from the shape."""
    found = _cached(address, chain)
    if isinstance(found, Failure):
        raise found.at(field)
    return found


@lru_cache(maxsize=VALUE_CACHE)
def _cached(address: str, chain: str | None) -> tuple[str, str] | Failure:
    try:
        return _normalise(address, chain, "")
    except IdentifierError as exc:
        return Failure.of(exc)


def _normalise(address: str, chain: str | None, field: str) -> tuple[str, str]:
    text = unicodedata.normalize("NFKC", address).strip().replace(" ", "")
    if not text:
        raise EmptyValueError(field, "no address")
    name = unicodedata.normalize("NFKC", chain or "").strip().upper()
    canonical_chain = CHAIN_ALIASES.get(name) or _infer_chain(text)
    if canonical_chain is None:
        raise UnsupportedChainError(f"{field}_chain", "chain unknown and not inferable")
    if canonical_chain == "BTC":
        return "BTC", _bitcoin(text, field)
    if canonical_chain == "ETH":
        return "ETH", _ethereum(text, field)
    return "TRX", _tron(text, field)
